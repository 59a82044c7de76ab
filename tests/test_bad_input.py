"""Bad input at the command line: one line naming it and exit 2 (or, where it is not an error, the
right behaviour), never a traceback; nothing stored is changed."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import open_store

HUGE = "9" * 30  # far beyond int64: SQLite raised OverflowError binding it


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "runs.db")
    assert main(["--db", path, "add", "--seed", "1,2"]) == 0  # runs 1 and 2, sweep 1
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("dmf-tui: error: ") and err.count("\n") == 1, err
    return err.removeprefix("dmf-tui: error: ").strip()


@pytest.mark.parametrize("command", [["show", HUGE], ["cancel", "1", HUGE], ["retry", HUGE], ["move", HUGE, "1"]])
def test_an_id_beyond_int64_is_simply_not_there(db, command, capsys):
    capsys.readouterr()
    assert main(["--db", db, *command]) == 2
    assert one_line_error(capsys) == f"no run with id {HUGE}"
    assert [(r.id, r.status) for r in open_store(db).queue()] == [(1, "queued"), (2, "queued")]


def test_sweep_and_top_beyond_int64_list_what_matches(db, capsys):
    capsys.readouterr()
    assert main(["--db", db, "runs", "--sweep", HUGE]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "No runs match."
    assert open_store(db).leaderboard(sweep_id=-int(HUGE)) == []  # the TUI's `sweep:` filter comes here
    assert main(["--db", db, "runs", "--top", HUGE, "--status", "all", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--k", HUGE], f"k: must fit in 64 bits (below 2**63) (got {HUGE})"),
        (["--seed", f"1,{HUGE}"], f"seed: must fit in 64 bits (below 2**63) (got {HUGE})"),
        (["--model", "deepmf", "--hidden", "10,,5"], "hidden: '10,,5' is not sizes like 10,5"),
        (["--lr", "inf"], "lr: must be a finite number (got inf)"),
        (["--data", "/dev/zero"], "data: '/dev/zero' is not a regular file (a FIFO, a device or a socket?)"),
    ],
)
def test_add_refuses_bad_parameters_and_queues_nothing(db, flags, message, capsys):
    capsys.readouterr()
    assert main(["--db", db, "add", *flags]) == 2
    assert one_line_error(capsys) == message
    assert open_store(db).count_runs() == 2


def test_add_refuses_a_run_too_big_for_this_machine(db, capsys):
    capsys.readouterr()
    assert main(["--db", db, "add", "--data", "synthetic-100k", "--k", "100000000"]) == 2
    message = one_line_error(capsys)
    assert message.startswith("mf k=100000000 lr=0.001 on synthetic-100k: needs about ")
    assert "this machine has" in message
    assert open_store(db).count_runs() == 2


@pytest.mark.parametrize("target", ["DIR", "DIR/missing/runs.csv", "/dev/full"])
def test_export_to_where_it_cannot_write_is_one_line(db, tmp_path, target, capsys):
    if target == "/dev/full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    target = target.replace("DIR", str(tmp_path))
    capsys.readouterr()
    assert main(["--db", db, "export", "--csv", target]) == 2
    reason = {"DIR": "Is a directory", "DIR/missing/runs.csv": "No such file or directory",
              "/dev/full": "No space left on device"}
    assert one_line_error(capsys) == f"cannot write {target}: " + next(
        why for name, why in reason.items() if target == name.replace("DIR", str(tmp_path)))


def test_export_to_dash_writes_the_csv_to_stdout(db, capsys):
    capsys.readouterr()
    assert main(["--db", db, "export", "--csv", "-"]) == 0
    out, err = capsys.readouterr()
    assert [row["seed"] for row in csv.DictReader(io.StringIO(out))] == ["1", "2"]
    assert err == "Wrote 2 runs to stdout\n"
    assert not Path("-").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "--top", "0"],
        ["export", "--csv", "-"],
        ["add", "--dry-run", "--k", ",".join(map(str, range(1, 101))), "--seed", ",".join(map(str, range(30)))],
    ],
)
def test_output_into_a_closed_pipe_ends_quietly(db, command):
    """`dmf-tui runs | head -1`: the reader is gone (here before anything is written, so the write
    always fails); exit 141 as `git log | head` does, and nothing on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "dmf_tui", "--db", db, *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


def test_training_into_a_closed_pipe_stops_the_run_quietly(tmp_path):
    """`dmf-tui run | head -1`: once the reader is gone the run stops as if signalled, ends
    'interrupted' with the reason, and the command exits 141 without a traceback."""
    data = tmp_path / "u.data"
    data.write_text("".join(f"{u}\t{i}\t{(u + i) % 5 + 1}\t0\n" for u in range(1, 31) for i in range(1, 11)))
    db = str(tmp_path / "runs.db")
    proc = subprocess.Popen([sys.executable, "-m", "dmf_tui", "--db", db, "run", "--data", str(data),
                             "--device", "cpu", "--epochs", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err
    (run,) = open_store(db).leaderboard()
    assert (run.status, run.error) == ("interrupted", "stopped: the reader of its output went away")
    assert run.epoch >= 1


def test_a_negative_top_is_refused(db, capsys):
    """SQLite reads LIMIT -1 as no limit: `--top -1` listed every run."""
    with pytest.raises(SystemExit) as exit_:
        main(["--db", db, "runs", "--top", "-1"])
    assert exit_.value.code == 2
    assert "argument --top: must be 0 or more (got -1)" in capsys.readouterr().err


@pytest.mark.parametrize("poll", ["inf", "nan", "-1", "1e300"])
def test_worker_poll_must_be_a_sane_number_of_seconds(db, poll, capsys):
    capsys.readouterr()
    assert main(["--db", db, "worker", "--poll", poll, "--exit-when-empty"]) == 2
    assert one_line_error(capsys).startswith("--poll must be between 0 and 86400 seconds")
