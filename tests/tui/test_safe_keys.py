"""Letters typed into a text field go into it and nowhere else (issue 10: a note typed in Run detail
retried the run twice, opened a clone, resumed the queue and queued the clone).

Every screen of the app is opened, every Input and TextArea on it found by query (a field added
later is covered without a word here), shown as a person would see it (its folded section opened),
focused, and typed into: every printable ASCII character, then a sentence made of the app's own
keys. Nothing else may happen: the same screens, the same tab, the focus still there, not one row
of the database changed, and the text in the field exactly as typed.

The keys are posted to the app as one burst, as a terminal delivers fast typing, rather than through
pilot.press: it waits for the app to idle after each key (about 0.1 s), and the form alone has 21
fields. They take the path a terminal's keys take (the app's priority keys, the focused widget,
then the bindings up to the app); a control test shows that the same burst, typed where there is
no field, does reach the keys."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from textual import events
from textual.app import App
from textual.keys import KEY_NAME_REPLACEMENTS
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Collapsible, Input, TabbedContent, TabPane, TextArea

from dmf_tui.app import DmfApp
from dmf_tui.components.compare import CompareScreen
from dmf_tui.components.confirm import Confirm
from dmf_tui.components.help import HelpScreen
from dmf_tui.components.new_run import HINTS, NewRunScreen
from dmf_tui.components.new_search import HINTS as SEARCH_HINTS
from dmf_tui.components.new_search import NewSearchScreen
from dmf_tui.components.param_plot import ParamPlotScreen
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.components.run_log import RunLogScreen
from dmf_tui.components.save_csv import SaveCsv
from dmf_tui.components.search_view import SearchViewScreen
from dmf_tui.components.searches_tab import ExtendScreen
from dmf_tui.keys import PLACES
from dmf_tui.messages import OpenRun, OpenSearch
from store.db import Store
from store.search import parse_search
from tests.tui.conftest import fill_lab, make_app, settle

# Every printable ASCII character (space to ~), then the note and the app's keys.
TYPED = "".join(chr(code) for code in range(32, 127)) + "lr far too high, retry; p q w W n ? 1 2 3 c r l L i o x"


def key_name(char: str) -> str:
    """The name Textual gives the key a terminal sends for a printable character (`question_mark`
    for ?, `slash` for /): the name bindings are declared with (textual.keys._character_to_key,
    which is private, from its public parts)."""
    name = char if char.isalnum() else unicodedata.name(char).lower().replace("-", "_").replace(" ", "_")
    return KEY_NAME_REPLACEMENTS.get(name, name)


async def type_text(pilot: Pilot, typed: str) -> None:
    for char in typed:
        pilot.app.post_message(events.Key(key_name(char), char))
    await settle(pilot)


class KeyNames(App[None]):
    """Records the name of each key it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def on_key(self, event: events.Key) -> None:
        self.names.append(event.key)


async def test_the_keys_posted_are_named_as_textual_names_them():
    app = KeyNames()
    printable = sorted(set(TYPED))
    async with app.run_test() as pilot:
        await pilot.press(*printable)
    assert app.names == [key_name(char) for char in printable]


async def test_typed_where_there_is_no_field_the_same_keys_do_reach_the_bindings(store):
    """The control: without a field to take them, the burst's letters act (n opens the form)."""
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_text(pilot, "n")
        assert isinstance(app.screen, NewRunScreen)


def run_with(store: Store, status: str) -> int:
    """The first run of fill_lab's database with this status."""
    with store.engine.connect() as conn:
        run_id = conn.execute(text("SELECT id FROM runs WHERE status = :s ORDER BY id"), {"s": status}).scalar()
    assert isinstance(run_id, int), f"fill_lab has no {status} run"
    return run_id


def a_search(store: Store) -> int:
    """A search of one fixed value (nothing asked of it: no trial runs here)."""
    return store.create_search(parse_search({"data": "synthetic-100k", "k": "8..16:int"}))


