"""A search's view: its spec and where it stands, then (one at a time, `v` for the next) its trials,
the best validation RMSE so far over the trials, each searched parameter's importance, and the best
validation RMSE against each parameter. It reads the search again every second while it is shown.

A search chooses by validation RMSE: the view ranks and plots by it, and shows each trial's test
RMSE (at its best validation epoch) beside it, never choosing by it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from dmf_tui.components import fmt
from dmf_tui.components.curves import epoch_ticks, rgb
from dmf_tui.components.fmt import Cell
from dmf_tui.components.param_plot import BEST, POINT, ParamPlot
from dmf_tui.components.run_table import RunTable, run_id_of
from dmf_tui.components.searches_tab import extend_search, stop_search, toggle_pause
from dmf_tui.host import dmf_app
from dmf_tui.messages import NewExperiment, OpenRun
from store.db import Store
from store.records import RunRecord
from store.search import Dimension, short_value
from store.searches import SearchRecord
from store.status import STATUSES, RunStatus

# The views `v` goes through, in order: (pane id, title).
VIEWS = (("view-trials", "Trials"), ("view-best", "Best so far"), ("view-importance", "Importance"),
         ("view-by-param", "RMSE by parameter"))
PRUNED: tuple[int, int, int] = (120, 120, 120)
# An importance's bar at 100%.
BAR = 30
NEEDS_TRIALS = "needs two finished trials"


@dataclass(frozen=True)
class SearchState:
    """A search and its trials (the newest run of each), read in one thread hop."""

    search: SearchRecord
    trials: list[RunRecord]


def read_search(store: Store, search_id: int) -> SearchState:
    return SearchState(store.get_search(search_id), store.search_trials(search_id))


def trial_columns(space: tuple[Dimension, ...]) -> tuple[tuple[str, str], ...]:
    """The trial's number, its run, its status, each searched parameter, then its epochs and RMSEs.
    (Parameter columns are keyed apart: a search may search `epochs`.)"""
    return (("trial", "#"), ("id", "run"), ("status", "status"),
            *((f"param-{dim.name}", dim.name) for dim in space),
            ("epochs", "epochs"), ("best_val", "best val"), ("test", "test"))


def trial_cells(run: RunRecord, space: tuple[Dimension, ...]) -> tuple[Cell, ...]:
    return (run.trial or 0, run.id, fmt.status_text(run), *(param_cell(run, dim) for dim in space),
            fmt.progress(run), fmt.rmse(run.best_val_rmse), fmt.rmse(run.best_test_rmse))


def param_cell(run: RunRecord, dim: Dimension) -> Cell:
    """A searched value as a table shows it: a float drawn from a range short (short_value), anything
    else as everywhere else."""
    if dim.kind == "float":
        return short_value(getattr(run.params, dim.name))
    return fmt.param_cell(run.params, dim.name)


def state_line(search: SearchRecord, trials: list[RunRecord]) -> Text:
    """'running · 7/20 trials asked · 3 done, 2 pruned, 1 failed, 1 running · best val 0.9123
    (trial 4, run 12), its test 0.9150'."""
    counts = ", ".join(f"{search.counts[status]} {status}" for status in STATUSES if search.counts.get(status))
    line = Text.assemble(fmt.phase_text(search.phase), f" · {search.asked}/{search.trials} trials asked")
    if counts:
        line.append(f" · {counts}")
    best = next((run for run in trials if run.id == search.best_run_id), None)
    if best is None:
        line.append(" · no finished trial yet")
    else:
        line.append(f" · best val {fmt.rmse(search.best_val_rmse)} (trial {best.trial}, run {best.id}), "
                    f"its test {fmt.rmse(search.best_test_rmse)}")
    return line


def best_so_far(trials: list[RunRecord]) -> tuple[list[int], list[float]]:
    """The lowest validation RMSE of the done trials up to each trial number, from the first done one."""
    numbers, best, lowest = [], [], None
    for run in trials:
        if run.status == RunStatus.DONE and run.best_val_rmse is not None:
            lowest = run.best_val_rmse if lowest is None else min(lowest, run.best_val_rmse)
        if lowest is not None and run.trial is not None:
            numbers.append(run.trial)
            best.append(lowest)
    return numbers, best


