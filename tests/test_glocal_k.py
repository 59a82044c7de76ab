"""GLocal-K (engine/glocal_k.py) against plain references written from the formulas, and trained
through fit() on a tiny low-rank dataset (CPU, about a second per fit)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine import trainer
from engine.errors import ConfigError
from engine.glocal_k import GLocalK, local_kernel
from engine.models import build_model
from engine.split import split_dataset
from engine.trainer import fit
from store.errors import ParamError
from store.params import RunParams
from tests.tiny import tiny_dataset

N_USERS, N_ITEMS = 30, 20
RATED_USERS = 28  # the last two users have no rating at all


@pytest.fixture(scope="module")
def split():
    return split_dataset(tiny_dataset(N_USERS, N_ITEMS, 400, rated_users=RATED_USERS), val_size=0.1)


def train_tensors(split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    users, items, ratings = split.part("train")
    return torch.as_tensor(users), torch.as_tensor(items), torch.as_tensor(ratings)


def attached_model(split, **options) -> GLocalK:
    """A model with vectors spread wide enough that some kernel entries are cut to 0, attached to the
    training ratings."""
    torch.manual_seed(0)
    net = GLocalK(N_USERS, N_ITEMS, 3, hidden=(8, 6), **options)
    with torch.no_grad():
        for layer in net.kernel_layers():
            layer.u.normal_(std=0.4)
            layer.v.normal_(std=0.4)
    net.attach(*train_tensors(split))
    return net


# The references: from the state_dict and the training ratings, in the most direct torch ops.

def kernel_reference(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    distance2 = (u.unsqueeze(1) - v.unsqueeze(0)).square().sum(dim=2)
    return torch.maximum(torch.zeros(()), 1 - distance2)


Weights = dict[str, torch.Tensor]


def n_layers(w: Weights) -> int:
    return sum(1 for name in w if name.endswith(".weight"))


def autoencoder_reference(w: Weights, x: torch.Tensor) -> torch.Tensor:
    for n in range(n_layers(w)):
        kernel = kernel_reference(w[f"layers.{n}.u"], w[f"layers.{n}.v"])
        x = x @ (w[f"layers.{n}.weight"] * kernel) + w[f"layers.{n}.bias"]
        if n < n_layers(w) - 1:
            x = torch.sigmoid(x)
    return x


def matrix_reference(split) -> tuple[torch.Tensor, torch.Tensor]:
    users, items, ratings = train_tensors(split)
    matrix, observed = torch.zeros(N_ITEMS, N_USERS), torch.zeros(N_ITEMS, N_USERS, dtype=torch.bool)
    matrix[items, users], observed[items, users] = ratings, True
    return matrix, observed


def input_reference(w: Weights, matrix: torch.Tensor, fine_tuning: bool, dot_scale: float = 1.0) -> torch.Tensor:
    """The autoencoder's input for every item: the rating matrix, or when fine-tuning, relu of the
    whole matrix convolved as an image with the global kernel (zero padding, same size)."""
    if not fine_tuning:
        return matrix
    size = int(w["conv_bank"].shape[1] ** 0.5)
    kernel = (w["item_means"] @ w["conv_bank"] * dot_scale).view(1, 1, size, size)
    return F.relu(F.conv2d(matrix[None, None], kernel, padding=size // 2))[0, 0]


def loss_reference(w: Weights, split, items: torch.Tensor, *, reg: float, reg_kernel: float,
                   fine_tuning: bool) -> torch.Tensor:
    """sse over the batch's observed ratings / batch size + (reg |W|^2 + reg_kernel |K|^2) / n_items."""
    matrix, observed = matrix_reference(split)
    reconstruction = autoencoder_reference(w, input_reference(w, matrix, fine_tuning))[items]
    sse = (observed[items] * (reconstruction - matrix[items]).square()).sum()
    penalty = torch.stack([reg * w[f"layers.{n}.weight"].square().sum()
                           + reg_kernel * kernel_reference(w[f"layers.{n}.u"], w[f"layers.{n}.v"]).square().sum()
                           for n in range(n_layers(w))]).sum()
    return sse / len(items) + penalty / N_ITEMS


