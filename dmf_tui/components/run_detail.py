"""Run detail: a run's configuration, epochs, curves, the error of a failed run, and its notes.
While the run is still going the screen keeps fetching the epochs that land."""

from __future__ import annotations

import asyncio

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static, TextArea

from dmf_tui.components import fmt
from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.epoch_table import EpochTable
from dmf_tui.host import dmf_app
from dmf_tui.messages import CancelRun, NewExperiment, RetryRun, StoreChanged
from store.params import FIELD_NAMES, format_value
from store.records import EpochRecord, RunRecord


def config_table(run: RunRecord) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("status", fmt.status_text(run)),
        ("sweep", str(run.sweep_id or "-")),
        ("ran on", run.ran_on or "-"),
        ("created", fmt.when(run.created_at)),
        ("started", fmt.when(run.started_at)),
        ("finished", fmt.when(run.finished_at)),
        ("epochs", fmt.progress(run)),
        ("best test", f"{fmt.rmse(run.best_test_rmse)} at epoch {run.best_epoch or '-'}"),
        ("last train/test", f"{fmt.rmse(run.last_train_rmse)} / {fmt.rmse(run.last_test_rmse)}"),
    ]
    rows += [(name, format_value(getattr(run.params, name))) for name in FIELD_NAMES]
    for name, value in rows:
        table.add_row(name, fmt.literal(value))
    return table


class RunDetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="detail.back", tooltip="back to where the run was opened"),
        Binding("l", "clone", "Clone into form", id="detail.clone",
                tooltip="open the New experiment form filled with this run's parameters"),
        Binding("ctrl+s", "save_notes", "Save notes", id="detail.save", tooltip="save the notes"),
        Binding("c", "cancel", "Cancel run", id="detail.cancel", tooltip="cancel this run"),
        Binding("r", "retry", "Retry", id="detail.retry", tooltip="queue this run again if it ended badly"),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: RunRecord | None = None
        self.epochs: list[EpochRecord] = []
        self._reading = asyncio.Lock()

    def compose(self) -> ComposeResult:
        yield Static(f"Run {self.run_id}", id="detail-title", classes="screen-title", markup=False)
        with Horizontal(id="detail-top"):
            with VerticalScroll(id="detail-config"):
                yield Static(id="config")
            with Vertical(id="detail-right"):
                yield Static(id="detail-error", classes="error", markup=False)
                yield RmseCurves(title=f"run {self.run_id}")
                with Horizontal(id="detail-bottom"):
                    yield EpochTable()
                    with Vertical(id="detail-notes"):
                        yield Label("Notes (ctrl+s saves)", classes="section-title")
                        yield TextArea(id="notes")
        yield Footer()

    def on_mount(self) -> None:
        self._timer = self.set_interval(1.0, self.refresh_run)
        self.refresh_run()

    @work(group="detail")
    async def refresh_run(self) -> None:
        # A read still in flight makes this tick a no-op (cancelling it instead, a database slower
        # than the timer would never let the screen load).
        if self._reading.locked():
            return
        async with self._reading:
            app = dmf_app(self.app)
            run = await app.db(app.store.get_run, self.run_id)
            last = self.epochs[-1].epoch if self.epochs else 0
            new = await app.db(app.store.epochs, self.run_id, after=last)
        if run is None or new is None:
            return
        first = self.run is None
        self.run = run
        if run.status.is_finished:
            # A finished run changes no more: this read was the last one.
            self._timer.stop()
        self.query_one("#detail-title", Static).update(f"Run {run.id}  ·  {run.params.label()}  ·  {run.params.data}")
        self.query_one("#config", Static).update(config_table(run))
        error = self.query_one("#detail-error", Static)
        error.update(run.error or "")
        error.display = bool(run.error)
        if first:
            self.query_one("#notes", TextArea).text = run.notes
        if new:
            self.query_one(EpochTable).add_epochs(new)
            self.epochs.extend(new)
            self.query_one(RmseCurves).set_runs({f"#{run.id}": self.epochs})

    def action_clone(self) -> None:
        if self.run is not None:
            self.post_message(NewExperiment(self.run.params, self.run.retries))

    @work(group="detail-write")
    async def action_save_notes(self) -> None:
        text = self.query_one("#notes", TextArea).text
        app = dmf_app(self.app)
        if await app.write(app.store.set_notes, self.run_id, text):
            self.notify("notes saved")
            self.post_message(StoreChanged())

    def action_cancel(self) -> None:
        self.post_message(CancelRun(self.run_id))

    def action_retry(self) -> None:
        self.post_message(RetryRun(self.run_id))
