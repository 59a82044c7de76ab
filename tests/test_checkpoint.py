"""engine/checkpoint.py: what a checkpoint keeps comes back as it was, it is read without running any
code in it, and a file it cannot use is one clear ConfigError."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine import checkpoint
from engine.checkpoint import RunData, UserRatings
from engine.errors import ConfigError
from engine.models import build_model
from engine.remap import Dataset
from engine.split import Split, split_dataset
from tests.tiny import tiny_dataset

CONFIG = {"model": "mf", "k": 3, "bias": True, "n_users": 20, "n_items": 15, "lr": 0.01}


def split_of(ds: Dataset) -> Split:
    return split_dataset(ds, test_size=0.2, val_size=0.25)


def save(path: Path, split: Split, source: str | None = "/data/u.data") -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model("mf", split.dataset.n_users, split.dataset.n_items, k=3, bias=True)
    read_from = Split(dataclasses.replace(split.dataset, source=source), split.train, split.val, split.test)
    checkpoint.save(path, net, CONFIG, epoch=7, test_rmse=0.91, data=RunData.from_split(read_from).pack())
    return net


def per_user(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, in_val: np.ndarray) -> list[list[tuple]]:
    """Each user's (item, rating, in_val) triples, sorted: the known ratings as a comparable value."""
    grouped: list[list[tuple]] = [[] for _ in range(int(users.max()) + 1)]
    for row in zip(users.tolist(), items.tolist(), ratings.tolist(), in_val.tolist()):
        grouped[row[0]].append(row[1:])
    return [sorted(rows) for rows in grouped]


def test_round_trip(tmp_path: Path) -> None:
    split = split_of(tiny_dataset(20, 15, 150))
    net = save(tmp_path / "run.pt", split)
    loaded = checkpoint.load(tmp_path / "run.pt", what="run 1's checkpoint")
    assert loaded.state_dict.keys() == net.state_dict().keys()
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded.state_dict[name], tensor)
    assert (loaded.config, loaded.epoch, loaded.test_rmse) == (CONFIG, 7, 0.91)
    data, ds = loaded.data, split.dataset
    assert (data.name, data.path) == ("tiny", "/data/u.data")
    assert torch.equal(data.user_ids, torch.from_numpy(ds.user_ids)) and data.user_ids.dtype == torch.int64
    assert torch.equal(data.item_ids, torch.from_numpy(ds.item_ids)) and data.item_ids.dtype == torch.int64

    known = data.known
    assert known.n_users == ds.n_users
    assert (known.items.dtype, known.ratings.dtype, known.in_val.dtype) == (torch.int64, torch.float32, torch.bool)
    rows = np.concatenate([split.train, split.val])
    in_val = np.arange(len(rows)) >= len(split.train)
    assert len(split.val) > 0 and len(known.items) == len(rows)
    want = per_user(ds.users[rows], ds.items[rows], ds.ratings[rows], in_val)
    got = per_user(known.users().numpy(), known.items.numpy(), known.ratings.numpy(), known.in_val.numpy())
    assert got == want
    for user in range(ds.n_users):
        items, ratings = known.of(user)
        assert sorted(zip(items.tolist(), ratings.tolist())) == [(item, rating) for item, rating, _ in want[user]]


def test_the_training_part_is_what_a_row_model_attaches(tmp_path: Path) -> None:
    split = split_of(tiny_dataset(20, 15, 150))
    known = UserRatings.from_split(split)
    users, items, ratings = known.training()
    want_users, want_items, want_ratings = split.part("train")
    assert sorted(zip(users.tolist(), items.tolist(), ratings.tolist())) == \
        sorted(zip(want_users.tolist(), want_items.tolist(), want_ratings.tolist()))


def test_a_user_without_known_ratings_has_an_empty_run(tmp_path: Path) -> None:
    split = split_of(tiny_dataset(20, 15, 150, rated_users=18))
    save(tmp_path / "run.pt", split)
    known = checkpoint.load(tmp_path / "run.pt", what="it").data.known
    assert known.n_users == 20
    items, ratings = known.of(19)
    assert len(items) == len(ratings) == 0


