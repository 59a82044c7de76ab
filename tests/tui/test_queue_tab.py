"""The Queue tab and the header at 80x24: what a person on a small terminal sees and does."""

from __future__ import annotations

import os
import socket

from textual.widgets import Static

from dmf_tui.app import DmfApp
from dmf_tui.components.confirm import Confirm
from dmf_tui.components.run_table import RunTable
from dmf_tui.components.status_bar import StatusBar
from dmf_tui.load import ProcessLoad
from store.db import Store
from store.params import RunParams
from store.status import RunStatus
from tests.fake_load import FakeGpus, FakeProcesses, fake_sampler
from tests.tui.confirming import answer, asks
from tests.tui.conftest import FakeWorker, TextualPrivate, fill_lab, make_app, settle

SMALL = (80, 24)
BASE = RunParams(data="synthetic-100k", epochs=10)


def screen(app) -> str:
    return "\n".join(TextualPrivate.screen_lines(app))


def queue_table(app: DmfApp) -> RunTable:
    return app.queue_tab.query_one("#queue-table", RunTable)


def problems_table(app: DmfApp) -> RunTable:
    return app.queue_tab.query_one("#problems-table", RunTable)


# --- the queue's columns -------------------------------------------------------------------


async def test_id_and_status_stay_on_the_left_then_epoch_rmse_and_eta(store, worker):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        table = queue_table(app)
        keys = [column.key.value for column in table.ordered_columns]
        assert keys[:5] == ["id", "status", "epoch", "test", "eta"] and keys[-1] == "device"
        assert table.fixed_columns == 2
        running = TextualPrivate.screen_lines(app)[4].split()
        assert running[:5] == ["5", "running", "3/10", "1.1007", "18s"]  # all on an 80-column screen

        table.scroll_to(x=table.max_scroll_x, animate=False)
        await settle(pilot)
        assert TextualPrivate.screen_lines(app)[4].split()[:2] == ["5", "running"]


async def test_a_cell_the_screens_edge_cuts_is_left_blank_never_shown_in_part(store):
    # A long dataset label pushes lr (0.003) to where some width of terminal cuts it: at every width,
    # and at 80 columns at every sideways scroll, each word on the row must be one of its cells whole.
    store.enqueue(RunParams(data="/data/movielens/ml-1m/ratings.dat", model="deepmf", lr=0.003, k=10,
                            hidden=(10, 5), weight_decay=1e-05, batch_size=1024, device="auto"))
    whole = {"1", "queued", "0/20", "-", "deepmf", "ml-1m/ratings.dat", "10", "10,5", "0.003", "1e-05", "1024", "auto"}
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        table = queue_table(app)

        async def words_shown(where: str) -> set[str]:
            await pilot.pause()
            words = set(TextualPrivate.screen_lines(app)[4].split())
            assert words <= whole, f"{where}: {words - whole} is a cell shown in part"
            return words

        seen = set()
        for x in range(table.max_scroll_x + 1):
            table.scroll_to(x=x, animate=False)
            seen |= await words_shown(f"scrolled by {x}")
        table.scroll_to(x=0, animate=False)
        for width in range(60, 101):
            await pilot.resize_terminal(width, 24)
            seen |= await words_shown(f"at {width} columns")
        assert seen == whole


async def test_datasets_show_their_short_label(store):
    store.enqueue(RunParams(data="/home/someone/data/movielens/ml-1m/ratings.dat"))
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert [str(cell) for cell in queue_table(app).get_column("data")] == ["ml-1m/ratings.dat"]
        assert "/home/someone" not in screen(app)


# --- ended badly ------------------------------------------------------------------------


def ended_badly(store, worker: FakeWorker, count: int) -> list[int]:
    return [worker.run(BASE.replace(seed=seed), 2, status="failed", error=f"boom {seed}")
            for seed in range(count)]


async def test_x_dismisses_the_entry_under_the_cursor(store, worker):
    first, second = ended_badly(store, worker, 2)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        problems = problems_table(app)
        problems.focus()
        assert problems.run_ids == [second, first] and problems.current_run_id == second

        await pilot.press("x")
        await settle(pilot)

        assert problems.run_ids == [first]
        assert store.get_run(second).dismissed and not store.get_run(first).dismissed
        assert store.get_run(second).status == RunStatus.FAILED  # still in History
        await pilot.press("x")
        await settle(pilot)
        assert not problems.display and not app.queue_tab.query_one("#problems-title").display


