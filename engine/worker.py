"""The worker: takes queued runs from the store and trains them, one after another, until stopped.

This is the one module that joins the engine and the store. A worker slot is one process that
  - registers itself in the store (pid, host, device) and turns runs that a dead worker left
    'running' into 'lost' before it claims anything;
  - claims runs one at a time (an atomic update in the store, so two slots never share a run),
    loads the run's split through a per-process cache, trains it, writes each epoch as it lands,
    and finishes it done / cancelled / failed (with the reason) / interrupted;
  - writes a heartbeat from a background thread, so a long epoch never looks like a dead worker
    (and, with each beat, marks lost the runs of any worker that died meanwhile);
  - on SIGTERM, SIGINT or SIGHUP stops at the trainer's next check (or while its dataset loads),
    finishes the current run as 'interrupted', unregisters and exits 0;
  - writes to its run only while the run is still its own: a worker stopped past the heartbeat grace
    (SIGSTOP, a closed laptop) wakes to find its run declared lost, drops it and goes on;
  - outlives a database that cannot be written for a while (a full disk): the run that could not be
    written ends 'failed' with the reason once that can be recorded, and the worker waits and retries.

One slot runs in the calling process. Several slots (`--gpus 0,1 --slots-per-gpu 2`, `--slots 3`)
run as spawned child processes under a supervisor (`run_slots`) that forwards SIGTERM/SIGINT and
restarts a slot that crashed; each child registers as its own worker, so a slot killed with -9 is
found by its dead pid like any other worker. A slot whose supervisor dies (even by kill -9) stops
as if sent SIGTERM, so no slot trains on alone.

Usage:
    devices = plan_slots(gpus="0,1", slots_per_gpu=2)          # ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    exit_code = run_slots(devices, WorkerOptions(db="runs.db", exit_when_empty=True))
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from sqlalchemy.exc import DBAPIError

from engine.datasets import load_dataset
from engine.errors import ConfigError, DeviceError, EngineError
from engine.models import HAND_GRADS
from engine.ranking import Ranking
from engine.remap import Dataset
from engine.split import Split, split_dataset
from engine.trainer import EpochStats, TrainResult, fit, fit_pack, resolve_device
from store.db import Store, checkpoint_file, open_store
from store.errors import ClaimLostError, database_error
from store.memory import Shape, gib, physical_memory, shortfall, training_bytes
from store.params import RunParams
from store.records import RunRecord
from store.status import RunStatus
from store.workers import this_host, this_pid_space

log = logging.getLogger("dmf.worker")
T = TypeVar("T")

# A worker whose heartbeat is older than the store's grace (30 s) counts as dead; beating every few
# seconds leaves room for a database that is busy for a while.
HEARTBEAT_S = 5.0
# How often a training run asks the store whether someone cancelled it. The trainer calls
# should_stop every ~200 batches, which on a GPU can be many times a second.
CANCEL_CHECK_S = 0.5
# What one slot needs on a GPU: its own CUDA context (~0.5 GiB) plus an ML-1M-sized split and
# model with room to spare (on the CPU, a process with torch loaded and its split). Larger datasets
# need more; this only catches counts that cannot fit.
SLOT_MEMORY_BYTES = 1 << 30
# How often a running run's progress through its epoch is written: enough for the TUI, which polls
# about once a second, to show a long epoch moving; rarely enough to cost nothing.
PROGRESS_EVERY_S = 1.0
# A slot that crashes is restarted this many times, then left dead (a crash loop helps nobody).
MAX_RESTARTS = 3
# prctl(2) option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1
# The most runs a slot packs by default (`--pack`), by device kind. On CPU a pack's per-run step
# stops getting cheaper past about 8 runs, where Adam's pass over every parameter (which packing
# cannot share) dominates; a GPU has room for far more (bench/RESULTS.md, "Packed runs").
PACK_LIMIT = {"cpu": 8, "cuda": 64, "mps": 8}
# What stops a worker as Ctrl-C does; SIGHUP is a closed terminal (Windows has none).
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")


@dataclass(frozen=True)
class WorkerOptions:
    db: str | None = None  # a path or SQLAlchemy URL; None means the default database
    poll_s: float = 2.0  # how long to sleep when the queue is empty
    exit_when_empty: bool = False
    checkpoint_dir: Path | None = None  # where run-<id>.pt goes; None keeps no checkpoints
    # The most runs a slot claims and trains as one pack; None: PACK_LIMIT for its device, cut down
    # to what fits in memory once the runs' dataset is known (`pack_room`).
    pack: int | None = None


def plan_slots(*, gpus: str | None = None, slots_per_gpu: int = 1, slots: int | None = None) -> list[str]:
    """The device of each slot: `slots_per_gpu` on every GPU in `gpus` ("0,1" or "all"), else
    `slots` (default 1) on the default device (CUDA, then MPS, then CPU).

    GPU numbers are those CUDA sees, so CUDA_VISIBLE_DEVICES=2,3 with `--gpus 0,1` means physical
    GPUs 2 and 3. Raises DeviceError for a GPU that is not there, ConfigError for bad counts.
    """
    if gpus is None:
        if slots_per_gpu != 1:
            raise ConfigError("--slots-per-gpu needs --gpus (use --slots for CPU slots)")
        count = 1 if slots is None else slots
        if count < 1:
            raise ConfigError(f"--slots must be at least 1 (got {count})")
        ram = physical_memory()
        if ram is not None and count * SLOT_MEMORY_BYTES > ram:
            # Each slot is a process with torch loaded and a split in memory: a count far past the
            # machine's memory is a typo, which would otherwise spawn processes until it runs out.
            raise ConfigError(f"--slots {count} needs about {count} GiB for its processes but this machine "
                              f"has {gib(ram)}; use at most {ram // SLOT_MEMORY_BYTES}")
        # Not resolve_device("auto"): it would create a CUDA context in this process, which only
        # supervises when there are several slots. (With --gpus, _check_room's mem_get_info does
        # create one per listed GPU; that costs some memory in the supervisor, checked before start.)
        name = "cuda:0" if torch.cuda.is_available() else resolve_device("auto").type
        return [name] * count
    if slots is not None:
        raise ConfigError("--slots is for CPU slots; with --gpus use --slots-per-gpu")
    if slots_per_gpu < 1:
        raise ConfigError(f"--slots-per-gpu must be at least 1 (got {slots_per_gpu})")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    indices = list(range(visible)) if gpus.strip() == "all" else _parse_gpus(gpus)
    missing = [i for i in indices if i >= visible]
    if missing or not indices:
        shown = os.environ.get("CUDA_VISIBLE_DEVICES")
        note = f" (CUDA_VISIBLE_DEVICES={shown})" if shown is not None else ""
        which = f"GPU {missing[0]}" if missing else "a GPU"
        raise DeviceError(f"--gpus {gpus}: no {which} here; {visible} CUDA device(s) visible{note}")
    for index in indices:
        _check_room(index, slots_per_gpu)
    return [f"cuda:{i}" for i in indices for _ in range(slots_per_gpu)]


def _check_room(index: int, slots: int) -> None:
    """Refuse more slots than GPU `index` has free memory for, before any of them starts: a slot
    that runs out of memory later fails its runs one after another instead."""
    free, _total = torch.cuda.mem_get_info(index)
    need = slots * SLOT_MEMORY_BYTES
    if need > free:
        raise DeviceError(
            f"--slots-per-gpu {slots} needs about {need / 2**30:.1f} GiB on cuda:{index} "
            f"but {free / 2**30:.1f} GiB is free; use at most {int(free // SLOT_MEMORY_BYTES)} slots there"
        )


def _parse_gpus(text: str) -> list[int]:
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--gpus {text}: expected GPU numbers like 0,1 or 'all'") from None
    if any(i < 0 for i in indices):
        raise ConfigError(f"--gpus {text}: GPU numbers start at 0")
    return list(dict.fromkeys(indices))


class SplitCache:
    """Datasets and splits this process has loaded, so a queue of runs on one dataset reads it once.

    A dataset is keyed by its spec (plus a file's size and mtime, so an edited file is read again),
    a split by the dataset and the parameters that shape the split (test_size, split_seed, val_size:
    RunParams.engine_args("split")); a sweep over split seeds reads the
    file once too. Only the most recent few are kept: a 25M-rating dataset takes about a gigabyte.
    """

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._datasets: OrderedDict[Hashable, Dataset] = OrderedDict()
        self._splits: OrderedDict[Hashable, Split] = OrderedDict()
        # A load that a cancel left behind (unless_stopped) finishes in its thread while the next
        # run's load waits here, rather than both filling memory at once.
        self._lock = threading.Lock()

    def get(self, params: RunParams) -> Split:
        with self._lock:
            return self._get(params)

    def _get(self, params: RunParams) -> Split:
        data_key = _data_key(params.data)
        split_args = params.engine_args("split")
        split_key = (data_key, *sorted(split_args.items()))
        split = self._recall(self._splits, split_key)
        if split is None:
            dataset = self._recall(self._datasets, data_key)
            if dataset is None:
                dataset = load_dataset(params.data)
                self._remember(self._datasets, data_key, dataset)
            split = split_dataset(dataset, **split_args)
            self._remember(self._splits, split_key, split)
        return split

    def _recall(self, cache: OrderedDict[Hashable, T], key: Hashable) -> T | None:
        if key in cache:
            cache.move_to_end(key)
        return cache.get(key)

    def _remember(self, cache: OrderedDict[Hashable, T], key: Hashable, value: T) -> None:
        cache[key] = value
        while len(cache) > self.keep:
            cache.popitem(last=False)


def _data_key(spec: str) -> Hashable:
    try:
        stat = os.stat(spec)
    except OSError:
        return spec  # a dataset name, or a missing file that load_dataset will report
    return (os.path.abspath(spec), stat.st_size, stat.st_mtime_ns)


class Slot:
    """One slot: claims and trains runs on `device` until `stop` is set (or the queue is empty)."""

    def __init__(self, store: Store, device: str, options: WorkerOptions,
                 stop: threading.Event | None = None) -> None:
        self.store = store
        self.device = device
        self.options = options
        self.stop = stop or threading.Event()
        self.cache = SplitCache()
        self.worker_id: int | None = None

    def serve(self) -> int:
        """Register, reap, then claim and train runs until stopped; returns the exit code."""
        with registered(self.store, self.device) as self.worker_id:
            log.info("worker %d started on %s (pid %d)", self.worker_id, self.device, os.getpid())
            reap_lost(self.store)
            limit = self.options.pack or PACK_LIMIT.get(self.device.split(":")[0], 1)
            while not self.stop.is_set():
                try:
                    runs = self.store.claim_pack(self.worker_id, device=self.device, limit=limit)
                except DBAPIError as exc:  # say, a full disk: wait for it to be fixed
                    self.wait_out(exc, "cannot claim a run")
                    continue
                if runs:
                    self.train(runs)
                elif self.options.exit_when_empty:
                    log.info("worker %d: the queue is empty", self.worker_id)
                    break
                else:
                    self.stop.wait(self.options.poll_s)
        log.info("worker %d stopped", self.worker_id)
        return 0

    def train(self, runs: list[RunRecord]) -> list[str]:
        """Train claimed runs, a pack (or one run alone), to their end and record how each ended;
        returns each one's final status, or "dropped" for a run that stopped being this worker's
        meanwhile (see store/queue.py). What happens goes in each run's log, with every Python
        warning raised meanwhile."""
        claimed = [_Claimed(self, run) for run in runs]
        with warnings.catch_warnings():
            # Each warning once per place it is raised from, for this pack (the filters' reset makes
            # warnings that an earlier run already showed count again).
            warnings.simplefilter("default")
            warnings.showwarning = self._warning_logger([run.id for run in runs])
            try:
                self._train(claimed)
            except KeyboardInterrupt:
                for run in claimed:
                    if run.status is None:
                        run.note("interrupted: stopped at once by a second signal", level="warning")
                        run.end(RunStatus.INTERRUPTED, error="stopped at once by a second signal")
                raise
        return [run.status or "dropped" for run in claimed]

    def note(self, run_id: int, text: str, *, level: str = "info") -> None:
        """Add a line to the run's log. A line that cannot be written (a full disk) is given up:
        the log is never worth the run."""
        try:
            self.store.append_log(run_id, text, level=level)
        except Exception as exc:  # whatever it was, the run goes on
            log.warning("run %d: cannot write its log: %s", run_id, exc)

    def _warning_logger(self, run_ids: list[int]) -> Callable[..., None]:
        """A warnings.showwarning that writes the warning to the runs' logs (and the worker's)."""
        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
            text = f"{category.__name__}: {message} ({filename}:{lineno})"
            for run_id in run_ids:
                log.warning("run %d: %s", run_id, text)
                self.note(run_id, text, level="warning")
        return show

    def _train(self, claimed: list[_Claimed]) -> None:
        first = claimed[0]
        params, device = first.params, first.device
        ids = ", ".join(str(run.id) for run in claimed)
        pack = f" in a pack of {len(claimed)} (runs {ids})" if len(claimed) > 1 else ""
        for run in claimed:
            log.info("run %d: %s on %s%s", run.id, run.params.label(), device, pack)
            run.note(f"started by worker {self.worker_id} on {this_host()} (pid {os.getpid()}): "
                     f"{run.params.label()}, device {run.params.device} asked, {device} used{pack}")
        try:
            if device != self.device:
                for run in claimed:
                    self.store.set_device(run.id, device, worker_id=self.worker_id)
            split = unless_stopped(lambda: self.cache.get(params), lambda: all(run.should_stop() for run in claimed))
        except ClaimLostError as exc:
            for run in claimed:
                run.drop(exc)
            return
        except Exception as exc:  # the data or the device failed every run of the pack alike
            for run in claimed:
                run.ended(exc)
            return
        if split is None:  # stopped while the dataset loaded
            for run in claimed:
                run.ended(None)
            return
        for run in claimed:
            run.note(split_line(params.data, split))
        # The runs that fit in memory train together; the rest of the claim trains after them.
        room = pack_room(split, params, device, len(claimed))
        why = f"the device has room for {room} of the {len(claimed)} runs claimed together"
        if room > 1 and resolve_device(device).type == "cpu" and params.model not in HAND_GRADS:
            # Only the hand-written step gives each run of a pack its own figures bit for bit on CPU;
            # through autograd they would be a rounding apart, which a high rate can grow.
            room, why = 1, f"on the CPU only {' and '.join(HAND_GRADS)} runs train in packs"
        for start in range(0, len(claimed), max(1, room)):
            group = claimed[start:start + max(1, room)]
            try:
                if room < 1:
                    check_room(split, params, device)  # raises, with the reason
                if room < len(claimed):
                    self.store.set_pack([run.id for run in group], worker_id=self.worker_id)
                    trains = f"in a pack of {len(group)}" if len(group) > 1 else "alone"
                    for run in group:
                        run.note(f"{why}: this one trains {trains}")
                fit_pack(split, [run.fit_args() for run in group], on_end=partial(_ended, group))
            except Exception as exc:  # before training started (a refused option): every run fails alike
                for run in group:
                    if run.status is None:
                        run.ended(exc)

    def finish(self, run_id: int, status: RunStatus, *, error: str | None = None, checkpoint: str | None = None,
               ranking: Ranking | None = None) -> None:
        """Record how the run ended. A database that cannot be written now (a full disk) is waited
        out, so the run does not stay 'running'; once the worker is told to stop it gives up, and
        the run is marked lost when this process has exited."""
        while True:
            try:
                again = self.store.finish_run(run_id, status, error=error, worker_id=self.worker_id,
                                              checkpoint=checkpoint, ranking=ranking)
            except DBAPIError as exc:
                if self.stop.is_set():
                    log.error("run %d: cannot record it as %s (%s); left to be marked lost",
                              run_id, status, database_error(exc))
                    return
                self.wait_out(exc, f"run {run_id}: cannot record it as {status}")
            else:
                if again is not None:
                    log.info("run %d: queued again as run %d (automatic retry)", run_id, again)
                return

    def wait_out(self, exc: DBAPIError, what: str) -> None:
        """Log a database error that stops this worker for now, and wait before trying again."""
        log.error("%s: %s; trying again in %g s", what, database_error(exc), self.options.poll_s)
        self.stop.wait(self.options.poll_s)

    def device_for(self, params: RunParams) -> str:
        """The slot's device, unless the run named another kind (a `--device cpu` run on a GPU
        worker trains on the CPU). Any CUDA run goes to this slot's GPU: the slots share the GPUs."""
        wanted = params.device
        if wanted == "auto" or wanted.split(":")[0] == self.device.split(":")[0]:
            return self.device
        return wanted

    def checkpoint_path(self, run_id: int) -> Path | None:
        if self.options.checkpoint_dir is None:
            return None
        return checkpoint_file(self.options.checkpoint_dir, run_id)


