"""Compare: the parameters that differ between the marked runs, their results side by side, and
their curves overlaid."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from dmf_tui.components import fmt
from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.fitted_table import FittedTable
from dmf_tui.host import dmf_app
from store.params import PARAMS, format_value
from store.records import Comparison

# The parameters "Same in all" names when no run differs in them: those the tables or labels show.
COMPARED = tuple(name for name, declared in PARAMS.items() if declared.heading or declared.summary != "never")


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back", tooltip="back to History"),
        Binding("t", "toggle_train", "Train curves", id="compare.train", tooltip="show or hide the train curves"),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.comparison: Comparison | None = None
        self.show_train = False

    def compose(self) -> ComposeResult:
        yield Static(f"Compare runs {', '.join(map(str, self.run_ids))}", classes="screen-title")
        with Horizontal(id="compare-body"):
            with Vertical(id="compare-left"):
                yield FittedTable(id="compare-table", zebra_stripes=True, cursor_type="row")
                yield Static(id="compare-same", classes="hint", markup=False)
            yield RmseCurves(title="test RMSE (t: train too)", id="compare-curves")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        app = dmf_app(self.app)
        comparison = await app.db(app.store.compare, self.run_ids)
        if comparison is None:
            return
        self.comparison = comparison
        runs = comparison.runs
        table = self.query_one("#compare-table", DataTable)
        table.add_column("", key="name")
        for run in runs:
            table.add_column(f"#{run.id}", key=str(run.id))
        for name in comparison.differing:
            table.add_row(name, *(format_value(getattr(run.params, name)) for run in runs))
        table.add_row("status", *(run.status for run in runs))
        table.add_row("epochs", *(fmt.progress(run) for run in runs))
        table.add_row("best test", *(fmt.rmse(run.best_test_rmse) for run in runs))
        table.add_row("best epoch", *(str(run.best_epoch or "-") for run in runs))
        table.add_row("last train", *(fmt.rmse(run.last_train_rmse) for run in runs))
        same = [
            f"{name}={format_value(getattr(runs[0].params, name))}"
            for name in COMPARED if name not in comparison.differing
            and any(PARAMS[name].applies_to(run.params.model) for run in runs)
        ]
        self.query_one("#compare-same", Static).update("Same in all: " + ", ".join(same) if same else "")
        self._draw()

    def _draw(self) -> None:
        if self.comparison is not None:
            curves = {f"#{run_id}": epochs for run_id, epochs in self.comparison.epochs.items()}
            self.query_one(RmseCurves).set_runs(curves, train=self.show_train)

    def action_toggle_train(self) -> None:
        self.show_train = not self.show_train
        self._draw()
