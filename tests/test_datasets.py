"""Resolving dataset specs: registered names, synthetic names, files; the data folder; `data list`."""

from __future__ import annotations

import re

import pytest

from dmf_tui.cli import main
from engine import datasets
from engine.errors import DataError


def test_registry_urls_members_and_checksums():
    assert set(datasets.DATASETS) == {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small"}
    for name, info in datasets.DATASETS.items():
        assert info.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert info.checksums, f"{name} has no checksum"
        for algo, value in info.checksums.items():
            digits = {"md5": 32, "sha256": 64}[algo]
            assert re.fullmatch(f"[0-9a-f]{{{digits}}}", value)
    assert datasets.DATASETS["ml-10m"].member == "ml-10M100K/ratings.dat"
    assert datasets.dataset_path("ml-1m", "/d").as_posix() == "/d/ml-1m/ratings.dat"


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path))
    assert datasets.data_dir() == tmp_path
    monkeypatch.delenv("DMF_DATA_DIR")
    assert datasets.data_dir().name == "data"


def test_registered_name_from_data_dir(monkeypatch, ml100k_path):
    monkeypatch.setenv("DMF_DATA_DIR", str(ml100k_path.parents[1]))
    split = datasets.load_split("ml-100k")
    assert split.dataset.name == "ml-100k"
    assert (split.dataset.n_users, split.dataset.n_items) == (943, 1682)
    assert (len(split.train), len(split.test)) == (80_000, 20_000)


def test_not_downloaded_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as err:
        datasets.load_dataset("ml-1m", data_dir=tmp_path)
    assert str(err.value) == (
        f"dataset ml-1m is not in {tmp_path} yet: run `dmf-tui data fetch ml-1m`, "
        "or use --data synthetic-1m to train offline"
    )


def test_unknown_name_lists_known_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="unknown dataset 'ml-2m'.*ml-100k, ml-1m.*synthetic-1m"):
        datasets.load_dataset("ml-2m")


def test_file_path_and_synthetic_name(tmp_path):
    path = tmp_path / "mine.dat"
    path.write_text("7::1::4::0\n8::2::5::0\n")
    ds = datasets.load_dataset(str(path))
    assert ds.n_ratings == 2 and ds.name == str(path)
    assert datasets.load_dataset("synthetic-100k").n_users == 943
    with pytest.raises(DataError, match="no such file"):
        datasets.load_dataset(str(tmp_path / "missing.dat"))


def test_cli_data_list(monkeypatch, tmp_path, capsys):
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text("1\t1\t3\t0\n")
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "ml-100k" in out and "synthetic-1m" in out and "1,000,209" in out
    line_100k = next(line for line in out.splitlines() if "ml-100k " in line)
    line_1m = next(line for line in out.splitlines() if "ml-1m " in line)
    assert "yes" in line_100k and "no" in line_1m