def _ended(group: list[_Claimed], index: int, outcome: TrainResult | Exception) -> None:
    """fit_pack's on_end for the runs of `group`."""
    group[index].ended(outcome)


class _Claimed:
    """One claimed run as its slot trains it, alone or in a pack: its callbacks for the trainer (which
    write its epochs and progress and ask whether it should stop), and how it ends."""

    def __init__(self, slot: Slot, run: RunRecord) -> None:
        self.slot, self.id, self.params, self.trial = slot, run.id, run.params, run.trial
        self.device = slot.device_for(run.params)
        self.status: RunStatus | None = None  # once it has ended
        self.cancelled = _Throttled(lambda: slot.store.is_cancel_requested(run.id), CANCEL_CHECK_S)
        # Set when the trial's search prunes it: the trainer stops it before its next epoch.
        self.pruned = threading.Event()
        self.last_progress = time.monotonic()
        self.checkpoint = slot.checkpoint_path(run.id)
        if self.checkpoint is not None:
            # One left by a deleted run whose id this one reuses is not this run's model.
            self.checkpoint.unlink(missing_ok=True)

    def note(self, text: str, *, level: str = "info") -> None:
        self.slot.note(self.id, text, level=level)

    def fit_args(self) -> dict[str, Any]:
        """This run's arguments of engine.trainer.fit_pack."""
        return self.params.engine_args("fit") | {
            "device": self.device, "checkpoint_meta": self.params.to_dict(), "checkpoint_path": self.checkpoint,
            "on_epoch": self.on_epoch, "on_progress": self.on_progress, "should_stop": self.should_stop}

    def should_stop(self) -> bool:
        return self.slot.stop.is_set() or self.pruned.is_set() or self.cancelled()

    def on_epoch(self, stats: EpochStats) -> None:
        slot = self.slot
        record_epoch(slot.store, self.id, stats, worker_id=slot.worker_id)
        log.info("run %d: epoch %d test RMSE %.4f (%.1f s)", self.id, stats.epoch, stats.test_rmse, stats.seconds)
        self.note(epoch_line(stats))
        last = stats.epoch == self.params.epochs
        if self.trial is not None and not last and slot.store.should_prune(self.id, worker_id=slot.worker_id):
            self.pruned.set()
            self.note(f"pruned after epoch {stats.epoch}: its search's pruner found the curve behind the "
                      "other trials'")

    def on_progress(self, done: int, total: int) -> None:
        if done < total and time.monotonic() - self.last_progress >= PROGRESS_EVERY_S:
            self.slot.store.set_progress(self.id, done / total, worker_id=self.slot.worker_id)
            self.last_progress = time.monotonic()

    def ended(self, outcome: TrainResult | Exception | None) -> None:
        """Record how the run ended, from the trainer's outcome: its result, the error that ended it,
        or None when it stopped before training (while its dataset loaded)."""
        if isinstance(outcome, ClaimLostError):
            self.drop(outcome)
            return
        error = None
        if isinstance(outcome, Exception):  # a run's failure is recorded on the run; the queue goes on
            status, error = RunStatus.FAILED, failure_reason(outcome, self.device, self.params)
            # The error column keeps the reason; the log keeps the whole traceback.
            self.note("".join(traceback.format_exception(type(outcome), outcome, outcome.__traceback__)).rstrip(),
                      level="error")
        elif outcome is not None and outcome.stopped != "cancelled":
            status = RunStatus.DONE
        elif self.pruned.is_set():  # even if the worker was told to stop meanwhile: not to be run again
            status = RunStatus.PRUNED
        elif self.slot.store.is_cancel_requested(self.id):
            status = RunStatus.CANCELLED
        else:
            status = RunStatus.INTERRUPTED
        ranking = outcome.ranking if status == RunStatus.DONE and isinstance(outcome, TrainResult) else None
        if ranking is not None:
            self.note(ranking_line(ranking))
        try:
            self.end(status, error=error, ranking=ranking)
        except ClaimLostError as exc:
            self.drop(exc)
            return
        if status == RunStatus.FAILED and self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def end(self, status: RunStatus, *, error: str | None = None, ranking: Ranking | None = None) -> None:
        """Record the run's end as `status`."""
        ended = f"{status}{f': {error.splitlines()[0]}' if error else ''}"
        # Before the end is recorded: whoever follows the log (`logs --follow`, Run detail) stops
        # reading once it sees the run ended, and then has this line.
        self.note(f"ended {ended}", level="info" if status == RunStatus.DONE else "warning")
        # A run that failed or stopped after a best epoch keeps that epoch's checkpoint, usable too.
        kept = str(self.checkpoint) if self.checkpoint is not None and self.checkpoint.exists() else None
        self.slot.finish(self.id, status, error=error, checkpoint=kept, ranking=ranking)
        self.status = status
        log.info("run %d: %s", self.id, ended)

    def drop(self, exc: ClaimLostError) -> None:
        """The run stopped being this worker's (declared lost while this process was stopped): leave it."""
        log.warning("run %d: dropped, it is no longer this worker's: %s", self.id, exc)
        self.note(f"dropped by worker {self.slot.worker_id}: {exc}", level="warning")


