"""`dmf-tui db copy SRC DST`: a whole history from one database into another (store/copy.py), for
example from a laptop's SQLite file into a lab's PostgreSQL server."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from store.copy import CopyReport, copy_history, same_database
from store.db import describe, open_store, resolve_url, sqlite_file
from store.errors import StoreError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="work on whole databases (copy one into another)")
    commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    copy = commands.add_parser(
        "copy", help="copy every run, epoch, sweep, search, note, tag, log line and worker into another database",
        description="Copy the whole history of SRC into DST (each a file path or a SQLAlchemy URL such as "
        "postgresql://user@host/dbname) in one transaction: a failure leaves DST as it was. DST is created "
        "if missing; one that already holds runs is refused unless --merge, which gives the copied rows new "
        "ids after DST's own. Runs running in SRC are copied as lost, since their workers stay with SRC. "
        "Checkpoint files are not copied: runs keep the paths they name. SRC is only read.")
    copy.add_argument("source", metavar="SRC", help="the database to copy from (must exist)")
    copy.add_argument("destination", metavar="DST", help="the database to copy into")
    copy.add_argument("--merge", action="store_true",
                      help="add to a DST that already holds a history (the copied rows get new ids)")
    copy.add_argument("--json", action="store_true", help="print what was copied as JSON")
    copy.set_defaults(func=copy_database)


def copy_database(args: argparse.Namespace) -> int:
    source_url, destination_url = resolve_url(args.source), resolve_url(args.destination)
    if same_database(source_url, destination_url):
        raise StoreError("SRC and DST are the same database")
    new_file = _new_file(destination_url)
    with open_store(source_url, create=False) as source:
        running_workers = len(source.workers(alive_only=True))
        try:
            with open_store(destination_url) as destination:
                report = copy_history(source, destination, merge=args.merge)
        except BaseException:
            if new_file is not None:  # the copy made nothing: leave no empty database behind either
                _remove_database_file(new_file)
            raise
    # Named as messages name them: a password in a URL is never printed.
    source_name, destination_name = describe(source_url), describe(destination_url)
    if args.json:
        print(json.dumps({"source": source_name, "destination": destination_name,
                          **dataclasses.asdict(report), "source_workers_running": running_workers}, indent=2))
    else:
        print(_summary(report, destination_name))
        for note in _notes(report, running_workers):
            print(note)
    return 0


def _new_file(url: str) -> Path | None:
    """The SQLite file `url` names, if there is none yet (so it is this copy's to remove)."""
    file = sqlite_file(url)
    return file if file is not None and not file.exists() else None


def _remove_database_file(file: Path) -> None:
    for path in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
        path.unlink(missing_ok=True)


def _summary(report: CopyReport, destination: str) -> str:
    parts = [_count(report.runs, "run"), _count(report.epochs, "epoch"), _count(report.sweeps, "sweep"),
             _count(report.searches, "search", "searches"), _count(report.log_lines, "log line"),
             _count(report.workers, "worker")]
    line = f"copied {', '.join(parts[:-1])} and {parts[-1]} into {destination}"
    if report.merged and report.first_run_id is not None:
        line += f" (merged: the copied runs are numbered from #{report.first_run_id} there)"
    return line


def _notes(report: CopyReport, running_workers: int) -> list[str]:
    notes = []
    if report.running_as_lost:
        notes.append(f"{_count(report.running_as_lost, 'run')} running in SRC copied as lost: their "
                     "workers stay with SRC (`dmf-tui retry` queues them again in DST)")
    if running_workers:
        notes.append(f"{_count(running_workers, 'worker')} still running on SRC: SRC's queued runs are "
                     "now queued in both databases (stop SRC's workers to train them in DST only)")
    if report.checkpoints:
        notes.append(f"the checkpoint files of {_count(report.checkpoints, 'run')} were not copied: they stay "
                     "where they are, and the runs in DST name them there")
    return notes


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