# How each screen is opened (the main screen once per tab), and the screen's class.
OPENERS: dict[str, tuple[type[Screen[Any]] | None, Callable[[DmfApp, Path], object]]] = {
    "queue": (None, lambda app, tmp: app.action_show_tab("queue")),
    "live": (None, lambda app, tmp: app.action_show_tab("live")),
    "history": (None, lambda app, tmp: app.action_show_tab("history")),
    "searches": (None, lambda app, tmp: app.action_show_tab("searches")),
    "search": (SearchViewScreen, lambda app, tmp: app.post_message(OpenSearch(a_search(app.store)))),
    "extend search": (ExtendScreen, lambda app, tmp: app.push_screen(ExtendScreen(app.store.get_search(
        a_search(app.store))))),
    "form": (NewRunScreen, lambda app, tmp: app.action_new_experiment()),
    "search form": (NewSearchScreen, lambda app, tmp: app.push_screen(NewSearchScreen())),
    "running run": (RunDetailScreen, lambda app, tmp: app.post_message(OpenRun(run_with(app.store, "running")))),
    "failed run": (RunDetailScreen, lambda app, tmp: app.post_message(OpenRun(run_with(app.store, "failed")))),
    "run log": (RunLogScreen, lambda app, tmp: app.push_screen(RunLogScreen(run_with(app.store, "failed")))),
    "compare": (CompareScreen, lambda app, tmp: app.push_screen(
        CompareScreen([run_with(app.store, "done"), run_with(app.store, "failed")]))),
    "parameter plot": (ParamPlotScreen, lambda app, tmp: app.push_screen(ParamPlotScreen(app.store.leaderboard()))),
    "help": (HelpScreen, lambda app, tmp: app.action_help()),
    "confirm": (Confirm, lambda app, tmp: app.push_screen(Confirm("Really?"))),
    "save csv": (SaveCsv, lambda app, tmp: app.push_screen(SaveCsv(tmp / "runs.csv"))),
}

# The fields each screen has today, at least: were the query to find none, nothing would be tested.
KNOWN_FIELDS = {
    "history": {"history-filter"},
    "form": {f"field-{name}" for name in HINTS},
    "search form": {f"field-{name}" for name in SEARCH_HINTS if name not in ("sampler", "pruner")},  # Selects
    "running run": {"notes", "recommend-user"},
    "failed run": {"notes", "recommend-user"},
    "save csv": {"save-csv-path"},
    "extend search": {"extend-trials"},
}


def test_every_screen_with_keys_is_opened_here():
    screens = {place.owner for place in PLACES if isinstance(place.owner, type) and issubclass(place.owner, Screen)}
    assert screens <= {screen for screen, _ in OPENERS.values()}, "add the new screen to OPENERS"


def text_fields(screen: Screen[Any]) -> list[Input | TextArea]:
    """The fields a person can type into on this screen: on the tab shown (another tab's field is
    covered with that tab), and not a read-only TextArea (no text goes in; the keys go on to
    the bindings, as they should)."""
    fields = [*screen.query(Input), *(area for area in screen.query(TextArea) if not area.read_only)]
    return [field for field in fields if all(_shown(ancestor) for ancestor in field.ancestors)]


def _shown(ancestor: object) -> bool:
    if not isinstance(ancestor, TabPane):
        return True
    tabs = next(node for node in ancestor.ancestors if isinstance(node, TabbedContent))
    return tabs.active == ancestor.id


def accepted(field: Input | TextArea, typed: str) -> str:
    """What the field holds once `typed` is typed into it: all of it, but in an Input that restricts
    what it takes (Run detail's user id: digits only), the characters it takes, as Input checks them."""
    if isinstance(field, TextArea) or (field.restrict is None and not field.max_length):
        return typed
    value = ""
    for char in typed:
        if field.restrict is not None and not re.fullmatch(field.restrict, value + char):
            continue
        if field.max_length and len(value + char) > field.max_length:
            continue
        value += char
    return value


def reveal(field: Widget) -> None:
    """Open any folded section around the field, as a person does before typing into it."""
    for ancestor in field.ancestors:
        if isinstance(ancestor, Collapsible):
            ancestor.collapsed = False


def database(store: Store) -> dict[str, list[Any]]:
    """Every row of every table: any write at all shows as a difference."""
    with store.engine.connect() as conn:
        return {table: list(conn.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')))
                for table in inspect(conn).get_table_names()}


def state(app: DmfApp) -> tuple[Any, ...]:
    return list(app.screen_stack), app.query_one("#tabs", TabbedContent).active, database(app.store)


@pytest.mark.parametrize("where", list(OPENERS))
async def test_text_typed_into_a_field_goes_nowhere_else(store, worker, tmp_path, where):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        expected_screen, open_screen = OPENERS[where]
        open_screen(app, tmp_path)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, expected_screen or type(app.screen_stack[0]))
        fields = text_fields(screen)
        assert KNOWN_FIELDS.get(where, set()) <= {field.id for field in fields}
        for field in fields:
            reveal(field)
            field.clear()
            field.focus()
            await settle(pilot)
            # The whole test may take longer than a worker's grace period: without a heartbeat
            # the poll would rightly call the running run lost (a write).
            store.heartbeat(worker.id)
            before = state(app)
            await type_text(pilot, TYPED)
            assert app.focused is field, f"{field.id}: the focus left the field"
            assert state(app) == before, f"{field.id}: a key reached something else"
            assert (field.value if isinstance(field, Input) else field.text) == accepted(field, TYPED), field.id
