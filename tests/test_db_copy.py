"""`dmf-tui db copy SRC DST` (store/copy.py, dmf_tui/commands/db.py): every row of every table copied
field by field, ids kept into an empty database and remapped with every reference in a merge, a
non-empty destination refused, one transaction, hostile text, and the command's errors and exit codes.
The copies are tried SQLite -> SQLite, SQLite -> PostgreSQL and PostgreSQL -> SQLite (a throwaway
server, tests/pg.py; those skip with the reason where none can be started).

The source history has a row in every table and every kind of reference: a grid with a hostile name,
a search with a trial, a pack whose first run comes after another of its runs in id order, a run
running (under a live worker), done, failed, queued, archived and dismissed runs, notes, tags, logs and
a paused queue."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, exc, select, text
from sqlalchemy.engine import make_url

from dmf_tui.cli import main
from store.copy import HISTORY_TABLES, SETTINGS_TABLES, CopyReport, _Copier, copy_history, same_database
from store.db import open_store
from store.errors import StoreError
from store.params import RunParams
from store.search import parse_search
from store.status import RunStatus
from store.tables import Base
from tests.pg import NoServer, Server

Dump = dict[str, list[dict[str, Any]]]

BASE = RunParams(model="mf", data="synthetic-100k", epochs=3, device="cpu")
# Markup, quotes, a newline, right-to-left text, an emoji, a combining accent and a NUL-free control.
HOSTILE = "[bold]x[/bold] \"it's\" naïve 中文 :fire: 🔥 שלום\nline\ttab e\u0301 [@click=app.quit]q[/]"

# The references between rows (store/tables.py): a copy must carry each one to its row's new id.
REFERENCES = {("runs", "sweep_id"): "sweeps", ("runs", "worker_id"): "workers", ("runs", "pack_id"): "runs",
              ("epochs", "run_id"): "runs", ("run_logs", "run_id"): "runs"}


def _history(db: str) -> dict[str, int]:
    """Write the source history described in the module docstring into `db`; the ids of note."""
    with open_store(db) as store:
        worker = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices=["cpu"], slots=1)
        _, grid = store.enqueue_grid([BASE.replace(lr=lr) for lr in (1e-3, 2e-3, 3e-3, 4e-3)], name=HOSTILE)
        store.create_search(parse_search({"lr": "1e-4..1e-1:log"}, BASE.replace(val_size=0.1), trials=2,
                                         sampler="random", pruner="none"), name="search ü 中文")
        queued = store.enqueue(BASE.replace(k=7), retries=2)
        pack = store.claim_pack(worker, device="cpu", limit=2)
        assert [run.id for run in pack] == grid[:2]
        store.set_pack([grid[1], grid[0]], worker_id=worker)  # the pack's first run is the later one
        for run in pack:
            for epoch in (1, 2, 3):
                store.record_epoch(run.id, epoch, train_rmse=1.0 / epoch, test_rmse=1.1 / epoch, seconds=0.25,
                                   worker_id=worker)
            store.finish_run(run.id, "done", worker_id=worker, checkpoint=f"/ckpt/run-{run.id}.pt")
        running = store.claim(worker, device="cpu")
        assert running is not None and running.id == grid[2]
        store.record_epoch(running.id, 1, train_rmse=0.9, test_rmse=0.95, seconds=0.5, worker_id=worker)
        store.append_log(running.id, "epoch 1 " + HOSTILE)
        failed = store.claim(worker, device="cpu")
        assert failed is not None and failed.id == grid[3]
        store.finish_run(failed.id, "failed", error=HOSTILE, worker_id=worker)
        trial = store.claim(worker, device="cpu")
        assert trial is not None and trial.trial == 1
        store.record_epoch(trial.id, 1, train_rmse=0.9, test_rmse=0.95, val_rmse=0.93, seconds=0.5, worker_id=worker)
        store.finish_run(trial.id, "done", worker_id=worker)
        store.set_notes(grid[0], HOSTILE)
        store.set_tags(grid[0], ["[red]", "ünï", "a'b"])
        store.append_log(grid[0], HOSTILE, level="warning")
        store.archive([grid[1]])
        store.dismiss([failed.id])
        store.set_paused(True)
    return {"running": grid[2], "queued": queued, "trial": trial.id}


def _dump(db: str) -> Dump:
    """Every row of every table, in id order, as the store's own types read it."""
    with open_store(db, create=False) as store, store.engine.connect() as conn:
        return {table.name: [dict(row._mapping) for row in conn.execute(select(table).order_by(*table.primary_key))]
                for table in Base.metadata.sorted_tables}


