"""The store's command-line verbs: add, runs, show, cancel, retry, export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store.db import open_store
from store.params import RunParams

pytestmark = pytest.mark.backends


def test_add_queues_a_grid(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--db", db, "add", "--model", "deepmf", "--lr", "1e-3,1e-2", "--hidden", "10,5/64,32",
                 "--name", "first"])
    assert code == 0
    assert capsys.readouterr().out.strip() == "Queued 4 runs (sweep 1): ids 1-4"
    runs = open_store(db).queue()
    assert [(r.params.hidden, r.params.lr) for r in runs] == [
        ((10, 5), 1e-3), ((10, 5), 1e-2), ((64, 32), 1e-3), ((64, 32), 1e-2)]
    assert {r.params.model for r in runs} == {"deepmf"}


def test_add_dry_run_writes_nothing(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "add", "--k", "10,32", "--weight-decay", "0,1e-5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Would queue 4 runs:")
    assert "k=32 weight_decay=0" in out
    assert not Path(db).exists()


def test_add_with_a_bad_value_is_one_line_exit_2(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "add", "--lr", "1e-3,fast"]) == 2
    err = capsys.readouterr().err
    assert err == "dmf-tui: error: lr: 'fast' is not a number\n"
    assert main(["--db", db, "add", "--model", "svd"]) == 2
    assert "model: must be one of mf, deepmf" in capsys.readouterr().err
    assert not Path(db).exists()


def test_runs_lists_best_first_and_as_json(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(db)
    worse = store.start_run(store_params(k=8), device="cpu").id
    store.record_epoch(worse, 1, train_rmse=1.0, test_rmse=1.5, seconds=1)
    better = store.start_run(store_params(k=16), device="cpu").id
    store.record_epoch(better, 1, train_rmse=1.0, test_rmse=0.9, seconds=1)
    store.enqueue(store_params(model="deepmf"))
    capsys.readouterr()
    assert main(["--db", db, "runs", "--top", "2", "--status", "all"]) == 0
    out = capsys.readouterr().out
    assert out.index("0.9000") < out.index("1.5000")
    assert "2 of 3 runs on all datasets" in out
    assert main(["--db", db, "runs", "--json", "--status", "running"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [better, worse]
    assert rows[0]["params"]["k"] == 16
    assert main(["--db", db, "runs", "--json", "--model", "deepmf", "--status", "all"]) == 0
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["queued"]


def _done(db: str, params: RunParams, test_rmse: float, status: str = "done") -> int:
    store = open_store(db)
    run_id = store.start_run(params, device="cpu").id
    store.record_epoch(run_id, 1, train_rmse=1.0, test_rmse=test_rmse, seconds=1)
    store.finish_run(run_id, status)
    return run_id


def listed(db: str, capsys: pytest.CaptureFixture[str], *args: str) -> list[int]:
    capsys.readouterr()
    assert main(["--db", db, "runs", "--json", *args]) == 0
    return [row["id"] for row in json.loads(capsys.readouterr().out)]


def test_runs_ranks_done_runs_of_the_dataset_finished_last_and_says_so(
        db: str, capsys: pytest.CaptureFixture[str]) -> None:
    small = _done(db, store_params(data="synthetic-100k"), 0.9)
    failed = _done(db, store_params(data="synthetic-100k", k=32), 0.5, status="failed")
    large = _done(db, store_params(data="synthetic-1m"), 1.1)
    capsys.readouterr()
    assert main(["--db", db, "runs"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-2:] == [
        "1 done run on synthetic-1m", "--data all for every dataset (1 more); --status all for every status"]
    assert listed(db, capsys) == [large]
    assert listed(db, capsys, "--data", "all") == [small, large]
    assert listed(db, capsys, "--data", "synthetic-100k") == [small]
    assert listed(db, capsys, "--data", "all", "--status", "failed,done") == [failed, small, large]


def test_runs_where_takes_the_filter_language(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    low = _done(db, store_params(data="synthetic-100k", lr=1e-3, k=8), 0.9)
    high = _done(db, store_params(data="synthetic-100k", lr=1e-2, k=64), 0.8)
    assert listed(db, capsys, "--where", "lr:<5e-3") == [low]
    assert listed(db, capsys, "--where", "k>=32 model:mf,deepmf") == [high]
    assert listed(db, capsys, "--where", f"#{low}") == [low]
    capsys.readouterr()
    assert main(["--db", db, "runs", "--where", "lr:<fast"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: 'lr:<fast': 'fast' is not a number\n"
    assert main(["--db", db, "runs", "--sweep", "nosuch"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: sweep: no sweep is named 'nosuch'\n"


def test_runs_shows_archived_runs_when_asked(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    kept = _done(db, store_params(data="synthetic-100k"), 0.9)
    archived = _done(db, store_params(data="synthetic-100k"), 0.8)
    open_store(db).archive([archived])
    assert listed(db, capsys) == [kept]
    assert listed(db, capsys, "--archived") == [archived, kept]
    assert listed(db, capsys, "--where", "archived:yes") == [archived]


def test_show_prints_config_epochs_and_error(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(db)
    run_id = store.start_run(store_params(model="deepmf", hidden=(64, 32)), device="cpu").id
    store.record_epoch(run_id, 1, train_rmse=1.1, test_rmse=1.2345, seconds=2.5)
    store.finish_run(run_id, "failed", error="diverged: loss became nan at epoch 2")
    capsys.readouterr()
    assert main(["--db", db, "show", str(run_id)]) == 0
    out = capsys.readouterr().out
    assert "64,32" in out and "1.2345" in out and "diverged: loss became nan" in out
    assert "pretrain_epochs" not in out  # GLocal-K's: a DeepMF run does not take it
    assert main(["--db", db, "show", str(run_id), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"]["status"] == "failed"
    assert data["epochs"][0]["test_rmse"] == 1.2345


def test_unknown_ids_are_one_line_errors(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--db", db, "add"])
    capsys.readouterr()
    assert main(["--db", db, "show", "42"]) == 2
    assert capsys.readouterr().err == "dmf-tui: error: no run with id 42\n"
    assert main(["--db", db, "cancel", "1", "42"]) == 2
    assert open_store(db).get_run(1).status == "queued"  # nothing written
    assert main(["--db", db, "retry", "42"]) == 2
    assert open_store(db).count_runs() == 1


def test_cancel_and_retry(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--db", db, "add", "--seed", "1,2"])
    open_store(db).claim(None, device="cpu")
    capsys.readouterr()
    assert main(["--db", db, "cancel", "1", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "run 1: cancelling (its worker stops it within an epoch)",
        "run 2: cancelled",
    ]
    assert main(["--db", db, "retry", "2"]) == 0
    assert capsys.readouterr().out.strip() == "run 2: queued again as run 3"
    assert open_store(db).get_run(3).params.seed == 2


def test_export_runs_and_epochs(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(db)
    run_id = store.start_run(store_params(), device="cpu").id
    for epoch in (1, 2):
        store.record_epoch(run_id, epoch, train_rmse=1.0, test_rmse=1.0 / epoch, seconds=1)
    store.enqueue(store_params())
    out = tmp_path / "runs.csv"
    # Every run, of every status, unless the filters say otherwise.
    assert main(["--db", db, "export", "--csv", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"Wrote 2 runs to {out}"
    assert [r["status"] for r in csv.DictReader(out.open())] == ["running", "queued"]
    assert main(["--db", db, "export", "--csv", str(out), "--where", "status:queued"]) == 0
    assert [r["status"] for r in csv.DictReader(out.open())] == ["queued"]
    assert main(["--db", db, "export", "--csv", str(out), "--epochs"]) == 0
    assert [r["test_rmse"] for r in csv.DictReader(out.open())] == ["1.0", "0.5"]
    store.archive([run_id])
    assert main(["--db", db, "export", "--csv", str(out)]) == 0
    assert [r["status"] for r in csv.DictReader(out.open())] == ["queued"]
    assert main(["--db", db, "export", "--csv", str(out), "--archived"]) == 0
    assert [r["archived"] for r in csv.DictReader(out.open())] == ["true", "false"]


def store_params(**changes: object) -> RunParams:
    return RunParams().replace(**changes)


def test_move_pause_and_resume(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["add", "--db", db, "--data", "synthetic-100k", "--lr", "1e-3,2e-3,3e-3"]) == 0
    assert main(["move", "--db", db, "3", "-2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "queue order: 3 1 2"
    assert main(["pause", "--db", db]) == 0
    store = open_store(db)
    assert store.is_paused() and store.claim(store.register_worker(pid=1, host="h", devices="cpu", slots=1),
                                             device="cpu") is None
    assert main(["resume", "--db", db]) == 0
    assert not store.is_paused()
    assert main(["move", "--db", db, "99", "1"]) == 2
    assert "99" in capsys.readouterr().err
