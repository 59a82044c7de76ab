"""Copying a whole history from one database to another (`dmf-tui db copy SRC DST`), for example from
a laptop's SQLite file into a lab's PostgreSQL server.

Every table of store/tables.py is copied, row by row and column by column, so a column added to the
schema later is copied without a change here: the history's tables (workers, sweeps and searches,
runs, epochs, run logs) and the queue's paused switch. The schema's version is not copied: opening
both databases has already brought them to this dmf-tui's.

Ids. Into an empty destination every row keeps its id, so run #12 is #12 in both. Into one that
already holds a history (only with `merge`), DST gives each copied row a new id, as it does to any
new row, and every reference to it (a run's sweep, worker and pack, an epoch's run, a log line's
run) follows; the copied queue (runs and searches alike) keeps its order, after DST's last place.

What is not the history as it was. A run that is running in SRC is copied as lost: its worker
belongs to SRC and goes on writing there, never in DST, so in DST it would wait for ever, and a
worker of DST would find it lost anyway (and could queue it again, training it twice). Its error and
a line of its log say so; `retry` queues it again in DST when wanted. SRC's workers are copied (a
run names the worker it ran on) as stopped, since none of them serves DST. Checkpoint files stay
where they are: a run's `checkpoint` is the path its worker wrote, which DST's machines may not see.

One transaction on DST: a failure part-way leaves DST as it was. SRC is only read, in one snapshot,
in chunks, so a long history never has to fit in memory at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import JSON, Connection, Table, bindparam, func, insert, null, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from store.base import database_now, last_position
from store.db import Store, describe, sqlite_file
from store.errors import StoreError
from store.status import RunStatus
from store.tables import Base, Epoch, QueueState, Run, RunLog, SchemaVersion, Sweep, Worker

# The tables that hold settings rather than history: one row each, which every database has.
SETTINGS_TABLES = (SchemaVersion.__tablename__, QueueState.__tablename__)

# The history's tables, parents before children, so that a row's references exist when it is written.
HISTORY_TABLES: tuple[Table, ...] = tuple(
    table for table in Base.metadata.sorted_tables if table.name not in SETTINGS_TABLES)

# The queue's places: shared by runs and searches, which are claimed in one order.
_POSITIONS = (Run.__table__.c.position, Sweep.__table__.c.position)

T = TypeVar("T")

# Rows read from SRC and written to DST at a time.
CHUNK_ROWS = 1000


@dataclass(frozen=True)
class CopyReport:
    """What a copy wrote into DST."""

    runs: int
    epochs: int
    sweeps: int  # grids: the sweeps that are not searches
    searches: int
    log_lines: int  # copied from SRC; the lines added to runs copied as lost are not counted
    workers: int
    running_as_lost: int  # runs running in SRC, copied as lost
    checkpoints: int  # runs that name a checkpoint file (the files themselves are not copied)
    merged: bool  # DST held a history already: the copied rows have new ids
    first_run_id: int | None  # DST's id of SRC's first run (None when no run was copied)


def same_database(first: str, second: str) -> bool:
    """Whether two URLs (as store.db.resolve_url gives them) name one database: one file, however
    reached, or one server database, whatever the driver or the user."""
    file_a, file_b = sqlite_file(first), sqlite_file(second)
    if file_a is not None or file_b is not None:
        if file_a is None or file_b is None:
            return False
        try:
            return os.path.samefile(file_a, file_b)
        except OSError:  # one does not exist yet: compare the paths themselves
            return file_a.resolve() == file_b.resolve()
    url_a, url_b = make_url(first), make_url(second)
    return (url_a.get_backend_name(), url_a.host, url_a.port, url_a.database) == (
        url_b.get_backend_name(), url_b.host, url_b.port, url_b.database)


def copy_history(source: Store, destination: Store, *, merge: bool = False,
                 chunk_rows: int = CHUNK_ROWS) -> CopyReport:
    """Copy everything in `source` into `destination` (see the module docstring). Without `merge`,
    a destination that already holds any history is refused (StoreError), with nothing written."""
    if same_database(source.url, destination.url):
        raise StoreError("the source and the destination are the same database")
    with _snapshot(source) as src, destination._write() as session:
        dst = session.connection()
        held = _history_counts(dst)
        if not held and dst.dialect.name == "postgresql":
            # Into an empty destination the copy keeps SRC's ids: until it commits, nobody else may add
            # rows (and take those ids, or mix into it); then look again, past what came in meanwhile.
            # A merge takes no lock: DST numbers its rows, as anyone's, and DST's workers go on.
            names = ", ".join(table.name for table in HISTORY_TABLES)
            dst.exec_driver_sql(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")
            held = _history_counts(dst)
        if held and not merge:
            raise StoreError(f"the destination already holds a history ({', '.join(held)}): add --merge "
                             "to add the source's to it (the copied rows then get new ids)")
        copier = _Copier(src, session, source_name=describe(source.url), merge=bool(held), chunk_rows=chunk_rows)
        report = copier.copy()
        if not held:  # a merge keeps DST's own queue switch
            paused = src.scalar(select(QueueState.paused).where(QueueState.id == 1))
            dst.execute(update(QueueState).where(QueueState.id == 1).values(paused=bool(paused)))
        if dst.dialect.name == "postgresql":
            _bump_sequences(dst)
        copier.note_lost_runs()
    return report


@contextmanager
def _snapshot(store: Store) -> Iterator[Connection]:
    """One read transaction on `store` that sees the database as it was when it began, however long
    the copy takes and whatever its workers write meanwhile (SQLite's WAL gives that to any read
    transaction; PostgreSQL's default isolation would see each statement's own moment)."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