async def test_runs_dismissed_or_archived_elsewhere_leave_the_list(store, worker):
    first, second, third = ended_badly(store, worker, 3)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        store.dismiss([first])  # from another process: no message tells the app
        store.archive([third])
        await settle(pilot)
        assert problems_table(app).run_ids == [second]


async def test_r_retries_the_entry_under_the_cursor(store, worker):
    (failed,) = ended_badly(store, worker, 1)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        problems_table(app).focus()
        await pilot.press("r")
        await settle(pilot)
        (copy,) = store.queue()
        assert copy.notes == f"retry of #{failed}"
        assert queue_table(app).run_ids == [copy.id]


async def test_a_archives_an_ended_run_but_not_a_queued_one(store, worker):
    (failed,) = ended_badly(store, worker, 1)
    queued = store.enqueue(BASE)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("a")  # the queue has the focus: its queued run
        await settle(pilot)
        assert not store.get_run(queued).archived
        assert any("only runs that have ended are archived" in m for m in TextualPrivate.notifications(app))

        problems_table(app).focus()
        await pilot.press("a")
        await settle(pilot)
        assert store.get_run(failed).archived
        assert not problems_table(app).display


async def test_delete_asks_then_deletes_the_run_under_the_cursor(store):
    first, second = store.enqueue(BASE), store.enqueue(BASE.replace(seed=2))
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        queue_table(app).move_cursor(row=1)
        question = await asks(pilot, "delete")
        assert question.startswith(f"Delete run {second} with their epochs and logs?")
        await answer(pilot, "n")
        assert [run.id for run in store.queue()] == [first, second]

        await asks(pilot, "delete")
        await answer(pilot, "y")
        assert [run.id for run in store.queue()] == [first]
        assert queue_table(app).run_ids == [first]


async def test_delete_refuses_a_running_run_without_asking(store, worker):
    running = worker.start(BASE)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("delete")
        await settle(pilot)
        assert not isinstance(app.screen, Confirm)
        assert store.get_run(running.id).status == RunStatus.RUNNING
        assert any("cancel it (c) before deleting it" in m for m in TextualPrivate.notifications(app))


# --- cancelling ---------------------------------------------------------------------------


async def test_capital_c_cancels_the_sweep_of_the_run_under_the_cursor_once_confirmed(store, worker):
    _, ids = store.enqueue_grid([BASE.replace(k=k) for k in (8, 16, 32)], name="k-grid")
    other = store.enqueue(BASE)
    running = worker.start()  # the sweep's first run
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        queue_table(app).move_cursor(row=1)
        question = await asks(pilot, "C")
        assert question == "Cancel 3 runs of sweep 'k-grid' (#1)? Running ones stop within the epoch."
        await answer(pilot, "n")
        assert [run.status for run in store.queue()] == ["running", "queued", "queued", "queued"]

        await asks(pilot, "C")
        await answer(pilot, "y")
        assert [store.get_run(i).status for i in ids[1:]] == ["cancelled", "cancelled"]
        assert store.is_cancel_requested(running.id)
        assert store.get_run(other).status == RunStatus.QUEUED


async def test_capital_c_on_a_run_outside_any_sweep_says_so(store):
    store.enqueue(BASE)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert not isinstance(app.screen, Confirm)
        assert "run 1 is not part of a sweep" in TextualPrivate.notifications(app)


async def test_c_asks_before_cancelling_a_running_run_and_not_a_queued_one(store, worker):
    running = worker.start(BASE)
    queued = store.enqueue(BASE)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        queue_table(app).move_cursor(row=1)
        await pilot.press("c")
        await settle(pilot)
        assert not isinstance(app.screen, Confirm)
        assert store.get_run(queued).status == RunStatus.CANCELLED

        queue_table(app).move_cursor(row=0)
        await asks(pilot, "c")
        await answer(pilot, "n")
        assert not store.is_cancel_requested(running.id)


