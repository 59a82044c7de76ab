"""History at 80x24, driven by keys as a person would: what it ranks by default, the filter line,
datasets, grouping by sweep, marks, archive, delete, sweeps cancelled and retried, CSV export."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.widgets import DataTable, Input, Label
from textual.widgets.data_table import ColumnKey

from dmf_tui.components.history_tab import PAGE, SORT_KEYS, HistoryTab
from dmf_tui.components.param_plot import ParamPlotScreen
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.components.save_csv import SaveCsv
from store.params import RunParams
from tests.tui.confirming import answer, asks, does_not_ask, opens
from tests.tui.conftest import FakeWorker, TextualPrivate, make_app, settle

SIZE = (80, 24)
SMALL = RunParams(data="synthetic-100k", epochs=10)
LARGE = RunParams(data="synthetic-1m", epochs=10)


def cells(table: DataTable, column: str) -> list[str]:
    return [str(table.get_cell(row.key, column)) for row in table.ordered_rows]


def summary(history: HistoryTab) -> str:
    return str(history.query_one("#history-summary", Label).render())


def focused_id(app: App[Any]) -> str | None:
    return app.focused.id if app.focused is not None else None


def is_bold(cell: object) -> bool:
    return isinstance(cell, Text) and any(Style.parse(str(span.style)).bold for span in cell.spans)


def filter_error(history: HistoryTab) -> str | None:
    error = history.query_one("#filter-error", Label)
    return str(error.render()) if error.display else None


def finish(worker: FakeWorker, run_id: int, floor: float, status: str = "done") -> int:
    """Train the queued run `run_id` (the head of the queue) and end it with `status`."""
    run = worker.start()
    assert run is not None and run.id == run_id
    worker.train(run_id, 3, floor=floor)
    worker.store.finish_run(run_id, status)
    return run_id


@pytest.fixture
def lab(store, worker) -> dict[str, int]:
    """On synthetic-100k: a sweep "lr grid" of three runs (two done, one failed) and a DeepMF run;
    then, finished last, an MF run on synthetic-1m; and a queued run of the sweep."""
    sweep, (low, high, bad) = store.enqueue_grid([SMALL.replace(lr=lr) for lr in (1e-3, 1e-2, 3e-2)],
                                                 name="lr grid")
    finish(worker, low, 0.93)
    finish(worker, high, 0.91)
    finish(worker, bad, 0.95, status="failed")
    deep = worker.run(SMALL.replace(model="deepmf"), 3, floor=0.89)
    large = worker.run(LARGE.replace(k=32), 3, floor=0.80)
    waiting = store.enqueue(SMALL.replace(lr=1e-1), sweep_id=sweep)
    return {"sweep": sweep, "low": low, "high": high, "bad": bad, "waiting": waiting, "deep": deep, "large": large}


async def open_history(pilot) -> HistoryTab:
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    history = pilot.app.history_tab
    assert isinstance(history, HistoryTab) and pilot.app.focused is history.table
    return history


async def type_filter(pilot, text: str) -> None:
    """Open the filter with /, replace its text by typing, and leave with escape."""
    await pilot.press("slash")
    pilot.app.history_tab.query_one("#history-filter", Input).value = ""
    await pilot.press(*text)
    await pilot.press("escape")
    await settle(pilot)


async def test_ranks_the_done_runs_of_the_dataset_of_the_run_that_finished_last(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        assert [int(i) for i in cells(history.table, "id")] == [lab["large"]]
        assert summary(history) == "synthetic-1m · 1 done run · ranked by best test ↑"

        await pilot.press("d")
        await settle(pilot)
        # Failed, queued and running runs are not ranked among the done ones.
        assert [int(i) for i in cells(history.table, "id")] == [lab["deep"], lab["high"], lab["low"]]
        assert summary(history) == "synthetic-100k · 3 done runs · ranked by best test ↑"

        await pilot.press("d")
        await settle(pilot)
        assert [int(i) for i in cells(history.table, "id")] == [lab["large"], lab["deep"], lab["high"], lab["low"]]
        assert summary(history).startswith("all datasets · 4 done runs")

        await pilot.press("d")
        await settle(pilot)
        assert summary(history).startswith("synthetic-1m · 1 done run")


async def test_the_best_run_is_starred_and_bold_whatever_the_sort(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        await pilot.press("d")
        await settle(pilot)
        history.sort_by("lr", False)
        await settle(pilot)
        assert summary(history).endswith("sorted by lr ↑")
        assert [int(i) for i in cells(history.table, "id")] == [lab["low"], lab["deep"], lab["high"]]
        assert cells(history.table, "mark") == ["", "★", ""]
        assert is_bold(history.table.get_cell(str(lab["deep"]), "best_test_rmse"))
        assert not is_bold(history.table.get_cell(str(lab["low"]), "best_test_rmse"))


async def test_other_statuses_only_when_the_filter_asks(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        await type_filter(pilot, "status:failed,queued data:all")
        assert sorted(int(i) for i in cells(history.table, "id")) == [lab["bad"], lab["waiting"]]
        assert summary(history).startswith("all datasets · 2 runs ·")
        await type_filter(pilot, f"#{lab['bad']}")
        assert [int(i) for i in cells(history.table, "id")] == [lab["bad"]]


async def test_parameters_filter_with_comparisons(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        await type_filter(pilot, "lr:<5e-3 data:synthetic-100k")
        assert [int(i) for i in cells(history.table, "id")] == [lab["deep"], lab["low"]]
        assert summary(history).startswith("synthetic-100k · 2 done runs")
        await type_filter(pilot, "model:deepmf,mf k>=32 data:all")
        assert [int(i) for i in cells(history.table, "id")] == [lab["large"]]
        # The filter chooses the datasets: d has nothing to change.
        await pilot.press("d")
        await settle(pilot)
        assert history.dataset_choice is None and summary(history).startswith("all datasets · 1 done run")


async def test_a_malformed_filter_says_which_term_and_keeps_the_listing(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        await type_filter(pilot, "data:all")
        history.query_one("#history-filter", Input).value = "data:all lr:<fast"
        await settle(pilot)
        assert filter_error(history) == "'lr:<fast': 'fast' is not a number"
        assert len(cells(history.table, "id")) == 4  # still the listing before the mistake
        # A sweep name no sweep has is found out by the store, and said in the same place.
        await type_filter(pilot, "sweep:nosuch")
        assert filter_error(history) == "sweep: no sweep is named 'nosuch'"
        await type_filter(pilot, 'sweep:"LR grid"')
        assert filter_error(history) is None
        assert sorted(int(i) for i in cells(history.table, "id")) == [lab["low"], lab["high"]]


async def test_an_error_typed_while_the_listing_loads_stays_shown(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        line = history.query_one("#history-filter", Input)
        # The reload "lr" starts ends after the next keystrokes made the filter unreadable.
        line.value = "data:all"
        await pilot.pause()
        line.value = "data:all lr:<"
        await settle(pilot)
        assert filter_error(history) == "'lr:<': lr needs a value after the colon, e.g. lr:0.001"
        assert TextualPrivate.screen_lines(app)[7].strip() == filter_error(history)


async def test_letters_typed_in_the_filter_stay_there(store, lab):
    """d, z, a, A, U, C, R, e, m, s are History's keys; typed into the filter they are text."""
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        await pilot.press("slash")
        await pilot.press(*"data:all zaAUCRems")
        await settle(pilot)
        assert history.query_one("#history-filter", Input).value == "data:all zaAUCRems"
        assert app.focused is history.query_one("#history-filter", Input)
        assert (history.dataset_choice, history.by_sweep, history.marked) == (None, False, {})
        assert store.count_runs() == 6 and not any(run.archived for run in store.leaderboard())


