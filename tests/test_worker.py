"""The worker: in-process tests of its parts, then fault tests with real worker processes on a real
SQLite file and on a real PostgreSQL server. Runs train on a tiny ratings file written here, so an
epoch takes milliseconds; a "long" run has so many epochs that it only ends when something stops it.

Every wait polls the database (or the process) until a condition holds, with a generous deadline
that only a hung test reaches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import engine.datasets as datasets_module
import engine.trainer as trainer_module
import engine.worker as worker_module
from dmf_tui.cli import main
from dmf_tui.commands.worker import _alive as alive
from engine.errors import ConfigError, DeviceError, DivergedError
from engine.worker import Slot, SplitCache, WorkerOptions, failure_reason, plan_slots
from store.db import Store, state_dir, state_path
from store.params import RunParams
from tests.processes import (
    DEADLINE_S,
    LONG,
    epochs_done,
    finished,
    fit_pack_through,
    params,
    stop_outside_a_write,
    wait_for,
    write_ratings,
)

pytestmark = pytest.mark.backends


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    return write_ratings(tmp_path / "u.data")


# --- in-process ------------------------------------------------------------------------------------

def test_runs_the_queue_reading_the_dataset_once(store, ratings, tmp_path, monkeypatch):
    reads = []
    real_load = datasets_module.load_dataset

    def counting_load(spec):
        reads.append(spec)
        return real_load(spec)

    monkeypatch.setattr(worker_module, "load_dataset", counting_load)
    ids = [store.enqueue(params(ratings, lr=lr)) for lr in (1e-3, 1e-2)]
    ids.append(store.enqueue(params(ratings, split_seed=7)))
    options = WorkerOptions(db=store.url, exit_when_empty=True, checkpoint_dir=tmp_path / "checkpoints")

    assert Slot(store, "cpu", options).serve() == 0

    assert reads == [str(ratings)]
    for run_id in ids:
        run = store.get_run(run_id)
        assert (run.status, run.epoch, run.ran_on) == ("done", 3, "cpu")
        assert [e.epoch for e in store.epochs(run_id)] == [1, 2, 3]
        assert (tmp_path / "checkpoints" / f"run-{run_id}.pt").exists()
    assert [w.state for w in store.workers()] == ["stopped"]


def test_a_run_that_asked_for_the_cpu_is_recorded_on_the_cpu_by_a_gpu_slot(store, ratings):
    run_id = store.enqueue(params(ratings, device="cpu"))
    assert Slot(store, "cuda:0", WorkerOptions(db=store.url, exit_when_empty=True)).serve() == 0
    run = store.get_run(run_id)
    assert (run.status, run.ran_on) == ("done", "cpu")


def test_progress_through_each_epoch_is_written_while_it_runs(store, ratings, monkeypatch):
    monkeypatch.setattr(trainer_module, "CHECK_EVERY", 1)  # report after every batch
    monkeypatch.setattr(worker_module, "PROGRESS_EVERY_S", 0.0)  # and write every report
    written = []
    real_set_progress = store.set_progress

    def recording_set_progress(run_id, f, **kw):
        written.append(f)
        return real_set_progress(run_id, f, **kw)

    monkeypatch.setattr(store, "set_progress", recording_set_progress)
    run_id = store.enqueue(params(ratings))  # 720 training rows: 6 batches of 128 an epoch
    assert Slot(store, "cpu", WorkerOptions(db=store.url, exit_when_empty=True)).serve() == 0
    assert written == [b / 6 for b in range(1, 6)] * 3  # the last batch of an epoch is the epoch itself
    assert store.get_run(run_id).epoch_progress == 0.0


def test_split_cache_reads_an_edited_file_again(ratings):
    cache = SplitCache()
    first = cache.get(params(ratings))
    assert cache.get(params(ratings, lr=0.1)) is first
    write_ratings(ratings, n=800, seed=1)
    assert cache.get(params(ratings)).dataset.n_ratings == 800


@pytest.mark.parametrize("error, expected", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     "out of memory on cuda:0 with batch_size=128, k=10"),
    (DivergedError("diverged: loss became nan at epoch 3"), "diverged: loss became nan at epoch 3"),
    (ValueError("bad shape"), "ValueError: bad shape\nTraceback"),
])
def test_a_failed_run_records_why_and_the_queue_goes_on(store, ratings, monkeypatch, error, expected):
    real_fit = trainer_module.fit
    calls = []

    def fit(split, **kwargs):
        calls.append(kwargs["device"])
        if len(calls) == 1:
            raise error
        return real_fit(split, **{**kwargs, "device": "cpu"})

    monkeypatch.setattr(worker_module, "fit_pack", fit_pack_through(fit))
    # There is no cuda:0 to ask for room.
    monkeypatch.setattr(worker_module, "pack_room", lambda split, params, device, runs: runs)
    failing = store.enqueue(params(ratings, device="auto"))
    fine = store.enqueue(params(ratings, device="auto"))

    Slot(store, "cuda:0", WorkerOptions(db=store.url, exit_when_empty=True, pack=1)).serve()

    assert calls[0] == "cuda:0"  # an "auto" run trains on the slot's device
    failed = store.get_run(failing)
    assert failed.status == "failed" and failed.error.startswith(expected)
    assert store.get_run(fine).status == "done"


def test_bad_data_fails_that_run_with_the_reason_and_the_worker_goes_on(store, ratings, tmp_path):
    missing = store.enqueue(params(tmp_path / "nowhere.dat"))
    malformed_file = tmp_path / "broken.dat"
    malformed_file.write_text("1::2::5::881250949\n1::3::five::881250950\n")
    malformed = store.enqueue(params(malformed_file))
    fine = store.enqueue(params(ratings))

    assert Slot(store, "cpu", WorkerOptions(db=store.url, exit_when_empty=True)).serve() == 0

    for run_id, name in ((missing, "nowhere.dat"), (malformed, "broken.dat")):
        run = store.get_run(run_id)
        assert run.status == "failed" and name in run.error and "Traceback" not in run.error
    assert store.get_run(fine).status == "done"


def test_cancel_stops_a_running_run_at_the_next_check(store, ratings):
    long = store.enqueue(params(ratings, epochs=LONG))
    after = store.enqueue(params(ratings))
    options = WorkerOptions(db=store.url, exit_when_empty=True)
    worker = threading.Thread(target=Slot(store, "cpu", options).serve)
    worker.start()
    wait_for(epochs_done(store, long, 1), "an epoch of the long run")

    assert store.cancel([long]) == {long: "cancelling"}

    worker.join(DEADLINE_S)
    assert not worker.is_alive()
    cancelled = store.get_run(long)
    assert cancelled.status == "cancelled" and cancelled.epoch < LONG
    assert store.get_run(after).status == "done"


def test_a_run_declared_lost_under_the_worker_is_dropped_and_the_queue_goes_on(store, ratings, caplog):
    """Fencing, in-process: the run is declared lost (as if its worker had stalled past the grace)
    while the worker trains it; the worker's next write is refused, it drops the run, goes on."""
    long = store.enqueue(params(ratings, epochs=LONG))
    after = store.enqueue(params(ratings))  # trained after it, not beside it in a pack
    options = WorkerOptions(db=store.url, exit_when_empty=True, pack=1)
    worker = threading.Thread(target=Slot(store, "cpu", options).serve)
    worker.start()
    wait_for(epochs_done(store, long, 1), "an epoch of the long run")

    assert store.reap_lost(grace_s=-1) == [long]  # every heartbeat is older than -1 s
    epochs_when_lost = len(store.epochs(long))

    worker.join(DEADLINE_S)
    assert not worker.is_alive()
    lost = store.get_run(long)
    assert lost.status == "lost" and len(store.epochs(long)) == epochs_when_lost == lost.epoch
    assert store.get_run(after).status == "done"
    assert f"run {long}: dropped, it is no longer this worker's: run {long} is lost" in caplog.text