def _history_counts(conn: Connection) -> list[str]:
    """What the database holds, as "runs: 12", for each table that is not empty."""
    counts = {table.name: conn.scalar(select(func.count()).select_from(table)) for table in HISTORY_TABLES}
    return [f"{name}: {count:,}" for name, count in counts.items() if count]


@dataclass(frozen=True)
class _Plan:
    """What changes in each row of one table on its way to DST."""

    json_columns: list[str]
    references: list[tuple[str, dict[int, int]]]  # in a merge: a column, and DST's ids of the rows it names
    positions: list[str]  # in a merge: the queue's places, moved by `shift` to after DST's
    shift: int

    def apply(self, row: dict[str, Any]) -> None:
        for name in self.json_columns:
            # Python's None would be written to a JSON column as JSON's null, which is not the SQL
            # NULL that a grid's missing search is (store.base.find_sweep tells them apart by it).
            if row[name] is None:
                row[name] = null()
        for name, new_ids in self.references:
            if row[name] is not None:
                row[name] = new_ids[row[name]]
        for name in self.positions:
            if row[name] is not None:
                row[name] += self.shift


class _Copier:
    """The copy of one history, table by table. It keeps the ids in DST of the rows that others
    refer to (workers, sweeps, runs: a few ints each, even for a long history), never the rows."""

    def __init__(self, src: Connection, session: Session, *, source_name: str, merge: bool,
                 chunk_rows: int) -> None:
        self.src, self.dst = src, session.connection()
        self.source_name = source_name
        self.merge = merge
        self.chunk_rows = chunk_rows
        self.now = database_now(session)
        self.position_shift = self._position_shift(last_position(session)) if merge else 0
        referenced = {key.column.table.name for table in HISTORY_TABLES for key in table.foreign_keys}
        self.new_ids: dict[str, dict[int, int]] = {name: {} for name in referenced | {Run.__tablename__}}
        # In a merge: (DST's id of a run, SRC's id of its pack's first run), set once all runs are in.
        self.packs: list[tuple[int, int]] = []
        self.lost_runs: list[int] = []  # SRC's ids of the runs copied as lost
        self.counts: dict[str, int] = {table.name: 0 for table in HISTORY_TABLES}
        self.searches = 0
        self.checkpoints = 0

    def copy(self) -> CopyReport:
        for table in HISTORY_TABLES:
            self._copy_table(table)
        self._set_packs()
        run_ids = self.new_ids[Run.__tablename__]
        return CopyReport(
            runs=self.counts[Run.__tablename__], epochs=self.counts[Epoch.__tablename__],
            sweeps=self.counts[Sweep.__tablename__] - self.searches, searches=self.searches,
            log_lines=self.counts[RunLog.__tablename__], workers=self.counts[Worker.__tablename__],
            running_as_lost=len(self.lost_runs), checkpoints=self.checkpoints, merged=self.merge,
            first_run_id=run_ids[min(run_ids)] if run_ids else None,
        )

    def _position_shift(self, last: int) -> int:
        """What moves the copied queue, in its order, to after DST's last place `last`."""
        firsts = [self.src.scalar(select(func.min(column))) for column in _POSITIONS]
        known = [first for first in firsts if first is not None]
        return last + 1 - min(known) if known else 0

    def _copy_table(self, table: Table) -> None:
        plan = self._plan(table)
        rows = self.src.execute(select(table).order_by(table.c.id).execution_options(yield_per=self.chunk_rows))
        for chunk in rows.partitions():
            values = [self._row(table, plan, row._asdict()) for row in chunk]
            old_ids = [value["id"] for value in values]
            if self.merge:
                new_ids = self._insert_numbered(table, values)
            else:
                self.dst.execute(insert(table), values)
                new_ids = old_ids
            if table.name in self.new_ids:
                self.new_ids[table.name].update(zip(old_ids, new_ids))
            self.counts[table.name] += len(values)

    def _plan(self, table: Table) -> _Plan:
        """What changes in each row of `table` on its way to DST, worked out once, not once a row."""
        columns = table.columns
        return _Plan(
            json_columns=[column.name for column in columns if isinstance(column.type, JSON)],
            references=[(column.name, self.new_ids[key.column.table.name])
                        for column in columns for key in column.foreign_keys] if self.merge else [],
            positions=[column.name for column in columns if column in _POSITIONS] if self.merge else [],
            shift=self.position_shift,
        )

    def _insert_numbered(self, table: Table, values: list[dict[str, Any]]) -> Sequence[int]:
        """Write rows under ids DST gives them (a merge); their ids, in the order of `values`."""
        packs = [value.pop("pack_id") for value in values] if table is Run.__table__ else []
        for value in values:
            del value["id"]
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        new_ids = self.dst.execute(statement, values).scalars().all()
        self.packs.extend((run, pack) for run, pack in zip(new_ids, packs) if pack is not None)
        return new_ids

    def _row(self, table: Table, plan: _Plan, row: dict[str, Any]) -> dict[str, Any]:
        """SRC's row as DST gets it: a running run made lost, a worker stopped, and `plan`."""
        if table is Run.__table__:
            self._run(row)
        elif table is Sweep.__table__ and row["search"] is not None:
            self.searches += 1
        elif table is Worker.__table__ and row["stopped_at"] is None:
            row["stopped_at"] = row["heartbeat_at"]  # its last sign of life
        plan.apply(row)
        return row

    def _run(self, row: dict[str, Any]) -> None:
        self.checkpoints += row["checkpoint"] is not None
        if row["status"] == RunStatus.RUNNING:
            row.update(status=RunStatus.LOST, finished_at=self.now, updated_at=self.now,
                       error=f"lost: copied from {self.source_name} while it was running there; "
                             "its worker goes on there, not here")
            self.lost_runs.append(row["id"])

    def _set_packs(self) -> None:
        """In a merge, each packed run's pack_id becomes the new id of its pack's first run, which
        may have come after it; NULL where that run is not in SRC any more (deleted)."""
        new_ids = self.new_ids[Run.__tablename__]
        for chunk in _chunks(self.packs, self.chunk_rows):
            self.dst.execute(update(Run).where(Run.id == bindparam("run")).values(pack_id=bindparam("pack")),
                             [{"run": run, "pack": new_ids.get(pack)} for run, pack in chunk])

    def note_lost_runs(self) -> None:
        """A line in the log of each run copied as lost, after SRC's own lines."""
        new_ids = self.new_ids[Run.__tablename__]
        for chunk in _chunks(self.lost_runs, self.chunk_rows):
            self.dst.execute(insert(RunLog), [
                {"run_id": new_ids[old], "created_at": self.now, "level": "error",
                 "text": f"copied from {self.source_name} while running there: marked lost here"}
                for old in chunk])


def _bump_sequences(conn: Connection) -> None:
    """PostgreSQL numbers new rows from a sequence, which rows written with their own ids do not
    advance: move each past its table's largest id, or the next run added would take #1 again."""
    for table in HISTORY_TABLES:
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                          f"coalesce(max(id), 1), max(id) IS NOT NULL) FROM {table.name}"))


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
