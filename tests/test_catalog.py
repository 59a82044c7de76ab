"""store/catalog.py: what a run's dataset spec names, and the one identity of a dataset however it
was named (ml-100k and the path of its u.data are the same dataset)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from engine import datasets
from engine.synthetic import SHAPES
from store import catalog

RATINGS = "1\t1\t3\t0\n2\t1\t4\t0\n"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder holding a (tiny) ml-100k and nothing else."""
    root = tmp_path / "data"
    (root / "ml-100k").mkdir(parents=True)
    (root / "ml-100k" / "u.data").write_text(RATINGS)
    monkeypatch.setenv("DMF_DATA_DIR", str(root))
    return root


def test_the_synthetic_names_are_the_engines() -> None:
    assert tuple(SHAPES) == catalog.SYNTHETIC


def test_the_engine_loads_with_the_catalogs_registry() -> None:
    assert datasets.DATASETS is catalog.DATASETS
    assert datasets.dataset_path is catalog.dataset_path
    assert datasets.data_dir is catalog.data_dir


def test_names_resolve_to_themselves(data_dir: Path) -> None:
    assert catalog.resolve("synthetic-1m") == catalog.DataRef("synthetic-1m", "synthetic-1m", "synthetic-1m",
                                                              None, True)
    assert catalog.resolve("ml-100k") == catalog.DataRef("ml-100k", "ml-100k", "ml-100k",
                                                         data_dir / "ml-100k" / "u.data", True)
    missing = catalog.resolve("ml-1m")
    assert (missing.key, missing.present, missing.path) == ("ml-1m", False, data_dir / "ml-1m" / "ratings.dat")
    assert catalog.resolve("ml-2m") == catalog.DataRef("ml-2m", "ml-2m", "ml-2m", None, False)


def test_a_registered_datasets_file_is_that_dataset(data_dir: Path, tmp_path: Path) -> None:
    ref = catalog.resolve(str(data_dir / "ml-100k" / "u.data"))
    assert (ref.key, ref.label, ref.present) == ("ml-100k", "ml-100k/u.data", True)
    # Through a symbolic link, or as a copy elsewhere with the same content: the same dataset.
    (tmp_path / "link.data").symlink_to(data_dir / "ml-100k" / "u.data")
    assert catalog.resolve(str(tmp_path / "link.data")).key == "ml-100k"
    copy = tmp_path / "copies" / "mine.data"
    copy.parent.mkdir()
    shutil.copyfile(data_dir / "ml-100k" / "u.data", copy)
    assert catalog.resolve(str(copy)).key == "ml-100k"


def test_other_files_are_known_by_their_content(data_dir: Path, tmp_path: Path) -> None:
    # The same size as ml-100k's file, another content: another dataset.
    other = tmp_path / "other.data"
    other.write_text(RATINGS.replace("3", "5"))
    digest = hashlib.sha256(other.read_bytes()).hexdigest()
    ref = catalog.resolve(str(other))
    assert (ref.key, ref.path, ref.present) == (f"sha256:{digest[:16]}", other, True)
    twin = tmp_path / "twin.data"
    shutil.copyfile(other, twin)
    assert catalog.resolve(str(twin)).key == ref.key


def test_a_file_is_hashed_once_until_it_changes(data_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mine.data"
    path.write_text("7\t1\t4\t0\n")
    hashed: list[str] = []
    real_sha256 = hashlib.sha256

    def counted() -> hashlib._Hash:
        hashed.append(str(path))
        return real_sha256()

    monkeypatch.setattr(hashlib, "sha256", counted)
    first = catalog.resolve(str(path)).key
    assert catalog.resolve(str(path)).key == first
    assert len(hashed) == 1
    path.write_text("7\t1\t5\t0\n")  # the same size, another content
    os.utime(path, ns=(0, 1))  # and certainly another modification time
    assert catalog.resolve(str(path)).key != first
    assert len(hashed) == 2


def test_a_missing_file_is_known_by_its_absolute_path(data_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ref = catalog.resolve("gone/u.data")
    assert ref == catalog.DataRef("gone/u.data", str(tmp_path / "gone" / "u.data"), "gone/u.data",
                                  tmp_path / "gone" / "u.data", False)


def test_the_real_ml100k_is_ml100k_by_path_and_by_content(ml100k_path: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMF_DATA_DIR", str(ml100k_path.parents[1]))
    assert catalog.resolve(str(ml100k_path)).key == "ml-100k"
    copy = tmp_path / "u.data"
    shutil.copyfile(ml100k_path, copy)
    assert catalog.resolve(str(copy)).key == "ml-100k"
    # Not downloaded into the data folder, the same file is a dataset of its own.
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path / "empty"))
    assert catalog.resolve(str(ml100k_path)).key.startswith("sha256:")


def test_labels_are_short_and_touch_no_disk() -> None:
    assert catalog.data_label("ml-1m") == "ml-1m"
    assert catalog.data_label("synthetic-100k") == "synthetic-100k"
    assert catalog.data_label("/nowhere/at/all/ml-100k/u.data") == "ml-100k/u.data"
    assert catalog.data_label("u.data") == "u.data"


def test_why_a_dataset_cannot_be_used(data_dir: Path, tmp_path: Path) -> None:
    assert catalog.check_available("synthetic-100k") is None
    assert catalog.check_available("ml-100k") is None
    assert catalog.check_available(str(data_dir / "ml-100k" / "u.data")) is None
    assert catalog.check_available("ml-1m") == (
        f"dataset ml-1m is not in {data_dir} yet: run `dmf-tui data fetch ml-1m`, "
        "or use --data synthetic-1m to train offline")
    unknown = catalog.check_available("nosuch")
    assert unknown is not None and unknown.startswith("unknown dataset 'nosuch' (and no such file): known names")
    assert catalog.check_available(str(tmp_path / "missing.data")) == f"no such file: {tmp_path / 'missing.data'}"
    assert catalog.check_available(str(tmp_path)) == f"{tmp_path} is a folder, not a ratings file"


def test_present_names(data_dir: Path) -> None:
    assert catalog.present_names() == ["ml-100k", "synthetic-100k", "synthetic-1m"]
    shutil.rmtree(data_dir / "ml-100k")
    assert catalog.present_names() == ["synthetic-100k", "synthetic-1m"]


def test_a_new_runs_default_dataset(data_dir: Path, tmp_path: Path) -> None:
    assert catalog.default_data(None) == "ml-100k"
    assert catalog.default_data("synthetic-1m") == "synthetic-1m"
    assert catalog.default_data(str(tmp_path / "gone.data")) == "ml-100k"
    assert catalog.default_data("ml-1m") == "ml-100k"  # not downloaded
    shutil.rmtree(data_dir / "ml-100k")
    assert catalog.default_data(None) == "synthetic-100k"
