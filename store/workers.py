"""Worker processes: registration, heartbeats, and finding the runs of workers that died.

A worker is judged dead in two ways: its heartbeat is older than a grace period (any host, e.g. a
machine that lost power), or its pid no longer exists where that pid names it (seen at once, without
waiting for the grace period: the usual case after `kill -9` or a closed SSH session).

Where a pid names a process is the worker's pid space: its host's name, that machine's boot and its
pid namespace. Workers on other machines, on this one before it rebooted, or in another container
with the same host name are judged by their heartbeats alone: their pids mean nothing here, and
reaping here must never touch a live worker there. $DMF_HOST names this machine instead of its host
name (two containers given the same one, say; the tests use it to be a second box).

Heartbeats are written and judged with the database's clock (store.base.database_now), never this
machine's: with workers on several machines sharing one database, a worker whose clock is a minute
behind would otherwise look a minute silent to the others, and its runs be declared lost.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import exc, select, update
from sqlalchemy.orm import Session

from store.base import StoreBase, change_run, database_now
from store.queue import queue_again
from store.records import WorkerRecord, worker_record
from store.status import RunStatus, WorkerState
from store.tables import Run, RunLog, Worker

# A worker beats every few seconds; after this long without a beat it counts as stale.
DEFAULT_GRACE_S = 30.0


class WorkerOps(StoreBase):
    def register_worker(self, *, pid: int, host: str, devices: Iterable[str] | str, slots: int,
                        pid_space: str | None = None) -> int:
        """Record a worker that starts now; returns its id (pass it to claim and heartbeat). A worker
        process registers itself with `this_host()` and `this_pid_space()`; without a pid space a
        worker is judged by its pid on any machine of its host's name, as before schema 8."""
        text = devices if isinstance(devices, str) else ",".join(devices)
        with self._write() as session:
            now = database_now(session)
            worker = Worker(pid=pid, host=host, pid_space=pid_space, devices=text, slots=slots, started_at=now,
                            heartbeat_at=now)
            session.add(worker)
            session.flush()
            return worker.id

    def heartbeat(self, worker_id: int) -> None:
        with self._write() as session:
            session.execute(update(Worker).where(Worker.id == worker_id)
                            .values(heartbeat_at=database_now(session)))

    def unregister_worker(self, worker_id: int) -> None:
        """Mark the worker stopped (its row stays, for `worker status`)."""
        with self._write() as session:
            session.execute(update(Worker).where(Worker.id == worker_id)
                            .values(stopped_at=database_now(session)))

    def workers(self, alive_only: bool = False, *, include_stopped: bool = True,
                grace_s: float = DEFAULT_GRACE_S) -> list[WorkerRecord]:
        """Every worker ever registered (or, without `include_stopped`, those not known to have
        stopped), newest first, with its state: running, stale (no recent heartbeat, or its pid is
        gone from this host) or stopped."""
        with self._read() as session:
            records = worker_records(session, grace_s, include_stopped=include_stopped)
        return [r for r in records if r.state == WorkerState.RUNNING] if alive_only else records

    def reap_lost(self, grace_s: float = DEFAULT_GRACE_S) -> list[int]:
        """Mark as lost every running run whose worker is dead (see the module docstring) or was
        stopped; returns their ids. Their epochs are kept; the reason goes in the run's error and in
        its log, and a run with retries left is queued again. Workers whose process is certainly
        gone are marked stopped, so they stop showing as stale."""
        # Looked for in a read first: in the usual case, nobody died, no write lock is taken by the
        # TUI and the listing commands that call this on every look.
        with self._read() as session:
            runs, gone = _dead_work(session, database_now(session), grace_s)
        if not runs and not gone:
            return []
        lost: list[int] = []
        with self._write() as session:
            now = database_now(session)
            runs, gone = _dead_work(session, now, grace_s)
            for run_id, reason in runs:
                if change_run(session, run_id, RunStatus.RUNNING, status=RunStatus.LOST, error=reason,
                              finished_at=now, updated_at=now):
                    lost.append(run_id)
                    session.add(RunLog(run_id=run_id, level="error", text=f"marked {reason}"))
                    queue_again(session, run_id)
            for worker in gone:
                worker.stopped_at = now
        return lost

    def reap_lost_if_writable(self) -> list[int]:
        """reap_lost for a command that only reads: a database it cannot write (read-only, on a
        full disk) still lists, with the runs of dead workers left as they are."""
        if self.read_only:
            return []
        try:
            return self.reap_lost()
        except exc.DBAPIError:
            return []


