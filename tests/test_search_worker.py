"""A worker runs a search (engine/worker.py with store/searches.py): it asks for trials when the queue
runs dry, trains them, prunes those its search's pruner stops, and a trial its worker was stopped in
is run again, under the same number, by the next worker. In-process slots on a tiny ratings file,
so a trial of 3 epochs takes a fraction of a second."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import engine.worker as worker_module
from engine.worker import Slot, WorkerOptions
from store.db import Store
from store.params import RunParams
from store.search import parse_search
from tests.processes import write_ratings

pytestmark = pytest.mark.backends

EPOCHS = 3


@pytest.fixture
def base(tmp_path: Path) -> RunParams:
    return RunParams(data=str(write_ratings(tmp_path / "u.data")), epochs=EPOCHS, batch_size=128, device="cpu")


def _serve(store: Store, stop: threading.Event | None = None, *, pack: int = 1) -> int:
    """One worker over the queue; by default its trials one at a time, as these tests follow them."""
    options = WorkerOptions(db=store.url, exit_when_empty=True, poll_s=0.05, pack=pack)
    return Slot(store, "cpu", options, stop).serve()


def _search(store: Store, base: RunParams, *, pruner: str, trials: int = 6) -> int:
    # From an lr that barely moves the model to one that fits it at once: some trials are far behind
    # the others after their first epoch.
    spec = parse_search({"lr": "1e-5..1e-1:log"}, base, trials=trials, sampler="random", pruner=pruner, seed=1)
    return store.create_search(spec)


def test_a_worker_runs_a_whole_search_and_stops_when_it_is_done(store: Store, base: RunParams) -> None:
    search = _search(store, base, pruner="none", trials=4)

    assert _serve(store) == 0

    record = store.get_search(search)
    assert (dict(record.counts), record.asked, record.phase) == ({"done": 4}, 4, "finished")
    trials = store.search_trials(search)
    assert [run.trial for run in trials] == [1, 2, 3, 4]
    for run in trials:
        assert run.epoch == EPOCHS and run.best_val_rmse is not None and run.params.val_size == 0.1
        assert [e.epoch for e in store.epochs(run.id)] == [1, 2, 3]
        assert all(e.val_rmse is not None for e in store.epochs(run.id))
    best = min(trials, key=lambda run: run.best_val_rmse or 0.0)
    assert (record.best_run_id, record.best_val_rmse) == (best.id, best.best_val_rmse)


def test_a_searchs_trials_train_in_packs_and_each_is_pruned_alone(store: Store, base: RunParams) -> None:
    search = _search(store, base, pruner="asha")

    assert _serve(store, pack=3) == 0

    trials = store.search_trials(search)
    assert [run.pack_size for run in trials] == [3] * 6  # asked three at a time
    assert [run.pack_id for run in trials] == [trials[0].id] * 3 + [trials[3].id] * 3
    pruned = [run for run in trials if run.status == "pruned"]
    assert pruned and {run.status for run in trials} == {"done", "pruned"}
    for run in pruned:  # it left its pack at its rung; the rest of the pack trained on
        assert 1 <= run.epoch < EPOCHS
        assert [e.epoch for e in store.epochs(run.id)] == list(range(1, run.epoch + 1))
    assert store.get_search(search).phase == "finished"


def test_a_pruner_stops_trials_behind_the_others_keeping_their_epochs(store: Store, base: RunParams) -> None:
    search = _search(store, base, pruner="asha")

    assert _serve(store) == 0

    trials = store.search_trials(search)
    pruned = [run for run in trials if run.status == "pruned"]
    assert pruned, [(run.params.lr, run.best_val_rmse, run.status) for run in trials]
    for run in pruned:
        assert 1 <= run.epoch < EPOCHS
        assert [e.epoch for e in store.epochs(run.id)] == list(range(1, run.epoch + 1))
        lines = [line.text for line in store.run_log(run.id)]
        assert f"pruned after epoch {run.epoch}" in " ".join(lines)
        assert lines[-1] == "ended pruned"
    assert {run.status for run in trials} == {"done", "pruned"}
    assert store.get_search(search).phase == "finished"


def test_without_a_pruner_every_trial_trains_every_epoch(store: Store, base: RunParams) -> None:
    search = _search(store, base, pruner="none")

    assert _serve(store) == 0

    assert [(run.status, run.epoch) for run in store.search_trials(search)] == [("done", EPOCHS)] * 6


def test_a_trial_its_worker_was_stopped_in_is_finished_by_the_next_worker(store: Store, base: RunParams,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    search = _search(store, base, pruner="none", trials=3)
    stop = threading.Event()
    real_record_epoch = worker_module.record_epoch

    def record_then_stop(*args: Any, **kwargs: Any) -> None:
        real_record_epoch(*args, **kwargs)
        stop.set()  # what SIGTERM does, after the first epoch of the first trial

    monkeypatch.setattr(worker_module, "record_epoch", record_then_stop)
    assert _serve(store, stop) == 0
    (interrupted,) = store.leaderboard(status="interrupted")
    assert (interrupted.trial, interrupted.status, interrupted.epoch) == (1, "interrupted", 1)
    assert dict(store.get_search(search).counts) == {"queued": 1}

    monkeypatch.setattr(worker_module, "record_epoch", real_record_epoch)
    assert _serve(store) == 0

    trials = store.search_trials(search)
    assert [(run.trial, run.status, run.epoch) for run in trials] == [(n, "done", EPOCHS) for n in (1, 2, 3)]
    assert trials[0].params == interrupted.params and trials[0].id != interrupted.id
    assert [e.epoch for e in store.epochs(interrupted.id)] == [1]  # the interrupted run keeps its epoch
    assert store.get_search(search).phase == "finished"


def test_a_trial_pruned_just_before_its_worker_is_stopped_stays_pruned(store: Store, base: RunParams,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    search = _search(store, base, pruner="asha", trials=2)
    stop = threading.Event()

    def prune_then_stop(run_id: int, **kwargs: Any) -> bool:
        stop.set()  # SIGTERM arrives right after the pruner's verdict
        return True

    monkeypatch.setattr(store, "should_prune", prune_then_stop)
    assert _serve(store, stop) == 0

    (trial,) = store.search_trials(search)
    assert (trial.trial, trial.status, trial.epoch) == (1, "pruned", 1)
