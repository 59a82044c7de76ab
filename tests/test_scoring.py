"""engine/scoring.py: every model's short way of scoring all items for a batch of users gives what
its `forward` gives pair by pair, and `item_vectors` is the table `similar` compares."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from engine import scoring
from engine.glocal_k import GLocalK
from engine.item_matrix import ItemMatrixModel
from engine.models import MF, PairModel, RowModel, build_model
from engine.ncf import NeuMF
from engine.scoring import item_vectors, user_scorer
from tests.tiny import tiny_dataset

# Users 10 and 11 rate nothing: a row model has no training rating of theirs to predict from.
N_USERS, N_ITEMS, RATED_USERS = 12, 9, 10
DATA = tiny_dataset(N_USERS, N_ITEMS, 70, rated_users=RATED_USERS)

# (name, build_model's options): every model, and each option that changes how it is scored.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "mf": ("mf", {"k": 4}),
    "mf-bias": ("mf", {"k": 4, "bias": True}),
    "deepmf": ("deepmf", {"k": 4}),
    "deepmf-8": ("deepmf", {"k": 4, "hidden": (8,)}),
    "deepmf-bias-dropout": ("deepmf", {"k": 4, "hidden": (10, 5), "bias": True, "dropout": 0.5,
                                       "emb_dropout": 0.3}),
    "gmf": ("gmf", {"k": 4}),
    "gmf-bias": ("gmf", {"k": 4, "bias": True}),
    "neumf": ("neumf", {"k": 4, "hidden": (6, 3), "bias": True}),
    "autorec": ("autorec", {"k": 7}),
    "glocal_k": ("glocal_k", {"k": 3, "hidden": (6, 5)}),
    "glocal_k-fine-tuning": ("glocal_k", {"k": 3, "hidden": (6, 5)}),
}


def model(case: str) -> PairModel | RowModel:
    """The case's model with every weight drawn at random (biases and kernels included, which start
    at zero or near one), its training ratings attached when it is a row model."""
    name, options = CASES[case]
    torch.manual_seed(1)
    net = build_model(name, N_USERS, N_ITEMS, **options)
    with torch.no_grad():
        for parameter in net.parameters():
            # Small enough that GLocal-K's local kernels cut some connections and keep others.
            parameter.copy_(0.4 * torch.randn_like(parameter))
    if isinstance(net, RowModel):
        net.attach(torch.from_numpy(DATA.users), torch.from_numpy(DATA.items), torch.from_numpy(DATA.ratings))
    if case.endswith("fine-tuning"):
        assert isinstance(net, GLocalK)
        net.start_fine_tuning()
        assert bool(net.fine_tuning) and net.item_means.abs().sum() > 0  # the global kernel is not zero
    net.train()  # as the trainer leaves it mid-run: the scorer must switch dropout off itself
    return net


def every_pair(net: PairModel | RowModel, users: torch.Tensor) -> torch.Tensor:
    """`net`'s forward on each (user, item) pair: len(users) x N_ITEMS."""
    with torch.no_grad():
        grid_users = users.repeat_interleave(N_ITEMS)
        grid_items = torch.arange(N_ITEMS).repeat(len(users))
        predicted: torch.Tensor = net(grid_users, grid_items)
    return predicted.view(len(users), N_ITEMS)


@pytest.mark.parametrize("case", CASES)
def test_scores_equal_forward_on_every_pair(case: str) -> None:
    net = model(case)
    users = torch.tensor([3, 0, 11, 7, 3, 10, 1])  # in no order, one twice, the two without ratings
    scores = user_scorer(net)(users)
    assert not net.training  # dropout off: the scores are the model's predictions, not a noisy draw
    assert scores.shape == (len(users), N_ITEMS)
    torch.testing.assert_close(scores, every_pair(net, users), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["deepmf-bias-dropout", "neumf"])
def test_a_model_scored_pair_by_pair_takes_a_few_users_at_a_time_with_the_same_scores(
        case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    net = model(case)
    users = torch.tensor([3, 0, 11, 7, 3, 10, 1])
    whole = user_scorer(net)(users)
    monkeypatch.setattr(scoring, "ACTIVATIONS_AT_ONCE", 2 * N_ITEMS * 10)  # two users a chunk at most
    torch.testing.assert_close(user_scorer(net)(users), whole, rtol=1e-6, atol=1e-6)


def test_a_pair_model_without_a_short_way_is_scored_by_its_forward() -> None:
    class Shifted(MF):  # a new model: MF's tables, its own prediction
        def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            return super().forward(users, items).sin() + users.float()

    torch.manual_seed(2)
    net = Shifted(N_USERS, N_ITEMS, 4)
    users = torch.tensor([3, 0, 11])
    torch.testing.assert_close(user_scorer(net)(users), every_pair(net, users), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", ["autorec", "glocal_k", "glocal_k-fine-tuning"])
def test_a_row_model_gives_a_user_without_training_ratings_the_mean(case: str) -> None:
    net = model(case)
    assert isinstance(net, ItemMatrixModel)
    scores = user_scorer(net)(torch.tensor([10, 11, 2]))
    assert torch.all(scores[:2] == float(DATA.ratings.mean()))
    assert not torch.all(scores[2] == scores[2, 0])  # a user with ratings gets the model's own predictions


def test_one_user_at_a_time_gives_the_rows_of_a_batch() -> None:
    net = model("deepmf-bias-dropout")
    score = user_scorer(net)
    batch = score(torch.arange(N_USERS))
    for user in range(N_USERS):
        torch.testing.assert_close(score(torch.tensor([user]))[0], batch[user])


def test_the_scorer_reads_the_weights_it_was_made_with_or_newer_never_stale_ones() -> None:
    # fit() makes a new scorer for every ranking, so what matters is that one made now scores now.
    net = model("mf-bias")
    with torch.no_grad():
        assert isinstance(net, PairModel)
        net.item_bias.add_(1.0)
    torch.testing.assert_close(user_scorer(net)(torch.tensor([4])), every_pair(net, torch.tensor([4])))


@pytest.mark.parametrize(("case", "width"), [("mf", 4), ("mf-bias", 4), ("deepmf", 4), ("gmf", 4), ("neumf", 8)])
def test_item_vectors_are_the_item_embeddings(case: str, width: int) -> None:
    net = model(case)
    vectors = item_vectors(net)
    assert vectors is not None and vectors.shape == (N_ITEMS, width)
    assert isinstance(net, PairModel)
    torch.testing.assert_close(vectors[:, :4], net.item_emb.weight.detach())
    assert not vectors.requires_grad


def test_neumf_item_vectors_hold_both_branches_tables() -> None:
    net = model("neumf")
    vectors = item_vectors(net)
    assert vectors is not None
    assert isinstance(net, NeuMF)
    torch.testing.assert_close(vectors[:, 4:], net.mlp_item_emb.weight.detach())


@pytest.mark.parametrize("case", ["autorec", "glocal_k"])
def test_a_row_model_has_no_item_vectors(case: str) -> None:
    assert item_vectors(model(case)) is None


@pytest.mark.parametrize("case", ["mf", "deepmf", "neumf"])
def test_scores_carry_no_autograd_graph(case: str) -> None:
    # The module promises scoring "without autograd"; a graph over n_users x n_items scores costs memory.
    assert not user_scorer(model(case))(torch.tensor([0, 1])).requires_grad
