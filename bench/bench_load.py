"""Time loading + remapping + splitting a 1M-line `::` ratings file (the lab's first 5 seconds).

The file is synthetic-1m written in ML-1M's `user::item::rating::timestamp` layout to a temp dir.
Prints the best of 3 for each step and in total. Run: .venv/bin/python bench/bench_load.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from engine.formats import read_ratings
from engine.remap import remap
from engine.split import split_dataset
from engine.synthetic import make_synthetic

REPEATS = 3


def write_ratings_dat(path: Path) -> int:
    t0 = time.perf_counter()
    ds = make_synthetic("synthetic-1m")
    print(f"generate synthetic-1m: {time.perf_counter() - t0:.3f} s")
    timestamps = 956_703_932 + np.arange(ds.n_ratings) * 89
    table = np.column_stack(
        [ds.user_ids[ds.users], ds.item_ids[ds.items], ds.ratings.astype(np.int64), timestamps]
    )
    np.savetxt(path, table, fmt="%d", delimiter="::")
    return ds.n_ratings


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.dat"
        n = write_ratings_dat(path)
        print(f"file: {n:,} lines, {path.stat().st_size / 1e6:.1f} MB")
        best = {"read": float("inf"), "remap": float("inf"), "split": float("inf"), "total": float("inf")}
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            ratings = read_ratings(path)
            t1 = time.perf_counter()
            dataset = remap(ratings, "bench")
            t2 = time.perf_counter()
            split = split_dataset(dataset)
            t3 = time.perf_counter()
            for step, seconds in (("read", t1 - t0), ("remap", t2 - t1), ("split", t3 - t2), ("total", t3 - t0)):
                best[step] = min(best[step], seconds)
        print(f"split: {len(split.train):,} train / {len(split.test):,} test")
        print("best of 3: " + ", ".join(f"{step} {seconds:.3f} s" for step, seconds in best.items()))


if __name__ == "__main__":
    main()
