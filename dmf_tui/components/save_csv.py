"""Where History's `e` writes the listed runs as CSV: asked in a small modal, offered beside the
database (never the directory the TUI happened to be started in)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from store import catalog
from store.db import Store, sqlite_file


def default_export_path(store: Store) -> Path:
    """Where `e` offers to write: beside the database (a SQLite file), else beside the data folder;
    never the directory the TUI happened to be started in."""
    database = sqlite_file(store.url)
    folder = database.parent if database is not None else catalog.data_dir().parent
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return folder / f"dmf-runs-{stamp}.csv"


class SaveCsv(ModalScreen[Path | None]):
    """Asks where to write the CSV: enter writes there, esc cancels."""

    DEFAULT_CSS = """
    SaveCsv { align: center middle; }
    #save-csv { width: 76; max-width: 100%; height: auto; border: thick $primary; background: $surface;
                padding: 0 1; }
    #save-csv-hint { color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="save_csv.cancel", tooltip="close without writing anything"),
    ]

    def __init__(self, default: Path) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="save-csv"):
            yield Label("Write the listed runs as CSV to:")
            yield Input(str(self.default), id="save-csv-path")
            yield Label("enter writes · esc cancels", id="save-csv-hint")

    @on(Input.Submitted, "#save-csv-path")
    def save(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        self.dismiss(Path(text).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)

