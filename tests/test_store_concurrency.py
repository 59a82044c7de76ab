"""Several processes on one SQLite file, as with a worker, a second worker and the TUI."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from store.db import open_store
from store.params import RunParams

EPOCHS = 150


def _write_epochs(path: str, run_id: int, start: multiprocessing.synchronize.Event) -> None:
    store = open_store(path)
    start.wait()
    for epoch in range(1, EPOCHS + 1):
        store.record_epoch(run_id, epoch, train_rmse=1.0 / epoch, test_rmse=1.0 + 1.0 / epoch, seconds=0.01)
    store.finish_run(run_id, "done")
    store.close()


def test_a_reader_polling_while_two_processes_write_is_never_locked_out(tmp_path: Path) -> None:
    path = str(tmp_path / "runs.db")
    store = open_store(path)
    runs = [store.start_run(RunParams(), device="cpu").id for _ in range(2)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    writers = [ctx.Process(target=_write_epochs, args=(path, run_id, start)) for run_id in runs]
    for w in writers:
        w.start()
    start.set()
    polls = 0
    # Poll as the TUI does, as fast as possible; any "database is locked" raises here.
    while any(w.is_alive() for w in writers) or polls == 0:
        store.leaderboard(limit=50)
        store.queue()
        for run_id in runs:
            store.epochs(run_id, after=0)
        store.status_counts()
        polls += 1
    for w in writers:
        w.join(60)
    assert [w.exitcode for w in writers] == [0, 0]
    for run_id in runs:
        run = store.get_run(run_id)
        assert (run.status, run.epoch, len(store.epochs(run_id))) == ("done", EPOCHS, EPOCHS)
        assert run.best_epoch == EPOCHS
