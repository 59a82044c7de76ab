"""Workers: heartbeats, states, and reaping the runs of workers that died."""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from store.db import Store, open_store
from store.params import RunParams
from store.tables import Worker, utcnow
from store.workers import this_host, this_pid_space
from tests.processes import dead_pid

pytestmark = pytest.mark.backends


def _error(store: Store, run_id: int) -> str:
    """The error the run ended with (the test expects one)."""
    error = store.get_run(run_id).error
    assert error is not None, f"run {run_id} has no error"
    return error


def _age_heartbeat(store: Store, worker_id: int, seconds: float) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(Worker).where(Worker.id == worker_id)
                     .values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def _skew_client_clock(monkeypatch: pytest.MonkeyPatch, minutes: float) -> None:
    """Set the clock the store's modules read `minutes` off, as on a machine whose clock is wrong
    (every store module that reads this machine's time does so through utcnow)."""
    def skewed() -> datetime:
        return utcnow() + timedelta(minutes=minutes)

    for name, module in list(sys.modules.items()):
        if name.startswith("store.") and callable(getattr(module, "utcnow", None)):
            monkeypatch.setattr(module, "utcnow", skewed)


def _running_run(store: Store, worker_id: int) -> int:
    store.enqueue(RunParams())
    run = store.claim(worker_id, device="cpu")
    assert run is not None, "nothing was claimed"
    store.record_epoch(run.id, 1, train_rmse=1.0, test_rmse=1.1, seconds=1.0)
    return run.id


def test_dead_pid_on_this_host_makes_its_runs_lost(store: Store) -> None:
    worker = store.register_worker(pid=dead_pid(), host=socket.gethostname(), devices=["cpu"], slots=1)
    run_id = _running_run(store, worker)
    assert store.reap_lost(grace_s=3600) == [run_id]
    run = store.get_run(run_id)
    assert run.status == "lost"
    assert "no longer running" in _error(store, run_id)
    assert len(store.epochs(run_id)) == 1  # kept


def test_a_dead_pid_on_another_host_waits_for_the_heartbeat(store: Store) -> None:
    worker = store.register_worker(pid=dead_pid(), host="elsewhere", devices="cuda:0", slots=1)
    run_id = _running_run(store, worker)
    assert store.reap_lost(grace_s=3600) == []
    _age_heartbeat(store, worker, 120)
    assert store.reap_lost(grace_s=30) == [run_id]
    assert "no heartbeat for 120 s" in _error(store, run_id)
    assert len(store.epochs(run_id)) == 1


def test_live_workers_keep_their_runs(store: Store) -> None:
    worker = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices=["cpu"], slots=2)
    run_id = _running_run(store, worker)
    store.heartbeat(worker)
    assert store.reap_lost() == []
    assert store.get_run(run_id).status == "running"


def test_worker_states(store: Store) -> None:
    here = socket.gethostname()
    alive = store.register_worker(pid=os.getpid(), host=here, devices=["cuda:0", "cuda:1"], slots=2)
    dead = store.register_worker(pid=dead_pid(), host=here, devices=["cpu"], slots=1)
    silent = store.register_worker(pid=os.getpid(), host="elsewhere", devices=["cpu"], slots=1)
    stopped = store.register_worker(pid=os.getpid(), host=here, devices=["cpu"], slots=1)
    _age_heartbeat(store, silent, 300)
    store.unregister_worker(stopped)
    states = {w.id: w.state for w in store.workers()}
    assert states == {alive: "running", dead: "stale", silent: "stale", stopped: "stopped"}
    (only,) = store.workers(alive_only=True)
    assert (only.id, only.devices, only.slots) == (alive, ("cuda:0", "cuda:1"), 2)

    # Reaping closes the row of the worker whose process is gone; a silent remote one stays stale
    # (it may come back), and the open list no longer carries the closed ones.
    store.reap_lost()
    states = {w.id: w.state for w in store.workers()}
    assert states == {alive: "running", dead: "stopped", silent: "stale", stopped: "stopped"}
    assert [w.id for w in store.workers(include_stopped=False)] == [silent, alive]


