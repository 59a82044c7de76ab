"""What a person types for a search (store/search.py's parse_search): each range form, comma lists and
fixed values, and every mistake refused in one line that names the field, before anything is queued."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from store.errors import ParamError
from store.params import RunParams
from store.search import DEFAULT_VAL_SIZE, MAX_TRIALS, Dimension, SearchSpec, parse_search
from tests.processes import write_ratings

BASE = RunParams(data="synthetic-100k", epochs=3, device="cpu")


def _space(values: dict[str, str], **options) -> dict[str, Dimension]:
    return {dim.name: dim for dim in parse_search(values, BASE, **options).space}


@pytest.mark.parametrize("text, kind, low, high, log", [
    ("1e-4..1e-2", "float", 1e-4, 1e-2, False),
    ("1e-4..1e-2:log", "float", 1e-4, 1e-2, True),
    (" 1e-4 .. 1e-2 ", "float", 1e-4, 1e-2, False),  # spaces around the numbers are forgiven
])
def test_a_float_range_is_uniform_or_log(text, kind, low, high, log) -> None:
    assert _space({"lr": text})["lr"] == Dimension("lr", kind, low, high, log)


@pytest.mark.parametrize("text, log", [("8..64", False), ("8..64:int", False), ("8..64:log", True),
                                       ("8..64:int:log", True)])
def test_an_int_parameters_range_is_always_integers(text, log) -> None:
    assert _space({"k": text})["k"] == Dimension("k", "int", 8, 64, log)


def test_a_comma_list_is_categorical_with_each_choice_written_once_as_typed_back() -> None:
    space = _space({"bias": "true,FALSE,yes", "lr": "1e-3,0.001,1e-2", "model": "deepmf,neumf",
                    "hidden": "10,5/64,32"})
    assert space["bias"] == Dimension("bias", "categorical", choices=("true", "false"))
    assert space["lr"].choices == ("0.001", "0.01")
    assert space["hidden"].choices == ("10,5", "64,32")
    assert [space["bias"].value(c) for c in space["bias"].choices] == [True, False]
    assert space["hidden"].value("64,32") == (64, 32)


def test_single_values_are_fixed_into_the_base_and_val_size_defaults_to_a_tenth() -> None:
    spec = parse_search({"k": "32", "lr": "1e-3..1e-2", "bias": "true"}, BASE)
    assert [dim.name for dim in spec.space] == ["lr"]
    assert (spec.base.k, spec.base.bias, spec.base.epochs, spec.base.val_size) == (32, True, 3, DEFAULT_VAL_SIZE)
    assert parse_search({"lr": "1e-3..1e-2", "val_size": "0.2"}, BASE).base.val_size == 0.2
    assert parse_search({"lr": "1e-3..1e-2"}, BASE.replace(val_size=0.3)).base.val_size == 0.3


def test_each_trials_parameters_are_the_base_with_what_was_drawn() -> None:
    spec = parse_search({"lr": "1e-4..1e-2:log", "k": "8..64", "bias": "true,false"}, BASE)
    params = spec.params_for({"lr": 3e-3, "k": 17, "bias": "true"})
    assert (params.lr, params.k, params.bias, params.epochs, params.val_size) == (3e-3, 17, True, 3, 0.1)
    assert {dim.name: dim.sampled(params) for dim in spec.space} == {"lr": 3e-3, "k": 17, "bias": "true"}


@pytest.mark.parametrize("values, options, message", [
    ({"lr": "1e-3.."}, {}, r"^lr: '1e-3\.\.' is an empty range"),
    ({"lr": "..1"}, {}, r"^lr: '\.\.1' is an empty range"),
    ({"lr": ".."}, {}, r"^lr: '\.\.' is an empty range"),
    ({"lr": "1e-2..1e-3"}, {}, r"^lr: .*LOW is above HIGH"),
    ({"lr": "1e-2..1e-2"}, {}, r"^lr: .*LOW equals HIGH"),
    ({"weight_decay": "0..1e-3:log"}, {}, r"^weight_decay: .*:log range needs LOW > 0"),
    ({"k": "0..8:log"}, {}, r"^k: .*:log range needs LOW > 0"),
    ({"lr": "1e-3..1e-2:int"}, {}, r"^lr: .*not a whole number, so :int does not apply"),
    ({"lr": "1e-3..1e-2:sqrt"}, {}, r"^lr: .*write :log, :int or :int:log"),
    ({"lr": "1e-3..1e-2:log:log"}, {}, r"^lr: .*write :log, :int or :int:log"),
    ({"bias": "0..1"}, {}, r"^bias: .*is a range, but bias is not a number"),
    ({"optimizer": "0..1"}, {}, r"^optimizer: .*is a range, but optimizer is not a number"),
    ({"hidden": "1..4", "model": "deepmf"}, {}, r"^hidden: .*is a range, but hidden is not a number"),
    ({"model": "1..4"}, {}, r"^model: .*is a range, but model is not a number"),
    ({"lr": "1e-3..1e-2"}, {"trials": 0}, r"^trials must be a whole number from 1 to 10,000 \(got 0\)"),
    ({"lr": "1e-3..1e-2"}, {"trials": MAX_TRIALS + 1}, r"^trials must be a whole number"),
    ({"lr": "1e-3..1e-2"}, {"sampler": "bayes"}, r"^unknown sampler 'bayes': choose one of tpe, random"),
    ({"lr": "1e-3..1e-2"}, {"pruner": "early"}, r"^unknown pruner 'early': choose one of none, median"),
    ({"lr": "1e-3..1e-2"}, {"metric": "test"}, r"^metric: .*choosing by test RMSE would tune on the test set"),
    ({"lr": "1e-3", "k": "16"}, {}, r"^nothing to search"),
    ({}, {}, r"^nothing to search"),
    ({"lr": "1e-3..1e-2", "val_size": "0"}, {}, r"^val_size: .*needs a validation part"),
    ({"lr": "1e-3..1e-2", "data": "ml-100k,synthetic-100k"}, {}, r"^data: a search compares trials on one dataset"),
    ({"lr": "1e-3..1e-2", "device": "cpu,cuda"}, {}, r"^device: give one device"),
    ({"lr": "1e-3..1e-2", "split_seed": "1..9"}, {}, r"^split_seed: every trial must see the same split"),
    ({"lr": "1e-3..1e-2", "test_size": "0.1,0.2"}, {}, r"^test_size: every trial must see the same split"),
    ({"val_size": "0.1..0.2"}, {}, r"^val_size: every trial must see the same split"),
    ({"hidden": "10,5/64,32", "model": "mf"}, {}, r"^hidden: mf does not use it"),
    ({"dropout": "0..0.5"}, {}, r"^dropout: mf does not use it"),
    ({"lr": "0..1"}, {}, r"^lr: must be > 0 \(got 0 in '0\.\.1'\)"),
    ({"dropout": "0..1", "model": "deepmf"}, {}, r"^dropout: must be >= 0 and < 1 \(got 1 in '0\.\.1'\)"),
    ({"lr": "1e-3..inf"}, {}, r"^lr: 'inf' is not a finite number"),
    ({"k": "8.5..64"}, {}, r"^k: '8\.5' is not an integer"),
    ({"lr": "1e-3..1e-2"}, {"sampler": "grid"}, r"^lr: the grid sampler needs a finite space"),
    ({"nope": "1..2"}, {}, r"^unknown parameter 'nope'"),
    # Every corner of the space must be a run that can be queued.
    ({"optimizer": "adam,sparse_adam"}, {}, r"^optimizer sparse_adam takes no weight decay.*\(in the search space\)"),
])
def test_each_mistake_is_one_line_naming_what_is_wrong(values, options, message) -> None:
    with pytest.raises(ParamError, match=message) as raised:
        parse_search(values, BASE, **options)
    assert "\n" not in str(raised.value)


def test_trials_are_counted_from_one_to_the_most() -> None:
    assert parse_search({"lr": "1e-3..1e-2"}, BASE, trials=1).trials == 1
    assert parse_search({"lr": "1e-3..1e-2"}, BASE, trials=MAX_TRIALS).trials == MAX_TRIALS


def test_the_grid_sampler_runs_each_point_once_at_most() -> None:
    values = {"k": "8..10", "bias": "true,false"}
    spec = parse_search(values, BASE, sampler="grid", trials=50)
    assert (spec.grid_size(), spec.trials) == (6, 6)
    assert parse_search(values, BASE, sampler="grid", trials=4).trials == 4
    assert spec.grid() == {"k": [8, 9, 10], "bias": ["true", "false"]}
    # Other samplers keep every trial asked for: their space is not a list of points.
    assert parse_search(values, BASE, sampler="random", trials=50).trials == 50


def test_a_spec_survives_its_json() -> None:
    spec = parse_search({"lr": "1e-4..1e-2:log", "k": "8..64", "hidden": "10,5/64,32", "model": "deepmf,mf",
                         "epochs": "4"}, BASE, trials=7, sampler="qmc", pruner="hyperband", seed=11, retries=0)
    assert SearchSpec.from_dict(spec.to_dict()) == spec
    assert spec.max_epochs() == 4


def test_the_preview_names_the_trials_the_sampler_and_each_dimension() -> None:
    spec = parse_search({"lr": "1e-4..1e-2:log", "k": "8..64", "bias": "true,false"}, BASE, trials=40)
    lines = spec.describe()
    assert lines[-3:] == ["  lr: 0.0001..0.01 (uniform, log)", "  k: 8..64 (integers)", "  bias: true | false"]
    head = " ".join(lines[:-3])
    for part in ("40 trials", "sampler tpe", "pruner asha", "validation RMSE", "val_size 0.1", "model=mf"):
        assert part in head
    assert all(len(line) <= 80 for line in lines)  # the form's preview and --dry-run at 80 columns


def test_a_relative_data_path_is_a_file_not_a_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ratings = write_ratings(tmp_path / "u.data")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    spec = parse_search({"data": os.path.join("..", "u.data"), "lr": "1e-3..1e-2"}, BASE)
    assert spec.base.data == str(ratings)
