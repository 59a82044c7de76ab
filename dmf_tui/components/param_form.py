"""What the New experiment and New search forms share: a preset to start from, a field per
hyperparameter made from its declaration in store/params.py (the common ones first, the rest in an
Advanced section folded by default), the form's own fields after them, and below the scrolling fields
a preview and the submit and close buttons, on screen at 80x24 however far the fields scroll.

Choosing a preset fills every field it sets (store/presets.py: all but the data, the split, the
device and the seed), to be tweaked after. A new form starts on the dataset last queued, else the
first one present, never on one that is not there; the datasets are checked once more when submitted
(a name not downloaded or a file gone is refused there, not on a worker). Closing a form that was
changed asks first. What each field takes, how it is checked and what submitting does is each
form's own (new_run.py, new_search.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Collapsible, Footer, Input, Label, Select, Static

from dmf_tui.components.confirm import Confirm
from dmf_tui.host import dmf_app
from store import catalog, presets
from store.db import Store
from store.params import PARAMS, RunParams, format_value

PRESET_HINT = "fills the fields below"

ResultT = TypeVar("ResultT")


def default_data(store: Store) -> str:
    """The dataset a new form starts on, as `add` picks it (catalog.default_data). Reads the database
    and the disk: call it in a thread."""
    return catalog.default_data(store.last_data())


def unavailable(datasets: Iterable[str]) -> list[str]:
    """Why each of these datasets cannot be trained on now, once each (none: all can).
    Reads the disk: call it in a thread."""
    return [reason for data in dict.fromkeys(datasets) if (reason := catalog.check_available(data))]


class ParamForm(Screen[ResultT]):
    """A form over RunParams. Opened with parameters (a clone, a preset, a search's best trial),
    every field starts from them; opened without, on the defaults and the dataset default_data finds.

    A subclass declares HEADING, SUBMIT (the button's label), HINTS (every field it checks, by
    name: what is shown beside it when it is right), its own fields (head_fields, tail_fields), and
    `check` and `_submit`; errors beside fields go in `self.errors`, by field name."""

    # Selects as wide as the Inputs below them (app.tcss: `.field Input`).
    DEFAULT_CSS = """
    ParamForm .field Select { width: 28; }
    """

    HEADING: ClassVar[str]
    SUBMIT: ClassVar[str]
    HINTS: ClassVar[Mapping[str, str]]

    def __init__(self, params: RunParams | None = None) -> None:
        super().__init__()
        # A new form looks its dataset up as it opens (default_data); one opened with parameters keeps theirs.
        self.finding_data = params is None
        self.params = params or RunParams()
        self.errors: dict[str, str] = {}
        # Every field's text as the form opened: closing it asks first when any differs.
        self.opened: dict[str, str] = {}
        # What each field's message says, and whether it is an error.
        self._shown: dict[str, tuple[str, bool]] = {}
        self._submitting = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="form"):
            yield Static(self.HEADING, classes="screen-title")
            with Horizontal(classes="field"):
                yield Label("Preset", classes="field-label")
                yield Select([(f"best ({presets.BEST})" if name == "best" else name, name) for name in presets.names()],
                             prompt="none", id="preset", compact=True)
                yield Label(PRESET_HINT, id="message-preset", classes="field-message", markup=False)
            yield from self.head_fields()
            for name, declared in PARAMS.items():
                if not declared.advanced:
                    yield from self._param_field(name)
            with Collapsible(title="Advanced", collapsed=True, id="advanced"):
                for name, declared in PARAMS.items():
                    if declared.advanced:
                        yield from self._param_field(name)
            yield from self.tail_fields()
        # Outside the scrolling fields, so the preview and the buttons never fall below the fold.
        with Horizontal(id="form-buttons"):
            yield from self.preview_area()
            yield Button(self.SUBMIT, variant="primary", id="submit", compact=True)
            yield Button("Cancel", id="close", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    def preview_area(self) -> ComposeResult:
        """Where the #preview label goes, beside the buttons."""
        yield Label("", id="preview", markup=False)

    def head_fields(self) -> ComposeResult:
        """The form's own fields above the parameters' (none unless a subclass has some)."""
        yield from ()

    def tail_fields(self) -> ComposeResult:
        """The form's own fields below the parameters'."""
        yield from ()

    def param_text(self, name: str) -> str:
        """What parameter `name`'s field starts with."""
        return "" if name == "data" and self.finding_data else self.text_of(name, getattr(self.params, name))

    def text_of(self, name: str, value: Any) -> str:
        """Parameter `name`'s value as its field shows it (from the parameters opened with, or a preset)."""
        return format_value(value)

    def _param_field(self, name: str) -> ComposeResult:
        return self._field(name, PARAMS[name].label, self.param_text(name))

    def _field(self, name: str, label: str, value: str, *, placeholder: str = "") -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label(label, classes="field-label")
            yield Input(value, placeholder=placeholder, id=f"field-{name}", compact=True)
            yield Label("", id=f"message-{name}", classes="field-message", markup=False)

    def _select_field(self, name: str, label: str, choices: Iterable[str], value: str) -> ComposeResult:
        """A field with a fixed set of choices, one always chosen."""
        with Horizontal(classes="field"):
            yield Label(label, classes="field-label")
            yield Select([(choice, choice) for choice in choices], value=value, allow_blank=False,
                         id=f"field-{name}", compact=True)
            yield Label("", id=f"message-{name}", classes="field-message", markup=False)

    def on_mount(self) -> None:
        self.check(None)
        self.opened = self.texts()
        self.query_one("#field-model", Input).focus()
        if self.finding_data:
            self._find_data()

    def texts(self) -> dict[str, str]:
        """The text of every field (the choice of each Select), by name."""
        fields = {str(field.id).removeprefix("field-"): field.value for field in self.query(Input)}
        choices = {str(field.id).removeprefix("field-"): str(field.value) for field in self.query(Select)
                   if str(field.id).startswith("field-")}
        return fields | choices

    def values(self) -> dict[str, str]:
        """The text of every hyperparameter field, by name."""
        return {name: self.query_one(f"#field-{name}", Input).value for name in PARAMS}

    def check(self, name: str | None) -> None:
        """Check field `name`, which changed (None: every field), and update the preview."""
        raise NotImplementedError

    @work(group="form-data")
    async def _find_data(self) -> None:
        app = dmf_app(self.app)
        data = await app.db(default_data, app.store)
        self.finding_data = False
        field = self.query_one("#field-data", Input)
        if data is not None and not field.value:  # unless one was typed meanwhile (None: the read failed)
            field.value = data
            self.opened["data"] = data
        self.check("data")

    def hint(self, name: str) -> str:
        """What field `name` takes, shown beside it when it is right."""
        return self.HINTS[name]

    def _show_message(self, name: str) -> None:
        """Beside the field: the reason it is wrong, else a hint of what it takes."""
        if name in self.errors and name in PARAMS and PARAMS[name].advanced:
            self.query_one("#advanced", Collapsible).collapsed = False  # never hide a field in red
        hint = "finding the dataset last used…" if name == "data" and self.finding_data else self.hint(name)
        shown = (self.errors.get(name) or hint, name in self.errors)
        if self._shown.get(name) == shown:
            return  # as it is: the New search form shows every field's message at each key typed
        self._shown[name] = shown
        message = self.query_one(f"#message-{name}", Label)
        message.update(shown[0])
        message.set_class(shown[1], "error")
        self.query_one(f"#field-{name}").set_class(shown[1], "-invalid")

    def _show_preview(self, text: str, *, error: bool) -> None:
        preview = self.query_one("#preview", Label)
        preview.update(text)
        preview.set_class(error, "error")

    def _show_fix_count(self) -> None:
        self._show_preview(f"Fix {len(self.errors)} field{'s' if len(self.errors) > 1 else ''} in red", error=True)

    @on(Input.Changed)
    @on(Select.Changed)
    def field_changed(self, event: Input.Changed | Select.Changed) -> None:
        field = str(event.control.id)
        if field.startswith("field-"):  # not the preset, which fills fields (preset_chosen)
            self.check(field.removeprefix("field-"))

    @on(Select.Changed, "#preset")
    def preset_chosen(self, event: Select.Changed) -> None:
        """Fill every field the preset sets; their own checks and the preview follow as they change."""
        message = self.query_one("#message-preset", Label)
        if event.select.is_blank():
            message.update(PRESET_HINT)
            return
        chosen = presets.preset(str(event.value))
        for name, value in chosen.settings().items():
            self.query_one(f"#field-{name}", Input).value = self.text_of(name, value)
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
        # would queue it twice.
        if self._submitting:
            return
        self._submitting = True
        try:
            await self._submit()
        finally:
            self._submitting = False

    async def _submit(self) -> None:
        raise NotImplementedError

    async def _refused(self, datasets: Iterable[str]) -> bool:
        """Whether any of these datasets cannot be trained on now, said beside the Dataset field, or
        they could not be checked (the app said why). Checked when submitted rather than as typed: a
        file's check may read all of it (see catalog.resolve)."""
        reasons = await dmf_app(self.app).db(unavailable, datasets)
        if reasons is None:
            return True
        if reasons:
            self.errors["data"] = "; ".join(reasons)
            self._show_message("data")
            self._show_fix_count()
            self._focus_first_error()
            self.notify("Nothing queued: the dataset cannot be used", severity="error")
        return bool(reasons)

    def _focus_first_error(self) -> None:
        """Put the cursor in the first field in red, which scrolls it into view."""
        for field in self.query(Input):
            if field.has_class("-invalid"):
                field.focus()
                return
