"""Reading runs back: one run, its epochs, the queue, the ranked history and comparisons.

The history is read through a RunFilter (store/filters.py), which this module turns into SQL: the
leaderboard, its summary, the ids of the runs it lists and the CSV export all take one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, Subquery, and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from store import catalog
from store.base import StoreBase, load_runs
from store.errors import StoreError
from store.filters import ORDERING, FilterError, RunFilter, Term
from store.params import FIELD_NAMES, INT64_LIMIT, PARAMS
from store.records import Comparison, EpochRecord, RunRecord, SweepRecord, epoch_record, run_record
from store.status import STATUSES, RunStatus
from store.tables import LEADERBOARD_ORDER, Epoch, Run, Sweep, param_column

Statuses = str | Sequence[str] | None

# What a person may sort by: every column of runs but the JSON copy, and every parameter (those
# without a column of their own by their value in the JSON copy).
SORTABLE = (*(c.key for c in Run.__table__.columns if c.key not in ("params", *FIELD_NAMES)), *FIELD_NAMES)


@dataclass(frozen=True)
class Summary:
    """What a listing holds as a whole, beyond the page a table shows."""

    total: int  # the runs it lists (grouped by sweep: its rows, one per sweep)
    best: int | None  # the id of its run with the lowest best test RMSE
    has_val: bool  # whether any of its runs has a validation RMSE
    sweep_runs: dict[int, int]  # how many of its runs each sweep holds


@dataclass(frozen=True)
class Dataset:
    """A dataset the ranked runs were trained on."""

    key: str  # its identity (store/catalog.py), what RunFilter.on_data takes
    label: str  # short, for a table or a status line
    runs: int  # its done runs that are not archived


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

    def leaderboard(self, where: RunFilter | None = None, *, status: Statuses = None, model: str | None = None,
                    data: str | None = None, sweep_id: int | None = None, text: str | None = None,
                    sort: str = "best_test_rmse", descending: bool = False, limit: int | None = None,
                    offset: int = 0, by_sweep: bool = False) -> list[RunRecord]:
        """Runs ranked by `sort` (any run column or parameter name; best test RMSE by default),
        runs without a value last, ties by id.

        `where` (see `conditions`) or the single filters select them: `text` matches model, data,
        notes, tags and error. `by_sweep` lists only the best run (by best test RMSE) of each sweep
        the selected runs are in, a run without a sweep being its own."""
        column = _sort_column(sort)
        order = column.desc() if descending else column.asc()
        if limit is not None and limit >= INT64_LIMIT:
            limit = None  # more than any table holds, and more than SQLite can be asked for
        with self._read() as session:
            selected = _filter(_conditions(session, where), status, model, data, sweep_id, text)
            query = select(Run).where(*selected)
            if by_sweep:
                leaders = _leaders(selected)
                query = select(Run).join(leaders, leaders.c.id == Run.id).where(leaders.c.rank == 1)
            query = query.order_by(column.is_(None), order, Run.id).offset(offset).limit(limit)
            return [run_record(run) for run in session.scalars(query)]

    def count_runs(self, where: RunFilter | None = None, *, status: Statuses = None, model: str | None = None,
                   data: str | None = None, sweep_id: int | None = None, text: str | None = None) -> int:
        with self._read() as session:
            selected = _filter(_conditions(session, where), status, model, data, sweep_id, text)
            return session.scalar(select(func.count(Run.id)).where(*selected)) or 0

    def summary(self, where: RunFilter, *, by_sweep: bool = False) -> Summary:
        """How many runs `where` lists (sweeps, `by_sweep`), its best run, whether any has a
        validation RMSE and how many of them each sweep holds: one snapshot."""
        with self._read() as session:
            selected = _conditions(session, where)
            group = func.count(func.distinct(_sweep_group())) if by_sweep else func.count(Run.id)
            total = session.scalar(select(group).where(*selected)) or 0
            best = session.scalar(
                select(Run.id).where(*selected, Run.best_test_rmse.is_not(None)).order_by(*LEADERBOARD_ORDER).limit(1)
            )
            has_val = session.scalar(select(Run.id).where(*selected, Run.best_val_rmse.is_not(None)).limit(1))
            per_sweep = session.execute(
                select(Run.sweep_id, func.count(Run.id)).where(*selected, Run.sweep_id.is_not(None))
                .group_by(Run.sweep_id)
            ).all()
        return Summary(total, best, has_val is not None, {sweep: n for sweep, n in per_sweep if sweep is not None})

    def run_ids(self, where: RunFilter, *, by_sweep: bool = False) -> list[int]:
        """The ids of every run `where` lists (`by_sweep`: the best of each sweep), best first."""
        with self._read() as session:
            selected = _conditions(session, where)
            query = select(Run.id).where(*selected)
            if by_sweep:
                leaders = _leaders(selected)
                query = select(Run.id).join(leaders, leaders.c.id == Run.id).where(leaders.c.rank == 1)
            return list(session.scalars(query.order_by(*LEADERBOARD_ORDER)))

    def datasets(self) -> list[Dataset]:
        """The datasets of the done runs that are not archived, the one of the most recently
        finished run first: the dataset History and `runs` rank by default."""
        query = (
            select(Run.data_key, func.min(param_column("data")), func.count(Run.id))
            .where(Run.status == RunStatus.DONE, Run.archived.is_(False))
            .group_by(Run.data_key)
            .order_by(func.max(Run.finished_at).desc(), Run.data_key)
        )
        with self._read() as session:
            rows = session.execute(query).all()
        # A registered dataset is labelled by its name, whichever file path some of its runs gave.
        return [Dataset(key, catalog.data_label(key if key in catalog.known_names() else data), n)
                for key, data, n in rows]

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


def _filter(conditions: list[ColumnElement[bool]], status: Statuses, model: str | None, data: str | None,
            sweep_id: int | None, text: str | None) -> list[ColumnElement[bool]]:
    """`conditions` and those of the single filters the leaderboard also takes."""
    conditions = list(conditions)
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
        conditions.append(_id_in(Run.sweep_id, [sweep_id]))
    if text:
        conditions.append(_contains(text))
    return conditions


def _conditions(session: Session, where: RunFilter | None) -> list[ColumnElement[bool]]:
    """The SQL of a RunFilter. Unless it says otherwise (a status: or archived: term, or run ids),
    it lists only done runs that are not archived; None lists every run."""
    if where is None:
        return []
    conditions: list[ColumnElement[bool]] = []
    if not (where.says("status") or where.names_runs):
        conditions.append(Run.status == RunStatus.DONE)
    if not (where.says("archived") or where.names_runs):
        conditions.append(Run.archived.is_(False))
    conditions += [_term(session, term) for term in where.terms]
    conditions += [_contains(word) for word in where.words]
    conditions += [or_(_id_in(Run.id, [number]), _contains(str(number))) for number in where.numbers]
    return conditions


def _term(session: Session, term: Term) -> ColumnElement[bool]:
    if term.name == "status":
        return _one_of(Run.status, term.op, term.values)
    if term.name == "archived":
        return _one_of(Run.archived, term.op, term.values)
    if term.name == "sweep":
        return _one_of(Run.sweep_id, term.op, _sweep_ids(session, term.values))
    if term.name == "data":
        return _one_of(Run.data_key, term.op, [_data_key(spec) for spec in term.values])
    if term.name == "id":
        return _compare_ids(term)
    column = param_column(term.name)
    condition = _ordering(column, term) if term.op in ORDERING else _one_of(column, term.op, term.values)
    only = PARAMS[term.name].only
    # A parameter of other models only (hidden layers are DeepMF's) is asked of the runs it applies to.
    return and_(condition, param_column("model").in_(only)) if only else condition


def _one_of(column: SQLColumnExpression[Any], op: str, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column` is one of `values` (op "="), or none of them ("!=")."""
    return column.in_(list(values)) if op == "=" else column.not_in(list(values))


