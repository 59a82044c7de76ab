"""A tiny rating dataset for model tests: ratings 1-5 from a rank-2 taste plus 3.5, seeded."""

from __future__ import annotations

import numpy as np

from engine.remap import Dataset


def tiny_dataset(n_users: int, n_items: int, n_ratings: int, *, rated_users: int | None = None,
                 rated_items: int | None = None) -> Dataset:
    """`n_ratings` ratings of the first `rated_users` users and `rated_items` items (all by default):
    the users and items past those have no rating at all, rows no batch ever uses."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, rated_users or n_users, n_ratings)
    items = rng.integers(0, rated_items or n_items, n_ratings)
    taste = rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items))
    ratings = np.clip(np.rint(3.5 + taste[users, items]), 1, 5).astype(np.float32)
    return Dataset(name="tiny", users=users.astype(np.int64), items=items.astype(np.int64), ratings=ratings,
                   user_ids=np.arange(n_users, dtype=np.int64), item_ids=np.arange(n_items, dtype=np.int64))
