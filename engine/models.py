"""The two rating models of the reference lab: matrix factorisation and Deep Matrix Factorisation.

With default arguments both are the lab's models exactly: the same layers, created in the same order,
with PyTorch's default initialisation, so that the same seed gives the same starting weights. Every
option beyond the lab (biases, other hidden sizes, dropout, a normal initialisation) is off by default.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from engine.errors import ConfigError

MODELS = ("mf", "deepmf")


class _Embeddings(nn.Module):
    """User and item embedding tables, plus the optional user, item and global biases."""

    def __init__(self, n_users: int, n_items: int, k: int, bias: bool, init_std: float) -> None:
        super().__init__()
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
        # The same rows nn.Embedding would return, through index_select: its backward (one index_add
        # into a zeroed table) measured about 1.5x faster on CPU than embedding's own backward.
        return self.user_emb.weight.index_select(0, users), self.item_emb.weight.index_select(0, items)

    def biases(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user_bias.index_select(0, users) + self.item_bias.index_select(0, items) + self.global_bias


class MF(_Embeddings):
    """Prediction = <user embedding, item embedding> (+ biases)."""

    def __init__(self, n_users: int, n_items: int, k: int = 10, *, bias: bool = False,
                 dropout: float = 0.0, init_std: float = 0.0) -> None:
        super().__init__(n_users, n_items, k, bias, init_std)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user, item = self.lookup(users, items)
        product = user * item
        if self.dropout is not None:
            product = self.dropout(product)
        prediction = product.sum(dim=1)
        return prediction + self.biases(users, items) if self.bias else prediction


class DeepMF(_Embeddings):
    """Prediction = MLP(cat(user embedding, item embedding)) (+ biases); the lab's MLP is 2K-10-5-1."""

    def __init__(self, n_users: int, n_items: int, k: int = 10, *, hidden: Sequence[int] = (10, 5),
                 bias: bool = False, dropout: float = 0.0, init_std: float = 0.0) -> None:
        super().__init__(n_users, n_items, k, bias, init_std)
        layers: list[nn.Module] = []
        width = 2 * k
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat(self.lookup(users, items), dim=1)
        prediction = self.mlp(x).squeeze(-1)
        return prediction + self.biases(users, items) if self.bias else prediction


def build_model(name: str, n_users: int, n_items: int, *, k: int = 10, hidden: Sequence[int] = (10, 5),
                bias: bool = False, dropout: float = 0.0, init_std: float = 0.0) -> nn.Module:
    """The model called `name` ("mf" or "deepmf"); `hidden` only applies to DeepMF."""
    if k <= 0:
        raise ConfigError(f"k must be > 0 (got {k})")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be >= 0 and < 1 (got {dropout})")
    if name == "mf":
        return MF(n_users, n_items, k, bias=bias, dropout=dropout, init_std=init_std)
    if name == "deepmf":
        if not hidden or any(h <= 0 for h in hidden):
            raise ConfigError(f"hidden must be one or more sizes > 0 (got {tuple(hidden)})")
        return DeepMF(n_users, n_items, k, hidden=tuple(hidden), bias=bias, dropout=dropout,
                      init_std=init_std)
    raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
