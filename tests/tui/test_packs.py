"""Runs that train together as one pack (store.claim_pack, engine.trainer.fit_pack), as the Queue,
Live and Run detail show them at 80x24 (the pack whose first run is #1, of 3 runs, as "#1", a
multiplication sign and "3"); a run that trains alone shows no pack."""

from __future__ import annotations

import re

from textual.widgets import Static

from dmf_tui.components.live_tab import LiveRun
from dmf_tui.components.run_table import RunTable
from dmf_tui.messages import OpenRun
from store.params import RunParams
from tests.tui.conftest import FakeWorker, TextualPrivate, make_app, settle

SMALL = (80, 24)
# Three runs that differ only in lr pack together; dropout makes the fourth train alone.
BASE = RunParams(data="synthetic-100k", epochs=10, device="cpu")
PACKED = [BASE.replace(lr=lr) for lr in (1e-3, 1e-2, 1e-1)]
ALONE = BASE.replace(model="deepmf", dropout=0.1)


def mark(first: int) -> str:
    """How a pack of three whose first run is `first` reads in the Queue and Live."""
    return f"#{first}\N{MULTIPLICATION SIGN}3"


def start_pack_and_one_alone(store, worker: FakeWorker) -> tuple[list[int], int, int]:
    """A pack of three running runs, a run running alone and one queued: their ids, as the worker
    would claim them, each running run two epochs in."""
    for params in (*PACKED, ALONE, BASE):
        store.enqueue(params)
    pack = [run.id for run in store.claim_pack(worker.id, device="cpu", limit=3)]
    alone = worker.start()
    assert len(pack) == 3 and alone is not None
    for run_id in (*pack, alone.id):
        worker.train(run_id, 2)
    (queued,) = [run.id for run in store.queue() if run.status == "queued"]
    return pack, alone.id, queued


async def test_the_queue_marks_each_run_of_a_pack_and_no_other(store, worker):
    pack, alone, queued = start_pack_and_one_alone(store, worker)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        table = app.queue_tab.query_one("#queue-table", RunTable)
        marks = dict(zip(table.run_ids, (str(cell) for cell in table.get_column("pack"))))
        assert marks == {**{run_id: mark(pack[0]) for run_id in pack}, alone: "", queued: ""}
        # Shown at 80 columns beside the figures a person watches, not scrolled off with the parameters.
        lines = TextualPrivate.screen_lines(app)
        rows = {int(line.split()[0]): line for line in lines[4:9]}
        assert all(mark(pack[0]) in rows[run_id] for run_id in pack)
        assert "#" not in rows[alone] + rows[queued]


async def test_live_says_which_panels_are_one_pack_on_one_device(store, worker):
    pack, alone, _ = start_pack_and_one_alone(store, worker)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("2")
        await settle(pilot)

        def what(run_id: int) -> str:
            title = app.live_tab.query_one(f"#live-{run_id}", LiveRun).query_one("#live-title", Static)
            return str(title.render()).splitlines()[0]

        assert all(what(run_id).endswith(f" · pack {mark(pack[0])} on cpu") for run_id in pack)
        assert what(alone).endswith(" · synthetic-100k · cpu")
        # The first panel's title is drawn whole at 80 columns.
        assert TextualPrivate.screen_lines(app)[3].rstrip().endswith(f"pack {mark(pack[0])} on cpu")


async def test_run_detail_says_a_run_trained_in_a_pack_of_how_many(store, worker):
    pack, alone, _ = start_pack_and_one_alone(store, worker)
    app = make_app(store)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.post_message(OpenRun(pack[1]))
        await settle(pilot)
        config = "\n".join(TextualPrivate.screen_lines(app))
        assert re.search(rf"\bpack +of 3 runs \(#{pack[0]}\)", config)

        await pilot.press("escape")
        app.post_message(OpenRun(alone))
        await settle(pilot)
        assert "pack" not in "\n".join(TextualPrivate.screen_lines(app))
