"""The New experiment form. Every field takes a comma list of alternatives (hidden layers take
'/'-separated alternatives such as 10,5/64,32), the grid is their cartesian product, and it is
queued as one sweep. Each field is checked as it is typed, with the reason beside it. Retries is
not a grid: every queued run gets that many automatic retries."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from store.errors import ParamError
from store.params import RunParams, expand_grid, format_value
from store.queue import check_retries

# (RunParams field, label, hint shown under the field)
FIELDS = (
    ("model", "Model", "mf, deepmf, or both: mf,deepmf"),
    ("data", "Dataset", "ml-100k, ml-1m, …, synthetic-100k, or a ratings file path"),
    ("k", "K (factors)", "e.g. 10 or 8,16,32"),
    ("hidden", "Hidden layers", "DeepMF only; alternatives split by '/': 10,5/64,32"),
    ("lr", "Learning rate", "e.g. 1e-3,1e-2"),
    ("weight_decay", "Weight decay", "e.g. 1e-5"),
    ("batch_size", "Batch size", "e.g. 512"),
    ("epochs", "Epochs", "e.g. 20"),
    ("seed", "Seed", "e.g. 0,1,2 to repeat with other seeds"),
    ("device", "Device", "auto, cpu, cuda, cuda:N or mps"),
)
RETRIES_HINT = "times a run is queued again if its worker dies or is stopped"
HINTS = {name: hint for name, _, hint in FIELDS} | {"retries": RETRIES_HINT}


class NewRunScreen(Screen[tuple[int, list[int]] | None]):
    """Dismissed with (sweep id, run ids) once queued, or None when closed."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Queue runs", id="form.submit"),
        Binding("escape", "close", "Close", id="form.close"),
    ]

    def __init__(self, params: RunParams | None = None, retries: int = 0) -> None:
        super().__init__()
        self.params = params or RunParams()
        self.retries = retries
        self.errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="form"):
            yield Static("New experiment", classes="screen-title")
            for name, label, _ in FIELDS:
                yield from self._field(name, label, format_value(name, getattr(self.params, name)))
            yield from self._field("retries", "Retries", str(self.retries))
            with Horizontal(id="form-buttons"):
                yield Label("", id="preview", markup=False)
                yield Button("Queue", variant="primary", id="submit")
                yield Button("Cancel", id="close")
        yield Footer()

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
        return {name: self.query_one(f"#field-{name}", Input).value for name, _, _ in FIELDS}

    def _check(self, name: str) -> None:
        """Validate one field alone against the defaults, so its error names this field only."""
        text = self.query_one(f"#field-{name}", Input).value
        try:
            if not text.strip():
                raise ParamError(f"{name}: needs a value")
            if name == "retries":
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
        self._check(event.input.id.removeprefix("field-"))
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
        queued = await self.app.db(self.app.store.enqueue_grid, runs, retries=self._retries())
        if queued is not None:
            self.dismiss(queued)
