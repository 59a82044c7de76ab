"""Training: one plain PyTorch loop over a split that lives on the device.

The reference lab spent almost all of its time handing out one sample at a time through a torch
`Dataset` and `DataLoader`. Here the whole split sits on the device as three tensors; each epoch
shuffles it with one permutation and slices batches out of it, so a step is a few kernels and no
Python per sample. Everything else is the lab's recipe: Adam with weight decay, MSE, batch 512.

The step is `_EagerStep` (the model's batch loss, autograd, a torch optimizer); on CUDA it is captured
once in a CUDA graph and replayed (`_GraphStep`), which removes most launch overhead for these small
models. On CPU, where there is no graph to hide that overhead, `_HandStep` computes the same step with
the model's hand-written gradients and a direct call of Adam's fused kernel, for the models those
gradients are written for (`has_hand_grads`); MPS, and CPU for any other model or optimizer (one with
dropout, say, or SGD), run `_EagerStep`. bench/RESULTS.md ("Why the CPU step is built as it is") has the measurements
behind these choices.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from engine import checkpoint as checkpoints
from engine.checkpoint import RunData
from engine.errors import ConfigError, DeviceError, DivergedError
from engine.models import (
    MF,
    ROW_MODELS,
    DeepMF,
    PairModel,
    RowModel,
    build_model,
    flatten_parameters,
    has_hand_grads,
    parameter_views,
)
from engine.ranking import Ranking, ranking_metrics
from engine.scoring import user_scorer
from engine.split import Split

# The optimizers fit() takes, by name: the lab's Adam (weight decay as an L2 term added to the
# gradient), AdamW (weight decay applied to the weights apart from the gradient's moments), SGD with
# momentum, Adagrad, and sparse_adam: torch's lazy SparseAdam for the embedding tables, which moves
# only the rows a batch uses (a step's cost then does not grow with the catalogue), with Adam for the rest.
OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad", "sparse_adam")
SCHEDULES = ("none", "cosine", "step", "plateau")
CAPTURABLE = ("adam", "adamw")  # the optimizers whose step a CUDA graph can capture

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
    if batch_size <= 0 or epochs <= 0:
        raise ConfigError(f"batch_size and epochs must be > 0 (got {batch_size} and {epochs})")
    if rank_every < 0:
        raise ConfigError(f"rank_every must be >= 0 (got {rank_every})")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    schedule_lr = _Schedule(schedule, lr=lr, epochs=epochs, warmup=warmup, step=lr_step, gamma=lr_gamma)
    dev = resolve_device(device)
    if capture is None:
        # A captured step replays the learning rate it was captured with, on batches of one shape: a
        # row model's last batch of items is shorter, and its steps are few and large anyway.
        # Adam and AdamW are built capturable; the other optimizers are not.
        capture = (dev.type == "cuda" and schedule_lr.constant and model not in ROW_MODELS
                   and optimizer in CAPTURABLE)
    elif capture and dev.type != "cuda":
        raise ConfigError(f"capture=True needs a CUDA device, not {dev}")
    elif capture and not schedule_lr.constant:
        raise ConfigError("capture=True replays one learning rate: it cannot follow a schedule or a warm-up")
    elif capture and optimizer not in CAPTURABLE:
        raise ConfigError(f"capture=True needs a capturable optimizer ({', '.join(CAPTURABLE)}), not {optimizer}")
    elif capture and model in ROW_MODELS:
        raise ConfigError(f"capture=True captures a step over (user, item, rating) batches, which {model} has not")
    # One intra-op thread on CPU for a pair model: a batch-512 step is a few dozen tiny kernels, where a
    # second thread buys nothing on a quiet machine and, with other processes on the cores, makes each
    # kernel wait for a descheduled helper thread (bench/RESULTS.md). A row model's step is a few large
    # matrix products, which do use every core.
    with _intra_op_threads(1 if dev.type == "cpu" and model not in ROW_MODELS else None):
        train = _on_device(split.part("train"), dev)
        test = _on_device(split.part("test"), dev)
        val = _on_device(split.part("val"), dev)
        n_train = len(train[0])
        if n_train == 0 or len(test[0]) == 0:
            raise ConfigError("the split has an empty train or test part")

        torch.manual_seed(seed)  # initial weights and dropout
        shuffle = torch.Generator(device=dev).manual_seed(seed)  # batch order
        model_config = _ModelConfig(k=k, hidden=list(hidden), bias=bias, dropout=dropout, init_std=init_std,
                                    emb_dropout=emb_dropout, reg=reg, reg_bias=reg_bias, reg_kernel=reg_kernel,
                                    pretrain_epochs=pretrain_epochs, conv_size=conv_size, dot_scale=dot_scale,
                                    n_users=split.dataset.n_users, n_items=split.dataset.n_items)
        net = build_model(model, **model_config).to(dev)
        if isinstance(net, RowModel):
            net.attach(*train)
        # Sum of squared training errors over the epoch, kept on the device so no batch waits for the host.
        sse = torch.zeros((), device=dev)
        step = _make_step(net, sse, optimizer=optimizer, lr=schedule_lr.at(1), weight_decay=weight_decay,
                          momentum=momentum, batch_size=batch_size, capture=capture)
        # Predictions are clipped to what a rating can be, when asked: the range seen in training.
        bounds = (float(train[2].min()), float(train[2].max())) if clip else None

        config = {**(checkpoint_meta or {}), "model": model, **model_config}
        checkpoint = Path(checkpoint_path) if checkpoint_path is not None else None
        run_data = RunData.from_split(split)
        saved_data = run_data.pack() if checkpoint is not None else {}
        history: list[EpochStats] = []
        best: EpochStats | None = None
        best_state: dict[str, torch.Tensor] = {}  # the best epoch's weights, ranked once training ends

        def rank() -> Ranking | None:
            return ranking_metrics(user_scorer(net), run_data.known, test, split.dataset.n_items)
        stopped = "completed"
        n_batches = math.ceil(n_train / batch_size)

        for epoch in range(1, epochs + 1):
            if should_stop is not None and should_stop():
                stopped = "cancelled"
                break
            started = time.perf_counter()
            net.train()
            sse.zero_()
            step.set_lr(schedule_lr.at(epoch))
            if isinstance(net, RowModel):
                batches: Iterator[tuple[torch.Tensor, ...]] = net.batches(batch_size, shuffle)
                n_batches = net.n_batches(batch_size)
            else:
                order = torch.randperm(n_train, generator=shuffle, device=dev)
                # index_select rather than t[order]: the same rows, faster on CPU. The batches are views
                # into the shuffled copy; the last one is simply shorter.
                batches = zip(*(torch.split(t.index_select(0, order), batch_size) for t in train))
            cancelled = False
            # The hand-written step needs no autograd, so inference mode is entered once an epoch rather
            # than once a step. The other steps run with autograd on, as usual.
            with torch.inference_mode(isinstance(step, _HandStep)):
                for b, batch in enumerate(batches, start=1):
                    step(*batch)
                    if b % CHECK_EVERY == 0 or b == n_batches:
                        if on_progress is not None:
                            on_progress(b, n_batches)
                        if should_stop is not None and should_stop():
                            cancelled = True
                            break
            if cancelled:
                stopped = "cancelled"
                break

            train_rmse = math.sqrt(sse.item() / n_train)
            if not math.isfinite(train_rmse):
                raise DivergedError(f"diverged: loss became {train_rmse} at epoch {epoch}")
            net.eval()
            test_rmse = _rmse(net, *test, bounds=bounds)
            val_rmse = _rmse(net, *val, bounds=bounds) if len(val[0]) else None
            if not math.isfinite(test_rmse):
                raise DivergedError(f"diverged: test RMSE became {test_rmse} at epoch {epoch}")
            seconds = time.perf_counter() - started
            ranking = rank() if rank_every and epoch % rank_every == 0 else None
            stats = EpochStats(epoch, train_rmse, test_rmse, val_rmse, seconds, ranking)
            history.append(stats)

            if best is None or _watched(stats) < _watched(best):
                best = stats
                best_state = {name: t.detach().clone() for name, t in net.state_dict().items()}
                if checkpoint is not None:
                    checkpoints.save(checkpoint, net, config, epoch=epoch, test_rmse=test_rmse, data=saved_data)
            if on_epoch is not None:
                on_epoch(stats)
            # The plateau schedule watches validation, else the training curve: never test.
            schedule_lr.observe(epoch, val_rmse if val_rmse is not None else train_rmse)
            if patience and epoch - best.epoch >= patience:
                stopped = "early_stopped"
                break

        final_ranking = None
        if best is not None and stopped != "cancelled":
            net.load_state_dict(best_state)
            final_ranking = best.ranking or rank()
        return TrainResult(epochs=history, best_epoch=best.epoch if best else 0,
                           best_test_rmse=best.test_rmse if best else math.nan, stopped=stopped,
                           checkpoint=checkpoint if best is not None and checkpoint is not None else None,
                           ranking=final_ranking)


@contextlib.contextmanager
def _intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads (None: leave the setting alone), then restore it."""
    if n is None:
        yield
        return
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


