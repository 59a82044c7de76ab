"""A search: the space of hyperparameters it explores, how (sampler and pruner) and for how many trials.

`dmf-tui search` and the New search form take the flags and fields of `add`, where a numeric value may
be a range and a comma list is a set of choices:

    --lr 1e-4..3e-2:log     uniform in log space      --k 8..64:int      integers (an int flag's range always is)
    --dropout 0..0.5        uniform                   --batch-size 64..4096:int:log
    --bias true,false       one of these              --hidden 10,5/64,32   (hidden layers: '/' between choices)

A single value is fixed, as in `add`. parse_search() checks everything a person can get wrong and says
what in one line (ParamError) before anything is queued. The result, SearchSpec, is plain data stored as
JSON on the search's sweep; store/study.py hands it to Optuna. Nothing here imports Optuna, so the CLI
and the TUI's form check a search without its import cost.

A search optimises the validation RMSE (a part carved from the training ratings), never the test RMSE:
trials are chosen and pruned by validation, and the test RMSE of the trials chosen is reported.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from store.errors import ParamError
from store.params import (
    PARAMS,
    RunParams,
    check_fits_here,
    check_retries,
    check_value,
    format_value,
    parse_value,
    split_alternatives,
)

SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc")
PRUNERS = ("none", "median", "asha", "hyperband")
# What a search minimises. Only validation RMSE: choosing by test RMSE would tune on the test set.
METRICS = ("val",)
DEFAULT_TRIALS = 20
DEFAULT_SAMPLER = "tpe"
DEFAULT_PRUNER = "asha"
# The validation part a search carves from the training ratings unless --val-size says otherwise.
DEFAULT_VAL_SIZE = 0.1
# A search's trials are queued again by themselves this many times when their worker dies (add --retries).
DEFAULT_RETRIES = 2
# More trials than this are a typo (and a study Optuna would rebuild slowly at every trial).
MAX_TRIALS = 10_000
# A grid sampler expands integer ranges into every value: past this many points it is not a grid.
MAX_GRID = 100_000

# The states a search is in. Active: workers ask it for trials when the queue runs dry. Paused: none of
# its trials start; running ones go on. Stopped: no more trials; its queued ones were cancelled.
SEARCH_STATES = ("active", "paused", "stopped")

# Parameters a search may not vary: trials must be compared on the same data, split the same way.
_NOT_SEARCHED = {"data": "a search compares trials on one dataset: give one",
                 "device": "give one device: where a trial trains does not change its result",
                 "split_seed": "every trial must see the same split to be compared: give one",
                 "test_size": "every trial must see the same split to be compared: give one",
                 "val_size": "every trial must see the same split to be compared: give one"}


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: a range of numbers (`float` or `int`, maybe on a log scale) or a set of
    choices (`categorical`, kept as the text a person would type, e.g. "true" or "64,32")."""

    name: str
    kind: Literal["float", "int", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()

    def value(self, sampled: Any) -> Any:
        """The parameter's value for what the sampler drew."""
        if self.kind == "categorical":
            return parse_value(self.name, str(sampled))
        if self.kind == "int":
            return int(sampled)
        return float(sampled)

    def sampled(self, params: RunParams) -> Any:
        """What the sampler drew for a trial with these parameters (value's inverse)."""
        value = getattr(params, self.name)
        return format_value(value) if self.kind == "categorical" else value

    def describe(self) -> str:
        """'lr: 0.0001..0.03 (log)', 'k: 8..64 (integers)', 'bias: true | false'."""
        if self.kind == "categorical":
            return f"{self.name}: {' | '.join(self.choices)}"
        scale = ", log" if self.log else ""
        kind = "integers" if self.kind == "int" else "uniform"
        low, high = (format_value(_number(self.name, end)) for end in (self.low, self.high))
        return f"{self.name}: {low}..{high} ({kind}{scale})"

    def grid_values(self) -> list[Any]:
        """Every value the grid sampler visits; ParamError for a continuous range."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "float":
            raise ParamError(f"{self.name}: the grid sampler needs a finite space, and {self.describe()} is "
                             "continuous: give a comma list or an integer range")
        return list(range(int(self.low), int(self.high) + 1))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "choices": list(self.choices)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Dimension:
        return cls(**{**values, "choices": tuple(values.get("choices", ()))})


@dataclass(frozen=True)
class SearchSpec:
    """A whole search: the fixed parameters (`base`), the searched ones (`space`), and how."""

    base: RunParams
    space: tuple[Dimension, ...]
    trials: int = DEFAULT_TRIALS
    sampler: str = DEFAULT_SAMPLER
    pruner: str = DEFAULT_PRUNER
    metric: str = "val"
    seed: int = 0  # the sampler's seed: the same seed, the same trials asked in the same order
    retries: int = DEFAULT_RETRIES  # as add --retries, for each trial

    def params_for(self, sampled: Mapping[str, Any], *, validate: bool = True) -> RunParams:
        """A trial's run parameters: the base with what the sampler drew (ParamError if they conflict)."""
        changes = {dim.name: dim.value(sampled[dim.name]) for dim in self.space}
        params = dataclasses.replace(self.base, **changes)
        return params.validate() if validate else params

    def max_epochs(self) -> int:
        """The most epochs a trial can train: what the pruners count their resource in."""
        for dim in self.space:
            if dim.name == "epochs":
                return int(dim.high) if dim.kind != "categorical" else max(int(c) for c in dim.choices)
        return self.base.epochs

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's space: every value of every dimension (ParamError for a continuous one)."""
        grid = {dim.name: dim.grid_values() for dim in self.space}
        size = math.prod(len(values) for values in grid.values())
        if size > MAX_GRID:
            raise ParamError(f"the grid has {size:,} points, more than {MAX_GRID:,}: narrow the integer ranges "
                             "or use another sampler")
        return grid

    def grid_size(self) -> int | None:
        """How many points the space has when it is finite (comma lists and integer ranges), else None."""
        if any(dim.kind == "float" for dim in self.space):
            return None
        return math.prod(len(dim.choices) if dim.kind == "categorical" else int(dim.high - dim.low) + 1
                         for dim in self.space)

    def describe(self, trials: int | None = None) -> list[str]:
        """The search as lines a person reads before queueing it (`search --dry-run`, the form's preview):
        how, on what, then one line per searched parameter. `trials` overrides the count (an extended search)."""
        fixed = [f"{name}={format_value(getattr(self.base, name))}" for name in ("model", "data", "epochs")
                 if name not in {dim.name for dim in self.space}]
        pruner = "no pruning" if self.pruner == "none" else f"pruner {self.pruner}"
        return [f"{trials or self.trials} trials, sampler {self.sampler}, {pruner}",
                f"minimising validation RMSE (val_size {format_value(self.base.val_size)}); {' '.join(fixed)}",
                *(f"  {dim.describe()}" for dim in self.space)]

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "space": [dim.to_dict() for dim in self.space], "trials": self.trials,
                "sampler": self.sampler, "pruner": self.pruner, "metric": self.metric, "seed": self.seed,
                "retries": self.retries}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SearchSpec:
        """From the stored JSON, which this store wrote after checking it (not checked again)."""
        return cls(base=RunParams.from_dict(values["base"], validate=False),
                   space=tuple(Dimension.from_dict(d) for d in values["space"]), trials=int(values["trials"]),
                   sampler=values["sampler"], pruner=values["pruner"], metric=values.get("metric", "val"),
                   seed=int(values.get("seed", 0)), retries=int(values.get("retries", DEFAULT_RETRIES)))


