"""`dmf-tui runs`, `show` and `export`: reading the history from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from dmf_tui.commands.output import Console
from dmf_tui.components import fmt
from store.catalog import data_label
from store.db import open_to_list
from store.filters import RunFilter, parse_filter, parse_term
from store.params import FIELD_NAMES, PARAMS, RunParams, format_value
from store.records import EpochRecord, RunRecord
from store.status import RunStatus

DEFAULT_TOP = 50


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser(
        "runs", help="rank runs, best test RMSE first",
        description="Rank runs by best test RMSE. By default only done runs that are not archived, of one "
                    "dataset: the dataset of the run that finished last (--data NAME for another, --data all "
                    "for every one); --where and the other filters ask for anything else.")
    runs.add_argument("--top", type=_count, default=DEFAULT_TOP, metavar="N",
                      help=f"show the first N (default {DEFAULT_TOP}; 0 for all)")
    add_filter_arguments(runs)
    runs.add_argument("--sort", default="best_test_rmse", metavar="COL",
                      help="a run column or parameter name (default best_test_rmse; e.g. ndcg_at_10 --desc "
                      "for the best top-10 lists first)")
    runs.add_argument("--desc", action="store_true", help="sort descending")
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.set_defaults(func=list_runs)

    show = sub.add_parser("show", help="one run: its configuration, epochs and error")
    show.add_argument("run_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")
    show.set_defaults(func=show_run)

    export = sub.add_parser(
        "export", help="write runs (or their epochs) to a CSV file",
        description="Write runs to a CSV file: every run of every status and dataset unless the filters "
                    "say otherwise (archived runs only with --archived).")
    export.add_argument("--csv", required=True, metavar="FILE", help="the file to write; - for stdout")
    export.add_argument("--epochs", action="store_true",
                        help="write one row per epoch of the selected runs instead of one per run")
    add_filter_arguments(export)
    export.set_defaults(func=export_csv)


def _count(text: str) -> int:
    """A whole number >= 0 (a negative --top would list every run, as SQLite reads LIMIT -1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--where", metavar="FILTER", default="",
                        help='the filter language of History\'s filter line, e.g. "lr:<1e-2 k:>=32 model:deepmf '
                             'status:failed,lost sweep:lr-grid #12" (terms ANDed; other words search notes, '
                             'errors, tags)')
    parser.add_argument("--status", metavar="S", help="only these statuses (comma-separated, or all)")
    parser.add_argument("--model", metavar="M", help="only this model (mf, deepmf)")
    parser.add_argument("--data", "--dataset", metavar="D",
                        help="only this dataset (a name, or a file: the same dataset however runs named it), "
                             "or all")
    parser.add_argument("--sweep", metavar="S", help="only this sweep (its id or name)")
    parser.add_argument("--archived", action="store_true", help="archived runs too")


def run_filter(args: argparse.Namespace) -> RunFilter:
    """The --where filter and the single filters, ANDed; FilterError (one line) names a bad one."""
    where = parse_filter(args.where)
    flags = {"status": args.status, "model": args.model, "data": args.data, "sweep": args.sweep}
    for name, value in flags.items():
        if value is not None:
            where = where.and_(parse_term(name, value))
    if args.archived and not where.says("archived"):
        where = where.and_(parse_term("archived", "all"))
    return where


def list_runs(args: argparse.Namespace) -> int:
    with open_to_list(args.db) as store:
        typed = run_filter(args)
        datasets = store.datasets()
        # Ranked by default on one dataset: RMSEs of different datasets do not compare.
        current = None if typed.names_data or not datasets else datasets[0]
        where = typed.on_data(current.key if current else None)
        runs = store.leaderboard(where, sort=args.sort, descending=args.desc, limit=args.top or None)
        total = store.count_runs(where)
    if args.json:
        print(json.dumps([_plain(run) for run in runs], indent=2))
        return 0
    console = _console()
    done = "" if where.says("status") or where.names_runs else "done "
    if current:
        on = current.label
    elif typed.says("data"):
        on = ", ".join(data_label(str(spec)) for term in typed.terms if term.name == "data" for spec in term.values)
    else:
        on = "all datasets"
    if runs:
        console.print(runs_table(runs))
        shown = f"{len(runs)} of {total}" if total > len(runs) else f"{total}"
        console.print(f"{shown} {done}run{'' if total == 1 else 's'} on {on}")
    else:
        console.print("No runs match.")
    hints = []
    if current:
        others = len(datasets) - 1
        hints.append(f"--data all for every dataset{f' ({others} more)' if others else ''}")
    if done:
        hints.append("--status all for every status")
    if total > len(runs):
        hints.append("--top 0 for every run")
    if hints:
        console.print("; ".join(hints), style="dim")
    return 0


def runs_table(runs: list[RunRecord]) -> Table:
    # Few, short columns so an 80-column SSH terminal shows them whole; `show ID` has the rest.
    table = Table(box=None, header_style="bold")
    for name in ("id", "status", "model", "data", "k", "hidden", "lr", "wd", "epoch", "best test"):
        left = name in ("status", "model", "data")
        table.add_column(name, justify="left" if left else "right", no_wrap=name != "data")
    for run in runs:
        p = run.params
        table.add_row(
            str(run.id), run.status, p.model, run.data_label, str(p.k),
            format_value(p.hidden) if PARAMS["hidden"].applies_to(p.model) else "",
            format_value(p.lr), format_value(p.weight_decay), f"{run.epoch}/{p.epochs}", _best(run),
        )
    return table


