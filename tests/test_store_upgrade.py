"""A database written by an older release opens in this one with everything in it intact, and its
queued runs still train. tests/fixtures/v1.db was written by schema version 1 (make_v1_db.py), v2.db
by schema version 2, the last release that kept every hyperparameter as a column (make_v2_db.py),
v3.db by schema version 3, the last before runs had a dataset identity, archiving and logs
(make_v3_db.py), v4.db by schema version 4, the last before searches (make_v4_db.py), v5.db by schema version 5,
the last before runs kept their checkpoint and ranking metrics (make_v5_db.py)."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from csv import DictReader
from pathlib import Path

import pytest

from dmf_tui.cli import main
from engine.ranking import Ranking
from store import catalog
from store.db import open_store
from store.schema import SCHEMA_VERSION
from store.search import parse_search

V1 = Path(__file__).parent / "fixtures" / "v1.db"
V2 = Path(__file__).parent / "fixtures" / "v2.db"
V3 = Path(__file__).parent / "fixtures" / "v3.db"
V4 = Path(__file__).parent / "fixtures" / "v4.db"
TABLES = ("runs", "epochs", "workers", "sweeps", "run_logs")


def _columns(path: Path, table: str) -> list[tuple]:
    """(name, type affinity, notnull, default, pk) of each column: what a fresh database and an
    upgraded one must agree on, whatever order ALTER TABLE left them in. Declared types and defaults
    may be spelt differently (VARCHAR(32) then, TEXT now) where SQLite treats them alike."""
    with sqlite3.connect(path) as con:
        rows = con.execute(f"pragma table_info({table})")
        return sorted((name, _affinity(kind), notnull, _unquoted(default), pk)
                      for _, name, kind, notnull, default, pk in rows)


def _unquoted(default: str | None) -> str | None:
    """A column default as SQLite applies it: version 2 added `retries` with DEFAULT 0, a fresh
    schema says DEFAULT '0', and an INTEGER column stores both as 0."""
    return default if default in (None, "''") else default.strip("'")


def _indexes(path: Path) -> set[tuple[str, str, tuple[str | None, ...]]]:
    """(table, index name, the columns or expressions indexed) of each index dmf-tui made."""
    with sqlite3.connect(path) as con:
        found = con.execute("select tbl_name, name from sqlite_master where type = 'index' and sql is not null")
        return {(table, name, tuple(row[2] for row in con.execute(f"pragma index_xinfo({name})") if row[5]))
                for table, name in found.fetchall()}


def _same_schema_as_a_fresh_database(path: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    open_store(str(fresh)).close()
    for table in TABLES:
        assert _columns(path, table) == _columns(fresh, table), table
    assert _indexes(path) == _indexes(fresh)
    fresh.unlink()


def _affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (section 3.1 of its datatype page)."""
    declared = declared.upper()
    for marks, affinity in ((("INT",), "INTEGER"), (("CHAR", "CLOB", "TEXT"), "TEXT"), (("BLOB",), "BLOB"),
                            (("REAL", "FLOA", "DOUB"), "REAL")):
        if any(mark in declared for mark in marks) or (affinity == "BLOB" and not declared):
            return affinity
    return "NUMERIC"


def test_a_v1_database_opens_intact_and_its_queued_runs_train(tmp_path: Path, capsys) -> None:
    path = tmp_path / "runs.db"
    shutil.copyfile(V1, path)

    store = open_store(str(path))

    runs = {run.id: run for run in store.leaderboard()}
    assert {i: r.status for i, r in runs.items()} == {
        1: "done", 2: "failed", 3: "cancelled", 4: "lost", 5: "interrupted", 6: "queued", 7: "queued"}
    assert (runs[1].notes, runs[1].tags, runs[1].best_test_rmse) == ("the v1 baseline", ("baseline", "v1"), 1.05)
    assert runs[2].error == "DataError: line 3 of u.data: [bad] rating"
    assert runs[4].error is not None and "no longer running" in runs[4].error
    assert (runs[4].params.model, runs[4].params.hidden, runs[4].best_val_rmse) == ("deepmf", (10, 5), 1.2)
    assert [e.epoch for e in store.epochs(4)] == [1, 2]
    assert runs[6].notes == "still waiting"
    assert all(run.retries == 0 for run in runs.values())
    assert [(s.id, s.name, s.runs) for s in store.sweeps()] == [(1, "v1 sweep", 3)]
    assert [(w.id, w.host, w.state) for w in store.workers()] == [(1, "v1-host", "stopped")]
    assert {r.data_key for r in runs.values()} == {r.params.data for r in runs.values()} == {"synthetic-100k"}
    assert not any(r.archived or r.dismissed for r in runs.values())
    assert [runs[i].sweep_name for i in (1, 4)] == ["v1 sweep", None]
    store.close()
    _same_schema_as_a_fresh_database(path, tmp_path)
    with sqlite3.connect(path) as con:
        assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("pragma integrity_check").fetchall() == [("ok",)]

    assert main(["--db", str(path), "worker", "--exit-when-empty", "--poll", "0.1",
                 "--checkpoint-dir", "none"]) == 0
    with open_store(str(path)) as store:
        assert [store.get_run(i).status for i in (6, 7)] == ["done", "done"]
        assert [e.epoch for e in store.epochs(6)] == [1]
        assert store.get_run(1).status == "done"


