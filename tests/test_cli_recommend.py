"""`dmf-tui recommend` and `dmf-tui similar` on runs trained on the real ML-100K with `dmf-tui run`,
and what `run` records for them: the checkpoint file and the ranking metrics."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from dmf_tui.cli import main
from engine.datasets import load_split
from store.db import open_store
from store.records import RunRecord
from tests.conftest import ML100K

USER = 196  # ML-100K's first user in u.data
STAR_WARS = 50
RANKING = ("precision_at_10", "recall_at_10", "ndcg_at_10")


@dataclass(frozen=True)
class Trained:
    db: Path
    best: int  # mf, 3 epochs, ranked at every epoch, checkpoint kept where run keeps it by default
    unkept: int  # --no-checkpoint
    elsewhere: int  # --checkpoint <tmp>/mine.pt
    autorec: int
    queued: int  # added, never trained


def _train(db: Path, *flags: str) -> int:
    assert main(["--db", str(db), "run", "--data", "ml-100k", "--device", "cpu", *flags]) == 0
    with open_store(str(db)) as store:
        return max(run.id for run in store.leaderboard())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    if not ML100K.exists():
        pytest.skip(f"real ML-100K not found at {ML100K} (it is not redistributable)")
    folder = tmp_path_factory.mktemp("recommend")
    db = folder / "runs.db"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DMF_DATA_DIR", str(ML100K.parents[1]))
        best = _train(db, "--epochs", "3", "--lr", "0.02", "--batch-size", "256", "--bias", "true", "--k", "16",
                      "--rank-every", "1")
        unkept = _train(db, "--epochs", "1", "--k", "4", "--no-checkpoint")
        elsewhere = _train(db, "--epochs", "1", "--k", "4", "--checkpoint", str(folder / "mine.pt"))
        autorec = _train(db, "--model", "autorec", "--k", "8", "--epochs", "1")
        assert main(["--db", str(db), "add", "--data", "ml-100k", "--epochs", "1"]) == 0
        yield Trained(db, best, unkept, elsewhere, autorec, queued=autorec + 1)


def _run(trained: Trained, run_id: int) -> RunRecord:
    with open_store(str(trained.db)) as store:
        return store.get_run(run_id)


def _json(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> Any:
    capsys.readouterr()
    assert main(["--db", str(db), *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _titles() -> dict[int, str]:
    """ML-100K's u.item: item id -> title."""
    lines = (ML100K.parent / "u.item").read_text(encoding="latin-1").splitlines()
    return {int(fields[0]): fields[1] for fields in (line.split("|") for line in lines if line)}


def _rated_in_training(run: RunRecord, user: int) -> dict[int, float]:
    """The raw items `user` rated in the run's training and validation parts, with the ratings."""
    split = load_split(run.params.data, **run.params.engine_args("split"))
    ds = split.dataset
    (index,) = (ds.user_ids == user).nonzero()[0]
    rated = {}
    for rows in (split.train, split.val):
        mine = rows[ds.users[rows] == index]
        rated.update({int(ds.item_ids[i]): float(r) for i, r in zip(ds.items[mine], ds.ratings[mine])})
    return rated


# --- what `run` records ---------------------------------------------------------------------------

def test_run_keeps_a_private_checkpoint_beside_the_database_and_ranks_the_model(trained: Trained) -> None:
    run = _run(trained, trained.best)
    assert run.checkpoint == str(trained.db.parent / "runs.db.checkpoints" / f"run-{run.id}.pt")
    assert stat.S_IMODE(Path(run.checkpoint).stat().st_mode) == 0o600
    assert all(0 < getattr(run, name) < 1 for name in RANKING), run
    # --rank-every 1 ranks every epoch; the run's figures are those of its best epoch's model.
    with open_store(str(trained.db)) as store:
        epochs = {e.epoch: e for e in store.epochs(run.id)}
    assert all(0 < getattr(e, name) < 1 for e in epochs.values() for name in RANKING)
    assert [getattr(epochs[run.best_epoch or 0], name) for name in RANKING] == [getattr(run, n) for n in RANKING]


def test_no_checkpoint_keeps_none_but_still_ranks(trained: Trained) -> None:
    run = _run(trained, trained.unkept)
    assert run.checkpoint is None
    assert not (trained.db.parent / "runs.db.checkpoints" / f"run-{run.id}.pt").exists()
    assert run.ndcg_at_10 is not None
    # Without --rank-every only the end is ranked.
    with open_store(str(trained.db)) as store:
        assert [e.ndcg_at_10 for e in store.epochs(run.id)] == [None]


