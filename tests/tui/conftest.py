"""Helpers for the TUI tests: a fake worker that fills the test's store (tests/conftest.py) through
the Store API (claim, record_epoch, finish_run) exactly as the real worker would, the app as the
tests run it, `settle` to wait for it, and the one door to Textual's private attributes."""

from __future__ import annotations

import importlib.metadata
import io
import math
import os
import socket

import pytest
from rich.console import Console
from sqlalchemy import text
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable
from textual.worker import WorkerCancelled

from dmf_tui.app import DmfApp
from dmf_tui.components.confirm import Confirm
from store.db import Store
from store.params import RunParams
from store.search import parse_search
from tests.fake_load import fake_sampler

# Snapshots must draw the same on every machine and day, so every stored time is set to this
# (in the form SQLAlchemy stores UTC datetimes in SQLite).
FROZEN = "2024-05-01 12:00:00.000000"


class FakeWorker:
    """Plays the worker's side of the store: registered as this (live) process, on the cpu."""

    def __init__(self, store) -> None:
        self.store = store
        self.id = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices="cpu", slots=1)

    def start(self, params: RunParams | None = None):
        """Queue `params` (unless None: take the head of the queue) and claim it."""
        if params is not None:
            self.store.enqueue(params)
        return self.store.claim(self.id, device="cpu")

    def train(self, run_id: int, epochs: int, *, floor: float = 0.9, first: int = 1) -> None:
        """Record `epochs` epochs of a smooth, deterministic learning curve that flattens at `floor`."""
        for epoch in range(first, first + epochs):
            test = floor + 0.6 * math.exp(-epoch / 3)
            self.store.record_epoch(run_id, epoch, train_rmse=test - 0.05, test_rmse=test, seconds=2.5)

    def run(self, params: RunParams, epochs: int, *, floor: float = 0.9, status: str = "done", error=None):
        run = self.start(params)
        self.train(run.id, epochs, floor=floor)
        self.store.finish_run(run.id, status, error=error)
        return run.id


@pytest.fixture
def worker(store) -> FakeWorker:
    return FakeWorker(store)


def freeze_times(store) -> None:
    """Set every stored time to FROZEN (workers keep their heartbeat, which decides their state)."""
    with store.engine.begin() as conn:
        for column in ("created_at", "updated_at"):
            conn.execute(text(f"UPDATE runs SET {column} = :t"), {"t": FROZEN})
        for column in ("started_at", "finished_at"):
            conn.execute(text(f"UPDATE runs SET {column} = :t WHERE {column} IS NOT NULL"), {"t": FROZEN})
        conn.execute(text("UPDATE run_logs SET created_at = :t"), {"t": FROZEN})


def fill_lab(store, worker: FakeWorker) -> None:
    """A small lab: finished MF and DeepMF runs, a failed one, one running and two queued."""
    base = RunParams(data="synthetic-100k", epochs=10)
    worker.run(base.replace(model="mf", lr=1e-3), 10, floor=0.93)
    worker.run(base.replace(model="mf", lr=1e-2), 10, floor=0.91)
    worker.run(base.replace(model="deepmf", lr=1e-3), 10, floor=0.89)
    failed = worker.run(base.replace(model="deepmf", lr=1e-2, hidden=(64, 32)), 4, floor=0.95, status="failed",
                        error="CUDA out of memory. Tried to allocate 2.00 GiB\n(traceback follows)")
    store.append_log(failed, "started on cpu")
    store.append_log(failed, "Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory",
                     level="error")
    running = worker.start(base.replace(model="deepmf", k=32))
    worker.train(running.id, 3, floor=0.88)
    store.enqueue_grid([base.replace(model="mf", k=k) for k in (16, 64)], name="k sweep")


def make_app(store) -> DmfApp:
    # Polls run when a test awaits app.refresh_now(), never on a timer, so each step is deterministic;
    # without animations pilot key presses do not wait for tab underlines to slide.
    app = DmfApp(store, poll_interval=3600)
    app.animation_level = "none"
    # The system load of the tests' workers (this process) is a fixed fake: snapshots draw the same.
    app.source.load = fake_sampler()
    return app


async def settle(pilot: Pilot) -> None:
    """Let a poll, every worker the app started, any animation and the redraws they caused finish.

    pilot.pause() alone is not enough: it guesses idleness from CPU time, and what it processes
    can ask for more (a table measures new rows on its idle turn, its new height asks for a
    layout, and that one for another). So pause until one whole pause changes nothing on the
    screen: each pause lets every widget on it work through its messages and its idle turn,
    then lays out and paints what they changed.

    Animations are off in these tests (make_app), so the animator wait returns at once. It is
    the animator's own wait, not pilot.wait_for_scheduled_animations(), which adds its own
    CPU-idleness guess: 80 ms a call, about a fifth of the TUI tests' time, for what the pauses
    below check anyway."""
    app = pilot.app
    assert isinstance(app, DmfApp), "settle polls the app as make_app makes it"
    await app.refresh_now()
    await _workers_finished(app)
    await app.animator.wait_until_complete()
    before = _geometry(app)
    for _ in range(50):
        await _workers_finished(app)
        await pilot.pause()
        now = _geometry(app)
        if now == before and (not app.workers or _asking(app)):
            return
        before = now
    raise AssertionError(f"the app never settled: still laying out {app.screen}")