def test_loading_a_dataset_gives_way_to_a_cancel(store, ratings, monkeypatch):
    """A dataset that takes long to load (here: forever) does not hold up a cancel."""
    loading, never = threading.Event(), threading.Event()

    def slow_load(spec):
        loading.set()
        never.wait(DEADLINE_S)
        raise AssertionError("the load was waited for")

    monkeypatch.setattr(worker_module, "load_dataset", slow_load)
    slow = store.enqueue(params(ratings))
    worker = threading.Thread(target=Slot(store, "cpu", WorkerOptions(db=store.url, exit_when_empty=True)).serve)
    worker.start()
    assert loading.wait(DEADLINE_S)

    store.cancel([slow])

    worker.join(DEADLINE_S)
    never.set()
    assert not worker.is_alive() and store.get_run(slow).status == "cancelled"


def test_loading_a_dataset_gives_way_to_a_stop(store, ratings, monkeypatch):
    loading, never = threading.Event(), threading.Event()

    def endless_load(spec):
        loading.set()
        return never.wait(DEADLINE_S)

    monkeypatch.setattr(worker_module, "load_dataset", endless_load)
    slow = store.enqueue(params(ratings))
    stop = threading.Event()
    worker = threading.Thread(target=Slot(store, "cpu", WorkerOptions(db=store.url), stop).serve)
    worker.start()
    assert loading.wait(DEADLINE_S)

    stop.set()  # what the first SIGTERM does

    worker.join(DEADLINE_S)
    never.set()
    assert not worker.is_alive() and store.get_run(slow).status == "interrupted"


