"""One key registry: each key is a Binding, declared once with its id and texts, and the `?` help,
the command palette and the README list exactly the keys the screens have (dmf_tui/keys.py)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

from textual.actions import parse
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit
from textual.dom import DOMNode
from textual.widgets import Input, Markdown, TabbedContent

import dmf_tui.components
from dmf_tui import keys
from dmf_tui.app import DmfApp
from dmf_tui.components.compare import CompareScreen
from dmf_tui.components.help import HelpScreen
from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.palette import DmfCommands
from dmf_tui.components.run_detail import RunDetailScreen
from store.params import RunParams
from tests.tui.conftest import make_app, settle

README = Path(__file__).parents[2] / "README.md"


def classes_with_keys() -> set[type]:
    """Every class of the app and its components that declares BINDINGS of its own."""
    modules = [importlib.import_module("dmf_tui.app")] + [
        importlib.import_module(f"dmf_tui.components.{info.name}")
        for info in pkgutil.iter_modules(dmf_tui.components.__path__)
    ]
    return {
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, DOMNode)
        and value.__module__ == module.__name__ and "BINDINGS" in vars(value)
    }


def every_key() -> list[tuple[keys.Place, Binding]]:
    return [(place, binding) for place in keys.PLACES for binding in place.bindings]


def test_every_class_with_keys_is_in_the_registry():
    # A screen or widget whose keys are missing here would be missing from the help and the palette.
    assert classes_with_keys() == {place.owner for place in keys.PLACES}


def test_every_key_has_an_id_a_description_and_says_what_it_does():
    owners = {place.owner for place in keys.PLACES}
    bindings = [binding for owner in owners for binding in vars(owner)["BINDINGS"]]
    for binding in bindings:
        assert isinstance(binding, Binding), f"{binding!r}: declare keys as Binding(...) with an id"
        assert binding.id and binding.description and binding.tooltip, binding
    ids = [binding.id for binding in bindings]
    assert len(ids) == len(set(ids)), "two keys share an id"


def test_every_key_runs_an_action_that_exists():
    """A misspelt action does nothing when pressed, and nothing from the palette either."""
    for place, binding in every_key():
        namespace, name, _ = parse(binding.action)
        target = DmfApp if namespace == "app" else place.owner
        assert hasattr(target, f"action_{name}"), f"{binding.id}: {target.__name__} has no action_{name}"


def test_the_registry_and_the_helps_markdown_are_not_read_at_start_up():
    # The palette and the help build their lists from every screen's keys when first opened;
    # Markdown alone is a tenth of the start-up.
    code = "import sys, dmf_tui.app; print(sorted(m for m in LAZY if m in sys.modules))"
    lazy = ["dmf_tui.keys", "dmf_tui.components.palette", "textual.widgets._markdown"]
    result = subprocess.run([sys.executable, "-c", f"LAZY = {lazy!r}; {code}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_keys_show_as_people_read_them():
    assert keys.key_display(Binding("K,shift+up", "x")) == "K shift+↑"
    assert keys.key_display(Binding("escape,question_mark,slash", "x")) == "escape ? /"
    assert keys.key_display(Binding("ctrl+s", "x")) == "ctrl+s"


# --- the help ---------------------------------------------------------------------------------


def help_rows(markdown: str) -> list[tuple[str, str, str]]:
    """(where, keys, what it does) of each row of the help's key table, where filled in from above."""
    rows, where = [], ""
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3 or set(cells[0]) == {"-"}:
            continue  # not a row of the table, or its header's rule
        where = cells[0].strip("*") or where
        rows.append((where, cells[1].replace("`", ""), cells[2].replace("\\|", "|")))
    return rows


