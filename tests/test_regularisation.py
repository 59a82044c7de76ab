"""Per-rating L2 (reg, reg_bias), embedding dropout and clipped evaluation for the pair models: the
batch loss autograd differentiates, the hand-written CPU gradients that must equal it, and what fit()
and the command line make of them. Tiny synthetic data, CPU, a few seconds in all."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmf_tui.cli import main
from engine import steps
from engine.errors import ConfigError
from engine.models import MF, build_model, has_hand_grads
from engine.split import Split, split_dataset
from engine.trainer import fit
from store.db import open_store

if TYPE_CHECKING:  # mypy, run from the repository root, names the module tests.test_trainer
    from tests.test_trainer import tiny_dataset
else:  # pytest puts tests/ on sys.path
    from test_trainer import tiny_dataset

N_USERS, N_ITEMS = 7, 11

Model = TypeVar("Model", bound=torch.nn.Module)


def random_weights(model: Model) -> Model:
    """Every parameter drawn from N(0, 1), the zero-initialised biases too, so every term counts."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


def batch(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n ratings of 7 users and 11 items: every row is used several times."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, N_USERS, (n,), generator=g), torch.randint(0, N_ITEMS, (n,), generator=g),
            torch.randint(1, 6, (n,), generator=g).float())


REGULARISED = [
    ("mf", {"reg": 0.3}), ("mf", {"reg": 0.3, "bias": True}), ("mf", {"reg_bias": 0.2, "bias": True}),
    ("mf", {"reg": 0.3, "reg_bias": 0.2, "bias": True, "k": 5}),  # odd width: the plain index_add_ path
    ("deepmf", {"reg": 0.3}), ("deepmf", {"reg": 0.3, "reg_bias": 0.2, "bias": True}),
    ("deepmf", {"reg": 0.3, "reg_bias": 0.2, "bias": True, "hidden": (16, 8, 4), "k": 3}),
    ("mf", {"reg_bias": 0.2}),  # no biases to regularise: reg_bias changes nothing
]


@pytest.mark.parametrize("name, options", REGULARISED)
def test_hand_grads_with_regularisation_are_autograds_of_batch_loss(name, options):
    torch.manual_seed(0)
    model = random_weights(build_model(name, N_USERS, N_ITEMS, **options))
    assert has_hand_grads(model)  # the CPU trainer will use them
    users, items, ratings = batch()
    loss, sse = model.batch_loss(users, items, ratings)
    loss.backward()
    grads = {n: torch.full_like(p, 7.0) for n, p in model.named_parameters()}  # stale values must go
    hand_sse = model.hand_grads(grads)(users, items, ratings)
    assert hand_sse.item() == pytest.approx(sse.item(), rel=1e-6)
    for n, p in model.named_parameters():
        assert p.grad is not None, n
        assert torch.allclose(grads[n], p.grad, rtol=1e-5, atol=1e-6), n


def test_batch_loss_is_mse_plus_the_penalty_of_the_rows_each_rating_uses():
    torch.manual_seed(0)
    model = random_weights(MF(N_USERS, N_ITEMS, k=4, bias=True, reg=0.3, reg_bias=0.2))
    users, items, ratings = torch.tensor([0, 0, 1]), torch.tensor([2, 3, 3]), torch.tensor([4.0, 1.0, 5.0])
    p, q = model.user_emb.weight, model.item_emb.weight
    bu, bi = model.user_bias, model.item_bias
    with torch.no_grad():
        prediction = (p[users] * q[items]).sum(1) + bu[users] + bi[items] + model.global_bias
        # User 0 and item 3 are used twice, so they are penalised twice; the other rows not at all.
        rows = 2 * p[0].square().sum() + p[1].square().sum() + q[2].square().sum() + 2 * q[3].square().sum()
        biases = 2 * bu[0] ** 2 + bu[1] ** 2 + bi[2] ** 2 + 2 * bi[3] ** 2
        expected = (prediction - ratings).square().mean() + (0.3 * rows + 0.2 * biases) / 3
    loss, sse = model.batch_loss(users, items, ratings)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert sse.item() == pytest.approx((prediction - ratings).square().sum().item(), rel=1e-6)


