"""A search holds a place in the queue, as a grid's runs do: workers take what was queued before it,
then its trials until its budget is asked, then what was queued after it."""

from __future__ import annotations

import pytest

from store import study
from store.db import Store
from store.params import RunParams
from store.search import parse_search
from store.tables import Run

pytestmark = pytest.mark.backends

BASE = RunParams(data="synthetic-100k", epochs=2, device="cpu")


def _search(store: Store, trials: int) -> int:
    return store.create_search(parse_search({"lr": "1e-3..1e-2:log"}, BASE, trials=trials))


def _claimed(store: Store, worker: int, n: int) -> list[tuple[int | None, int | None]]:
    """(sweep id, trial number) of the next n claims; (None, None) once nothing is left."""
    out: list[tuple[int | None, int | None]] = []
    for _ in range(n):
        run = store.claim(worker, device="cpu")
        out.append((None, None) if run is None else (run.sweep_id, run.trial))
    return out


def test_runs_before_a_search_go_first_and_runs_after_it_wait_for_its_trials(store: Store) -> None:
    worker = store.register_worker(pid=1, host="h", devices=["cpu"], slots=1)
    before, _ = store.enqueue_grid([BASE.replace(k=4)], name="before")
    search = _search(store, trials=2)
    after, _ = store.enqueue_grid([BASE.replace(k=5)], name="after")

    assert _claimed(store, worker, 5) == [(before, None), (search, 1), (search, 2), (after, None), (None, None)]


def test_a_paused_search_lets_the_runs_after_it_go(store: Store) -> None:
    worker = store.register_worker(pid=1, host="h", devices=["cpu"], slots=1)
    search = _search(store, trials=1)
    after, _ = store.enqueue_grid([BASE.replace(k=5)], name="after")
    store.set_search_state(search, "paused")

    assert _claimed(store, worker, 2) == [(after, None), (None, None)]
    store.set_search_state(search, "active")
    assert _claimed(store, worker, 2) == [(search, 1), (None, None)]


def test_an_interrupted_trial_runs_again_before_new_trials_are_asked(store: Store) -> None:
    worker = store.register_worker(pid=1, host="h", devices=["cpu"], slots=1)
    search = _search(store, trials=2)
    first = store.claim(worker, device="cpu")
    assert first is not None and first.trial == 1
    again = store.finish_run(first.id, "interrupted", error="stopped", worker_id=worker)

    assert again is not None and store.get_run(again).trial == 1
    assert _claimed(store, worker, 3) == [(search, 1), (search, 2), (None, None)]
    assert store.get_search(search).asked == 2


def test_a_sampler_that_fails_stops_its_search_with_a_trial_saying_why(store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    worker = store.register_worker(pid=1, host="h", devices=["cpu"], slots=1)
    search = _search(store, trials=3)
    _, (run_after,) = store.enqueue_grid([BASE.replace(k=5)], name="after")

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("no sampler today")

    monkeypatch.setattr(study, "ask", broken)
    claimed = store.claim(worker, device="cpu")

    # The worker goes on with the queue; the search says why it stopped.
    assert claimed is not None and claimed.id == run_after
    record = store.get_search(search)
    assert (record.phase, record.counts) == ("stopped", {"failed": 1})
    (trial,) = store.search_trials(search)
    assert trial.error == ("the search's sampler failed, so the search was stopped: RuntimeError: "
                           "no sampler today")


def test_a_trial_run_again_keeps_the_samplers_notes_but_not_the_pruners_rungs(store: Store) -> None:
    worker = store.register_worker(pid=1, host="h", devices=["cpu"], slots=1)
    _search(store, trials=1)
    first = store.claim(worker, device="cpu")
    assert first is not None
    with store._write() as session:
        session.get_one(Run, first.id).trial_attrs = {"grid_id": 3, "completed_rung_0": 0.9}
    again = store.finish_run(first.id, "interrupted", worker_id=worker)

    with store._read() as session:
        assert session.get_one(Run, again).trial_attrs == {"grid_id": 3}
