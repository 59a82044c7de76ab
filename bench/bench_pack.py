"""Packed runs (issue 14): seconds per run of a grid trained one run at a time vs in packs.

    .venv/bin/python bench/bench_pack.py             # engine level: fit() vs fit_pack(), MF and DeepMF
    .venv/bin/python bench/bench_pack.py --worker    # end to end: `dmf-tui worker --pack N` on a temp db
    .venv/bin/python bench/bench_pack.py --steps     # the CPU step alone: where a packed step's time goes

The grid is the issue's: lr 1e-3, 3e-3, 1e-2, 3e-2 x weight decay 0, 1e-5 (8 runs, seed 0) on
synthetic-1m (ML-1M's shape, the lab's split), 3 epochs each, CPU; 16 runs are that grid x seeds 0, 1.

Engine level, for each model, each setting right after the same runs alone (engine.trainer.fit, one
after another; fit trains a pair model alone on one thread), since this machine's speed drifts by up
to a third within minutes and a speed-up is only read between figures taken together:
  - packs: the runs split into packs of 2, 4, 8 (the 8-run grid) and 16 (the 16 runs), each pack one
    fit_pack call (on CPU a pack, like a run alone, trains on one thread);
  - autograd: a pack of 8 through PackedStep (torch.func.vmap + StackedAdam) rather than the
    hand-written HandStep, by making engine.steps.has_hand_grads say no;
  - ranking: one engine.ranking.ranking_metrics call (the ranking fit does once per run when the run
    ends: a pack ranks its runs one by one) on one thread, so the reader sees its share of a run.
Every packed run's test RMSE, every epoch, is checked against its run alone: the table prints the
largest difference (the issue asks for 1e-5). In brackets, the part of a run's seconds spent in its
epochs (training and evaluating; a pack's epoch counted as its training and one run's evaluation, the
longest, see `epoch_seconds`); the rest is set-up, the other runs' evaluations and the final rankings.

Worker level (--worker): for each pack size N, a fresh database gets the grid queued with `dmf-tui add`
and `dmf-tui worker --exit-when-empty --pack N` trains it in a subprocess, right after `--pack 1` did
the same on another fresh database; the figure is the subprocess's wall time per run (start-up,
dataset load and checkpoints included), with in brackets the span from the first run's start to the
last run's end as the store recorded them, per run. `--pack 1 --slots 2`, two runs alone at a time,
is the way to use both cores.

Steps (--steps): engine.steps.HandStep alone on random batches of synthetic-1m, for packs of 1 and 8
on 1 and 2 threads: microseconds per step, split into the gradients of all runs (one set of kernels)
and Adam (its fused kernel once per run, over every parameter: dense Adam moves every row every step).

With --repeat N every setting and its baseline are taken N times in turn; the tables show the median
seconds and the median speed-up of the pairs with their range.

The machine is shared: each figure is printed with the load average and with how many cores other
processes kept busy while it was taken (from /proc/stat, less this process and its children); a figure
taken while others used more than --busy cores is taken again (up to --tries times), and the calmest
try is kept. --contend makes the sharing deliberate: a spinning child process holds one core during
every figure (counted as this process's CPU, not others').
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from bench.machine import describe, print_table
from engine.checkpoint import RunData
from engine.datasets import load_dataset
from engine.models import build_model
from engine.ranking import ranking_metrics
from engine.scoring import user_scorer
from engine.split import Split, split_dataset
from engine.steps import HandStep
from engine.trainer import TrainResult, fit, fit_pack, intra_op_threads
from store.db import open_store

LRS = (1e-3, 3e-3, 1e-2, 3e-2)
WEIGHT_DECAYS = (0.0, 1e-5)
T = TypeVar("T")


def grid(runs: int) -> list[tuple[float, float, int]]:
    """(lr, weight decay, seed) of the first `runs` runs of the grid x seeds 0, 1, ..."""
    cells = [(lr, wd, seed) for seed in range(math.ceil(runs / (len(LRS) * len(WEIGHT_DECAYS))))
             for lr in LRS for wd in WEIGHT_DECAYS]
    return cells[:runs]


# --- how busy the machine was ------------------------------------------------------------------------

def _busy_ticks() -> int:
    """CPU ticks all cores have spent on anything but idling (stolen ones included), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal


