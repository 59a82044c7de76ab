"""SVG snapshots of every screen at 80x24 (a common SSH terminal, the size each screen is laid out
for first) and 140x40, on a database whose every time is frozen. Regenerate after a deliberate
change with `pytest tests/tui/test_snapshots.py --snapshot-update` and look at the report before
committing the new SVGs."""

from __future__ import annotations

import pytest
from textual.widgets import Input, TextArea

from dmf_tui.messages import OpenRun
from tests.tui.conftest import fill_lab, freeze_times, make_app, make_search, settle

SIZES = {"80x24": (80, 24), "140x40": (140, 40)}


async def _steady(pilot) -> None:
    """Poll, finish every worker, and stop cursors blinking so two runs draw the same frame."""
    await settle(pilot)
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False
    await pilot.pause()


async def queue_tab(pilot) -> None:
    """What the app opens on."""


async def cancel_a_running_run(pilot) -> None:
    """The question before a running run is cancelled."""
    running = pilot.app.store.queue()[0]
    pilot.app.queue_tab.query_one("#queue-table").select_run(running.id)
    await pilot.press("c")
    await pilot.pause()


async def live_tab(pilot) -> None:
    await pilot.press("2")


async def history_tab(pilot) -> None:
    await pilot.press("3")
    await _steady(pilot)
    pilot.app.history_tab.table.focus()
    await pilot.press("space", "space")  # two runs marked


async def history_by_sweep(pilot) -> None:
    await pilot.press("3")
    await _steady(pilot)
    pilot.app.history_tab.table.focus()
    await pilot.press("z")


async def parameter_plot(pilot) -> None:
    await pilot.press("3")
    await _steady(pilot)
    pilot.app.history_tab.table.focus()
    await pilot.press("P")


async def form_with_errors(pilot) -> None:
    await pilot.press("n")
    await _steady(pilot)
    pilot.app.screen.query_one("#field-lr", Input).value = "1e-3,fast"
    pilot.app.screen.query_one("#field-k", Input).value = "8,16,32"


async def run_detail_of_a_failed_run(pilot) -> None:
    failed = pilot.app.store.leaderboard(status="failed")[0]
    pilot.app.post_message(OpenRun(failed.id))
    await _steady(pilot)
    pilot.app.screen.query_one(TextArea).text = "retry with batch 256"


async def log_of_a_failed_run(pilot) -> None:
    await run_detail_of_a_failed_run(pilot)
    await pilot.press("L")


async def compare_two_runs(pilot) -> None:
    await history_tab(pilot)
    await _steady(pilot)
    await pilot.press("m")


async def help_screen(pilot) -> None:
    await pilot.press("question_mark")


async def searches_tab(pilot) -> None:
    await pilot.press("4")


async def search_view(pilot) -> None:
    await searches_tab(pilot)
    await _steady(pilot)
    await pilot.press("enter")


async def search_curve(pilot) -> None:
    await search_view(pilot)
    await _steady(pilot)
    await pilot.press("v")


async def new_search_form(pilot) -> None:
    await pilot.press("N")
    await _steady(pilot)
    pilot.app.screen.query_one("#field-lr", Input).value = "1e-4..3e-2:log"
    pilot.app.screen.query_one("#field-k", Input).value = "8..64:int"


SCREENS = [queue_tab, cancel_a_running_run, live_tab, history_tab, history_by_sweep, parameter_plot,
           form_with_errors, run_detail_of_a_failed_run, log_of_a_failed_run, compare_two_runs, help_screen]


def _shoot(snap_compare, store, screen, size) -> bool:
    async def run_before(pilot) -> None:
        # The first key waits for the app to have mounted, polled and drawn: a key that comes
        # sooner can be undone by the tabs still settling on their first one.
        await _steady(pilot)
        await screen(pilot)
        await _steady(pilot)

    return bool(snap_compare(make_app(store), terminal_size=size, run_before=run_before))


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("screen", SCREENS, ids=[s.__name__ for s in SCREENS])
def test_screen(snap_compare, store, worker, screen, size):
    fill_lab(store, worker)
    freeze_times(store)
    assert _shoot(snap_compare, store, screen, size)


SEARCH_SCREENS = [searches_tab, search_view, search_curve, new_search_form]


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("screen", SEARCH_SCREENS, ids=[s.__name__ for s in SEARCH_SCREENS])
def test_search_screen(snap_compare, store, worker, screen, size):
    """The same lab with a search of four trials, ended done, pruned, done and failed."""
    # First, and with no trial left to ask: the lab's queued runs would go before its trials, and its
    # runs would be taken as trials.
    make_search(store, worker, trials=4)
    fill_lab(store, worker)
    freeze_times(store)
    assert _shoot(snap_compare, store, screen, size)