def test_the_local_kernel_is_one_minus_the_squared_distance_cut_at_zero():
    torch.manual_seed(0)
    u, v = torch.randn(7, 4) * 0.4, torch.randn(5, 4) * 0.4
    kernel = local_kernel(u, v)
    torch.testing.assert_close(kernel, kernel_reference(u, v), atol=1e-6, rtol=0)
    assert (kernel == 0).any() and (kernel > 0).any()  # some connections cut, some kept
    assert local_kernel(u, u).diagonal().allclose(torch.ones(7))


def test_each_layer_multiplies_its_weights_by_its_kernel(split):
    net = attached_model(split)
    layer = net.kernel_layers()[0]
    x = torch.randn(4, N_USERS)
    expected = x @ (layer.weight * kernel_reference(layer.u, layer.v)) + layer.bias
    torch.testing.assert_close(layer(x, layer.kernel()), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fine_tuning", [False, True])
def test_batch_loss_and_its_gradients_are_the_formulas(split, fine_tuning):
    net = attached_model(split, reg=0.7, reg_kernel=0.05)
    if fine_tuning:
        net.start_fine_tuning()
        assert net.fine_tuning and net.item_means.abs().sum() > 0
    items = torch.tensor([0, 5, 19, 7, 3])  # the first and last rows read the zero padding of the convolution
    loss, sse = net.batch_loss(items)
    w = {name: p.detach().clone() for name, p in net.state_dict().items()}
    for name, _ in net.named_parameters():
        w[name].requires_grad_(True)
    expected = loss_reference(w, split, items, reg=0.7, reg_kernel=0.05, fine_tuning=fine_tuning)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    names = [name for name, _ in net.named_parameters()]
    used = [name for name in names if fine_tuning or name != "conv_bank"]  # no global kernel before fine-tuning
    grads = torch.autograd.grad(loss, [dict(net.named_parameters())[name] for name in used])
    expected_grads = torch.autograd.grad(expected, [w[name] for name in used])
    for name, grad, expected_grad in zip(used, grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-4, msg=name)
    matrix, observed = matrix_reference(split)
    reconstruction = autoencoder_reference(w, input_reference(w, matrix, fine_tuning))[items]
    torch.testing.assert_close(sse, (observed[items] * (reconstruction - matrix[items]).square()).sum().detach())
    assert not sse.requires_grad


def test_batches_cover_every_item_once_an_epoch_in_a_seeded_order(split):
    net = attached_model(split)
    generator = torch.Generator().manual_seed(0)
    epochs = [[batch for (batch,) in net.batches(6, generator)] for _ in range(2)]
    for batches in epochs:
        assert len(batches) == net.n_batches(6) == 4
        assert sorted(torch.cat(batches).tolist()) == list(range(N_ITEMS))
    assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))


