"""The synthetic stand-ins for ML-100K and ML-1M."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import DataError
from engine.formats import Ratings
from engine.remap import remap
from engine.synthetic import make_synthetic

SHAPES = {"synthetic-100k": (100_000, 943, 1_682), "synthetic-1m": (1_000_209, 6_040, 3_706)}


@pytest.mark.parametrize("name", SHAPES)
def test_shape_and_properties(name):
    ds = make_synthetic(name)
    assert (ds.n_ratings, ds.n_users, ds.n_items) == SHAPES[name]
    per_user = np.bincount(ds.users, minlength=ds.n_users)
    per_item = np.bincount(ds.items, minlength=ds.n_items)
    assert per_user.min() >= 20 and per_item.min() >= 1
    # Long tail: the busiest tenth of the items holds far more than a tenth of the ratings.
    top = np.sort(per_item)[::-1][: ds.n_items // 10].sum()
    assert top > 0.3 * ds.n_ratings
    pairs = ds.users * ds.n_items + ds.items
    assert len(np.unique(pairs)) == ds.n_ratings
    assert set(np.unique(ds.ratings).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert abs(float(ds.ratings.mean()) - 3.58) < 0.02
    assert ds.user_ids[0] == 1 and ds.item_ids[0] >= 1  # MovieLens-like 1-based raw ids


@pytest.mark.parametrize("name", SHAPES)
def test_same_as_remapping_its_raw_ids(name):
    ds = make_synthetic(name)
    raw = Ratings(ds.user_ids[ds.users], ds.item_ids[ds.items], ds.ratings, source=name, format="synthetic")
    again = remap(raw, name)
    assert np.array_equal(again.users, ds.users) and np.array_equal(again.items, ds.items)
    assert np.array_equal(again.item_ids, ds.item_ids)


def test_deterministic_whatever_the_global_rng():
    first = make_synthetic("synthetic-100k")
    make_synthetic.cache_clear()
    np.random.seed(123)
    second = make_synthetic("synthetic-100k")
    assert first is not second
    for field in ("users", "items", "ratings", "user_ids", "item_ids"):
        assert np.array_equal(getattr(first, field), getattr(second, field))


def test_cached_arrays_are_read_only():
    ds = make_synthetic("synthetic-100k")
    assert make_synthetic("synthetic-100k") is ds
    with pytest.raises(ValueError):
        ds.ratings[0] = 5.0


def test_unknown_name():
    with pytest.raises(DataError, match="synthetic-100k, synthetic-1m"):
        make_synthetic("synthetic-2m")
