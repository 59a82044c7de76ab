"""What the TUI shows, read in one transaction: Store.poll_snapshot.

The TUI polls about once a second. Each poll reads the workers, the queue, the epochs that landed
since the previous poll, the runs per status, whether the queue is paused, the searches and, when
they may have changed, the runs that ended badly most recently. Read separately these were 4+N transactions (N
running runs), each with its own view of the database; here they are one, so what the screen shows
is one moment.

The queue is what costs: with thousands of queued runs, building their records took most of a poll.
A caller passes the records it already has (`known`), and only runs that changed since are read in
full. Every change to a run sets its updated_at, except a move in the queue, which changes its
position: those two and the status say whether a known record is still true.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from store.base import StoreBase
from store.records import EpochRecord, RunRecord, WorkerRecord, epoch_record, run_record
from store.searches import SearchRecord, search_records
from store.status import ENDED_BADLY, STATUSES, RunStatus
from store.tables import Epoch, QueueState, Run
from store.workers import DEFAULT_GRACE_S, worker_records

# Which of the runs that ended badly (store.status.ENDED_BADLY) the Queue lists under the queue.
_LISTED = and_(Run.dismissed.is_(False), Run.archived.is_(False))
# How many ids go in one IN (...) list: old SQLite releases take at most 999 parameters a statement.
_IDS_PER_QUERY = 500

# What a run's record is current for: its status, its place in the queue, its last change.
_Version = tuple[RunStatus, "int | None", datetime]


@dataclass(frozen=True)
class PollSnapshot:
    # Workers not known to have stopped, newest first, each with its state.
    workers: list[WorkerRecord]
    # Running runs (oldest start first), then queued runs in the order they will be claimed.
    queue: list[RunRecord]
    # Epochs of each running run numbered above the caller's last_epochs (all of them for a run
    # not in it), in order; runs without new epochs are left out.
    new_epochs: dict[int, list[EpochRecord]]
    # Runs per status, every status present (0 when none).
    counts: dict[str, int]
    paused: bool
    # What the list of problems was read at: it changes when a run joins or leaves that list.
    problems_key: tuple[Any, ...]
    # The runs that ended badly and are neither dismissed nor archived, the most recently finished
    # first; None when problems_key is the one the caller gave (its list is still true): not read.
    problems: list[RunRecord] | None
    # Every search, newest first, each counted over its trials.
    searches: list[SearchRecord]


class SnapshotOps(StoreBase):
    def poll_snapshot(self, last_epochs: Mapping[int, int], *, known: Iterable[RunRecord] = (),
                      problems_key: tuple[Any, ...] | None = None, problems_limit: int = 5,
                      grace_s: float = DEFAULT_GRACE_S) -> PollSnapshot:
        """Everything the TUI polls for, from one read transaction. `last_epochs` maps a run id to
        the last epoch the caller has of it; `known` are records the caller has from a previous
        snapshot (those that still hold are handed back rather than read again); `problems_key` is
        the key of the problems the caller has."""
        with self._read() as session:
            workers = worker_records(session, grace_s, include_stopped=False)
            queue = _queue(session, {run.id: run for run in known})
            running = [run.id for run in queue if run.status == RunStatus.RUNNING]
            new_epochs = _new_epochs(session, {run_id: last_epochs.get(run_id, 0) for run_id in running})
            counts, key = _counts(session)
            problems = None if key == problems_key else _problems(session, problems_limit)
            paused = session.scalar(select(QueueState.paused).where(QueueState.id == 1))
            searches = search_records(session)
        return PollSnapshot(workers=workers, queue=queue, new_epochs=new_epochs, counts=counts,
                            paused=bool(paused), problems_key=key, problems=problems, searches=searches)


def _queue(session: Session, known: dict[int, RunRecord]) -> list[RunRecord]:
    """The queue, in order: the known records that are still current, the others read again."""
    order = (
        case((Run.status == RunStatus.RUNNING, 0), else_=1),
        # Running runs by start (position is left as it was when claimed), queued ones by position.
        case((Run.status == RunStatus.RUNNING, Run.started_at)),
        Run.position,
        Run.id,
    )
    versions: dict[int, _Version] = {
        run_id: (status, position, updated_at)
        for run_id, status, position, updated_at in session.execute(
            select(Run.id, Run.status, Run.position, Run.updated_at)
            .where(Run.status.in_((RunStatus.RUNNING, RunStatus.QUEUED)))
            .order_by(*order)
        )
    }
    current = {
        run_id: record for run_id, record in known.items()
        if versions.get(run_id) == (record.status, record.position, record.updated_at)
    }
    stale = [run_id for run_id in versions if run_id not in current]
    for start in range(0, len(stale), _IDS_PER_QUERY):
        chunk = stale[start:start + _IDS_PER_QUERY]
        current.update((row.id, run_record(row)) for row in session.scalars(select(Run).where(Run.id.in_(chunk))))
    # A run that left the queue between the two reads cannot: they are one transaction.
    return [current[run_id] for run_id in versions]


def _new_epochs(session: Session, after: dict[int, int]) -> dict[int, list[EpochRecord]]:
    """The epochs of each run in `after` numbered above its value there, in one query."""
    if not after:
        return {}
    rows = session.scalars(
        select(Epoch)
        .where(or_(*(and_(Epoch.run_id == run_id, Epoch.epoch > last) for run_id, last in after.items())))
        .order_by(Epoch.run_id, Epoch.epoch)
    )
    epochs: dict[int, list[EpochRecord]] = {}
    for row in rows:
        epochs.setdefault(row.run_id, []).append(epoch_record(row))
    return epochs


def _counts(session: Session) -> tuple[dict[str, int], tuple[Any, ...]]:
    """Runs per status, and the key of the list of problems: per problem status, how many runs are
    listed and when the last of them finished. A run that ends badly changes the last finish; one
    that is dismissed, archived or deleted changes the count."""
    rows = session.execute(
        select(Run.status, func.count(Run.id), func.count(case((_LISTED, Run.id))),
               func.max(case((_LISTED, Run.finished_at))))
        .group_by(Run.status)
    ).all()
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    problems: dict[str, tuple[int, datetime | None]] = {}
    for status, count, shown, last_finished in rows:
        counts[status] = count
        problems[status] = (shown, last_finished)
    return counts, tuple(problems.get(status) for status in ENDED_BADLY)


def _problems(session: Session, limit: int) -> list[RunRecord]:
    rows = session.scalars(
        select(Run).where(Run.status.in_(ENDED_BADLY), _LISTED)
        .order_by(Run.finished_at.is_(None), Run.finished_at.desc(), Run.id).limit(limit)
    )
    return [run_record(row) for row in rows]
