"""Every table of the TUI takes j/k/g/G/Home/End; a RunTable keeps its first columns on the left
when it scrolls sideways; an epoch table grows a val column for a run with a validation split."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from textual.app import App, ComposeResult

from dmf_tui.components import fmt
from dmf_tui.components.epoch_table import EpochTable
from dmf_tui.components.run_table import RunTable
from store.params import RunParams
from store.records import EpochRecord
from tests.tui.conftest import fill_lab, make_app, settle

# Wider than 80 columns all together, so the table scrolls sideways.
COLUMNS = [("id", "id"), ("status", "status"), *((f"p{i}", f"parameter {i}") for i in range(8))]


class Tables(App[None]):
    def compose(self) -> ComposeResult:
        yield RunTable(COLUMNS, fixed_columns=2, id="runs")
        yield EpochTable(id="epochs")


def run_rows(count: int) -> list[tuple[int, tuple[str | int, ...]]]:
    return [(run_id, (run_id, "done", *(f"value {run_id}.{i}" for i in range(8)))) for run_id in range(1, count + 1)]


def epoch(number: int, val: float | None = None) -> EpochRecord:
    return EpochRecord(run_id=1, epoch=number, train_rmse=0.9, test_rmse=1.0, val_rmse=val, seconds=2.5,
                       created_at=datetime(2024, 5, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize(("keys", "row"), [
    ("j j j", 3), ("j j j k", 2), ("G", 29), ("end", 29), ("G g", 0), ("G home", 0),
])
async def test_table_keys_move_the_cursor_as_in_less_and_vi(keys, row):
    app = Tables()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one("#runs", RunTable)
        table.sync(run_rows(30))
        table.focus()
        await pilot.pause()
        await pilot.press(*keys.split())
        assert table.cursor_row == row


async def test_the_first_columns_stay_on_the_left_when_the_table_scrolls_sideways():
    app = Tables()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one("#runs", RunTable)
        table.sync(run_rows(3))
        await pilot.pause()
        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause()
        assert table.scroll_x > 0
        header, first = table.render_line(0).text, table.render_line(1).text
        assert header.split()[:2] == ["id", "status"] and first.split()[:2] == ["1", "done"]
        assert "parameter 7" in header and "parameter 0" not in header  # the rest did scroll

        # Rows synced after the scroll (the next poll) keep their id and status in place.
        table.sync(run_rows(2))
        table.update_run(2, (2, "lost", *(f"value 2.{i}" for i in range(8))))
        await pilot.pause()
        assert table.render_line(2).text.split()[:2] == ["2", "lost"]


async def test_the_epoch_table_shows_a_val_column_once_a_validated_epoch_lands():
    app = Tables()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one("#epochs", EpochTable)
        table.add_epochs([epoch(1)])
        await pilot.pause()
        assert [str(c.label) for c in table.columns.values()] == ["epoch", "train", "test", "sec"]

        # A run's first epoch without a validation RMSE (non-finite, stored as none), then with one:
        # the column comes, and the row already shown gets a dash in it.
        table.add_epochs([epoch(2, val=0.95)])
        await pilot.pause()
        assert [str(c.label) for c in table.columns.values()] == ["epoch", "train", "test", "val", "sec"]
        assert [[str(cell) for cell in table.get_row_at(i)] for i in range(2)] == [
            ["1", "0.9000", "1.0000", "-", "2.50"], ["2", "0.9000", "1.0000", "0.9500", "2.50"],
        ]


async def test_j_and_k_move_the_cursor_of_the_queue(store, worker):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.query_one("#queue-table", RunTable)
        assert app.focused is table and table.row_count == 3
        await pilot.press("j", "j")
        assert table.current_run_id == table.run_ids[2]
        await pilot.press("k")
        assert table.current_run_id == table.run_ids[1]


async def test_the_live_epoch_table_fits_beside_its_curves_at_80_columns(store, worker):
    run = worker.start(RunParams(data="synthetic-100k", epochs=5, val_size=0.1))
    for number in (1, 2):
        store.record_epoch(run.id, number, train_rmse=0.9, test_rmse=1.0, val_rmse=0.95, seconds=2.5)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        table = app.live_tab.query_one(EpochTable)
        assert table.has_validation
        # Every column whole, and most of the width left to the curves.
        assert table.region.width <= 40
        assert table.virtual_size.width <= table.scrollable_content_region.width


def test_a_fast_epochs_seconds_never_read_as_zero():
    assert [fmt.seconds(s) for s in (0.04, 2.5, 12.34)] == ["0.04", "2.50", "12.3"]
