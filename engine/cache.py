"""A binary cache of parsed ratings files, so that a big file is parsed once: ML-25M's CSV takes seconds
to read and remap, its cached arrays a fraction of a second.

One cache file per ratings file, in $XDG_CACHE_HOME/dmf-tui/datasets/ (~/.cache when unset; folders
0700), named by a hash of the ratings file's real path, holding the remapped arrays (users, items,
ratings, user_ids, item_ids) and the identity of the file they were read from: its real path, device,
inode, size, modification and change times (nanoseconds). A cache file is used only when that
identity is the file's now, so an edited, touched, replaced or moved-over file is parsed again and
its cache rewritten. The identity is the file's metadata rather than a hash of its content because
hashing 700 MB takes longer (about a second) than reading the cache; the change time is in it
because no one can set it back (`touch -r` restores a modification time, not a change time).

Never an error, never wrong data: a cache file is written whole to a temp file and renamed into
place (a killed process leaves at worst a stray temp file, never a half cache under the real name);
on reading, each array's CRC-32, dtype and length are checked, and a cache that fails any check, or
cannot be read or written at all, is simply not used.

Files under MIN_BYTES are not cached: ML-1M's 24 MB parse in a fraction of a second, and the many
small files tests and users load would only fill the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from engine.remap import Dataset

VERSION = 1  # of the layout and of the parse behind it: a cache of another version is not used
MIN_BYTES = 32 << 20
_ARRAYS = {"users": np.int64, "items": np.int64, "ratings": np.float32, "user_ids": np.int64, "item_ids": np.int64}


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "dmf-tui" / "datasets"


def identity(path: Path) -> dict[str, Any] | None:
    """What a cache of `path` must match: None when the file is not one to cache (too small, or gone)."""
    try:
        real = path.resolve()
        found = real.stat()
    except (OSError, RuntimeError):
        return None
    if found.st_size < MIN_BYTES:
        return None
    return {"version": VERSION, "path": str(real), "device": found.st_dev, "inode": found.st_ino,
            "size": found.st_size, "mtime_ns": found.st_mtime_ns, "ctime_ns": found.st_ctime_ns}


def load(path: Path, name: str, source: str | None) -> Dataset | None:
    """The cached Dataset of `path` as it is now, or None (not cached, stale, damaged, unreadable)."""
    wanted = identity(path)
    if wanted is None:
        return None
    try:
        with _file(wanted).open("rb") as file:
            header = json.loads(str(np.load(file, allow_pickle=False)))
            if header["identity"] != wanted:
                return None
            arrays = {key: np.load(file, allow_pickle=False) for key in _ARRAYS}
        for key, dtype in _ARRAYS.items():
            array = arrays[key]
            if array.dtype != dtype or array.ndim != 1 or zlib.crc32(array.data) != header["crc32"][key]:
                return None
    # Whatever a missing, truncated, overwritten or foreign file makes numpy or json raise (a
    # damaged .npy header can raise nearly anything): it is no cache of this file.
    except Exception:
        return None
    if not len(arrays["users"]) == len(arrays["items"]) == len(arrays["ratings"]):
        return None
    return Dataset(name=name, source=source, **arrays)


def store(path: Path, found: dict[str, Any], dataset: Dataset) -> None:
    """Cache `dataset`, read from `path` while `found` (its identity()) held; nothing on failure."""
    if identity(path) != found:  # the file changed while it was read: which version is this?
        return
    arrays = {key: np.ascontiguousarray(getattr(dataset, key)) for key in _ARRAYS}
    header = {"identity": found, "crc32": {key: zlib.crc32(array.data) for key, array in arrays.items()}}
    folder = cache_dir()
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=".", suffix=".part", dir=folder)  # private: 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as file:
            np.save(file, np.array(json.dumps(header)), allow_pickle=False)
            for array in arrays.values():
                np.save(file, array, allow_pickle=False)
        os.replace(partial, _file(found))
    except OSError:
        Path(partial).unlink(missing_ok=True)


def clear() -> tuple[int, int]:
    """Remove every cache file (and stray temp file); (how many, bytes freed)."""
    count = size = 0
    for file in cache_dir().glob("*"):
        if file.is_file() and file.suffix in (".ratings", ".part"):
            size += file.stat().st_size
            file.unlink(missing_ok=True)
            count += 1
    return count, size


def _file(found: dict[str, Any]) -> Path:
    """The cache file of a ratings file: one per real path, so a changed file's cache replaces its old one."""
    return cache_dir() / (hashlib.sha256(found["path"].encode()).hexdigest()[:32] + ".ratings")
