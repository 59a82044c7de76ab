"""The captured CUDA step against the eager one. Runs only where there is a CUDA device: these
machines have none, so this whole file skips here and runs on a GPU box (bench/bench_gpu.py too)."""

from __future__ import annotations

import pytest
import torch

from engine.split import split_dataset
from engine.synthetic import make_synthetic
from engine.trainer import fit, fit_pack

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


@pytest.mark.parametrize("model", ["mf", "deepmf", "neumf"])
def test_a_captured_pack_gives_each_run_its_eager_curve(split, model):
    # The pack's step (vmap over the runs, StackedAdam) captured in one graph, with a schedule: its
    # rates are tensors the replays read, so the captured pack follows it, and a run that ends early
    # (epochs 2) is given a rate of 0 without disturbing the others.
    runs = [dict(model=model, lr=lr, weight_decay=wd, seed=seed, epochs=epochs, device="cuda", schedule="cosine")
            for seed, (lr, wd, epochs) in enumerate([(1e-3, 0.0, 3), (1e-2, 1e-5, 2), (3e-3, 1e-4, 3)])]
    packed = fit_pack(split, runs)
    for run, outcome in zip(runs, packed):
        assert not isinstance(outcome, Exception)
        alone = fit(split, **run, capture=False)
        assert len(outcome.epochs) == len(alone.epochs) == run["epochs"]
        for a, b in zip(alone.epochs, outcome.epochs):
            assert a.test_rmse == pytest.approx(b.test_rmse, abs=1e-4)
