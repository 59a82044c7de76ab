"""The memory estimate that refuses runs which cannot fit, when queued and when they start."""

from __future__ import annotations

import pytest

from engine.datasets import DATASETS, load_dataset
from engine.synthetic import SHAPES
from store.errors import ParamError
from store.memory import GIB, KNOWN_SHAPES, Shape, shortfall, training_bytes
from store.params import RunParams, expand_grid


def test_known_shapes_match_the_engines_datasets():
    assert set(KNOWN_SHAPES) == {*DATASETS, *SHAPES}
    for name, info in DATASETS.items():
        assert KNOWN_SHAPES[name].n_ratings == info.ratings, name
    for name, shape in SHAPES.items():
        assert KNOWN_SHAPES[name] == Shape(shape.n_users, shape.n_items, shape.n_ratings), name


def test_known_shape_of_the_real_ml100k(ml100k_path):
    ds = load_dataset(str(ml100k_path))
    assert KNOWN_SHAPES["ml-100k"] == Shape(ds.n_users, ds.n_items, ds.n_ratings)


def needs(data: str, **changes) -> int:
    p = RunParams(data=data, **changes)
    return training_bytes(KNOWN_SHAPES[data], model=p.model, k=p.k, hidden=p.hidden, bias=p.bias,
                          batch_size=p.batch_size)


def test_ordinary_runs_fit_a_small_box():
    assert needs("ml-25m", k=256, bias=True) < 24 * GIB
    assert needs("ml-32m", model="deepmf", k=256, hidden=(256, 128), bias=True, batch_size=65536) < 24 * GIB
    assert shortfall(needs("ml-25m", k=256), 24 * GIB, "this machine") is None


def test_the_estimate_counts_tables_and_adams_state():
    # 100M-wide embeddings of 2,625 users and items, four float32 copies: 4.2 TB before any data.
    assert needs("synthetic-100k", k=100_000_000) > (943 + 1682) * 100_000_000 * 16


def test_a_run_that_cannot_fit_here_is_refused_when_queued():
    with pytest.raises(ParamError, match=r"^mf k=100000000 lr=0.001 on synthetic-100k: needs about [\d,.]+ GiB "
                                         r".*this machine has [\d,.]+ GiB$"):
        expand_grid({"data": "synthetic-100k", "k": "100000000"})
    assert expand_grid({"data": "synthetic-100k", "k": "256"})  # an ordinary one still queues
