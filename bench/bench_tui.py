"""Time the TUI where a person waits for it: the first paint, the History tab on 10,000 runs,
the poll with 2,000 queued runs, and an epoch written by a worker until it shows in the Live tab.

    .venv/bin/python bench/bench_tui.py                # 10,000 runs, 2,000 queued, 10 epoch latencies
    .venv/bin/python bench/bench_tui.py --runs 50000 --queued 5000

The app runs headless (Textual's run_test) at 140x40; drawing to a real terminal adds the
terminal's own time. The 10,000 runs are queued with Store.enqueue_grid and then marked done with
one SQL UPDATE, since finishing them one by one through the worker's API would only time the store.
Prints a markdown table and the machine, ready for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import text
from textual.widgets import DataTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe
from dmf_tui.app import DmfApp
from dmf_tui.components.history_tab import PAGE
from dmf_tui.source import StoreSource
from store.db import open_store
from store.params import RunParams

SIZE = (140, 40)

# Run in a fresh interpreter: imports, opening the store, composing and the first paint.
FIRST_PAINT = """
import asyncio, sys, time
from store.db import open_store
from dmf_tui.app import DmfApp

async def main():
    app = DmfApp(open_store(sys.argv[1]))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        painted = time.time()
        await app.refresh_now()
        print(painted, time.time())

asyncio.run(main())
"""


def first_paint(db: str, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds from starting `python` to the first paint, and to the first poll's data drawn."""
    paints, data = [], []
    root = Path(__file__).resolve().parents[1]
    for _ in range(repeats):
        start = time.time()
        out = subprocess.run([sys.executable, "-c", FIRST_PAINT, db], capture_output=True, text=True,
                             check=True, cwd=root).stdout.split()
        paints.append(float(out[0]) - start)
        data.append(float(out[1]) - start)
    return paints, data


def fill_history(store, runs: int) -> None:
    grid = [RunParams(model=("mf", "deepmf")[i % 2], data="synthetic-100k", k=8 + i % 57, seed=i)
            for i in range(runs)]
    store.enqueue_grid(grid, name="bench")
    with store.engine.begin() as conn:
        conn.execute(text(
            "UPDATE runs SET status = 'done', epoch = json_extract(params, '$.epochs'), "
            "best_epoch = json_extract(params, '$.epochs'), "
            "best_test_rmse = 0.85 + (id * 7919 % 10000) / 100000.0, "
            "last_test_rmse = 0.86 + (id * 7919 % 10000) / 100000.0, "
            "last_train_rmse = 0.80 + (id * 7919 % 10000) / 100000.0, "
            "started_at = created_at, finished_at = created_at, position = NULL"
        ))


async def history_open(store) -> dict[str, float]:
    """Seconds from pressing 3 until the first page is drawn, then for a sort and a filter."""
    app = DmfApp(store, poll_interval=3600)
    app.animation_level = "none"
    timings = {}
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        history = app.history_tab
        history._runs = []  # as if never loaded: time the load the tab does, not a cached one
        history.table.sync([])

        async def timed(name, action):
            start = time.perf_counter()
            action()
            await app.workers.wait_for_complete()
            await pilot.pause()
            timings[name] = time.perf_counter() - start

        def show_history() -> None:
            app.action_show_tab("history")
            history.reload()

        await timed(f"History: first page ({PAGE} rows) of {store.count_runs()} runs drawn", show_history)
        await timed("History: sort by lr (re-query + redraw)", lambda: history.sort_by("lr", True))
        await timed("History: filter model:deepmf",
                    lambda: setattr(history.query_one("#history-filter"), "value", "model:deepmf"))
        start, pages = time.perf_counter(), 0
        while len(history._runs) < history.total:
            history.load_more()
            await app.workers.wait_for_complete()
            await pilot.pause()
            pages += 1
        timings[f"History: each further page while scrolling (mean of {pages}, up to row {history.total})"] = (
            (time.perf_counter() - start) / pages)
    return timings


def fill_queue(store, queued: int) -> None:
    """`queued` runs waiting, and two running under a live worker with a few epochs each, as a busy
    lab's queue looks while its slots train."""
    store.enqueue_grid([RunParams(data="synthetic-100k", k=8 + i % 57, seed=i) for i in range(queued + 2)],
                       name="bench")
    worker = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices="cpu", slots=1)
    for _ in range(2):
        run = store.claim(worker, device="cpu")
        for epoch in range(1, 4):
            store.record_epoch(run.id, epoch, train_rmse=1.0, test_rmse=1.0, seconds=1.0)