async def test_escape_leaves_the_filter_and_a_new_filter_starts_at_the_first_row(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        await pilot.press("d", "d")
        await settle(pilot)
        await pilot.press("down", "down")
        assert history.table.cursor_row == 2
        await pilot.press("slash")
        assert focused_id(app) == "history-filter"
        await pilot.press(*"mf")
        await pilot.press("escape")
        await settle(pilot)
        assert focused_id(app) == "history-table"
        assert history.query_one("#history-filter", Input).value == "mf"
        assert history.table.cursor_row == 0
        # So does a new dataset, grouping or sort.
        await pilot.press("down", "S")
        await settle(pilot)
        assert history.table.cursor_row == 0


async def test_at_80x24_id_status_and_best_test_come_first_and_stay(store, lab):
    validated = store.start_run(LARGE.replace(val_size=0.1), device="cpu").id
    for epoch in (1, 2):
        store.record_epoch(validated, epoch, train_rmse=0.8, test_rmse=0.9 / epoch, val_rmse=0.95 / epoch,
                           seconds=1.0)
    store.finish_run(validated, "done")
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        header = next(line for line in TextualPrivate.screen_lines(app) if " id " in line)
        assert header.split()[:5] == ["id", "status", "best", "test", "val"]
        assert cells(history.table, "best_val_rmse") == ["0.4750", "-"]
        # Scrolled to its right end, the table still says which run each row is.
        history.table.scroll_to(x=history.table.max_scroll_x, animate=False)
        await settle(pilot)
        lines = TextualPrivate.screen_lines(app)
        header = next(line for line in lines if " id " in line)
        assert header.split()[:2] == ["id", "status"] and "finished" in header
        assert any(line.split()[:3] == ["★", str(validated), "done"] for line in lines)

        # Without a validated run listed, no val column.
        await pilot.press("d")
        await settle(pilot)
        assert "best_val_rmse" not in [column.key.value for column in history.table.ordered_columns]
        assert focused_id(app) == "history-table"  # the new table has the focus the old one had


async def test_the_sweep_column_shows_its_name_and_z_groups_by_sweep(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert cells(history.table, "sweep_id") == ["-", "lr grid", "lr grid"]
        await pilot.press("z")
        await settle(pilot)
        # One row per sweep, its best run; a run outside a sweep is its own row.
        assert [int(i) for i in cells(history.table, "id")] == [lab["deep"], lab["high"]]
        assert cells(history.table, "sweep_id") == ["-", "lr grid (2)"]
        assert summary(history).startswith("synthetic-100k · best done run per sweep: 2 ·")
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == lab["high"]


async def test_mark_all_marks_every_page_and_U_clears(store, worker):
    _, run_ids = store.enqueue_grid([SMALL.replace(seed=seed) for seed in range(PAGE + 20)], name="seeds")
    for i, run_id in enumerate(run_ids):
        finish(worker, run_id, 0.9 + i / 1000)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        assert history.table.row_count == PAGE
        await pilot.press("A")
        await settle(pilot)
        assert sorted(history.marked) == run_ids
        assert f" · {PAGE + 20} marked · " in summary(history)
        assert set(cells(history.table, "mark")) == {"●"}
        await pilot.press("U")
        await settle(pilot)
        assert history.marked == {}
        assert cells(history.table, "mark")[:2] == ["★", ""]


async def test_archive_hides_a_run_and_archived_yes_brings_it_back(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        history = await open_history(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert store.get_run(lab["large"]).archived
        # Its dataset has no other run: History ranks the next one.
        assert summary(history).startswith("synthetic-100k · 3 done runs")
        await type_filter(pilot, "archived:yes")
        assert [int(i) for i in cells(history.table, "id")] == [lab["large"]]
        await pilot.press("a")
        await settle(pilot)
        assert not store.get_run(lab["large"]).archived


async def test_delete_asks_naming_how_many_and_deletes_the_marked_runs(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("space", "space")
        question = await asks(pilot, "delete")
        assert question.startswith("Delete 2 runs with their epochs and logs?")
        await answer(pilot, "n")
        assert store.count_runs() == 6
        await asks(pilot, "delete")
        await answer(pilot, "y")
        assert store.count_runs() == 4
        assert [int(i) for i in cells(history.table, "id")] == [lab["low"]]
        assert history.marked == {}


async def test_cancel_and_retry_the_sweep_of_the_run_under_the_cursor(store, lab):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_history(pilot)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("down")  # a run of the "lr grid" sweep
        question = await asks(pilot, "C")
        assert question == f"Cancel 1 run of sweep 'lr grid' (#{lab['sweep']})? Running ones stop within the epoch."
        await answer(pilot, "y")
        assert store.get_run(lab["waiting"]).status == "cancelled"

        await does_not_ask(pilot, "R")
        # The failed run is queued again, in its sweep; the one just cancelled was stopped on
        # purpose, so it is not (as `dmf-tui retry --sweep`).
        queued = store.queue()
        assert [(run.sweep_id, run.params.lr) for run in queued] == [(lab["sweep"], 3e-2)]



async def test_export_asks_where_beside_the_database_and_writes_the_listing(store, lab, db, tmp_path, monkeypatch):
    elsewhere = tmp_path / "started-here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        dialog = await opens(pilot, "e", SaveCsv)
        path = Path(dialog.query_one(Input).value)
        assert path.parent == Path(db).parent and path.suffix == ".csv"
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, SaveCsv)
        assert not path.exists() and list(elsewhere.iterdir()) == []

        await pilot.press("d")
        await settle(pilot)
        dialog = await opens(pilot, "e", SaveCsv)
        target = tmp_path / "chosen.csv"
        dialog.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        rows = list(csv.DictReader(target.open()))
        assert [int(row["id"]) for row in rows] == [int(i) for i in cells(history.table, "id")]
        assert len(rows) == 3 and list(elsewhere.iterdir()) == []


async def test_P_plots_every_listed_run_not_only_the_loaded_page(store, worker):
    _, run_ids = store.enqueue_grid([SMALL.replace(lr=(i + 1) / 1000) for i in range(PAGE + 5)], name="lr")
    for i, run_id in enumerate(run_ids):
        finish(worker, run_id, 0.9 + i / 1000)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        assert history.table.row_count == PAGE
        await pilot.press("P")
        await settle(pilot)
        plot = app.screen
        assert isinstance(plot, ParamPlotScreen)
        assert sorted(run.id for run in plot.runs) == run_ids
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("z", "P")
        await settle(pilot)
        assert isinstance(app.screen, ParamPlotScreen) and len(app.screen.runs) == 1  # the sweep's best


async def test_s_sorts_by_ndcg_best_first_and_S_reverses_it(store, worker):
    """Higher is better for the ranking metrics: sorted by one, the best runs come first, and the
    runs that were not ranked last either way."""
    ndcgs: dict[int, float] = {}
    unranked = []
    for ndcg in (0.21, None, 0.35, 0.28):
        run = worker.start(SMALL)
        worker.train(run.id, 3)
        if ndcg is None:
            store.finish_run(run.id, "done")
            unranked.append(run.id)
        else:
            store.finish_run(run.id, "done", ranking=SimpleNamespace(precision=ndcg / 2, recall=ndcg / 3, ndcg=ndcg))
            ndcgs[run.id] = ndcg
    ranked = sorted(ndcgs, key=ndcgs.__getitem__, reverse=True)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        for _ in SORT_KEYS:  # s moves from column to column: as far as NDCG@10
            if history.sort == "ndcg_at_10":
                break
            await pilot.press("s")
            await settle(pilot)
        assert history.sort == "ndcg_at_10" and history.descending
        assert [int(i) for i in cells(history.table, "id")] == ranked + unranked
        assert cells(history.table, "ndcg_at_10") == ["0.3500", "0.2800", "0.2100", "-"]
        assert summary(history).endswith("sorted by NDCG@10 ↓")
        await pilot.press("S")
        await settle(pilot)
        assert [int(i) for i in cells(history.table, "id")] == ranked[::-1] + unranked
        assert summary(history).endswith("sorted by NDCG@10 ↑")


async def test_a_click_on_a_ranking_heading_sorts_it_best_first(store, worker):
    for ndcg in (0.2, 0.3):
        run = worker.start(SMALL)
        worker.train(run.id, 3)
        store.finish_run(run.id, "done", ranking=SimpleNamespace(precision=0.1, recall=0.1, ndcg=ndcg))
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        history = await open_history(pilot)
        table = history.table
        table.post_message(DataTable.HeaderSelected(table, ColumnKey("precision_at_10"), 0, Text("P@10")))
        await settle(pilot)
        assert history.sort == "precision_at_10" and history.descending
