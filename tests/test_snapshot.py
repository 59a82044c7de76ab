"""Store.poll_snapshot: what the TUI polls for, in one read transaction."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import event

from store.db import Store
from store.params import RunParams

pytestmark = pytest.mark.backends

BASE = RunParams(data="synthetic-100k", epochs=10)


@pytest.fixture
def worker_id(store: Store) -> int:
    return store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices="cpu", slots=1)


def _train(store, run_id: int, epochs: range) -> None:
    for epoch in epochs:
        store.record_epoch(run_id, epoch, train_rmse=1.0, test_rmse=1.0, seconds=2.0)


def test_it_reads_the_queue_counts_workers_and_pause_as_the_single_calls_do(store, worker_id):
    store.enqueue_grid([BASE.replace(k=k) for k in (8, 16, 32, 64)])
    first = store.claim(worker_id, device="cpu")
    assert first is not None
    store.move(4, -2)
    store.set_paused(True)

    snapshot = store.poll_snapshot({})

    assert snapshot.queue == store.queue()
    assert [run.id for run in snapshot.queue] == [first.id, 4, 2, 3]
    assert snapshot.counts == store.status_counts()
    assert snapshot.workers == store.workers(include_stopped=False)
    assert snapshot.paused


def test_it_is_one_transaction(store, worker_id):
    store.enqueue_grid([BASE] * 3)
    for _ in range(3):
        run = store.claim(worker_id, device="cpu")
        assert run is not None
        _train(store, run.id, range(1, 3))
    begins = []
    event.listen(store.engine, "begin", lambda connection: begins.append(connection))

    store.poll_snapshot({})

    assert len(begins) == 1


def test_new_epochs_are_those_after_the_last_the_caller_has_of_each_running_run(store, worker_id):
    runs = []
    for _ in range(3):
        store.enqueue(BASE)
        run = store.claim(worker_id, device="cpu")
        assert run is not None
        runs.append(run.id)
    _train(store, runs[0], range(1, 5))
    _train(store, runs[1], range(1, 3))
    done = runs[2]
    _train(store, done, range(1, 3))
    store.finish_run(done, "done")

    snapshot = store.poll_snapshot({runs[0]: 2, runs[1]: 2})

    assert {run_id: [e.epoch for e in rows] for run_id, rows in snapshot.new_epochs.items()} == {runs[0]: [3, 4]}
    fresh = store.poll_snapshot({})  # a run the caller has nothing of: every epoch
    assert {run_id: [e.epoch for e in rows] for run_id, rows in fresh.new_epochs.items()} == {
        runs[0]: [1, 2, 3, 4], runs[1]: [1, 2]}


def test_known_records_that_still_hold_are_handed_back_and_changed_runs_are_read_again(store, worker_id):
    store.enqueue_grid([BASE.replace(seed=seed) for seed in range(1, 8)])
    running = store.claim(worker_id, device="cpu")
    assert running is not None
    before = store.poll_snapshot({})
    store.set_progress(running.id, 0.5, worker_id=worker_id)
    store.set_notes(2, "changed")  # only its updated_at changes
    store.cancel([3])  # it leaves the queue
    store.move(5, -1)  # it and run 4 change places

    after = store.poll_snapshot({}, known=before.queue)

    assert after.queue == store.queue()
    known = {run.id: run for run in before.queue}
    assert {run.id for run in after.queue if run is known[run.id]} == {6, 7}
    unchanged = store.poll_snapshot({}, known=after.queue)
    assert all(new is old for new, old in zip(unchanged.queue, after.queue))


def test_a_run_that_changed_among_many_is_the_only_one_read_again(store):
    store.enqueue_grid([BASE.replace(seed=seed) for seed in range(1, 1200)])  # over one IN list of ids
    before = store.poll_snapshot({})
    store.set_notes(600, "changed")

    after = store.poll_snapshot({}, known=before.queue)

    assert after.queue == store.queue()
    assert [run.id for run, old in zip(after.queue, before.queue) if run is not old] == [600]


def test_problems_are_read_only_when_a_run_joined_or_left_them(store, worker_id):
    store.enqueue(BASE)
    run = store.claim(worker_id, device="cpu")
    assert run is not None
    first = store.poll_snapshot({})
    assert first.problems == []

    same = store.poll_snapshot({}, problems_key=first.problems_key)
    assert same.problems is None
    store.finish_run(run.id, "failed", error="boom")
    failed = store.poll_snapshot({}, problems_key=same.problems_key)
    assert failed.problems is not None and [r.id for r in failed.problems] == [run.id]
    assert store.poll_snapshot({}, problems_key=failed.problems_key).problems is None


def test_problems_are_the_latest_runs_that_ended_badly(store, worker_id):
    ended = {}
    for status in ("failed", "done", "lost", "cancelled", "interrupted", "failed"):
        store.enqueue(BASE)
        run = store.claim(worker_id, device="cpu")
        assert run is not None
        store.finish_run(run.id, status, error=status)
        ended[run.id] = status

    snapshot = store.poll_snapshot({}, problems_limit=3)

    assert snapshot.problems is not None
    assert [ended[r.id] for r in snapshot.problems] == ["failed", "interrupted", "lost"]


@pytest.mark.parametrize("hide", ["dismiss", "archive", "delete_runs"])
def test_a_run_dismissed_archived_or_deleted_leaves_the_problems(store, worker_id, hide):
    failed = []
    for _ in range(2):
        store.enqueue(BASE)
        run = store.claim(worker_id, device="cpu")
        assert run is not None
        store.finish_run(run.id, "failed", error="boom")
        failed.append(run.id)
    before = store.poll_snapshot({})

    getattr(store, hide)([failed[1]])
    after = store.poll_snapshot({}, problems_key=before.problems_key)

    assert after.problems is not None and [r.id for r in after.problems] == [failed[0]]
