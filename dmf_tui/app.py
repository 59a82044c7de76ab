"""The dmf-tui Textual app: four tabs over one store, polled about once a second.

Every store call runs in a thread (`DmfApp.db`, `StoreSource.poll`), so a slow disk or a busy
database never freezes the screen. The app imports neither torch nor the engine: workers are
separate processes started with `dmf-tui worker --detach`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import Provider
from textual.notifications import SeverityLevel
from textual.theme import Theme
from textual.widgets import Footer, TabbedContent, TabPane

from dmf_tui import config
from dmf_tui.components import fmt
from dmf_tui.components.compare import CompareScreen
from dmf_tui.components.confirm import Confirm
from dmf_tui.components.help import HelpScreen
from dmf_tui.components.history_tab import HistoryTab
from dmf_tui.components.live_tab import LiveTab
from dmf_tui.components.main_tabs import MainTabs
from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.new_search import NewSearchScreen
from dmf_tui.components.queue_tab import QueueTab
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.components.search_view import SearchViewScreen
from dmf_tui.components.searches_tab import SearchesTab
from dmf_tui.components.status_bar import StatusBar
from dmf_tui.messages import (
    CancelRun,
    CompareRuns,
    NewExperiment,
    NewSearch,
    OpenRun,
    OpenSearch,
    RetryRun,
    StoreChanged,
)
from dmf_tui.source import StoreSource, worker_command
from store.db import Store, sqlite_file
from store.errors import StoreError
from store.params import RunParams
from store.status import RunStatus

# How much of a server's host name and database name the header shows: with "postgresql" and a port,
# up to 60 columns.
SERVER_HOST_WIDTH = 22
SERVER_DATABASE_WIDTH = 20


def db_name(url: str) -> str:
    """What the header calls the database: a SQLite file's name, or a server's kind, place and
    database, "postgresql db.lab:5432/runs". Never the user, nor anything from the URL's query (a
    password may be there too). A long host or database name is cut so that it fits 80 columns."""
    file = sqlite_file(url)
    if file:
        return file.name
    parsed = make_url(url)
    # Without a host in the URL's place, libpq reads it from the query: a socket's folder, or several hosts.
    host = parsed.host or ",".join(parsed.normalized_query.get("host", ()))
    where = fmt.first_line(host, SERVER_HOST_WIDTH) + (f":{parsed.port}" if parsed.port else "")
    database = fmt.first_line(parsed.database, SERVER_DATABASE_WIDTH)
    place = "/".join(part for part in (where, database) if part)
    return f"{parsed.get_backend_name()} {place}".rstrip()


def _palette_commands() -> type[Provider]:
    """The palette's entries, read when it first opens: they are built from every screen's keys
    (dmf_tui.keys), which imports this module."""
    from dmf_tui.components.palette import DmfCommands

    return DmfCommands


# The parameters and result of a store call, which `db`, `write` and `_call` keep: a caller gets
# the call's own result type, and its arguments are checked against the call's.
P = ParamSpec("P")
T = TypeVar("T")

# What has the keys on each tab.
MAIN_WIDGET = {"queue": "#queue-table", "live": "#live-tab", "history": "#history-table",
               "searches": "#searches-table"}


class DmfApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "dmf-tui"
    COMMANDS = App.COMMANDS | {_palette_commands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", id="app.help",
                tooltip="the help: every key, by where it works (ctrl+p opens the palette: the keys by name)"),
        Binding("n", "new_experiment", "New", id="app.new",
                tooltip="on the tabs: open the New experiment form to queue a grid of runs"),
        # Not in the footer, which has no room for it at 80 columns beside a tab's keys.
        Binding("N", "new_search", "New search", show=False, id="app.new_search",
                tooltip="on the tabs: open the New search form: ranges to search, a sampler and a pruner"),
        Binding("p", "toggle_pause", "Pause", id="app.pause",
                tooltip="on the tabs: pause or resume the queue (paused, workers take no new runs; running go on)"),
        Binding("w", "start_worker", "Worker", id="app.worker_start",
                tooltip="on the tabs: start a detached worker on this database (asks when one already runs)"),
        Binding("W", "stop_worker", "Stop", id="app.worker_stop",
                tooltip="on the tabs: stop this database's workers on this host (asks; their runs end interrupted)"),
        Binding("1", "show_tab('queue')", "Show Queue", show=False, id="app.tab_queue",
                tooltip="the Queue tab: running and queued runs, and those that ended badly"),
        Binding("2", "show_tab('live')", "Show Live", show=False, id="app.tab_live",
                tooltip="the Live tab: epochs and curves of the running runs"),
        Binding("3", "show_tab('history')", "Show History", show=False, id="app.tab_history",
                tooltip="the History tab: finished runs ranked by best test RMSE"),
        Binding("4", "show_tab('searches')", "Show Searches", show=False, id="app.tab_searches",
                tooltip="the Searches tab: each search, its trials and its best validation RMSE"),
        # Textual's own palette key, declared here so the help lists it (Textual adds none then).
        Binding("ctrl+p", "command_palette", "palette", show=False, priority=True, id="app.palette",
                tooltip="the command palette: the keys that work where it opens, by name"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="leave the TUI (workers go on)"),
    ]

    # The app's keys that act on the queue and the workers work on the main screen (the tabs), whose
    # footer keeps room for them; the other screens' footers at 80 columns hold their own keys.
    MAIN_SCREEN_ACTIONS = frozenset({"new_experiment", "new_search", "toggle_pause", "start_worker", "stop_worker"})

    def __init__(self, store: Store, *, poll_interval: float = 1.0) -> None:
        super().__init__()
        self.store = store
        self.source = StoreSource(store)
        self.poll_interval = poll_interval
        self._poll_lock = asyncio.Lock()
        # Widgets of the main screen, kept so polls can reach them while another screen is on top.
        self.status_bar = StatusBar(db_name(store.url), id="status-bar")
        self.queue_tab = QueueTab(id="queue-tab")
        self.live_tab = LiveTab(id="live-tab")
        self.history_tab = HistoryTab(id="history-tab")
        self.searches_tab = SearchesTab(id="searches-tab")
        self._config_problem = self._apply_settings()
        self._saving_settings = asyncio.Lock()

    def compose(self) -> ComposeResult:
        yield self.status_bar
        with MainTabs(initial="queue", id="tabs"):
            with TabPane("Queue", id="queue"):
                yield self.queue_tab
            with TabPane("Live", id="live"):
                yield self.live_tab
            with TabPane("History", id="history"):
                yield self.history_tab
            with TabPane("Searches", id="searches"):
                yield self.searches_tab
        # At 80 columns the app's own keys take 44 columns of the footer, after the tab's keys,
        # which have the other 36 (each shown key: its key, a space, its word, a space). So the
        # palette's key (ctrl+p), which would take 11 on the right, is left to the help.
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.focus_active_tab()
        self.history_tab.reload()
        self.set_interval(self.poll_interval, self.poll)
        # The first read waits for the first paint, so the window appears before the database answers.
        # (Started as a worker instead, it put first paint 0.1-0.2 s later in bench/bench_tui.py.)
        self.call_after_refresh(self.poll)
        self.theme_changed_signal.subscribe(self, self.save_settings)
        if self._config_problem:
            self.notify(self._config_problem, severity="warning", timeout=10)

    def notify(
        self, message: str, *, title: str = "", severity: SeverityLevel = "information",
        timeout: float | None = None, markup: bool = False,
    ) -> None:
        """Notifications quote store errors, paths and worker output: never markup, even when a
        widget's `notify` asks for it (it always passes `markup`)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False also leaves the key out of the footer (None would show it dimmed).
        return action not in self.MAIN_SCREEN_ACTIONS or self.screen is self.screen_stack[0]

    # --- the user's settings (dmf_tui/config.py) ------------------------------------------

    def _apply_settings(self) -> str | None:
        """Take the settings the user's config file holds: what is wrong with it, if anything.
        Read before the first paint, so the screen never flashes the default theme first."""
        try:
            settings = config.load()
        except config.ConfigError as exc:
            return f"settings not read, defaults used: {exc}"
        if settings.theme is not None:
            if settings.theme not in self.available_themes:
                return f"{config.config_path()}: no theme named {settings.theme!r}; the default is used"
            self.theme = settings.theme
        return None

    @work(group="settings")
    async def save_settings(self, _theme: Theme | None = None) -> None:
        """Write the settings (after a theme change). The lock keeps writes in order, and each
        writes the theme of the moment, so the last one to run leaves the latest theme."""
        async with self._saving_settings:
            try:
                await asyncio.to_thread(config.save, config.Settings(theme=self.theme))
            except OSError as exc:
                self.notify(f"the theme is not remembered: {exc}", severity="warning")

    # --- talking to the store -------------------------------------------------------------

    async def db(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """Run one store call in a thread; its result, or None after a notification if it failed."""
        return (await self._call(call, *args, **kwargs))[1]

    async def write(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> bool:
        """Run one store call that changes the store in a thread: whether it went through (unlike
        `db`, a call that returns None still succeeded)."""
        return (await self._call(call, *args, **kwargs))[0]

    async def _call(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[bool, T | None]:
        """A StoreError (the input's fault, e.g. moving a run that already started) or a database
        error (locked, unreachable, full disk) is shown as a notification, never closes the app."""
        try:
            return True, await asyncio.to_thread(call, *args, **kwargs)
        except StoreError as exc:
            self.notify(str(exc), severity="error")
        except SQLAlchemyError as exc:
            self.notify(f"database error: {_first_line(exc)}", severity="error")
        return False, None

    async def poll(self) -> None:
        """Read the store once and redraw what changed. A poll still in flight makes this one a
        no-op, so a slow database never piles up readers."""
        if self._poll_lock.locked():
            return
        await self.refresh_now()

    async def refresh_now(self, *, reload_history: bool = False) -> None:
        """Poll now, after any poll in flight (tests await this instead of waiting a second).
        History is read again if `reload_history` or if runs finished since the previous poll."""
        async with self._poll_lock:
            try:
                snapshot = await asyncio.to_thread(self.source.poll)
            except (StoreError, SQLAlchemyError) as exc:
                # The database may be briefly unreachable (a network server, a full disk): say so
                # and keep polling rather than leave.
                self.status_bar.show_error(f"database error: {_first_line(exc)}")
                return
            self.status_bar.show_snapshot(snapshot)
            self.queue_tab.show_snapshot(snapshot)
            await self.live_tab.show_snapshot(snapshot)
            self.searches_tab.show_snapshot(snapshot)
            if reload_history or snapshot.finished_changed:
                self.history_tab.reload()

    # --- messages from tabs and screens ---------------------------------------------------

    @on(TabbedContent.TabActivated, "#tabs")
    def focus_active_tab(self) -> None:
        """Give the keys to the tab on show, so its bindings work and show in the footer. A tab
        shown by a key typed ahead at startup may not have its table yet: on_mount comes back.
        Focus already inside the tab (its filter, its other table) stays where it is."""
        main = self.screen_stack[0]
        tabs = main.query_one("#tabs", TabbedContent)
        if main.focused is not None and tabs.active_pane in main.focused.ancestors:
            return
        for widget in main.query(MAIN_WIDGET[tabs.active]):
            widget.focus()

    @on(OpenRun)
    def open_run(self, message: OpenRun) -> None:
        self.push_screen(RunDetailScreen(message.run_id))

    @on(OpenSearch)
    @work(group="open-search")
    async def open_search(self, message: OpenSearch) -> None:
        search = await self.db(self.store.get_search, message.search_id)
        if search is not None:
            await self.push_screen(SearchViewScreen(search))

    @on(CompareRuns)
    def compare_runs(self, message: CompareRuns) -> None:
        self.push_screen(CompareScreen(message.run_ids))

    @on(CancelRun)
    @work(group="run-writes")
    async def cancel_run(self, message: CancelRun) -> None:
        """Cancel a run: a queued one at once, a running one once confirmed, as its training stops
        for good. (The Queue and Run detail post CancelRun and leave the asking to this.)"""
        run = await self.db(self.store.get_run, message.run_id)
        if run is None:
            return
        if run.status == RunStatus.RUNNING:
            question = (f"Run {run.id} is running (epoch {run.epoch} of {run.params.epochs}): cancel it? "
                        "It stops within the epoch and ends as cancelled.")
            if not await self.push_screen_wait(Confirm(question, yes="Cancel run")):
                return
        result = await self.db(self.store.cancel, [message.run_id])
        if result:
            self.notify(f"run {message.run_id} {result[message.run_id]}")
            self.post_message(StoreChanged())

    @on(RetryRun)
    @work(group="run-writes")
    async def retry_run(self, message: RetryRun) -> None:
        new_ids = await self.db(self.store.retry, [message.run_id])
        if new_ids:
            self.notify(f"run {message.run_id} queued again as run {new_ids[0]}")
            self.post_message(StoreChanged())

    @on(NewExperiment)
    def new_experiment(self, message: NewExperiment) -> None:
        self.open_form(message.params, message.retries)

    @on(NewSearch)
    def new_search(self, message: NewSearch) -> None:
        self.open_search_form(message.base)

    @on(StoreChanged)
    @work(group="poll")
    async def store_changed(self) -> None:
        # In a worker, so keys are handled while a slow database answers.
        await self.refresh_now(reload_history=True)

    def open_form(self, params: RunParams | None = None, retries: int = 0) -> None:
        def queued(result: tuple[int, list[int]] | None) -> None:
            if result is not None:
                sweep_id, run_ids = result
                self.notify(f"queued {len(run_ids)} run{'s' if len(run_ids) != 1 else ''} as sweep {sweep_id}")
                self.post_message(StoreChanged())

        self.push_screen(NewRunScreen(params, retries), queued)

    def open_search_form(self, base: RunParams | None = None) -> None:
        def queued(search_id: int | None) -> None:
            if search_id is not None:
                self.notify(f"search #{search_id} queued: workers ask it for trials when the queue runs dry")
                self.post_message(StoreChanged())
                self.action_show_tab("searches")
                self.post_message(OpenSearch(search_id))

        self.push_screen(NewSearchScreen(base), queued)

    # --- actions (also listed in the command palette, components/palette.py) ------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(db_name(self.store.url)))

    def action_new_experiment(self) -> None:
        self.open_form()

    def action_new_search(self) -> None:
        self.open_search_form()

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    async def run_in_tab(self, tab: str, action: str) -> None:
        """Show a tab and run one of its keys' actions there (how the palette runs a tab's key)."""
        self.action_show_tab(tab)
        # Focus the tab now rather than when its activation message arrives: an action that
        # moves the focus itself (History's filter) keeps it then.
        self.focus_active_tab()
        widget = {"queue": self.queue_tab, "live": self.live_tab, "history": self.history_tab,
                  "searches": self.searches_tab}[tab]
        await self.run_action(action, default_namespace=widget)

    @work(group="app-actions")
    async def action_toggle_pause(self) -> None:
        paused = await self.db(self.store.is_paused)
        if paused is None:
            return
        if not await self.write(self.store.set_paused, not paused):
            return
        self.notify("queue resumed" if paused else "queue paused: workers take no new runs")
        await self.refresh_now()

    @work(group="app-actions")
    async def action_start_worker(self) -> None:
        workers = await self.db(self.store.workers, alive_only=True)
        if workers is None:
            return
        if workers:
            question = ("A worker is already running on this database: start another? Each worker "
                        "trains its own runs at the same time, on the same device unless told otherwise.")
            if not await self.push_screen_wait(Confirm(question, yes="Start another")):
                return
        self.notify("starting a worker…")
        await self._worker_command("--detach")

    @work(group="app-actions")
    async def action_stop_worker(self) -> None:
        alive = await self.db(self.store.workers, alive_only=True)
        queue = await self.db(self.store.queue)
        if alive is None or queue is None:
            return
        # `worker stop` signals the workers of this host only (it names the others).
        here = {worker.id for worker in alive if worker.local}
        if here:
            running = sum(run.status == RunStatus.RUNNING and run.worker_id in here for run in queue)
            question = (f"Stop {fmt.count(len(here), 'worker')} of this database, running {fmt.count(running, 'run')}? "
                        "Their runs end as interrupted.")
            if not await self.push_screen_wait(Confirm(question, yes="Stop")):
                return
        await self._worker_command("stop")

    async def _worker_command(self, *args: str) -> None:
        code, line = await asyncio.to_thread(worker_command, self.store.url, *args)
        self.notify(line, severity="information" if code == 0 else "error")
        await self.refresh_now()


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
