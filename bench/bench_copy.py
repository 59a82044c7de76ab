"""`dmf-tui db copy` on a long history: N runs of E epochs each (default 10,000 x 100, a million epoch
rows), from a SQLite file into a new SQLite file and, with --pg, into an empty PostgreSQL database.
Each copy is the command itself in a fresh process: its wall time and its peak RSS (getrusage), beside
the peak RSS of a process that only imports the command, so the copy's own memory can be read off.
This process stays small and imports no store: a child's peak RSS counts the process it was started
from (Linux keeps the high-water mark across fork and exec), so the source is written, and the
PostgreSQL database emptied, by children of their own.

    .venv/bin/python bench/bench_copy.py                               # 10,000 runs x 100 epochs
    .venv/bin/python bench/bench_copy.py --repeat 3 --pg postgresql://user@host/empty_db

The source is written once to --dir (default /tmp/dmf-bench-copy, never the repository) and reused;
--pg's database is emptied (every dmf-tui table dropped) before each copy into it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.* and store

from bench.machine import describe, print_table


def write_source(path: Path, runs: int, epochs: int) -> None:
    """N done runs of one grid, each with E epochs, written in bulk (the store's own calls would
    take minutes for a million epochs)."""
    from sqlalchemy import insert, update

    from store.db import open_store
    from store.params import RunParams
    from store.tables import Epoch, Run

    path.parent.mkdir(parents=True, exist_ok=True)
    with open_store(str(path)) as store:
        base = RunParams(model="mf", data="synthetic-100k", epochs=epochs, device="cpu")
        _, ids = store.enqueue_grid([base.replace(seed=seed) for seed in range(runs)], name="bench")
        with store.engine.begin() as conn:
            conn.execute(update(Run).values(status="done", epoch=epochs, best_test_rmse=0.9, best_epoch=epochs))
            rows = [{"run_id": run, "epoch": epoch, "train_rmse": 1.0 / epoch, "test_rmse": 1.1 / epoch,
                     "seconds": 0.5} for run in ids for epoch in range(1, epochs + 1)]
            for start in range(0, len(rows), 50_000):
                conn.execute(insert(Epoch), rows[start:start + 50_000])


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `command` in a fresh process; it must succeed."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def empty_server_database(url: str) -> None:
    from store.db import open_store
    from store.tables import Base

    with open_store(url) as store:
        Base.metadata.drop_all(store.engine)


def in_child(function: str, *args: str) -> None:
    """Call one of this module's functions in a fresh process (see the module docstring)."""
    subprocess.run([sys.executable, __file__, "--call", function, *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--pg", help="URL of a PostgreSQL database to copy into (emptied first)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/dmf-bench-copy"))
    parser.add_argument("--call", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.call:
        function, *values = args.call
        if function == "write_source":
            write_source(Path(values[0]), int(values[1]), int(values[2]))
        else:
            empty_server_database(values[0])
        return

    source = args.dir / f"src-{args.runs}x{args.epochs}.db"
    if not source.exists():
        print(f"writing {args.runs:,} runs x {args.epochs} epochs to {source} ...", flush=True)
        in_child("write_source", str(source), str(args.runs), str(args.epochs))
    copy = [sys.executable, "-m", "dmf_tui", "db", "copy", str(source)]
    targets = [("SQLite file", str(args.dir / "dst.db"))] + ([("PostgreSQL", args.pg)] if args.pg else [])

    print(f"Machine: {describe()}")
    print(f"Source: {args.runs:,} runs x {args.epochs} epochs ({args.runs * args.epochs:,} epoch rows), "
          f"{source.stat().st_size / 2**20:.0f} MiB of SQLite; each figure the best of {args.repeat}, range after")
    imports = min(timed([sys.executable, "-c", "import dmf_tui.cli, store.copy"])[1] for _ in range(args.repeat))
    rows = []
    for name, target in targets:
        results = []
        for _ in range(args.repeat):
            if target == args.pg:
                in_child("empty_server_database", target)
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(target + suffix).unlink(missing_ok=True)
            results.append(timed([*copy, target]))
        seconds = sorted(result[0] for result in results)
        memory = sorted(result[1] for result in results)
        rows.append((name, f"{seconds[0]:.1f} s ({seconds[0]:.1f}-{seconds[-1]:.1f})",
                     f"{memory[0]:.0f} MiB ({memory[0]:.0f}-{memory[-1]:.0f})", f"{imports:.0f} MiB"))
    print_table(("into", "copy time", "peak RSS", "peak RSS of the imports alone"), rows)


if __name__ == "__main__":
    main()
