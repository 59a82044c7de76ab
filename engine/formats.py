"""Reading MovieLens rating files: `::` (ML-1M, ML-10M), tab-separated `u.data` (ML-100K) and CSV
with a `userId,movieId,rating,timestamp` header (ML-20M and later), told apart by their content.

A file as MovieLens writes it (digits, one-decimal ratings, nothing odd) is read by
engine/fastread.py in a few numpy passes over its bytes, without copying them (25M ratings in a few
seconds). Anything else goes the general way, which reads whatever numpy can, and which alone
raises: the separators are normalised to one byte and numpy parses the whole buffer at once;
finding *which* line is wrong is done line by line, but only once we already know something is (see
`_diagnose`).
"""

from __future__ import annotations

import codecs
import stat
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

import numpy as np

from engine import fastread
from engine.errors import DataError

# The rating scale shared by every MovieLens release (ML-100K and ML-1M use whole stars only).
MIN_RATING = 0.5
MAX_RATING = 5.0

CSV_HEADER = b"userId,movieId,rating,timestamp"
FIELDS = 4  # user, item, rating, timestamp
# What a field may hold. Anything else (letters, spaces, a stray separator character) sends us
# to the slow per-line diagnosis.
_NUMBER_BYTES = b"0123456789.-"
_TRAILING = b"\r\n\t "  # what may follow the last line


@dataclass(frozen=True)
class Ratings:
    """The rating rows of one file, in file order, with the raw ids the file uses."""

    users: np.ndarray  # int64 raw user ids
    items: np.ndarray  # int64 raw item ids
    ratings: np.ndarray  # float32
    source: str  # the file they were read from
    format: str  # "::", "tab" or "csv"

    def __len__(self) -> int:
        return len(self.ratings)


def read_ratings(path: str | Path) -> Ratings:
    """Read a MovieLens ratings file; raise DataError (one line) for anything unusable."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        # Looked at before opening: opening a FIFO blocks until a writer comes, a device may never end.
        if stat.S_ISDIR(mode):
            raise DataError(f"{path}: is a directory, not a ratings file")
        if not stat.S_ISREG(mode):
            raise DataError(f"{path}: not a regular file (a FIFO, a device or a socket?)")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None

    # A UTF-8 byte-order mark (Excel writes one) is not part of the first line. Trailing blank lines
    # are common (an editor's final newline); blank lines inside are not. Both are stepped over by
    # offsets: a copy of a 700 MB file costs a second and its size in memory.
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    end = len(data)
    while end > start and data[end - 1] in _TRAILING:
        end -= 1
    if start == end:
        raise DataError(f"{path}: empty file, no ratings in it")

    newline = data.find(b"\n", start, end)
    fmt, sep, first_line = _detect(path, data[start:newline if newline >= 0 else end])
    body = start
    if first_line > 1:  # skip the CSV header; line numbers in messages still count it
        body = newline + 1 if newline >= 0 else end
        if body == end:
            raise DataError(f"{path}: only a header, no ratings in it")
    parsed = fastread.parse(data, body, end, sep)
    if parsed is not None and _in_scale(parsed[2]).all():
        users, items, ratings = parsed
    else:  # not the usual layout, or an error to name: the general path reads copies of the text
        content = data[start:end]
        users, items, ratings = _parse(path, data[body:end], sep, first_line)
        _check_scale(path, content, ratings, first_line)
    return Ratings(users=users, items=items, ratings=ratings, source=str(path), format=fmt)


def _detect(path: Path, first: bytes) -> tuple[str, bytes, int]:
    """The format name, its separator and the 1-based number of the first data line, from the first line."""
    head = first.rstrip(b"\r")
    if b"::" in head:
        return "::", b"::", 1
    if b"\t" in head:
        return "tab", b"\t", 1
    if head.strip() == CSV_HEADER:
        return "csv", b",", 2
    if b"," in head:  # a CSV without its header reads just as well
        return "csv", b",", 1
    raise DataError(
        f"{path}: unrecognised format: expected `user::item::rating::timestamp`, tab-separated "
        f"u.data or CSV with header `{CSV_HEADER.decode()}`; line 1 is {_show(head)}"
    )


def _parse(path: Path, body: bytes, sep: bytes, first_line: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, ratings) of the data lines, or a DataError naming the first bad line."""
    n_lines = body.count(b"\n") + 1
    width = len(sep)
    ok = not body.translate(None, _NUMBER_BYTES + sep[:1] + b"\r\n")  # nothing else in the file
    if ok:
        # numpy reads whitespace-separated numbers, so the separator's byte becomes a tab (`::`
        # becomes two, which read as one); a byte-for-byte translation costs far less than replace.
        text = body.translate(bytes.maketrans(sep[:1], b"\t")) if sep != b"\t" else body
        buf = np.frombuffer(text, dtype=np.uint8)
        # Each line must hold exactly three separators: count them per line with one
        # searchsorted of the line ends into the separator positions.
        tabs = np.flatnonzero(buf == ord("\t"))
        ends = np.append(np.flatnonzero(buf == ord("\n")), len(buf))
        per_line = np.diff(np.searchsorted(tabs, ends), prepend=0)
        ok = bool((per_line == (FIELDS - 1) * width).all())
        if ok and width == 2:  # and every ':' must be half of a `::`
            ok = bool((tabs[0::2] + 1 == tabs[1::2]).all())
    if ok:
        # Whole numbers parse several times faster than floats. MovieLens writes half stars with
        # one decimal ("3.5", "4.0", or "5" beside "4.5" in ML-10M): when every dot is of that
        # kind, drop the dots, read integers and divide those ratings by ten. Anything else
        # (say "3.25") is read as floats.
        tenths = _one_decimal_ratings(buf, tabs, ends, width) if b"." in body else np.zeros(n_lines, bool)
        dtype: type[np.int64 | np.float64]
        if tenths is not None:
            text, dtype = text.translate(None, b"."), np.int64
        else:
            dtype = np.float64
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns, rather than fails, when it stops early
            values: np.ndarray
            try:
                values = np.fromstring(text, dtype=dtype, sep=" ")
            except (ValueError, DeprecationWarning):
                values = np.empty(0)
        # With three separators per line and at most one number per field, n_lines * 4
        # numbers means every field holds one.
        ok = values.size == n_lines * FIELDS
    if not ok:
        _diagnose(path, body, sep, first_line)
    table = values.reshape(n_lines, FIELDS)
    if tenths is None:
        ids = table[:, :2]
        bad = (ids != np.round(ids)).any(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{path} line {first_line + row}: user and item ids must be whole numbers: "
                f"{_show(_line(body, row))}"
            )
        ratings = table[:, 2].astype(np.float32)
    else:
        ratings = (table[:, 2] / np.where(tenths, 10.0, 1.0)).astype(np.float32)
    ids = _exact_ids(path, body, sep, first_line, table[:, :2])
    return np.ascontiguousarray(ids[:, 0]), np.ascontiguousarray(ids[:, 1]), ratings


