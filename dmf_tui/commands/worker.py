"""`dmf-tui worker`: train queued runs until stopped; `worker status` and `worker stop` manage workers.

    dmf-tui worker                         one slot on the default device, in this terminal
    dmf-tui worker --detach                the same in the background; survives closing the terminal
    dmf-tui worker --gpus 0,1 --slots-per-gpu 2    four runs at once, two per GPU
    dmf-tui worker --slots 2               two runs at once on the CPU
    dmf-tui worker --pack 1                every run alone (by default a slot trains up to 8
                                           compatible runs on CPU, 64 on a GPU, as one pack)
    dmf-tui worker status [--json] [--all]
    dmf-tui worker stop [--wait S]

The engine (and so torch) is imported only inside the command that trains.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from store.db import CHECKPOINTS_SUFFIX, open_store, open_to_list, private_dir, resolve_url, state_path
from store.records import WorkerRecord
from store.status import RunStatus, WorkerState
from store.workers import by_host, is_this_machine

# What the worker keeps beside each database, named after it (runs.db -> runs.db.worker.log) so that
# two databases in one folder never share a log (nor checkpoints: store.db.CHECKPOINTS_SUFFIX).
LOG_SUFFIX = ".worker.log"
# More runs than this in one pack is a typo: each holds its own tables and Adam state.
MAX_PACK = 4096


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("worker", help="train queued runs until stopped; `worker status`, `worker stop`",
                            description="Train queued runs until stopped (SIGTERM or Ctrl-C ends the "
                            "current run as interrupted).")
    parser.add_argument("--detach", action="store_true", help="run in the background (log: "
                        "<database>.worker.log beside the database file)")
    parser.add_argument("--gpus", metavar="LIST", help="GPUs to use, e.g. 0,1 or all (numbered as "
                        "CUDA_VISIBLE_DEVICES shows them)")
    parser.add_argument("--slots-per-gpu", type=int, default=1, metavar="N", help="runs at once per GPU")
    parser.add_argument("--slots", type=int, metavar="N", help="runs at once without --gpus (default 1)")
    parser.add_argument("--pack", type=int, metavar="N", help="the most queued runs a slot trains at once as "
                        "one batched model (runs of one sweep that differ only in lr, weight decay, reg, seed, "
                        "epochs, ...; default 8 on CPU, 64 on a GPU, fewer when memory is short; 1: every run alone)")
    parser.add_argument("--exit-when-empty", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--poll", type=float, default=2.0, metavar="S", help="seconds between looks at an "
                        "empty queue (default 2)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--checkpoint-dir", metavar="DIR", help="where run-<id>.pt best-epoch checkpoints go, "
                       "for `recommend` and `similar` (default: <database>.checkpoints/ beside the database file)")
    where.add_argument("--no-checkpoint", action="store_true", help="keep no checkpoints (the same as "
                       "--checkpoint-dir none): the runs then cannot be used by `recommend` or `similar`")
    parser.set_defaults(func=_dispatch)

    actions = parser.add_subparsers(dest="worker_action", metavar="[status|stop]")
    status = actions.add_parser("status", help="list workers, their state, device and current run")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--all", action="store_true", help="include stopped workers")
    stop = actions.add_parser("stop", help="stop the workers running on this host (SIGTERM)")
    stop.add_argument("--wait", type=float, default=30.0, metavar="S",
                      help="seconds to wait for them to exit (default 30; 0 does not wait)")


def _dispatch(args: argparse.Namespace) -> int:
    if args.worker_action == "status":
        return _status(args)
    if args.worker_action == "stop":
        return _stop(args)
    return _work(args)


def _work(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError
    from engine.worker import WorkerOptions, configure_logging, plan_slots, run_slots

    # Written so that nan fails too; a wait of more than a day is a typo (and inf overflows the timer).
    if not 0 < args.poll <= 86400:
        raise ConfigError(f"--poll must be between 0 and 86400 seconds (got {args.poll})")
    if args.pack is not None and not 1 <= args.pack <= MAX_PACK:
        raise ConfigError(f"--pack must be between 1 and {MAX_PACK} runs (got {args.pack})")
    # Checked here, in the foreground, so a missing GPU or a bad database is reported in the
    # terminal rather than in the background worker's log.
    devices = plan_slots(gpus=args.gpus, slots_per_gpu=args.slots_per_gpu, slots=args.slots)
    url = resolve_url(args.db)
    open_store(url).close()
    if args.detach:
        return _detach(args, url, state_path(url, LOG_SUFFIX))

    checkpoints: Path | None
    if args.no_checkpoint or (args.checkpoint_dir or "").lower() == "none":
        checkpoints = None
    elif args.checkpoint_dir is None:
        checkpoints = state_path(url, CHECKPOINTS_SUFFIX)
    else:
        checkpoints = Path(args.checkpoint_dir).expanduser().absolute()
    if checkpoints is not None:
        private_dir(checkpoints)  # a checkpoint is the user's model: theirs alone
    configure_logging()
    options = WorkerOptions(db=url, poll_s=args.poll, exit_when_empty=args.exit_when_empty,
                            checkpoint_dir=checkpoints, pack=args.pack)
    return run_slots(devices, options)


def _detach(args: argparse.Namespace, url: str, log_path: Path) -> int:
    """Start the same worker in a new session, so closing the terminal (SIGHUP) does not reach it."""
    command = [sys.executable, "-m", "dmf_tui", "--db", url, "worker",
               "--slots-per-gpu", str(args.slots_per_gpu), "--poll", str(args.poll)]
    optional = (("--gpus", args.gpus), ("--slots", args.slots), ("--checkpoint-dir", args.checkpoint_dir),
                ("--pack", args.pack))
    for flag, value in optional:
        if value is not None:
            command += [flag, str(value)]
    if args.exit_when_empty:
        command.append("--exit-when-empty")
    if args.no_checkpoint:
        command.append("--no-checkpoint")
    private_dir(log_path.parent)
    # The log quotes lines of the user's ratings files in its errors: readable by its owner only.
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with open(log_fd, "ab") as log, open(os.devnull, "rb") as nothing:
        process = subprocess.Popen(command, stdin=nothing, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    print(f"worker started in the background: pid {process.pid}, log {log_path}")
    return 0


def _status(args: argparse.Namespace) -> int:
    with open_to_list(args.db) as store:
        workers = store.workers()
        # A worker's running runs: one, or a pack's.
        current: dict[int | None, list[int]] = {}
        for run in store.queue():
            if run.status == RunStatus.RUNNING:
                current.setdefault(run.worker_id, []).append(run.id)
        # Heartbeats carry the database's clock: their age is measured against it, not this machine's.
        now = store.database_now()
    shown = workers if args.all else [w for w in workers if w.state != WorkerState.STOPPED]
    if args.json:
        print(json.dumps([
            {"id": w.id, "state": w.state, "pid": w.pid, "host": w.host, "local": w.local,
             "devices": list(w.devices), "slots": w.slots, "run": min(current.get(w.id, []), default=None),
             "runs": sorted(current.get(w.id, [])),
             "started_at": w.started_at.isoformat(),
             "heartbeat_at": w.heartbeat_at.isoformat(),
             "stopped_at": w.stopped_at.isoformat() if w.stopped_at else None}
            for w in shown
        ], indent=2))
        return 0
    if not shown:
        print("no workers running" + ("" if args.all else " (--all lists stopped ones)"))
        return 0
    heading = ("ID", "STATE", "PID", "DEVICE", "RUN", "HEARTBEAT")
    rows = {w.id: _status_row(w, current.get(w.id, []), now) for w in shown}
    # One width per column across every host, so that the hosts' tables line up.
    widths = [max(len(row[i]) for row in [heading, *rows.values()]) for i in range(len(heading))]
    for number, (host, group) in enumerate(by_host(shown)):
        if number:
            print()
        print(_host_line(host, group))
        for row in [heading, *(rows[w.id] for w in group)]:
            print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    hidden = len(workers) - len(shown)
    if hidden:
        print(f"({hidden} stopped worker{'s' if hidden != 1 else ''} not shown; --all lists them)")
    return 0


def _host_line(host: str, workers: list[WorkerRecord]) -> str:
    """A host's name and how many of its workers are in each state: "box-b: 2 running, 1 stale"."""
    here = " (this machine)" if is_this_machine(host, workers) else ""
    states = [state for state in WorkerState if any(w.state == state for w in workers)]
    counts = ", ".join(f"{sum(w.state == state for w in workers)} {state}" for state in states)
    return f"{host}{here}: {counts}"


