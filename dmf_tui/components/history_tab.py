"""The History tab: finished runs ranked by best test RMSE, filtered, sorted, grouped by sweep,
marked, compared, exported, archived and deleted.

By default it ranks what can be compared: done runs that are not archived, of one dataset (the
dataset of the run that finished last; `d` moves to the next dataset, then to all of them). The
filter line (store/filters.py) asks for anything else: `status:failed`, `data:all`, `lr:<1e-2`, ...

Rows come from the store a page at a time: the first page draws at once, the next one is fetched
when the cursor or the scroll gets near the end, so 10,000 runs open as fast as 200.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Label

from dmf_tui.components import fmt, ranking
from dmf_tui.components.fmt import Cell
from dmf_tui.components.param_plot import ParamPlotScreen
from dmf_tui.components.run_actions import cancel_sweep, delete_runs
from dmf_tui.components.run_table import RunTable, run_id_of
from dmf_tui.components.save_csv import SaveCsv, default_export_path
from dmf_tui.host import dmf_app
from dmf_tui.messages import CompareRuns, OpenRun, StoreChanged
from store import catalog
from store.db import Store
from store.filters import FilterError, RunFilter, parse_filter
from store.queries import Dataset, Summary
from store.records import RunRecord
from store.status import ENDED_BADLY

PAGE = 100
# Load the next page once the cursor is this close to the last loaded row.
PREFETCH = 40
# `d` moves through the datasets of the ranked runs, then to this: every dataset.
ALL = "all"
# The statuses `R` queues again: the runs of a sweep that did not end done.
# Frozen on the left when the table scrolls sideways: the mark, the run's id and its status.
FIXED_COLUMNS = 3


def history_columns(has_val: bool) -> tuple[tuple[str, str], ...]:
    """(column key, header): which run it is, the metric that ranks, the validation RMSE when a
    listed run has one, the parameters, then the rest: the ranking metrics among the other
    figures, where an 80-column terminal leaves the parameters in view (scrolled to, or sorted by,
    with `s`). Every key but "mark" is a column Store.leaderboard can sort by."""
    return (
        ("mark", " "), ("id", "id"), ("status", "status"), ("best_test_rmse", "best test"),
        *((("best_val_rmse", "val"),) if has_val else ()), *fmt.PARAM_HEADINGS,
        ("epoch", "epochs"), ("best_epoch", "@"), ("last_train_rmse", "train"), *ranking.METRICS,
        ("sweep_id", "sweep"), ("finished_at", "finished (UTC)"),
    )


HEADERS = dict(history_columns(has_val=True))
SORT_KEYS = tuple(key for key in HEADERS if key != "mark")
# The columns whose best runs are those with the highest value: sorted by one, they come first.
HIGHER_IS_BETTER = ranking.KEYS
FILTER_HELP = "/ filter: lr:<1e-2 k:>=32 model:mf status:failed sweep:3 data:all #12 text"


def history_cells(run: RunRecord, *, marked: bool, best: bool, has_val: bool,
                  sweep_runs: int | None = None) -> tuple[Cell, ...]:
    """A run's row. `best`: the best run of the listing, drawn bold with a star. `sweep_runs`: when
    grouped by sweep, how many listed runs its sweep holds (the row stands for them all)."""
    params = [run.data_label if name == "data" else cell
              for (name, _), cell in zip(fmt.PARAM_HEADINGS, fmt.param_cells(run))]
    sweep: Cell = "-" if run.sweep_id is None else (run.sweep_name or run.sweep_id)
    if sweep_runs is not None and run.sweep_id is not None:
        sweep = f"{sweep} ({sweep_runs})"
    mark: Cell = Text("●", "bold yellow") if marked else Text("★", "bold green") if best else ""
    cells: tuple[Cell, ...] = (
        mark, run.id, fmt.status_text(run), fmt.rmse(run.best_test_rmse),
        *((fmt.rmse(run.best_val_rmse),) if has_val else ()), *params,
        fmt.progress(run), run.best_epoch if run.best_epoch is not None else "-",
        fmt.rmse(run.last_train_rmse), *(ranking.value(getattr(run, key)) for key, _ in ranking.METRICS),
        sweep, fmt.when(run.finished_at),
    )
    return tuple(_bold(cell) for cell in cells) if best else cells


def _bold(cell: Cell) -> Cell:
    # Numbers stay as they are: the id column keys the table's order (RunTable.sync).
    if isinstance(cell, int):
        return cell
    text = fmt.literal(cell)  # a cell history_cells just made: styled in place
    text.stylize("bold")
    return text


@dataclass(frozen=True)
class Listing:
    """The first page of what History lists, and all it says about it."""

    where: RunFilter  # the filter line's, limited to the current dataset
    dataset: str | None  # the dataset key `d` chose or defaulted to; None: every one, or the filter's
    datasets: list[Dataset]
    runs: list[RunRecord]
    summary: Summary


def read_listing(store: Store, typed: RunFilter, choice: str | None, *, sort: str, descending: bool,
                 limit: int, by_sweep: bool) -> Listing | FilterError:
    """What History shows for the filter `typed` and the dataset `choice` (None: the default, the
    dataset of the run that finished last; ALL: every one), read in one thread hop. A filter the
    store cannot apply (a sweep name no sweep has) comes back as its error, shown under the filter."""
    datasets = store.datasets()
    dataset = None if choice == ALL else choice or (datasets[0].key if datasets else None)
    where = typed.on_data(dataset)
    if typed.names_data:
        dataset = None
    try:
        runs = store.leaderboard(where, sort=sort, descending=descending, limit=limit, by_sweep=by_sweep)
        summary = store.summary(where, by_sweep=by_sweep)
    except FilterError as exc:
        return exc
    return Listing(where, dataset, datasets, runs, summary)


class HistoryTab(Vertical):
    DEFAULT_CSS = """
    HistoryTab #history-summary { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="history.filter",
                tooltip="filter: lr:<1e-2 k:>=32 model:mf,deepmf status:failed sweep:lr-grid data:all "
                        "archived:yes #12, other words search notes, errors, tags (esc: back to the table)"),
        Binding("escape", "leave_filter", "Leave filter", show=False, id="history.leave_filter",
                tooltip="in the filter: back to the table, keeping the filter"),
        Binding("d", "next_dataset", "Data", id="history.dataset",
                tooltip="rank the runs of the next dataset, then of all of them (by default: the dataset "
                        "of the run that finished last)"),
        Binding("z", "group_by_sweep", "Group", id="history.group",
                tooltip="group by sweep: one row per sweep, its best run (enter opens it); again: every run"),
        Binding("m", "compare", "Compare", id="history.compare",
                tooltip="compare the marked runs: parameter diff and overlaid curves"),
        Binding("space", "mark", "Mark", show=False, id="history.mark",
                tooltip="mark or unmark the run under the cursor"),
        Binding("A", "mark_all", "Mark all", show=False, id="history.mark_all",
                tooltip="mark every listed run, on every page (grouped: the best run of each sweep)"),
        Binding("U", "clear_marks", "Unmark all", show=False, id="history.clear_marks",
                tooltip="clear every mark"),
        Binding("s", "sort_next", "Sort", show=False, id="history.sort",
                tooltip="sort by the cursor's column (again: by the next one), P@10, R@10 and NDCG@10 highest "
                        "first; a click on a header sorts too"),
        Binding("S", "sort_reverse", "Reverse", show=False, id="history.reverse", tooltip="reverse the order"),
        Binding("e", "export", "Export CSV", show=False, id="history.export",
                tooltip="write the listed runs to a CSV file (asks where)"),
        Binding("a", "archive", "Archive", show=False, id="history.archive",
                tooltip="archive the marked runs, or the run under the cursor (hidden unless the filter says "
                        "archived:yes or all); on archived runs: bring them back"),
        Binding("delete", "delete", "Delete", show=False, id="history.delete",
                tooltip="delete the marked runs, or the run under the cursor, with their epochs and logs (asks)"),
        Binding("C", "cancel_sweep", "Cancel sweep", show=False, id="history.cancel_sweep",
                tooltip="cancel the queued and running runs of the sweep of the run under the cursor (asks)"),
        Binding("R", "retry_sweep", "Retry sweep", show=False, id="history.retry_sweep",
                tooltip="queue again the runs of the cursor's sweep that ended badly (failed, lost or interrupted)"),
        Binding("P", "plot", "Plot", show=False, id="history.plot",
                tooltip="plot the best test RMSE of the listed runs against a parameter (log axis where it "
                        "spans decades)"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter = RunFilter()  # as typed in the filter line, when last it could be read
        self._typing_error: str | None = None  # why the filter line's text cannot be read now
        self.dataset_choice: str | None = None  # None: the default dataset; ALL; or a dataset key
        self.by_sweep = False
        self.sort = "best_test_rmse"
        self.descending = False
        self.marked: dict[int, None] = {}  # the marked run ids, in the order they were marked
        self.listing: Listing | None = None  # what the last reload read
        self._runs: list[RunRecord] = []
        self._has_val = False  # whether the table has the val column
        self._loading = False
        # Set by a change of what is listed (not by a poll): the cursor then goes to the first row.
        self._to_top = False
        # Bumped by every reload, so a page requested before it is not appended after it.
        self._generation = 0

    def compose(self) -> ComposeResult:
        yield Input(placeholder=FILTER_HELP, id="history-filter")
        yield Label("", id="history-summary", markup=False)
        yield Label("", id="filter-error", classes="error", markup=False)
        yield self._new_table(has_val=False)

    def _new_table(self, *, has_val: bool) -> RunTable:
        self._has_val = has_val
        return RunTable(history_columns(has_val), fixed_columns=FIXED_COLUMNS, id="history-table")

    @property
    def table(self) -> RunTable:
        return self.query_one("#history-table", RunTable)

    @property
    def total(self) -> int:
        """How many rows the listing has, on every page (0 before the first read)."""
        return self.listing.summary.total if self.listing is not None else 0

    # --- loading --------------------------------------------------------------------------

    @work(exclusive=True, group="history")
    async def reload(self) -> None:
        """Read again every row loaded so far (at least a page), e.g. after runs finished; after a
        change of filter, dataset, grouping or sort, from the top."""
        self._generation += 1
        app = dmf_app(self.app)
        listing = await app.db(
            read_listing, app.store, self.filter, self.dataset_choice, sort=self.sort, descending=self.descending,
            limit=max(PAGE, len(self._runs)), by_sweep=self.by_sweep,
        )
        if isinstance(listing, FilterError):
            self._show_error(str(listing))
            return
        if listing is None:
            return
        # The filter was read; unless what is typed now cannot be (a reload started before the
        # last keystroke ends after it), nothing is wrong with it.
        self._show_error(self._typing_error)
        self.listing = listing
        self._runs = listing.runs
        if listing.summary.has_val != self._has_val:
            await self._replace_table(has_val=listing.summary.has_val)
        self.table.sync(self._rows(listing.runs))
        if self._to_top:
            self._to_top = False
            self.table.move_cursor(row=0, scroll=True)
        self._show_summary()

    @work(group="history-more")
    async def load_more(self) -> None:
        listing = self.listing
        if self._loading or listing is None or len(self._runs) >= self.total:
            return
        self._loading = True
        generation = self._generation
        app = dmf_app(self.app)
        try:
            page = await app.db(app.store.leaderboard, listing.where, sort=self.sort, descending=self.descending,
                                limit=PAGE, offset=len(self._runs), by_sweep=self.by_sweep)
        finally:
            self._loading = False
        # A reload that started meanwhile (new sort or filter) makes this page stale.
        if page is not None and generation == self._generation:
            self._runs += page
            self.table.append(self._rows(page))

    def _rows(self, runs: list[RunRecord]) -> list[tuple[int, tuple[Cell, ...]]]:
        return [(run.id, self._cells(run)) for run in runs]

    def _cells(self, run: RunRecord) -> tuple[Cell, ...]:
        summary = self.listing.summary if self.listing is not None else None
        sweep_runs = None
        if self.by_sweep and summary is not None and run.sweep_id is not None:
            sweep_runs = summary.sweep_runs.get(run.sweep_id)
        return history_cells(run, marked=run.id in self.marked, best=summary is not None and run.id == summary.best,
                             has_val=self._has_val, sweep_runs=sweep_runs)

    async def _replace_table(self, *, has_val: bool) -> None:
        """Show the table with or without the val column: a DataTable's columns are fixed once rows
        are in it, and the column is there only while a listed run has a validation RMSE."""
        old = self.table
        focused = self.app.focused is old
        await old.remove()
        table = self._new_table(has_val=has_val)
        await self.mount(table)
        self._watch_scroll(table)
        if focused:
            table.focus()

    def _show_summary(self) -> None:
        """What is listed, e.g. "ml-100k · 37 done runs · 2 marked · ranked by best test ↑"."""
        listing = self.listing
        if listing is None:
            return
        where, summary = listing.where, listing.summary
        if self.filter.says("data"):
            data = ",".join(catalog.data_label(str(spec)) for term in self.filter.terms if term.name == "data"
                            for spec in term.values)
        elif listing.dataset is not None:
            data = next((d.label for d in listing.datasets if d.key == listing.dataset), listing.dataset)
        else:
            data = "all datasets"
        done = "" if where.says("status") or where.names_runs else "done "
        if self.by_sweep:
            # A row per sweep, and a run outside any sweep is a row of its own.
            count = f"best {done}run per sweep: {summary.total}"
        else:
            count = f"{summary.total} {done}run{'' if summary.total == 1 else 's'}"
        arrow = "↓" if self.descending else "↑"
        verb = "ranked" if self.sort == "best_test_rmse" else "sorted"
        parts = [data, count, *([f"{len(self.marked)} marked"] if self.marked else []),
                 f"{verb} by {HEADERS[self.sort]} {arrow}"]
        self.query_one("#history-summary", Label).update(" · ".join(parts))

    def _show_error(self, message: str | None) -> None:
        error = self.query_one("#filter-error", Label)
        error.update(message or "")
        error.display = message is not None

    @on(DataTable.RowHighlighted, "#history-table")
    def maybe_load_more(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= len(self._runs) - PREFETCH:
            self.load_more()

    def on_mount(self) -> None:
        self._watch_scroll(self.table)

    def _watch_scroll(self, table: RunTable) -> None:
        def scrolled(scroll_y: float) -> None:
            if scroll_y >= table.max_scroll_y - PREFETCH:
                self.load_more()

        self.watch(table, "scroll_y", scrolled)

    def _list_again(self) -> None:
        """Read the listing from its first row, the cursor on it: what is listed has changed."""
        self._runs = []
        self._to_top = True
        self.reload()

    # --- filtering, datasets, grouping and sorting ----------------------------------------

    @on(Input.Changed, "#history-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        try:
            self.filter = parse_filter(event.value)
        except FilterError as exc:
            self._typing_error = str(exc)
            self._show_error(self._typing_error)
            return
        self._typing_error = None
        self._show_error(None)
        self._list_again()

    @on(Input.Submitted, "#history-filter")
    def filter_done(self) -> None:
        self.table.focus()

    def action_focus_filter(self) -> None:
        self.query_one("#history-filter", Input).focus()

    def action_leave_filter(self) -> None:
        if self.app.focused is self.query_one("#history-filter", Input):
            self.table.focus()

    def action_next_dataset(self) -> None:
        listing = self.listing
        if listing is None:
            return
        if self.filter.names_data:
            self.notify("The filter chooses the datasets (data:, sweep: or run ids): d has nothing to change")
            return
        order = [d.key for d in listing.datasets] + [ALL]
        current = listing.dataset if listing.dataset is not None else ALL
        self.dataset_choice = order[(order.index(current) + 1) % len(order)] if current in order else order[0]
        self._list_again()

    def action_group_by_sweep(self) -> None:
        self.by_sweep = not self.by_sweep
        self._list_again()

    @on(DataTable.HeaderSelected, "#history-table")
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORT_KEYS:
            self.sort_by(key, not self.descending if key == self.sort else key in HIGHER_IS_BETTER)

    def action_sort_next(self) -> None:
        """Sort by the column under the cursor; again on the same column moves to the next one.
        A metric sorts its best runs first: the lowest RMSE, the highest NDCG@10."""
        column = history_columns(self._has_val)[self.table.cursor_column][0]
        if column not in SORT_KEYS or column == self.sort:
            column = SORT_KEYS[(SORT_KEYS.index(self.sort) + 1) % len(SORT_KEYS)]
        self.sort_by(column, column in HIGHER_IS_BETTER)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort, not self.descending)

    def sort_by(self, key: str, descending: bool) -> None:
        self.sort, self.descending = key, descending
        self._list_again()

    # --- marking and comparing ------------------------------------------------------------

    def action_mark(self) -> None:
        run_id = self.table.current_run_id
        if run_id is None:
            return
        if run_id in self.marked:
            del self.marked[run_id]
        else:
            self.marked[run_id] = None
        self._redraw_marks()
        self.table.action_cursor_down()

    @work(group="history-marks")
    async def action_mark_all(self) -> None:
        listing = self.listing
        if listing is None:
            return
        app = dmf_app(self.app)
        run_ids = await app.db(app.store.run_ids, listing.where, by_sweep=self.by_sweep)
        if run_ids is not None:
            self.marked.update(dict.fromkeys(run_ids))
            self._redraw_marks()

    def action_clear_marks(self) -> None:
        self.marked.clear()
        self._redraw_marks()

    def _redraw_marks(self) -> None:
        for run in self._runs:
            self.table.update_run(run.id, self._cells(run))
        self._show_summary()

    def action_compare(self) -> None:
        run_ids = list(self.marked)
        if len(run_ids) < 2:
            self.notify("Mark two or more runs with space first", severity="warning")
            return
        self.post_message(CompareRuns(run_ids))

    @on(DataTable.RowSelected, "#history-table")
    def open_run(self, event: DataTable.RowSelected) -> None:
        self.post_message(OpenRun(run_id_of(event.row_key)))

    @work(group="history-plot")
    async def action_plot(self) -> None:
        """The parameter plot of every listed run (grouped: the best of each sweep), not only those
        loaded so far."""
        listing = self.listing
        if listing is None:
            return
        app = dmf_app(self.app)
        runs = await app.db(app.store.leaderboard, listing.where, sort=self.sort, descending=self.descending,
                            by_sweep=self.by_sweep)
        if runs is not None:
            await app.push_screen(ParamPlotScreen(runs))

    # --- exporting ------------------------------------------------------------------------

    @work(group="history-export")
    async def action_export(self) -> None:
        listing = self.listing
        if listing is None:
            return
        app = dmf_app(self.app)
        path = await app.push_screen_wait(SaveCsv(default_export_path(app.store)))
        if path is None:
            return
        count = await app.db(app.store.export_runs_csv, path, listing.where, sort=self.sort,
                             descending=self.descending, by_sweep=self.by_sweep)
        if count is not None:
            self.notify(f"wrote {count} runs to {path}")

    # --- archiving, deleting, sweeps ------------------------------------------------------

    def _chosen(self) -> list[int]:
        """The runs an action on runs acts on: the marked ones, else the one under the cursor."""
        if self.marked:
            return list(self.marked)
        run_id = self.table.current_run_id
        return [] if run_id is None else [run_id]

    def _current_run(self) -> RunRecord | None:
        run_id = self.table.current_run_id
        return next((run for run in self._runs if run.id == run_id), None)

    @work(group="history-write")
    async def action_archive(self) -> None:
        run_ids = self._chosen()
        if not run_ids:
            return
        # On runs that are all archived (listed with archived:yes), a brings them back.
        loaded = [run for run in self._runs if run.id in run_ids]
        restore = bool(loaded) and all(run.archived for run in loaded)
        app = dmf_app(self.app)
        changed = await app.db(app.store.archive, run_ids, archived=not restore)
        if changed is None:
            return
        if restore:
            self.notify(f"brought back {fmt.count(changed, 'run')} from the archive")
        else:
            self.notify(f"archived {fmt.count(changed, 'run')}: archived:yes lists them, a there brings them back")
        self._forget_marks(run_ids)
        self.post_message(StoreChanged())

    @work(group="history-write")
    async def action_delete(self) -> None:
        run_ids = self._chosen()
        if run_ids and await delete_runs(self, run_ids) is not None:
            self._forget_marks(run_ids)

    def _forget_marks(self, run_ids: list[int]) -> None:
        for run_id in run_ids:
            self.marked.pop(run_id, None)

    @work(group="history-write")
    async def action_cancel_sweep(self) -> None:
        run = self._current_run()
        if run is not None:
            await cancel_sweep(self, run)

    @work(group="history-write")
    async def action_retry_sweep(self) -> None:
        run = self._sweep_run()
        if run is None or run.sweep_id is None:
            return
        app = dmf_app(self.app)
        ended_badly = await app.db(app.store.sweep_run_ids, run.sweep_id, statuses=list(ENDED_BADLY))
        if ended_badly is None:
            return
        name = fmt.sweep_label(run)
        if not ended_badly:
            self.notify(f"no run of {name} ended badly (failed, lost or interrupted)")
            return
        retried = await app.db(app.store.retry, ended_badly)
        if retried is not None:
            self.notify(f"queued {fmt.count(len(retried), 'run')} of {name} again")
            self.post_message(StoreChanged())

    def _sweep_run(self) -> RunRecord | None:
        """The run under the cursor, if it is part of a sweep (else None, saying so)."""
        run = self._current_run()
        if run is not None and run.sweep_id is None:
            self.notify(f"run {run.id} is not part of a sweep", severity="warning")
            return None
        return run