def test_pretraining_lasts_pretrain_epochs_then_fine_tuning_refreshes_the_item_means_each_epoch(split):
    net = attached_model(split, pretrain_epochs=2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        list(net.batches(8, generator))
        assert not net.fine_tuning
    list(net.batches(8, generator))
    assert net.fine_tuning
    w = net.state_dict()
    matrix, _ = matrix_reference(split)
    torch.testing.assert_close(net.item_means, autoencoder_reference(w, matrix).mean(dim=1))
    with torch.no_grad():
        net.kernel_layers()[0].bias.add_(1.0)
    list(net.batches(8, generator))
    torch.testing.assert_close(net.item_means, autoencoder_reference(net.state_dict(), matrix).mean(dim=1))


@pytest.mark.parametrize("fine_tuning", [False, True])
def test_forward_predicts_from_the_training_ratings_only(split, fine_tuning):
    net = attached_model(split)
    if fine_tuning:
        net.start_fine_tuning()
    net.eval()
    users, items, _ = (torch.as_tensor(a) for a in split.part("test"))
    w = net.state_dict()
    matrix, _ = matrix_reference(split)
    reconstruction = autoencoder_reference(w, input_reference(w, matrix, fine_tuning))
    # The test pairs, and two of the users who rated nothing.
    users = torch.cat([users, torch.tensor([RATED_USERS, RATED_USERS + 1])])
    items = torch.cat([items, torch.tensor([0, 1])])
    seen = users < RATED_USERS
    prediction = net(users, items)
    torch.testing.assert_close(prediction[seen], reconstruction[items[seen], users[seen]], atol=1e-5, rtol=1e-5)
    # A user with no training rating gets the mean training rating.
    mean = float(split.part("train")[2].mean())
    torch.testing.assert_close(prediction[~seen], torch.full((int((~seen).sum()),), mean))
    # The test ratings themselves are nowhere in it: attaching them too changes the predictions.
    test = (torch.as_tensor(a) for a in split.part("test"))
    net.attach(*(torch.cat([a, b]) for a, b in zip(train_tensors(split), test)))
    assert not torch.allclose(net(users, items), prediction)


def test_a_checkpoint_holds_the_phase_and_the_global_kernel(split):
    net = attached_model(split)
    net.start_fine_tuning()
    net.eval()
    users, items, _ = (torch.as_tensor(a) for a in split.part("test"))
    again = GLocalK(N_USERS, N_ITEMS, 3, hidden=(8, 6))
    again.load_state_dict(net.state_dict())
    again.attach(*train_tensors(split))
    again.eval()
    torch.testing.assert_close(again(users, items), net(users, items))


def test_build_model_passes_its_options():
    net = build_model("glocal_k", N_USERS, N_ITEMS, k=4, hidden=(9, 7), reg=3.0, dropout=0.2, bias=True)
    assert isinstance(net, GLocalK)
    assert [tuple(layer.weight.shape) for layer in net.kernel_layers()] == [(N_USERS, 9), (9, 7), (7, N_USERS)]
    assert net.kernel_layers()[0].u.shape == (N_USERS, 4) and (net.reg, net.dropout) == (3.0, 0.2)
    assert net.conv_bank.shape == (N_ITEMS, 9)


def test_refuses_a_matrix_too_large_and_an_even_global_kernel():
    with pytest.raises(ConfigError, match="rating matrix"):
        GLocalK(200_000, 100_000, hidden=(2,))
    with pytest.raises(ConfigError, match="odd"):
        GLocalK(N_USERS, N_ITEMS, conv_size=2)


def quick_fit(split, monkeypatch, **kwargs):
    kwargs = {"model": "glocal_k", "k": 3, "hidden": (16, 16), "reg": 0.1, "weight_decay": 0.0, "lr": 0.01,
              "batch_size": 8, "epochs": 8, "pretrain_epochs": 4, "device": "cpu", **kwargs}
    return fit(split, **kwargs)


def test_fit_and_the_cli_pass_its_own_parameters(split, monkeypatch):
    built = []

    def recording_build_model(*args, **kwargs):
        built.append(build_model(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(trainer, "build_model", recording_build_model)
    quick_fit(split, monkeypatch, epochs=1, reg_kernel=0.5, pretrain_epochs=2, conv_size=5, dot_scale=0.25)
    net = built[0]
    assert isinstance(net, GLocalK)
    assert (net.reg_kernel, net.pretrain_epochs, net.conv_size, net.dot_scale) == (0.5, 2, 5, 0.25)
    params = RunParams.from_dict({"model": "glocal_k", "reg_kernel": 0.5, "pretrain_epochs": 2, "conv_size": 5,
                                  "dot_scale": 0.25})
    assert {k: v for k, v in params.engine_args("fit").items() if k in ("reg_kernel", "conv_size")} == {
        "reg_kernel": 0.5, "conv_size": 5}
    with pytest.raises(ParamError, match="conv_size: must be an odd number"):
        RunParams(model="glocal_k", conv_size=4).validate()


def test_fit_trains_it_through_both_phases_and_the_error_falls(split, monkeypatch):
    result = quick_fit(split, monkeypatch)
    train = [e.train_rmse for e in result.epochs]
    assert train[-1] < train[0] and train[-1] < train[3]  # falls in pre-training and on in fine-tuning
    assert result.epochs[-1].test_rmse < result.epochs[0].test_rmse


def test_the_same_seed_gives_the_same_run_on_cpu(split, monkeypatch):
    runs = [quick_fit(split, monkeypatch, seed=seed, epochs=6) for seed in (1, 1, 2)]
    curves = [[(e.train_rmse, e.val_rmse, e.test_rmse) for e in run.epochs] for run in runs]
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]
