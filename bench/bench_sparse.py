"""An MF epoch over 20M ratings (issue 15): where its time goes, and the lazy alternative.

    .venv/bin/python bench/bench_sparse.py --parts                 # a default MF epoch at ML-25M's shape, in parts
    .venv/bin/python bench/bench_sparse.py --compare --epochs 3    # adam vs sparse_adam x batch sizes, at that shape
    .venv/bin/python bench/bench_sparse.py --compare --data ml-100k --epochs 20

The data: an in-memory dataset of ML-25M's shape (162,541 users, 59,047 items, 25,000,095 ratings, so
20,000,076 training ratings in the lab's split), drawn with numpy (`big_dataset`): long-tailed user
activity and item popularity, half-star ratings from a rank-5 taste with user and item biases and
noise. It is not MovieLens, but its shape and sparsity are, which is what the cost of a step depends
on. --ratings makes a smaller one of the same catalogue (for a quick look); --data ml-100k takes the
real ML-100K (/work/shared/data/ml-100k/u.data, or $ML100K).

--parts: a default MF run's epoch (k 10, Adam, batch 512, one thread, as fit trains it on CPU)
split into what it does: dealing the shuffled batches, each step's gradients and its Adam update
(each timed within every one of --steps steps on real batches, multiplied out to the epoch's), the evaluation on
the test part, and the final ranking fit does once a run ends; then the same with sparse_adam, through fit's
`LazyHandStep` and through autograd with torch.optim.SparseAdam (as sparse_adam trained before it);
and, with --epoch, one whole fit() epoch of adam and of sparse_adam.

--compare: fit() for each optimizer (adam, sparse_adam) and batch size (--batch-sizes, at --lr, or
with --lr-scaling sqrt at --lr x sqrt(batch / 512)) over --epochs epochs on the lab's split with a
validation part (--val, carved from train): each run's seconds per epoch (training and evaluation;
the final ranking is skipped, being the same for all and timed by --parts) and its best epoch by
validation RMSE, with that epoch's test RMSE. --model lab is the lab's MF (fit's defaults: k 10,
Adam's weight decay 1e-5, which sparse_adam does not take: it would decay only the rows it moves);
--model mf-preset the `mf` preset's biased MF (k 128, init std 0.01, --reg 0.1, clipped, no weight
decay for either), which is what to train on a large catalogue.

CPU times on a shared machine vary by +-30%: the figures print with the load average, and the
commands for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from bench.machine import describe, print_table
from engine import trainer
from engine.checkpoint import RunData
from engine.formats import read_ratings
from engine.models import PairModel, build_model
from engine.ranking import ranking_metrics
from engine.remap import Dataset, remap
from engine.scoring import user_scorer
from engine.split import Split, split_dataset
from engine.steps import HandStep, LazyHandStep, SparseAdam
from engine.trainer import fit, intra_op_threads
from store.presets import preset

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"
ML25M_SHAPE = (162_541, 59_047, 25_000_095)  # users, items, ratings
RANK = 5
CHUNK = 1 << 22  # rows drawn at a time, to keep the draw's temporaries small


def big_dataset(n_users: int, n_items: int, n_ratings: int, *, seed: int = 25) -> Dataset:
    """`n_ratings` ratings of `n_users` users and `n_items` items, as the module's docstring describes
    (pairs may repeat, and the least popular items may go unrated); the same arrays for the same
    arguments."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = rng.lognormal(0.0, 1.6, n_items)
    taste_users = rng.normal(0.0, 0.5, (n_users, RANK)).astype(np.float32)
    taste_items = rng.normal(0.0, 0.5, (n_items, RANK)).astype(np.float32)
    bias_users = rng.normal(0.0, 0.4, n_users).astype(np.float32)
    bias_items = (0.3 * np.log(popularity / popularity.mean()) + rng.normal(0.0, 0.3, n_items)).astype(np.float32)
    users = np.empty(n_ratings, dtype=np.int64)
    items = np.empty(n_ratings, dtype=np.int64)
    ratings = np.empty(n_ratings, dtype=np.float32)
    user_cdf, item_cdf = np.cumsum(activity / activity.sum()), np.cumsum(popularity / popularity.sum())
    for start in range(0, n_ratings, CHUNK):
        end = min(start + CHUNK, n_ratings)
        u = np.minimum(np.searchsorted(user_cdf, rng.random(end - start)), n_users - 1)
        i = np.minimum(np.searchsorted(item_cdf, rng.random(end - start)), n_items - 1)
        score = 3.5 + bias_users[u] + bias_items[i] + np.einsum("rk,rk->r", taste_users[u], taste_items[i])
        score += rng.normal(0.0, 0.8, end - start).astype(np.float32)
        users[start:end], items[start:end] = u, i
        ratings[start:end] = np.clip(np.round(score * 2) / 2, 0.5, 5.0)
    return Dataset(name=f"ml-25m-shape-{n_ratings}", users=users, items=items, ratings=ratings,
                   user_ids=np.arange(1, n_users + 1, dtype=np.int64),
                   item_ids=np.arange(1, n_items + 1, dtype=np.int64))