def fit_run(split: Split, params: RunParams, device: str, **callbacks: Any) -> TrainResult:
    """fit() with a run's parameters on `device`, once check_room has let it."""
    check_room(split, params, device)
    return fit(split, **params.engine_args("fit") | {"device": device}, checkpoint_meta=params.to_dict(), **callbacks)


def check_room(split: Split, params: RunParams, device: str, runs: int = 1) -> None:
    """ConfigError, before anything is allocated, for `runs` runs like `params` (a pack) whose tables
    and Adam's state cannot fit on `device`: better at once than after they have grown the process
    until the system kills it. (The estimate is the one that refuses such a run when it is queued on a
    named dataset, store/memory.py; a file's shape is known only now.)"""
    have, where, free = _room(device)
    reason = shortfall(_pack_bytes(split, params, runs), have, where, free=free)
    if reason:
        raise ConfigError(reason)


def pack_room(split: Split, params: RunParams, device: str, runs: int) -> int:
    """How many of `runs` runs like `params` fit on `device` at once, as one pack (0: not even one)."""
    have, where, free = _room(device)
    if have is None or not shortfall(_pack_bytes(split, params, runs), have, where, free=free):
        return runs
    return max((n for n in range(runs) if not shortfall(_pack_bytes(split, params, n), have, where, free=free)),
               default=0)