def _own_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


@dataclass
class Measured:
    seconds: float
    others: float  # cores other processes kept busy meanwhile, on average
    load: float  # the 1-minute load average at the end (this process included)

    @property
    def note(self) -> str:
        return f"others {self.others:.2f} cores, load {self.load:.2f}"


@contextlib.contextmanager
def measuring() -> Iterator[list[Measured]]:
    """Times the block; the list it yields holds its Measured once the block is done."""
    out: list[Measured] = []
    ticks, own, start = _busy_ticks(), _own_seconds(), time.perf_counter()
    try:
        yield out
    finally:
        wall = time.perf_counter() - start
        busy = (_busy_ticks() - ticks) / os.sysconf("SC_CLK_TCK")
        others = max(0.0, busy - (_own_seconds() - own)) / wall if wall > 0 else 0.0
        out.append(Measured(wall, others, os.getloadavg()[0]))


@contextlib.contextmanager
def spinning(on: bool) -> Iterator[None]:
    """With `on`, a child process keeps one core busy meanwhile, as another engineer's tests would. It
    is waited for before `measuring` ends, so its CPU counts as this process's, not as others'."""
    if not on:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def calmest(label: str, work: Callable[[], T], *, busy: float, tries: int, contend: bool) -> tuple[Measured, T]:
    """Run `work` once, again (up to `tries` in all) while others kept more than `busy` cores busy;
    the calmest try's figure and result. Each try is printed as it ends. With `contend`, a spinning
    child process holds one core while `work` runs."""
    best: tuple[Measured, T] | None = None
    for attempt in range(1, tries + 1):
        with measuring() as figure, spinning(contend):
            result = work()
        (m,) = figure
        print(f"  {label}: {m.seconds:.2f} s ({m.note}){' try ' + str(attempt) if attempt > 1 else ''}", flush=True)
        if best is None or m.others < best[0].others:
            best = (m, result)
        if m.others <= busy:
            break
    assert best is not None
    return best


# --- engine level ------------------------------------------------------------------------------------

@dataclass
class Row:
    """One pack setting, each time beside the same runs trained alone just before it: the machine's
    speed drifts by up to a third within minutes, so a speed-up is only read between figures taken
    together. One entry per repetition in each list."""

    model: str
    runs: int
    pack: int
    step: str
    solo: list[Measured]  # the runs one after another through fit
    solo_in_epochs: list[float]  # seconds of that spent in epochs (training and evaluation), the rest outside
    figure: list[Measured]  # the runs in packs through fit_pack
    in_epochs: list[float]
    max_diff: float  # largest |test RMSE - solo's| over every epoch of every run

    def cells(self) -> list[str]:
        def per_run(values: Iterable[float]) -> str:
            return f"{statistics.median(values) / self.runs:.2f}"

        return [self.model, str(self.runs), str(self.pack), self.step,
                f"{per_run(m.seconds for m in self.solo)} ({per_run(self.solo_in_epochs)})",
                f"{per_run(m.seconds for m in self.figure)} ({per_run(self.in_epochs)})",
                speed_up_cell([a.seconds / b.seconds for a, b in zip(self.solo, self.figure)]),
                f"{self.max_diff:.1e}", f"{max(m.others for m in [*self.solo, *self.figure]):.2f}",
                f"{self.figure[-1].load:.2f}"]


def speed_up_cell(ratios: Sequence[float]) -> str:
    """The median of the pairs' speed-ups, and their range when there are several."""
    text = f"**{statistics.median(ratios):.2f}x**"
    return text + (f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else "")


