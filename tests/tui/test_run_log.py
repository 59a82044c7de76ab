"""The run's log screen at 80x24: the lines as `dmf-tui logs` prints them, as plain text, followed
while the run is going, `end` to the last line, esc back."""

from __future__ import annotations

import subprocess
import sys

from textual.widgets import Log

from dmf_tui.components.run_log import RunLogScreen
from store.params import RunParams
from tests.tui.conftest import TextualPrivate, make_app, settle

PARAMS = RunParams(data="synthetic-100k", epochs=10)
TRACEBACK = 'Traceback (most recent call last):\n  File "trainer.py", line 3, in fit\nRuntimeError: CUDA out of memory'


async def open_log(app, pilot, run_id: int) -> RunLogScreen:
    app.push_screen(RunLogScreen(run_id))
    await settle(pilot)
    assert isinstance(app.screen, RunLogScreen)
    return app.screen


async def test_a_failed_runs_log_shows_its_traceback_with_time_and_level(store, worker):
    failed = worker.run(PARAMS, 2, status="failed", error="CUDA out of memory")
    store.append_log(failed, "started on cpu")
    store.append_log(failed, TRACEBACK, level="error")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_log(app, pilot, failed)
        records = store.run_log(failed)
        shown = list(screen.query_one(Log).lines)
        assert shown == [line for record in records for line in record.line().splitlines()]
        assert " info    started on cpu" in shown[0]
        assert " error   Traceback (most recent call last):" in shown[1]
        assert shown[-1] == "RuntimeError: CUDA out of memory"
        screen_text = "\n".join(TextualPrivate.screen_lines(app))
        assert "RuntimeError: CUDA out of memory" in screen_text
        assert "failed" in TextualPrivate.screen_lines(app)[0]


async def test_the_log_is_plain_text(store, worker, hostile):
    run = worker.run(PARAMS, 1)
    store.append_log(run, f"data file {hostile}.csv")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_log(app, pilot, run)
        assert any(f"data file {hostile}.csv" in line for line in TextualPrivate.screen_lines(app))


def test_the_cli_prints_the_same_lines(store, worker, db):
    failed = worker.run(PARAMS, 2, status="failed", error="CUDA out of memory")
    store.append_log(failed, "started on cpu")
    store.append_log(failed, TRACEBACK, level="error")
    printed = subprocess.run([sys.executable, "-m", "dmf_tui", "--db", db, "logs", str(failed)],
                             capture_output=True, text=True, check=True).stdout
    assert printed.splitlines() == [line for record in store.run_log(failed) for line in record.line().splitlines()]


async def test_a_running_runs_new_lines_are_appended_once(store, worker):
    run = worker.start(PARAMS)
    store.append_log(run.id, "started on cpu")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_log(app, pilot, run.id)
        assert len(screen.query_one(Log).lines) == 1
        store.append_log(run.id, "epoch 1: train 1.0 test 1.1")
        store.append_log(run.id, "epoch 2: train 0.9 test 1.0")
        screen.refresh_log()  # what the screen's one-second timer calls
        await settle(pilot)
        screen.refresh_log()  # nothing new: nothing added again
        await settle(pilot)
        lines = list(screen.query_one(Log).lines)
        assert [line.split(maxsplit=3)[3] for line in lines] == [
            "started on cpu", "epoch 1: train 1.0 test 1.1", "epoch 2: train 0.9 test 1.0"]


async def test_end_goes_to_the_last_line(store, worker):
    run = worker.run(PARAMS, 1)
    for i in range(100):
        store.append_log(run, f"line {i}")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_log(app, pilot, run)
        log = screen.query_one(Log)
        assert log.is_vertical_scroll_end, "the log opens on its last lines"
        await pilot.press("home")
        await settle(pilot)
        assert log.scroll_y == 0
        await pilot.press("end")
        await settle(pilot)
        assert log.is_vertical_scroll_end
        assert any(" info    line 99" in line for line in TextualPrivate.screen_lines(app))
        assert "end Last line" in TextualPrivate.screen_lines(app)[-1]
        await pilot.press("escape")
        await settle(pilot)
        assert len(app.screen_stack) == 1


async def test_a_run_without_log_lines_says_what_is_known(store, worker):
    queued = store.enqueue(PARAMS)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_log(app, pilot, queued)
        assert any(f"No log lines: run {queued} is queued" in line for line in TextualPrivate.screen_lines(app))
