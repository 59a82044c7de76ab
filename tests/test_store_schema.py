"""Opening databases: schema creation, pragmas, and refusing files that are not ours."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from store.db import default_db_url, open_store, to_url
from store.errors import StoreError
from store.params import RunParams
from store.schema import SCHEMA_VERSION


def test_creates_schema_and_records_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "runs.db"
    open_store(str(path)).close()
    con = sqlite3.connect(path)
    tables = {row[0] for row in con.execute("select name from sqlite_master where type='table'")}
    assert {"runs", "epochs", "sweeps", "workers", "queue_state", "schema_version"} <= tables
    assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]
    indexes = {row[0] for row in con.execute("select name from sqlite_master where type='index'")}
    assert {"ix_runs_leaderboard", "ix_runs_queue"} <= indexes


def test_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "runs.db"))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        busy_timeout_ms = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert busy_timeout_ms is not None and busy_timeout_ms >= 10_000
    store.close()


def test_reopening_keeps_data(tmp_path: Path) -> None:
    path = str(tmp_path / "runs.db")
    store = open_store(path)
    run_id = store.enqueue(RunParams(model="deepmf"))
    store.close()
    assert open_store(path).get_run(run_id).params.model == "deepmf"


def _open_and_enqueue(path: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    store = open_store(path)
    store.enqueue(RunParams())
    store.close()


@pytest.mark.backends
def test_processes_creating_the_schema_at_once_create_it_once(db: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    # Four at once: with two, a race that fails one start in ten under load slipped through.
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_and_enqueue, args=(db, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    engine = create_engine(to_url(db))
    with engine.connect() as conn:
        counts = [conn.scalar(text(f"select count(*) from {table}"))
                  for table in ("schema_version", "queue_state", "runs")]
    engine.dispose()
    assert counts == [1, 1, 4]


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    open_store(str(path)).close()
    con = sqlite3.connect(path)
    con.execute("update schema_version set version = ?", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()  # the last connection checkpoints the WAL into the file
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer than this dmf-tui understands"):
        open_store(str(path))
    assert path.read_bytes() == before


def test_a_text_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 50)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"notes\.txt is not a SQLite database"):
        open_store(str(path))
    assert path.read_bytes() == before


def test_an_unopenable_path_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open database") as info:
        open_store(str(tmp_path))  # a directory
    assert "\n" not in str(info.value)


def test_default_url_follows_dmf_db_then_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DMF_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_url() == f"sqlite:///{tmp_path}/dmf-tui/runs.db"
    monkeypatch.setenv("DMF_DB", str(tmp_path / "x.db"))
    assert default_db_url() == f"sqlite:///{tmp_path}/x.db"
    monkeypatch.setenv("DMF_DB", "postgresql://u:p@host/db")
    assert default_db_url() == "postgresql://u:p@host/db"
