"""I-AutoRec (engine/autorec.py) against a plain dense reference, its batches, its predictions and its
training through fit(), on a tiny dataset (CPU, well under a second per test)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine import item_matrix
from engine.autorec import AutoRec
from engine.errors import ConfigError
from engine.models import build_model
from engine.remap import Dataset
from engine.split import Split, split_dataset
from engine.trainer import fit

N_USERS, N_ITEMS = 30, 20


def tiny_dataset() -> Dataset:
    """400 ratings of a rank-2 taste, each (user, item) pair at most once."""
    rng = np.random.default_rng(0)
    pairs = rng.choice(N_USERS * N_ITEMS, 400, replace=False)
    users, items = pairs // N_ITEMS, pairs % N_ITEMS
    taste = rng.normal(size=(N_USERS, 2)) @ rng.normal(size=(2, N_ITEMS))
    ratings = np.clip(np.rint(3.5 + taste[users, items]), 1, 5).astype(np.float32)
    return Dataset(name="tiny", users=users.astype(np.int64), items=items.astype(np.int64), ratings=ratings,
                   user_ids=np.arange(N_USERS, dtype=np.int64), item_ids=np.arange(N_ITEMS, dtype=np.int64))


@pytest.fixture(scope="module")
def split() -> Split:
    return split_dataset(tiny_dataset(), val_size=0.2)


def tensors(part: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    users, items, ratings = part
    return torch.as_tensor(users), torch.as_tensor(items), torch.as_tensor(ratings)


def attached(split: Split, **options) -> AutoRec:
    torch.manual_seed(0)
    net = AutoRec(N_USERS, N_ITEMS, k=7, **options)
    net.attach(*tensors(split.part("train")))
    return net


def dense(part: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The item x user matrix of `part`'s ratings and the 0/1 mask of those present, built by hand."""
    matrix, mask = torch.zeros(N_ITEMS, N_USERS), torch.zeros(N_ITEMS, N_USERS)
    for user, item, rating in zip(*part):
        matrix[item, user], mask[item, user] = float(rating), 1.0
    return matrix, mask


def reference_reconstruction(net: AutoRec, rows: torch.Tensor) -> torch.Tensor:
    W, b, V, c = net.encoder.weight, net.encoder.bias, net.decoder.weight, net.decoder.bias
    return torch.sigmoid(rows @ W.T + b) @ V.T + c


def test_the_loss_and_its_gradients_are_the_papers_objective_scaled_per_item(split):
    net = attached(split, reg=0.7)
    matrix, mask = dense(split.part("train"))
    items = torch.tensor([3, 17, 0, 8, 11])
    loss, sse = net.batch_loss(items)
    grads = torch.autograd.grad(loss, list(net.parameters()))

    error = (reference_reconstruction(net, matrix[items]) - matrix[items]) * mask[items]
    expected_sse = (error ** 2).sum()
    W, V = net.encoder.weight, net.decoder.weight
    expected = expected_sse / len(items) + 0.7 / (2 * N_ITEMS) * ((W ** 2).sum() + (V ** 2).sum())
    expected_grads = torch.autograd.grad(expected, list(net.parameters()))

    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(sse, expected_sse.detach())
    assert not sse.requires_grad
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_dropout_drops_input_ratings_only_while_training(split):
    net = attached(split, dropout=0.5)
    plain = attached(split)
    items = torch.arange(N_ITEMS)
    net.eval()
    torch.testing.assert_close(net.batch_loss(items), plain.batch_loss(items))
    net.train()
    assert not torch.equal(net.batch_loss(items)[0], plain.batch_loss(items)[0])


def test_an_epochs_batches_hold_every_item_once_in_a_seeded_order(split):
    net = attached(split)
    batches = [batch for (batch,) in net.batches(6, torch.Generator().manual_seed(1))]
    assert [len(b) for b in batches] == [6, 6, 6, 2] and net.n_batches(6) == 4
    assert sorted(torch.cat(batches).tolist()) == list(range(N_ITEMS))
    again = [batch for (batch,) in net.batches(6, torch.Generator().manual_seed(1))]
    other = [batch for (batch,) in net.batches(6, torch.Generator().manual_seed(2))]
    assert torch.equal(torch.cat(again), torch.cat(batches)) and not torch.equal(torch.cat(other), torch.cat(batches))


