"""Run parameters: the lab's defaults, validation messages and grid expansion."""

import os
import re
from pathlib import Path

import pytest

from store.errors import ParamError
from store.params import RunParams, expand_grid, format_value, parse_value


def test_defaults_are_the_labs():
    p = RunParams()
    assert (p.model, p.k, p.hidden, p.lr, p.weight_decay, p.batch_size) == ("mf", 10, (10, 5), 1e-3, 1e-5, 512)
    assert (p.test_size, p.split_seed, p.val_size, p.patience) == (0.2, 42, 0.0, 0)


def test_grid_is_the_cartesian_product_in_order():
    runs = expand_grid({"lr": "1e-3,1e-2", "k": "10,32", "model": "mf"})
    assert [(r.lr, r.k) for r in runs] == [(1e-3, 10), (1e-3, 32), (1e-2, 10), (1e-2, 32)]


def test_hidden_alternatives_use_slashes():
    runs = expand_grid({"model": "deepmf", "hidden": "10,5/64,32,16"})
    assert [r.hidden for r in runs] == [(10, 5), (64, 32, 16)]


def test_duplicate_alternatives_queue_once():
    assert len(expand_grid({"lr": "1e-3,0.001"})) == 1


@pytest.mark.parametrize(
    "field, text, message",
    [
        ("lr", "-1", "lr: must be > 0"),
        ("lr", "0", "lr: must be > 0"),
        ("k", "0", "k: must be > 0"),
        ("k", "ten", "k: 'ten' is not an integer"),
        ("epochs", "-3", "epochs: must be > 0"),
        ("batch_size", "0", "batch_size: must be > 0"),
        ("test_size", "1", "test_size: must be between 0 and 1"),
        ("model", "svd", "model: must be one of mf, deepmf"),
        ("device", "tpu", "device: must be auto, cpu, cuda, cuda:N or mps"),
        ("hidden", "10,0", "hidden: must be one or more sizes > 0"),
        ("lr", "1e-3,,1e-2", "lr: empty value"),
        ("hidden", "10,,5", "hidden: '10,,5' is not sizes like 10,5"),
        ("hidden", "10,5,", "hidden: '10,5,' is not sizes like 10,5"),
        # Beyond int64 a value cannot be stored (SQLite raises OverflowError) or trained with.
        ("k", "9" * 30, "k: must fit in 64 bits"),
        ("seed", str(2**63), "seed: must fit in 64 bits"),
        ("epochs", "9" * 30, "epochs: must fit in 64 bits"),
        ("batch_size", "9" * 30, "batch_size: must fit in 64 bits"),
        ("patience", "9" * 30, "patience: must fit in 64 bits"),
        ("hidden", "10," + "9" * 30, "hidden: must fit in 64 bits"),
        ("split_seed", str(2**32), "split_seed: must be between 0 and 2**32 - 1"),
        ("lr", "inf", "lr: must be a finite number"),
        ("weight_decay", "nan", "weight_decay: must be a finite number"),
        ("init_std", "1e400", "init_std: must be a finite number"),
    ],
)
def test_bad_values_name_the_field(field, text, message):
    with pytest.raises(ParamError, match="^" + re.escape(message)):
        expand_grid({field: text})


def test_round_trip_through_stored_json():
    p = RunParams(model="deepmf", hidden=(64, 32), lr=3e-3, bias=True)
    assert RunParams.from_dict(p.to_dict()) == p
    assert RunParams.from_dict({**p.to_dict(), "from_a_newer_version": 1}) == p


def test_text_values_round_trip():
    # 0.1 + 0.2 and 1/3 print longer than %g: the form and `add --like` must get them back exactly.
    for name, value in [("hidden", (64, 32)), ("lr", 0.003), ("lr", 0.1 + 0.2), ("weight_decay", 1 / 3),
                        ("bias", True), ("k", 32)]:
        assert parse_value(name, format_value(value)) == value
    assert format_value(0.001) == "0.001"


def test_mf_runs_that_differ_only_in_deepmf_fields_queue_once():
    runs = expand_grid({"model": "mf,deepmf", "hidden": "10,5/64,32", "dropout": "0,0.2"})
    assert [(r.model, r.hidden, r.dropout) for r in runs] == [
        ("mf", (10, 5), 0.0),
        ("deepmf", (10, 5), 0.0), ("deepmf", (10, 5), 0.2),
        ("deepmf", (64, 32), 0.0), ("deepmf", (64, 32), 0.2),
    ]


def test_a_data_file_is_stored_as_an_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "u.data").write_text("1\t1\t5\t0\n")
    monkeypatch.chdir(tmp_path)
    assert expand_grid({"data": "u.data"})[0].data == str(tmp_path / "u.data")
    assert expand_grid({"data": "ml-1m"})[0].data == "ml-1m"


def test_a_fifo_or_device_as_data_is_refused_before_anything_opens_it(tmp_path):
    fifo = tmp_path / "ratings.fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    for path in (fifo, Path("/dev/null")):
        with pytest.raises(ParamError, match=f"^data: '{path}' is not a regular file"):
            expand_grid({"data": str(path)})
