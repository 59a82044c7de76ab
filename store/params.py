"""The hyperparameters of one run: their defaults, validation and grid expansion.

This lives in the store, not the engine, because everything that queues runs (the CLI, the TUI's
form) must validate parameters without importing torch. The defaults are the reference lab's.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import stat
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from store.errors import ParamError
from store.memory import KNOWN_SHAPES, physical_memory, shortfall, training_bytes

MODELS = ("mf", "deepmf")
INT64_LIMIT = 2**63
DEEPMF_ONLY = ("hidden", "dropout")


@dataclass(frozen=True)
class RunParams:
    model: str = "mf"
    data: str = "ml-1m"
    k: int = 10
    hidden: tuple[int, ...] = (10, 5)
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 512
    epochs: int = 20
    seed: int = 0
    split_seed: int = 42
    test_size: float = 0.2
    # Fraction of the training rows held out for early stopping; 0 keeps the lab's two-way split.
    val_size: float = 0.0
    # Epochs without improvement before stopping; 0 never stops early.
    patience: int = 0
    device: str = "auto"
    # Extras beyond the lab; their defaults leave the lab's models unchanged.
    bias: bool = False
    dropout: float = 0.0
    init_std: float = 0.0  # 0 keeps PyTorch's default initialisation

    def validate(self) -> RunParams:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            check = _CHECKS.get(field.name)
            problem = _storable(value) or (check(value) if check is not None else None)
            if problem:
                raise ParamError(f"{field.name}: {problem} (got {_show(value)})")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, validate: bool = True) -> RunParams:
        """Build from stored JSON, ignoring keys this version does not know. The store passes
        validate=False for rows it validated when writing them (it reads many per second)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        if "hidden" in kwargs:
            kwargs["hidden"] = tuple(int(h) for h in kwargs["hidden"])
        params = cls(**kwargs)
        return params.validate() if validate else params

    def replace(self, **changes: Any) -> RunParams:
        return dataclasses.replace(self, **changes).validate()

    def effective_key(self) -> tuple:
        """What decides the run's results: MF ignores the DeepMF-only fields, so a grid that varies
        only those queues one MF run, not several identical ones."""
        values = dataclasses.asdict(self)  # hidden stays a tuple, so every value hashes
        if self.model == "mf":
            for name in DEEPMF_ONLY:
                del values[name]
        return tuple(sorted(values.items()))

    def label(self) -> str:
        """A short human description, e.g. 'mf k=10 lr=0.001'."""
        base = RunParams()
        parts = [self.model]
        for name in ("k", "hidden", "lr", "weight_decay", "batch_size", "epochs", "seed", "dropout", "bias"):
            value = getattr(self, name)
            if self.model == "mf" and name in DEEPMF_ONLY:
                continue
            if value != getattr(base, name) or name in ("k", "lr"):
                parts.append(f"{name}={format_value(name, value)}")
        return " ".join(parts)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else format_value("", value)