# --- the header ---------------------------------------------------------------------------


def finish_one_of_each(store, worker: FakeWorker) -> None:
    for status in ("done", "failed", "cancelled", "lost", "interrupted"):
        for seed in range(12):  # two-digit counts
            worker.run(BASE.replace(seed=seed), 1, status=status, error=status)
    store.enqueue_grid([BASE.replace(seed=seed) for seed in range(120)])
    worker.start()


async def test_the_header_keeps_the_worker_and_every_count_at_80_columns(store, worker):
    finish_one_of_each(store, worker)
    store.register_worker(pid=1, host="elsewhere", devices="cuda:0", slots=1)
    store.set_paused(True)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        header = TextualPrivate.screen_lines(app)[0]
        for count in ("119 queued", "1 running", "PAUSED", "12 done", "12 fail", "12 canc", "12 lost",
                      "12 intr"):
            assert count in header
        assert "2 workers" in header
        assert "runs.db" not in header  # the database's name goes first

        await pilot.resize_terminal(160, 24)
        await settle(pilot)
        header = TextualPrivate.screen_lines(app)[0]
        assert "runs.db" in header and "12 cancelled, 12 lost, 12 interrupted" in header


async def test_the_header_at_80_columns_in_a_usual_lab(store, worker):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert TextualPrivate.screen_lines(app)[0].strip() == (
            "dmf-tui  │  worker on cpu  │  queue 2 queued, 1 running  │  3 done, 1 failed")


async def test_a_database_error_in_the_header_keeps_its_words_when_narrow(store):
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        message = "database error: " + "x" * 60
        app.query_one(StatusBar).show_error(message)
        await pilot.pause()
        assert TextualPrivate.screen_lines(app)[0].strip() == message


# --- system load --------------------------------------------------------------------------


def slot(store: Store, device: str, *, host: str | None = None) -> int:
    """A worker slot of this process (on this host unless `host`): the fakes give its load."""
    return store.register_worker(pid=os.getpid(), host=host or socket.gethostname(), devices=device, slots=1)


def load_lines(app) -> list[str]:
    return str(app.queue_tab.query_one("#slot-load", Static).render()).splitlines()


async def test_each_slot_shows_its_process_and_its_gpus_load(store):
    cpu, gpu, remote = slot(store, "cpu"), slot(store, "cuda:1"), slot(store, "cuda:0", host="elsewhere")
    app = make_app(store)
    app.source.load = fake_sampler(gpus=FakeGpus(count=2))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        lines = load_lines(app)
        assert lines == [
            f"worker {cpu}  cpu  CPU 98%  mem 1.5G",
            f"worker {gpu}  cuda:1  CPU 98%  mem 1.5G  GPU 41%  2.0G/80.0G",
            f"worker {remote}  cuda:0  on elsewhere",
        ]
        assert all(line in screen(app) for line in lines)


async def test_without_a_gpu_a_cuda_slot_shows_its_process_only(store):
    gpu = slot(store, "cuda:0")
    app = make_app(store)
    app.source.load = fake_sampler(gpus=FakeGpus(count=0))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert load_lines(app) == [f"worker {gpu}  cuda:0  CPU 98%  mem 1.5G"]


async def test_a_slot_whose_process_cannot_be_looked_at_shows_no_figures(store):
    cpu = slot(store, "cpu")
    app = make_app(store)
    app.source.load = fake_sampler(processes=FakeProcesses(load=None))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert load_lines(app) == [f"worker {cpu}  cpu"]


async def test_the_load_is_sampled_again_with_every_poll(store):
    slot(store, "cpu")
    processes = FakeProcesses()
    app = make_app(store)
    app.source.load = fake_sampler(processes=processes)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        before = len(processes.asked)
        processes.load = ProcessLoad(cpu_percent=3.0, memory_bytes=800 * 2**20)
        await settle(pilot)
        assert len(processes.asked) > before
        assert load_lines(app)[0].endswith("CPU 3%  mem 800M")


async def test_without_workers_there_is_no_load_line(store):
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert not app.queue_tab.query_one("#slot-load").display