def test_a_run_too_big_for_its_device_fails_at_once_and_the_queue_goes_on(store, ratings):
    """A file's shape is known only once it is read: the worker refuses the run then, before
    anything is allocated (the process once grew past 8 GB first)."""
    huge = store.enqueue(params(ratings, k=100_000_000))
    fine = store.enqueue(params(ratings))
    assert Slot(store, "cpu", WorkerOptions(db=store.url, exit_when_empty=True)).serve() == 0
    run = store.get_run(huge)
    assert run.status == "failed" and run.error.startswith("needs about ") and "the device (cpu) has" in run.error
    assert run.epoch == 0 and store.get_run(fine).status == "done"


def test_failure_reason_keeps_the_traceback_short():
    def deep(n):
        if n == 0:
            raise KeyError("user 7")
        deep(n - 1)

    try:
        deep(30)
    except KeyError as exc:
        reason = failure_reason(exc, "cpu", RunParams())
    assert reason.splitlines()[0] == "KeyError: 'user 7'"
    assert len(reason.splitlines()) < 15


def test_slot_plans():
    assert plan_slots(slots=3) == [plan_slots()[0]] * 3
    with pytest.raises(ConfigError):
        plan_slots(slots=0)
    with pytest.raises(ConfigError):
        plan_slots(slots_per_gpu=2)
    with pytest.raises(ConfigError):
        plan_slots(gpus="0", slots=2)
    with pytest.raises(ConfigError):
        plan_slots(gpus="zero")


