"""engine/ranking.py: Precision, Recall and NDCG at 10 against a plain reading of the protocol in its
docstring, and on hand-made cases whose answers are known; and fit()'s rankings: of the best epoch's
model when training ends, of every `rank_every`-th epoch, and never a change to the RMSE curve."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine import checkpoint, ranking
from engine.checkpoint import UserRatings
from engine.errors import ConfigError
from engine.models import build_model
from engine.ranking import Ranking, ranking_metrics
from engine.scoring import Scorer, user_scorer
from engine.split import Split, split_dataset
from engine.trainer import EpochStats, fit
from tests.tiny import tiny_dataset

Test = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Rows = list[tuple[int, int, float]]  # test ratings as (user, item, rating)


def known_of(per_user: Sequence[Sequence[int]]) -> UserRatings:
    """Known (train + val) ratings: user u rated the items per_user[u] (the ratings do not matter here)."""
    items = [item for user_items in per_user for item in user_items]
    return UserRatings(offsets=torch.tensor([0, *np.cumsum([len(u) for u in per_user])], dtype=torch.int64),
                       items=torch.tensor(items, dtype=torch.int64), ratings=torch.full((len(items),), 3.0),
                       in_val=torch.zeros(len(items), dtype=torch.bool))


def as_tensors(rows: Rows) -> Test:
    users, items, ratings = zip(*rows) if rows else ((), (), ())
    return (torch.tensor(users, dtype=torch.int64), torch.tensor(items, dtype=torch.int64),
            torch.tensor(ratings, dtype=torch.float32))


def table_scorer(table: torch.Tensor, asked: list[list[int]] | None = None) -> Scorer:
    """Scores read off `table` (n_users x n_items); `asked` records each batch of users."""
    def score(users: torch.Tensor) -> torch.Tensor:
        if asked is not None:
            asked.append(users.tolist())
        return table[users]
    return score


def reference(table: np.ndarray, known: Sequence[Sequence[int]], rows: Rows) -> Ranking | None:
    """The module docstring's protocol, one user at a time, in plain Python."""
    liked: dict[int, set[int]] = {}
    for user, item, rating in rows:
        if rating >= 4:
            liked.setdefault(user, set()).add(item)
    if not liked:
        return None
    precision = recall = ndcg = 0.0
    for user, relevant in liked.items():
        candidates = [i for i in range(table.shape[1]) if i not in set(known[user])]
        top = sorted(candidates, key=lambda i: -table[user, i])[:10]
        hits = [i in relevant for i in top]
        precision += sum(hits) / 10
        recall += sum(hits) / len(relevant)
        gain = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
        best = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), 10)))
        ndcg += gain / best
    n = len(liked)
    return Ranking(precision=precision / n, recall=recall / n, ndcg=ndcg / n, users=n)