def _make_step(net: PairModel | RowModel, sse: torch.Tensor, *, optimizer: str, lr: float, weight_decay: float,
               momentum: float = 0.9, batch_size: int, capture: bool) -> _Step:
    """The training step: called with a batch, it updates `net` and adds the batch's squared errors to `sse`.

    On CPU that is `_HandStep` for Adam and a model whose gradients `hand_grads` writes
    (`has_hand_grads`); for any other model or optimizer, and on other devices, `_EagerStep`, captured
    on CUDA."""
    dev = sse.device
    if dev.type == "cpu" and not capture and optimizer == "adam" and has_hand_grads(net):
        return _HandStep(net, sse, lr=lr, weight_decay=weight_decay)
    eager = _EagerStep(net, _optimizer(optimizer, net, dev, lr=lr, weight_decay=weight_decay, momentum=momentum,
                                       capturable=capture), sse)
    if capture:
        return _GraphStep(eager, batch_size)
    return eager


def _optimizer(name: str, net: PairModel | RowModel, dev: torch.device, *, lr: float, weight_decay: float,
               momentum: float, capturable: bool) -> torch.optim.Optimizer | _SparseAdam:
    params = list(net.parameters())
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "sparse_adam":
        if not isinstance(net, PairModel):
            raise ConfigError(f"optimizer sparse_adam needs embedding tables, which {type(net).__name__} has not")
        if weight_decay:
            # SparseAdam has none: the tables would go undecayed while the rest decayed.
            raise ConfigError("optimizer sparse_adam takes no weight decay: decay the rows it moves with reg")
        return _SparseAdam(net, lr=lr)
    kind = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    # The fused kernel updates every parameter in one call, about half the time of the default
    # per-tensor loop on CPU (bench/RESULTS.md); on CUDA it is also graph-capturable.
    if dev.type in ("cpu", "cuda"):
        return kind(params, lr=lr, weight_decay=weight_decay, fused=True, capturable=capturable)
    return kind(params, lr=lr, weight_decay=weight_decay)


