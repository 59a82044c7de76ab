"""Searches in the store (store/searches.py, store/study.py, claim and queue_again in store/queue.py):
trials asked one at a time by claim() when the queue runs dry, numbered from 1, inside the space and
the budget; pause, resume, stop and extend; a sampler that carries on across reopenings and seeds
that repeat; interrupted, lost and conflicting trials; what a search reports. No training here: a
test plays the worker, recording epochs by hand."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from store import study
from store.db import Store, open_store
from store.errors import ParamError, StoreError
from store.params import RunParams
from store.records import RunRecord
from store.search import MAX_TRIALS, SearchSpec, parse_search
from store.status import RunStatus

pytestmark = pytest.mark.backends

BASE = RunParams(data="synthetic-100k", epochs=3, device="cpu")
SPACE = {"lr": "1e-4..1e-1:log", "k": "2..16"}


def _spec(values: dict[str, str] | None = None, **options: Any) -> SearchSpec:
    return parse_search(values or SPACE, BASE, **{"trials": 3, "sampler": "random", "pruner": "none", **options})


def _worker(store: Store) -> int:
    return store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices=["cpu"], slots=1)


def _claim(store: Store, worker_id: int | None = None) -> RunRecord:
    run = store.claim(worker_id, device="cpu")
    assert run is not None, "nothing was claimed"
    return run


def _finish(store: Store, run: RunRecord, val: float, test: float | None = None, *,
            status: str = "done") -> None:
    """End a claimed run after one epoch with this validation (and test) RMSE."""
    store.record_epoch(run.id, 1, train_rmse=val, test_rmse=val if test is None else test, val_rmse=val,
                       seconds=0.1)
    store.finish_run(run.id, status)


def _point(run: RunRecord) -> tuple[Any, ...]:
    params = run.params
    return (params.lr, params.k, params.bias)


# --- asking trials ---------------------------------------------------------------------------------

def test_claims_ask_trials_numbered_from_one_inside_the_space_up_to_the_budget(store: Store) -> None:
    search = store.create_search(_spec(), name="mf lr")
    runs = [_claim(store) for _ in range(3)]

    assert [(run.sweep_id, run.trial, run.status) for run in runs] == [(search, n, "running") for n in (1, 2, 3)]
    for run in runs:
        assert 1e-4 <= run.params.lr <= 1e-1 and 2 <= run.params.k <= 16 and isinstance(run.params.k, int)
        assert (run.params.epochs, run.params.val_size) == (3, 0.1)
    assert len({_point(run) for run in runs}) == 3
    assert store.claim(None, device="cpu") is None  # the budget is spent
    record = store.get_search("mf lr")
    assert (record.id, record.asked, record.trials, dict(record.counts), record.phase) == (
        search, 3, 3, {"running": 3}, "running")


def test_a_search_holds_its_place_in_the_queue(store: Store) -> None:
    # Runs queued before the search are taken first; its trials come before runs queued after it.
    before = store.enqueue(BASE)
    store.create_search(_spec(trials=2))
    after = store.enqueue(BASE.replace(k=20))
    claimed = [_claim(store) for _ in range(4)]
    assert [run.trial or run.id for run in claimed] == [before, 1, 2, after]
    assert [run.trial is None for run in claimed] == [True, False, False, True]


def test_the_oldest_active_search_gives_trials_first(store: Store) -> None:
    first = store.create_search(_spec(trials=1))
    second = store.create_search(_spec(trials=1))
    assert [_claim(store).sweep_id for _ in range(2)] == [first, second]


def test_a_paused_search_gives_no_trial_and_its_queued_trials_wait(store: Store) -> None:
    search = store.create_search(_spec())
    trial = _claim(store)
    again = store.finish_run(trial.id, "interrupted")  # its worker was stopped: the trial is queued again
    assert again is not None

    assert store.set_search_state(search, "paused").phase == "paused"
    assert store.claim(None, device="cpu") is None
    assert store.get_run(again).status == "queued"

    assert store.set_search_state(search, "active").phase == "running"
    resumed = _claim(store)
    assert (resumed.id, resumed.trial, _point(resumed)) == (again, 1, _point(trial))
    assert _claim(store).trial == 2


def test_stop_cancels_queued_trials_and_asks_no_more(store: Store) -> None:
    search = store.create_search(_spec(trials=5))
    interrupted, running = _claim(store), _claim(store)
    again = store.finish_run(interrupted.id, "interrupted")
    assert again is not None

    record = store.set_search_state(search, "stopped")

    assert store.get_run(again).status == "cancelled"
    assert (record.phase, dict(record.counts)) == ("stopping", {"cancelled": 1, "running": 1})
    assert store.claim(None, device="cpu") is None
    _finish(store, running, 0.9)
    assert store.get_search(search).phase == "stopped"
    assert store.claim(None, device="cpu") is None


def test_a_trial_interrupted_after_its_search_stopped_is_not_run_again(store: Store) -> None:
    search = store.create_search(_spec(trials=5))
    running = _claim(store)
    store.set_search_state(search, "stopped")

    assert store.finish_run(running.id, "interrupted") is None
    assert store.claim(None, device="cpu") is None
    assert store.get_search(search).phase == "stopped"


def test_extend_raises_the_budget_and_wakes_a_stopped_search(store: Store) -> None:
    search = store.create_search(_spec(trials=1))
    _finish(store, _claim(store), 0.9)
    assert store.get_search(search).phase == "finished"
    assert store.claim(None, device="cpu") is None

    extended = store.extend_search(search, 2)
    assert (extended.trials, extended.spec.trials, extended.phase) == (3, 1, "running")
    assert _claim(store).trial == 2

    store.set_search_state(search, "stopped")
    assert store.claim(None, device="cpu") is None
    woken = store.extend_search(search, 1)
    assert (woken.state, woken.trials) == ("active", 4)
    assert [_claim(store).trial for _ in range(2)] == [3, 4]
    assert store.claim(None, device="cpu") is None


@pytest.mark.parametrize("more, message", [(0, "extend a search by 1 or more"), (True, "extend a search by 1"),
                                           (MAX_TRIALS, "at most 10,000 trials")])
def test_extend_refuses_a_bad_count(store: Store, more: Any, message: str) -> None:
    search = store.create_search(_spec())
    with pytest.raises(ParamError, match=message):
        store.extend_search(search, more)
    assert store.get_search(search).trials == 3


def test_a_grid_search_never_runs_a_point_twice_even_extended(store: Store, capfd: pytest.CaptureFixture[str]) -> None:
    search = store.create_search(_spec({"k": "2..3"}, sampler="grid", trials=2))
    runs = [_claim(store) for _ in range(2)]
    for run in runs:
        _finish(store, run, 1.0)
    try:
        store.extend_search(search, 2)
    except ParamError:
        pass  # refusing is as good as asking nothing more
    while (more := store.claim(None, device="cpu")) is not None:
        runs.append(more)
    assert sorted(run.params.k for run in runs) == [2, 3]
    assert capfd.readouterr().err == ""


# --- the sampler carries on -----------------------------------------------------------------------

@pytest.mark.parametrize("sampler, values", [("qmc", SPACE), ("grid", {"k": "2..5", "bias": "true,false"})])
def test_reopening_the_store_carries_on_the_numbering_and_the_sampler(db: str, sampler: str,
                                                                     values: dict[str, str]) -> None:
    with open_store(db) as store:
        search_id = store.create_search(_spec(values, sampler=sampler, trials=8))
    runs: list[RunRecord] = []
    for opening in range(3):
        with open_store(db) as store:
            for _ in range(3 if opening < 2 else 2):
                run = _claim(store)
                _finish(store, run, 1.0 / run.params.k)
                runs.append(run)
    assert [run.trial for run in runs] == list(range(1, 9))
    assert len({_point(run) for run in runs}) == 8, [_point(run) for run in runs]
    with open_store(db) as store:
        assert store.claim(None, device="cpu") is None
        assert store.get_search(search_id).phase == "finished"
    if sampler == "grid":  # the whole grid, each point once
        assert {(run.params.k, run.params.bias) for run in runs} == {(k, b) for k in range(2, 6) for b in (True, False)}


def _sampled(db: str, seed: int, sampler: str) -> list[tuple[Any, ...]]:
    """The points a fresh search with this seed draws, each trial finished with an RMSE that follows lr."""
    with open_store(db) as store:
        store.create_search(_spec(sampler=sampler, seed=seed, trials=6))
        points = []
        while (run := store.claim(None, device="cpu")) is not None:
            _finish(store, run, 1.0 + abs(run.params.lr - 3e-3))
            points.append(_point(run))
    return points


@pytest.mark.parametrize("sampler", ["tpe", "cmaes"])
def test_the_same_seed_draws_the_same_trials_and_another_seed_others(tmp_path: Path, sampler: str) -> None:
    first = _sampled(str(tmp_path / "a.db"), 7, sampler)
    assert len(first) == 6
    assert _sampled(str(tmp_path / "b.db"), 7, sampler) == first
    assert _sampled(str(tmp_path / "c.db"), 8, sampler) != first


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "qmc", "grid"])
def test_asking_and_pruning_write_nothing_on_the_terminal(store: Store, sampler: str,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    # The TUI asks and prunes in its own process: an Optuna log line or warning would land on its screen.
    values = {"k": "2..4", "bias": "true,false"} if sampler == "grid" else {**SPACE, "bias": "true,false"}
    store.create_search(_spec(values, sampler=sampler, pruner="hyperband", trials=4))
    while (run := store.claim(None, device="cpu")) is not None:
        store.record_epoch(run.id, 1, train_rmse=1.0, test_rmse=1.0, val_rmse=1.0 / run.params.k, seconds=0.1)
        store.finish_run(run.id, "pruned" if store.should_prune(run.id) else "done")
    assert capfd.readouterr() == ("", "")


# --- trials that end badly ------------------------------------------------------------------------

def test_an_interrupted_trial_is_queued_again_with_its_number_before_new_trials(store: Store) -> None:
    search = store.create_search(_spec(retries=0))  # queued again whatever its retries: not its fault
    trial = _claim(store)
    store.record_epoch(trial.id, 1, train_rmse=1.0, test_rmse=1.1, val_rmse=1.2, seconds=0.1)

    again = store.finish_run(trial.id, "interrupted")

    assert again is not None
    record = store.get_search(search)
    assert (record.asked, dict(record.counts), record.phase) == (1, {"queued": 1}, "running")
    rerun = _claim(store)
    assert (rerun.id, rerun.trial, rerun.sweep_id, _point(rerun)) == (again, 1, search, _point(trial))
    assert [e.epoch for e in store.epochs(trial.id)] == [1]  # the interrupted run keeps its epochs
    assert store.get_run(trial.id).status == "interrupted"
    assert _claim(store).trial == 2
    first = store.search_trials(search)[0]
    assert (first.id, first.trial) == (again, 1)
    assert store.get_search(search).asked == 2


def test_a_lost_trial_uses_its_retries_then_counts_as_failed(store: Store) -> None:
    search = store.create_search(_spec(retries=1))
    lost = []
    for _ in range(2):
        worker = _worker(store)
        lost.append(_claim(store, worker))
        store.unregister_worker(worker)  # its worker went away without ending it
        store.reap_lost()
    assert [run.trial for run in lost] == [1, 1]
    assert [store.get_run(run.id).status for run in lost] == ["lost", "lost"]
    record = store.get_search(search)
    assert (record.asked, dict(record.counts)) == (1, {"lost": 1})

    assert _claim(store).trial == 2  # trial 1 is over; the sampler goes on
    assert store.search_trials(search)[0].status == "lost"


def test_a_trial_whose_values_conflict_is_recorded_failed_and_the_next_one_asked(store: Store) -> None:
    # Every corner of this space can train (parse_search checks those), but reg_bias > 0 without
    # biases cannot: a trial drawing both fails with the reason.
    spec = _spec({"reg_bias": "0..0.1", "bias": "true,false"}, trials=8, seed=3)
    search = store.create_search(spec)
    claimed = []
    while (run := store.claim(None, device="cpu")) is not None:
        claimed.append(run)
    trials = store.search_trials(search)

    assert [run.trial for run in trials] == list(range(1, 9))
    failed = [run for run in trials if run.status == "failed"]
    assert failed and claimed, "the seed should draw both kinds"
    for run in failed:
        assert (run.params.bias, run.params.reg_bias > 0) == (False, True)
        assert run.error is not None and run.error.startswith("the trial's values conflict: reg_bias")
    assert all(run.params.bias or run.params.reg_bias == 0 for run in claimed)
    assert sorted(run.trial or 0 for run in claimed + failed) == list(range(1, 9))


def test_a_space_where_every_trial_conflicts_ends_without_a_trial_to_run(store: Store) -> None:
    # Built by hand: parse_search would refuse it (sparse_adam takes no weight decay).
    base = dataclasses.replace(BASE, optimizer="sparse_adam", val_size=0.1)
    spec = SearchSpec(base, _spec().space, trials=3,
                      sampler="random", pruner="none")
    search = store.create_search(spec)
    assert store.claim(None, device="cpu") is None
    record = store.get_search(search)
    assert (record.asked, dict(record.counts), record.phase) == (3, {"failed": 3}, "finished")


def test_a_sampler_that_fails_stops_its_search_with_a_failed_trial_saying_why(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = store.create_search(_spec(), name="broken")
    fine = store.create_search(_spec(trials=1))

    real_ask = study.ask

    def ask(*args: Any, key: int, **kwargs: Any) -> study.Asked:
        if key == broken:
            raise ValueError("no point left")
        return real_ask(*args, key=key, **kwargs)

    monkeypatch.setattr(study, "ask", ask)
    trial = _claim(store)  # no exception, so no worker dies of it: the next search gives a trial
    assert (trial.sweep_id, trial.trial) == (fine, 1)
    record = store.get_search(broken)
    assert (record.state, record.asked, dict(record.counts)) == ("stopped", 1, {"failed": 1})
    (failed,) = store.search_trials(broken)
    assert failed.error == "the search's sampler failed, so the search was stopped: ValueError: no point left"


def _claim_trials(path: str, barrier: Any, results: Any) -> None:
    import optuna  # noqa: F401  (imported before the race, so neither process starts late)

    store = open_store(path)
    barrier.wait()
    taken = []
    while (run := store.claim(None, device="cpu")) is not None:
        taken.append(run.trial)
    results.put(taken)
    store.close()


def test_two_processes_asking_one_search_never_get_the_same_trial(db: str) -> None:
    path = db
    with open_store(path) as store:
        search = store.create_search(_spec(sampler="tpe", trials=12))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_claim_trials, args=(path, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    taken = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert sorted(taken[0] + taken[1]) == list(range(1, 13))
    with open_store(path) as store:
        assert [run.trial for run in store.search_trials(search)] == list(range(1, 13))
        assert store.status_counts()["running"] == 12


# --- what a search reports ------------------------------------------------------------------------

def test_the_best_trial_is_chosen_by_validation_never_by_test(store: Store) -> None:
    search = store.create_search(_spec(trials=4), name="best")
    by_val, by_test, failed, running = (_claim(store) for _ in range(4))
    _finish(store, by_val, 0.90, test=0.95)
    _finish(store, by_test, 0.93, test=0.85)  # better on test, worse on validation
    store.finish_run(failed.id, "failed", error="diverged")

    record = store.get_search("best")
    assert (record.best_run_id, record.best_val_rmse, record.best_test_rmse) == (by_val.id, 0.90, 0.95)
    assert (record.asked, dict(record.counts)) == (4, {"done": 2, "failed": 1, "running": 1})
    assert (record.phase, record.active_trials, record.label) == ("running", 1, f"search 'best' (#{search})")
    assert [run.id for run in store.search_trials(search)] == [by_val.id, by_test.id, failed.id, running.id]
    assert [run.trial for run in store.search_trials(str(search))] == [1, 2, 3, 4]


def test_a_search_without_a_finished_trial_has_no_best(store: Store) -> None:
    search = store.create_search(_spec())
    _claim(store)
    record = store.get_search(search)
    assert (record.best_run_id, record.best_val_rmse, record.best_test_rmse) == (None, None, None)


def test_searches_are_listed_newest_first_and_grids_are_not_searches(store: Store) -> None:
    store.enqueue_grid([BASE, BASE.replace(k=20)], name="a grid")
    first = store.create_search(_spec(), name="one")
    second = store.create_search(_spec(sampler="qmc"))
    assert [(s.id, s.name, s.spec.sampler, s.label) for s in store.searches()] == [
        (second, None, "qmc", f"search #{second}"), (first, "one", "random", f"search 'one' (#{first})")]
    assert store.get_search(str(second)).id == second


def test_importances_name_the_varied_parameters_once_two_trials_finished(store: Store) -> None:
    search = store.create_search(_spec(trials=4))
    first, second, third = (_claim(store) for _ in range(3))
    assert store.search_importances(search) == {}
    _finish(store, first, 1.1)
    assert store.search_importances(search) == {}
    _finish(store, second, 0.9)
    store.finish_run(third.id, "failed", error="diverged")

    shares = store.search_importances(search)

    assert set(shares) == {"lr", "k"}
    assert all(share >= 0 for share in shares.values()) and sum(shares.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("search, message", [
    (99, "no search with id 99"), ("99", "no search with id 99"), ("nope", "no search named 'nope'"),
    (2**70, "no search with id"), (1, "no search with id 1"),  # 1 is a grid's sweep, not a search
])
def test_an_unknown_search_is_one_line(store: Store, search: Any, message: str) -> None:
    store.enqueue_grid([BASE])
    for call in (store.get_search, store.search_trials, store.search_importances,
                 lambda s: store.set_search_state(s, "paused"), lambda s: store.extend_search(s, 1)):
        with pytest.raises(StoreError, match=message) as raised:
            call(search)
        assert "\n" not in str(raised.value)


def test_two_searches_of_one_name_need_the_id(store: Store) -> None:
    first, second = (store.create_search(_spec(), name="twin") for _ in range(2))
    with pytest.raises(StoreError, match=rf"2 searches are named 'twin' \(ids {first}, {second}\): give the id"):
        store.get_search("twin")
    assert store.get_search(second).name == "twin"


def test_a_bad_search_state_is_refused(store: Store) -> None:
    search = store.create_search(_spec())
    with pytest.raises(StoreError, match=r"^unknown search state 'finished': one of active, paused, stopped$"):
        store.set_search_state(search, "finished")
    assert store.get_search(search).state == "active"


def test_should_prune_is_false_for_a_run_that_is_no_trial(store: Store) -> None:
    run = store.start_run(BASE, device="cpu")
    assert store.should_prune(run.id) is False
    assert store.should_prune(10_000) is False


def test_a_trial_behind_the_others_is_pruned_at_the_first_rung(store: Store) -> None:
    # ASHA on 3 epochs compares trials after the first; with fewer than three to compare, only the
    # best goes on.
    store.create_search(_spec(trials=3, pruner="asha"))
    good, bad = _claim(store), _claim(store)
    store.record_epoch(good.id, 1, train_rmse=1.0, test_rmse=1.0, val_rmse=0.9, seconds=0.1)
    assert store.should_prune(good.id) is False
    store.record_epoch(bad.id, 1, train_rmse=2.0, test_rmse=2.0, val_rmse=2.5, seconds=0.1)
    assert store.should_prune(bad.id) is True
    # Behind the first, ahead of the second: pruned only if what the pruner noted on the first
    # (its value at the rung) was kept for the trials after it.
    third = _claim(store)
    store.record_epoch(third.id, 1, train_rmse=1.0, test_rmse=1.0, val_rmse=1.5, seconds=0.1)
    assert store.should_prune(third.id) is True
    assert store.get_run(good.id).status == RunStatus.RUNNING