def _as_copied(src: Dump, dst: Dump, ids: dict[str, dict[int, int]], shift: int) -> Dump:
    """SRC's history as it should be in DST: each row with its id and references through `ids`, its
    queue place moved by `shift`, a running run made lost (its reason, times and the line in its log
    as found in `dst`, checked here) and a worker stopped at its last heartbeat."""
    found = {table: {row["id"]: row for row in rows} for table, rows in dst.items()}
    expected: Dump = {}
    for table in HISTORY_TABLES:
        rows = expected[table.name] = []
        for source_row in src[table.name]:
            row = copy.deepcopy(source_row)
            row["id"] = ids[table.name][row["id"]]
            for (name, column), target in REFERENCES.items():
                if name == table.name and row[column] is not None:
                    row[column] = ids[target][row[column]]
            if "position" in row and row["position"] is not None:
                row["position"] += shift
            if table.name == "workers" and row["stopped_at"] is None:
                row["stopped_at"] = row["heartbeat_at"]
            if table.name == "runs" and row["status"] == RunStatus.RUNNING:
                copied = found["runs"][row["id"]]
                assert copied["status"] == RunStatus.LOST
                assert copied["error"].startswith("lost: copied from ")
                assert copied["finished_at"] is not None
                row.update({key: copied[key] for key in ("status", "error", "finished_at", "updated_at")})
            rows.append(row)
    lost = [row["id"] for row in expected["runs"] if row["status"] == RunStatus.LOST]
    notes = [row for row in dst["run_logs"] if row["run_id"] in lost and "marked lost here" in row["text"]]
    assert [row["run_id"] for row in notes] == lost
    expected["run_logs"] += notes
    return expected


def _same_ids(src: Dump) -> dict[str, dict[int, int]]:
    return {table.name: {row["id"]: row["id"] for row in src[table.name]} for table in HISTORY_TABLES}


def _copy(src: str, dst: str, *, merge: bool = False, chunk_rows: int = 3) -> CopyReport:
    """store.copy.copy_history between two databases; chunks of 3 rows, so every table spans several."""
    with open_store(src, create=False) as source, open_store(dst) as destination:
        return copy_history(source, destination, merge=merge, chunk_rows=chunk_rows)


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# (SRC's kind, DST's kind) of each copy tried.
DIRECTIONS = [("sqlite", "sqlite"), ("sqlite", "postgresql"), ("postgresql", "sqlite")]
TO_EACH_KIND = [("sqlite", "sqlite"), ("sqlite", "postgresql")]


@pytest.fixture
def new_db(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str, str], str]:
    """A new, empty database of a kind ("sqlite": a file named `name` in the test's folder, not made
    yet; "postgresql": a fresh database on the throwaway server)."""
    def make(kind: str, name: str) -> str:
        if kind == "sqlite":
            return str(tmp_path / name)
        server: Server | NoServer = request.getfixturevalue("pg_server")
        if isinstance(server, NoServer):
            pytest.skip(f"no PostgreSQL server: {server}")
        return server.new_database()
    return make


@pytest.fixture
def src(tmp_path: Path) -> str:
    path = str(tmp_path / "laptop.db")
    _history(path)
    return path


def _source(new_db: Callable[[str, str], str], kind: str) -> str:
    db = new_db(kind, "laptop.db")
    _history(db)
    return db


# --- what is copied ---------------------------------------------------------------------------------

