"""GLocal-K (Han et al., CIKM 2021, "GLocal-K: Global and Local Kernels for Recommender Systems").

Like I-AutoRec (engine/autorec.py), an autoencoder reconstructs each item's vector of ratings by every
user, zero where unrated, and the reconstruction fills in the missing ratings. Two kernels set it apart:

- Local kernels. Every weight matrix W (n_in x n_out) is multiplied, entry by entry, by a kernel matrix
  K[i, j] = max(0, 1 - |u_i - v_j|^2) of learned vectors u_i (one per input unit) and v_j (one per
  output unit) of a low dimension (`k`, 5 in the paper). Where two units' vectors are apart by 1 or
  more their connection is cut, so the kernel learns a sparse wiring. The objective penalises
  |W|^2 (`reg`, the paper's lambda_2) and |K|^2 (`reg_kernel`, lambda_s).
- A global kernel. After `pretrain_epochs` epochs of the local-kernel autoencoder alone, fine-tuning
  convolves the rating matrix, seen as an image (items x users), with a small kernel (`conv_size`
  square, 3 in the paper) before the autoencoder reads it. The kernel is made from the pre-trained
  model itself: the mean of each item's reconstruction (average pooling over users), a vector of
  n_items, times a learned bank of n_items x conv_size^2 weights, is the conv_size^2 kernel.

Where this differs from the authors' code (github.com/usydnlp/Glocal_K):
- They minimise with L-BFGS over the whole matrix at once (5 iterations an "epoch"); our trainer
  drives Adam-family optimizers over batches of items, so the penalties are shared out across the
  batches in proportion to their size (see `batch_loss`).
- Their global kernel is recomputed from the current weights at every evaluation of the loss, and
  the gradient flows through the item means into the autoencoder. Here the item means are computed
  once an epoch, at its start, from the weights of that moment, and held fixed through the epoch;
  the kernel bank still learns. Recomputing them a step would cost a pass over the whole matrix per
  batch.
- A user with no training rating gets the mean training rating (as our AutoRec does): no data ever
  reached their output unit. The authors' splits have no such user.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ConfigError
from engine.item_matrix import ItemMatrixModel


def local_kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """K[i, j] = max(0, 1 - |u_i - v_j|^2) for the rows u_i of `u` (n_in x d) and v_j of `v` (n_out x d).

    The squared distances come from |u|^2 + |v|^2 - 2 u.v, one matrix product, rather than from the
    n_in x n_out x d differences (1.5 GB a step for ML-1M's first layer)."""
    distance2 = torch.addmm(u.square().sum(1, keepdim=True) + v.square().sum(1), u, v.t(), alpha=-2)
    return (1 - distance2).clamp(min=0)


class KernelLayer(nn.Module):
    """x -> activation(x @ (W * K(u, v)) + b): a dense layer whose weights are locally kernelised.

    Initialised as the authors' TensorFlow code is: W and b Glorot-uniform, u and v truncated normal
    with std 1e-3, so that every K starts near 1 and the layer starts as a plain dense one."""

    def __init__(self, n_in: int, n_out: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out))
        self.u = nn.Parameter(torch.empty(n_in, dim))
        self.v = nn.Parameter(torch.empty(n_out, dim))
        nn.init.xavier_uniform_(self.weight)
        # TensorFlow's Glorot for a vector takes its length as both fans.
        limit = math.sqrt(3 / n_out)
        nn.init.uniform_(self.bias, -limit, limit)
        nn.init.trunc_normal_(self.u, std=1e-3, a=-2e-3, b=2e-3)
        nn.init.trunc_normal_(self.v, std=1e-3, a=-2e-3, b=2e-3)

    def kernel(self) -> torch.Tensor:
        return local_kernel(self.u, self.v)

    def forward(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """The layer's output before its activation, given its `kernel()` (computed once a step)."""
        return torch.addmm(self.bias, x, self.weight * kernel)


class GLocalK(ItemMatrixModel):
    """GLocal-K over item rows: see the module's docstring.

    Layers: n_users -> hidden[0] -> ... -> n_users, each a `KernelLayer`, sigmoid after every hidden
    layer and none after the last, as in the paper (hidden 500, 500).

    The objective is the paper's (their code's): the squared error on the observed training ratings
    plus reg |W|^2 + reg_kernel |K|^2 summed over the layers (their tf.nn.l2_loss halves every term,
    which changes nothing). A batch of B of the n_items items minimises
        batch sse / B + (reg |W|^2 + reg_kernel |K|^2) / n_items,
    whose expectation over a random batch is the full objective divided by n_items, so `reg` and
    `reg_kernel` mean what the paper's lambda_2 and lambda_s mean whatever the batch size.

    The phase follows the epochs: `batches` deals pre-training batches for the first
    `pretrain_epochs` epochs and fine-tuning ones after, and the phase and the item means the global
    kernel is made from are buffers, so a checkpoint predicts as the model did when it was saved.
    The defaults are the paper's ML-100K settings; 40 pre-training epochs is what validation chose
    on ML-100K with Adam, lr 1e-3 and batches of 128 items (val RMSE 0.8923 after pre-training,
    0.8826 after 18 epochs of fine-tuning).
    `dropout` > 0 drops entries of the input while training (an option beyond the paper).
    """

    NAME = "GLocal-K"
    # 4 GiB of float32 ratings, plus the mask: ML-10M (746M entries) fits but trains far too slowly on a
    # CPU; ML-20M does not.
    MAX_ENTRIES = 1 << 30

    fine_tuning: torch.Tensor  # buffers, which nn.Module's attribute lookup cannot type
    item_means: torch.Tensor

    def __init__(self, n_users: int, n_items: int, k: int = 5, *, hidden: Sequence[int] = (500, 500),
                 reg: float = 20.0, reg_kernel: float = 0.006, dropout: float = 0.0, pretrain_epochs: int = 40,
                 conv_size: int = 3, dot_scale: float = 1.0) -> None:
        if conv_size <= 0 or conv_size % 2 == 0:
            raise ConfigError(f"the global kernel's size must be odd and > 0 (got {conv_size})")
        if pretrain_epochs < 0:
            raise ConfigError(f"pretrain_epochs must be >= 0 (got {pretrain_epochs})")
        # The convolution reads conv_size // 2 past the matrix's edges: a border of zeros.
        super().__init__(n_users, n_items, pad=conv_size // 2)
        self.reg, self.reg_kernel, self.dropout = reg, reg_kernel, dropout
        self.pretrain_epochs, self.conv_size, self.dot_scale = pretrain_epochs, conv_size, dot_scale
        widths = [n_users, *hidden, n_users]
        self.layers = nn.ModuleList(KernelLayer(n_in, n_out, k) for n_in, n_out in itertools.pairwise(widths))
        # The global kernel bank: one weight per item and kernel entry, truncated normal as theirs.
        self.conv_bank = nn.Parameter(torch.empty(n_items, conv_size * conv_size))
        nn.init.trunc_normal_(self.conv_bank, std=0.1, a=-0.2, b=0.2)
        self.register_buffer("fine_tuning", torch.zeros((), dtype=torch.bool))
        self.register_buffer("item_means", torch.zeros(n_items))
        self.epochs_started = 0

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        """Every item once an epoch, in an order drawn from `generator`, `batch_size` items a batch.
        The epoch after the last pre-training one starts fine-tuning; every fine-tuning epoch first
        refreshes the item means of the global kernel from the current weights."""
        self.epochs_started += 1
        if self.epochs_started > self.pretrain_epochs:
            self.start_fine_tuning()
        yield from super().batches(batch_size, generator)

    def start_fine_tuning(self) -> None:
        """Switch to (or stay in) fine-tuning, with the global kernel made from the current weights:
        the mean over users of each item's reconstruction by the local-kernel autoencoder alone."""
        with torch.no_grad():
            kernels = self.kernels()
            per_block = self.rows_per_block()
            for start in range(0, self.n_items, per_block):
                rows = self.ratings[start:start + per_block]
                self.item_means[start:start + per_block] = self.autoencode(rows, kernels).mean(dim=1)
        self.fine_tuning.fill_(True)

    def batch_loss(self, *batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the objective of the class's docstring over these items, their sum of squared errors on
        the observed training ratings, detached)."""
        (items,) = batch
        kernels = self.kernels()
        target = self.ratings.index_select(0, items)
        error = torch.where(self.observed.index_select(0, items), self.reconstruct(items, kernels) - target, 0.0)
        sse = error.square().sum()
        penalty = sum(self.reg * layer.weight.square().sum() + self.reg_kernel * kernel.square().sum()
                      for layer, kernel in zip(self.kernel_layers(), kernels))
        return sse / len(items) + penalty / self.n_items, sse.detach()

    def kernel_layers(self) -> list[KernelLayer]:
        # nn.ModuleList yields its members as plain Modules; every one of these is a KernelLayer.
        return cast(list[KernelLayer], list(self.layers))

    def kernels(self) -> list[torch.Tensor]:
        """Every layer's local kernel, computed once a step and shared by the loss and the penalty."""
        return [layer.kernel() for layer in self.kernel_layers()]

    def autoencode(self, rows: torch.Tensor, kernels: Sequence[torch.Tensor]) -> torch.Tensor:
        """The local-kernel autoencoder's reconstruction of `rows` (items x users)."""
        return self.kernel_layers()[-1].forward(self.encode(rows, kernels), kernels[-1])

    def encode(self, rows: torch.Tensor, kernels: Sequence[torch.Tensor]) -> torch.Tensor:
        """`rows` through every layer but the last (each with its sigmoid): what the last one reads."""
        x = rows
        for layer, kernel in zip(self.kernel_layers()[:-1], kernels):
            x = torch.sigmoid(layer(x, kernel))
        return x

    def global_kernel(self) -> torch.Tensor:
        """The conv_size x conv_size kernel: the item means times the kernel bank, scaled."""
        return (self.item_means @ self.conv_bank * self.dot_scale).view(self.conv_size, self.conv_size)

    def convolved(self, items: torch.Tensor) -> torch.Tensor:
        """Rows `items` of relu(rating matrix convolved with the global kernel), zero-padded at its
        edges ("same" size), as the authors' conv2d gives them: each row is read with its
        conv_size // 2 neighbours on either side, in item order.

        Written as one einsum over the windows rather than F.conv2d, which on CPU takes ten times as
        long for this one-channel shape."""
        size = self.conv_size
        window = items.unsqueeze(1) + torch.arange(size, device=items.device)  # rows of `padded`
        # items x size rows x users x size columns: each user's size x size neighbourhood, a view.
        neighbourhoods = self.padded[window].unfold(2, size, 1)
        return F.relu(torch.einsum("rc,iruc->iu", self.global_kernel(), neighbourhoods))

    def reconstruct(self, items: torch.Tensor, kernels: Sequence[torch.Tensor]) -> torch.Tensor:
        """The model's reconstruction of the rows `items` in the current phase."""
        rows = self.convolved(items) if bool(self.fine_tuning) else self.ratings.index_select(0, items)
        if self.dropout > 0:
            rows = F.dropout(rows, self.dropout, self.training)
        return self.autoencode(rows, kernels)

    def reconstruct_items(self, items: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(items, self.kernels())

    def item_codes(self, items: torch.Tensor) -> torch.Tensor:
        rows = self.convolved(items) if bool(self.fine_tuning) else self.ratings.index_select(0, items)
        return self.encode(rows, self.kernels())

    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        last = self.kernel_layers()[-1]
        return last.weight * last.kernel(), last.bias
