"""Runs whose process went away: `dmf-tui run` stopped by a signal, listings that never show a dead
worker's run as running, and `add --retries` queueing a run again by itself."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy.exc import OperationalError

from dmf_tui.cli import main
from store.db import Store, open_store
from store.params import RunParams
from tests.processes import DEADLINE_S, LONG, dead_pid, wait_for, write_ratings

pytestmark = pytest.mark.backends


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_foreground_run_stopped_by_a_signal_ends_interrupted(db, tmp_path, signum):
    ratings = write_ratings(tmp_path / "u.data")
    process = subprocess.Popen(
        [sys.executable, "-m", "dmf_tui", "run", "--db", db, "--data", str(ratings), "--epochs", str(LONG),
         "--batch-size", "128", "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        store = open_store(db)
        wait_for(lambda: any(run.epoch >= 1 for run in store.leaderboard()), "an epoch of the run")

        process.send_signal(signum)

        assert process.wait(DEADLINE_S) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None  # a pipe
    err = process.stderr.read()
    (run,) = store.leaderboard()
    assert run.status == "interrupted" and len(store.epochs(run.id)) == run.epoch
    assert err.splitlines()[-1] == f"dmf-tui: interrupted: run {run.id} stopped after {run.epoch} epoch(s)"
    assert "Traceback" not in err
    assert [w.state for w in store.workers()] == ["stopped"]


def _run_of_a_dead_worker(db: str) -> int:
    with open_store(db) as store:
        worker = store.register_worker(pid=dead_pid(), host=socket.gethostname(), devices="cpu", slots=1)
        run_id = store.enqueue(RunParams(), retries=1)
        store.claim(worker, device="cpu")
    return run_id


@pytest.mark.parametrize("command, shown", [
    (["runs", "--status", "all"], " lost "), (["runs", "--status", "all", "--json"], '"status": "lost"'),
    (["show", "1"], "Run 1  lost"),
    (["worker", "status"], "no workers running"),
])
def test_listing_commands_mark_the_runs_of_dead_workers_lost(db, command, shown, capsys):
    run_id = _run_of_a_dead_worker(db)

    assert main(["--db", db, *command]) == 0

    assert shown in capsys.readouterr().out
    with open_store(db) as store:
        assert store.get_run(run_id).status == "lost"


def test_a_database_that_cannot_be_written_lists_a_dead_workers_run_as_it_is(db, monkeypatch, capsys):
    run_id = _run_of_a_dead_worker(db)

    def refuse(self, grace_s=None):
        raise OperationalError("UPDATE runs ...", {}, sqlite3.OperationalError("attempt to write a readonly database"))

    monkeypatch.setattr(Store, "reap_lost", refuse)

    assert main(["--db", db, "runs", "--status", "all", "--json"]) == 0

    assert [run["status"] for run in json.loads(capsys.readouterr().out)] == ["running"]
    assert open_store(db).get_run(run_id).status == "running"


def test_add_retries_queues_a_lost_run_again_and_show_says_so(db, capsys):
    assert main(["--db", db, "add", "--data", "synthetic-100k", "--retries", "2"]) == 0
    with open_store(db) as store:
        worker = store.register_worker(pid=dead_pid(), host=socket.gethostname(), devices="cpu", slots=1)
        (first,) = [run.id for run in store.queue()]
        store.claim(worker, device="cpu")
        assert store.get_run(first).retries == 2
    capsys.readouterr()

    assert main(["--db", db, "runs", "--status", "all"]) == 0

    with open_store(db) as store:
        lost, (again,) = store.get_run(first), [run for run in store.queue()]
    assert (lost.status, again.status, again.retries) == ("lost", "queued", 1)
    assert main(["--db", db, "show", str(again.id)]) == 0
    out = capsys.readouterr().out
    assert "retries left  1" in out and f"automatic retry of #{first}" in out


def test_add_refuses_a_bad_retry_count(db, capsys):
    assert main(["--db", db, "add", "--data", "synthetic-100k", "--retries", "-1"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: retries must be a whole number from 0 to 1000 (got -1)\n"
