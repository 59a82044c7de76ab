"""Shared fixtures. The real ML-100K lives outside the repository (licence): tests that need it skip."""

from __future__ import annotations

import os
import subprocess
import sys

# One torch thread for the whole session, set before any test module imports torch (and inherited
# by the worker processes the tests start): the tests' steps are tiny, and on a 2-core machine a
# thread pool only adds overhead (issue 9 measured the equivalence tests at 73 s with torch's default
# threads, 17 s with one; fit() has since set one thread itself on the CPU, so today this mostly
# keeps the tests' own torch work, and pytest-xdist's two processes, off each other's cores).
# No result depends on it.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"
if "torch" in sys.modules:  # a plugin got there first; the TUI tests must not import it themselves
    sys.modules["torch"].set_num_threads(1)

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from store.db import Store, open_store  # noqa: E402
from tests.pg import NoServer, Server, start_server  # noqa: E402
from tests.processes import Spawned  # noqa: E402

# The backends a module marked `pytestmark = pytest.mark.backends` runs its `db` and `store` on.
BACKENDS = ("sqlite", "postgresql")

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"

# Text that Rich or Textual would read as markup or an emoji code, were it not shown literally.
HOSTILE = ("[/]", "[bold]x[/bold]", "[@click=app.quit]x[/]", ":fire:")


@pytest.fixture
def ml100k_path() -> Path:
    if not ML100K.exists():
        pytest.skip(f"real ML-100K not found at {ML100K} (it is not redistributable)")
    return ML100K


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's config folder (where the TUI keeps its theme) inside the test's own folder, so no
    test reads or writes the real ~/.config/dmf-tui, ~/.local/share/dmf-tui or ~/.cache/dmf-tui."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    # And the data folder, where a server database's worker log and checkpoints go: spawn's too.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    # And the cache of parsed ratings files (engine/cache.py).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return folder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends: run the module's db and store fixtures on SQLite and on "
                            "PostgreSQL (a throwaway local server; skipped with the reason where none starts)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database kind of the test's `db`: SQLite, unless its module is marked `backends`."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server | NoServer]:
    """This pytest process's PostgreSQL server, started on first use; or why there is none."""
    try:
        server = start_server()
    except NoServer as reason:
        yield reason
        return
    yield server
    server.stop()


@pytest.fixture
def pg_db(pg_server: Server | NoServer) -> str:
    """The URL of a fresh, empty database on the throwaway PostgreSQL server."""
    if isinstance(pg_server, NoServer):
        pytest.skip(f"no PostgreSQL server: {pg_server}")
    return pg_server.new_database()


@pytest.fixture
def db(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> str:
    """Where a test's database goes (not created yet): what the command line's --db takes. A file in
    the test's folder, or, on the postgresql backend, a fresh database on the throwaway server."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_db"))
    return str(tmp_path / "runs.db")


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    """An empty store in the test's own database file, closed after the test."""
    with open_store(db) as opened:
        yield opened


@pytest.fixture(params=HOSTILE)
def hostile(request: pytest.FixtureRequest) -> str:
    """Each HOSTILE text in turn."""
    return str(request.param)


@pytest.fixture
def spawn(tmp_path: Path, db: str):
    """Starts `dmf-tui --db <the test's db> ARGS...` with its output in a log file; kills whatever is
    left of the processes it started when the test ends."""
    started: list[Spawned] = []
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}

    def start(*args: str, name: str = "worker", host: str | None = None) -> Spawned:
        """`host`: the process's $DMF_HOST, as if it ran on another machine."""
        log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115  (the process writes it; closed at the end)
        process = Spawned(
            [sys.executable, "-m", "dmf_tui", "--db", db, *args],
            stdout=log, stderr=subprocess.STDOUT, env=env if host is None else {**env, "DMF_HOST": host},
        )
        log.close()
        process.log = tmp_path / f"{name}.log"
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