def short_value(value: Any) -> str:
    """A trial's value in a table (`searches`, the search view): three significant digits for a float
    (0.0202, not 0.020232779403798005), else as a person types it."""
    return f"{value:.3g}" if isinstance(value, float) else format_value(value)


def is_range(text: str) -> bool:
    return ".." in text


def parse_search(values: Mapping[str, str | None], base: RunParams | None = None, *, trials: int = DEFAULT_TRIALS,
                 sampler: str = DEFAULT_SAMPLER, pruner: str = DEFAULT_PRUNER, metric: str = "val",
                 seed: int = 0, retries: int = DEFAULT_RETRIES) -> SearchSpec:
    """The search `values` describe: field names to the text a person typed (ranges, comma lists or
    single values), over `base` for the fields not given. ParamError, in one line naming what is
    wrong, for a bad range, a value no trial could take, a bad count or an unknown sampler or pruner."""
    base = base or RunParams()
    _check_choice("sampler", sampler, SAMPLERS)
    _check_choice("pruner", pruner, PRUNERS)
    if metric not in METRICS:
        raise ParamError(f"metric: a search minimises validation RMSE (val); {metric!r} is not one"
                         + (": choosing by test RMSE would tune on the test set" if metric == "test" else ""))
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise ParamError(f"trials must be a whole number from 1 to {MAX_TRIALS:,} (got {trials!r})")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ParamError(f"seed of the sampler must be between 0 and 2**32 - 1 (got {seed!r})")

    fixed: dict[str, Any] = {}
    space: list[Dimension] = []
    for name, text in values.items():
        if text is None or not str(text).strip():
            continue
        if name not in PARAMS:
            raise ParamError(f"unknown parameter {name!r}")
        text = str(text).strip()
        if is_range(text) and name != "data":  # a dataset's path may well hold ".."
            space.append(_parse_range(name, text))
            continue
        choices = list(dict.fromkeys(format_value(parse_value(name, alt)) for alt in split_alternatives(name, text)))
        if len(choices) == 1:
            # Checked now: a bad fixed value is the thing to say, before whether anything is searched.
            fixed[name] = parse_value(name, choices[0])
            check_value(name, fixed[name])
        else:
            space.append(Dimension(name, "categorical", choices=tuple(choices)))
    if "val_size" not in fixed:
        fixed["val_size"] = base.val_size or DEFAULT_VAL_SIZE
    if fixed["val_size"] == 0:
        raise ParamError("val_size: a search minimises validation RMSE, so it needs a validation part: "
                         f"give --val-size > 0 (default {DEFAULT_VAL_SIZE})")
    try:
        fixed_base = dataclasses.replace(base, **fixed)
    except TypeError as error:  # not a field: cannot happen for names checked above
        raise ParamError(str(error)) from None
    for dim in space:
        reason = _NOT_SEARCHED.get(dim.name)
        if reason:
            raise ParamError(f"{dim.name}: {reason}")
    if not space:
        raise ParamError("nothing to search: give at least one range (LOW..HIGH) or comma list")
    models = [dim for dim in space if dim.name == "model"]
    possible = set(models[0].choices) if models else {fixed_base.model}
    for dim in space:
        if not any(PARAMS[dim.name].applies_to(model) for model in possible):
            raise ParamError(f"{dim.name}: {', '.join(sorted(possible))} does not use it, so searching it "
                             "would spend trials on the same model")
    check_retries(retries)
    spec = SearchSpec(fixed_base, tuple(space), trials, sampler, pruner, metric, seed, retries)
    # Every corner must be a run that can be queued: the base with each range's ends (each end alone
    # keeps a conflict message about one parameter).
    first = {dim.name: dim.choices[0] if dim.kind == "categorical" else dim.low for dim in space}
    _checked(spec, first)
    for dim in space:
        for end in (dim.choices if dim.kind == "categorical" else (dim.low, dim.high)):
            _checked(spec, first | {dim.name: end})
    if sampler == "grid":
        spec.grid()
        # Past the last point the grid sampler would run points again: the whole grid is the most.
        spec = dataclasses.replace(spec, trials=min(trials, spec.grid_size() or trials))
    return spec


