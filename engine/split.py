"""Train/validation/test splits of a Dataset.

The default is the lab's split exactly: `sklearn.model_selection.train_test_split(rows,
test_size=0.2, shuffle=True, random_state=42)` on the rows in file order (800,167 train and
200,042 test rows on ML-1M). That function draws `RandomState(seed).permutation(n)` and takes the
first ceil(test_size * n) positions as test and the rest as train; `_shuffle_split` does the same
in a few lines of numpy, because importing scikit-learn costs more (1.7 s) than loading ML-1M.
tests/test_split.py checks that both give identical index arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.errors import ConfigError
from engine.remap import Dataset

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Row indices into `dataset` for each part, in the order train_test_split returns them."""

    dataset: Dataset
    train: np.ndarray  # int64 row indices
    val: np.ndarray  # int64 row indices, empty without a validation fraction
    test: np.ndarray  # int64 row indices

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, ratings) of one part: "train", "val" or "test"."""
        if name not in PARTS:
            raise ConfigError(f"unknown split part {name!r}: expected one of {', '.join(PARTS)}")
        rows = getattr(self, name)
        ds = self.dataset
        return ds.users[rows], ds.items[rows], ds.ratings[rows]

    @cached_property
    def cold_users(self) -> int:
        """How many distinct test users never occur in train (the model knows nothing of them)."""
        return _cold(self.dataset.users, self.train, self.test, self.dataset.n_users)

    @cached_property
    def cold_items(self) -> int:
        """How many distinct test items never occur in train."""
        return _cold(self.dataset.items, self.train, self.test, self.dataset.n_items)


def split_dataset(ds: Dataset, *, test_size: float = 0.2, split_seed: int = 42, val_size: float = 0.0) -> Split:
    """Split like the lab; `val_size` is the fraction of the *train* rows set aside for
    validation, carved the same way (a second train_test_split of train with split_seed)."""
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    if not 0.0 <= val_size < 1.0:
        raise ConfigError(f"val_size must be at least 0 and below 1, got {val_size}")
    if not 0 <= split_seed < 2**32:
        raise ConfigError(f"split_seed must be between 0 and 2**32 - 1, got {split_seed}")
    # The rows are 0..n-1, so the positions the split picks are the rows themselves: no arange to
    # index with (on 25M ratings that saves two copies of 200 MB).
    train, test = _shuffle_split(ds.n_ratings, test_size, split_seed, "test")
    val = np.empty(0, dtype=np.int64)
    if val_size > 0.0:
        kept, taken = _shuffle_split(len(train), val_size, split_seed, "validation")
        train, val = train[kept], train[taken]
    return Split(dataset=ds, train=train, val=val, test=test)


def _shuffle_split(n: int, fraction: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The positions (kept, taken) in 0..n-1 that `train_test_split(rows, test_size=fraction,
    shuffle=True, random_state=seed)` returns as (train, test) for n rows."""
    n_taken = math.ceil(fraction * n)
    if n_taken == 0 or n_taken >= n:
        raise ConfigError(f"a {what} fraction of {fraction} of {n} rows leaves an empty part")
    permutation = np.random.RandomState(seed).permutation(n).astype(np.int64, copy=False)
    return permutation[n_taken:], permutation[:n_taken]


def _cold(ids: np.ndarray, train: np.ndarray, test: np.ndarray, n: int) -> int:
    seen = np.zeros(n, dtype=bool)
    seen[ids[train]] = True
    in_test = np.zeros(n, dtype=bool)
    in_test[ids[test]] = True
    return int((in_test & ~seen).sum())
