"""Fixtures for the TUI tests: a temporary store, filled through the Store API by a fake worker
(claim, record_epoch, finish_run) exactly as the real worker would."""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import socket

import pytest
from sqlalchemy import text
from textual.widgets import DataTable

from dmf_tui.app import DmfApp
from store.db import open_store
from store.params import RunParams

# Snapshots must draw the same on every machine and day, so every stored time is set to this
# (in the form SQLAlchemy stores UTC datetimes in SQLite).
FROZEN = "2024-05-01 12:00:00.000000"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests in a fresh event loop (what pytest-asyncio would do, without it)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "runs.db"))
    yield store
    store.close()


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


def fill_lab(store, worker: FakeWorker) -> None:
    """A small lab: finished MF and DeepMF runs, a failed one, one running and two queued."""
    base = RunParams(data="synthetic-100k", epochs=10)
    worker.run(base.replace(model="mf", lr=1e-3), 10, floor=0.93)
    worker.run(base.replace(model="mf", lr=1e-2), 10, floor=0.91)
    worker.run(base.replace(model="deepmf", lr=1e-3), 10, floor=0.89)
    worker.run(base.replace(model="deepmf", lr=1e-2, hidden=(64, 32)), 4, floor=0.95, status="failed",
               error="CUDA out of memory. Tried to allocate 2.00 GiB\n(traceback follows)")
    running = worker.start(base.replace(model="deepmf", k=32))
    worker.train(running.id, 3, floor=0.88)
    store.enqueue_grid([base.replace(model="mf", k=k) for k in (16, 64)], name="k sweep")


def make_app(store) -> DmfApp:
    # Polls run when a test awaits app.refresh_now(), never on a timer, so each step is deterministic;
    # without animations pilot key presses do not wait for tab underlines to slide.
    app = DmfApp(store, poll_interval=3600)
    app.animation_level = "none"
    return app


async def settle(pilot) -> None:
    """Let a poll, every worker the app started and the redraws they caused finish."""
    await pilot.app.refresh_now()
    await pilot.app.workers.wait_for_complete()
    # pilot.pause() alone guesses idleness from CPU time, which a loaded CI machine fools: a
    # table's new height (measured on its idle event) could still be pending at the screenshot.
    for _ in range(100):
        await pilot.pause()
        busy = _busy(pilot.app)
        if not busy:
            return
    raise AssertionError(f"the app never settled: {busy}")


def _busy(app) -> list:
    """What still waits to be processed: messages, a table measurement or a layout."""
    screen = app.screen
    waiting = [pump for pump in [app, screen, *screen.walk_children()] if not pump._message_queue.empty()]
    waiting += [table for table in screen.query(DataTable) if table._require_update_dimensions or table._updated_cells]
    return waiting + ["layout"] * screen._layout_required
