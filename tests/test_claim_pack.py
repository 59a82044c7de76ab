"""Claiming packs (store/queue.py claim_pack): the first queued run, as claim() takes it, and the queued
runs and search trials that can train with it in one batched model (the same RunParams.pack_key), all
running under one worker in one transaction; what each run records of its pack; and each run of a
pack still lost, fenced and reaped on its own. No training here: a test plays the worker."""

from __future__ import annotations

import multiprocessing
import os
import socket
from typing import Any

import pytest

from store import queue
from store.db import Store, open_store
from store.errors import ClaimLostError, ParamError
from store.params import RunParams
from store.records import RunRecord
from store.search import parse_search
from tests.processes import dead_pid

pytestmark = pytest.mark.backends

# With a validation split, as a search's trials have: queued runs and trials can pack together.
BASE = RunParams(data="synthetic-100k", epochs=3, device="cpu", val_size=0.1)


def _lrs(count: int, **changes: Any) -> list[RunParams]:
    """`count` runs of BASE (with `changes`) that differ only in their learning rate: one pack."""
    return [BASE.replace(lr=10.0 ** -(i + 2), **changes) for i in range(count)]


def _ids(pack: list[RunRecord]) -> list[int]:
    return [run.id for run in pack]


def _packs(store: Store, limit: int, worker_id: int | None = None) -> list[list[int]]:
    """Claim packs of at most `limit` runs until the queue is empty: their run ids, claim by claim."""
    packs = []
    while pack := store.claim_pack(worker_id, device="cpu", limit=limit):
        packs.append(_ids(pack))
    return packs


def test_compatible_runs_pack_in_queue_order_up_to_the_limit(store: Store) -> None:
    worker = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices=["cpu"], slots=1)
    _, ids = store.enqueue_grid([*_lrs(3, weight_decay=0.0), *_lrs(2, weight_decay=1e-4)])

    first = store.claim_pack(worker, device="cuda:0", limit=3)

    assert _ids(first) == ids[:3]
    assert {(run.status, run.worker_id, run.ran_on, run.pack_id, run.pack_size) for run in first} == {
        ("running", worker, "cuda:0", ids[0], 3)}
    assert all(run.started_at is not None for run in first)
    assert [store.get_run(i).pack_id for i in ids] == [ids[0]] * 3 + [None, None]  # recorded, not only returned
    second = store.claim_pack(worker, device="cpu", limit=3)
    assert (_ids(second), {(run.pack_id, run.pack_size) for run in second}) == (ids[3:], {(ids[3], 2)})
    assert store.claim_pack(worker, device="cpu", limit=3) == []


@pytest.mark.parametrize("other", [
    {"k": 20}, {"model": "deepmf"}, {"bias": True}, {"batch_size": 256}, {"data": "synthetic-1m"},
    {"optimizer": "sgd"}, {"model": "deepmf", "dropout": 0.1}, {"model": "autorec"},
], ids=lambda changes: ",".join(f"{name}={value}" for name, value in changes.items()))
def test_runs_that_cannot_train_together_are_left_queued_and_claimed_later(
        store: Store, other: dict[str, Any]) -> None:
    (first, second), (other_first, other_second) = _lrs(2), _lrs(2, **other)
    a, x, b, y = (store.enqueue(params) for params in (first, other_first, second, other_second))
    alone = BASE.replace(**other).pack_key() is None

    packs = _packs(store, limit=4)

    # A's pack passes X by; X and Y then pack together, unless runs like them train alone.
    assert packs == ([[a, b], [x], [y]] if alone else [[a, b], [x, y]])
    assert {store.get_run(i).pack_id for i in (x, y)} == ({None} if alone else {x})


def test_a_run_that_trains_alone_packs_with_nothing(store: Store) -> None:
    first, *rest = (store.enqueue(params) for params in _lrs(3, optimizer="adagrad"))
    assert _packs(store, limit=8) == [[first], *([i] for i in rest)]


