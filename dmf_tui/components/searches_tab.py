"""The Searches tab: every search, newest first, where it stands (phase, trials asked of its budget,
how its trials ended, its best validation RMSE and that trial's test RMSE), and what a person does
to one: open its view, pause or resume it, extend it by N trials, stop it.

The pause, extend and stop of a search are here once, with their questions and outcomes, and the
search's view (components/search_view.py) calls the same functions."""

from __future__ import annotations

import re
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label

from dmf_tui.components import fmt
from dmf_tui.components.confirm import Confirm
from dmf_tui.components.fmt import Cell
from dmf_tui.components.run_table import RunTable, run_id_of
from dmf_tui.host import dmf_app
from dmf_tui.messages import OpenSearch, StoreChanged
from dmf_tui.source import Snapshot
from store.search import MAX_TRIALS
from store.searches import SearchRecord
from store.status import RunStatus

# The id and name of a search stay on the left when the table scrolls sideways.
FIXED = 2
SEARCH_COLUMNS = (
    ("id", "id"), ("name", "name"), ("phase", "phase"), ("trials", "trials"), ("done", "done"),
    ("pruned", "pruned"), ("failed", "failed"), ("best_val", "best val"), ("test", "test"),
    ("sampler", "sampler"), ("pruner", "pruner"),
)
EMPTY = "No search yet. Press N to start one (or dmf-tui search in a shell)."


def search_cells(search: SearchRecord) -> tuple[Cell, ...]:
    counts = search.counts
    return (
        search.id, search.name or "-", fmt.phase_text(search.phase), f"{search.asked}/{search.trials}",
        counts.get(RunStatus.DONE, 0), counts.get(RunStatus.PRUNED, 0), counts.get(RunStatus.FAILED, 0),
        fmt.rmse(search.best_val_rmse), fmt.rmse(search.best_test_rmse), search.spec.sampler, search.spec.pruner,
    )


# --- what a person does to a search, from this tab or the search's view ----------------------


async def toggle_pause(host: Widget, search: SearchRecord) -> bool:
    """Pause a search (no new trial of it starts; running ones go on) or resume a paused one.
    Whether it changed. Called from a worker of `host`."""
    if search.state == "stopped":
        host.notify(f"{search.label} is stopped: e extends it, which starts it again", severity="warning")
        return False
    app = dmf_app(host.app)
    state = "active" if search.state == "paused" else "paused"
    if not await app.write(app.store.set_search_state, search.id, state):
        return False
    host.notify(f"{search.label} resumed" if state == "active"
                else f"{search.label} paused: no new trial starts, running ones go on")
    host.post_message(StoreChanged())
    return True


async def stop_search(host: Widget, search: SearchRecord) -> bool:
    """Stop a search once confirmed: it asks for no more trials and its queued ones are cancelled;
    running ones finish. Whether it stopped."""
    if search.state == "stopped":
        host.notify(f"{search.label} is already stopped", severity="warning")
        return False
    app = dmf_app(host.app)
    running = search.counts.get(RunStatus.RUNNING, 0)
    question = (f"Stop {search.label} after {search.asked} of {search.trials} trials? It asks for no more; "
                f"its queued trials are cancelled, {fmt.count(running, 'running trial')} finish"
                f"{'es' if running == 1 else ''}. e extends it again later.")
    if not await app.push_screen_wait(Confirm(question, yes="Stop search")):
        return False
    if not await app.write(app.store.set_search_state, search.id, "stopped"):
        return False
    host.notify(f"{search.label} stopped")
    host.post_message(StoreChanged())
    return True


async def extend_search(host: Widget, search: SearchRecord) -> bool:
    """Ask by how many trials, then let the search ask for that many more (a stopped or finished
    search runs again). Whether it was extended."""
    app = dmf_app(host.app)
    more = await app.push_screen_wait(ExtendScreen(search))
    if more is None:
        return False
    extended = await app.db(app.store.extend_search, search.id, more)
    if extended is None:
        return False
    host.notify(f"{extended.label} extended by {fmt.count(more, 'trial')}: {extended.trials} in all")
    host.post_message(StoreChanged())
    return True