def show_run(args: argparse.Namespace) -> int:
    with open_to_list(args.db) as store:
        run = store.get_run(args.run_id)
        epochs = store.epochs(run.id)
    if args.json:
        print(json.dumps({"run": _plain(run), "epochs": [_plain(e) for e in epochs]}, indent=2))
        return 0
    console = _console()
    console.print(Text.assemble((f"Run {run.id}", "bold"), f"  {run.status}  {run.params.label()}"))
    about = Table.grid(padding=(0, 2))
    about.add_column(style="dim")
    about.add_column()
    facts: list[tuple[str, Any]] = [
        ("sweep", run.sweep_id), ("trial", run.trial), ("ran on", run.ran_on), ("worker", run.worker_id),
        ("pack", _pack(run)),
        ("created", _time(run.created_at)), ("started", _time(run.started_at)),
        ("finished", _time(run.finished_at)), ("epoch", f"{run.epoch}/{run.params.epochs}"),
        ("best test RMSE", _best(run)), ("ranking @10", _ranking(run)), ("checkpoint", run.checkpoint),
        ("notes", run.notes), ("tags", ", ".join(run.tags)), ("retries left", run.retries or None),
    ]
    for name, value in facts:
        if value not in (None, ""):
            about.add_row(name, str(value))
    console.print(about)
    console.print("Configuration", style="bold")
    config = Table.grid(padding=(0, 2))
    config.add_column(style="dim")
    config.add_column()
    # The parameters the model takes: GLocal-K's kernel settings say nothing about an MF run.
    for name in FIELD_NAMES:
        if PARAMS[name].applies_to(run.params.model):
            config.add_row(name, format_value(getattr(run.params, name)))
    console.print(config)
    if epochs:
        console.print(epochs_table(epochs, run.best_epoch))
    if run.error:
        console.print(Text.assemble(("Error:", "bold red"), " ", run.error))
    return 0


def epochs_table(epochs: list[EpochRecord], best_epoch: int | None) -> Table:
    has_val = any(e.val_rmse is not None for e in epochs)
    ranked = any(e.ndcg_at_10 is not None for e in epochs)  # the run's --rank-every
    table = Table(box=None, header_style="bold")
    for name in ("epoch", "train RMSE", "test RMSE", *(("val RMSE",) if has_val else ()),
                 *(("NDCG@10",) if ranked else ()), "seconds"):
        table.add_column(name, justify="right")
    for e in epochs:
        mark = " *" if e.epoch == best_epoch else ""
        row = [str(e.epoch), _rmse(e.train_rmse), _rmse(e.test_rmse) + mark]
        if has_val:
            row.append(_rmse(e.val_rmse))
        if ranked:
            row.append(_rmse(e.ndcg_at_10))
        table.add_row(*row, fmt.seconds(e.seconds))
    return table


def export_csv(args: argparse.Namespace) -> int:
    where = run_filter(args)
    if not (where.says("status") or where.names_runs):
        where = where.and_(parse_term("status", "all"))  # a file of everything, unless asked otherwise
    # With the CSV on stdout, the summary goes to stderr, out of the data's way.
    target, report = (sys.stdout, sys.stderr) if args.csv == "-" else (args.csv, sys.stdout)
    with open_to_list(args.db) as store:
        if args.epochs:
            run_ids = store.run_ids(where)
            count = store.export_epochs_csv(target, run_ids=run_ids)
            summary = f"Wrote {count} epochs of {len(run_ids)} runs"
        else:
            count = store.export_runs_csv(target, where)
            summary = f"Wrote {count} runs"
    if target is sys.stdout:
        sys.stdout.flush()  # a reader gone (`| head`) stops us here, before a summary that claims all
    print(f"{summary} to {'stdout' if target is sys.stdout else args.csv}", file=report)
    return 0


def _plain(record: Any) -> dict[str, Any]:
    """A record as JSON-ready values: params as a dict, times as ISO 8601 text."""
    out = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, RunParams):
            value = value.to_dict()
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[field.name] = value
    return out


def _best(run: RunRecord) -> str:
    if run.best_test_rmse is None:
        return ""
    return f"{run.best_test_rmse:.4f} @{run.best_epoch}"


def _pack(run: RunRecord) -> str | None:
    """Which runs it trained with as one batched model; None for a run that trained alone."""
    if run.pack_id is None or run.pack_size is None:
        return None
    verb = "training" if run.status == RunStatus.RUNNING else "trained"
    return (f"{verb} with {fmt.count(run.pack_size - 1, 'other run')} in pack #{run.pack_id} "
            f"({fmt.count(run.pack_size, 'run')})")


def _ranking(run: RunRecord) -> str | None:
    """The best epoch's model's ranking metrics on the test part, where they were computed."""
    if run.ndcg_at_10 is None:
        return None
    return (f"precision {_rmse(run.precision_at_10)}, recall {_rmse(run.recall_at_10)}, "
            f"NDCG {_rmse(run.ndcg_at_10)} (test ratings >= 4 relevant)")


def _rmse(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")  # in the local time zone


def _console() -> Console:
    """Rich's console; piped into a file or another program it would squeeze tables into 80
    columns and cut dataset names, so there it gets room for a whole row."""
    console = Console()
    if not console.is_terminal:
        console.width = 200
    return console
