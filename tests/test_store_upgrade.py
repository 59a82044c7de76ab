"""A database written by an older release opens in this one with everything in it intact, and its
queued runs still train. tests/fixtures/v1.db was written by schema version 1 (see make_v1_db.py)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from dmf_tui.cli import main
from store.db import open_store
from store.schema import SCHEMA_VERSION

V1 = Path(__file__).parent / "fixtures" / "v1.db"


def test_a_v1_database_opens_intact_and_its_queued_runs_train(tmp_path: Path, capsys) -> None:
    path = tmp_path / "runs.db"
    shutil.copyfile(V1, path)

    store = open_store(str(path))

    runs = {run.id: run for run in store.leaderboard()}
    assert {i: r.status for i, r in runs.items()} == {
        1: "done", 2: "failed", 3: "cancelled", 4: "lost", 5: "interrupted", 6: "queued", 7: "queued"}
    assert (runs[1].notes, runs[1].tags, runs[1].best_test_rmse) == ("the v1 baseline", ("baseline", "v1"), 1.05)
    assert runs[2].error == "DataError: line 3 of u.data: [bad] rating"
    assert "no longer running" in runs[4].error
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
