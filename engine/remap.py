"""Contiguous 0-based ids for users and items, in `np.unique` order (sorted raw ids) as the lab
does, with the raw ids kept so that results can name real users and movies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from engine.errors import DataError
from engine.formats import Ratings


@dataclass(frozen=True)
class Dataset:
    """Ratings with 0-based user and item indices; `user_ids[i]` is the raw id of user index i."""

    name: str
    users: np.ndarray  # int64 index per row
    items: np.ndarray  # int64 index per row
    ratings: np.ndarray  # float32 per row
    user_ids: np.ndarray  # int64 raw id per user index, sorted
    item_ids: np.ndarray  # int64 raw id per item index, sorted
    source: str | None = None  # the ratings file it was read from (its item titles sit beside it)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_ratings(self) -> int:
        return len(self.ratings)

    @overload
    def user_index(self, raw: int) -> int: ...
    @overload
    def user_index(self, raw: Sequence[int] | np.ndarray) -> np.ndarray: ...
    def user_index(self, raw: int | Sequence[int] | np.ndarray) -> int | np.ndarray:
        """Index of a raw user id (or an array of them); DataError for an id not in the data."""
        return _lookup(self.user_ids, raw, "user")

    @overload
    def item_index(self, raw: int) -> int: ...
    @overload
    def item_index(self, raw: Sequence[int] | np.ndarray) -> np.ndarray: ...
    def item_index(self, raw: int | Sequence[int] | np.ndarray) -> int | np.ndarray:
        """Index of a raw item id (or an array of them); DataError for an id not in the data."""
        return _lookup(self.item_ids, raw, "item")


def remap(r: Ratings, name: str, source: str | None = None) -> Dataset:
    """Number the users and items of `r` 0..n-1 in sorted raw-id order; rows keep file order."""
    user_ids, users = unique_inverse(r.users)
    item_ids, items = unique_inverse(r.items)
    return Dataset(name=name, users=users, items=items, ratings=r.ratings, user_ids=user_ids, item_ids=item_ids,
                   source=source)


def unique_inverse(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same as `np.unique(raw, return_inverse=True)`, in linear time when the ids are small
    non-negative numbers (always so for MovieLens), which saves the sort on millions of rows."""
    raw = np.asarray(raw, dtype=np.int64)
    if raw.size and raw.min() >= 0 and raw.max() <= 4 * raw.size + 1_000_000:
        present = np.zeros(int(raw.max()) + 1, dtype=bool)
        present[raw] = True
        index_of = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present).astype(np.int64), index_of[raw]
    ids, inverse = np.unique(raw, return_inverse=True)
    return ids.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def _lookup(ids: np.ndarray, raw: int | Sequence[int] | np.ndarray, kind: str) -> int | np.ndarray:
    wanted = np.asarray(raw, dtype=np.int64)
    where = np.searchsorted(ids, wanted).clip(max=len(ids) - 1)
    found = ids[where] == wanted
    if not np.all(found):
        missing = wanted[~found].reshape(-1)[0] if wanted.ndim else wanted
        raise DataError(f"{kind} id {int(missing)} is not in the data")
    return int(where) if where.ndim == 0 else where
