"""The datasets dmf-tui knows: the registered MovieLens releases (where each comes from and where it
lives on disk), the synthetic ones, and what any dataset spec a run names (a registered name, a
synthetic name or a file path) is.

A dataset is one identity however it was named: `ml-100k` and the path of its u.data are the same
dataset, so runs on either rank together. resolve() gives a spec its key:
  - a registered or synthetic name is its own key;
  - a file that is a registered dataset's ratings file in the data folder has that name as key, and so
    has a file with the same size and content as a registered dataset's file that is present;
  - any other file is "sha256:<16 hex digits>" of its content (read once per process for each
    version of the file: the hash is cached by resolved path, size and modification time);
  - a file that no longer exists is keyed by its absolute path.

No engine and no torch here: the store, the CLI and the TUI check datasets through this module, and
engine/datasets.py loads and fetches them with the registry defined here.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from store.errors import StoreError

BASE_URL = "https://files.grouplens.org/datasets/movielens"
CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    member: str  # the ratings file's path inside the zip
    ratings: int  # how many ratings it holds
    md5: str | None = None  # as GroupLens publishes beside the zip
    sha256: str | None = None  # as pinned by several independent projects

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.name}.zip"

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    @property
    def checksums(self) -> dict[str, str]:
        """The known digests by hashlib name; empty when none is known."""
        return {algo: value for algo, value in (("md5", self.md5), ("sha256", self.sha256)) if value}


# Every checksum below was found, identical, in the code or docs of several unrelated public
# projects (TensorFlow and Keras examples, dataset loaders, papers' pipelines); a value nobody
# published is left out, never guessed.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "ml-100k",
            "ml-100k/u.data",
            100_000,
            md5="0e33842e24a9c977be4e0107933c0723",
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        ),
        DatasetInfo(
            "ml-1m",
            "ml-1m/ratings.dat",
            1_000_209,
            md5="c4d9eecfca2ab87c1945afe126590906",
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        ),
        DatasetInfo(
            "ml-10m",
            "ml-10M100K/ratings.dat",
            10_000_054,
            md5="ce571fd55effeba0271552578f2648bd",
            sha256="813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862",
        ),
        DatasetInfo(
            "ml-20m",
            "ml-20m/ratings.csv",
            20_000_263,
            md5="cd245b17a1ae2cc31bb14903e1204af3",
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        ),
        DatasetInfo(
            "ml-25m",
            "ml-25m/ratings.csv",
            25_000_095,
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        ),
        DatasetInfo(
            "ml-32m",
            "ml-32m/ratings.csv",
            32_000_204,
            md5="d472be332d4daa821edc399621853b57",
            sha256="e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
        ),
        DatasetInfo(
            "ml-latest-small",
            "ml-latest-small/ratings.csv",
            100_836,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        ),
    )
}
# The synthetic datasets, generated in memory: engine.synthetic.SHAPES, which tests/test_catalog.py
# keeps equal to this (the store may not import the engine).
SYNTHETIC = ("synthetic-100k", "synthetic-1m")


@dataclass(frozen=True)
class DataRef:
    """What a run's dataset spec names."""

    spec: str  # as the run gives it
    key: str  # the dataset's identity (see the module docstring)
    label: str  # short, for a table: the name, or a file's folder/name
    path: Path | None  # the ratings file (of a registered name too); None for a synthetic or unknown name
    present: bool  # whether it can be loaded now


def known_names() -> list[str]:
    return [*DATASETS, *SYNTHETIC]


def data_dir() -> Path:
    """$DMF_DATA_DIR, else the checkout's data/ when running from one, else the user data dir."""
    if os.environ.get("DMF_DATA_DIR"):
        return Path(os.environ["DMF_DATA_DIR"]).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "dmf-tui" / "data"


def dataset_path(name: str, data_dir: Path | str | None = None) -> Path:
    """Where the ratings file of a registered dataset lives (whether or not it is there yet)."""
    info = DATASETS.get(name)
    if info is None:
        raise StoreError(f"unknown dataset {name!r}: known downloadable names are {', '.join(DATASETS)}")
    return _root(data_dir) / name / info.filename


