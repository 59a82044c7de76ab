"""Run detail at 80x24, driven as a person would: notes that never fire a key, going back with and
without unsaved notes, the layout, the config, the log scale and the keys that apply to the run."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console
from sqlalchemy import func, select
from textual.widgets import TextArea
from textual.widgets.data_table import ColumnKey

from dmf_tui.components.confirm import Confirm
from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.epoch_table import EpochTable
from dmf_tui.components.run_detail import RunDetailScreen, config_table
from dmf_tui.components.run_log import RunLogScreen
from dmf_tui.messages import OpenRun
from store.params import RunParams
from store.tables import Run
from tests.tui.conftest import TextualPrivate, make_app, settle

# What the person of issue 10 typed into what looked like the notes.
NOTE = "lr far too high"
# Every letter and digit that is a key on this screen or in the app (W stops workers, w starts one,
# p resumes the queue, q quits, 1-3 change tabs, ...): none may act while the notes have the focus.
EVERY_KEY = "i l c r L o t n p w W q 1 2 3"
DEEP = RunParams(data="synthetic-100k", model="deepmf", hidden=(64, 32), lr=1e-2, epochs=10)


def run_count(store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count(Run.id))))


async def type_text(pilot, text: str) -> None:
    """One key press a character, as a person types."""
    for character in text:
        await pilot.press("space" if character == " " else character)


async def open_detail(app, pilot, run_id: int) -> RunDetailScreen:
    app.post_message(OpenRun(run_id))
    await settle(pilot)
    assert isinstance(app.screen, RunDetailScreen)
    return app.screen


def no_worker_command(monkeypatch) -> list[tuple]:
    """Record the worker commands w and W would run, instead of starting or stopping workers."""
    calls: list[tuple] = []

    def fake(*args):
        calls.append(args)
        return 0, "fake"

    monkeypatch.setattr("dmf_tui.app.worker_command", fake)
    return calls


async def test_typing_a_note_after_tab_fires_nothing(store, worker, monkeypatch):
    """Issue 10: the first Tab went to the epoch table, and the note retried the run twice (r),
    opened a clone (l), resumed the paused queue (p), and ctrl+s queued the clone."""
    failed = worker.run(DEEP, 4, status="failed", error="CUDA out of memory")
    store.set_paused(True)
    workers = no_worker_command(monkeypatch)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, failed)
        await pilot.press("tab")
        await type_text(pilot, NOTE)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is detail, "a key opened another screen (the clone form?)"
        assert detail.notes.text == NOTE
        assert store.get_run(failed).notes == NOTE
        assert run_count(store) == 1, "a key queued a run"
        assert store.is_paused(), "a key resumed the queue"
        assert workers == []


async def test_i_enters_the_notes_where_every_key_is_text(store, worker, monkeypatch):
    failed = worker.run(DEEP, 4, status="failed", error="CUDA out of memory")
    store.set_paused(True)
    workers = no_worker_command(monkeypatch)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, failed)
        assert isinstance(app.focused, EpochTable), "the screen opens where its keys are the footer's"
        await pilot.press("i")
        assert detail.notes.has_focus
        await type_text(pilot, f"{NOTE}: {EVERY_KEY}")
        await settle(pilot)
        assert app.screen is detail
        assert detail.notes.text == f"{NOTE}: {EVERY_KEY}"
        assert run_count(store) == 1
        assert store.is_paused()
        assert workers == []
        assert store.get_run(failed).notes == "", "saved before ctrl+s"


async def test_ctrl_s_saves_the_notes_wherever_the_focus_is(store, worker):
    failed = worker.run(DEEP, 4, status="failed", error="CUDA out of memory")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, failed)
        await pilot.press("i")
        await type_text(pilot, NOTE)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert store.get_run(failed).notes == NOTE
        assert detail.notes.has_focus, "saving keeps the focus in the notes"
        await type_text(pilot, " again")
        await pilot.press("escape")  # leaves the notes, keeps the edit
        assert isinstance(app.focused, EpochTable)
        assert app.screen is detail
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert store.get_run(failed).notes == f"{NOTE} again"
        assert app.screen is detail and run_count(store) == 1


async def test_escape_asks_before_discarding_unsaved_notes(store, worker):
    failed = worker.run(DEEP, 4, status="failed", error="CUDA out of memory")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, failed)
        await pilot.press("i")
        await type_text(pilot, NOTE)
        await pilot.press("escape")  # out of the notes first
        assert app.screen is detail
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "discard unsaved notes?" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is detail and detail.notes.text == NOTE
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert len(app.screen_stack) == 1, "yes went back to the main screen"
        assert store.get_run(failed).notes == ""


async def test_escape_without_unsaved_notes_goes_back_at_once(store, worker):
    failed = worker.run(DEEP, 4, status="failed", error="CUDA out of memory")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(app, pilot, failed)
        await pilot.press("escape")
        await settle(pilot)
        assert len(app.screen_stack) == 1
        # Saved edits are not unsaved ones.
        await open_detail(app, pilot, failed)
        await pilot.press("i")
        await type_text(pilot, NOTE)
        await pilot.press("ctrl+s", "escape", "escape")
        await settle(pilot)
        assert len(app.screen_stack) == 1
        assert store.get_run(failed).notes == NOTE


async def test_everything_fits_at_80x24(store, worker):
    long_path = "/srv/" + "/".join(f"folder{i}" for i in range(8)) + "/ratings.csv"
    failed = worker.run(DEEP.replace(data=long_path), 6, status="failed",
                        error="CUDA out of memory. Tried to allocate 2.00 GiB")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, failed)
        screen = detail.region
        parts = {"config": detail.query_one("#detail-config"), "error": detail.query_one("#detail-error"),
                 "curves": detail.query_one(RmseCurves), "epochs": detail.query_one(EpochTable),
                 "notes": detail.query_one(TextArea)}
        for name, widget in parts.items():
            assert screen.contains_region(widget.region), f"{name} is off screen: {widget.region}"
        assert parts["config"].region.width <= 34
        assert parts["curves"].region.width >= 40 and parts["curves"].region.height >= 8
        assert parts["epochs"].region.height >= 4 + 1  # its heading and the four epochs
        assert parts["notes"].region.height >= 4  # two lines of text inside its border
        lines = TextualPrivate.screen_lines(app)
        assert "folder7/ratings.csv" in lines[0], "the title names the dataset by its short label"
        assert long_path not in lines[0]
        assert any("CUDA out of memory" in line for line in lines)
        assert any("Notes (i to edit, ctrl+s saves)" in line for line in lines)
        # Every key of the screen in the footer (ctrl+s in the notes' title), the log included.
        for key in ("esc Back", "i Notes", "l Clone", "r Retry", "L Log", "o Log scale", "t Top 10"):
            assert key in lines[-1]


def config_text(run, width: int = 31) -> list[str]:
    """The config as drawn in its column (34 columns less border and padding)."""
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(config_table(run))
    return console.export_text().splitlines()


def test_config_leaves_out_what_the_model_ignores_and_keeps_the_full_path(store, worker):
    long_path = "/srv/" + "/".join(f"folder{i}" for i in range(8)) + "/ratings.csv"
    mf = store.get_run(worker.run(DEEP.replace(model="mf", data=long_path), 2))
    deep = store.get_run(worker.run(DEEP.replace(dropout=0.1), 2))
    mf_names = {line.split()[0] for line in config_text(mf) if line[:1].strip()}
    deep_names = {line.split()[0] for line in config_text(deep) if line[:1].strip()}
    assert {"hidden", "dropout"} <= deep_names
    assert not {"hidden", "dropout"} & mf_names
    assert {"k", "lr", "data", "optimizer"} <= mf_names
    lines = config_text(mf)
    assert all(len(line) <= 31 for line in lines)
    assert long_path in "".join(lines).replace(" ", ""), "the full path, folded onto the lines below"


async def test_validation_rmse_shows_where_the_run_has_one(store, worker):
    run = worker.start(DEEP.replace(val_size=0.1))
    for epoch in (1, 2, 3):
        store.record_epoch(run.id, epoch, train_rmse=1.0 / epoch, test_rmse=1.1 / epoch, val_rmse=1.05 / epoch,
                           seconds=2.0)
    store.finish_run(run.id, "done")
    plain = worker.run(DEEP, 3)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, run.id)
        assert "best val" in "\n".join(config_text(detail.run))
        assert "0.3500" in "\n".join(config_text(detail.run))  # 1.05 / 3
        assert detail.query_one(EpochTable).has_validation
        assert "val" in str(detail.query_one("#detail-key").render())
        await pilot.press("escape")
        detail = await open_detail(app, pilot, plain)
        assert "best val" not in "\n".join(config_text(detail.run))
        assert "val" not in str(detail.query_one("#detail-key").render())


async def test_o_toggles_a_log_scale_of_the_curves(store, worker):
    done = worker.run(DEEP, 5)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, done)
        curves = detail.query_one(RmseCurves)
        assert not curves.log_scale
        await pilot.press("o")
        await settle(pilot)
        assert curves.log_scale
        assert "(log)" in str(detail.query_one("#detail-key").render())
        await pilot.press("o")
        await settle(pilot)
        assert not curves.log_scale
        assert "(log)" not in str(detail.query_one("#detail-key").render())


async def test_c_cancels_a_running_run_once_confirmed_and_is_not_offered_once_it_ended(store, worker):
    running = worker.start(DEEP)
    worker.train(running.id, 2)
    done = worker.run(DEEP.replace(lr=1e-3), 3)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(app, pilot, running.id)
        footer = TextualPrivate.screen_lines(app)[-1]
        assert "c Cancel run" in footer and "r Retry" not in footer
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, Confirm), "the app asks before stopping a running run"
        await pilot.press("y")
        await settle(pilot)
        assert store.is_cancel_requested(running.id)
        await pilot.press("escape")
        await open_detail(app, pilot, done)
        footer = TextualPrivate.screen_lines(app)[-1]
        assert "r Retry" in footer and "c Cancel" not in footer
        said = TextualPrivate.notifications(app)
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert TextualPrivate.notifications(app) == said, "c did something to a run that ended"


async def test_L_opens_the_runs_log_and_esc_comes_back(store, worker):
    failed = worker.run(DEEP, 2, status="failed", error="boom")
    store.append_log(failed, "Traceback (most recent call last):\nRuntimeError: boom", level="error")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, failed)
        await pilot.press("L")
        await settle(pilot)
        log = app.screen
        assert isinstance(log, RunLogScreen) and log.run_id == failed
        assert any("RuntimeError: boom" in line for line in TextualPrivate.screen_lines(app))
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is detail


async def test_run_detail_shows_the_ranking_metrics_where_the_run_has_them(store, worker):
    ranked = worker.start(DEEP)
    for epoch in (1, 2, 3):
        # Ranked every second epoch (--rank-every 2): the first epoch has no NDCG@10.
        ranking = SimpleNamespace(precision=0.1, recall=0.2, ndcg=0.25 + epoch / 100) if epoch != 1 else None
        store.record_epoch(ranked.id, epoch, train_rmse=1.0, test_rmse=1.1 - epoch / 100, seconds=1.0,
                           ranking=ranking)
    store.finish_run(ranked.id, "done", ranking=SimpleNamespace(precision=0.1234, recall=0.2345, ndcg=0.3456))
    plain = worker.run(DEEP, 3)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, ranked.id)
        lines = TextualPrivate.screen_lines(app)
        for heading, value in (("P@10", "0.1234"), ("R@10", "0.2345"), ("NDCG@10", "0.3456")):
            assert any(line.split()[:2] == [heading, value] for line in lines), heading
        table = detail.query_one(EpochTable)
        assert table.has_ranking
        assert [str(table.get_cell(row.key, "ndcg")) for row in table.ordered_rows] == ["", "0.2700", "0.2800"]
        assert str(table.columns[ColumnKey("ndcg")].label) == "NDCG@10"
        await pilot.press("escape")
        detail = await open_detail(app, pilot, plain)
        assert not any(line.split()[:1] in (["P@10"], ["NDCG@10"]) for line in TextualPrivate.screen_lines(app))
        assert not detail.query_one(EpochTable).has_ranking
        assert "NDCG@10" not in [str(c.label) for c in detail.query_one(EpochTable).columns.values()]

