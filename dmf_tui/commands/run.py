"""`dmf-tui run`: train one configuration in the foreground, print the lab's epoch lines and record
the run and its epochs in the store. SIGTERM, SIGHUP (the terminal closed) and Ctrl-C stop it at the
trainer's next check, or while the data loads: the run ends 'interrupted' and the exit status is 130."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from dmf_tui.commands.params_args import add_param_arguments, grid_from_args
from store.errors import ParamError
from store.params import RunParams
from store.status import RunStatus

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

# The exit status of a run stopped by a signal, as the shell reports Ctrl-C (128 + SIGINT).
INTERRUPTED = 130


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="train one model in the foreground",
        description="Train one model in the foreground, printing one line per epoch in the lab's format, "
        "and record the run in the store.",
    )
    add_param_arguments(parser, grid=False)
    parser.add_argument("--json", action="store_true", help="print one JSON object per epoch instead")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--checkpoint", metavar="PATH", help="where to save the best epoch's model, for `recommend` "
                       "and `similar` (default: run-<id>.pt in <database>.checkpoints/ beside the database, as the "
                       "worker does)")
    where.add_argument("--no-checkpoint", action="store_true", help="keep no checkpoint: the run then cannot be "
                       "used by `recommend` or `similar`")
    parser.set_defaults(func=run_command)


def lab_line(epoch: int, seconds: float, train_rmse: float, test_rmse: float) -> str:
    """The reference lab's epoch line, e.g. `[1.23] Epoch:   1, TrnRMSE: 4.6855, TestRMSE: 4.4827`."""
    return f"[{seconds:.2f}] Epoch: {epoch:3d}, TrnRMSE: {train_rmse:.4f}, TestRMSE: {test_rmse:.4f}"


def run_command(args: argparse.Namespace) -> int:
    runs = grid_from_args(args)
    if len(runs) != 1:
        raise ParamError(f"run trains one configuration but the flags describe {len(runs)}; "
                         "queue a grid with `dmf-tui add`")
    params = runs[0]

    # The engine (and torch) load only here, so the TUI and the other commands start fast.
    from engine.worker import stop_on_signals

    with stop_on_signals() as stop:
        return _train(args, params, stop)


