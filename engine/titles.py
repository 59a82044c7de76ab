"""Item titles and genres from a MovieLens dataset's own item file, to show recommendations by name.

The item file sits beside the ratings file: `u.item` (ML-100K), `movies.dat` (ML-1M, ML-10M) or
`movies.csv` (ML-20M and later). Titles are a nicety: a missing, unreadable or partly malformed
item file never raises. Every good line is kept, items without one show by id, and `Titles.problem`
says in one line what was wrong.

Pure Python, no torch: the TUI imports this module.
"""

from __future__ import annotations

import csv
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Which item file goes with which ratings file; any other ratings file name: the first of these that exists.
ITEM_FILES = {"u.data": "u.item", "ratings.dat": "movies.dat", "ratings.csv": "movies.csv"}
GENRE_FILE = "u.genre"  # beside u.item: the names of its genre flags

# ML-100K's genres in flag order, for when its u.genre is missing or unusable.
STANDARD_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# u.item: id, title, release date, video release date, IMDb URL, then one 0/1 flag per genre.
_U_ITEM_FIELDS_BEFORE_FLAGS = 5
# What ML-10M and later write for a movie without genres.
_NO_GENRES = "(no genres listed)"
CSV_HEADER = ["movieId", "title", "genres"]


@dataclass(frozen=True)
class ItemInfo:
    title: str
    genres: tuple[str, ...]  # () when the file has none


@dataclass(frozen=True)
class Titles:
    items: dict[int, ItemInfo]  # raw item id -> info
    source: Path | None  # the item file read, None when there was none
    problem: str | None  # one line when the file was read only in part, else None

    def title(self, raw_id: int) -> str | None:
        info = self.items.get(raw_id)
        return None if info is None else info.title

    def label(self, raw_id: int) -> str:
        """The title, or "item <id>" for an item the file does not name (or names with an empty title)."""
        title = self.title(raw_id)
        return title if title else f"item {raw_id}"


class _BadLine(Exception):
    """Why one line of an item file was skipped."""


def item_file(ratings_path: Path) -> Path | None:
    """The dataset's own item file beside its ratings file, if there is one."""
    folder = ratings_path.parent
    own = ITEM_FILES.get(ratings_path.name)
    names = [own] if own is not None else list(ITEM_FILES.values())
    for name in names:
        if (folder / name).exists():
            return folder / name
    return None


def read_titles(ratings_path: Path | None) -> Titles:
    """Titles of the dataset whose ratings file is `ratings_path` (None: a synthetic dataset -> no titles)."""
    path = None if ratings_path is None else item_file(ratings_path)
    if path is None:
        return Titles({}, None, None)
    try:
        data = _read_regular(path)
    except OSError as e:
        return Titles({}, path, f"{path.name}: cannot be read ({e.strerror or e}); items show by id")

    if path.name == "u.item":
        genres, genre_problem = _read_genres(path.with_name(GENRE_FILE))
        items, problem = _parse(path, data.decode("latin-1"), lambda line: _u_item_line(line, genres))
        return Titles(items, path, problem or genre_problem)
    parse_line = _movies_dat_line if path.name == "movies.dat" else _movies_csv_line
    items, problem = _parse(path, _decode(data), parse_line)
    return Titles(items, path, problem)


def _read_regular(path: Path) -> bytes:
    # Looked at before opening: opening a FIFO would block until a writer comes.
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError("not a regular file")
    return path.read_bytes()


def _decode(data: bytes) -> str:
    # ML-1M's movies.dat is Latin-1, ML-10M's and the CSVs are UTF-8: try UTF-8, which Latin-1 text
    # with accents almost never happens to be.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _lines(text: str) -> list[str]:
    # Split on "\n" only: str.splitlines() would also split inside a title at Latin-1's \x85 (NEL)
    # or a form feed. Titles are data: only the line ending goes.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _parse(
    path: Path, text: str, parse_line: Callable[[str], tuple[int, ItemInfo] | None]
) -> tuple[dict[int, ItemInfo], str | None]:
    """Every good line's item (the first one for a duplicate id) and, if any line was bad, one line about it."""
    items: dict[int, ItemInfo] = {}
    first_bad = ""
    skipped = 0
    for number, line in enumerate(_lines(text), start=1):
        if not line:  # a blank line names no item: nothing is lost by passing it
            continue
        try:
            parsed = parse_line(line)
        except _BadLine as e:
            skipped += 1
            first_bad = first_bad or f"{path.name} line {number}: {e}"
            continue
        if parsed is not None:
            items.setdefault(*parsed)
    if not skipped:
        return items, None
    lost = "1 line skipped; its item shows" if skipped == 1 else f"{skipped} lines skipped; their items show"
    return items, f"{first_bad} ({lost} by id)"


