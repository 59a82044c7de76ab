"""Downloading against a real HTTP server on 127.0.0.1 that serves a zip built here."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
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