@pytest.mark.parametrize("hand", [False, True], ids=["autograd", "hand-written"])
def test_reg_pulls_each_used_row_once_per_use_and_leaves_unused_rows_alone(hand):
    def gradients(reg: float) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = random_weights(MF(N_USERS, N_ITEMS, k=4, bias=True, reg=reg, reg_bias=reg))
        users, items, ratings = torch.tensor([0, 0, 1]), torch.tensor([2, 3, 3]), torch.tensor([4.0, 1.0, 5.0])
        if hand:
            grads = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
            model.hand_grads(grads)(users, items, ratings)
            return grads
        model.batch_loss(users, items, ratings)[0].backward()
        return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    plain, regularised = gradients(0.0), gradients(0.5)
    torch.manual_seed(0)
    weights = dict(random_weights(MF(N_USERS, N_ITEMS, k=4, bias=True)).named_parameters())
    # d/dw of 0.5 * (uses of w) * w^2 / 3 ratings: 2 * 0.5 * uses * w / 3.
    uses = {"user_emb.weight": torch.tensor([2, 1, 0, 0, 0, 0, 0]),
            "item_emb.weight": torch.tensor([0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0])}
    uses |= {"user_bias": uses["user_emb.weight"], "item_bias": uses["item_emb.weight"]}
    for name, count in uses.items():
        weight = weights[name].detach()
        pull = (count * 2 * 0.5 / 3).reshape(-1, *[1] * (weight.dim() - 1)) * weight
        assert torch.allclose(regularised[name] - plain[name], pull, atol=1e-6), name
        unused = count == 0
        assert torch.equal(regularised[name][unused], torch.zeros_like(weight[unused])), name
    assert torch.equal(regularised["global_bias"], plain["global_bias"])  # never regularised


@pytest.mark.parametrize("name", ["mf", "deepmf"])
def test_without_regularisation_the_batch_loss_is_the_labs_mse_exactly(name):
    torch.manual_seed(0)
    model = random_weights(build_model(name, N_USERS, N_ITEMS, bias=True))
    users, items, ratings = batch()
    loss, _ = model.batch_loss(users, items, ratings)
    assert torch.equal(loss, F.mse_loss(model(users, items), ratings))


# As tests/test_trainer.py checks the plain step: the CPU's hand-written step (_HandStep) against
# autograd of batch_loss and torch.optim.Adam, 300 steps of 64 on the same batches from the same weights.
# Measured here: parameters at most 1.4e-6 apart and batch SSEs 2.4e-7 relative (float32 rounding);
# reg 1 % off moved the parameters by 0.017 or more, reg_bias 1 % off by 1.1e-4. The tolerances are
# test_trainer's, between the two.
STEPS, PARAM_ATOL, SSE_RTOL = 300, 1e-5, 1e-5


@pytest.mark.parametrize("name, options", [
    ("mf", {"reg": 0.05}), ("mf", {"reg": 0.05, "reg_bias": 0.02, "bias": True}),
    ("deepmf", {"reg": 0.05}), ("deepmf", {"reg": 0.05, "reg_bias": 0.02, "bias": True}),
])
def test_the_cpu_step_with_regularisation_trains_like_autograd_and_adam(name, options):
    n_users, n_items, size, lr, weight_decay = 60, 40, 64, 1e-2, 1e-3
    g = torch.Generator().manual_seed(0)
    users, items = torch.randint(0, n_users, (2000,), generator=g), torch.randint(0, n_items, (2000,), generator=g)
    ratings = torch.randint(1, 6, (2000,), generator=g).float()
    torch.manual_seed(1)
    reference = build_model(name, n_users, n_items, **options)
    torch.manual_seed(1)
    net = build_model(name, n_users, n_items, **options)
    adam = torch.optim.Adam(reference.parameters(), lr=lr, weight_decay=weight_decay)
    sse = torch.zeros(())
    step = steps.make_step([net], sse, optimizer="adam", lrs=[lr], weight_decays=[weight_decay], batch_size=size,
                              capture=False)
    assert isinstance(step, steps.HandStep)
    for n in range(STEPS):
        start = n * size % (len(ratings) - size)
        u, i, r = users[start:start + size], items[start:start + size], ratings[start:start + size]
        loss, batch_sse = reference.batch_loss(u, i, r)
        adam.zero_grad()
        loss.backward()
        adam.step()
        sse.zero_()
        step(u, i, r)
        assert sse.item() == pytest.approx(batch_sse.item(), rel=SSE_RTOL)
    for (parameter, fast), slow in zip(net.named_parameters(), reference.parameters()):
        assert torch.allclose(fast, slow, rtol=0, atol=PARAM_ATOL), parameter


def checkpointed(split, path, **options) -> dict[str, torch.Tensor]:
    fit(split, batch_size=128, epochs=3, device="cpu", lr=0.05, bias=True, checkpoint_path=path, **options)
    state: dict[str, torch.Tensor] = torch.load(path, weights_only=True)["state_dict"]
    return state


@pytest.fixture(scope="module")
def split():
    return split_dataset(tiny_dataset())


def test_fit_trains_with_reg_and_reg_bias_and_they_shrink_what_they_penalise(split, tmp_path):
    plain = checkpointed(split, tmp_path / "plain.pt")
    rows = checkpointed(split, tmp_path / "rows.pt", reg=1.0)
    biases = checkpointed(split, tmp_path / "biases.pt", reg_bias=1.0)
    norm = lambda state, name: state[name].norm().item()  # noqa: E731
    assert norm(rows, "user_emb.weight") < norm(plain, "user_emb.weight")
    assert norm(rows, "item_emb.weight") < norm(plain, "item_emb.weight")
    assert norm(biases, "user_bias") < norm(plain, "user_bias")
    assert norm(biases, "item_bias") < norm(plain, "item_bias")
    assert torch.load(tmp_path / "rows.pt", weights_only=True)["config"]["reg"] == 1.0  # made again alike


