"""Where the database lives, how to connect to it, and the Store that everything else talks to.

Usage:
    store = open_store()            # $DMF_DB, else ~/.local/share/dmf-tui/runs.db
    run_id = store.enqueue(RunParams(model="deepmf"))
    for run in store.leaderboard(limit=10): ...

Open one Store per process (it holds a connection pool); it is safe to share between threads.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

from store.cleanup import CleanupOps
from store.errors import StoreError, database_error
from store.export import ExportOps
from store.logs import LogOps
from store.queries import QueryOps
from store.queue import QueueOps
from store.schema import prepare_schema
from store.searches import SearchOps
from store.snapshot import SnapshotOps
from store.workers import WorkerOps

# How long a writer waits for another process's write lock before giving up. Epoch writes are tiny,
# so this is only reached when something holds a transaction open for far too long.
BUSY_TIMEOUT_S = 30.0

# The pip extra (pyproject.toml) that brings the driver of each database server dmf-tui is tried on.
DRIVER_EXTRAS = {"postgresql": "postgres"}


class Store(QueueOps, WorkerOps, QueryOps, ExportOps, SnapshotOps, CleanupOps, LogOps, SearchOps):
    """All store operations; see store/queue.py, workers.py, queries.py, export.py, snapshot.py,
    cleanup.py, logs.py and searches.py."""


def app_data_dir() -> Path:
    """dmf-tui's folder in the user's data directory ($XDG_DATA_HOME, else ~/.local/share)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "dmf-tui"


def default_db_url() -> str:
    """$DMF_DB (a path or a SQLAlchemy URL), else runs.db in the XDG data directory. A DMF_DB that
    is empty or blank counts as unset, as an empty XDG_DATA_HOME does: `DMF_DB= dmf-tui` is how a
    shell line clears it."""
    chosen = os.environ.get("DMF_DB", "")
    return to_url(chosen if chosen.strip() else str(app_data_dir() / "runs.db"))


def resolve_url(db: str | None) -> str:
    """The URL of `db` (a path or a URL), or of the default database when None."""
    return default_db_url() if db is None else to_url(db)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for a database server or an in-memory database."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def to_url(db: str) -> str:
    """A SQLAlchemy URL as is; anything else is a path to a SQLite file."""
    if not db.strip():
        raise StoreError("the database path is empty (--db needs a file path or a URL)")
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().absolute()}"


def state_dir(db_url: str) -> Path:
    """Where the worker keeps its files (its log, the checkpoints): beside a SQLite database file, else
    in the user data dir."""
    file = sqlite_file(db_url)
    return file.expanduser().absolute().parent if file else app_data_dir()


def state_path(db_url: str, suffix: str) -> Path:
    """The worker's file or folder `suffix` for this database alone, so that two databases in one
    folder (runs.db and demo.db) never share a log or overwrite each other's run-1.pt: runs.db gets
    runs.db<suffix> beside it; a server database, <backend>-<hash of its URL><suffix> in the user
    data dir (the password is left out of the hash, so changing it keeps the same files)."""
    file = sqlite_file(db_url)
    if file is not None:
        name = file.name
    else:
        url = make_url(db_url)
        backend = url.get_backend_name()
        plain = _without_password(url.set(drivername=backend))
        name = f"{backend}-{hashlib.sha256(plain.encode()).hexdigest()[:12]}"
    return state_dir(db_url) / f"{name}{suffix}"


# The worker's folder of checkpoints for a database, state_path(url, CHECKPOINTS_SUFFIX): runs.db's
# are in runs.db.checkpoints/.
CHECKPOINTS_SUFFIX = ".checkpoints"


def checkpoint_file(directory: Path, run_id: int) -> Path:
    """Run `run_id`'s checkpoint in a folder of checkpoints (the worker's, or `dmf-tui run`'s)."""
    return directory / f"run-{run_id}.pt"


