"""Each run's log: the lines its worker writes (the start, the device, the dataset, each epoch,
warnings, the traceback of a failure) and why a run was found lost, for Run detail and `dmf-tui logs`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from store.base import StoreBase
from store.errors import StoreError, UnknownRunError
from store.params import INT64_LIMIT
from store.records import LogRecord, log_record
from store.tables import Run, RunLog

LEVELS = ("info", "warning", "error")


class LogOps(StoreBase):
    def append_log(self, run_id: int, text: str, *, level: str = "info") -> None:
        """Add a line to the run's log (a traceback is one line of several lines of text)."""
        if level not in LEVELS:
            raise StoreError(f"unknown log level {level!r}; choose from {', '.join(LEVELS)}")
        try:
            with self._write() as session:
                session.add(RunLog(run_id=run_id, level=level, text=text))
        except IntegrityError:  # the foreign key: no such run
            raise UnknownRunError(f"no run with id {run_id}") from None

    def run_log(self, run_id: int, after: int = 0) -> list[LogRecord]:
        """The run's log lines with an id above `after`, oldest first (the TUI polls with the last id
        it has). UnknownRunError for a run that does not exist."""
        unknown = UnknownRunError(f"no run with id {run_id}")
        if not -INT64_LIMIT <= run_id < INT64_LIMIT:  # no run has it, and it cannot be bound to a query
            raise unknown
        with self._read() as session:
            rows = session.scalars(select(RunLog).where(RunLog.run_id == run_id, RunLog.id > after)
                                   .order_by(RunLog.id)).all()
            if not rows and session.scalar(select(Run.id).where(Run.id == run_id)) is None:
                raise unknown
            return [log_record(row) for row in rows]