def _pack_bytes(split: Split, params: RunParams, runs: int) -> int:
    """What `runs` runs like `params` need as one pack: one run's estimate each; every run shuffles its
    own copy of the training part, so that part of the estimate is every run's too."""
    dataset = split.dataset
    return runs * training_bytes(Shape(dataset.n_users, dataset.n_items, dataset.n_ratings), model=params.model,
                                 k=params.k, hidden=params.hidden, bias=params.bias, batch_size=params.batch_size)


def _room(device: str) -> tuple[int | None, str, bool]:
    """(bytes the device has for training, None where the system does not say; its name in a
    refusal; whether that is free memory rather than all of it)."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)  # what is free: other slots may share the GPU
        return free, f"the device ({dev})", True
    return physical_memory(), f"the device ({dev})", False  # MPS shares it too


def failure_reason(exc: BaseException, device: str, params: RunParams) -> str:
    """What a person needs to see on a failed run: the engine's own message for bad data,
    divergence or a bad option, a hint for out-of-memory, else a summary and the traceback's tail."""
    if isinstance(exc, EngineError):
        return str(exc)
    if isinstance(exc, DBAPIError):  # the database refused an epoch or progress write
        return f"database error: {database_error(exc)}"
    text = str(exc).strip()
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in text.lower():
        first = text.splitlines()[0] if text else ""
        return (f"out of memory on {device} with batch_size={params.batch_size}, k={params.k}: "
                f"use a smaller batch or model, or fewer slots per GPU ({first[:200]})")
    summary = f"{type(exc).__name__}: {text.splitlines()[0] if text else '(no message)'}"
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:]
    return summary + "\n" + "".join(tail).rstrip()


