"""Big data on one box (issue 15): a 25M-rating CSV at ML-25M's shape, loaded cold, loaded from the
binary cache, and trained one MF epoch in a fresh process.

    .venv/bin/python bench/bench_big.py                          # generate once, then measure
    .venv/bin/python bench/bench_big.py --repeat 3               # each figure 3 times, best and range
    .venv/bin/python bench/bench_big.py --optimizer OPT --batch-size 4096   # another MF run

The CSV is ML-25M's shape: 162,541 users (ids 1..162,541, each with at least 20 ratings), 59,047
items (a sorted sample of ids 1..209,171), 25,000,095 ratings with ML-25M's half-star histogram,
10-digit timestamps, one line per (user, item) sorted by user then item, under the header
`userId,movieId,rating,timestamp`. Users' activity and items' popularity are long-tailed; a rating is
biases plus a low-rank score plus noise, so that an RMSE measured on it means something. It is
written once to --dir (default /tmp/dmf-bench-big, never the repository) and reused.

Each figure comes from a fresh Python process (so no figure profits from another's memory); each try
has a dataset cache (XDG_CACHE_HOME) of its own, empty at its start:
  - cold: the steps of engine.datasets.load_split one by one, each timed: read_ratings, remap and the
    lab's 80/20 split, then writing the cache (engine/cache.py); the CSV itself is in the page cache
    (it was just written or read), so no figure times the disk;
  - cached: load_dataset, now from the cache, then the split;
  - MF: load_split, cold (a cache of its own, empty: the first run on a new file, which parses it and
    writes the cache), and one epoch of engine.trainer.fit(model="mf", epochs=1) on the CPU with
    --optimizer and --batch-size; the process's peak RSS (getrusage) covers load, split, cache write
    and training; the epoch's seconds are its own (EpochStats.seconds) as the run shows them.
With --repeat N every figure is taken N times: the table shows the best and the range.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from bench.machine import describe, print_table

N_USERS = 162_541
N_ITEMS = 59_047
MAX_ITEM_ID = 209_171
N_RATINGS = 25_000_095
MIN_PER_USER = 20
# ML-25M's ratings at 0.5, 1.0, ..., 5.0 stars (they sum to its 25,000,095).
HALF_STAR_COUNTS = np.array([393_068, 776_815, 399_490, 1_640_868, 1_262_797, 4_896_928, 3_177_318, 6_639_798,
                             2_200_539, 3_612_474])
FIRST_STAMP, LAST_STAMP = 789_652_009, 1_574_327_703  # ML-25M's first and last timestamps
RANK = 5
SEED = 25
CHUNK_ROWS = 2_000_000


def generate(path: Path) -> None:
    """Write the ML-25M-shaped CSV to path (through a temp file, so a present file is a whole one)."""
    rng = np.random.default_rng(SEED)
    counts = _ratings_per_user(rng)
    users = np.repeat(np.arange(N_USERS, dtype=np.int64), counts)
    items = _distinct_items(rng, users, counts)
    order = np.lexsort((items, users))  # ML-25M's order: by user, then by movie id
    users, items = users[order], items[order]
    half_stars = _half_stars(rng, users, items)
    stamps = rng.integers(FIRST_STAMP, LAST_STAMP + 1, N_RATINGS)
    item_ids = np.sort(rng.choice(MAX_ITEM_ID, N_ITEMS, replace=False)) + 1
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as out:
        out.write(b"userId,movieId,rating,timestamp\n")
        for start in range(0, N_RATINGS, CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            out.write(_csv_lines(users[rows] + 1, item_ids[items[rows]], half_stars[rows], stamps[rows]))
    os.replace(partial, path)


def _ratings_per_user(rng: np.random.Generator) -> np.ndarray:
    """At least 20 per user plus a long-tailed share of the rest, summing to N_RATINGS exactly."""
    spare = N_RATINGS - MIN_PER_USER * N_USERS
    weight = rng.lognormal(0.0, 1.3, N_USERS)
    extra = weight / weight.sum() * spare
    whole = np.floor(extra).astype(np.int64)
    whole[np.argsort(whole - extra)[: spare - int(whole.sum())]] += 1  # the largest remainders
    counts: np.ndarray = MIN_PER_USER + whole
    assert counts.sum() == N_RATINGS and counts.max() < N_ITEMS // 2
    return counts


def _distinct_items(rng: np.random.Generator, users: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """An item per row by a long-tailed popularity, never twice for one user, every item used."""
    popularity = rng.lognormal(0.0, 2.0, N_ITEMS)
    items = rng.choice(N_ITEMS, size=len(users), p=popularity / popularity.sum())
    for _ in range(100):
        keys = users * N_ITEMS + items
        _, first = np.unique(keys, return_index=True)
        again = np.ones(len(keys), dtype=bool)
        again[first] = False  # a pair drawn twice: draw the later rows again, uniformly
        if not again.any():
            break
        items[again] = rng.integers(0, N_ITEMS, int(again.sum()))
    # Items never drawn take a row each from the most popular item (which has plenty): no user had
    # them, so no pair repeats.
    used = np.bincount(items, minlength=N_ITEMS)
    unused = np.flatnonzero(used == 0)
    donors = rng.choice(np.flatnonzero(items == np.argmax(used)), size=len(unused), replace=False)
    items[donors] = unused
    return items


def _half_stars(rng: np.random.Generator, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Ratings as half stars 1..10: biases + a rank-5 score + noise, cut at ML-25M's shares."""
    user_bias = rng.normal(0.0, 0.45, N_USERS)
    item_bias = rng.normal(0.0, 0.45, N_ITEMS)
    scale = (0.6**2 / RANK) ** 0.25  # makes the factor term's standard deviation about 0.6
    user_factors = rng.normal(0.0, scale, (N_USERS, RANK)).astype(np.float32)
    item_factors = rng.normal(0.0, scale, (N_ITEMS, RANK)).astype(np.float32)
    score = np.empty(len(users), dtype=np.float32)
    for start in range(0, len(users), CHUNK_ROWS):
        u, i = users[start:start + CHUNK_ROWS], items[start:start + CHUNK_ROWS]
        score[start:start + CHUNK_ROWS] = (user_bias[u] + item_bias[i]
                                           + np.einsum("ij,ij->i", user_factors[u], item_factors[i]))
    score += rng.normal(0.0, 0.9, len(users)).astype(np.float32)
    cuts = np.quantile(score, np.cumsum(HALF_STAR_COUNTS)[:-1] / N_RATINGS)
    return (1 + np.searchsorted(cuts, score)).astype(np.int64)


