"""Where the database lives, how to connect to it, and the Store that everything else talks to.

Usage:
    store = open_store()            # $DMF_DB, else ~/.local/share/dmf-tui/runs.db
    run_id = store.enqueue(RunParams(model="deepmf"))
    for run in store.leaderboard(limit=10): ...

Open one Store per process (it holds a connection pool); it is safe to share between threads.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from store.errors import StoreError
from store.export import ExportOps
from store.queries import QueryOps
from store.queue import QueueOps
from store.schema import prepare_schema
from store.workers import WorkerOps

# How long a writer waits for another process's write lock before giving up. Epoch writes are tiny,
# so this is only reached when something holds a transaction open for far too long.
BUSY_TIMEOUT_S = 30.0


class Store(QueueOps, WorkerOps, QueryOps, ExportOps):
    """All store operations; see store/queue.py, workers.py, queries.py and export.py."""


def app_data_dir() -> Path:
    """dmf-tui's folder in the user's data directory ($XDG_DATA_HOME, else ~/.local/share)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "dmf-tui"


def default_db_url() -> str:
    """$DMF_DB (a path or a SQLAlchemy URL), else runs.db in the XDG data directory."""
    return to_url(os.environ.get("DMF_DB") or str(app_data_dir() / "runs.db"))


def resolve_url(db: str | None) -> str:
    """The URL of `db` (a path or a URL), or of the default database when None."""
    return to_url(db) if db else default_db_url()


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for a database server or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def to_url(db: str) -> str:
    """A SQLAlchemy URL as is; anything else is a path to a SQLite file."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().absolute()}"


def open_store(db: str | None = None) -> Store:
    """Open (creating if needed) the database `db` (a path or URL; None for the default).

    Raises StoreError with one line when the file is not a SQLite database, cannot be opened, or was
    written by a newer dmf-tui; nothing is written to it in those cases.
    """
    url = resolve_url(db)
    where = _describe(url)
    engine = _make_engine(url, where)
    store = Store(engine, url)
    try:
        prepare_schema(engine, store._writer, where)
    except exc.DBAPIError as error:
        engine.dispose()
        reason = str(error.orig).strip() or type(error.orig).__name__
        if "file is not a database" in reason:
            raise StoreError(f"{where} is not a SQLite database") from None
        raise StoreError(f"cannot open database {where}: {reason}") from None
    except StoreError:
        engine.dispose()
        raise
    return store


def _describe(url: str) -> str:
    """The database as a person would name it: the file path, or the URL without its password."""
    file = sqlite_file(url)
    return str(file) if file else make_url(url).render_as_string(hide_password=True)


def _make_engine(url: str, where: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    file = sqlite_file(url)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the directory for {where}: {error.strerror}") from None
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN instead of the sqlite3 module, which would
    # otherwise start transactions lazily (and never as IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # WAL lets the TUI read while a worker writes; it is stored in the file, so this is a no-op
        # after the first time. NORMAL sync is durable across application crashes in WAL mode and
        # saves an fsync per epoch.
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Turn on WAL, waiting out other processes that hold the new file. Switching a file to WAL
    needs it to itself, and SQLite answers "database is locked" at once, without the busy timeout,
    when another connection is reading it at that moment: two processes opening a new database
    together hit this (tests/test_store_schema.py)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _on_sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('begin', 'DEFERRED')}")
