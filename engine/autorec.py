"""Item-based AutoRec (Sedhain et al., 2015, "AutoRec: Autoencoders Meet Collaborative Filtering"):
I-AutoRec, the variant the paper found best.

Each item is the vector of its ratings by every user, zero where a user has not rated it. A one-layer
autoencoder reconstructs that vector, h(r) = V sigmoid(W r + b) + c, and training counts only the
entries that were observed, so the network learns to fill in the others: the predicted rating of
user u for item i is h(r_i)[u].

The model keeps the whole item x user training matrix on the device and trains on batches of its rows
(engine/item_matrix.py), so it is a `RowModel`: it deals its own batches to the trainer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.item_matrix import ItemMatrixModel


class AutoRec(ItemMatrixModel):
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
    predicts 3 for such items. A user with no training rating gets the mean training rating.
    """

    NAME = "AutoRec"
    # 8 GiB of float32 ratings plus 2 GiB of mask: ML-10M (746M entries) fits, ML-20M (3.7G) does not.
    MAX_ENTRIES = 1 << 31

    def __init__(self, n_users: int, n_items: int, k: int = 500, *, dropout: float = 0.0, reg: float = 0.0) -> None:
        super().__init__(n_users, n_items)
        self.dropout, self.reg = dropout, reg
        self.encoder = nn.Linear(n_users, k)
        self.decoder = nn.Linear(k, n_users)

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

    def reconstruct_items(self, items: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(self.ratings.index_select(0, items))

    def item_codes(self, items: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.encoder(self.ratings.index_select(0, items)))

    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.weight.t(), self.decoder.bias
