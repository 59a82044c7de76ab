"""Using a trained run: its top-N items for a user, the items closest to an item, and why.

`TrainedModel.load(path)` rebuilds a run's model from its checkpoint (engine/checkpoint.py) alone: the
id maps turn the raw ids a person types into the model's indices and back, and the known ratings
tell what a user has already rated (and feed a row model). Titles come from the dataset's own item
file when it is still beside the ratings file (engine/titles.py); without one, items show by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.checkpoint import RunData, load
from engine.datasets import DATASETS
from engine.errors import ConfigError
from engine.models import PairModel, RowModel, build_model
from engine.scoring import Scorer, item_vectors, user_scorer
from engine.titles import Titles, read_titles

# How many of the user's highest-rated known items --explain compares a recommendation with.
EXPLAIN_FROM = 50


@dataclass(frozen=True)
class Recommendation:
    item: int  # raw id
    title: str | None
    genres: tuple[str, ...]
    score: float  # the predicted rating; for `similar`, the cosine similarity
    because: tuple[int, str | None, float] | None = None  # (raw id, title, the user's rating), with --explain


class TrainedModel:
    """A run's model at its best epoch, on the CPU, ready to answer (see the module's docstring)."""

    def __init__(self, net: PairModel | RowModel, data: RunData, titles: Titles, *, name: str) -> None:
        self.net, self.data, self.titles, self.name = net, data, titles, name
        self._score: Scorer | None = None

    @classmethod
    def load(cls, path: Path, *, name: str = "this model") -> TrainedModel:
        """The model of the checkpoint at `path`; `name` names it in errors ("run 5").
        ConfigError for a checkpoint that cannot be used."""
        what = f"{name}'s checkpoint"
        checkpoint = load(path, what=what)
        config, data = checkpoint.config, checkpoint.data
        net = build_model(config["model"], **{k: v for k, v in config.items() if k != "model"})
        try:
            net.load_state_dict(checkpoint.state_dict)
        except RuntimeError as exc:
            raise ConfigError(f"{what} ({path}) does not match its model: {str(exc).splitlines()[0]}") from None
        if isinstance(net, RowModel):
            net.attach(*data.known.training())
        return cls(net, data, read_titles(Path(data.path) if data.path else None), name=name)

    @property
    def titles_note(self) -> str | None:
        """One line on why some or all items show by id (what was wrong with the item file, or that
        there is none), or None when the item file names every item it can."""
        if self.titles.problem:
            return self.titles.problem
        if self.titles.source is not None:
            return None
        if self.data.path is None:
            return f"{self.data.name} has no item file: items show by id"
        # A dataset fetched before `data fetch` extracted item files has none: fetching it again brings it.
        again = f" (`dmf-tui data fetch {self.data.name} --force` brings it)" if self.data.name in DATASETS else ""
        return f"no item file beside {self.data.path}: items show by id{again}"

    def user_index(self, raw: int) -> int:
        return _index(self.data.user_ids, raw, "user", self.name)

    def item_index(self, raw: int) -> int:
        return _index(self.data.item_ids, raw, "item", self.name)

    def recommend(self, user: int, n: int = 10, *, explain: bool = False) -> list[Recommendation]:
        """The `n` items with the highest predicted rating for raw user id `user` that the user has
        not rated in the run's training or validation part, best first."""
        _check_n(n)
        index = self.user_index(user)
        if self._score is None:
            self._score = user_scorer(self.net)
        with torch.no_grad():
            scores = self._score(torch.tensor([index]))[0]
        known, known_ratings = self.data.known.of(index)
        scores[known] = -torch.inf
        top = scores.topk(min(n, int(torch.isfinite(scores).sum())))
        reasons = self._reasons(top.indices, known, known_ratings) if explain else None
        return [self._entry(int(i), float(s), reasons[rank] if reasons else None)
                for rank, (i, s) in enumerate(zip(top.indices, top.values))]

    def similar(self, item: int, n: int = 10) -> list[Recommendation]:
        """The `n` items whose vectors in the model are closest (cosine) to raw item id `item`'s."""
        _check_n(n)
        index = self.item_index(item)
        vectors = self._item_vectors()
        with torch.no_grad():
            cosine = F.normalize(vectors, dim=1) @ F.normalize(vectors[index], dim=0)
        cosine[index] = -torch.inf
        top = cosine.topk(min(n, len(cosine) - 1))
        return [self._entry(int(i), float(s)) for i, s in zip(top.indices, top.values)]

    def _item_vectors(self) -> torch.Tensor:
        vectors = item_vectors(self.net)
        if vectors is None:
            model = self.net.__class__.__name__
            raise ConfigError(f"{model} has no item embedding to compare items in: `similar` and --explain "
                              "need a run of mf, deepmf, gmf or neumf")
        return vectors

    def _reasons(self, recommended: torch.Tensor, known: torch.Tensor,
                 ratings: torch.Tensor) -> list[tuple[int, str | None, float]] | None:
        """For each recommended item, the one of the user's highest-rated known items closest to it."""
        if len(known) == 0:
            return None
        vectors = F.normalize(self._item_vectors(), dim=1)
        favourites = known[ratings.argsort(descending=True, stable=True)[:EXPLAIN_FROM]]
        with torch.no_grad():
            closest = (vectors[recommended] @ vectors[favourites].t()).argmax(dim=1)
        rating_of = dict(zip(known.tolist(), ratings.tolist()))
        reasons = []
        for index in favourites[closest].tolist():
            raw = int(self.data.item_ids[index])
            reasons.append((raw, self.titles.title(raw), rating_of[index]))
        return reasons

    def _entry(self, index: int, score: float, because: tuple[int, str | None, float] | None = None) -> Recommendation:
        raw = int(self.data.item_ids[index])
        info = self.titles.items.get(raw)
        return Recommendation(item=raw, title=info.title if info else None, genres=info.genres if info else (),
                              score=score, because=because)


def _index(ids: torch.Tensor, raw: int, kind: str, name: str) -> int:
    """The index of raw id `raw` among `ids` (sorted); ConfigError naming the run when it has none."""
    if -(2**63) <= raw < 2**63:  # an id no int64 can hold is in no dataset
        where = int(torch.searchsorted(ids, torch.tensor(raw, dtype=ids.dtype)))
        if where < len(ids) and int(ids[where]) == raw:
            return where
    raise ConfigError(f"{kind} {raw} is not in the data of {name} ({len(ids):,} {kind}s, ids "
                      f"{int(ids[0])}..{int(ids[-1])})")


def _check_n(n: int) -> None:
    if n <= 0:
        raise ConfigError(f"-n must be at least 1 (got {n})")
