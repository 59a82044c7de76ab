"""Reading runs back: one run, its epochs, the queue, the ranked history and comparisons."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, or_, select

from store.base import StoreBase, load_runs
from store.errors import StoreError
from store.params import FIELD_NAMES, INT64_LIMIT
from store.records import Comparison, EpochRecord, RunRecord, SweepRecord, epoch_record, run_record
from store.status import STATUSES, RunStatus
from store.tables import Epoch, Run, Sweep, param_column

Statuses = str | Sequence[str] | None

# What a person may sort by: every column of runs but the JSON copy, and every parameter (those
# without a column of their own by their value in the JSON copy).
SORTABLE = (*(c.key for c in Run.__table__.columns if c.key not in ("params", *FIELD_NAMES)), *FIELD_NAMES)


class QueryOps(StoreBase):
    def get_run(self, run_id: int) -> RunRecord:
        with self._read() as session:
            (run,) = load_runs(session, [run_id])
            return run_record(run)

    def epochs(self, run_id: int, after: int = 0) -> list[EpochRecord]:
        """The run's epochs numbered above `after`, in order (the TUI polls with the last it has)."""
        with self._read() as session:
            rows = session.scalars(
                select(Epoch).where(Epoch.run_id == run_id, Epoch.epoch > after).order_by(Epoch.epoch)
            )
            return [epoch_record(row) for row in rows]

    def queue(self) -> list[RunRecord]:
        """Running runs (oldest start first), then queued runs in the order they will be claimed."""
        with self._read() as session:
            running = session.scalars(
                select(Run).where(Run.status == RunStatus.RUNNING).order_by(Run.started_at, Run.id)
            ).all()
            queued = session.scalars(
                select(Run).where(Run.status == RunStatus.QUEUED).order_by(Run.position, Run.id)
            ).all()
            return [run_record(run) for run in [*running, *queued]]

    def leaderboard(self, *, status: Statuses = None, model: str | None = None,
                    data: str | None = None, sweep_id: int | None = None,
                    text: str | None = None, sort: str = "best_test_rmse", descending: bool = False,
                    limit: int | None = None, offset: int = 0) -> list[RunRecord]:
        """Runs ranked by `sort` (any run column or parameter name; best test RMSE by default),
        runs without a value last, ties by id. `text` matches model, data, notes, tags and error."""
        column = _sort_column(sort)
        order = column.desc() if descending else column.asc()
        query = _filter(select(Run), status, model, data, sweep_id, text)
        if limit is not None and limit >= INT64_LIMIT:
            limit = None  # more than any table holds, and more than SQLite can be asked for
        query = query.order_by(column.is_(None), order, Run.id).offset(offset).limit(limit)
        with self._read() as session:
            return [run_record(run) for run in session.scalars(query)]

    def count_runs(self, *, status: Statuses = None, model: str | None = None,
                   data: str | None = None, sweep_id: int | None = None,
                   text: str | None = None) -> int:
        query = _filter(select(func.count(Run.id)), status, model, data, sweep_id, text)
        with self._read() as session:
            return session.scalar(query) or 0

    def status_counts(self) -> dict[str, int]:
        """Runs per status, every status present (0 when none)."""
        with self._read() as session:
            rows = session.execute(select(Run.status, func.count(Run.id)).group_by(Run.status)).all()
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        counts.update({status: n for status, n in rows})
        return counts

    def sweeps(self) -> list[SweepRecord]:
        """Every sweep, newest first, with how many runs it holds (retries included)."""
        query = (
            select(Sweep, func.count(Run.id))
            .outerjoin(Run, Run.sweep_id == Sweep.id)
            .group_by(Sweep.id)
            .order_by(Sweep.id.desc())
        )
        with self._read() as session:
            return [SweepRecord(s.id, s.name, s.created_at, n) for s, n in session.execute(query)]

    def compare(self, run_ids: Iterable[int]) -> Comparison:
        """The runs, the parameters that differ between them, and each run's epochs."""
        with self._read() as session:  # one snapshot: runs and epochs from the same moment
            runs = [run_record(run) for run in load_runs(session, run_ids)]
            epochs: dict[int, list[EpochRecord]] = {run.id: [] for run in runs}
            rows = session.scalars(select(Epoch).where(Epoch.run_id.in_(epochs)).order_by(Epoch.run_id, Epoch.epoch))
            for row in rows:
                epochs[row.run_id].append(epoch_record(row))
        differing = [
            name for name in FIELD_NAMES
            if len({getattr(run.params, name) for run in runs}) > 1
        ]
        return Comparison(runs=runs, differing=differing, epochs=epochs)


def _sort_column(name: str) -> ColumnElement[Any]:
    if name not in SORTABLE:
        raise StoreError(f"cannot sort by {name!r}; choose one of {', '.join(sorted(SORTABLE))}")
    return param_column(name) if name in FIELD_NAMES else Run.__table__.c[name]


def _filter(query: Select[Any], status: Statuses, model: str | None, data: str | None,
            sweep_id: int | None, text: str | None) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = []
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise StoreError(f"unknown status {unknown[0]!r}; choose from {', '.join(STATUSES)}")
        conditions.append(Run.status.in_(statuses))
    if model:
        conditions.append(param_column("model") == model)
    if data:
        conditions.append(param_column("data") == data)
    if sweep_id is not None:
        # A sweep id beyond 64 bits matches nothing (binding it would raise OverflowError).
        conditions.append(Run.sweep_id == sweep_id if -INT64_LIMIT <= sweep_id < INT64_LIMIT else false())
    if text:
        conditions.append(or_(*(
            column.icontains(text, autoescape=True)
            for column in (param_column("model"), param_column("data"), Run.notes, Run.tags, Run.error)
        )))
    return query.where(*conditions)
