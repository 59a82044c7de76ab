"""A throwaway PostgreSQL server for the tests: the OS package's initdb and pg_ctl, a data folder in
/tmp, listening on a free local port, gone when the test session ends.

Each pytest process (pytest-xdist runs one per core) starts its own server once; every test that asks
gets a fresh, empty database in it (CREATE DATABASE is a file copy of template1: tens of milliseconds).
The server runs without fsync: a crash would lose it, which for a throwaway server is no loss, and it
makes the schema's creation and each epoch's commit as fast as on SQLite.

PostgreSQL refuses to run as root, so as root (CI containers) it runs as the `postgres` user the OS
package creates.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

# Where the OS package puts its programs when they are not on PATH (Debian and Ubuntu).
_PACKAGE_BINS = "/usr/lib/postgresql/*/bin"


class NoServer(Exception):
    """No PostgreSQL server can be started on this machine; the message says why."""


def find_program(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"{_PACKAGE_BINS}/{name}"), reverse=True)), None)
    if found is None:
        raise NoServer(f"PostgreSQL's {name} is not installed (the OS package postgresql; .ci/run installs it)")
    return found


class Server:
    """A running throwaway server; `new_database()` hands out fresh databases on it."""

    def __init__(self) -> None:
        initdb, self._pg_ctl = find_program("initdb"), find_program("pg_ctl")
        self._user = _server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="dmf-pg-"))
        data = self.folder / "data"
        if self._user is not None:
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        self.port = _free_port()
        self._run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._data = data
        self._run(self._pg_ctl, "-D", str(data), "-o", options, "-l", str(self.folder / "server.log"),
                  "-w", "-t", "60", "start")
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database on this server."""
        import psycopg  # the [postgres] extra; the tests that reach here have it

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(self._pg_ctl, "-D", str(self._data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, *command: str) -> None:
        if self._user is not None:
            command = ("runuser", "-u", self._user.pw_name, "--", *command)
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if done.returncode != 0:
            log = self.folder / "server.log"
            detail = log.read_text()[-2000:] if log.exists() else ""
            raise NoServer(f"{' '.join(command)} failed: {done.stderr.strip()[-2000:]} {detail}".strip())


def start_server() -> Server:
    """A new server; NoServer with the reason when none can be had (no package, no driver, no user)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise NoServer("the PostgreSQL driver is not installed: pip install 'dmf-tui[postgres]'") from None
    return Server()


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: None for ourselves, `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise NoServer("running as root and there is no `postgres` user to run the server as") from None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
