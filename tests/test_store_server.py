"""What a database server changes: writers run side by side there, where SQLite takes them one at a
time. Claims skip what other claims hold instead of waiting for it; what gives out places in the
queue still go one at a time; times stay UTC whatever the server's zone. The rest of the store's
tests run on both backends (`pytest.mark.backends`), creating the schema at once in
tests/test_store_schema.py among them."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, select, text

from store.db import Store, open_store
from store.params import RunParams
from store.search import parse_search
from store.tables import Run, Sweep


@pytest.fixture
def server_store(pg_db: str) -> Iterator[Store]:
    with open_store(pg_db) as opened:
        yield opened


@pytest.fixture
def other(pg_db: str, server_store: Store) -> Iterator[Connection]:
    """A second connection to the database, as another machine's process would have."""
    engine = create_engine(pg_db)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def _without_waiting(call: Callable[[], Any]) -> Any:
    """`call()`'s result, failing the test if it is still waiting after a long while (it would be
    waiting on a lock that is only released once the test goes on)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the call waited on a lock another transaction holds"
    return result[0]


def test_a_claim_takes_the_next_run_while_another_claim_holds_the_first(server_store: Store,
                                                                      other: Connection) -> None:
    first, second = (server_store.enqueue(RunParams(seed=seed)) for seed in (1, 2))
    with other.begin():
        other.execute(select(Run.id).where(Run.id == first).with_for_update())  # another claim's, mid-way

        claimed = _without_waiting(lambda: server_store.claim(None, device="cpu"))

        assert claimed is not None and claimed.id == second
    # Released (that claim gave up): the first is there to take.
    again = server_store.claim(None, device="cpu")
    assert again is not None and again.id == first


def test_a_pack_gathers_only_runs_no_other_claim_holds(server_store: Store, other: Connection) -> None:
    ids = [server_store.enqueue(RunParams(lr=lr)) for lr in (1e-3, 2e-3, 3e-3, 4e-3)]
    with other.begin():
        other.execute(select(Run.id).where(Run.id.in_(ids[1:3])).with_for_update())

        pack = _without_waiting(lambda: server_store.claim_pack(None, device="cpu", limit=8))

        assert [run.id for run in pack] == [ids[0], ids[3]]
    assert [run.id for run in server_store.claim_pack(None, device="cpu", limit=8)] == ids[1:3]


def test_a_search_another_claim_is_asking_is_passed_over_for_the_runs_after_it(server_store: Store,
                                                                              other: Connection) -> None:
    search = server_store.create_search(parse_search({"lr": "1e-3..1e-2:log"}, RunParams(), trials=4, seed=1))
    after = server_store.enqueue(RunParams())
    with other.begin():
        other.execute(select(Sweep.id).where(Sweep.id == search).with_for_update())  # asking it, mid-way

        claimed = _without_waiting(lambda: server_store.claim(None, device="cpu"))

        assert claimed is not None and claimed.id == after
    trial = server_store.claim(None, device="cpu")
    assert trial is not None and (trial.sweep_id, trial.trial) == (search, 1)


def _enqueue_many(url: str, barrier: Any, count: int) -> None:
    store = open_store(url)
    barrier.wait()
    for _ in range(count):
        store.enqueue(RunParams())
    store.close()


def test_runs_queued_side_by_side_get_places_of_their_own(server_store: Store, pg_db: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_enqueue_many, args=(pg_db, barrier, 40)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    positions = [run.position for run in server_store.queue()]
    assert len(positions) == 120 and len(set(positions)) == 120


def test_times_are_utc_whatever_the_servers_zone(pg_db: str) -> None:
    engine = create_engine(pg_db)
    with engine.begin() as conn:
        database = conn.execute(text("select current_database()")).scalar()
        conn.execute(text(f'alter database "{database}" set timezone to \'Pacific/Kiritimati\''))  # UTC+14
    engine.dispose()
    with open_store(pg_db) as store:
        worker = store.register_worker(pid=1, host="elsewhere", devices="cpu", slots=1)
        run = store.start_run(RunParams(), worker_id=worker, device="cpu")
        now = store.database_now()
        (record,) = store.workers()
        assert abs(record.heartbeat_at - now) < timedelta(minutes=1)
        started = store.get_run(run.id).started_at
        assert started is not None and abs(started - now) < timedelta(minutes=1)
        assert record.state == "running"  # not 14 hours silent
