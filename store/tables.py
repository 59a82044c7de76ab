"""The database schema as SQLAlchemy 2.0 typed models.

A run keeps every hyperparameter twice: as columns (so the leaderboard can filter and sort on them
in SQL) and as JSON (the exact RunParams, which survives new fields being added later). It also keeps
its best and last RMSE, updated with each epoch, so ranking thousands of runs never reads the epochs.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from store.params import FIELD_NAMES, RunParams, format_value

STATUSES = ("queued", "running", "done", "failed", "cancelled", "lost", "interrupted")
# A run in one of these states will not change again on its own.
FINISHED_STATUSES = ("done", "failed", "cancelled", "lost", "interrupted")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes. SQLite has no time zones, so values are stored as naive UTC
    and given their zone back on the way out; comparisons in SQL stay correct."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect: Dialect) -> Optional[datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(timezone.utc)")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Optional[datetime], dialect: Dialect) -> Optional[datetime]:
        return None if value is None else value.replace(tzinfo=timezone.utc)


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
    """The runs queued together by one `add` or form submission (a grid)."""

    __tablename__ = "sweeps"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[Optional[str]] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[Optional[int]] = mapped_column(ForeignKey("sweeps.id"))
    status: Mapped[str] = mapped_column(String(16))
    # Lower numbers are claimed first; only meaningful while queued.
    position: Mapped[Optional[int]]

    # The hyperparameters as columns. `dataset` is RunParams.data, `epochs` the planned number of
    # epochs and `device_request` RunParams.device (what was asked for, e.g. "auto").
    model: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(Text)
    k: Mapped[int]
    hidden: Mapped[str] = mapped_column(String(100))  # "10,5", as typed into the form
    lr: Mapped[float]
    weight_decay: Mapped[float]
    batch_size: Mapped[int]
    epochs: Mapped[int]
    seed: Mapped[int]
    split_seed: Mapped[int]
    test_size: Mapped[float]
    val_size: Mapped[float]
    patience: Mapped[int]
    device_request: Mapped[str] = mapped_column(String(32))
    bias: Mapped[bool]
    dropout: Mapped[float]
    init_std: Mapped[float]
    params: Mapped[dict[str, Any]]

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[Optional[datetime]]
    finished_at: Mapped[Optional[datetime]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    worker_id: Mapped[Optional[int]] = mapped_column(ForeignKey("workers.id"))
    device: Mapped[Optional[str]] = mapped_column(String(32))  # the device it actually ran on
    epoch: Mapped[int] = mapped_column(default=0)  # last finished epoch
    # How far the epoch under way has got (0..1), so a long epoch is seen to move before it lands.
    epoch_progress: Mapped[float] = mapped_column(default=0.0)
    best_test_rmse: Mapped[Optional[float]]
    best_epoch: Mapped[Optional[int]]
    # With a validation split the best epoch is the one with the lowest validation RMSE (choosing it
    # by test RMSE would tune on the test set); best_test_rmse is then that epoch's test RMSE.
    best_val_rmse: Mapped[Optional[float]]
    last_train_rmse: Mapped[Optional[float]]
    last_test_rmse: Mapped[Optional[float]]
    error: Mapped[Optional[str]] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # How many more times the run is queued again by itself when it ends lost or interrupted (its
    # worker died or was stopped); each automatic copy has one fewer. Added in schema version 2.
    retries: Mapped[int] = mapped_column(default=0, server_default="0")

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


class Epoch(Base):
    __tablename__ = "epochs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int]
    # NULL only when the number was not finite (SQLite stores NaN as NULL).
    train_rmse: Mapped[Optional[float]]
    test_rmse: Mapped[Optional[float]]
    val_rmse: Mapped[Optional[float]]
    seconds: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The unique index also serves "epochs of run R after N" lookups.
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_epochs_run_epoch"),)


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    devices: Mapped[str] = mapped_column(Text)  # comma-separated, e.g. "cuda:0,cuda:1"
    slots: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[Optional[datetime]]


# The runs column that holds each RunParams field (most share the field's name).
PARAM_COLUMNS: dict[str, str] = {
    name: {"data": "dataset", "device": "device_request"}.get(name, name) for name in FIELD_NAMES
}


def param_columns(params: RunParams) -> dict[str, Any]:
    """The column values of a run with these parameters, the JSON copy included."""
    values: dict[str, Any] = {PARAM_COLUMNS[name]: getattr(params, name) for name in FIELD_NAMES}
    values["hidden"] = format_value("hidden", params.hidden)
    values["params"] = params.to_dict()
    return values
