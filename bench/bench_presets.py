"""Train presets (store/presets.py) on the lab's split and print what `dmf-tui presets` shows.

    .venv/bin/python bench/bench_presets.py mf                           # one preset on ML-100K
    .venv/bin/python bench/bench_presets.py --datasets ml-100k,synthetic-1m   # every preset, both

Each preset trains through engine.trainer.fit with its own settings (seed 0, the lab's split: test
20 %, split seed 42, and the preset's validation part of the training ratings). The best epoch is
the one with the lowest validation RMSE; its test RMSE is reported, never used to choose. Seconds
are the whole fit(), evaluation included. Prints a line per preset and dataset as it finishes, then
a markdown table and the machine for bench/RESULTS.md, and the Figure(...) lines to paste into the
presets' `figures` in store/presets.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from bench.machine import cpu_model, describe, print_table
from engine.datasets import load_split
from engine.trainer import fit, resolve_device
from store import presets
from store.params import RunParams

# Where bench_engine.py finds ML-100K too: the data folder beside the checkout, unless DMF_DATA_DIR says.
DATA_DIR = Path(os.environ.get("DMF_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="PRESET", help="presets to train (default: all)")
    parser.add_argument("--datasets", default="ml-100k", help="comma list of ml-100k, synthetic-1m "
                        "(default ml-100k; synthetic-1m takes minutes a preset on a CPU)")
    parser.add_argument("--device", default="cpu", help="default cpu")
    args = parser.parse_args()
    chosen = [presets.preset(name) for name in args.names] or list(presets.PRESETS.values())
    datasets = args.datasets.split(",")
    unknown = sorted(set(datasets) - set(presets.MEASURED_ON))
    if unknown:
        parser.error(f"presets are measured on {', '.join(presets.MEASURED_ON)}, not {', '.join(unknown)}")
    device = str(resolve_device(args.device))
    where = f"{cpu_model()}, {os.cpu_count()} CPUs" if device == "cpu" else torch.cuda.get_device_name(device)
    measured = f"{dt.date.today().isoformat()} on {where}, {device}"

    rows = []
    snippets: dict[str, list[str]] = {}
    for data in datasets:
        for preset in chosen:
            params = preset.apply(RunParams(data=data, device=device))
            split = load_split(data, data_dir=DATA_DIR, **params.engine_args("split"))
            started = time.perf_counter()
            result = fit(split, **params.engine_args("fit") | {"device": device})
            seconds = time.perf_counter() - started
            best = result.epochs[result.best_epoch - 1]
            assert best.val_rmse is not None  # every preset holds out validation ratings
            print(f"{preset.name} on {data}: val RMSE {best.val_rmse:.4f}, test RMSE {best.test_rmse:.4f} at epoch "
                  f"{best.epoch} of {len(result.epochs)} ({result.stopped}), {seconds:.1f} s", flush=True)
            rows.append((preset.name, data, f"{best.val_rmse:.4f}", f"{best.test_rmse:.4f}", str(best.epoch),
                         str(len(result.epochs)), f"{seconds:.1f}"))
            snippets.setdefault(preset.name, []).append(
                f'"{data}": Figure(test_rmse={best.test_rmse:.4f}, val_rmse={best.val_rmse:.4f}, '
                f"best_epoch={best.epoch}, epochs={len(result.epochs)}, seconds={seconds:.1f},\n"
                f'        measured="{measured}", config="{preset.fingerprint()}"),')

    header = ("preset", "data", "val RMSE", "test RMSE", "best epoch", "epochs", "seconds")
    print()
    print_table(header, rows)
    print()
    print(f"Machine: {describe()}; torch {torch.__version__}, {device} (on CPU: one thread for a pair model, "
          f"every thread for AutoRec and GLocal-K).")
    print(f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print()
    print("# store/presets.py, each preset's figures={...}:")
    for name, lines in snippets.items():
        print(f"# {name}")
        for line in lines:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