def test_heartbeats_are_judged_by_the_database_clock(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two machines on one database with clocks 20 minutes apart: the one behind runs a worker, the
    one ahead looks at it. Only the database's clock counts, so the worker is alive; and a heartbeat
    that really is old (set in the database) is stale however the looking machine's clock is off."""
    _skew_client_clock(monkeypatch, -10)
    alive = store.register_worker(pid=os.getpid(), host="elsewhere", devices=["cpu"], slots=1)
    kept = _running_run(store, alive)
    store.heartbeat(alive)
    silent = store.register_worker(pid=os.getpid(), host="elsewhere", devices=["cpu"], slots=1)
    lost = _running_run(store, silent)
    _age_heartbeat(store, silent, 120)

    for minutes in (+10, -10):
        _skew_client_clock(monkeypatch, minutes)
        assert {w.id: w.state for w in store.workers()} == {alive: "running", silent: "stale"}, minutes
    assert store.reap_lost() == [lost]
    assert "no heartbeat for 120 s" in _error(store, lost)
    assert store.get_run(kept).status == "running"


def test_a_lost_run_with_retries_is_queued_again_and_keeps_its_epochs(store: Store) -> None:
    worker = store.register_worker(pid=dead_pid(), host=socket.gethostname(), devices=["cpu"], slots=1)
    sweep_id, (run_id,) = store.enqueue_grid([RunParams(k=7)], retries=1)
    store.claim(worker, device="cpu")
    store.record_epoch(run_id, 1, train_rmse=1.0, test_rmse=1.1, seconds=1.0)

    assert store.reap_lost() == [run_id]

    lost, (copy,) = store.get_run(run_id), [r for r in store.queue() if r.status == "queued"]
    assert (lost.status, len(store.epochs(run_id))) == ("lost", 1)
    assert (copy.params.k, copy.sweep_id, copy.retries, copy.notes) == (7, sweep_id, 0, f"automatic retry of #{run_id}")


def _read_only(store: Store) -> Store:
    return open_store(f"sqlite:///file:{store.engine.url.database}?mode=ro&uri=true")


def test_a_worker_is_judged_by_its_pid_only_where_the_pid_names_it(store: Store,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    here = this_pid_space()
    # Same host name, another pid namespace (a container) or another boot: the pid means nothing here.
    elsewhere = [store.register_worker(pid=dead_pid(), host=this_host(), pid_space=f"{here}-other",
                                       devices=["cpu"], slots=1) for _ in range(2)]
    local = store.register_worker(pid=dead_pid(), host=this_host(), pid_space=here, devices=["cpu"], slots=1)
    runs = [_running_run(store, worker) for worker in (*elsewhere, local)]

    assert store.reap_lost(grace_s=3600) == [runs[2]]
    assert [w.local for w in sorted(store.workers(), key=lambda w: w.id)] == [False, False, True]
    # Their heartbeats alone tell: silent past the grace, they are lost too.
    for worker in elsewhere:
        _age_heartbeat(store, worker, 120)
    assert sorted(store.reap_lost(grace_s=60)) == runs[:2]
    assert "sent no heartbeat" in _error(store, runs[0])


def test_dmf_host_names_this_machine(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_HOST", "box-b")
    assert this_host() == "box-b" and this_pid_space().startswith("box-b ")
    on_b = store.register_worker(pid=dead_pid(), host=this_host(), pid_space=this_pid_space(), devices=["cpu"],
                                 slots=1)
    run_id = _running_run(store, on_b)
    monkeypatch.setenv("DMF_HOST", "box-a")  # another box, sharing the database (and, here, the kernel)
    assert store.reap_lost(grace_s=3600) == []
    assert [w.local for w in store.workers()] == [False]
    monkeypatch.setenv("DMF_HOST", "box-b")
    assert store.reap_lost(grace_s=3600) == [run_id]


def test_a_read_only_database_is_reaped_when_possible_and_listed_anyway(store: Store, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("a read-only database is a file this user may not write: a SQLite matter")
    read_only = _read_only(store)
    dead = store.register_worker(pid=dead_pid(), host=socket.gethostname(), devices=["cpu"], slots=1)
    run_id = _running_run(store, dead)
    assert read_only.reap_lost_if_writable() == []
    assert read_only.get_run(run_id).status == "running"
    assert store.reap_lost_if_writable() == [run_id]
    read_only.close()
