"""Run parameters: the lab's defaults, validation messages and grid expansion."""

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
    ],
)
def test_bad_values_name_the_field(field, text, message):
    with pytest.raises(ParamError, match="^" + message.replace("(", r"\(")):
        expand_grid({field: text})


def test_round_trip_through_stored_json():
    p = RunParams(model="deepmf", hidden=(64, 32), lr=3e-3, bias=True)
    assert RunParams.from_dict(p.to_dict()) == p
    assert RunParams.from_dict({**p.to_dict(), "from_a_newer_version": 1}) == p


def test_text_values_round_trip():
    for name, value in [("hidden", (64, 32)), ("lr", 0.003), ("bias", True), ("k", 32)]:
        assert parse_value(name, format_value(name, value)) == value


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