class _Throttled:
    """Calls `check` at most every `every_s` seconds and repeats its last answer in between."""

    def __init__(self, check: Callable[[], bool], every_s: float) -> None:
        self.check = check
        self.every_s = every_s
        self.last_at = float("-inf")
        self.answer = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last_at >= self.every_s:
            self.answer = self.check()
            self.last_at = now
        return self.answer


class Heartbeat(threading.Thread):
    """Beats for `worker_id` every `every_s` seconds until closed, so a long epoch never looks dead."""

    def __init__(self, store: Store, worker_id: int, every_s: float) -> None:
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)
        self.store = store
        self.worker_id = worker_id
        self.every_s = every_s
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                self.store.heartbeat(self.worker_id)
                # Also on every beat, so a worker that dies while others train shows up lost
                # within seconds, not only when the next worker starts.
                reap_lost(self.store)
            except Exception as exc:  # a database busy for a moment must not end the worker
                log.warning("worker %d: heartbeat failed: %s", self.worker_id, exc)

    def close(self) -> None:
        self.done.set()
        self.join()


@contextmanager
def registered(store: Store, device: str) -> Iterator[int]:
    """This process registered as a one-slot worker on `device`, with a heartbeat, for the block;
    yields the worker id. A run it trains and the process then dies with is marked lost (by the next
    worker or TUI that looks) instead of staying "running" forever. Finish its runs inside the
    block: once it is unregistered, a running run of its counts as lost."""
    worker_id = store.register_worker(pid=os.getpid(), host=this_host(), pid_space=this_pid_space(),
                                      devices=[device], slots=1)
    heartbeat = Heartbeat(store, worker_id, HEARTBEAT_S)
    heartbeat.start()
    try:
        yield worker_id
    finally:
        heartbeat.close()
        try:
            store.unregister_worker(worker_id)
        except DBAPIError as exc:  # a full disk, say: once this process is gone the row is closed anyway
            log.error("worker %d: cannot record that it stopped: %s", worker_id, database_error(exc))