def test_a_checkpoint_path_of_ones_own_is_used(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(trained, trained.elsewhere)
    assert run.checkpoint == str(trained.db.parent / "mine.pt")
    assert not (trained.db.parent / "runs.db.checkpoints" / f"run-{run.id}.pt").exists()
    assert len(_json(capsys, trained.db, "recommend", str(run.id), "--user", str(USER))) == 10


def test_the_ranking_metrics_sort_show_and_export(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    listed = _json(capsys, trained.db, "runs", "--sort", "ndcg_at_10", "--desc")
    ndcg = [row["ndcg_at_10"] for row in listed if row["ndcg_at_10"] is not None]
    assert len(ndcg) == 4 and ndcg == sorted(ndcg, reverse=True)

    shown = _json(capsys, trained.db, "show", str(trained.best))
    run = _run(trained, trained.best)
    assert [shown["run"][name] for name in RANKING] == [getattr(run, name) for name in RANKING]
    assert main(["--db", str(trained.db), "show", str(trained.best)]) == 0
    assert f"NDCG {run.ndcg_at_10:.4f}" in capsys.readouterr().out

    assert main(["--db", str(trained.db), "export", "--csv", "-"]) == 0
    rows = {int(row["id"]): row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert [float(rows[run.id][name]) for name in RANKING] == pytest.approx([getattr(run, n) for n in RANKING])
    assert rows[trained.queued]["ndcg_at_10"] == ""
    assert main(["--db", str(trained.db), "export", "--csv", "-", "--epochs"]) == 0
    epochs = [row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))
              if int(row["run_id"]) == trained.best]
    assert len(epochs) == 3 and all(float(row["ndcg_at_10"]) > 0 for row in epochs)


# --- recommend and similar ------------------------------------------------------------------------

def test_recommend_prints_ten_titles_from_u_item(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--db", str(trained.db), "recommend", str(trained.best), "--user", str(USER)]) == 0
    out = capsys.readouterr().out
    found = _json(capsys, trained.db, "recommend", str(trained.best), "--user", str(USER))
    titles = _titles()
    assert all(titles[entry["item"]] in out for entry in found)
    # One table row per item: its rank, then its id.
    assert [line.split()[:2] for line in out.splitlines() if line.strip()[:1].isdigit()] == [
        [str(rank), str(entry["item"])] for rank, entry in enumerate(found, start=1)]


def test_data_without_an_item_file_says_so_beside_the_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "synthetic.db"
    assert main(["--db", str(db), "run", "--data", "synthetic-100k", "--device", "cpu", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["--db", str(db), "recommend", "1", "--user", "1", "-n", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "synthetic-100k has no item file: items show by id"
    assert main(["--db", str(db), "similar", "1", "--item", "1", "-n", "3", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [entry["title"] for entry in json.loads(out)] == [None] * 3  # the note stays out of the JSON
    assert err == "dmf-tui: synthetic-100k has no item file: items show by id\n"


def test_recommend_json_is_the_best_ten_unrated_items(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    found = _json(capsys, trained.db, "recommend", str(trained.best), "--user", str(USER))
    titles = _titles()
    assert len(found) == 10
    assert all(isinstance(e["item"], int) and isinstance(e["score"], float) for e in found)
    assert [e["title"] for e in found] == [titles[e["item"]] for e in found]
    assert [e["score"] for e in found] == sorted((e["score"] for e in found), reverse=True)
    rated = _rated_in_training(_run(trained, trained.best), USER)
    assert len(rated) > 20 and not {e["item"] for e in found} & rated.keys()

    assert _json(capsys, trained.db, "recommend", str(trained.best), "--user", str(USER), "-n", "3") == found[:3]


def test_explain_names_an_item_the_user_rated(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    found = _json(capsys, trained.db, "recommend", str(trained.best), "--user", str(USER), "--explain")
    rated, titles = _rated_in_training(_run(trained, trained.best), USER), _titles()
    assert len(found) == 10
    for entry in found:
        because = entry["because"]
        assert rated[because["item"]] == because["rating"]
        assert because["title"] == titles[because["item"]]


def test_similar_lists_other_items(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    found = _json(capsys, trained.db, "similar", str(trained.best), "--item", str(STAR_WARS))
    assert len(found) == 10 and STAR_WARS not in {e["item"] for e in found}
    assert all(-1 <= e["score"] <= 1 for e in found)
    assert [e["score"] for e in found] == sorted((e["score"] for e in found), reverse=True)
    assert [e["title"] for e in found] == [_titles()[e["item"]] for e in found]
    assert main(["--db", str(trained.db), "similar", str(trained.best), "--item", str(STAR_WARS)]) == 0
    assert "Star Wars (1977)" in capsys.readouterr().out


# --- what cannot be answered: one line, exit 2, nothing written --------------------------------

def _database(db: Path) -> tuple[list[str], list[str]]:
    """The whole database as SQL, and the files beside it."""
    with sqlite3.connect(db) as con:
        dump = list(con.iterdump())
    return dump, sorted(str(p.relative_to(db.parent)) for p in db.parent.rglob("*"))


def _fails(db: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The error line of a command that must fail with exit 2 and leave the database as it was."""
    before = _database(db)
    capsys.readouterr()
    assert main(["--db", str(db), *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("dmf-tui: error: ") and err.count("\n") == 1, err
    assert _database(db) == before
    return err


@pytest.mark.parametrize(("args", "message"), [
    (("recommend", "999", "--user", "196"), "no run with id 999"),
    (("similar", "999", "--item", "50"), "no run with id 999"),
    (("recommend", "{best}", "--user", "99999"), "user 99999 is not in the data of run {best} (943 users, ids 1..943)"),
    (("recommend", "{best}", "--user", "0"), "user 0 is not in the data"),
    (("similar", "{best}", "--item", "1683"), "item 1683 is not in the data of run {best} (1,682 items"),
    (("recommend", "{best}", "--user", "196", "-n", "0"), "-n must be at least 1 (got 0)"),
    (("similar", "{best}", "--item", "50", "-n", "-1"), "-n must be at least 1 (got -1)"),
    (("recommend", "{unkept}", "--user", "196"), "run {unkept} has no checkpoint (trained with --no-checkpoint"),
    (("recommend", "{queued}", "--user", "196"), "run {queued} is queued"),
    (("similar", "{autorec}", "--item", "50"), "AutoRec has no item embedding"),
    (("recommend", "{autorec}", "--user", "196", "--explain"), "AutoRec has no item embedding"),
])
def test_what_cannot_be_answered_is_one_line(trained: Trained, capsys: pytest.CaptureFixture[str],
                                             args: tuple[str, ...], message: str) -> None:
    ids = {"best": trained.best, "unkept": trained.unkept, "queued": trained.queued, "autorec": trained.autorec}
    err = _fails(trained.db, capsys, *(arg.format(**ids) for arg in args))
    assert message.format(**ids) in err


def test_a_run_without_a_checkpoint_is_told_how_to_get_one(trained: Trained,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(trained.db, capsys, "recommend", str(trained.unkept), "--user", str(USER))
    assert f"dmf-tui add --like {trained.unkept}" in err


def test_a_row_model_still_recommends(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    found = _json(capsys, trained.db, "recommend", str(trained.autorec), "--user", str(USER))
    rated = _rated_in_training(_run(trained, trained.autorec), USER)
    assert len(found) == 10 and not {e["item"] for e in found} & rated.keys()


@pytest.fixture
def own_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: Trained) -> tuple[Path, RunRecord]:
    """A run of the test's own, whose checkpoint it may spoil."""
    monkeypatch.setenv("DMF_DATA_DIR", str(ML100K.parents[1]))
    db = tmp_path / "own.db"
    run_id = _train(db, "--epochs", "1", "--k", "4")
    with open_store(str(db)) as store:
        return db, store.get_run(run_id)


def test_a_deleted_checkpoint_is_named(own_run: tuple[Path, RunRecord], capsys: pytest.CaptureFixture[str]) -> None:
    db, run = own_run
    assert run.checkpoint is not None
    Path(run.checkpoint).unlink()
    err = _fails(db, capsys, "recommend", str(run.id), "--user", str(USER))
    assert f"run {run.id}'s checkpoint {run.checkpoint} is missing" in err


def test_a_checkpoint_of_the_previous_format_is_refused(own_run: tuple[Path, RunRecord],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db, run = own_run
    assert run.checkpoint is not None
    new = torch.load(run.checkpoint, weights_only=True)
    # What the release before wrote: the weights and the config, no id maps, no known ratings.
    torch.save({"state_dict": new["state_dict"], "config": new["config"], "epoch": new["epoch"],
                "test_rmse": new["test_rmse"]}, run.checkpoint)
    for args in (("recommend", str(run.id), "--user", str(USER)), ("similar", str(run.id), "--item", "50")):
        err = _fails(db, capsys, *args)
        assert "written by an older dmf-tui" in err and "train the run again" in err


def test_a_damaged_checkpoint_is_one_line(own_run: tuple[Path, RunRecord], capsys: pytest.CaptureFixture[str]) -> None:
    db, run = own_run
    assert run.checkpoint is not None
    Path(run.checkpoint).write_bytes(Path(run.checkpoint).read_bytes()[:1000])
    assert "cannot be read" in _fails(db, capsys, "recommend", str(run.id), "--user", str(USER))
