"""StoreSource: what the TUI reads once a second."""

from __future__ import annotations

from sqlalchemy import event

from dmf_tui.source import StoreSource
from store.params import RunParams
from tests.tui.conftest import FakeWorker


def test_a_run_whose_worker_stopped_without_finishing_it_shows_as_lost(store, worker):
    run = worker.start(RunParams(data="synthetic-100k"))
    worker.train(run.id, 2)
    store.unregister_worker(worker.id)  # say finish_run failed before the worker's cleanup

    snapshot = StoreSource(store).poll()

    assert [r.id for r in snapshot.running] == []
    lost = store.get_run(run.id)
    assert lost.status == "lost" and "stopped without finishing the run" in lost.error
    assert snapshot.counts["lost"] == 1


def test_a_live_workers_running_run_is_left_running(store, worker):
    run = worker.start(RunParams(data="synthetic-100k"))

    snapshot = StoreSource(store).poll()

    assert [r.id for r in snapshot.running] == [run.id]
    assert store.get_run(run.id).status == "running"


def test_finished_changed_says_when_runs_have_finished_since_the_previous_poll(store, worker):
    run = worker.start(RunParams(data="synthetic-100k"))
    source = StoreSource(store)
    assert not source.poll().finished_changed  # nothing to compare with yet
    assert not source.poll().finished_changed
    store.finish_run(run.id, "failed", error="boom")
    snapshot = source.poll()
    assert snapshot.finished_changed
    assert [r.id for r in snapshot.problems] == [run.id]
    assert not source.poll().finished_changed


def test_a_poll_is_one_read_transaction_however_many_runs_are_running(store):
    """Store.poll_snapshot reads the runs and the searches in one transaction: one moment."""
    for _ in range(3):
        FakeWorker(store).start(RunParams(data="synthetic-100k"))  # three slots, one run each
    for run in store.queue():
        store.record_epoch(run.id, 1, train_rmse=1.0, test_rmse=1.0, seconds=2.0)
    source = StoreSource(store)
    begins = []
    event.listen(store.engine, "begin", lambda connection: begins.append(connection))

    for _ in range(2):
        snapshot = source.poll()

    assert len(begins) == 2
    assert sorted(snapshot.epoch_seconds) == [run.id for run in store.queue()]


def test_a_poll_shows_what_changed_in_the_queue_since_the_previous(store, worker):
    store.enqueue_grid([RunParams(data="synthetic-100k", k=k) for k in (8, 16, 32, 64)])
    running = worker.start()
    source = StoreSource(store)
    source.poll()
    store.cancel([2])
    store.move(4, -1)
    store.set_progress(running.id, 0.25)

    snapshot = source.poll()

    assert snapshot.queue == store.queue()
    assert [run.id for run in snapshot.queue] == [running.id, 4, 3]
    assert snapshot.queue[0].epoch_progress == 0.25