def test_each_slot_process_trains_on_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert [worker_module.slot_threads(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    seen = []
    monkeypatch.setattr(worker_module, "serve_slot", lambda device, options, stop: seen.append(torch.get_num_threads()))
    monkeypatch.setattr(worker_module, "stop_with_parent", lambda pid, stop: None)
    monkeypatch.setattr(worker_module, "configure_logging", lambda: None)
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit):
            worker_module._slot_process("cpu", WorkerOptions(db="unused.db"), os.getpid(), 3)
    finally:
        torch.set_num_threads(before)
    assert seen == [3]


def test_more_cpu_slots_than_memory_for_their_processes_is_refused(monkeypatch):
    monkeypatch.setattr(worker_module, "physical_memory", lambda: 4 << 30)
    assert len(plan_slots(slots=4)) == 4
    with pytest.raises(ConfigError, match="--slots 5 needs about 5 GiB .* this machine has 4.0 GiB; use at most 4"):
        plan_slots(slots=5)
    with pytest.raises(ConfigError, match="--slots 9{30} needs"):
        plan_slots(slots=int("9" * 30))  # once an OverflowError building the list


def test_a_gpu_that_is_not_there_is_a_one_line_error(tmp_path, capsys):
    assert main(["--db", str(tmp_path / "runs.db"), "worker", "--gpus", "0,99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dmf-tui: error: --gpus 0,99: no GPU ")
    assert "\n" not in err
    with pytest.raises(DeviceError):
        plan_slots(gpus="99")


def test_more_gpu_slots_than_free_memory_allows_are_refused(monkeypatch):
    """Two visible GPUs with 10 GiB and 3 GiB free: four 1 GiB slots fit on the first, not the second."""
    free = {0: 10 * 2**30, 1: 3 * 2**30}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (free[i], 80 * 2**30))
    assert plan_slots(gpus="0", slots_per_gpu=4) == ["cuda:0"] * 4
    with pytest.raises(DeviceError, match=r"--slots-per-gpu 4 needs about 4.0 GiB on cuda:1 but 3.0 GiB is free; "
                                          r"use at most 3 slots there"):
        plan_slots(gpus="0,1", slots_per_gpu=4)


def test_state_dir_is_beside_a_database_file(tmp_path, monkeypatch):
    assert state_dir(f"sqlite:///{tmp_path}/x/runs.db") == tmp_path / "x"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert state_dir("postgresql://me@db.lab/runs") == tmp_path / "xdg" / "dmf-tui"


# --- real processes -----------------------------------------------------------------------------

def test_kill_9_leaves_the_run_lost_and_the_next_worker_goes_on(store, ratings, spawn):
    long = store.enqueue(params(ratings, epochs=LONG))
    rest = [store.enqueue(params(ratings)) for _ in range(2)]
    first = spawn("worker", "--poll", "0.1", "--pack", "1", name="first")
    wait_for(epochs_done(store, long, 2), "two epochs of the long run")

    first.kill()
    first.wait()
    second = spawn("worker", "--poll", "0.1", "--exit-when-empty", name="second")

    assert finished(second) == 0
    lost = store.get_run(long)
    assert lost.status == "lost" and f"pid {first.pid}" in lost.error
    assert [e.epoch for e in store.epochs(long)] == list(range(1, lost.epoch + 1))
    assert lost.epoch >= 2
    assert [store.get_run(r).status for r in rest] == ["done", "done"]


def test_sigterm_interrupts_the_run_and_exits_0(store, ratings, spawn):
    long = store.enqueue(params(ratings, epochs=LONG))
    waiting = store.enqueue(params(ratings))
    process = spawn("worker", "--poll", "0.1", "--pack", "1")
    wait_for(epochs_done(store, long, 1), "an epoch of the long run")

    process.send_signal(signal.SIGTERM)

    assert finished(process) == 0
    assert store.get_run(long).status == "interrupted"
    assert store.get_run(waiting).status == "queued"
    assert [w.state for w in store.workers()] == ["stopped"]


def test_sighup_interrupts_the_run_like_sigterm(store, ratings, spawn):
    long = store.enqueue(params(ratings, epochs=LONG))
    process = spawn("worker", "--poll", "0.1")
    wait_for(epochs_done(store, long, 1), "an epoch of the long run")

    process.send_signal(signal.SIGHUP)  # the terminal it runs in was closed

    assert finished(process) == 0
    assert store.get_run(long).status == "interrupted"
    assert [w.state for w in store.workers()] == ["stopped"]


def test_a_worker_stopped_past_the_grace_finds_its_run_lost_and_writes_nothing_to_it(store, ratings, spawn, db):
    long = store.enqueue(params(ratings, epochs=LONG))
    process = spawn("worker", "--poll", "0.1")
    wait_for(epochs_done(store, long, 2), "two epochs of the long run")

    stop_outside_a_write(process, db)
    # Another process (this one) sees no heartbeat for longer than a short grace.
    wait_for(lambda: store.reap_lost(grace_s=0.2) == [long], "the stopped worker's run to be lost")
    lost = store.get_run(long)
    after = store.enqueue(params(ratings))
    process.send_signal(signal.SIGCONT)

    wait_for(lambda: store.get_run(after).status == "done", "the woken worker to go on with the queue")
    assert store.get_run(long) == lost
    epochs = store.epochs(long)
    assert len(epochs) == lost.epoch and all(e.created_at <= lost.finished_at for e in epochs)
    assert f"run {long}: dropped" in process.log.read_text()
    process.send_signal(signal.SIGTERM)
    assert finished(process) == 0


def test_two_workers_run_each_of_20_runs_once_while_a_reader_polls(store: Store, ratings, spawn):
    workers = [spawn("worker", "--poll", "0.1", name=f"worker{i}") for i in range(2)]
    wait_for(lambda: len(store.workers(alive_only=True)) == 2, "both workers to register")
    worker_ids = {w.id for w in store.workers()}
    _, ids = store.enqueue_grid([params(ratings, epochs=4, seed=s) for s in range(20)])

    def all_done() -> bool:
        # What the TUI does about once a second, here 20 times as often: it must never see a lock.
        store.leaderboard(limit=50)
        for run in store.queue():
            store.epochs(run.id)
        counts = store.status_counts()
        return counts.get("queued", 0) + counts.get("running", 0) == 0

    wait_for(all_done, "the 20 runs to finish")
    for process in workers:
        process.send_signal(signal.SIGTERM)
    assert [finished(p) for p in workers] == [0, 0]

    for run_id in ids:
        run = store.get_run(run_id)
        assert run.status == "done", run.error
        assert run.worker_id in worker_ids
        assert [e.epoch for e in store.epochs(run_id)] == [1, 2, 3, 4]
    for process in workers:
        assert "database is locked" not in process.log.read_text()


def test_slots_are_supervised_restarted_and_stopped_together(store, ratings, spawn):
    runs = [store.enqueue(params(ratings, epochs=LONG, seed=s)) for s in range(2)]
    parent = spawn("worker", "--slots", "2", "--poll", "0.1", "--pack", "1")
    wait_for(lambda: all(store.get_run(r).epoch >= 1 for r in runs), "both slots to train")
    slots = {w.id: w.pid for w in store.workers(alive_only=True)}
    assert len(slots) == 2 and parent.pid not in slots.values()

    victim = store.get_run(runs[0])
    os.kill(slots[victim.worker_id], signal.SIGKILL)
    # The other slot's heartbeat or the new slot's start marks the killed slot's run lost.
    wait_for(lambda: store.get_run(runs[0]).status == "lost", "the killed slot's run to be lost")
    wait_for(lambda: len(store.workers(alive_only=True)) == 2, "the supervisor to restart the slot")

    parent.send_signal(signal.SIGTERM)

    assert finished(parent) == 0
    assert store.get_run(runs[1]).status == "interrupted"
    # The restarted slot's start closed the killed slot's row: nothing is left looking stale.
    assert {w.state for w in store.workers()} == {"stopped"}


def test_slots_stop_when_their_supervisor_is_killed(store, ratings, spawn):
    runs = [store.enqueue(params(ratings, epochs=LONG, seed=s)) for s in range(2)]
    parent = spawn("worker", "--slots", "2", "--poll", "0.1", "--pack", "1")
    wait_for(lambda: all(store.get_run(r).epoch >= 1 for r in runs), "both slots to train")
    slots = [w.pid for w in store.workers(alive_only=True)]

    parent.kill()
    parent.wait()

    wait_for(lambda: not any(alive(pid) for pid in slots), "the slots to stop with their supervisor")
    assert [store.get_run(r).status for r in runs] == ["interrupted", "interrupted"]
    assert {w.state for w in store.workers()} == {"stopped"}


def test_detach_status_stop(store, ratings, tmp_path, db, monkeypatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    env = dict(os.environ)
    # A separate process, as from a terminal: the worker it starts outlives it.
    started = subprocess.run(
        [sys.executable, "-m", "dmf_tui", "--db", db, "worker", "--detach", "--poll", "0.1"],
        capture_output=True, text=True, env=env, timeout=DEADLINE_S,
    )
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("pid ")[1].split(",")[0])
    log = state_path(store.url, ".worker.log")
    assert str(log) in started.stdout

    def command(*args: str) -> str:
        assert main(["--db", db, "worker", *args]) == 0
        return capsys.readouterr().out

    try:
        long = store.enqueue(params(ratings, epochs=LONG))
        wait_for(epochs_done(store, long, 1), "the detached worker to train")

        status = json.loads(command("status", "--json"))
        assert [(w["pid"], w["state"], w["run"]) for w in status] == [(pid, "running", long)]
        table = command("status")
        assert f"#{long}" in table and "running" in table

        assert f"(pid {pid}, cpu): stopped" in command("stop", "--wait", "60")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert store.get_run(long).status == "interrupted"
    assert "interrupted" in log.read_text()
    assert command("status").startswith("no workers running")
    assert json.loads(command("status", "--json", "--all"))[0]["state"] == "stopped"
    assert command("stop") == "no worker is running on this host\n"
