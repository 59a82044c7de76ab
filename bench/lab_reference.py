"""The reference lab's training loop, rewritten from its description in DESIGN.md, as a yardstick.

It keeps what made the lab slow (a per-sample torch `Dataset` whose `__getitem__` returns one
(user, item, rating), batched by a shuffling `DataLoader`) and what defines its numbers (the same
models, Adam(lr=1e-3, weight_decay=1e-5), MSE, batch 512, its print format). It fixes the lab's known
defects: no `np.int`, item count taken from the whole dataset rather than the test split, and the train
RMSE is exact over all rows (the lab took the square root of a mean of batch MSEs, which overweights
the short last batch); test RMSE is computed the same exact way.

Used by bench/bench_engine.py (speed) and tests/test_parity.py (same results as the engine).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from dmf_tui.commands.run import lab_line
from engine.models import build_model


class RatingDataset(Dataset):
    """One (user, item, rating) per call, each built as its own small tensor, as the lab's code did.

    How a sample is built sets the lab's speed: these per-sample tensors cost about 23 us a sample
    through the DataLoader on a 2-core Xeon, which matches the lab's reported 20 s per ML-1M epoch
    (800k samples) when the GPU did the arithmetic; returning numpy scalars instead costs about 3 us.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> None:
        self.users = users.astype(np.int64)
        self.items = items.astype(np.int64)
        self.ratings = ratings.astype(np.float32)

    def __len__(self) -> int:
        return len(self.ratings)

    def __getitem__(self, idx: int):
        return (torch.tensor(self.users[idx], dtype=torch.long), torch.tensor(self.items[idx], dtype=torch.long),
                torch.tensor(self.ratings[idx], dtype=torch.float32))


def _sse(model: torch.nn.Module, loader: DataLoader) -> float:
    total = 0.0
    with torch.no_grad():
        for users, items, ratings in loader:
            total += F.mse_loss(model(users, items), ratings, reduction="sum").item()
    return total


def train_lab(split, model_name: str = "mf", *, epochs: int = 20, batch_size: int = 512, lr: float = 1e-3,
              weight_decay: float = 1e-5, seed: int | None = None,
              log: Callable[[str], None] | None = print) -> list[tuple[float, float, float]]:
    """Train like the lab; returns (train_rmse, test_rmse, seconds) per epoch and prints the lab's lines."""
    if seed is not None:
        torch.manual_seed(seed)
    train_set = RatingDataset(*split.part("train"))
    test_set = RatingDataset(*split.part("test"))
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=batch_size, shuffle=False)
    model = build_model(model_name, split.dataset.n_users, split.dataset.n_items)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    history = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        train_sse = 0.0
        for users, items, ratings in train_loader:
            loss = F.mse_loss(model(users, items), ratings)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_sse += loss.item() * len(ratings)
        model.eval()
        train_rmse = math.sqrt(train_sse / len(train_set))
        test_rmse = math.sqrt(_sse(model, test_loader) / len(test_set))
        seconds = time.perf_counter() - started
        history.append((train_rmse, test_rmse, seconds))
        if log is not None:
            log(lab_line(epoch, seconds, train_rmse, test_rmse))
    return history
