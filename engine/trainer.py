"""Training: one plain PyTorch loop over a split that lives on the device.

The reference lab spent almost all of its time handing out one sample at a time through a torch
`Dataset` and `DataLoader`. Here the whole split sits on the device as three tensors; each epoch
shuffles it with one permutation and slices batches out of it, so a step is a few kernels and no
Python per sample. Everything else is the lab's recipe: Adam with weight decay, MSE, batch 512.

The loop trains a pack: V runs of one model structure on one split, each with its own seed, batch
order, learning rate, epochs, early stopping, cancel and failure, whose steps share their kernels
(`fit_pack`); a run alone (`fit`) is the pack of one. Packing is a dimension of the step
(engine/steps.py), not another trainer: this loop is the same for one run and for many.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from engine import checkpoint as checkpoints
from engine.checkpoint import RunData
from engine.errors import ConfigError, DeviceError, DivergedError
from engine.models import ROW_MODELS, RowModel, build_model
from engine.ranking import Ranking, ranking_metrics
from engine.scoring import user_scorer
from engine.split import Split
from engine.steps import InferenceStep, make_step

# The optimizers fit() takes, by name: the lab's Adam (weight decay as an L2 term added to the
# gradient), AdamW (weight decay applied to the weights apart from the gradient's moments), SGD with
# momentum, Adagrad, and sparse_adam: torch's lazy SparseAdam for the embedding tables, which moves
# only the rows a batch uses (a step's cost then does not grow with the catalogue), with Adam for the rest.
OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad", "sparse_adam")
SCHEDULES = ("none", "cosine", "step", "plateau")
CAPTURABLE = ("adam", "adamw")  # the optimizers whose step a CUDA graph can capture

# fit()'s arguments that may differ between the runs of one pack: what each run does with the
# pack's shared step. Every other argument (the model's structure and shapes, the batch size, the
# optimizer, the device) is the pack's, the same for all its runs. store/params.py marks the same
# parameters `per_run`; tests/test_packing.py keeps the two equal.
PER_RUN = frozenset({"lr", "weight_decay", "init_std", "seed", "epochs", "patience", "reg", "reg_bias", "schedule",
                     "warmup", "lr_step", "lr_gamma", "clip", "rank_every", "on_epoch", "on_progress",
                     "should_stop", "checkpoint_path", "checkpoint_meta"})

# How often (in batches) to report progress and ask whether to stop: often enough to cancel a large
# epoch within a second or so, rarely enough to cost nothing.
CHECK_EVERY = 200

# Rows per forward pass when evaluating: big enough to be a handful of kernels for ML-1M's test set,
# small enough to keep memory flat on ML-32M.
EVAL_CHUNK = 1 << 18


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # 1-based
    train_rmse: float
    test_rmse: float
    val_rmse: float | None
    seconds: float
    ranking: Ranking | None = None  # on the test part, on the epochs `rank_every` asks for


@dataclass(frozen=True)
class TrainResult:
    epochs: list[EpochStats]
    best_epoch: int  # 0 when no epoch finished
    best_test_rmse: float  # test RMSE at best_epoch (NaN when no epoch finished)
    stopped: str  # "completed" | "early_stopped" | "cancelled"
    checkpoint: Path | None
    # Of the best epoch's model, once training ended (not when cancelled); None without a relevant test rating.
    ranking: Ranking | None = None


class _ModelConfig(TypedDict):
    """What build_model takes besides the model's name: saved in the checkpoint, to make the model again."""

    k: int
    hidden: list[int]
    bias: bool
    dropout: float
    init_std: float
    emb_dropout: float
    reg: float
    reg_bias: float
    reg_kernel: float
    pretrain_epochs: int
    conv_size: int
    dot_scale: float
    n_users: int
    n_items: int



def resolve_device(spec: str = "auto") -> torch.device:
    """The torch device for "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps"."""
    mps_ok = torch.backends.mps.is_available()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not mps_ok:
            raise DeviceError("device mps was asked for but this machine has no MPS device")
        return torch.device("mps")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec} was asked for but this machine has no CUDA device")
        index = int(spec[5:]) if spec != "cuda" else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {spec} was asked for but this machine has only {count} CUDA "
                              f"device{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")



