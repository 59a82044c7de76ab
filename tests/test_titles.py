"""Item titles from a dataset's own item file (engine/titles.py): the three MovieLens formats and bad files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Collection
from pathlib import Path

import pytest

from engine.titles import STANDARD_GENRES, ItemInfo, Titles, item_file, read_titles


def u_item_line(item_id: object, title: str, genres: Collection[int] = (), n_genres: int = 19) -> str:
    flags = "|".join("1" if i in genres else "0" for i in range(n_genres))
    return f"{item_id}|{title}|01-Jan-1995||http://us.imdb.com/x|{flags}"


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


# ---- ML-100K: u.item (+ u.genre)


def test_real_ml100k_items(ml100k_path: Path) -> None:
    if not (ml100k_path.parent / "u.item").exists():
        pytest.skip(f"real ML-100K's u.item not found beside {ml100k_path}")
    titles = read_titles(ml100k_path)
    assert titles.items[1] == ItemInfo("Toy Story (1995)", ("Animation", "Children's", "Comedy"))
    assert len(titles.items) == 1682
    assert titles.problem is None
    assert titles.source == ml100k_path.parent / "u.item"
    assert titles.label(267) == "unknown"  # ML-100K's own title for it: kept, not replaced by "item 267"


def test_u_item_latin1_genres_from_u_genre_and_literal_titles(tmp_path: Path) -> None:
    write(tmp_path, "u.genre", "Crime|0\nWestern|1\nNoir|2\n\n")  # ML-100K's u.genre ends with a blank line
    lines = [
        u_item_line(1, "Am\xe9lie (2001)", {0, 2}, n_genres=3),
        u_item_line(2, "[bold]Caf\x85 Society[/bold]", {1}, n_genres=3),  # \x85 is NEL in Latin-1: not a newline
        u_item_line(3, "No Genres", n_genres=3),
    ]
    write(tmp_path, "u.item", ("\r\n".join(lines) + "\r\n").encode("latin-1"))
    titles = read_titles(tmp_path / "u.data")
    assert titles.items == {
        1: ItemInfo("Amélie (2001)", ("Crime", "Noir")),
        2: ItemInfo("[bold]Caf\x85 Society[/bold]", ("Western",)),
        3: ItemInfo("No Genres", ()),
    }
    assert titles.problem is None


def test_u_item_without_u_genre_uses_the_standard_names(tmp_path: Path) -> None:
    write(tmp_path, "u.item", u_item_line(7, "Heat (1995)", {1, 6, 16}) + "\n")
    titles = read_titles(tmp_path / "u.data")
    assert titles.items == {7: ItemInfo("Heat (1995)", ("Action", "Crime", "Thriller"))}
    assert STANDARD_GENRES[4] == "Children's" and len(STANDARD_GENRES) == 19
    assert titles.problem is None


def test_a_bad_u_genre_is_not_used_and_says_so(tmp_path: Path) -> None:
    write(tmp_path, "u.genre", "Crime|0\nWestern|zero\n")
    write(tmp_path, "u.item", u_item_line(7, "Heat (1995)", {1}) + "\n")
    titles = read_titles(tmp_path / "u.data")
    assert titles.items == {7: ItemInfo("Heat (1995)", ("Action",))}
    assert titles.problem == "u.genre line 2: expected name|index with a new index; standard genre names used"


def test_u_genre_with_a_gap_in_its_indices_is_not_used(tmp_path: Path) -> None:
    write(tmp_path, "u.genre", "Crime|0\nWestern|2\n")
    write(tmp_path, "u.item", u_item_line(7, "Heat (1995)", {0}) + "\n")
    titles = read_titles(tmp_path / "u.data")
    assert titles.items[7].genres == ("unknown",)
    assert titles.problem == "u.genre: indices are not 0 to 1; standard genre names used"


def test_a_pipe_in_a_u_item_title_stays_in_the_title(tmp_path: Path) -> None:
    write(tmp_path, "u.item", u_item_line(3, "This | That (1990)", {8}) + "\n")
    assert read_titles(tmp_path / "u.data").items[3] == ItemInfo("This | That (1990)", ("Drama",))


def test_malformed_u_item_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    lines = [
        u_item_line(1, "Good One"),
        "2|Short|line",
        u_item_line("x3", "Bad Id"),
        u_item_line(4, "Bad Flags").replace("|0|0|0", "|0|2|0", 1),
        "",  # a blank line names no item: passed, not counted
        u_item_line(5, "Good Two"),
    ]
    write(tmp_path, "u.item", "\n".join(lines) + "\n")
    titles = read_titles(tmp_path / "u.data")
    assert set(titles.items) == {1, 5}
    assert titles.problem == (
        "u.item line 2: expected 24 '|'-separated fields, got 3 (3 lines skipped; their items show by id)"
    )
    assert titles.label(2) == "item 2"


# ---- ML-1M / ML-10M: movies.dat


def test_movies_dat_utf8(tmp_path: Path) -> None:
    text = (
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        '2::Léon: The Professional, "Le" (1994)|x::Crime\n'  # a `|`, a comma and quotes stay in the title
        "3::Odd::Title (2000)::Drama\n"  # split on the first and last `::` only
        "4::Nothing (2015)::(no genres listed)\n"
    )
    write(tmp_path, "movies.dat", text.encode("utf-8"))
    titles = read_titles(tmp_path / "ratings.dat")
    assert titles.items == {
        1: ItemInfo("Toy Story (1995)", ("Animation", "Children's", "Comedy")),
        2: ItemInfo('Léon: The Professional, "Le" (1994)|x', ("Crime",)),
        3: ItemInfo("Odd::Title (2000)", ("Drama",)),
        4: ItemInfo("Nothing (2015)", ()),
    }
    assert titles.problem is None


def test_movies_dat_latin1_falls_back_from_utf8(tmp_path: Path) -> None:
    write(tmp_path, "movies.dat", b"1::Am\xe9lie (2001)::Comedy|Romance\n")
    assert read_titles(tmp_path / "ratings.dat").items == {1: ItemInfo("Amélie (2001)", ("Comedy", "Romance"))}


def test_malformed_movies_dat_lines(tmp_path: Path) -> None:
    write(tmp_path, "movies.dat", "1::A::Drama\n1::Duplicate::Drama\nx::B::Drama\n3::only two\n4::D::War\n")
    titles = read_titles(tmp_path / "ratings.dat")
    assert titles.items == {1: ItemInfo("A", ("Drama",)), 4: ItemInfo("D", ("War",))}  # a duplicate keeps the first
    assert titles.problem == (
        "movies.dat line 3: item id 'x' is not a whole number (2 lines skipped; their items show by id)"
    )


# ---- ML-20M and later: movies.csv


def test_movies_csv_quoted_titles(tmp_path: Path) -> None:
    text = (
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        '12,"""Great Performances"" Cats (1998)",Musical\n'
        "13,Zoé (2020),(no genres listed)\n"
        "14,Unquoted, Comma (1999),Drama\n"  # the title is everything between the id and the genres
    )
    write(tmp_path, "movies.csv", text)
    titles = read_titles(tmp_path / "ratings.csv")
    assert titles.items == {
        1: ItemInfo("Toy Story (1995)", ("Adventure", "Animation")),
        11: ItemInfo("American President, The (1995)", ("Comedy", "Drama", "Romance")),
        12: ItemInfo('"Great Performances" Cats (1998)', ("Musical",)),
        13: ItemInfo("Zoé (2020)", ()),
        14: ItemInfo("Unquoted, Comma (1999)", ("Drama",)),
    }
    assert titles.problem is None