def _checked(spec: SearchSpec, sampled: Mapping[str, Any]) -> None:
    """ParamError unless the trial with these values can be queued: valid, and small enough for this
    machine's memory (as `add` checks each run of a grid)."""
    try:
        check_fits_here(spec.params_for(sampled))
    except ParamError as error:
        raise ParamError(f"{error} (in the search space)") from None


def _parse_range(name: str, text: str) -> Dimension:
    """'1e-4..3e-2:log', '8..64:int', '64..4096:int:log' as a Dimension of parameter `name`."""
    declared = PARAMS[name]
    default = declared.default
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        raise ParamError(f"{name}: {text!r} is a range, but {name} is not a number: give a comma list of choices")
    bounds, *options = text.split(":")
    unknown = [o for o in options if o not in ("log", "int")]
    if unknown or len(set(options)) != len(options):
        raise ParamError(f"{name}: {text!r}: after the range, write :log, :int or :int:log")
    parts = bounds.split("..")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise ParamError(f"{name}: {text!r} is an empty range: write LOW..HIGH, e.g. 1e-4..1e-2")
    is_int = isinstance(default, int)
    if "int" in options and not is_int:
        raise ParamError(f"{name}: {text!r}: {name} is not a whole number, so :int does not apply")
    low, high = (_endpoint(name, part.strip()) for part in parts)
    if low > high:
        raise ParamError(f"{name}: {text!r}: LOW is above HIGH")
    if low == high:
        raise ParamError(f"{name}: {text!r} is an empty range (LOW equals HIGH): give the one value instead")
    log = "log" in options
    if log and low <= 0:
        raise ParamError(f"{name}: {text!r}: a :log range needs LOW > 0")
    for end in (low, high):
        problem = declared.check(_number(name, end)) if declared.check is not None else None
        if problem:
            raise ParamError(f"{name}: {problem} (got {format_value(_number(name, end))} in {text!r})")
    return Dimension(name, "int" if is_int else "float", float(low), float(high), log)


def _endpoint(name: str, text: str) -> float:
    value = parse_value(name, text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(f"{name}: {text!r} is not a finite number")
    return float(value)


def _number(name: str, value: float) -> int | float:
    """A stored endpoint as the parameter's own type (8, not 8.0, for k)."""
    return int(value) if isinstance(PARAMS[name].default, int) else value


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
