"""The training loop on a tiny low-rank dataset (CPU, a second or so per test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import adam, steps, trainer
from engine import models as engine_models
from engine.errors import ConfigError, DeviceError, DivergedError
from engine.models import MF, build_model
from engine.remap import Dataset
from engine.split import split_dataset
from engine.trainer import OPTIMIZERS, EpochStats, fit, resolve_device
from store import memory, params
from store.params import RunParams


def tiny_dataset(n_users: int = 60, n_items: int = 40, n_ratings: int = 1501) -> Dataset:
    rng = np.random.default_rng(0)
    users = rng.integers(0, n_users, n_ratings)
    items = rng.integers(0, n_items, n_ratings)
    taste = rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items))
    ratings = np.clip(np.rint(3.5 + taste[users, items]), 1, 5).astype(np.float32)
    return Dataset(name="tiny", users=users.astype(np.int64), items=items.astype(np.int64), ratings=ratings,
                   user_ids=np.arange(n_users, dtype=np.int64), item_ids=np.arange(n_items, dtype=np.int64))


@pytest.fixture(scope="module")
def split():
    return split_dataset(tiny_dataset())  # 1200 train rows: 2 full batches of 512 and one of 176


@pytest.fixture(scope="module")
def split_with_val():
    return split_dataset(tiny_dataset(), val_size=0.2)


def quick(split, **kwargs):
    kwargs = {"batch_size": 512, "epochs": 3, "device": "cpu", "lr": 0.05, **kwargs}
    return fit(split, **kwargs)


def test_every_parameter_declared_for_fit_is_one_fit_takes():
    fit_args = RunParams(epochs=1, device="cpu").engine_args("fit")
    assert {"model", "lr", "optimizer", "patience"} <= set(fit_args)
    assert len(fit(split_dataset(tiny_dataset()), **fit_args).epochs) == 1


def test_the_store_accepts_exactly_the_models_and_optimizers_the_engine_trains():
    # The store may not import the engine, so each keeps its own list; this keeps them equal.
    assert (engine_models.MODELS, OPTIMIZERS) == (params.MODELS, params.OPTIMIZERS)


def test_the_row_models_are_the_same_list_in_the_store_and_the_engine_and_are_row_models():
    assert engine_models.ROW_MODELS == memory.ROW_MODELS
    for name in engine_models.MODELS:
        built = engine_models.build_model(name, 12, 8, k=4, hidden=(4,))
        assert isinstance(built, engine_models.RowModel) == (name in engine_models.ROW_MODELS), name
        assert isinstance(built, engine_models.PairModel) == (name in params.PAIR_MODELS), name


def test_adamw_takes_the_autograd_step_and_trains_otherwise_than_adam(split):
    def step(optimizer: str):
        return steps.make_step([MF(60, 40)], torch.zeros(()), optimizer=optimizer, lrs=[0.01], weight_decays=[0.1],
                                  batch_size=512, capture=False)

    # The hand-written step is Adam's update: AdamW must not take it.
    assert isinstance(step("adam"), steps.HandStep) and not isinstance(step("adamw"), steps.HandStep)
    adam, adamw = (quick(split, weight_decay=0.1, optimizer=name, epochs=2) for name in ("adam", "adamw"))
    assert [e.train_rmse for e in adam.epochs] != [e.train_rmse for e in adamw.epochs]
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'"):
        quick(split, optimizer="rmsprop")


def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_device_error(spec):
    with pytest.raises(DeviceError, match=f"device {spec} was asked for but this machine has no CUDA device"):
        resolve_device(spec)


def test_cuda_index_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(DeviceError, match="only 2 CUDA devices"):
        resolve_device("cuda:2")


def test_unknown_device():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_capture_needs_cuda(split):
    with pytest.raises(ConfigError, match="capture=True needs a CUDA device"):
        quick(split, capture=True)


@pytest.mark.parametrize("model", ["mf", "deepmf"])
def test_same_seed_same_numbers(split, model):
    first = quick(split, model=model, seed=7)
    second = quick(split, model=model, seed=7)
    numbers = lambda r: [(e.train_rmse, e.test_rmse) for e in r.epochs]  # noqa: E731
    assert numbers(first) == numbers(second)
    assert numbers(quick(split, model=model, seed=8)) != numbers(first)


def test_learns(split):
    result = quick(split, epochs=20, bias=True)
    assert result.epochs[-1].train_rmse < result.epochs[0].train_rmse / 2
    assert result.stopped == "completed"
    assert result.best_test_rmse == min(e.test_rmse for e in result.epochs)


def test_train_rmse_is_exact_over_all_training_rows(split):
    # With a vanishing learning rate the model stays at its seeded initial weights, so the epoch's
    # accumulated train RMSE must equal the RMSE of those weights over every training row.
    result = fit(split, model="mf", lr=1e-12, weight_decay=0.0, epochs=1, batch_size=512, seed=3, device="cpu")
    torch.manual_seed(3)
    initial = build_model("mf", split.dataset.n_users, split.dataset.n_items)
    users, items, ratings = (torch.as_tensor(a) for a in split.part("train"))
    with torch.no_grad():
        expected = (initial(users, items) - ratings).square().mean().sqrt().item()
    assert result.epochs[0].train_rmse == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("emb_dropout", [0.0, 0.2])  # the hand-written step and the autograd one
def test_every_training_row_is_used_once_per_epoch_short_last_batch_included(split, monkeypatch, emb_dropout):
    seen = []
    make_step = steps.make_step

    def recording_make_step(*args, **kwargs):
        step = make_step(*args, **kwargs)
        step_call = type(step).__call__

        def recording_call(self, *batch):
            seen.append(batch[0].clone())
            step_call(self, *batch)

        monkeypatch.setattr(type(step), "__call__", recording_call)
        return step

    monkeypatch.setattr(trainer, "make_step", recording_make_step)
    quick(split, epochs=1, emb_dropout=emb_dropout)
    assert [len(b) for b in seen] == [512, 512, 176]
    # A permutation of the training rows: each (user) multiset matches, nothing repeated or dropped.
    train_users = np.sort(split.part("train")[0])
    assert np.array_equal(np.sort(torch.cat(seen).numpy()), train_users)


def test_progress_reports_and_epoch_callback(split, monkeypatch):
    monkeypatch.setattr(trainer, "CHECK_EVERY", 1)  # report after every batch
    progress: list[tuple[int, int]] = []
    epochs: list[EpochStats] = []
    quick(split, on_progress=lambda done, total: progress.append((done, total)), on_epoch=epochs.append)
    assert progress == [(1, 3), (2, 3), (3, 3)] * 3
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert all(isinstance(e, EpochStats) and e.val_rmse is None and e.seconds > 0 for e in epochs)


def test_val_rmse_reported_when_split_has_val(split_with_val):
    result = quick(split_with_val)
    assert all(e.val_rmse is not None and math.isfinite(e.val_rmse) for e in result.epochs)


def test_early_stopping_on_val(split_with_val):
    # At this learning rate val RMSE bottoms out at epoch 3 and then rises for a while.
    result = quick(split_with_val, lr=0.1, bias=True, init_std=0.1, weight_decay=0.0, epochs=30, patience=2)
    assert result.stopped == "early_stopped"
    assert len(result.epochs) == result.best_epoch + 2
    best = min(result.epochs, key=lambda e: e.val_rmse)
    assert (result.best_epoch, result.best_test_rmse) == (best.epoch, best.test_rmse)


def test_cancelled_between_epochs(split):
    epochs: list[EpochStats] = []
    result = quick(split, epochs=5, on_epoch=epochs.append, should_stop=lambda: len(epochs) == 2)
    assert result.stopped == "cancelled"
    assert [e.epoch for e in result.epochs] == [1, 2]


def test_cancelled_mid_epoch(split, monkeypatch):
    monkeypatch.setattr(trainer, "CHECK_EVERY", 1)
    calls = []

    def stop_at_the_second_batch() -> bool:
        calls.append(1)
        return len(calls) == 3  # once before the epoch, then after batch 1, then after batch 2

    result = quick(split, should_stop=stop_at_the_second_batch)
    assert (result.stopped, result.epochs, result.best_epoch) == ("cancelled", [], 0)
    assert math.isnan(result.best_test_rmse)


def test_divergence_is_reported(split):
    with pytest.raises(DivergedError, match=r"diverged: .* at epoch \d+"):
        quick(split, model="mf", lr=1e30, epochs=5)


def test_best_checkpoint_loads_with_weights_only(split, tmp_path):
    path = tmp_path / "runs" / "best.pt"
    result = quick(split, model="deepmf", checkpoint_path=path, epochs=4,
                   checkpoint_meta={"data": "tiny", "model": "mf"})
    assert result.checkpoint == path
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == result.best_epoch
    assert saved["test_rmse"] == result.best_test_rmse
    config = saved["config"]
    # The run's parameters come along (the worker passes them), but never in place of the model's own.
    assert (config["model"], config["hidden"], config["n_users"]) == ("deepmf", [10, 5], split.dataset.n_users)
    assert config["data"] == "tiny"
    model = build_model(config["model"], config["n_users"], config["n_items"], k=config["k"],
                        hidden=config["hidden"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    users, items, ratings = (torch.as_tensor(a) for a in split.part("test"))
    with torch.no_grad():
        rmse = (model(users, items) - ratings).square().mean().sqrt().item()
    assert rmse == pytest.approx(result.best_test_rmse, rel=1e-5)


# The CPU step (_HandStep: gradients by hand, Adam's fused kernel called directly) against the plain one:
# nn.Module forward, loss.backward() and torch.optim.Adam, on the same batches from the same weights.
# Over these 300 steps the parameters measured at most 3.6e-7 apart and the batch SSEs 2.3e-7 relative
# (float32 rounding: the reference's Adam is the per-tensor loop, the fast one the fused kernel); a
# learning rate 0.1% off moved the parameters 1.6e-3 (MF) and 0.19 (DeepMF), weight decay 10% off 1.1e-2
# and 0.18. The tolerances sit between: about 30x above the rounding, 100x below the smallest error.
EQUIVALENCE_STEPS = 300
PARAM_ATOL = 1e-5
SSE_RTOL = 1e-5


def assert_step_trains_like_autograd_and_adam(make_model):
    """Train two copies of `make_model(n_users, n_items)` (same seed) on the same batches, one with the step
    `_make_step` picks for CPU, one with forward, backward() and torch.optim.Adam, and assert that they
    agree all along. Returns the step, for the caller to check which it was."""
    n_users, n_items, batch, lr, weight_decay = 60, 40, 64, 1e-2, 1e-3  # repeated rows in every batch
    data = torch.Generator().manual_seed(0)
    users = torch.randint(0, n_users, (2000,), generator=data)
    items = torch.randint(0, n_items, (2000,), generator=data)
    ratings = torch.randint(1, 6, (2000,), generator=data).float()
    torch.manual_seed(1)
    reference = make_model(n_users, n_items)
    torch.manual_seed(1)
    net = make_model(n_users, n_items)
    optimizer = torch.optim.Adam(reference.parameters(), lr=lr, weight_decay=weight_decay)
    sse = torch.zeros(())
    step = steps.make_step([net], sse, optimizer="adam", lrs=[lr], weight_decays=[weight_decay], batch_size=batch,
                              capture=False)

    for n in range(EQUIVALENCE_STEPS):
        start = n * batch % (len(ratings) - batch)
        u, i, r = users[start:start + batch], items[start:start + batch], ratings[start:start + batch]
        loss = torch.nn.functional.mse_loss(reference(u, i), r)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sse.zero_()
        step(u, i, r)
        assert sse.item() == pytest.approx(loss.item() * batch, rel=SSE_RTOL)

    for (name, fast), slow in zip(net.named_parameters(), reference.parameters()):
        assert torch.allclose(fast, slow, rtol=0, atol=PARAM_ATOL), name
    return step


# torch._fused_adam_'s schema in torch 2.13, the signature _FusedAdam.step calls.
TORCH_2_13_FUSED_ADAM = (
    "aten::_fused_adam_(Tensor(a!)[] self, Tensor(b!)[] grads, Tensor(c!)[] exp_avgs, Tensor(d!)[] exp_avg_sqs, "
    "Tensor(e!)[] max_exp_avg_sqs, Tensor[] state_steps, *, float lr, float beta1, float beta2, "
    "float weight_decay, float eps, bool amsgrad, bool maximize, Tensor? grad_scale=None, "
    "Tensor? found_inf=None) -> ()")


# Without the fused kernel the step is torch.optim.Adam over the same flat buffers, whatever the model.
@pytest.mark.parametrize("model, options, kernel", [
    ("mf", {}, "fused"), ("deepmf", {}, "fused"), ("mf", {"bias": True}, "fused"),
    ("deepmf", {"bias": True, "hidden": (8, 4, 2)}, "fused"),
    ("mf", {"bias": True}, "missing"), ("deepmf", {"bias": True, "hidden": (8, 4, 2)}, "changed"),
])
def test_cpu_step_matches_autograd_and_torch_adam(model, options, kernel, monkeypatch):
    # What the import-time check makes of a torch whose private kernel is gone, or renamed an argument:
    # no kernel, so _FusedAdam steps through torch.optim.Adam.
    if kernel == "missing":
        monkeypatch.delattr(torch, "_fused_adam_")
        monkeypatch.setattr(adam, "FUSED_ADAM", adam.find_fused_adam())
    elif kernel == "changed":
        renamed = torch._C.parse_schema(TORCH_2_13_FUSED_ADAM.replace("float lr", "float learning_rate"))
        monkeypatch.setattr(adam, "FUSED_ADAM", adam.fused_adam_if_it_fits(torch._fused_adam_, renamed))
    step = assert_step_trains_like_autograd_and_adam(
        lambda n_users, n_items: build_model(model, n_users, n_items, **options))
    assert isinstance(step, steps.HandStep)
    assert (step.adams[0].kernel is not None) == (kernel == "fused")


class ScaledMF(MF):
    """MF times a learned scale: one more parameter, used in forward, that hand_grads knows nothing of."""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__(n_users, n_items)
        self.scale = torch.nn.Parameter(torch.tensor(1.5))

    def forward(self, users, items):
        return self.scale * super().forward(users, items)


def deepmf_with(change):
    def make(n_users, n_items):
        model = build_model("deepmf", n_users, n_items)
        change(model.mlp)
        return model
    return make


@pytest.mark.parametrize("make_model", [
    deepmf_with(lambda mlp: mlp.__setitem__(1, torch.nn.Tanh())),  # another activation
    deepmf_with(lambda mlp: mlp.insert(1, torch.nn.LayerNorm(10))),  # a norm layer (weights of its own)
    ScaledMF,  # a subclass with one more parameter
], ids=["tanh", "layer-norm", "mf-subclass-with-a-parameter"])
def test_a_model_outside_the_hand_written_gradients_trains_by_autograd(make_model):
    # The hand-written step would train these as the plain DeepMF or MF, silently: they must get autograd.
    step = assert_step_trains_like_autograd_and_adam(make_model)
    assert not isinstance(step, steps.HandStep)


def test_the_fused_adam_kernel_of_this_torch_is_used():
    # Fails when a torch upgrade changes the kernel: training still works (slower); check what changed
    # and update adam.FUSED_ADAM_ARGUMENTS if the call still means the same.
    assert adam.FUSED_ADAM is torch._fused_adam_
    assert adam.fused_adam_if_it_fits(torch._fused_adam_, torch._C.parse_schema(TORCH_2_13_FUSED_ADAM))


@pytest.mark.parametrize("old, new", [
    ("float lr", "float learning_rate"),  # an argument renamed
    ("float lr", "Tensor lr"),  # another type
    ("*, float lr", "float lr"),  # no longer keyword-only
    ("Tensor[] state_steps", "Tensor(f!)[] state_steps"),  # the kernel counts steps itself
    ("Tensor(a!)[] self", "Tensor[] self"),  # no longer updates the parameters in place
    ("Tensor(e!)[] max_exp_avg_sqs, ", ""),  # an argument gone
    ("bool maximize,", "bool maximize, float decoupled,"),  # a new argument without a default
])
def test_a_fused_adam_kernel_with_another_signature_is_not_called(old, new):
    assert old in TORCH_2_13_FUSED_ADAM
    changed = torch._C.parse_schema(TORCH_2_13_FUSED_ADAM.replace(old, new))
    assert adam.fused_adam_if_it_fits(torch._fused_adam_, changed) is None


def test_a_fused_adam_kernel_with_a_new_optional_argument_is_still_called():
    schema = torch._C.parse_schema(TORCH_2_13_FUSED_ADAM.replace("found_inf=None)",
                                                                 "found_inf=None, bool decoupled=False)"))
    assert adam.fused_adam_if_it_fits(torch._fused_adam_, schema) is torch._fused_adam_


def test_fit_matches_a_plain_training_loop(split):
    # fit() on CPU against the loop it stands for: the same seeded weights and batch order, autograd and
    # torch.optim.Adam, exact RMSEs. 8 epochs of 38 batches of 32 (the last one of 16).
    seed, batch, epochs, lr = 5, 32, 8, 1e-2
    result = fit(split, model="deepmf", lr=lr, batch_size=batch, epochs=epochs, seed=seed, device="cpu")

    torch.manual_seed(seed)
    net = build_model("deepmf", split.dataset.n_users, split.dataset.n_items)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    shuffle = torch.Generator().manual_seed(seed)
    train, test = ([torch.as_tensor(a) for a in split.part(name)] for name in ("train", "test"))
    for stats in result.epochs:
        order = torch.randperm(len(train[0]), generator=shuffle)
        users, items, ratings = (t[order] for t in train)
        sse = 0.0
        for start in range(0, len(ratings), batch):
            u, i, r = users[start:start + batch], items[start:start + batch], ratings[start:start + batch]
            loss = torch.nn.functional.mse_loss(net(u, i), r)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sse += loss.item() * len(r)
        with torch.no_grad():
            test_rmse = (net(test[0], test[1]) - test[2]).square().mean().sqrt().item()
        assert stats.train_rmse == pytest.approx(math.sqrt(sse / len(ratings)), rel=1e-5)
        assert stats.test_rmse == pytest.approx(test_rmse, rel=1e-5)
