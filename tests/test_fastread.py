"""engine/fastread.py, the fast path of read_ratings: on every well-formed file it gives exactly what
the general path gives, it is what reads MovieLens's layouts, and it hands anything odd to the
general path."""

from __future__ import annotations

import numpy as np
import pytest

from engine import fastread, formats
from engine.errors import DataError
from engine.formats import Ratings, read_ratings

SEPARATORS = {"::": "::", "tab": "\t", "csv": ","}


def general(path) -> Ratings:
    """What read_ratings gives without its fast path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastread, "parse", lambda *args: None)
        return read_ratings(path)


def fast(path) -> Ratings:
    """What read_ratings gives when the fast path must read it (the general one fails the test)."""
    def refuse(*args: object) -> None:
        raise AssertionError("the general path was taken")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(formats, "_parse", refuse)
        return read_ratings(path)


def assert_same(a: Ratings, b: Ratings) -> None:
    assert a.format == b.format and a.source == b.source
    for column in ("users", "items", "ratings"):
        x, y = getattr(a, column), getattr(b, column)
        assert x.dtype == y.dtype and np.array_equal(x, y), column


def random_lines(rng: np.random.Generator, n: int, sep: str, *, crlf: bool) -> str:
    """Well-formed lines: ids of 1 to 8 digits (some with leading zeros), whole and half-star ratings
    written as MovieLens writes them ("4", "4.0", "3.5"), timestamps of any length."""
    width = rng.integers(1, 9, size=(n, 2))
    ids = rng.integers(0, 10 ** width)
    stars = rng.integers(1, 11, n)
    ratings = [f"{s // 2}.{5 * (s % 2)}" if r else str(max(1, s // 2))
               for s, r in zip(stars, rng.integers(0, 2, n))]
    end = "\r\n" if crlf else "\n"
    lines = []
    for (user, item), (user_width, _), rating, stamp in zip(ids, width, ratings, rng.integers(0, 10**12, n)):
        user_text = str(user).zfill(int(user_width)) if rng.random() < 0.2 else str(user)
        lines.append(sep.join((user_text, str(item), rating, str(stamp))) + end)
    return "".join(lines)


@pytest.mark.parametrize("fmt", ["::", "tab", "csv"])
@pytest.mark.parametrize("crlf", [False, True])
def test_well_formed_files_read_the_same_both_ways(tmp_path, monkeypatch, fmt, crlf):
    # Chunks of 1 KB: many chunk boundaries, each a line end.
    monkeypatch.setattr(fastread, "CHUNK", 1024)
    rng = np.random.default_rng(len(fmt) + crlf)
    text = random_lines(rng, 500, SEPARATORS[fmt], crlf=crlf)
    header = "userId,movieId,rating,timestamp\n" if fmt == "csv" else ""
    for variant in (header + text, header + text.rstrip("\r\n"), header + text + "\n\n  \t"):
        path = tmp_path / "ratings.txt"
        path.write_bytes(b"\xef\xbb\xbf" + variant.encode() if crlf else variant.encode())
        assert_same(fast(path), general(path))


def test_a_csv_without_header_and_one_line_files(tmp_path):
    for text in ("1,2,3.5,4", "7::8::5::0\n", "12345678\t1\t4\t1"):
        path = tmp_path / "r.txt"
        path.write_text(text)
        assert_same(fast(path), general(path))


@pytest.mark.parametrize("text", [
    "1,2,3.25,4\n",  # two decimals
    "1,2,.5,4\n",  # no digit before the dot
    "1,2,3.,4\n",  # none after it
    "1,2,10,4\n",  # a two-digit rating (out of the scale, for the general path to name)
    "1,2,3,4.5\n",  # a dot outside the rating
    "123456789,2,3,4\n",  # a 9-digit id
    "-1,2,3,4\n",  # a sign
    "1,2,3,4 \n1,2,3,4\n",  # a space
    "1,2,3,4\n\n1,2,3,4\n",  # a blank line
    "1,2,3\n1,2,3,4,5\n",  # 3 separators per line on average, not on every line
    "1:2::3::4::5\n",  # `::` with a lone colon
    "1,2,3,4\r5\n",  # a CR that does not end a line
])
def test_anything_odd_is_left_to_the_general_path(tmp_path, text):
    path = tmp_path / "r.csv"
    path.write_text(text)
    data = path.read_bytes()
    sep = b"::" if b"::" in data else b","
    assert fastread.parse(data, 0, len(data.rstrip()), sep) is None


def test_a_line_longer_than_a_chunk_is_left_to_the_general_path(monkeypatch):
    monkeypatch.setattr(fastread, "CHUNK", 8)
    data = b"1,2,3,4\n1,2,3,40000000\n"
    assert fastread.parse(data, 0, len(data) - 1, b",") is None


def test_an_out_of_scale_rating_is_named_by_the_general_path(tmp_path):
    # The fast path reads "0" well; read_ratings then finds it out of the scale and lets the general
    # path raise, naming the line.
    path = tmp_path / "r.csv"
    path.write_text("1,2,3,4\n1,2,0,4\n")
    with pytest.raises(DataError, match="line 2: rating 0 is outside the scale"):
        read_ratings(path)
