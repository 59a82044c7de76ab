"""What every group of store operations shares: the engine, the two kinds of transaction, and the
two ways of touching run rows inside one."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from store.errors import UnknownRunError
from store.tables import Run
from store.params import INT64_LIMIT


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

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
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
    run's status goes through here, so two processes racing for one run cannot both win."""
    result = session.execute(
        update(Run).where(Run.id == run_id, Run.status == expected_status).values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
