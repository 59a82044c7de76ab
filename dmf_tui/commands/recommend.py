"""`dmf-tui recommend` and `dmf-tui similar`: use a trained run's model.

    dmf-tui recommend 12 --user 196            the 10 items run 12 rates highest for user 196
    dmf-tui recommend 12 --user 196 -n 20 --explain --json
    dmf-tui similar 12 --item 50               the items closest to item 50 in run 12's item embedding

Ids are the dataset's own (MovieLens user and movie ids). The engine (and so torch) is imported only
inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from rich.table import Table

from dmf_tui.commands.output import Console
from dmf_tui.trained import checkpoint_of
from store.db import open_to_list, resolve_url
from store.errors import StoreError

if TYPE_CHECKING:
    from engine.recommend import Recommendation, TrainedModel


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recommend = sub.add_parser("recommend", help="the items a run's model rates highest for a user",
                               description="The N items with the highest predicted rating that the user has "
                               "not rated in the run's training (or validation) part, best first, with titles "
                               "from the dataset's item file when it has one.")
    recommend.add_argument("run_id", type=int, metavar="RUN", help="the run whose model to use")
    recommend.add_argument("--user", type=int, required=True, metavar="ID", help="the user's id in the dataset")
    recommend.add_argument("--explain", action="store_true", help="with each item, the one of the user's "
                           "highest-rated items closest to it in the model's item embedding")
    _common(recommend)
    recommend.set_defaults(func=recommend_command)

    similar = sub.add_parser("similar", help="the items closest to an item in a run's item embedding",
                             description="The N items whose embedding in the run's model is closest (cosine) "
                             "to the item's: for mf, deepmf, gmf and neumf runs.")
    similar.add_argument("run_id", type=int, metavar="RUN", help="the run whose model to use")
    similar.add_argument("--item", type=int, required=True, metavar="ID", help="the item's id in the dataset")
    _common(similar)
    similar.set_defaults(func=similar_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=10, metavar="N", help="how many items (default 10)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {item, title, genres, score}")


def recommend_command(args: argparse.Namespace) -> int:
    model = _load(args)
    found = model.recommend(args.user, args.n, explain=args.explain)
    if args.json:
        return _print_json(model, found)
    title = f"Top {len(found)} for user {args.user}"
    return _print_table(model, found, title, score="predicted", explain=args.explain)


def similar_command(args: argparse.Namespace) -> int:
    model = _load(args)
    found = model.similar(args.item, args.n)
    if args.json:
        return _print_json(model, found)
    title = f"Closest to item {args.item}, {model.titles.label(args.item)}"
    return _print_table(model, found, title, score="cosine", explain=False)


def _load(args: argparse.Namespace) -> TrainedModel:
    if args.n <= 0:  # said before the model is loaded, at once
        raise StoreError(f"-n must be at least 1 (got {args.n})")
    url = resolve_url(args.db)
    with open_to_list(url) as store:
        run = store.get_run(args.run_id)
    path = checkpoint_of(run, url)

    from engine.recommend import TrainedModel

    return TrainedModel.load(path, name=f"run {run.id}")


def _print_json(model: TrainedModel, found: list[Recommendation]) -> int:
    def entry(r: Recommendation) -> dict[str, Any]:
        out: dict[str, Any] = {"item": r.item, "title": r.title, "genres": list(r.genres), "score": r.score}
        if r.because is not None:
            item, title, rating = r.because
            out["because"] = {"item": item, "title": title, "rating": rating}
        return out
    print(json.dumps([entry(r) for r in found], indent=2))
    if model.titles_note:  # beside the JSON, not in it
        print(f"dmf-tui: {model.titles_note}", file=sys.stderr)
    return 0


def _print_table(model: TrainedModel, found: list[Recommendation], title: str, *, score: str, explain: bool) -> int:
    console = Console()
    if not console.is_terminal:
        console.width = 200  # a file or a pipe gets whole titles
    console.print(f"{title} ({model.name}, {model.data.name})", style="bold")
    table = Table(box=None, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("item", justify="right")
    table.add_column(score, justify="right")
    table.add_column("title", overflow="ellipsis", no_wrap=True, ratio=3)
    table.add_column("because you rated" if explain else "genres", overflow="ellipsis", no_wrap=True, ratio=2)
    for rank, r in enumerate(found, start=1):
        if explain:
            extra = "" if r.because is None else f"{model.titles.label(r.because[0])} ({r.because[2]:g})"
        else:
            extra = ", ".join(r.genres)
        table.add_row(str(rank), str(r.item), f"{r.score:.3f}", r.title or "", extra)
    console.print(table)
    if model.titles_note:
        console.print(model.titles_note, style="dim")
    return 0
