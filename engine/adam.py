"""Adam as the training steps call it: without torch.optim's per-step Python.

`FusedAdam` calls the kernel torch.optim.Adam(fused=True) itself calls, over fixed parameter and
gradient lists; the CPU's hand-written step uses it, once per run of a pack, since each run has its
own learning rate and weight decay. `StackedAdam` is the same update in plain tensor ops over a
pack's stacked parameters, with a learning rate and weight decay per run held on the device, so a
CUDA graph can capture it and a schedule can still change the rates between replays. `LazyAdam` is
torch.optim.SparseAdam's update of an embedding table, on the rows a batch used only, for the CPU's
hand-written step with optimizer sparse_adam.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

# The arguments `FusedAdam.step` passes to the private kernel torch._fused_adam_, in order, as
# (name, type, keyword-only, written to), as its schema has them in torch 2.13. "Written to" matters:
# a kernel that did not write `self` would not train, one that wrote `state_steps` would count twice.
FUSED_ADAM_ARGUMENTS = (
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


def fused_adam_if_it_fits(
    kernel: Callable[..., None] | None, schema: torch._C.FunctionSchema | None
) -> Callable[..., None] | None:
    """`kernel` if `schema`, its signature (a torch FunctionSchema), takes exactly the arguments
    `FusedAdam.step` passes, in that order, and no other argument without a default; else None."""
    if kernel is None or schema is None:
        return None
    arguments = list(schema.arguments)
    passed = arguments[:len(FUSED_ADAM_ARGUMENTS)]
    signature = tuple((a.name, str(a.type), a.kwarg_only, bool(a.is_write)) for a in passed)
    extra = arguments[len(FUSED_ADAM_ARGUMENTS):]
    if signature == FUSED_ADAM_ARGUMENTS and all(a.has_default_value() for a in extra):
        return kernel
    return None


def find_fused_adam() -> Callable[..., None] | None:
    try:
        return fused_adam_if_it_fits(getattr(torch, "_fused_adam_", None),
                                      torch.ops.aten._fused_adam_.default._schema)
    except Exception:  # the kernel or its schema missing or moved in a torch not seen yet: go without
        return None


# Checked once, at import: with a torch whose kernel is missing or differs, `FusedAdam` steps through
# torch.optim.Adam instead, slower and the same, never a TypeError mid-run.
FUSED_ADAM = find_fused_adam()


class FusedAdam:
    """torch.optim.Adam(fused=True)'s step over fixed parameter and gradient lists, without its Python.

    torch.optim.Adam looks up its state, groups tensors by device and dtype and checks its arguments on
    every step, which on CPU costs as much as the kernel itself for an ML-1M-sized MF (bench/RESULTS.md).
    This keeps the same state (exp_avg, exp_avg_sq, a float32 step count) and calls the same private
    kernel, `FUSED_ADAM`; where this torch's kernel is missing or has another signature,
    torch.optim.Adam does the step, reading the same gradient buffers.
    """

    BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the lab uses
    EPS = 1e-8

    def __init__(self, params: list[torch.Tensor], grads: list[torch.Tensor], *, lr: float,
                 weight_decay: float) -> None:
        self.params, self.grads, self.lr, self.weight_decay = params, grads, lr, weight_decay
        self.kernel = FUSED_ADAM
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

    def take_state(self, other: FusedAdam) -> None:
        """Go on from `other`'s moments and step count: the same parameters, in new storage (a pack
        that lost some of its runs), so the next step is the one `other` would have taken."""
        if self.kernel is None:
            for mine, theirs in zip(self.params, other.params):
                state = other.fallback.state[theirs]
                self.fallback.state[mine] = {name: value.clone() for name, value in state.items()}
            return
        for mine, theirs in zip(self.exp_avgs + self.exp_avg_sqs, other.exp_avgs + other.exp_avg_sqs):
            mine.copy_(theirs)
        self.count.copy_(other.count)

    def step(self) -> None:
        if self.kernel is None:
            self.fallback.step()
            return
        self.count += 1
        self.kernel(self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, [], self.steps, lr=self.lr,
                    beta1=self.BETAS[0], beta2=self.BETAS[1], weight_decay=self.weight_decay, eps=self.EPS,
                    amsgrad=False, maximize=False)


class StackedAdam:
    """torch.optim.Adam (L2 weight decay added to the gradient, bias correction) over one buffer that
    holds the parameters of V runs, each with its own learning rate and weight decay.

    `member` gives, for each element of the buffer, the run it belongs to. A step is a handful of
    elementwise kernels over the whole buffer whatever V is, in the order and precision of Adam's fused
    kernel (the bias corrections and step sizes in float64, then float32), so a run moves as
    `FusedAdam` would move it alone, to the last bit but for fused multiply-adds. Every tensor stays on
    the device and the step count is a tensor, so the step can be captured in a CUDA graph; `set_lrs`
    writes the new rates into the same tensor, which a captured step then reads. A run given a rate
    of 0 no longer moves.
    """

    BETAS = FusedAdam.BETAS
    EPS = FusedAdam.EPS

    def __init__(self, param: torch.Tensor, member: torch.Tensor, *, lrs: Sequence[float],
                 weight_decays: Sequence[float]) -> None:
        dev = param.device
        self.param, self.member = param, member
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.count = torch.zeros((), dtype=torch.float64, device=dev)
        self.lrs = torch.zeros(len(lrs), dtype=torch.float64, device=dev)
        self.weight_decay = torch.tensor(list(weight_decays), dtype=param.dtype, device=dev).index_select(0, member)
        self.set_lrs(lrs)

    def set_lrs(self, lrs: Sequence[float]) -> None:
        self.lrs.copy_(torch.tensor(list(lrs), dtype=torch.float64))

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        beta1, beta2 = self.BETAS
        self.count += 1
        step_size = (self.lrs / (1 - beta1 ** self.count)).to(self.param.dtype)
        correction2_sqrt = (1 - beta2 ** self.count).sqrt().to(self.param.dtype)
        grad = grad + self.param * self.weight_decay
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (self.exp_avg_sq.sqrt() / correction2_sqrt).add_(self.EPS)
        self.param.addcdiv_(self.exp_avg * step_size.neg().index_select(0, self.member), denom)


class LazyAdam:
    """torch.optim.SparseAdam's step for one embedding table, without sparse tensors: only the rows a
    batch used move, and only their moments; every other row and its moments stay as they are.

    torch's SparseAdam takes the table's gradient as a sparse tensor and coalesces it (sorts its
    rows, sums repeated ones) each step; through autograd that and the sparse bookkeeping cost more
    than the update at batch 512 (bench/RESULTS.md, "An MF epoch over 20M ratings"). Here the
    gradient is the table's dense buffer, in which the hand-written step has written the batch's
    rows (repeated ones summed in batch order, as coalescing sums them) and left every other row
    zero; `step(rows)` reads those rows only. The arithmetic is SparseAdam's, operation for
    operation: the moments' updates, the bias corrections of one step count for the whole table
    (a row's first update in step 1000 is corrected as step 1000), the step size in float64.
    tests/test_optimizers.py checks it against torch.optim.SparseAdam.
    """

    BETAS = FusedAdam.BETAS
    EPS = FusedAdam.EPS

    def __init__(self, param: torch.Tensor, grad: torch.Tensor, *, lr: float) -> None:
        self.param, self.grad, self.lr = param, grad, lr
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.count = 0  # SparseAdam's state["step"]: every step counts, whichever rows it moves

    def step(self, rows: torch.Tensor) -> None:
        """Move `rows`, the distinct rows the batch used (torch.unique's, sorted)."""
        beta1, beta2 = self.BETAS
        self.count += 1
        grad = self.grad.index_select(0, rows)
        old_exp_avg = self.exp_avg.index_select(0, rows)
        old_exp_avg_sq = self.exp_avg_sq.index_select(0, rows)
        # old <- b * old + (1 - b) * new, as old + (1 - b) * (new - old), in SparseAdam's order.
        exp_avg = grad.sub(old_exp_avg).mul_(1 - beta1).add_(old_exp_avg)
        exp_avg_sq = grad.square_().sub_(old_exp_avg_sq).mul_(1 - beta2).add_(old_exp_avg_sq)
        self.exp_avg.index_copy_(0, rows, exp_avg)
        self.exp_avg_sq.index_copy_(0, rows, exp_avg_sq)
        step_size = self.lr * math.sqrt(1 - beta2 ** self.count) / (1 - beta1 ** self.count)
        update = exp_avg.div_(exp_avg_sq.sqrt_().add_(self.EPS)).mul_(-step_size)
        # The rows are distinct, so gathering, adding and writing back is SparseAdam's add, in half
        # the time of index_add_ on a table this size.
        self.param.index_copy_(0, rows, self.param.index_select(0, rows).add_(update))
