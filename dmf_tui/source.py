"""What the TUI reads from the store once a second, gathered in one call that runs in a thread.

`StoreSource.poll` reads one snapshot of the store (Store.poll_snapshot, one transaction: the runs
and the searches). It remembers what it has: the last epoch it has seen of each running run, so each poll asks the
database only for epochs that are new, which the Live tab appends to its tables; the queue's
records, so only runs that changed are read again; the recent problems, read again only when a run
joins or leaves them. (The Queue and History tables are not redrawn either: `RunTable.sync`
updates only the cells that changed.)
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from store.db import Store
from store.records import EpochRecord, RunRecord, WorkerRecord
from store.searches import SearchRecord
from store.snapshot import PollSnapshot
from store.status import FINISHED_STATUSES, RunStatus, WorkerState

if TYPE_CHECKING:
    from dmf_tui.load import LoadSampler, SlotLoad

# Runs that ended badly are listed under the queue, with their reason, this many at a time.
RECENT_PROBLEMS = 5


@dataclass(frozen=True)
class Snapshot:
    queue: list[RunRecord]
    counts: dict[str, int]
    workers: list[WorkerRecord]
    paused: bool
    problems: list[RunRecord]
    # Epochs of running runs that landed since the previous poll (all of them for a run seen first).
    new_epochs: dict[int, list[EpochRecord]]
    # Mean seconds per epoch of each running run, from the epochs seen so far.
    epoch_seconds: dict[int, float]
    # Whether runs finished (or ended badly) since the previous poll: History then has news.
    finished_changed: bool
    # The system load of each worker slot on this host, by worker id (dmf_tui/load.py).
    load: dict[int, SlotLoad]
    # Every search, newest first, with its trials counted (the Searches tab).
    searches: list[SearchRecord]

    @property
    def running(self) -> list[RunRecord]:
        return [run for run in self.queue if run.status == RunStatus.RUNNING]


class StoreSource:
    def __init__(self, store: Store, load: LoadSampler | None = None) -> None:
        self.store = store
        # The system load's sampler (dmf_tui/load.py) is made by the first poll, in the poll's
        # thread: nothing of it is needed for the first paint.
        self.load = load
        self._queue: list[RunRecord] = []
        self._last_epoch: dict[int, int] = {}
        self._seconds: dict[int, tuple[float, int]] = {}
        # The recent problems and the key they were read at (see store/snapshot.py): until a run
        # joins or leaves them, the store does not read them again.
        self._problems: list[RunRecord] = []
        self._problems_key: tuple[object, ...] | None = None
        self._finished: tuple[int, ...] | None = None

    def poll(self) -> Snapshot:
        polled = self._read()
        alive = {w.id for w in polled.workers if w.state == WorkerState.RUNNING}
        if any(run.worker_id not in alive for run in polled.queue if run.status == RunStatus.RUNNING):
            # A worker that died (or stopped) holding runs: until another worker starts, nobody
            # else notices. reap_lost decides which of them really are lost.
            self.store.reap_lost()
            polled = self._read()
        self._queue = polled.queue
        running = [run.id for run in polled.queue if run.status == RunStatus.RUNNING]
        # A run that stopped running is forgotten: if it is retried its epochs start over.
        self._last_epoch = {run_id: self._last_epoch.get(run_id, 0) for run_id in running}
        self._seconds = {run_id: self._seconds.get(run_id, (0.0, 0)) for run_id in running}
        for run_id, rows in polled.new_epochs.items():
            self._last_epoch[run_id] = rows[-1].epoch
            total, count = self._seconds[run_id]
            self._seconds[run_id] = (total + sum(r.seconds for r in rows), count + len(rows))
        if polled.problems is not None:
            self._problems, self._problems_key = polled.problems, polled.problems_key
        finished = tuple(polled.counts[status] for status in FINISHED_STATUSES)
        finished_changed = self._finished is not None and finished != self._finished
        self._finished = finished
        return Snapshot(
            queue=polled.queue,
            counts=polled.counts,
            workers=polled.workers,
            paused=polled.paused,
            problems=self._problems,
            new_epochs=polled.new_epochs,
            epoch_seconds={run_id: total / count for run_id, (total, count) in self._seconds.items() if count},
            finished_changed=finished_changed,
            load=self._sample_load(polled.workers),
            searches=polled.searches,
        )

    def _sample_load(self, workers: list[WorkerRecord]) -> dict[int, SlotLoad]:
        if self.load is None:
            from dmf_tui.load import LoadSampler

            self.load = LoadSampler()
        return self.load.sample(workers)

    def _read(self) -> PollSnapshot:
        """One snapshot of the store, reading again only what changed since the last."""
        return self.store.poll_snapshot(self._last_epoch, known=self._queue, problems_key=self._problems_key,
                                        problems_limit=RECENT_PROBLEMS)


def worker_command(db_url: str, *args: str) -> tuple[int, str]:
    """Run `dmf-tui worker ARGS` on this database in a child process (the TUI itself never
    imports the engine) and return its exit code and the last line it printed."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dmf_tui", "--db", db_url, "worker", *args],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
        )
    except subprocess.TimeoutExpired:
        return 1, f"worker {' '.join(args)}: no answer after 60 s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, lines[-1] if lines else f"worker {' '.join(args)}: exit {done.returncode}"