def _item_id(field: str) -> int:
    # ASCII digits only: int() would also take " 7", "1_000" or Arabic-Indic digits.
    if not (field.isascii() and field.isdigit()):
        raise _BadLine(f"item id {field[:40]!r} is not a whole number")
    return int(field)


def _genre_list(field: str) -> tuple[str, ...]:
    return () if field in ("", _NO_GENRES) else tuple(field.split("|"))


def _u_item_line(line: str, genres: tuple[str, ...]) -> tuple[int, ItemInfo]:
    fields = line.split("|")
    expected = _U_ITEM_FIELDS_BEFORE_FLAGS + len(genres)
    if len(fields) < expected:
        raise _BadLine(f"expected {expected} '|'-separated fields, got {len(fields)}")
    flags = fields[len(fields) - len(genres) :]
    if any(flag not in ("0", "1") for flag in flags):
        raise _BadLine(f"the last {len(genres)} fields must be 0/1 genre flags")
    # A `|` inside a title would give extra fields: the title is everything between the id and the three
    # fields (dates, URL) before the flags.
    title = "|".join(fields[1 : len(fields) - len(genres) - 3])
    info = ItemInfo(title, tuple(name for name, flag in zip(genres, flags) if flag == "1"))
    return _item_id(fields[0]), info


def _movies_dat_line(line: str) -> tuple[int, ItemInfo]:
    # Split on the first and last `::` only, so that a title keeps whatever it holds.
    first, last = line.find("::"), line.rfind("::")
    if first < 0 or last < first + 2:
        raise _BadLine(f"expected 3 '::'-separated fields (id::title::genres), got {line.count('::') + 1}")
    return _item_id(line[:first]), ItemInfo(line[first + 2 : last], _genre_list(line[last + 2 :]))


def _movies_csv_line(line: str) -> tuple[int, ItemInfo] | None:
    try:
        row = next(csv.reader([line]))
    except csv.Error as e:
        raise _BadLine(f"not CSV: {e}") from None
    if row == CSV_HEADER:
        return None
    if len(row) < 3:
        raise _BadLine(f"expected 3 comma-separated fields ({','.join(CSV_HEADER)}), got {len(row)}")
    # More than 3 fields: an unquoted comma in the title; the title is everything between id and genres.
    return _item_id(row[0]), ItemInfo(",".join(row[1:-1]), _genre_list(row[-1]))


def _read_genres(path: Path) -> tuple[tuple[str, ...], str | None]:
    """ML-100K's genre names in flag order from u.genre (`name|index` lines), and a problem if it was unusable.

    A u.genre that cannot be trusted whole is not used at all: half of one would misname the genres.
    """
    if not path.exists():
        return STANDARD_GENRES, None
    fallback = "; standard genre names used"
    try:
        text = _read_regular(path).decode("latin-1")
    except OSError as e:
        return STANDARD_GENRES, f"{path.name}: cannot be read ({e.strerror or e}){fallback}"
    names: dict[int, str] = {}
    for number, line in enumerate(_lines(text), start=1):
        if not line:
            continue
        name, _, index = line.rpartition("|")
        if not name or not (index.isascii() and index.isdigit()) or int(index) in names:
            return STANDARD_GENRES, f"{path.name} line {number}: expected name|index with a new index{fallback}"
        names[int(index)] = name
    if not names:
        return STANDARD_GENRES, f"{path.name}: names no genres{fallback}"
    if sorted(names) != list(range(len(names))):
        return STANDARD_GENRES, f"{path.name}: indices are not 0 to {len(names) - 1}{fallback}"
    return tuple(names[i] for i in range(len(names))), None
