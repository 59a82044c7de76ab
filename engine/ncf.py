"""Neural Collaborative Filtering (He et al., 2017): GMF and NeuMF, for rating prediction.

The paper ranks items from implicit feedback, with a sigmoid output and a log loss. Here, as every
model of this project, they predict the rating itself: the last layer's output is the prediction (plus
the optional biases of `PairModel`), trained on the MSE with the per-rating L2 of `PairModel.batch_loss`.
The paper's pre-training of NeuMF from a trained GMF and MLP is not done: both branches start from
their initial weights and train together.

Both take the autograd step (`has_hand_grads` lists only MF and DeepMF) and so every optimizer
of the trainer, the lazy sparse_adam included: every table is read through `PairModel.rows`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from engine.models import PairModel, mlp_layers


class GMF(PairModel):
    """Generalised matrix factorisation: prediction = h . (p_u * q_i) + c (+ biases).

    MF with a learned weight per latent dimension. `h` is a Linear(k, 1) layer whose bias c is the
    global offset the paper's output has no need for (it predicts a probability, ratings sit around 3.5);
    without it a bias-free GMF would have to build the mean rating out of the embeddings. With
    `bias=True` it adds to the global bias, a second scalar of the same role, harmless and kept so
    that the model's layers do not depend on the option."""

    def __init__(self, n_users: int, n_items: int, k: int = 10, *, bias: bool = False, init_std: float = 0.0,
                 emb_dropout: float = 0.0, reg: float = 0.0, reg_bias: float = 0.0) -> None:
        super().__init__(n_users, n_items, k, bias, init_std, emb_dropout=emb_dropout, reg=reg, reg_bias=reg_bias)
        self.h = nn.Linear(k, 1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user, item = self.lookup(users, items)
        prediction: torch.Tensor = self.h(user * item).squeeze(-1)  # nn.Module's __call__ is typed Any
        return prediction + self.biases(users, items) if self.bias else prediction


class NeuMF(PairModel):
    """Neural matrix factorisation: a GMF branch and an MLP branch, each with its own user and item
    embeddings (k wide), joined by one last layer:
    prediction = out(cat(p_u * q_i, MLP(cat(p'_u, q'_i)))) (+ biases).

    The GMF branch uses PairModel's tables (user_emb, item_emb); the MLP branch has mlp_user_emb and
    mlp_item_emb, then a Linear layer per `hidden` size, each followed by a ReLU (and dropout, if
    asked). The paper gives the branches separate embeddings because the two functions want different
    features of a user; sharing them would tie the MLP's input to what the dot product needs."""

    def __init__(self, n_users: int, n_items: int, k: int = 10, *, hidden: Sequence[int] = (10, 5),
                 bias: bool = False, dropout: float = 0.0, init_std: float = 0.0, emb_dropout: float = 0.0,
                 reg: float = 0.0, reg_bias: float = 0.0) -> None:
        super().__init__(n_users, n_items, k, bias, init_std, emb_dropout=emb_dropout, reg=reg, reg_bias=reg_bias)
        self.mlp_user_emb = nn.Embedding(n_users, k)
        self.mlp_item_emb = nn.Embedding(n_items, k)
        if init_std > 0:
            nn.init.normal_(self.mlp_user_emb.weight, std=init_std)
            nn.init.normal_(self.mlp_item_emb.weight, std=init_std)
        layers, width = mlp_layers(2 * k, hidden, dropout)
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(k + width, 1)

    def tables(self) -> list[tuple[nn.Embedding, bool]]:
        # All four, so that reg penalises the MLP branch's rows too and sparse_adam moves them lazily.
        return [*super().tables(), (self.mlp_user_emb, True), (self.mlp_item_emb, False)]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user, item = self.lookup(users, items)
        mlp_user, mlp_item = self.rows(self.mlp_user_emb, users), self.rows(self.mlp_item_emb, items)
        if self.emb_dropout > 0:
            mlp_user = F.dropout(mlp_user, self.emb_dropout, self.training)
            mlp_item = F.dropout(mlp_item, self.emb_dropout, self.training)
        mlp = self.mlp(torch.cat((mlp_user, mlp_item), dim=1))
        prediction: torch.Tensor = self.out(torch.cat((user * item, mlp), dim=1)).squeeze(-1)
        return prediction + self.biases(users, items) if self.bias else prediction
