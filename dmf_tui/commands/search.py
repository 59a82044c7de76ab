"""`dmf-tui search`: queue a search over ranges of hyperparameters; `dmf-tui searches`: list them, explain
one (its trials ranked by validation RMSE, each parameter's importance), pause, resume, extend or stop it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table
from rich.text import Text

from dmf_tui.commands.output import Console
from dmf_tui.commands.params_args import add_param_arguments, given_values
from dmf_tui.commands.queue import last_queued_data
from dmf_tui.components import fmt
from store import catalog, presets
from store.db import open_store, open_to_list
from store.errors import StoreError
from store.params import RunParams
from store.search import (
    DEFAULT_PRUNER,
    DEFAULT_RETRIES,
    DEFAULT_SAMPLER,
    DEFAULT_TRIALS,
    PRUNERS,
    SAMPLERS,
    SearchSpec,
    parse_search,
    short_value,
)
from store.searches import SearchRecord


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    search = sub.add_parser(
        "search", help="queue a search: ranges of hyperparameters explored by Optuna's samplers",
        description="Queue a search. Every flag of `add` is taken; a numeric flag may be a range: LOW..HIGH "
        "(uniform), LOW..HIGH:log, LOW..HIGH:int, LOW..HIGH:int:log; a comma list is a set of choices; one value "
        "is fixed. Workers ask the search for its next trial whenever the queue runs dry, and report each epoch "
        "to its pruner, which stops unpromising trials (status pruned). A search minimises the validation RMSE "
        "of a part carved from the training ratings (--val-size, default 0.1), never the test RMSE, which is "
        "reported for the trials it chooses. Example: dmf-tui search --data ml-100k --model mf "
        "--lr 1e-4..3e-2:log --k 8..64:int --bias true,false --epochs 20 --trials 40",
    )
    add_param_arguments(search, grid=True)
    search.add_argument("--like", type=int, metavar="RUN", help="start from RUN's parameters instead of the defaults")
    search.add_argument("--trials", type=_whole, default=DEFAULT_TRIALS, metavar="N",
                        help=f"how many trials to run (default {DEFAULT_TRIALS}; the grid sampler stops at the "
                        "grid's size)")
    search.add_argument("--sampler", default=DEFAULT_SAMPLER, metavar="NAME",
                        help=f"how trials are chosen: {', '.join(SAMPLERS)} (default {DEFAULT_SAMPLER})")
    search.add_argument("--pruner", default=DEFAULT_PRUNER, metavar="NAME",
                        help=f"how unpromising trials are stopped early: {', '.join(PRUNERS)} (default "
                        f"{DEFAULT_PRUNER}: asynchronous successive halving)")
    search.add_argument("--metric", default="val", metavar="NAME",
                        help="what is minimised: val, the validation RMSE (the only one: choosing by test RMSE "
                        "would tune on the test set)")
    search.add_argument("--sampler-seed", type=_whole, default=0, metavar="N",
                        help="the sampler's seed: the same seed asks the same trials (default 0)")
    search.add_argument("--name", help="a name for the search")
    search.add_argument("--retries", type=_whole, default=DEFAULT_RETRIES, metavar="N",
                        help=f"run a trial again, up to N times, when its worker dies (default {DEFAULT_RETRIES}); "
                        "a trial whose worker is stopped is always run again")
    search.add_argument("--dry-run", action="store_true", help="print the space and the trial count; queue nothing")
    search.set_defaults(func=queue_search)

    searches = sub.add_parser(
        "searches", help="list searches; explain, pause, resume, extend or stop one",
        description="With no SEARCH, list every search. With SEARCH (its id or name), show it: the space, the "
        "best trial by validation RMSE with its test RMSE, each parameter's importance, and the trials ranked. "
        "--pause, --resume, --stop and --extend N change it first.")
    searches.add_argument("search", nargs="?", metavar="SEARCH", help="a search's id or name")
    action = searches.add_mutually_exclusive_group()
    action.add_argument("--pause", action="store_true", help="start none of its trials; running ones go on")
    action.add_argument("--resume", action="store_true", help="let workers ask it for trials again")
    action.add_argument("--stop", action="store_true",
                        help="ask no more trials and cancel its queued ones; running ones finish")
    action.add_argument("--extend", type=_whole, metavar="N", help="allow N more trials (a stopped search resumes)")
    searches.add_argument("--json", action="store_true", help="print JSON instead of tables")
    searches.set_defaults(func=show_searches)


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def queue_search(args: argparse.Namespace) -> int:
    if args.like is not None:
        with open_to_list(args.db) as store:
            base = store.get_run(args.like).params  # UnknownRunError: one line, exit 2
    else:
        base = RunParams(data=catalog.default_data(last_queued_data(args.db))) if args.data is None else RunParams()
    if args.preset is not None:
        base = presets.preset(args.preset).apply(base)
    # ParamError, one line and exit 2, before anything is written.
    spec = parse_search(given_values(args), base, trials=args.trials, sampler=args.sampler, pruner=args.pruner,
                        metric=args.metric, seed=args.sampler_seed, retries=args.retries)
    reason = catalog.check_available(spec.base.data)
    if reason is not None:
        raise StoreError(reason)
    if args.dry_run:
        print("Would queue a search of " + "\n".join(spec.describe()))
        return 0
    with open_store(args.db) as store:
        search_id = store.create_search(spec, name=args.name)
        record = store.get_search(search_id)
        workers = store.workers(alive_only=True)
    print(f"Queued {record.label}: {spec.describe()[0]}")
    if not workers:
        print("No worker is running: start one with `dmf-tui worker --detach`")
    return 0


def show_searches(args: argparse.Namespace) -> int:
    changes = args.pause or args.resume or args.stop or args.extend is not None
    if changes and args.search is None:
        raise StoreError("searches: name the search to change (its id or name)")
    if changes:
        with open_store(args.db) as store:
            if args.extend is not None:
                record = store.extend_search(args.search, args.extend)
            else:
                state = "paused" if args.pause else "active" if args.resume else "stopped"
                record = store.set_search_state(args.search, state)
        print(f"{record.label}: {record.phase}, {record.asked} of {record.trials} trials asked")
        return 0
    with open_to_list(args.db) as store:
        if args.search is None:
            records = store.searches()
            if args.json:
                print(json.dumps([_plain(record) for record in records], indent=2))
            else:
                _print_list(records)
            return 0
        record = store.get_search(args.search)
        trials = store.search_trials(record.id)
        importances = store.search_importances(record.id)
    if args.json:
        print(json.dumps({**_plain(record), "importances": importances,
                          "trials": [_trial_plain(record.spec, run) for run in trials]}, indent=2))
        return 0
    _print_one(record, trials, importances)
    return 0


def _print_list(records: list[SearchRecord]) -> None:
    console = Console()
    if not records:
        console.print("No searches yet: dmf-tui search --help says how to start one.")
        return
    table = Table(box=None, header_style="bold")
    for name in ("id", "name", "state", "trials", "done", "pruned", "failed", "best val", "test", "sampler"):
        # A long name folds onto more lines rather than losing its end to an ellipsis.
        table.add_column(name, justify="left" if name in ("name", "state", "sampler") else "right",
                         overflow="fold" if name == "name" else "ellipsis")
    for record in records:
        table.add_row(str(record.id), fmt.literal(record.name or ""), record.phase, f"{record.asked}/{record.trials}",
                      *(str(record.counts.get(status, 0)) for status in ("done", "pruned", "failed")),
                      fmt.rmse(record.best_val_rmse), fmt.rmse(record.best_test_rmse),
                      f"{record.spec.sampler}+{record.spec.pruner}")
    console.print(table)


def _print_one(record: SearchRecord, trials: list[Any], importances: dict[str, float]) -> None:
    console = Console()
    spec = record.spec
    console.print(Text.assemble((record.label, "bold"), f"  {record.phase}, {record.asked} of {record.trials} "
                                f"trials asked"))
    for line in spec.describe(record.trials):
        console.print(line)
    if record.best_run_id is not None:
        val, test = fmt.rmse(record.best_val_rmse), fmt.rmse(record.best_test_rmse)
        console.print(Text.assemble(("Best trial", "bold"),
                                    f" (run {record.best_run_id}) by validation RMSE: {val}; its test RMSE {test}"))
    if importances:
        console.print("Importance (share of the validation RMSE's variance each parameter explains):", style="bold")
        for name, share in importances.items():
            console.print(f"  {name:<14} {'█' * round(share * 30):<30} {share:.2f}")
    if not trials:
        console.print("No trials yet: workers ask for them when the queue runs dry.")
        return
    table = Table(box=None, header_style="bold")
    names = [dim.name for dim in spec.space]
    for column in ("trial", "run", "status", *names, "epochs", "val", "test"):
        table.add_column(column, justify="left" if column == "status" else "right")
    ranked = sorted(trials, key=lambda run: (run.best_val_rmse is None, run.best_val_rmse or 0.0, run.trial))
    for run in ranked:
        table.add_row(str(run.trial), str(run.id), fmt.status_text(run),
                      *(fmt.literal(short_value(getattr(run.params, name))) for name in names),
                      f"{run.epoch}/{run.params.epochs}", fmt.rmse(run.best_val_rmse), fmt.rmse(run.best_test_rmse))
    console.print(table)


def _plain(record: SearchRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "state": record.state, "phase": record.phase,
            "trials": record.trials, "asked": record.asked, "counts": dict(record.counts),
            "best_run_id": record.best_run_id, "best_val_rmse": record.best_val_rmse,
            "best_test_rmse": record.best_test_rmse, "created_at": record.created_at.isoformat(),
            "spec": record.spec.to_dict()}


def _trial_plain(spec: SearchSpec, run: Any) -> dict[str, Any]:
    return {"trial": run.trial, "run_id": run.id, "status": str(run.status),
            "values": {dim.name: dim.sampled(run.params) for dim in spec.space}, "epochs": run.epoch,
            "best_val_rmse": run.best_val_rmse, "best_test_rmse": run.best_test_rmse}
