"""The Rich console that commands print tables with."""

from __future__ import annotations

from typing import Any

from rich import console


class Console(console.Console):
    """Rich's console, except that a reader gone (`dmf-tui runs | head -1`) is left to cli.main, which
    ends every command alike then (exit 141); Rich on its own would exit 1. And it prints every str
    as it is, never as markup or :emoji: codes: run texts (a dataset path, an error quoting a file,
    notes) are data; styled text is a `rich.text.Text` or a `style=`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"markup": False, "emoji": False, **kwargs})

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError
