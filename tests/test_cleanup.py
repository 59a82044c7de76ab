"""Deleting, archiving and dismissing runs, a sweep's runs by id or name, and the last dataset used."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from store.db import Store
from store.errors import StoreError, UnknownRunError
from store.params import RunParams
from store.status import ENDED_BADLY

pytestmark = pytest.mark.backends

PARAMS = RunParams(data="synthetic-100k")


def _finished(store: Store, status: str, checkpoint: Path | None = None, **changes: object) -> int:
    """A run that ran one epoch and ended with `status` (and `checkpoint`, a file written here)."""
    run = store.start_run(PARAMS.replace(**changes), device="cpu")
    store.record_epoch(run.id, 1, train_rmse=1.0, test_rmse=1.1, seconds=1)
    store.append_log(run.id, "epoch 1")
    if checkpoint is not None:
        checkpoint = checkpoint.with_name(checkpoint.name.format(id=run.id))
        checkpoint.write_bytes(b"weights")
    store.finish_run(run.id, status, checkpoint=None if checkpoint is None else str(checkpoint))
    return run.id


def _rows(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        count = conn.scalar(text(f"select count(*) from {table}"))
    assert isinstance(count, int)
    return count


def test_deleting_runs_takes_their_epochs_and_logs(store: Store, db: str) -> None:
    gone, kept = _finished(store, "done"), _finished(store, "failed")
    queued = store.enqueue(PARAMS)
    assert store.delete_runs([gone, queued, gone]) == 2
    assert [run.id for run in store.leaderboard()] == [kept]
    assert store.epochs(gone) == [] and [e.epoch for e in store.epochs(kept)] == [1]
    assert (_rows(store, "epochs"), _rows(store, "run_logs")) == (1, 1)


def test_deleting_runs_takes_the_checkpoints_dmf_tui_named(store: Store, tmp_path: Path) -> None:
    """A worker's run-<id>.pt goes with its run; a file the user named with --checkpoint stays, and so
    does every checkpoint of a delete that was refused."""
    ours, theirs, refused = (_finished(store, "done", tmp_path / name)
                             for name in ("run-{id}.pt", "my-best-model.pt", "run-{id}.pt"))
    files = [Path(store.get_run(run_id).checkpoint or "") for run_id in (ours, theirs, refused)]
    running = store.start_run(PARAMS, device="cpu").id
    with pytest.raises(StoreError):
        store.delete_runs([refused, running])
    assert store.delete_runs([ours, theirs]) == 2
    assert [path.exists() for path in files] == [False, True, True]


def test_a_running_run_or_an_unknown_id_is_not_deleted(store: Store) -> None:
    done = _finished(store, "done")
    running = store.start_run(PARAMS, device="cpu").id
    with pytest.raises(StoreError, match=rf"^cannot delete: run {running} is running \(cancel it first"):
        store.delete_runs([done, running])
    with pytest.raises(UnknownRunError, match="^no run with id 99$"):
        store.delete_runs([done, 99])
    assert {run.id for run in store.leaderboard()} == {done, running}
    assert [e.epoch for e in store.epochs(done)] == [1]


def test_a_sweep_goes_with_its_last_run(store: Store) -> None:
    sweep, (first, second) = store.enqueue_grid([PARAMS.replace(k=1), PARAMS.replace(k=2)], name="pair")
    store.delete_runs([first])
    assert [(s.id, s.runs) for s in store.sweeps()] == [(sweep, 1)]
    store.delete_runs([second])
    assert store.sweeps() == []


def test_archive_and_unarchive(store: Store) -> None:
    a, b = _finished(store, "done"), _finished(store, "done")
    before = store.get_run(a).updated_at
    assert store.archive([a, b]) == 2
    assert store.archive([a]) == 0  # already archived
    assert [store.get_run(i).archived for i in (a, b)] == [True, True]
    assert store.get_run(a).updated_at > before  # what tells the TUI's poll the run changed
    assert store.archive([b], archived=False) == 1
    assert [store.get_run(i).archived for i in (a, b)] == [True, False]
    with pytest.raises(UnknownRunError, match="^no run with id 7$"):
        store.archive([a, 7])


def test_dismiss(store: Store) -> None:
    failed = _finished(store, "failed")
    assert store.dismiss([failed]) == 1
    assert store.dismiss([failed]) == 0
    assert store.get_run(failed).dismissed
    with pytest.raises(UnknownRunError):
        store.dismiss([42])


def test_a_sweeps_runs_by_id_or_name(store: Store) -> None:
    sweep, ids = store.enqueue_grid([PARAMS.replace(k=k) for k in (1, 2, 3)], name="lr-grid")
    store.enqueue_grid([PARAMS.replace(k=4)], name="other")
    store.cancel([ids[1]])
    assert store.sweep_run_ids(sweep) == ids
    assert store.sweep_run_ids("lr-grid") == ids
    assert store.sweep_run_ids(str(sweep)) == ids  # digits no sweep is named: its id
    assert store.sweep_run_ids("lr-grid", statuses=["queued"]) == [ids[0], ids[2]]
    assert store.sweep_run_ids("lr-grid", statuses=ENDED_BADLY) == []
    with pytest.raises(StoreError, match="^no sweep named 'nosuch'$"):
        store.sweep_run_ids("nosuch")
    with pytest.raises(StoreError, match="^no sweep with id 9$"):
        store.sweep_run_ids(9)
    with pytest.raises(StoreError, match="^unknown status 'gone'"):
        store.sweep_run_ids(sweep, statuses=["gone"])
    store.enqueue_grid([PARAMS.replace(k=5)], name="lr-grid")
    with pytest.raises(StoreError, match=r"^2 sweeps are named 'lr-grid' \(ids 1, 3\): give the id$"):
        store.sweep_run_ids("lr-grid")


def test_last_data(store: Store) -> None:
    assert store.last_data() is None
    store.enqueue(PARAMS.replace(data="synthetic-1m"))
    store.enqueue(PARAMS.replace(data="ml-100k"))
    assert store.last_data() == "ml-100k"