def _status_row(worker: WorkerRecord, runs: list[int], now: datetime) -> tuple[str, ...]:
    """A worker's line: its id, state, pid, devices, its run (a pack's as "#12 +7 (pack)") and how
    long ago it last beat."""
    ago = f"{(now - worker.heartbeat_at).total_seconds():.0f} s ago" if worker.state != WorkerState.STOPPED else "-"
    first = min(runs, default=None)
    training = "-" if first is None else f"#{first}" + (f" +{len(runs) - 1} (pack)" if len(runs) > 1 else "")
    return (str(worker.id), worker.state, str(worker.pid), ",".join(worker.devices), training, ago)


def _stop(args: argparse.Namespace) -> int:
    with open_store(args.db, create=False) as store:
        workers = store.workers(alive_only=True)
    for w in workers:
        if not w.local:
            print(f"worker {w.id} runs on {w.host}: stop it there")
    local = [w for w in workers if w.local]
    if not local:
        print("no worker is running on this host")
        return 0
    signalled = []
    for w in local:
        try:
            os.kill(w.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue  # it exited between the query and now
        except PermissionError:
            print(f"worker {w.id} (pid {w.pid}) belongs to another user: not stopped")
            continue
        signalled.append(w)
    deadline = time.monotonic() + args.wait
    waiting = list(signalled)
    while waiting and time.monotonic() < deadline:
        time.sleep(0.2)
        waiting = [w for w in waiting if _alive(w.pid)]
    for w in signalled:
        what = f"worker {w.id} (pid {w.pid}, {','.join(w.devices)})"
        if w in waiting:
            print(f"{what}: sent SIGTERM; it stops at its next check")
        else:
            print(f"{what}: stopped")
    return 0


def _alive(pid: int) -> bool:
    """Whether the process exists and has not exited. An exited process whose parent has not
    collected it yet (a zombie) still answers signal 0, so on Linux its state is read too."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): signal 0 is all we know
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
