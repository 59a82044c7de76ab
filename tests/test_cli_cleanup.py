"""`dmf-tui delete`, `archive`, `unarchive`, and `cancel`/`retry --sweep`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import open_store
from store.params import RunParams

PARAMS = RunParams(data="synthetic-100k")


class Terminal(io.StringIO):
    """Standard input that is a terminal, holding what a person types there."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Runs 1 and 2 done (with an epoch each), 3 running, 4 queued."""
    path = str(tmp_path / "runs.db")
    with open_store(path) as store:
        for k in (1, 2):
            run = store.start_run(PARAMS.replace(k=k), device="cpu")
            store.record_epoch(run.id, 1, train_rmse=1.0, test_rmse=1.1, seconds=1)
            store.finish_run(run.id, "done")
        store.start_run(PARAMS, device="cpu")
        store.enqueue(PARAMS)
    return path


def _ids(db: str) -> list[int]:
    with open_store(db) as store:
        return sorted(run.id for run in store.leaderboard())


def test_delete_asks_on_a_terminal(db: str, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert main(["--db", db, "delete", "1", "2", "1"]) == 0
    assert capsys.readouterr().out == "delete 2 runs and their epochs and checkpoints? [y/N] nothing deleted\n"
    assert _ids(db) == [1, 2, 3, 4]
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert main(["--db", db, "delete", "1", "4"]) == 0
    assert capsys.readouterr().out == "delete 2 runs and their epochs and checkpoints? [y/N] deleted 2 runs\n"
    assert _ids(db) == [2, 3]
    with open_store(db) as store:
        assert store.epochs(1) == []


def test_delete_without_a_terminal_needs_yes(db: str, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["--db", db, "delete", "1"]) == 2
    assert capsys.readouterr().err == ("dmf-tui: error: delete asks before deleting, and there is no terminal "
                                       "to ask in: add --yes\n")
    assert _ids(db) == [1, 2, 3, 4]
    assert main(["--db", db, "delete", "--yes", "1"]) == 0
    assert capsys.readouterr().out == "deleted 1 run\n"
    assert _ids(db) == [2, 3, 4]


def test_delete_refuses_a_running_run_and_an_unknown_one(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "delete", "--yes", "2", "3"]) == 2
    assert capsys.readouterr().err == ("dmf-tui: error: cannot delete: run 3 is running (cancel it first: "
                                       "dmf-tui cancel ID)\n")
    assert main(["--db", db, "delete", "--yes", "2", "99"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: no run with id 99\n"
    assert _ids(db) == [1, 2, 3, 4]


def test_archive_and_unarchive(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "archive", "1", "2"]) == 0
    assert main(["--db", db, "archive", "2"]) == 0
    assert main(["--db", db, "unarchive", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "archived 2 runs", "archived 0 runs (1 already were)", "unarchived 1 run"]
    with open_store(db) as store:
        assert [store.get_run(i).archived for i in (1, 2)] == [False, True]
    assert main(["--db", db, "archive", "7"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: no run with id 7\n"


def test_cancel_and_retry_a_sweep_by_name_or_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "runs.db")
    with open_store(db) as store:
        sweep, (failed, running, queued) = store.enqueue_grid([PARAMS.replace(k=k) for k in (1, 2, 3)],
                                                              name="lr-grid")
        store.claim(None, device="cpu")
        store.finish_run(failed, "failed", error="diverged")
        store.claim(None, device="cpu")
    assert main(["--db", db, "cancel", "--sweep", "lr-grid"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"run {running}: cancelling (its worker stops it within an epoch)", f"run {queued}: cancelled"]
    assert main(["--db", db, "retry", "--sweep", str(sweep)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"run {failed}: queued again as run 4"]
    with open_store(db) as store:
        assert (store.get_run(4).sweep_name, store.get_run(4).status) == ("lr-grid", "queued")


def test_sweep_bad_input(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "cancel", "--sweep", "nosuch"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: no sweep named 'nosuch'\n"
    assert main(["--db", db, "retry", "--sweep", "nosuch", "1"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: retry: give run ids or --sweep NAME|ID, not both or neither\n"
    assert main(["--db", db, "cancel"]) == 2
    assert "give run ids or --sweep" in capsys.readouterr().err
    with open_store(db) as store:
        assert store.get_run(4).status == "queued"
