"""Using a model (issue 13): top-10 latency, similar items, ranking metrics, and what they add to RMSE.

    .venv/bin/python bench/bench_recommend.py                        # both tables, about 10 min on 2 CPUs
    .venv/bin/python bench/bench_recommend.py --models mf --epochs 1 --presets mf     # a quick look

Latency table (`--data`, default synthetic-1m: the ML-1M shape, offline): each model trains `--epochs`
epochs of its preset (store/presets.py; GLocal-K pre-trains for half of them so that its checkpoint is
fine-tuning) through engine.trainer.fit on the CPU with a checkpoint, on the lab's split (test 20 %,
split seed 42) with the preset's validation part. Then, as `dmf-tui recommend` and `similar` would:
the checkpoint's size, TrainedModel.load (median of 3), the first top-10 for a user after loading
(it builds the scorer: the per-item precomputation), the median and the 95th percentile of `--calls`
more over random users, the same for `similar` where the model has item vectors, and the ranking
metrics over every test user from the loaded model. That last one is the very call fit() makes when
training ends (user_scorer + ranking_metrics on the best epoch's weights), timed here under fit's
thread setting (one thread for a pair model, every thread for a row model): it is what fit adds, and
the metrics must equal fit's, which the table checks.

Quality table (real ML-100K from DMF_DATA_DIR, skipped with the reason when absent): each preset of
`--presets` trained as measured (its own epochs and patience), the best epoch chosen by validation
RMSE; its test RMSE beside the Precision, Recall and NDCG at 10 of that epoch's model (fit's), and two
baselines ranked the same way: "most popular" (an item's score is its number of training ratings)
and "random" (uniform scores, seed 0).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from bench.machine import describe, print_table
from engine.checkpoint import UserRatings
from engine.datasets import dataset_path, load_split
from engine.models import ROW_MODELS
from engine.ranking import Ranking, ranking_metrics
from engine.recommend import TrainedModel
from engine.scoring import Scorer, item_vectors, user_scorer
from engine.split import Split
from engine.trainer import fit
from store import presets
from store.params import RunParams

# Where bench_presets.py finds ML-100K too: the data folder beside the checkout, unless DMF_DATA_DIR says.
DATA_DIR = Path(os.environ.get("DMF_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
PRESET_OF = {"mf": "mf", "deepmf": "deepmf", "gmf": "gmf", "neumf": "neumf", "autorec": "autorec",
             "glocal_k": "glocal-k"}
# All but DeepMF's 20 s and GLocal-K's 27 s train on ML-100K in about 10 s each on this machine.
QUALITY_PRESETS = "lab,lab-deepmf,mf,deepmf,gmf,neumf,autorec,glocal-k"
LOADS = 3  # TrainedModel.load is timed this many times; the median is reported


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic-1m", help="the latency table's data (default synthetic-1m)")
    parser.add_argument("--models", default=",".join(PRESET_OF), help=f"comma list of {', '.join(PRESET_OF)}")
    parser.add_argument("--epochs", type=int, default=2, help="epochs each model trains for the latency table")
    parser.add_argument("--calls", type=int, default=200, help="timed top-10 (and similar) calls after the first")
    parser.add_argument("--presets", default=QUALITY_PRESETS,
                        help="the quality table's presets on ML-100K (empty: no quality table)")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in PRESET_OF]
    if unknown:
        parser.error(f"unknown model {', '.join(unknown)}: choose from {', '.join(PRESET_OF)}")
    quality = [presets.preset(name) for name in args.presets.split(",") if name]
    if args.epochs <= 0 or args.calls <= 0:
        parser.error("--epochs and --calls must be at least 1")

    print(f"Machine: {describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    if models:
        latency_table(args.data, models, args.epochs, args.calls)
    if quality:
        quality_table(quality)
    print(f"\nload at the end: {os.getloadavg()[0]:.2f}")
    return 0


def latency_table(data: str, models: list[str], epochs: int, calls: int) -> None:
    split = load_split(data, val_size=0.1)
    ds = split.dataset
    print(f"\n{data}: {ds.n_users:,} users, {ds.n_items:,} items, {len(split.train):,} train / "
          f"{len(split.val):,} val / {len(split.test):,} test ratings; {epochs} epochs a model", flush=True)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp:
        rows = [_latency_row(name, split, epochs, calls, Path(tmp) / f"{name}.pt") for name in models]
    print(f"\nms unless said; top-10 and similar: the first call after loading, then the median and 95th "
          f"percentile of {calls} calls over random users (items), with torch's {threads} threads and with "
          "one. Ranking: seconds, every judged test user, fit's thread setting; fit outside epochs: fit()'s "
          "seconds less its epochs' (set-up, checkpoint saves and this same ranking of the best epoch).\n")
    print_table(("model", "checkpoint MB", "load", "top-10 first", f"top-10 median / p95, {threads} thr.",
                 "top-10 median / p95, 1 thr.", f"similar first, median {threads} / 1 thr.", "ranking s",
                 "fit outside epochs s", "P@10",
                 "R@10", "NDCG@10", "users judged", "= fit's"), rows)


def _latency_row(name: str, split: Split, epochs: int, calls: int, path: Path) -> tuple[str, ...]:
    """Train `name` with a checkpoint at `path`, use it as the commands would, and time each use."""
    data = split.dataset.name
    params = presets.preset(PRESET_OF[name]).apply(RunParams(data=data, device="cpu"))
    args = params.engine_args("fit") | {"device": "cpu", "epochs": epochs, "patience": 0}
    if name == "glocal_k":
        args["pretrain_epochs"] = epochs // 2
    started = time.perf_counter()
    result = fit(split, **args, checkpoint_path=path)
    trained = time.perf_counter() - started
    # What fit() spent outside its epochs: setting up, the checkpoint's saves and the final ranking.
    beyond_epochs = trained - sum(epoch.seconds for epoch in result.epochs)

    loads = []
    for _ in range(LOADS):
        started = time.perf_counter()
        model = TrainedModel.load(path, name=name)
        loads.append(time.perf_counter() - started)
    rng = np.random.default_rng(0)
    users = rng.choice(model.data.user_ids.numpy(), size=2 * calls + 1)
    # The first call builds the scorer; then the same number of calls with torch's threads and with one.
    times = _timed(model.recommend, users[:calls + 1])
    with _threads(1):
        one_thread = _timed(model.recommend, users[calls + 1:])
    top10 = (_ms(times[0]), _spread(times[1:]), _spread(one_thread))
    if item_vectors(model.net) is not None:
        items = rng.choice(model.data.item_ids.numpy(), size=2 * calls + 1)
        similar_times = _timed(model.similar, items[:calls + 1])
        with _threads(1):
            similar_one = _timed(model.similar, items[calls + 1:])
        similar = (f"{_ms(similar_times[0])}, {_ms(statistics.median(similar_times[1:]))} / "
                   f"{_ms(statistics.median(similar_one))}")
    else:
        similar = "no item vectors"

    # The call fit() makes once training ends, under its thread setting: the scorer built from the
    # weights, then every judged user.
    test = _tensors(split)
    with _threads(None if name in ROW_MODELS else 1):
        started = time.perf_counter()
        ranking = ranking_metrics(user_scorer(model.net), model.data.known, test, split.dataset.n_items)
        ranked = time.perf_counter() - started
    assert ranking is not None
    same = result.ranking is not None and _close(ranking, result.ranking)
    print(f"{name}: trained {trained:.1f} s (best epoch {result.best_epoch}, test RMSE {result.best_test_rmse:.4f}); "
          f"top-10 median {top10[1]} ms; ranking {ranked:.2f} s, P@10 {ranking.precision:.4f}, fit's "
          f"{'the same' if same else result.ranking}; peak RSS so far {_peak_rss_gb():.1f} GB", flush=True)
    return (name, f"{path.stat().st_size / 1e6:.1f}", _ms(statistics.median(loads)), *top10, similar,
            f"**{ranked:.2f}**", f"{beyond_epochs:.2f}", f"{ranking.precision:.4f}", f"{ranking.recall:.4f}",
            f"{ranking.ndcg:.4f}", f"{ranking.users:,}", "yes" if same else "NO")


def quality_table(chosen: list[presets.Preset]) -> None:
    data = "ml-100k"
    if not dataset_path(data, DATA_DIR).exists():
        print(f"\nQuality table skipped: {dataset_path(data, DATA_DIR)} is absent "
              "(set DMF_DATA_DIR to the folder holding ml-100k/u.data)")
        return
    splits: dict[tuple[Any, ...], Split] = {}
    rows = []
    for preset in chosen:
        params = preset.apply(RunParams(data=data, device="cpu"))
        split_args = params.engine_args("split")
        key = tuple(sorted(split_args.items()))
        if key not in splits:
            splits[key] = load_split(data, data_dir=DATA_DIR, **split_args)
        started = time.perf_counter()
        result = fit(splits[key], **params.engine_args("fit") | {"device": "cpu"})
        seconds = time.perf_counter() - started
        best = result.epochs[result.best_epoch - 1]
        print(f"{preset.name}: test RMSE {best.test_rmse:.4f} at epoch {best.epoch} of {len(result.epochs)}, "
              f"{seconds:.1f} s", flush=True)
        rows.append(_quality_row(preset.name, params.model, f"{best.epoch}/{len(result.epochs)}",
                                 f"{best.test_rmse:.4f}", result.ranking, seconds))
    # The baselines on the presets' split (they all hold out the same validation part).
    split = next(iter(splits.values()))
    known, test, n_items = UserRatings.from_split(split), _tensors(split), split.dataset.n_items
    train_items = torch.from_numpy(split.part("train")[1].astype(np.int64))
    popularity = torch.bincount(train_items, minlength=n_items).float()
    generator = torch.Generator().manual_seed(0)
    baselines: dict[str, Scorer] = {
        "most popular": lambda users: popularity.repeat(len(users), 1),
        "random (seed 0)": lambda users: torch.rand(len(users), n_items, generator=generator),
    }
    for name, score in baselines.items():
        started = time.perf_counter()
        ranking = ranking_metrics(score, known, test, n_items)
        rows.append(_quality_row(name, "", "", "", ranking, time.perf_counter() - started))
    print(f"\n{data}, the lab's split (test 20 %, split seed 42), validation 10 % of the training ratings; each "
          "preset's own epochs and patience; ranking of the best epoch's model (chosen by validation RMSE)\n")
    print_table(("preset", "model", "best epoch / run", "test RMSE", "P@10", "R@10", "NDCG@10", "users judged",
                 "seconds"), rows)


def _quality_row(name: str, model: str, epochs: str, rmse: str, ranking: Ranking | None,
                 seconds: float) -> tuple[str, ...]:
    if ranking is None:
        return (name, model, epochs, rmse, "-", "-", "-", "-", f"{seconds:.1f}")
    return (name, model, epochs, rmse, f"{ranking.precision:.4f}", f"{ranking.recall:.4f}",
            f"{ranking.ndcg:.4f}", f"{ranking.users:,}", f"{seconds:.1f}")


def _tensors(split: Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    users, items, ratings = split.part("test")
    return (torch.as_tensor(users, dtype=torch.long), torch.as_tensor(items, dtype=torch.long),
            torch.as_tensor(ratings, dtype=torch.float32))


def _timed(top: Callable[[int, int], object], ids: np.ndarray) -> list[float]:
    """Seconds of each top-10 call, for the raw ids `ids` in turn."""
    times = []
    for raw in ids.tolist():
        started = time.perf_counter()
        top(raw, 10)
        times.append(time.perf_counter() - started)
    return times


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads (None: as they are)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _spread(seconds: list[float]) -> str:
    return f"**{_ms(statistics.median(seconds))}** / {_ms(_percentile(seconds, 95))}"


def _percentile(seconds: list[float], p: int) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _close(a: Ranking, b: Ranking) -> bool:
    return a.users == b.users and all(math.isclose(x, y, abs_tol=1e-6) for x, y in
                                      ((a.precision, b.precision), (a.recall, b.recall), (a.ndcg, b.ndcg)))


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


if __name__ == "__main__":
    sys.exit(main())
