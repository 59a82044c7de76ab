"""Schema 7 (the pack a run trained in) opens what older releases wrote: tests/fixtures/v6.db was
written by schema version 6, the last release before packs (tests/fixtures/make_v6_db.py); the older
fixtures are tests/test_store_upgrade.py's."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from store.db import open_store
from store.schema import SCHEMA_VERSION
from tests.test_store_upgrade import FIXTURES, TABLES, _column_names, _rows, _same_schema_as_a_fresh_database

V6 = Path(__file__).parent / "fixtures" / "v6.db"


def _copy(fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.db"
    shutil.copyfile(fixture, path)
    return path


def test_a_v6_database_keeps_every_value_it_had(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(V6, tmp_path, monkeypatch)

    open_store(str(path)).close()

    # Every column the old release had keeps every value, row for row.
    for table in (*TABLES, "queue_state"):
        columns = _column_names(V6, table)
        assert _rows(path, table, columns) == _rows(V6, table, columns), table
    _same_schema_as_a_fresh_database(path, tmp_path)
    with sqlite3.connect(path) as con:
        assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("pragma integrity_check").fetchall() == [("ok",)]


def test_a_v6_database_keeps_its_runs_checkpoints_and_rankings(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(V6, tmp_path, monkeypatch)

    with open_store(str(path)) as store:
        runs = {i: store.get_run(i) for i in range(1, 11)}
        assert {i: r.status for i, r in runs.items()} == {
            1: "done", 2: "pruned", 3: "done", 4: "failed", 5: "cancelled", 6: "done", 7: "lost", 8: "queued",
            9: "queued", 10: "queued"}
        assert {i: (r.sweep_name, r.trial) for i, r in runs.items() if r.sweep_name} == {
            1: ("lr-search", 1), 2: ("lr-search", 2), 3: ("k-grid", None), 4: ("k-grid", None),
            5: ("k-grid", None), 6: ("rows", None), 9: ("lr-pair", None), 10: ("lr-pair", None)}
        assert {i: r.checkpoint for i, r in runs.items() if r.checkpoint} == {
            1: "/v6/checkpoints/run-1.pt", 3: "/v6/checkpoints/run-3.pt", 6: "/v6/checkpoints/run-6.pt"}
        assert [(r.precision_at_10, r.recall_at_10, r.ndcg_at_10) for r in (runs[1], runs[3])] == [
            (0.125, 0.0625, 0.25), (0.15, 0.075, 0.3)]
        assert [(e.epoch, e.val_rmse, e.ndcg_at_10) for e in store.epochs(3)] == [(1, 1.07, 0.2), (2, 1.02, 0.3)]
        assert [e.val_rmse for e in store.epochs(1)] == [1.0, 0.95, 0.93, 0.92]
        assert (runs[3].params.rank_every, runs[3].params.reg, runs[4].params.optimizer) == (1, 0.02, "adamw")
        assert [line.text for line in store.run_log(3)] == ["started by worker 1", "ended done"]
        assert (runs[3].notes, runs[3].tags, runs[1].notes) == ("the v6 baseline", ("baseline", "v6"),
                                                                "the search's best")
        assert runs[4].error == "DataError: line 3 of u.data: [bad] rating"
        assert (runs[7].retries, runs[8].params, runs[8].notes) == (1, runs[7].params, "automatic retry of #7")
        assert ({i for i, r in runs.items() if r.archived}, {i for i, r in runs.items() if r.dismissed}) == ({6}, {4})
        (search,) = store.searches()
        assert (search.name, search.state, search.asked, dict(search.counts), search.best_run_id) == (
            "lr-search", "paused", 2, {"done": 1, "pruned": 1}, 1)
        # Nothing of before trained in a pack.
        assert all(r.pack_id is None and r.pack_size is None for r in runs.values())


@pytest.mark.parametrize("fixture", (*FIXTURES, V6), ids=lambda path: path.stem)
def test_every_old_database_gains_empty_pack_columns_its_queued_runs_can_fill(
        fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(fixture, tmp_path, monkeypatch)

    with open_store(str(path)) as store:
        old = store.leaderboard()
        assert all(r.pack_id is None and r.pack_size is None for r in old)
        queued = {r.id for r in old if r.status == "queued"}
        packs = []
        while pack := store.claim_pack(None, device="cpu", limit=8):
            packs.append(pack)
        # Each queued run is claimed once, and what trained together says so.
        assert sorted(run.id for pack in packs for run in pack) == sorted(queued)
        for pack in packs:
            expected = (pack[0].id, len(pack)) if len(pack) > 1 else (None, None)
            assert {(store.get_run(run.id).pack_id, store.get_run(run.id).pack_size) for run in pack} == {expected}
        if fixture == V6:  # its lr pair is queued to pack
            assert [[run.id for run in pack] for pack in packs] == [[8], [9, 10]]
