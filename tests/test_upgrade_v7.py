"""Schema 8 (where a worker's pid names it) opens what older releases wrote: tests/fixtures/v7.db was
written by schema version 7, the last release before it (tests/fixtures/make_v7_db.py)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from store.db import open_store
from store.schema import SCHEMA_VERSION
from store.workers import this_pid_space
from tests.test_store_upgrade import TABLES, _column_names, _rows, _same_schema_as_a_fresh_database

V7 = Path(__file__).parent / "fixtures" / "v7.db"


def _copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.db"
    shutil.copyfile(V7, path)
    return path


def test_a_v7_database_keeps_every_value_it_had(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(tmp_path, monkeypatch)

    open_store(str(path)).close()

    for table in (*TABLES, "queue_state", "workers"):
        columns = _column_names(V7, table)
        assert _rows(path, table, columns) == _rows(V7, table, columns), table
    _same_schema_as_a_fresh_database(path, tmp_path)
    with sqlite3.connect(path) as con:
        assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("select pid_space from workers").fetchall() == [(None,), (None,)]


def test_a_v7_database_keeps_its_packs_workers_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(tmp_path, monkeypatch)

    with open_store(str(path)) as store:
        runs = {i: store.get_run(i) for i in range(1, 6)}
        assert {i: (r.status, r.pack_id, r.pack_size) for i, r in runs.items()} == {
            1: ("done", 1, 2), 2: ("done", 1, 2), 3: ("running", None, None), 4: ("queued", None, None),
            5: ("queued", None, None)}
        assert [(e.epoch, e.test_rmse) for e in store.epochs(2)] == [(1, 1.1), (2, 0.55)]
        assert runs[1].notes == "trained as a pack of two on box a"
        assert runs[3].tags == ("box-b", "[bold]not markup[/bold]")
        workers = {w.id: w for w in store.workers()}
        assert {i: (w.host, w.pid, w.state) for i, w in workers.items()} == {
            1: ("v7-box-a", 999_999_998, "stopped"), 2: ("v7-box-b", 999_999_999, "stale")}
        # A worker of before is judged by its host's name, as it was: neither is this machine's.
        assert not any(w.local for w in workers.values())


def test_a_v7_worker_of_another_machine_is_found_lost_by_its_heartbeat_not_its_pid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(tmp_path, monkeypatch)

    with open_store(str(path)) as store:
        assert store.reap_lost() == [3]
        lost = store.get_run(3)
        assert lost.status == "lost" and "sent no heartbeat" in (lost.error or "")
        # Its retry and the queued pair train as before; the pair as one pack.
        packs = []
        while pack := store.claim_pack(None, device="cpu", limit=8):
            packs.append([run.id for run in pack])
        assert packs == [[4, 5], [6]]


def test_a_v7_worker_on_a_machine_of_this_name_is_judged_by_its_pid(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(tmp_path, monkeypatch)
    monkeypatch.setenv("DMF_HOST", "v7-box-b")

    with open_store(str(path)) as store:
        (worker,) = [w for w in store.workers() if w.id == 2]
        assert worker.local
        assert store.reap_lost(grace_s=1e9) == [3]  # its pid is gone: no wait for the heartbeat
        assert "is no longer running" in (store.get_run(3).error or "")
        new = store.register_worker(pid=os.getpid(), host="v7-box-b", pid_space=this_pid_space(),
                                    devices=["cpu"], slots=1)
        assert [w.local for w in store.workers() if w.id == new] == [True]