def test_embedding_dropout_is_on_in_training_and_off_in_evaluation():
    torch.manual_seed(0)
    model = MF(N_USERS, N_ITEMS, k=16, emb_dropout=0.5)
    users, items, _ = batch()
    exact = (model.user_emb.weight[users] * model.item_emb.weight[items]).sum(1)
    model.train()
    user, _ = model.lookup(users, items)
    dropped = user == 0
    assert 0.3 < dropped.float().mean().item() < 0.7
    # Inverted dropout: what is kept is scaled by 1 / (1 - p).
    assert torch.allclose(user[~dropped], 2 * model.user_emb.weight[users][~dropped])
    assert not torch.allclose(model(users, items), exact)
    model.eval()
    assert torch.equal(model(users, items), exact)
    assert not has_hand_grads(model)  # its gradients are not the hand-written ones
    step = steps.make_step([model], torch.zeros(()), optimizer="adam", lrs=[0.01], weight_decays=[0.0],
                              batch_size=64, capture=False)
    assert isinstance(step, steps.EagerStep)


@pytest.mark.parametrize("option", ["dropout", "emb_dropout"])
def test_a_dropout_rate_of_one_is_refused_naming_the_option_and_its_value(option):
    with pytest.raises(ConfigError, match=f"^{option} must be >= 0 and < 1 \\(got 1.0\\)$"):
        build_model("deepmf", N_USERS, N_ITEMS, **{option: 1.0})


def test_fit_with_embedding_dropout_trains_otherwise_and_evaluates_deterministically(split):
    plain = fit(split, epochs=2, device="cpu", lr=0.05)
    dropped = fit(split, epochs=2, device="cpu", lr=0.05, emb_dropout=0.3)
    again = fit(split, epochs=2, device="cpu", lr=0.05, emb_dropout=0.3)
    assert [e.train_rmse for e in dropped.epochs] != [e.train_rmse for e in plain.epochs]
    assert [e.test_rmse for e in dropped.epochs] == [e.test_rmse for e in again.epochs]


def range_split() -> Split:
    """A split whose training ratings span 2-4 only while its test ratings span 1-5, so that clipping
    to the training range is told apart from clipping to the test's or to 1-5."""
    ds = tiny_dataset()
    rows = np.arange(len(ds.ratings))
    inside = (ds.ratings >= 2) & (ds.ratings <= 4)
    train = rows[inside][: int(inside.sum() * 0.8)]
    test = np.setdiff1d(rows, train)
    return Split(dataset=ds, train=train, val=np.array([], dtype=np.int64), test=test)


def test_clip_clamps_evaluation_to_the_training_ratings_range(tmp_path):
    split = range_split()
    # A high learning rate, so that predictions overshoot the range.
    options: dict[str, Any] = {"epochs": 4, "device": "cpu", "lr": 0.1, "bias": True}
    plain = fit(split, **options)
    clipped = fit(split, **options, clip=True, checkpoint_path=tmp_path / "clip.pt")
    # Training is the same; only evaluation is clipped, which can only bring predictions nearer.
    assert [e.train_rmse for e in clipped.epochs] == [e.train_rmse for e in plain.epochs]
    assert all(c.test_rmse <= p.test_rmse for c, p in zip(clipped.epochs, plain.epochs))
    assert any(c.test_rmse < p.test_rmse for c, p in zip(clipped.epochs, plain.epochs))

    state = torch.load(tmp_path / "clip.pt", weights_only=True)
    model = build_model("mf", split.dataset.n_users, split.dataset.n_items, bias=True)
    model.load_state_dict(state["state_dict"])
    users, items, ratings = (torch.as_tensor(a) for a in split.part("test"))
    with torch.no_grad():
        prediction = model(users, items)
    assert prediction.min() < 2 or prediction.max() > 4  # else this test shows nothing
    expected = math.sqrt((prediction.clamp(2, 4) - ratings).square().mean().item())
    assert clipped.best_test_rmse == pytest.approx(expected, rel=1e-5)


def test_add_and_run_refuse_a_negative_reg_in_one_line_and_queue_nothing(db, capsys):
    assert main(["--db", db, "add", "--seed", "1"]) == 0
    for command in ("add", "run"):
        capsys.readouterr()
        assert main(["--db", db, command, "--data", "synthetic-100k", "--reg", "-1"]) == 2
        err = capsys.readouterr().err
        assert err == "dmf-tui: error: reg: must be >= 0 (got -1)\n", err
    for flags, message in [(["--reg-bias", "0.1"], "reg_bias regularises the biases, which need --bias true"),
                           (["--emb-dropout", "1"], "emb_dropout: must be >= 0 and < 1 (got 1)")]:
        assert main(["--db", db, "add", *flags]) == 2
        assert capsys.readouterr().err == f"dmf-tui: error: {message}\n"
    assert open_store(db).count_runs() == 1
