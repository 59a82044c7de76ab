"""The models are the lab's by default; the extras add to them without changing the defaults."""

from __future__ import annotations

import pytest
import torch

from engine.errors import ConfigError
from engine.models import MF, DeepMF, PairModel, build_model, flatten_parameters, has_hand_grads, parameter_views


def build_pair(name: str, n_users: int, n_items: int, **options: object) -> PairModel:
    """build_model for the pair models these tests are about, typed as one."""
    model = build_model(name, n_users, n_items, **options)
    assert isinstance(model, PairModel)
    return model

N_USERS, N_ITEMS, K = 7, 11, 10


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def lab_batch(n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(0, N_USERS, (n,)), torch.randint(0, N_ITEMS, (n,))


def test_mf_is_the_labs():
    model = build_pair("mf", N_USERS, N_ITEMS)
    assert isinstance(model, MF)
    assert n_params(model) == (N_USERS + N_ITEMS) * K
    users, items = lab_batch()
    expected = (model.user_emb.weight[users] * model.item_emb.weight[items]).sum(dim=1)
    assert torch.equal(model(users, items), expected)


def test_deepmf_is_the_labs():
    model = build_pair("deepmf", N_USERS, N_ITEMS)
    assert isinstance(model, DeepMF)
    # Embeddings, then Linear(2K,10), Linear(10,5), Linear(5,1) with their biases.
    assert n_params(model) == (N_USERS + N_ITEMS) * K + (2 * K * 10 + 10) + (10 * 5 + 5) + (5 + 1)
    shapes = [tuple(m.weight.shape) for m in model.mlp if isinstance(m, torch.nn.Linear)]
    assert shapes == [(10, 2 * K), (5, 10), (1, 5)]
    assert model(*lab_batch(5)).shape == (5,)


def test_default_initialisation_is_pytorchs():
    # Same seed, same creation order as the lab: the same starting weights as plain nn modules.
    torch.manual_seed(3)
    model = build_pair("deepmf", N_USERS, N_ITEMS)
    torch.manual_seed(3)
    plain = (torch.nn.Embedding(N_USERS, K), torch.nn.Embedding(N_ITEMS, K), torch.nn.Linear(2 * K, 10))
    assert isinstance(model, DeepMF)
    first_layer = model.mlp[0]
    assert isinstance(first_layer, torch.nn.Linear)
    assert torch.equal(model.user_emb.weight, plain[0].weight)
    assert torch.equal(model.item_emb.weight, plain[1].weight)
    assert torch.equal(first_layer.weight, plain[2].weight)


@pytest.mark.parametrize("name", ["mf", "deepmf"])
def test_bias_adds_user_item_and_global_terms_starting_at_zero(name):
    torch.manual_seed(0)
    plain = build_pair(name, N_USERS, N_ITEMS)
    torch.manual_seed(0)
    biased = build_pair(name, N_USERS, N_ITEMS, bias=True)
    assert n_params(biased) == n_params(plain) + N_USERS + N_ITEMS + 1
    users, items = lab_batch()
    assert torch.equal(biased(users, items), plain(users, items))
    with torch.no_grad():
        biased.global_bias.fill_(3.5)
    assert torch.allclose(biased(users, items), plain(users, items) + 3.5)


def test_hidden_list_and_dropout():
    model = build_pair("deepmf", N_USERS, N_ITEMS, k=4, hidden=(16, 8, 4), dropout=0.5)
    assert isinstance(model, DeepMF)
    shapes = [tuple(m.weight.shape) for m in model.mlp if isinstance(m, torch.nn.Linear)]
    assert shapes == [(16, 8), (8, 16), (4, 8), (1, 4)]
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.mlp) == 3
    model.eval()  # dropout off: deterministic
    users, items = lab_batch()
    assert torch.equal(model(users, items), model(users, items))