def _storable(value: Any) -> str | None:
    """What every number must be to be stored (SQLite integers are 64-bit) and trained with: an
    integer that fits in int64, a finite float. A parameter beyond that is refused here, once,
    rather than as an OverflowError from the database or a run that trains on infinity."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and not -INT64_LIMIT <= v < INT64_LIMIT:
            return "must fit in 64 bits (below 2**63)"
        if isinstance(v, float) and not math.isfinite(v):
            return "must be a finite number"
    return None


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _fraction(v: float) -> str | None:
    return None if 0 < v < 1 else "must be between 0 and 1 (exclusive)"


def _device(v: str) -> str | None:
    if v in ("auto", "cpu", "cuda", "mps"):
        return None
    if v.startswith("cuda:") and v[5:].isdigit():
        return None
    return "must be auto, cpu, cuda, cuda:N or mps"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "model": lambda v: None if v in MODELS else f"must be one of {', '.join(MODELS)}",
    "data": lambda v: None if v.strip() else "must name a dataset or a file",
    "k": _positive,
    "hidden": lambda v: None if v and all(h > 0 for h in v) else "must be one or more sizes > 0",
    "lr": _positive,
    "weight_decay": _non_negative,
    "batch_size": _positive,
    "epochs": _positive,
    "seed": _non_negative,
    # numpy's RandomState, which draws the lab's split, takes 32-bit seeds only.
    "split_seed": lambda v: None if 0 <= v < 2**32 else "must be between 0 and 2**32 - 1",
    "test_size": _fraction,
    "val_size": lambda v: None if 0 <= v < 1 else "must be >= 0 and < 1",
    "patience": _non_negative,
    "device": _device,
    "dropout": lambda v: None if 0 <= v < 1 else "must be >= 0 and < 1",
    "init_std": _non_negative,
}

FIELD_NAMES = tuple(f.name for f in dataclasses.fields(RunParams))


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _data_spec(text: str) -> str:
    """A dataset name as is; an existing file as an absolute path, so a worker started in another
    directory finds it. A FIFO or a device is refused: reading one would block a worker forever."""
    path = Path(text).expanduser()
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):  # no such file (a dataset name), or a name no file can have
        return text
    if stat.S_ISREG(mode):
        return str(path.resolve())
    if not stat.S_ISDIR(mode):
        raise ParamError(f"data: {text!r} is not a regular file (a FIFO, a device or a socket?)")
    return text


def _parse_hidden(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.replace("x", ",").split(","))  # '10,,5': int('') fails


_PARSERS: dict[str, Callable[[str], Any]] = {
    "model": lambda s: s.strip().lower(),
    "data": lambda s: _data_spec(s.strip()),
    "device": lambda s: s.strip().lower(),
    "hidden": _parse_hidden,
    "bias": _parse_bool,
}
for _f in dataclasses.fields(RunParams):
    if _f.name not in _PARSERS:
        _PARSERS[_f.name] = {"int": int, "float": float}[str(_f.type)]

_TYPE_WORDS = {int: "an integer", float: "a number", _parse_bool: "true or false",
               _parse_hidden: "sizes like 10,5"}


def parse_value(name: str, text: str) -> Any:
    """Parse one value of field `name` from text, with a one-line error naming the field."""
    if name not in _PARSERS:
        raise ParamError(f"unknown parameter {name!r}")
    parser = _PARSERS[name]
    try:
        return parser(text)
    except ValueError:
        word = _TYPE_WORDS.get(parser, "a valid value")
        raise ParamError(f"{name}: {text.strip()!r} is not {word}") from None


def split_alternatives(name: str, text: str) -> list[str]:
    """The alternatives of one grid field. Commas separate them, except for `hidden`, whose
    value is itself a comma list: its alternatives are separated by '/' (e.g. 10,5/64,32)."""
    sep = "/" if name == "hidden" else ","
    parts = [p.strip() for p in str(text).split(sep)]
    if not parts or any(not p for p in parts):
        raise ParamError(f"{name}: empty value in {text!r}")
    return parts


def expand_grid(values: Mapping[str, str], base: RunParams | None = None) -> list[RunParams]:
    """Expand text values with comma lists into the cartesian product of validated runs.

    `values` maps field names to the text a person typed (e.g. {"lr": "1e-3,1e-2"}); fields not
    given keep `base`'s values. Runs that would train the same thing are queued once, order is kept.
    """
    base = base or RunParams()
    names = [n for n in values if values[n] is not None and str(values[n]).strip() != ""]
    choices = []
    for name in names:
        parsed = [parse_value(name, alt) for alt in split_alternatives(name, values[name])]
        choices.append(list(dict.fromkeys(parsed)))
    runs: dict[tuple, RunParams] = {}
    for combo in itertools.product(*choices):
        run = dataclasses.replace(base, **dict(zip(names, combo))).validate()
        runs.setdefault(run.effective_key(), run)
    for run in runs.values():
        check_fits_here(run)
    return list(runs.values())


def check_fits_here(run: RunParams) -> None:
    """ParamError for a run on a named dataset whose tables and optimizer state could not fit in
    this machine's memory. Runs on a file are checked when they start, against their device."""
    shape = KNOWN_SHAPES.get(run.data)
    if shape is None:
        return
    need = training_bytes(shape, model=run.model, k=run.k, hidden=run.hidden, bias=run.bias,
                          batch_size=run.batch_size)
    reason = shortfall(need, physical_memory(), "this machine")
    if reason:
        raise ParamError(f"{run.label()} on {run.data}: {reason}")


def format_value(name: str, value: Any) -> str:
    """The text form a person would type back into a form field."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
