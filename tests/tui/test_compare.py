"""Compare at 80x24: the table beside the curves, or above them when the runs are too many for
that; the best validation RMSE where a run has one; a log RMSE axis on o; each run in its colour."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from dmf_tui.components.compare import CompareScreen
from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.fitted_table import FittedTable
from store.params import RunParams
from tests.tui.conftest import TextualPrivate, make_app, settle


def finished(store, worker, count: int, *, val: bool = False) -> list[int]:
    """`count` done runs on one dataset, differing in lr; with a validation RMSE per epoch if `val`."""
    ids = []
    for i in range(count):
        params = RunParams(data="synthetic-100k", epochs=4, lr=10.0 ** -(i + 1), val_size=0.1 if val else 0)
        run = worker.start(params)
        for epoch in range(1, 5):
            test = 1.0 + i / 10 + 0.5 / epoch
            store.record_epoch(run.id, epoch, train_rmse=test - 0.1, test_rmse=test,
                               val_rmse=test + 0.01 if val else None, seconds=1.0)
        store.finish_run(run.id, "done")
        ids.append(run.id)
    return ids


async def open_compare(app, pilot, run_ids: list[int]) -> CompareScreen:
    await settle(pilot)
    app.push_screen(CompareScreen(run_ids))
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, CompareScreen)
    return screen


def rows(table: FittedTable) -> dict[str, list[str]]:
    shown = (table.get_row_at(i) for i in range(table.row_count))
    return {str(name): [str(cell) for cell in cells] for name, *cells in shown}


def on_screen(widget, app) -> bool:
    return widget.region.area > 0 and bool(app.screen.region.contains_region(widget.region))


def key_text(screen: CompareScreen) -> Content:
    """The key under the curves, as its Static draws it."""
    text = screen.query_one("#compare-key", Static).render()
    assert isinstance(text, Content)
    return text


async def test_two_runs_sit_beside_their_curves_at_80x24(store, worker):
    ids = finished(store, worker, 2)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, ids)
        table, curves = screen.query_one("#compare-table", FittedTable), screen.query_one(RmseCurves)
        assert not screen.has_class("-stacked")
        assert curves.region.x >= table.region.right and curves.region.width >= 40
        assert table.virtual_size.width <= table.region.width  # every column whole
        for widget in (table, curves, screen.query_one("#compare-key"), screen.query_one("#compare-common")):
            assert on_screen(widget, app), widget
        assert "best val" not in rows(table)  # no run has a validation split


async def test_many_runs_go_above_their_curves_at_80x24_and_beside_them_at_140(store, worker):
    ids = finished(store, worker, 6)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, ids)
        table, curves = screen.query_one("#compare-table", FittedTable), screen.query_one(RmseCurves)
        assert screen.has_class("-stacked")
        assert curves.region.y >= table.region.bottom and curves.region.width >= 70
        assert curves.region.height >= 8
        assert table.virtual_size.width <= table.region.width
        assert all(on_screen(widget, app) for widget in (table, curves, screen.query_one("#compare-common")))

        await pilot.resize_terminal(140, 40)
        await settle(pilot)
        assert not screen.has_class("-stacked")
        assert curves.region.x >= table.region.right


async def test_the_best_validation_rmse_shows_when_a_run_has_one(store, worker):
    ids = finished(store, worker, 1, val=True) + finished(store, worker, 1)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, ids)
        shown = rows(screen.query_one("#compare-table", FittedTable))
        assert shown["best val"] == [f"{store.get_run(ids[0]).best_val_rmse:.4f}", "-"]
        # Its validation curve is drawn too, told apart in the key.
        assert "darker: val" in key_text(screen).plain


async def test_o_draws_the_curves_on_a_log_axis_and_t_adds_the_train_curves(store, worker):
    ids = finished(store, worker, 3)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, ids)
        curves = screen.query_one(RmseCurves)
        await pilot.press("o")
        await settle(pilot)
        assert curves.log_scale and key_text(screen).plain.startswith("RMSE per epoch (log): ")
        await pilot.press("t")  # redrawn with train curves, still on the log axis
        await settle(pilot)
        assert curves.log_scale and "dots: train" in key_text(screen).plain
        await pilot.press("o")
        await settle(pilot)
        assert not curves.log_scale and key_text(screen).plain.startswith("RMSE per epoch: ")


async def test_each_run_has_a_colour_of_its_own_in_the_key(store, worker):
    ids = finished(store, worker, 4)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, ids)
        lines = TextualPrivate.screen_lines(app)
        key = screen.query_one("#compare-key", Static)
        assert all(f"#{run_id}" in lines[key.region.y] for run_id in ids)
        text = key_text(screen)
        colours = {str(span.style) for span in text.spans if text.plain[span.start:span.end] == "⣿⣿"}
        assert len(colours) == 4


async def test_same_in_all_names_what_the_runs_share_but_not_every_default(store, worker):
    ids = finished(store, worker, 2)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(app, pilot, ids)
        common = str(screen.query_one("#compare-common", Static).render())
    # A headline parameter shows at its default, any other only where the runs moved it off its default.
    assert "k=10" in common and "epochs=4" in common and "data=synthetic-100k" in common
    assert "momentum" not in common and "schedule" not in common and "reg=" not in common
