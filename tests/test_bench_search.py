"""bench/bench_search.py stays runnable: a tiny real search on synthetic data, and its tables and targets."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from bench import bench_search
from bench.bench_search import Outcome, run_search, seed_rows, summary_rows, targets
from store.db import open_store

TINY_MF = {"model": "mf", "lr": "1e-3..3e-2:log", "k": "4..8:int", "epochs": "2"}


def test_a_search_is_read_back_with_every_epoch_its_trials_trained(tmp_path):
    outcome = run_search("tiny", TINY_MF, data="synthetic-100k", sampler="tpe", pruner="asha", seed=0, trials=3,
                         folder=tmp_path)

    (database,) = tmp_path.glob("*.db")
    with open_store(str(database)) as store:
        (search,) = store.searches()
        runs = store.search_trials(search.id)
        trained = sum(len(store.epochs(run.id)) for run in runs)
        assert search.best_run_id is not None
        best = store.get_run(search.best_run_id)
    assert (outcome.trials, len(runs)) == (3, 3)
    assert outcome.epochs == trained
    assert 3 <= trained <= 6  # two epochs a trial at most; a pruned trial stops after its first
    assert outcome.pruned == sum(run.status == "pruned" for run in runs)
    assert outcome.best_val_rmse == best.best_val_rmse
    finished = [run.best_val_rmse for run in runs if run.status == "done" and run.best_val_rmse is not None]
    assert best.best_val_rmse == min(finished)
    assert outcome.best_test_rmse == search.best_test_rmse


def outcome(space, sampler, pruner, seed, test, epochs, val=0.9):
    return Outcome(space=space, sampler=sampler, pruner=pruner, seed=seed, trials=40, pruned=0 if pruner == "none"
                   else 20, best_val_rmse=val, best_test_rmse=test, epochs=epochs, seconds=10.0)


def test_the_table_holds_means_over_seeds_and_epochs_as_a_share_of_plain_random_search():
    outcomes = [outcome("mf", "random", "none", 0, 0.9100, 800), outcome("mf", "random", "none", 1, 0.9140, 800),
                outcome("mf", "tpe", "asha", 0, 0.9080, 300), outcome("mf", "tpe", "asha", 1, 0.9120, 340)]

    rows = summary_rows(outcomes)

    assert rows == [("mf", "random", "none", "2", "40", "0.0", "0.9000", "0.9120 (0.9100-0.9140)", "800 (100%)", "10"),
                    ("mf", "tpe", "asha", "2", "40", "20.0", "0.9000", "0.9100 (0.9080-0.9120)", "320 (40%)", "10")]
    assert [row[3] for row in seed_rows(outcomes)] == ["0", "1", "0", "1"]


def test_targets_say_met_only_when_both_the_rmse_and_the_epochs_hold():
    plain = [outcome("mf", "random", "none", 0, 0.9100, 800)]
    close_and_cheap = targets([*plain, outcome("mf", "tpe", "asha", 0, 0.9115, 400)])
    too_costly = targets([*plain, outcome("mf", "tpe", "asha", 0, 0.9090, 401)])
    too_far = targets([*plain, outcome("mf", "tpe", "asha", 0, 0.9125, 200)])

    assert close_and_cheap[0].endswith(": MET") and "0.9115 vs plain random 0.9100" in close_and_cheap[0]
    assert too_costly[0].endswith("NOT MET") and "at most half: no" in too_costly[0]
    assert too_far[0].endswith("NOT MET") and "within 0.002: no" in too_far[0]
    # The bar of an MF search: the tuned Surprise SVD, beaten by every seed's search.
    assert close_and_cheap[1].endswith(": MET") and too_far[1].endswith("NOT MET")


def test_the_surprise_bar_applies_to_mf_spaces_only():
    assert all(bench_search.SPACES[space]["model"] == "mf" for space in ("mf", "mf-reg"))
    lines = targets([outcome("deepmf", "random", "none", 0, 0.95, 400), outcome("deepmf", "tpe", "asha", 0, 0.95, 100)])
    assert len(lines) == 1 and "Surprise" not in lines[0]


def test_the_command_prints_the_tables_and_keeps_each_database_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DMF_DATA_DIR", str(tmp_path))  # which the script would otherwise set for the session
    monkeypatch.setattr(sys, "argv", ["bench_search.py", "--data", "synthetic-100k", "--spaces", "mf", "--trials", "1",
                                      "--seeds", "0", "--configs", "random/none", "--keep", str(tmp_path / "kept")])

    assert bench_search.main() == 0

    printed = capsys.readouterr().out
    assert "| mf | random | none | 1 | 1 | 0.0 |" in printed and "20 (100%)" in printed
    assert [path.name for path in (tmp_path / "kept").iterdir()] == ["mf-random-none-0.db"]
