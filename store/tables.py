"""The database schema as SQLAlchemy 2.0 typed models.

A run keeps every hyperparameter as JSON (the exact RunParams, which survives new fields being added
later) and those History shows also as columns, so the leaderboard can filter and sort on them in SQL.
It also keeps its best and last RMSE, updated with each epoch, so ranking thousands of runs never
reads the epochs, and its dataset's identity (store/catalog.py), so runs on one dataset rank together
however the dataset was named.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

from store import catalog
from store.params import PARAMS, RunParams, format_value
from store.status import RunStatus


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes. SQLite has no time zones, so values are stored as naive UTC
    and given their zone back on the way out; comparisons in SQL stay correct."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(timezone.utc)")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class StatusType(TypeDecorator[RunStatus]):
    """A run's status: stored as its plain text ("done"), read back as a RunStatus member."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> RunStatus | None:
        return None if value is None else RunStatus(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class SchemaVersion(Base):
    """One row: the schema version this file was last migrated to (see store/schema.py)."""

    __tablename__ = "schema_version"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]


class QueueState(Base):
    """One row (id 1): whether workers may claim queued runs."""

    __tablename__ = "queue_state"
    id: Mapped[int] = mapped_column(primary_key=True)
    paused: Mapped[bool] = mapped_column(default=False)


class Sweep(Base):
    """The runs queued together by one `add` or form submission (a grid), or the trials of a search."""

    __tablename__ = "sweeps"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A search's columns (added in schema version 5), all NULL for a grid. `search` is its
    # store.search.SearchSpec as JSON; `state` one of store.search.SEARCH_STATES; `trials` how many
    # trials it may ask for (its spec's count, plus any extensions); `study_attrs` what its sampler
    # keeps between trials (store/study.py); `position` its place in the queue, among the runs'.
    search: Mapped[dict[str, Any] | None]
    state: Mapped[str | None] = mapped_column(String(16))
    trials: Mapped[int | None]
    study_attrs: Mapped[dict[str, Any] | None]
    position: Mapped[int | None]


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id"))
    status: Mapped[RunStatus] = mapped_column(StatusType())
    # Lower numbers are claimed first; only meaningful while queued.
    position: Mapped[int | None]

    # Every hyperparameter is in `params`, the exact RunParams as JSON (which survives new fields
    # being added later); those History shows as columns are also real columns, added below from
    # their declarations (store/params.py), so it can sort and filter on them in SQL.
    params: Mapped[dict[str, Any]]

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"))
    # The device it actually ran on (params["device"] is what was asked for, e.g. "auto").
    ran_on: Mapped[str | None] = mapped_column(String(32))
    epoch: Mapped[int] = mapped_column(default=0)  # last finished epoch
    # How far the epoch under way has got (0..1), so a long epoch is seen to move before it lands.
    epoch_progress: Mapped[float] = mapped_column(default=0.0)
    best_test_rmse: Mapped[float | None]
    best_epoch: Mapped[int | None]
    # With a validation split the best epoch is the one with the lowest validation RMSE (choosing it
    # by test RMSE would tune on the test set); best_test_rmse is then that epoch's test RMSE.
    best_val_rmse: Mapped[float | None]
    last_train_rmse: Mapped[float | None]
    last_test_rmse: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # How many more times the run is queued again by itself when it ends lost or interrupted (its
    # worker died or was stopped); each automatic copy has one fewer. Added in schema version 2.
    retries: Mapped[int] = mapped_column(default=0, server_default="0")
    # Added in schema version 4. The dataset's identity (store/catalog.py resolve().key): a registered
    # or synthetic name, "sha256:..." for another file. Every insert sets it; the server default is
    # only there because SQLite adds a NOT NULL column to an old table only with one.
    data_key: Mapped[str] = mapped_column(Text, server_default="")
    # Hidden from the history unless asked for; kept, with its epochs, until deleted.
    archived: Mapped[bool] = mapped_column(default=False, server_default=false())
    # An "Ended badly" entry a person has seen and cleared from the Queue; the run itself stays.
    dismissed: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Added in schema version 5. A search's trial: its number in the search (from 1; a trial run again
    # after its worker died keeps it) and what the search's sampler keeps of it (store/study.py).
    trial: Mapped[int | None]
    trial_attrs: Mapped[dict[str, Any] | None]
    # Added in schema version 6. The best epoch's checkpoint file (engine/checkpoint.py), where the
    # worker wrote one; and the ranking metrics of the best epoch's model on the test part
    # (engine/ranking.py), set when training ended.
    checkpoint: Mapped[str | None] = mapped_column(Text)
    precision_at_10: Mapped[float | None]
    recall_at_10: Mapped[float | None]
    ndcg_at_10: Mapped[float | None]
    # Added in schema version 7. A run that trained in a pack (engine.trainer.fit_pack: runs of one
    # structure trained as one batched model): the id of the pack's first run, and how many runs the
    # pack started with. NULL for a run that trained alone, or has not trained yet.
    pack_id: Mapped[int | None]
    pack_size: Mapped[int | None]

    # Loaded with the run in the same query (a join), so listing runs with their sweep's name costs
    # no query per run.
    sweep: Mapped[Sweep | None] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_runs_queue", "status", "position"),
        Index("ix_runs_sweep", "sweep_id"),
    )


