"""Ranking metrics of a rating model: how good its top-10 lists are, which RMSE does not say.

The protocol (the usual "all unrated items" one): for every user with a relevant test rating (a
rating >= 4 in the test part), rank every item the user did not rate in the training or validation
parts by predicted rating, and compare the top 10 with the user's relevant test items:
- Precision@10: the share of the 10 that are relevant;
- Recall@10: the share of the user's relevant items that are among the 10;
- NDCG@10: the discounted gain of the hits (1 / log2(rank + 1)) over the best gain the user's
  relevant items could give.
Each is averaged over those users. Items rated in the validation part are left out as those of the
training part are: the model's best epoch was chosen on them, so they are not unseen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.checkpoint import UserRatings
from engine.scoring import Scorer

AT = 10  # the length of the list every metric here judges
RELEVANT = 4.0  # a test rating at least this high is one the user liked
# Scores held at once (64 MiB of float32): 4,527 users a batch for ML-1M's 3,706 items.
SCORES_PER_BATCH = 1 << 24


@dataclass(frozen=True)
class Ranking:
    precision: float
    recall: float
    ndcg: float
    users: int  # how many users were judged (those with a relevant test rating)


@torch.no_grad()
def ranking_metrics(score: Scorer, known: UserRatings, test: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                    n_items: int) -> Ranking | None:
    """The metrics of the module's docstring for `score` (engine/scoring.py), given the users'
    known ratings and the test part (users, items, ratings); None when no user has a relevant test
    rating. Runs on the device of the test tensors."""
    users, items, ratings = test
    device = users.device
    liked = ratings >= RELEVANT
    # Each relevant (user, item) pair as one number, sorted, so a top-10 entry is looked up by binary search.
    relevant = torch.unique(users[liked] * n_items + items[liked])
    judged, relevant_count = torch.unique(relevant // n_items, return_counts=True)
    if len(judged) == 0:
        return None
    offsets, known_items = known.offsets.to(device), known.items.to(device)
    # 1 / log2(rank + 1) for ranks 1..AT, and its running sum: the best DCG of a user with r relevant items.
    discount = 1.0 / torch.log2(torch.arange(2, AT + 2, device=device, dtype=torch.float32))
    ideal = discount.cumsum(0)

    precision = recall = ndcg = 0.0
    per_batch = max(1, SCORES_PER_BATCH // n_items)
    for start in range(0, len(judged), per_batch):
        batch = judged[start:start + per_batch]
        scores = score(batch).float()
        rows, known_of_batch = _known_of(batch, offsets, known_items)
        scores[rows, known_of_batch] = -math.inf
        top = scores.topk(min(AT, n_items), dim=1)
        keys = batch.unsqueeze(1) * n_items + top.indices
        where = torch.searchsorted(relevant, keys).clamp(max=len(relevant) - 1)
        # batch x AT, 1 where the item is relevant; a known item (a user left with fewer than AT
        # unrated ones fills the list with them) is never a hit, even rated again in the test part.
        hits = ((relevant[where] == keys) & torch.isfinite(top.values)).float()
        count = relevant_count[start:start + per_batch].float()
        found = hits.sum(1)
        precision += float((found / AT).sum())
        recall += float((found / count).sum())
        best = ideal[count.clamp(max=AT).long() - 1]
        ndcg += float(((hits * discount[:hits.shape[1]]).sum(1) / best).sum())
    n = len(judged)
    return Ranking(precision=precision / n, recall=recall / n, ndcg=ndcg / n, users=n)


def _known_of(batch: torch.Tensor, offsets: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row in the batch, item) of every known rating of the batch's users, from the grouped ratings."""
    starts, counts = offsets[batch], offsets[batch + 1] - offsets[batch]
    rows = torch.repeat_interleave(torch.arange(len(batch), device=batch.device), counts)
    # Position of each within its user's run of ratings, plus where that run starts.
    within = torch.arange(len(rows), device=batch.device) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    return rows, items[within + torch.repeat_interleave(starts, counts)]
