"""What every group of store operations shares: the engine, the two kinds of transaction, the three
ways of touching run rows inside one, the queue's last place, and the database's clock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Delete, Engine, Update, func, select, update
from sqlalchemy.orm import Session

from store.errors import ClaimLostError, StoreError, UnknownRunError
from store.params import INT64_LIMIT
from store.status import RunStatus, check_transition
from store.tables import Run, Sweep

if TYPE_CHECKING:
    from typing_extensions import Self  # in typing from Python 3.11


class StoreBase:
    # Set (by open_store) when the file is one this user may not write (another user's, a backup):
    # reads work and every write raises StoreError, so what would write in passing skips it.
    read_only = False

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        # On SQLite the "begin" hook in store/db.py reads this option and emits BEGIN IMMEDIATE, so
        # a write transaction holds the write lock from its first statement: it either waits (busy
        # timeout) or proceeds, and never fails half-way when upgrading a read lock.
        self._writer = engine.execution_options(begin="IMMEDIATE")

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A read-only snapshot (in WAL mode readers never wait for writers)."""
        with Session(self.engine) as session, session.begin():
            yield session

    def database_now(self) -> datetime:
        """The database's clock now (see database_now below): what heartbeats are measured against."""
        with self._read() as session:
            return database_now(session)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def load_runs(session: Session, run_ids: Iterable[int]) -> list[Run]:
    """The runs with these ids, in the order given; UnknownRunError (before any change) otherwise."""
    ids = list(dict.fromkeys(run_ids))
    # An id beyond 64 bits cannot be bound to a query (OverflowError), nor can a run have it.
    possible = [i for i in ids if -INT64_LIMIT <= i < INT64_LIMIT]
    found = {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(possible)))}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        noun = "run with id" if len(missing) == 1 else "runs with ids"
        raise UnknownRunError(f"no {noun} {', '.join(missing)}")
    return [found[i] for i in ids]


def change_run(session: Session, run_id: int, expected_status: str, **values: object) -> bool:
    """Update the run only if it still has `expected_status`; whether it did. Every change of a
    run's status goes through here (or through the worker's fenced writes in store/queue.py), so
    two processes racing for one run cannot both win, and a change that store/status.py's table
    does not allow raises TransitionError before anything is written."""
    if "status" in values:
        check_transition(expected_status, str(values["status"]), run_id=run_id)
    return updated_rows(session, update(Run).where(Run.id == run_id, Run.status == expected_status)
                        .values(**values).execution_options(synchronize_session=False)) == 1


def updated_rows(session: Session, statement: Update | Delete) -> int:
    """Run an UPDATE or DELETE; how many rows it changed."""
    # Their result is a CursorResult, which has rowcount, but Session.execute is typed to return
    # the plain Result of any statement.
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def database_now(session: Session) -> datetime:
    """The database's clock now, as an aware UTC datetime. Heartbeats are written and judged with
    it, so workers on several machines that share one database server agree on how old a heartbeat
    is whatever their own clocks say. (SQLite has no server: there it is the clock of the machine
    that asks, which is the one machine a SQLite file is used from.)"""
    if session.get_bind().dialect.name == "sqlite":
        # CURRENT_TIMESTAMP would drop the fraction of a second.
        text: str | None = session.scalar(select(func.strftime("%Y-%m-%d %H:%M:%f", "now")))
        assert text is not None  # a SELECT without FROM returns its one row
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    # PostgreSQL: the start of this transaction, a timestamp with its zone.
    now: datetime | None = session.scalar(select(func.now()))
    assert now is not None  # a SELECT without FROM returns its one row
    return now.astimezone(timezone.utc) if now.tzinfo else now.replace(tzinfo=timezone.utc)


def change_claimed(session: Session, run_id: int, worker_id: int | None, **values: object) -> None:
    """Update a run only while it is running under `worker_id` (under any worker when None).
    A new status in `values` must be one a running run may take (TransitionError)."""
    new_status = values.get("status")
    if new_status is not None:
        check_transition(RunStatus.RUNNING, str(new_status), run_id=run_id)
    held = [Run.id == run_id, Run.status == RunStatus.RUNNING]
    if worker_id is not None:
        held.append(Run.worker_id == worker_id)
    updated = updated_rows(
        session, update(Run).where(*held).values(**values).execution_options(synchronize_session=False)
    )
    if updated == 1:
        return
    found = session.execute(select(Run.status, Run.worker_id).where(Run.id == run_id)).one_or_none()
    if found is None:
        raise UnknownRunError(f"no run with id {run_id}")
    status, holder = found
    if status == RunStatus.RUNNING:
        raise ClaimLostError(f"run {run_id} is running under worker {holder}, not worker {worker_id}")
    when = "not yet" if status == RunStatus.QUEUED else "no longer"
    cannot = f": it cannot become {new_status}" if new_status is not None else ""
    raise ClaimLostError(f"run {run_id} is {status}, {when} running{cannot}")


def last_position(session: Session) -> int:
    """The last place in the queue yet given, to a run or a search. New runs and searches go after it,
    so places only grow and never collide: the queue's order is held until the transaction ends."""
    hold_queue_order(session)
    runs = session.scalar(select(func.max(Run.position))) or 0
    searches = session.scalar(select(func.max(Sweep.position))) or 0
    return max(runs, searches)


# The PostgreSQL advisory lock (a number of our choosing, the same in every process) that stands for
# the order of the queue.
QUEUE_ORDER_LOCK = 0x646D665F71  # "dmf_q"


def hold_queue_order(session: Session) -> None:
    """Hold the queue's order until the transaction ends: what gives out new places or deals them out
    again does so one transaction at a time, as every write is on SQLite. A server database lets
    writers run side by side, and two enqueues reading the same last place would give out the same
    one. Claims never take it: they take runs, and never wait on each other (store/queue.py)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(QUEUE_ORDER_LOCK)))


def find_sweep(session: Session, ref: int | str, *, searches_only: bool = False) -> Sweep:
    """The sweep (or, with `searches_only`, the search) with this id or name: a name of digits that
    none has is taken as an id. StoreError, in one line, for none or for a name several share."""
    noun, nouns = ("search", "searches") if searches_only else ("sweep", "sweeps")
    kind = [Sweep.search.is_not(None)] if searches_only else []
    if isinstance(ref, str):
        named = list(session.scalars(select(Sweep).where(Sweep.name == ref, *kind).order_by(Sweep.id)))
        if len(named) > 1:
            raise StoreError(f"{len(named)} {nouns} are named {ref!r} (ids "
                             f"{', '.join(str(s.id) for s in named)}): give the id")
        if named:
            return named[0]
        if not ref.strip().isdigit():
            raise StoreError(f"no {noun} named {ref!r}")
        ref = int(ref)
    # An id beyond 64 bits cannot be bound to a query, nor can a sweep have it.
    sweep = session.get(Sweep, ref) if -INT64_LIMIT <= ref < INT64_LIMIT else None
    if sweep is None or (searches_only and sweep.search is None):
        raise StoreError(f"no {noun} with id {ref}")
    return sweep
