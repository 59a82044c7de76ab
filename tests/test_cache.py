"""engine/cache.py through engine.datasets.load_dataset: a ratings file is parsed once, its cache is
used while the file is unchanged, and a cache that is stale, damaged or unwritable is never an error
and never wrong data."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from dmf_tui.cli import main
from engine import cache, datasets
from engine.formats import read_ratings
from engine.remap import Dataset

LINES = "userId,movieId,rating,timestamp\n" + "".join(
    f"{u},{i},{(u * i) % 9 / 2 + 0.5},{1_000_000_000 + u}\n" for u in range(1, 40) for i in range(3, 90, u)
)


@pytest.fixture
def reads(tmp_path, monkeypatch):
    """Every file caches (no size floor) into tmp_path/cache; the list of files read_ratings parsed."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "MIN_BYTES", 0)
    parsed: list[str] = []

    def counting(path):
        parsed.append(str(path))
        return read_ratings(path)

    monkeypatch.setattr(datasets, "read_ratings", counting)
    return parsed


@pytest.fixture
def ratings_file(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(LINES)
    return path


def assert_equal(a: Dataset, b: Dataset) -> None:
    assert (a.name, a.source) == (b.name, b.source)
    for column in ("users", "items", "ratings", "user_ids", "item_ids"):
        x, y = getattr(a, column), getattr(b, column)
        assert x.dtype == y.dtype and np.array_equal(x, y), column


def cache_files(tmp_path):
    return sorted((tmp_path / "cache" / "dmf-tui" / "datasets").glob("*"))


def test_the_second_load_comes_from_the_cache_and_equals_the_first(reads, ratings_file, tmp_path):
    first = datasets.load_dataset(str(ratings_file))
    second = datasets.load_dataset(str(ratings_file))

    assert reads == [str(ratings_file)]  # parsed once
    assert_equal(second, first)
    assert first.n_ratings == LINES.count("\n") - 1
    folder = tmp_path / "cache" / "dmf-tui"
    assert stat.S_IMODE(folder.stat().st_mode) == stat.S_IMODE((folder / "datasets").stat().st_mode) == 0o700
    (file,) = cache_files(tmp_path)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_a_registered_name_is_cached_too(reads, ml100k_path, tmp_path):
    first = datasets.load_dataset("ml-100k", data_dir=ml100k_path.parents[1])
    second = datasets.load_dataset("ml-100k", data_dir=ml100k_path.parents[1])
    assert len(reads) == 1
    assert_equal(second, first)


def test_a_touched_file_is_read_again(reads, ratings_file, tmp_path):
    datasets.load_dataset(str(ratings_file))
    later = ratings_file.stat().st_mtime_ns + 10**9
    os.utime(ratings_file, ns=(later, later))

    datasets.load_dataset(str(ratings_file))
    datasets.load_dataset(str(ratings_file))

    assert len(reads) == 2  # once after the touch, then from the new cache
    assert len(cache_files(tmp_path)) == 1  # the new cache replaced the old


def test_a_file_edited_in_place_is_read_again_even_with_its_old_size_and_time(reads, ratings_file):
    before = datasets.load_dataset(str(ratings_file))
    found = ratings_file.stat()
    ratings_file.write_text(LINES.replace("1,3,", "2,3,", 1))  # same size
    os.utime(ratings_file, ns=(found.st_atime_ns, found.st_mtime_ns))  # and the old modification time
    assert ratings_file.stat().st_size == found.st_size

    after = datasets.load_dataset(str(ratings_file))

    assert len(reads) == 2
    assert after.users[0] != before.users[0] or after.user_ids[0] != before.user_ids[0]


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "garbage", "empty"])
def test_a_damaged_cache_is_ignored_and_rebuilt(reads, ratings_file, tmp_path, damage):
    fresh = datasets.load_dataset(str(ratings_file))
    (file,) = cache_files(tmp_path)
    data = bytearray(file.read_bytes())
    if damage == "flip a byte":
        data[-50] ^= 0x01  # inside the arrays, past every header
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"\x93NUMPY not really" * 100)
    else:
        data = bytearray()
    file.write_bytes(bytes(data))

    again = datasets.load_dataset(str(ratings_file))
    assert len(reads) == 2  # the damaged cache was not used
    assert_equal(again, fresh)
    datasets.load_dataset(str(ratings_file))
    assert len(reads) == 2  # and was rewritten whole


def test_an_unwritable_cache_folder_is_no_error(reads, ratings_file, tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    first = datasets.load_dataset(str(ratings_file))
    assert_equal(datasets.load_dataset(str(ratings_file)), first)
    assert len(reads) == 2


def test_a_write_that_fails_halfway_leaves_no_cache_and_no_temp_file(reads, ratings_file, tmp_path, monkeypatch):
    saved = []

    def failing_save(file, array, allow_pickle):
        saved.append(array)
        if len(saved) == 3:  # after the header and the users, as a full disk would
            raise OSError(28, "No space left on device")
        np.lib.format.write_array(file, array, allow_pickle=allow_pickle)

    monkeypatch.setattr(np, "save", failing_save)
    datasets.load_dataset(str(ratings_file))
    assert cache_files(tmp_path) == []


def test_a_file_that_changes_while_it_is_read_is_not_cached(reads, ratings_file, tmp_path, monkeypatch):
    def read_then_touch(path):
        reads.append(str(path))
        ratings = read_ratings(path)
        later = ratings_file.stat().st_mtime_ns + 10**9
        os.utime(ratings_file, ns=(later, later))
        return ratings

    monkeypatch.setattr(datasets, "read_ratings", read_then_touch)
    datasets.load_dataset(str(ratings_file))
    assert cache_files(tmp_path) == []


def test_small_files_are_not_cached(reads, ratings_file, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "MIN_BYTES", ratings_file.stat().st_size + 1)
    datasets.load_dataset(str(ratings_file))
    datasets.load_dataset(str(ratings_file))
    assert len(reads) == 2 and not (tmp_path / "cache").exists()


def test_the_cache_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "dmf-tui" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "dmf-tui" / "datasets"


def test_cli_data_clear_cache(reads, ratings_file, tmp_path, capsys):
    datasets.load_dataset(str(ratings_file))
    size = cache_files(tmp_path)[0].stat().st_size

    assert main(["data", "clear-cache"]) == 0

    assert cache_files(tmp_path) == []
    out = capsys.readouterr().out
    assert "1 cached dataset" in out and f"{size / 1e6:.1f} MB" in out
    datasets.load_dataset(str(ratings_file))
    assert len(reads) == 2
