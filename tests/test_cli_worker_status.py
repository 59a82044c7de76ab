"""`dmf-tui worker status` with workers on several hosts sharing one database: each host with a
one-line summary, then its workers, this machine's first. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import update

from dmf_tui.cli import main
from store.db import Store
from store.params import RunParams
from store.tables import Worker, utcnow
from store.workers import this_pid_space

pytestmark = pytest.mark.backends

HERE = "box-a"
BASE = RunParams(data="synthetic-100k", epochs=10)


@pytest.fixture(autouse=True)
def this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine is box-a, whatever its host name."""
    monkeypatch.setenv("DMF_HOST", HERE)


def elsewhere(store: Store, host: str, pid: int, device: str = "cuda:0") -> int:
    """A worker of another machine: its pid means nothing here, its heartbeat says it lives."""
    return store.register_worker(pid=pid, host=host, pid_space=f"{host} boot-{host} pid:[1]", devices=device,
                                 slots=1)


def here(store: Store) -> int:
    """A worker of this process, on this machine."""
    return store.register_worker(pid=os.getpid(), host=HERE, pid_space=this_pid_space(), devices="cpu", slots=1)


def silence(store: Store, worker_id: int) -> None:
    """Age the worker's heartbeat past the grace period: it is stale."""
    with store.engine.begin() as conn:
        conn.execute(update(Worker).where(Worker.id == worker_id)
                     .values(heartbeat_at=utcnow() - timedelta(seconds=600)))


def status(db: str, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["--db", db, "worker", "status", *flags]) == 0
    return capsys.readouterr().out


def sections(out: str) -> dict[str, list[str]]:
    """Each host's heading with the first word (the worker id) of each of its rows."""
    found: dict[str, list[str]] = {}
    heading = ""
    for line in out.splitlines():
        if line and not line.startswith(" "):
            heading = line
            found[heading] = []
        elif line.strip() and line.split()[0] != "ID":
            found[heading].append(line.split()[0])
    return found


def test_workers_are_grouped_by_host_this_machine_first(store: Store, db: str, capsys) -> None:
    # Created in an order that is neither the hosts' names nor this machine first.
    b_running = elsewhere(store, "box-b", pid=101)
    mine = here(store)
    alpha = elsewhere(store, "alpha", pid=102)
    b_stale = elsewhere(store, "box-b", pid=103, device="cuda:1")
    silence(store, b_stale)
    b_stopped = elsewhere(store, "box-b", pid=104)
    store.unregister_worker(b_stopped)
    _, pack = store.enqueue_grid([BASE.replace(lr=lr) for lr in (1e-3, 2e-3, 3e-3)] + [BASE.replace(k=16)])
    assert [run.id for run in store.claim_pack(mine, device="cpu", limit=3)] == pack[:3]
    claimed = store.claim(b_running, device="cuda:0")
    assert claimed is not None and claimed.id == pack[3]

    out = status(db, capsys)
    assert sections(out) == {
        f"{HERE} (this machine): 1 running": [str(mine)],
        "alpha: 1 running": [str(alpha)],
        "box-b: 1 running, 1 stale": [str(b_stale), str(b_running)],  # newest first, as before
        "(1 stopped worker not shown; --all lists them)": [],
    }
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert rows[str(mine)].split()[1:7] == ["running", str(os.getpid()), "cpu", f"#{pack[0]}", "+2", "(pack)"]
    assert rows[str(mine)].endswith(" s ago")
    assert f"#{pack[3]} " in rows[str(b_running)] and "stale" in rows[str(b_stale)]
    assert max(len(line) for line in out.splitlines()) <= 80

    everything = sections(status(db, capsys, "--all"))
    assert everything["box-b: 1 running, 1 stale, 1 stopped"] == [str(b_stopped), str(b_stale), str(b_running)]


def test_the_hosts_tables_line_up(store: Store, db: str, capsys) -> None:
    here(store)
    elsewhere(store, "a-much-longer-host-name.lab.example.org", pid=1234567, device="cuda:0,cuda:1")
    out = status(db, capsys)
    headers = [line for line in out.splitlines() if line.split()[:1] == ["ID"]]
    assert len(headers) == 2 and headers[0] == headers[1]


def test_json_says_which_workers_are_this_machines(store: Store, db: str, capsys) -> None:
    mine, theirs = here(store), elsewhere(store, "box-b", pid=101)
    listed = {w["id"]: w for w in json.loads(status(db, capsys, "--json"))}
    assert {i: w["local"] for i, w in listed.items()} == {mine: True, theirs: False}
    assert set(listed[theirs]) == {"id", "state", "pid", "host", "local", "devices", "slots", "run", "runs",
                                   "started_at", "heartbeat_at", "stopped_at"}
    assert (listed[theirs]["host"], listed[theirs]["state"]) == ("box-b", "running")


def test_a_host_name_prints_as_stored(store: Store, db: str, capsys, hostile: str) -> None:
    elsewhere(store, f"HOST={hostile}", pid=101)
    assert f"HOST={hostile}: 1 running" in status(db, capsys).splitlines()