def _asking(app: App) -> bool:
    """Whether a question is up: the worker that asked it waits for the person, not for settle."""
    return isinstance(app.screen, Confirm)


async def _workers_finished(app: App) -> None:
    """Wait for every worker the app has now, unless a question is up (`_asking`). One cancelled
    is finished too: a newer worker of its exclusive group (a History reload) took its place, and
    the next round waits for that."""
    if _asking(app):
        return
    for worker in list(app.workers):
        try:
            await worker.wait()
        except WorkerCancelled:
            pass


def _geometry(app: App) -> list:
    """Where each widget of the screen is, and how large its content and scroll position are:
    what a pending measurement or layout would change."""
    return [(widget, widget.region, widget.virtual_size, widget.scroll_offset)
            for widget in app.screen.walk_children(Widget, with_self=True)]


# The Textual release whose private attributes TextualPrivate was checked against (constraints.txt).
TEXTUAL_CHECKED = "8.2.8"


class TextualPrivate:
    """Every use of Textual's private attributes in the tests, in one place, where Textual has no
    public way to do it. They may change in any release: on a release other than TEXTUAL_CHECKED,
    the tests that use them fail saying so, rather than pass or fail for a reason nobody checked.
    To move to a new Textual, check each method against its source, then update TEXTUAL_CHECKED."""

    @staticmethod
    def _check_version() -> None:
        version = importlib.metadata.version("textual")
        if version != TEXTUAL_CHECKED:
            pytest.fail(f"TextualPrivate (tests/tui/conftest.py) was checked against Textual {TEXTUAL_CHECKED}'s "
                        f"private attributes and this is Textual {version}: check its methods against this "
                        "release, then update TEXTUAL_CHECKED", pytrace=False)

    @classmethod
    def screen_lines(cls, app: App) -> list[str]:
        """The text of the screen as drawn, one string per terminal line (what app.export_screenshot
        draws as an SVG)."""
        cls._check_version()
        console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), record=True)
        console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
        return console.export_text().splitlines()

    @classmethod
    def notifications(cls, app: App) -> list[str]:
        """The messages of the notifications the app has up."""
        cls._check_version()
        return [notification.message for notification in app._notifications]

    @classmethod
    def rearrange(cls, screen: Screen) -> None:
        """Arrange the screen again now, as it does when a widget on it changes size."""
        cls._check_version()
        screen._clear_arrangement_cache()
        screen._refresh_layout()

    @classmethod
    def measure_new_rows(cls, table: DataTable) -> None:
        """Measure the rows added since the table last measured, now (what its idle turn does)."""
        cls._check_version()
        table._require_update_dimensions = False
        table._update_dimensions(list(table._new_rows))
        table._new_rows.clear()


# A search for the Searches tab and view: its space, and how each trial ends with the validation RMSE it
# reaches (at its last epoch).
SPACE = {"data": "synthetic-100k", "model": "mf", "lr": "1e-4..1e-1:log", "k": "8..32:int", "epochs": "4"}
ENDINGS = (("done", 0.93), ("pruned", 0.96), ("done", 0.91), ("failed", 0.99))


def run_trial(store: Store, worker: FakeWorker, status: str, val: float) -> int:
    """Ask the search for its next trial (as a worker's claim does) and end it `status`: its
    validation RMSE falls to `val` over 4 epochs (2 when pruned); test RMSE sits 0.01 above it."""
    run = store.claim(worker.id, device="cpu")
    assert run is not None and run.trial is not None
    for epoch in range(1, (2 if status == "pruned" else 4) + 1):
        now = val + 0.01 * (4 - epoch)
        store.record_epoch(run.id, epoch, train_rmse=now - 0.05, test_rmse=now + 0.01, val_rmse=now, seconds=1.0)
    store.finish_run(run.id, status, error="boom" if status == "failed" else None)
    return run.id


def make_search(store: Store, worker: FakeWorker, endings=ENDINGS, trials: int = 6) -> int:
    search_id = store.create_search(parse_search(SPACE, trials=trials, sampler="random", pruner="none"),
                                    name="lr search")
    for status, val in endings:
        run_trial(store, worker, status, val)
    return search_id
