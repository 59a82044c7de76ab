"""Run detail: a run's configuration, epochs, curves, the error of a failed run, and its notes.
While the run is still going the screen keeps fetching the epochs that land. `t` shows the Recommend
panel in place of the configuration and curves: the run's top 10 for a user id (esc: back).

Letters are this screen's keys (clone, retry, cancel...) except inside the notes, where they are
text, and the panel's user id, which drops them. So the notes are entered on purpose (`i`, or Tab
from the epochs the screen opens on), esc leaves them, and ctrl+s saves them wherever the focus is:
typing a note never fires a key."""

from __future__ import annotations

import asyncio

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Static, TextArea

from dmf_tui.components import fmt, ranking
from dmf_tui.components.confirm import Confirm
from dmf_tui.components.curves import RmseCurves
from dmf_tui.components.epoch_table import EpochTable
from dmf_tui.components.recommend_panel import RecommendPanel
from dmf_tui.components.run_log import RunLogScreen
from dmf_tui.host import dmf_app
from dmf_tui.messages import CancelRun, NewExperiment, RetryRun, StoreChanged
from store.params import FIELD_NAMES, PARAMS, format_value
from store.records import EpochRecord, RunRecord


def config_table(run: RunRecord) -> Table:
    """The run's state and its parameters, in two columns narrow enough for an 80-column terminal:
    short names, one value a row, long values (a dataset's path) folded onto the next lines."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("status", fmt.status_text(run)),
        ("sweep", _sweep(run)),
        ("ran on", run.ran_on or "-"),
    ]
    # Trained as one batched model with other runs (engine.trainer.fit_pack): "pack of 3 runs (#5)".
    if run.pack_id is not None and run.pack_size is not None:
        rows.append(("pack", f"of {fmt.count(run.pack_size, 'run')} (#{run.pack_id})"))
    rows += [
        ("created", fmt.when(run.created_at)),
        ("started", fmt.when(run.started_at)),
        ("finished", fmt.when(run.finished_at)),
        ("epochs", fmt.progress(run)),  # done/planned: the epochs parameter is not listed again
        ("best test", fmt.rmse(run.best_test_rmse)),
    ]
    if run.best_val_rmse is not None:  # a run with a validation split picks its best epoch by it
        rows.append(("best val", fmt.rmse(run.best_val_rmse)))
    rows.append(("best epoch", str(run.best_epoch or "-")))
    # The best epoch's model ranked once training ended: absent for a run not ranked (yet).
    rows += [(heading, ranking.value(getattr(run, key))) for key, heading in ranking.METRICS
             if getattr(run, key) is not None]
    rows += [
        ("last train", fmt.rmse(run.last_train_rmse)),
        ("last test", fmt.rmse(run.last_test_rmse)),
    ]
    rows += [(name, format_value(getattr(run.params, name))) for name in FIELD_NAMES
             if name != "epochs" and PARAMS[name].applies_to(run.params.model)]
    for name, value in rows:
        table.add_row(name, fmt.literal(value))
    return table


def _sweep(run: RunRecord) -> str:
    if run.sweep_id is None:
        return "-"
    return f"{run.sweep_name} (#{run.sweep_id})" if run.sweep_name else f"#{run.sweep_id}"


class RunDetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="detail.back",
                tooltip="leave the notes; else back to where the run was opened (asks first if the notes are unsaved)"),
        Binding("i", "edit_notes", "Notes", id="detail.notes",
                tooltip="write in the run's notes (letters are text there; esc leaves them, ctrl+s saves)"),
        # priority: saved from the notes as from anywhere else on the screen, before any widget sees it.
        # Not in the footer, which has no room for it at 80 columns: the notes' title says it.
        Binding("ctrl+s", "save_notes", "Save notes", id="detail.save", priority=True, show=False,
                tooltip="save the notes, wherever the focus is on this screen"),
        Binding("l", "clone", "Clone", id="detail.clone",
                tooltip="open the New experiment form filled with this run's parameters"),
        Binding("c", "cancel", "Cancel run", id="detail.cancel",
                tooltip="cancel this queued or running run (asks if it is running)"),
        Binding("r", "retry", "Retry", id="detail.retry", tooltip="queue a fresh copy of this finished run"),
        Binding("L", "log", "Log", id="detail.log",
                tooltip="the run's log: start, device, each epoch, warnings, the traceback of a failure"),
        Binding("o", "toggle_log_scale", "Log scale", id="detail.log_scale",
                tooltip="draw the curves on a logarithmic RMSE axis, or a linear one again"),
        Binding("t", "recommend", "Top 10", id="detail.recommend",
                tooltip="the Recommend panel: type a user id and enter to see the run's top 10 items for that "
                        "user, with titles (esc: back to the curves)"),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: RunRecord | None = None
        self.epochs: list[EpochRecord] = []
        self._reading = asyncio.Lock()
        # The notes as stored, once read: what the notes field is compared with to know it has edits.
        self._saved_notes: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"Run {self.run_id}", id="detail-title", classes="screen-title", markup=False)
        yield Static(id="detail-error", classes="error", markup=False)
        with ContentSwitcher(initial="detail-top", id="detail-switcher"):
            with Horizontal(id="detail-top"):
                with VerticalScroll(id="detail-config"):
                    yield Static(id="config")
                with Vertical(id="detail-right"):
                    # The key line names the curves: a legend would cover the plot's first epochs.
                    yield Static(id="detail-key")
                    yield RmseCurves(title="", legend=False)
                    yield EpochTable(id="detail-epochs")
            yield RecommendPanel(dmf_app(self.app).store.url, id="recommend")
        # After the epochs: Tab from them (where the screen opens) goes to the notes.
        notes = TextArea(id="notes")
        notes.border_title = "Notes (i to edit, ctrl+s saves)"
        yield notes
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        # The epochs have the focus: a visible cursor, and letters are the keys the footer shows.
        self.query_one(EpochTable).focus()
        self.query_one("#detail-error").display = False
        self._timer = self.set_interval(1.0, self.refresh_run)
        self.refresh_run()

    @property
    def notes(self) -> TextArea:
        return self.query_one("#notes", TextArea)

    @property
    def recommending(self) -> bool:
        """Whether the Recommend panel is shown (in place of the configuration and curves)."""
        return self.query_one(ContentSwitcher).current == "recommend"

    @property
    def notes_changed(self) -> bool:
        return self._saved_notes is not None and self.notes.text != self._saved_notes

    @work(group="detail")
    async def refresh_run(self) -> None:
        # A read still in flight makes this tick a no-op (cancelling it instead, a database slower
        # than the timer would never let the screen load).
        if self._reading.locked():
            return
        async with self._reading:
            app = dmf_app(self.app)
            run = await app.db(app.store.get_run, self.run_id)
            last = self.epochs[-1].epoch if self.epochs else 0
            new = await app.db(app.store.epochs, self.run_id, after=last)
        if run is None or new is None:
            return
        first = self.run is None
        self.run = run
        if run.status.is_finished:
            # A finished run changes no more: this read was the last one.
            self._timer.stop()
        # The dataset's short label: its full path is in the config.
        self.query_one("#detail-title", Static).update(f"Run {run.id}  ·  {run.data_label}  ·  {run.params.label()}")
        self.query_one("#config", Static).update(config_table(run))
        self.query_one(RecommendPanel).run = run
        error = self.query_one("#detail-error", Static)
        error.update(run.error or "")
        error.display = bool(run.error)
        if first:
            self.notes.text = self._saved_notes = run.notes
        if new:
            self.query_one(EpochTable).add_epochs(new)
            self.epochs.extend(new)
            self.query_one(RmseCurves).set_runs({f"#{run.id}": self.epochs})
            self._show_key()
        self.refresh_bindings()

    def _show_key(self) -> None:
        curves = self.query_one(RmseCurves)
        name = "RMSE per epoch (log): " if curves.log_scale else "RMSE per epoch: "
        self.query_one("#detail-key", Static).update(Text.assemble((name, "bold"), curves.key()))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Cancel only what has not ended, retry only what has: the footer shows the one that applies.
        if action in ("cancel", "retry"):
            finished = self.run is not None and self.run.status.is_finished
            return finished == (action == "retry")
        if action in ("recommend", "toggle_log_scale"):  # the curves' key, while they are shown
            return not self.recommending
        return True

    def action_edit_notes(self) -> None:
        self.notes.focus()
        self.notes.move_cursor(self.notes.document.end)

    def action_recommend(self) -> None:
        self.query_one(ContentSwitcher).current = "recommend"
        self.query_one(RecommendPanel).user_input.focus()
        self.refresh_bindings()

    def action_back(self) -> None:
        """Esc in the notes leaves them, as it leaves a text field anywhere: the edits stay, unsaved.
        In the Recommend panel it goes back to the curves. Elsewhere it goes back, after asking if
        the notes have edits that were not saved."""
        if self.notes.has_focus:
            self._focus_main()
        elif self.recommending:
            self.query_one(ContentSwitcher).current = "detail-top"
            self._focus_main()
            self.refresh_bindings()
        elif not self.notes_changed:
            self.dismiss()
        else:
            self.app.push_screen(Confirm("discard unsaved notes?", yes="Discard"), self._discard)

    def _focus_main(self) -> None:
        """The focus back where the keys are, in what is shown: the epochs, or the user id."""
        if self.recommending:
            self.query_one(RecommendPanel).user_input.focus()
        else:
            self.query_one(EpochTable).focus()

    def _discard(self, discard: bool | None) -> None:
        if discard:
            self.dismiss()

    def action_clone(self) -> None:
        if self.run is not None:
            self.post_message(NewExperiment(self.run.params, self.run.retries))

    @work(group="detail-write")
    async def action_save_notes(self) -> None:
        if self._saved_notes is None:  # not read yet: an empty field would overwrite the stored notes
            return
        text = self.notes.text
        app = dmf_app(self.app)
        if await app.write(app.store.set_notes, self.run_id, text):
            self._saved_notes = text
            self.notify("notes saved")
            self.post_message(StoreChanged())

    def action_cancel(self) -> None:
        # The app asks before stopping a running run.
        self.post_message(CancelRun(self.run_id))

    def action_retry(self) -> None:
        self.post_message(RetryRun(self.run_id))

    def action_log(self) -> None:
        self.app.push_screen(RunLogScreen(self.run_id))

    def action_toggle_log_scale(self) -> None:
        curves = self.query_one(RmseCurves)
        curves.set_log_scale(not curves.log_scale)
        self._show_key()
