"""The Live tab: one panel per running run, whose epoch table and curves grow as epochs land."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Label, Static

from dmf_tui.components import fmt
from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.epoch_table import EpochTable
from dmf_tui.messages import OpenRun
from dmf_tui.source import Snapshot
from store.records import EpochRecord, RunRecord


def where(run: RunRecord) -> str:
    """Its device, and the pack it trains in there: the panels of one pack all end in the same
    "pack <fmt.pack> on cpu", several runs that are one batched model in one worker slot."""
    device = fmt.device(run)
    pack = fmt.pack(run)
    return f"pack {pack} on {device}" if pack else device


class LiveRun(Vertical):
    """One running run. It keeps the epochs it was given, since the source sends only new ones."""

    # 16 lines: at 80x24 a whole panel fits under the tabs, with 13 for the epochs and the curves.
    DEFAULT_CSS = """
    LiveRun { height: 16; border-bottom: solid $primary-background; }
    LiveRun #live-title { height: auto; }
    LiveRun Horizontal { height: 1fr; }
    """

    def __init__(self, run_id: int) -> None:
        super().__init__(id=f"live-{run_id}")
        self.run_id = run_id
        self.epochs: list[EpochRecord] = []

    def compose(self) -> ComposeResult:
        yield Static(id="live-title", classes="section-title", markup=False)
        with Horizontal():
            yield EpochTable()
            # The title's key names the curves: a legend would cover the plot's first epochs.
            yield RmseCurves(title=f"run {self.run_id}", legend=False)

    def show(self, run: RunRecord, new_epochs: list[EpochRecord], epoch_seconds: float | None) -> None:
        curves = self.query_one(RmseCurves)
        if new_epochs:
            table = self.query_one(EpochTable)
            table.add_epochs(new_epochs)
            table.move_cursor(row=table.row_count - 1)
            self.epochs.extend(new_epochs)
            curves.set_runs({f"#{self.run_id}": self.epochs})
        # Two lines, so 80 columns show all of it: what the run is, then how far it got and the key.
        self.query_one("#live-title", Static).update(Text.assemble(
            f"run {run.id} · {run.params.label()} · {run.data_label} · {where(run)}\n"
            f"epoch {fmt.progress(run)} · best {fmt.rmse(run.best_test_rmse)} · "
            f"ETA {fmt.duration(fmt.eta(run, epoch_seconds))}   ",
            curves.key(),
        ))

    @on(DataTable.RowSelected)
    def open_run(self) -> None:
        self.post_message(OpenRun(self.run_id))


class LiveTab(VerticalScroll):
    BINDINGS = [
        Binding("enter", "open_run", "Open run", id="live.open",
                tooltip="open Run detail on the run whose epochs have the focus, else on the first running run"),
        Binding("o", "toggle_log_scale", "Log scale", id="live.log",
                tooltip="draw the RMSE axis of the curves logarithmic, or linear again"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Kept here, so the panels of runs that start later draw the same way.
        self.log_scale = False

    def compose(self) -> ComposeResult:
        yield Label("No run is running. Queue one with n and start a worker with w.", id="live-empty")

    async def show_snapshot(self, snapshot: Snapshot) -> None:
        running = {run.id: run for run in snapshot.running}
        for view in list(self.query(LiveRun)):
            if view.run_id not in running:
                await view.remove()
        for run in snapshot.running:
            views = self.query(f"#live-{run.id}")
            if views:
                view = views.first(LiveRun)
            else:
                view = LiveRun(run.id)
                await self.mount(view)
                view.query_one(RmseCurves).log_scale = self.log_scale
            view.show(run, snapshot.new_epochs.get(run.id, []), snapshot.epoch_seconds.get(run.id))
        self.query_one("#live-empty").display = not running

    def action_open_run(self) -> None:
        panels = list(self.query(LiveRun))
        if not panels:
            self.notify("No run is running.")
            return
        focused = self.screen.focused
        chosen = next((panel for panel in panels if focused is not None and panel in focused.ancestors), panels[0])
        self.post_message(OpenRun(chosen.run_id))

    def action_toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        for panel in self.query(LiveRun):
            panel.query_one(RmseCurves).set_log_scale(self.log_scale)
