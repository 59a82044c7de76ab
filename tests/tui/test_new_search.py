"""The New search form: ranges, choices and single values in every parameter field, the search
previewed (its trial count and space) before it is queued, each bad input refused beside the field
it names with nothing queued, and a queued search stored as typed. At 80x24."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from textual.geometry import Region
from textual.widgets import Collapsible, Input, Label, Select

from dmf_tui.components.confirm import Confirm
from dmf_tui.components.new_search import HINTS, PRUNER_HINTS, SAMPLER_HINTS, NewSearchScreen
from store.params import RunParams, format_value
from store.presets import PRESETS, SETS
from store.search import DEFAULT_TRIALS, PRUNERS, SAMPLERS, Dimension, SearchSpec
from tests.tui.conftest import make_app, settle

BASE = RunParams(data="synthetic-100k", epochs=3)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder: no registered dataset is downloaded (the synthetic ones need none)."""
    folder = tmp_path / "data"
    monkeypatch.setenv("DMF_DATA_DIR", str(folder))
    return folder


async def opened(pilot, base: RunParams | None = BASE) -> tuple[NewSearchScreen, list[int | None]]:
    """The form, pushed as the app would push it, and the list its result is put in when it closes."""
    results: list[int | None] = []
    form = NewSearchScreen(base)
    await pilot.app.push_screen(form, results.append)
    await settle(pilot)
    return form, results


def type_into(form: NewSearchScreen, **texts: str) -> None:
    for name, text in texts.items():
        form.query_one(f"#field-{name}", Input).value = text


def message(form: NewSearchScreen, name: str) -> str:
    return str(form.query_one(f"#message-{name}", Label).render())


def preview(form: NewSearchScreen) -> str:
    return str(form.query_one("#preview", Label).content)


def test_every_hint_fits_beside_its_field_at_80_columns():
    assert set(SAMPLER_HINTS) == set(SAMPLERS) and set(PRUNER_HINTS) == set(PRUNERS)
    # 32 columns at 80x24, 30 once the form scrolls (its scrollbar); 31 as the issue allows would wrap.
    hints = [*HINTS.values(), *SAMPLER_HINTS.values(), *PRUNER_HINTS.values()]
    assert max(len(hint) for hint in hints) <= 30


