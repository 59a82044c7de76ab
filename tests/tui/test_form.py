"""The New experiment form covers every hyperparameter, as the CLI does, and a clone is exact."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Collapsible, Input, Label

from dmf_tui.cli import build_parser
from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.messages import NewExperiment, OpenRun
from store import catalog
from store.params import PARAMS, RunParams
from tests.tui.conftest import make_app, settle

# Every parameter away from its default, the advanced ones included, with values whose shortest
# text is long (a clone that rounded 1/3 would queue another model).
UNUSUAL = RunParams(model="deepmf", data="synthetic-100k", k=7, hidden=(12, 6, 3), lr=1 / 3 * 1e-2,
                    weight_decay=0.1 + 0.2, batch_size=100, epochs=3, seed=5, device="cpu", split_seed=7,
                    test_size=0.25, val_size=0.15, patience=2, rank_every=2, dropout=0.05, bias=True, init_std=0.02,
                    optimizer="adamw", reg=0.01, reg_bias=0.02, emb_dropout=0.1, momentum=0.8, schedule="cosine",
                    warmup=1, lr_step=3, lr_gamma=0.3, clip=True, reg_kernel=0.01, pretrain_epochs=2, conv_size=5,
                    dot_scale=0.5)


def _add_flags() -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {dest for action in subparsers.choices["add"]._actions if (dest := action.dest) not in ("help", "db")}


def test_unusual_differs_from_the_defaults_in_every_parameter():
    assert all(getattr(UNUSUAL, name) != declared.default for name, declared in PARAMS.items())


async def test_the_form_and_the_cli_take_the_same_parameters_as_run_params(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        form = pilot.app.screen
        assert isinstance(form, NewRunScreen)
        # An input without an id would read "None" here, which no comparison below accepts.
        fields = {str(i.id).removeprefix("field-") for i in form.query(Input)}
    # The queue options beyond the parameters are the same in both too: the sweep's name, retries.
    assert fields == set(PARAMS) | {"name", "retries"}
    assert _add_flags() == set(PARAMS) | {"name", "retries", "like", "dry_run", "preset"}


async def test_the_advanced_fields_are_folded_and_open_on_an_error(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        form = pilot.app.screen
        advanced = form.query_one("#advanced", Collapsible)
        assert advanced.collapsed
        assert {i.id for i in advanced.query(Input)} == {f"field-{n}" for n, d in PARAMS.items() if d.advanced}
        form.query_one("#field-val_size", Input).value = "1.5"
        await settle(pilot)
        assert not advanced.collapsed
        assert "val_size: must be >= 0 and < 1" in str(form.query_one("#message-val_size", Label).render())


async def test_clone_queues_exactly_the_run_it_came_from(store):
    run_id = store.enqueue(UNUSUAL, retries=3)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(OpenRun(run_id))
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        await pilot.press("l")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen)
        assert "1 run will be queued" in str(form.query_one("#preview", Label).render())
        form.query_one("#field-name", Input).value = "again"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, NewRunScreen)
    (clone,) = [run for run in store.queue() if run.id != run_id]
    assert (clone.params, clone.retries) == (UNUSUAL, 3)
    assert [(s.name, s.runs) for s in store.sweeps()] == [("again", 1)]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder: no registered dataset is downloaded until a test puts its file there."""
    folder = tmp_path / "data"
    monkeypatch.setenv("DMF_DATA_DIR", str(folder))
    return folder


def download(data_dir: Path, name: str) -> None:
    """Put a file where the catalog looks for dataset `name` (its content is never read here)."""
    path = catalog.dataset_path(name, data_dir)
    path.parent.mkdir(parents=True)
    path.write_text("1\t1\t5\t0\n")


async def opened_form(pilot) -> NewRunScreen:
    await pilot.press("n")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, NewRunScreen)
    return form


async def test_a_new_form_starts_on_the_dataset_last_used(store, data_dir):
    store.enqueue(RunParams(data="synthetic-1m"))
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        assert form.values()["data"] == "synthetic-1m"
        assert form.opened["data"] == "synthetic-1m"  # a default, not a change: esc does not ask


async def test_a_new_form_never_starts_on_a_dataset_that_is_not_there(store, data_dir):
    download(data_dir, "ml-100k")
    store.enqueue(RunParams(data="ml-1m"))  # last used, but not downloaded (any more)
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        assert form.values()["data"] == "ml-100k"  # the first one present
        assert catalog.present_names()[0] == "ml-100k"


async def test_a_new_form_on_an_empty_database_starts_on_the_first_dataset_present(store, data_dir):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        assert form.values()["data"] == catalog.present_names()[0] == "synthetic-100k"


async def test_a_dataset_typed_meanwhile_is_not_replaced_by_the_default(store, data_dir):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        form = NewRunScreen()
        await app.push_screen(form)  # mounted: the default is being looked up in a worker
        form.query_one("#field-data", Input).value = "synthetic-1m"
        await settle(pilot)
        assert form.values()["data"] == "synthetic-1m"


@pytest.mark.parametrize(("typed", "reason"), [
    ("ml-10m", "dataset ml-10m is not in"),
    ("nosuch", "unknown dataset 'nosuch'"),
    ("synthetic-1m,/no/such/ratings.csv", "no such file: /no/such/ratings.csv"),
])
async def test_a_dataset_that_cannot_be_used_is_refused_beside_its_field(store, data_dir, typed, reason):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        form.query_one("#field-data", Input).value = typed
        form.query_one("#field-k", Input).focus()
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form and store.queue() == []
        message = form.query_one("#message-data", Label)
        assert reason in str(message.render()) and message.has_class("error")
        assert app.focused is form.query_one("#field-data", Input)
        # Downloaded meanwhile, or typed again: the next ctrl+s checks again.
        form.query_one("#field-data", Input).value = "synthetic-100k"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert [run.params.data for run in store.queue()] == ["synthetic-100k"]


async def test_a_clone_keeps_its_dataset_and_is_checked_when_queued(store, data_dir):
    run_id = store.enqueue(RunParams(data="ml-1m"))
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.post_message(NewExperiment(store.get_run(run_id).params))
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen) and form.values()["data"] == "ml-1m"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "dataset ml-1m is not in" in str(form.query_one("#message-data", Label).render())
        assert [run.id for run in store.queue()] == [run_id]


def on_screen(widget: Widget, viewport: Region) -> bool:
    return viewport.contains_region(widget.region)


async def test_at_80x24_the_count_and_queue_button_show_however_far_the_fields_go(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        form.query_one("#advanced", Collapsible).collapsed = False
        await settle(pilot)
        fields = form.query_one("#form")
        assert fields.max_scroll_y > 0  # the fields do not fit: the test means something
        screen = Region(0, 0, 80, 23)  # above the footer
        for scrolled in ("home", "end"):
            getattr(fields, f"scroll_{scrolled}")(animate=False)
            await settle(pilot)
            for part in ("#preview", "#submit", "#close"):
                assert on_screen(form.query_one(part), screen), (part, scrolled)


async def test_at_80x24_queueing_with_an_error_below_the_fold_shows_that_field(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await opened_form(pilot)
        form.query_one("#advanced", Collapsible).collapsed = False
        retries = form.query_one("#field-retries", Input)
        retries.value = "-1"
        await settle(pilot)
        fields = form.query_one("#form")
        fields.scroll_home(animate=False)
        form.query_one("#field-model", Input).focus()
        await settle(pilot)
        assert not on_screen(retries, fields.region)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.focused is retries and on_screen(retries, fields.region)
        message = form.query_one("#message-retries", Label)
        assert on_screen(message, fields.region) and message.has_class("error")
