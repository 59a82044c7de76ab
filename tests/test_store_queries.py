"""Queries: the leaderboard, counts, comparisons and CSV export."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from store.db import Store
from store.errors import StoreError, UnknownRunError
from store.filters import FilterError, parse_filter
from store.params import RunParams
from store.queries import Dataset, Summary
from store.tables import Run

pytestmark = pytest.mark.backends


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


# --- the filter language applied (store/filters.py reads it, store/queries.py runs it) -----------

@pytest.fixture
def lab(store: Store) -> dict[str, int]:
    """Done runs on two datasets in two sweeps, a failed and an archived one, and a queued one."""
    grid, (mf_small, mf_big) = store.enqueue_grid(
        [RunParams(model="mf", data="synthetic-100k", lr=lr) for lr in (1e-3, 1e-2)], name="LR grid")
    runs = {
        "mf_small": _finished_queued(store, mf_small, [1.0, 0.93]),
        "mf_big": _finished_queued(store, mf_big, [1.0, 0.95]),
        "deep": _finished(store, RunParams(model="deepmf", data="synthetic-100k", k=32, hidden=(64, 32)), [0.91]),
        "mf_1m": _finished(store, RunParams(model="mf", data="synthetic-1m", k=32), [0.85]),
        "failed": _finished(store, RunParams(model="mf", data="synthetic-100k", k=64), [0.80], status="failed"),
        "archived": _finished(store, RunParams(model="mf", data="synthetic-100k", seed=7), [0.70]),
        "queued": store.enqueue(RunParams(model="deepmf", data="synthetic-100k")),
    }
    store.archive([runs["archived"]])
    return runs | {"grid": grid}


def _finished_queued(store: Store, run_id: int, tests: list[float]) -> int:
    """Finish a run that is queued (the head of the queue) with these test RMSEs."""
    worker = store.register_worker(pid=1, host="h", devices="cpu", slots=1)
    claimed = store.claim(worker, device="cpu")
    assert claimed is not None and claimed.id == run_id
    for epoch, test in enumerate(tests, start=1):
        store.record_epoch(run_id, epoch, train_rmse=test, test_rmse=test, seconds=1.0)
    store.finish_run(run_id, "done")
    return run_id


def ids(store: Store, text: str, **kwargs: Any) -> list[int]:
    return [run.id for run in store.leaderboard(parse_filter(text), **kwargs)]


def test_a_filter_lists_done_runs_not_archived_unless_it_says_otherwise(store: Store, lab: dict[str, int]) -> None:
    assert ids(store, "") == [lab["mf_1m"], lab["deep"], lab["mf_small"], lab["mf_big"]]
    assert ids(store, "status:failed") == [lab["failed"]]
    assert set(ids(store, "status:all")) == {lab[name] for name in lab if name not in ("grid", "archived")}
    assert ids(store, "archived:yes") == [lab["archived"]]
    assert len(ids(store, "archived:all")) == 5
    # Asked for by id, a run is listed whatever its status and whether archived.
    assert ids(store, f"#{lab['failed']} #{lab['archived']}") == []  # both at once: no run is both
    assert ids(store, f"id:{lab['failed']},{lab['archived']}") == [lab["archived"], lab["failed"]]
    # The single filters of older callers still apply, to every run when no filter is given.
    assert len(store.leaderboard()) == 7


def test_parameters_compare_in_sql(store: Store, lab: dict[str, int]) -> None:
    assert ids(store, "lr:<5e-3") == [lab["mf_1m"], lab["deep"], lab["mf_small"]]
    assert ids(store, "lr:>=1e-2") == [lab["mf_big"]]
    assert ids(store, "k:32 model:mf") == [lab["mf_1m"]]
    assert ids(store, "k!=32") == [lab["mf_small"], lab["mf_big"]]
    assert ids(store, "model:mf,deepmf") == ids(store, "")
    assert ids(store, "epochs:20") == ids(store, "")  # a parameter in the JSON copy only
    # Hidden layers are DeepMF's: MF runs (which store the default) are not "10,5" runs.
    assert ids(store, "hidden:64,32") == [lab["deep"]]
    assert ids(store, "hidden:10,5") == []


def test_sweeps_by_id_or_name(store: Store, lab: dict[str, int]) -> None:
    in_grid = [lab["mf_small"], lab["mf_big"]]
    assert ids(store, f"sweep:{lab['grid']}") == in_grid
    assert ids(store, 'sweep:"lr grid"') == in_grid  # a name in any case
    assert ids(store, "sweep:!=" + str(lab["grid"])) == []  # runs without a sweep are in no sweep
    assert ids(store, "sweep:" + "9" * 30) == []
    # A name no sweep has is a mistake worth saying (a number is an id, of a sweep maybe deleted).
    with pytest.raises(FilterError, match="^sweep: no sweep is named 'lr-grid'$"):
        store.leaderboard(parse_filter("sweep:lr-grid"))


def test_ids_and_numbers(store: Store, lab: dict[str, int]) -> None:
    # Runs asked for by id are listed whatever their status, archived or not.
    assert ids(store, f"id:>{lab['mf_big']}") == [lab["archived"], lab["failed"], lab["mf_1m"], lab["deep"],
                                                  lab["queued"]]
    assert ids(store, "id:<" + "9" * 30) == ids(store, "status:all archived:all")
    assert ids(store, "id:>" + "9" * 30) == []
    assert ids(store, "#" + "9" * 30) == []
    # A bare number is an id, or text: here the note of another run. (No dataset name holds a 4.)
    assert lab["mf_1m"] == 4
    store.set_notes(lab["deep"], "beats #4")
    assert ids(store, "4") == [lab["mf_1m"], lab["deep"]]


def test_words_match_text_each(store: Store, lab: dict[str, int]) -> None:
    store.set_notes(lab["deep"], "100%_sure Ünïcode")
    store.set_tags(lab["mf_1m"], ["paper"])
    assert ids(store, "100%_sure") == [lab["deep"]]
    assert ids(store, "100%") == [lab["deep"]]
    assert ids(store, "1_0") == []  # _ is itself, not any character
    assert ids(store, "PAPER 1m") == [lab["mf_1m"]]  # tags and the dataset, both must match
    assert ids(store, "paper deepmf") == []
    assert ids(store, "grid") == [lab["mf_small"], lab["mf_big"]]  # the sweep's name
    assert ids(store, "Ünïcode") == [lab["deep"]]
    assert ids(store, "'; DROP TABLE runs; --") == []
    assert store.count_runs() == 7


def test_a_dataset_is_found_however_it_was_named(store: Store, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path))
    u_data = tmp_path / "ml-100k" / "u.data"
    u_data.parent.mkdir()
    u_data.write_text("1\t1\t5\t0\n")
    other = tmp_path / "mine.csv"
    other.write_text("1,1,5\n")
    by_name = _finished(store, RunParams(data="ml-100k"), [0.9])
    by_path = _finished(store, RunParams(data=str(u_data)), [0.8])
    mine = _finished(store, RunParams(data=str(other)), [0.7])
    assert ids(store, "data:ml-100k") == [by_path, by_name]
    assert ids(store, f"dataset:{u_data}") == [by_path, by_name]
    assert ids(store, f"data:{other}") == [mine]
    assert ids(store, "data:ml-100k,synthetic-1m") == [by_path, by_name]
    assert ids(store, "data:!=ml-100k") == [mine]
    assert ids(store, "data:all") == [mine, by_path, by_name]
    # Labelled by its name, though the run finished last named it by its path.
    assert [(d.label, d.runs) for d in store.datasets()] == [(f"{tmp_path.name}/mine.csv", 1), ("ml-100k", 2)]


def test_summary_of_a_listing(store: Store, lab: dict[str, int]) -> None:
    summary = store.summary(parse_filter("data:synthetic-100k"))
    assert (summary.total, summary.best, summary.has_val) == (3, lab["deep"], False)
    assert summary.sweep_runs == {lab["grid"]: 2}
    # The best run is the best of the whole listing, whatever the sort or page.
    assert store.summary(parse_filter("status:all")).best == lab["failed"]
    assert store.summary(parse_filter("status:queued")) == Summary(1, None, False, {})
    validated = _finished(store, RunParams(data="synthetic-100k", val_size=0.1), [0.99])
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == validated).values(best_val_rmse=0.98))
    assert store.summary(parse_filter("")).has_val
    assert not store.summary(parse_filter("data:synthetic-1m")).has_val


def test_grouped_by_sweep_one_row_per_sweep_its_best(store: Store, lab: dict[str, int]) -> None:
    where = parse_filter("data:synthetic-100k")
    assert [r.id for r in store.leaderboard(where, by_sweep=True)] == [lab["deep"], lab["mf_small"]]
    assert [r.id for r in store.leaderboard(where, by_sweep=True, sort="lr", descending=True)] == [
        lab["mf_small"], lab["deep"]]
    assert store.summary(where, by_sweep=True).total == 2
    assert store.run_ids(where, by_sweep=True) == [lab["deep"], lab["mf_small"]]
    (leader,) = store.leaderboard(where, by_sweep=True, limit=1, offset=1)
    assert leader.sweep_name == "LR grid"


def test_run_ids_lists_every_run_of_a_listing(store: Store, lab: dict[str, int]) -> None:
    assert store.run_ids(parse_filter("")) == ids(store, "")
    assert store.run_ids(parse_filter("status:all model:deepmf")) == [lab["deep"], lab["queued"]]


def test_datasets_the_most_recently_finished_first(store: Store, lab: dict[str, int]) -> None:
    assert store.datasets() == [Dataset("synthetic-1m", "synthetic-1m", 1),
                                Dataset("synthetic-100k", "synthetic-100k", 3)]
    later = _finished(store, RunParams(data="synthetic-100k"), [0.9])
    assert [d.key for d in store.datasets()] == ["synthetic-100k", "synthetic-1m"]
    assert store.datasets()[0].runs == 4 and later


def test_export_takes_a_filter(store: Store, lab: dict[str, int], tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    assert store.export_runs_csv(path, parse_filter("lr:<5e-3"), sort="id") == 3
    rows = list(csv.DictReader(path.open()))
    assert [int(r["id"]) for r in rows] == [lab["mf_small"], lab["deep"], lab["mf_1m"]]
    assert (rows[0]["sweep_name"], rows[0]["data_key"], rows[0]["archived"]) == ("LR grid", "synthetic-100k", "false")
