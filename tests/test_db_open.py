"""Opening a database: unusable URLs, missing, damaged and foreign files, read-only files, the demo's
own database, per-database worker files and private permissions."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import default_db_url, open_store
from store.errors import StoreError
from store.params import RunParams

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A dmf-tui database holding one queued run, closed (its WAL folded into the file)."""
    path = tmp_path / "runs.db"
    with open_store(str(path)) as store:
        store.enqueue(RunParams(model="mf", data="synthetic-100k", epochs=1))
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dmf-tui: error: ") and "\n" not in err
    return err


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sidecars(path: Path) -> list[Path]:
    return [p for p in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")) if p.exists()]


# --- Database URLs ---------------------------------------------------------------------------------


def test_postgres_without_its_driver_names_the_extra(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed, whether or not it is
    err = _one_line_error(capsys, ["--db", "postgresql://me:secret@db.lab/runs", "runs"])
    assert "pip install 'dmf-tui[postgres]'" in err
    assert "db.lab" in err and "secret" not in err


def test_a_server_that_does_not_answer_is_one_line(capsys) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for url in (f"postgresql://me:secret@127.0.0.1:{port}/runs", f"postgresql://me@127.0.0.1:{port}/runs?password=secret"):
        err = _one_line_error(capsys, ["--db", url, "runs"])
        assert "Connection refused" in err and "secret" not in err


def test_a_plain_postgresql_url_reaches_the_server_through_every_command(pg_db: str, capsys,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plain = pg_db.replace("postgresql+psycopg://", "postgresql://")
    monkeypatch.setenv("DMF_DB", plain)
    assert main(["add", "--data", "synthetic-100k", "--lr", "1e-3,1e-2"]) == 0
    capsys.readouterr()
    assert main(["runs", "--status", "queued", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(run["params"]["lr"] for run in listed) == [1e-3, 1e-2]
    with open_store(pg_db) as store:  # the same database, reached by the driver's own name
        assert len(store.queue()) == 2


@pytest.mark.parametrize("url", ["foo://x/y", "://", "postgresql://me@db.lab:port/runs"])
def test_an_unusable_url_is_one_line(capsys, url: str) -> None:
    _one_line_error(capsys, ["--db", url, "add", "--data", "synthetic-100k"])


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(capsys, url: str) -> None:
    assert "in-memory" in _one_line_error(capsys, ["--db", url, "add", "--data", "synthetic-100k"])


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_db_option_is_refused(capsys, value: str) -> None:
    assert "empty" in _one_line_error(capsys, ["--db", value, "runs"])


@pytest.mark.parametrize("value", ["", "  \t"])
def test_an_empty_or_blank_dmf_db_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   value: str) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("DMF_DB", value)
    assert default_db_url() == f"sqlite:///{tmp_path}/dmf-tui/runs.db"


# --- Missing, damaged and old databases ------------------------------------------------------------


@pytest.mark.parametrize("command", [["runs"], ["show", "1"], ["export", "--csv", "out.csv"],
                                     ["worker", "status"], ["worker", "stop"]])
def test_a_read_command_on_a_missing_database_creates_nothing(tmp_path: Path, capsys, command) -> None:
    missing = tmp_path / "nowhere" / "x.db"
    err = _one_line_error(capsys, ["--db", str(missing), *command])
    assert f"no dmf-tui database at {missing}" in err
    assert not (tmp_path / "nowhere").exists()


def test_a_read_command_on_an_empty_file_leaves_it_empty(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert "no dmf-tui database" in _one_line_error(capsys, ["--db", str(empty), "runs"])
    assert empty.stat().st_size == 0 and not _sidecars(empty)


def test_a_corrupt_database_is_one_line_and_left_untouched(db: Path, capsys) -> None:
    # A valid SQLite header followed by garbage where the schema and the rows were.
    db.write_bytes(db.read_bytes()[:100] + bytes(range(256)) * (db.stat().st_size // 256))
    before = db.read_bytes()
    assert "malformed" in _one_line_error(capsys, ["--db", str(db), "add", "--data", "synthetic-100k"])
    assert "malformed" in _one_line_error(capsys, ["--db", str(db), "runs"])
    assert db.read_bytes() == before and not _sidecars(db)


def test_damage_past_the_schema_is_one_line_too(tmp_path: Path, capsys) -> None:
    path = tmp_path / "runs.db"
    with open_store(str(path)) as store:
        store.enqueue_grid([RunParams(seed=seed) for seed in range(300)])
    data = bytearray(path.read_bytes())
    data[4 * 4096:] = bytes(i * 7 % 256 for i in range(len(data) - 4 * 4096))  # the schema is intact
    path.write_bytes(bytes(data))
    assert "malformed" in _one_line_error(capsys, ["--db", str(path), "runs"])
    assert path.read_bytes() == data


@pytest.mark.parametrize("version", [0, -3, None, "two"])
def test_a_version_older_than_any_migration_is_refused_untouched(db: Path, version) -> None:
    con = sqlite3.connect(db)
    if version is None:
        con.execute("delete from schema_version")
    else:
        con.execute("update schema_version set version = ?", (version,))
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(StoreError) as info:
        open_store(str(db))
    assert str(db) in str(info.value) and "\n" not in str(info.value)
    assert db.read_bytes() == before


def test_a_foreign_sqlite_file_is_never_modified(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("create table invoices (id integer)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(StoreError, match="not a dmf-tui one"):
        open_store(str(other))
    assert other.read_bytes() == before  # still in rollback-journal mode: no switch to WAL
    assert not _sidecars(other)


# --- The demo keeps its own database ---------------------------------------------------------------


def test_demo_ignores_dmf_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dmf_tui.commands.tui as tui

    opened: list[str | None] = []

    def run_app(db: str | None) -> int:
        opened.append(db)
        return 0

    monkeypatch.setattr(tui, "_run_app", run_app)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    real = tmp_path / "real.db"
    monkeypatch.setenv("DMF_DB", str(real))
    assert main(["demo"]) == 0
    demo = tmp_path / "xdg" / "dmf-tui" / "demo.db"
    assert opened == [str(demo)]
    assert not real.exists()
    assert len(open_store(str(demo)).queue()) == 2
    chosen = tmp_path / "chosen.db"
    assert main(["demo", "--db", str(chosen)]) == 0  # an explicit --db still picks the database
    assert opened[-1] == str(chosen) and len(open_store(str(chosen)).queue()) == 2


# --- Worker files belong to one database -----------------------------------------------------------


def test_worker_files_are_named_after_their_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from store.db import state_path

    runs, demo = (f"sqlite:///{tmp_path}/{name}" for name in ("runs.db", "demo.db"))
    assert state_path(runs, ".worker.log") == tmp_path / "runs.db.worker.log"
    assert state_path(demo, ".checkpoints") == tmp_path / "demo.db.checkpoints"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    server = state_path("postgresql://me:one@db.lab/runs", ".worker.log")
    assert server.parent == tmp_path / "xdg" / "dmf-tui" and server.name.startswith("postgresql-")
    assert state_path("postgresql+psycopg://me:two@db.lab/runs", ".worker.log") == server
    assert state_path("postgresql://me@db.lab/runs?password=three", ".worker.log") == server
    assert state_path("postgresql://me@db.lab/other", ".worker.log") != server


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Permissions must not depend on the umask: the most open one lets nothing through."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_detached_worker_logs_to_its_own_private_file(tmp_path: Path, monkeypatch, capsys, umask_zero) -> None:
    started: list[list[str]] = []

    class Started:
        pid = 4242

        def __init__(self, command: list[str], **_kwargs) -> None:
            started.append(command)

    monkeypatch.setattr("dmf_tui.commands.worker.subprocess.Popen", Started)
    for name in ("runs.db", "demo.db"):
        assert main(["--db", str(tmp_path / name), "worker", "--detach", "--exit-when-empty"]) == 0
    assert len(started) == 2
    logs = sorted(p.name for p in tmp_path.glob("*.log"))
    assert logs == ["demo.db.worker.log", "runs.db.worker.log"]
    assert _mode(tmp_path / "runs.db.worker.log") == 0o600
    assert f"log {tmp_path / 'runs.db.worker.log'}" in capsys.readouterr().out


def test_worker_checkpoints_go_to_a_private_folder_of_their_database(tmp_path: Path, monkeypatch,
                                                                    umask_zero) -> None:
    import engine.worker

    options: list[engine.worker.WorkerOptions] = []

    def run_slots(devices: list[str], opts: engine.worker.WorkerOptions) -> int:
        options.append(opts)
        return 0

    monkeypatch.setattr(engine.worker, "run_slots", run_slots)
    monkeypatch.setattr(engine.worker, "configure_logging", lambda: None)
    for name in ("runs.db", "demo.db"):
        assert main(["--db", str(tmp_path / name), "worker", "--exit-when-empty"]) == 0
    assert [o.checkpoint_dir for o in options] == [tmp_path / "runs.db.checkpoints", tmp_path / "demo.db.checkpoints"]
    assert all(o.checkpoint_dir is not None and _mode(o.checkpoint_dir) == 0o700 for o in options)


def test_a_checkpoint_is_private(tmp_path: Path, umask_zero) -> None:
    from engine.split import split_dataset
    from engine.trainer import fit
    from tests.test_trainer import tiny_dataset

    path = tmp_path / "runs.db.checkpoints" / "run-1.pt"
    fit(split_dataset(tiny_dataset()), epochs=1, device="cpu", checkpoint_path=path)
    assert _mode(path) == 0o600


# --- Permissions -----------------------------------------------------------------------------------


def test_a_new_database_and_its_folder_are_private(tmp_path: Path, monkeypatch, umask_zero) -> None:
    monkeypatch.delenv("DMF_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with open_store() as store:
        store.enqueue(RunParams())
        folder = tmp_path / "dmf-tui"
        sidecars = _sidecars(folder / "runs.db")
        assert len(sidecars) == 2  # -wal and -shm, while the store is open
        assert [_mode(p) for p in sidecars] == [0o600, 0o600]
    assert _mode(folder) == 0o700
    assert _mode(folder / "runs.db") == 0o600


# --- Read-only databases ---------------------------------------------------------------------------


def _as_a_plain_user() -> list[str]:
    """The prefix that runs a command without root's right to write any file whatever its mode
    (the tests may run as root): the same user, its capabilities to override file modes dropped."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only file cannot be made read-only for us")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture(params=[0o555, 0o755], ids=["read-only folder", "writable folder"])
def read_only_db(db: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A copy of `db` that may be read but not written, in a folder that may or may not be. Its
    run 2 was running when the copy was taken, for a worker that has died since: listing would mark
    it lost, were the file writable."""
    with open_store(str(db)) as store:
        store.enqueue(RunParams(model="deepmf", data="synthetic-100k", epochs=1))
        store.move(2, -1)  # so that the worker claims it, and run 1 stays queued
        dead = subprocess.Popen(["true"])
        dead.wait()
        worker_id = store.register_worker(pid=dead.pid, host=socket.gethostname(), devices="cpu", slots=1)
        claimed = store.claim(worker_id, device="cpu")
        assert claimed is not None and claimed.id == 2
    folder = db.parent / "backup"
    folder.mkdir()
    copy = folder / "runs.db"
    shutil.copy(db, copy)
    copy.chmod(0o444)
    folder.chmod(request.param)
    yield copy
    folder.chmod(0o755)


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    command = [*_as_a_plain_user(), sys.executable, "-m", "dmf_tui", *args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)


def test_a_read_only_database_can_be_listed_shown_and_exported(read_only_db: Path, tmp_path: Path) -> None:
    before = read_only_db.read_bytes()
    listed = _cli(["--db", str(read_only_db), "runs", "--status", "all", "--json"])
    assert listed.returncode == 0, listed.stderr
    assert '"model": "mf"' in listed.stdout and '"status": "running"' in listed.stdout
    shown = _cli(["--db", str(read_only_db), "show", "1"])
    assert shown.returncode == 0 and "synthetic-100k" in shown.stdout, shown.stderr
    exported = _cli(["--db", str(read_only_db), "export", "--csv", str(tmp_path / "runs.csv")])
    assert exported.returncode == 0 and "synthetic-100k" in (tmp_path / "runs.csv").read_text(), exported.stderr
    cancelled = _cli(["--db", str(read_only_db), "cancel", "1"])
    assert cancelled.returncode == 2
    assert cancelled.stderr.strip() == (f"dmf-tui: error: {read_only_db} is read-only for this user: "
                                        "nothing can be changed in it")
    assert read_only_db.read_bytes() == before and not _sidecars(read_only_db)


def test_a_read_only_store_refuses_writes_in_one_line(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As root every file is writable, so this test stands in the check for "may I write it".
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
    with open_store(str(db)) as store:
        assert store.read_only and len(store.queue()) == 1
        with pytest.raises(StoreError, match="read-only"):
            store.cancel([1])
