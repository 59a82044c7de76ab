"""The Live tab at 80x24: enter opens a running run, o toggles a log RMSE axis, and a whole panel
(its title, epochs and curves) fits on the screen."""

from __future__ import annotations

from textual.widgets import Static

from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.epoch_table import EpochTable
from dmf_tui.components.live_tab import LiveRun
from dmf_tui.components.run_detail import RunDetailScreen
from store.params import RunParams
from tests.tui.conftest import TextualPrivate, make_app, settle


def start_two(store, worker) -> tuple[int, int]:
    """Two running runs with two epochs each."""
    ids = []
    for k in (16, 32):
        run = worker.start(RunParams(data="synthetic-100k", epochs=10, k=k))
        worker.train(run.id, 2)
        ids.append(run.id)
    return ids[0], ids[1]


async def test_enter_on_the_live_tab_opens_the_first_running_run(store, worker):
    first, _ = start_two(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        assert app.focused is app.live_tab
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == first


async def test_enter_opens_the_run_whose_epochs_have_the_focus(store, worker):
    _, second = start_two(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        app.live_tab.query_one(f"#live-{second}", LiveRun).query_one(EpochTable).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == second


async def test_enter_with_nothing_running_says_so(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is app.screen_stack[0]
        assert TextualPrivate.notifications(app) == ["No run is running."]


async def test_o_draws_every_panels_curves_on_a_log_axis_and_back(store, worker):
    first, _ = start_two(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        assert [curves.log_scale for curves in app.live_tab.query(RmseCurves)] == [True, True]

        # A run that starts now draws as the others do.
        later = worker.start(RunParams(data="synthetic-100k", epochs=10, k=64))
        worker.train(later.id, 1)
        await settle(pilot)
        assert app.live_tab.query_one(f"#live-{later.id} RmseCurves", RmseCurves).log_scale
        top = app.live_tab.query_one(f"#live-{first} RmseCurves", RmseCurves).region
        assert "(log)" in TextualPrivate.screen_lines(app)[top.y][top.x:]  # the plot's title

        await pilot.press("o")
        await settle(pilot)
        assert not any(curves.log_scale for curves in app.live_tab.query(RmseCurves))


async def test_a_whole_panel_fits_at_80x24(store, worker):
    first, _ = start_two(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        panel = app.live_tab.query_one(f"#live-{first}", LiveRun)
        assert panel.region.bottom <= app.live_tab.region.bottom
        lines = TextualPrivate.screen_lines(app)
        # The title says all it has to say in its two lines, nothing cut at the edge.
        title = panel.query_one("#live-title", Static)
        what, progress = (line.strip() for line in lines[title.region.y:title.region.bottom])
        assert what == f"run {first} · {store.get_run(first).params.label()} · synthetic-100k · cpu"
        assert progress.startswith("epoch 2/10 · best ") and "· ETA " in progress
        # It also names the curves, which no legend covers.
        assert progress.endswith("⣿⣿ test  •• train")
        curves = panel.query_one(RmseCurves)
        assert not any("test" in line[curves.region.x:] for line in lines[curves.region.y:curves.region.bottom])
        assert curves.region.width >= 40 and curves.region.height >= 10
