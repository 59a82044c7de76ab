"""Downloading against a real HTTP server on 127.0.0.1 that serves a zip built here."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import itertools
import threading
import zipfile

import pytest

from dmf_tui.cli import main
from engine import datasets
from engine.errors import DataError
from engine.titles import read_titles

RATINGS = b"1\t10\t4\t881250949\n2\t20\t3\t881250950\n"


def build_zip(member: str = "ml-100k/u.data") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, RATINGS)
        zf.writestr("ml-100k/README", b"not extracted")
    return buf.getvalue()


@pytest.fixture
def server():
    """Serves {path: bytes} at http://127.0.0.1:<port>/<path>; anything else is a 404."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield files, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def pin(monkeypatch, archive: bytes, **override: str | None):
    """Make the registry's ml-100k entry carry the checksums of `archive` (or `override`: md5, sha256)."""
    sums: dict[str, str | None] = {"md5": hashlib.md5(archive).hexdigest(),
                                   "sha256": hashlib.sha256(archive).hexdigest()}
    sums.update(override)
    info = dataclasses.replace(datasets.DATASETS["ml-100k"], md5=sums["md5"], sha256=sums["sha256"])
    monkeypatch.setitem(datasets.DATASETS, "ml-100k", info)


def test_fetch_verifies_and_extracts_only_the_ratings(server, monkeypatch, tmp_path):
    files, base = server
    files["ml-100k.zip"] = archive = build_zip()
    pin(monkeypatch, archive)
    seen = []
    path = datasets.fetch("ml-100k", data_dir=tmp_path, url=f"{base}/ml-100k.zip",
                          progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / "ml-100k" / "u.data"
    assert path.read_bytes() == RATINGS
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ml-100k", "u.data"]  # no zip, no temp file
    assert seen[-1] == (len(archive), len(archive))
    assert datasets.load_dataset("ml-100k", data_dir=tmp_path).n_ratings == 2
    # Present already: kept as is, nothing downloaded.
    files.clear()
    assert datasets.fetch("ml-100k", data_dir=tmp_path, url=f"{base}/ml-100k.zip") == path


def test_wrong_checksum_fails_loudly_and_leaves_nothing(server, monkeypatch, tmp_path):
    files, base = server
    files["ml-100k.zip"] = archive = build_zip()
    pin(monkeypatch, archive, sha256="0" * 64)
    with pytest.raises(DataError) as err:
        datasets.fetch("ml-100k", data_dir=tmp_path, url=f"{base}/ml-100k.zip")
    message = str(err.value)
    assert "ml-100k.zip" in message and "0" * 64 in message and hashlib.sha256(archive).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_wrong_checksum_keeps_an_existing_copy_intact(server, monkeypatch, tmp_path):
    files, base = server
    files["ml-100k.zip"] = build_zip()
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_bytes(b"old")
    pin(monkeypatch, b"something else")
    with pytest.raises(DataError, match="checksum mismatch"):
        datasets.fetch("ml-100k", data_dir=tmp_path, url=f"{base}/ml-100k.zip", force=True)
    assert [p.name for p in (tmp_path / "ml-100k").iterdir()] == ["u.data"]
    assert (tmp_path / "ml-100k" / "u.data").read_bytes() == b"old"


def test_no_known_checksum_warns(server, monkeypatch, tmp_path):
    files, base = server
    files["ml-100k.zip"] = build_zip()
    pin(monkeypatch, b"", md5=None, sha256=None)
    with pytest.warns(datasets.UncheckedDownloadWarning, match="no checksum is known for ml-100k.zip"):
        path = datasets.fetch("ml-100k", data_dir=tmp_path, url=f"{base}/ml-100k.zip")
    assert path.read_bytes() == RATINGS


def test_archive_without_the_member(server, monkeypatch, tmp_path):
    files, base = server
    files["ml-100k.zip"] = archive = build_zip(member="other/u.data")
    pin(monkeypatch, archive)
    with pytest.raises(DataError, match="has no ml-100k/u.data"):
        datasets.fetch("ml-100k", data_dir=tmp_path, url=f"{base}/ml-100k.zip")
    assert list(tmp_path.iterdir()) == []


def test_network_errors_are_one_line(server, tmp_path):
    _, base = server
    with pytest.raises(DataError, match=r"could not download .*HTTP 404"):
        datasets.fetch("ml-100k", data_dir=tmp_path, url=f"{base}/missing.zip")
    with pytest.raises(DataError, match="could not download"):
        datasets.fetch("ml-100k", data_dir=tmp_path, url="http://127.0.0.1:1/ml-100k.zip")
    assert list(tmp_path.iterdir()) == []


def test_cli_fetch(server, monkeypatch, tmp_path, capsys):
    files, base = server
    files["ml-100k.zip"] = archive = build_zip()
    pin(monkeypatch, archive)
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path))
    assert main(["data", "fetch", "ml-100k", "--url", f"{base}/ml-100k.zip"]) == 0
    assert (tmp_path / "ml-100k" / "u.data").read_bytes() == RATINGS
    assert main(["data", "fetch", "ml-100k"]) == 0  # already there: no download
    assert "already in" in capsys.readouterr().err
    pin(monkeypatch, archive, md5="f" * 32)
    assert main(["data", "fetch", "ml-100k", "--force", "--url", f"{base}/ml-100k.zip"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["data", "fetch", "ml-7m"]) == 2
    assert "known downloadable names" in capsys.readouterr().err


def test_not_a_zip(server, monkeypatch, tmp_path):
    files, base = server
    files["ml-100k.zip"] = page = b"<html>moved</html>"
    pin(monkeypatch, page)
    with pytest.raises(DataError, match="not a valid zip archive"):
        datasets.fetch("ml-100k", data_dir=tmp_path, url=f"{base}/ml-100k.zip")
    assert list(tmp_path.iterdir()) == []


# ML-100K's item file is Latin-1 (the é below is one byte), its genres named in u.genre.
ITEMS = ("10|Richard III (1995)|22-Jan-1996||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0\n"
         "20|Misérables, Les (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|1|0|0|0|0\n").encode("latin-1")
GENRES = b"unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\n" \
         b"Drama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\n" \
         b"Thriller|16\nWar|17\nWestern|18\n"


def test_cli_fetch_extracts_the_item_file_beside_the_ratings(server, monkeypatch, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", RATINGS)
        zf.writestr("ml-100k/u.item", ITEMS)
        zf.writestr("ml-100k/u.genre", GENRES)
        zf.writestr("ml-100k/u.user", b"not extracted")
    files, base = server
    files["ml-100k.zip"] = archive = buf.getvalue()
    pin(monkeypatch, archive)
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path))

    assert main(["data", "fetch", "ml-100k", "--url", f"{base}/ml-100k.zip"]) == 0

    folder = tmp_path / "ml-100k"
    assert sorted(p.name for p in folder.iterdir()) == ["u.data", "u.genre", "u.item"]
    assert [(folder / name).read_bytes() for name in ("u.data", "u.item", "u.genre")] == [RATINGS, ITEMS, GENRES]
    titles = read_titles(folder / "u.data")
    assert (titles.title(10), titles.title(20), titles.items[20].genres, titles.problem) == (
        "Richard III (1995)", "Misérables, Les (1995)", ("Drama", "Romance"), None)


