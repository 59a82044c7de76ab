"""The hyperparameters of one run, each declared once: its default, how it is typed in and checked,
where it shows, and which engine function it feeds. Everything else is derived from these
declarations: the CLI's flags, the New experiment form, validation, the runs table's columns,
`label()`, Compare, `show`, CSV export and the keyword arguments the engine is called with.

A new hyperparameter is one `param(...)` line here plus its use in the engine.

This lives in the store, not the engine, because everything that queues runs (the CLI, the TUI's
form) must validate parameters without importing torch. The defaults are the reference lab's.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from store.errors import ParamError
from store.memory import KNOWN_SHAPES, ROW_MODELS, physical_memory, shortfall, training_bytes

# engine.models.MODELS and engine.trainer.OPTIMIZERS; tests/test_trainer.py keeps them equal.
MODELS = ("mf", "deepmf", "gmf", "neumf", "autorec", "glocal_k")
OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad", "sparse_adam")
SCHEDULES = ("none", "cosine", "step", "plateau")
# The models that predict from a (user, item) pair through embedding tables; the others, ROW_MODELS
# (AutoRec, GLocal-K), reconstruct a whole item's rating vector and have no embeddings, biases or init.
PAIR_MODELS = tuple(model for model in MODELS if model not in ROW_MODELS)
MLP_MODELS = ("deepmf", "neumf", "glocal_k")
INT64_LIMIT = 2**63
# More automatic retries than this are a typo; SQLite integers also end at 2**63.
MAX_RETRIES = 1000

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Param:
    """Everything dmf-tui knows about one hyperparameter. `name` is the RunParams field's."""

    name: str
    default: Any
    help: str  # the CLI's --help
    label: str  # the form's label
    hint: str  # shown beside the form's field: short (80 columns), an example where one helps
    check: Check | None  # the reason a value is refused, or None
    parse: Callable[[str], Any]  # one value from the text a person typed
    advanced: bool  # in the form's folded Advanced section
    # In `label()`: always, only when it differs from the default, or never.
    summary: Literal["always", "changed", "never"]
    # Its column heading in the Queue and History tables. Such a parameter is also a real column of
    # the runs table, so History can sort and filter on it in SQL; every other one lives in the
    # run's JSON copy only.
    heading: str | None
    # The engine function that takes it, under the same name: fit() (the trainer), "split" (how the
    # ratings are split) or "data" (what is loaded).
    feeds: Literal["fit", "split", "data"]
    only: tuple[str, ...]  # the models it applies to; () for all. The others ignore it.
    # Whether runs that differ in it may still train together in one pack (engine.trainer.PER_RUN):
    # what each run does with the pack's shared step, not the shape of that step.
    per_run: bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def separator(self) -> str:
        """What separates the alternatives of a grid: commas, except for a value that is itself a
        comma list (hidden layers: 10,5/64,32)."""
        return "/" if isinstance(self.default, tuple) else ","

    def applies_to(self, model: str) -> bool:
        return not self.only or model in self.only


def param(default: Any, help: str, *, label: str, hint: str, check: Check | None = None,
          parse: Callable[[str], Any] | None = None, advanced: bool = False,
          summary: Literal["always", "changed", "never"] = "changed", heading: str | None = None,
          feeds: Literal["fit", "split", "data"] = "fit", only: tuple[str, ...] = (), per_run: bool = False) -> Any:
    """A RunParams field with its declaration (the name is filled in from the field)."""
    declared = Param("", default, help, label, hint, check, parse or _PARSE_BY_TYPE[type(default)],
                     advanced, summary, heading, feeds, only, per_run)
    return dataclasses.field(default=default, metadata={"param": declared})


# --- checks and parsers the declarations use ----------------------------------------------------

def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _fraction(v: float) -> str | None:
    return None if 0 < v < 1 else "must be between 0 and 1 (exclusive)"


def _below_one(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be >= 0 and < 1"


def _odd(v: int) -> str | None:
    return None if v > 0 and v % 2 == 1 else "must be an odd number > 0"


def _one_of(choices: tuple[str, ...]) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _dataset(v: str) -> str | None:
    return None if v.strip() else "must name a dataset or a file"


def _sizes(v: tuple[int, ...]) -> str | None:
    return None if v and all(h > 0 for h in v) else "must be one or more sizes > 0"


def _seed32(v: int) -> str | None:
    # numpy's RandomState, which draws the lab's split, takes 32-bit seeds only.
    return None if 0 <= v < 2**32 else "must be between 0 and 2**32 - 1"


def _device(v: str) -> str | None:
    if v in ("auto", "cpu", "cuda", "mps"):
        return None
    if v.startswith("cuda:") and v[5:].isdigit():
        return None
    return "must be auto, cpu, cuda, cuda:N or mps"


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.replace("x", ",").split(","))  # '10,,5': int('') fails