def epoch_seconds(pack: Sequence[TrainResult | Exception]) -> float:
    """The seconds a pack spent in its epochs, each epoch counted as its longest run's: a run's epoch
    is the pack's training plus that run's own evaluation (fit_pack leaves the other runs'
    evaluations and rankings out of it), so the others' evaluations are not counted here."""
    results = [r for r in pack if isinstance(r, TrainResult)]
    return sum(max(r.epochs[e].seconds for r in results if len(r.epochs) > e)
               for e in range(max(len(r.epochs) for r in results)))


def run_kwargs(model: str, epochs: int, cell: tuple[float, float, int]) -> dict[str, Any]:
    lr, weight_decay, seed = cell
    return {"model": model, "epochs": epochs, "device": "cpu", "lr": lr, "weight_decay": weight_decay, "seed": seed}


def max_difference(packed: Sequence[TrainResult | Exception], solo: Sequence[TrainResult]) -> float:
    worst = 0.0
    for outcome, alone in zip(packed, solo):
        if isinstance(outcome, Exception):
            raise SystemExit(f"a packed run failed: {outcome!r}")
        if len(outcome.epochs) != len(alone.epochs):
            raise SystemExit(f"a packed run trained {len(outcome.epochs)} epochs, alone {len(alone.epochs)}")
        worst = max([worst, abs(outcome.best_test_rmse - alone.best_test_rmse),
                     *(abs(a.test_rmse - b.test_rmse) for a, b in zip(outcome.epochs, alone.epochs))])
    return worst


def ranking_seconds(split: Split, model: str) -> float:
    """One ranking_metrics call over the test part, as fit makes for each run once it ends (the
    weights do not change its cost: a fresh seed-0 model)."""
    torch.manual_seed(0)
    ds = split.dataset
    net = build_model(model, ds.n_users, ds.n_items, k=10, hidden=[10, 5])
    users, items, ratings = split.part("test")
    test = (torch.as_tensor(users, dtype=torch.long), torch.as_tensor(items, dtype=torch.long),
            torch.as_tensor(ratings, dtype=torch.float32))
    known = RunData.from_split(split).known
    with intra_op_threads(1):  # as fit ranks a pair model's runs
        started = time.perf_counter()
        ranking_metrics(user_scorer(net), known, test, ds.n_items)
        return time.perf_counter() - started


def measure_model(args: argparse.Namespace, split: Split, model: str, cells: Sequence[tuple[float, float, int]],
                  sizes: Sequence[int]) -> tuple[list[Row], list[str]]:
    """The engine-level rows of `model` and its line of the ranking table."""
    print(f"== {model}: each pack setting after the same runs alone", flush=True)
    kwargs = [run_kwargs(model, args.epochs, cell) for cell in cells]
    rows: list[Row] = []

    def packed(size: int, kind: str) -> None:
        runs = kwargs[:max(8, size)]
        packs = [runs[i:i + size] for i in range(0, len(runs), size)]
        row = Row(model, len(runs), size, kind, [], [], [], [], 0.0)
        for _ in range(args.repeat):
            solo_figure, solo = calmest(f"{model} {len(runs)} runs alone", lambda: [fit(split, **kw) for kw in runs],
                                        busy=args.busy, tries=args.tries, contend=args.contend)
            step = mock.patch("engine.steps.has_hand_grads", lambda net: False) if kind == "autograd" \
                else contextlib.nullcontext()
            with step:
                figure, by_pack = calmest(f"{model} {len(runs)} runs in packs of {size}, {kind}",
                                          lambda: [fit_pack(split, pack) for pack in packs],
                                          busy=args.busy, tries=args.tries, contend=args.contend)
            outcomes = [outcome for pack in by_pack for outcome in pack]
            row.solo.append(solo_figure)
            row.solo_in_epochs.append(sum(epoch_seconds([r]) for r in solo))
            row.figure.append(figure)
            row.in_epochs.append(sum(epoch_seconds(p) for p in by_pack))
            row.max_diff = max(row.max_diff, max_difference(outcomes, solo))
        rows.append(row)

    for size in sizes:
        packed(size, "hand")
    if args.autograd_pack:
        packed(args.autograd_pack, "autograd")

    solo_per_run = statistics.mean(m.seconds / row.runs for row in rows for m in row.solo)
    rank = ranking_seconds(split, model)
    print(f"  {model} ranking: {rank:.2f} s", flush=True)
    return rows, [model, f"{solo_per_run:.2f}", f"{rank:.2f} ({100 * rank / solo_per_run:.0f} %)"]