def random_case(seed: int, n_users: int = 30, n_items: int = 40) -> tuple[np.ndarray, list[list[int]], Rows]:
    """Scores, known items and test ratings at random; each (user, item) pair is rated at most once,
    as in MovieLens, and some users rate so much that fewer than 10 items are left to rank."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(n_users, n_items)).astype(np.float32)  # no ties: the order is the scores'
    known: list[list[int]] = []
    rows: Rows = []
    for user in range(n_users):
        n_rated = int(rng.integers(0, n_items + 1)) if user % 5 == 0 else int(rng.integers(0, 20))
        rated = rng.permutation(n_items)[:n_rated]
        n_known = int(rng.integers(0, len(rated) + 1))
        known.append(sorted(int(i) for i in rated[:n_known]))
        rows += [(user, int(i), float(rng.integers(1, 6))) for i in rated[n_known:]]
    order = rng.permutation(len(rows))  # the test part in no particular order
    return table, known, [rows[i] for i in order]


def assert_same(got: Ranking | None, want: Ranking | None) -> None:
    assert got is not None and want is not None
    assert got.users == want.users
    assert (got.precision, got.recall, got.ndcg) == pytest.approx((want.precision, want.recall, want.ndcg), rel=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_the_protocol_read_plainly(seed: int) -> None:
    table, known, rows = random_case(seed)
    got = ranking_metrics(table_scorer(torch.from_numpy(table)), known_of(known), as_tensors(rows), table.shape[1])
    want = reference(table, known, rows)
    assert_same(got, want)
    assert want is not None and 0 < want.ndcg < 1 and 0 < want.precision < 1  # neither trivial nor perfect


@pytest.mark.parametrize("seed", range(3))
def test_batches_of_a_few_users_give_the_same_answer(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    table, known, rows = random_case(seed)
    args = (known_of(known), as_tensors(rows), table.shape[1])
    whole = ranking_metrics(table_scorer(torch.from_numpy(table)), *args)
    monkeypatch.setattr(ranking, "SCORES_PER_BATCH", 3 * table.shape[1] + 5)  # 3 users a batch
    asked: list[list[int]] = []
    batched = ranking_metrics(table_scorer(torch.from_numpy(table), asked), *args)
    assert len(asked) > 3 and all(len(batch) <= 3 for batch in asked)
    assert_same(batched, whole)


def test_a_batch_smaller_than_one_user_still_scores_a_user_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    table, known, rows = random_case(0)
    monkeypatch.setattr(ranking, "SCORES_PER_BATCH", 1)
    asked: list[list[int]] = []
    got = ranking_metrics(table_scorer(torch.from_numpy(table), asked), known_of(known), as_tensors(rows),
                          table.shape[1])
    assert all(len(batch) == 1 for batch in asked)
    assert_same(got, reference(table, known, rows))


# ---- hand-made cases

N_ITEMS = 30


def perfect(rows: Rows, n_users: int, n_items: int = N_ITEMS) -> torch.Tensor:
    """Each user's liked test items first (their rating as the score, above every other item's)."""
    table = torch.rand(n_users, n_items, generator=torch.Generator().manual_seed(0))  # below 1
    for user, item, rating in rows:
        if rating >= 4:
            table[user, item] = rating
    return table


def test_a_perfect_scorer() -> None:
    # User 0 likes 3 items, user 1 likes 12 (more than fit in the 10), user 2 likes 1 and rated 3 others lower.
    rows = ([(0, i, 5.0) for i in (4, 9, 20)] + [(1, i, 4.0 + i % 2) for i in range(12)]
            + [(2, 7, 4.0), (2, 8, 3.0), (2, 9, 1.0), (2, 10, 3.5)])
    got = ranking_metrics(table_scorer(perfect(rows, 3)), known_of([[], [], []]), as_tensors(rows), N_ITEMS)
    assert_same(got, Ranking(precision=(3 / 10 + 10 / 10 + 1 / 10) / 3, recall=(1 + 10 / 12 + 1) / 3, ndcg=1.0,
                             users=3))


def test_relevant_items_just_below_ten_others_score_nothing() -> None:
    rows = [(0, i, 5.0) for i in (0, 1, 2)]
    table = torch.zeros(1, N_ITEMS)
    table[0, 3:13] = 2.0  # ten items above the liked ones
    table[0, :3] = 1.0
    got = ranking_metrics(table_scorer(table), known_of([[]]), as_tensors(rows), N_ITEMS)
    assert got == Ranking(precision=0.0, recall=0.0, ndcg=0.0, users=1)
    table[0, 12] = 0.0  # one of the ten drops below them: the first liked item is 10th
    got = ranking_metrics(table_scorer(table), known_of([[]]), as_tensors(rows), N_ITEMS)
    assert got is not None
    assert (got.precision, got.recall, got.ndcg) == pytest.approx(
        (0.1, 1 / 3, (1 / math.log2(11)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))))


def test_known_items_never_enter_the_top_even_when_scored_highest() -> None:
    rows = [(0, 20, 5.0), (0, 21, 4.0), (1, 5, 4.5)]
    table = perfect(rows, 2)
    known = [list(range(10)), [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]]
    for user, items in enumerate(known):
        table[user, items] = 100.0  # what the model thinks most of: the items the user already rated
    got = ranking_metrics(table_scorer(table), known_of(known), as_tensors(rows), N_ITEMS)
    assert_same(got, Ranking(precision=(0.2 + 0.1) / 2, recall=1.0, ndcg=1.0, users=2))


def test_users_without_a_liked_test_item_are_not_judged() -> None:
    # Users 1 and 3 have test ratings, none >= 4; user 2 has none at all. Only users 0 and 4 count.
    rows = [(0, 3, 4.0), (1, 3, 3.5), (1, 4, 1.0), (3, 8, 3.9), (4, 5, 5.0), (4, 6, 2.0)]
    asked: list[list[int]] = []
    table = perfect(rows, 5)
    table[4, 6] = 10.0  # user 4's disliked test item tops their list: no hit, and no harm done to user 0
    got = ranking_metrics(table_scorer(table, asked), known_of([[]] * 5), as_tensors(rows), N_ITEMS)
    assert sorted(user for batch in asked for user in batch) == [0, 4]
    assert got is not None and got.users == 2
    assert (got.precision, got.recall) == pytest.approx((0.1, 1.0))
    assert got.ndcg == pytest.approx((1 + 1 / math.log2(3)) / 2)


@pytest.mark.parametrize("rows", [[], [(0, 1, 3.5), (1, 2, 1.0)]])
def test_none_when_no_test_rating_is_relevant(rows: Rows) -> None:
    asked: list[list[int]] = []
    assert ranking_metrics(table_scorer(torch.rand(2, N_ITEMS), asked), known_of([[], []]), as_tensors(rows),
                           N_ITEMS) is None
    assert asked == []


def test_fewer_than_ten_items() -> None:
    # 6 items; user 0 rated item 0 and likes 1 and 2, user 1 rated 0..3 and likes 5: lists of 5 and 2.
    rows = [(0, 1, 5.0), (0, 2, 4.0), (0, 3, 2.0), (1, 5, 4.0)]
    table = perfect(rows, 2, n_items=6)
    got = ranking_metrics(table_scorer(table), known_of([[0], [0, 1, 2, 3]]), as_tensors(rows), 6)
    # Precision stays the share of 10, the list's nominal length, as the reference (and the usual definition) has it.
    assert_same(got, Ranking(precision=(0.2 + 0.1) / 2, recall=1.0, ndcg=1.0, users=2))
    assert_same(got, reference(table.numpy(), [[0], [0, 1, 2, 3]], rows))


def test_a_known_item_is_no_hit_even_in_a_short_catalogue() -> None:
    # User 0 rated item 0 in training and again in the test part (a file with a repeated pair).
    rows = [(0, 0, 5.0), (0, 1, 4.0)]
    got = ranking_metrics(table_scorer(perfect(rows, 1, n_items=4)), known_of([[0]]), as_tensors(rows), 4)
    assert_same(got, reference(perfect(rows, 1, n_items=4).numpy(), [[0]], rows))


# ---- fit(): the ranking of the best epoch's model, and of every `rank_every`-th epoch

# A tiny run that overfits soon (fast, large steps): its best validation epoch is not its last.
FIT: dict[str, Any] = {"model": "mf", "k": 16, "bias": True, "lr": 0.1, "batch_size": 64, "device": "cpu"}


@pytest.fixture(scope="module")
def split() -> Split:
    return split_dataset(tiny_dataset(40, 50, 1200), val_size=0.2)


def checkpoint_ranking(path: Path, split: Split) -> Ranking | None:
    """The ranking of the model saved at `path`, rebuilt from the checkpoint alone."""
    saved = checkpoint.load(path, what="the checkpoint")
    net = build_model(saved.config["model"], **{k: v for k, v in saved.config.items() if k != "model"})
    net.load_state_dict(saved.state_dict)
    users, items, ratings = (torch.from_numpy(a) for a in split.part("test"))
    return ranking_metrics(user_scorer(net), saved.data.known, (users, items, ratings), split.dataset.n_items)


def test_an_early_stopped_run_ranks_its_best_epochs_model(split: Split, tmp_path: Path) -> None:
    result = fit(split, epochs=30, patience=2, checkpoint_path=tmp_path / "run.pt", **FIT)
    assert result.stopped == "early_stopped" and result.best_epoch < len(result.epochs)
    assert result.ranking is not None and result.ranking == checkpoint_ranking(tmp_path / "run.pt", split)
    assert result.ranking.users == len(set(split.part("test")[0][split.part("test")[2] >= 4].tolist()))


def test_a_completed_run_ranks_its_best_epochs_model_not_its_last(split: Split, tmp_path: Path) -> None:
    result = fit(split, epochs=30, rank_every=1, checkpoint_path=tmp_path / "run.pt", **FIT)
    assert result.stopped == "completed" and result.best_epoch < len(result.epochs)
    assert result.ranking is not None and result.ranking == checkpoint_ranking(tmp_path / "run.pt", split)
    assert result.ranking == result.epochs[result.best_epoch - 1].ranking
    assert result.ranking != result.epochs[-1].ranking  # so the two above tell the best epoch from the last


def test_without_a_checkpoint_the_best_epochs_model_is_ranked_all_the_same(split: Split, tmp_path: Path) -> None:
    kept = fit(split, epochs=12, checkpoint_path=tmp_path / "run.pt", **FIT)
    assert fit(split, epochs=12, **FIT).ranking == kept.ranking == checkpoint_ranking(tmp_path / "run.pt", split)


def test_a_cancelled_run_is_not_ranked(split: Split) -> None:
    done: list[EpochStats] = []
    result = fit(split, epochs=5, rank_every=1, on_epoch=done.append, should_stop=lambda: len(done) >= 2, **FIT)
    assert result.stopped == "cancelled" and result.best_epoch >= 1
    assert result.ranking is None
    assert all(epoch.ranking is not None for epoch in result.epochs)  # the epochs' own rankings stay


def test_rank_every_ranks_those_epochs_only(split: Split) -> None:
    result = fit(split, epochs=5, rank_every=2, **FIT)
    assert [epoch.ranking is not None for epoch in result.epochs] == [False, True, False, True, False]
    assert result.ranking is not None


def test_rank_every_zero_ranks_no_epoch_but_the_best_model(split: Split) -> None:
    result = fit(split, epochs=3, **FIT)
    assert all(epoch.ranking is None for epoch in result.epochs) and result.ranking is not None


def test_a_negative_rank_every_is_refused(split: Split) -> None:
    with pytest.raises(ConfigError, match=r"rank_every must be >= 0 \(got -1\)"):
        fit(split, epochs=1, rank_every=-1, **FIT)


@pytest.mark.parametrize("options", [
    {},
    {"model": "deepmf", "dropout": 0.3},  # the eager step, drawing dropout masks from torch's generator
    {"model": "autorec", "k": 8, "batch_size": 16},
    {"model": "glocal_k", "k": 3, "hidden": (8, 8), "pretrain_epochs": 2, "batch_size": 16},
], ids=["mf", "deepmf-dropout", "autorec", "glocal_k"])
def test_ranking_every_epoch_leaves_the_rmse_curve_alone(split: Split, options: dict[str, Any]) -> None:
    ranked = fit(split, **(FIT | {"epochs": 4, "rank_every": 1} | options))
    plain = fit(split, **(FIT | {"epochs": 4} | options))
    assert all(epoch.ranking is not None for epoch in ranked.epochs)
    assert [(e.train_rmse, e.test_rmse, e.val_rmse) for e in ranked.epochs] == \
        [(e.train_rmse, e.test_rmse, e.val_rmse) for e in plain.epochs]
    assert ranked.ranking == plain.ranking