def importance_text(shares: dict[str, float]) -> Text:
    """Each parameter's share as a bar, largest first (the order the store gives)."""
    if not shares:
        return Text(NEEDS_TRIALS, "dim")
    width = max(len(name) for name in shares)
    text = Text("Each parameter's share in explaining the done trials' validation RMSE (fANOVA):\n\n")
    for name, share in shares.items():
        text.append(f"{name:<{width}} ")
        text.append("█" * round(share * BAR), "bold")
        text.append(f" {share:.0%}\n")
    return text


class SearchViewScreen(Screen[None]):
    DEFAULT_CSS = """
    SearchViewScreen #search-header { height: auto; max-height: 6; padding: 0 1; }
    SearchViewScreen #search-tabs { height: 1fr; }
    SearchViewScreen #trials-table { height: 1fr; }
    SearchViewScreen #curve-key { height: 1; padding: 0 1; }
    SearchViewScreen #search-curve { height: 1fr; }
    SearchViewScreen #importance { padding: 0 1; }
    SearchViewScreen ParamPlot { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="search.back", tooltip="back to where the search was opened"),
        Binding("space", "pause", "Pause/resume", id="search.pause",
                tooltip="pause this search (no new trial starts; running ones go on), or resume it"),
        Binding("e", "extend", "Extend", id="search.extend",
                tooltip="let this search ask for N more trials (asks N); a stopped one runs again"),
        Binding("s", "stop", "Stop", id="search.stop",
                tooltip="stop this search: no more trials, its queued ones cancelled (asks)"),
        Binding("l", "clone", "Clone best", id="search.clone",
                tooltip="open the New experiment form filled with the parameters of the best trial (by validation)"),
        Binding("v", "next_view", "View", id="search.view",
                tooltip="the next view: trials (enter opens one), best so far, importance, RMSE by parameter"),
        Binding("x", "next_param", "Next parameter", show=False, id="search.next_param",
                tooltip="in RMSE by parameter: plot against the next parameter"),
    ]

    def __init__(self, search: SearchRecord) -> None:
        super().__init__()
        self.search = search
        self.trials: list[RunRecord] = []
        self.importances: dict[str, float] | None = None
        self._reading = asyncio.Lock()
        # What the importances were computed from: the done trials and their RMSEs.
        self._importance_key: tuple[tuple[int | None, float | None], ...] | None = None

    @property
    def space(self) -> tuple[Dimension, ...]:
        return self.search.spec.space

    def compose(self) -> ComposeResult:
        label = self.search.label
        yield Static(label[0].upper() + label[1:], id="search-title", classes="screen-title", markup=False)
        with VerticalScroll(id="search-header"):
            # Where it stands first: what changes, and what a person opened the view for.
            yield Static(id="search-state", markup=False)
            yield Static(id="search-spec", classes="hint", markup=False)
        with TabbedContent(id="search-tabs"):
            with TabPane(VIEWS[0][1], id=VIEWS[0][0]):
                yield RunTable(trial_columns(self.space), fixed_columns=3, id="trials-table")
            with TabPane(VIEWS[1][1], id=VIEWS[1][0]):
                yield Static(id="curve-key")
                yield PlotextPlot(id="search-curve")
            with TabPane(VIEWS[2][1], id=VIEWS[2][0]), VerticalScroll():
                yield Static(Text(NEEDS_TRIALS, "dim"), id="importance")
            with TabPane(VIEWS[3][1], id=VIEWS[3][0]):
                yield ParamPlot([], metric="val", id="search-param-plot")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#trials-table", RunTable).focus()
        self._show(self.search, [])
        self.set_interval(1.0, self.refresh_search)
        self.refresh_search()

    # --- reading and drawing --------------------------------------------------------------

    @work(group="search-view")
    async def refresh_search(self) -> None:
        # A read still in flight makes this tick a no-op, as in Run detail.
        if self._reading.locked():
            return
        async with self._reading:
            app = dmf_app(self.app)
            state = await app.db(read_search, app.store, self.search.id)
        if state is not None and (state.search, state.trials) != (self.search, self.trials):
            self._show(state.search, state.trials)

    def _show(self, search: SearchRecord, trials: list[RunRecord]) -> None:
        self.search, self.trials = search, trials
        self.query_one("#search-state", Static).update(state_line(search, trials))
        # With the budget as it is now: an extended search asks more trials than it was created with.
        self.query_one("#search-spec", Static).update("\n".join(search.spec.describe(search.trials)))
        self.query_one("#trials-table", RunTable).sync((run.id, trial_cells(run, self.space)) for run in trials)
        self._draw_curve()
        done = [run for run in trials if run.status == RunStatus.DONE and run.best_val_rmse is not None]
        self.query_one(ParamPlot).set_runs(done)
        key = tuple((run.trial, run.best_val_rmse) for run in done)
        if key != self._importance_key:
            self._importance_key = key
            if len(done) >= 2:
                self.read_importances()
        self.refresh_bindings()

    def _draw_curve(self) -> None:
        plot = self.query_one("#search-curve", PlotextPlot)
        plt = plot.plt
        plt.clear_figure()
        plot.refresh()
        numbers, best = best_so_far(self.trials)
        key = self.query_one("#curve-key", Static)
        if not numbers:
            key.update(Text("No trial is done yet.", "dim"))
            return
        for status, colour in ((RunStatus.DONE, POINT), (RunStatus.PRUNED, PRUNED)):
            points = [(run.trial, run.best_val_rmse) for run in self.trials
                      if run.status == status and run.trial is not None and run.best_val_rmse is not None]
            if points:
                plt.scatter([x for x, _ in points], [y for _, y in points], marker="o", color=colour)
        plt.plot(numbers, best, marker="braille", color=BEST)
        plt.xlabel("trial")
        # textual-plotext's types ask for a list[float], which a list[int] is not (lists are invariant).
        ticks: list[float] = [*epoch_ticks(max(run.trial or 1 for run in self.trials))]
        plt.xticks(ticks)
        key.update(Text.assemble(("⣿⣿", rgb(BEST)), " best val RMSE so far  ", ("o", rgb(POINT)), " done trial  ",
                                 ("o", rgb(PRUNED)), " pruned (at its last epoch)"))

    @work(group="search-importance", exclusive=True)
    async def read_importances(self) -> None:
        """Optuna's fANOVA over the done trials, in a thread (its first call imports Optuna and
        scikit-learn: half a second)."""
        importance = self.query_one("#importance", Static)
        if self.importances is None:
            importance.update(Text("computing…", "dim"))
        app = dmf_app(self.app)
        shares = await app.db(app.store.search_importances, self.search.id)
        if shares is not None:
            self.importances = shares
            importance.update(importance_text(shares))

    # --- keys -----------------------------------------------------------------------------

    @property
    def view(self) -> str:
        return self.query_one("#search-tabs", TabbedContent).active

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_param":
            return self.view == "view-by-param"
        if action == "clone":
            return self.search.best_run_id is not None
        return True

    @on(TabbedContent.TabActivated, "#search-tabs")
    def view_changed(self) -> None:
        self.refresh_bindings()
        if self.view == "view-trials":
            self.query_one("#trials-table", RunTable).focus()

    def action_next_view(self) -> None:
        order = [pane for pane, _ in VIEWS]
        self.query_one("#search-tabs", TabbedContent).active = order[(order.index(self.view) + 1) % len(order)]

    def action_next_param(self) -> None:
        self.query_one(ParamPlot).next_param(1)

    @on(DataTable.RowSelected, "#trials-table")
    def open_trial(self, event: DataTable.RowSelected) -> None:
        self.post_message(OpenRun(run_id_of(event.row_key)))

    def action_clone(self) -> None:
        best = next((run for run in self.trials if run.id == self.search.best_run_id), None)
        if best is not None:
            self.post_message(NewExperiment(params=best.params))

    @work(group="search-view-write")
    async def action_pause(self) -> None:
        if await toggle_pause(self, self.search):
            self.refresh_search()

    @work(group="search-view-write")
    async def action_stop(self) -> None:
        if await stop_search(self, self.search):
            self.refresh_search()

    @work(group="search-view-write")
    async def action_extend(self) -> None:
        if await extend_search(self, self.search):
            self.refresh_search()
