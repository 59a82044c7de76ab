"""Fetching the registered MovieLens releases and loading any dataset spec (a registered name, a
synthetic name or a file path). The registry itself, where each dataset lives and what a spec names
are store/catalog.py's, imported here under their old names.

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
from pathlib import Path
from typing import BinaryIO

from engine import cache
from engine.errors import DataError
from engine.formats import read_ratings
from engine.remap import Dataset, remap
from engine.split import Split, split_dataset
from engine.synthetic import make_synthetic
from engine.titles import GENRE_FILE, ITEM_FILES
from store.catalog import (
    CHUNK,
    DATASETS,
    SYNTHETIC,
    DatasetInfo,
    data_dir,
    dataset_path,
    known_names,
    looks_like_path,
    not_downloaded,
    unknown_name,
)

# Public here as before the registry moved to store/catalog.py.
__all__ = ["DATASETS", "SYNTHETIC", "DatasetInfo", "UncheckedDownloadWarning", "data_dir", "dataset_path", "fetch",
           "known_names", "load_dataset", "load_split"]


class UncheckedDownloadWarning(UserWarning):
    """A download that could not be verified because no checksum of it is known."""


def load_dataset(spec: str, data_dir: Path | str | None = None) -> Dataset:
    """A registered name (downloaded), a synthetic name, or the path of a ratings file."""
    if spec in SYNTHETIC:
        return make_synthetic(spec)
    if spec in DATASETS:
        path = dataset_path(spec, data_dir)
        if not path.exists():
            raise DataError(not_downloaded(spec, path))
        return _load_file(path, spec)
    path = Path(spec).expanduser()
    if path.exists() or looks_like_path(spec):
        return _load_file(path, spec)
    raise DataError(unknown_name(spec))


def _load_file(path: Path, name: str) -> Dataset:
    """The ratings file at `path`, from the binary cache when it holds this version of the file
    (engine/cache.py), else parsed, remapped and cached."""
    source = str(path.absolute())
    cached = cache.load(path, name, source)
    if cached is not None:
        return cached
    found = cache.identity(path)  # before reading: a file that changes meanwhile is not cached
    dataset = remap(read_ratings(path), name, source)
    if found is not None:
        cache.store(path, found, dataset)
    return dataset


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
    """Copy the ratings file out of the archive, and the item file (titles, genres) beside it where
    the archive has one; each through a temp file so that an interrupted extraction never leaves a
    half file under the final name. The ratings file comes last: its presence means the fetch is done."""
    folder = info.member.rpartition("/")[0]
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            if info.member not in names:
                raise DataError(f"{info.name}.zip has no {info.member} in it")
            for name in (*ITEM_FILES.values(), GENRE_FILE):
                if f"{folder}/{name}" in names:
                    _copy_member(zf, f"{folder}/{name}", target.with_name(name))
            _copy_member(zf, info.member, target)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{info.name}.zip is not a valid zip archive: {exc}") from None


def _copy_member(zf: zipfile.ZipFile, member: str, target: Path) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with zf.open(member) as source, partial.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _info(name: str) -> DatasetInfo:
    info = DATASETS.get(name)
    if info is None:
        raise DataError(f"unknown dataset {name!r}: known downloadable names are {', '.join(DATASETS)}")
    return info
