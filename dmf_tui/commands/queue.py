"""`dmf-tui add`, `cancel` and `retry`: changing the queue from the command line."""

from __future__ import annotations

import argparse

from dmf_tui.commands.runs import store_for
from store.params import FIELD_NAMES, RunParams, expand_grid, format_value

# RunParams fields as flags: --weight-decay for weight_decay and so on.
FLAG_HELP = {
    "model": "mf or deepmf",
    "data": "a dataset name (ml-1m, synthetic-100k, ...) or a ratings file",
    "hidden": "DeepMF hidden sizes; alternatives separated by '/', e.g. 10,5/64,32",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "bias": "true or false: add user, item and global biases",
    "val_size": "fraction of training rows held out for early stopping",
    "patience": "epochs without improvement before stopping (0: never)",
    "init_std": "embedding init std (0: PyTorch's default)",
}


def register(sub: argparse._SubParsersAction) -> None:
    add = sub.add_parser(
        "add", help="queue runs; comma lists expand to a grid",
        description="Queue runs for a worker. Comma lists expand to every combination: "
        "--lr 1e-3,1e-2 --k 10,32 queues 4 runs as one sweep.",
    )
    defaults = RunParams()
    for name in FIELD_NAMES:
        default = format_value(name, getattr(defaults, name))
        add.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="V[,V...]",
                         help=f"{FLAG_HELP.get(name, '')} (default {default})".strip())
    add.add_argument("--name", help="a name for the sweep")
    add.add_argument("--dry-run", action="store_true", help="print the runs without queueing them")
    add.set_defaults(func=add_runs)

    cancel = sub.add_parser("cancel", help="cancel queued runs; ask running ones to stop")
    cancel.add_argument("run_ids", type=int, nargs="+", metavar="ID")
    cancel.set_defaults(func=cancel_runs)

    retry = sub.add_parser("retry", help="queue a fresh copy of runs")
    retry.add_argument("run_ids", type=int, nargs="+", metavar="ID")
    retry.set_defaults(func=retry_runs)


def add_runs(args: argparse.Namespace) -> int:
    given = {name: getattr(args, name) for name in FIELD_NAMES if getattr(args, name) is not None}
    runs = expand_grid(given)  # ParamError (one line, exit 2) before anything is written
    if args.dry_run:
        shown = list(dict.fromkeys(["model", "data", *given]))
        print(f"Would queue {_runs(len(runs))}:")
        for i, params in enumerate(runs, start=1):
            print(f"  {i}. " + " ".join(f"{n}={format_value(n, getattr(params, n))}" for n in shown))
        return 0
    store = store_for(args)
    try:
        sweep_id, run_ids = store.enqueue_grid(runs, name=args.name)
    finally:
        store.close()
    print(f"Queued {_runs(len(run_ids))} (sweep {sweep_id}): ids {id_ranges(run_ids)}")
    return 0


def cancel_runs(args: argparse.Namespace) -> int:
    store = store_for(args)
    try:
        outcome = store.cancel(args.run_ids)
    finally:
        store.close()
    for run_id, result in outcome.items():
        if result == "cancelling":
            print(f"run {run_id}: cancelling (its worker stops it within an epoch)")
        elif result == "cancelled":
            print(f"run {run_id}: cancelled")
        else:
            print(f"run {run_id}: left as it is ({result})")
    return 0


def retry_runs(args: argparse.Namespace) -> int:
    store = store_for(args)
    try:
        new_ids = store.retry(args.run_ids)
    finally:
        store.close()
    for old, new in zip(dict.fromkeys(args.run_ids), new_ids):
        print(f"run {old}: queued again as run {new}")
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