# The leaderboard's order, "best_test_rmse IS NULL, best_test_rmse, id" (unranked runs last), as
# indexes: the first page is then read in index order instead of sorting every run (1 ms, not 6,
# at 10,000 runs). The queries must spell the ORDER BY exactly like this to use them.
LEADERBOARD_ORDER = (Run.best_test_rmse.is_(None), Run.best_test_rmse, Run.id)
Index("ix_runs_leaderboard", *LEADERBOARD_ORDER)
Index("ix_runs_leaderboard_status", Run.status, *LEADERBOARD_ORDER)
# The default ranking: the done runs of one dataset. Added in schema version 4.
Index("ix_runs_leaderboard_data", Run.status, Run.data_key, *LEADERBOARD_ORDER)


class Epoch(Base):
    __tablename__ = "epochs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int]
    # NULL only when the number was not finite (SQLite stores NaN as NULL).
    train_rmse: Mapped[float | None]
    test_rmse: Mapped[float | None]
    val_rmse: Mapped[float | None]
    seconds: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Added in schema version 6: the ranking metrics of this epoch's model, on the epochs the run's
    # rank_every asks for.
    precision_at_10: Mapped[float | None]
    recall_at_10: Mapped[float | None]
    ndcg_at_10: Mapped[float | None]

    # The unique index also serves "epochs of run R after N" lookups.
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_epochs_run_epoch"),)


class RunLog(Base):
    """One line of a run's log, written by its worker: the start, the device, each epoch, warnings,
    the traceback of a failure, why it was found lost. Added in schema version 4."""

    __tablename__ = "run_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(16))  # info, warning, error
    text: Mapped[str] = mapped_column(Text)

    # "The log of run R after line N", in order.
    __table_args__ = (Index("ix_run_logs_run", "run_id", "id"),)


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    # Where its pid names it (store.workers.this_pid_space(): a host name of up to 253 characters and
    # more: Text, which PostgreSQL never refuses as too long); NULL for a worker of before schema 8.
    pid_space: Mapped[str | None] = mapped_column(Text)
    devices: Mapped[str] = mapped_column(Text)  # comma-separated, e.g. "cuda:0,cuda:1"
    slots: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]


# The SQL type of a parameter's column, by the type of its value (a tuple is stored as its text).
_COLUMN_TYPES: dict[type, TypeEngine[Any]] = {
    str: Text(), int: BigInteger(), float: Float(), bool: Boolean(), tuple: String(100)}

# The hyperparameters that are real columns of runs (History's), each under its own name. Declarative
# classes take columns assigned after the class statement; the column's Python value is the
# parameter's, but for a tuple (hidden layers), which is the text a person types: "10,5".
PARAM_COLUMNS: tuple[str, ...] = tuple(name for name, declared in PARAMS.items() if declared.heading)
for _name in PARAM_COLUMNS:
    setattr(Run, _name, mapped_column(_name, _COLUMN_TYPES[type(PARAMS[_name].default)], nullable=False))


def param_column(name: str) -> ColumnElement[Any]:
    """The SQL expression of a parameter: its column, or its value in the JSON copy."""
    if name in PARAM_COLUMNS:
        return Run.__table__.c[name]
    json_type = {str: "as_string", int: "as_integer", float: "as_float", bool: "as_boolean"}
    # The JSON comparator's as_string() etc. are found by name, so the checker sees Any: say what it is.
    value: ColumnElement[Any] = getattr(Run.params[name], json_type[type(PARAMS[name].default)])()
    return value


def param_columns(params: RunParams, data_key: str | None = None) -> dict[str, Any]:
    """The column values of a run with these parameters: the JSON copy included, and its dataset's
    identity, `data_key` when the caller has it (a grid of runs on one file looks it up once)."""
    values: dict[str, Any] = {"data_key": data_key if data_key is not None else catalog.resolve(params.data).key}
    for name in PARAM_COLUMNS:
        value = getattr(params, name)
        values[name] = format_value(value) if isinstance(value, tuple) else value
    return values | {"params": params.to_dict()}
