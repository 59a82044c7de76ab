"""A database written by an older release opens in this one with everything in it intact, and its
queued runs still train. tests/fixtures/v1.db was written by schema version 1 (make_v1_db.py), v2.db
by schema version 2, the last release that kept every hyperparameter as a column (make_v2_db.py)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from dmf_tui.cli import main
from store.db import open_store
from store.schema import SCHEMA_VERSION

V1 = Path(__file__).parent / "fixtures" / "v1.db"
V2 = Path(__file__).parent / "fixtures" / "v2.db"


def _columns(path: Path, table: str) -> list[tuple]:
    """(name, type affinity, notnull, default, pk) of each column: what a fresh database and an
    upgraded one must agree on, whatever order ALTER TABLE left them in. Declared types may differ
    (VARCHAR(32) then, TEXT now) where SQLite treats them alike."""
    with sqlite3.connect(path) as con:
        rows = con.execute(f"pragma table_info({table})")
        return sorted((name, _affinity(kind), *rest) for _, name, kind, *rest in rows)


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
    store.close()
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
    store.close()

    fresh = tmp_path / "fresh.db"
    open_store(str(fresh)).close()
    for table in ("runs", "epochs", "workers", "sweeps"):
        assert _columns(path, table) == _columns(fresh, table)

    assert main(["--db", str(path), "worker", "--exit-when-empty", "--poll", "0.1",
                 "--checkpoint-dir", "none"]) == 0
    with open_store(str(path)) as store:
        assert [store.get_run(i).status for i in (6, 7, 8)] == ["done", "done", "done"]
        assert store.get_run(6).params == lost
