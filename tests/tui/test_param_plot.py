"""The parameter plot: the best test RMSE of the runs against a parameter that varies across them,
numbers first, on a log axis where they span decades, categories as categories; at 80x24."""

from __future__ import annotations

import re

from textual.widgets import Select, Static

from dmf_tui.components.param_plot import ParamPlotScreen, axis, varying_params
from store.params import RunParams
from store.records import RunRecord
from tests.tui.conftest import TextualPrivate, make_app, settle

BASE = RunParams(data="synthetic-100k", epochs=3)


def grid(store, worker) -> list[RunRecord]:
    """Runs over lr 1e-4..1e-1 (four decades), K 8 and 32, MF and DeepMF; every one done."""
    for i, lr in enumerate((1e-4, 1e-3, 1e-2, 1e-1)):
        for k in (8, 32):
            model = "deepmf" if i % 2 else "mf"
            worker.run(BASE.replace(lr=lr, k=k, model=model), 3, floor=0.85 + i / 50 + k / 1000)
    runs: list[RunRecord] = store.leaderboard()
    return runs


def test_the_parameters_that_vary_numbers_first(store, worker):
    runs = grid(store, worker)
    assert varying_params(runs) == ["k", "lr", "model"]
    # DeepMF's hidden layers vary only against MF, which has none: not a parameter of these runs.
    assert "hidden" not in varying_params(runs)
    assert varying_params(runs[:1]) == []


def test_a_parameter_spanning_decades_gets_a_log_axis_and_categories_get_one_place_each(store, worker):
    runs = grid(store, worker)
    lr = axis(runs, "lr")
    assert lr.kind == "log" and lr.labels == ["0.0001", "0.001", "0.01", "0.1"]
    # Evenly spaced: one decade is as wide as the next.
    assert sorted(set(lr.positions.values())) == lr.ticks == [-4.0, -3.0, -2.0, -1.0]
    k = axis(runs, "k")
    assert k.kind == "linear" and k.labels == ["8", "32"]
    model = axis(runs, "model")
    assert model.kind == "categories" and model.labels == ["deepmf", "mf"]
    assert {model.positions[run.id] for run in runs if run.params.model == "mf"} == {2.0}


def plot_lines(app) -> list[str]:
    """The lines of the screen inside the plot's frame."""
    lines = TextualPrivate.screen_lines(app)
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[top + 1:bottom + 2]  # the frame's inside, its bottom and the tick labels


async def test_the_plot_shows_every_run_and_x_chooses_the_parameter_at_80x24(store, worker):
    runs = grid(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.push_screen(ParamPlotScreen(runs))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ParamPlotScreen)
        choice = screen.query_one("#param-choice", Select)
        assert choice.value == "k"
        await pilot.press("x")
        await settle(pilot)
        assert choice.value == "lr"
        lines = plot_lines(app)
        inside = [m.group(1) for line in lines if (m := re.search(r"[│┤](.*)│", line))]
        assert sum(line.count("o") for line in inside) == len(runs)  # one point a run
        assert lines[-1].split() == ["0.0001", "0.001", "0.01", "0.1"]
        assert any("lr (log axis)" in line for line in TextualPrivate.screen_lines(app))

        rmse = {run.id: run.best_test_rmse for run in runs if run.best_test_rmse is not None}
        note = str(screen.query_one("#param-note", Static).render())
        assert f"run {min(rmse, key=rmse.__getitem__)}, lr=0.0001," in note

        await pilot.press("X", "X")
        await settle(pilot)
        assert choice.value == "model"
        assert plot_lines(app)[-1].split() == ["deepmf", "mf"]

        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]


async def test_runs_with_nothing_to_plot_say_so(store, worker):
    worker.run(BASE, 2)
    worker.run(BASE, 2)  # the same parameters twice
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.push_screen(ParamPlotScreen(store.leaderboard()))
        await settle(pilot)
        note = str(app.screen.query_one("#param-note", Static).render())
        assert note == "No parameter varies across these runs."
        await pilot.press("x")  # nothing to cycle through, and nothing breaks
        await settle(pilot)
        assert re.search(r"· 2 runs$", TextualPrivate.screen_lines(app)[0].strip())
