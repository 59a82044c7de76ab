"""What the item-based autoencoders (I-AutoRec in engine/autorec.py, GLocal-K in engine/glocal_k.py)
share: the item x user matrix of training ratings kept dense on the device, batches of its rows (an
item's ratings by every user), and predictions read off each item's reconstructed row."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from engine.errors import ConfigError
from engine.models import RowModel

# Entries of the reconstruction held at once (256 MiB of float32): ML-1M's whole 3,706 x 6,040 matrix
# is one block; on ML-10M an evaluation chunk's items are reconstructed a few thousand at a time
# instead of all 10,677 at 3 GB.
RECONSTRUCT_BLOCK = 1 << 26


class ItemMatrixModel(RowModel):
    """A RowModel over the dense item x user matrix of training ratings (`ratings`, zero where unrated,
    with the mask `observed`), set by `attach`. A subclass reconstructs rows (`reconstruct_items`);
    `forward` predicts user u's rating of item i as entry u of item i's reconstruction, from the
    training ratings only. A user with no training rating has an output unit that no data ever
    reached, so its predictions would be noise near zero: such a user gets the mean training rating
    instead (the autoencoder papers predict 3)."""

    NAME = "this model"  # in the refusal of a matrix too large
    # The largest matrix it keeps; past that a dense matrix is the wrong tool.
    MAX_ENTRIES = 1 << 31

    def __init__(self, n_users: int, n_items: int, *, pad: int = 0) -> None:
        super().__init__()
        if n_users * n_items > self.MAX_ENTRIES:
            raise ConfigError(f"{self.NAME} keeps the item x user rating matrix on the device: {n_items:,} items x "
                              f"{n_users:,} users is {n_users * n_items:,} entries, more than the "
                              f"{self.MAX_ENTRIES:,} it allows; use a pair model (mf) for data this large")
        self.n_users, self.n_items, self.pad = n_users, n_items, pad
        # The attached training data: plain tensors, not buffers, so they stay out of checkpoints.
        # `padded` is the matrix with a border of `pad` zeros all round (what a convolution reads past
        # its edges); `ratings` is the matrix itself, a view of it.
        self.padded = torch.zeros(0, 0)
        self.ratings = self.padded
        self.observed = torch.zeros(0, 0, dtype=torch.bool)
        self.user_seen = torch.zeros(0, dtype=torch.bool)
        self.mean = 0.0

    def attach(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        """Keep the training ratings as a dense item x user matrix, with a mask of the observed ones,
        on their device. (A pair rated twice keeps one of its ratings.)"""
        pad = self.pad
        self.padded = ratings.new_zeros(self.n_items + 2 * pad, self.n_users + 2 * pad)
        self.ratings = self.padded[pad:pad + self.n_items, pad:pad + self.n_users]
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

    def rows_per_block(self) -> int:
        """How many reconstructed rows to hold at once (RECONSTRUCT_BLOCK entries)."""
        return max(1, RECONSTRUCT_BLOCK // self.n_users)

    def reconstruct_items(self, items: torch.Tensor) -> torch.Tensor:
        """The model's reconstruction of the rows `items` (items x users), from the training ratings."""
        raise NotImplementedError

    def item_codes(self, items: torch.Tensor) -> torch.Tensor:
        """What the last layer reads for the rows `items` (items x its width): the reconstruction is
        `item_codes(items) @ weight + bias` with `head()`'s (weight, bias). Scoring every item for a few
        users (engine/scoring.py) computes the codes once and only the users' columns of the head."""
        raise NotImplementedError

    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer as (weight: its width x n_users, bias: n_users); see `item_codes`."""
        raise NotImplementedError

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The predicted rating of each (user, item) pair: see the class's docstring."""
        distinct, which = torch.unique(items, return_inverse=True)  # each item reconstructed once
        prediction = self.ratings.new_empty(len(users))
        per_block = self.rows_per_block()
        for start in range(0, len(distinct), per_block):
            rows = self.reconstruct_items(distinct[start:start + per_block])
            if len(distinct) <= per_block:  # the usual case: one block, every pair in it
                prediction = rows[which, users]
            else:
                pairs = ((which >= start) & (which < start + per_block)).nonzero().squeeze(1)
                prediction[pairs] = rows[which[pairs] - start, users[pairs]]
        return torch.where(self.user_seen[users], prediction, self.mean)
