"""The `dmf-tui` command line: with no command it opens the TUI; each command lives in its own
module under dmf_tui/commands and registers its parser here.

Exit status: 0 done, 2 an error in the input (one line on stderr, never a traceback), 130 Ctrl-C,
141 output cut short by its reader (`dmf-tui runs | head`), as git and other SIGPIPE-killed tools.
"""

from __future__ import annotations

import argparse
import os
import sys

from sqlalchemy.exc import DatabaseError

from store.errors import StoreError, database_error

# Each module has `register(subparsers)`, which adds its parser(s) and sets `func` to a
# function taking the parsed args and returning an exit code.
COMMAND_MODULES = (
    "dmf_tui.commands.run",
    "dmf_tui.commands.data",
    "dmf_tui.commands.queue",
    "dmf_tui.commands.search",
    "dmf_tui.commands.presets",
    "dmf_tui.commands.runs",
    "dmf_tui.commands.cleanup",
    "dmf_tui.commands.logs",
    "dmf_tui.commands.recommend",
    "dmf_tui.commands.worker",
    "dmf_tui.commands.db",
    "dmf_tui.commands.tui",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="dmf-tui",
        description="Terminal experiment manager for MF and DeepMF rating prediction on MovieLens. "
        "With no command, opens the TUI.",
    )
    parser.add_argument("--db", help="database file or SQLAlchemy URL (default: $DMF_DB or the user data dir)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _accept_db_after_command(parser)
    return parser


def _accept_db_after_command(parser: argparse.ArgumentParser) -> None:
    """Let `--db` follow any command too (`dmf-tui run --db x.db`), not only precede it.
    SUPPRESS keeps a value given before the command when none is given after it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if "--db" not in child._option_string_actions:
                    child.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                _accept_db_after_command(child)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the input's fault: printed as one line, never as a traceback.
    The engine's errors count only once something imported the engine (the TUI never does)."""
    errors: list[type[BaseException]] = [StoreError]
    engine_errors = sys.modules.get("engine.errors")
    if engine_errors is not None:
        errors.append(engine_errors.EngineError)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            from dmf_tui.commands.tui import open_tui

            code = open_tui(args)
        else:
            code = args.func(args)
        # A reader gone while output is still buffered shows here, not in the interpreter's exit.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`dmf-tui runs | head -1`): stop quietly, as `git log | head` does, with
        # the status a shell gives git for it, 141 (128 + SIGPIPE), so `set -o pipefail` sees it alike.
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        print("dmf-tui: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            print(f"dmf-tui: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, DatabaseError):  # the database, not dmf-tui: a full disk, a read-only or damaged file
            print(f"dmf-tui: error: database error: {database_error(exc)}", file=sys.stderr)
            return 2
        raise


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's own flush at exit of what is still
    buffered cannot fail again with an 'Exception ignored' message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (a test's capture): nothing will flush it
        pass