def test_a_paused_search_keeps_its_queued_trials_out_of_packs(store: Store) -> None:
    search = store.create_search(parse_search({"lr": "1e-4..1e-1:log"}, BASE, trials=2, sampler="random",
                                              pruner="none"))
    (trial,) = store.claim_pack(None, device="cpu", limit=1)
    again = store.finish_run(trial.id, "interrupted")  # queued again at its search's place, before the runs below
    assert again is not None
    store.set_search_state(search, "paused")
    runs = [store.enqueue(params) for params in _lrs(2)]

    assert _packs(store, limit=4) == [runs]
    assert store.get_run(again).status == "queued"
    store.set_search_state(search, "active")
    pack = store.claim_pack(None, device="cpu", limit=4)
    assert [(run.id, run.trial) for run in pack] == [(again, 1), (pack[1].id, 2)]  # its next trial joins it


def test_limit_one_claims_as_claim_does(store: Store) -> None:
    ids = [store.enqueue(params) for params in _lrs(3)]

    (first,) = store.claim_pack(None, device="cpu", limit=1)
    second = store.claim(None, device="cpu")

    assert second is not None
    assert [(run.id, run.status, run.pack_id, run.pack_size) for run in (first, second)] == [
        (ids[0], "running", None, None), (ids[1], "running", None, None)]


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_a_limit_below_one_run_is_refused(store: Store, limit: Any) -> None:
    run = store.enqueue(BASE)
    with pytest.raises(ParamError, match="limit must be a whole number >= 1"):
        store.claim_pack(None, device="cpu", limit=limit)
    assert store.get_run(run).status == "queued"


def test_a_claim_looks_for_pack_mates_only_among_the_next_runs_of_the_queue(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue, "PACK_WINDOW", 2)
    first, second = _lrs(2)
    a, x1, x2, b = (store.enqueue(params) for params in (first, BASE.replace(k=20), BASE.replace(k=30), second))
    assert _packs(store, limit=4) == [[a], [x1], [x2], [b]]


# --- search trials -------------------------------------------------------------------------------

def test_a_search_packs_its_trials_then_the_queued_runs_after_it(store: Store) -> None:
    search = store.create_search(parse_search({"lr": "1e-4..1e-1:log"}, BASE, trials=3, sampler="random",
                                              pruner="none"))
    after = [store.enqueue(params) for params in _lrs(2)]

    pack = store.claim_pack(None, device="cpu", limit=4)

    assert [(run.sweep_id, run.trial) for run in pack[:3]] == [(search, 1), (search, 2), (search, 3)]
    assert _ids(pack)[3:] == after[:1]
    assert len({run.params.lr for run in pack[:3]}) == 3  # three trials, three draws
    assert {(run.status, run.pack_id, run.pack_size) for run in pack} == {("running", pack[0].id, 4)}
    assert store.get_search(search).asked == 3
    assert _packs(store, limit=4) == [after[1:]]


def test_a_trial_that_cannot_join_the_pack_is_queued_first_and_claimed_next(store: Store) -> None:
    # A grid over k: the second trial is sure to draw the k the first did not.
    search = store.create_search(parse_search({"k": "8,16"}, BASE, trials=2, sampler="grid", pruner="none"))
    later = store.enqueue(BASE.replace(k=12))

    (first,) = store.claim_pack(None, device="cpu", limit=4)

    (_, second) = store.search_trials(search)
    assert (first.trial, second.trial, second.status, second.worker_id) == (1, 2, "queued", None)
    assert {first.params.k, second.params.k} == {8, 16}
    queued_after = store.get_run(later).position
    assert second.position is not None and queued_after is not None and second.position < queued_after
    assert _packs(store, limit=4) == [[second.id], [later]]  # before the run queued after its search
    assert store.get_search(search).asked == 2


