"""`dmf-tui run`: the lab's epoch lines, JSON lines, what it records, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dmf_tui.cli import main
from store.db import open_store

LAB_LINE = re.compile(r"^\[\d+\.\d\d\] Epoch: {1,3}\d+, TrnRMSE: \d\.\d{4}, TestRMSE: \d\.\d{4}$")


def test_prints_one_lab_line_per_epoch_and_records_the_run(ml100k_path, db, capsys):
    assert main(["run", "--db", db, "--data", str(ml100k_path), "--epochs", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(LAB_LINE.match(line) for line in lines), lines
    assert [line.split(",")[0].split()[-1] for line in lines] == ["1", "2", "3"]

    store = open_store(db)
    (run,) = store.leaderboard()
    assert (run.status, run.params.model, run.epoch, run.params.data) == ("done", "mf", 3, str(ml100k_path.resolve()))
    printed_test = [float(line.rsplit(" ", 1)[1]) for line in lines]
    stored_test = [e.test_rmse for e in store.epochs(run.id)]
    assert [None if rmse is None else round(rmse, 4) for rmse in stored_test] == printed_test
    assert store.workers(alive_only=True) == []  # the run's own registration is gone


def test_json_prints_one_object_per_epoch(db, capsys):
    assert main(["run", "--db", db, "--data", "synthetic-100k", "--model", "deepmf", "--epochs", "2",
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"epoch", "train_rmse", "test_rmse", "seconds"} <= set(rows[0])
    assert all(0 < r["test_rmse"] < 5 for r in rows)


def _bad_ratings(tmp_path: Path) -> str:
    path = tmp_path / "u.data"
    path.write_text("1\t1\t5\t0\n2\t1\tfive\t0\n")
    return str(path)


def _wide_ratings(tmp_path: Path) -> str:
    """60 users and 60 items: with k = 100,000,000 their tables alone need 96 GB."""
    path = tmp_path / "wide.data"
    path.write_text("".join(f"{i}\t{i}\t4\t0\n" for i in range(1, 61)))
    return str(path)


def _fifo(tmp_path: Path) -> str:
    path = tmp_path / "ratings.fifo"
    os.mkfifo(path)  # reading it would block until a writer comes: it must be refused unopened
    return str(path)


PLACEHOLDERS = {"BAD": _bad_ratings, "FIFO": _fifo}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr", "-1"], "lr: must be > 0"),
        (["--lr", "0"], "lr: must be > 0"),
        (["--k", "0"], "k: must be > 0"),
        (["--epochs", "0"], "epochs: must be > 0"),
        (["--batch-size", "-5"], "batch_size: must be > 0"),
        (["--test-size", "1.5"], "test_size: must be between 0 and 1"),
        (["--model", "svd"], "model: must be one of mf, deepmf"),
        (["--lr", "1e-3,1e-2"], "queue a grid with `dmf-tui add`"),
        (["--data", "ml-7m"], "ml-7m"),
        (["--data", "/no/such/ratings.dat"], "/no/such/ratings.dat"),
        (["--data", "BAD"], "line 2"),
        (["--data", "FIFO"], "is not a regular file"),
        (["--k", "9" * 30], "k: must fit in 64 bits"),
        (["--model", "deepmf", "--hidden", "10,,5"], "hidden: '10,,5' is not sizes like 10,5"),
        (["--data", "synthetic-100k", "--k", "100000000"], "this machine has"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(flags, message, db, tmp_path, capsys):
    flags = [PLACEHOLDERS[f](tmp_path) if f in PLACEHOLDERS else f for f in flags]
    assert main(["run", "--db", db, "--data", "synthetic-100k", "--epochs", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmf-tui: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_a_model_too_big_for_the_device_fails_before_allocating(db, tmp_path, capsys):
    """A file's shape is only known once it is read, so training refuses it (today the process grew
    past 8 GB first); the run is recorded failed with the same reason."""
    assert main(["run", "--db", db, "--data", _wide_ratings(tmp_path), "--k", "100000000"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"dmf-tui: error: needs about [\d,.]+ GiB .*, the device \(\w+(:\d+)?\) has [\d,.]+ GiB( free)?", last), err
    assert "Traceback" not in err
    (run,) = open_store(db).leaderboard()
    assert run.status == "failed" and run.error == last.removeprefix("dmf-tui: error: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_where_there_is_none_is_an_error(db, capsys):
    assert main(["run", "--db", db, "--data", "synthetic-100k", "--device", "cuda:1"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_a_killed_run_is_marked_lost_not_left_running(db):
    """kill -9 of a foreground run: the next look at the store (a worker start, the TUI) marks it lost."""
    proc = subprocess.Popen([sys.executable, "-m", "dmf_tui", "run", "--db", db, "--data", "synthetic-100k",
                             "--epochs", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            runs = open_store(db).leaderboard() if Path(db).exists() else []
            if runs and runs[0].epoch >= 1:
                break
            assert time.monotonic() < deadline and proc.poll() is None, "the run never finished an epoch"
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = open_store(db)
    assert store.reap_lost() == [runs[0].id]
    run = store.get_run(runs[0].id)
    assert run.status == "lost" and run.epoch >= 1 and len(store.epochs(run.id)) == run.epoch
