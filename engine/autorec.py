"""Item-based AutoRec (Sedhain et al., 2015, "AutoRec: Autoencoders Meet Collaborative Filtering"):
I-AutoRec, the variant the paper found best.

Each item is the vector of its ratings by every user, zero where a user has not rated it. A one-layer
autoencoder reconstructs that vector, h(r) = V sigmoid(W r + b) + c, and training counts only the
entries that were observed, so the network learns to fill in the others: the predicted rating of
user u for item i is h(r_i)[u].

The model keeps the whole item x user training matrix on the device (`attach`) and trains on batches
of its rows, so it is a `RowModel`: it deals its own batches to the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ConfigError
from engine.models import RowModel

# The largest item x user matrix AutoRec keeps (8 GiB of float32 ratings plus 2 GiB of mask): ML-10M
# (746M entries) fits, ML-20M (3.7G) does not. Past that a dense matrix is the wrong tool.
MAX_MATRIX_ELEMENTS = 1 << 31

# Entries of the reconstruction `forward` holds at once (256 MiB of float32): ML-1M's whole
# 3,706 x 6,040 matrix is one block; on ML-10M an evaluation chunk's items are reconstructed a few
# thousand at a time instead of all 10,677 at 3 GB.
RECONSTRUCT_BLOCK = 1 << 26


class AutoRec(RowModel):
    """I-AutoRec with `k` hidden units: encoder Linear(n_users, k) and a sigmoid, decoder
    Linear(k, n_users) with no activation, as in the paper.

    The objective is the paper's: the sum over items of the squared error on the *observed* training
    ratings, plus reg/2 (|W|^2 + |V|^2) on the two weight matrices (not the biases). A batch of B of
    the n_items items minimises
        batch sse / B + reg / (2 n_items) (|W|^2 + |V|^2),
    whose expectation over a random batch is the full objective divided by n_items: `reg` means what
    the paper's lambda means whatever the batch size (its ML-1M setting is about 1).

    `dropout` > 0 drops entries of the input rating vector while training (they count as unrated),
    an optional regulariser beyond the paper.

    Prediction (`forward`): the reconstruction, from the training ratings only. An item with no
    training rating still gets one, the reconstruction of an empty row (the decoder's response to
    "nothing known", learnt from the many rarely rated items), which beats a constant; the paper
    predicts 3 for such items. A user with no training rating has a decoder row that no data ever
    reached (only the L2 pull towards zero), so its predictions would be noise near zero: such a
    user gets the mean training rating instead, the data's version of the paper's 3.
    """

    def __init__(self, n_users: int, n_items: int, k: int = 500, *, dropout: float = 0.0, reg: float = 0.0) -> None:
        super().__init__()
        if n_users * n_items > MAX_MATRIX_ELEMENTS:
            raise ConfigError(f"AutoRec keeps the item x user rating matrix on the device: {n_items:,} items x "
                              f"{n_users:,} users is {n_users * n_items:,} entries, more than the "
                              f"{MAX_MATRIX_ELEMENTS:,} it allows; use a pair model (mf) for data this large")
        self.n_users, self.n_items, self.dropout, self.reg = n_users, n_items, dropout, reg
        self.encoder = nn.Linear(n_users, k)
        self.decoder = nn.Linear(k, n_users)
        # The attached training data: plain tensors, not buffers, so they stay out of checkpoints.
        self.ratings = torch.zeros(0, 0)
        self.observed = torch.zeros(0, 0, dtype=torch.bool)
        self.user_seen = torch.zeros(0, dtype=torch.bool)
        self.mean = 0.0

    def attach(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        """Keep the training ratings as a dense item x user matrix, with a mask of the observed ones,
        on their device. (A pair rated twice keeps one of its ratings.)"""
        self.ratings = ratings.new_zeros(self.n_items, self.n_users)
        self.ratings[items, users] = ratings
        self.observed = torch.zeros(self.n_items, self.n_users, dtype=torch.bool, device=ratings.device)
        self.observed[items, users] = True
        self.user_seen = self.observed.any(dim=0)
        self.mean = float(ratings.mean())

    def n_batches(self, batch_size: int) -> int:
        return math.ceil(self.n_items / batch_size)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        """Every item once an epoch, in an order drawn from `generator`, `batch_size` items a batch."""
        order = torch.randperm(self.n_items, generator=generator, device=self.ratings.device)
        for batch in torch.split(order, batch_size):
            yield (batch,)

    def batch_loss(self, *batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the objective of the class's docstring over these items, their sum of squared errors on
        the observed training ratings, detached)."""
        (items,) = batch
        target = self.ratings.index_select(0, items)
        given = F.dropout(target, self.dropout, self.training) if self.dropout > 0 else target
        error = torch.where(self.observed.index_select(0, items), self.reconstruct(given) - target, 0.0)
        sse = error.square().sum()
        loss = sse / len(items)
        if self.reg:
            weights = self.encoder.weight.square().sum() + self.decoder.weight.square().sum()
            loss = loss + self.reg / (2 * self.n_items) * weights
        return loss, sse.detach()

    def reconstruct(self, rows: torch.Tensor) -> torch.Tensor:
        """h(r) for each rating vector r in `rows` (items x users)."""
        out: torch.Tensor = self.decoder(torch.sigmoid(self.encoder(rows)))  # nn.Module's __call__ is typed Any
        return out

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The predicted rating of each (user, item) pair: see the class's docstring."""
        distinct, which = torch.unique(items, return_inverse=True)  # each item reconstructed once
        prediction = self.ratings.new_empty(len(users))
        per_block = max(1, RECONSTRUCT_BLOCK // self.n_users)
        for start in range(0, len(distinct), per_block):
            rows = self.reconstruct(self.ratings.index_select(0, distinct[start:start + per_block]))
            if len(distinct) <= per_block:  # the usual case: one block, every pair in it
                prediction = rows[which, users]
            else:
                pairs = ((which >= start) & (which < start + per_block)).nonzero().squeeze(1)
                prediction[pairs] = rows[which[pairs] - start, users[pairs]]
        return torch.where(self.user_seen[users], prediction, self.mean)
