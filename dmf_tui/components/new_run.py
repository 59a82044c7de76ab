"""The New experiment form: a field per hyperparameter, made from its declaration in store/params.py
(the common ones first, the rest in an Advanced section folded by default), then the sweep's name
and the retries. Every parameter field takes a comma list of alternatives (hidden layers take
'/'-separated alternatives such as 10,5/64,32), the grid is their cartesian product, and it is
queued as one sweep. Each field is checked as it is typed, with the reason beside it. Retries is
not a grid: every queued run gets that many automatic retries."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Collapsible, Footer, Input, Label, Static

from dmf_tui.host import dmf_app
from store.errors import ParamError
from store.params import PARAMS, RunParams, expand_grid, format_value
from store.queue import check_retries

# Beside each field: its hint, the parameters' from their declarations, then the sweep's two fields'.
HINTS = {name: declared.hint for name, declared in PARAMS.items()} | {
    "name": "optional", "retries": "requeues if its worker dies"}


class NewRunScreen(Screen[tuple[int, list[int]] | None]):
    """Dismissed with (sweep id, run ids) once queued, or None when closed. Opened with a run's
    parameters and retries (a clone), every field starts from them."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Queue runs", id="form.submit",
                tooltip="queue the grid (enter in a field too); fields take comma lists, hidden sizes split by / "
                        "(10,5/64,32)"),
        Binding("escape", "close", "Close", id="form.close", tooltip="close without queuing"),
    ]

    def __init__(self, params: RunParams | None = None, retries: int = 0) -> None:
        super().__init__()
        self.params = params or RunParams()
        self.retries = retries
        self.errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="form"):
            yield Static("New experiment", classes="screen-title")
            for name, declared in PARAMS.items():
                if not declared.advanced:
                    yield from self._param_field(name)
            with Collapsible(title="Advanced", collapsed=True, id="advanced"):
                for name, declared in PARAMS.items():
                    if declared.advanced:
                        yield from self._param_field(name)
            yield from self._field("name", "Sweep name", "")
            yield from self._field("retries", "Retries", str(self.retries))
            with Horizontal(id="form-buttons"):
                yield Label("", id="preview", markup=False)
                yield Button("Queue", variant="primary", id="submit")
                yield Button("Cancel", id="close")
        yield Footer()

    def _param_field(self, name: str) -> ComposeResult:
        return self._field(name, PARAMS[name].label, format_value(getattr(self.params, name)))

    def _field(self, name: str, label: str, value: str) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label(label, classes="field-label")
            yield Input(value, id=f"field-{name}", compact=True)
            yield Label("", id=f"message-{name}", classes="field-message", markup=False)

    def on_mount(self) -> None:
        for name in HINTS:
            self._check(name)
        self._preview()
        self.query_one("#field-model", Input).focus()

    def values(self) -> dict[str, str]:
        """The text of every hyperparameter field, by name."""
        return {name: self.query_one(f"#field-{name}", Input).value for name in PARAMS}

    def _check(self, name: str) -> None:
        """Validate one field alone against the defaults, so its error names this field only."""
        text = self.query_one(f"#field-{name}", Input).value
        try:
            if name == "name":
                pass  # any name, or none
            elif not text.strip():
                raise ParamError(f"{name}: needs a value")
            elif name == "retries":
                self._retries()
            else:
                expand_grid({name: text})
        except ParamError as exc:
            self.errors[name] = str(exc)
        else:
            self.errors.pop(name, None)
        # Beside the field: the reason it is wrong, else a hint of what it takes.
        message = self.query_one(f"#message-{name}", Label)
        message.update(self.errors.get(name) or HINTS[name])
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
        else:
            try:
                runs = expand_grid(self.values())
            except ParamError as exc:
                preview.update(str(exc))
            else:
                preview.update(f"{len(runs)} run{'s' if len(runs) != 1 else ''} will be queued")
        preview.set_class(not runs, "error")
        return runs

    @on(Input.Changed)
    def field_changed(self, event: Input.Changed) -> None:
        field = event.input.id
        assert field is not None  # every input of the form is made by _field, with an id
        self._check(field.removeprefix("field-"))
        self._preview()

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def submitted(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="form-submit")
    async def action_submit(self) -> None:
        runs = self._preview()
        if not runs:
            self.notify("Nothing queued: fix the fields in red", severity="error")
            return
        name = self.query_one("#field-name", Input).value.strip() or None
        app = dmf_app(self.app)
        queued = await app.db(app.store.enqueue_grid, runs, name=name, retries=self._retries())
        if queued is not None:
            self.dismiss(queued)