def test_cli_fetch_of_a_zip_without_an_item_file_has_ratings_only(server, monkeypatch, tmp_path):
    files, base = server
    files["ml-100k.zip"] = archive = build_zip()
    pin(monkeypatch, archive)
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path))

    assert main(["data", "fetch", "ml-100k", "--url", f"{base}/ml-100k.zip"]) == 0

    assert [p.name for p in (tmp_path / "ml-100k").iterdir()] == ["u.data"]
    assert datasets.load_dataset("ml-100k", data_dir=tmp_path).n_ratings == 2


# The member layout of the real ml-25m.zip and ml-32m.zip (a folder entry, then its files); only
# ratings.csv and movies.csv are extracted.
BIG_LAYOUTS = {
    "ml-25m": ("tags.csv", "links.csv", "README.txt", "ratings.csv", "genome-tags.csv", "genome-scores.csv",
               "movies.csv"),
    "ml-32m": ("tags.csv", "links.csv", "README.txt", "checksums.txt", "ratings.csv", "movies.csv"),
}
MOVIES_CSV = (b'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n'
              b'2,Jumanji (1995),Adventure|Children|Fantasy\n3,"American President, The (1995)",Comedy|Drama|Romance\n')


def big_ratings_csv(n_users: int = 300, per_user: int = 12) -> bytes:
    """`userId,movieId,rating,timestamp` lines as ML-25M writes them: sorted by user then movie,
    half-star ratings with one decimal, 10-digit timestamps."""
    lines = [b"userId,movieId,rating,timestamp\n"]
    for user in range(1, n_users + 1):
        for item in sorted({(user * 7 + k * 13) % 500 + 1 for k in range(per_user)}):
            stars = (user + item) % 10 + 1
            lines.append(f"{user},{item},{stars / 2:.1f},{1_100_000_000 + user * 1000 + item}\n".encode())
    return b"".join(lines)