async def test_ranges_are_previewed_and_the_search_is_stored_as_typed(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form, results = await opened(pilot)
        # A search minimises validation RMSE: the validation part is there before anything is typed.
        assert form.values()["val_size"] == "0.1"
        assert form.texts()["trials"] == str(DEFAULT_TRIALS)
        assert (form.texts()["sampler"], form.texts()["pruner"]) == ("tpe", "asha")
        type_into(form, lr="1e-4..3e-2:log", k="8..64:int", bias="true,false", trials="40")
        await settle(pilot)
        base = BASE.replace(val_size=0.1)
        bias = Dimension("bias", "categorical", choices=("true", "false"))
        space = (Dimension("k", "int", 8, 64), Dimension("lr", "float", 1e-4, 3e-2, log=True), bias)
        assert preview(form) == "\n".join(SearchSpec(base, space, trials=40).describe())

        # The grid sampler needs a finite space, and stops at its size.
        form.query_one("#field-sampler", Select).value = "grid"
        await settle(pilot)
        assert message(form, "lr").startswith("lr: the grid sampler needs a finite space")
        type_into(form, lr="1e-3,1e-2", k="8..15")
        form.query_one("#field-pruner", Select).value = "median"
        await settle(pilot)
        space = (Dimension("k", "int", 8, 15), Dimension("lr", "categorical", choices=("0.001", "0.01")), bias)
        grid = SearchSpec(base, space, trials=8 * 2 * 2, sampler="grid", pruner="median")
        assert preview(form) == "\n".join(grid.describe())

        type_into(form, name="mine", sampler_seed="7", retries="1")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is not form
    record = store.get_search("mine")
    assert results == [record.id]
    assert record.spec == dataclasses.replace(grid, seed=7, retries=1)


# Each bad input, the field it is typed in and the start of the error shown beside that field.
BAD = [
    ("lr", "1e-3..", "lr: '1e-3..' is an empty range"),
    ("k", "64..8", "k: '64..8': LOW is above HIGH"),
    ("lr", "0..1e-2:log", "lr: '0..1e-2:log': a :log range needs LOW > 0"),
    ("weight_decay", "1e-5..1e-3:int", "weight_decay: '1e-5..1e-3:int': weight_decay is not a whole number"),
    ("bias", "0..1", "bias: '0..1' is a range, but bias is not a number"),
    ("optimizer", "1..2", "optimizer: '1..2' is a range, but optimizer is not a number"),
    ("dropout", "0..0.5", "dropout: mf does not use it"),  # model mf, fixed
    ("data", "synthetic-100k,synthetic-1m", "data: a search compares trials on one dataset"),
    ("val_size", "0", "val_size: a search minimises validation RMSE"),
    ("k", "", "k: needs a value"),
    ("k", "[red]1..2", "k: '[red]1' is not an integer"),  # typed text is never markup
    ("trials", "0", "trials must be a whole number from 1 to"),
    ("trials", "many", "trials: 'many' is not a whole number"),
    ("sampler_seed", "-1", "seed of the sampler must be between 0 and 2**32 - 1"),
    ("retries", "-1", "retries must be a whole number from 0 to"),
]


async def test_each_bad_input_is_told_beside_its_field_and_nothing_is_queued(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form, results = await opened(pilot)
        type_into(form, lr="1e-4..1e-2:log")  # a valid search, which each bad input below spoils
        await settle(pilot)
        assert form.errors == {}
        for name, text, error in BAD:
            field = form.query_one(f"#field-{name}", Input)
            before = field.value
            field.value = text
            await pilot.pause()  # the form checks itself when the field's change comes in
            assert message(form, name).startswith(error), (name, text, message(form, name))
            assert form.query_one(f"#message-{name}", Label).has_class("error") and field.has_class("-invalid")
            assert preview(form) == "Fix 1 field in red"
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert app.screen is form and app.focused is field, (name, text)
            field.value = before  # right again: the next input's "Fix 1 field" says its error was cleared
        await settle(pilot)
        assert form.errors == {}
        assert store.searches() == [] and results == []


async def test_what_no_one_field_is_to_blame_for_is_told_in_the_preview(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form, _ = await opened(pilot)
        assert preview(form).startswith("nothing to search: give at least one range")
        type_into(form, lr="1e-4..1e-2:log", reg_bias="0.01")  # biases are off
        await settle(pilot)
        assert preview(form).startswith("reg_bias regularises the biases, which need --bias true")
        assert form.errors == {} and form.query_one("#preview", Label).has_class("error")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form and store.searches() == []
        type_into(form, bias="true")
        await settle(pilot)
        assert preview(form).startswith(f"{DEFAULT_TRIALS} trials, ")


async def test_a_new_form_starts_on_a_dataset_there_and_one_not_there_is_refused_when_queued(store, data_dir):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form, results = await opened(pilot, None)
        assert form.values()["data"] == "synthetic-100k"  # nothing queued yet, nothing downloaded
        type_into(form, data="ml-1m", lr="1e-4..1e-2:log")  # ml-1m: not downloaded
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form and store.searches() == [] and results == []
        assert "dataset ml-1m is not in" in message(form, "data")
        assert app.focused is form.query_one("#field-data", Input)


async def test_a_form_opens_on_its_parameters_and_a_preset_fills_the_fields(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        form, _ = await opened(pilot, BASE.replace(k=32))  # BASE, as most runs, has no validation part
        assert (form.values()["val_size"], form.values()["k"]) == ("0.1", "32")  # the search's default
        # Emptied, it is the search's default too, as its placeholder says.
        type_into(form, val_size="", lr="1e-3,1e-2")
        await settle(pilot)
        assert "(val_size 0.1)" in preview(form)
        assert form.query_one("#field-val_size", Input).placeholder == "0.1"

        form.query_one("#preset", Select).value = "deepmf"
        await settle(pilot)
        deepmf = PRESETS["deepmf"].apply(BASE)
        assert {name: form.values()[name] for name in SETS} == {name: format_value(getattr(deepmf, name))
                                                                for name in SETS}
        assert form.values()["data"] == BASE.data  # a preset keeps the data


async def test_closing_returns_none_and_a_changed_form_asks_first(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form, results = await opened(pilot)
        form.query_one("#field-pruner", Select).value = "none"  # a choice is a change too
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        question = app.screen
        assert isinstance(question, Confirm)
        await pilot.press("escape")  # keep the form
        await settle(pilot)
        assert app.screen is form and results == []
        form.query_one("#field-pruner", Select).value = "asha"
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is not form and results == [None]
    assert store.searches() == []


async def test_at_80x24_the_fields_scroll_under_the_preview_and_buttons(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form, _ = await opened(pilot)
        form.query_one("#advanced", Collapsible).collapsed = False
        # Many parameters searched: the preview is longer than the room it has, and scrolls.
        type_into(form, model="mf,gmf", k="8..64", lr="1e-4..1e-2:log", weight_decay="0,1e-5", batch_size="64..1024",
                  epochs="2..5", seed="0,1", reg="0..0.1", emb_dropout="0..0.5")
        await settle(pilot)
        fields = form.query_one("#form")
        assert fields.max_scroll_y > 0 and form.query_one("#preview-box").max_scroll_y > 0
        screen = Region(0, 0, 80, 23)  # above the footer
        for scrolled in ("home", "end"):
            getattr(fields, f"scroll_{scrolled}")(animate=False)
            await settle(pilot)
            for part in ("#preview-box", "#submit", "#close"):
                assert screen.contains_region(form.query_one(part).region), (part, scrolled)
            assert fields.region.height >= 8  # the fields keep room to be read