def _train(args: argparse.Namespace, params: RunParams, stop: threading.Event) -> int:
    from engine.datasets import load_split
    from engine.trainer import EpochStats, resolve_device
    from engine.worker import failure_reason, fit_run, ranking_line, record_epoch, registered, unless_stopped
    from store.db import open_store
    from store.errors import ClaimLostError

    device = str(resolve_device(params.device))
    split = unless_stopped(lambda: load_split(params.data, **params.engine_args("split")), stop.is_set)
    if split is None:
        print("dmf-tui: interrupted while loading the data; no run was recorded", file=sys.stderr)
        return INTERRUPTED
    store = open_store(args.db)
    n_train = len(split.train)
    print(f"{split.dataset.name}: {split.dataset.n_users} users, {split.dataset.n_items} items, "
          f"{n_train} train / {len(split.val)} val / {len(split.test)} test ratings "
          f"({split.cold_users} test users and {split.cold_items} test items unseen in train); "
          f"{params.model} on {device}", file=sys.stderr)
    progress, task = _progress_bar(enabled=not args.json and sys.stderr.isatty())

    output_closed = threading.Event()

    def on_progress(done: int, total: int) -> None:
        assert progress is not None and task is not None  # the trainer is given this only with a bar
        progress.update(task, completed=done, total=total)

    def on_epoch(stats: EpochStats) -> None:
        record_epoch(store, record.id, stats, worker_id=worker_id)
        if args.json:
            line = json.dumps({"epoch": stats.epoch, "train_rmse": stats.train_rmse,
                               "test_rmse": stats.test_rmse, "val_rmse": stats.val_rmse,
                               "seconds": stats.seconds})
        else:
            line = lab_line(stats.epoch, stats.seconds, stats.train_rmse, stats.test_rmse)
        # While the bar is live, rich redirects stdout above it, so the lines stay on stdout.
        try:
            print(line, flush=True)
        except BrokenPipeError:
            # The reader went away (`dmf-tui run | head -1`): stop at the next check, as a signal
            # would, rather than fail the run with a traceback.
            output_closed.set()
            stop.set()
        if progress is not None and task is not None:
            progress.reset(task)

    # Registered like a worker, so that if this process is killed its run is marked lost.
    with registered(store, device) as worker_id:
        record = store.start_run(params, worker_id=worker_id, device=device)
        checkpoint = _checkpoint_path(args, record.id)
        if checkpoint is not None:
            # One left by a deleted run whose id this one reuses is not this run's model.
            checkpoint.unlink(missing_ok=True)

        def kept() -> str | None:
            """The checkpoint, if a best epoch wrote one: a run that failed or stopped after it keeps it."""
            return str(checkpoint) if checkpoint is not None and checkpoint.exists() else None

        try:
            with progress or nullcontext():
                result = fit_run(split, params, device, on_epoch=on_epoch,
                                 on_progress=on_progress if progress else None, should_stop=stop.is_set,
                                 checkpoint_path=checkpoint)
        except KeyboardInterrupt:  # a second signal
            store.finish_run(record.id, RunStatus.INTERRUPTED, error="interrupted by the user", worker_id=worker_id,
                             checkpoint=kept())
            raise
        except ClaimLostError:  # stopped so long that its run was declared lost: leave it so
            raise
        except Exception as exc:
            store.finish_run(record.id, RunStatus.FAILED, error=failure_reason(exc, device, params),
                             worker_id=worker_id, checkpoint=kept())
            raise
        if result.stopped == "cancelled" and output_closed.is_set():
            store.finish_run(record.id, RunStatus.INTERRUPTED, error="stopped: the reader of its output went away",
                             worker_id=worker_id, checkpoint=kept())
            raise BrokenPipeError  # cli.main ends quietly with 141, as for any closed pipe
        if result.stopped == "cancelled":
            store.finish_run(record.id, RunStatus.INTERRUPTED, error="interrupted by a signal", worker_id=worker_id,
                             checkpoint=kept())
            print(f"dmf-tui: interrupted: run {record.id} stopped after {len(result.epochs)} epoch(s)",
                  file=sys.stderr)
            return INTERRUPTED
        store.finish_run(record.id, RunStatus.DONE, worker_id=worker_id, checkpoint=kept(), ranking=result.ranking)
    chosen_by = " (chosen by validation RMSE)" if len(split.val) else ""
    print(f"run {record.id}: best epoch {result.best_epoch}{chosen_by}, test RMSE {result.best_test_rmse:.4f} "
          f"({result.stopped})", file=sys.stderr)
    if result.ranking is not None:
        print(f"run {record.id}: {ranking_line(result.ranking)}", file=sys.stderr)
    if checkpoint is not None:
        print(f"run {record.id}: checkpoint {checkpoint}; try `dmf-tui recommend {record.id} --user ID`",
              file=sys.stderr)
    return 0


def _checkpoint_path(args: argparse.Namespace, run_id: int) -> Path | None:
    """Where the run's best epoch goes: --checkpoint, else the worker's folder for this database."""
    from store.db import CHECKPOINTS_SUFFIX, checkpoint_file, private_dir, resolve_url, state_path

    if args.no_checkpoint:
        return None
    if args.checkpoint is not None:
        return Path(args.checkpoint).expanduser().absolute()
    directory = state_path(resolve_url(args.db), CHECKPOINTS_SUFFIX)
    private_dir(directory)  # a checkpoint is the user's model: theirs alone
    return checkpoint_file(directory, run_id)


def _progress_bar(*, enabled: bool) -> tuple[Progress, TaskID] | tuple[None, None]:
    """A transient per-epoch progress bar on stderr, or (None, None) when stderr is not a terminal."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress("batches", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), transient=True)
    return progress, progress.add_task("epoch", total=None)