def private_dir(path: Path) -> None:
    """Create the folder `path` (and its parents) unless it exists; the folder itself is its owner's
    alone, whatever the umask, since what goes in it (runs, logs, errors) quotes the user's data."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return
    path.chmod(0o700)


def open_store(db: str | None = None, *, create: bool = True) -> Store:
    """Open the database `db` (a path or URL; None for the default), creating it unless `create`
    is false (the commands that only read say so rather than leave an empty database behind).

    Raises StoreError with one line when the URL is unusable, the database is missing and `create`
    is false, the file is not a dmf-tui database (nor a new, empty one), it is damaged, or it was
    written by a newer dmf-tui; nothing is written to it in those cases. A file this user may not
    write opens read-only (Store.read_only).
    """
    url = resolve_url(db)
    parsed = _parse(url)
    where = _describe(parsed)
    file = sqlite_file(url)
    if parsed.get_backend_name() == "sqlite" and file is None:
        raise StoreError(f"{url} is an in-memory database, which keeps nothing once dmf-tui exits: "
                         "give a file path")
    read_only = False
    if file is not None:
        if not _exists(file, where):
            if not create:
                raise StoreError(f"no dmf-tui database at {where}")
            _create_private_file(file, where)
        read_only = not os.access(file, os.W_OK)
    engine = _make_engine(parsed, file, where, read_only)
    store = Store(engine, url)
    store.read_only = read_only
    # Nothing is written (SQLite's switch to WAL included) before the file is known to be ours.
    before_write = None if file is None or read_only else lambda: _switch_to_wal(engine)
    try:
        prepare_schema(engine, store._writer, where, create=create, before_write=before_write)
    except (exc.DBAPIError, sqlite3.Error) as error:
        engine.dispose()
        reason = database_error(error)  # the driver's first line: a server's error adds hints below it
        if "file is not a database" in reason:
            raise StoreError(f"{where} is not a SQLite database") from None
        raise StoreError(f"cannot open database {where}: {reason}") from None
    except StoreError:
        engine.dispose()
        raise
    return store


def open_to_list(db: str | None = None) -> Store:
    """Open the database `db` for a command that lists what it holds (`runs`, `show`, `export`,
    `worker status`): it must exist, as nothing is created to be read, and the runs of workers that
    died are marked lost first, where the database can be written, so none is listed as running."""
    store = open_store(db, create=False)
    store.reap_lost_if_writable()
    return store


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (exc.ArgumentError, ValueError):
        raise StoreError(f"cannot read {url!r} as a database URL: give a file path, sqlite:///PATH "
                         "or a server URL such as postgresql://user@host/dbname") from None


def _describe(parsed: URL) -> str:
    """The database as a person would name it: the file path, or the URL without its password."""
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database
    return _without_password(parsed)


def describe(url: str) -> str:
    """_describe for a URL (or path) as open_store takes it: what messages call the database."""
    return _describe(_parse(resolve_url(url)))


def _without_password(url: URL) -> str:
    """The URL as text with its password masked (***), whether given before the host or, as libpq
    also takes it, as ?password=: either way the same text."""
    if "password" in url.query:
        url = url.difference_update_query(["password"]).set(password=url.password or "given")
    return url.render_as_string(hide_password=True)


def _exists(file: Path, where: str) -> bool:
    try:
        file.stat()
    except FileNotFoundError:
        return False
    except OSError as error:
        raise StoreError(f"cannot open database {where}: {error.strerror}") from None
    return True


def _create_private_file(file: Path, where: str) -> None:
    """Create the empty database file readable by its owner only. SQLite gives its -wal and -shm
    files the database file's mode, so they are private too."""
    try:
        private_dir(file.parent)
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another process created it a moment ago
    except OSError as error:
        raise StoreError(f"cannot create database {where}: {error.strerror}") from None


def _make_engine(parsed: URL, file: Path | None, where: str, read_only: bool) -> Engine:
    if file is None:
        if parsed.drivername == "postgresql":
            # The driver the [postgres] extra installs; SQLAlchemy 2.0 would look for psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except exc.NoSuchModuleError:
            raise StoreError(f"{where}: dmf-tui does not know databases of kind "
                             f"'{parsed.drivername}' (use a file path or postgresql://)") from None
        except ImportError as error:
            extra = DRIVER_EXTRAS.get(parsed.get_backend_name())
            hint = f"pip install 'dmf-tui[{extra}]'" if extra else f"install the Python module {error.name}"
            raise StoreError(f"{where} needs the driver {error.name}, which is not installed: {hint}") from None
    if read_only:
        parsed = _read_only_url(file)
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _on_sqlite_connect)
    if read_only:
        event.listen(engine, "begin", _refuse_writes(where))
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _read_only_url(file: Path) -> URL:
    """A URL that opens `file` without ever writing to it. A WAL database is read through its -shm
    file. While someone has it open, that file is there and is used; with none there, the database
    is read as immutable, a snapshot, which is what a backup or another user's closed database is:
    creating a -shm ourselves would leave a file in their folder that their own dmf-tui may not be
    allowed to write."""
    live = file.with_name(file.name + "-shm").exists()
    return URL.create("sqlite", database=f"file:{quote(str(file))}",
                      query={"mode": "ro", "uri": "true"} if live else {"immutable": "1", "uri": "true"})


def _refuse_writes(where: str) -> Callable[[Any], None]:
    def refuse(conn: Any) -> None:
        if conn.get_execution_options().get("begin") == "IMMEDIATE":
            raise StoreError(f"{where} is read-only for this user: nothing can be changed in it")
    return refuse


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN instead of the sqlite3 module, which would
    # otherwise start transactions lazily (and never as IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Settings of this connection only: none of them writes to the file.
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # NORMAL sync is durable across application crashes in WAL mode and saves an fsync per epoch.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(engine: Engine) -> None:
    """Turn on WAL, which lets the TUI read while a worker writes. It is stored in the file, so
    this runs once, when the schema is created or upgraded, never on a file that is not ours.

    Switching a file to WAL needs it to itself, and SQLite answers "database is locked" at once,
    without the busy timeout, when another connection is reading it at that moment: two processes
    opening a new database together hit this (tests/test_store_schema.py)."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    finally:
        connection.close()


def _on_sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('begin', 'DEFERRED')}")
