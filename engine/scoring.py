"""Every item's predicted rating for a batch of users at once: what top-N lists and ranking metrics need.

`forward(users, items)` predicts one pair at a time; ranking a user's whole catalogue that way repeats
work that does not depend on the pair. Each model is scored here the short way, from its current
weights (in eval mode, without autograd):
- MF and GMF: one matrix product of the users' rows with the item table;
- DeepMF: the first layer of cat(user, item) is W_u user + W_i item + b, so both halves are computed
  once per user and once per item, and only the rest of the MLP runs per pair;
- NeuMF: its forward over every (user, item) pair of the batch (it is rarely used and still fast);
- AutoRec and GLocal-K: every item's hidden code once (it does not depend on the user), then the last
  layer's columns for the users asked for.
tests/test_scoring.py checks each against `forward` on every pair.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.item_matrix import ItemMatrixModel
from engine.models import MF, DeepMF, PairModel, RowModel
from engine.ncf import GMF, NeuMF

# users (int64 indices) -> their predicted ratings of every item (len(users) x n_items)
Scorer = Callable[[torch.Tensor], torch.Tensor]

# (user, item) pairs a model that works per pair (DeepMF past its first layer, NeuMF) holds at once:
# with hidden layers of 64 that is 128 MiB, whatever the batch of users asked for.
PAIRS_AT_ONCE = 1 << 19


def user_scorer(net: PairModel | RowModel) -> Scorer:
    """A function scoring every item for a batch of users with `net`'s weights of now (`net` is put
    in eval mode), without autograd. What it precomputes it computes here, once."""
    with torch.no_grad():
        return torch.no_grad()(_scorer(net))


def _scorer(net: PairModel | RowModel) -> Scorer:
    net.eval()
    if isinstance(net, ItemMatrixModel):
        return _row_scorer(net)
    if not isinstance(net, PairModel):
        raise TypeError(f"cannot score a {type(net).__name__}")
    items = net.item_emb.weight
    if type(net) is MF or type(net) is GMF:
        # GMF's prediction h . (p * q) + c is MF's dot product with p scaled by h's weights.
        scale, offset = (net.h.weight[0], net.h.bias[0]) if isinstance(net, GMF) else (None, None)

        def dot(users: torch.Tensor) -> torch.Tensor:
            rows = net.user_emb.weight.index_select(0, users)
            scores = (rows if scale is None else rows * scale) @ items.t()
            return scores if offset is None else scores + offset
        return _with_biases(net, dot)
    if type(net) is DeepMF:
        return _with_biases(net, _in_chunks(_deepmf_scorer(net), net.item_emb.num_embeddings))
    return _in_chunks(_pairwise(net), net.item_emb.num_embeddings)  # NeuMF, and any other pair model


def item_vectors(net: PairModel | RowModel) -> torch.Tensor | None:
    """The item representation `similar` compares (n_items x d), or None for a model without one:
    the item embedding table; NeuMF's two side by side. A row model's items have no embedding."""
    if isinstance(net, NeuMF):
        return torch.cat([net.item_emb.weight, net.mlp_item_emb.weight], dim=1).detach()
    if isinstance(net, PairModel):
        return net.item_emb.weight.detach()
    return None


def _with_biases(net: PairModel, score: Scorer) -> Scorer:
    if not net.bias:
        return score

    def biased(users: torch.Tensor) -> torch.Tensor:
        user_bias = net.user_bias.index_select(0, users).unsqueeze(1)
        return score(users) + user_bias + net.item_bias + net.global_bias
    return biased


def _in_chunks(score: Scorer, n_items: int) -> Scorer:
    """`score` over a few users at a time, PAIRS_AT_ONCE pairs at most, for a scorer whose memory
    grows with the pairs it scores."""
    per_chunk = max(1, PAIRS_AT_ONCE // n_items)

    def chunked(users: torch.Tensor) -> torch.Tensor:
        if len(users) <= per_chunk:
            return score(users)
        return torch.cat([score(chunk) for chunk in torch.split(users, per_chunk)])
    return chunked


def _deepmf_scorer(net: DeepMF) -> Scorer:
    layers = [m for m in net.mlp if isinstance(m, nn.Linear)]  # dropout is off in eval mode
    first, rest = layers[0], layers[1:]
    k = net.user_emb.embedding_dim
    per_user = net.user_emb.weight @ first.weight[:, :k].t()  # n_users x h1
    per_item = torch.addmm(first.bias, net.item_emb.weight, first.weight[:, k:].t())  # n_items x h1

    def score(users: torch.Tensor) -> torch.Tensor:
        x = (per_user.index_select(0, users).unsqueeze(1) + per_item).relu_()  # users x items x h1
        for n, layer in enumerate(rest):
            x = torch.nn.functional.linear(x, layer.weight, layer.bias)
            if n < len(rest) - 1:
                x = x.relu_()
        return x.squeeze(-1)
    return score


def _pairwise(net: PairModel) -> Scorer:
    n_items = net.item_emb.num_embeddings
    every_item = torch.arange(n_items, device=net.item_emb.weight.device)

    def score(users: torch.Tensor) -> torch.Tensor:
        pairs_users = users.repeat_interleave(n_items)
        pairs_items = every_item.repeat(len(users))
        scores: torch.Tensor = net(pairs_users, pairs_items)  # nn.Module's __call__ is typed Any
        return scores.view(len(users), n_items)
    return score


def _row_scorer(net: ItemMatrixModel) -> Scorer:
    per_block = net.rows_per_block()
    every_item = torch.arange(net.n_items, device=net.ratings.device)
    codes = torch.cat([net.item_codes(every_item[start:start + per_block])
                       for start in range(0, net.n_items, per_block)])  # n_items x hidden
    weight, bias = net.head()  # hidden x n_users, n_users

    def score(users: torch.Tensor) -> torch.Tensor:
        scores = (codes @ weight.index_select(1, users) + bias.index_select(0, users)).t()
        return torch.where(net.user_seen.index_select(0, users).unsqueeze(1), scores, net.mean)
    return score
