"""Where each key of the TUI works. The `?` help and the command palette are generated from this.

A key is declared once: as a Binding in the BINDINGS of the class it acts on, with an id, a short
description (what the footer shows) and a tooltip (what it does: the help's text, the palette's hint,
the footer's tooltip). PLACES says where each of those classes takes keys, in the order the help
lists them. tests/tui/test_keys.py fails when a class with bindings is missing here, when a key lacks
its id or its texts, or when the help, the palette or the README leaves a key out.

This module imports the app and its screens, so the app's modules read it only when first used (the
palette when it opens, the help screen when it is drawn).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.binding import Binding
from textual.dom import DOMNode
from textual.keys import format_key
from textual.screen import Screen

from dmf_tui.app import DmfApp
from dmf_tui.components.compare import CompareScreen
from dmf_tui.components.confirm import Confirm
from dmf_tui.components.fitted_table import FittedTable
from dmf_tui.components.help import HelpScreen
from dmf_tui.components.history_tab import HistoryTab
from dmf_tui.components.live_tab import LiveTab
from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.new_search import NewSearchScreen
from dmf_tui.components.param_plot import ParamPlotScreen
from dmf_tui.components.queue_tab import QueueTab
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.components.run_log import RunLogScreen
from dmf_tui.components.run_table import RunTable
from dmf_tui.components.save_csv import SaveCsv
from dmf_tui.components.search_view import SearchViewScreen
from dmf_tui.components.searches_tab import ExtendScreen, SearchesTab, SearchTable


@dataclass(frozen=True)
class Place:
    """The keys of one class, and where they work."""

    name: str  # as the help says it: "anywhere", "Queue", "Run detail", ...
    owner: type[DOMNode]  # the class whose BINDINGS they are
    tab: str | None = None  # the main-screen tab this class is: the palette lists its keys

    @property
    def bindings(self) -> list[Binding]:
        """The keys this class declares itself (not those it inherits from Textual's widgets)."""
        return list(vars(self.owner).get("BINDINGS", []))


PLACES = (
    Place("anywhere", DmfApp),
    Place("any table", FittedTable),
    Place("Queue", QueueTab, tab="queue"),
    Place("Queue", RunTable),
    Place("Live", LiveTab, tab="live"),
    Place("History", HistoryTab, tab="history"),
    Place("History", RunTable),
    Place("Searches", SearchesTab, tab="searches"),
    Place("Searches", SearchTable),
    Place("Search", SearchViewScreen),
    Place("Search", RunTable),
    Place("Extend search", ExtendScreen),
    Place("Run detail", RunDetailScreen),
    Place("Run log", RunLogScreen),
    Place("Compare", CompareScreen),
    Place("Parameter plot", ParamPlotScreen),
    Place("Form", NewRunScreen),
    Place("Search form", NewSearchScreen),
    Place("Help", HelpScreen),
    Place("Confirm", Confirm),
    Place("Export CSV", SaveCsv),
)


def key_display(binding: Binding) -> str:
    """Every key of a binding as a person reads it: "K shift+↑", "ctrl+s", "?"."""
    return " ".join(_one_key(key.strip()) for key in binding.key.split(","))


def _one_key(key: str) -> str:
    *modifiers, name = key.split("+")
    # Textual draws these as ⏎ and esc; the help spells them as people say them.
    shown = name if name in ("enter", "escape") else format_key(name)
    return "+".join([*modifiers, shown])


def help_markdown() -> str:
    """A Markdown table of every key: where it works, which keys, what it does."""
    lines = ["| Where | Key | Does |", "|---|---|---|"]
    previous = None
    for place in PLACES:
        for binding in place.bindings:
            keys = " ".join(f"`{key}`" for key in key_display(binding).split())
            where = f"**{place.name}**" if place.name != previous else ""
            lines.append(f"| {where} | {keys} | {_cell(binding.tooltip)} |")
            previous = place.name
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


@dataclass(frozen=True)
class Command:
    """One entry of the command palette: a key, by name."""

    title: str
    help: str
    action: str
    place: Place


def palette_commands(screen: Screen[Any]) -> Iterator[Command]:
    """What the palette lists when opened on `screen`: the keys that work there, but its own and
    a table's cursor keys. That is the app's keys (on another screen, not those of the main screen
    only), and the keys of the screen, or on the main screen those of its tabs (which the palette
    runs in their tab, whichever is shown)."""
    main = screen is screen.app.screen_stack[0]
    for place in PLACES:
        if not (place.owner is DmfApp or isinstance(screen, place.owner) or (main and place.tab)):
            continue
        for binding in place.bindings:
            if binding.action == "command_palette" or (
                    place.owner is DmfApp and not main and binding.action in DmfApp.MAIN_SCREEN_ACTIONS):
                continue
            title = binding.description if place.owner is DmfApp else f"{place.name}: {binding.description}"
            yield Command(title, f"{key_display(binding)}  {binding.tooltip}", binding.action, place)


def write_readme_table(readme: Path) -> None:
    """Put the key table into the README, between its `<!-- keys: ... -->` and `<!-- /keys -->` lines."""
    text = readme.read_text(encoding="utf-8")
    start = re.search(r"<!-- keys:.*?-->\n", text)
    end = text.find("<!-- /keys -->")
    if start is None or end < 0:
        raise SystemExit(f"{readme} has no <!-- keys: --> ... <!-- /keys --> markers")
    readme.write_text(text[: start.end()] + help_markdown() + text[end:], encoding="utf-8")


if __name__ == "__main__":
    # The README's key table: `python -m dmf_tui.keys` prints it, `--readme` writes it into README.md.
    if sys.argv[1:] == ["--readme"]:
        write_readme_table(Path(__file__).resolve().parents[1] / "README.md")
    else:
        print(help_markdown(), end="")