def test_the_references_are_the_schemas(src: str) -> None:
    """REFERENCES, which the checks below follow, are every foreign key of the schema and the one
    reference that is not one (a run's pack): a new reference fails here until it is checked too."""
    declared = {(table.name, column.name): key.column.table.name
                for table in HISTORY_TABLES for column in table.columns for key in column.foreign_keys}
    assert declared | {("runs", "pack_id"): "runs"} == REFERENCES
    assert set(SETTINGS_TABLES) | {table.name for table in HISTORY_TABLES} == set(Base.metadata.tables)
    assert all(rows for rows in _dump(src).values()), "the source history leaves a table empty"


@pytest.mark.parametrize("kinds", DIRECTIONS)
def test_an_empty_destination_gets_every_row_with_its_id(new_db: Callable[[str, str], str],
                                                         kinds: tuple[str, str]) -> None:
    src, dst = _source(new_db, kinds[0]), new_db(kinds[1], "lab.db")
    before = _dump(src)
    report = _copy(src, dst)
    after = _dump(dst)
    assert {name: after[name] for name in SETTINGS_TABLES} == {name: before[name] for name in SETTINGS_TABLES}
    history = {table.name: after[table.name] for table in HISTORY_TABLES}
    assert history == _as_copied(before, after, _same_ids(before), 0)
    assert report == CopyReport(runs=6, epochs=8, sweeps=1, searches=1, log_lines=len(before["run_logs"]),
                                workers=1, running_as_lost=1, checkpoints=2, merged=False, first_run_id=1)
    assert _dump(src) == before


@pytest.mark.parametrize("kinds", TO_EACH_KIND)
def test_the_copy_works_as_a_database_of_its_own(new_db: Callable[[str, str], str], kinds: tuple[str, str]) -> None:
    """What the store makes of the copied rows: the grid is still a grid (a NULL search, not JSON's
    null), the search carries on with its next trial, the queue is paused, the run that was running
    is lost, not queued again however many retries it had, and new rows are numbered after the copied
    ones (on PostgreSQL, the sequences were moved past them)."""
    src, dst = _source(new_db, kinds[0]), new_db(kinds[1], "lab.db")
    _copy(src, dst)
    with open_store(dst, create=False) as store:
        assert [search.name for search in store.searches()] == ["search ü 中文"]
        assert store.is_paused()
        store.set_paused(False)
        worker = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices=["cpu"], slots=1)
        assert worker == 2  # after the copied worker: the ids go on from the copied ones
        trial = store.claim(worker, device="cpu")  # the search comes first in the queue, as in SRC
        assert trial is not None and trial.trial == 2 and trial.id == 7
        queued = store.claim(worker, device="cpu")
        assert queued is not None and queued.params.k == 7
        assert store.get_run(3).status == RunStatus.LOST
        assert store.run_log(3)[-1].text.endswith("marked lost here")


@pytest.mark.parametrize("kinds", DIRECTIONS)
def test_a_merge_renumbers_every_row_and_reference_after_the_destinations(new_db: Callable[[str, str], str],
                                                                          kinds: tuple[str, str]) -> None:
    src, dst = _source(new_db, kinds[0]), new_db(kinds[1], "lab.db")
    with open_store(dst) as lab:
        lab_worker = lab.register_worker(pid=1, host="gpu-box", devices=["cuda:0"], slots=2)
        lab.enqueue_grid([BASE.replace(k=k) for k in (3, 4, 5)], name="lab's")
        lab.enqueue(BASE.replace(k=6))
        lab.unregister_worker(lab_worker)
    before_src, before_dst = _dump(src), _dump(dst)
    report = _copy(src, dst, merge=True)
    after = _dump(dst)

    ids = {}
    for table in HISTORY_TABLES:
        own = {row["id"] for row in before_dst[table.name]}
        new = [row["id"] for row in after[table.name] if row["id"] not in own]
        ids[table.name] = dict(zip((row["id"] for row in before_src[table.name]), new))
        assert min(new, default=max(own, default=0) + 1) > max(own, default=0)
    last_place = max(row["position"] or 0 for row in before_dst["runs"] + before_dst["sweeps"])
    first_place = min(row["position"] for row in before_src["runs"] + before_src["sweeps"] if row["position"])
    copied = _as_copied(before_src, after, ids, last_place + 1 - first_place)
    for table in HISTORY_TABLES:
        assert after[table.name] == before_dst[table.name] + copied[table.name], table.name
    assert after["queue_state"] == before_dst["queue_state"]  # the destination's own switch stays
    assert report.merged and report.first_run_id == 5 and report.runs == 6
    with open_store(dst, create=False) as lab:
        assert lab.enqueue(BASE) == max(row["id"] for row in after["runs"]) + 1


