"""The worker's packs: compatible queued runs claimed together and trained as one batched model by one
slot (engine.trainer.fit_pack), each still its own run: its own epochs as they land, its own cancel,
failure, checkpoint and end. The fault tests run real worker processes, as tests/test_worker.py does."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import engine.worker as worker_module
import store.queue as queue_module
from engine.worker import Slot, WorkerOptions
from store.db import Store, open_store
from store.params import RunParams
from tests.processes import LONG, finished, params, stop_outside_a_write, wait_for, write_ratings

pytestmark = pytest.mark.backends


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    return write_ratings(tmp_path / "u.data")


def grid(ratings: Path, **changes: object) -> list[RunParams]:
    """Four runs of one shape: a pack (lr x weight decay, with their own seeds)."""
    return [params(ratings, lr=lr, weight_decay=wd, seed=seed, **changes)
            for seed, (lr, wd) in enumerate([(1e-3, 0.0), (1e-2, 0.0), (1e-3, 1e-4), (1e-2, 1e-4)])]


def serve(store: Store, tmp_path: Path, **options: object) -> None:
    checkpoints = tmp_path / f"checkpoints-{store.url.rsplit('/', 1)[-1]}"
    assert Slot(store, "cpu", WorkerOptions(db=store.url, exit_when_empty=True, checkpoint_dir=checkpoints,
                                            **options)).serve() == 0  # type: ignore[arg-type]


def test_a_grid_trains_as_one_pack_and_each_run_is_the_run_it_would_be_alone(store, ratings, tmp_path):
    ids = [store.enqueue(p) for p in grid(ratings)]
    serve(store, tmp_path)
    with open_store(str(tmp_path / "alone.db")) as alone:
        alone_ids = [alone.enqueue(p) for p in grid(ratings)]
        serve(alone, tmp_path, pack=1)
        for packed_id, alone_id in zip(ids, alone_ids):
            packed, solo = store.get_run(packed_id), alone.get_run(alone_id)
            assert (packed.status, packed.pack_id, packed.pack_size) == ("done", ids[0], 4)
            assert (solo.status, solo.pack_id, solo.pack_size) == ("done", None, None)
            assert packed.checkpoint is not None and Path(packed.checkpoint).exists()
            pairs = list(zip(store.epochs(packed_id), alone.epochs(alone_id), strict=True))
            assert len(pairs) == 3
            for a, b in pairs:  # MF on CPU: the hand-written step, bit for bit
                assert (a.train_rmse, a.test_rmse) == (b.train_rmse, b.test_rmse)
            assert packed.ndcg_at_10 == solo.ndcg_at_10
    log = "\n".join(line.text for line in store.run_log(ids[1]))
    assert f"in a pack of 4 (runs {', '.join(map(str, ids))})" in log


def test_a_claim_larger_than_the_device_has_room_for_trains_in_packs_that_fit(store, ratings, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(worker_module, "pack_room", lambda split, params, device, runs: 2)
    ids = [store.enqueue(p) for p in grid(ratings)]
    serve(store, tmp_path)
    runs = [store.get_run(i) for i in ids]
    assert [(r.status, r.pack_id, r.pack_size) for r in runs] == [("done", ids[0], 2)] * 2 + [("done", ids[2], 2)] * 2
    assert "this one trains in a pack of 2" in "\n".join(line.text for line in store.run_log(ids[3]))


def test_on_the_cpu_runs_without_hand_written_gradients_train_alone(store, ratings, tmp_path):
    # Through autograd a pack's runs would be a rounding apart from their runs alone, on CPU.
    ids = [store.enqueue(p) for p in grid(ratings, model="gmf")[:2]]
    serve(store, tmp_path)
    assert [(store.get_run(i).status, store.get_run(i).pack_size) for i in ids] == [("done", None)] * 2
    assert "on the CPU only mf and deepmf runs train in packs: this one trains alone" in \
        "\n".join(line.text for line in store.run_log(ids[1]))


def test_runs_that_cannot_share_a_step_are_not_packed(store, ratings, tmp_path):
    packed = [store.enqueue(p) for p in grid(ratings)[:2]]
    apart = [store.enqueue(params(ratings, k=4)), store.enqueue(params(ratings, model="deepmf", dropout=0.1)),
             store.enqueue(params(ratings, optimizer="sgd"))]
    serve(store, tmp_path)
    assert [store.get_run(i).pack_size for i in packed] == [2, 2]
    assert [(store.get_run(i).status, store.get_run(i).pack_size) for i in apart] == [("done", None)] * 3


def test_each_run_of_a_pack_ends_alone_cancelled_diverged_or_short(store, ratings, tmp_path, monkeypatch):
    runs = grid(ratings, epochs=4)
    runs[1] = runs[1].replace(lr=1e9, init_std=10.0)  # diverges
    runs[2] = runs[2].replace(epochs=2)  # leaves the pack early
    runs[3] = runs[3].replace(epochs=LONG)  # ends only when cancelled
    ids = [store.enqueue(p) for p in runs]
    target = ids[3]
    record_epoch = queue_module.QueueOps.record_epoch

    def cancel_after_first_epoch(self, run_id, epoch, **kwargs):
        record_epoch(self, run_id, epoch, **kwargs)
        if run_id == target and epoch == 1:
            self.cancel([target])  # as a person would, from the TUI, while it trains

    monkeypatch.setattr(queue_module.QueueOps, "record_epoch", cancel_after_first_epoch)
    serve(store, tmp_path)

    done, diverged, short, cancelled = (store.get_run(i) for i in ids)
    assert (done.status, done.epoch) == ("done", 4)
    assert diverged.status == "failed" and "diverged" in (diverged.error or "")
    assert (short.status, short.epoch) == ("done", 2)
    assert cancelled.status == "cancelled" and cancelled.epoch >= 1
    # The others' figures are those of the run alone: nothing of the three leaving reached it.
    with open_store(str(tmp_path / "alone.db")) as alone:
        alone_id = alone.enqueue(runs[0])
        serve(alone, tmp_path, pack=1)
        for a, b in zip(store.epochs(ids[0]), alone.epochs(alone_id), strict=True):
            assert a.test_rmse == pytest.approx(b.test_rmse, abs=1e-5)


# --- real worker processes -------------------------------------------------------------------------

def all_trained(store: Store, ids: list[int], epochs: int):
    return lambda: all(store.get_run(i).epoch >= epochs for i in ids)


def test_kill_9_mid_pack_leaves_every_run_of_it_lost(store, ratings, spawn):
    ids = [store.enqueue(p) for p in grid(ratings, epochs=LONG)]
    worker = spawn("worker", "--poll", "0.1", name="killed")
    wait_for(all_trained(store, ids, 2), "two epochs of every run of the pack")

    worker.kill()
    worker.wait()
    store.reap_lost()

    runs = [store.get_run(i) for i in ids]
    assert [r.status for r in runs] == ["lost"] * 4
    assert all(f"pid {worker.pid}" in (r.error or "") for r in runs)
    assert {r.pack_id for r in runs} == {ids[0]}


def test_sigterm_mid_pack_interrupts_every_run_of_it_and_exits_0(store, ratings, spawn):
    ids = [store.enqueue(p) for p in grid(ratings, epochs=LONG)]
    worker = spawn("worker", "--poll", "0.1")
    wait_for(all_trained(store, ids, 1), "an epoch of every run of the pack")

    worker.send_signal(signal.SIGTERM)

    assert finished(worker) == 0
    assert [store.get_run(i).status for i in ids] == ["interrupted"] * 4


def test_a_worker_stopped_past_the_grace_drops_every_run_of_its_pack(store, ratings, spawn, db):
    ids = [store.enqueue(p) for p in grid(ratings, epochs=LONG)]
    worker = spawn("worker", "--poll", "0.1")
    wait_for(all_trained(store, ids, 2), "two epochs of every run of the pack")

    stop_outside_a_write(worker, db)
    wait_for(lambda: sorted(store.reap_lost(grace_s=0.2)) == ids or
             all(store.get_run(i).status == "lost" for i in ids), "the stopped worker's runs to be lost")
    lost = [store.get_run(i) for i in ids]
    after = store.enqueue(params(ratings))
    worker.send_signal(signal.SIGCONT)

    wait_for(lambda: store.get_run(after).status == "done", "the woken worker to go on with the queue")
    assert [store.get_run(i) for i in ids] == lost  # nothing written into them since
    text = worker.log.read_text()
    assert all(f"run {i}: dropped" in text for i in ids)
    worker.send_signal(signal.SIGTERM)
    assert finished(worker) == 0
