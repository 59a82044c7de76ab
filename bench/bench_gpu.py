"""Every GPU measurement in one script, to run once on a card (device time is scarce).

    .venv/bin/python bench/bench_gpu.py                         # on a CUDA box: the full table
    .venv/bin/python bench/bench_gpu.py --device cpu --quick    # a smoke run of the same code here

Prints, for synthetic-1m (ML-1M's shape, batch 512, K=10):
  1. seconds per epoch for MF and DeepMF, eager vs captured (a CUDA graph replayed), the median of
     the epochs after the first (the first includes the warm-up and capture), and the largest
     difference in test RMSE between the two over all epochs (same seed: they should agree);
  2. the throughput of 1, 4 and 16 worker slots on one card: several slot processes claim short
     MF runs from one queue, each run alone (pack 1); epochs per second of all slots together, measured between the 25th
     and 75th percentile of the epochs' timestamps so slot start-up (CUDA context, data) is excluded;
  3. packing (issue 14): MF and DeepMF runs of one grid (learning rates x weight decays, each run its
     own seed) trained as packs of 1, 4, 16, 64 and 256 through fit_pack (the pack's step vmapped over
     the stacked parameters and captured in a CUDA graph), in run-epochs per second: over the epochs
     alone (each epoch's time is its slowest run's, every run's evaluation included) and over the
     whole fit_pack call (set-up and each run's final ranking included); then --compare packed runs
     against as many runs alone, the solo figure extrapolated from --solo-runs runs through fit, and
     the largest test RMSE difference between those solo runs and the same runs in the pack.
Then the card, torch and CUDA versions, as a markdown block for bench/RESULTS.md. `--epochs 0`, an empty
`--slots` or an empty `--packs` skips that part, to fit a run into the device time there is:

    .venv/bin/python bench/bench_gpu.py --epochs 0 --slots ""   # the packing part alone
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from engine.split import split_dataset
from engine.synthetic import make_synthetic
from engine.trainer import TrainResult, fit, fit_pack, resolve_device
from engine.worker import WorkerOptions, run_slots
from store.db import open_store
from store.params import RunParams


def epoch_times(split, model: str, device: str, capture: bool, epochs: int) -> tuple[float, list[float]]:
    result = fit(split, model=model, epochs=epochs, device=device, capture=capture, seed=0)
    seconds = [e.seconds for e in result.epochs]
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    return steady, [e.test_rmse for e in result.epochs]


def slot_throughput(slots: int, device: str, runs_per_slot: int, epochs: int) -> float:
    """Epochs per second of `slots` worker processes sharing `device`, in steady state."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "runs.db")
        store = open_store(db)
        params = RunParams(model="mf", data="synthetic-1m", epochs=epochs, device="auto")
        store.enqueue_grid([params] * (slots * runs_per_slot), name=f"{slots} slots")
        # pack=1: this measures slots, each run alone; packing has its own part below.
        code = run_slots([device] * slots, WorkerOptions(db=db, exit_when_empty=True, poll_s=0.2, pack=1))
        if code != 0:
            raise SystemExit(f"the {slots}-slot worker exited with {code}")
        stamps = sorted(e.created_at for run in store.leaderboard() for e in store.epochs(run.id))
        store.close()
    lo, hi = stamps[len(stamps) // 4], stamps[(3 * len(stamps)) // 4]
    window = (hi - lo).total_seconds()
    between = sum(1 for s in stamps if lo < s <= hi)
    return between / window if window > 0 else float("nan")


PACK_LRS = (1e-3, 3e-3, 1e-2, 3e-2)
PACK_WEIGHT_DECAYS = (0.0, 1e-5)


def pack_runs(model: str, device: str, epochs: int, count: int) -> list[dict[str, Any]]:
    """`count` runs of one pack: the grid's cells in turn, run i with seed i."""
    cells = [(lr, wd) for lr in PACK_LRS for wd in PACK_WEIGHT_DECAYS]
    return [{"model": model, "device": device, "epochs": epochs, "lr": cells[i % len(cells)][0],
             "weight_decay": cells[i % len(cells)][1], "seed": i} for i in range(count)]


def synchronized(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def pack_rates(split, model: str, device: str, size: int, epochs: int) -> tuple[float, float, list[TrainResult]]:
    """Run-epochs per second of one pack of `size`: over its epochs, and over the whole fit_pack call."""
    synchronized(device)
    started = time.perf_counter()
    outcomes = fit_pack(split, pack_runs(model, device, epochs, size))
    synchronized(device)
    whole = time.perf_counter() - started
    results = []
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise SystemExit(f"{model} pack of {size}: a run failed: {outcome!r}")
        results.append(outcome)
    # A run's epoch time runs from the pack's epoch start to the end of its own evaluation.
    epoch_wall = sum(max(r.epochs[e].seconds for r in results) for e in range(epochs))
    return size * epochs / epoch_wall, size * epochs / whole, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per eager/captured timing (0: skip it)")
    parser.add_argument("--slots", default="1,4,16", help="slot counts to measure (empty: skip them)")
    parser.add_argument("--slot-epochs", type=int, default=10, help="epochs of each run in the slot test")
    parser.add_argument("--runs-per-slot", type=int, default=3)
    parser.add_argument("--packs", default="1,4,16,64,256", help="pack sizes to measure (empty: skip them)")
    parser.add_argument("--pack-epochs", type=int, default=3, help="epochs of each run in the pack test")
    parser.add_argument("--compare", type=int, default=64, help="the pack size compared with as many runs alone")
    parser.add_argument("--solo-runs", type=int, default=3, help="runs alone timed for that comparison")
    parser.add_argument("--quick", action="store_true", help="small settings, to check the script works")
    args = parser.parse_args()
    if args.quick:  # the same parts, smaller (a part skipped stays skipped)
        args.epochs = min(args.epochs, 2)
        args.slots, args.slot_epochs, args.runs_per_slot = "1,2" if args.slots else "", 2, 1
        args.packs, args.pack_epochs, args.compare, args.solo_runs = "1,2,4" if args.packs else "", 1, 4, 1

    device = str(resolve_device(args.device))
    on_cuda = device.startswith("cuda")
    split = split_dataset(make_synthetic("synthetic-1m"))
    print(f"synthetic-1m: {len(split.train)} train rows, batch 512, K=10, on {device}", flush=True)

    rows = []
    for model in ("mf", "deepmf") if args.epochs else ():
        eager_s, eager_rmse = epoch_times(split, model, device, False, args.epochs)
        if on_cuda:
            captured_s, captured_rmse = epoch_times(split, model, device, True, args.epochs)
            diff = max(abs(a - b) for a, b in zip(eager_rmse, captured_rmse))
            rows.append(f"| {model} | {eager_s:.3f} | {captured_s:.3f} | {eager_s / captured_s:.1f}x | {diff:.1e} |")
        else:
            rows.append(f"| {model} | {eager_s:.3f} | - | - | - |")
        print(rows[-1], flush=True)

    slot_rows = []
    base = None
    for slots in (int(s) for s in args.slots.split(",") if s):
        rate = slot_throughput(slots, device, args.runs_per_slot, args.slot_epochs)
        base = base or rate
        slot_rows.append(f"| {slots} | {rate:.2f} | {rate / base:.2f}x |")
        print(slot_rows[-1], flush=True)

    pack_rows, compare_rows = [], []
    for model in ("mf", "deepmf"):
        by_size: dict[int, tuple[float, float, list[TrainResult]]] = {}
        for size in sorted(int(s) for s in args.packs.split(",") if s):
            by_size[size] = pack_rates(split, model, device, size, args.pack_epochs)
            epochs_rate, whole_rate, _ = by_size[size]
            base_epochs, base_whole = by_size[min(by_size)][:2]
            pack_rows.append(f"| {model} | {size} | {epochs_rate:.2f} | {epochs_rate / base_epochs:.1f}x | "
                             f"{whole_rate:.2f} | {whole_rate / base_whole:.1f}x |")
            print(pack_rows[-1], flush=True)
        if args.compare in by_size:
            solo_runs = pack_runs(model, device, args.pack_epochs, args.solo_runs)
            synchronized(device)
            started = time.perf_counter()
            solo = [fit(split, **run) for run in solo_runs]
            synchronized(device)
            per_run = (time.perf_counter() - started) / len(solo)
            packed = by_size[args.compare][2]
            diff = max(abs(a.test_rmse - b.test_rmse) for s, p in zip(solo, packed) for a, b in zip(s.epochs, p.epochs))
            packed_s = args.compare * args.pack_epochs / by_size[args.compare][1]
            compare_rows.append(f"| {model} | {args.compare} | {per_run * args.compare:.1f} | {packed_s:.1f} | "
                                f"**{per_run * args.compare / packed_s:.1f}x** | {diff:.1e} |")
            print(compare_rows[-1], flush=True)

    card = torch.cuda.get_device_name(torch.device(device)) if on_cuda else "CPU"
    print()
    print(f"Machine: {card}; torch {torch.__version__}, CUDA {torch.version.cuda}; load average "
          f"{os.getloadavg()[0]:.2f}; {dt.date.today().isoformat()}; command: python {' '.join(sys.argv)}")
    print()
    print("| model | eager s/epoch | captured s/epoch | speed-up | max test RMSE difference |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print(f"| slots on one {'card' if on_cuda else 'CPU'} | epochs/s (all slots, MF) | vs 1 slot |")
    print("|---:|---:|---:|")
    print("\n".join(slot_rows))
    print()
    smallest = min((int(s) for s in args.packs.split(",") if s), default=1)
    print(f"| model | pack size | run-epochs/s (epochs) | vs pack of {smallest} | run-epochs/s (whole fit_pack) "
          f"| vs pack of {smallest} |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(pack_rows))
    print()
    print(f"| model | runs | alone s (extrapolated from {args.solo_runs}) | one pack s | speed-up | "
          f"max test RMSE difference (the {args.solo_runs} runs) |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(compare_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
