"""The Queue tab: running and queued runs in the order a worker takes them, the system load of each
worker slot, and below them the runs that ended badly most recently, with their reason.

Laid out for 80 columns first: a row's id and status stay on the left when the table scrolls
sideways, and what a person watches (epoch, test RMSE, ETA, the pack a run trains in) comes before
the parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from dmf_tui.components import fmt
from dmf_tui.components.fmt import Cell
from dmf_tui.components.run_actions import cancel_sweep, delete_runs
from dmf_tui.components.run_table import RunTable, run_id_of
from dmf_tui.host import dmf_app
from dmf_tui.messages import CancelRun, OpenRun, RetryRun, StoreChanged
from dmf_tui.source import Snapshot
from store.records import RunRecord, WorkerRecord
from store.status import RunStatus, WorkerState
from store.workers import by_host

if TYPE_CHECKING:
    from dmf_tui.load import SlotLoad

# The id and status of a row stay on the left when its table scrolls sideways.
FIXED = 2
QUEUE_COLUMNS = (
    ("id", "id"), ("status", "status"), ("epoch", "epoch"), ("test", "test RMSE"), ("eta", "ETA"),
    ("pack", "pack"), *fmt.PARAM_HEADINGS, ("device", "device"),
)
PROBLEM_COLUMNS = (
    ("id", "id"), ("status", "status"), ("reason", "reason"), ("model", "model"), ("data", "data"),
    ("finished", "finished (UTC)"),
)
# A reason is cut (with …) to leave this many columns of the screen to the others (40 at 80
# columns), and never to fewer than REASON_MIN characters.
REASON_ROOM = 40
REASON_MIN = 30

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


def queue_cells(run: RunRecord, epoch_seconds: float | None) -> tuple[Cell, ...]:
    return (
        run.id, fmt.status_text(run), fmt.progress(run), fmt.rmse(run.last_test_rmse),
        fmt.duration(fmt.eta(run, epoch_seconds)), fmt.pack(run), *param_cells(run), fmt.device(run),
    )


def param_cells(run: RunRecord) -> tuple[Cell, ...]:
    """The parameters, with the dataset's short label (Run detail shows its full path)."""
    return tuple(run.data_label if name == "data" else fmt.param_cell(run.params, name)
                 for name, _ in fmt.PARAM_HEADINGS)


def problem_cells(run: RunRecord, reason_width: int) -> tuple[Cell, ...]:
    return (
        run.id, fmt.status_text(run), fmt.first_line(run.error, reason_width), run.params.model, run.data_label,
        fmt.when(run.finished_at),
    )


def load_line(worker: WorkerRecord, load: SlotLoad | None) -> Text:
    """One worker slot and its load: "worker 3  cuda:0  CPU 97%  mem 1.5G  GPU 40%  1.0/80.0G"."""
    line = Text.assemble(("worker ", "bold"), (str(worker.id), "bold"), "  ", ",".join(worker.devices))
    if worker.state != WorkerState.RUNNING:
        line.append(f"  {worker.state}", "bold red")
    if load is None:  # on another host: its figures are not ours to read
        line.append(f"  on {worker.host}", "dim")
        return line
    if load.process is not None:
        cpu = load.process.cpu_percent
        if cpu is not None:
            line.append(f"  CPU {cpu:.0f}%")
        line.append(f"  mem {size(load.process.memory_bytes)}")
    if load.gpu is not None:
        line.append(f"  GPU {load.gpu.percent}%  {size(load.gpu.memory_used)}/{size(load.gpu.memory_total)}")
    return line


def size(count: int) -> str:
    """Bytes as a person reads memory: 820M, 1.5G."""
    if count >= 2**30:
        return f"{count / 2**30:.1f}G"
    return f"{count / 2**20:.0f}M"


