"""The TUI on a PostgreSQL server, with workers on two machines: the header names the server (never
its password) and counts the hosts, the Queue tab lists the runs and each host's worker slots
together, this machine's first."""

from __future__ import annotations

import os

import pytest
from sqlalchemy.engine import make_url
from textual.widgets import Static

from dmf_tui.app import db_name
from dmf_tui.components.run_table import RunTable
from dmf_tui.components.status_bar import worker_text
from store.db import Store, open_store
from store.params import RunParams
from store.workers import this_host, this_pid_space
from tests.tui.conftest import FakeWorker, TextualPrivate, make_app, settle

BASE = RunParams(data="synthetic-100k", epochs=10)
PASSWORD = "s3cret-pw"


# --- which server --------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://bob:s3cret@db.lab:5432/runs", "postgresql db.lab:5432/runs"),
    ("postgresql://db.lab/runs", "postgresql db.lab/runs"),
    ("postgresql:///runs?host=/run/postgresql", "postgresql /run/postgresql/runs"),
    ("postgresql:///runs", "postgresql runs"),
    ("postgresql://bob@db.lab", "postgresql db.lab"),
    ("sqlite:////home/bob/lab/runs.db", "runs.db"),
])
def test_the_header_names_the_server_and_database(url: str, shown: str) -> None:
    assert db_name(url) == shown


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://bob:s3cret@db.lab:5432/runs",
    "postgresql://bob@db.lab/runs?password=s3cret",  # libpq takes it from the query too
    "postgresql://bob:s3cret@/runs?host=/run/postgresql",
])
def test_the_header_never_shows_a_password_nor_the_user(url: str) -> None:
    assert "s3cret" not in db_name(url) and "bob" not in db_name(url)


def test_a_long_server_name_is_cut_to_fit_80_columns() -> None:
    host = "db-primary.us-east-1.rds.amazonaws.example.com"
    name = db_name(f"postgresql://{host}:5432/experiments_of_the_movielens_lab")
    assert name.startswith("postgresql db-primary.") and ":5432/experiments" in name and name.endswith("…")
    assert len(name) <= 60


# --- workers on several hosts --------------------------------------------------------------


def slot(store: Store, host: str, device: str) -> int:
    """A worker slot of this process on this machine, or of a process on `host`."""
    if host == this_host():
        return store.register_worker(pid=os.getpid(), host=host, pid_space=this_pid_space(), devices=device, slots=1)
    return store.register_worker(pid=4242, host=host, pid_space=f"{host} boot pid:[1]", devices=device, slots=1)


def test_workers_on_two_hosts_are_counted_by_host_in_the_wide_form(store) -> None:
    for host, device in ((this_host(), "cpu"), ("box-b", "cuda:0"), ("box-b", "cuda:1")):
        slot(store, host, device)
    workers = store.workers()
    assert worker_text(workers).plain == "worker 3 running on 2 hosts"
    assert worker_text(workers, short=True).plain == "3 workers"  # the narrow forms stay short


def test_workers_on_one_host_still_show_their_devices(store) -> None:
    for device in ("cuda:0", "cuda:1"):
        slot(store, "box-b", device)
    assert worker_text(store.workers()).plain == "worker 2 running on cuda:0,cuda:1"


# --- the app on PostgreSQL -----------------------------------------------------------------


@pytest.fixture
def server_store(pg_db: str):
    """A store on the throwaway server, opened through a URL that carries a password (the server
    trusts local connections, so it is never asked for)."""
    url = make_url(pg_db).set(password=PASSWORD).render_as_string(hide_password=False)
    with open_store(url) as opened:
        yield opened


async def test_the_tui_on_a_server_with_workers_on_two_hosts(server_store) -> None:
    store = server_store
    mine = FakeWorker(store)
    theirs = slot(store, "box-b", "cuda:0")
    done = mine.run(BASE.replace(model="mf"), 3)
    _, (running, remote, queued) = store.enqueue_grid([BASE.replace(k=k) for k in (8, 16, 32)])
    assert mine.start().id == running
    assert store.claim(theirs, device="cuda:0").id == remote
    url = make_url(store.url)
    server = f"postgresql {url.host}:{url.port}/{url.database}"

    app = make_app(store)
    async with app.run_test(size=(200, 24)) as pilot:
        await settle(pilot)
        header = TextualPrivate.screen_lines(app)[0]
        assert server in header and "worker 2 running on 2 hosts" in header
        assert "1 queued, 2 running" in header and "1 done" in header

        table = app.queue_tab.query_one("#queue-table", RunTable)
        assert [table.get_row_at(row)[0] for row in range(table.row_count)] == [running, remote, queued]
        assert done not in [table.get_row_at(row)[0] for row in range(table.row_count)]
        load = str(app.queue_tab.query_one("#slot-load", Static).render()).splitlines()
        assert load[0].startswith(f"worker {mine.id}  cpu  CPU ")
        assert load[1] == f"worker {theirs}  cuda:0  on box-b"

        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        lines = TextualPrivate.screen_lines(app)
        assert "2 workers" in lines[0] and "1 queued" in lines[0] and "1 done" in lines[0]
        assert not any(PASSWORD in line for line in lines)

        # The header has no room for the server at 80 columns; the help names it.
        await pilot.press("question_mark")
        await settle(pilot)
        lines = TextualPrivate.screen_lines(app)
        assert any(f"Database: {server}" in line for line in lines)
        assert not any(PASSWORD in line for line in lines)


async def test_this_machines_slots_come_first_then_each_hosts_together(store) -> None:
    # Registered interleaved: the lines follow the hosts, not the order the slots started in.
    ids = [slot(store, host, device) for host, device in (("box-c", "cuda:0"), (this_host(), "cpu"),
                                                          ("box-b", "cuda:0"), ("box-c", "cuda:1"))]
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        load = str(app.queue_tab.query_one("#slot-load", Static).render()).splitlines()
        assert [line.split()[1] for line in load] == [str(ids[i]) for i in (1, 2, 0, 3)]
        assert [line.split()[-1] for line in load[1:]] == ["box-b", "box-c", "box-c"]