def _compare_ids(term: Term) -> ColumnElement[bool]:
    if term.op in ORDERING:
        # An id beyond 64 bits cannot be bound; every id is below it.
        (value,) = term.values
        if value >= INT64_LIMIT:
            return true() if term.op in ("<", "<=") else false()
        return _ordering(Run.id, term)
    return _id_in(Run.id, term.values) if term.op == "=" else ~_id_in(Run.id, term.values)


_ORDERINGS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _ordering(column: SQLColumnExpression[Any], term: Term) -> ColumnElement[bool]:
    (value,) = term.values
    return _ORDERINGS[term.op](column, value)


def _id_in(column: SQLColumnExpression[Any], ids: Iterable[int]) -> ColumnElement[bool]:
    """`column` is one of `ids`; an id beyond 64 bits matches nothing (binding it would raise
    OverflowError)."""
    return column.in_([i for i in ids if -INT64_LIMIT <= i < INT64_LIMIT])


def _sweep_ids(session: Session, typed: Iterable[str]) -> list[int]:
    """The sweeps a sweep: term names, by id or by name (any case). FilterError for a name no
    sweep has (a number that is no sweep's id just matches nothing)."""
    sweeps = session.execute(select(Sweep.id, Sweep.name)).all()
    ids: list[int] = []
    for text in typed:
        found = [sweep_id for sweep_id, name in sweeps
                 if (name or "").casefold() == text.casefold() or str(sweep_id) == text]
        if not found and not (text.isascii() and text.isdigit()):
            raise FilterError(f"sweep: no sweep is named {text!r}")
        ids += found
    return ids


def _data_key(spec: str) -> str:
    """The identity of the dataset `spec` names, as runs store it (data_key)."""
    try:
        return catalog.resolve(spec).key
    except OSError:  # a file that cannot be read to be hashed: it names no dataset a run has
        return spec


def _contains(text: str) -> ColumnElement[bool]:
    """`text` (any case, % and _ as themselves) is in the run's model, dataset, notes, tags, error
    or sweep name."""
    columns = (param_column("model"), param_column("data"), Run.notes, Run.tags, Run.error)
    in_sweep_name = Run.sweep_id.in_(select(Sweep.id).where(Sweep.name.icontains(text, autoescape=True)))
    return or_(*(column.icontains(text, autoescape=True) for column in columns), in_sweep_name)


def _sweep_group() -> ColumnElement[int]:
    """What groups runs by sweep: the sweep's id, or for a run without one the run itself (as a
    negative number, which no sweep id is)."""
    return func.coalesce(Run.sweep_id, -Run.id)


def _leaders(conditions: list[ColumnElement[bool]]) -> Subquery:
    """A subquery of the selected runs' ids with their rank in their sweep (1: the best)."""
    rank = func.row_number().over(partition_by=_sweep_group(), order_by=LEADERBOARD_ORDER)
    return select(Run.id, rank.label("rank")).where(*conditions).subquery()
