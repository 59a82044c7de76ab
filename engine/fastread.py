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
  - the positions of the separators and newlines, which must come in the same pattern on every
    line, give every field's start and end; every other byte must be a digit, a rating's dot or the
    CR of a CRLF, which counting them and looking where they are checks;
  - an id is read as one 8-byte little-endian word ending where the field ends: the bytes before the
    field are masked off and the digits combined in three multiplications (SWAR, as in simdjson);
  - a rating is its digit and, where the field has a dot, its tenth, looked up in a table of floats.
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
# By an id's length: the bytes of its 8-byte word that are its digits, and of those the low nibble
# (the digit's value). The first digit is the lowest byte kept (little-endian).
_DIGITS_OF = np.array([0] + [(0xFFFFFFFFFFFFFFFF << 8 * (ID_DIGITS - n)) & 0x0F0F0F0F0F0F0F0F & 0xFFFFFFFFFFFFFFFF
                             for n in range(1, ID_DIGITS + 1)], dtype=np.uint64)
_EVERY_FOURTH = np.uint64(0x000000FF000000FF)
_MUL_HUNDREDS = np.uint64(100 + (1_000_000 << 32))
_MUL_ONES = np.uint64(1 + (10_000 << 32))

# A rating field by 10 * its digit + its tenth: the float32 the general path makes of it, which
# divides the field's digits, read as one whole number, by ten ("4" and "4.0" both give 4.0).
_RATING_OF = (np.arange(100) / 10.0).astype(np.float32)

Parsed = tuple[np.ndarray, np.ndarray, np.ndarray]


def parse(data: bytes, start: int, end: int, sep: bytes) -> Parsed | None:
    """(users int64, items int64, ratings float32) of the lines data[start:end], or None when they are
    not all well-formed (see the module docstring). The ratings' scale is the caller's to check."""
    chunks = _chunks(data, start, end)
    if chunks is None:
        return None
    workers = min(2, os.cpu_count() or 1, len(chunks))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # Each chunk's rows go straight to their place in the result: its line count first, then its
        # parse. (Parts joined at the end would hold every row twice, and leave the allocator's heap
        # holding 500 MB of them on 25M ratings when freed.)
        lines = list(pool.map(lambda chunk: _count_lines(data, *chunk), chunks))
        rows = np.concatenate([[0], np.cumsum(lines)])
        parsed = (np.empty(rows[-1], dtype=np.int64), np.empty(rows[-1], dtype=np.int64),
                  np.empty(rows[-1], dtype=np.float32))

        def parse_into_place(i: int) -> bool:
            return _parse_chunk(data, *chunks[i], sep, [out[rows[i]:rows[i + 1]] for out in parsed])

        if not all(pool.map(parse_into_place, range(len(chunks)))):
            return None
    return parsed


def _count_lines(data: bytes, start: int, end: int) -> int:
    # numpy rather than bytes.count: three times as fast on a chunk, and the other thread runs meanwhile.
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start) == _NEWLINE)) + 1


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


def _parse_chunk(data: bytes, start: int, end: int, sep: bytes, out: list[np.ndarray]) -> bool:
    """Parse the lines data[start:end] into `out` (users, items, ratings; as long as there are lines);
    False, with `out` in any state, when they are not well-formed."""
    # The chunk is buf[pad:], with _PAD bytes before it whose values do not matter.
    pad = _PAD
    if start >= pad:
        buf = np.frombuffer(data, dtype=np.uint8, count=end - start + pad, offset=start - pad)
    else:  # the file's first line, with nothing before it: a copy with room in front
        buf = np.zeros(end - start + pad, dtype=np.uint8)
        buf[pad:] = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    chunk = buf[pad:]
    width = len(sep)
    per_line = SEPARATORS * width + 1  # separator bytes and the newline
    # The separators and newlines, and a newline after the last line, as one row per line.
    delimiters = np.append(np.flatnonzero((chunk == sep[0]) | (chunk == _NEWLINE)), len(chunk))
    n = len(delimiters) // per_line
    if n * per_line != len(delimiters) or n != len(out[0]):
        return False
    table = delimiters.reshape(n, per_line)
    if not ((chunk[table[:, :-1]] == sep[0]).all() and (chunk[table[:-1, -1]] == _NEWLINE).all()):
        return False
    if width == 2 and not (table[:, 1:-1:2] == table[:, 0:-1:2] + 1).all():  # `::`, never a lone `:`
        return False
    # Every other byte is a digit, a dot or a CR; where the dots and CRs are is checked below.
    n_dots, n_crs = int(np.count_nonzero(chunk == _DOT)), int(np.count_nonzero(chunk == _CR))
    if np.count_nonzero((chunk - np.uint8(_ZERO)) < 10) + n_dots + n_crs + len(delimiters) - 1 != len(chunk):
        return False
    line_ends = table[:, -1]
    line_starts = np.concatenate([[0], line_ends[:-1] + 1])
    has_cr = chunk[np.maximum(line_ends - 1, 0)] == _CR  # a CR must end its line (CRLF)
    if np.count_nonzero(has_cr) != n_crs:
        return False
    starts = [line_starts, *(table[:, field * width + width - 1] + 1 for field in range(SEPARATORS))]
    ends = [*(table[:, field * width] for field in range(SEPARATORS)), line_ends - has_cr]
    if not all((e > s).all() for s, e in zip(starts, ends)):  # no field empty
        return False
    # Every 8 bytes of the buffer as one little-endian word, word i starting at byte i: a view, no copy.
    words = np.ndarray(shape=(len(buf) - ID_DIGITS + 1,), dtype="<u8", buffer=buf, strides=(1,))
    users = _ids(words, starts[0], ends[0], pad)
    items = _ids(words, starts[1], ends[1], pad)
    ratings = _ratings(chunk, starts[2], ends[2], n_dots)
    if users is None or items is None or ratings is None:
        return False
    for column, values in zip(out, (users, items, ratings)):
        column[:] = values
    return True


def _ids(words: np.ndarray, starts: np.ndarray, ends: np.ndarray, pad: int) -> np.ndarray | None:
    """The whole numbers in chunk[starts:ends] (digits, 1 to 8 of them) as int64, where chunk starts at
    byte `pad` of the words' buffer."""
    lengths = ends - starts
    if lengths.max() > ID_DIGITS:
        return None
    # Each byte its digit, the bytes before the field 0.
    value = words[ends + pad - ID_DIGITS] & _DIGITS_OF[lengths]
    value = value * np.uint64(10) + (value >> np.uint64(8))  # pairs of digits: 12, 34, 56, 78
    value = ((value & _EVERY_FOURTH) * _MUL_HUNDREDS
             + ((value >> np.uint64(16)) & _EVERY_FOURTH) * _MUL_ONES) >> np.uint64(32)
    ids: np.ndarray = value.astype(np.int64)
    return ids


def _ratings(chunk: np.ndarray, starts: np.ndarray, ends: np.ndarray, n_dots: int) -> np.ndarray | None:
    """Each rating field as float32: one digit, or `digit.digit`."""
    tenths = chunk[starts + 1] == _DOT  # the byte after a one-digit rating is a separator
    # Every dot of the chunk is one of these: none is left for any other field.
    if np.count_nonzero(tenths) != n_dots or not (ends - starts == np.where(tenths, 3, 1)).all():
        return None
    digit = chunk[starts] - np.uint8(_ZERO)
    tenth = np.where(tenths, chunk[starts + 2] - np.uint8(_ZERO), 0)
    ratings: np.ndarray = _RATING_OF[digit * 10 + tenth]
    return ratings