def test_predictions_reconstruct_the_training_ratings_alone(split):
    net = attached(split).eval()
    users, items, _ = tensors(split.part("test"))
    matrix, _ = dense(split.part("train"))
    with torch.inference_mode():
        prediction = net(users, items)
        expected = reference_reconstruction(net, matrix)[items, users]
    torch.testing.assert_close(prediction, expected)


def test_a_test_rating_changes_no_prediction(split):
    def curves(s: Split) -> list[tuple[float, float | None, float]]:
        result = fit(s, model="autorec", k=7, epochs=3, batch_size=8, lr=0.01, device="cpu")
        return [(e.train_rmse, e.val_rmse, e.test_rmse) for e in result.epochs]

    changed = split.dataset.ratings.copy()
    changed[split.test] = 6 - changed[split.test]
    other = dataclasses.replace(split, dataset=dataclasses.replace(split.dataset, ratings=changed))
    before, after = curves(split), curves(other)
    assert [(train, val) for train, val, _ in before] == [(train, val) for train, val, _ in after]
    assert [test for _, _, test in before] != [test for _, _, test in after]  # the test ratings did change


def test_unseen_items_get_their_reconstruction_and_unseen_users_the_mean_rating():
    users, items = torch.tensor([0, 1, 0, 2]), torch.tensor([0, 0, 1, 1])
    ratings = torch.tensor([4.0, 2.0, 5.0, 3.0])
    net = AutoRec(4, 3, k=5)  # user 3 and item 2 have no rating
    net.attach(users, items, ratings)
    net.eval()
    with torch.inference_mode():
        prediction = net(torch.tensor([1, 3, 3]), torch.tensor([2, 0, 2]))
        empty_row = reference_reconstruction(net, torch.zeros(1, 4))[0]
    torch.testing.assert_close(prediction, torch.stack([empty_row[1], torch.tensor(3.5), torch.tensor(3.5)]))


def test_predictions_are_the_same_reconstructed_a_few_items_at_a_time(split, monkeypatch):
    net = attached(split).eval()
    users, items, _ = tensors(split.part("test"))
    with torch.inference_mode():
        whole = net(users, items)
        monkeypatch.setattr(item_matrix, "RECONSTRUCT_BLOCK", 3 * N_USERS)  # 3 items a block
        in_blocks = net(users, items)
    assert len(torch.unique(items)) > 3
    torch.testing.assert_close(in_blocks, whole)


def test_fit_trains_it(split):
    result = fit(split, model="autorec", k=20, epochs=30, batch_size=4, lr=0.01, device="cpu")
    first, last = result.epochs[0], result.epochs[-1]
    assert last.train_rmse < 0.5 * first.train_rmse
    assert last.val_rmse is not None and first.val_rmse is not None and last.val_rmse < first.val_rmse


def test_the_same_seed_gives_the_same_numbers(split):
    def run(seed: int) -> list[tuple[float, float | None, float]]:
        result = fit(split, model="autorec", k=7, epochs=3, batch_size=8, lr=0.01, dropout=0.2, device="cpu",
                     seed=seed)
        return [(e.train_rmse, e.val_rmse, e.test_rmse) for e in result.epochs]

    assert run(3) == run(3) != run(4)


def test_build_model_passes_its_options():
    net = build_model("autorec", N_USERS, N_ITEMS, k=9, hidden=(4,), dropout=0.25, reg=2.0, bias=True)
    assert isinstance(net, AutoRec)
    assert (net.encoder.out_features, net.dropout, net.reg) == (9, 0.25, 2.0)


def test_a_rating_matrix_too_large_to_keep_dense_is_refused_before_anything_is_allocated():
    with pytest.raises(ConfigError, match=r"30,000 items x 100,000 users is 3,000,000,000 entries"):
        AutoRec(100_000, 30_000)
    with pytest.raises(ConfigError, match="rating matrix"):
        build_model("autorec", 138_493, 26_744, k=500)