def epoch_line(stats: EpochStats) -> str:
    """An epoch as the run's log shows it: the numbers of its row in the epochs table."""
    val = "" if stats.val_rmse is None else f", val RMSE {stats.val_rmse:.4f}"
    return (f"epoch {stats.epoch}: train RMSE {stats.train_rmse:.4f}, test RMSE {stats.test_rmse:.4f}{val} "
            f"({stats.seconds:.2f} s)")


def ranking_line(ranking: Ranking) -> str:
    """The best epoch's ranking metrics, as the run's log and `dmf-tui run` show them."""
    return (f"ranked the best epoch's model on the test part: Precision@10 {ranking.precision:.4f}, "
            f"Recall@10 {ranking.recall:.4f}, NDCG@10 {ranking.ndcg:.4f} ({ranking.users:,} users with a "
            "rating >= 4 there)")


def split_line(spec: str, split: Split) -> str:
    """The dataset a run trains on, as the run's log shows it: its shape and the split's."""
    data = split.dataset
    parts = [f"{len(split.train):,} train", *([f"{len(split.val):,} validation"] if len(split.val) else []),
             f"{len(split.test):,} test"]
    return (f"dataset {spec}: {data.n_ratings:,} ratings of {data.n_users:,} users and {data.n_items:,} items; "
            f"split {', '.join(parts)}")