def _csv_lines(users: np.ndarray, items: np.ndarray, half_stars: np.ndarray, stamps: np.ndarray) -> bytes:
    """`user,item,rating,timestamp\\n` lines, ratings as "3.5"/"4.0", formatted by numpy (a Python
    loop over 25M rows takes minutes): each line's fields are laid out by their digit counts, and
    every digit is written at its place."""
    widths = [_digit_count(users), _digit_count(items), np.full(len(users), 3), _digit_count(stamps)]
    line_ends = np.cumsum(sum(widths) + len(widths))  # a separator or the newline after each field
    buf = np.empty(int(line_ends[-1]), dtype=np.uint8)
    start = np.concatenate([[0], line_ends[:-1]])
    for field, (values, width) in enumerate(zip((users, items, None, stamps), widths)):
        if values is None:  # the rating: "<whole>.<0 or 5>"
            buf[start] = ord("0") + half_stars // 2
            buf[start + 1] = ord(".")
            buf[start + 2] = np.where(half_stars % 2, ord("5"), ord("0"))
        else:
            _write_digits(buf, start, values, width)
        start = start + width
        buf[start] = ord("\n") if field == len(widths) - 1 else ord(",")
        start = start + 1
    return buf.tobytes()


def _digit_count(values: np.ndarray) -> np.ndarray:
    powers = 10 ** np.arange(1, 19, dtype=np.int64)
    return np.searchsorted(powers, values, side="right") + 1