def _parse_word(text: str) -> str:
    return text.strip().lower()


def _parse_data(text: str) -> str:
    """A dataset name as is; an existing file as an absolute path, so a worker started in another
    directory finds it. A FIFO or a device is refused: reading one would block a worker forever."""
    text = text.strip()
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


_PARSE_BY_TYPE: dict[type, Callable[[str], Any]] = {int: int, float: float, bool: _parse_bool, str: str.strip,
                                                    tuple: _parse_sizes}
# How a parse failure is worded: "k: 'ten' is not an integer".
_TYPE_WORDS: dict[Callable[[str], Any], str] = {int: "an integer", float: "a number", _parse_bool: "true or false",
                                                _parse_sizes: "sizes like 10,5"}


@dataclass(frozen=True)
class RunParams:
    """One run's hyperparameters. Declaration order is the order of the form, the flags and `show`."""

    model: str = param("mf", "mf, deepmf, gmf, neumf, autorec (I-AutoRec) or glocal_k", label="Model",
                       hint="e.g. mf, autorec, or mf,deepmf",
                       check=_one_of(MODELS), parse=_parse_word, summary="never", heading="model")
    data: str = param("ml-1m", "a dataset name (ml-100k, ml-1m, synthetic-1m, ...) or a ratings file",
                      label="Dataset", hint="ml-100k, ml-1m, … or a file", check=_dataset,
                      parse=_parse_data, summary="never", heading="data", feeds="data")
    k: int = param(10, "embedding size (AutoRec: hidden units; GLocal-K: kernel dimension)", label="K (factors)",
                   hint="e.g. 10 or 8,16,32",
                   check=_positive, summary="always", heading="K")
    hidden: tuple[int, ...] = param((10, 5), "DeepMF hidden layers, e.g. 10,5", label="Hidden layers",
                                    hint="e.g. 10,5/64,32 (MLP models)", check=_sizes,
                                    heading="hidden", only=MLP_MODELS)
    lr: float = param(1e-3, "Adam learning rate", label="Learning rate", hint="e.g. 1e-3,1e-2",
                      check=_positive, summary="always", heading="lr", per_run=True)
    weight_decay: float = param(1e-5, "Adam weight decay", label="Weight decay", hint="e.g. 1e-5",
                                check=_non_negative, heading="wd", per_run=True)
    batch_size: int = param(512, "training batch size", label="Batch size", hint="e.g. 512",
                            check=_positive, heading="batch")
    epochs: int = param(20, "number of epochs", label="Epochs", hint="e.g. 20", check=_positive, per_run=True)
    seed: int = param(0, "seed of the initialisation and the batch order", label="Seed",
                      hint="e.g. 0,1,2: three seeds", check=_non_negative, per_run=True)
    device: str = param("auto", "auto, cpu, cuda, cuda:N or mps", label="Device",
                        hint="auto, cpu, cuda, cuda:N or mps", check=_device, parse=_parse_word, summary="never")
    # The rest sit in the form's Advanced section. Their defaults are the lab's split, or leave the
    # lab's models unchanged.
    split_seed: int = param(42, "seed of the train/test split", label="Split seed",
                            hint="e.g. 42", check=_seed32, advanced=True,
                            summary="never", feeds="split")
    test_size: float = param(0.2, "fraction of the ratings held out for test", label="Test size",
                             hint="e.g. 0.2 of the ratings", check=_fraction, advanced=True,
                             summary="never", feeds="split")
    val_size: float = param(0.0, "fraction of the training ratings held out for early stopping and for "
                            "choosing the best epoch (0: the lab's two-way split)", label="Validation size",
                            hint="e.g. 0.1; picks the best epoch", check=_below_one, advanced=True,
                            summary="never", feeds="split")
    patience: int = param(0, "epochs without improvement before stopping early (0: never)", label="Patience",
                          hint="e.g. 3; 0: never stop early", check=_non_negative, advanced=True,
                          summary="never", per_run=True)
    rank_every: int = param(0, "also compute the ranking metrics (Precision, Recall and NDCG at 10 on the test "
                            "part) every N epochs; the best epoch's model is always ranked once training ends",
                            label="Rank every", hint="e.g. 5 epochs; 0: once, at the end", check=_non_negative,
                            advanced=True, summary="never", per_run=True)
    dropout: float = param(0.0, "dropout between hidden layers (DeepMF, NeuMF) or on the input (AutoRec, GLocal-K)",
                           label="Dropout", hint="e.g. 0.1; not MF or GMF", check=_below_one, advanced=True,
                           only=("deepmf", "neumf", "autorec", "glocal_k"))
    bias: bool = param(False, "add user, item and global biases (true/false)", label="Biases",
                       hint="true or false", advanced=True, only=PAIR_MODELS)
    init_std: float = param(0.0, "std of a normal embedding init (0: PyTorch's default)", label="Init std",
                            hint="e.g. 0.01; 0: PyTorch's init", check=_non_negative, advanced=True,
                            summary="never", only=PAIR_MODELS, per_run=True)
    optimizer: str = param("adam", "adam (the lab's: weight decay as L2 in the gradient), adamw (decoupled weight "
                           "decay), sgd (with --momentum), adagrad, or sparse_adam (lazy: moves only the embedding "
                           "rows a batch uses; decay them with --reg; for large catalogues, where it trains an MF "
                           "epoch several times faster on CPU)", label="Optimizer",
                           hint="e.g. adam, adamw, sgd, adagrad", check=_one_of(OPTIMIZERS),
                           parse=_parse_word, advanced=True)
    reg: float = param(0.0, "L2 penalty, per rating, on the user and item rows each rating uses (AutoRec and "
                       "GLocal-K: the L2 penalty on their weights)", label="Regularisation",
                       hint="e.g. 0.05, per rating", check=_non_negative, advanced=True, per_run=True)
    reg_bias: float = param(0.0, "L2 penalty, per rating, on the user and item biases it uses",
                            label="Bias regularisation", hint="e.g. 0.01; needs biases", check=_non_negative,
                            advanced=True, only=PAIR_MODELS, per_run=True)
    emb_dropout: float = param(0.0, "dropout on the user and item embeddings", label="Embedding dropout",
                               hint="e.g. 0.1", check=_below_one, advanced=True, only=PAIR_MODELS)
    momentum: float = param(0.9, "SGD momentum", label="Momentum", hint="sgd only; e.g. 0.9",
                            check=_below_one, advanced=True)
    schedule: str = param("none", "learning-rate schedule over the epochs: none, cosine (towards 0 after the "
                          "last epoch), step (times --lr-gamma every --lr-step epochs) or plateau (times --lr-gamma "
                          "after --lr-step epochs without a better validation RMSE, or train RMSE without "
                          "a validation part)", label="LR schedule",
                          hint="none, cosine, step or plateau", check=_one_of(SCHEDULES), parse=_parse_word,
                          advanced=True, per_run=True)
    warmup: int = param(0, "epochs over which the learning rate rises linearly to --lr", label="Warm-up epochs",
                        hint="e.g. 2", check=_non_negative, advanced=True, per_run=True)
    lr_step: int = param(10, "epochs between decays (step schedule), or without improvement before one "
                         "(plateau)", label="LR step", hint="e.g. 10 epochs", check=_positive, advanced=True,
                         per_run=True)
    lr_gamma: float = param(0.5, "factor of each learning-rate decay (step and plateau schedules)",
                            label="LR decay factor", hint="e.g. 0.5", check=_fraction, advanced=True, per_run=True)
    # GLocal-K's own (Han et al., 2021): the kernels' sparsity penalty, and its two phases.
    reg_kernel: float = param(0.006, "GLocal-K: L2 penalty on the local kernels (the paper's lambda_s)",
                              label="Kernel regularisation", hint="GLocal-K only; e.g. 0.006", check=_non_negative,
                              advanced=True, only=("glocal_k",))
    pretrain_epochs: int = param(40, "GLocal-K: epochs of pre-training the local-kernel autoencoder before "
                                 "fine-tuning with the global kernel", label="Pre-training epochs",
                                 hint="GLocal-K only; e.g. 40", check=_non_negative, advanced=True,
                                 only=("glocal_k",))
    conv_size: int = param(3, "GLocal-K: side of the global convolution kernel", label="Global kernel size",
                           hint="GLocal-K only; odd, e.g. 3", check=_odd, advanced=True, only=("glocal_k",))
    dot_scale: float = param(1.0, "GLocal-K: scale of the global kernel", label="Global kernel scale",
                             hint="GLocal-K only; e.g. 1", check=_positive, advanced=True, only=("glocal_k",))
    clip: bool = param(False, "clip predictions to the training ratings' range (1-5 on MovieLens) when "
                       "evaluating", label="Clip predictions", hint="true or false", advanced=True, per_run=True)

    def _conflict(self) -> str | None:
        """A combination of values that each pass their own check but cannot train together."""
        if self.optimizer == "sparse_adam":
            if self.model not in PAIR_MODELS:
                return f"optimizer sparse_adam needs embedding tables, which {self.model} has not"
            if self.weight_decay:
                return ("optimizer sparse_adam takes no weight decay: decay the rows it moves with --reg "
                        "and set --weight-decay 0")
        if self.reg_bias and not self.bias and self.model in PAIR_MODELS:
            return "reg_bias regularises the biases, which need --bias true"
        return None

    def validate(self) -> RunParams:
        for name in PARAMS:
            check_value(name, getattr(self, name))
        conflict = self._conflict()
        if conflict:
            raise ParamError(conflict)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, validate: bool = True) -> RunParams:
        """Build from stored JSON, ignoring keys this version does not know. The store passes
        validate=False for rows it validated when writing them (it reads many per second)."""
        kwargs = {k: v for k, v in values.items() if k in PARAMS}
        if "hidden" in kwargs:
            kwargs["hidden"] = tuple(int(h) for h in kwargs["hidden"])
        params = cls(**kwargs)
        return params.validate() if validate else params

    def replace(self, **changes: Any) -> RunParams:
        return dataclasses.replace(self, **changes).validate()

    def effective_key(self) -> tuple[tuple[str, Any], ...]:
        """What decides the run's results: a model ignores the parameters of other models (MF has
        no hidden layers), so a grid that varies only those queues one run, not several identical ones."""
        return tuple((name, getattr(self, name)) for name, declared in PARAMS.items()
                     if declared.applies_to(self.model))

    def pack_key(self) -> tuple[tuple[str, Any], ...] | None:
        """What runs must share to train together in one pack (engine.trainer.fit_pack): every
        parameter but the `per_run` ones, so the same data, split, model structure, batch size,
        optimizer and device. None for a run that trains alone: a row model, another optimizer than
        adam, or dropout (a run alone draws its masks in an order a pack cannot keep); the engine's
        pack_refusal says the same."""
        if self.model in ROW_MODELS or self.optimizer != "adam" or self.dropout or self.emb_dropout:
            return None
        return tuple((name, getattr(self, name)) for name, declared in PARAMS.items() if not declared.per_run)

    def label(self) -> str:
        """A short human description, e.g. 'mf k=10 lr=0.001'."""
        parts = [self.model]
        for name, declared in PARAMS.items():
            value = getattr(self, name)
            shown = declared.summary == "always" or (declared.summary == "changed" and value != declared.default)
            if shown and declared.applies_to(self.model):
                parts.append(f"{name}={format_value(value)}")
        return " ".join(parts)

    def engine_args(self, feeds: Literal["fit", "split", "data"]) -> dict[str, Any]:
        """The keyword arguments of the engine function `feeds` names, taken from these parameters."""
        return {name: getattr(self, name) for name, declared in PARAMS.items() if declared.feeds == feeds}