async def test_the_help_lists_every_key_where_it_works_and_scrolls_to_the_last_at_80x24(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        shown = app.screen.query_one(Markdown)
        expected = [(place.name, keys.key_display(b), b.tooltip) for place, b in every_key()]
        assert help_rows(shown.source)[1:] == expected  # after the header row

        # Not every key fits on 24 lines: the help scrolls, and its last key can be reached.
        scroll, table = app.screen.query_one("#help"), shown.children[-1]
        assert table.region.bottom > scroll.content_region.bottom
        # Across, it fits: no key's words are cut at the right edge.
        assert scroll.region.right <= 80 and table.region.right <= scroll.content_region.right
        assert scroll.max_scroll_x == 0
        await pilot.press("end")
        await settle(pilot)
        assert table.region.bottom <= scroll.content_region.bottom

        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


# --- the palette ------------------------------------------------------------------------------


async def palette_hits(app) -> dict[str, DiscoveryHit | Hit]:
    """The palette's entries (title: hit) on the screen shown, as ctrl+p would list them."""
    return {str(hit.prompt): hit async for hit in DmfCommands(app.screen).discover()}


async def test_the_palette_finds_a_key_by_what_it_does_too(store):
    async with make_app(store).run_test() as pilot:
        provider = DmfCommands(pilot.app.screen)

        async def best(query: str) -> str:
            hits = [hit async for hit in provider.search(query)]
            return str(max(hits, key=lambda hit: hit.score).text)

        assert await best("experiment") == "New"
        assert await best("Quit") == "Quit"  # a title's match ranks above a match of what a key does


def keys_that_work_on(app) -> list[Binding]:
    """Every key a person has on the screen shown, but the palette's own and a table's cursor keys:
    the app's and the screen's, or on the main screen its tabs'. (Found from the running app, not
    from the registry, which is what is checked.)"""
    if app.screen is app.screen_stack[0]:
        owners = [type(app.queue_tab), type(app.live_tab), type(app.history_tab), type(app.searches_tab)]
    else:
        owners = [type(app.screen)]
    # The app's keys that it allows on this screen (those for the queue and workers are the tabs').
    app_keys = [binding for binding in vars(DmfApp)["BINDINGS"] if app.check_action(binding.action, ())]
    bindings = [*app_keys, *(b for owner in owners for b in vars(owner).get("BINDINGS", []))]
    return [binding for binding in bindings if binding.action != "command_palette"]


def assert_palette_lists(hits: dict, bindings: list[Binding]) -> None:
    assert len(hits) == len(bindings)
    for binding in bindings:
        [title] = [title for title, hit in hits.items() if hit.help.endswith(f"  {binding.tooltip}")]
        assert title.endswith(binding.description)
        assert hits[title].help.startswith(keys.key_display(binding))


async def test_the_palette_lists_every_key_that_works_where_it_opens(store, worker):
    worker.run(RunParams(data="synthetic-100k", seed=1), 2)
    worker.run(RunParams(data="synthetic-100k", seed=2), 2)
    app = make_app(store)
    async with app.run_test() as pilot:
        await settle(pilot)
        assert_palette_lists(await palette_hits(app), keys_that_work_on(app))
        screens = {"n": NewRunScreen, "3 enter": RunDetailScreen, "3 space space m": CompareScreen}
        for presses, screen in screens.items():
            await pilot.press(*presses.split())
            await settle(pilot)
            assert isinstance(app.screen, screen)
            assert_palette_lists(await palette_hits(app), keys_that_work_on(app))
            await pilot.press("escape")
            await settle(pilot)


async def landed(pilot, written) -> None:
    """Wait for a write the app makes in a worker, and for the polls and History reloads it starts.
    (settle() alone can wait on a History reload that the next one cancels: WorkerCancelled.)"""
    for _ in range(500):
        if written() and not pilot.app.workers:
            await settle(pilot)
            return
        await pilot.pause(0.01)
    raise AssertionError("the write never landed")


async def test_a_tabs_key_run_from_the_palette_acts_on_that_tab(store):
    first, second = store.enqueue_grid([RunParams(data="synthetic-100k", seed=s) for s in (1, 2)])[1]
    app = make_app(store)
    async with app.run_test() as pilot:
        await settle(pilot)
        hits = await palette_hits(app)
        await hits["Show History"].command()
        await settle(pilot)
        assert app.query_one("#tabs", TabbedContent).active == "history"

        # From History (its table has the focus), the Queue's cancel shows the Queue and cancels
        # the run under the Queue's cursor.
        await hits["Queue: Cancel"].command()
        await landed(pilot, lambda: store.get_run(first).status == "cancelled")
        assert app.query_one("#tabs", TabbedContent).active == "queue"
        assert store.get_run(second).status == "queued"

        # From the Queue, History's filter keeps the focus it takes once History is shown.
        await hits["History: Filter"].command()
        await settle(pilot)
        assert app.query_one("#tabs", TabbedContent).active == "history"
        assert isinstance(app.focused, Input) and app.focused.id == "history-filter"


async def test_a_screens_key_run_from_the_palette_acts_on_that_screen(store):
    first, second = store.enqueue_grid([RunParams(data="synthetic-100k", seed=s) for s in (1, 2)])[1]
    app = make_app(store)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == second
        await (await palette_hits(app))["Run detail: Cancel run"].command()
        await landed(pilot, lambda: store.get_run(second).status == "cancelled")
        assert store.get_run(first).status == "queued"


# --- the README -------------------------------------------------------------------------------


def test_the_readme_key_table_is_the_registrys():
    text = README.read_text(encoding="utf-8")
    table = re.search(r"<!-- keys:.*?-->\n(.*?)<!-- /keys -->", text, re.S)
    assert table, "README.md lost its key table (between <!-- keys: --> and <!-- /keys -->)"
    assert table.group(1) == keys.help_markdown(), "print the table with `python -m dmf_tui.keys`"


def test_every_key_the_readme_names_is_a_key():
    """Keys named in the README's prose (`w`, `ctrl+p`, ...) exist: a removed or renamed key fails."""
    known = {key for _, binding in every_key() for key in keys.key_display(binding).split()}
    named = [
        token for token in re.findall(r"`([^`\n]+)`", README.read_text(encoding="utf-8"))
        if len(token) == 1 or re.fullmatch(r"(ctrl|shift|alt)\+\S+|enter|escape|space|tab", token)
    ]
    assert named, "the README names no key at all: is the pattern out of date?"
    assert sorted(set(named) - known) == []
