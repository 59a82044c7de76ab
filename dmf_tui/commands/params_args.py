"""The hyperparameter flags shared by `run` (one run) and `add` (a grid of runs)."""

from __future__ import annotations

import argparse

from store.params import RunParams, expand_grid

# (flag, field, help); every flag takes text parsed by store.params so the CLI, the TUI's form and
# stored runs validate the same way.
PARAM_FLAGS = (
    ("--model", "model", "mf or deepmf"),
    ("--data", "data", "dataset name (ml-100k, ml-1m, synthetic-1m, ...) or a ratings file"),
    ("--k", "k", "embedding size"),
    ("--hidden", "hidden", "DeepMF hidden layers, e.g. 10,5"),
    ("--lr", "lr", "Adam learning rate"),
    ("--weight-decay", "weight_decay", "Adam weight decay"),
    ("--batch-size", "batch_size", "training batch size"),
    ("--epochs", "epochs", "number of epochs"),
    ("--seed", "seed", "seed of the initialisation and the batch order"),
    ("--split-seed", "split_seed", "seed of the train/test split"),
    ("--test-size", "test_size", "fraction of the ratings held out for test"),
    ("--val-size", "val_size", "fraction of the training ratings held out for early stopping"),
    ("--patience", "patience", "epochs without improvement before stopping early (0: never)"),
    ("--device", "device", "auto, cpu, cuda, cuda:N or mps"),
    ("--bias", "bias", "add user, item and global biases (true/false)"),
    ("--dropout", "dropout", "DeepMF dropout between hidden layers"),
    ("--init-std", "init_std", "std of a normal embedding init (0: PyTorch's default)"),
)


def add_param_arguments(parser: argparse.ArgumentParser, *, grid: bool) -> None:
    defaults = RunParams()
    for flag, field, help_text in PARAM_FLAGS:
        default = getattr(defaults, field)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        if grid:
            sep = "'/'" if field == "hidden" else "commas"
            help_text += f"; alternatives separated by {sep}"
        parser.add_argument(flag, dest=field, metavar="VALUE", help=f"{help_text} (default: {shown})")


def grid_from_args(args: argparse.Namespace) -> list[RunParams]:
    """The validated runs the flags describe (ParamError on a bad value)."""
    values = {field: getattr(args, field) for _, field, _ in PARAM_FLAGS if getattr(args, field) is not None}
    return expand_grid(values)
