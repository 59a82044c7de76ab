"""Searches in the TUI at 80x24: the Searches tab lists each search with its trials counted, pauses,
stops (asking) and extends (asking how many) it, and opens its view: spec and state, trials, the best
validation RMSE so far, importances, RMSE by parameter; a trial opens, the best one clones.

The trials are made without training, as a worker would record them: claimed (which asks the search
for its next trial), their epochs recorded, ended done, pruned or failed."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Static, TabbedContent

from dmf_tui.app import DmfApp
from dmf_tui.components import fmt
from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.new_search import NewSearchScreen
from dmf_tui.components.param_plot import ParamPlot
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.components.search_view import NEEDS_TRIALS, SearchViewScreen, best_so_far
from dmf_tui.components.searches_tab import ExtendScreen, SearchesTab
from dmf_tui.messages import NewSearch
from store.params import RunParams, format_value
from store.status import RunStatus
from tests.tui.confirming import answer, asks, opens
from tests.tui.conftest import ENDINGS, TextualPrivate, make_app, make_search, run_trial, settle

SIZE = (80, 24)
def cells(table: DataTable, column: str) -> list[str]:
    return [str(table.get_cell(row.key, column)) for row in table.ordered_rows]


async def open_tab(pilot) -> SearchesTab:
    await settle(pilot)
    await pilot.press("4")
    await settle(pilot)
    app = pilot.app
    assert isinstance(app, DmfApp)
    return app.searches_tab


async def open_view(pilot) -> SearchViewScreen:
    await open_tab(pilot)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, SearchViewScreen)
    return screen



def test_every_status_has_its_style():
    # A pruned trial is neither done nor a failure: without a style it read as plain text.
    assert set(fmt.STATUS_STYLE) == set(RunStatus)
    assert len({fmt.STATUS_STYLE[s] for s in (RunStatus.PRUNED, RunStatus.DONE, RunStatus.FAILED)}) == 3


def test_best_so_far_counts_done_trials_only():
    class Trial:  # what best_so_far reads of a run
        def __init__(self, trial, status, val):
            self.trial, self.status, self.best_val_rmse = trial, status, val

    trials = [Trial(1, "pruned", 0.8), Trial(2, "done", 0.95), Trial(3, "done", 0.97), Trial(4, "done", 0.9)]
    assert best_so_far(trials) == ([2, 3, 4], [0.95, 0.95, 0.9])  # type: ignore[arg-type]


async def test_the_searches_tab_lists_each_search_with_its_trials_counted(store, worker):
    make_search(store, worker)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot)
        table = tab.query_one("#searches-table", DataTable)
        assert app.focused is table
        row = {key: cells(table, key)[0] for key in ("name", "phase", "trials", "done", "pruned", "failed",
                                                       "best_val", "test", "sampler", "pruner")}
        assert row == {"name": "lr search", "phase": "running", "trials": "4/6", "done": "2", "pruned": "1",
                       "failed": "1", "best_val": "0.9100", "test": "0.9200", "sampler": "random", "pruner": "none"}
        assert not tab.query_one("#searches-empty").display
        # At 80 columns the best validation RMSE and its test RMSE are on screen.
        line = next(line for line in TextualPrivate.screen_lines(app) if "lr search" in line)
        assert "0.9100" in line and "0.9200" in line


async def test_no_search_says_how_to_start_one(store):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot)
        assert tab.query_one("#searches-empty").display


async def test_space_pauses_and_resumes_and_s_stops_once_confirmed(store, worker):
    search_id = make_search(store, worker)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot)
        table = tab.query_one("#searches-table", DataTable)
        await pilot.press("space")
        await settle(pilot)
        assert store.get_search(search_id).state == "paused"
        assert cells(table, "phase") == ["paused"]
        await pilot.press("space")
        await settle(pilot)
        assert store.get_search(search_id).state == "active"

        question = await asks(pilot, "s")
        assert "lr search" in question and "4 of 6 trials" in question
        await answer(pilot, "n")
        assert store.get_search(search_id).state == "active"
        await asks(pilot, "s")
        await answer(pilot, "y")
        assert store.get_search(search_id).state == "stopped"
        assert cells(table, "phase") == ["stopped"]

        # A stopped search is not resumed by space: e extends it, which says so.
        await pilot.press("space")
        await settle(pilot)
        assert store.get_search(search_id).state == "stopped"
        assert any("e extends it" in note for note in TextualPrivate.notifications(app))


async def test_e_asks_how_many_trials_and_takes_only_a_whole_number_of_one_or_more(store, worker):
    search_id = make_search(store, worker)
    store.set_search_state(search_id, "stopped")
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_tab(pilot)
        screen = await opens(pilot, "e", ExtendScreen)
        field = screen.query_one("#extend-trials", Input)
        for typed in ("0", "-3", "2.5", "ten", ""):
            field.value = typed
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen, typed
            assert "whole number" in str(screen.query_one("#extend-error", Label).render()), typed
        assert store.get_search(search_id).trials == 6

        field.value = "5"
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ExtendScreen)
        search = store.get_search(search_id)
        assert (search.trials, search.state) == (11, "active")  # a stopped search runs again
        assert cells(app.searches_tab.query_one("#searches-table", DataTable), "trials") == ["4/11"]

        await opens(pilot, "e", ExtendScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert store.get_search(search_id).trials == 11


async def test_the_view_shows_spec_state_and_trials_and_fits_80x24(store, worker):
    make_search(store, worker)
    trials = store.search_trials("lr search")
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_view(pilot)
        lines = TextualPrivate.screen_lines(app)
        assert len(lines) == 24 and lines[0].strip() == "Search 'lr search' (#1)"
        assert "running · 4/6 trials asked · 2 done, 1 failed, 1 pruned · best val 0.9100" in " ".join(lines)
        assert "lr: 0.0001..0.1 (uniform, log)" in str(screen.query_one("#search-spec", Static).render())
        assert "Pause/resume" in lines[-1] and "Clone best" in lines[-1]

        table = screen.query_one("#trials-table", DataTable)
        assert cells(table, "trial") == ["1", "2", "3", "4"]
        assert cells(table, "status") == ["done", "pruned", "done", "failed"]
        assert cells(table, "epochs") == ["4/4", "2/4", "4/4", "4/4"]
        assert cells(table, "best_val") == ["0.9300", "0.9800", "0.9100", "0.9900"]
        assert cells(table, "test") == ["0.9400", "0.9900", "0.9200", "1.0000"]
        assert cells(table, "param-k") == [str(run.params.k) for run in trials]
        assert cells(table, "param-lr") == [f"{run.params.lr:.3g}" for run in trials]
        # Every column of the table is on the screen at 80 columns.
        assert table.virtual_size.width <= table.content_region.width

        # Each view fits: nothing of the screen reaches past its 24 lines.
        for _ in range(4):
            assert all(widget.region.bottom <= 24 for widget in screen.walk_children(Widget))
            await pilot.press("v")
            await settle(pilot)
        assert screen.query_one("#search-tabs", TabbedContent).active == "view-trials"


async def test_the_view_plots_best_so_far_importances_and_rmse_by_parameter(store, worker):
    make_search(store, worker, endings=ENDINGS[:2])  # one done trial: no importances yet
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_view(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert "best val RMSE so far" in str(screen.query_one("#curve-key", Static).render())
        assert any("trial" in line for line in TextualPrivate.screen_lines(app)[-4:])

        await pilot.press("v")
        await settle(pilot)
        importance = screen.query_one("#importance", Static)
        assert str(importance.render()) == NEEDS_TRIALS

        # Trials land while the view is open: it reads them on its next refresh.
        for status, val in ENDINGS[2:]:
            run_trial(store, worker, status, val)
        screen.refresh_search()
        await settle(pilot)
        for _ in range(100):  # fANOVA runs in a thread (importing Optuna and scikit-learn the first time)
            if screen.importances is not None:
                break
            await pilot.pause(0.05)
        await settle(pilot)
        assert set(screen.importances or {}) == {"lr", "k"}
        shown = str(importance.render())
        assert "lr" in shown and "k" in shown and "%" in shown

        await pilot.press("v")
        await settle(pilot)
        plot = screen.query_one(ParamPlot)
        done = [run for run in store.search_trials("lr search") if run.status == "done"]
        assert sorted(plot.runs, key=lambda run: run.id) == done
        assert plot.metric == "val" and plot.params == ["k", "lr"]  # the searched ones, in declaration order
        assert plot.param == "k"
        await pilot.press("x")
        await settle(pilot)
        assert plot.param == "lr"
        note = str(plot.query_one("#param-note", Static).render())
        assert f"run {done[1].id}," in note and "val RMSE 0.9100" in note


async def test_enter_opens_a_trial_and_l_clones_the_best_into_the_form(store, worker):
    make_search(store, worker)
    trials = store.search_trials("lr search")
    best = store.get_search("lr search").best_run_id
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == trials[1].id
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("l")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen)
        [best_run] = [run for run in trials if run.id == best]
        assert form.query_one("#field-lr", Input).value == format_value(best_run.params.lr)
        assert form.query_one("#field-k", Input).value == str(best_run.params.k)


async def test_the_views_keys_pause_extend_and_stop_its_search(store, worker):
    search_id = make_search(store, worker)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_view(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert store.get_search(search_id).state == "paused"
        assert str(screen.query_one("#search-state", Static).render()).startswith("paused")

        dialog = await opens(pilot, "e", ExtendScreen)
        dialog.query_one("#extend-trials", Input).value = "2"
        await pilot.press("enter")
        await settle(pilot)
        assert store.get_search(search_id).trials == 8

        await asks(pilot, "s")
        await answer(pilot, "y")
        assert store.get_search(search_id).state == "stopped"
        assert app.screen is screen
        assert str(screen.query_one("#search-state", Static).render()).startswith("stopped")


async def test_n_opens_the_new_search_form_and_a_queued_search_opens_on_the_searches_tab(store, worker):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("N")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewSearchScreen)
        await pilot.press("escape")  # nothing typed: closes without asking
        await settle(pilot)
        assert app.screen is app.screen_stack[0] and store.searches() == []

        # Cloned from a run: the form starts from its parameters.
        app.post_message(NewSearch(RunParams(data="synthetic-100k", lr=0.0042)))
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewSearchScreen)
        assert form.query_one("#field-lr", Input).value == "0.0042"
        # The form queues the search and closes with its id (the form's own tests drive its fields).
        search_id = make_search(store, worker, endings=())
        form.dismiss(search_id)
        await settle(pilot)
        assert isinstance(app.screen, SearchViewScreen) and app.screen.search.id == search_id
        assert app.query_one("#tabs", TabbedContent).active == "searches"
        assert any(f"search #{search_id} queued" in note for note in TextualPrivate.notifications(app))