def engine_level(args: argparse.Namespace, split: Split) -> int:
    sizes = [int(s) for s in args.packs.split(",")]
    cells = grid(max([8, *sizes]))
    rows: list[Row] = []
    rank_rows = []
    for model in args.models.split(","):
        model_rows, rank_row = measure_model(args, split, model, cells, sizes)
        rows += model_rows
        rank_rows.append(rank_row)
    print()
    print(f"Machine: {describe()}, torch {torch.__version__}; {dt.date.today().isoformat()}")
    print(f"Command: python bench/bench_pack.py {' '.join(sys.argv[1:])}")
    print()
    print_table(["model", "runs", "pack", "step", "alone s/run (in epochs)", "packed s/run (in epochs)", "speed-up",
                 "max test RMSE diff", "others' cores", "load"], (row.cells() for row in rows))
    print()
    print_table(["model", "alone s/run (mean)", "final ranking s (% of a run alone)"], rank_rows)
    return 0


# --- the step alone ----------------------------------------------------------------------------------

WARM_UP = 50  # steps before each timing

def step_microseconds(split: Split, model: str, size: int, steps: int) -> tuple[float, float, float]:
    """Microseconds per step of a HandStep training `size` runs of `model`: the whole step, its
    gradients, its Adam updates (each timed on its own over `steps` calls, after WARM_UP).

    Each call gets the next batch of each run's own shuffled order, as in an epoch: a batch used
    again and again is fitted until its gradients are subnormal floats, which made Adam 30x slower."""
    ds = split.dataset
    nets = []
    for seed in range(size):
        torch.manual_seed(seed)
        nets.append(build_model(model, ds.n_users, ds.n_items, k=10, hidden=[10, 5]))
    step = HandStep(nets, torch.zeros(size), lrs=[1e-3] * size, weight_decays=[1e-5] * size)
    train = [t.long() for t in (torch.as_tensor(a) for a in split.part("train")[:2])]
    train.append(torch.as_tensor(split.part("train")[2]).float())
    calls = WARM_UP + steps
    shuffle = torch.Generator().manual_seed(0)
    epochs = math.ceil(calls * 512 / len(train[0]))  # of each run's order, one shuffle an epoch
    orders = torch.stack([torch.cat([torch.randperm(len(train[0]), generator=shuffle) for _ in range(epochs)])
                          [:calls * 512] for _ in range(size)])
    # [8, 512] for a pack, [512] for a run alone, as fit hands them to the step.
    batches = [[t[orders[:, i * 512:(i + 1) * 512]].squeeze(0) for t in train] for i in range(calls)]

    def adams(_: Sequence[torch.Tensor]) -> None:
        for adam in step.adams:
            adam.step()

    parts: list[Callable[[Sequence[torch.Tensor]], object]] = [lambda b: step(*b), lambda b: step.mse_grads(*b), adams]
    out = []
    with torch.inference_mode():
        for part in parts:
            for batch in batches[:WARM_UP]:
                part(batch)
            started = time.perf_counter()
            for batch in batches[WARM_UP:]:
                part(batch)
            out.append((time.perf_counter() - started) / steps * 1e6)
    return out[0], out[1], out[2]


