"""Synthetic stand-ins for ML-100K and ML-1M, so that everything runs offline.

Each has exactly the shape of its original (ratings, users, items), every user has at least 20
ratings, item popularity is long-tailed, no (user, item) pair repeats, and the ratings 1..5 come
from a low-rank model with user and item biases and noise, cut at the quantiles of ML-1M's rating
histogram (so the mean is about 3.58). The data depend on nothing but a fixed seed per name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from engine.errors import DataError
from engine.remap import Dataset

MIN_PER_USER = 20
# Share of ratings 1, 2, 3, 4, 5 in ML-1M (5.6%, 10.8%, 26.1%, 34.9%, 22.6%); mean 3.58.
RATING_SHARES = np.array([0.0562, 0.1075, 0.2611, 0.3489, 0.2263])
RANK = 5


@dataclass(frozen=True)
class Shape:
    n_ratings: int
    n_users: int
    n_items: int
    max_item_id: int  # raw item ids are a sorted sample of 1..max_item_id, with gaps as in ML-1M
    seed: int


SHAPES = {
    "synthetic-100k": Shape(100_000, 943, 1_682, max_item_id=1_682, seed=100),
    "synthetic-1m": Shape(1_000_209, 6_040, 3_706, max_item_id=3_952, seed=1000),
}


@cache
def make_synthetic(name: str) -> Dataset:
    """The synthetic dataset `name` (see SHAPES); the same read-only arrays on every call."""
    shape = SHAPES.get(name)
    if shape is None:
        raise DataError(f"unknown synthetic dataset {name!r}: expected one of {', '.join(SHAPES)}")
    rng = np.random.default_rng(shape.seed)
    popularity = rng.lognormal(0.0, 1.4, shape.n_items)
    counts = _ratings_per_user(rng, shape)
    users = np.repeat(np.arange(shape.n_users, dtype=np.int64), counts)
    items = _distinct_items(rng, users, popularity, shape.n_items)
    ratings = _ratings(rng, users, items, popularity, shape)
    item_ids = np.sort(rng.choice(shape.max_item_id, shape.n_items, replace=False)) + 1
    dataset = Dataset(name=name, users=users, items=items, ratings=ratings,
                      user_ids=np.arange(1, shape.n_users + 1, dtype=np.int64), item_ids=item_ids.astype(np.int64))
    for array in (dataset.users, dataset.items, dataset.ratings, dataset.user_ids, dataset.item_ids):
        array.flags.writeable = False  # the cached copy is shared by every caller
    return dataset


def _ratings_per_user(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """At least 20 per user plus a long-tailed share of the rest, summing to n_ratings, each user
    capped at a third of the items (ML-1M's busiest user rated 62% of them; a lower cap keeps
    drawing distinct items cheap)."""
    spare = shape.n_ratings - MIN_PER_USER * shape.n_users
    cap = shape.n_items // 3 - MIN_PER_USER
    weight = rng.lognormal(0.0, 1.1, shape.n_users)
    extra = weight / weight.sum() * spare
    while (extra > cap).any():  # hand what the capped users cannot take to the others
        over = extra > cap
        surplus = (extra[over] - cap).sum()
        extra[over] = cap
        free = extra < cap
        extra[free] += surplus * weight[free] / weight[free].sum()
    whole: np.ndarray = np.floor(extra).astype(np.int64)  # numpy's stubs give Any here
    # Round so the total is exact: the largest remainders get one more.
    short = spare - whole.sum()
    remainder = np.where(whole < cap, extra - whole, -1.0)
    whole[np.argsort(-remainder, kind="stable")[:short]] += 1
    return MIN_PER_USER + whole


def _distinct_items(rng: np.random.Generator, users: np.ndarray, popularity: np.ndarray, n_items: int) -> np.ndarray:
    """An item for every row, drawn by popularity, never twice for the same user, and every item
    used at least once."""
    n_users = int(users[-1]) + 1
    taken = np.zeros(n_users * n_items, dtype=bool)
    items = np.empty(len(users), dtype=np.int64)
    pending = np.arange(len(users))
    p = popularity / popularity.sum()
    for attempt in range(1000):
        # Busy users run out of popular items they have not rated yet: after a few rounds draw
        # uniformly, which finishes in a handful of rounds more.
        if attempt < 4:
            draw = rng.choice(n_items, size=len(pending), p=p)
        else:
            draw = rng.integers(0, n_items, size=len(pending))
        key = users[pending] * n_items + draw
        _, first = np.unique(key, return_index=True)  # two rows drawing the same pair: keep one
        accept = np.zeros(len(pending), dtype=bool)
        accept[first] = True
        accept &= ~taken[key]
        taken[key[accept]] = True
        items[pending[accept]] = draw[accept]
        pending = pending[~accept]
        if not len(pending):
            break
    # The rarest items may not have been drawn at all: give each one a row of the most popular
    # item, which has far more rows than there are such items, so it keeps plenty.
    counts = np.bincount(items, minlength=n_items)
    unused = np.flatnonzero(counts == 0)
    if len(unused):
        donor_rows = np.flatnonzero(items == np.argmax(counts))
        items[rng.choice(donor_rows, size=len(unused), replace=False)] = unused
    return items


def _ratings(
    rng: np.random.Generator, users: np.ndarray, items: np.ndarray, popularity: np.ndarray, shape: Shape
) -> np.ndarray:
    """Low-rank scores plus biases and noise, cut into 1..5 at ML-1M's rating shares."""
    user_bias = rng.normal(0.0, 0.45, shape.n_users)
    log_pop = np.log(popularity)
    # Popular movies are rated higher on average, as in MovieLens.
    item_bias = rng.normal(0.0, 0.45, shape.n_items) + 0.25 * (log_pop - log_pop.mean()) / log_pop.std()
    scale = (0.6**2 / RANK) ** 0.25  # makes the factor term's standard deviation about 0.6
    user_factors = rng.normal(0.0, scale, (shape.n_users, RANK))
    item_factors = rng.normal(0.0, scale, (shape.n_items, RANK))
    score: np.ndarray = (
        user_bias[users]
        + item_bias[items]
        + np.einsum("ij,ij->i", user_factors[users], item_factors[items])
        + rng.normal(0.0, 0.9, len(users))
    )
    cuts = np.quantile(score, np.cumsum(RATING_SHARES)[:-1])
    return (1 + np.searchsorted(cuts, score)).astype(np.float32)
