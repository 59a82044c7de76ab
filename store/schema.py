"""Creating and upgrading the schema.

A fresh database gets the current models (`create_all`) and is stamped with SCHEMA_VERSION. An older
database is brought forward by the functions in MIGRATIONS, one per version, in order. That is all
Alembic would do for a single-file app with one linear history, without its import cost at every
start or a second copy of the schema in revision files.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from sqlalchemy import Connection, Engine, func, insert, inspect, select, update
from sqlalchemy.schema import CreateColumn

from store import catalog
from store.errors import StoreError
from store.tables import Base, Epoch, QueueState, Run, RunLog, SchemaVersion, Sweep, Worker

SCHEMA_VERSION = 8

log = logging.getLogger("dmf.store")

# The PostgreSQL advisory lock that creating or upgrading the schema holds (a number of our choosing).
SCHEMA_LOCK = 0x646D665F73  # "dmf_s"


def _add_run_retries(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0")


# The hyperparameters that version 2 kept as columns and version 3 keeps in the JSON copy only.
_V2_JSON_ONLY = ("epochs", "seed", "split_seed", "test_size", "val_size", "patience", "device_request", "bias",
                 "dropout", "init_std")


def _columns_from_declarations(conn: Connection) -> None:
    """Version 3: a parameter is a column only where History sorts or filters on it (store/params.py
    says which), under its own name; the device a run ran on is `ran_on`. Every value is already in
    the JSON copy, so dropping the other columns loses nothing."""
    sqlite = conn.dialect.name == "sqlite"
    if sqlite and sqlite3.sqlite_version_info < (3, 35):
        raise StoreError(f"upgrading this database needs SQLite 3.35 or newer (this Python has "
                         f"{sqlite3.sqlite_version}): open it once with a newer Python")
    conn.exec_driver_sql("ALTER TABLE runs RENAME COLUMN dataset TO data")
    conn.exec_driver_sql("ALTER TABLE runs RENAME COLUMN device TO ran_on")
    for column in _V2_JSON_ONLY:
        conn.exec_driver_sql(f"ALTER TABLE runs DROP COLUMN {column}")


def _identities_archive_and_logs(conn: Connection) -> None:
    """Version 4: each run's dataset identity (filled in from its dataset spec), whether it is
    archived or dismissed, the leaderboard's index by dataset, and the table of run logs."""
    runs = Base.metadata.tables[Run.__tablename__]
    _add_columns(conn, Run, ("data_key", "archived", "dismissed"))
    for spec in conn.scalars(select(runs.c.data).distinct()).all():
        conn.execute(update(runs).where(runs.c.data == spec).values(data_key=_data_key(spec)))
    next(index for index in runs.indexes if index.name == "ix_runs_leaderboard_data").create(conn)
    Base.metadata.tables[RunLog.__tablename__].create(conn)


def _data_key(spec: str) -> str:
    """The identity of an old run's dataset; the spec itself where it cannot be worked out (a file
    this user may not read): an upgrade never fails over it."""
    try:
        return catalog.resolve(spec).key
    except Exception as error:  # any reason at all: the spec is a fair identity
        log.warning("dataset %r of an old run: identity not found (%s); using the spec", spec, error)
        return spec


def _searches(conn: Connection) -> None:
    """Version 5: a sweep can be a search (its spec, state, trial budget and sampler state), a run
    can be one of its trials. Grids and runs of before have NULL there; "pruned" needs no DDL."""
    _add_columns(conn, Sweep, ("search", "state", "trials", "study_attrs", "position"))
    _add_columns(conn, Run, ("trial", "trial_attrs"))


RANKING_COLUMNS = ("precision_at_10", "recall_at_10", "ndcg_at_10")