def raw(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = torch.load(path, weights_only=True)
    return loaded


def test_items_and_half_star_ratings_are_stored_narrow(tmp_path: Path) -> None:
    save(tmp_path / "run.pt", split_of(tiny_dataset(20, 15, 150)))
    packed = raw(tmp_path / "run.pt")["data"]["known"]
    assert (packed["items"].dtype, packed["ratings"].dtype) == (torch.int16, torch.float16)


def dataset(n_items: int, ratings: list[float]) -> Dataset:
    n = len(ratings)
    return Dataset(name="wide", users=np.arange(n, dtype=np.int64) % 3,
                   items=np.arange(n, dtype=np.int64) + n_items - n, ratings=np.array(ratings, dtype=np.float32),
                   user_ids=np.arange(3, dtype=np.int64) + 10,
                   item_ids=np.arange(n_items, dtype=np.int64) * 2)


def test_item_indices_past_int16_are_stored_as_int32(tmp_path: Path) -> None:
    ds = dataset(2**15 + 10, [5.0] * 10 + [4.0] * 10)  # the last 20 items, half of them past 2**15
    split = split_of(ds)
    save(tmp_path / "run.pt", split)
    assert raw(tmp_path / "run.pt")["data"]["known"]["items"].dtype == torch.int32
    known = checkpoint.load(tmp_path / "run.pt", what="it").data.known
    assert int(known.items.max()) >= 2**15
    assert torch.equal(known.items, UserRatings.from_split(split).items)


def test_ratings_a_half_float_cannot_hold_stay_float32(tmp_path: Path) -> None:
    ds = dataset(40, [3.3, 4.5, 1.0, 2.71828, 5.0, 0.1, 3.5, 4.0, 1.5, 2.0, 3.0, 4.25] * 2)
    split = split_of(ds)
    save(tmp_path / "run.pt", split)
    assert raw(tmp_path / "run.pt")["data"]["known"]["ratings"].dtype == torch.float32
    known = checkpoint.load(tmp_path / "run.pt", what="it").data.known
    assert torch.equal(known.ratings, UserRatings.from_split(split).ratings)


def test_only_the_owner_may_read_it(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        save(tmp_path / "run.pt", split_of(tiny_dataset(20, 15, 150)))
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "run.pt").stat().st_mode) == 0o600
    assert not (tmp_path / "run.pt.partial").exists()


# ---- files it cannot use


class Payload:
    """An object whose unpickling makes a folder: what a hostile checkpoint would run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.folder),)


def test_a_pickled_object_is_refused_and_never_run(tmp_path: Path) -> None:
    path, marker = tmp_path / "run.pt", tmp_path / "ran"
    torch.save({"format": checkpoint.FORMAT, "state_dict": {}, "config": {}, "epoch": 1, "test_rmse": 1.0,
                "data": Payload(marker)}, path)
    with pytest.raises(ConfigError, match=r"^run 3's checkpoint \(.*run\.pt\) cannot be read") as error:
        checkpoint.load(path, what="run 3's checkpoint")
    assert "\n" not in str(error.value)
    assert not marker.exists()


def test_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    save(path, split_of(tiny_dataset(20, 15, 150)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ConfigError, match="cannot be read") as error:
        checkpoint.load(path, what="run 3's checkpoint")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all\n"])
def test_a_file_that_is_no_checkpoint(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "run.pt").write_bytes(content)
    with pytest.raises(ConfigError, match=r"cannot be read") as error:
        checkpoint.load(tmp_path / "run.pt", what="run 3's checkpoint")
    assert str(tmp_path / "run.pt") in str(error.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^run 3's checkpoint is missing: .*nothing\.pt does not exist$"):
        checkpoint.load(tmp_path / "nothing.pt", what="run 3's checkpoint")


def test_a_checkpoint_of_the_previous_release(tmp_path: Path) -> None:
    # What the trainer saved before issue 13: weights and config, no format and no data.
    net = build_model("mf", 5, 6, k=2)
    torch.save({"state_dict": net.state_dict(), "config": {"model": "mf", "k": 2}, "epoch": 3, "test_rmse": 1.0},
               tmp_path / "run.pt")
    with pytest.raises(ConfigError, match="older dmf-tui and lacks the id maps") as error:
        checkpoint.load(tmp_path / "run.pt", what="run 3's checkpoint")
    assert str(tmp_path / "run.pt") in str(error.value)


def test_a_checkpoint_of_a_newer_release(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    save(path, split_of(tiny_dataset(20, 15, 150)))
    newer = raw(path) | {"format": checkpoint.FORMAT + 1}
    torch.save(newer, path)
    with pytest.raises(ConfigError, match=rf"newer dmf-tui \(checkpoint format {checkpoint.FORMAT + 1}\)"):
        checkpoint.load(path, what="run 3's checkpoint")


def test_a_torch_file_of_something_else(tmp_path: Path) -> None:
    torch.save([torch.zeros(3)], tmp_path / "run.pt")
    with pytest.raises(ConfigError, match=r"is not a dmf-tui checkpoint$"):
        checkpoint.load(tmp_path / "run.pt", what="run 3's checkpoint")


@pytest.mark.parametrize("damage", [{"epoch": None}, {"data": {"name": "tiny"}}, {"format": "2"}],
                         ids=["no-epoch", "data-in-part", "format-text"])
def test_a_checkpoint_with_a_field_missing_or_wrong(tmp_path: Path, damage: dict[str, Any]) -> None:
    path = tmp_path / "run.pt"
    save(path, split_of(tiny_dataset(20, 15, 150)))
    fields = {key: value for key, value in (raw(path) | damage).items() if value is not None}
    torch.save(fields, path)
    with pytest.raises(ConfigError, match=r"^run 3's checkpoint \(.*run\.pt\) "):
        checkpoint.load(path, what="run 3's checkpoint")