def load(args: argparse.Namespace, val: float = 0.0) -> Split:
    if args.data == "ml-100k":
        path = Path(os.environ.get("ML100K", ML100K))
        return split_dataset(remap(read_ratings(path), "ml-100k"), val_size=val)
    n_users, n_items, n_ratings = ML25M_SHAPE
    started = time.perf_counter()
    ds = big_dataset(n_users, n_items, args.ratings or n_ratings)
    split = split_dataset(ds, val_size=val)
    print(f"dataset {ds.name}: {ds.n_users:,} users, {ds.n_items:,} items, {len(split.train):,} train / "
          f"{len(split.val):,} val / {len(split.test):,} test, drawn and split in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    return split


def tensors(part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    users, items, ratings = part
    return torch.as_tensor(users), torch.as_tensor(items), torch.as_tensor(ratings)


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


# --- where an epoch's time goes ----------------------------------------------------------------------

STEPS = ("adam", "sparse_adam", "sparse_adam (autograd)")  # the steps --parts splits


def step_parts(split: Split, kind: str, steps: int, batch_size: int) -> tuple[float, float]:
    """Microseconds per step of a default MF run's step of `kind` (one of STEPS: fit's `HandStep` for
    adam, its `LazyHandStep` for sparse_adam, and the `EagerStep` with torch.optim.SparseAdam that
    sparse_adam took before): its gradients and its optimizer update, each timed around its own call
    within every step, over `steps` steps on the batches an epoch deals first (after as many again
    to warm up). Timed apart, an update repeated on one gradient is not what training does
    (bench_pack's --steps found Adam 30x slower on a gradient that had gone subnormal)."""
    ds = split.dataset
    torch.manual_seed(0)
    net = build_model("mf", ds.n_users, ds.n_items)
    assert isinstance(net, PairModel)
    sse = torch.zeros(1)
    users, items, ratings = tensors(split.part("train"))
    order = torch.randperm(len(users), generator=torch.Generator().manual_seed(0))[:2 * steps * batch_size]
    batches = list(zip(*(torch.split(t.index_select(0, order), batch_size) for t in (users, items, ratings))))
    gradients: Callable[..., object]
    update: Callable[[tuple[torch.Tensor, ...]], None]
    if kind == "adam":
        dense = HandStep([net], sse, lrs=[1e-3], weight_decays=[1e-5])
        gradients = dense.mse_grads

        def update(batch: tuple[torch.Tensor, ...]) -> None:
            for adam in dense.adams:
                adam.step()
    elif kind == "sparse_adam":
        lazy = LazyHandStep(net, sse, lr=1e-3)
        gradients = lazy.mse_grads

        def update(batch: tuple[torch.Tensor, ...]) -> None:
            lazy.users.step(torch.unique(batch[0]))
            lazy.items.step(torch.unique(batch[1]))
    else:
        optimizer = SparseAdam(net, lr=1e-3)

        def gradients(*batch: torch.Tensor) -> None:
            loss, _ = net.batch_loss(*batch)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)

        def update(batch: tuple[torch.Tensor, ...]) -> None:
            optimizer.step()
    grads_s = update_s = 0.0
    with torch.inference_mode(kind != "sparse_adam (autograd)"):
        for n, batch in enumerate(batches):
            started = time.perf_counter()
            gradients(*batch)
            middle = time.perf_counter()
            update(batch)
            if n >= steps:  # warmed up
                grads_s += middle - started
                update_s += time.perf_counter() - middle
    return grads_s / steps * 1e6, update_s / steps * 1e6


def parts(args: argparse.Namespace) -> int:
    split = load(args)
    ds = split.dataset
    train, test = tensors(split.part("train")), tensors(split.part("test"))
    n_batches = -(-len(train[0]) // args.batch_size)
    rows: list[list[str]] = []
    with intra_op_threads(1):  # as fit trains a pair model on CPU
        # Dealing the batches: one shuffle, the three columns gathered in its order, split.
        order_s = timed(lambda: torch.randperm(len(train[0])))
        order = torch.randperm(len(train[0]))
        deal_s = order_s + timed(lambda: [torch.split(t.index_select(0, order), args.batch_size) for t in train])
        for kind in STEPS:
            grads, update = step_parts(split, kind, args.steps, args.batch_size)
            whole = grads + update
            print(f"{kind}: step {whole:.0f} us, gradients {grads:.0f} us, update {update:.0f} us", flush=True)
            rows.append([kind, f"{whole:.0f}", f"{grads:.0f}", f"{update:.0f}", f"{whole * n_batches / 1e6:.1f}",
                         f"{grads * n_batches / 1e6:.1f}", f"{update * n_batches / 1e6:.1f}"])
        torch.manual_seed(0)
        net = build_model("mf", ds.n_users, ds.n_items).eval()
        evaluate_s = timed(lambda: trainer._rmse(net, *test))
        known = RunData.from_split(split).known
        rank_s = timed(lambda: ranking_metrics(user_scorer(net), known, test, ds.n_items))
    epochs = []
    if args.epoch:
        for optimizer, weight_decay in (("adam", 1e-5), ("sparse_adam", 0.0)):
            with mock.patch.object(trainer, "ranking_metrics", lambda *a: None):  # timed on its own above
                result = fit(split, model="mf", epochs=1, optimizer=optimizer, weight_decay=weight_decay,
                             batch_size=args.batch_size, device="cpu")
            epochs.append([optimizer, f"{result.epochs[0].seconds:.1f}", f"{result.epochs[0].test_rmse:.4f}"])
            print(f"{optimizer}: fit() epoch {epochs[-1][1]} s", flush=True)
    print()
    print(f"Machine: {describe()}, torch {torch.__version__}; {dt.date.today().isoformat()}")
    print(f"Command: python bench/bench_sparse.py {' '.join(sys.argv[1:])}")
    print()
    print(f"{len(train[0]):,} training ratings, batch {args.batch_size}: {n_batches:,} steps an epoch; "
          f"MF k=10, {ds.n_users + ds.n_items:,} embedding rows ({(ds.n_users + ds.n_items) * 10:,} parameters).")
    print()
    print_table(["optimizer", "step us", "gradients us", "update us", "steps s/epoch", "gradients s/epoch",
                 "update s/epoch"], rows)
    print()
    print_table(["part", "seconds"], [["dealing the epoch's batches (shuffle, gather, split)", f"{deal_s:.2f}"],
                                      ["evaluation on the test part (each epoch)", f"{evaluate_s:.2f}"],
                                      ["final ranking (once a run ends)", f"{rank_s:.2f}"]])
    if epochs:
        print()
        print_table(["optimizer", "fit() epoch s (evaluation included)", "test RMSE"], epochs)
    return 0


# --- dense against lazy, and larger batches ----------------------------------------------------------

def model_options(name: str) -> tuple[dict[str, Any], float]:
    """fit()'s model options of --model, and Adam's weight decay: the lab's MF (fit's defaults), or
    the `mf` preset's biased MF (k 128, per-rating L2, no weight decay) less what --compare sets."""
    if name == "lab":
        return {}, 1e-5
    values = dict(preset("mf").values)
    for name in ("model", "batch_size", "epochs", "val_size", "patience", "lr"):
        values.pop(name, None)
    return values, values.pop("weight_decay")


def compare(args: argparse.Namespace) -> int:
    split = load(args, val=args.val)
    options, adam_decay = model_options(args.model)
    if args.k:
        options["k"] = args.k
    rows = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        for optimizer, weight_decay in (("adam", adam_decay), ("sparse_adam", 0.0)):
            if optimizer not in args.optimizers.split(",") or f"{optimizer}:{batch_size}" in args.skip.split(","):
                continue
            # Adam's steps are normalised, so a batch b times larger takes b times fewer steps of about
            # the same size; --lr-scaling sqrt gives them sqrt(b) times the rate, a common compromise.
            lr = args.lr * (batch_size / 512) ** 0.5 if args.lr_scaling == "sqrt" else args.lr
            with mock.patch.object(trainer, "ranking_metrics", lambda *a: None):  # the same for every run
                result = fit(split, model="mf", epochs=args.epochs, optimizer=optimizer, weight_decay=weight_decay,
                             lr=lr, batch_size=batch_size, device="cpu", patience=args.patience, **options)
            best = result.epochs[result.best_epoch - 1]
            seconds = statistics.mean(e.seconds for e in result.epochs)
            rows.append([str(batch_size), f"{lr:.2g}", optimizer, f"{seconds:.2f}", str(best.epoch),
                         f"{best.val_rmse:.4f}" if best.val_rmse is not None else "-", f"{best.test_rmse:.4f}",
                         " ".join(f"{e.test_rmse:.4f}" for e in result.epochs)])
            print("| " + " | ".join(rows[-1]) + " |", flush=True)
    print()
    print(f"Machine: {describe()}, torch {torch.__version__}; {dt.date.today().isoformat()}")
    print(f"Command: python bench/bench_sparse.py {' '.join(sys.argv[1:])}")
    print()
    print_table(["batch", "lr", "optimizer", "s/epoch", "best epoch (val)", "val RMSE", "test RMSE",
                 "test RMSE by epoch"], rows)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--parts", action="store_true", help="a default MF epoch, in parts")
    mode.add_argument("--compare", action="store_true", help="adam vs sparse_adam x batch sizes")
    parser.add_argument("--data", choices=("ml-25m-shape", "ml-100k"), default="ml-25m-shape")
    parser.add_argument("--ratings", type=int, default=0, help="ratings of the ML-25M-shaped data (default 25M)")
    parser.add_argument("--steps", type=int, default=2000, help="steps timed per figure, --parts")
    parser.add_argument("--batch-size", type=int, default=512, help="--parts")
    parser.add_argument("--epoch", action="store_true", help="--parts: also one whole fit() epoch of each")
    parser.add_argument("--batch-sizes", default="512,1024,4096,16384", help="--compare")
    parser.add_argument("--epochs", type=int, default=3, help="--compare")
    parser.add_argument("--model", choices=("lab", "mf-preset"), default="lab",
                        help="--compare: the lab's MF (k 10), or the mf preset's biased MF (k 128, --reg 0.1)")
    parser.add_argument("--optimizers", default="adam,sparse_adam", help="--compare")
    parser.add_argument("--skip", default="", help="--compare: settings not to run, e.g. adam:1024,adam:512")
    parser.add_argument("--k", type=int, default=0, help="--compare: the embeddings' size (default: --model's)")
    parser.add_argument("--lr", type=float, default=1e-3, help="--compare (fit's default 1e-3; the mf preset's 2e-3)")
    parser.add_argument("--patience", type=int, default=0, help="--compare: early stopping (the mf preset's 5)")
    parser.add_argument("--lr-scaling", choices=("none", "sqrt"), default="none",
                        help="--compare: the rate of batch b is --lr x sqrt(b / 512) with sqrt")
    parser.add_argument("--val", type=float, default=0.1, help="--compare: validation fraction of train")
    args = parser.parse_args()
    return parts(args) if args.parts else compare(args)


if __name__ == "__main__":
    sys.exit(main())
