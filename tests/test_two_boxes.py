"""Two boxes on one PostgreSQL queue: worker processes that say they run on different machines
($DMF_HOST, with pid spaces of their own) drain one queue on a real server, never train one run twice,
and judge each other by database-clock heartbeats alone: a box never reaps a live worker of another
by its pid, and a dead one is found by its silence."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import Store
from tests.processes import LONG, epochs_done, finished, params, stop_outside_a_write, wait_for, write_ratings


@pytest.fixture
def db(pg_db: str) -> str:
    """Every process of these tests (spawn's too) uses the server."""
    return pg_db


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    return write_ratings(tmp_path / "u.data")


def test_workers_on_two_boxes_drain_one_queue_each_run_once(store: Store, ratings, spawn,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    boxes = {host: spawn("worker", "--poll", "0.1", "--pack", "1", name=host, host=host)
             for host in ("box-a", "box-b")}
    wait_for(lambda: len(store.workers(alive_only=True)) == 2, "both boxes' workers to register")
    by_host = {w.host: w for w in store.workers()}
    assert set(by_host) == {"box-a", "box-b"}
    assert not any(w.local for w in by_host.values())  # neither is this test's machine, by name

    _, ids = store.enqueue_grid([params(ratings, epochs=6, seed=seed) for seed in range(16)])
    wait_for(lambda: all(store.get_run(i).status == "done" for i in ids), "the 16 runs to finish")

    trained_on = {store.get_run(i).worker_id for i in ids}
    assert trained_on == {by_host["box-a"].id, by_host["box-b"].id}  # both boxes took runs
    for run_id in ids:
        assert [e.epoch for e in store.epochs(run_id)] == list(range(1, 7))  # each once, whole
    assert main(["--db", store.url, "worker", "status"]) == 0
    status = capsys.readouterr().out
    assert "box-a" in status and "box-b" in status
    for process in boxes.values():
        process.send_signal(signal.SIGTERM)
    assert [finished(p) for p in boxes.values()] == [0, 0]


def test_a_box_killed_mid_run_is_found_by_its_silence_and_the_other_box_goes_on(
        store: Store, ratings, spawn, monkeypatch: pytest.MonkeyPatch) -> None:
    long = store.enqueue(params(ratings, epochs=LONG), retries=1)
    box_a = spawn("worker", "--poll", "0.1", name="box-a", host="box-a")
    wait_for(epochs_done(store, long, 2), "box a to train the long run")
    box_b = spawn("worker", "--poll", "0.1", name="box-b", host="box-b")
    wait_for(lambda: len(store.workers(alive_only=True)) == 2, "box b's worker to register")

    box_a.kill()
    box_a.wait()

    # Seen from box b, a's pid means nothing (it is another machine): only its heartbeat can tell.
    monkeypatch.setenv("DMF_HOST", "box-b")
    assert store.reap_lost(grace_s=3600) == []
    assert store.get_run(long).status == "running"
    wait_for(lambda: store.reap_lost(grace_s=1.0) == [long], "box a's silence to outlast a short grace")
    lost = store.get_run(long)
    assert lost.status == "lost" and "sent no heartbeat" in (lost.error or "")
    retry = store.queue()[-1]
    assert retry.notes == f"automatic retry of #{long}"
    # Box b trains the retry; box b itself, alive, was never touched.
    wait_for(lambda: store.get_run(retry.id).status == "running", "box b to take the retry")
    assert {w.host: w.state for w in store.workers(grace_s=1.0)} == {"box-a": "stale", "box-b": "running"}
    box_b.send_signal(signal.SIGTERM)
    assert finished(box_b) == 0
    assert store.get_run(retry.id).status == "interrupted"


def test_a_stalled_box_finds_its_run_taken_and_writes_nothing_more_to_it(store: Store, ratings, spawn, db,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    long = store.enqueue(params(ratings, epochs=LONG))
    box_a = spawn("worker", "--poll", "0.1", name="box-a", host="box-a")
    wait_for(epochs_done(store, long, 2), "box a to train the long run")

    stop_outside_a_write(box_a, db)  # a hung mount, a suspended VM
    monkeypatch.setenv("DMF_HOST", "box-b")
    wait_for(lambda: store.reap_lost(grace_s=0.5) == [long], "box b to find box a silent")
    lost = store.get_run(long)
    after = store.enqueue(params(ratings))
    box_a.send_signal(signal.SIGCONT)

    wait_for(lambda: store.get_run(after).status == "done", "box a, woken, to go on with the queue")
    assert store.get_run(long) == lost  # fenced: nothing written into the run it no longer holds
    assert len(store.epochs(long)) == lost.epoch
    box_a.send_signal(signal.SIGTERM)
    assert finished(box_a) == 0