def test_malformed_movies_csv_lines(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", "movieId,title,genres\n1,A,Drama\n2,no genres field\n 3,B,War\n")
    titles = read_titles(tmp_path / "ratings.csv")
    assert titles.items == {1: ItemInfo("A", ("Drama",))}
    assert titles.problem == (
        "movies.csv line 3: expected 3 comma-separated fields (movieId,title,genres), got 2"
        " (2 lines skipped; their items show by id)"
    )


def test_one_skipped_line_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", "movieId,title,genres\n1,A,Drama\n2\n")
    assert read_titles(tmp_path / "ratings.csv").problem == (
        "movies.csv line 3: expected 3 comma-separated fields (movieId,title,genres), got 1"
        " (1 line skipped; its item shows by id)"
    )


# ---- no file, unreadable file


def test_no_item_file_means_no_titles_and_no_problem(tmp_path: Path) -> None:
    assert read_titles(tmp_path / "u.data") == Titles({}, None, None)
    assert read_titles(None) == Titles({}, None, None)  # a synthetic dataset
    assert read_titles(None).label(42) == "item 42"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_an_unreadable_item_file_is_a_problem_not_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "movies.dat", "1::A::Drama\n")
    path.chmod(0)
    titles = read_titles(tmp_path / "ratings.dat")
    assert titles.items == {}
    assert titles.source == path
    assert titles.problem == "movies.dat: cannot be read (Permission denied); items show by id"


def test_a_read_error_is_a_problem_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The chmod test above cannot fail as root; this one reaches the same path by making the read fail.
    path = write(tmp_path, "movies.csv", "1,A,Drama\n")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    titles = read_titles(tmp_path / "ratings.csv")
    assert (titles.items, titles.source) == ({}, path)
    assert titles.problem == "movies.csv: cannot be read (Permission denied); items show by id"


@pytest.mark.parametrize("make", [os.mkfifo, os.mkdir])
def test_an_item_file_that_is_not_a_file_is_a_problem(tmp_path: Path, make: Callable[[Path], None]) -> None:
    make(tmp_path / "u.item")  # opening a FIFO would block this test until a writer came
    titles = read_titles(tmp_path / "u.data")
    assert titles.items == {}
    assert titles.problem == "u.item: cannot be read (not a regular file); items show by id"


# ---- which file, labels


@pytest.mark.parametrize(
    ("ratings", "present", "expected"),
    [
        ("u.data", ["u.item", "movies.dat", "movies.csv"], "u.item"),
        ("ratings.dat", ["u.item", "movies.dat", "movies.csv"], "movies.dat"),
        ("ratings.csv", ["u.item", "movies.dat", "movies.csv"], "movies.csv"),
        ("u.data", ["movies.dat", "movies.csv"], None),  # the ratings file's own kind or nothing
        ("my_ratings.txt", ["movies.csv", "movies.dat"], "movies.dat"),  # any name: the first of the three
        ("my_ratings.txt", ["movies.csv"], "movies.csv"),
        ("my_ratings.txt", [], None),
    ],
)
def test_item_file_follows_the_ratings_file_name(
    tmp_path: Path, ratings: str, present: list[str], expected: str | None
) -> None:
    for name in present:
        write(tmp_path, name, "")
    assert item_file(tmp_path / ratings) == (None if expected is None else tmp_path / expected)


def test_label_falls_back_to_the_id() -> None:
    titles = Titles({1: ItemInfo("Heat (1995)", ()), 2: ItemInfo("", ())}, None, None)
    assert (titles.label(1), titles.label(2), titles.label(3)) == ("Heat (1995)", "item 2", "item 3")
    assert (titles.title(1), titles.title(2), titles.title(3)) == ("Heat (1995)", "", None)


def test_importing_titles_does_not_import_torch() -> None:
    # The TUI shows titles and must stay free of torch (see tests/tui/test_app.py).
    code = "import sys, engine.titles; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
