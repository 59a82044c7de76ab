"""The bar at the top: the worker state and the queue counts, refreshed with every poll."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.style import StyleType
from rich.text import Text
from textual.widgets import Static

from dmf_tui.source import Snapshot
from store.records import WorkerRecord
from store.status import FINISHED_STATUSES, WorkerState


def worker_text(workers: Sequence[WorkerRecord]) -> Text:
    running = [w for w in workers if w.state == WorkerState.RUNNING]
    stale = [w for w in workers if w.state == WorkerState.STALE]
    if running:
        devices = sorted({d for w in running for d in w.devices})
        count = f"{len(running)} " if len(running) > 1 else ""
        text = Text.assemble(("worker ", "bold"), (f"{count}running", "green"), f" on {','.join(devices)}")
    else:
        text = Text.assemble(("worker ", "bold"), ("stopped", "yellow"), " (w starts one)")
    if stale:
        # A stale worker stopped heartbeating without unregistering: it died or hangs.
        text.append(f"  {len(stale)} stale", "bold red")
    return text


def counts_text(counts: dict[str, int], paused: bool) -> Text:
    text = Text.assemble(("queue ", "bold"), f"{counts.get('queued', 0)} queued, {counts.get('running', 0)} running")
    if paused:
        text.append("  PAUSED", "bold yellow")
    finished = [(s, counts.get(s, 0)) for s in FINISHED_STATUSES]
    text.append("  │  ")
    text.append(", ".join(f"{n} {s}" for s, n in finished if n) or "nothing finished yet")
    return text


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, db_name: str, **kwargs: Any) -> None:
        self.db_name = db_name
        self._shown = self._line("loading…")
        super().__init__(self._shown, **kwargs)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self._show(self._line(worker_text(snapshot.workers), "  │  ", counts_text(snapshot.counts, snapshot.paused)))

    def show_error(self, message: str) -> None:
        self._show(self._line((message, "bold red")))

    def _line(self, *parts: str | Text | tuple[str, StyleType]) -> Text:
        return Text.assemble(("dmf-tui", "bold"), f"  {self.db_name}  │  ", *parts)

    def _show(self, line: Text) -> None:
        # Most polls change nothing here; an update would still ask the screen for a layout.
        if line != self._shown:
            self._shown = line
            self.update(line)