def test_a_v2_database_keeps_every_parameter_and_matches_a_fresh_schema(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    shutil.copyfile(V2, path)

    store = open_store(str(path))

    runs = {run.id: run for run in store.leaderboard()}
    assert {i: r.status for i, r in runs.items()} == {
        1: "done", 2: "failed", 3: "cancelled", 4: "lost", 5: "interrupted", 6: "queued", 7: "queued", 8: "queued"}
    assert (runs[1].params.k, runs[1].params.bias, runs[1].ran_on) == (8, True, "cpu")
    assert (runs[1].notes, runs[1].tags, runs[1].best_test_rmse) == ("the v2 baseline", ("baseline", "v2"), 1.05)
    lost = runs[4].params
    assert (lost.model, lost.hidden, lost.dropout, lost.val_size, lost.patience, lost.epochs) == (
        "deepmf", (16, 4), 0.1, 0.1, 2, 3)
    assert (runs[4].retries, runs[6].retries, runs[6].params) == (2, 1, lost)
    assert (runs[5].params.lr, runs[5].params.init_std) == (0.01, 0.01)
    assert [(r.params.seed, r.params.weight_decay) for r in (runs[7], runs[8])] == [(1, 0.0), (2, 0.0)]
    assert [e.val_rmse for e in store.epochs(4)] == [1.3, 1.2]
    # What was a column and is now in the JSON copy only still sorts and filters.
    assert [r.id for r in store.leaderboard(sort="seed", descending=True)][:2] == [8, 7]
    assert [r.id for r in store.leaderboard(model="deepmf")] == [4, 6]
    assert {r.data_key for r in runs.values()} == {"synthetic-100k"}
    store.close()
    _same_schema_as_a_fresh_database(path, tmp_path)

    assert main(["--db", str(path), "worker", "--exit-when-empty", "--poll", "0.1",
                 "--checkpoint-dir", "none"]) == 0
    with open_store(str(path)) as store:
        assert [store.get_run(i).status for i in (6, 7, 8)] == ["done", "done", "done"]
        assert store.get_run(6).params == lost


def test_a_v3_database_gains_dataset_identities_sweep_names_and_logs(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.db"
    shutil.copyfile(V3, path)

    store = open_store(str(path))

    runs = {run.id: run for run in store.leaderboard()}
    assert {i: r.status for i, r in runs.items()} == {
        1: "done", 2: "failed", 3: "cancelled", 4: "done", 5: "lost", 6: "queued", 7: "queued"}
    assert {i: r.data_key for i, r in runs.items()} == {
        1: "ml-100k", 2: "ml-100k", 3: "ml-100k", 4: "/nonexistent/v3-data/ratings.csv",
        5: "synthetic-100k", 6: "synthetic-100k", 7: "synthetic-100k"}
    assert {i: r.sweep_name for i, r in runs.items()} == {
        1: "lr-grid", 2: "lr-grid", 3: "lr-grid", 4: "files", 5: None, 6: None, 7: None}
    assert (runs[4].data_label, runs[1].data_label) == ("v3-data/ratings.csv", "ml-100k")
    assert not any(r.archived or r.dismissed for r in runs.values())
    assert (runs[1].notes, runs[1].tags, runs[1].best_test_rmse, runs[1].best_epoch) == (
        "the v3 baseline", ("baseline", "v3"), 0.99, 2)
    assert runs[2].error == "DataError: line 3 of u.data: [bad] rating"
    assert (runs[5].params.val_size, runs[5].retries, runs[6].retries) == (0.1, 1, 0)
    assert [e.test_rmse for e in store.epochs(1)] == [1.05, 0.99]
    assert [e.val_rmse for e in store.epochs(5)] == [1.3]
    store.close()
    _same_schema_as_a_fresh_database(path, tmp_path)
    with sqlite3.connect(path) as con:
        assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("pragma integrity_check").fetchall() == [("ok",)]


def _v3_with_data(tmp_path: Path, specs: dict[int, str]) -> Path:
    """A copy of v3.db whose runs name other datasets (as the release itself would have stored them)."""
    path = tmp_path / "runs.db"
    shutil.copyfile(V3, path)
    with sqlite3.connect(path) as con:
        for run_id, spec in specs.items():
            con.execute("update runs set data = ?, params = json_set(params, '$.data', ?) where id = ?",
                        (spec, spec, run_id))
    return path


def test_the_upgrade_knows_a_file_by_its_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "ml-100k").mkdir(parents=True)
    (data / "ml-100k" / "u.data").write_text("1\t1\t3\t0\n")
    monkeypatch.setenv("DMF_DATA_DIR", str(data))
    copy = tmp_path / "elsewhere.data"
    shutil.copyfile(data / "ml-100k" / "u.data", copy)
    mine = tmp_path / "mine.data"
    mine.write_text("1\t2\t5\t0\n2\t2\t4\t0\n")
    path = _v3_with_data(tmp_path, {1: str(data / "ml-100k" / "u.data"), 2: str(copy), 3: str(mine)})

    with open_store(str(path)) as store:
        keys = [store.get_run(i).data_key for i in (1, 2, 3)]
    assert keys == ["ml-100k", "ml-100k", catalog.resolve(str(mine)).key]
    assert keys[2].startswith("sha256:")


def test_a_dataset_whose_identity_cannot_be_found_does_not_stop_the_upgrade(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(spec: str) -> catalog.DataRef:
        raise PermissionError(13, "Permission denied", spec)

    monkeypatch.setattr(catalog, "resolve", unreadable)
    path = _v3_with_data(tmp_path, {4: "/private/ratings.csv"})

    with open_store(str(path)) as store:
        assert [store.get_run(i).data_key for i in (1, 4)] == ["ml-100k", "/private/ratings.csv"]


def test_a_v4_database_keeps_everything_and_gains_searches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.db"
    shutil.copyfile(V4, path)

    store = open_store(str(path))

    runs = {i: store.get_run(i) for i in range(1, 8)}
    assert {i: r.status for i, r in runs.items()} == {
        1: "done", 2: "failed", 3: "cancelled", 4: "done", 5: "lost", 6: "queued", 7: "queued"}
    assert all(r.trial is None for r in runs.values())
    assert (runs[1].params.k, runs[1].params.reg, runs[2].params.optimizer, runs[7].params.seed) == (
        8, 0.02, "adamw", 3)
    assert (runs[4].params.model, runs[4].params.k, runs[4].params.dropout) == ("autorec", 64, 0.1)
    assert (runs[5].params.schedule, runs[5].params.val_size, runs[6].params) == ("cosine", 0.1, runs[5].params)
    assert (runs[1].notes, runs[1].tags, runs[1].best_val_rmse, runs[1].best_test_rmse, runs[1].best_epoch) == (
        "the v4 baseline", ("baseline", "v4"), 1.02, 0.99, 2)
    assert runs[2].error == "DataError: line 3 of u.data: [bad] rating"
    assert runs[5].error is not None and "no longer running" in runs[5].error
    assert (runs[5].retries, runs[6].retries, runs[6].notes) == (1, 0, "automatic retry of #5")
    assert {i for i, r in runs.items() if r.archived} == {4}
    assert {i for i, r in runs.items() if r.dismissed} == {2}
    assert {i: r.sweep_name for i, r in runs.items()} == {
        1: "k-grid", 2: "k-grid", 3: "k-grid", 4: "rows", 5: None, 6: None, 7: None}
    assert [(e.epoch, e.val_rmse, e.test_rmse) for e in store.epochs(1)] == [(1, 1.07, 1.05), (2, 1.02, 0.99)]
    assert [e.val_rmse for e in store.epochs(5)] == [1.3]
    assert [line.text for line in store.run_log(1)] == ["started by worker 1", "ended done"]
    assert [(s.id, s.name, s.runs) for s in store.sweeps()] == [(2, "rows", 1), (1, "k-grid", 3)]
    assert store.searches() == []  # its sweeps are grids
    store.close()
    _same_schema_as_a_fresh_database(path, tmp_path)
    with sqlite3.connect(path) as con:
        assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("pragma integrity_check").fetchall() == [("ok",)]

    with open_store(str(path)) as store:
        base = runs[7].params
        search = store.create_search(parse_search({"lr": "1e-4..1e-2:log"}, base, trials=2, pruner="none"),
                                     name="after the upgrade")
        # The runs queued before the upgrade come first, then the search's trials.
        claimed = [store.claim(None, device="cpu") for _ in range(4)]
        assert [(run.id, run.trial) if run else None for run in claimed][:2] == [(6, None), (7, None)]
        assert [(run.sweep_id, run.trial) if run else None for run in claimed][2:] == [(search, 1), (search, 2)]
        assert store.claim(None, device="cpu") is None
        (record,) = store.searches()
        assert (record.name, record.asked, dict(record.counts)) == ("after the upgrade", 2, {"running": 2})


# --- schema 6: checkpoints and ranking metrics on runs ---------------------------------------------

V5 = Path(__file__).parent / "fixtures" / "v5.db"
FIXTURES = (V1, V2, V3, V4, V5)
RANKING = ("precision_at_10", "recall_at_10", "ndcg_at_10")


def _rows(path: Path, table: str, columns: list[str]) -> list[tuple]:
    with sqlite3.connect(path) as con:
        names = ", ".join(f'"{name}"' for name in columns)
        return con.execute(f"select {names} from {table} order by rowid").fetchall()


def _column_names(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as con:
        return [row[1] for row in con.execute(f"pragma table_info({table})")]


def test_a_v5_database_keeps_every_value_it_had(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.db"
    shutil.copyfile(V5, path)

    open_store(str(path)).close()

    # Every column the old release had keeps every value, row for row.
    for table in (*TABLES, "queue_state"):
        columns = _column_names(V5, table)
        assert _rows(path, table, columns) == _rows(V5, table, columns), table
    _same_schema_as_a_fresh_database(path, tmp_path)
    with sqlite3.connect(path) as con:
        assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("pragma integrity_check").fetchall() == [("ok",)]


def test_a_v5_database_keeps_its_search_grid_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.db"
    shutil.copyfile(V5, path)

    with open_store(str(path)) as store:
        runs = {i: store.get_run(i) for i in range(1, 10)}
        assert {i: r.status for i, r in runs.items()} == {
            1: "done", 2: "pruned", 3: "done", 4: "failed", 5: "cancelled", 6: "done", 7: "lost", 8: "queued",
            9: "queued"}
        assert {i: (r.sweep_name, r.trial) for i, r in runs.items() if r.sweep_name} == {
            1: ("lr-search", 1), 2: ("lr-search", 2), 3: ("k-grid", None), 4: ("k-grid", None),
            5: ("k-grid", None), 6: ("rows", None)}
        # The trials' drawn values are in their parameters, inside the searched ranges.
        for trial in (runs[1], runs[2]):
            assert 1e-3 <= trial.params.lr <= 1e-2 and 8 <= trial.params.k <= 32
            assert trial.params.replace(lr=0.001, k=10) == runs[3].params.replace(k=10, reg=0.0, epochs=4)
        assert (runs[3].params.reg, runs[4].params.optimizer, runs[5].params.schedule) == (0.02, "adamw", "cosine")
        assert (runs[6].params.model, runs[6].params.k, runs[6].params.dropout) == ("autorec", 64, 0.1)
        assert (runs[7].params.patience, runs[8].params, runs[8].retries) == (2, runs[7].params, 0)
        assert all(r.params.rank_every == 0 for r in runs.values())  # the new parameter's default
        assert (runs[1].best_epoch, runs[1].best_val_rmse, runs[2].best_epoch) == (4, 0.92, 1)
        assert [(e.epoch, e.val_rmse) for e in store.epochs(3)] == [(1, 1.07), (2, 1.02)]
        assert [e.val_rmse for e in store.epochs(1)] == [1.0, 0.95, 0.93, 0.92]
        assert [line.text for line in store.run_log(3)] == ["started by worker 1", "ended done"]
        assert (runs[3].notes, runs[3].tags, runs[1].notes) == ("the v5 baseline", ("baseline", "v5"),
                                                                "the search's best")
        assert runs[4].error == "DataError: line 3 of u.data: [bad] rating"
        assert ({i for i, r in runs.items() if r.archived}, {i for i, r in runs.items() if r.dismissed}) == ({6}, {4})
        (search,) = store.searches()
        assert (search.name, search.state, search.trials, search.asked, dict(search.counts), search.best_run_id) == (
            "lr-search", "paused", 3, 2, {"done": 1, "pruned": 1}, 1)
        assert (search.spec.sampler, search.spec.pruner, search.spec.seed) == ("tpe", "asha", 5)
        # Nothing of before has a checkpoint or a ranking.
        assert all(r.checkpoint is None for r in runs.values())
        assert all(getattr(r, name) is None for r in runs.values() for name in RANKING)
        assert all(getattr(e, name) is None for i in runs for e in store.epochs(i) for name in RANKING)

        # The paused search resumes where it was: its third trial comes next, then the queued runs.
        store.set_search_state("lr-search", "active")
        claimed = [store.claim(None, device="cpu") for _ in range(4)]
        assert [(r.id, r.sweep_id, r.trial) if r else None for r in claimed] == [
            (10, 1, 3), (8, None, None), (9, None, None), None]


def test_the_queued_runs_of_a_v5_database_train_into_checkpoints_and_rankings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.db"
    shutil.copyfile(V5, path)

    assert main(["--db", str(path), "worker", "--exit-when-empty", "--poll", "0.1"]) == 0

    with open_store(str(path)) as store:
        for run in (store.get_run(8), store.get_run(9)):
            assert run.status == "done"
            assert run.checkpoint == str(tmp_path / "runs.db.checkpoints" / f"run-{run.id}.pt")
            assert all(0 <= getattr(run, name) <= 1 for name in RANKING), run
        assert store.get_run(1).checkpoint is None  # the runs of before stay without one
    capsys.readouterr()
    assert main(["--db", str(path), "recommend", "9", "--user", "1", "-n", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["--db", str(path), "recommend", "3", "--user", "1"]) == 2
    assert capsys.readouterr().err.startswith("dmf-tui: error: run 3 has no checkpoint")


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda path: path.stem)
def test_every_old_database_gains_empty_checkpoint_and_ranking_columns_it_can_fill(
        fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.db"
    shutil.copyfile(fixture, path)

    with open_store(str(path)) as store:
        old = store.leaderboard()
        assert all(r.checkpoint is None and r.precision_at_10 is None and r.ndcg_at_10 is None for r in old)
        assert all(e.recall_at_10 is None for r in old for e in store.epochs(r.id))
        run = store.claim(None, device="cpu")
        assert run is not None and run.id in {r.id for r in old}
        store.record_epoch(run.id, 1, train_rmse=0.9, test_rmse=0.95, val_rmse=0.96, seconds=0.1,
                           ranking=Ranking(precision=0.25, recall=0.125, ndcg=0.5, users=3))
        store.finish_run(run.id, "done", checkpoint="/somewhere/run.pt",
                         ranking=Ranking(precision=0.2, recall=0.1, ndcg=0.4, users=3))

        done = store.get_run(run.id)
        assert (done.checkpoint, done.precision_at_10, done.recall_at_10, done.ndcg_at_10) == (
            "/somewhere/run.pt", 0.2, 0.1, 0.4)
        assert [(e.precision_at_10, e.recall_at_10, e.ndcg_at_10) for e in store.epochs(run.id)] == [
            (0.25, 0.125, 0.5)]
        assert store.leaderboard(sort="ndcg_at_10", descending=True)[0].id == run.id
        csv = io.StringIO()
        store.export_runs_csv(csv)
        exported = {row["id"]: row["ndcg_at_10"] for row in DictReader(io.StringIO(csv.getvalue()))}
        assert exported == {str(r.id): "0.4" if r.id == run.id else "" for r in old}