class QueueTab(Vertical):
    DEFAULT_CSS = """
    #slot-load { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("c", "cancel", "Cancel", id="queue.cancel",
                tooltip="cancel the run under the cursor (asks first when it is running)"),
        Binding("r", "retry", "Retry", id="queue.retry",
                tooltip="queue again the run under the cursor if it ended badly"),
        Binding("x", "dismiss", "Dismiss", id="queue.dismiss",
                tooltip="dismiss the run under the cursor of Ended badly: it leaves that list, not History"),
        Binding("a", "archive", "Archive", show=False, id="queue.archive",
                tooltip="archive the ended run under the cursor: hidden from History unless asked for"),
        Binding("delete", "delete", "Delete", show=False, id="queue.delete",
                tooltip="delete the run under the cursor with its epochs and log (asks first)"),
        Binding("C", "cancel_sweep", "Cancel sweep", show=False, id="queue.cancel_sweep",
                tooltip="cancel every queued and running run of the sweep of the run under the cursor (asks first)"),
        Binding("K,shift+up", "move(-1)", "Move up", show=False, id="queue.up",
                tooltip="move the queued run under the cursor up: a worker takes it sooner"),
        Binding("J,shift+down", "move(1)", "Move down", show=False, id="queue.down",
                tooltip="move the queued run under the cursor down: a worker takes it later"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The runs shown in either table, by id: what the keys act on.
        self._runs: dict[int, RunRecord] = {}
        # The cells of each queued or running run, with the record and the epoch time they show.
        self._cells: dict[int, tuple[RunRecord, float | None, tuple[Cell, ...]]] = {}

    def compose(self) -> ComposeResult:
        yield RunTable(QUEUE_COLUMNS, fixed_columns=FIXED, id="queue-table")
        yield Label("Nothing queued. Press n to queue an experiment.", id="queue-empty")
        yield Static("", id="slot-load", markup=False)
        yield Label("Ended badly (r retries, x dismisses)", id="problems-title", classes="section-title")
        yield RunTable(PROBLEM_COLUMNS, fixed_columns=FIXED, id="problems-table")

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self._runs = {run.id: run for run in [*snapshot.queue, *snapshot.problems]}
        table = self.query_one("#queue-table", RunTable)
        table.sync((run.id, self._queue_cells(run, snapshot.epoch_seconds.get(run.id))) for run in snapshot.queue)
        self._cells = {run.id: self._cells[run.id] for run in snapshot.queue}
        self.query_one("#queue-empty").display = not snapshot.queue
        load = self.query_one("#slot-load", Static)
        # This machine's slots first, then each other host's together.
        workers = [w for _, group in by_host(sorted(snapshot.workers, key=lambda w: w.id)) for w in group]
        load.update(Text("\n").join(load_line(worker, snapshot.load.get(worker.id)) for worker in workers))
        load.display = bool(workers)
        problems = self.query_one("#problems-table", RunTable)
        reason_width = max(REASON_MIN, self.size.width - REASON_ROOM)
        problems.sync((run.id, problem_cells(run, reason_width)) for run in snapshot.problems)
        problems.display = self.query_one("#problems-title").display = bool(snapshot.problems)

    def _queue_cells(self, run: RunRecord, epoch_seconds: float | None) -> tuple[Cell, ...]:
        """queue_cells, kept while the poll hands back the same record (store/snapshot.py): with
        thousands of queued runs, making their cells again each second was most of a redraw."""
        kept = self._cells.get(run.id)
        if kept is not None and kept[0] is run and kept[1] == epoch_seconds:
            return kept[2]
        cells = queue_cells(run, epoch_seconds)
        self._cells[run.id] = (run, epoch_seconds, cells)
        return cells

    def _selected(self) -> RunRecord | None:
        """The run under the cursor of this tab's table that has focus (the queue or the failures);
        of the queue when neither has it (the palette runs these keys from any tab)."""
        focused = self.screen.focused
        table = focused if isinstance(focused, RunTable) and focused.parent is self else None
        run_id = (table or self.query_one("#queue-table", RunTable)).current_run_id
        return None if run_id is None else self._runs.get(run_id)

    @on(DataTable.RowSelected)
    def open_run(self, event: DataTable.RowSelected) -> None:
        self.post_message(OpenRun(run_id_of(event.row_key)))

    def action_cancel(self) -> None:
        # The app asks first when the run is running (it also serves Run detail's c).
        run = self._selected()
        if run is not None:
            self.post_message(CancelRun(run.id))

    def action_retry(self) -> None:
        run = self._selected()
        if run is not None:
            self.post_message(RetryRun(run.id))

    @work(group="queue-actions")
    async def action_dismiss(self) -> None:
        """Dismiss the entry under the cursor of Ended badly, whichever table has the focus: it is
        the only list that can be dismissed from, and its cursor row is drawn either way."""
        run_id = self.query_one("#problems-table", RunTable).current_run_id
        if run_id is None:
            self.notify("nothing has ended badly: nothing to dismiss")
            return
        app = dmf_app(self.app)
        if await app.write(app.store.dismiss, [run_id]):
            self.post_message(StoreChanged())

    @work(group="queue-actions")
    async def action_archive(self) -> None:
        run = self._selected()
        if run is None:
            return
        if run.status in ACTIVE:
            self.notify(f"run {run.id} is {run.status}: only runs that have ended are archived", severity="warning")
            return
        app = dmf_app(self.app)
        if await app.write(app.store.archive, [run.id]):
            self.notify(f"run {run.id} archived: History shows it with archived:yes")
            self.post_message(StoreChanged())

    @work(group="queue-actions")
    async def action_delete(self) -> None:
        run = self._selected()
        if run is None:
            return
        if run.status == RunStatus.RUNNING:
            self.notify(f"run {run.id} is running: cancel it (c) before deleting it", severity="warning")
            return
        await delete_runs(self, [run.id])

    @work(group="queue-actions")
    async def action_cancel_sweep(self) -> None:
        run = self._selected()
        if run is not None:
            await cancel_sweep(self, run)

    @work(group="queue-actions")
    async def action_move(self, offset: int) -> None:
        table = self.query_one("#queue-table", RunTable)
        run_id = table.current_run_id
        if run_id is None:
            return
        app = dmf_app(self.app)
        if await app.write(app.store.move, run_id, offset):
            self.post_message(StoreChanged())
