"""`dmf-tui add`, `cancel`, `retry`, `move`, `pause` and `resume`: changing the queue from the command line."""

from __future__ import annotations

import argparse

from dmf_tui.commands.params_args import add_param_arguments, given_values, grid_from_args
from store import catalog, presets
from store.db import Store, open_store, open_to_list
from store.errors import StoreError
from store.params import RunParams, check_retries, format_value
from store.status import ENDED_BADLY, RunStatus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add = sub.add_parser(
        "add", help="queue runs; comma lists expand to a grid",
        description="Queue runs for a worker. Comma lists expand to every combination: "
        "--lr 1e-3,1e-2 --k 10,32 queues 4 runs as one sweep. With --like RUN, every flag not given "
        "is RUN's: --like 12 --lr 1e-2 queues run 12 again with another learning rate. With --preset NAME, "
        "the preset's configuration is the starting point (over RUN's with --like) and the flags given win: "
        "--preset mf --reg 0.02,0.05 queues two runs.",
    )
    add_param_arguments(add, grid=True)
    add._option_string_actions["--data"].help = (
        "a dataset name (ml-100k, ml-1m, synthetic-1m, ...) or a ratings file; alternatives separated by commas "
        "(default: the dataset of the run queued last, else the first one present)")
    add.add_argument("--like", type=int, metavar="RUN",
                     help="start from RUN's parameters (and retries) instead of the defaults")
    add.add_argument("--name", help="a name for the sweep")
    add.add_argument("--dry-run", action="store_true", help="print the runs without queueing them")
    add.add_argument("--retries", type=int, metavar="N",
                     help="queue a run again by itself, up to N times, when its worker dies or is stopped "
                     "(default: 0, or RUN's with --like)")
    add.set_defaults(func=add_runs)

    cancel = sub.add_parser("cancel", help="cancel queued runs; ask running ones to stop")
    cancel.add_argument("run_ids", type=int, nargs="*", metavar="ID")
    cancel.add_argument("--sweep", metavar="NAME|ID", help="every queued or running run of this sweep")
    cancel.set_defaults(func=cancel_runs)

    retry = sub.add_parser("retry", help="queue a fresh copy of runs")
    retry.add_argument("run_ids", type=int, nargs="*", metavar="ID")
    retry.add_argument("--sweep", metavar="NAME|ID", help="every run of this sweep that ended badly "
                       "(failed, lost or interrupted)")
    retry.set_defaults(func=retry_runs)

    move = sub.add_parser("move", help="move a queued run up or down the queue")
    move.add_argument("run_id", type=int, metavar="ID")
    move.add_argument("offset", type=int, metavar="OFFSET", help="places to move: -1 is one up, 2 two down")
    move.set_defaults(func=move_run)

    pause = sub.add_parser("pause", help="stop workers from starting queued runs (running ones go on)")
    pause.set_defaults(func=lambda args: set_paused(args, True))
    resume = sub.add_parser("resume", help="let workers start queued runs again")
    resume.set_defaults(func=lambda args: set_paused(args, False))


def add_runs(args: argparse.Namespace) -> int:
    base, retries = None, 0
    if args.like is not None:
        with open_to_list(args.db) as store:
            like = store.get_run(args.like)  # UnknownRunError: one line, exit 2
        base, retries = like.params, like.retries
    elif args.data is None:
        base = RunParams(data=catalog.default_data(last_queued_data(args.db)))
    if args.retries is not None:
        retries = args.retries
    runs = grid_from_args(args, base)  # ParamError (one line, exit 2) before anything is written
    check_retries(retries)
    # Checked here, not when a worker claims the run: a typo or a dataset not downloaded is told at
    # once, in this terminal. (Not by the store, as workers may one day read data another box has.)
    for data in dict.fromkeys(params.data for params in runs):
        reason = catalog.check_available(data)
        if reason is not None:
            raise StoreError(reason)
    if args.dry_run:
        preset = presets.preset(args.preset).values if args.preset is not None else {}
        shown = list(dict.fromkeys(["model", "data", *preset, *given_values(args)]))
        print(f"Would queue {_runs(len(runs))}:")
        for i, params in enumerate(runs, start=1):
            print(f"  {i}. " + " ".join(f"{n}={format_value(getattr(params, n))}" for n in shown))
        return 0
    with open_store(args.db) as store:
        sweep_id, run_ids = store.enqueue_grid(runs, name=args.name, retries=retries)
    print(f"Queued {_runs(len(run_ids))} (sweep {sweep_id}): ids {id_ranges(run_ids)}")
    return 0


def last_queued_data(db: str | None) -> str | None:
    """The dataset of the run queued last in `db`; None when there is no database yet (nothing is
    created to find out: `add --dry-run` writes nothing)."""
    try:
        store = open_store(db, create=False)
    except StoreError:
        return None
    with store:
        return store.last_data()


def _chosen_runs(store: Store, args: argparse.Namespace, statuses: tuple[str, ...]) -> list[int]:
    """The run ids given, or those of the sweep given (with one of `statuses`)."""
    if bool(args.run_ids) == (args.sweep is not None):
        raise StoreError(f"{args.command}: give run ids or --sweep NAME|ID, not both or neither")
    if args.sweep is None:
        return list(args.run_ids)
    ids = store.sweep_run_ids(args.sweep, statuses)
    if not ids:
        print(f"sweep {args.sweep}: no {' or '.join(statuses)} runs")
    return ids


def cancel_runs(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        outcome = store.cancel(_chosen_runs(store, args, (RunStatus.QUEUED, RunStatus.RUNNING)))
    for run_id, result in outcome.items():
        if result == "cancelling":
            print(f"run {run_id}: cancelling (its worker stops it within an epoch)")
        elif result == RunStatus.CANCELLED:
            print(f"run {run_id}: cancelled")
        else:
            print(f"run {run_id}: left as it is ({result})")
    return 0


def retry_runs(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        old_ids = _chosen_runs(store, args, ENDED_BADLY)
        new_ids = store.retry(old_ids)
    for old, new in zip(dict.fromkeys(old_ids), new_ids):
        print(f"run {old}: queued again as run {new}")
    return 0


def move_run(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        store.move(args.run_id, args.offset)
        queued = [run.id for run in store.queue() if run.status == RunStatus.QUEUED]
    print("queue order: " + " ".join(map(str, queued)))
    return 0


def set_paused(args: argparse.Namespace, paused: bool) -> int:
    with open_store(args.db) as store:
        store.set_paused(paused)
    print("queue paused: workers finish their runs and start no new ones" if paused else "queue resumed")
    return 0


def id_ranges(ids: list[int]) -> str:
    """'1-4, 7' for [1, 2, 3, 4, 7]."""
    groups: list[list[int]] = []
    for i in sorted(ids):
        if groups and i == groups[-1][1] + 1:
            groups[-1][1] = i
        else:
            groups.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in groups)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"
