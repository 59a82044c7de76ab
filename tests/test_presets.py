"""Presets (store/presets.py): whole configurations to start from, `--preset NAME` on `add` and `run`
with the flags given winning, `best`, and `dmf-tui presets` listing them with their figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dmf_tui.cli import main
from store import presets
from store.db import open_store
from store.errors import ParamError
from store.params import PARAMS, RunParams, format_value
from store.presets import BEST, KEPT, PRESETS, SETS, Figure, Preset

# Away from the defaults in every parameter a preset leaves alone, and in some it sets.
ELSEWHERE = RunParams(data="synthetic-100k", device="cpu", seed=7, split_seed=3, test_size=0.25,
                      batch_size=7, optimizer="sgd", k=5, epochs=2)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_a_valid_configuration_that_holds_out_validation(name: str) -> None:
    params = PRESETS[name].apply(RunParams())
    assert params == params.validate()
    assert params.val_size == 0.1  # the best epoch is chosen by validation


def test_a_preset_sets_every_parameter_but_the_data_split_device_and_seed() -> None:
    mf = PRESETS["mf"]
    applied = mf.apply(ELSEWHERE)
    # Not only its own values: the batch size and optimizer left in ELSEWHERE would train
    # something other than what the preset's figures measured.
    assert applied == RunParams(**mf.values, **{name: getattr(ELSEWHERE, name) for name in KEPT})
    assert set(SETS) | set(KEPT) == set(PARAMS)


def test_a_preset_cannot_set_what_it_must_leave() -> None:
    with pytest.raises(ValueError, match="data cannot be set by a preset"):
        Preset("mine", "on my data", {"data": "ml-1m", "k": 8})


def test_best_names_a_preset_and_names_are_forgiving_of_case_and_spaces() -> None:
    assert presets.preset("best") is PRESETS[BEST]
    assert presets.preset(" MF ") is PRESETS["mf"]
    assert presets.names() == ("best", *PRESETS)


def test_an_unknown_preset_is_one_line_naming_the_choices() -> None:
    with pytest.raises(ParamError) as caught:
        presets.preset("svd")
    assert str(caught.value) == "preset: 'svd' is not one of " + ", ".join(presets.names())


def test_fingerprint_changes_with_any_setting_but_not_with_how_it_is_written() -> None:
    mf = PRESETS["mf"]
    same = dataclasses.replace(mf, values={**mf.values, "optimizer": "adam"})  # adam is the default
    other = dataclasses.replace(mf, values={**mf.values, "reg": 0.06})
    assert same.fingerprint() == mf.fingerprint() != other.fingerprint()


@pytest.mark.parametrize("name", PRESETS)
def test_every_figure_was_measured_on_the_preset_as_it_is(name: str) -> None:
    preset = PRESETS[name]
    assert set(preset.figures) <= set(presets.MEASURED_ON)
    for data, figure in preset.figures.items():
        assert figure.config == preset.fingerprint(), (
            f"{name} changed since measured on {data}: run bench/bench_presets.py {name} and paste its figures")


def test_best_is_the_most_accurate_by_validation_where_measured() -> None:
    measured = {name: p.figures["ml-100k"].val_rmse for name, p in PRESETS.items() if "ml-100k" in p.figures}
    if not measured:
        pytest.skip("no preset has been measured on ML-100K yet")
    assert BEST in measured, "best names a preset that was not measured"
    assert measured[BEST] == min(measured.values())


# --- the command line -------------------------------------------------------------------------


def queued(db: str) -> list[RunParams]:
    with open_store(db) as store:
        return [run.params for run in store.queue()]


def test_add_with_a_preset_queues_it_and_the_flags_given_win(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "add", "--data", "synthetic-100k", "--preset", "mf", "--reg", "0.02,0.1",
                 "--seed", "3"]) == 0
    assert capsys.readouterr().out.startswith("Queued 2 runs")
    mf = PRESETS["mf"].apply(RunParams(data="synthetic-100k"))
    assert queued(db) == [mf.replace(reg=0.02, seed=3), mf.replace(reg=0.1, seed=3)]


def test_add_preset_best_is_the_best_preset(db: str) -> None:
    assert main(["--db", db, "add", "--data", "synthetic-100k", "--preset", "best"]) == 0
    assert queued(db) == [PRESETS[BEST].apply(RunParams(data="synthetic-100k"))]


def test_add_like_with_a_preset_keeps_the_runs_data_and_seed(db: str) -> None:
    with open_store(db) as store:
        store.enqueue(ELSEWHERE)
    assert main(["--db", db, "add", "--like", "1", "--preset", "neumf", "--epochs", "3"]) == 0
    assert queued(db)[1] == PRESETS["neumf"].apply(ELSEWHERE).replace(epochs=3)


def test_add_dry_run_shows_what_the_preset_sets(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, "add", "--data", "synthetic-100k", "--preset", "lab-deepmf", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Would queue 1 run:", "  1. model=deepmf data=synthetic-100k val_size=0.1 patience=5"]


@pytest.mark.parametrize("command", ["add", "run"])
def test_an_unknown_preset_is_one_line_exit_2_and_nothing_is_queued(
        command: str, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db, command, "--data", "synthetic-100k", "--preset", "svd"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "dmf-tui: error: preset: 'svd' is not one of " + ", ".join(presets.names())]
    assert not Path(db).exists() or queued(db) == []


def test_run_with_a_preset_trains_it_with_the_flags_given(db: str, tmp_path: Path) -> None:
    ratings = tmp_path / "tiny.data"
    ratings.write_text("".join(f"{u}\t{i}\t{1 + (u * i) % 5}\t0\n" for u in range(1, 13) for i in range(1, 13)))
    assert main(["--db", db, "run", "--data", str(ratings), "--device", "cpu", "--preset", "mf", "--k", "4",
                 "--epochs", "2", "--json"]) == 0
    with open_store(db) as store:
        (run,) = store.leaderboard()
    assert run.params == PRESETS["mf"].apply(RunParams(data=str(ratings), device="cpu")).replace(k=4, epochs=2)
    assert run.status == "done"


MEASURED = Figure(test_rmse=0.9012, val_rmse=0.8987, best_epoch=12, epochs=17, seconds=95.4,
                  measured="2025-01-01 on a test", config="")


@pytest.fixture
def measured_mf(monkeypatch: pytest.MonkeyPatch) -> Preset:
    """mf with a figure on ML-100K only, and lab with none."""
    mf = dataclasses.replace(PRESETS["mf"], figures={"ml-100k": MEASURED})
    monkeypatch.setitem(PRESETS, "mf", mf)
    monkeypatch.setitem(PRESETS, "lab", dataclasses.replace(PRESETS["lab"], figures={}))
    return mf


def test_presets_lists_each_with_its_figures_or_not_measured(
        measured_mf: Preset, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # A name starts two lines: its figures, then further down its summary.
    figures = {name: next(line.split() for line in lines if line.split()[:1] == [name]) for name in PRESETS}
    assert figures["mf"] == ["mf", "0.8987", "0.9012", "1m35s", "not", "measured"]
    assert figures["lab"] == ["lab", "not", "measured", "not", "measured"]
    assert any(PRESETS["neumf"].summary in line for line in lines)
    assert any(line.startswith(f"--preset best is {BEST}") for line in lines)


def test_presets_json_has_every_setting_and_figure(measured_mf: Preset, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["best"] == BEST
    assert [p["name"] for p in listed["presets"]] == list(PRESETS)
    mf = next(p for p in listed["presets"] if p["name"] == "mf")
    assert mf["settings"]["k"] == PRESETS["mf"].values["k"] != PARAMS["k"].default and set(mf["settings"]) == set(SETS)
    assert mf["figures"] == {"ml-100k": dataclasses.asdict(MEASURED)}


def test_presets_name_shows_every_flag_it_sets(measured_mf: Preset, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "best"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{BEST} (--preset best): {PRESETS[BEST].summary}"
    assert len([line for line in lines if line.startswith("  --")]) == len(SETS)
    assert main(["presets", "mf"]) == 0
    out = capsys.readouterr().out
    assert f"  --reg {format_value(PRESETS['mf'].values['reg'])}  (not the default)" in out
    assert "  --optimizer adam\n" in out
    assert ("ML-100K (ml-100k): test RMSE 0.9012 (val 0.8987) at epoch 12 of 17, 1m35s\n"
            "  measured 2025-01-01 on a test\n") in out
    assert "ML-1M shape (synthetic-1m): not measured" in out
