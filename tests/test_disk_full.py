"""A full disk under the database: the worker waits it out instead of crashing or leaving its run
running, the CLI says so in one line, and nothing already stored is lost.

The database lives on a small tmpfs mounted for the test (this needs root, or the test is skipped),
which a file then fills up to the last byte.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import open_store
from tests.processes import LONG, Spawned, epochs_done, finished, params, wait_for, write_ratings


class Disk:
    """A tmpfs at `root` that fill() makes full and free() empties again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as out:
            block = b"\0" * 4096
            try:
                while True:
                    out.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def disk(tmp_path: Path):
    root = tmp_path / "disk"
    root.mkdir()
    # 16 MiB: room for the WAL to grow to its usual 4 MiB before the test fills the rest.
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(root)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield Disk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_a_cli_write_on_a_full_disk_is_one_line_and_keeps_what_was_stored(disk, capsys):
    db = str(disk.root / "runs.db")
    store = open_store(db)  # open, as a worker or the TUI keeps it: its WAL and shared memory exist
    kept = store.enqueue(params("synthetic-100k"))
    disk.fill()

    assert main(["--db", db, "add", "--data", "synthetic-100k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmf-tui: error: database error: disk full") and err.count("\n") == 1

    # Closed by everyone, the database cannot even be opened (SQLite cannot create its WAL).
    store.close()
    assert main(["--db", db, "add", "--data", "synthetic-100k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmf-tui: error: ") and err.count("\n") == 1

    disk.free()
    with open_store(db) as store:
        assert [run.id for run in store.queue()] == [kept]
    assert sqlite3.connect(db).execute("pragma integrity_check").fetchall() == [("ok",)]


def test_the_worker_fails_the_run_it_cannot_write_waits_and_goes_on(disk, tmp_path):
    db = disk.root / "runs.db"
    ratings = write_ratings(tmp_path / "u.data")
    store = open_store(str(db))
    long = store.enqueue(params(ratings, epochs=LONG))
    after = store.enqueue(params(ratings))
    log = tmp_path / "worker.log"
    with open(log, "ab") as out:
        worker = Spawned(
            [sys.executable, "-m", "dmf_tui", "--db", str(db), "worker", "--poll", "0.1", "--pack", "1",
             "--checkpoint-dir", "none"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    worker.log = log
    try:
        wait_for(epochs_done(store, long, 2), "two epochs of the long run")

        disk.fill()
        wait_for(lambda: "disk full" in log.read_text(), "the worker to meet the full disk")
        # The worker is still there, waiting, with its run not yet recorded as ended.
        assert worker.poll() is None and store.get_run(after).status == "queued"
        disk.free()

        wait_for(lambda: store.get_run(after).status == "done", "the worker to go on once there is room")
        failed = store.get_run(long)
        assert failed.status == "failed" and failed.error is not None and "disk full" in failed.error
        assert [e.epoch for e in store.epochs(long)] == list(range(1, failed.epoch + 1))
        worker.send_signal(signal.SIGTERM)
        assert finished(worker) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        store.close()
    assert "Traceback" not in log.read_text()
    assert sqlite3.connect(db).execute("pragma integrity_check").fetchall() == [("ok",)]