def test_a_merge_into_an_empty_destination_keeps_the_ids(src: str, tmp_path: Path) -> None:
    dst = str(tmp_path / "lab.db")
    before = _dump(src)
    assert not _copy(src, dst, merge=True).merged
    after = _dump(dst)
    assert after["runs"] == _as_copied(before, after, _same_ids(before), 0)["runs"]


@pytest.mark.parametrize("merge", [False, True])
def test_on_postgresql_only_a_copy_into_an_empty_database_holds_off_other_writers(
        src: str, new_db: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch, merge: bool) -> None:
    """A copy that keeps SRC's ids locks DST's tables until it commits; a merge must not, or a live
    lab's workers could not write a heartbeat meanwhile (and the other boxes would find them lost)."""
    dst = new_db("postgresql", "lab")
    if merge:
        with open_store(dst) as lab:
            lab.enqueue(BASE)
    others: list[str] = []
    copy_packs = _Copier._set_packs

    def another_writer_meanwhile(copier: _Copier) -> None:
        copy_packs(copier)
        engine = create_engine(make_url(dst).set(drivername="postgresql+psycopg"))
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '1s'"))
                conn.execute(text("INSERT INTO sweeps (name, created_at) VALUES ('meanwhile', now())"))
            others.append("written")
        except exc.OperationalError as error:
            others.append("locked" if "lock timeout" in str(error) else str(error))
        finally:
            engine.dispose()

    monkeypatch.setattr(_Copier, "_set_packs", another_writer_meanwhile)
    _copy(src, dst, merge=merge)
    assert others == (["written"] if merge else ["locked"])


# --- refusals and failures --------------------------------------------------------------------------

def test_a_destination_with_a_history_is_refused_without_merge(src: str, tmp_path: Path) -> None:
    dst = str(tmp_path / "lab.db")
    with open_store(dst) as lab:
        lab.register_worker(pid=1, host="gpu-box", devices=["cuda:0"], slots=2)
    before = _dump(dst)
    with pytest.raises(StoreError, match=r"already holds a history \(workers: 1\): add --merge"):
        _copy(src, dst)
    assert _dump(dst) == before


# A trigger that makes the database refuse the epoch with a validation RMSE (the search's trial's: the
# last epoch copied), by kind of database.
REFUSE_AN_EPOCH = {
    "sqlite": ["CREATE TRIGGER refuse BEFORE INSERT ON epochs WHEN NEW.val_rmse IS NOT NULL "
               "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
    "postgresql": ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
                   "CREATE TRIGGER refuse BEFORE INSERT ON epochs FOR EACH ROW WHEN (NEW.val_rmse IS NOT NULL) "
                   "EXECUTE FUNCTION refuse()"],
}


@pytest.mark.parametrize("kinds", TO_EACH_KIND)
def test_a_failure_part_way_leaves_the_destination_as_it_was(new_db: Callable[[str, str], str],
                                                             kinds: tuple[str, str]) -> None:
    """The database refuses the last epoch row, long after the first chunks were written: nothing
    of the copy stays, into an empty destination or in a merge."""
    src, dst = _source(new_db, kinds[0]), new_db(kinds[1], "lab.db")
    with open_store(dst) as lab, lab.engine.begin() as conn:
        for statement in REFUSE_AN_EPOCH[kinds[1]]:
            conn.execute(text(statement))
    empty = _dump(dst)
    with pytest.raises(Exception, match="injected failure"):
        _copy(src, dst, chunk_rows=2)
    assert _dump(dst) == empty
    with open_store(dst) as lab:
        lab.enqueue(BASE)
    before = _dump(dst)
    with pytest.raises(Exception, match="injected failure"):
        _copy(src, dst, merge=True, chunk_rows=2)
    assert _dump(dst) == before


