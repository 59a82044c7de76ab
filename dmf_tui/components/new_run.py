"""The New experiment form (the fields it shares with the New search form: param_form.py). Every
parameter field takes a comma list of alternatives (hidden layers take '/'-separated alternatives
such as 10,5/64,32), the grid is their cartesian product, and it is queued as one sweep. Each field
is checked as it is typed, with the reason beside it, and the datasets once more when queued. The
sweep's name and the retries follow the parameters; retries is not a grid: every queued run gets that
many automatic retries.

Queueing more than CONFIRM_ABOVE runs asks first."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from dmf_tui.components.confirm import Confirm
from dmf_tui.components.param_form import ParamForm
from dmf_tui.host import dmf_app
from store.errors import ParamError
from store.params import PARAMS, RunParams, check_retries, expand_grid

# Beside each field: its hint, the parameters' from their declarations, then the sweep's two fields'.
HINTS = {name: declared.hint for name, declared in PARAMS.items()} | {
    "name": "optional", "retries": "requeues if its worker dies"}

# What a field is checked against alone: the defaults, but with biases and without weight decay,
# the values no single other value conflicts with (RunParams._conflict: reg_bias needs biases,
# sparse_adam no weight decay). Against the plain defaults, reg_bias 0.01 would stay red beside its
# field after biases were turned on, and a preset setting both could never be queued. A combination
# that cannot train is told by the count below the fields, which checks the whole grid.
ALONE = RunParams(bias=True, weight_decay=0.0)

# A grid larger than this is confirmed before it is queued: a typo in a comma list (1,2,3,4,5 in the
# wrong field) can multiply a sweep by hours of work.
CONFIRM_ABOVE = 100


class NewRunScreen(ParamForm[tuple[int, list[int]] | None]):
    """Dismissed with (sweep id, run ids) once queued, or None when closed. Opened with a run's
    parameters and retries (a clone), every field starts from them."""

    HEADING = "New experiment"
    SUBMIT = "Queue"
    HINTS = HINTS

    BINDINGS = [
        Binding("ctrl+s", "submit", "Queue runs", id="form.submit",
                tooltip=f"queue the grid (enter in a field too; asks above {CONFIRM_ABOVE} runs); fields take "
                        "comma lists, hidden sizes split by / (10,5/64,32)"),
        Binding("escape", "close", "Close", id="form.close",
                tooltip="close without queuing (asks when a field was changed)"),
    ]

    def __init__(self, params: RunParams | None = None, retries: int = 0) -> None:
        super().__init__(params)
        self.retries = retries

    def tail_fields(self) -> ComposeResult:
        yield from self._field("name", "Sweep name", "")
        yield from self._field("retries", "Retries", str(self.retries))

    def check(self, name: str | None) -> None:
        for field in HINTS if name is None else [name]:
            self._check(field)
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

    def _retries(self) -> int:
        text = self.query_one("#field-retries", Input).value.strip()
        try:
            retries = int(text)
        except ValueError:
            raise ParamError(f"retries: {text!r} is not a whole number") from None
        check_retries(retries)
        return retries

    def _preview(self) -> list[RunParams]:
        runs: list[RunParams] = []
        if self.errors:
            self._show_fix_count()
        elif self.finding_data:
            self._show_preview("Finding the dataset…", error=False)
        else:
            try:
                runs = expand_grid(self.values())
            except ParamError as exc:
                self._show_preview(str(exc), error=True)
            else:
                self._show_preview(f"{len(runs)} run{'s' if len(runs) != 1 else ''} will be queued", error=False)
        return runs

    async def _submit(self) -> None:
        self._check("data")  # clears the last submission's verdict on the dataset: it is checked again
        runs = self._preview()
        if not runs:
            if not self.finding_data:
                self._focus_first_error()
                self.notify("Nothing queued: fix the fields in red", severity="error")
            return
        if await self._refused([run.data for run in runs]):
            return
        if len(runs) > CONFIRM_ABOVE:
            question = f"Queue {len(runs)} runs? That is more than {CONFIRM_ABOVE}: check the comma lists."
            if not await self.app.push_screen_wait(Confirm(question, yes="Queue")):
                return
        name = self.query_one("#field-name", Input).value.strip() or None
        app = dmf_app(self.app)
        queued = await app.db(app.store.enqueue_grid, runs, name=name, retries=self._retries())
        if queued is not None:
            self.dismiss(queued)
