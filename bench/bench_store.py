"""Store benchmark: the cost of recording one epoch, and of the History tab's first page on a big
database (10,000 runs x 30 epochs). Prints a markdown table for bench/RESULTS.md.

    .venv/bin/python bench/bench_store.py [--runs 10000] [--epochs 30]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from bench.machine import describe
from store.db import Store, open_store
from store.params import RunParams
from store.tables import Epoch, Run, param_columns, utcnow


def median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_epoch_write(store: Store, repeat: int) -> float:
    run_id = store.start_run(RunParams(epochs=repeat), device="cpu").id
    epochs = iter(range(1, repeat + 1))
    return median_ms(lambda: store.record_epoch(run_id, next(epochs), train_rmse=0.9, test_rmse=0.95,
                                                seconds=1.0), repeat)


def fill(store: Store, n_runs: int, n_epochs: int) -> None:
    """Finished runs with random parameters and curves, written in bulk (not through the API)."""
    rng = random.Random(0)
    now = utcnow()
    with store.engine.begin() as conn:
        for chunk in range(0, n_runs, 1000):
            runs = []
            for _ in range(chunk, min(n_runs, chunk + 1000)):
                params = RunParams(model=rng.choice(["mf", "deepmf"]), k=rng.choice([8, 10, 32, 64]),
                                   lr=rng.choice([1e-3, 3e-3, 1e-2]), epochs=n_epochs,
                                   data=rng.choice(["ml-100k", "ml-1m", "synthetic-1m"]))
                best = rng.uniform(0.85, 1.2)
                runs.append(dict(status=rng.choice(["done"] * 8 + ["failed", "cancelled"]),
                                 created_at=now, updated_at=now, started_at=now, finished_at=now,
                                 device="cuda:0", epoch=n_epochs, best_test_rmse=best,
                                 best_epoch=rng.randint(1, n_epochs), last_train_rmse=best - 0.1,
                                 last_test_rmse=best + 0.01, notes="", tags="", cancel_requested=False,
                                 **param_columns(params)))
            ids = conn.execute(insert(Run).returning(Run.id), runs).scalars().all()
            conn.execute(insert(Epoch), [
                dict(run_id=run_id, epoch=e, train_rmse=1.0, test_rmse=1.0, val_rmse=None, seconds=1.0,
                     created_at=now)
                for run_id in ids for e in range(1, n_epochs + 1)
            ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=300, help="epoch writes to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        start = time.perf_counter()
        store = open_store(path)
        create_ms = (time.perf_counter() - start) * 1000
        write_ms = bench_epoch_write(store, args.repeat)

        start = time.perf_counter()
        fill(store, args.runs, args.epochs)
        fill_s = time.perf_counter() - start
        store.close()

        start = time.perf_counter()
        store = open_store(path)
        reopen_ms = (time.perf_counter() - start) * 1000
        rows = [
            ("open an existing database (schema check)", reopen_ms),
            ("create a new database", create_ms),
            (f"record one epoch (median of {args.repeat})", write_ms),
            ("leaderboard, first page of 50", median_ms(lambda: store.leaderboard(limit=50), 20)),
            ("leaderboard, status=done model=deepmf, 50",
             median_ms(lambda: store.leaderboard(status="done", model="deepmf", limit=50), 20)),
            ("leaderboard sorted by lr desc, 50", median_ms(lambda: store.leaderboard(sort="lr", descending=True,
                                                                                     limit=50), 20)),
            ("leaderboard, text search 'ml-1m', 50", median_ms(lambda: store.leaderboard(text="ml-1m", limit=50), 20)),
            ("count_runs + status_counts", median_ms(lambda: (store.count_runs(), store.status_counts()), 20)),
            ("epochs of one run (30 rows)", median_ms(lambda: store.epochs(args.runs // 2), 20)),
        ]
        store.close()
        size_mb = os.path.getsize(path) / 1e6

    print(f"Machine: {describe()}, SQLite {sqlite3.sqlite_version}")
    print(f"Command: .venv/bin/python bench/bench_store.py --runs {args.runs} --epochs {args.epochs}")
    print(f"Database: {args.runs:,} runs x {args.epochs} epochs, {size_mb:.0f} MB, filled in {fill_s:.1f} s\n")
    print("| operation | median ms |")
    print("|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    main()
