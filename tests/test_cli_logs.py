"""`dmf-tui logs RUN [--follow]`, and `add` refusing a dataset that cannot be used."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import open_store
from store.params import RunParams
from tests.conftest import HOSTILE

PARAMS = RunParams(data="synthetic-100k")


def test_logs_prints_the_lines_as_plain_text(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store(db) as store:
        run_id = store.start_run(PARAMS, device="cpu").id
        store.append_log(run_id, "started")
        store.append_log(run_id, "Traceback (most recent call last):\n" + "\n".join(HOSTILE), level="error")
    assert main(["--db", db, "logs", str(run_id)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[20:] for line in lines[:2]] == ["info    started", "error   Traceback (most recent call last):"]
    assert lines[2:] == list(HOSTILE)  # a line's own lines as they are, never read as markup
    assert lines[0][4] == "-" and lines[0][13] == ":"  # a local date and time


def test_a_run_without_a_log_says_so(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store(db) as store:
        run_id = store.start_run(PARAMS, device="cpu").id
        store.finish_run(run_id, "failed", error="diverged: loss became nan")
    assert main(["--db", db, "logs", str(run_id)]) == 0
    assert capsys.readouterr().out == f"(no log: run {run_id} is failed; diverged: loss became nan)\n"


def test_logs_of_an_unknown_run(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    open_store(db).close()
    assert main(["--db", db, "logs", "5"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: no run with id 5\n"


def test_follow_prints_new_lines_until_the_run_ends(db: str, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(db)
    run_id = store.start_run(PARAMS, device="cpu").id
    store.append_log(run_id, "started")
    # What the worker does while `logs --follow` waits: an epoch, then its last line and its end.
    happenings = ["epoch 1", "ended done"]

    def worker_meanwhile(_seconds: float) -> None:
        store.append_log(run_id, happenings.pop(0))
        if not happenings:
            store.finish_run(run_id, "done")

    monkeypatch.setattr(time, "sleep", worker_meanwhile)

    assert main(["--db", db, "logs", "--follow", str(run_id)]) == 0

    assert [line[28:] for line in capsys.readouterr().out.splitlines()] == ["started", "epoch 1", "ended done"]
    assert happenings == []
    store.close()


def test_add_refuses_a_dataset_that_cannot_be_used(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    for dry_run in ([], ["--dry-run"]):
        assert main(["--db", db, "add", "--data", "nosuch", *dry_run]) == 2
        err = capsys.readouterr().err
        assert err.startswith("dmf-tui: error: unknown dataset 'nosuch' (and no such file): known names are ml-100k")
        assert err.count("\n") == 1
        assert main(["--db", db, "add", "--data", "synthetic-100k,ml-1m", *dry_run]) == 2
        assert capsys.readouterr().err == (
            f"dmf-tui: error: dataset ml-1m is not in {tmp_path / 'data'} yet: run `dmf-tui data fetch ml-1m`, "
            "or use --data synthetic-1m to train offline\n")
        assert main(["--db", db, "add", "--data", str(tmp_path / "gone.data"), *dry_run]) == 2
        assert capsys.readouterr().err == f"dmf-tui: error: no such file: {tmp_path / 'gone.data'}\n"
    assert not Path(db).exists()  # nothing queued, nothing created


def test_add_without_data_takes_the_last_one_used_else_one_present(db: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "ml-100k").mkdir(parents=True)
    (data / "ml-100k" / "u.data").write_text("1\t1\t3\t0\n")
    monkeypatch.setenv("DMF_DATA_DIR", str(data))
    assert main(["--db", db, "add", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "  1. model=mf data=ml-100k"
    assert main(["--db", db, "add", "--data", "synthetic-1m"]) == 0
    assert main(["--db", db, "add", "--k", "8"]) == 0
    with open_store(db) as store:
        assert [run.params.data for run in store.queue()] == ["synthetic-1m", "synthetic-1m"]
