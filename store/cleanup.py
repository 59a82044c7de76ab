"""Tidying the history: deleting runs, archiving them (hidden unless asked for), dismissing those
that ended badly from the Queue's list, and picking out the runs of one sweep to cancel or retry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import delete, select, update

from store.base import StoreBase, find_sweep, load_runs, updated_rows
from store.errors import StoreError
from store.status import STATUSES, RunStatus
from store.tables import Epoch, Run, RunLog, Sweep, param_column, utcnow


class CleanupOps(StoreBase):
    def delete_runs(self, run_ids: Iterable[int]) -> int:
        """Delete runs with their epochs, logs and checkpoints; returns how many. A running run is refused
        (StoreError naming it: cancel it first), as is an unknown id, before anything is deleted.
        A sweep left without runs goes too. A checkpoint goes only where dmf-tui named it
        (run-<id>.pt, the worker's and `run`'s default): a file the user named with --checkpoint stays."""
        with self._write() as session:
            runs = load_runs(session, run_ids)
            _refuse_running(runs, "delete")
            ids = [run.id for run in runs]
            checkpoints = [Path(run.checkpoint) for run in runs
                           if run.checkpoint is not None and Path(run.checkpoint).name == f"run-{run.id}.pt"]
            sweeps = {run.sweep_id for run in runs if run.sweep_id is not None}
            session.execute(delete(RunLog).where(RunLog.run_id.in_(ids)))
            session.execute(delete(Epoch).where(Epoch.run_id.in_(ids)))
            # Only runs still not running: on a database server a worker may claim a queued one
            # between the read above and here, and then the whole delete is refused.
            deleted = updated_rows(session, delete(Run).where(Run.id.in_(ids), Run.status != RunStatus.RUNNING)
                                   .execution_options(synchronize_session=False))
            if deleted != len(ids):
                raise StoreError("a run was started while being deleted: nothing was deleted, try again")
            left = set(session.scalars(select(Run.sweep_id).where(Run.sweep_id.in_(sweeps))))
            session.execute(delete(Sweep).where(Sweep.id.in_(sweeps - left)))
        for path in checkpoints:  # once the runs are gone for good: a refused delete keeps them
            with contextlib.suppress(OSError):  # already gone, or not ours to remove: the runs are deleted
                path.unlink(missing_ok=True)
        return deleted

    def archive(self, run_ids: Iterable[int], archived: bool = True) -> int:
        """Archive runs (hidden from the history unless asked for), or with archived=False bring them
        back; returns how many changed (those already so are left as they are)."""
        return self._set_flag(run_ids, "archived", archived)

    def dismiss(self, run_ids: Iterable[int]) -> int:
        """Clear runs from the Queue's list of those that ended badly (the runs themselves stay);
        returns how many changed."""
        return self._set_flag(run_ids, "dismissed", True)

    def sweep_run_ids(self, sweep: int | str, statuses: Sequence[str] | None = None) -> list[int]:
        """The ids of a sweep's runs (those with one of `statuses`, when given), in order. The sweep is
        given by id, or by name; a name of digits that no sweep has is taken as an id. StoreError for
        an unknown sweep or a name that several sweeps share."""
        unknown = [status for status in statuses or () if status not in STATUSES]
        if unknown:
            raise StoreError(f"unknown status {unknown[0]!r}; choose from {', '.join(STATUSES)}")
        with self._read() as session:
            sweep_id = find_sweep(session, sweep).id
            query = select(Run.id).where(Run.sweep_id == sweep_id).order_by(Run.id)
            if statuses is not None:
                query = query.where(Run.status.in_(statuses))
            return list(session.scalars(query))

    def last_data(self) -> str | None:
        """The dataset of the run created last; None in an empty database."""
        with self._read() as session:
            data: str | None = session.scalar(select(param_column("data")).order_by(Run.id.desc()).limit(1))
            return data

    def _set_flag(self, run_ids: Iterable[int], name: str, value: bool) -> int:
        column = Run.__table__.c[name]
        with self._write() as session:
            ids = [run.id for run in load_runs(session, run_ids)]
            return updated_rows(session, update(Run).where(Run.id.in_(ids), column != value)
                                .values({column: value, Run.updated_at: utcnow()})
                                .execution_options(synchronize_session=False))


def _refuse_running(runs: Sequence[Run], verb: str) -> None:
    running = [str(run.id) for run in runs if run.status == RunStatus.RUNNING]
    if running:
        which = f"run {running[0]} is" if len(running) == 1 else f"runs {', '.join(running)} are"
        raise StoreError(f"cannot {verb}: {which} running (cancel it first: dmf-tui cancel ID)")
