"""The New search form: the New experiment form's fields (param_form.py), where every parameter
field takes a search value, as `dmf-tui search` takes its flags (store/search.py):

    LOW..HIGH  LOW..HIGH:log  LOW..HIGH:int  LOW..HIGH:int:log   a range (numeric parameters only)
    a,b,c                                                        one of these choices (hidden: 10,5/64,32)
    a single value                                               the same in every trial

Above the parameters: how many trials, the sampler that chooses them and the pruner that stops the
hopeless ones; below them the search's name, the sampler's seed and each trial's retries.

The whole form is checked by parse_search at every change: its one-line error goes beside the field
it names, else in the preview below the fields, which otherwise shows the search as it would be
queued (its trial count and its space). A search minimises the validation RMSE, so the Validation
size field starts at 0.1 (parse_search's default, which an empty field also gets)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Input, Select

from dmf_tui.components.param_form import ParamForm
from dmf_tui.host import dmf_app
from store.errors import ParamError
from store.params import PARAMS, RunParams, format_value
from store.search import (
    DEFAULT_PRUNER,
    DEFAULT_RETRIES,
    DEFAULT_SAMPLER,
    DEFAULT_TRIALS,
    DEFAULT_VAL_SIZE,
    PRUNERS,
    SAMPLERS,
    SearchSpec,
    parse_search,
)

# The split every trial shares: store.search refuses a range or a list for them (trials seeing
# different splits could not be compared), so their hints offer one value.
ONE_VALUE = ("split_seed", "test_size", "val_size")


def _param_hint(name: str) -> str:
    declared = PARAMS[name]
    if name == "val_size":
        return f"validation part (default {format_value(DEFAULT_VAL_SIZE)})"
    if isinstance(declared.default, bool):
        return "true, false or true,false"
    if isinstance(declared.default, (int, float)) and name not in ONE_VALUE:
        return "LOW..HIGH[:log], a,b or one"  # an integer's range is integers: :int is optional
    return declared.hint  # a word, a dataset, hidden sizes: its own hint already says it


# Beside each field: what it takes. The sampler's and the pruner's say what the one chosen does
# (SAMPLER_HINTS, PRUNER_HINTS).
HINTS = {"trials": "how many runs to try, e.g. 40", "sampler": "", "pruner": ""} | {
    name: _param_hint(name) for name in PARAMS} | {
    "name": "optional", "sampler_seed": "same seed, same trials asked", "retries": "requeues if its worker dies"}
SAMPLER_HINTS = {"tpe": "Bayesian: learns from trials", "random": "uniform at random",
                 "grid": "every point: lists, int ranges", "cmaes": "CMA-ES: for numeric ranges",
                 "qmc": "quasi-random, evenly spread"}
PRUNER_HINTS = {"none": "every trial runs all epochs", "median": "stops below-median curves",
                "asha": "async successive halving", "hyperband": "halving in several brackets"}

# parse_search's errors about the form's own numbers name them without a colon.
_OWN_ERRORS = {"trials must": "trials", "seed of the sampler": "sampler_seed", "retries must": "retries"}


def field_named(message: str) -> str | None:
    """The field a parse_search error is about ("lr: ..." is lr's), or None when it is about the whole
    search (a combination that cannot train, nothing to search)."""
    for prefix, field in _OWN_ERRORS.items():
        if message.startswith(prefix):
            return field
    name, colon, _ = message.partition(":")
    return name if colon and name in PARAMS else None


class NewSearchScreen(ParamForm[int | None]):
    """Dismissed with the new search's id once queued, or None when closed. Opened with parameters
    (a preset's, a run's), every parameter field starts from them as a single value."""

    # At most 7 lines of preview, scrolled: the space of a search over many parameters would push
    # the fields off an 80x24 screen.
    DEFAULT_CSS = """
    NewSearchScreen #preview-box { width: 1fr; height: auto; max-height: 7; }
    """

    HEADING = "New search"
    SUBMIT = "Queue search"
    HINTS = HINTS

    BINDINGS = [
        Binding("ctrl+s", "submit", "Queue search", id="search-form.submit",
                tooltip="queue the search the preview shows (enter in a field too); a number takes a range: "
                        "LOW..HIGH, LOW..HIGH:log, LOW..HIGH:int or LOW..HIGH:int:log; a comma list is a set of "
                        "choices (hidden sizes split by /); one value is the same in every trial"),
        Binding("escape", "close", "Close", id="search-form.close",
                tooltip="close without queuing (asks when a field was changed)"),
    ]

    def __init__(self, base: RunParams | None = None) -> None:
        super().__init__(base)
        # The reason the whole search cannot be queued, when no one field is to blame.
        self.problem: str | None = None

    def preview_area(self) -> ComposeResult:
        with VerticalScroll(id="preview-box"):
            yield from super().preview_area()

    def head_fields(self) -> ComposeResult:
        yield from self._field("trials", "Trials", str(DEFAULT_TRIALS))
        yield from self._select_field("sampler", "Sampler", SAMPLERS, DEFAULT_SAMPLER)
        yield from self._select_field("pruner", "Pruner", PRUNERS, DEFAULT_PRUNER)

    def tail_fields(self) -> ComposeResult:
        yield from self._field("name", "Search name", "")
        yield from self._field("sampler_seed", "Sampler seed", "0")
        yield from self._field("retries", "Retries", str(DEFAULT_RETRIES))

    def text_of(self, name: str, value: Any) -> str:
        # A search needs a validation part: a run's none (the default) becomes the search's default.
        if name == "val_size" and not value:
            return format_value(DEFAULT_VAL_SIZE)
        return super().text_of(name, value)

    def _param_field(self, name: str) -> ComposeResult:
        placeholder = format_value(DEFAULT_VAL_SIZE) if name == "val_size" else ""
        return self._field(name, PARAMS[name].label, self.param_text(name), placeholder=placeholder)

    def hint(self, name: str) -> str:
        if name in ("sampler", "pruner"):
            chosen = str(self.query_one(f"#field-{name}", Select).value)
            return (SAMPLER_HINTS if name == "sampler" else PRUNER_HINTS)[chosen]
        return super().hint(name)

    def check(self, name: str | None) -> None:
        self._validate()  # the whole form, whichever field changed: a model or a sampler changes what others may take

    def _validate(self) -> SearchSpec | None:
        """Check the whole form: each error beside its field, or in the preview; the search it
        describes, or None when it cannot be queued (yet: while the dataset is being found)."""
        self.errors.clear()
        self.problem = None
        spec = None
        numbers = {name: self._whole(name, default) for name, default in
                   (("trials", DEFAULT_TRIALS), ("sampler_seed", 0), ("retries", DEFAULT_RETRIES))}
        try:
            spec = parse_search(self._search_values(), trials=numbers["trials"], seed=numbers["sampler_seed"],
                                retries=numbers["retries"], sampler=self._choice("sampler"),
                                pruner=self._choice("pruner"))
        except ParamError as exc:
            field = field_named(str(exc))
            if field is None:
                self.problem = str(exc)
            else:
                self.errors.setdefault(field, str(exc))
        for field in self.HINTS:
            self._show_message(field)
        if self.errors:
            self._show_fix_count()
        elif self.problem is not None:
            self._show_preview(self.problem, error=True)
        elif self.finding_data:
            self._show_preview("Finding the dataset…", error=False)
        elif spec is not None:
            self._show_preview("\n".join(spec.describe()), error=False)
        return None if self.errors or self.finding_data else spec

    def _search_values(self) -> dict[str, str | None]:
        """Every parameter field's text for parse_search; ParamError for one left empty."""
        values: dict[str, str | None] = dict(self.values())
        for name, text in values.items():
            if name == "data" and self.finding_data:
                values[name] = None  # being filled in: the preview waits for it
            elif not str(text).strip() and name != "val_size":  # val_size: parse_search's default
                raise ParamError(f"{name}: needs a value")
        return values

    def _whole(self, name: str, default: int) -> int:
        """A whole-number field's value; its error beside it (and `default` in its place) if it is none."""
        text = self.query_one(f"#field-{name}", Input).value.strip()
        try:
            return int(text)
        except ValueError:
            self.errors[name] = f"{name.replace('_', ' ')}: {text!r} is not a whole number"
            return default

    def _choice(self, name: str) -> str:
        return str(self.query_one(f"#field-{name}", Select).value)

    async def _submit(self) -> None:
        spec = self._validate()
        if spec is None:
            if not self.finding_data:
                self._focus_first_error()
                self.notify(f"Nothing queued: {self.problem or 'fix the fields in red'}", severity="error",
                            markup=False)
            return
        if await self._refused([spec.base.data]):
            return
        name = self.query_one("#field-name", Input).value.strip() or None
        app = dmf_app(self.app)
        search_id = await app.db(app.store.create_search, spec, name=name)
        if search_id is not None:
            self.dismiss(search_id)
