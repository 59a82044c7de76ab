"""The History tab: every finished run ranked by best test RMSE, sortable, filterable, markable.

Rows come from Store.leaderboard a page at a time: the first page draws at once, the next one is
fetched when the cursor or the scroll gets near the end, so 10,000 runs open as fast as 200.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label

from dmf_tui.components import fmt
from dmf_tui.components.fmt import Cell
from dmf_tui.components.run_table import RunTable, run_id_of
from dmf_tui.host import dmf_app
from dmf_tui.messages import CompareRuns, OpenRun
from store.errors import StoreError
from store.records import RunRecord
from store.status import FINISHED_STATUSES

PAGE = 100
# Load the next page once the cursor is this close to the last loaded row.
PREFETCH = 40

# (column key, header). Every key but "mark" is a column Store.leaderboard can sort by.
HISTORY_COLUMNS = (
    ("mark", " "), ("id", "id"), ("status", "status"), *fmt.PARAM_HEADINGS,
    ("epoch", "epochs"), ("best_test_rmse", "best test"), ("best_epoch", "@"),
    ("last_train_rmse", "train"), ("sweep_id", "sweep"), ("finished_at", "finished (UTC)"),
)
SORT_KEYS = tuple(key for key, _ in HISTORY_COLUMNS if key != "mark")
FILTER_HELP = "filter: model:deepmf data:ml-1m status:failed sweep:3 and free text (notes, errors)"


class Filters(TypedDict, total=False):
    """The filters of Store.leaderboard, count_runs and export_runs_csv a filter line can set."""

    status: list[str]
    model: str
    data: str
    sweep_id: int
    text: str


def parse_filter(text: str) -> Filters:
    """The leaderboard filters a filter line asks for; StoreError names a malformed term."""
    filters: Filters = {"status": list(FINISHED_STATUSES)}
    words = []
    for term in text.split():
        name, sep, value = term.partition(":")
        if not sep or name not in ("model", "dataset", "data", "status", "sweep"):
            words.append(term)
        elif not value:
            raise StoreError(f"{name}: needs a value, e.g. {name}:{'3' if name == 'sweep' else 'mf'}")
        elif name == "status":
            filters["status"] = value.split(",")
        elif name == "sweep":
            if not (value.isascii() and value.isdigit()):  # str.isdigit also takes '²', which int() refuses
                raise StoreError(f"sweep: {value!r} is not a sweep number")
            filters["sweep_id"] = int(value)
        elif name == "model":
            filters["model"] = value
        else:  # data, or its other name dataset
            filters["data"] = value
    if words:
        filters["text"] = " ".join(words)
    return filters


def history_cells(run: RunRecord, marked: bool) -> tuple[Cell, ...]:
    return (
        Text("●", "bold yellow") if marked else "", run.id, fmt.status_text(run), *fmt.param_cells(run),
        fmt.progress(run),
        fmt.rmse(run.best_test_rmse), run.best_epoch if run.best_epoch is not None else "-",
        fmt.rmse(run.last_train_rmse), run.sweep_id if run.sweep_id is not None else "-", fmt.when(run.finished_at),
    )


class HistoryTab(Vertical):
    BINDINGS = [
        Binding("space", "mark", "Mark", id="history.mark", tooltip="mark or unmark the run under the cursor"),
        Binding("m", "compare", "Compare", id="history.compare",
                tooltip="compare the marked runs: parameter diff and overlaid curves"),
        Binding("e", "export", "Export CSV", id="history.export",
                tooltip="export the runs listed to a CSV file in the current directory"),
        Binding("s", "sort_next", "Sort", id="history.sort",
                tooltip="sort by the cursor's column (again: by the next one); a click on a header sorts too"),
        Binding("S", "sort_reverse", "Reverse", id="history.reverse", tooltip="reverse the order"),
        Binding("slash", "focus_filter", "Filter", id="history.filter",
                tooltip="filter: model:deepmf data:ml-1m status:failed sweep:3 and free text (notes, errors)"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = parse_filter("")
        self.sort = "best_test_rmse"
        self.descending = False
        self.total = 0
        self.marked: dict[int, None] = {}  # the marked run ids, in the order they were marked
        self._runs: list[RunRecord] = []
        self._loading = False
        # Bumped by every reload, so a page requested before it is not appended after it.
        self._generation = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="history-bar"):
            yield Input(placeholder=FILTER_HELP, id="history-filter")
            yield Label("", id="history-info")
        yield Label("", id="filter-error", classes="error", markup=False)
        yield RunTable(HISTORY_COLUMNS, id="history-table")

    @property
    def table(self) -> RunTable:
        return self.query_one("#history-table", RunTable)

    # --- loading --------------------------------------------------------------------------

    @work(exclusive=True, group="history")
    async def reload(self) -> None:
        """Read again every row loaded so far (at least a page), e.g. after runs finished."""
        self._generation += 1
        page = await self._fetch(0, max(PAGE, len(self._runs)))
        if page is not None:
            self._runs = page
            self.table.sync((run.id, history_cells(run, run.id in self.marked)) for run in page)
            self._show_info()

    @work(group="history-more")
    async def load_more(self) -> None:
        if self._loading or len(self._runs) >= self.total:
            return
        self._loading = True
        generation = self._generation
        try:
            page = await self._fetch(len(self._runs), PAGE)
        finally:
            self._loading = False
        # A reload that started meanwhile (new sort or filter) makes this page stale.
        if page is not None and generation == self._generation:
            self._runs += page
            self.table.append((run.id, history_cells(run, run.id in self.marked)) for run in page)
            self._show_info()

    async def _fetch(self, offset: int, limit: int) -> list[RunRecord] | None:
        app, filters = dmf_app(self.app), self.filters.copy()
        store = app.store
        page = await app.db(
            store.leaderboard, **filters, sort=self.sort, descending=self.descending, limit=limit, offset=offset,
        )
        if page is None:
            return None
        if offset == 0:
            # Further pages keep the first page's count rather than count every run again.
            total = await app.db(store.count_runs, **filters)
            if total is None:
                return None
            self.total = total
        return page

    def _show_info(self) -> None:
        direction = "↓" if self.descending else "↑"
        self.query_one("#history-info", Label).update(
            f"{len(self._runs)} of {self.total} runs · sorted by {self.sort} {direction}"
        )

    @on(DataTable.RowHighlighted, "#history-table")
    def maybe_load_more(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= len(self._runs) - PREFETCH:
            self.load_more()

    def on_mount(self) -> None:
        self.watch(self.table, "scroll_y", self._scrolled)

    def _scrolled(self, scroll_y: float) -> None:
        if scroll_y >= self.table.max_scroll_y - PREFETCH:
            self.load_more()

    # --- filtering and sorting ------------------------------------------------------------

    @on(Input.Changed, "#history-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        error = self.query_one("#filter-error", Label)
        try:
            self.filters = parse_filter(event.value)
        except StoreError as exc:
            error.update(str(exc))
            error.display = True
            return
        error.display = False
        self._runs = []
        self.reload()

    @on(Input.Submitted, "#history-filter")
    def filter_done(self) -> None:
        self.table.focus()

    def action_focus_filter(self) -> None:
        self.query_one("#history-filter", Input).focus()

    @on(DataTable.HeaderSelected, "#history-table")
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORT_KEYS:
            self.sort_by(key, not self.descending if key == self.sort else False)

    def action_sort_next(self) -> None:
        """Sort by the column under the cursor; again on the same column moves to the next one."""
        column = HISTORY_COLUMNS[self.table.cursor_column][0]
        if column not in SORT_KEYS or column == self.sort:
            column = SORT_KEYS[(SORT_KEYS.index(self.sort) + 1) % len(SORT_KEYS)]
        self.sort_by(column, False)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort, not self.descending)

    def sort_by(self, key: str, descending: bool) -> None:
        self.sort, self.descending = key, descending
        self._runs = []
        self.reload()

    # --- marking, comparing, exporting ----------------------------------------------------

    def action_mark(self) -> None:
        run_id = self.table.current_run_id
        if run_id is None:
            return
        if run_id in self.marked:
            del self.marked[run_id]
        else:
            self.marked[run_id] = None
        run = next(run for run in self._runs if run.id == run_id)
        self.table.update_run(run_id, history_cells(run, run_id in self.marked))
        self.table.action_cursor_down()

    def action_compare(self) -> None:
        run_ids = list(self.marked)
        if len(run_ids) < 2:
            self.notify("Mark two or more runs with space first", severity="warning")
            return
        self.post_message(CompareRuns(run_ids))

    @work(group="history-export")
    async def action_export(self) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        path = Path.cwd() / f"dmf-runs-{stamp}.csv"
        app = dmf_app(self.app)
        count = await app.db(
            app.store.export_runs_csv, path, **self.filters, sort=self.sort, descending=self.descending,
        )
        if count is not None:
            self.notify(f"exported {count} runs to {path}")

    @on(DataTable.RowSelected, "#history-table")
    def open_run(self, event: DataTable.RowSelected) -> None:
        self.post_message(OpenRun(run_id_of(event.row_key)))
