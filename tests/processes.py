"""What the tests that run real worker processes share: a tiny ratings file, runs on it, waiting
for a condition with a deadline, and processes whose exit and log a test can read."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from store.db import Store
from store.params import RunParams

LONG = 1_000_000  # epochs of a run that only ends when stopped
DEADLINE_S = 90.0


def write_ratings(path: Path, n_users: int = 60, n_items: int = 30, n: int = 900, seed: int = 0) -> Path:
    """A small u.data-style file (tab-separated user, item, rating, timestamp)."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    lines = [f"{p // n_items + 1}\t{p % n_items + 1}\t{rng.integers(1, 6)}\t{880000000 + i}"
             for i, p in enumerate(pairs)]
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def epochs_done(store: Store, run_id: int, at_least: int) -> Callable[[], bool]:
    return lambda: store.get_run(run_id).epoch >= at_least


def params(data: Path | str, **changes) -> RunParams:
    return RunParams(data=str(data), epochs=3, batch_size=128, device="cpu").replace(**changes)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): what a worker killed with -9 leaves."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class Spawned(subprocess.Popen[bytes]):
    """A process `spawn` started, with the file its output goes to."""

    log: Path


def finished(process: subprocess.Popen[Any], timeout: float = DEADLINE_S) -> int:
    """The exit code of `process`; an AssertionError if it does not exit in time, with the end of its log
    when `spawn` started it."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        if not isinstance(process, Spawned):
            raise AssertionError("process did not exit") from None
        raise AssertionError(f"process did not exit; its log:\n{process.log.read_text()[-3000:]}") from None


def stop_outside_a_write(process: subprocess.Popen, db: str) -> None:
    """SIGSTOP the process at a moment it holds no write lock on the database `db` (a SQLite path or a
    server URL): stopped inside a write, it would keep every other writer waiting (on SQLite) or hold
    its rows (on a server); that is not what these tests are about."""
    while True:
        process.send_signal(signal.SIGSTOP)
        if _no_write_open(db):
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.01)


def _no_write_open(db: str) -> bool:
    if "://" not in db:
        probe = sqlite3.connect(db, timeout=0.05, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()
    # A server: no other connection to this (the test's own) database is inside a transaction.
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            busy = conn.scalar(text("select count(*) from pg_stat_activity where datname = current_database() "
                                    "and pid <> pg_backend_pid() and xact_start is not null"))
        return bool(busy == 0)
    finally:
        engine.dispose()


def fit_pack_through(fit: Callable[..., Any]) -> Callable[..., list[Any]]:
    """A stand-in for engine.trainer.fit_pack that trains each run of its pack alone through `fit` (a
    test's fault-injecting wrapper of engine.trainer.fit), handing each outcome to `on_end` as the
    real one does: for tests of how the worker records what happened to a run."""
    def fit_pack(split: Any, runs: list[dict[str, Any]], on_end: Callable[[int, Any], None] | None = None) -> list[Any]:
        outcomes: list[Any] = []
        for index, run in enumerate(runs):
            try:
                outcome = fit(split, **run)
            except Exception as exc:
                outcome = exc
            outcomes.append(outcome)
            if on_end is not None:
                on_end(index, outcome)
        return outcomes
    return fit_pack
