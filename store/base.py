"""The piece every group of store operations shares: the engine and the two kinds of transaction."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine
from sqlalchemy.orm import Session


class StoreBase:
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
