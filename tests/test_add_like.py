"""`dmf-tui add --like RUN`: a copy of RUN with only the given flags changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import open_store
from store.params import RunParams

SOURCE = RunParams(model="deepmf", data="synthetic-100k", k=7, hidden=(12, 6), lr=1 / 3 * 1e-2, epochs=3,
                   val_size=0.15, patience=2, dropout=0.05, bias=True, init_std=0.02, device="cpu")


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "runs.db")
    with open_store(path) as store:
        store.enqueue(SOURCE, retries=2)
    return path


def test_like_keeps_every_parameter_but_the_given_ones(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "add", "--like", "1", "--lr", "0.01,0.02", "--name", "lr again"]) == 0
    assert capsys.readouterr().out.strip() == "Queued 2 runs (sweep 1): ids 2-3"
    with open_store(db) as store:
        copies = [store.get_run(i) for i in (2, 3)]
    assert [run.params for run in copies] == [SOURCE.replace(lr=0.01), SOURCE.replace(lr=0.02)]
    assert [run.retries for run in copies] == [2, 2]


def test_like_takes_retries_from_the_flag_when_given(db: str) -> None:
    assert main(["--db", db, "add", "--like", "1", "--retries", "0"]) == 0
    with open_store(db) as store:
        assert (store.get_run(2).params, store.get_run(2).retries) == (SOURCE, 0)


def test_like_an_unknown_run_is_one_line_and_queues_nothing(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "add", "--like", "99", "--lr", "0.01"]) == 2
    assert capsys.readouterr().err.strip() == "dmf-tui: error: no run with id 99"
    with open_store(db) as store:
        assert [run.id for run in store.queue()] == [1]


def test_like_with_dry_run_shows_the_copy(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "add", "--like", "1", "--k", "9", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Would queue 1 run:", "  1. model=deepmf data=synthetic-100k k=9"]
