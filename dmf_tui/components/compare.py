"""Compare: the parameters that differ between the marked runs, their results side by side, and
their curves overlaid."""

from __future__ import annotations

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from dmf_tui.components import fmt
from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.fitted_table import FittedTable
from dmf_tui.host import dmf_app
from store.params import PARAMS, format_value
from store.records import Comparison, RunRecord

# The parameters "Same in all" names when no run differs in them: those the tables or labels show.
COMPARED = tuple(name for name, declared in PARAMS.items() if declared.heading or declared.summary != "never")


def param_text(run: RunRecord, name: str) -> str:
    """A parameter as Compare shows it: the dataset by its short label (a file's folder/name)."""
    return run.data_label if name == "data" else format_value(getattr(run.params, name))


class CompareScreen(Screen[None]):
    """The table beside the curves while it takes at most half the width; with more runs than
    that leaves room for (at 80 columns, about four), the curves go under the table instead."""

    DEFAULT_CSS = """
    CompareScreen #compare-body { layout: horizontal; height: 1fr; }
    CompareScreen.-stacked #compare-body { layout: vertical; }
    CompareScreen #compare-table { width: auto; height: auto; max-height: 100%; }
    CompareScreen.-stacked #compare-table { width: 100%; max-height: 50%; }
    CompareScreen #compare-plot { width: 1fr; height: 1fr; }
    CompareScreen #compare-key { height: auto; padding: 0 1; }
    CompareScreen #compare-common { height: auto; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back", tooltip="back to History"),
        Binding("t", "toggle_train", "Train curves", id="compare.train", tooltip="show or hide the train curves"),
        Binding("o", "toggle_log_scale", "Log scale", id="compare.log",
                tooltip="draw the RMSE axis of the curves logarithmic, or linear again"),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.comparison: Comparison | None = None
        self.show_train = False
        self.log_scale = False

    def compose(self) -> ComposeResult:
        yield Static(f"Compare runs {', '.join(map(str, self.run_ids))}", classes="screen-title")
        with Container(id="compare-body"):
            # The first column names the rows: it stays when the runs' columns scroll sideways.
            yield FittedTable(id="compare-table", zebra_stripes=True, cursor_type="row", fixed_columns=1)
            with Vertical(id="compare-plot"):
                # A legend inside the plot would cover its top left with a line per curve, and the
                # key below it names the plot: every line of 24 is needed for the curves.
                yield RmseCurves(title="", legend=False)
                yield Static(id="compare-key")
        yield Static(id="compare-common", classes="hint", markup=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        # Arranged again when the table's rows are measured, and on every resize.
        self.watch(self.query_one("#compare-table", FittedTable), "virtual_size", self._arrange, init=False)
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        app = dmf_app(self.app)
        comparison = await app.db(app.store.compare, self.run_ids)
        if comparison is None:
            return
        self.comparison = comparison
        runs = comparison.runs
        table = self.query_one("#compare-table", FittedTable)
        table.add_column("", key="name")
        for run in runs:
            table.add_column(f"#{run.id}", key=str(run.id))
        # Planned epochs show in the "epochs" row below, with those done.
        for name in (name for name in comparison.differing if name != "epochs"):
            table.add_row(name, *(param_text(run, name) for run in runs))
        table.add_row("status", *(fmt.status_text(run) for run in runs))
        table.add_row("epochs", *(fmt.progress(run) for run in runs))
        table.add_row("best test", *(fmt.rmse(run.best_test_rmse) for run in runs))
        if any(run.best_val_rmse is not None for run in runs):
            table.add_row("best val", *(fmt.rmse(run.best_val_rmse) for run in runs))
        table.add_row("best epoch", *(str(run.best_epoch or "-") for run in runs))
        table.add_row("last train", *(fmt.rmse(run.last_train_rmse) for run in runs))
        # What the runs share, short of the dozen options they all leave at their defaults (momentum
        # on runs without SGD, say); the table's headline parameters show whatever their value.
        same = [
            f"{name}={param_text(runs[0], name)}"
            for name in COMPARED if name not in comparison.differing
            and any(PARAMS[name].applies_to(run.params.model) for run in runs)
            and (PARAMS[name].heading or getattr(runs[0].params, name) != PARAMS[name].default)
        ]
        text = "Same in all: " + ", ".join(same) + "; the rest at their defaults" if same else ""
        self.query_one("#compare-common", Static).update(text)
        self._draw()

    def on_resize(self, event: events.Resize) -> None:
        self._arrange()

    def _arrange(self) -> None:
        """Stack the curves under the table when the table would leave them less than half the width."""
        table = self.query_one("#compare-table", FittedTable)
        self.set_class(table.virtual_size.width > self.size.width // 2, "-stacked")

    def _draw(self) -> None:
        if self.comparison is not None:
            curves = {f"#{run_id}": epochs for run_id, epochs in self.comparison.epochs.items()}
            plot = self.query_one(RmseCurves)
            plot.log_scale = self.log_scale
            plot.set_runs(curves, train=self.show_train)
            name = "RMSE per epoch (log): " if self.log_scale else "RMSE per epoch: "
            self.query_one("#compare-key", Static).update(Text.assemble((name, "bold"), plot.key()))

    def action_toggle_train(self) -> None:
        self.show_train = not self.show_train
        self._draw()

    def action_toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._draw()
