"""The training step: what fit() calls with each batch to update the model(s) it trains.

fit() trains a pack of V runs at once (V = 1 for a run alone): runs of one model structure, each with
its own parameters, seed, batch order, learning rate and weight decay. A step takes the pack's batch,
users, items and ratings of [V, B] (model v's batch in row v; [B] for one run), updates every run's
parameters and adds each run's sum of squared errors to `sse` ([V]). Packing is a dimension of the
step, not another trainer: the runs share the kernels, so a pack of V costs far fewer launches than
V runs alone (bench/RESULTS.md, "Packed runs").

The steps:
- `HandStep` (CPU, Adam, MF and DeepMF as `has_hand_grads` allows): the models' hand-written
  gradients (`pack_hand_grads`) and Adam's fused kernel called directly, once per run.
- `LazyHandStep` (CPU, sparse_adam, one run of MF or DeepMF): the same gradients, and the lazy Adam of
  `SparseAdam` on the rows the batch used only (`LazyAdam`), so that a step costs the same whatever
  the catalogue's size.
- `EagerStep` (one run, any model and optimizer): the model's batch loss, autograd, a torch optimizer.
- `PackedStep` (a pack of any pair model, Adam): every run's loss at once through torch.func.vmap over
  the runs' stacked parameters, one backward, `StackedAdam`.
- `GraphStep` (CUDA): either of the last two captured once in a CUDA graph and replayed.
bench/RESULTS.md ("Why the CPU step is built as it is") has the measurements behind these choices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from engine.adam import FusedAdam, LazyAdam, StackedAdam
from engine.errors import ConfigError
from engine.models import (
    PairModel,
    RowModel,
    flatten_parameters,
    has_hand_grads,
    pack_hand_grads,
    parameter_views,
    stack_parameters,
    stacked_views,
)


def make_step(nets: Sequence[PairModel | RowModel], sse: torch.Tensor, *, optimizer: str, lrs: Sequence[float],
              weight_decays: Sequence[float], momentum: float = 0.9, batch_size: int, capture: bool) -> Step:
    """The step that trains `nets`, the runs of a pack (one model for a run alone), with `optimizer`
    and each run's own learning rate and weight decay; it adds each run's squared errors to `sse`.

    On CPU that is `HandStep` for Adam and models whose gradients `hand_grads` writes
    (`has_hand_grads`), and `LazyHandStep` for sparse_adam and one such model. Otherwise a pack trains
    through `PackedStep` (fit() packs only Adam) and a run alone through `EagerStep`; on CUDA, with
    `capture`, either is captured in a CUDA graph."""
    dev = sse.device
    if dev.type == "cpu" and not capture and all(has_hand_grads(net) for net in nets):
        if optimizer == "adam":
            return HandStep(nets, sse, lrs=lrs, weight_decays=weight_decays)
        if optimizer == "sparse_adam" and len(nets) == 1 and not weight_decays[0]:  # (a decay: refused below)
            (net,) = nets
            assert isinstance(net, PairModel)  # has_hand_grads said MF or DeepMF
            return LazyHandStep(net, sse, lr=lrs[0])
    step: Step
    if len(nets) > 1:
        if optimizer != "adam" or not all(isinstance(net, PairModel) for net in nets):
            raise ConfigError(f"a pack trains pair models with adam, not {type(nets[0]).__name__} with {optimizer}")
        step = PackedStep([net for net in nets if isinstance(net, PairModel)], sse, lrs=lrs,
                          weight_decays=weight_decays)
    else:
        (net,) = nets
        step = EagerStep(net, optimizer_for(optimizer, net, dev, lr=lrs[0], weight_decay=weight_decays[0],
                                            momentum=momentum, capturable=capture), sse)
    return GraphStep(step, batch_size) if capture else step


def optimizer_for(name: str, net: PairModel | RowModel, dev: torch.device, *, lr: float, weight_decay: float,
               momentum: float, capturable: bool) -> torch.optim.Optimizer | SparseAdam:
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
        return SparseAdam(net, lr=lr)
    kind = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    # The fused kernel updates every parameter in one call, about half the time of the default
    # per-tensor loop on CPU (bench/RESULTS.md); on CUDA it is also graph-capturable.
    if dev.type in ("cpu", "cuda"):
        return kind(params, lr=lr, weight_decay=weight_decay, fused=True, capturable=capturable)
    return kind(params, lr=lr, weight_decay=weight_decay)


class SparseAdam:
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



class Step:
    """What fit() calls with each batch of its pack; see the module's docstring."""

    sse: torch.Tensor  # each run's sum of squared training errors, [V], added to by every call

    def __call__(self, *batch: torch.Tensor) -> None:
        raise NotImplementedError

    def set_lrs(self, lrs: Sequence[float]) -> None:
        """Each run's learning rate from now on (fit() changes them between epochs)."""
        raise NotImplementedError

    def drop(self, member: int) -> None:
        """Stop moving run `member`'s parameters: it has ended (its epochs done, stopped early,
        cancelled, diverged), and the others train on exactly as before. A run alone is never dropped:
        its end is the end of training."""

    def keep(self, members: Sequence[int]) -> Step:
        """The step of a smaller pack: these members (by their place in this one) only, their
        parameters moved to new storage and their optimizer state with them, so each goes on exactly
        where it was. fit() makes it between epochs once runs have left, so that they cost nothing
        more (a dropped run is still computed with the others, only never applied)."""
        raise NotImplementedError(f"{type(self).__name__} trains one run")

    def zero_grad(self) -> None:
        """Drop the gradients autograd left (a captured step's live in the graph's memory)."""


