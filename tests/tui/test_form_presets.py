"""The form's Preset: choosing one fills every field it sets, leaves the data, split, device and
seed, and the fields can be tweaked after; at 80x24 it and its list are on screen."""

from __future__ import annotations

from textual.geometry import Region
from textual.widgets import Input, Label, Select

from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.param_form import PRESET_HINT
from store.params import RunParams, format_value
from store.presets import BEST, PRESETS, SETS
from tests.tui.conftest import make_app, settle


async def opened_form(pilot) -> NewRunScreen:
    await pilot.press("n")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, NewRunScreen)
    return form


def message(form: NewRunScreen) -> str:
    return str(form.query_one("#message-preset", Label).render())


async def test_a_preset_fills_its_fields_keeps_the_others_and_can_be_tweaked(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        assert message(form) == PRESET_HINT
        form.query_one("#field-data", Input).value = "synthetic-100k"
        form.query_one("#field-seed", Input).value = "1,2"
        form.query_one("#field-batch_size", Input).value = "7"  # a field the preset sets
        form.query_one("#preset", Select).value = "mf"
        await settle(pilot)
        assert message(form) == PRESETS["mf"].summary
        form.query_one("#field-reg", Input).value = "0.02"  # tweaked after
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, NewRunScreen)
    mf = PRESETS["mf"].apply(RunParams(data="synthetic-100k")).replace(reg=0.02)
    assert [run.params for run in store.queue()] == [mf.replace(seed=1), mf.replace(seed=2)]


async def test_a_second_preset_leaves_nothing_of_the_first(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        preset = form.query_one("#preset", Select)
        preset.value = "autorec"  # batch 256, no biases
        await settle(pilot)
        preset.value = "gmf"
        await settle(pilot)
        gmf = PRESETS["gmf"].apply(RunParams())
        assert {name: form.values()[name] for name in SETS} == {name: format_value(getattr(gmf, name)) for name in SETS}
        # gmf leaves the batch size at the default, which autorec changed, and turns biases on.
        assert (form.values()["batch_size"], form.values()["bias"]) == ("512", "true")


async def test_best_is_offered_and_chosen_with_the_keys_at_80x24(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        preset = form.query_one("#preset", Select)
        screen = Region(0, 0, 80, 23)  # above the footer
        assert screen.contains_region(preset.region)
        preset.focus()
        await pilot.press("enter")  # opens the list, on its first option: none
        await settle(pilot)
        assert preset.expanded
        assert screen.contains_region(form.query_one("SelectOverlay").region)  # every option shows
        await pilot.press("down", "enter")
        await settle(pilot)
        assert preset.value == "best" and not preset.expanded
        assert form.values()["model"] == PRESETS[BEST].settings()["model"]
        assert message(form) == PRESETS[BEST].summary


async def test_a_clone_starts_on_no_preset_and_its_own_values(store):
    params = RunParams(data="synthetic-100k", k=9, epochs=3)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        form = NewRunScreen(params)
        await app.push_screen(form)
        await settle(pilot)
        assert form.query_one("#preset", Select).is_blank()
        assert (form.values()["k"], form.values()["epochs"]) == ("9", "3")


async def test_a_combination_that_cannot_train_is_told_by_the_count_not_beside_a_field(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        form.query_one("#field-reg_bias", Input).value = "0.01"  # biases are off
        await settle(pilot)
        preview = form.query_one("#preview", Label)
        assert "reg_bias" not in form.errors
        assert str(preview.render()) == "reg_bias regularises the biases, which need --bias true"
        assert preview.has_class("error")
        # Turned on after, the field typed first is not left red, and the grid can be queued.
        form.query_one("#field-bias", Input).value = "true"
        await settle(pilot)
        assert form.errors == {} and str(preview.render()) == "1 run will be queued"