def record_epoch(store: Store, run_id: int, stats: EpochStats, *, worker_id: int | None = None) -> None:
    store.record_epoch(run_id, stats.epoch, train_rmse=stats.train_rmse, test_rmse=stats.test_rmse,
                       val_rmse=stats.val_rmse, seconds=stats.seconds, ranking=stats.ranking, worker_id=worker_id)


def unless_stopped(work: Callable[[], T], should_stop: Callable[[], bool]) -> T | None:
    """work() (loading a dataset), or None if should_stop() turns true first: asked every
    CANCEL_CHECK_S while work runs in a helper thread, so a cancel or the first SIGTERM does not wait
    for a large file to be read. Work left behind finishes (or fails) on its own in that thread."""
    # What the helper thread leaves: work's value, or what it raised.
    values: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            values.append(work())
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    helper = threading.Thread(target=target, name="load", daemon=True)
    helper.start()
    while True:
        helper.join(CANCEL_CHECK_S)
        if not helper.is_alive():
            break
        if should_stop():
            return None
    if errors:
        raise errors[0]
    return values[0]


def reap_lost(store: Store) -> None:
    """Mark lost the runs of workers that died, and say so in the log."""
    lost = store.reap_lost()
    if lost:
        log.warning("marked run(s) %s lost: their worker died", ", ".join(map(str, lost)))