def _checkpoints_and_ranking(conn: Connection) -> None:
    """Version 6: a run's checkpoint file and its ranking metrics, an epoch's ranking metrics; NULL
    for every run of before (its checkpoint, if any, holds no id maps: see engine/checkpoint.py)."""
    _add_columns(conn, Run, ("checkpoint", *RANKING_COLUMNS))
    _add_columns(conn, Epoch, RANKING_COLUMNS)


def _packs(conn: Connection) -> None:
    """Version 7: the pack a run trained in (its first run's id and its size); NULL for every run of
    before, each of which trained alone."""
    _add_columns(conn, Run, ("pack_id", "pack_size"))


def _pid_spaces(conn: Connection) -> None:
    """Version 8: where each worker's pid names it (this boot of its machine, its pid namespace), so
    that a worker is judged by its pid only there; NULL for the workers of before, judged by their
    host name as they were."""
    _add_columns(conn, Worker, ("pid_space",))


def _add_columns(conn: Connection, model: type[Base], names: tuple[str, ...]) -> None:
    table = Base.metadata.tables[model.__tablename__]
    for name in names:
        # Spelt by SQLAlchemy from the model, so an upgraded table is the same as a fresh one.
        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN "
                             f"{CreateColumn(table.c[name]).compile(dialect=conn.dialect)}")


# The version of the first schema: MIGRATIONS lead from it to SCHEMA_VERSION.
OLDEST_VERSION = 1

# MIGRATIONS[n] upgrades a database at version n-1 to version n (plain DDL on the connection).
# Add one entry with each change to store/tables.py and raise SCHEMA_VERSION to match.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _add_run_retries,
    3: _columns_from_declarations,
    4: _identities_archive_and_logs,
    5: _searches,
    6: _checkpoints_and_ranking,
    7: _packs,
    8: _pid_spaces,
}


def prepare_schema(engine: Engine, writer: Engine, where: str, *, create: bool = True,
                   before_write: Callable[[], None] | None = None) -> None:
    """Make the database at `where` ready for this version of dmf-tui, or refuse it. An empty
    database gets the schema only if `create`; `before_write` runs once the database is known to
    be ours (or empty) and before anything is written to it.

    The common case (already current) is one read with no lock taken. Creating or upgrading runs in
    one write transaction that re-reads the version first, so two processes starting at once on a
    new file do the work once: the second waits for the first's lock and then finds it done.
    """
    with engine.connect() as conn:
        version = _read_version(conn, where)
    if version == SCHEMA_VERSION:
        return
    if version is None and not create:
        raise StoreError(f"no dmf-tui database at {where}")
    if before_write is not None:
        before_write()
    with writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            # What BEGIN IMMEDIATE does on SQLite: the second of two processes starting at once on a
            # new database waits here, then finds the work done.
            conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
        version = _read_version(conn, where)
        if version is None:
            Base.metadata.create_all(conn)
            conn.execute(insert(SchemaVersion).values(id=1, version=SCHEMA_VERSION))
            conn.execute(insert(QueueState).values(id=1, paused=False))
            return
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](conn)
        conn.execute(update(SchemaVersion).values(version=SCHEMA_VERSION))


def _read_version(conn: Connection, where: str) -> int | None:
    """The recorded version; None for an empty database. Refuses anything that is not ours."""
    tables = inspect(conn).get_table_names()
    if SchemaVersion.__tablename__ not in tables:
        if tables:
            raise StoreError(f"{where} is a database but not a dmf-tui one (tables: {', '.join(sorted(tables))})")
        return None
    version = conn.execute(select(SchemaVersion.version)).scalar()
    if not isinstance(version, int):
        raise StoreError(f"{where} is damaged: its schema version is {version!r}, not a number")
    if version < OLDEST_VERSION:
        raise StoreError(f"{where} has schema version {version}, older than any dmf-tui wrote "
                         f"(the first was {OLDEST_VERSION})")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {version}, newer than this dmf-tui understands "
            f"({SCHEMA_VERSION}); upgrade dmf-tui"
        )
    return version
