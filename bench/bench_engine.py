"""Time the engine's epoch against the reference lab's loop, in one process, on the same split.

    .venv/bin/python bench/bench_engine.py                      # ML-100K (if present) and synthetic-1m
    .venv/bin/python bench/bench_engine.py --datasets synthetic-1m --models mf --epochs 3 --lab-epochs 1

Both train the same model from the same seed with the same batch size, Adam and MSE; the lab loop
(bench/lab_reference.py) always runs on the CPU, as the speed-up this measures is the CPU one unless
--device says otherwise. The lab loop runs on --lab-threads intra-op threads (default 1, as the
engine trains on CPU): its tiny steps gain nothing from a second thread and lose 2-3x on a busy
machine, which would flatter the engine. Seconds per epoch are the mean over all epochs run, evaluation included
(the engine's first epoch included). Prints the lab-format lines as they come, then a markdown table
and the machine, ready for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from bench.lab_reference import train_lab
from bench.machine import cpu_model, print_table
from dmf_tui.commands.run import lab_line
from engine.formats import read_ratings
from engine.remap import remap
from engine.split import split_dataset
from engine.synthetic import make_synthetic
from engine.trainer import fit, resolve_device

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"


def load(name: str):
    """The lab's split of `name`, or None (with a message) when the data is not on this machine."""
    if name == "ml-100k":
        path = Path(os.environ.get("ML100K", ML100K))
        if not path.exists():
            print(f"skipping ml-100k: {path} not found (set ML100K=/path/to/u.data)")
            return None
        return split_dataset(remap(read_ratings(path), "ml-100k"))
    return split_dataset(make_synthetic(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="engine epochs per model (default 5)")
    parser.add_argument("--lab-epochs", type=int, default=2, help="lab epochs per model (default 2)")
    parser.add_argument("--datasets", default="ml-100k,synthetic-1m")
    parser.add_argument("--models", default="mf,deepmf")
    parser.add_argument("--device", default="cpu", help="the engine's device (default cpu)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lab-threads", type=int, default=1, help="torch threads for the lab loop (default 1)")
    args = parser.parse_args()
    device = resolve_device(args.device)

    rows = []
    for name in args.datasets.split(","):
        split = load(name)
        if split is None:
            continue
        for model in args.models.split(","):
            print(f"== {name} {model}: lab loop (cpu, {args.lab_threads} threads)")
            torch.set_num_threads(args.lab_threads)
            lab = train_lab(split, model, epochs=args.lab_epochs, batch_size=args.batch_size, seed=args.seed)
            print(f"== {name} {model}: engine ({device})")
            engine = fit(split, model=model, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                         device=str(device),
                         on_epoch=lambda e: print(lab_line(e.epoch, e.seconds, e.train_rmse, e.test_rmse)))
            lab_s = statistics.mean(seconds for _, _, seconds in lab)
            engine_s = statistics.mean(e.seconds for e in engine.epochs)
            rows.append((name, model, f"{lab_s:.2f}", f"{engine_s:.3f}", f"{lab_s / engine_s:.0f}x",
                         " ".join(f"{test:.4f}" for _, test, _ in lab),
                         " ".join(f"{e.test_rmse:.4f}" for e in engine.epochs)))

    header = ("dataset", "model", "lab s/epoch", "engine s/epoch", "speed-up", "lab test RMSE by epoch",
              "engine test RMSE by epoch")
    print()
    print_table(header, rows)
    print()
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}; lab loop on "
          f"{args.lab_threads} thread(s), engine on {device} (1 thread on CPU); batch {args.batch_size}; "
          f"load average at the end {load_avg}.")
    print(f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
