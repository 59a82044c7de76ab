"""The Queue tab: running and queued runs in the order a worker takes them, and below them the
runs that ended badly most recently, with their reason."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from dmf_tui.components import fmt
from dmf_tui.components.fmt import Cell
from dmf_tui.components.run_table import RunTable, run_id_of
from dmf_tui.host import dmf_app
from dmf_tui.messages import CancelRun, OpenRun, RetryRun, StoreChanged
from dmf_tui.source import Snapshot
from store.records import RunRecord

QUEUE_COLUMNS = (
    ("id", "id"), ("status", "status"), *fmt.PARAM_HEADINGS, ("epoch", "epoch"),
    ("test", "test RMSE"), ("eta", "ETA"), ("device", "device"),
)
PROBLEM_COLUMNS = (
    ("id", "id"), ("status", "status"), ("model", "model"), ("data", "data"),
    ("finished", "finished (UTC)"), ("reason", "reason"),
)


def queue_cells(run: RunRecord, epoch_seconds: float | None) -> tuple[Cell, ...]:
    return (
        run.id, fmt.status_text(run), *fmt.param_cells(run), fmt.progress(run), fmt.rmse(run.last_test_rmse),
        fmt.duration(fmt.eta(run, epoch_seconds)), fmt.device(run),
    )


def problem_cells(run: RunRecord) -> tuple[Cell, ...]:
    return (
        run.id, fmt.status_text(run), run.params.model, run.params.data,
        fmt.when(run.finished_at), fmt.first_line(run.error, 80),
    )


class QueueTab(Vertical):
    BINDINGS = [
        Binding("c", "cancel", "Cancel", id="queue.cancel", tooltip="cancel the run under the cursor"),
        Binding("r", "retry", "Retry", id="queue.retry",
                tooltip="queue again the run under the cursor if it ended badly"),
        Binding("K,shift+up", "move(-1)", "Move up", id="queue.up",
                tooltip="move the queued run under the cursor up: a worker takes it sooner"),
        Binding("J,shift+down", "move(1)", "Move down", id="queue.down",
                tooltip="move the queued run under the cursor down: a worker takes it later"),
    ]

    def compose(self) -> ComposeResult:
        yield RunTable(QUEUE_COLUMNS, id="queue-table")
        yield Label("Nothing queued. Press n to queue an experiment.", id="queue-empty")
        yield Label("Ended badly (r retries)", id="problems-title", classes="section-title")
        yield RunTable(PROBLEM_COLUMNS, id="problems-table")

    def show_snapshot(self, snapshot: Snapshot) -> None:
        table = self.query_one("#queue-table", RunTable)
        table.sync((run.id, queue_cells(run, snapshot.epoch_seconds.get(run.id))) for run in snapshot.queue)
        self.query_one("#queue-empty").display = not snapshot.queue
        problems = self.query_one("#problems-table", RunTable)
        problems.sync((run.id, problem_cells(run)) for run in snapshot.problems)
        problems.display = self.query_one("#problems-title").display = bool(snapshot.problems)

    def _selected(self) -> int | None:
        """The run under the cursor of this tab's table that has focus (the queue or the failures);
        of the queue when neither has it (the palette runs these keys from any tab)."""
        focused = self.screen.focused
        if isinstance(focused, RunTable) and focused.parent is self:
            return focused.current_run_id
        return self.query_one("#queue-table", RunTable).current_run_id

    @on(DataTable.RowSelected)
    def open_run(self, event: DataTable.RowSelected) -> None:
        self.post_message(OpenRun(run_id_of(event.row_key)))

    def action_cancel(self) -> None:
        run_id = self._selected()
        if run_id is not None:
            self.post_message(CancelRun(run_id))

    def action_retry(self) -> None:
        run_id = self._selected()
        if run_id is not None:
            self.post_message(RetryRun(run_id))

    @work(group="queue-actions")
    async def action_move(self, offset: int) -> None:
        table = self.query_one("#queue-table", RunTable)
        run_id = table.current_run_id
        if run_id is None:
            return
        app = dmf_app(self.app)
        if await app.write(app.store.move, run_id, offset):
            self.post_message(StoreChanged())
