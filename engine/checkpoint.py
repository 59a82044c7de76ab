"""A run's checkpoint: the weights of its best epoch and everything needed to use them later.

One file, `torch.save`d and read back with `torch.load(..., weights_only=True)` only (tensors, numbers,
strings, lists and dicts: nothing in it can run code when loaded). It holds
- `state_dict`: the model's weights at the best epoch;
- `config`: the model's name and what `build_model` takes to make it again, and the run's parameters;
- `data`: the dataset's name and ratings file, the id maps (raw user and item id of each index, so
  results name real users and movies without the dataset being read and remapped again), and the
  ratings the run learnt from (its training and validation parts), grouped by user. Those tell which
  items a user has already rated, and a row model (AutoRec, GLocal-K) predicts from them.

The ratings are stored compactly: each user's items as 16-bit numbers when the catalogue allows, the
ratings as 16-bit floats when every one is exact in them (whole and half stars are), so ML-1M's 900,000
known ratings take 4.5 MB rather than 12 MB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import ConfigError
from engine.split import Split

# What `save` writes; a checkpoint of the first format (before issue 13) has no "format" and no data.
FORMAT = 2


@dataclass(frozen=True)
class UserRatings:
    """Ratings grouped by user index: user u's are `items[offsets[u]:offsets[u + 1]]` with `ratings`
    alike, and `in_val` marks those of the validation part (the others are training ratings)."""

    offsets: torch.Tensor  # int64, n_users + 1
    items: torch.Tensor  # int64
    ratings: torch.Tensor  # float32
    in_val: torch.Tensor  # bool

    @classmethod
    def from_split(cls, split: Split) -> UserRatings:
        """The training and validation ratings of `split`, grouped by user."""
        ds = split.dataset
        rows = np.concatenate([split.train, split.val])
        users = ds.users[rows]
        order = np.argsort(users, kind="stable")  # by user, each user's in the split's order
        counts = np.bincount(users, minlength=ds.n_users)
        in_val = np.zeros(len(rows), dtype=bool)
        in_val[len(split.train):] = True
        return cls(offsets=torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)),
                   items=torch.from_numpy(ds.items[rows][order].astype(np.int64)),
                   ratings=torch.from_numpy(ds.ratings[rows][order].astype(np.float32)),
                   in_val=torch.from_numpy(in_val[order]))

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    def of(self, user: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(items, ratings) of one user index, training and validation alike."""
        start, end = int(self.offsets[user]), int(self.offsets[user + 1])
        return self.items[start:end], self.ratings[start:end]

    def users(self) -> torch.Tensor:
        """The user index of every rating, in storage order."""
        return torch.repeat_interleave(torch.arange(self.n_users), self.offsets.diff())

    def training(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users, items, ratings) of the training part only: what a row model attaches."""
        keep = ~self.in_val
        return self.users()[keep], self.items[keep], self.ratings[keep]

    def pack(self) -> dict[str, torch.Tensor]:
        narrow = len(self.items) == 0 or int(self.items.max()) < 2**15
        items = self.items.to(torch.int16 if narrow else torch.int32)
        half = self.ratings.to(torch.float16)
        ratings = half if torch.equal(half.to(torch.float32), self.ratings) else self.ratings
        return {"counts": self.offsets.diff().to(torch.int32), "items": items, "ratings": ratings,
                "in_val": self.in_val}

    @classmethod
    def unpack(cls, packed: dict[str, torch.Tensor]) -> UserRatings:
        counts = packed["counts"].to(torch.int64)
        return cls(offsets=torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]),
                   items=packed["items"].to(torch.int64), ratings=packed["ratings"].to(torch.float32),
                   in_val=packed["in_val"].to(torch.bool))


@dataclass(frozen=True)
class RunData:
    """What a checkpoint keeps of the run's data (see the module's docstring)."""

    name: str  # the dataset as the run named it
    path: str | None  # its ratings file, where the item titles are looked for; None for synthetic data
    user_ids: torch.Tensor  # int64: raw id of each user index, sorted
    item_ids: torch.Tensor  # int64: raw id of each item index, sorted
    known: UserRatings

    @classmethod
    def from_split(cls, split: Split) -> RunData:
        ds = split.dataset
        return cls(name=ds.name, path=ds.source, user_ids=torch.from_numpy(ds.user_ids.astype(np.int64)),
                   item_ids=torch.from_numpy(ds.item_ids.astype(np.int64)), known=UserRatings.from_split(split))

    def pack(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "user_ids": self.user_ids, "item_ids": self.item_ids,
                "known": self.known.pack()}

    @classmethod
    def unpack(cls, packed: dict[str, Any]) -> RunData:
        return cls(name=packed["name"], path=packed["path"], user_ids=packed["user_ids"],
                   item_ids=packed["item_ids"], known=UserRatings.unpack(packed["known"]))


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    epoch: int
    test_rmse: float
    data: RunData


def save(path: Path, net: torch.nn.Module, config: dict[str, Any], *, epoch: int, test_rmse: float,
         data: dict[str, Any]) -> None:
    """Write the checkpoint of `net` at `epoch`; `data` is `RunData.pack()`, made once a run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Copies: a parameter of a packed run is a view of a buffer that holds every run's (torch.save
    # would write the whole buffer), and on CPU .cpu() alone copies nothing.
    state = {name: tensor.detach().to("cpu", copy=True) for name, tensor in net.state_dict().items()}
    # Written beside and renamed, so a crash mid-save never leaves a truncated checkpoint.
    partial = path.with_name(path.name + ".partial")
    # The owner's alone, whatever the umask: a model trained on the user's ratings.
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        torch.save({"format": FORMAT, "state_dict": state, "config": config, "epoch": epoch,
                    "test_rmse": test_rmse, "data": data}, out)
    partial.replace(path)


def load(path: Path, *, what: str) -> Checkpoint:
    """The checkpoint at `path`; `what` names it in errors ("run 5's checkpoint"). ConfigError, one
    line, for a missing or unreadable file and for one written before checkpoints kept their data."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{what} is missing: {path} does not exist") from None
    except Exception as exc:  # a truncated, foreign or damaged file: pickle, zip and torch errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{what} ({path}) cannot be read: {first[:200]}") from None
    if not isinstance(raw, dict) or "state_dict" not in raw or "config" not in raw:
        raise ConfigError(f"{what} ({path}) is not a dmf-tui checkpoint")
    version = raw.get("format", 1)
    if not isinstance(version, int):
        raise ConfigError(f"{what} ({path}) is damaged: its format is {version!r}, not a number")
    if version < FORMAT or "data" not in raw:
        raise ConfigError(f"{what} ({path}) was written by an older dmf-tui and lacks the id maps and "
                          "ratings needed to use it: train the run again")
    if version > FORMAT:
        raise ConfigError(f"{what} ({path}) was written by a newer dmf-tui (checkpoint format {version}); "
                          "upgrade dmf-tui")
    try:
        return Checkpoint(state_dict=raw["state_dict"], config=raw["config"], epoch=int(raw["epoch"]),
                          test_rmse=float(raw["test_rmse"]), data=RunData.unpack(raw["data"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{what} ({path}) is damaged: {type(exc).__name__} {exc}") from None
