"""`dmf-tui search` and `dmf-tui searches`: queueing a search, refusing bad ones, and coming back to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import open_store
from store.params import RunParams

SPACE = ["--lr", "1e-3..3e-2:log", "--k", "4..16:int", "--bias", "true,false"]


def test_dry_run_prints_the_space_and_the_trial_count(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "search", "--data", "synthetic-100k", *SPACE, "--trials", "12", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Would queue a search of 12 trials, sampler tpe, pruner asha")
    assert "lr: 0.001..0.03 (uniform, log)" in out and "k: 4..16 (integers)" in out and "bias: true | false" in out
    assert "val_size 0.1" in out
    assert not Path(db).exists()


@pytest.mark.parametrize("flags, message", [
    (["--lr", "1e-3.."], "lr: '1e-3..' is an empty range"),
    (["--lr", "1e-2..1e-3"], "lr: '1e-2..1e-3': LOW is above HIGH"),
    (["--lr", "0..1e-2:log"], "lr: '0..1e-2:log': a :log range needs LOW > 0"),
    (["--bias", "0..1"], "bias: '0..1' is a range, but bias is not a number"),
    (["--lr", "1e-3,1e-2", "--trials", "0"], "trials must be a whole number from 1"),
    (["--lr", "1e-3,1e-2", "--sampler", "bayes"], "unknown sampler 'bayes'"),
    (["--lr", "1e-3,1e-2", "--pruner", "early"], "unknown pruner 'early'"),
    (["--lr", "1e-3,1e-2", "--metric", "test"], "choosing by test RMSE would tune on the test set"),
    (["--lr", "1e-3,1e-2", "--val-size", "0"], "val_size: a search minimises validation RMSE"),
    (["--lr", "1e-3"], "nothing to search"),
])
def test_a_bad_search_is_one_line_exit_2_and_queues_nothing(db: str, capsys: pytest.CaptureFixture[str],
                                                            flags: list[str], message: str) -> None:
    assert main(["--db", db, "search", "--data", "synthetic-100k", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmf-tui: error: ") and message in err and err.count("\n") == 1
    assert not Path(db).exists()


def test_search_queues_a_search_that_a_worker_runs_to_the_end(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "search", "--data", "synthetic-100k", *SPACE, "--epochs", "2", "--trials", "3",
                 "--batch-size", "4096", "--device", "cpu", "--name", "small"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Queued search 'small' (#1): 3 trials, sampler tpe, pruner asha")
    assert "No worker is running" in out
    with open_store(db) as store:
        (search,) = store.searches()
        base = search.spec.base
        assert (search.phase, search.asked, base.epochs, base.val_size) == ("running", 0, 2, 0.1)
        assert [dim.name for dim in search.spec.space] == ["k", "lr", "bias"]

    assert main(["--db", db, "worker", "--exit-when-empty", "--poll", "0.05", "--checkpoint-dir", "none"]) == 0
    capsys.readouterr()

    assert main(["--db", db, "searches"]) == 0
    listing = capsys.readouterr().out
    assert "small" in listing and "finished" in listing and "3/3" in listing
    assert main(["--db", db, "searches", "small", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["phase"] == "finished" and [t["trial"] for t in sorted(shown["trials"], key=lambda t: t["trial"])] \
        == [1, 2, 3]
    for trial in shown["trials"]:
        assert 1e-3 <= trial["values"]["lr"] <= 3e-2 and 4 <= trial["values"]["k"] <= 16
    done = [t for t in shown["trials"] if t["status"] == "done"]
    best = min(done, key=lambda t: t["best_val_rmse"])
    # The best trial is the one with the lowest validation RMSE; its test RMSE is only reported.
    assert (shown["best_run_id"], shown["best_test_rmse"]) == (best["run_id"], best["best_test_rmse"])
    assert main(["--db", db, "searches", "small"]) == 0
    text = capsys.readouterr().out
    assert f"Best trial (run {best['run_id']}) by validation RMSE" in text


def test_searches_pause_resume_extend_and_stop(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "search", "--data", "synthetic-100k", *SPACE, "--trials", "4", "--name", "s"]) == 0
    capsys.readouterr()
    steps = [(["--pause"], "paused, 0 of 4"), (["--resume"], "running, 0 of 4"), (["--stop"], "stopped, 0 of 4"),
             (["--extend", "3"], "running, 0 of 7")]
    for flags, said in steps:
        assert main(["--db", db, "searches", "s", *flags]) == 0
        assert capsys.readouterr().out == f"search 's' (#1): {said} trials asked\n"
    assert main(["--db", db, "searches", "s", "--extend", "0"]) == 2
    assert "extend a search by 1 or more trials" in capsys.readouterr().err
    assert main(["--db", db, "searches", "--pause"]) == 2
    assert "name the search to change" in capsys.readouterr().err


def test_an_unknown_search_is_one_line(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    open_store(db).close()
    assert main(["--db", db, "searches", "9"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: no search with id 9\n"
    assert main(["--db", db, "searches", "nope", "--stop"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: no search named 'nope'\n"


def test_search_like_a_run_and_from_a_preset(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store(db) as store:
        run_id = store.enqueue(RunParams(model="deepmf", data="synthetic-100k", hidden=(16, 8), epochs=3))
    assert main(["--db", db, "search", "--like", str(run_id), "--lr", "1e-3..1e-2:log"]) == 0
    assert main(["--db", db, "search", "--data", "synthetic-100k", "--preset", "mf", "--k", "16,32"]) == 0
    capsys.readouterr()
    with open_store(db) as store:
        preset, like = store.searches()
    assert (like.spec.base.model, like.spec.base.hidden, like.spec.base.epochs) == ("deepmf", (16, 8), 3)
    assert preset.spec.base.reg > 0 and [dim.choices for dim in preset.spec.space] == [("16", "32")]


def test_a_search_name_is_printed_as_text(db: str, capsys: pytest.CaptureFixture[str], hostile: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the whole name on one line
    assert main(["--db", db, "search", "--data", "synthetic-100k", *SPACE, "--name", hostile]) == 0
    capsys.readouterr()
    assert main(["--db", db, "searches"]) == 0
    assert hostile in capsys.readouterr().out


def test_a_space_whose_largest_corner_cannot_fit_here_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "search", "--data", "ml-20m", "--k", "8..100000000:int", "--dry-run"]) == 2
    assert "k=100000000" in capsys.readouterr().err


def test_a_bad_fixed_value_is_named_before_the_space_is_looked_at(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "search", "--data", "synthetic-100k", "--model", "[/]"]) == 2
    assert capsys.readouterr().err.startswith("dmf-tui: error: model: must be one of mf, deepmf")
