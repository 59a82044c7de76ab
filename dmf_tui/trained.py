"""Finding a run's checkpoint, for `recommend`, `similar` and Run detail's Recommend panel.

No torch here: loading the model (engine/recommend.py) is the caller's, inside the command or off the
TUI's thread, so the app still starts without the engine.
"""

from __future__ import annotations

from pathlib import Path

from store.db import CHECKPOINTS_SUFFIX, checkpoint_file, state_path
from store.errors import NoCheckpointError
from store.records import RunRecord
from store.status import RunStatus


def checkpoint_of(run: RunRecord, db_url: str) -> Path:
    """The checkpoint file of `run`: the one its worker recorded when it ended, else, while it runs, the
    best epoch so far where a worker on this database keeps it by default. NoCheckpointError saying
    why there is none and how to get one."""
    again = f"train it again with `dmf-tui add --like {run.id}` and a worker (checkpoints are kept by default)"
    if run.checkpoint is not None:
        path = Path(run.checkpoint)
        if not path.is_file():
            raise NoCheckpointError(f"run {run.id}'s checkpoint {path} is missing (moved or deleted); {again}")
        return path
    if run.status == RunStatus.QUEUED:
        raise NoCheckpointError(f"run {run.id} is queued: it has a checkpoint once a worker (`dmf-tui worker`) "
                                "has trained its first epoch")
    if run.status == RunStatus.RUNNING:
        path = checkpoint_file(state_path(db_url, CHECKPOINTS_SUFFIX), run.id)
        if path.is_file():
            return path
        raise NoCheckpointError(f"run {run.id} is running and has no checkpoint yet (or its worker keeps them "
                                "in a --checkpoint-dir of its own: it is recorded when the run ends)")
    if run.best_epoch is None:
        raise NoCheckpointError(f"run {run.id} ended {run.status} before its first epoch: it has no model; {again}")
    # An ended run without a recorded checkpoint: trained with --no-checkpoint, or by a release that did
    # not record them (whose checkpoints lack the id maps anyway). A file at the default place is
    # then not known to be this run's: another run's of the same id may have left it.
    raise NoCheckpointError(f"run {run.id} has no checkpoint (trained with --no-checkpoint, or by a dmf-tui "
                            f"older than checkpoints that can be used); {again}")