def build_big_zip(name: str, ratings: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(f"{name}/"), b"")
        for member in BIG_LAYOUTS[name]:
            body = {"ratings.csv": ratings, "movies.csv": MOVIES_CSV}.get(member, b"not extracted\n")
            zf.writestr(f"{name}/{member}", body)
    return buf.getvalue()


def pin_big(monkeypatch, name: str, archive: bytes) -> None:
    """Give `name` the checksums of `archive`, of the kinds the registry knows for the real one."""
    real = datasets.DATASETS[name]
    sums = {algo: getattr(hashlib, algo)(archive).hexdigest() for algo in real.checksums}
    monkeypatch.setitem(datasets.DATASETS, name, dataclasses.replace(real, **sums))


@pytest.mark.parametrize("name", ["ml-25m", "ml-32m"])
def test_fetch_of_a_big_release_streams_verifies_and_extracts(server, monkeypatch, tmp_path, name):
    ratings = big_ratings_csv()
    files, base = server
    files[f"{name}.zip"] = archive = build_big_zip(name, ratings)
    pin_big(monkeypatch, name, archive)
    monkeypatch.setattr(datasets, "CHUNK", 4096)  # many reads, as over a real archive's 250 MB
    seen: list[tuple[int, int | None]] = []

    path = datasets.fetch(name, data_dir=tmp_path, url=f"{base}/{name}.zip", progress=lambda d, t: seen.append((d, t)))

    assert path == tmp_path / name / "ratings.csv" == datasets.dataset_path(name, tmp_path)
    assert path.read_bytes() == ratings
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["movies.csv", "ratings.csv"]
    # Progress after every read, none bigger than a chunk: the archive never was in memory whole.
    done = [d for d, _ in seen]
    assert done[0] == 0 and done[-1] == len(archive) and len(done) > len(archive) // 4096
    assert all(0 < b - a <= 4096 for a, b in itertools.pairwise(done))
    assert {t for _, t in seen} == {len(archive)}
    ds = datasets.load_dataset(name, data_dir=tmp_path)
    assert (ds.n_ratings, ds.n_users) == (ratings.count(b"\n") - 1, 300)
    assert read_titles(path).title(3) == "American President, The (1995)"


@pytest.mark.parametrize("name", ["ml-25m", "ml-32m"])
def test_a_big_release_with_a_wrong_checksum_is_refused(server, monkeypatch, tmp_path, name):
    files, base = server
    files[f"{name}.zip"] = build_big_zip(name, big_ratings_csv())
    # The registry's real checksums: a generated archive is not the real one.
    with pytest.raises(DataError, match=f"checksum mismatch for {name}.zip"):
        datasets.fetch(name, data_dir=tmp_path, url=f"{base}/{name}.zip")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["ml-25m", "ml-32m"])
def test_cli_fetch_of_a_big_release(server, monkeypatch, tmp_path, capsys, name):
    files, base = server
    files[f"{name}.zip"] = archive = build_big_zip(name, big_ratings_csv())
    pin_big(monkeypatch, name, archive)
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path))

    assert main(["data", "fetch", name, "--url", f"{base}/{name}.zip"]) == 0

    err = capsys.readouterr().err
    assert f"{name}.zip" in err and "md5, sha256 verified" in err  # the bar's label, then the outcome
    assert (tmp_path / name / "ratings.csv").is_file()