def _root(where: Path | str | None) -> Path:
    return Path(where).expanduser() if where is not None else data_dir()


def not_downloaded(name: str, path: Path) -> str:
    """Why a registered dataset cannot be used yet, and how to get it."""
    return (f"dataset {name} is not in {path.parent.parent} yet: run `dmf-tui data fetch {name}`, "
            "or use --data synthetic-1m to train offline")


def unknown_name(spec: str) -> str:
    return f"unknown dataset {spec!r} (and no such file): known names are {', '.join(known_names())}"


def looks_like_path(spec: str) -> bool:
    """Whether a spec that is no registered name and no existing file was meant as a file: it has a
    folder or an extension in it (`ml-2m` is a misspelt name, `u.data` a missing file)."""
    return os.sep in spec or "/" in spec or "." in spec


def resolve(spec: str) -> DataRef:
    """What `spec` names, with its identity. Reads a file's content only when it is not a registered
    dataset's file and the hash of this version of it is not cached yet."""
    if spec in SYNTHETIC:
        return DataRef(spec, spec, spec, None, True)
    if spec in DATASETS:
        path = dataset_path(spec)
        return DataRef(spec, spec, spec, path, path.is_file())
    path = Path(spec).expanduser()
    label = data_label(spec)
    try:
        real = path.resolve()
        found = real.stat()
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a name no file can have
        if not looks_like_path(spec):
            return DataRef(spec, spec, spec, None, False)
        return DataRef(spec, str(path.absolute()), label, path.absolute(), False)
    if not real.is_file():
        return DataRef(spec, str(real), label, real, False)
    return DataRef(spec, _file_key(real, found), label, real, True)


def data_label(spec: str) -> str:
    """A short name for a table, without touching the disk: a registered or synthetic name as it is,
    a file as its folder/name (the full path is in Run detail)."""
    if spec in DATASETS or spec in SYNTHETIC:
        return spec
    parts = Path(spec).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else spec


def check_available(spec: str) -> str | None:
    """The reason `spec` cannot be trained on now (an unknown name, a dataset not downloaded, no such
    file, a folder), or None when it can."""
    ref = resolve(spec)
    if ref.present:
        return None
    if spec in DATASETS:
        assert ref.path is not None  # a registered name always has its file's place
        return not_downloaded(spec, ref.path)
    if ref.path is None:
        return unknown_name(spec)
    if ref.path.is_dir():
        return f"{spec} is a folder, not a ratings file"
    return f"no such file: {ref.path}"


def present_names() -> list[str]:
    """The registered datasets that are downloaded, then the synthetic ones: those a run may name."""
    return [name for name in DATASETS if dataset_path(name).is_file()] + list(SYNTHETIC)


def default_data(last: str | None) -> str:
    """The dataset a new run takes when none is named: `last` (the one used last) while it can still
    be used, else the first one present (a downloaded registered dataset, else a synthetic one)."""
    if last is not None and check_available(last) is None:
        return last
    return present_names()[0]


def _file_key(real: Path, found: os.stat_result) -> str:
    for name in DATASETS:
        registered = dataset_path(name)
        try:
            if registered.resolve() == real:
                return name
            other = registered.stat()
        except (OSError, RuntimeError):  # not downloaded
            continue
        # Sizes first: a file is hashed only when a registered one of exactly its size is present.
        if other.st_size == found.st_size and _sha256(str(registered.resolve()), other.st_size,
                                                      other.st_mtime_ns) == _digest(real, found):
            return name
    return "sha256:" + _digest(real, found)[:16]


def _digest(real: Path, found: os.stat_result) -> str:
    return _sha256(str(real), found.st_size, found.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The content hash of the file at `path`; cached by its size and modification time too, so an
    edited file is read again. (The two are the key, not read here.)"""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