def step_level(args: argparse.Namespace, split: Split) -> int:
    table = []
    for model in args.models.split(","):
        for n_threads in (int(t) for t in args.threads.split(",")):
            for size in (1, 8):
                with intra_op_threads(n_threads), measuring() as figure:
                    whole, grads, adam = step_microseconds(split, model, size, args.step_count)
                table.append([model, str(size), str(n_threads), f"{whole:.0f}", f"{grads:.0f}", f"{adam:.0f}",
                              f"**{whole / size:.0f}**", f"{adam / size:.0f}", f"{figure[0].others:.2f}",
                              f"{figure[0].load:.2f}"])
                print("| " + " | ".join(table[-1]) + " |", flush=True)
    print()
    print(f"Machine: {describe()}, torch {torch.__version__}; {dt.date.today().isoformat()}")
    print(f"Command: python bench/bench_pack.py {' '.join(sys.argv[1:])}")
    print()
    print_table(["model", "pack", "threads", "step us", "gradients us", "Adam us", "step us per run",
                 "Adam us per run", "others' cores", "load"], table)
    return 0


# --- worker level ------------------------------------------------------------------------------------

def dmf_tui() -> str:
    return str(Path(sys.executable).parent / "dmf-tui")


def worker_takes_pack() -> bool:
    shown = subprocess.run([dmf_tui(), "worker", "--help"], capture_output=True, text=True, check=True).stdout
    return "--pack" in shown


def queue_grid(db: str, model: str, epochs: int, runs: int) -> None:
    seeds = ",".join(str(s) for s in range(math.ceil(runs / (len(LRS) * len(WEIGHT_DECAYS)))))
    subprocess.run([dmf_tui(), "--db", db, "add", "--data", "synthetic-1m", "--model", model,
                    "--lr", ",".join(str(lr) for lr in LRS), "--weight-decay", ",".join(str(w) for w in WEIGHT_DECAYS),
                    "--seed", seeds, "--epochs", str(epochs), "--device", "cpu"],
                   check=True, capture_output=True, text=True)


@dataclass
class WorkerFigure:
    figure: Measured
    span: float  # first run's start to last run's end, as the store has them
    best: dict[tuple[float, float, int], float]  # each run's best test RMSE by (lr, weight decay, seed)
    packs: list[int]  # the pack sizes the runs trained in


