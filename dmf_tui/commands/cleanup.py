"""`dmf-tui delete`, `archive` and `unarchive`: tidying the history from the command line."""

from __future__ import annotations

import argparse
import sys

from store.db import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    delete = sub.add_parser("delete", help="delete runs with their epochs, logs and checkpoints (asks first)",
                            description="Delete runs with their epochs, logs and checkpoints. A running run is "
                            "refused: cancel it first. Asks before deleting unless --yes.")
    delete.add_argument("run_ids", type=int, nargs="+", metavar="RUN")
    delete.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    delete.set_defaults(func=delete_runs)

    archive = sub.add_parser("archive", help="hide runs from the history (they are kept; `unarchive` brings "
                             "them back)")
    archive.add_argument("run_ids", type=int, nargs="+", metavar="RUN")
    archive.set_defaults(func=lambda args: set_archived(args, True))
    unarchive = sub.add_parser("unarchive", help="show archived runs in the history again")
    unarchive.add_argument("run_ids", type=int, nargs="+", metavar="RUN")
    unarchive.set_defaults(func=lambda args: set_archived(args, False))


def delete_runs(args: argparse.Namespace) -> int:
    count = len(dict.fromkeys(args.run_ids))
    if not args.yes:
        if not sys.stdin.isatty():
            print("dmf-tui: error: delete asks before deleting, and there is no terminal to ask in: "
                  "add --yes", file=sys.stderr)
            return 2
        answer = input(f"delete {_runs(count)} and their epochs and checkpoints? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    with open_store(args.db, create=False) as store:
        deleted = store.delete_runs(args.run_ids)  # an unknown or running run: one line, exit 2
    print(f"deleted {_runs(deleted)}")
    return 0


def set_archived(args: argparse.Namespace, archived: bool) -> int:
    with open_store(args.db, create=False) as store:
        changed = store.archive(args.run_ids, archived)
    verb = "archived" if archived else "unarchived"
    unchanged = len(dict.fromkeys(args.run_ids)) - changed
    print(f"{verb} {_runs(changed)}" + (f" ({unchanged} already were)" if unchanged else ""))
    return 0


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"
