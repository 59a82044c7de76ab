"""The rating models: the reference lab's matrix factorisation and Deep Matrix Factorisation, the
base classes every model builds on, and `build_model`, which makes any of them by name.

Two kinds of model train here. A *pair model* (`PairModel`: MF, DeepMF, and GMF and NeuMF in
engine/ncf.py) predicts one rating from a (user, item) pair through embedding tables and trains on
shuffled batches of rating rows, which the trainer deals. A *row model* (`RowModel`: I-AutoRec in
engine/autorec.py, GLocal-K in engine/glocal_k.py) reconstructs whole rows of the rating matrix and
brings its own batches. Both give the trainer `batch_loss(*batch) -> (loss, sum of squared errors)`.

With default arguments both are the lab's models exactly: the same layers, created in the same order,
with PyTorch's default initialisation, so that the same seed gives the same starting weights. Every
option beyond the lab (biases, other hidden sizes, dropout, a normal initialisation) is off by default.

Each model can also differentiate its batch loss by hand (`hand_grads`), which the CPU trainer uses
instead of autograd: the same gradients `F.mse_loss(model(u, i), r).backward()` leaves, written
straight into buffers allocated once, because at batch 512 on CPU autograd's bookkeeping costs more
than the arithmetic (bench/RESULTS.md, "Why the CPU step is built as it is"). The hand-written
gradients hold only for the exact structures `has_hand_grads` lists; tests/test_models.py checks them
against autograd for every option.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeGuard

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ConfigError

MODELS = ("mf", "deepmf", "gmf", "neumf", "autorec", "glocal_k")
ROW_MODELS = ("autorec", "glocal_k")  # the RowModels among them

# (users, items, ratings) -> the batch's sum of squared errors, the gradients left in the buffers.
HandGrads = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# A model's own part of them (`_hand_head`), over the V models of a pack at once, their batches as one
# of V * B rows (model v's rows are rows v * n_users .. of the stacked tables): (users, items) ->
# (prediction without biases, what the backward needs), and (upstream, that) -> (d loss / d user
# rows, d loss / d item rows). The upstream gradient d loss / d prediction is the very tensor the
# prediction came in, overwritten in place (pack_hand_grads turns one into the other), so that a
# head may keep views of it made once (DeepMF's).
_PredictRows = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, Any]]
_BackwardRows = Callable[[torch.Tensor, Any], tuple[torch.Tensor, torch.Tensor]]

# ReLU's backward as autograd computes it: the gradient where the ReLU's output is > 0, else 0.
_relu_backward = torch.ops.aten.threshold_backward.default


def _scatter_into(table_grad: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """A function (index, row_grads) that writes into `table_grad` the gradient of a table through
    `table.index_select(0, index)`: zero, plus each row's gradient added at its index (repeated
    indices add up, in batch order, as in autograd's own backward).

    Only the rows the previous call wrote are zeroed again, not the whole table: the rest are still
    zero, since nothing else writes into a gradient buffer (Adam's kernel reads it). For ML-1M's
    tables that is a few hundred rows rather than 97k floats a step, about 18 us (bench/RESULTS.md)."""
    if table_grad.dim() == 2 and table_grad.shape[1] % 2 == 0 and table_grad.storage_offset() % 2 == 0:
        # Rows of an even width as complex64 rows of half the width: adding a complex number is adding
        # its two floats, so the sums are the same, bit for bit, and index_add_ (per element here)
        # does half the work (bench/RESULTS.md). The row gradients the models pass are contiguous rows
        # or even-width column slices of them, so they view alike. Float32 only: has_hand_grads.
        table = table_grad.view(torch.complex64)

        def as_rows(row_grads: torch.Tensor) -> torch.Tensor:
            return row_grads.view(torch.complex64)
    else:
        table = table_grad

        def as_rows(row_grads: torch.Tensor) -> torch.Tensor:
            return row_grads
    table.zero_()
    written = table_grad.new_empty(0, dtype=torch.long)

    def scatter(index: torch.Tensor, row_grads: torch.Tensor) -> None:
        nonlocal written
        table.index_fill_(0, written, 0)
        table.index_add_(0, index, as_rows(row_grads))
        written = index
    return scatter


# Where each parameter starts in the buffer `stack_parameters` makes: at a multiple of 64 bytes, as a
# tensor of its own would (PyTorch's CPU allocator aligns to 64 bytes), so vector kernels and MKL see
# operands aligned as before, and every table can be viewed as complex64 (`_scatter_into`), bias
# models' included. The padding between parameters stays zero: Adam leaves a zero with a zero gradient
# at zero.
_ALIGN_BYTES = 64


def stack_parameters(nets: Sequence[nn.Module]) -> torch.Tensor:
    """Move every parameter of the models `nets`, all of one structure (the runs of a pack, or one
    model), into one new contiguous buffer and return it. Each parameter is stored for all the models
    side by side ([V, *shape], in `named_parameters()` order, see `stacked_views`), and each model's
    parameter's `.data` becomes its own slice of that, holding the same values: every model, its
    seeded initial weights and its `state_dict()` are unchanged.

    Why: a step can then read and write the embedding rows of every model at once, one kernel over
    [V, ...] instead of V (packing, engine/steps.py), and their gradients lie alike in one buffer."""
    params = [list(net.parameters()) for net in nets]
    if len({tuple(tuple(p.shape) for p in ps) for ps in params}) != 1:
        raise ValueError("the models of a pack must have the same parameters, of the same shapes")
    _, size = _layout(params[0], len(nets))
    flat = params[0][0].new_zeros(size)
    for name, stacked in stacked_views(nets[0], flat, len(nets)).items():
        for v, net in enumerate(nets):
            p = net.get_parameter(name)
            stacked[v].copy_(p.detach())
            p.data = stacked[v]
    return flat


def stacked_views(net: nn.Module, flat: torch.Tensor, count: int = 1) -> dict[str, torch.Tensor]:
    """`flat`, a buffer laid out as `stack_parameters` lays out `count` models shaped like `net` (their
    parameters, or a gradient buffer), as one [count, *shape] view per parameter, keyed by its name in
    `named_parameters()`."""
    named = list(net.named_parameters())
    offsets, _ = _layout([p for _, p in named], count)
    return {name: flat[offset:offset + count * p.numel()].view(count, *p.shape)
            for (name, p), offset in zip(named, offsets)}


def flatten_parameters(net: nn.Module) -> torch.Tensor:
    """`stack_parameters` of one model: every parameter of `net` in one buffer, in a row."""
    return stack_parameters([net])


def parameter_views(net: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """`flat`, laid out as `flatten_parameters(net)`, as one view per parameter of `net`, by name."""
    return {name: view[0] for name, view in stacked_views(net, flat).items()}


def _layout(params: Sequence[torch.Tensor], count: int = 1) -> tuple[list[int], int]:
    """Each parameter's offset in the flat buffer of `count` models, and the buffer's size, in elements."""
    offsets, size = [], 0
    for p in params:
        align = max(1, _ALIGN_BYTES // p.element_size())
        size = -(-size // align) * align
        offsets.append(size)
        size += count * p.numel()
    return offsets, size


class RowModel(nn.Module):
    """A model that trains on whole rows of the rating matrix (an item's ratings by every user, say)
    rather than on (user, item, rating) rows, and so deals its own batches.

    The trainer calls `attach` once with the training ratings on the model's device, then each epoch
    steps through `batches`, minimising `batch_loss`; `forward(users, items)` predicts from the
    attached ratings, as every model's forward does."""

    def attach(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        raise NotImplementedError

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        """One epoch's batches of about `batch_size` rows, in an order drawn from `generator`."""
        raise NotImplementedError

    def n_batches(self, batch_size: int) -> int:
        """How many batches `batches` deals an epoch."""
        raise NotImplementedError

    def batch_loss(self, *batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss to minimise, its regularisation included; the sum of squared errors on the batch's
        training ratings, detached), from which the trainer reports the epoch's train RMSE."""
        raise NotImplementedError


class PairModel(nn.Module):
    """User and item embedding tables, plus the optional user, item and global biases; subclasses
    predict from the looked-up rows.

    Training minimises, over a batch of B ratings, the lab's MSE plus the classic per-rating L2 of
    matrix factorisation (Koren et al.; Surprise's SVD) on the rows the batch uses:
    mean((prediction - rating)^2) + reg * mean(|p_u|^2 + |q_i|^2) + reg_bias * mean(b_u^2 + b_i^2).
    A row is penalised as often as it is used, unlike Adam's weight decay, which pulls every row of
    every table at every step."""

    def __init__(self, n_users: int, n_items: int, k: int, bias: bool, init_std: float, *,
                 emb_dropout: float = 0.0, reg: float = 0.0, reg_bias: float = 0.0) -> None:
        super().__init__()
        self.reg, self.reg_bias, self.emb_dropout = reg, reg_bias, emb_dropout
        # Set by the trainer for a lazy optimizer (sparse_adam): the tables' gradients become sparse.
        self.sparse = False
        # Created first and in this order, as the lab does, so seeded initial weights match it.
        self.user_emb = nn.Embedding(n_users, k)
        self.item_emb = nn.Embedding(n_items, k)
        if init_std > 0:
            nn.init.normal_(self.user_emb.weight, std=init_std)
            nn.init.normal_(self.item_emb.weight, std=init_std)
        self.bias = bias
        if bias:
            # Plain zero tensors rather than nn.Embedding: they draw nothing from the random generator,
            # so the lab's layers keep their seeded initial weights, and the model starts exactly where
            # the bias-free one starts.
            self.user_bias = nn.Parameter(torch.zeros(n_users))
            self.item_bias = nn.Parameter(torch.zeros(n_items))
            self.global_bias = nn.Parameter(torch.zeros(()))

    def lookup(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's user and item rows, with embedding dropout when training."""
        user, item = self.rows(self.user_emb, users), self.rows(self.item_emb, items)
        if self.emb_dropout > 0:
            user = F.dropout(user, self.emb_dropout, self.training)
            item = F.dropout(item, self.emb_dropout, self.training)
        return user, item

    def rows(self, table: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
        if self.sparse:
            return F.embedding(index, table.weight, sparse=True)
        # The same rows nn.Embedding would return, through index_select: its backward (one index_add
        # into a zeroed table) is faster on CPU than embedding's own backward (bench/RESULTS.md).
        return table.weight.index_select(0, index)

    def biases(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user_bias.index_select(0, users) + self.item_bias.index_select(0, items) + self.global_bias

    def tables(self) -> list[tuple[nn.Embedding, bool]]:
        """Every embedding table, with whether users (True) or items index it; NeuMF has two pairs."""
        return [(self.user_emb, True), (self.item_emb, False)]

    def batch_loss(self, users: torch.Tensor, items: torch.Tensor,
                   ratings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss to minimise, the batch's sum of squared errors): see the class's docstring."""
        mse, norms, bias_norms = self.loss_terms(users, items, ratings, norms=bool(self.reg),
                                                 bias_norms=bool(self.reg_bias and self.bias))
        loss = mse
        if self.reg:
            loss = loss + self.reg * norms / len(ratings)
        if self.reg_bias and self.bias:
            loss = loss + self.reg_bias * bias_norms / len(ratings)
        return loss, mse.detach() * len(ratings)

    def loss_terms(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, *, norms: bool,
                   bias_norms: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The parts of `batch_loss` before they are weighed: the MSE, the sum of the squared rows the
        batch uses (|p_u|^2 + |q_i|^2, of every table), and of its squared biases; each sum only if
        asked for, else 0. The packed step weighs them with each run's own reg and reg_bias."""
        mse = F.mse_loss(self(users, items), ratings)
        zero = mse.new_zeros(())
        row_norms = sum((self.rows(table, users if by_user else items).square().sum()
                         for table, by_user in self.tables()), zero) if norms else zero
        if bias_norms and self.bias:
            bias_sum = self.user_bias.index_select(0, users).square().sum() + \
                self.item_bias.index_select(0, items).square().sum()
        else:
            bias_sum = zero
        return mse, row_norms, bias_sum

    def hand_grads(self, grads: dict[str, torch.Tensor]) -> HandGrads:
        """A function of a batch (users, items, ratings) that overwrites `grads`, a buffer per parameter
        keyed by its name in `named_parameters()`, with the gradient of `batch_loss(users, items, ratings)`
        (the MSE and the reg terms), and returns the batch's sum of squared errors: `pack_hand_grads`
        for a pack of this one model. Refused (ValueError) for a model outside `has_hand_grads`' list."""
        params = {name: p.detach().unsqueeze(0) for name, p in self.named_parameters()}
        of_pack = pack_hand_grads([self], params, {name: grad.unsqueeze(0) for name, grad in grads.items()})

        def mse_grads(users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
            return of_pack(users, items, ratings)[0]
        return mse_grads

    def _hand_head(self, params: dict[str, torch.Tensor],
                   grads: dict[str, torch.Tensor]) -> tuple[_PredictRows, _BackwardRows]:
        """The model's own part of `pack_hand_grads`, for the pack whose stacked parameters and
        gradient buffers ([V, *shape] each) are `params` and `grads`, as two functions:
        `predict_rows(users, items) -> (prediction without biases, saved for the backward)`, which
        reads the batch's embedding rows, and
        `backward_rows(upstream, saved) -> (d loss / d user rows, d loss / d item rows)`,
        which also fills `grads` for the model's parameters other than the tables and biases."""
        raise NotImplementedError


def pack_hand_grads(nets: Sequence[PairModel], params: dict[str, torch.Tensor],
                    grads: dict[str, torch.Tensor]) -> HandGrads:
    """The hand-written gradients of a pack: the V models `nets`, of one structure that `has_hand_grads`
    allows, whose parameters are stacked in `params` ([V, *shape] per name, the storage the models'
    parameters view: `stack_parameters`), with gradient buffers `grads` laid out alike.

    Returns a function of the pack's batches (users, items, ratings: [V, B] each, model v's batch in
    row v; or [B] for one model) that overwrites `grads` with the gradient of each model's
    `batch_loss` on its own batch (the MSE and its own reg terms) and returns the V sums of squared
    errors. The models share nothing but the kernels: model v's rows and gradients stay its own.

    The embedding tables' buffers come out whole, zero in the rows the batch does not touch, so that
    a dense optimizer sees what `backward()` would have left in `.grad`. The function works on the
    parameters' storage (detached, so it sees every in-place update and needs no autograd) and binds
    everything it needs now, so a call looks nothing up.

    Refused (ValueError) for a model outside `has_hand_grads`' list, whose gradients these are not.
    """
    first = nets[0]
    if not all(has_hand_grads(net) and type(net) is type(first) and net.bias == first.bias for net in nets):
        raise ValueError(f"no hand-written gradients for this {type(first).__name__}: "
                         "its structure is not one has_hand_grads lists")
    count = len(nets)
    (n_users, k), n_items = params["user_emb.weight"].shape[1:], params["item_emb.weight"].shape[1]
    # Every model's table as rows of one: model v's user u is row v * n_users + u.
    user_table, item_table = params["user_emb.weight"].view(-1, k), params["item_emb.weight"].view(-1, k)
    user_offsets = torch.arange(count, device=user_table.device).mul_(n_users).unsqueeze(1)
    item_offsets = torch.arange(count, device=user_table.device).mul_(n_items).unsqueeze(1)
    scatter_user_table = _scatter_into(grads["user_emb.weight"].view(-1, k))
    scatter_item_table = _scatter_into(grads["item_emb.weight"].view(-1, k))
    predict_rows, backward_rows = first._hand_head(params, grads)
    bias = first.bias
    # Each model's own penalties, as a column that scales each row of the pack's batch by its model's.
    reg = torch.tensor([net.reg for net in nets], device=user_table.device)
    reg_bias = torch.tensor([net.reg_bias if bias else 0.0 for net in nets], device=user_table.device)
    use_reg, use_reg_bias = bool(reg.any()), bool(reg_bias.any())
    scales: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def scale_of(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """d/dp of reg * sum(|p_u|^2) / B per use of a row: 2 * reg / B for each row of the batch."""
        if size not in scales:
            scales[size] = ((reg * (2.0 / size)).repeat_interleave(size).unsqueeze(1),
                            (reg_bias * (2.0 / size)).repeat_interleave(size))
        return scales[size]

    if bias:
        user_bias, item_bias = params["user_bias"].view(-1), params["item_bias"].view(-1)
        global_bias = params["global_bias"].view(count, 1)
        scatter_user_bias, scatter_item_bias = (_scatter_into(grads["user_bias"].view(-1)),
                                                _scatter_into(grads["item_bias"].view(-1)))
        global_bias_grad = grads["global_bias"].view(count)

    def mse_grads(users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        size = users.shape[-1]
        if count > 1:
            users, items = (users + user_offsets).view(-1), (items + item_offsets).view(-1)
        error, saved = predict_rows(users, items)  # the prediction, about to become the error
        if bias:
            error += user_bias.index_select(0, users) + item_bias.index_select(0, items)
            error.view(count, size).add_(global_bias)
        error -= ratings.reshape(-1)
        per_model = error.view(count, size)
        sse: torch.Tensor = torch.linalg.vecdot(per_model, per_model)
        upstream = error.mul_(2.0 / size)  # d loss / d prediction, as mse_loss's backward has it
        user_grad, item_grad = backward_rows(upstream, saved)
        if use_reg:
            row_scale, _ = scale_of(size)
            user_grad = user_grad + user_table.index_select(0, users) * row_scale
            item_grad = item_grad + item_table.index_select(0, items) * row_scale
        scatter_user_table(users, user_grad)
        scatter_item_table(items, item_grad)
        if bias:
            torch.sum(upstream.view(count, size), 1, out=global_bias_grad)
            user_upstream = item_upstream = upstream
            if use_reg_bias:
                _, bias_scale = scale_of(size)
                user_upstream = upstream + user_bias.index_select(0, users) * bias_scale
                item_upstream = upstream + item_bias.index_select(0, items) * bias_scale
            scatter_user_bias(users, user_upstream)
            scatter_item_bias(items, item_upstream)
        return sse

    return mse_grads


def mlp_layers(width: int, hidden: Sequence[int], dropout: float) -> tuple[list[nn.Module], int]:
    """A Linear layer and a ReLU per size in `hidden`, each followed by dropout when > 0, from an input
    of `width`; and the last layer's width. Made in order, so seeded initial weights are the lab's."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    return layers, width


class MF(PairModel):
    """Prediction = <user embedding, item embedding> (+ biases)."""

    def __init__(self, n_users: int, n_items: int, k: int = 10, *, bias: bool = False, init_std: float = 0.0,
                 emb_dropout: float = 0.0, reg: float = 0.0, reg_bias: float = 0.0) -> None:
        super().__init__(n_users, n_items, k, bias, init_std, emb_dropout=emb_dropout, reg=reg, reg_bias=reg_bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user, item = self.lookup(users, items)
        prediction = (user * item).sum(dim=1)
        return prediction + self.biases(users, items) if self.bias else prediction

    def _hand_head(self, params: dict[str, torch.Tensor],
                   grads: dict[str, torch.Tensor]) -> tuple[_PredictRows, _BackwardRows]:
        k = self.user_emb.embedding_dim
        user_table, item_table = params["user_emb.weight"].view(-1, k), params["item_emb.weight"].view(-1, k)

        def predict_rows(
            users: torch.Tensor, items: torch.Tensor
        ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
            user, item = user_table.index_select(0, users), item_table.index_select(0, items)
            # forward's (user * item).sum(dim=1), the same sums in one call, one kernel fewer.
            return torch.linalg.vecdot(user, item), (user, item)

        def backward_rows(upstream: torch.Tensor, saved: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            user, item = saved
            upstream = upstream.unsqueeze(1)
            return item * upstream, user * upstream

        return predict_rows, backward_rows


class DeepMF(PairModel):
    """Prediction = MLP(cat(user embedding, item embedding)) (+ biases); the lab's MLP is 2K-10-5-1."""

    def __init__(self, n_users: int, n_items: int, k: int = 10, *, hidden: Sequence[int] = (10, 5),
                 bias: bool = False, dropout: float = 0.0, init_std: float = 0.0, emb_dropout: float = 0.0,
                 reg: float = 0.0, reg_bias: float = 0.0) -> None:
        super().__init__(n_users, n_items, k, bias, init_std, emb_dropout=emb_dropout, reg=reg, reg_bias=reg_bias)
        layers, width = mlp_layers(2 * k, hidden, dropout)
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat(self.lookup(users, items), dim=1)
        prediction: torch.Tensor = self.mlp(x).squeeze(-1)  # nn.Module's __call__ is typed Any
        return prediction + self.biases(users, items) if self.bias else prediction

    def _hand_head(self, params: dict[str, torch.Tensor],
                   grads: dict[str, torch.Tensor]) -> tuple[_PredictRows, _BackwardRows]:
        # The embedding rows of all the runs are read and written at once, but each run's MLP is its
        # own few matrix products, the very ones of a run alone: a batched product of several runs
        # sums in another order, and DeepMF at a high rate turns that last bit into 6e-4 of test
        # RMSE in 3 epochs (measured); a pack must give each run exactly what it would get alone.
        k = self.user_emb.embedding_dim
        user_table, item_table = params["user_emb.weight"].view(-1, k), params["item_emb.weight"].view(-1, k)
        count = len(params["user_emb.weight"])
        # Every view a step reads or writes through is made here, once: each run's weights (and the
        # hidden ones transposed, as mm wants them), biases and their gradient buffers. Made afresh
        # every step, these ~20 selects, slices and views cost 45 us of a 340 us step alone
        # (bench/RESULTS.md, "DeepMF's step without its views"). They
        # never go stale: the buffers they view live as long as this head, and a step over new
        # buffers (HandStep, Step.keep) makes a new head.
        runs = [[_RunLayer(params[f"mlp.{n}.weight"][run], params[f"mlp.{n}.bias"][run],
                           grads[f"mlp.{n}.weight"][run], grads[f"mlp.{n}.bias"][run])
                 for n, m in enumerate(self.mlp) if isinstance(m, nn.Linear)] for run in range(count)]
        # And the views of the per-batch buffers, per batch size (an epoch's last batch is shorter).
        batches: dict[int, _DeepBatch] = {}

        def predict_rows(users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, _DeepSaved]:
            size = len(users) // count
            if size not in batches:
                batches[size] = _DeepBatch(user_table, count, size, k)
            batch = batches[size]
            torch.index_select(user_table, 0, users, out=batch.input_users)
            torch.index_select(item_table, 0, items, out=batch.input_items)
            every_input = []  # each run's input of every layer, for the backward
            for layers, x, prediction in zip(runs, batch.run_inputs, batch.run_predictions):
                inputs = [x]
                # mm then add_, and addmv for the last layer (one output), rather than F.linear: the
                # same sums without addmm's broadcast copy of the bias (bench/RESULTS.md).
                for layer in layers[:-1]:
                    inputs.append(torch.mm(inputs[-1], layer.weight_t).add_(layer.bias).relu_())
                torch.addmv(layers[-1].bias, inputs[-1], layers[-1].weight_row, out=prediction)
                every_input.append(inputs)
            return batch.prediction, (batch, every_input)

        def backward_rows(upstream: torch.Tensor, saved: _DeepSaved) -> tuple[torch.Tensor, torch.Tensor]:
            batch, every_input = saved
            # The views of it made with the batch's buffers (see _BackwardRows).
            assert upstream is batch.prediction, "backward_rows takes the prediction predict_rows returned"
            for layers, up, up_t, inputs, rows in zip(runs, batch.run_upstreams, batch.run_upstreams_t, every_input,
                                                      batch.run_rows):
                grad, grad_t = up, up_t  # d loss / d (output of layer n), batch x width, and transposed
                for n in range(len(layers) - 1, -1, -1):
                    layer = layers[n]
                    torch.mm(grad_t, inputs[n], out=layer.weight_grad)
                    torch.sum(grad, 0, out=layer.bias_grad)
                    if n > 0:  # d loss / d (input of layer n), through the ReLU that made that input
                        grad = _relu_backward(grad.mm(layer.weight), inputs[n], 0)
                        grad_t = grad.t()
                    else:  # d loss / d (first layer's input), the run's [user rows | item rows]
                        torch.mm(grad, layer.weight, out=rows)
            return batch.rows_users, batch.rows_items

        return predict_rows, backward_rows


class _RunLayer:
    """One run's Linear layer in DeepMF's hand-written step: views of its weight ([out, in]), the
    weight transposed (as mm wants it) and as a row (addmv's vector, for the last layer's one
    output), its bias, and their gradient buffers."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, weight_grad: torch.Tensor,
                 bias_grad: torch.Tensor) -> None:
        self.weight, self.weight_t, self.weight_row, self.bias = weight, weight.t(), weight[0], bias
        self.weight_grad, self.bias_grad = weight_grad, bias_grad


class _DeepBatch:
    """The buffers of DeepMF's hand-written step for a pack of `count` runs at one batch size, kept
    from step to step, with the views each step reads and writes through, made once:
    - the first layer's input, [user rows | item rows] per row of the pack's batch: its two halves
      (which index_select fills with out=, saving torch.cat's copy and allocation) and each run's rows;
    - the predictions, [count, size]: flat (what pack_hand_grads turns into d loss / d prediction in
      place), and each run's as a column and as a row (the last layer's upstream gradient for mm);
    - d loss / d first layer's input, each run's rows, and the user and item halves of all of them."""

    def __init__(self, like: torch.Tensor, count: int, size: int, k: int) -> None:
        x = like.new_empty(count * size, 2 * k)
        self.input_users, self.input_items = x[:, :k], x[:, k:]
        self.run_inputs = x.view(count, size, 2 * k).unbind(0)
        predictions = like.new_empty(count, size)
        self.prediction = predictions.view(-1)
        self.run_predictions = predictions.unbind(0)
        self.run_upstreams = [p.unsqueeze(1) for p in self.run_predictions]
        self.run_upstreams_t = [p.t() for p in self.run_upstreams]
        rows = like.new_empty(count, size, 2 * k)
        self.run_rows = rows.unbind(0)
        self.rows_users, self.rows_items = rows.view(-1, 2 * k)[:, :k], rows.view(-1, 2 * k)[:, k:]


# What DeepMF's predict_rows hands its backward_rows: the batch's buffers, and each run's input of
# every layer.
_DeepSaved = tuple[_DeepBatch, list[list[torch.Tensor]]]


# The models whose gradients are written by hand (`has_hand_grads` says for which structures exactly).
HAND_GRADS = ("mf", "deepmf")


def has_hand_grads(net: nn.Module) -> TypeGuard[MF | DeepMF]:
    """Whether `net.hand_grads` gives `net`'s true gradients. It does only for the structures it was
    written for and is tested against autograd for: MF or DeepMF as `build_model` makes them without
    dropout, with or without biases; that is the two embedding tables (and the biases), then for
    DeepMF (Linear, ReLU) pairs and a last Linear to one output; float32 parameters that all train.
    Anything else (another activation, a norm layer, a subclass, one more parameter, module or
    buffer) is refused, so that the trainer falls back to autograd rather than train another model."""
    if not (type(net) is MF or type(net) is DeepMF):  # exact: a subclass may compute something else
        return False
    n_users, k = net.user_emb.weight.shape
    n_items = net.item_emb.weight.shape[0]
    modules: dict[str, type] = {"": type(net), "user_emb": nn.Embedding, "item_emb": nn.Embedding}
    # A layer without out_features puts None in its shapes, which then match no parameter's.
    shapes: dict[str, tuple[int | None, ...]] = {"user_emb.weight": (n_users, k), "item_emb.weight": (n_items, k)}
    if net.bias:
        shapes |= {"user_bias": (n_users,), "item_bias": (n_items,), "global_bias": ()}
    if type(net) is DeepMF:
        if len(net.mlp) % 2 == 0:  # (Linear, ReLU) pairs and one more Linear make an odd count
            return False
        modules["mlp"] = nn.Sequential
        width: int | None = 2 * k  # each layer's input: the embeddings side by side, then the previous layer's output
        for n in range(0, len(net.mlp), 2):
            last = n == len(net.mlp) - 1
            out = 1 if last else getattr(net.mlp[n], "out_features", None)
            modules[f"mlp.{n}"] = nn.Linear
            shapes |= {f"mlp.{n}.weight": (out, width), f"mlp.{n}.bias": (out,)}
            if not last:
                modules[f"mlp.{n + 1}"] = nn.ReLU
            width = out
    # Exact types, names and shapes. Float32 for the complex64 views of `_scatter_into`; trainable, as
    # autograd would leave a frozen parameter alone where the hand-written step would not.
    return ({name: type(m) for name, m in net.named_modules()} == modules
            and {name: tuple(p.shape) for name, p in net.named_parameters()} == shapes
            and all(p.dtype == torch.float32 and p.requires_grad for p in net.parameters())
            and not any(True for _ in net.buffers())
            and net.emb_dropout == 0 and not net.sparse)


def build_model(name: str, n_users: int, n_items: int, **config: Any) -> PairModel | RowModel:
    """The model called `name` (one of MODELS), given what it takes of `config` (fit()'s model options:
    k, hidden, bias, dropout, emb_dropout, init_std, reg, reg_bias, and GLocal-K's own). A model
    ignores the options it has no use for (MF has no hidden layers), as the parameter model says."""
    k, hidden = config.get("k", 10), tuple(config.get("hidden", (10, 5)))
    if k <= 0:
        raise ConfigError(f"k must be > 0 (got {k})")
    for option in ("dropout", "emb_dropout"):
        rate = config.get(option, 0.0)
        if not 0 <= rate < 1:
            raise ConfigError(f"{option} must be >= 0 and < 1 (got {rate})")
    if not hidden or any(h <= 0 for h in hidden):
        raise ConfigError(f"hidden must be one or more sizes > 0 (got {hidden})")
    if name not in _MODEL_KINDS:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    module, class_name = _MODEL_KINDS[name]
    kind: type[PairModel | RowModel] = getattr(importlib.import_module(module), class_name)
    takes = inspect.signature(kind).parameters
    return kind(n_users, n_items, **{key: value for key, value in (config | {"hidden": hidden}).items()
                                     if key in takes})


# Where each model's class lives: the others build on the base classes here, so they are imported
# when first asked for, not by this module.
_MODEL_KINDS = {"mf": ("engine.models", "MF"), "deepmf": ("engine.models", "DeepMF"), "gmf": ("engine.ncf", "GMF"),
                "neumf": ("engine.ncf", "NeuMF"), "autorec": ("engine.autorec", "AutoRec"),
                "glocal_k": ("engine.glocal_k", "GLocalK")}
