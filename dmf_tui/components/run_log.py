"""A run's log (`L` in Run detail): what its worker wrote, with time and level, as `dmf-tui logs RUN`
prints it: the start, the device, the dataset, each epoch, warnings, the traceback of a failure,
why it was lost. While the run is going, new lines are read about once a second and appended.

A log quotes files, errors and tracebacks: it is shown as plain text (a Log widget draws no
markup), so a `[/]` in a traceback is just text."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from dmf_tui.host import dmf_app
from store.records import RunRecord


class RunLogScreen(Screen[None]):
    DEFAULT_CSS = """
    #log-empty { color: $text-muted; padding: 1 2; }
    #log { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="log.back", tooltip="back to the run's detail"),
        # priority: the log's own end (show=False) would otherwise hide this one from the footer.
        Binding("end", "last_line", "Last line", id="log.end", priority=True,
                tooltip="go to the last line; a running run's new lines are followed from there"),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.last_id = 0  # the id of the last line shown: the next read asks for those after it
        self._reading = asyncio.Lock()

    def compose(self) -> ComposeResult:
        yield Static(f"Run {self.run_id}: log", id="log-title", classes="screen-title", markup=False)
        yield Static(id="log-empty", markup=False)
        yield Log(id="log")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self._timer = self.set_interval(1.0, self.refresh_log)
        self.refresh_log()

    @work(group="run-log")
    async def refresh_log(self) -> None:
        # As in Run detail: a read still in flight makes this tick a no-op.
        if self._reading.locked():
            return
        async with self._reading:
            app = dmf_app(self.app)
            # The run before its lines: its worker writes the last line before it records the end,
            # so once the run is read as ended, every line it will have is there.
            run = await app.db(app.store.get_run, self.run_id)
            new = await app.db(app.store.run_log, self.run_id, after=self.last_id)
        if run is None or new is None:
            return
        if run.status.is_finished:
            self._timer.stop()
        if new:
            self.query_one(Log).write_lines(line.line() for line in new)
            self.last_id = new[-1].id
        self._show_state(run)

    def _show_state(self, run: RunRecord) -> None:
        self.query_one("#log-title", Static).update(f"Run {run.id}: log (UTC)  ·  {run.status}  ·  {run.data_label}")
        empty = self.query_one("#log-empty", Static)
        empty.display = self.last_id == 0
        if self.last_id == 0:
            # A run queued before its log was kept (or not started yet) has none: say what is known.
            reason = f"; {run.error}" if run.error else ""
            empty.update(f"No log lines: run {run.id} is {run.status}{reason}")

    def action_last_line(self) -> None:
        self.query_one(Log).scroll_end(animate=False)
