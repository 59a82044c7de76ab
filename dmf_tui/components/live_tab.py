"""The Live tab: one panel per running run, whose epoch table and curves grow as epochs land."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Label, Static

from dmf_tui.components import fmt
from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.epoch_table import EpochTable
from dmf_tui.messages import OpenRun
from dmf_tui.source import Snapshot
from store.records import EpochRecord, RunRecord


class LiveRun(Vertical):
    """One running run. It keeps the epochs it was given, since the source sends only new ones."""

    def __init__(self, run_id: int) -> None:
        super().__init__(id=f"live-{run_id}", classes="live-run")
        self.run_id = run_id
        self.epochs: list[EpochRecord] = []

    def compose(self) -> ComposeResult:
        yield Static(id="live-title", classes="section-title", markup=False)
        with Horizontal():
            yield EpochTable()
            yield RmseCurves(title=f"run {self.run_id}")

    def show(self, run: RunRecord, new_epochs: list[EpochRecord], epoch_seconds: float | None) -> None:
        self.query_one("#live-title", Static).update(
            f"run {run.id} · {run.params.label()} · {run.params.data} · {fmt.device(run)} · "
            f"epoch {fmt.progress(run)} · best {fmt.rmse(run.best_test_rmse)} · "
            f"ETA {fmt.duration(fmt.eta(run, epoch_seconds))}"
        )
        if not new_epochs:
            return
        table = self.query_one(EpochTable)
        table.add_epochs(new_epochs)
        table.move_cursor(row=table.row_count - 1)
        self.epochs.extend(new_epochs)
        self.query_one(RmseCurves).set_runs({f"#{self.run_id}": self.epochs})

    @on(DataTable.RowSelected)
    def open_run(self) -> None:
        self.post_message(OpenRun(self.run_id))


class LiveTab(VerticalScroll):
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
            view.show(run, snapshot.new_epochs.get(run.id, []), snapshot.epoch_seconds.get(run.id))
        self.query_one("#live-empty").display = not running
