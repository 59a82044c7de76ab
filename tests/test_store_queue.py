"""Queue operations: enqueueing, claiming, epochs, finishing, cancel, retry, move, pause."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

import pytest

from store.db import Store, open_store
from store.errors import ClaimLostError, ParamError, StoreError, TransitionError, UnknownRunError
from store.params import RunParams, expand_grid
from store.records import RunRecord

pytestmark = pytest.mark.backends


def _claim(store: Store, worker_id: int | None = None, device: str = "cpu") -> RunRecord:
    """The run a claim takes where the test has queued one."""
    run = store.claim(worker_id, device=device)
    assert run is not None, "nothing was claimed"
    return run


def test_enqueue_grid_makes_one_sweep_in_order(store: Store) -> None:
    runs = expand_grid({"lr": "1e-3,1e-2", "k": "10,32"})
    sweep_id, ids = store.enqueue_grid(runs, name="lr x k")
    assert len(ids) == 4
    queued = store.queue()
    assert [r.id for r in queued] == ids
    assert {r.sweep_id for r in queued} == {sweep_id}
    assert [(r.params.lr, r.params.k) for r in queued] == [(1e-3, 10), (1e-3, 32), (1e-2, 10), (1e-2, 32)]
    assert store.sweeps()[0].name == "lr x k"


def test_invalid_params_are_refused_before_writing(store: Store) -> None:
    with pytest.raises(ParamError):
        store.enqueue_grid([RunParams(), RunParams(lr=-1.0)])
    assert store.count_runs() == 0


def test_claim_takes_runs_in_queue_order_and_respects_pause(store: Store) -> None:
    first, second = store.enqueue(RunParams(k=1)), store.enqueue(RunParams(k=2))
    store.set_paused(True)
    assert store.is_paused()
    assert store.claim(7, device="cpu") is None
    store.set_paused(False)
    run = _claim(store, device="cuda:0")
    assert (run.id, run.status, run.ran_on) == (first, "running", "cuda:0")
    assert run.started_at is not None
    assert _claim(store).id == second
    assert store.claim(None, device="cpu") is None


def test_record_epoch_keeps_last_and_best(store: Store) -> None:
    run = store.start_run(RunParams(epochs=3), device="cpu")
    store.record_epoch(run.id, 1, train_rmse=1.5, test_rmse=1.2, seconds=0.5)
    store.record_epoch(run.id, 2, train_rmse=1.0, test_rmse=0.9, seconds=0.5, val_rmse=0.95)
    store.record_epoch(run.id, 3, train_rmse=0.8, test_rmse=1.0, seconds=0.5)
    got = store.get_run(run.id)
    assert (got.epoch, got.best_test_rmse, got.best_epoch) == (3, 0.9, 2)
    assert (got.last_train_rmse, got.last_test_rmse) == (0.8, 1.0)
    assert [e.epoch for e in store.epochs(run.id)] == [1, 2, 3]
    assert [e.epoch for e in store.epochs(run.id, after=2)] == [3]
    assert store.epochs(run.id)[1].val_rmse == 0.95


def test_progress_through_an_epoch_is_kept_until_the_epoch_lands(store: Store) -> None:
    run = store.start_run(RunParams(epochs=3), device="cpu")
    store.set_progress(run.id, 0.4)
    assert store.get_run(run.id).epoch_progress == 0.4
    store.record_epoch(run.id, 1, train_rmse=1.0, test_rmse=1.0, seconds=0.1)
    assert store.get_run(run.id).epoch_progress == 0.0
    store.finish_run(run.id, "done")
    with pytest.raises(ClaimLostError, match="is done"):
        store.set_progress(run.id, 0.7)  # a late write from a stopped run changes nothing
    assert store.get_run(run.id).epoch_progress == 0.0


def test_a_run_declared_lost_refuses_its_workers_writes(store: Store) -> None:
    """Fencing: the worker was stopped past the grace; when it wakes, nothing it writes lands."""
    worker = store.register_worker(pid=os.getpid(), host="h", devices="cpu", slots=1)
    run_id = store.enqueue(RunParams(epochs=5))
    store.claim(worker, device="cpu")
    store.record_epoch(run_id, 1, train_rmse=1.0, test_rmse=1.0, seconds=0.1, worker_id=worker)
    time.sleep(0.01)
    assert store.reap_lost(grace_s=0.001) == [run_id]

    writes = [
        lambda: store.record_epoch(run_id, 2, train_rmse=0.5, test_rmse=0.5, seconds=0.1, worker_id=worker),
        lambda: store.set_progress(run_id, 0.5, worker_id=worker),
        lambda: store.set_device(run_id, "cuda:0", worker_id=worker),
        lambda: store.finish_run(run_id, "done", worker_id=worker),
        lambda: store.finish_run(run_id, "done"),  # no worker named: a lost run still stays lost
    ]
    for write in writes:
        with pytest.raises(ClaimLostError, match=f"run {run_id} is lost"):
            write()
    run = store.get_run(run_id)
    assert (run.status, run.epoch, run.ran_on, run.best_test_rmse) == ("lost", 1, "cpu", 1.0)
    assert [e.epoch for e in store.epochs(run_id)] == [1]


def test_only_the_claiming_worker_writes_to_a_run(store: Store) -> None:
    mine, other = (store.register_worker(pid=os.getpid(), host="h", devices="cpu", slots=1) for _ in "ab")
    run_id = store.enqueue(RunParams())
    store.claim(mine, device="cpu")
    with pytest.raises(ClaimLostError, match=f"running under worker {mine}, not worker {other}"):
        store.record_epoch(run_id, 1, train_rmse=1.0, test_rmse=1.0, seconds=0.1, worker_id=other)
    store.finish_run(run_id, "done", worker_id=mine)
    assert store.get_run(run_id).status == "done"


@pytest.mark.parametrize("ended", ["done", "cancelled", "failed", "lost", "interrupted"])
def test_finish_never_changes_a_finished_run(store: Store, ended: str) -> None:
    run_id = store.enqueue(RunParams())
    store.claim(None, device="cpu")
    store.finish_run(run_id, ended, error="first end")
    before = store.get_run(run_id)
    refused = f"run {run_id} is {ended}, no longer running: it cannot become done"
    for worker_id in (None, before.worker_id):
        with pytest.raises(ClaimLostError, match=refused):
            store.finish_run(run_id, "done", error="second end", worker_id=worker_id)
    assert store.get_run(run_id) == before  # not a field changed: status, error, finished_at


def test_finish_refuses_a_run_that_has_not_started(store: Store) -> None:
    run_id = store.enqueue(RunParams())
    before = store.get_run(run_id)
    refused = f"run {run_id} is queued, not yet running: it cannot become done"
    with pytest.raises(ClaimLostError, match=refused):
        store.finish_run(run_id, "done")
    assert store.get_run(run_id) == before
    assert _claim(store).id == run_id  # still in the queue


def test_retries_are_checked_and_kept(store: Store) -> None:
    assert store.get_run(store.enqueue(RunParams())).retries == 0
    _, ids = store.enqueue_grid([RunParams(), RunParams(k=3)], retries=2)
    assert [store.get_run(i).retries for i in ids] == [2, 2]
    # Not all ints, deliberately: what a caller that ignores the annotation might pass.
    wrong: tuple[Any, ...] = (-1, 1001, 2**70, 1.5, True)
    for bad in wrong:
        with pytest.raises(ParamError, match="retries must be a whole number from 0 to 1000"):
            store.enqueue(RunParams(), retries=bad)
    assert store.count_runs() == 3


def test_an_interrupted_run_with_retries_is_queued_again(store: Store) -> None:
    sweep_id, (run_id,) = store.enqueue_grid([RunParams(epochs=5)], retries=2)
    store.set_tags(run_id, ["a", "b"])
    store.claim(None, device="cpu")
    store.record_epoch(run_id, 1, train_rmse=1.0, test_rmse=1.0, seconds=0.1)

    again = store.finish_run(run_id, "interrupted")
    assert again is not None

    old, copy = store.get_run(run_id), store.get_run(again)
    assert (old.status, old.retries, [e.epoch for e in store.epochs(run_id)]) == ("interrupted", 2, [1])
    assert (copy.status, copy.retries, copy.sweep_id) == ("queued", 1, sweep_id)
    assert (copy.params, copy.tags, copy.notes) == (old.params, ("a", "b"), f"automatic retry of #{run_id}")
    # The copy's copy has no retries left, so its own end is final.
    store.claim(None, device="cpu")
    third = store.finish_run(again, "interrupted")
    assert third is not None
    store.claim(None, device="cpu")
    assert store.get_run(third).retries == 0
    assert store.finish_run(third, "interrupted") is None
    assert store.count_runs() == 3


@pytest.mark.parametrize("ended", ["done", "failed", "cancelled"])
def test_runs_that_end_for_their_own_reasons_are_not_retried(store: Store, ended: str) -> None:
    run_id = store.enqueue(RunParams(), retries=3)
    store.claim(None, device="cpu")
    assert store.finish_run(run_id, ended) is None
    assert store.count_runs() == 1


def test_with_validation_the_best_epoch_is_chosen_by_validation_rmse(store: Store) -> None:
    run = store.start_run(RunParams(epochs=3, val_size=0.1), device="cpu")
    for epoch, val, test in [(1, 1.0, 0.95), (2, 0.90, 0.93), (3, 0.92, 0.88)]:
        store.record_epoch(run.id, epoch, train_rmse=1.0, test_rmse=test, seconds=0.1, val_rmse=val)
    got = store.get_run(run.id)
    # Epoch 3 has the lowest test RMSE, but picking it would tune on the test set.
    assert (got.best_epoch, got.best_val_rmse, got.best_test_rmse) == (2, 0.90, 0.93)


def test_an_epoch_is_recorded_once(store: Store) -> None:
    run = store.start_run(RunParams(), device="cpu")
    store.record_epoch(run.id, 1, train_rmse=1.0, test_rmse=1.0, seconds=1.0)
    with pytest.raises(StoreError, match="already has epoch 1"):
        store.record_epoch(run.id, 1, train_rmse=0.5, test_rmse=0.5, seconds=1.0)
    got = store.get_run(run.id)  # the failed write changed nothing
    assert (got.best_test_rmse, got.last_test_rmse, len(store.epochs(run.id))) == (1.0, 1.0, 1)


def test_record_epoch_for_an_unknown_run(store: Store) -> None:
    with pytest.raises(UnknownRunError, match="no run with id 42"):
        store.record_epoch(42, 1, train_rmse=1.0, test_rmse=1.0, seconds=1.0)


def test_finish_run(store: Store) -> None:
    run = store.start_run(RunParams(), device="cpu")
    store.finish_run(run.id, "failed", error="out of memory")
    got = store.get_run(run.id)
    assert (got.status, got.error) == ("failed", "out of memory")
    assert got.finished_at is not None
    running = store.start_run(RunParams(), device="cpu")
    with pytest.raises(TransitionError, match=f"cannot change run {running.id} from running to queued"):
        store.finish_run(running.id, "queued")
    with pytest.raises(StoreError, match="unknown run status 'finished'"):
        store.finish_run(running.id, "finished")
    assert store.get_run(running.id) == running


def test_cancel_queued_at_once_and_running_by_request(store: Store) -> None:
    running = store.enqueue(RunParams())
    queued = store.enqueue(RunParams())
    store.claim(None, device="cpu")
    done = store.start_run(RunParams(), device="cpu").id
    store.finish_run(done, "done")
    assert store.cancel([queued, running, done]) == {queued: "cancelled", running: "cancelling", done: "done"}
    assert store.get_run(queued).status == "cancelled"
    assert store.get_run(running).status == "running"
    assert store.is_cancel_requested(running)
    assert not store.is_cancel_requested(queued)


def test_cancel_with_an_unknown_id_changes_nothing(store: Store) -> None:
    run_id = store.enqueue(RunParams())
    with pytest.raises(UnknownRunError, match="no run with id 99"):
        store.cancel([run_id, 99])
    assert store.get_run(run_id).status == "queued"


def test_retry_queues_a_copy_in_the_same_sweep(store: Store) -> None:
    sweep_id, (run_id,) = store.enqueue_grid([RunParams(model="deepmf", hidden=(64, 32))])
    store.claim(None, device="cpu")
    store.finish_run(run_id, "failed", error="boom")
    (copy_id,) = store.retry([run_id])
    copy = store.get_run(copy_id)
    assert (copy.status, copy.sweep_id, copy.params) == ("queued", sweep_id, store.get_run(run_id).params)
    assert copy.error is None


def test_move_reorders_the_queue(store: Store) -> None:
    a, b, c, d = (store.enqueue(RunParams(seed=i)) for i in range(4))
    store.move(d, -2)
    assert [r.id for r in store.queue()] == [a, d, b, c]
    store.move(a, 10)  # clamped to the end
    assert [r.id for r in store.queue()] == [d, b, c, a]
    assert _claim(store).id == d
    store.cancel([b])
    with pytest.raises(StoreError, match="not queued"):
        store.move(b, 1)


def test_notes_and_tags(store: Store) -> None:
    run_id = store.enqueue(RunParams())
    store.set_notes(run_id, "baseline")
    store.set_tags(run_id, ["lab", " ml-1m "])
    got = store.get_run(run_id)
    assert (got.notes, got.tags) == ("baseline", ("lab", "ml-1m"))


def _claim_all(path: str, worker: int, barrier: multiprocessing.synchronize.Barrier,
               results: multiprocessing.Queue) -> None:
    store = open_store(path)
    barrier.wait()
    taken = []
    while (run := store.claim(worker, device="cpu")) is not None:
        taken.append(run.id)
    results.put(taken)
    store.close()


def test_two_processes_never_claim_the_same_run(db: str) -> None:
    path = db
    store = open_store(path)
    _, ids = store.enqueue_grid([RunParams(seed=i) for i in range(20)])
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(path, None, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    taken = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert sorted(taken[0] + taken[1]) == ids
    assert not set(taken[0]) & set(taken[1])
    assert store.status_counts()["running"] == 20