def _dead_work(session: Session, now: datetime, grace_s: float) -> tuple[list[tuple[int, str]], list[Worker]]:
    """The running runs whose worker is dead, each with why, and the unstopped workers whose
    process is gone. Both are read before any change, so a run's reason says its worker's process
    is gone rather than that the worker was stopped."""
    running = session.execute(
        select(Run.id, Worker).join(Worker, Run.worker_id == Worker.id).where(Run.status == RunStatus.RUNNING)
    ).all()
    here = this_pid_space()
    runs = [(run_id, reason) for run_id, worker in running
            if (reason := _why_dead(worker, now, grace_s, here)) is not None]
    gone = [worker for worker in session.scalars(select(Worker).where(Worker.stopped_at.is_(None)))
            if _pid_gone(worker, here)]
    return runs, gone


def _why_dead(worker: Worker, now: datetime, grace_s: float, here: str) -> str | None:
    """Why this worker can no longer be running its runs, or None if it may be. `now` is the
    database's clock, as the heartbeat is; `here`, this process's pid space."""
    name = f"worker {worker.id} (pid {worker.pid} on {worker.host})"
    if worker.stopped_at is not None:
        return f"lost: {name} stopped without finishing the run"
    if _pid_gone(worker, here):
        return f"lost: {name} is no longer running"
    silence = (now - worker.heartbeat_at).total_seconds()
    if silence > grace_s:
        return f"lost: {name} sent no heartbeat for {silence:.0f} s"
    return None


def worker_records(session: Session, grace_s: float, *, include_stopped: bool) -> list[WorkerRecord]:
    """The workers (newest first), each with its state judged by the database's clock now; the
    same read whether alone (Store.workers) or in the TUI's poll snapshot."""
    query = select(Worker).order_by(Worker.id.desc())
    if not include_stopped:
        query = query.where(Worker.stopped_at.is_(None))
    now = database_now(session)
    here = this_pid_space()
    return [worker_record(row, worker_state(row, now, grace_s, here), _local(row, here))
            for row in session.scalars(query)]


def worker_state(worker: Worker, now: datetime, grace_s: float, here: str) -> WorkerState:
    if worker.stopped_at is not None:
        return WorkerState.STOPPED
    return WorkerState.RUNNING if _why_dead(worker, now, grace_s, here) is None else WorkerState.STALE


def by_host(workers: Iterable[WorkerRecord]) -> list[tuple[str, list[WorkerRecord]]]:
    """Each host with its workers (in the order given), this machine's first, then by name: how
    `worker status` lists them and the TUI's Queue orders its worker lines."""
    groups: dict[str, list[WorkerRecord]] = {}
    for worker in workers:
        groups.setdefault(worker.host, []).append(worker)
    return sorted(groups.items(), key=lambda group: (not is_this_machine(*group), group[0]))


def is_this_machine(host: str, workers: Iterable[WorkerRecord]) -> bool:
    """Whether `host` is this machine: its name, or the host of a worker whose pid names it here."""
    return host == this_host() or any(worker.local for worker in workers)


def this_host() -> str:
    """This machine's name, as workers record it: $DMF_HOST, else its host name."""
    return os.environ.get("DMF_HOST", "").strip() or socket.gethostname()


def this_pid_space() -> str:
    """Where a pid names one process, for this process: this machine's name, its boot (Linux's boot
    id; blank elsewhere) and its pid namespace (blank outside Linux)."""
    return " ".join((this_host(), _read_first_line("/proc/sys/kernel/random/boot_id"), _pid_namespace()))


def _local(worker: Worker, here: str) -> bool:
    """Whether the worker's pid names it in this process."""
    if worker.pid_space is None:  # registered before schema 8: its host's name is all there is
        return worker.host == this_host()
    return worker.pid_space == here


def _pid_gone(worker: Worker, here: str) -> bool:
    """Whether the worker's process has certainly exited: only answerable where its pid names it
    (`here`, this process's pid space, read once per look rather than once per run)."""
    if not _local(worker, here):
        return False
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def _read_first_line(path: str) -> str:
    try:
        with open(path) as file:
            return file.readline().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return ""
