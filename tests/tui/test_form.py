"""The New experiment form covers every hyperparameter, as the CLI does, and a clone is exact."""

from __future__ import annotations

import argparse

from textual.widgets import Collapsible, Input, Label

from dmf_tui.cli import build_parser
from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.messages import OpenRun
from store.params import PARAMS, RunParams
from tests.tui.conftest import make_app, settle

# Every parameter away from its default, the advanced ones included, with values whose shortest
# text is long (a clone that rounded 1/3 would queue another model).
UNUSUAL = RunParams(model="deepmf", data="synthetic-100k", k=7, hidden=(12, 6, 3), lr=1 / 3 * 1e-2,
                    weight_decay=0.1 + 0.2, batch_size=100, epochs=3, seed=5, device="cpu", split_seed=7,
                    test_size=0.25, val_size=0.15, patience=2, dropout=0.05, bias=True, init_std=0.02,
                    optimizer="adamw")


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
    assert _add_flags() == set(PARAMS) | {"name", "retries", "like", "dry_run"}


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
