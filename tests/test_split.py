"""The lab's split, exactly, plus the validation fraction and cold-start counts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from engine.errors import ConfigError
from engine.remap import Dataset
from engine.split import split_dataset


def make_dataset(n: int, n_users: int = 50, n_items: int = 40) -> Dataset:
    rng = np.random.default_rng(n)
    return Dataset(
        name="t",
        users=rng.integers(0, n_users, n),
        items=rng.integers(0, n_items, n),
        ratings=rng.integers(1, 6, n).astype(np.float32),
        user_ids=np.arange(1, n_users + 1),
        item_ids=np.arange(1, n_items + 1),
    )


def test_ml1m_counts_match_sklearn():
    # ML-1M has 1,000,209 ratings: the lab's split gives 800,167 train and 200,042 test rows.
    rows = np.arange(1_000_209)
    train, test = train_test_split(rows, test_size=0.2, shuffle=True, random_state=42)
    assert (len(train), len(test)) == (800_167, 200_042)
    split = split_dataset(make_dataset(1_000_209))
    assert np.array_equal(split.train, train) and np.array_equal(split.test, test)
    assert len(split.val) == 0


@pytest.mark.parametrize("n, test_size, seed", [(1_000, 0.2, 42), (997, 0.1, 0), (12_345, 0.33, 7)])
def test_equal_to_train_test_split_on_the_rows(n, test_size, seed):
    ds = make_dataset(n)
    rows = np.column_stack([ds.users, ds.items, ds.ratings])  # what the lab passes in
    train_rows, test_rows = train_test_split(rows, test_size=test_size, shuffle=True, random_state=seed)
    split = split_dataset(ds, test_size=test_size, split_seed=seed)
    for part, expected in (("train", train_rows), ("test", test_rows)):
        users, items, ratings = split.part(part)
        assert np.array_equal(np.column_stack([users, items, ratings]), expected)


def test_validation_fraction_is_carved_from_train():
    ds = make_dataset(10_000)
    plain = split_dataset(ds)
    split = split_dataset(ds, val_size=0.1)
    assert np.array_equal(split.test, plain.test)
    assert len(split.val) == 800 and len(split.train) == 7_200
    assert sorted(np.concatenate([split.train, split.val]).tolist()) == sorted(plain.train.tolist())
    train, val = train_test_split(plain.train, test_size=0.1, shuffle=True, random_state=42)
    assert np.array_equal(split.train, train) and np.array_equal(split.val, val)
    assert np.array_equal(split_dataset(ds, val_size=0.1).val, split.val)  # deterministic


def test_cold_start_counts():
    # users 0..3, items 0..3; a seed and a layout where the test rows are known.
    ds = Dataset(
        name="cold",
        users=np.array([0, 0, 1, 1, 2, 3, 0, 1, 2, 0]),
        items=np.array([0, 1, 0, 1, 2, 3, 0, 1, 0, 1]),
        ratings=np.ones(10, dtype=np.float32),
        user_ids=np.arange(4),
        item_ids=np.arange(4),
    )
    split = split_dataset(ds, test_size=0.3, split_seed=0)
    train_users, test_users = set(ds.users[split.train]), set(ds.users[split.test])
    train_items, test_items = set(ds.items[split.train]), set(ds.items[split.test])
    assert split.cold_users == len(test_users - train_users)
    assert split.cold_items == len(test_items - train_items)
    assert split.cold_users + split.cold_items > 0  # the layout really has cold rows


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"test_size": 0.0}, "test_size"),
        ({"test_size": 1.0}, "test_size"),
        ({"test_size": -0.1}, "test_size"),
        ({"val_size": 1.0}, "val_size"),
        ({"val_size": -0.5}, "val_size"),
        ({"split_seed": -1}, "split_seed"),
        ({"test_size": 0.9999}, "empty part"),
    ],
)
def test_bad_fractions(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        split_dataset(make_dataset(100), **kwargs)


def test_unknown_part():
    with pytest.raises(ConfigError, match="unknown split part"):
        split_dataset(make_dataset(100)).part("dev")