def poll_times(store, repeats: int) -> dict[str, float]:
    """Seconds of StoreSource.poll (the read, in the poll's thread): the first, which reads every
    run, and the median of the next `repeats`, with nothing changed in between; then the median of
    the whole refresh in the app (the read and the redraw of the Queue tab, at 80x24)."""
    source = StoreSource(store)
    start = time.perf_counter()
    source.poll()
    first = time.perf_counter() - start
    later = []
    for _ in range(repeats):
        start = time.perf_counter()
        source.poll()
        later.append(time.perf_counter() - start)
    queued = store.count_runs(status="queued")
    return {
        f"StoreSource.poll, {queued} queued runs: first poll": first,
        f"StoreSource.poll, {queued} queued runs: each next poll (median of {repeats})": statistics.median(later),
        f"Poll and Queue redraw in the app, {queued} queued (median of {repeats})":
            asyncio.run(app_refresh(store, repeats)),
    }


async def app_refresh(store, repeats: int) -> float:
    app = DmfApp(store, poll_interval=3600)
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:
        await app.refresh_now()
        await pilot.pause()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            await app.refresh_now()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


async def live_latency(store, samples: int) -> list[float]:
    """Seconds from record_epoch (in another thread, as a worker process would) to its row in Live,
    with the app's own one-second poll."""
    worker = store.register_worker(pid=os.getpid(), host=socket.gethostname(), devices="cpu", slots=1)
    store.enqueue(RunParams(data="synthetic-100k", epochs=samples))
    run = store.claim(worker, device="cpu")
    app = DmfApp(store)
    latencies = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        for epoch in range(1, samples + 1):
            # Land the epoch at a random phase of the poll cycle, as a real worker would.
            await asyncio.sleep(0.37 * epoch % 1.0)
            written = threading.Event()
            stamp: dict[str, float] = {}

            def record(epoch: int, stamp: dict, written: threading.Event) -> None:
                store.record_epoch(run.id, epoch, train_rmse=1.0, test_rmse=1.0, seconds=1.0)
                stamp["t"] = time.perf_counter()
                written.set()

            threading.Thread(target=record, args=(epoch, stamp, written)).start()
            while True:
                await asyncio.sleep(0.005)
                views = app.live_tab.query(f"#live-{run.id}")
                if written.is_set() and views and views.first().query_one(DataTable).row_count >= epoch:
                    latencies.append(time.perf_counter() - stamp["t"])
                    break
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="finished runs in History (default 10000)")
    parser.add_argument("--queued", type=int, default=2_000, help="queued runs polled (default 2000)")
    parser.add_argument("--polls", type=int, default=20, help="polls timed (default 20)")
    parser.add_argument("--samples", type=int, default=10, help="epochs timed into Live (default 10)")
    parser.add_argument("--starts", type=int, default=3, help="cold starts timed (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        empty = str(Path(tmp) / "empty.db")
        open_store(empty).close()
        paints, data = first_paint(empty, args.starts)

        store = open_store(str(Path(tmp) / "history.db"))
        fill_history(store, args.runs)
        start = time.perf_counter()
        store.leaderboard(status="done", limit=PAGE)
        page = time.perf_counter() - start
        start = time.perf_counter()
        store.leaderboard(status="done")
        everything = time.perf_counter() - start
        history = asyncio.run(history_open(store))
        store.close()

        store = open_store(str(Path(tmp) / "queue.db"))
        fill_queue(store, args.queued)
        polls = poll_times(store, args.polls)
        store.close()

        store = open_store(str(Path(tmp) / "live.db"))
        latencies = asyncio.run(live_latency(store, args.samples))
        store.close()

    rows = [
        (f"Cold start to first paint (python start, empty db; best of {args.starts})", min(paints)),
        (f"Cold start to first poll drawn (best of {args.starts})", min(data)),
        (f"Store.leaderboard, first {PAGE} of {args.runs} runs", page),
        (f"Store.leaderboard, all {args.runs} runs at once", everything),
        *history.items(),
        *polls.items(),
        (f"record_epoch -> row in Live, median of {len(latencies)} (1 s poll)", statistics.median(latencies)),
        (f"record_epoch -> row in Live, worst of {len(latencies)}", max(latencies)),
    ]
    print("| measurement | seconds |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print()
    print(f"Machine: {describe()}")
    print(f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