def test_init_std_draws_small_normal_embeddings():
    torch.manual_seed(0)
    model = build_pair("mf", 500, 500, init_std=0.01)
    assert abs(model.user_emb.weight.std().item() - 0.01) < 0.002


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "svd"}, "unknown model 'svd'"),
    ({"name": "mf", "k": 0}, "k must be > 0"),
    ({"name": "deepmf", "hidden": ()}, "hidden"),
    ({"name": "mf", "dropout": 1.0}, "dropout"),
])
def test_bad_config_is_a_config_error(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(ConfigError, match=message):
        build_model(name, N_USERS, N_ITEMS, **kwargs)


@pytest.mark.parametrize("name, options", [
    ("mf", {}), ("mf", {"bias": True}), ("deepmf", {}), ("deepmf", {"bias": True}),
    ("deepmf", {"hidden": (7,)}), ("deepmf", {"hidden": (16, 8, 4), "k": 4, "bias": True}),
    ("mf", {"k": 5}), ("deepmf", {"k": 3, "bias": True}),  # odd widths: index_add_ on the floats
])
def test_hand_grads_are_autograds(name, options):
    torch.manual_seed(0)
    model = build_pair(name, N_USERS, N_ITEMS, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()  # biases too, so every term counts
    users, items = lab_batch(64)  # with repeats: 64 rows of 7 users and 11 items
    ratings = torch.randint(1, 6, (64,)).float()
    loss = torch.nn.functional.mse_loss(model(users, items), ratings)
    loss.backward()
    # Stale values in the buffers must not survive: the rows no batch touches become zero.
    grads = {n: torch.full_like(p, 7.0) for n, p in model.named_parameters()}
    sse = model.hand_grads(grads)(users, items, ratings)
    assert sse.item() == pytest.approx(loss.item() * 64, rel=1e-6)
    for n, p in model.named_parameters():
        assert p.grad is not None, n
        assert torch.allclose(grads[n], p.grad, rtol=1e-5, atol=1e-6), n


def test_hand_grads_follow_in_place_updates():
    model = build_pair("mf", N_USERS, N_ITEMS)
    grads = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    mse_grads = model.hand_grads(grads)
    users, items = lab_batch()
    with torch.no_grad():
        model.item_emb.weight.zero_()  # as an optimizer step would, in place
    assert mse_grads(users, items, torch.ones(5)).item() == 5.0  # every prediction is now 0


@pytest.mark.parametrize("name, options", [
    ("mf", {}), ("mf", {"bias": True, "k": 3, "init_std": 0.1}), ("deepmf", {}), ("deepmf", {"bias": True}),
    ("deepmf", {"hidden": (7,)}), ("deepmf", {"hidden": (16, 8, 4), "k": 4, "bias": True}),
])
def test_every_model_build_model_makes_without_dropout_has_hand_grads(name, options):
    assert has_hand_grads(build_pair(name, N_USERS, N_ITEMS, **options))


class SubclassedMF(MF):  # no new parameter, but a subclass may compute anything
    def forward(self, users, items):
        return torch.sigmoid(super().forward(users, items))


class SubclassedLinear(torch.nn.Linear):
    pass


def deepmf(change=lambda model: None, **options):
    model = build_pair("deepmf", N_USERS, N_ITEMS, **options)
    change(model)
    return model


def mf(change=lambda model: None, **options):
    model = build_pair("mf", N_USERS, N_ITEMS, **options)
    change(model)
    return model


# Each model here differs from one hand_grads was written for in a way that changes its gradients (or,
# for a subclass, may): the trainer must train it by autograd.
@pytest.mark.parametrize("make", [
    pytest.param(lambda: mf(emb_dropout=0.1), id="mf-emb-dropout"),
    pytest.param(lambda: deepmf(emb_dropout=0.1), id="deepmf-emb-dropout"),
    pytest.param(lambda: deepmf(dropout=0.1), id="deepmf-dropout"),
    pytest.param(lambda: deepmf(lambda m: m.mlp.__setitem__(1, torch.nn.Tanh())), id="tanh"),
    pytest.param(lambda: deepmf(lambda m: m.mlp.insert(1, torch.nn.LayerNorm(10))), id="layer-norm"),
    pytest.param(lambda: deepmf(lambda m: m.mlp.append(torch.nn.ReLU())), id="ends-in-relu"),
    pytest.param(lambda: deepmf(lambda m: m.mlp.__setitem__(0, SubclassedLinear(2 * K, 10))), id="linear-subclass"),
    pytest.param(lambda: deepmf(lambda m: m.mlp.__setitem__(4, torch.nn.Linear(5, 1, bias=False))),
                 id="linear-without-bias"),
    pytest.param(lambda: deepmf(lambda m: m.mlp.__setitem__(4, torch.nn.Linear(5, 2))), id="two-outputs"),
    pytest.param(lambda: deepmf(lambda m: m.mlp.__setitem__(2, m.mlp[0])), id="one-layer-twice"),
    pytest.param(lambda: deepmf(lambda m: setattr(m, "mlp", torch.nn.Sequential())), id="empty-mlp"),
    pytest.param(lambda: deepmf(lambda m: setattr(m, "user_emb", torch.nn.EmbeddingBag(N_USERS, K))),
                 id="embedding-bag"),
    pytest.param(lambda: SubclassedMF(N_USERS, N_ITEMS), id="mf-subclass"),
    pytest.param(lambda: mf(lambda m: m.register_parameter("scale", torch.nn.Parameter(torch.ones(())))),
                 id="extra-parameter"),
    pytest.param(lambda: mf(lambda m: m.register_buffer("scale", torch.ones(()))), id="extra-buffer"),
    pytest.param(lambda: mf(lambda m: setattr(m, "norm", torch.nn.LayerNorm(K))), id="extra-module"),
    # float64 tables would be read as complex64 rows of garbage
    pytest.param(lambda: mf(lambda m: m.double()), id="float64"),
    pytest.param(lambda: mf(lambda m: m.item_emb.requires_grad_(False)), id="frozen"),  # autograd leaves it
    pytest.param(lambda: mf(lambda m: delattr(m, "global_bias"), bias=True), id="missing-bias"),
])
def test_any_other_model_has_no_hand_grads(make):
    model = make()
    assert not has_hand_grads(model)
    with pytest.raises(ValueError, match="no hand-written gradients"):
        model.hand_grads({n: torch.zeros_like(p) for n, p in model.named_parameters()})


@pytest.mark.parametrize("name, options", [("mf", {}), ("mf", {"bias": True, "k": 3}),
                                           ("deepmf", {"bias": True, "hidden": (7, 3)})])
def test_flatten_parameters_keeps_the_model_and_shares_one_buffer(name, options):
    torch.manual_seed(0)
    before = build_pair(name, N_USERS, N_ITEMS, **options).state_dict()
    torch.manual_seed(0)
    model = build_pair(name, N_USERS, N_ITEMS, **options)
    flat = flatten_parameters(model)
    after = model.state_dict()
    assert list(after) == list(before)
    for n in before:
        assert torch.equal(after[n], before[n]), n
    views = parameter_views(model, flat)
    for n, p in model.named_parameters():
        assert p.data_ptr() == views[n].data_ptr() and p.requires_grad, n
        assert (p.data_ptr() - flat.data_ptr()) % 64 == 0, n  # aligned as a tensor of its own
    assert flat.count_nonzero() == sum(p.count_nonzero() for p in model.parameters())  # zero padding
    with torch.no_grad():
        flat.add_(1.0)  # as the trainer's Adam step does
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n] + 1), n
    fresh = build_pair(name, N_USERS, N_ITEMS, **options)
    fresh.load_state_dict(model.state_dict())  # as a checkpoint of the flattened model loads
    users, items = lab_batch()
    assert torch.equal(fresh(users, items), model(users, items))