@contextmanager
def stop_on_signals(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """For the block, SIGTERM, SIGINT and SIGHUP (the terminal closed) set an event (`stop`, or a new
    one) instead of killing the process: the worker finishes its run and cleans up at the trainer's
    next check. A second signal means "now" and raises KeyboardInterrupt, which still records the
    run as interrupted. The previous handlers are put back after the block."""
    event = stop or threading.Event()
    # Counted apart from the event, which other things set too (stop_with_parent).
    signalled = False

    def handle(_signum: int, _frame: Any) -> None:
        nonlocal signalled
        if signalled:
            raise KeyboardInterrupt
        signalled = True
        event.set()

    signals = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, handle) for signum in signals}
    try:
        yield event
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_with_parent(parent_pid: int, stop: threading.Event) -> None:
    """Set `stop` (as SIGTERM does) when this process's parent `parent_pid`, a slot's supervisor,
    dies, even by kill -9: a slot left alone would train on unsupervised. Linux signals it at once
    (PR_SET_PDEATHSIG); elsewhere, and should the parent die before that is set, a thread sees the
    parent change within a second."""
    if sys.platform.startswith("linux"):
        # A signal of its own, not SIGTERM: the kernel sends it again each time the orphan is handed
        # on (to another thread of the dying parent, then to init), and a second SIGTERM means "now".
        signal.signal(signal.SIGUSR1, lambda _signum, _frame: stop.set())
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent_pid:
                log.warning("the supervisor (pid %d) is gone: stopping", parent_pid)
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker[%(process)d] %(message)s")


def serve_slot(device: str, options: WorkerOptions, stop: threading.Event | None = None) -> int:
    """Run one worker slot in this process until it is stopped (`stop` is set; by default, by a
    signal); returns the exit code."""
    with stop_on_signals(stop) as stop:
        store = open_store(options.db)
        try:
            code = Slot(store, device, options, stop).serve()
        finally:
            store.close()
    if stop.is_set():
        log.info("stopped by a signal")
    return code


def slot_threads(slots: int) -> int:
    """The torch threads of each of `slots` slot processes: a share of the cores. A row model's step
    (AutoRec, GLocal-K) is matrix products that use every thread torch has, and slots that each took
    every core would spin against one another: ten times slower, measured with two on two cores."""
    return max(1, (os.cpu_count() or 1) // slots)


def _slot_process(device: str, options: WorkerOptions, supervisor_pid: int, threads: int) -> None:
    configure_logging()
    torch.set_num_threads(threads)
    stop = threading.Event()
    stop_with_parent(supervisor_pid, stop)
    raise SystemExit(serve_slot(device, options, stop))


def run_slots(devices: list[str], options: WorkerOptions) -> int:
    """Run one slot per entry of `devices`: in this process for one, else as supervised children.

    Returns 0 when every slot ended cleanly, 1 when one crashed (and used up its restarts).
    """
    if len(devices) == 1:
        return serve_slot(devices[0], options)
    with stop_on_signals() as stop:
        return _supervise(devices, options, stop)


def _supervise(devices: list[str], options: WorkerOptions, stop: threading.Event) -> int:
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child

    def start(slot: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_slot_process,
                                  args=(devices[slot], options, os.getpid(), slot_threads(len(devices))),
                                  name=f"dmf-worker-slot-{slot}")
        process.start()
        log.info("slot %d on %s: pid %d", slot, devices[slot], process.pid)
        return process

    children = {slot: start(slot) for slot in range(len(devices))}
    restarts = dict.fromkeys(children, 0)
    crashed = False
    forwarded = False
    while children:
        if stop.is_set() and not forwarded:
            for process in children.values():
                process.terminate()  # SIGTERM: each slot ends its run as 'interrupted'
            forwarded = True
        multiprocessing.connection.wait([p.sentinel for p in children.values()], timeout=0.5)
        for slot, process in list(children.items()):
            if process.exitcode is None:
                continue
            del children[slot]
            if process.exitcode == 0 or stop.is_set():
                continue
            log.error("slot %d on %s (pid %d) died with exit code %d", slot, devices[slot], process.pid,
                      process.exitcode)
            if restarts[slot] < MAX_RESTARTS:
                # The new slot's start marks the dead one's run lost (its pid is gone).
                restarts[slot] += 1
                children[slot] = start(slot)
            else:
                crashed = True
    return 1 if crashed else 0
