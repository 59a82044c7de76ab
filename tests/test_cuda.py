"""The captured CUDA step against the eager one. Runs only where there is a CUDA device: these
machines have none, so this whole file skips here and runs on a GPU box (bench/bench_gpu.py too)."""

from __future__ import annotations

import pytest
import torch

from engine.split import split_dataset
from engine.synthetic import make_synthetic
from engine.trainer import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def split():
    return split_dataset(make_synthetic("synthetic-100k"))


@pytest.mark.parametrize("model", ["mf", "deepmf"])
def test_captured_step_gives_the_eager_curve(split, model):
    # 80,000 training rows are 156 full batches of 512 and a last one of 128: the captured graph
    # replays the full ones and the short one must still be trained, unpadded.
    assert len(split.train) % 512 != 0
    eager = fit(split, model=model, epochs=3, seed=0, device="cuda", capture=False)
    captured = fit(split, model=model, epochs=3, seed=0, device="cuda", capture=True)
    for a, b in zip(eager.epochs, captured.epochs):
        assert a.train_rmse == pytest.approx(b.train_rmse, abs=1e-4)
        assert a.test_rmse == pytest.approx(b.test_rmse, abs=1e-4)


def test_an_explicit_card_is_used(split):
    last = torch.cuda.device_count() - 1
    result = fit(split, epochs=1, device=f"cuda:{last}")
    assert result.epochs[0].test_rmse > 0
