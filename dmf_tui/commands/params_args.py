"""The hyperparameter flags shared by `run` (one run) and `add` (a grid of runs): one per
RunParams field, made from its declaration in store/params.py, and `--preset` to start from."""

from __future__ import annotations

import argparse

from store import presets
from store.params import PARAMS, RunParams, expand_grid, format_value


def add_param_arguments(parser: argparse.ArgumentParser, *, grid: bool) -> None:
    # Every flag takes text, parsed by store.params, so the CLI, the TUI's form and stored runs
    # validate the same way.
    for name, declared in PARAMS.items():
        help_text = declared.help
        if grid:
            help_text += "; alternatives separated by " + ("'/'" if declared.separator == "/" else "commas")
        parser.add_argument(declared.flag, dest=name, metavar="VALUE",
                            help=f"{help_text} (default: {format_value(declared.default)})")
    parser.add_argument("--preset", metavar="NAME",
                        help=f"start from a preset ({', '.join(presets.names())}; see `dmf-tui presets`): it "
                        "sets every parameter but the data, the split, the device and the seed; the flags "
                        "given with it win")


def given_values(args: argparse.Namespace) -> dict[str, str]:
    """The text of the parameter flags given on the command line, by field name."""
    return {name: getattr(args, name) for name in PARAMS if getattr(args, name) is not None}


def grid_from_args(args: argparse.Namespace, base: RunParams | None = None) -> list[RunParams]:
    """The validated runs the flags describe, each flag not given kept from `base` (the defaults
    when None) with the preset, if one is named, applied to it; ParamError on a bad value or an
    unknown preset."""
    if args.preset is not None:
        base = presets.preset(args.preset).apply(base or RunParams())
    return expand_grid(given_values(args), base)
