"""The memory estimate that refuses runs which cannot fit, when queued and when they start."""

from __future__ import annotations

import pytest

from engine import item_matrix
from engine.datasets import DATASETS, load_dataset
from engine.synthetic import SHAPES
from store import memory
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


def test_a_row_model_needs_its_dense_matrices_and_more():
    # I-AutoRec at the paper's 500 hidden units on ML-1M: the float32 ratings and bool mask of 3,706 x
    # 6,040 (112 MB), then two 6,040 x 500 weight matrices with Adam's state (97 MB) and a
    # reconstructed block of rows when evaluating.
    matrices = 3_706 * 6_040 * 5
    weights = 2 * 6_040 * 500 * 16
    assert needs("ml-1m", model="autorec", k=500) > matrices + weights
    assert needs("ml-1m", model="autorec", k=1000) > needs("ml-1m", model="autorec", k=500) + weights
    assert needs("ml-1m", model="autorec", k=500) < 2 * GIB
    # GLocal-K's layers are its hidden sizes, not k (the kernels' dimension).
    assert needs("ml-1m", model="glocal_k", hidden=(500, 500)) > matrices + weights
    assert needs("ml-1m", model="glocal_k", hidden=(1000, 1000)) > needs("ml-1m", model="glocal_k", hidden=(500, 500))
    # ML-20M's dense matrix alone (3.7G entries) is beyond a small box.
    assert needs("ml-20m", model="autorec", k=500) > 16 * GIB


def test_every_pair_model_counts_its_own_tables_and_head():
    mf = needs("ml-1m", model="mf", k=64)
    assert needs("ml-1m", model="gmf", k=64) > mf  # the k-vector over the product
    assert needs("ml-1m", model="deepmf", k=64, hidden=(64, 32)) > mf
    # NeuMF: four tables, so about the tables and their Adam state of a second MF.
    tables = (6_040 + 3_706) * 64 * 16
    assert needs("ml-1m", model="neumf", k=64, hidden=(64, 32)) > needs("ml-1m", model="deepmf", k=64,
                                                                         hidden=(64, 32)) + tables


def test_the_reconstructed_block_is_the_row_models():
    assert memory.RECONSTRUCT_BLOCK == item_matrix.RECONSTRUCT_BLOCK