def test_a_queued_trial_of_the_search_joins_its_pack_after_the_trials_asked(store: Store) -> None:
    search = store.create_search(parse_search({"lr": "1e-4..1e-1:log"}, BASE, trials=3, sampler="random",
                                              pruner="none"))
    (trial,) = store.claim_pack(None, device="cpu", limit=1)
    again = store.finish_run(trial.id, "interrupted")
    assert again is not None
    ahead = store.enqueue(BASE)
    store.move(again, 1)  # behind `ahead`, so the search's next trial comes first
    store.cancel([ahead])

    pack = store.claim_pack(None, device="cpu", limit=4)

    assert [(run.trial, run.status) for run in pack] == [(2, "running"), (3, "running"), (1, "running")]
    assert pack[2].id == again
    assert [run.sweep_id for run in pack] == [search] * 3


# --- each run of a pack is its own run ----------------------------------------------------------------

def test_a_dead_workers_pack_is_lost_run_by_run(store: Store) -> None:
    worker = store.register_worker(pid=dead_pid(), host=socket.gethostname(), devices=["cpu"], slots=1)
    _, ids = store.enqueue_grid(_lrs(3))
    store.claim_pack(worker, device="cpu", limit=3)
    store.record_epoch(ids[1], 1, train_rmse=1.0, test_rmse=1.1, seconds=0.1, worker_id=worker)

    assert sorted(store.reap_lost(grace_s=3600)) == ids

    runs = [store.get_run(i) for i in ids]
    assert {(run.status, run.pack_id, run.pack_size) for run in runs} == {("lost", ids[0], 3)}
    assert [len(store.epochs(i)) for i in ids] == [0, 1, 0]


def test_each_run_of_a_pack_is_fenced_to_its_worker(store: Store) -> None:
    worker = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices=["cpu"], slots=1)
    other = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices=["cpu"], slots=1)
    _, ids = store.enqueue_grid(_lrs(3))
    store.claim_pack(worker, device="cpu", limit=3)

    for run_id in ids:
        with pytest.raises(ClaimLostError, match=f"run {run_id} is running under worker {worker}"):
            store.record_epoch(run_id, 1, train_rmse=1.0, test_rmse=1.0, seconds=0.1, worker_id=other)
    store.finish_run(ids[1], "cancelled", worker_id=worker)  # one run ends; the others hold
    with pytest.raises(ClaimLostError, match=f"run {ids[1]} is cancelled"):
        store.record_epoch(ids[1], 1, train_rmse=1.0, test_rmse=1.0, seconds=0.1, worker_id=worker)
    store.record_epoch(ids[2], 1, train_rmse=1.0, test_rmse=1.0, seconds=0.1, worker_id=worker)
    assert [len(store.epochs(i)) for i in ids] == [0, 0, 1]


def _claim_packs(path: str, barrier: Any, results: Any) -> None:
    store = open_store(path)
    barrier.wait()
    results.put([[(run.id, run.pack_id, run.pack_size) for run in pack] for pack in
                 iter(lambda: store.claim_pack(None, device="cpu", limit=3), [])])
    store.close()


def test_two_processes_claiming_packs_never_share_a_run(db: str) -> None:
    path = db
    with open_store(path) as store:
        # Two kinds of run, interleaved, so packs are gathered from across the queue.
        _, ids = store.enqueue_grid([params for pair in zip(_lrs(10), _lrs(10, k=20)) for params in pair])
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_claim_packs, args=(path, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    packs = [pack for _ in procs for pack in results.get(timeout=60)]
    for p in procs:
        p.join(60)

    taken = [run_id for pack in packs for run_id, _, _ in pack]
    assert sorted(taken) == ids  # every run once, none twice
    for pack in packs:
        first = pack[0][0]
        expected = (first, len(pack)) if len(pack) > 1 else (None, None)
        assert {(pack_id, size) for _, pack_id, size in pack} == {expected}
    with open_store(path) as store:
        kinds = [{store.get_run(run_id).params.k for run_id, _, _ in pack} for pack in packs]
        assert all(len(k) == 1 for k in kinds)
        assert store.status_counts()["running"] == 20
