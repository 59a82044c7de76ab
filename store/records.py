"""What the store hands out: frozen dataclasses copied from the rows, detached from any session, so
the TUI can pass them between threads and keep them after the database has moved on."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from store import catalog
from store.params import RunParams
from store.status import RunStatus, WorkerState
from store.tables import Epoch, Run, RunLog, Worker

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# The record type _copy builds: one of the dataclasses below.
_Record = TypeVar("_Record", bound="DataclassInstance")


class Ranking(Protocol):
    """Ranking metrics at 10 as the store keeps them (engine/ranking.py computes them)."""

    @property
    def precision(self) -> float: ...
    @property
    def recall(self) -> float: ...
    @property
    def ndcg(self) -> float: ...


@dataclass(frozen=True)
class RunRecord:
    id: int
    sweep_id: int | None
    status: RunStatus
    params: RunParams  # what was asked for: params.data, params.epochs (planned), params.device
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: int | None
    ran_on: str | None  # the device it ran on; params.device is what was asked for
    epoch: int  # last finished epoch, 0 before the first
    epoch_progress: float  # fraction of the epoch under way (0 when none is)
    best_test_rmse: float | None
    best_epoch: int | None
    best_val_rmse: float | None  # set when the run has a validation split, which then picks best_epoch
    last_train_rmse: float | None
    last_test_rmse: float | None
    error: str | None
    notes: str
    tags: tuple[str, ...]
    updated_at: datetime
    cancel_requested: bool
    position: int | None
    retries: int  # automatic retries left if it ends lost or interrupted
    data_key: str  # its dataset's identity (store/catalog.py): runs with one key rank together
    archived: bool  # hidden from the history unless asked for
    dismissed: bool  # cleared from the Queue's "Ended badly"
    sweep_name: str | None  # the name of its sweep, if it has one with a name
    trial: int | None  # its number among its search's trials; None for a run that is no trial
    checkpoint: str | None  # its best epoch's checkpoint file, where one was written
    precision_at_10: float | None  # ranking metrics of the best epoch's model on the test part
    recall_at_10: float | None
    ndcg_at_10: float | None
    pack_id: int | None  # the first run of the pack it trained in; None when it trained alone or not yet
    pack_size: int | None  # how many runs that pack started with

    @property
    def data_label(self) -> str:
        """Its dataset, short: the name, or a file's folder/name (params.data is the full path)."""
        return catalog.data_label(self.params.data)


@dataclass(frozen=True)
class EpochRecord:
    run_id: int
    epoch: int
    train_rmse: float | None
    test_rmse: float | None
    val_rmse: float | None
    seconds: float
    created_at: datetime
    precision_at_10: float | None = None  # on the epochs the run's rank_every asks for
    recall_at_10: float | None = None
    ndcg_at_10: float | None = None


@dataclass(frozen=True)
class LogRecord:
    """One line of a run's log."""

    id: int  # increasing: run_log(run_id, after=id) gives the lines written since
    run_id: int
    created_at: datetime
    level: str  # info, warning or error
    text: str

    def line(self) -> str:
        """As `dmf-tui logs` prints it and Run detail's log shows it: UTC time (as every time the
        TUI shows, so a log reads the same on every machine), level, text (a traceback keeps its
        own lines after the first)."""
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.level:<7} {self.text}"


@dataclass(frozen=True)
class WorkerRecord:
    id: int
    pid: int
    host: str
    devices: tuple[str, ...]
    slots: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    state: WorkerState
    # Whether its pid names it in this process (same machine, same boot, same pid namespace): only
    # then may it be signalled or its process looked at.
    local: bool


@dataclass(frozen=True)
class SweepRecord:
    id: int
    name: str | None
    created_at: datetime
    runs: int


@dataclass(frozen=True)
class Comparison:
    runs: list[RunRecord]
    differing: list[str]  # RunParams field names whose values are not the same in every run
    epochs: dict[int, list[EpochRecord]]


def split_list(text: str) -> tuple[str, ...]:
    return tuple(part for part in (p.strip() for p in text.split(",")) if part)


def run_record(row: Run) -> RunRecord:
    return _copy(RunRecord, row, params=RunParams.from_dict(row.params, validate=False),
                 tags=split_list(row.tags), sweep_name=row.sweep.name if row.sweep is not None else None)


def epoch_record(row: Epoch) -> EpochRecord:
    return _copy(EpochRecord, row)


def log_record(row: RunLog) -> LogRecord:
    return _copy(LogRecord, row)


def worker_record(row: Worker, state: WorkerState, local: bool) -> WorkerRecord:
    return _copy(WorkerRecord, row, devices=split_list(row.devices), state=state, local=local)


def _copy(record: type[_Record], row: Run | Epoch | RunLog | Worker, **derived: object) -> _Record:
    """A `record` whose fields are the row's columns of the same names, except those in `derived`."""
    return record(**{name: derived[name] if name in derived else getattr(row, name)
                     for name in _field_names(record)})


@functools.cache
def _field_names(record: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(record))
