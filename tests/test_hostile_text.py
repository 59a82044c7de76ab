"""Text from the database is data, never markup: `runs`, `show` and `runs --json` print a run
whose every text field holds Rich markup (or an :emoji: code) exactly as it was stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import open_store
from store.params import RunParams


@pytest.fixture
def db(tmp_path: Path, hostile: str) -> str:
    """A failed run whose dataset, device, error, notes, tags and sweep name hold `hostile`."""
    path = str(tmp_path / "runs.db")
    with open_store(path) as store:
        worker = store.register_worker(pid=1, host=f"HOST={hostile}", devices=f"WKR={hostile}", slots=1)
        store.enqueue_grid([RunParams(data=f"DS={hostile}")], name=hostile)
        run = store.claim(worker, device=f"DEV={hostile}")
        assert run is not None, "nothing was claimed"
        store.record_epoch(run.id, 1, train_rmse=0.9, test_rmse=1.0, seconds=1.0)
        store.finish_run(run.id, "failed", error=f"ERR={hostile} in line 3\n(traceback follows)")
        store.set_notes(run.id, f"NOTE={hostile}")
        store.set_tags(run.id, [f"TAG={hostile}"])
    return path


def test_runs_prints_stored_text_as_typed(db: str, hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "runs", "--status", "all"]) == 0
    assert f"DS={hostile}" in capsys.readouterr().out


def test_show_prints_stored_text_as_typed(db: str, hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "show", "1"]) == 0
    out = capsys.readouterr().out
    for marker in ("DS=", "DEV=", "ERR=", "NOTE=", "TAG="):
        assert f"{marker}{hostile}" in out, f"{marker}{hostile} is not in:\n{out}"


def test_runs_json_keeps_stored_text(db: str, hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "runs", "--status", "all", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["params"]["data"], run["ran_on"], run["notes"], run["tags"]) == (
        f"DS={hostile}", f"DEV={hostile}", f"NOTE={hostile}", [f"TAG={hostile}"])
    assert run["error"].startswith(f"ERR={hostile} in line 3")


def test_data_list_prints_a_data_folder_as_typed(tmp_path: Path, hostile: str, monkeypatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["data", "list", "--data-dir", f"D={hostile}"]) == 0
    assert f"Datasets in D={hostile}" in capsys.readouterr().out