def read_more(text: str, search: SearchRecord) -> int | str:
    """The number of trials typed, or why it is not one a search can be extended by."""
    text = text.strip()
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        return "a whole number of trials, 1 or more"
    more = int(text)
    if search.trials + more > MAX_TRIALS:
        return f"a search has at most {MAX_TRIALS:,} trials: {MAX_TRIALS - search.trials:,} more at most"
    return more


class ExtendScreen(ModalScreen[int | None]):
    """Asks by how many trials to extend a search: enter extends, esc cancels."""

    DEFAULT_CSS = """
    ExtendScreen { align: center middle; }
    #extend { width: 64; max-width: 95%; height: auto; border: thick $primary; background: $surface;
              padding: 0 1; }
    #extend-trials { width: 16; }
    #extend-error { color: $error; }
    #extend-hint { color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="extend.cancel", tooltip="close without extending the search"),
    ]

    def __init__(self, search: SearchRecord) -> None:
        super().__init__()
        self.search = search

    def compose(self) -> ComposeResult:
        with Vertical(id="extend"):
            yield Label(f"Extend {self.search.label} ({self.search.asked} of {self.search.trials} trials asked) "
                        "by how many trials?", markup=False)
            yield Input("10", id="extend-trials")
            yield Label("", id="extend-error", markup=False)
            yield Label("enter extends · esc cancels", id="extend-hint")

    @on(Input.Submitted, "#extend-trials")
    def extend(self, event: Input.Submitted) -> None:
        more = read_more(event.value, self.search)
        if isinstance(more, str):
            self.query_one("#extend-error", Label).update(more)
            return
        self.dismiss(more)

    @on(Input.Changed, "#extend-trials")
    def typed(self) -> None:
        self.query_one("#extend-error", Label).update("")

    def action_cancel(self) -> None:
        self.dismiss(None)


# --- the tab ----------------------------------------------------------------------------------


class SearchTable(RunTable):
    """The searches, keyed by search id as a RunTable is by run id."""

    # Enter opens the search (SearchesTab hears the table's RowSelected).
    BINDINGS = [
        Binding("enter", "select_cursor", "Open search", show=False, id="searches.open",
                tooltip="open the search under the cursor: its trials, best-so-far curve, importances"),
    ]


class SearchesTab(Vertical):
    BINDINGS = [
        Binding("space", "pause", "Pause/resume", id="searches.pause",
                tooltip="pause the search under the cursor (no new trial starts; running ones go on), "
                        "or resume it"),
        Binding("s", "stop", "Stop", id="searches.stop",
                tooltip="stop the search under the cursor: no more trials, its queued ones cancelled (asks)"),
        Binding("e", "extend", "Extend", id="searches.extend",
                tooltip="let the search under the cursor ask for N more trials (asks N); a stopped one runs again"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.searches: dict[int, SearchRecord] = {}

    def compose(self) -> ComposeResult:
        yield SearchTable(SEARCH_COLUMNS, fixed_columns=FIXED, id="searches-table")
        yield Label(EMPTY, id="searches-empty", markup=False)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.searches = {search.id: search for search in snapshot.searches}
        self.query_one(SearchTable).sync((search.id, search_cells(search)) for search in snapshot.searches)
        self.query_one("#searches-empty").display = not snapshot.searches

    def _selected(self) -> SearchRecord | None:
        search_id = self.query_one(SearchTable).current_run_id
        return None if search_id is None else self.searches.get(search_id)

    @on(DataTable.RowSelected, "#searches-table")
    def open_search(self, event: DataTable.RowSelected) -> None:
        self.post_message(OpenSearch(run_id_of(event.row_key)))

    @work(group="search-actions")
    async def action_pause(self) -> None:
        search = self._selected()
        if search is not None:
            await toggle_pause(self, search)

    @work(group="search-actions")
    async def action_stop(self) -> None:
        search = self._selected()
        if search is not None:
            await stop_search(self, search)

    @work(group="search-actions")
    async def action_extend(self) -> None:
        search = self._selected()
        if search is not None:
            await extend_search(self, search)
