"""Run detail's Recommend panel (`t`): type a user id and enter, see the run's top 10 for that user:
the items the user did not rate in the run's training part with the highest predicted rating, with
titles and genres when the dataset has an item file.

The model is loaded once per opened Run detail, in a thread, when the first user id is entered. The
engine (and so torch, seconds to import) is imported there and nowhere else in the TUI: the app
starts, and the panel opens, without it. Titles come from a file and errors quote paths: all of it is
shown as plain text, never markup."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from dmf_tui.trained import checkpoint_of
from store.errors import StoreError
from store.records import RunRecord

if TYPE_CHECKING:
    from engine.recommend import Recommendation, TrainedModel

# How many items the panel lists: what 80x24 holds below its user id with the notes in view.
TOP = 10


@dataclass(frozen=True)
class Answer:
    """What the panel shows for one user id: the top items and the lines about them."""

    user: int
    found: list[Recommendation]
    note: str | None  # what was wrong with the item file (Titles.problem), or why items show by id


class RecommendPanel(Vertical):
    def __init__(self, db_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db_url = db_url
        # The run as Run detail last read it: its checkpoint, and its status when it has none yet.
        self.run: RunRecord | None = None
        self._model: TrainedModel | None = None
        # Held while a user id is answered: ids entered meanwhile wait their turn, so the model is
        # loaded once and the last id entered is the one shown.
        self._answering = asyncio.Lock()

    def compose(self) -> ComposeResult:
        with Horizontal(id="recommend-ask"):
            yield Label("user id ", id="recommend-label")
            # Digits only: a letter typed here is dropped (never one of the screen's keys).
            yield Input(placeholder="e.g. 196, then enter", restrict=r"[0-9]*", max_length=12, compact=True,
                        id="recommend-user")
        yield Static("The run's top 10 for a user: the items they did not rate in training with the highest "
                     "predicted rating.", id="recommend-status", classes="hint", markup=False)
        yield Static(id="recommend-note", classes="hint", markup=False)
        yield Static(id="recommend-list")

    @property
    def user_input(self) -> Input:
        return self.query_one("#recommend-user", Input)

    @on(Input.Submitted, "#recommend-user")
    def submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            self._say("type a user id (digits), then enter", error=True)
            return
        self.answer(int(event.value))

    @work(group="recommend")
    async def answer(self, user: int) -> None:
        run = self.run
        if run is None:  # Run detail has not read the run yet
            self._say("the run is still being read: enter the user id again in a moment", error=True)
            return
        async with self._answering:
            if self._model is None:
                self._say(f"loading the model of run {run.id}…")
            else:
                self._say(f"ranking the items for user {user}…")
            try:
                answer = await asyncio.to_thread(self._answer, run, user)
            except Exception as exc:  # every one, as a line in the panel: see _error
                self._say(_error(exc), error=True)
                self._show(None)
                return
        self._say(f"Top {len(answer.found)} for user {answer.user}: the highest predicted rating, items not "
                  "rated in training")
        self._show(answer)

    def _answer(self, run: RunRecord, user: int) -> Answer:
        """In a thread: the model (loaded on first use) and its top items for `user`."""
        if self._model is None:
            path = checkpoint_of(run, self.db_url)  # before the engine: a run without one needs no torch

            from engine.recommend import TrainedModel

            self._model = TrainedModel.load(path, name=f"run {run.id}")
        return Answer(user, self._model.recommend(user, TOP), self._model.titles_note)

    def _say(self, line: str, *, error: bool = False) -> None:
        status = self.query_one("#recommend-status", Static)
        status.update(line)
        status.set_class(error, "error")
        status.set_class(not error, "hint")

    def _show(self, answer: Answer | None) -> None:
        note = answer.note if answer is not None else None
        shown = self.query_one("#recommend-note", Static)
        shown.update(note or "")
        shown.display = note is not None
        self.query_one("#recommend-list", Static).update(_table(answer.found) if answer else "")


def _table(found: list[Recommendation]) -> Table:
    """Rank, item id, predicted rating, title and genres; the text columns cut with an ellipsis to fit."""
    table = Table(box=None, header_style="bold", padding=(0, 1), pad_edge=False, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("item", justify="right", no_wrap=True)
    table.add_column("rating", justify="right", no_wrap=True)
    table.add_column("title", overflow="ellipsis", no_wrap=True, ratio=3)
    table.add_column("genres", overflow="ellipsis", no_wrap=True, ratio=2)
    for rank, r in enumerate(found, start=1):
        # Title and genres are the item file's text: Text, so Rich reads no markup in them.
        table.add_row(str(rank), str(r.item), f"{r.score:.3f}", Text(r.title or ""), Text(", ".join(r.genres)))
    return table


def _error(exc: Exception) -> str:
    """One line for why the panel has no answer. The store's and the engine's errors say it themselves
    (no checkpoint and how to get one, a user id not in the run's data); anything else reading a
    checkpoint file raised is named by its type, in the panel rather than closing the app."""
    if isinstance(exc, StoreError):
        return str(exc)
    from engine.errors import EngineError  # no torch: cheap, and the panel was used by now

    if isinstance(exc, EngineError):
        return str(exc)
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"the model could not be used: {type(exc).__name__}{': ' + first if first else ''}"