def _write_digits(buf: np.ndarray, start: np.ndarray, values: np.ndarray, width: np.ndarray) -> None:
    for place in range(int(width.max())):
        has = width > place
        buf[(start + width - 1 - place)[has]] = ord("0") + (values[has] // 10**place) % 10


# The child processes: each prints one JSON line with its figures. The cold one takes the steps of
# engine.datasets.load_split one by one, to time each; the cached one calls load_split itself.
_COLD = """
import json, resource, sys, time
from pathlib import Path
from engine import cache
from engine.formats import read_ratings
from engine.remap import remap
from engine.split import split_dataset
path = Path(sys.argv[1])
t0 = time.perf_counter()
found = cache.identity(path)
ratings = read_ratings(path)
t1 = time.perf_counter()
dataset = remap(ratings, str(path), str(path))
del ratings
t2 = time.perf_counter()
split = split_dataset(dataset)
t3 = time.perf_counter()
cache.store(path, found, dataset)
t4 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "remap": t2 - t1, "split": t3 - t2, "seconds": t3 - t0, "store": t4 - t3,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "train": len(split.train), "test": len(split.test)}))
"""

_CACHED = """
import json, sys, time
from engine.datasets import load_dataset
from engine.split import split_dataset
t0 = time.perf_counter()
dataset = load_dataset(sys.argv[1])
t1 = time.perf_counter()
split_dataset(dataset)
t2 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "seconds": t2 - t0}))
"""

_TRAIN = """
import json, resource, sys, time
from engine.datasets import load_split
from engine.trainer import fit
t0 = time.perf_counter()
split = load_split(sys.argv[1])
loaded = time.perf_counter() - t0
# sparse_adam takes no weight decay (it refuses the lab's); every other optimizer keeps fit's default.
no_decay = {"weight_decay": 0.0} if sys.argv[2] == "sparse_adam" else {}
result = fit(split, model="mf", epochs=1, device="cpu", optimizer=sys.argv[2], batch_size=int(sys.argv[3]),
             **no_decay)
epoch = result.epochs[0]
print(json.dumps({"load": loaded, "epoch": epoch.seconds, "test_rmse": epoch.test_rmse,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _child(code: str, *args: str, cache: Path) -> dict[str, float]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"child failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


FIGURES = {  # key: (label, unit), in the table's order
    "read": ("read (parse the CSV)", "s"),
    "remap": ("remap", "s"),
    "split": ("split (the lab's 80/20)", "s"),
    "cold": ("load + remap + split, no cache", "s"),
    "store": ("then writing the cache", "s"),
    "cold_rss": ("peak RSS of that process", "GiB"),
    "cached_load": ("load from the cache", "s"),
    "cached": ("load from the cache + split", "s"),
    "mf_load": ("load + split + cache write in the MF process", "s"),
    "epoch": ("MF epoch", "s"),
    "rss": ("peak RSS, cold load + split + 1 MF epoch", "GiB"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "dmf-bench-big",
                        help="where the CSV is generated once and kept (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="take every figure this many times")
    parser.add_argument("--optimizer", default="adam", help="the MF run's optimizer (default: adam)")
    parser.add_argument("--batch-size", type=int, default=512, help="the MF run's batch size (default: 512)")
    parser.add_argument("--no-train", action="store_true", help="only the load figures")
    args = parser.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    csv = args.dir / "ratings.csv"
    if not csv.exists():
        t0 = time.perf_counter()
        generate(csv)
        print(f"generated {csv} ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    csv.read_bytes()  # into the page cache, so that the first cold load does not also time the disk
    print(f"{describe()}; {csv} ({csv.stat().st_size / 1e6:.0f} MB)")
    print(f"{dt.date.today()}: bench/bench_big.py --repeat {args.repeat} --optimizer {args.optimizer} "
          f"--batch-size {args.batch_size}{' --no-train' if args.no_train else ''}")

    figures: dict[str, list[float]] = {key: [] for key in FIGURES}
    rmse = float("nan")
    for attempt in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory(prefix="cache-", dir=args.dir) as cache:
            cold = _child(_COLD, str(csv), cache=Path(cache))
            cached = _child(_CACHED, str(csv), cache=Path(cache))
            for key in ("read", "remap", "split", "store"):
                figures[key].append(cold[key])
            figures["cold"].append(cold["seconds"])
            figures["cold_rss"].append(cold["peak_rss"] / 2**30)
            figures["cached_load"].append(cached["load"])
            figures["cached"].append(cached["seconds"])
            line = f"try {attempt}: cold {cold['seconds']:.2f} s, cached {cached['seconds']:.2f} s"
        if not args.no_train:
            # The first run on a new file: a cold load, which writes the cache, in the measured process.
            with tempfile.TemporaryDirectory(prefix="cache-", dir=args.dir) as cold_cache:
                run = _child(_TRAIN, str(csv), args.optimizer, str(args.batch_size), cache=Path(cold_cache))
            figures["epoch"].append(run["epoch"])
            figures["rss"].append(run["peak_rss"] / 2**30)
            figures["mf_load"].append(run["load"])
            rmse = run["test_rmse"]
            line += f", MF peak {figures['rss'][-1]:.2f} GiB, epoch {run['epoch']:.1f} s"
        print(f"{line} (load {os.getloadavg()[0]:.2f})", flush=True)
    print(f"split: {int(cold['train']):,} train / {int(cold['test']):,} test rows")
    rows = [(label, f"{min(figures[key]):.2f} {unit}", f"{min(figures[key]):.2f}-{max(figures[key]):.2f}",
             str(len(figures[key]))) for key, (label, unit) in FIGURES.items() if figures[key]]
    print_table(("figure", "best", "range", "tries"), rows)
    if not args.no_train:
        print(f"MF ({args.optimizer}, batch {args.batch_size}) test RMSE after 1 epoch: {rmse:.4f}")


if __name__ == "__main__":
    main()