def worker_run(model: str, epochs: int, runs: int, flags: Sequence[str]) -> WorkerFigure:
    """`runs` runs of the grid queued in a fresh database, then trained by `dmf-tui worker FLAGS`."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "runs.db")
        queue_grid(db, model, epochs, runs)
        with measuring() as figure:
            done = subprocess.run([dmf_tui(), "--db", db, "worker", "--exit-when-empty", "--poll", "0.2", *flags],
                                  capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"worker {' '.join(flags)} exited {done.returncode}: {done.stderr[-2000:]}")
        store = open_store(db)
        records = store.leaderboard()
        store.close()
    bad = [(r.id, r.status, r.error) for r in records if r.status != "done"]
    if bad or len(records) != runs:
        raise SystemExit(f"worker {' '.join(flags)}: {len(records)} runs, not all done: {bad}")
    starts = [r.started_at for r in records if r.started_at is not None]
    ends = [r.finished_at for r in records if r.finished_at is not None]
    best = {(r.params.lr, r.params.weight_decay, r.params.seed): float(r.best_test_rmse or math.nan) for r in records}
    return WorkerFigure(figure[0], (max(ends) - min(starts)).total_seconds(), best,
                        sorted({r.pack_size or 1 for r in records}))


def worker_per_run(figures: Sequence[WorkerFigure], runs: int) -> str:
    """The median wall time per run, and in brackets the median span per run."""
    return (f"{statistics.median(f.figure.seconds for f in figures) / runs:.2f} "
            f"({statistics.median(f.span for f in figures) / runs:.2f})")


def worker_level(args: argparse.Namespace) -> int:
    if not worker_takes_pack():
        print("dmf-tui worker has no --pack yet: nothing to measure end to end")
        return 1
    # Each pack size on the 8-run grid (16 runs for packs above 8), then --pack 1 --slots 2; each right
    # after --pack 1 on the same runs.
    settings = [(max(8, n), ["--pack", str(n)]) for n in (int(s) for s in args.worker_packs.split(",")) if n != 1]
    settings.append((8, ["--pack", "1", "--slots", "2"]))
    table = []
    for model in args.models.split(","):
        print(f"== {model}: dmf-tui worker on a fresh queue per setting, each after --pack 1", flush=True)
        for runs, flags in settings:
            pairs = []
            for _ in range(args.repeat):
                _, base = calmest(f"{model} {runs} runs, worker --pack 1",
                                  partial(worker_run, model, args.epochs, runs, ["--pack", "1"]),
                                  busy=args.busy, tries=args.tries, contend=args.contend)
                _, result = calmest(f"{model} {runs} runs, worker {' '.join(flags)}",
                                    partial(worker_run, model, args.epochs, runs, flags),
                                    busy=args.busy, tries=args.tries, contend=args.contend)
                pairs.append((base, result))
            diff = max(abs(rmse - base.best[cell]) for base, result in pairs for cell, rmse in result.best.items())
            table.append([model, str(runs), " ".join(flags), ",".join(map(str, pairs[0][1].packs)),
                          worker_per_run([base for base, _ in pairs], runs),
                          worker_per_run([result for _, result in pairs], runs),
                          speed_up_cell([base.figure.seconds / result.figure.seconds for base, result in pairs]),
                          f"{diff:.1e}", f"{max(f.figure.others for pair in pairs for f in pair):.2f}",
                          f"{pairs[-1][1].figure.load:.2f}"])
    print()
    print(f"Machine: {describe()}, torch {torch.__version__}; {dt.date.today().isoformat()}")
    print(f"Command: python bench/bench_pack.py {' '.join(sys.argv[1:])}")
    print()
    print_table(["model", "runs", "worker flags", "packs trained", "--pack 1 wall s/run (span)", "wall s/run (span)",
                 "vs --pack 1", "max best RMSE diff vs --pack 1", "others' cores", "load"], table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="end to end through `dmf-tui worker --pack N`")
    parser.add_argument("--models", default="mf,deepmf")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--packs", default="2,4,8,16", help="pack sizes, engine level")
    parser.add_argument("--threads", default="1,2", help="torch intra-op threads, --steps")
    parser.add_argument("--autograd-pack", type=int, default=8, help="size of the autograd pack (0: skip)")
    parser.add_argument("--worker-packs", default="1,2,4,8,16", help="--pack values, worker level")
    parser.add_argument("--steps", action="store_true", help="the CPU step alone, packs of 1 and 8")
    parser.add_argument("--step-count", type=int, default=300, help="steps timed per figure, --steps")
    parser.add_argument("--repeat", type=int, default=1, help="times each setting and its baseline are taken; "
                        "the table shows medians, and the speed-ups' range")
    parser.add_argument("--busy", type=float, default=0.5, help="take a figure again when other processes "
                        "kept more than this many cores busy meanwhile")
    parser.add_argument("--contend", action="store_true", help="keep one core busy with a spinning process "
                        "during every figure, as a shared machine does")
    parser.add_argument("--tries", type=int, default=2, help="the most times a figure is taken")
    args = parser.parse_args()
    print(f"{describe()}, torch {torch.__version__}", flush=True)
    if args.worker:
        return worker_level(args)
    split = split_dataset(load_dataset("synthetic-1m"))
    return step_level(args, split) if args.steps else engine_level(args, split)


if __name__ == "__main__":
    sys.exit(main())
