"""Named datasets: where each MovieLens release comes from, where it lives on disk, how to fetch it
and how to load any dataset spec (a registered name, a synthetic name or a file path).

No torch here: the `dmf-tui data` commands import this module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.errors import DataError
from engine.formats import read_ratings
from engine.remap import Dataset, remap
from engine.split import Split, split_dataset
from engine.synthetic import SHAPES, make_synthetic

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
SYNTHETIC = tuple(SHAPES)


class UncheckedDownloadWarning(UserWarning):
    """A download that could not be verified because no checksum of it is known."""


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
    return _root(data_dir) / name / _info(name).filename


def load_dataset(spec: str, data_dir: Path | str | None = None) -> Dataset:
    """A registered name (downloaded), a synthetic name, or the path of a ratings file."""
    if spec in SYNTHETIC:
        return make_synthetic(spec)
    if spec in DATASETS:
        path = dataset_path(spec, data_dir)
        if not path.exists():
            raise DataError(
                f"dataset {spec} is not in {path.parent.parent} yet: run `dmf-tui data fetch {spec}`, "
                "or use --data synthetic-1m to train offline"
            )
        return remap(read_ratings(path), spec)
    path = Path(spec).expanduser()
    if path.exists() or os.sep in spec or "." in spec:
        return remap(read_ratings(path), spec)
    raise DataError(f"unknown dataset {spec!r} (and no such file): known names are {', '.join(known_names())}")


def load_split(
    spec: str,
    *,
    test_size: float = 0.2,
    split_seed: int = 42,
    val_size: float = 0.0,
    data_dir: Path | str | None = None,
) -> Split:
    return split_dataset(load_dataset(spec, data_dir), test_size=test_size, split_seed=split_seed, val_size=val_size)


def fetch(
    name: str,
    *,
    data_dir: Path | str | None = None,
    url: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    force: bool = False,
) -> Path:
    """Download a registered dataset, verify every known checksum, and only then extract its
    ratings file to data_dir/<name>/<file>. Returns that path; a present file is kept unless
    `force`. `progress(done_bytes, total_bytes or None)` is called as the download goes."""
    info = _info(name)
    target = dataset_path(name, data_dir)
    if target.exists() and not force:
        return target
    url = url or info.url
    made_dir = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    # The archive goes to a hidden temp file beside the target, removed whatever happens.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}-", suffix=".zip.part", dir=target.parent)
    archive = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digests = _download(url, out, progress)
        _verify(info, url, digests)
        _extract(archive, info, target)
    except BaseException:
        archive.unlink(missing_ok=True)
        if made_dir:
            target.parent.rmdir()  # empty again: the failed fetch leaves nothing behind
        raise
    archive.unlink()
    return target


def _download(url: str, out: BinaryIO, progress: Callable[[int, int | None], None] | None) -> dict[str, str]:
    """Stream url into out, hashing as it goes; the md5 and sha256 of what arrived."""
    hashes = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            if progress:
                progress(done, total)
            while chunk := response.read(CHUNK):
                out.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DataError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"could not download {url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        raise DataError(f"could not download {url}: {exc}") from None
    return {algo: h.hexdigest() for algo, h in hashes.items()}


def _verify(info: DatasetInfo, url: str, digests: dict[str, str]) -> None:
    if not info.checksums:
        warnings.warn(
            f"no checksum is known for {info.name}.zip, so the download from {url} was not verified "
            f"(its sha256 is {digests['sha256']})",
            UncheckedDownloadWarning,
            stacklevel=3,
        )
    for algo, expected in info.checksums.items():
        if digests[algo] != expected.lower():
            raise DataError(
                f"checksum mismatch for {info.name}.zip from {url}: expected {algo} {expected}, "
                f"got {digests[algo]}; the download was deleted"
            )


def _extract(archive: Path, info: DatasetInfo, target: Path) -> None:
    """Copy just the ratings file out of the archive, through a temp file so that an
    interrupted extraction never leaves a half file under the final name."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(archive) as zf:
            try:
                member = zf.open(info.member)
            except KeyError:
                raise DataError(f"{info.name}.zip has no {info.member} in it") from None
            with member, partial.open("wb") as out:
                shutil.copyfileobj(member, out, CHUNK)
        os.replace(partial, target)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{info.name}.zip is not a valid zip archive: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)


def _info(name: str) -> DatasetInfo:
    info = DATASETS.get(name)
    if info is None:
        raise DataError(f"unknown dataset {name!r}: known downloadable names are {', '.join(DATASETS)}")
    return info


def _root(where: Path | str | None) -> Path:
    return Path(where).expanduser() if where is not None else data_dir()
