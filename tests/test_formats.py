"""Reading the three MovieLens formats, and the errors a bad file gets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from engine.errors import DataError
from engine.formats import read_ratings
from engine.remap import remap, unique_inverse

ROWS = [(3, 10, 4, 978300760), (1, 7, 5, 978302109), (3, 7, 1, 978301968)]


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def check_rows(r, ratings=(4.0, 5.0, 1.0)):
    assert r.users.dtype == np.int64 and r.items.dtype == np.int64 and r.ratings.dtype == np.float32
    assert r.users.tolist() == [3, 1, 3]
    assert r.items.tolist() == [10, 7, 7]
    assert r.ratings.tolist() == list(ratings)


def test_double_colon(tmp_path):
    path = write(tmp_path, "ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS))
    r = read_ratings(path)
    assert r.format == "::" and r.source == str(path)
    check_rows(r)


def test_tab_u_data(tmp_path):
    r = read_ratings(write(tmp_path, "u.data", "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS)))
    assert r.format == "tab"
    check_rows(r)


def test_csv_with_header(tmp_path):
    text = "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r}.0,{t}\n" for u, i, r, t in ROWS)
    r = read_ratings(write(tmp_path, "ratings.csv", text))
    assert r.format == "csv"
    check_rows(r)


def test_half_stars_crlf_and_no_final_newline(tmp_path):
    text = "userId,movieId,rating,timestamp\r\n3,10,4.5,1\r\n1,7,0.5,2\r\n3,7,3,3"
    check_rows(read_ratings(write(tmp_path, "ratings.csv", text)), ratings=(4.5, 0.5, 3.0))


def test_half_stars_double_colon(tmp_path):
    r = read_ratings(write(tmp_path, "ratings.dat", "1::122::5::838985046\n1::185::4.5::838983525\n"))
    assert r.ratings.tolist() == [5.0, 4.5]


def test_other_decimals_read_as_floats(tmp_path):
    # Not MovieLens's one-decimal style, so the general float path reads them.
    r = read_ratings(write(tmp_path, "odd.csv", "1,2,3.25,4\n1,3,.5,4\n2,2,4.0,4.5\n"))
    assert r.ratings.tolist() == [3.25, 0.5, 4.0] and r.users.dtype == np.int64


def test_real_ml100k(ml100k_path):
    ds = remap(read_ratings(ml100k_path), "ml-100k")
    assert (ds.n_ratings, ds.n_users, ds.n_items) == (100_000, 943, 1682)
    assert ds.user_ids[0] == 1 and ds.item_ids[-1] == 1682


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        ("userId,movieId,rating,timestamp\n", "only a header"),
        ("1;2;3;4\n", "unrecognised format"),
        ("1::2::3::4\n1::2::3\n1::5::3::4\n", "line 2: expected 4 fields separated by '::', found 3: '1::2::3'"),
        ("1::2::3::4\n\n1::5::3::4\n", "line 2: expected 4 fields"),
        ("1::2::3::4\n1::2::3::4::5\n", "line 2: expected 4 fields"),
        ("1::2::3::4\n1::2::3::4\n7::abc::3::4\n", "line 3: non-numeric field 'abc' in '7::abc::3::4'"),
        ("1::2::3::4\n1:::2::3::4\n", "line 2: non-numeric field ':2'"),
        ("1\t2\t3\t4\n1\t2\t\t4\n", "line 2: non-numeric field ''"),
        ("1::2::3::4\n1::2::6::4\n", "line 2: rating 6 is outside the scale 0.5..5: '1::2::6::4'"),
        ("1::2::0::4\n", "line 1: rating 0 is outside the scale"),
        ("1::2::3::4\n1::2.5::3::4\n", "line 2: user and item ids must be whole numbers: '1::2.5::3::4'"),
        ("userId,movieId,rating,timestamp\n1,2,3.5,4\n1,2,x,4\n", "line 3: non-numeric field 'x' in '1,2,x,4'"),
        ("userId,movieId,rating,timestamp\n1,2,3.5,4\n1,2,-1,4\n", "line 3: rating -1 is outside the scale"),
        # Ids beyond int64: numpy would saturate them to 2**63 - 1, merging two users into one.
        ("1\t1\t5\t0\n99999999999999999999\t1\t4\t0\n",
         "line 2: user id 99999999999999999999 does not fit in 64 bits"),
        ("1::-9223372036854775809::5::0\n", "line 1: item id -9223372036854775809 does not fit in 64 bits"),
        ("userId,movieId,rating,timestamp\n1,2,3.25,4\n1,99999999999999999999,3,4\n",
         "line 3: item id 99999999999999999999 does not fit in 64 bits"),
    ],
)
def test_errors_name_file_line_and_text(tmp_path, text, expected):
    path = write(tmp_path, "bad.dat", text)
    with pytest.raises(DataError) as err:
        read_ratings(path)
    message = str(err.value)
    assert str(path) in message and expected in message
    assert "\n" not in message


def test_ids_at_the_edges_of_int64_are_kept_exactly(tmp_path):
    top = 2**63 - 1
    r = read_ratings(write(tmp_path, "u.data", f"{top}\t1\t5\t0\n1\t{-top - 1}\t4\t0\n"))
    assert r.users.tolist() == [top, 1] and r.items.tolist() == [1, -top - 1]
    # Read as floats (a 3.25 rating), ids above 2**53 would round into one another.
    r = read_ratings(write(tmp_path, "u.data", f"{2**53 + 1}\t1\t3.25\t0\n{2**53}\t1\t3\t0\n"))
    assert r.users.tolist() == [2**53 + 1, 2**53]


def test_a_utf8_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"userId,movieId,rating,timestamp\n3,10,4,1\n1,7,5,2\n3,7,1,3\n")
    check_rows(read_ratings(path))


def test_a_fifo_or_device_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "ratings.fifo"
    os.mkfifo(fifo)  # opening it would block this test until a writer came
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(DataError, match="not a regular file"):
            read_ratings(path)
    with pytest.raises(DataError, match="is a directory"):
        read_ratings(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_ratings(tmp_path / "nope.dat")


def test_remap_round_trip_and_np_unique_order(tmp_path):
    path = write(tmp_path, "ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS))
    ds = remap(read_ratings(path), "tiny")
    assert ds.user_ids.tolist() == [1, 3] and ds.item_ids.tolist() == [7, 10]
    assert ds.users.tolist() == [1, 0, 1] and ds.items.tolist() == [1, 0, 0]
    assert ds.user_ids[ds.users].tolist() == [3, 1, 3]  # index -> raw
    assert ds.user_index(3) == 1 and ds.item_index([10, 7]).tolist() == [1, 0]  # raw -> index
    with pytest.raises(DataError, match="user id 2 is not in the data"):
        ds.user_index(2)


@pytest.mark.parametrize("raw", [[5, 3, 5, 0, 9], [10**12, 7, 10**12], [-4, 2, 2]])
def test_unique_inverse_matches_np_unique(raw):
    ids, inverse = unique_inverse(np.array(raw))
    expected_ids, expected_inverse = np.unique(raw, return_inverse=True)
    assert ids.tolist() == expected_ids.tolist() and inverse.tolist() == expected_inverse.tolist()
