"""Text from the database is data, never markup: a run whose every text field holds Rich/Textual
markup opens, shows it as typed on every screen, and clicking it does nothing.

Each stored text starts with a marker (`DS=` for the dataset, `ERR=` for the error, ...), so a
test can find where on the screen the text begins, literal or not, and click exactly there."""

from __future__ import annotations

import os

import pytest
from textual.widgets import Input, Label

from dmf_tui.components.compare import CompareScreen
from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.components.search_view import SearchViewScreen
from dmf_tui.messages import OpenRun
from store.errors import StoreError
from store.params import RunParams
from store.search import parse_search
from tests.tui.conftest import TextualPrivate, make_app, settle

SIZE = (200, 50)


@pytest.fixture
def lab(store, hostile) -> dict:
    """One sweep named `hostile`: a failed run, two done, one running and one queued, whose dataset,
    device, error, notes and tags, and whose worker, all hold `hostile`. Returns their ids."""
    worker = store.register_worker(pid=os.getpid(), host=f"HOST={hostile}", devices=f"WKR={hostile}", slots=1)
    base = RunParams(data=f"DS={hostile}", epochs=10)
    _, ids = store.enqueue_grid([
        base.replace(lr=1e-3), base.replace(lr=1e-2), base.replace(data=f"DS2={hostile}"),
        base.replace(k=16), base.replace(k=32),
    ], name=hostile)
    failed, done, other, running, _queued = ids
    for run_id in (failed, done, other, running):
        assert store.claim(worker, device=f"DEV={hostile}").id == run_id
        for epoch in (1, 2):
            store.record_epoch(run_id, epoch, train_rmse=0.9, test_rmse=1.0 / epoch, seconds=1.0)
    store.finish_run(failed, "failed", error=f"ERR={hostile} in line 3\n(traceback follows)")
    store.finish_run(done, "done")
    store.finish_run(other, "done")
    store.set_notes(failed, f"NOTE={hostile}")
    store.set_tags(failed, [f"TAG={hostile}"])
    return {"failed": failed, "done": done, "other": other, "running": running}


async def shows_literally(pilot, text: str, *markers: str) -> None:
    """Wherever a `marker` is on the screen, `text` follows it exactly as stored (or cut short
    with "…" where its column is narrow), and a click where it begins leaves the app running (a
    link would have quit it)."""
    app, screen = pilot.app, pilot.app.screen
    for marker in markers:
        await settle(pilot)
        lines = TextualPrivate.screen_lines(app)
        found = [(x + len(marker), y) for y, line in enumerate(lines) for x in occurrences(line, marker)]
        assert found, f"{marker} is not on the screen:\n" + "\n".join(lines)
        await pilot.click(offset=found[0])
        await pilot.pause()
        assert app.is_running and app.return_code is None, f"clicking {marker}{text} closed the app"
        # What was clicked is checked as it was drawn: a click dismisses a notification.
        for x, y in found:
            shown = wrapped(lines, x, y, len(text), start=x - len(marker))
            cut = shown.split("…")[0]
            assert shown.startswith(text) or ("…" in shown and cut and text.startswith(cut)), (
                f"{marker}{text} is not shown as typed:\n" + "\n".join(lines)
            )
        # A click on a table row opens its run: go back to the screen under test.
        await settle(pilot)
        while app.screen is not screen:
            app.pop_screen()


def wrapped(lines: list[str], x: int, y: int, length: int, *, start: int) -> str:
    """The text drawn from column x of line y on, continued on the next lines from column `start`
    (where the cell begins) when a narrow column wraps it (Run detail's config wraps a long path),
    up to `length` characters."""
    shown = lines[y][x:]
    piece = shown.split("│")[0].rstrip()
    while len(piece) < length and y + 1 < len(lines) and lines[y + 1][:start].strip() == "":
        y += 1
        more = lines[y][start:].split("│")[0].rstrip()
        if not more:
            break
        piece += more
    return piece if len(piece) >= length else shown


def occurrences(line: str, marker: str) -> list[int]:
    return [x for x in range(len(line)) if line.startswith(marker, x)]


async def test_queue_and_its_ended_badly_list_show_stored_text_as_typed(store, lab, hostile):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await shows_literally(pilot, hostile, "DS=", "DEV=", "ERR=", "WKR=")


async def test_live_shows_stored_text_as_typed(store, lab, hostile):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await shows_literally(pilot, hostile, "DS=", "DEV=")


async def test_history_shows_stored_text_as_typed(store, lab, hostile):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        # Both datasets, every status: by default History ranks the done runs of one dataset.
        app.screen.query_one("#history-filter", Input).value = "data:all status:all"
        await shows_literally(pilot, hostile, "DS=", "DS2=")


async def test_run_detail_shows_stored_text_as_typed_and_clones_it(store, lab, hostile):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(OpenRun(lab["failed"]))
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        await shows_literally(pilot, hostile, "DS=", "DEV=", "ERR=", "NOTE=")
        app.screen.set_focus(None)  # the notes have it after the click, and would take the l
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, NewRunScreen)
        assert app.screen.values()["data"] == f"DS={hostile}"
        await shows_literally(pilot, hostile, "DS=")


async def test_compare_shows_stored_text_as_typed(store, lab, hostile):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # The same dataset: it is listed under "Same in all".
        app.push_screen(CompareScreen([lab["failed"], lab["done"]]))
        await shows_literally(pilot, hostile, "DS=")
        app.pop_screen()
        # Different datasets: they are a row of the table.
        app.push_screen(CompareScreen([lab["failed"], lab["other"]]))
        await shows_literally(pilot, hostile, "DS=", "DS2=")


async def test_a_notification_quoting_stored_text_shows_it_as_typed(store, lab, hostile, monkeypatch):
    def refuse(run_ids):
        raise StoreError(f"run {run_ids[0]}: NOTIFIED={hostile}")

    monkeypatch.setattr(store, "retry", refuse)
    app = make_app(store)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await shows_literally(pilot, hostile, "NOTIFIED=")


async def test_typed_markup_in_the_filter_and_the_form_is_shown_as_typed(store, hostile):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        app.history_tab.query_one("#history-filter", Input).value = f"sweep:{hostile}"
        await settle(pilot)
        assert repr(hostile) in str(app.history_tab.query_one("#filter-error", Label).render())

        await pilot.press("n")
        await settle(pilot)
        app.screen.query_one("#field-k", Input).value = hostile
        await settle(pilot)
        assert f"k: {hostile!r} is not an integer" in str(app.screen.query_one("#message-k", Label).render())


async def test_the_searches_tab_and_a_search_view_show_its_name_as_typed(store, hostile):
    search = parse_search({"data": "synthetic-100k", "lr": "1e-3..1e-2:log"}, trials=2)
    store.create_search(search, name=f"SRCH={hostile}")
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await shows_literally(pilot, hostile, "SRCH=")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, SearchViewScreen)
        await shows_literally(pilot, hostile, "SRCH=")
