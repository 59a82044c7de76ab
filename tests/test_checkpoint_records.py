"""What the worker records of a run's model when the run ends: the checkpoint file (where one was
kept, and only the run's own) and the ranking metrics (of a run that trained to its end). In-process
workers on a tiny ratings file, so each run takes well under a second."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine.trainer as trainer_module
import engine.worker as worker_module
from dmf_tui.cli import main
from dmf_tui.trained import checkpoint_of
from engine.errors import DivergedError
from engine.recommend import TrainedModel
from engine.worker import Slot, WorkerOptions
from store.db import CHECKPOINTS_SUFFIX, Store, open_store, state_path
from store.errors import NoCheckpointError
from store.records import RunRecord
from tests.processes import DEADLINE_S, LONG, epochs_done, fit_pack_through, params, wait_for, write_ratings

pytestmark = pytest.mark.backends

RANKING = ("precision_at_10", "recall_at_10", "ndcg_at_10")


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    return write_ratings(tmp_path / "u.data")


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


def _serve(store: Store, checkpoint_dir: Path | None) -> None:
    options = WorkerOptions(db=store.url, exit_when_empty=True, poll_s=0.05, checkpoint_dir=checkpoint_dir)
    assert Slot(store, "cpu", options).serve() == 0


def _ranking(run: RunRecord) -> list[float | None]:
    return [getattr(run, name) for name in RANKING]


def test_a_done_run_records_its_checkpoint_and_ranking(store: Store, ratings: Path, checkpoints: Path) -> None:
    run_id = store.enqueue(params(ratings))

    _serve(store, checkpoints)

    run = store.get_run(run_id)
    assert run.status == "done"
    assert run.checkpoint == str(checkpoints / f"run-{run_id}.pt")
    assert all(value is not None and 0 <= value <= 1 for value in _ranking(run)), run
    assert any("ranked the best epoch's model on the test part" in line.text for line in store.run_log(run_id))
    model = TrainedModel.load(checkpoint_of(run, store.url), name=f"run {run_id}")
    assert len(model.recommend(1, 5)) == 5


def test_without_a_checkpoint_folder_none_is_recorded(store: Store, ratings: Path, tmp_path: Path) -> None:
    run_id = store.enqueue(params(ratings))

    _serve(store, None)

    run = store.get_run(run_id)
    assert (run.status, run.checkpoint) == ("done", None)
    assert None not in _ranking(run)  # ranked all the same
    assert not list(tmp_path.rglob("*.pt"))
    with pytest.raises(NoCheckpointError, match=f"run {run_id} has no checkpoint"):
        checkpoint_of(run, store.url)


def test_a_file_left_by_a_deleted_run_is_not_taken_for_the_next_one(store: Store, ratings: Path, checkpoints: Path,
                                                                   tmp_path: Path, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("only SQLite gives a deleted run's id to the next run; a server's sequence never does")
    first = store.enqueue(params(ratings))
    _serve(store, checkpoints)
    left = checkpoints / f"run-{first}.pt"
    kept = shutil.copyfile(left, tmp_path / "kept.pt")
    store.delete_runs([first])
    # A file of the deleted run still there (an older release's, or one put back by hand).
    shutil.copyfile(kept, left)
    broken = tmp_path / "broken.dat"
    broken.write_text("1\t1\t5\t0\n1\t2\tfive\t0\n")

    reused = store.enqueue(params(broken))  # SQLite gives the deleted run's id again
    _serve(store, checkpoints)

    run = store.get_run(reused)
    assert (run.id, run.status, run.checkpoint) == (first, "failed", None)
    assert _ranking(run) == [None, None, None]
    assert not left.exists()
    with pytest.raises(NoCheckpointError, match="before its first epoch"):
        checkpoint_of(run, store.url)


def test_a_cancelled_run_keeps_its_checkpoint_but_is_not_ranked(store: Store, ratings: Path,
                                                                checkpoints: Path) -> None:
    long = store.enqueue(params(ratings, epochs=LONG))
    worker = threading.Thread(target=_serve, args=(store, checkpoints))
    worker.start()
    wait_for(epochs_done(store, long, 1), "an epoch of the long run")

    store.cancel([long])
    worker.join(DEADLINE_S)

    run = store.get_run(long)
    assert run.status == "cancelled"
    assert run.checkpoint == str(checkpoints / f"run-{long}.pt")
    assert _ranking(run) == [None, None, None]


def _diverge_at_epoch_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs fail at their second epoch, as one whose loss became nan would (cheaper than provoking it)."""
    real_fit = trainer_module.fit

    def diverging(split: Any, *, on_epoch: Callable[[Any], None], **kwargs: Any) -> Any:
        def on_epoch_then_diverge(stats: Any) -> None:
            on_epoch(stats)
            if stats.epoch == 2:  # the best epoch so far is saved by now
                raise DivergedError("diverged: test RMSE became nan at epoch 2")
        return real_fit(split, on_epoch=on_epoch_then_diverge, **kwargs)

    monkeypatch.setattr(worker_module, "fit_pack", fit_pack_through(diverging))  # the worker's runs
    monkeypatch.setattr(worker_module, "fit", diverging)  # `dmf-tui run`'s


def test_a_run_failing_after_its_best_epoch_keeps_that_checkpoint(store: Store, ratings: Path, checkpoints: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _diverge_at_epoch_2(monkeypatch)
    run_id = store.enqueue(params(ratings, epochs=5))

    _serve(store, checkpoints)

    run = store.get_run(run_id)
    assert run.status == "failed" and run.error is not None and run.error.startswith("diverged")
    assert run.checkpoint == str(checkpoints / f"run-{run_id}.pt")
    assert _ranking(run) == [None, None, None]
    model = TrainedModel.load(Path(run.checkpoint), name=f"run {run_id}")
    assert len(model.recommend(1, 3)) == 3


# --- the same through `dmf-tui run` ---------------------------------------------------------------

def test_run_failing_after_its_best_epoch_records_that_checkpoint(db: str, ratings: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _diverge_at_epoch_2(monkeypatch)

    assert main(["--db", db, "run", "--data", str(ratings), "--epochs", "5", "--device", "cpu"]) == 2

    with open_store(db) as store:
        (run,) = store.leaderboard()
    assert run.status == "failed"
    assert run.checkpoint == str(state_path(store.url, CHECKPOINTS_SUFFIX) / f"run-{run.id}.pt")


def test_a_no_checkpoint_run_is_not_given_a_file_left_under_its_id(db: str, ratings: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("only SQLite gives a deleted run's id to the next run; a server's sequence never does")
    train = ["--db", db, "run", "--data", str(ratings), "--epochs", "1", "--device", "cpu"]
    assert main(train) == 0
    left = Path(f"{db}.checkpoints") / "run-1.pt"
    kept = shutil.copyfile(left, tmp_path / "kept.pt")
    assert main(["--db", db, "delete", "1", "--yes"]) == 0
    shutil.copyfile(kept, left)  # left by the deleted run (one that failed, or an older release's)

    assert main([*train, "--no-checkpoint", "--k", "3"]) == 0  # run 1 again, another model

    capsys.readouterr()
    assert main(["--db", db, "recommend", "1", "--user", "1"]) == 2
    assert "run 1 has no checkpoint" in capsys.readouterr().err
