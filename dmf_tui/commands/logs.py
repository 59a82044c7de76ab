"""`dmf-tui logs RUN [--follow]`: a run's log as its worker wrote it (the start, the device, the
dataset, each epoch, warnings, the traceback of a failure, why it was lost). Printed as plain text:
a log quotes files and errors, which are never markup."""

from __future__ import annotations

import argparse
import time

from store.db import open_to_list
from store.records import LogRecord

# How often --follow looks for new lines: about as often as the TUI polls.
FOLLOW_POLL_S = 1.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = sub.add_parser("logs", help="print a run's log",
                          description="Print a run's log: its start, device, dataset, each epoch, warnings, "
                          "the traceback of a failure, why it was lost.")
    logs.add_argument("run_id", type=int, metavar="RUN")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the run ends")
    logs.set_defaults(func=print_log)


def print_log(args: argparse.Namespace) -> int:
    with open_to_list(args.db) as store:
        lines = store.run_log(args.run_id)  # an unknown run: one line, exit 2
        _print(lines)
        run = store.get_run(args.run_id)
        if not lines and not args.follow:
            print(f"(no log: run {args.run_id} is {run.status}"
                  + (f"; {run.error}" if run.error else "") + ")")
        while args.follow and not run.status.is_finished:
            time.sleep(FOLLOW_POLL_S)
            store.reap_lost_if_writable()  # a worker that died meanwhile: its run ends lost
            # The run is read before its lines: the worker writes a run's last line before it
            # records its end, so once the run is seen ended, its last line has been written.
            run = store.get_run(args.run_id)
            new = store.run_log(args.run_id, after=lines[-1].id if lines else 0)
            _print(new)
            lines += new
    return 0


def _print(lines: list[LogRecord]) -> None:
    for line in lines:
        print(line.line(), flush=True)