def _exact_ids(path: Path, body: bytes, sep: bytes, first_line: int, ids: np.ndarray) -> np.ndarray:
    """The (user, item) ids as int64, exactly as the file writes them, or a DataError naming an id
    that does not fit in 64 bits. numpy's parse is only doubtful at the edges: as integers it
    saturates at the int64 limits, as floats it rounds above 2**53 (two ids would merge into one
    user), so only rows with such values are read again, as text."""
    if ids.dtype == np.int64:
        doubtful = (ids == np.iinfo(np.int64).max) | (ids == np.iinfo(np.int64).min)
    else:
        doubtful = np.abs(ids) >= 2.0**53
    with np.errstate(invalid="ignore"):  # floats beyond int64 cast to garbage; their rows are redone
        exact = ids.astype(np.int64)
    rows = np.flatnonzero(doubtful.any(axis=1))
    lines = body.split(b"\n") if rows.size else []
    for row in rows:
        line = lines[row].rstrip(b"\r")
        for column, (kind, field) in enumerate(zip(("user", "item"), line.split(sep))):
            value = int(Decimal(field.decode("ascii")))  # whole numbers: checked above
            if not -(2**63) <= value < 2**63:
                raise DataError(f"{path} line {first_line + row}: {kind} id {field.decode('ascii')} "
                                f"does not fit in 64 bits: {_show(line)}")
            exact[row, column] = value
    return exact


def _one_decimal_ratings(buf: np.ndarray, tabs: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray | None:
    """Which lines write their rating with one decimal ("3.5"), when every dot in the data is
    such a one (a digit, the dot, one digit, the rating's separator); None otherwise."""
    dots = np.flatnonzero(buf == ord("."))
    line = np.searchsorted(ends, dots)
    # Separators before the dot within its line: two of them before the rating field.
    field_start = np.searchsorted(tabs, dots) - line * (FIELDS - 1) * width
    simple = (
        (np.diff(line) > 0).all()  # at most one dot per line
        and (field_start == 2 * width).all()
        and dots[-1] + 2 < len(buf)
        and _digits(buf[dots - 1])
        and _digits(buf[dots + 1])
        and (buf[dots + 2] == ord("\t")).all()
    )
    if not simple:
        return None
    tenths = np.zeros(len(ends), dtype=bool)
    tenths[line] = True
    return tenths


def _digits(chars: np.ndarray) -> bool:
    return bool(((chars >= ord("0")) & (chars <= ord("9"))).all())


def _diagnose(path: Path, body: bytes, sep: bytes, first_line: int) -> NoReturn:
    """The slow path: walk the lines to name the first one that does not parse, and raise."""
    for offset, raw in enumerate(body.split(b"\n")):
        line = raw.rstrip(b"\r")
        where = f"{path} line {first_line + offset}"
        fields = line.split(sep)
        if len(fields) != FIELDS:
            raise DataError(
                f"{where}: expected {FIELDS} fields separated by {sep.decode()!r}, "
                f"found {len(fields)}: {_show(line)}"
            )
        for field in fields:
            if field.translate(None, _NUMBER_BYTES) or not _is_number(field):
                raise DataError(f"{where}: non-numeric field {_show(field)} in {_show(line)}")
    # Every line looks fine on its own (cannot happen with the checks above; kept as a guard).
    raise DataError(f"{path}: could not parse the ratings")


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _in_scale(ratings: np.ndarray) -> np.ndarray:
    return (ratings >= MIN_RATING) & (ratings <= MAX_RATING)  # NaN is in no scale


def _check_scale(path: Path, data: bytes, ratings: np.ndarray, first_line: int) -> None:
    bad = ~_in_scale(ratings)
    if bad.any():
        row = int(np.argmax(bad))
        line = first_line + row
        raise DataError(
            f"{path} line {line}: rating {ratings[row]:g} is outside the scale "
            f"{MIN_RATING:g}..{MAX_RATING:g}: {_show(_line(data, line - 1))}"
        )


def _line(data: bytes, index: int) -> bytes:
    """The 0-based index-th line of data (error path only)."""
    return data.split(b"\n")[index].rstrip(b"\r")


def _show(text: bytes) -> str:
    """A line for an error message: quoted, decodable whatever its bytes, never overlong."""
    shown = text.decode("latin-1")
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return repr(shown)
