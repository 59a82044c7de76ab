"""`dmf-tui presets`: the presets `--preset NAME` takes, each with the test RMSE and time it reached
when measured (store/presets.py), and `dmf-tui presets NAME`: everything one of them sets."""

from __future__ import annotations

import argparse
import dataclasses
import json

from store import presets
from store.params import PARAMS, format_value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "presets", help="list the presets --preset takes, with what they reached",
        description="List the presets (`dmf-tui add --preset NAME`, `run --preset NAME`, the form's Preset) with "
        "the test RMSE, epochs and seconds each reached on ML-100K and on a dataset of the ML-1M shape "
        "(synthetic-1m), at the epoch chosen by validation RMSE. `best` names the most accurate. With NAME, "
        "every parameter that preset sets.",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="show this preset's parameters")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=list_presets)


def list_presets(args: argparse.Namespace) -> int:
    chosen = [presets.preset(args.name)] if args.name is not None else list(presets.PRESETS.values())
    if args.json:
        print(json.dumps({"best": presets.BEST, "presets": [_plain(p) for p in chosen]}, indent=2))
    elif args.name is not None:
        _print_one(chosen[0])
    else:
        _print_table(chosen)
    return 0


def _plain(preset: presets.Preset) -> dict[str, object]:
    settings = {name: list(v) if isinstance(v, tuple) else v for name, v in preset.settings().items()}
    return {"name": preset.name, "summary": preset.summary, "settings": settings,
            "figures": {data: dataclasses.asdict(figure) for data, figure in preset.figures.items()}}


def _print_table(chosen: list[presets.Preset]) -> None:
    """The figures first, one row each, then the summaries: at 80 columns a summary column beside
    the figures would wrap to a word a line."""
    from rich.table import Table

    from dmf_tui.commands.output import Console
    from dmf_tui.components import fmt

    figures = Table(box=None, header_style="bold", pad_edge=False)
    figures.add_column("name", no_wrap=True)
    # Validation beside test: best is chosen by the one, the other is what a user will see.
    for title in presets.MEASURED_ON.values():
        figures.add_column(f"{title}\nval RMSE", justify="right", no_wrap=True)
        figures.add_column("test RMSE", justify="right", no_wrap=True)
        figures.add_column("time", justify="right")
    summaries = Table(box=None, show_header=False, pad_edge=False)
    summaries.add_column(no_wrap=True)
    summaries.add_column()
    for preset in chosen:
        cells = []
        for data in presets.MEASURED_ON:
            figure = preset.figures.get(data)
            cells += ([fmt.rmse(figure.val_rmse), fmt.rmse(figure.test_rmse), _time(figure.seconds)] if figure
                      else ["not measured", "", ""])
        figures.add_row(preset.name, *cells)
        summaries.add_row(preset.name, preset.summary)
    console = Console()
    console.print(figures)
    console.print()
    console.print(summaries)
    console.print()
    console.print(f"--preset best is {presets.BEST}, the most accurate by validation RMSE on ML-100K. RMSEs at "
                  "the epoch chosen by validation RMSE; the time of the whole training, early stopping included. "
                  "`dmf-tui presets NAME` shows every parameter a preset sets, and its epochs.")


def _print_one(preset: presets.Preset) -> None:
    from dmf_tui.commands.output import Console
    from dmf_tui.components import fmt

    console = Console()
    best = " (--preset best)" if preset.name == presets.BEST else ""
    console.print(f"{preset.name}{best}: {preset.summary}")
    for name, value in preset.settings().items():
        changed = "" if value == PARAMS[name].default else "  (not the default)"
        console.print(f"  {PARAMS[name].flag} {format_value(value)}{changed}")
    for data, title in presets.MEASURED_ON.items():
        figure = preset.figures.get(data)
        if figure is None:
            console.print(f"{title} ({data}): not measured")
        else:
            console.print(f"{title} ({data}): test RMSE {fmt.rmse(figure.test_rmse)} (val {fmt.rmse(figure.val_rmse)}) "
                          f"at epoch {figure.best_epoch} of {figure.epochs}, {_time(figure.seconds)}")
            console.print(f"  measured {figure.measured}")


def _time(seconds: float) -> str:
    """A training's time: tenths under 10 s (ML-100K trains the lab's MF in 0.3 s), else as runs show it."""
    from dmf_tui.components import fmt

    return f"{seconds:.1f}s" if seconds < 10 else fmt.duration(seconds)
