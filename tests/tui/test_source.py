"""StoreSource: what the TUI reads once a second."""

from __future__ import annotations

from dmf_tui.source import StoreSource
from store.params import RunParams


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