class _SparseAdam:
    """Lazy Adam: torch's SparseAdam for the embedding tables, whose gradients are then sparse (only
    the rows a batch used), and Adam for every other parameter (MLP layers, biases). A row's moments
    and value move only when a batch uses it."""

    def __init__(self, net: PairModel, *, lr: float) -> None:
        net.sparse = True
        tables = [table.weight for table, _ in net.tables()]
        table_ids = {id(t) for t in tables}
        dense = [p for p in net.parameters() if id(p) not in table_ids]
        self.parts: list[torch.optim.Optimizer] = [torch.optim.SparseAdam(tables, lr=lr)]
        if dense:
            self.parts.append(torch.optim.Adam(dense, lr=lr))
        self.param_groups = [group for part in self.parts for group in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()


class _Step:
    """What fit() calls with each batch; `set_lr` changes the learning rate between epochs."""

    def __call__(self, *batch: torch.Tensor) -> None:
        raise NotImplementedError

    def set_lr(self, lr: float) -> None:
        raise NotImplementedError


class _EagerStep(_Step):
    """The plain step: the model's batch loss, autograd's backward, the optimizer's step."""

    def __init__(self, net: PairModel | RowModel, optimizer: torch.optim.Optimizer | _SparseAdam,
                 sse: torch.Tensor) -> None:
        self.net, self.optimizer, self.sse = net, optimizer, sse

    def __call__(self, *batch: torch.Tensor) -> None:
        loss, batch_sse = self.net.batch_loss(*batch)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # loss.backward(), which torch leaves unannotated
        self.optimizer.step()
        self.sse.add_(batch_sse)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr


class _HandStep(_Step):
    """`_EagerStep` for CPU at a fraction of its cost: the same gradients, the same Adam update.

    Why it exists: at batch 512 these models are a few thousand flops a step, and on CPU the step's
    time went to machinery, not arithmetic: autograd's graph, a fresh zeroed gradient table per
    embedding per step (the backward of a lookup), and torch.optim's per-step Python (the figures are
    in bench/RESULTS.md). Here the model writes its gradients by hand into buffers allocated once
    (`hand_grads`, checked against autograd in tests/test_models.py; `_make_step` takes this step only
    for the models `has_hand_grads` allows), and Adam is the kernel that torch.optim.Adam(fused=True)
    itself calls, over the same dense state, so every parameter, every embedding row included, moves
    every step exactly as with torch.optim.Adam (L2 weight decay added to the gradient, bias
    correction). tests/test_trainer.py checks a few hundred steps against the plain nn.Module +
    backward() + torch.optim.Adam step.
    """

    def __init__(self, net: MF | DeepMF, sse: torch.Tensor, *, lr: float, weight_decay: float) -> None:
        self.sse = sse
        # Every parameter becomes a view of one buffer, and every gradient a view of another laid out
        # alike, so that Adam's kernel runs once, over one tensor (see flatten_parameters). The buffer
        # is updated in place, outside autograd.
        params = flatten_parameters(net)
        self.grad = torch.zeros_like(params)
        self.mse_grads = net.hand_grads(parameter_views(net, self.grad))
        self.adam = _FusedAdam([params], [self.grad], lr=lr, weight_decay=weight_decay)

    def __call__(self, *batch: torch.Tensor) -> None:
        users, items, ratings = batch
        # No autograd here at all; inference mode also drops its per-op bookkeeping. fit() runs a whole
        # epoch's steps in inference mode, so that entering it is not paid again every step.
        if torch.is_inference_mode_enabled():
            self._step(users, items, ratings)
        else:
            with torch.inference_mode():
                self._step(users, items, ratings)

    def _step(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        self.sse += self.mse_grads(users, items, ratings)
        self.adam.step()

    def set_lr(self, lr: float) -> None:
        self.adam.set_lr(lr)


# The arguments `_FusedAdam.step` passes to the private kernel torch._fused_adam_, in order, as
# (name, type, keyword-only, written to), as its schema has them in torch 2.13. "Written to" matters:
# a kernel that did not write `self` would not train, one that wrote `state_steps` would count twice.
_FUSED_ADAM_ARGUMENTS = (
    ("self", "List[Tensor]", False, True),
    ("grads", "List[Tensor]", False, True),
    ("exp_avgs", "List[Tensor]", False, True),
    ("exp_avg_sqs", "List[Tensor]", False, True),
    ("max_exp_avg_sqs", "List[Tensor]", False, True),
    ("state_steps", "List[Tensor]", False, False),
    ("lr", "float", True, False),
    ("beta1", "float", True, False),
    ("beta2", "float", True, False),
    ("weight_decay", "float", True, False),
    ("eps", "float", True, False),
    ("amsgrad", "bool", True, False),
    ("maximize", "bool", True, False),
)


def _fused_adam_if_it_fits(
    kernel: Callable[..., None] | None, schema: torch._C.FunctionSchema | None
) -> Callable[..., None] | None:
    """`kernel` if `schema`, its signature (a torch FunctionSchema), takes exactly the arguments
    `_FusedAdam.step` passes, in that order, and no other argument without a default; else None."""
    if kernel is None or schema is None:
        return None
    arguments = list(schema.arguments)
    passed = arguments[:len(_FUSED_ADAM_ARGUMENTS)]
    signature = tuple((a.name, str(a.type), a.kwarg_only, bool(a.is_write)) for a in passed)
    extra = arguments[len(_FUSED_ADAM_ARGUMENTS):]
    if signature == _FUSED_ADAM_ARGUMENTS and all(a.has_default_value() for a in extra):
        return kernel
    return None


def _find_fused_adam() -> Callable[..., None] | None:
    try:
        return _fused_adam_if_it_fits(getattr(torch, "_fused_adam_", None),
                                      torch.ops.aten._fused_adam_.default._schema)
    except Exception:  # the kernel or its schema missing or moved in a torch not seen yet: go without
        return None


# Checked once, at import: with a torch whose kernel is missing or differs, `_FusedAdam` steps through
# torch.optim.Adam instead, slower and the same, never a TypeError mid-run.
_FUSED_ADAM = _find_fused_adam()


class _FusedAdam:
    """torch.optim.Adam(fused=True)'s step over fixed parameter and gradient lists, without its Python.

    torch.optim.Adam looks up its state, groups tensors by device and dtype and checks its arguments on
    every step, which on CPU costs as much as the kernel itself for an ML-1M-sized MF (bench/RESULTS.md).
    This keeps the same state (exp_avg, exp_avg_sq, a float32 step count) and calls the same private
    kernel, `_FUSED_ADAM`; where this torch's kernel is missing or has another signature,
    torch.optim.Adam does the step, reading the same gradient buffers.
    """

    BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the lab uses
    EPS = 1e-8

    def __init__(self, params: list[torch.Tensor], grads: list[torch.Tensor], *, lr: float,
                 weight_decay: float) -> None:
        self.params, self.grads, self.lr, self.weight_decay = params, grads, lr, weight_decay
        self.kernel = _FUSED_ADAM
        if self.kernel is None:
            for param, grad in zip(params, grads):
                param.grad = grad
            self.fallback = torch.optim.Adam(params, lr=lr, betas=self.BETAS, eps=self.EPS,
                                             weight_decay=weight_decay)
            return
        self.exp_avgs = [torch.zeros_like(p) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in params]
        # One count shared by every parameter: they all step together.
        self.count = torch.zeros((), dtype=torch.float32, device=params[0].device)
        self.steps = [self.count] * len(params)

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        if self.kernel is None:
            self.fallback.param_groups[0]["lr"] = lr

    def step(self) -> None:
        if self.kernel is None:
            self.fallback.step()
            return
        self.count += 1
        self.kernel(self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, [], self.steps, lr=self.lr,
                    beta1=self.BETAS[0], beta2=self.BETAS[1], weight_decay=self.weight_decay, eps=self.EPS,
                    amsgrad=False, maximize=False)


class _GraphStep(_Step):
    """A pair model's `_EagerStep` captured once in a CUDA graph and replayed for every full batch.

    Capturing needs a few eager steps first (on a side stream, as torch.cuda.graphs asks) so that
    Adam's state exists; those are real training steps on real batches, not extra work. The short
    last batch of an epoch has another shape, so it runs eagerly rather than being padded into the
    loss. If capture fails, every later step runs eagerly: slower, same results.
    """

    WARMUP = 3

    def __init__(self, eager: _EagerStep, batch_size: int) -> None:
        self.eager, self.optimizer, self.sse, self.batch_size = eager, eager.optimizer, eager.sse, batch_size
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_only = False
        self.warmed = 0
        dev = self.sse.device
        self.users = torch.zeros(batch_size, dtype=torch.long, device=dev)
        self.items = torch.zeros(batch_size, dtype=torch.long, device=dev)
        self.ratings = torch.zeros(batch_size, dtype=torch.float32, device=dev)

    def __call__(self, *batch: torch.Tensor) -> None:
        users, items, ratings = batch
        # Streams, capture and replay use the *current* CUDA device, which need not be ours (cuda:1).
        with torch.cuda.device(self.sse.device):
            self._step(users, items, ratings)

    def _step(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        if self.eager_only or len(ratings) != self.batch_size:
            return self._eager(users, items, ratings)
        if self.graph is None and self.warmed < self.WARMUP:
            side = torch.cuda.Stream()  # type: ignore[no-untyped-call]  # torch leaves its __new__ unannotated
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._eager(users, items, ratings)
            torch.cuda.current_stream().wait_stream(side)
            self.warmed += 1
            return None
        self.users.copy_(users)
        self.items.copy_(items)
        self.ratings.copy_(ratings)
        if self.graph is None:
            try:
                self.graph = self._capture()
            except RuntimeError:
                # Capturing never runs the kernels, so the model is untouched: train this batch eagerly.
                self.eager_only = True
                torch.cuda.synchronize()
                return self._eager(users, items, ratings)
        self.graph.replay()
        return None

    def set_lr(self, lr: float) -> None:
        # fit() captures only a learning rate that never changes; this is the first epoch's, set before
        # any capture.
        self.eager.set_lr(lr)

    def _eager(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        # Gradients left by a replay live in the graph's private memory; dropping them (set_to_none
        # inside the step) makes the eager backward allocate fresh ones instead of adding to them.
        self.eager(users, items, ratings)

    def _capture(self) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        # With no .grad tensors, the captured backward allocates them in the graph's own pool.
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self.eager(self.users, self.items, self.ratings)
        return graph


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
