"""A yes/no question before anything that is hard to undo: cancelling a running run, stopping the
workers, deleting runs, queueing a very large grid, discarding a filled form or unsaved notes.

Pushed with a callback (`app.push_screen(Confirm(...), callback)`) or awaited from a worker
(`await app.push_screen_wait(Confirm(...))`); it is dismissed with True only on `y` or the Yes
button. Every other key (enter included) answers no, so a key typed ahead never confirms."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool]):
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    #confirm { width: 64; max-width: 95%; height: auto; border: thick $warning; background: $surface;
               padding: 1 2; }
    #confirm-question { width: 1fr; }
    #confirm-buttons { height: auto; margin-top: 1; align-horizontal: right; }
    #confirm-buttons Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="yes: do it"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="no: leave things as they are"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            # The question quotes names and paths from the database: never markup.
            yield Static(self.question, id="confirm-question", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", variant="warning", id="confirm-yes")
                yield Button("No (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
