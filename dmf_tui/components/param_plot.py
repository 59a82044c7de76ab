"""The parameter plot (History's P): the best test RMSE of each listed run against one parameter
that varies across them, to see which learning rate, K, model... did best.

A number is a position on the x axis, on a log axis where its values span a decade or more
(a learning rate from 1e-4 to 1e-1); anything else (model, dataset, hidden layers) is a category."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Select, Static
from textual_plotext import PlotextPlot

from dmf_tui.components.curves import KIND_COLOURS, RGB
from store.params import PARAMS, format_value
from store.records import RunRecord

POINT: RGB = KIND_COLOURS["test"]
BEST: RGB = (80, 200, 80)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def param_value(run: RunRecord, name: str) -> Any:
    """The run's value of a parameter; a dataset by its short label; None where its model has no
    use for the parameter (an MF run's hidden layers)."""
    if not PARAMS[name].applies_to(run.params.model):
        return None
    return run.data_label if name == "data" else getattr(run.params, name)


def varying_params(runs: list[RunRecord]) -> list[str]:
    """The parameters with more than one value across the runs they apply to: numbers first, then
    categories, each in declaration order."""
    values = {name: {v for run in runs if (v := param_value(run, name)) is not None} for name in PARAMS}
    varying = [name for name in PARAMS if len(values[name]) > 1]
    numeric = [name for name in varying if all(map(is_number, values[name]))]
    return numeric + [name for name in varying if name not in numeric]


def log_spaced(values: list[float]) -> bool:
    """Positive values spanning a decade or more: spread evenly only on a log axis."""
    return min(values) > 0 and max(values) / min(values) >= 10


@dataclass(frozen=True)
class Axis:
    """How one parameter is drawn on the x axis: each run's position, and the ticks."""

    name: str
    kind: Literal["log", "linear", "categories"]
    positions: dict[int, float]  # run id -> x, for the runs the parameter applies to
    ticks: list[float]  # none: plotext's own
    labels: list[str]


def axis(runs: list[RunRecord], name: str) -> Axis:
    values = {run.id: v for run in runs if (v := param_value(run, name)) is not None}
    distinct = sorted(set(values.values()))  # a parameter's values are all of one type
    if not all(map(is_number, distinct)):
        # Categories in sorted order, one x each (plotext draws numbers only).
        index = {value: i + 1 for i, value in enumerate(distinct)}
        return Axis(name, "categories", {run_id: index[v] for run_id, v in values.items()},
                    [float(i) for i in index.values()], [format_value(v) for v in distinct])
    if log_spaced(distinct):
        # log10 drawn on a linear axis, as the curves do (plotext 5's own log scale cannot be redrawn).
        # Ticks on the powers of ten, or where fewer than two are in range, five between the ends.
        low, high = math.log10(distinct[0]), math.log10(distinct[-1])
        ticks = [float(p) for p in range(math.ceil(low), math.floor(high) + 1)]
        if len(ticks) < 2:
            ticks = [low + (high - low) * i / 4 for i in range(5)]
        integers = all(isinstance(v, int) for v in distinct)  # a batch size is labelled 724, not 7.2e+02
        return Axis(name, "log", {run_id: math.log10(v) for run_id, v in values.items()}, ticks,
                    [str(round(10**t)) if integers else f"{10**t:.2g}" for t in ticks])
    # A few values (K of 8, 16, 32) are labelled themselves, not plotext's fractions between them.
    if len(distinct) <= 6:
        return Axis(name, "linear", {run_id: float(v) for run_id, v in values.items()},
                    [float(v) for v in distinct], [format_value(v) for v in distinct])
    return Axis(name, "linear", {run_id: float(v) for run_id, v in values.items()}, [], [])


def shorten(label: str, width: int) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def padded(values: Iterable[float]) -> tuple[float, float]:
    """The range of the values, a twentieth wider on each side (half a unit about a single value)."""
    values = list(values)
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or 0.5
    return low - pad, high + pad


METRIC_WORDS = {"test": "best test RMSE", "val": "best validation RMSE"}


class ParamPlot(Vertical):
    """The runs' best RMSE of one kind (up) against the parameter chosen (across); the best run in
    green. History's parameter plot shows the test RMSE; a search's view the validation RMSE, by
    which the search chooses."""

    DEFAULT_CSS = """
    ParamPlot #param-bar { height: 1; padding: 0 1; }
    ParamPlot #param-bar Static { width: auto; }
    ParamPlot #param-choice { width: 30; }
    ParamPlot #param-plot { height: 1fr; }
    ParamPlot #param-note { height: auto; padding: 0 1; }
    """

    def __init__(self, runs: list[RunRecord], *, metric: Literal["test", "val"] = "test", **kwargs: Any) -> None:
        """`runs`: those to plot. One that has no best RMSE of this kind (it finished no epoch)
        has no point."""
        super().__init__(**kwargs)
        self.metric = metric
        self.runs: list[RunRecord] = []
        self.rmse: dict[int, float] = {}
        self.left_out = 0
        self.params: list[str] = []
        self._take(runs)

    def _take(self, runs: list[RunRecord]) -> None:
        best = {run.id: run.best_test_rmse if self.metric == "test" else run.best_val_rmse for run in runs}
        self.rmse = {run_id: value for run_id, value in best.items() if value is not None}
        self.runs = [run for run in runs if run.id in self.rmse]
        self.left_out = len(runs) - len(self.runs)
        self.params = varying_params(self.runs)

    def compose(self) -> ComposeResult:
        with Horizontal(id="param-bar"):
            yield Static("x axis (x, X): " if self.metric == "test" else "x axis (x): ")
            yield Select(self._options(), value=self.params[0] if self.params else Select.NULL,
                         allow_blank=not self.params, compact=True, id="param-choice")
        yield PlotextPlot(id="param-plot")
        yield Static(id="param-note", classes="hint", markup=False)

    def _options(self) -> list[tuple[str, str]]:
        return [(name, name) for name in self.params]

    def on_mount(self) -> None:
        self.query_one("#param-bar").display = bool(self.params)
        # Drawn once laid out: the tick labels are fitted to the plot's width.
        self.call_after_refresh(self.draw)

    def on_resize(self, event: events.Resize) -> None:
        self.draw()

    def set_runs(self, runs: list[RunRecord]) -> None:
        """Plot these runs instead (a search's view, as its trials finish); the parameter chosen stays
        chosen while it still varies."""
        chosen = self.param
        self._take(runs)
        choice = self.query_one("#param-choice", Select)
        with self.prevent(Select.Changed):
            choice.set_options(self._options())
            if self.params:
                choice.value = chosen if chosen in self.params else self.params[0]
        self.query_one("#param-bar").display = bool(self.params)
        self.draw()

    @property
    def param(self) -> str | None:
        """The parameter on the x axis; None when no parameter varies."""
        if not self.params:
            return None
        value = self.query_one("#param-choice", Select).value
        return value if isinstance(value, str) else None

    @on(Select.Changed, "#param-choice")
    def _chosen(self) -> None:
        self.draw()

    def next_param(self, step: int) -> None:
        if self.param is not None:
            following = self.params[(self.params.index(self.param) + step) % len(self.params)]
            self.query_one("#param-choice", Select).value = following

    def draw(self) -> None:
        plot, note = self.query_one("#param-plot", PlotextPlot), self.query_one("#param-note", Static)
        plt = plot.plt
        plt.clear_figure()
        plot.refresh()
        name = self.param
        if name is None:
            note.update("No parameter varies across these runs." if self.runs
                        else f"None of these runs has a {METRIC_WORDS[self.metric].removeprefix('best ')} yet.")
            return
        shown = axis(self.runs, name)
        ids = list(shown.positions)
        best = min(ids, key=self.rmse.__getitem__)
        others = [run_id for run_id in ids if run_id != best]
        plt.scatter([shown.positions[i] for i in others], [self.rmse[i] for i in others], marker="o", color=POINT)
        plt.scatter([shown.positions[best]], [self.rmse[best]], marker="o", color=BEST)
        plt.xlabel(f"{name} (log axis)" if shown.kind == "log" else name)
        if shown.ticks:
            # Each label within its share of the width, so neighbours do not run into each other.
            room = max(plot.size.width // len(shown.ticks) - 1, 3)
            plt.xticks(shown.ticks, [shorten(label, room) for label in shown.labels])
        # Margins keep the outermost points off the frame.
        if shown.kind == "categories":
            plt.xlim(0.5, len(shown.ticks) + 0.5)
        else:
            plt.xlim(*padded(shown.positions.values()))
        plt.ylim(*padded(self.rmse[i] for i in ids))
        [best_run] = [run for run in self.runs if run.id == best]
        missing = len(self.runs) - len(ids)
        kind = "test" if self.metric == "test" else "val"
        note.update(
            f"Best (green): run {best}, {name}={format_value(param_value(best_run, name))}, "
            f"{kind} RMSE {self.rmse[best]:.4f}."
            + (f" {missing} runs have no {name} (their model does not use it)." if missing else "")
            + (f" {self.left_out} runs without a {kind} RMSE are left out." if self.left_out else "")
        )


class ParamPlotScreen(Screen[None]):
    """History's parameter plot: the listed runs' best test RMSE against a parameter."""

    DEFAULT_CSS = """
    ParamPlotScreen ParamPlot { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="plot.back", tooltip="back to History"),
        Binding("x", "next_param(1)", "Next parameter", id="plot.next",
                tooltip="plot against the next parameter that varies across these runs"),
        Binding("X", "next_param(-1)", "Previous", id="plot.previous",
                tooltip="plot against the previous parameter that varies across these runs"),
    ]

    def __init__(self, runs: list[RunRecord]) -> None:
        """`runs`: those History lists."""
        super().__init__()
        self.plot = ParamPlot(runs)

    @property
    def runs(self) -> list[RunRecord]:
        """The runs plotted (those with a best test RMSE)."""
        return self.plot.runs

    def compose(self) -> ComposeResult:
        yield Static(f"Best test RMSE (up) against a parameter (across) · {len(self.runs)} runs",
                     classes="screen-title")
        yield self.plot
        yield Footer(compact=True, show_command_palette=False)

    def action_next_param(self, step: int) -> None:
        self.plot.next_param(step)
