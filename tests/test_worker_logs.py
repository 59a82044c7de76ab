"""What the worker writes to each run's log: its start (worker, host, pid, devices), the dataset it
loaded, each epoch, every warning raised while it trains, the full traceback of a failure, and how
it ended; and that a log that cannot be written never costs the run."""

from __future__ import annotations

import os
import re
import socket
import warnings
from pathlib import Path
from typing import Any

import pytest

import engine.trainer as trainer_module
import engine.worker as worker_module
from engine.worker import Slot, WorkerOptions
from store.db import Store
from tests.processes import fit_pack_through, params, write_ratings

pytestmark = pytest.mark.backends


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    return write_ratings(tmp_path / "u.data")


def _serve(store: Store) -> None:
    assert Slot(store, "cpu", WorkerOptions(db=store.url, exit_when_empty=True)).serve() == 0


def _texts(store: Store, run_id: int) -> list[str]:
    return [line.text for line in store.run_log(run_id)]


def test_a_runs_log_tells_its_start_data_epochs_and_end(store: Store, ratings: Path) -> None:
    run_id = store.enqueue(params(ratings, device="auto", val_size=0.1))
    _serve(store)

    (worker,) = store.workers()
    start, data, *epochs, ranked, end = store.run_log(run_id)
    assert start.text == (f"started by worker {worker.id} on {socket.gethostname()} (pid {os.getpid()}): "
                          f"mf k=10 lr=0.001 batch_size=128 epochs=3, device auto asked, cpu used")
    assert data.text == ("dataset " + str(ratings) + ": 900 ratings of 60 users and 30 items; "
                         "split 648 train, 72 validation, 180 test")
    assert [line.text for line in epochs] == [
        f"epoch {e.epoch}: train RMSE {e.train_rmse:.4f}, test RMSE {e.test_rmse:.4f}, val RMSE {e.val_rmse:.4f} "
        f"({e.seconds:.2f} s)" for e in store.epochs(run_id)]
    assert len(epochs) == 3
    run = store.get_run(run_id)
    assert re.fullmatch(rf"ranked the best epoch's model on the test part: Precision@10 {run.precision_at_10:.4f}, "
                        rf"Recall@10 {run.recall_at_10:.4f}, NDCG@10 {run.ndcg_at_10:.4f} "
                        r"\(\d+ users with a rating >= 4 there\)", ranked.text)
    assert (end.text, end.level) == ("ended done", "info")


def test_warnings_raised_while_training_go_to_the_runs_log(store: Store, ratings: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real_fit = trainer_module.fit

    def fit(split: Any, **kwargs: Any) -> Any:
        warnings.warn("the learning rate looks [bold]high[/bold]", UserWarning, stacklevel=1)
        return real_fit(split, **kwargs)

    monkeypatch.setattr(worker_module, "fit_pack", fit_pack_through(fit))
    first, second = store.enqueue(params(ratings)), store.enqueue(params(ratings, lr=0.01))
    _serve(store)

    for run_id in (first, second):  # each run logs it, though it comes from the same place
        (warned,) = [line for line in store.run_log(run_id) if line.level == "warning"]
        assert warned.text.startswith("UserWarning: the learning rate looks [bold]high[/bold] (")
        assert f"{Path(__file__).name}:" in warned.text
        assert store.get_run(run_id).status == "done"


def test_a_failure_logs_the_whole_traceback(store: Store, ratings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def deep_inside(split: Any) -> None:
        raise ValueError("bad shape")

    def fit(split: Any, **kwargs: Any) -> None:
        deep_inside(split)

    monkeypatch.setattr(worker_module, "fit_pack", fit_pack_through(fit))
    run_id = store.enqueue(params(ratings))
    _serve(store)

    *_, traceback, end = store.run_log(run_id)
    assert traceback.level == "error"
    assert traceback.text.startswith("Traceback (most recent call last):")
    assert "in fit" in traceback.text and "in deep_inside" in traceback.text
    assert traceback.text.endswith("ValueError: bad shape")
    assert (end.text, end.level) == ("ended failed: ValueError: bad shape", "warning")
    assert store.get_run(run_id).status == "failed"


def test_a_log_that_cannot_be_written_does_not_stop_the_run(store: Store, ratings: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "append_log", broken)
    run_id = store.enqueue(params(ratings))
    _serve(store)

    assert store.get_run(run_id).status == "done"
    assert f"run {run_id}: cannot write its log: [Errno 28] No space left on device" in caplog.text
