"""The New experiment form: a preset to start from, a field per hyperparameter, made from its
declaration in store/params.py (the common ones first, the rest in an Advanced section folded by
default), then the sweep's name and the retries. Choosing a preset fills every field it sets
(store/presets.py: all but the data, the split, the device and the seed), to be tweaked after.
Every parameter field takes a comma list of alternatives (hidden layers take '/'-separated
alternatives such as 10,5/64,32), the grid is their cartesian product, and it is queued as one
sweep. Each field is checked as it is typed, with the reason beside it, and the datasets once more
when queued: a name not downloaded or a file gone is refused there, not on the worker. Retries is
not a grid: every queued run gets that many automatic retries.

A new form starts on the dataset last queued, else the first one present, never on one that is not
there. Queueing more than CONFIRM_ABOVE runs asks first, and so does closing a form that was
changed. The Queue button stays below the fields, on screen at 80x24 however far they scroll."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Collapsible, Footer, Input, Label, Select, Static

from dmf_tui.components.confirm import Confirm
from dmf_tui.host import dmf_app
from store import catalog, presets
from store.db import Store
from store.errors import ParamError
from store.params import PARAMS, RunParams, check_retries, expand_grid, format_value

# Beside each field: its hint, the parameters' from their declarations, then the sweep's two fields'.
HINTS = {name: declared.hint for name, declared in PARAMS.items()} | {
    "name": "optional", "retries": "requeues if its worker dies"}

PRESET_HINT = "fills the fields below"

# What a field is checked against alone: the defaults, but with biases and without weight decay,
# the values no single other value conflicts with (RunParams._conflict: reg_bias needs biases,
# sparse_adam no weight decay). Against the plain defaults, reg_bias 0.01 would stay red beside its
# field after biases were turned on, and a preset setting both could never be queued. A combination
# that cannot train is told by the count below the fields, which checks the whole grid.
ALONE = RunParams(bias=True, weight_decay=0.0)

# A grid larger than this is confirmed before it is queued: a typo in a comma list (1,2,3,4,5 in the
# wrong field) can multiply a sweep by hours of work.
CONFIRM_ABOVE = 100


def default_data(store: Store) -> str:
    """The dataset a new form starts on, as `add` picks it (catalog.default_data). Reads the database
    and the disk: call it in a thread."""
    return catalog.default_data(store.last_data())


class NewRunScreen(Screen[tuple[int, list[int]] | None]):
    """Dismissed with (sweep id, run ids) once queued, or None when closed. Opened with a run's
    parameters and retries (a clone), every field starts from them."""

    # The preset's Select as wide as the Inputs below it (app.tcss: `.field Input`).
    DEFAULT_CSS = """
    NewRunScreen .field Select { width: 28; }
    """

    BINDINGS = [
        Binding("ctrl+s", "submit", "Queue runs", id="form.submit",
                tooltip=f"queue the grid (enter in a field too; asks above {CONFIRM_ABOVE} runs); fields take "
                        "comma lists, hidden sizes split by / (10,5/64,32)"),
        Binding("escape", "close", "Close", id="form.close",
                tooltip="close without queuing (asks when a field was changed)"),
    ]

    def __init__(self, params: RunParams | None = None, retries: int = 0) -> None:
        super().__init__()
        # A new form looks its dataset up as it opens (default_data); a clone keeps its run's.
        self.finding_data = params is None
        self.params = params or RunParams()
        self.retries = retries
        self.errors: dict[str, str] = {}
        # Every field's text as the form opened: closing it asks first when any differs.
        self.opened: dict[str, str] = {}
        self._submitting = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="form"):
            yield Static("New experiment", classes="screen-title")
            with Horizontal(classes="field"):
                yield Label("Preset", classes="field-label")
                yield Select([(f"best ({presets.BEST})" if name == "best" else name, name) for name in presets.names()],
                             prompt="none", id="preset", compact=True)
                yield Label(PRESET_HINT, id="message-preset", classes="field-message", markup=False)
            for name, declared in PARAMS.items():
                if not declared.advanced:
                    yield from self._param_field(name)
            with Collapsible(title="Advanced", collapsed=True, id="advanced"):
                for name, declared in PARAMS.items():
                    if declared.advanced:
                        yield from self._param_field(name)
            yield from self._field("name", "Sweep name", "")
            yield from self._field("retries", "Retries", str(self.retries))
        # Outside the scrolling fields, so the count and the Queue button never fall below the fold.
        with Horizontal(id="form-buttons"):
            yield Label("", id="preview", markup=False)
            yield Button("Queue", variant="primary", id="submit", compact=True)
            yield Button("Cancel", id="close", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    def _param_field(self, name: str) -> ComposeResult:
        value = "" if name == "data" and self.finding_data else format_value(getattr(self.params, name))
        return self._field(name, PARAMS[name].label, value)

    def _field(self, name: str, label: str, value: str) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label(label, classes="field-label")
            yield Input(value, id=f"field-{name}", compact=True)
            yield Label("", id=f"message-{name}", classes="field-message", markup=False)

    def on_mount(self) -> None:
        for name in HINTS:
            self._check(name)
        self._preview()
        self.opened = self.texts()
        self.query_one("#field-model", Input).focus()
        if self.finding_data:
            self._find_data()

    def texts(self) -> dict[str, str]:
        """The text of every field, by name."""
        return {name: self.query_one(f"#field-{name}", Input).value for name in HINTS}

    def values(self) -> dict[str, str]:
        """The text of every hyperparameter field, by name."""
        return {name: self.query_one(f"#field-{name}", Input).value for name in PARAMS}

    @work(group="form-data")
    async def _find_data(self) -> None:
        app = dmf_app(self.app)
        data = await app.db(default_data, app.store)
        self.finding_data = False
        field = self.query_one("#field-data", Input)
        if data is not None and not field.value:  # unless one was typed meanwhile (None: the read failed)
            field.value = data
            self.opened["data"] = data
        self._check("data")
        self._preview()

    def _check(self, name: str) -> None:
        """Validate one field alone (against ALONE), so its error names this field only."""
        text = self.query_one(f"#field-{name}", Input).value
        try:
            if name == "name" or (name == "data" and self.finding_data):
                pass  # any name, or none; the dataset is being filled in
            elif not text.strip():
                raise ParamError(f"{name}: needs a value")
            elif name == "retries":
                self._retries()
            else:
                expand_grid({name: text}, ALONE)
        except ParamError as exc:
            self.errors[name] = str(exc)
        else:
            self.errors.pop(name, None)
        self._show_message(name)

    def _show_message(self, name: str) -> None:
        """Beside the field: the reason it is wrong, else a hint of what it takes."""
        hint = "finding the dataset last used…" if name == "data" and self.finding_data else HINTS[name]
        message = self.query_one(f"#message-{name}", Label)
        message.update(self.errors.get(name) or hint)
        message.set_class(name in self.errors, "error")
        self.query_one(f"#field-{name}", Input).set_class(name in self.errors, "-invalid")
        if name in self.errors and name in PARAMS and PARAMS[name].advanced:
            self.query_one("#advanced", Collapsible).collapsed = False  # never hide a field in red

    def _retries(self) -> int:
        text = self.query_one("#field-retries", Input).value.strip()
        try:
            retries = int(text)
        except ValueError:
            raise ParamError(f"retries: {text!r} is not a whole number") from None
        check_retries(retries)
        return retries

    def _preview(self) -> list[RunParams]:
        preview = self.query_one("#preview", Label)
        runs: list[RunParams] = []
        if self.errors:
            preview.update(f"Fix {len(self.errors)} field{'s' if len(self.errors) > 1 else ''} in red")
        elif self.finding_data:
            preview.update("Finding the dataset…")
        else:
            try:
                runs = expand_grid(self.values())
            except ParamError as exc:
                preview.update(str(exc))
            else:
                preview.update(f"{len(runs)} run{'s' if len(runs) != 1 else ''} will be queued")
        preview.set_class(not runs and not self.finding_data, "error")
        return runs

    @on(Input.Changed)
    def field_changed(self, event: Input.Changed) -> None:
        field = event.input.id
        assert field is not None  # every input of the form is made by _field, with an id
        self._check(field.removeprefix("field-"))
        self._preview()

    @on(Select.Changed, "#preset")
    def preset_chosen(self, event: Select.Changed) -> None:
        """Fill every field the preset sets; their own checks and the count follow as they change."""
        message = self.query_one("#message-preset", Label)
        if event.select.is_blank():
            message.update(PRESET_HINT)
            return
        chosen = presets.preset(str(event.value))
        for name, value in chosen.settings().items():
            self.query_one(f"#field-{name}", Input).value = format_value(value)
        message.update(chosen.summary)

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def submitted(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#close")
    @work(group="form-close")
    async def action_close(self) -> None:
        if self.texts() != self.opened:
            question = "Discard this form? Its fields were changed and nothing has been queued."
            if not await self.app.push_screen_wait(Confirm(question, yes="Discard")):
                return
        self.dismiss(None)

    @work(group="form-submit")
    async def action_submit(self) -> None:
        # One submission at a time: a second ctrl+s while the first is being checked or queued
        # would queue the grid twice.
        if self._submitting:
            return
        self._submitting = True
        try:
            await self._submit()
        finally:
            self._submitting = False

    async def _submit(self) -> None:
        self._check("data")  # clears the last submission's verdict on the dataset: it is checked again
        runs = self._preview()
        if not runs:
            if not self.finding_data:
                self._focus_first_error()
                self.notify("Nothing queued: fix the fields in red", severity="error")
            return
        app = dmf_app(self.app)
        # Checked now rather than as typed: a file's check may read all of it (see catalog.resolve).
        reasons = await app.db(unavailable, [run.data for run in runs])
        if reasons is None:
            return
        if reasons:
            self.errors["data"] = "; ".join(reasons)
            self._show_message("data")
            self._preview()
            self._focus_first_error()
            self.notify("Nothing queued: the dataset cannot be used", severity="error")
            return
        if len(runs) > CONFIRM_ABOVE:
            question = f"Queue {len(runs)} runs? That is more than {CONFIRM_ABOVE}: check the comma lists."
            if not await self.app.push_screen_wait(Confirm(question, yes="Queue")):
                return
        name = self.query_one("#field-name", Input).value.strip() or None
        queued = await app.db(app.store.enqueue_grid, runs, name=name, retries=self._retries())
        if queued is not None:
            self.dismiss(queued)

    def _focus_first_error(self) -> None:
        """Put the cursor in the first field in red, which scrolls it into view."""
        for field in self.query(Input):
            if field.has_class("-invalid"):
                field.focus()
                return


def unavailable(datasets: list[str]) -> list[str]:
    """Why each of these datasets cannot be trained on now, once each (none: all can).
    Reads the disk: call it in a thread."""
    return [reason for data in dict.fromkeys(datasets) if (reason := catalog.check_available(data))]
