"""The bar at the top: the worker state and the runs per status, refreshed with every poll.

It is one line whatever the terminal's width. Each poll gives a few renderings of the same news,
longest first, and the bar draws the longest that fits: narrower, it drops the database's name
first, then the app's name, then shortens the words. The worker state and the counts are never
dropped. Workers on several hosts are counted by host ("worker 3 running on 2 hosts"), since one
machine's cuda:0 is not another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.widgets import Static

from dmf_tui.source import Snapshot
from store.records import WorkerRecord
from store.status import FINISHED_STATUSES, RunStatus, WorkerState

TITLE = ("dmf-tui", "bold")
# How the most compact renderings name the longer finished statuses.
ABBREVIATED = {RunStatus.FAILED: "fail", RunStatus.CANCELLED: "canc", RunStatus.INTERRUPTED: "intr",
               RunStatus.PRUNED: "prun"}


def worker_text(workers: Sequence[WorkerRecord], *, short: bool = False) -> Text:
    running = [w for w in workers if w.state == WorkerState.RUNNING]
    stale = [w for w in workers if w.state == WorkerState.STALE]
    if running:
        devices = ",".join(sorted({d for w in running for d in w.devices}))
        if short and len(running) > 1:
            text = Text(f"{len(running)} workers", "bold green")
        elif short:
            text = Text.assemble(("worker", "bold"), (" on ", "green"), devices)
        elif len(hosts := {w.host for w in running}) > 1:
            text = Text.assemble(("worker ", "bold"), (f"{len(running)} running", "green"), f" on {len(hosts)} hosts")
        else:
            count = f"{len(running)} " if len(running) > 1 else ""
            text = Text.assemble(("worker ", "bold"), (f"{count}running", "green"), f" on {devices}")
    elif short:
        text = Text("no worker", "bold yellow")
    else:
        text = Text.assemble(("worker ", "bold"), ("stopped", "yellow"), " (w starts one)")
    if stale:
        # A stale worker stopped heartbeating without unregistering: it died or hangs.
        text.append(f" {len(stale)} stale" if short else f"  {len(stale)} stale", "bold red")
    return text


def counts_text(counts: dict[str, int], paused: bool, *, compact: int = 0) -> Text:
    """The runs per status: queued and running always, each finished status that has runs. From
    `compact` 1 on the words "queue" and the wide gaps go, from 2 on the commas and the long status
    names, at 3 the spaces around the bar."""
    gap, bar = ("  ", "  │  ") if compact == 0 else (" ", " │ " if compact < 3 else "│")
    comma = "," if compact < 2 else ""
    text = Text("queue " if compact == 0 else "", "bold")
    text.append(f"{counts.get('queued', 0)} queued{comma} {counts.get('running', 0)} running")
    if paused:
        text.append(f"{gap}PAUSED", "bold yellow")
    text.append(bar)
    finished = [(ABBREVIATED.get(s, s) if compact >= 2 else s, counts.get(s, 0)) for s in FINISHED_STATUSES]
    text.append(f"{comma} ".join(f"{n} {s}" for s, n in finished if n) or "nothing finished yet")
    return text


def status_lines(db_name: str, workers: Sequence[WorkerRecord], counts: dict[str, int], paused: bool) -> list[Text]:
    """The renderings of one poll, longest first."""
    worker, short_worker = worker_text(workers), worker_text(workers, short=True)
    full, short = counts_text(counts, paused), counts_text(counts, paused, compact=1)
    return [
        Text.assemble(TITLE, f"  {db_name}  │  ", worker, "  │  ", full),
        Text.assemble(TITLE, "  │  ", worker, "  │  ", full),
        Text.assemble(TITLE, "  │  ", short_worker, "  │  ", full),
        Text.assemble(TITLE, " │ ", short_worker, " │ ", short),
        Text.assemble(short_worker, " │ ", short),
        Text.assemble(short_worker, " │ ", counts_text(counts, paused, compact=2)),
        Text.assemble(short_worker, "│", counts_text(counts, paused, compact=3)),
    ]


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, db_name: str, **kwargs: Any) -> None:
        self.db_name = db_name
        self._lines = self._titled(Text("loading…"))
        self._shown = self._lines[0]
        super().__init__(self._shown, **kwargs)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self._show(status_lines(self.db_name, snapshot.workers, snapshot.counts, snapshot.paused))

    def show_error(self, message: str) -> None:
        self._show(self._titled(Text(message, "bold red")))

    def on_resize(self, _event: events.Resize) -> None:
        self._show(self._lines)

    def _titled(self, news: Text) -> list[Text]:
        return [Text.assemble(TITLE, f"  {self.db_name}  │  ", news), news]

    def _show(self, lines: list[Text]) -> None:
        """Draw the longest of `lines` that fits (the shortest when none does)."""
        self._lines = lines
        width = self.content_size.width
        line = next((line for line in lines if line.cell_len <= width), lines[-1])
        # Most polls change nothing here; an update would still ask the screen for a layout.
        if line != self._shown:
            self._shown = line
            self.update(line)