def fit(split: Split, *, model: str = "mf", k: int = 10, hidden: Sequence[int] = (10, 5), bias: bool = False,
        dropout: float = 0.0, init_std: float = 0.0, lr: float = 1e-3, weight_decay: float = 1e-5,
        batch_size: int = 512, epochs: int = 20, seed: int = 0, device: str = "auto", patience: int = 0,
        optimizer: str = "adam", reg: float = 0.0, reg_bias: float = 0.0, emb_dropout: float = 0.0,
        momentum: float = 0.9, schedule: str = "none", warmup: int = 0, lr_step: int = 10, lr_gamma: float = 0.5,
        clip: bool = False, reg_kernel: float = 0.006, pretrain_epochs: int = 40, conv_size: int = 3,
        dot_scale: float = 1.0, rank_every: int = 0, capture: bool | None = None,
        on_epoch: Callable[[EpochStats], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint_path: str | Path | None = None, checkpoint_meta: dict[str, Any] | None = None) -> TrainResult:
    """Train `model` on `split.part("train")` and evaluate every epoch on test (and val, if not empty).

    The best epoch is the one with the lowest val RMSE when the split has a validation part, else the
    lowest test RMSE (the lab's habit of reading off the test curve); early stopping (patience > 0)
    watches the same number. The learning rate follows `schedule` after `warmup` epochs (`_Schedule`).
    `clip` clips predictions to the training ratings' range when evaluating. `capture=None` captures
    the step in a CUDA graph when on CUDA and the learning rate never changes.
    Once training ends (not when cancelled), the best epoch's model is ranked on the test part
    (engine/ranking.py: Precision, Recall and NDCG at 10), and so is every `rank_every`-th epoch's.
    The checkpoint of the best epoch (engine/checkpoint.py) holds the model's weights, `config` (what
    build_model needs to make the model again, plus `checkpoint_meta`: the worker puts the run's
    parameters there) and the id maps and known ratings of the split.
    """
    # Every argument but the split: one run, trained as a pack of one.
    run = {name: value for name, value in locals().items() if name != "split"}
    (outcome,) = fit_pack(split, [run])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def pack_refusal(*, model: str, optimizer: str, dropout: float, emb_dropout: float) -> str | None:
    """Why runs with these options cannot train in a pack of more than one (None: they can)."""
    if model in ROW_MODELS:
        return f"{model} trains on whole rows of the rating matrix, which do not pack"
    if optimizer != "adam":
        return f"only adam packs, not {optimizer}"
    if dropout or emb_dropout:
        # Each run alone draws its masks from torch's global generator, in an order a pack cannot keep.
        return "a run with dropout trains alone, so that its masks are those it would draw alone"
    return None


def fit_pack(split: Split, runs: Sequence[Mapping[str, Any]],
             on_end: Callable[[int, TrainResult | Exception], None] | None = None) -> list[TrainResult | Exception]:
    """Train several runs on one split as one pack: `runs` holds each run's fit() arguments (those left
    out take fit()'s defaults). They must agree on everything but PER_RUN, and a pack of more than one
    must be a pair model trained with Adam without dropout (`pack_refusal`): ConfigError otherwise.

    Every run is trained as fit() would train it alone: its own seed, initial weights and batch order;
    its own schedule, epochs, early stopping, cancel, checkpoint and ranking; the runs share only the
    kernels of each step: on CPU, through the hand-written step, each run's figures are its own run's
    bit for bit (through autograd's vmap, to a rounding; the worker packs only the former there). A
    run that ends (its epochs done, stopped early, cancelled, diverged, or one of its callbacks raised)
    leaves the pack and the others train on: it stops moving at once, and from the next epoch the
    step trains the others only (Step.keep); `on_end(index, outcome)` is called when it ends. Returns each
    run's outcome, in order: its TrainResult, or the exception that ended it (a DivergedError, say).
    An error of the step itself (out of memory) ends every run still training with it; one that
    `on_end` raises is the caller's, and ends the whole pack as it leaves fit_pack.
    """
    if not runs:
        raise ConfigError("a pack needs at least one run")
    options = [_options(run) for run in runs]
    first = options[0]
    for other in options[1:]:
        for name, value in first.items():
            if name not in PER_RUN and other[name] != value:
                raise ConfigError(f"the runs of a pack must have the same {name} (got {value!r} and {other[name]!r})")
    if len(options) > 1:
        reason = pack_refusal(model=first["model"], optimizer=first["optimizer"], dropout=first["dropout"],
                              emb_dropout=first["emb_dropout"])
        if reason:
            raise ConfigError(reason)
    model, optimizer, batch_size = first["model"], first["optimizer"], first["batch_size"]
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    for o in options:
        if batch_size <= 0 or o["epochs"] <= 0:
            raise ConfigError(f"batch_size and epochs must be > 0 (got {batch_size} and {o['epochs']})")
        if o["rank_every"] < 0:
            raise ConfigError(f"rank_every must be >= 0 (got {o['rank_every']})")
    schedules = [_Schedule(o["schedule"], lr=o["lr"], epochs=o["epochs"], warmup=o["warmup"], step=o["lr_step"],
                           gamma=o["lr_gamma"]) for o in options]
    dev = resolve_device(first["device"])
    # A pack's learning rates are tensors its captured step reads, so a pack follows its schedules
    # captured; a run alone replays the rate it was captured with.
    capture = _capture(first["capture"], dev, model=model, optimizer=optimizer,
                       constant=len(options) > 1 or schedules[0].constant)
    # One intra-op thread on CPU for a pair model, alone or in a pack: a batch-512 step is a few dozen
    # small kernels, where a second thread buys little on a quiet machine and, with other processes on
    # the cores, makes each kernel wait for a descheduled helper thread (a pack ran 30x slower);
    # and a matrix product split over two threads sums in another order, which a high rate grows
    # into another run (bench/RESULTS.md, "Packed runs"). A row model's step is a few large matrix
    # products, which do use every core.
    with intra_op_threads(1 if dev.type == "cpu" and model not in ROW_MODELS else torch.get_num_threads()):
        train = _on_device(split.part("train"), dev)
        test = _on_device(split.part("test"), dev)
        val = _on_device(split.part("val"), dev)
        n_train = len(train[0])
        if n_train == 0 or len(test[0]) == 0:
            raise ConfigError("the split has an empty train or test part")
        data = _Data(split, train, test, val, checkpoints=any(o["checkpoint_path"] is not None for o in options))
        members = [_Run(index, o, schedule, data, dev) for index, (o, schedule) in enumerate(zip(options, schedules))]
        # Sum of squared training errors over the epoch of each run (step.sse), kept on the device so
        # no batch waits for the host.
        step = make_step([run.net for run in members], torch.zeros(len(members), device=dev), optimizer=optimizer,
                         lrs=[schedule.at(1) for schedule in schedules],
                         weight_decays=[o["weight_decay"] for o in options], momentum=first["momentum"],
                         batch_size=batch_size, capture=capture)
        outcomes: list[TrainResult | Exception | None] = [None] * len(members)
        live = list(members)  # the runs still training, in their order in the step
        size = len(live)  # how many runs the step trains (some of them dropped since, maybe)

        def finish(run: _Run, error: Exception | None = None) -> None:
            """End `run`: it leaves the step and the live runs; its outcome is handed on."""
            live.remove(run)
            step.drop(run.slot)
            outcome: TrainResult | Exception
            if error is not None:
                outcome = error
            else:
                try:
                    outcome = run.result()
                except Exception as exc:  # its final ranking failed: the run's failure, not the pack's
                    outcome = exc
            outcomes[run.index] = outcome
            if on_end is not None:
                on_end(run.index, outcome)

        def attempt(run: _Run, work: Callable[[], bool]) -> bool | None:
            """work()'s answer for `run` (a callback of its, its epoch's end); None if it raised: the
            run has then ended with that error (a database that refused its epoch, a divergence),
            and the pack trains on without it."""
            try:
                return work()
            except Exception as exc:
                finish(run, exc)
                return None

        for epoch in range(1, max(o["epochs"] for o in options) + 1):
            for run in list(live):
                if attempt(run, run.stop_asked):
                    run.stopped = "cancelled"
                    finish(run)
            if not live:
                break
            if len(live) < size:  # runs have left the pack: the rest go on in a smaller one
                step = step.keep([run.slot for run in live])
                size = len(live)
                for slot, run in enumerate(live):
                    run.slot = slot
            started = time.perf_counter()
            step.sse.zero_()
            for run in live:
                run.net.train()
            step.set_lrs([run.schedule.at(epoch) for run in live])
            batches, n_batches = _batches(live, train, batch_size)
            cancelled: set[_Run] = set()  # asked to stop during this epoch
            try:
                # The hand-written step needs no autograd, so inference mode is entered once an epoch
                # rather than once a step. The other steps run with autograd on, as usual.
                with torch.inference_mode(isinstance(step, InferenceStep)):
                    for b, batch in enumerate(batches, start=1):
                        step(*batch)
                        if b % CHECK_EVERY == 0 or b == n_batches:
                            for run in list(live):
                                if run not in cancelled and attempt(run, partial(run.progress, b, n_batches)):
                                    cancelled.add(run)
                                    step.drop(run.slot)  # it moves no further, though the epoch goes on
                            if all(run in cancelled for run in live):
                                break
            except Exception as exc:  # the step itself failed (out of memory): every live run ends with it
                for run in list(live):
                    if run in cancelled:  # it had stopped before: cancelled, as it asked
                        run.stopped = "cancelled"
                        finish(run)
                    else:
                        finish(run, exc)
                break
            sums = step.sse.tolist()  # waits for the step on a GPU: the training is done
            trained = time.perf_counter() - started
            ending = []
            for run in list(live):
                if run in cancelled:
                    run.stopped = "cancelled"
                    ending.append(run)
                elif attempt(run, partial(run.end_epoch, epoch, sums[run.slot], trained)) is False:
                    ending.append(run)
            # Ended only once every run has evaluated its epoch: ending a run ranks it (a second for
            # DeepMF on ML-1M), which would otherwise count in the epoch of every run evaluated after.
            for run in ending:
                finish(run)
    ended = [outcome for outcome in outcomes if outcome is not None]
    assert len(ended) == len(outcomes), "every run ends by its last epoch"
    return ended


_FIT_DEFAULTS = {name: p.default for name, p in inspect.signature(fit).parameters.items() if name != "split"}


def _options(run: Mapping[str, Any]) -> dict[str, Any]:
    """One run's fit() arguments, every one of them: `run`'s, else fit()'s defaults."""
    unknown = set(run) - set(_FIT_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown fit() argument(s): {', '.join(sorted(unknown))}")
    options = _FIT_DEFAULTS | dict(run)
    options["hidden"] = tuple(options["hidden"])  # [10, 5] and (10, 5) are one shape
    return options


def _capture(asked: bool | None, dev: torch.device, *, model: str, optimizer: str, constant: bool) -> bool:
    """Whether the step is captured in a CUDA graph: as `asked`, or (None) wherever it can be."""
    if asked is None:
        # A captured step replays the learning rate it was captured with, on batches of one shape: a
        # row model's last batch of items is shorter, and its steps are few and large anyway.
        # Adam and AdamW are built capturable; the other optimizers are not.
        return dev.type == "cuda" and constant and model not in ROW_MODELS and optimizer in CAPTURABLE
    if asked and dev.type != "cuda":
        raise ConfigError(f"capture=True needs a CUDA device, not {dev}")
    if asked and not constant:
        raise ConfigError("capture=True replays one learning rate: it cannot follow a schedule or a warm-up")
    if asked and optimizer not in CAPTURABLE:
        raise ConfigError(f"capture=True needs a capturable optimizer ({', '.join(CAPTURABLE)}), not {optimizer}")
    if asked and model in ROW_MODELS:
        raise ConfigError(f"capture=True captures a step over (user, item, rating) batches, which {model} has not")
    return asked


def _batches(runs: Sequence[_Run], train: _Part, batch_size: int) -> tuple[Iterator[tuple[torch.Tensor, ...]], int]:
    """One epoch's batches of the pack's `runs` and how many there are: the training part shuffled in
    each run's own order, [B] tensors for a run alone, [V, B] for a pack."""
    if len(runs) == 1:
        (run,) = runs
        if isinstance(run.net, RowModel):
            return iter(run.net.batches(batch_size, run.shuffle)), run.net.n_batches(batch_size)
        order = run.order(len(train[0]))
        # index_select rather than t[order]: the same rows, faster on CPU. The batches are views into
        # the shuffled copy; the last one is simply shorter.
        return zip(*(torch.split(t.index_select(0, order), batch_size) for t in train)), _count(train, batch_size)
    orders = [run.order(len(train[0])) for run in runs]
    stacked = [torch.stack([t.index_select(0, order) for order in orders]) for t in train]
    return zip(*(torch.split(t, batch_size, dim=1) for t in stacked)), _count(train, batch_size)


def _count(train: _Part, batch_size: int) -> int:
    return math.ceil(len(train[0]) / batch_size)


_Part = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # users, items, ratings


class _Data:
    """What every run of a pack evaluates, ranks and checkpoints with: the split's parts on the device,
    its id maps and known ratings (RunData, packed once for all the runs' checkpoints)."""

    def __init__(self, split: Split, train: _Part, test: _Part, val: _Part, *, checkpoints: bool) -> None:
        self.split, self.train, self.test, self.val = split, train, test, val
        self.run_data = RunData.from_split(split)
        self.saved = self.run_data.pack() if checkpoints else {}
        # Predictions are clipped to what a rating can be, when a run asks: the range seen in training.
        self.bounds = (float(train[2].min()), float(train[2].max()))


class _Run:
    """One run of a pack: its model, batch order and schedule, and its epochs as they land."""

    def __init__(self, index: int, options: dict[str, Any], schedule: _Schedule, data: _Data,
                 dev: torch.device) -> None:
        self.index, self.options, self.schedule, self.data = index, options, schedule, data
        self.slot = index  # its place in the pack's step, which changes as other runs leave
        dataset = data.split.dataset
        self.model_config = _ModelConfig(
            k=options["k"], hidden=list(options["hidden"]), bias=options["bias"], dropout=options["dropout"],
            init_std=options["init_std"], emb_dropout=options["emb_dropout"], reg=options["reg"],
            reg_bias=options["reg_bias"], reg_kernel=options["reg_kernel"],
            pretrain_epochs=options["pretrain_epochs"], conv_size=options["conv_size"],
            dot_scale=options["dot_scale"], n_users=dataset.n_users, n_items=dataset.n_items)
        torch.manual_seed(options["seed"])  # initial weights (and, alone, dropout)
        self.shuffle = torch.Generator(device=dev).manual_seed(options["seed"])  # batch order
        self.net = build_model(options["model"], **self.model_config).to(dev)
        if isinstance(self.net, RowModel):
            self.net.attach(*data.train)
        path = options["checkpoint_path"]
        self.checkpoint = Path(path) if path is not None else None
        self.config = {**(options["checkpoint_meta"] or {}), "model": options["model"], **self.model_config}
        self.bounds = data.bounds if options["clip"] else None
        self.history: list[EpochStats] = []
        self.best: EpochStats | None = None
        self.best_state: dict[str, torch.Tensor] = {}  # the best epoch's weights, ranked once training ends
        self.stopped = "completed"

    def order(self, n: int) -> torch.Tensor:
        """This epoch's batch order, from the run's own generator."""
        return torch.randperm(n, generator=self.shuffle, device=self.shuffle.device)

    def stop_asked(self) -> bool:
        should_stop = self.options["should_stop"]
        return should_stop is not None and bool(should_stop())

    def progress(self, done: int, total: int) -> bool:
        """Report how far the epoch has got; True if the run is asked to stop."""
        on_progress = self.options["on_progress"]
        if on_progress is not None:
            on_progress(done, total)
        return self.stop_asked()

    def rank(self) -> Ranking | None:
        return ranking_metrics(user_scorer(self.net), self.data.run_data.known, self.data.test,
                               self.data.split.dataset.n_items)

    def end_epoch(self, epoch: int, sse: float, trained: float) -> bool:
        """Evaluate the epoch just trained (in `trained` seconds), record it, and say whether the
        run trains on. The epoch's seconds are its training and this run's own evaluation: in a pack,
        not the other runs' evaluations, rankings and checkpoints, done one after another."""
        evaluating = time.perf_counter()
        train_rmse = math.sqrt(sse / len(self.data.train[0]))
        if not math.isfinite(train_rmse):
            raise DivergedError(f"diverged: loss became {train_rmse} at epoch {epoch}")
        self.net.eval()
        test_rmse = _rmse(self.net, *self.data.test, bounds=self.bounds)
        val_rmse = _rmse(self.net, *self.data.val, bounds=self.bounds) if len(self.data.val[0]) else None
        if not math.isfinite(test_rmse):
            raise DivergedError(f"diverged: test RMSE became {test_rmse} at epoch {epoch}")
        seconds = trained + time.perf_counter() - evaluating
        rank_every = self.options["rank_every"]
        ranking = self.rank() if rank_every and epoch % rank_every == 0 else None
        stats = EpochStats(epoch, train_rmse, test_rmse, val_rmse, seconds, ranking)
        self.history.append(stats)
        if self.best is None or _watched(stats) < _watched(self.best):
            self.best = stats
            self.best_state = {name: t.detach().clone() for name, t in self.net.state_dict().items()}
            if self.checkpoint is not None:
                checkpoints.save(self.checkpoint, self.net, self.config, epoch=epoch, test_rmse=test_rmse,
                                 data=self.data.saved)
        on_epoch = self.options["on_epoch"]
        if on_epoch is not None:
            on_epoch(stats)
        # The plateau schedule watches validation, else the training curve: never test.
        self.schedule.observe(epoch, val_rmse if val_rmse is not None else train_rmse)
        patience = self.options["patience"]
        if patience and epoch - self.best.epoch >= patience:
            self.stopped = "early_stopped"
            return False
        return epoch < int(self.options["epochs"])

    def result(self) -> TrainResult:
        """The run's result once it has ended: its best epoch's model restored and, unless it was
        cancelled, ranked."""
        final_ranking = None
        if self.best is not None and self.stopped != "cancelled":
            self.net.load_state_dict(self.best_state)
            final_ranking = self.best.ranking or self.rank()
        best = self.best
        return TrainResult(epochs=self.history, best_epoch=best.epoch if best else 0,
                           best_test_rmse=best.test_rmse if best else math.nan, stopped=self.stopped,
                           checkpoint=self.checkpoint if best is not None else None, ranking=final_ranking)


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads, then restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _on_device(part: tuple[np.ndarray, np.ndarray, np.ndarray],
               dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    users, items, ratings = part
    return (torch.as_tensor(users, dtype=torch.long).to(dev),
            torch.as_tensor(items, dtype=torch.long).to(dev),
            torch.as_tensor(ratings, dtype=torch.float32).to(dev))


@torch.inference_mode()
def _rmse(net: nn.Module, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, *,
          bounds: tuple[float, float] | None = None) -> float:
    sse = torch.zeros((), device=ratings.device)
    for start in range(0, len(ratings), EVAL_CHUNK):
        end = start + EVAL_CHUNK
        prediction = net(users[start:end], items[start:end])
        if bounds is not None:
            prediction = prediction.clamp(*bounds)
        error = prediction - ratings[start:end]
        sse += error.square().sum()
    return math.sqrt(sse.item() / len(ratings))


class _Schedule:
    """The learning rate of each epoch: a linear warm-up over the first `warmup` epochs (epoch e at
    e / (warmup + 1) of `lr`), then `kind`: none (constant), cosine (from lr towards 0, reached just
    after the last epoch), step (times `gamma` every `step` epochs) or plateau (times `gamma` once the
    watched RMSE has gone `step` epochs without improving, and again after each further `step`). It
    changes once an epoch, not once a step: schedules of tens of epochs need no finer."""

    def __init__(self, kind: str, *, lr: float, epochs: int, warmup: int, step: int, gamma: float) -> None:
        if kind not in SCHEDULES:
            raise ConfigError(f"unknown schedule {kind!r}: choose one of {', '.join(SCHEDULES)}")
        if warmup < 0 or step <= 0 or not 0 < gamma < 1:
            raise ConfigError(f"warmup must be >= 0, lr_step > 0 and lr_gamma between 0 and 1 "
                              f"(got {warmup}, {step} and {gamma})")
        self.kind, self.lr, self.epochs, self.warmup, self.step, self.gamma = kind, lr, epochs, warmup, step, gamma
        self.plateau_factor, self.best, self.best_epoch = 1.0, math.inf, 0

    @property
    def constant(self) -> bool:
        return self.kind == "none" and self.warmup == 0

    def at(self, epoch: int) -> float:
        """The learning rate of `epoch` (1-based)."""
        if epoch <= self.warmup:
            return self.lr * epoch / (self.warmup + 1)
        done = epoch - 1 - self.warmup  # epochs since the warm-up
        if self.kind == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * done / max(1, self.epochs - self.warmup)))
        if self.kind == "step":
            return self.lr * self.gamma ** (done // self.step)
        return self.lr * self.plateau_factor

    def observe(self, epoch: int, rmse: float) -> None:
        """The RMSE the plateau schedule watches, after `epoch`."""
        if self.kind != "plateau" or epoch <= self.warmup:
            return
        if rmse < self.best:
            self.best, self.best_epoch = rmse, epoch
        elif epoch - self.best_epoch >= self.step:
            self.plateau_factor *= self.gamma
            self.best_epoch = epoch  # wait another `step` epochs before the next decay


def _watched(stats: EpochStats) -> float:
    """The number that picks the best epoch and drives early stopping."""
    return stats.val_rmse if stats.val_rmse is not None else stats.test_rmse
