"""Queries: the leaderboard, counts, comparisons and CSV export."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from store.db import Store
from store.errors import StoreError, UnknownRunError
from store.params import RunParams


def _finished(store: Store, params: RunParams, tests: list[float], status: str = "done") -> int:
    run = store.start_run(params, device="cpu")
    for epoch, test in enumerate(tests, start=1):
        store.record_epoch(run.id, epoch, train_rmse=test - 0.1, test_rmse=test, seconds=1.0)
    store.finish_run(run.id, status)
    return run.id


@pytest.fixture
def history(store: Store) -> dict[str, int]:
    return {
        "mf": _finished(store, RunParams(model="mf", lr=1e-2), [1.2, 0.95]),
        "deepmf": _finished(store, RunParams(model="deepmf", data="ml-100k"), [1.0, 0.90, 0.92]),
        "failed": _finished(store, RunParams(model="mf", k=32), [1.1], status="failed"),
        "queued": store.enqueue(RunParams(model="deepmf")),
    }


def test_ranked_by_best_test_rmse_with_unranked_last(store: Store, history: dict[str, int]) -> None:
    ranked = [r.id for r in store.leaderboard()]
    assert ranked == [history["deepmf"], history["mf"], history["failed"], history["queued"]]
    assert store.leaderboard(descending=True)[-1].id == history["queued"]


def test_filters(store: Store, history: dict[str, int]) -> None:
    assert [r.id for r in store.leaderboard(status="done")] == [history["deepmf"], history["mf"]]
    assert {r.id for r in store.leaderboard(status=["failed", "queued"])} == {history["failed"], history["queued"]}
    assert {r.id for r in store.leaderboard(model="deepmf")} == {history["deepmf"], history["queued"]}
    assert [r.id for r in store.leaderboard(data="ml-100k")] == [history["deepmf"]]
    assert store.count_runs(model="mf") == 2
    with pytest.raises(StoreError, match="unknown status"):
        store.leaderboard(status="finished")


def test_text_search_covers_notes_tags_and_errors(store: Store, history: dict[str, int]) -> None:
    store.set_notes(history["mf"], "The 100% BASELINE")
    store.set_tags(history["deepmf"], ["paper"])
    assert [r.id for r in store.leaderboard(text="baseline")] == [history["mf"]]
    assert [r.id for r in store.leaderboard(text="100%")] == [history["mf"]]  # % is literal
    assert [r.id for r in store.leaderboard(text="PAPER")] == [history["deepmf"]]
    assert [r.id for r in store.leaderboard(text="100k")] == [history["deepmf"]]


def test_sort_by_column_or_parameter_with_limit_and_offset(store: Store, history: dict[str, int]) -> None:
    by_lr = store.leaderboard(sort="lr", descending=True)
    assert by_lr[0].id == history["mf"]
    assert [r.id for r in store.leaderboard(sort="id", limit=2, offset=1)] == [history["deepmf"], history["failed"]]
    assert [r.params.data for r in store.leaderboard(sort="data", limit=1)] == ["ml-100k"]
    with pytest.raises(StoreError, match="cannot sort by 'colour'"):
        store.leaderboard(sort="colour")


def test_status_counts(store: Store, history: dict[str, int]) -> None:
    counts = store.status_counts()
    assert (counts["done"], counts["failed"], counts["queued"], counts["lost"]) == (2, 1, 1, 0)


def test_get_run_unknown(store: Store) -> None:
    with pytest.raises(UnknownRunError, match="^no run with id 42$"):
        store.get_run(42)


def test_compare_lists_differing_params_and_epochs(store: Store, history: dict[str, int]) -> None:
    comparison = store.compare([history["mf"], history["deepmf"]])
    assert comparison.differing == ["model", "data", "lr"]
    assert [len(comparison.epochs[r.id]) for r in comparison.runs] == [2, 3]


def test_export_runs_csv(store: Store, history: dict[str, int], tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    assert store.export_runs_csv(path, status="done") == 2
    rows = list(csv.DictReader(path.open()))
    assert [int(r["id"]) for r in rows] == [history["deepmf"], history["mf"]]
    assert rows[0]["model"] == "deepmf" and rows[0]["data"] == "ml-100k" and rows[0]["hidden"] == "10,5"
    assert (rows[0]["best_test_rmse"], rows[0]["best_epoch"], rows[0]["ran_on"]) == ("0.9", "2", "cpu")
    assert rows[1]["lr"] == "0.01"


def test_export_epochs_csv(store: Store, history: dict[str, int], tmp_path: Path) -> None:
    path = tmp_path / "epochs.csv"
    assert store.export_epochs_csv(path, run_ids=[history["deepmf"]]) == 3
    rows = list(csv.DictReader(path.open()))
    assert [(r["epoch"], r["test_rmse"]) for r in rows] == [("1", "1.0"), ("2", "0.9"), ("3", "0.92")]
    assert store.export_epochs_csv(path) == 6
