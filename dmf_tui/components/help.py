"""The help screen on `?`: every key, grouped by where it works, generated from the bindings."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = """\
# dmf-tui

Queue MF/DeepMF experiments, watch them train, rank every run. A worker (started from here, or with
`dmf-tui worker --detach` in a shell) trains the queue; the TUI only reads and writes the database,
so it can be closed and reopened at any time.

"""


class HelpScreen(ModalScreen[None]):
    # One line a key where it fits (Markdown tables rule off every row), so a 24-line terminal
    # shows a screenful of keys.
    DEFAULT_CSS = """
    HelpScreen MarkdownTableContent { grid-gutter: 0 1; keyline: none; }
    HelpScreen #help-database { padding: 1 2 0 2; }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "app.pop_screen", "Close", id="help.close", tooltip="close this help"),
    ]

    def __init__(self, database: str) -> None:
        super().__init__()
        self.database = database

    def compose(self) -> ComposeResult:
        # Both are read on first use: Markdown is a tenth of the app's start-up, and dmf_tui.keys
        # imports this module (this screen's key is listed too).
        from textual.widgets import Markdown

        from dmf_tui.keys import help_markdown

        with VerticalScroll(id="help"):
            # The header drops the database's name first on a narrow terminal; here it always fits.
            # A path or URL is the user's text: shown as it is, never as Markdown.
            yield Static(Text.assemble(("Database: ", "bold"), self.database), id="help-database")
            yield Markdown(INTRO + help_markdown())