# Every declaration by name, in declaration order.
PARAMS: dict[str, Param] = {
    field.name: dataclasses.replace(field.metadata["param"], name=field.name) for field in dataclasses.fields(RunParams)
}
FIELD_NAMES = tuple(PARAMS)


def check_value(name: str, value: Any) -> None:
    """ParamError, naming the parameter, unless `value` is one parameter `name` may take on its own."""
    declared = PARAMS[name]
    problem = _storable(value) or (declared.check(value) if declared.check is not None else None)
    if problem:
        raise ParamError(f"{name}: {problem} (got {_show(value)})")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else format_value(value)


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


def parse_value(name: str, text: str) -> Any:
    """Parse one value of field `name` from text, with a one-line error naming the field."""
    if name not in PARAMS:
        raise ParamError(f"unknown parameter {name!r}")
    parse = PARAMS[name].parse
    try:
        return parse(text)
    except ValueError:
        word = _TYPE_WORDS.get(parse, "a valid value")
        raise ParamError(f"{name}: {text.strip()!r} is not {word}") from None


def split_alternatives(name: str, text: str) -> list[str]:
    """The alternatives of one grid field: its text split at the parameter's separator."""
    parts = [p.strip() for p in str(text).split(PARAMS[name].separator)]
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
    runs: dict[tuple[tuple[str, Any], ...], RunParams] = {}
    for combo in itertools.product(*choices):
        run = dataclasses.replace(base, **dict(zip(names, combo))).validate()
        runs.setdefault(run.effective_key(), run)
    for run in runs.values():
        check_fits_here(run)
    return list(runs.values())


def check_retries(retries: int) -> None:
    """ParamError unless `retries` is a whole number of automatic retries we accept."""
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ParamError(f"retries must be a whole number from 0 to {MAX_RETRIES} (got {retries!r})")


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


def format_value(value: Any) -> str:
    """The text form a person would type back into a form field or a flag."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Short where that is exact (0.001, not 0.001000000000000000020816...), else every digit:
        # the text is typed back (a clone, `add --like`) and must give the same number.
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)
