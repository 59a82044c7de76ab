"""Time the worker's gap between the end of one run and the start of the next on the same dataset.

    .venv/bin/python bench/bench_worker.py                     # a 1M-line ratings.dat, 4 runs of 1 epoch
    .venv/bin/python bench/bench_worker.py --data synthetic-1m --runs 6 --device cuda

Queues `--runs` runs that differ only in their seed into a fresh SQLite file and lets one in-process
worker take them. From the store's own time stamps it computes, for each run, when its first epoch
began (the epoch's row time less the epoch's seconds), and prints
  - the first run's start: claim to first batch, including reading, remapping and splitting the file;
  - the gap from one run's end to the next run's first batch (finish, claim, split from the cache,
    split moved to the device, model built): the dataset is not read again, so it stays far below.
Ends with a markdown row for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from bench.bench_load import write_ratings_dat
from bench.machine import cpu_model
from engine.worker import Slot, WorkerOptions, plan_slots
from store.db import Store, open_store
from store.params import RunParams


def first_batch_at(store: Store, run_id: int) -> float:
    first = store.epochs(run_id)[0]
    return first.created_at.timestamp() - first.seconds


def timestamp(moment: datetime | None) -> float:
    """A done run's start or finish time, in seconds since the epoch."""
    assert moment is not None, "a done run has started and finished"
    return moment.timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset name or file (default: a 1M-line ratings.dat in a temp dir)")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4096, help="large by default: the gap, not the "
                        "epoch, is measured")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = str(Path(tmp) / "ratings.dat")
            write_ratings_dat(Path(data))
        store = open_store(str(Path(tmp) / "runs.db"))
        ids = [store.enqueue(RunParams(data=data, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                                       device=args.device)) for seed in range(args.runs)]
        device = args.device if args.device != "auto" else plan_slots()[0]
        Slot(store, device, WorkerOptions(db=store.url, exit_when_empty=True)).serve()
        runs = [store.get_run(i) for i in ids]
        starts = [first_batch_at(store, run.id) for run in runs if run.status == "done"]
        store.close()
    if len(starts) != len(runs):
        print(f"runs did not all finish: {[(run.id, run.status, run.error) for run in runs]}")
        return 1

    load = starts[0] - timestamp(runs[0].started_at)
    gaps = [start - timestamp(before.finished_at) for before, start in zip(runs, starts[1:])]
    print(f"first run, claim to first batch: {load:.3f} s")
    print("gaps between runs: " + ", ".join(f"{g * 1000:.0f} ms" for g in gaps))

    machine = f"{cpu_model()}, {torch.get_num_threads()} threads"
    if device.startswith("cuda"):
        machine = f"{torch.cuda.get_device_name(0)} ({machine})"
    command = "python bench/bench_worker.py " + " ".join(sys.argv[1:])
    dataset = args.data or "1M-line ratings.dat"
    print("\n| machine | command | dataset | first run's load (s) | gap between runs, mean / max (ms) |")
    print("|---|---|---|---|---|")
    print(f"| {machine} | `{command.strip()}` | {dataset} | {load:.2f} | "
          f"{statistics.mean(gaps) * 1000:.0f} / {max(gaps) * 1000:.0f} |")
    print(f"\n{platform.platform()}, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