class EagerStep(Step):
    """The plain step: the model's batch loss, autograd's backward, the optimizer's step."""

    def __init__(self, net: PairModel | RowModel, optimizer: torch.optim.Optimizer | SparseAdam,
                 sse: torch.Tensor) -> None:
        self.net, self.optimizer, self.sse = net, optimizer, sse

    def __call__(self, *batch: torch.Tensor) -> None:
        loss, batch_sse = self.net.batch_loss(*batch)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # loss.backward(), which torch leaves unannotated
        self.optimizer.step()
        self.sse.add_(batch_sse.view_as(self.sse))

    def set_lrs(self, lrs: Sequence[float]) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lrs[0]

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)


class InferenceStep(Step):
    """A step that needs no autograd at all: fit() runs a whole epoch of its steps in inference mode,
    which also drops autograd's per-op bookkeeping, so that entering it is not paid every step."""

    def __call__(self, *batch: torch.Tensor) -> None:
        users, items, ratings = batch
        if torch.is_inference_mode_enabled():
            self._step(users, items, ratings)
        else:
            with torch.inference_mode():
                self._step(users, items, ratings)

    def _step(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        raise NotImplementedError


class HandStep(InferenceStep):
    """`EagerStep` for CPU at a fraction of its cost, for one run or a pack: the same gradients, the
    same Adam update.

    Why it exists: at batch 512 these models are a few thousand flops a step, and on CPU the step's
    time went to machinery, not arithmetic: autograd's graph, a fresh zeroed gradient table per
    embedding per step (the backward of a lookup), and torch.optim's per-step Python (the figures are
    in bench/RESULTS.md). Here the models write their gradients by hand into buffers allocated once
    (`pack_hand_grads`, checked against autograd in tests/test_models.py; `make_step` takes this step
    only for the models `has_hand_grads` allows), and Adam is the kernel that torch.optim.Adam(fused=True)
    itself calls, over the same dense state, so every parameter, every embedding row included, moves
    every step exactly as with torch.optim.Adam (L2 weight decay added to the gradient, bias
    correction). tests/test_trainer.py checks a few hundred steps against the plain nn.Module +
    backward() + torch.optim.Adam step.

    In a pack, the embedding rows of all V runs are read and their gradients written by one set of
    kernels; each run's MLP (DeepMF) is its own products, and Adam's kernel runs once per run, with
    its own learning rate and weight decay, over that run's parameters: so each run's figures are
    those it gets alone, bit for bit (tests/test_packing.py). Adam's cost is memory bandwidth over
    every parameter (dense Adam moves every row every step), which packing cannot share: it is the
    floor of a packed CPU step (bench/RESULTS.md, "Packed runs").
    """

    def __init__(self, nets: Sequence[PairModel | RowModel], sse: torch.Tensor, *, lrs: Sequence[float],
                 weight_decays: Sequence[float]) -> None:
        self.nets, self.sse = list(nets), sse
        # Every parameter of every run becomes a view of one buffer, and every gradient a view of
        # another laid out alike (stack_parameters). The buffer is updated in place, outside autograd.
        params = stack_parameters(nets)
        self.grad = torch.zeros_like(params)
        stacked, grads = stacked_views(nets[0], params, len(nets)), stacked_views(nets[0], self.grad, len(nets))
        self.mse_grads = pack_hand_grads([net for net in nets if isinstance(net, PairModel)], stacked, grads)
        # Adam's kernel once per run, over that run's parameters one tensor each: a run alone moves
        # exactly as it does in any pack (over one buffer of all its parameters, the kernel would
        # round the last elements of small tensors another way, and DeepMF at a high rate turns
        # that into 3e-3 of test RMSE in 3 epochs: measured).
        self.adams = [FusedAdam([p[v] for p in stacked.values()], [g[v] for g in grads.values()], lr=lr,
                                weight_decay=weight_decay)
                      for v, (lr, weight_decay) in enumerate(zip(lrs, weight_decays))]
        self.moving = list(self.adams)

    def _step(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        self.sse += self.mse_grads(users, items, ratings).view_as(self.sse)
        for adam in self.moving:
            adam.step()

    def set_lrs(self, lrs: Sequence[float]) -> None:
        for adam, lr in zip(self.adams, lrs):
            adam.set_lr(lr)

    def drop(self, member: int) -> None:
        # Its gradients are still computed with the others' (one kernel for all), never applied.
        if self.adams[member] in self.moving:
            self.moving.remove(self.adams[member])

    def keep(self, members: Sequence[int]) -> HandStep:
        step = HandStep([self.nets[m] for m in members], self.sse.new_zeros(len(members)),
                        lrs=[self.adams[m].lr for m in members],
                        weight_decays=[self.adams[m].weight_decay for m in members])
        for adam, m in zip(step.adams, members):
            adam.take_state(self.adams[m])
        return step


class LazyHandStep(InferenceStep):
    """`EagerStep` with `SparseAdam` (optimizer sparse_adam) for CPU, for one run of a model whose
    gradients are written by hand: the embedding tables move only in the rows a batch used, under
    torch.optim.SparseAdam's update (`LazyAdam`), and every other parameter (biases, DeepMF's MLP)
    under Adam, as `SparseAdam` does.

    Why it exists: dense Adam passes over every row of both tables each step, which on ML-25M's
    catalogue (2.2M parameters at k=10) is most of the step; and the autograd step with torch's
    SparseAdam spends its time on sparse tensors (building, coalescing, masking them). Here a step is
    the gradients (`hand_grads`, into dense buffers in which only the batch's rows are non-zero), the
    batch's distinct users and items (torch.unique), and Adam on those rows: its cost follows the
    batch, not the catalogue (bench/RESULTS.md, "An MF epoch over 20M ratings").
    """

    def __init__(self, net: PairModel, sse: torch.Tensor, *, lr: float) -> None:
        self.net, self.sse = net, sse
        params = flatten_parameters(net)
        self.grad = torch.zeros_like(params)
        views, grads = parameter_views(net, params), parameter_views(net, self.grad)
        self.mse_grads = net.hand_grads(grads)
        tables = ("user_emb.weight", "item_emb.weight")
        self.users, self.items = (LazyAdam(views[name], grads[name], lr=lr) for name in tables)
        dense = [name for name in views if name not in tables]
        # The rest as torch.optim.Adam moves it (SparseAdam's dense part), without its Python.
        self.dense = FusedAdam([views[name] for name in dense], [grads[name] for name in dense], lr=lr,
                               weight_decay=0.0) if dense else None

    def _step(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        self.sse += self.mse_grads(users, items, ratings)
        self.users.step(torch.unique(users))
        self.items.step(torch.unique(items))
        if self.dense is not None:
            # The first moment of a bias no batch uses decays by beta1 each step, and within ~700 steps
            # is a subnormal float, on which the CPU's vector units run 20x slower; on a large
            # catalogue most biases are there at any time, and that made Adam over them most of the
            # step (bench/RESULTS.md, "An MF epoch over 20M ratings"). Flushed to zero instead: a
            # difference below 1.2e-38. fit() never sets the flag otherwise, so it is set back off.
            torch.set_flush_denormal(True)
            try:
                self.dense.step()
            finally:
                torch.set_flush_denormal(False)

    def set_lrs(self, lrs: Sequence[float]) -> None:
        self.users.lr = self.items.lr = lrs[0]
        if self.dense is not None:
            self.dense.set_lr(lrs[0])


class PackedStep(Step):
    """The autograd step over a pack of V pair models of one structure: each run's `loss_terms` at
    once, through torch.func.vmap over the runs' parameters stacked in one buffer
    (`stack_parameters`), weighed with each run's reg and reg_bias; one backward; `StackedAdam`.

    Any pair model packs this way, with no gradients written by hand. Every tensor stays on the
    device and nothing waits for the host, so on CUDA `GraphStep` captures the whole step, Adam
    included; a run that ends is given a learning rate of 0, which the captured step then reads.
    """

    def __init__(self, nets: Sequence[PairModel], sse: torch.Tensor, *, lrs: Sequence[float],
                 weight_decays: Sequence[float]) -> None:
        self.nets, self.net, self.sse, self.count = list(nets), nets[0], sse, len(nets)
        self.weight_decays = list(weight_decays)
        self.params = stack_parameters(nets).requires_grad_()
        # For each element of the buffer, the run it belongs to (the padding between parameters: 0,
        # where it stays zero as everything there is zero).
        member = torch.zeros(len(self.params), dtype=torch.int32, device=sse.device)
        for view in stacked_views(self.net, member, self.count).values():
            view.copy_(torch.arange(self.count, device=sse.device).view(-1, *[1] * (view.dim() - 1)).expand_as(view))
        self.adam = StackedAdam(self.params.detach(), member, lrs=lrs, weight_decays=weight_decays)
        self.lrs, self.moving = list(lrs), [True] * self.count
        self.reg = torch.tensor([net.reg for net in nets], device=sse.device)
        self.reg_bias = torch.tensor([net.reg_bias if net.bias else 0.0 for net in nets], device=sse.device)
        norms, bias_norms = bool(self.reg.any()), bool(self.reg_bias.any())
        terms = _LossTerms(self.net, norms=norms, bias_norms=bias_norms)

        def run_terms(params: dict[str, torch.Tensor], users: torch.Tensor, items: torch.Tensor,
                      ratings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            out: tuple[torch.Tensor, torch.Tensor, torch.Tensor] = torch.func.functional_call(
                terms, params, (users, items, ratings))
            return out
        self.terms = torch.func.vmap(run_terms)

    def __call__(self, *batch: torch.Tensor) -> None:
        users, items, ratings = (t.view(self.count, -1) for t in batch)  # [B] when one run is left
        params = {f"net.{name}": view for name, view in stacked_views(self.net, self.params, self.count).items()}
        mse, norms, bias_norms = self.terms(params, users, items, ratings)
        size = users.shape[-1]
        loss = mse + (self.reg * norms + self.reg_bias * bias_norms) / size
        self.params.grad = None
        torch.autograd.backward(loss.sum())  # the runs share no parameter: each gets its own gradient
        assert self.params.grad is not None
        self.adam.step(self.params.grad)
        self.sse.add_(mse.detach() * size)

    def set_lrs(self, lrs: Sequence[float]) -> None:
        self.lrs = list(lrs)
        self.adam.set_lrs([lr if moving else 0.0 for lr, moving in zip(self.lrs, self.moving)])

    def drop(self, member: int) -> None:
        self.moving[member] = False
        self.set_lrs(self.lrs)

    def keep(self, members: Sequence[int]) -> PackedStep:
        step = PackedStep([self.nets[m] for m in members], self.sse.new_zeros(len(members)),
                          lrs=[self.lrs[m] for m in members], weight_decays=[self.weight_decays[m] for m in members])
        index = torch.tensor(list(members), device=self.sse.device)
        for mine, theirs in ((step.adam.exp_avg, self.adam.exp_avg), (step.adam.exp_avg_sq, self.adam.exp_avg_sq)):
            for name, view in stacked_views(self.net, mine, len(members)).items():
                view.copy_(stacked_views(self.net, theirs, self.count)[name].index_select(0, index))
        step.adam.count.copy_(self.adam.count)
        return step

    def zero_grad(self) -> None:
        self.params.grad = None


class _LossTerms(nn.Module):
    """`net.loss_terms` as a module's forward, which torch.func.functional_call calls with the
    parameters of one run of a pack in place of `net`'s."""

    def __init__(self, net: PairModel, *, norms: bool, bias_norms: bool) -> None:
        super().__init__()
        self.net, self.norms, self.bias_norms = net, norms, bias_norms

    def forward(self, users: torch.Tensor, items: torch.Tensor,
                ratings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.net.loss_terms(users, items, ratings, norms=self.norms, bias_norms=self.bias_norms)


class GraphStep(Step):
    """An `EagerStep` (one run) or `PackedStep` (a pack) captured once in a CUDA graph and replayed for
    every full batch.

    Capturing needs a few eager steps first (on a side stream, as torch.cuda.graphs asks) so that
    Adam's state exists; those are real training steps on real batches, not extra work. The short
    last batch of an epoch has another shape, so it runs eagerly rather than being padded into the
    loss. If capture fails, every later step runs eagerly: slower, same results.
    """

    WARMUP = 3

    def __init__(self, eager: EagerStep | PackedStep, batch_size: int) -> None:
        self.eager, self.sse, self.batch_size = eager, eager.sse, batch_size
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_only = False
        self.warmed = 0
        # What a replay reads its batch from: made like the first full batch ([B] or [V, B]).
        self.batch: tuple[torch.Tensor, ...] = ()

    def __call__(self, *batch: torch.Tensor) -> None:
        # Streams, capture and replay use the *current* CUDA device, which need not be ours (cuda:1).
        with torch.cuda.device(self.sse.device):
            self._step(*batch)

    def _step(self, *batch: torch.Tensor) -> None:
        if self.eager_only or batch[0].shape[-1] != self.batch_size:
            return self._eager(*batch)
        if self.graph is None and self.warmed < self.WARMUP:
            side = torch.cuda.Stream()  # type: ignore[no-untyped-call]  # torch leaves its __new__ unannotated
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._eager(*batch)
            torch.cuda.current_stream().wait_stream(side)
            self.warmed += 1
            return None
        if not self.batch:
            self.batch = tuple(torch.empty_like(t, memory_format=torch.contiguous_format) for t in batch)
        for kept, given in zip(self.batch, batch):
            kept.copy_(given)
        if self.graph is None:
            try:
                self.graph = self._capture()
            except RuntimeError:
                # Capturing never runs the kernels, so the model is untouched: train this batch eagerly.
                self.eager_only = True
                torch.cuda.synchronize()
                return self._eager(*batch)
        self.graph.replay()
        return None

    def set_lrs(self, lrs: Sequence[float]) -> None:
        # A pack's rates are tensors that the replays read. A run alone is captured only with a rate
        # that never changes (fit()); this is the first epoch's, set before any capture.
        self.eager.set_lrs(lrs)

    def drop(self, member: int) -> None:
        self.eager.drop(member)

    def keep(self, members: Sequence[int]) -> GraphStep:
        if not isinstance(self.eager, PackedStep):
            raise NotImplementedError("a captured run alone is never made smaller")
        return GraphStep(self.eager.keep(members), self.batch_size)  # captured again, for the new shapes

    def _eager(self, *batch: torch.Tensor) -> None:
        # Gradients left by a replay live in the graph's private memory; dropping them (set_to_none
        # inside the step) makes the eager backward allocate fresh ones instead of adding to them.
        self.eager(*batch)

    def _capture(self) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        # With no .grad tensors, the captured backward allocates them in the graph's own pool.
        self.eager.zero_grad()
        with torch.cuda.graph(graph):
            self.eager(*self.batch)
        return graph
