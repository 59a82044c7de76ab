"""Every item's predicted rating for a batch of users at once: what top-N lists and ranking metrics need.

`forward(users, items)` predicts one pair at a time; ranking a user's whole catalogue that way repeats
work that does not depend on the pair. Each model is scored here the short way, from its current
weights (in eval mode, without autograd):
- MF and GMF: one matrix product of the users' rows with the item table;
- DeepMF: the first layer of cat(user, item) is W_u user + W_i item + b, so both halves are computed
  once per user and once per item, and only the rest of the MLP runs per pair;
- NeuMF: its MLP branch as DeepMF's, its GMF branch one matrix product with the output layer's
  weights folded into the user rows;
- any other pair model (a subclass, a new model): its forward on every pair, slow but right;
- AutoRec and GLocal-K: every item's hidden code once (it does not depend on the user), then the last
  layer's columns for the users asked for.
tests/test_scoring.py checks each against `forward` on every pair.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.item_matrix import ItemMatrixModel
from engine.models import MF, DeepMF, PairModel, RowModel
from engine.ncf import GMF, NeuMF

# users (int64 indices) -> their predicted ratings of every item (len(users) x n_items)
Scorer = Callable[[torch.Tensor], torch.Tensor]

# Activations a model that works per pair (the MLPs of DeepMF and NeuMF) holds at once: pairs times
# its widest layer, 16 MiB of float32, so a chunk's layers stay in the CPU's caches (an MLP of 64, 32
# ranks ML-1M's users twice as fast as in chunks of eight times that: bench/RESULTS.md), whatever
# the batch of users asked for.
ACTIVATIONS_AT_ONCE = 1 << 22


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
    n_items = net.item_emb.num_embeddings
    if type(net) is DeepMF:
        return _with_biases(net, _in_chunks(_deepmf_scorer(net), n_items * _widest(net.mlp)))
    if type(net) is NeuMF:
        return _with_biases(net, _in_chunks(_neumf_scorer(net), n_items * _widest(net.mlp)))
    # Any other pair model: its forward on every pair, a width of 4 k a pair as a guess.
    return _in_chunks(_pairwise(net), n_items * 4 * net.item_emb.embedding_dim)


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


def _widest(mlp: nn.Sequential) -> int:
    return max(m.out_features for m in mlp if isinstance(m, nn.Linear))


def _in_chunks(score: Scorer, per_user: int) -> Scorer:
    """`score` over a few users at a time, about ACTIVATIONS_AT_ONCE activations, for a scorer that
    holds `per_user` of them per user it scores."""
    per_chunk = max(1, ACTIVATIONS_AT_ONCE // per_user)

    def chunked(users: torch.Tensor) -> torch.Tensor:
        if len(users) <= per_chunk:
            return score(users)
        return torch.cat([score(chunk) for chunk in torch.split(users, per_chunk)])
    return chunked


def _deepmf_scorer(net: DeepMF) -> Scorer:
    layers = [m for m in net.mlp if isinstance(m, nn.Linear)]  # dropout is off in eval mode
    mlp = _split_mlp(net.user_emb.weight, net.item_emb.weight, layers)

    def score(users: torch.Tensor) -> torch.Tensor:
        return mlp(users).squeeze(-1)  # the last layer has no ReLU and one output
    return score


def _neumf_scorer(net: NeuMF) -> Scorer:
    """NeuMF's output layer reads cat(p * q, MLP(...)): its weights split in two, the GMF half folds into
    the user rows (one matrix product with the item table) and the MLP half is a dot product per pair."""
    k = net.user_emb.embedding_dim
    weight = net.out.weight[0]
    gmf_users = net.user_emb.weight * weight[:k]
    layers = [m for m in net.mlp if isinstance(m, nn.Linear)]
    mlp = _split_mlp(net.mlp_user_emb.weight, net.mlp_item_emb.weight, layers, relu_last=True)

    def score(users: torch.Tensor) -> torch.Tensor:
        gmf = torch.addmm(net.out.bias, gmf_users.index_select(0, users), net.item_emb.weight.t())
        return gmf + mlp(users) @ weight[k:]
    return score


def _split_mlp(user_table: torch.Tensor, item_table: torch.Tensor, layers: list[nn.Linear], *,
               relu_last: bool = False) -> Scorer:
    """users -> the MLP `layers` (a ReLU after each but the last, and after the last too if `relu_last`)
    over cat(user row, item row) for each user and every item: users x items x the last layer's width.
    The first layer of a concatenation is W_u user + W_i item + b, so both halves are computed here,
    once per user and once per item, and only the rest runs per pair."""
    first, rest = layers[0], layers[1:]
    k = user_table.shape[1]
    per_user = user_table @ first.weight[:, :k].t()  # n_users x width
    per_item = torch.addmm(first.bias, item_table, first.weight[:, k:].t())  # n_items x width

    def run(users: torch.Tensor) -> torch.Tensor:
        x = per_user.index_select(0, users).unsqueeze(1) + per_item
        for layer in rest:
            x = F.linear(x.relu_(), layer.weight, layer.bias)
        return x.relu_() if relu_last else x
    return run


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
