"""The fast path of engine.formats.read_ratings: the ratings of a well-formed file in a few numpy passes
over its bytes, without copying them.

Well-formed means what every MovieLens release writes: ids of at most 8 digits, a rating of one digit
or `digit.digit`, a timestamp of digits, the separator between fields and a newline (or CRLF) at the
end of each line. Anything else (a sign, an exponent, a blank line, a rating out of the scale, an id
of 9 digits) makes `parse` answer None, and read_ratings takes its general path, which reads every
number numpy can and names the line that is wrong. So this module never raises for a bad file and
never has to agree with the general path on an error: only on the values of a file both can read,
which tests/test_formats.py compares.

The work is done chunk by chunk (a few MB of whole lines each, on two threads: numpy lets go of the
GIL in these loops), so that the temporaries stay small whatever the file's size:
  - the positions of the bytes that are not digits (separators, dots, line ends) give every field's
    start and end;
  - an id is read as one 8-byte little-endian word ending where the field ends: the bytes before the
    field are masked off and the digits combined in three multiplications (SWAR, as in simdjson);
  - a rating is its first digit, plus its tenth where the field has a dot.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SEPARATORS = 3  # per line, between user, item, rating and timestamp
CHUNK = 1 << 23  # bytes of whole lines per chunk: 8 MB, the size at which a chunk's arrays stay in cache
ID_DIGITS = 8  # the most digits an id may have here: one 8-byte word
_PAD = ID_DIGITS  # bytes a chunk needs before its first field, to read that field as a whole word
_ZERO = ord("0")
_NEWLINE, _CR, _DOT = ord("\n"), ord("\r"), ord(".")
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_EVERY_FOURTH = np.uint64(0x000000FF000000FF)
_MUL_HUNDREDS = np.uint64(100 + (1_000_000 << 32))
_MUL_ONES = np.uint64(1 + (10_000 << 32))

Parsed = tuple[np.ndarray, np.ndarray, np.ndarray]


def parse(data: bytes, start: int, end: int, sep: bytes) -> Parsed | None:
    """(users int64, items int64, ratings float32) of the lines data[start:end], or None when they are
    not all well-formed (see the module docstring). The ratings' scale is the caller's to check."""
    chunks = _chunks(data, start, end)
    if chunks is None:
        return None
    workers = min(2, os.cpu_count() or 1, len(chunks))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda chunk: _parse_chunk(data, chunk[0], chunk[1], sep), chunks))
    if any(part is None for part in parts):
        return None
    users, items, ratings = (np.concatenate([part[column] for part in parts if part is not None])
                             for column in range(3))
    return users, items, ratings


def _chunks(data: bytes, start: int, end: int) -> list[tuple[int, int]] | None:
    """(start, end) of runs of whole lines of about CHUNK bytes, the newline between two runs left out;
    None (so: the general path) when a line is longer than a chunk."""
    chunks = []
    while end - start > CHUNK:
        cut = data.rfind(b"\n", start, start + CHUNK)
        if cut <= start:
            return None
        chunks.append((start, cut))
        start = cut + 1
    chunks.append((start, end))
    return chunks


def _parse_chunk(data: bytes, start: int, end: int, sep: bytes) -> Parsed | None:
    # The chunk is buf[pad:], with _PAD bytes before it whose values do not matter.
    pad = _PAD
    if start >= pad:
        buf = np.frombuffer(data, dtype=np.uint8, count=end - start + pad, offset=start - pad)
    else:  # the file's first line, with nothing before it: a copy with room in front
        buf = np.zeros(end - start + pad, dtype=np.uint8)
        buf[pad:] = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    chunk = buf[pad:]
    width = len(sep)
    others = np.flatnonzero((chunk - np.uint8(_ZERO)) > 9)  # every byte that is not a digit
    kinds = chunk[others]
    is_sep, is_newline = kinds == sep[0], kinds == _NEWLINE
    is_dot, is_cr = kinds == _DOT, kinds == _CR
    if not (is_sep | is_newline | is_dot | is_cr).all():
        return None
    line_ends = np.append(others[is_newline], len(chunk))
    n = len(line_ends)
    seps = others[is_sep]
    if len(seps) != SEPARATORS * width * n:
        return None
    seps = seps.reshape(n, SEPARATORS * width)
    if width == 2 and not (seps[:, 1::2] == seps[:, 0::2] + 1).all():  # `::`, never a lone `:`
        return None
    line_starts = np.concatenate([[0], line_ends[:-1] + 1])
    # A CR must end its line (CRLF); the last field stops before it.
    has_cr = chunk[np.maximum(line_ends - 1, 0)] == _CR
    if int(is_cr.sum()) != int(has_cr.sum()):
        return None
    starts = [line_starts, *(seps[:, field * width + width - 1] + 1 for field in range(SEPARATORS))]
    ends = [*(seps[:, field * width] for field in range(SEPARATORS)), line_ends - has_cr]
    # Ordered and none empty: with 3 separators per line in all, each line then has its own 3.
    if not all((e > s).all() for s, e in zip(starts, ends)):
        return None
    # Every 8 bytes of the buffer as one little-endian word, word i starting at byte i: a view, no copy.
    words = np.ndarray(shape=(len(buf) - ID_DIGITS + 1,), dtype="<u8", buffer=buf, strides=(1,))
    users = _ids(words, starts[0], ends[0], pad)
    items = _ids(words, starts[1], ends[1], pad)
    ratings = _ratings(chunk, starts[2], ends[2], int(is_dot.sum()))
    if users is None or items is None or ratings is None:
        return None
    return users, items, ratings


def _ids(words: np.ndarray, starts: np.ndarray, ends: np.ndarray, pad: int) -> np.ndarray | None:
    """The whole numbers in chunk[starts:ends] (digits only, 1 to 8 of them) as int64, where chunk
    starts at byte `pad` of the words' buffer."""
    lengths = ends - starts
    if lengths.max() > ID_DIGITS:
        return None
    # The first digit is the lowest byte that is kept (little-endian).
    keep = np.left_shift(np.uint64(0xFFFFFFFFFFFFFFFF), (8 * (ID_DIGITS - lengths)).astype(np.uint64))
    # Each byte its digit, the bytes before the field 0.
    value = words[ends + pad - ID_DIGITS] & keep & _LOW_NIBBLES
    value = value * np.uint64(10) + (value >> np.uint64(8))  # pairs of digits: 12, 34, 56, 78
    value = ((value & _EVERY_FOURTH) * _MUL_HUNDREDS
             + ((value >> np.uint64(16)) & _EVERY_FOURTH) * _MUL_ONES) >> np.uint64(32)
    ids: np.ndarray = value.astype(np.int64)
    return ids


def _ratings(chunk: np.ndarray, starts: np.ndarray, ends: np.ndarray, n_dots: int) -> np.ndarray | None:
    """Each rating field as float32: one digit, or `digit.digit` (divided as the general path
    divides, so that both give the same float)."""
    tenths = chunk[starts + 1] == _DOT  # the byte after a one-digit rating is a separator
    # Every dot of the chunk is one of these: none is left for any other field.
    if int(tenths.sum()) != n_dots or not (ends - starts == np.where(tenths, 3, 1)).all():
        return None
    whole = (chunk[starts] - np.uint8(_ZERO)).astype(np.int64)
    tenth = np.where(tenths, chunk[starts + 2] - np.uint8(_ZERO), 0)
    ratings: np.ndarray = np.where(tenths, (whole * 10 + tenth) / 10.0, whole).astype(np.float32)
    return ratings