def test_the_source_is_never_written(src: str, tmp_path: Path) -> None:
    before = _file_hash(src)
    _copy(src, str(tmp_path / "lab.db"))
    assert main(["db", "copy", src, str(tmp_path / "other.db")]) == 0
    assert _file_hash(src) == before


# --- the command ------------------------------------------------------------------------------------

def test_the_command_reports_counts_and_notes(src: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = str(tmp_path / "lab.db")
    assert main(["db", "copy", src, dst]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"copied 6 runs, 8 epochs, 1 sweep, 1 search, {len(_dump(src)['run_logs'])} log lines "
                      f"and 1 worker into {dst}")
    assert out[1].startswith("1 run running in SRC copied as lost")
    assert out[2].startswith("1 worker still running on SRC")
    assert out[3].startswith("the checkpoint files of 2 runs were not copied")
    assert main(["db", "copy", src, dst, "--merge", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["merged"] is True and report["first_run_id"] == 7 and report["runs"] == 6
    assert report["source"] == src and report["destination"] == dst


def test_the_command_refuses_a_destination_with_a_history(src: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    dst = str(tmp_path / "lab.db")
    assert main(["db", "copy", src, dst]) == 0
    capsys.readouterr()
    before = _dump(dst)
    assert main(["db", "copy", src, dst]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmf-tui: error: the destination already holds a history (sweeps: 2, workers: 1, "
                          "runs: 6,") and err.count("\n") == 1
    assert _dump(dst) == before


@pytest.mark.parametrize("args, message", [
    (["missing.db", "lab.db"], "no dmf-tui database at {tmp}/missing.db"),
    (["laptop.db", "laptop.db"], "SRC and DST are the same database"),
    (["laptop.db", "./sub/../laptop.db"], "SRC and DST are the same database"),
    (["laptop.db", "other-app.db"], "{tmp}/other-app.db is a database but not a dmf-tui one (tables: notes)"),
    (["laptop.db", "text.db"], "{tmp}/text.db is not a SQLite database"),
    (["laptop.db", "nosuchdb://host/db"], "dmf-tui does not know databases of kind"),
])
def test_bad_input_is_one_line_and_exit_2(src: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    conn = sqlite3.connect(tmp_path / "other-app.db")
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    (tmp_path / "text.db").write_text("not a database\n")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    assert main(["db", "copy", *args]) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and err.count("\n") == 1
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


def test_a_password_in_a_url_is_never_printed_nor_copied(new_db: Callable[[str, str], str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The source's name goes into the error and the log of each run copied as lost, and the command
    prints both names: a password given in the URL, in either form libpq takes, stays out of all of them."""
    server = _source(new_db, "postgresql")
    for with_password in (server.replace("postgres@", "postgres:hunter2@"), server + "?password=hunter2"):
        dst = str(tmp_path / f"{len(with_password)}.db")
        assert main(["db", "copy", with_password, dst]) == 0
        assert main(["db", "copy", with_password, dst, "--merge", "--json"]) == 0
        assert "hunter2" not in capsys.readouterr().out
        assert "hunter2" not in repr(_dump(dst))
        assert "copied from postgresql+psycopg://postgres:***@" in repr(_dump(dst)["runs"])


def test_one_server_database_is_the_same_whatever_the_driver_or_the_user(tmp_path: Path) -> None:
    assert same_database("postgresql://ann@lab/runs", "postgresql+psycopg://bob:secret@lab/runs")
    assert not same_database("postgresql://ann@lab/runs", "postgresql://ann@lab/other")
    assert not same_database("postgresql://ann@lab/runs", "postgresql://ann@lab:5433/runs")
    assert not same_database(f"sqlite:///{tmp_path}/runs", "postgresql://ann@lab/runs")


def test_a_failed_copy_leaves_no_new_destination_file(src: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise StoreError("injected failure")

    monkeypatch.setattr("store.copy._Copier.note_lost_runs", fail)
    dst = tmp_path / "lab.db"
    assert main(["db", "copy", src, str(dst)]) == 2
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("lab.db")) == []
