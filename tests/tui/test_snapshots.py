"""SVG snapshots of the main screens at two terminal sizes, on a database whose every time is
frozen. Regenerate after a deliberate change with `pytest tests/tui --snapshot-update` and look
at the report before committing the new SVGs."""

from __future__ import annotations

import pytest
from textual.widgets import Input, TextArea

from tests.tui.conftest import fill_lab, freeze_times, make_app, settle

SIZES = {"small": (100, 30), "large": (140, 40)}


async def _steady(pilot) -> None:
    """Poll, finish every worker, and stop cursors blinking so two runs draw the same frame."""
    await settle(pilot)
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False
    await pilot.pause()


async def queue_tab(pilot) -> None:
    """What the app opens on."""


async def live_tab(pilot) -> None:
    await pilot.press("2")


async def history_tab(pilot) -> None:
    await pilot.press("3")
    await _steady(pilot)
    pilot.app.history_tab.table.focus()
    await pilot.press("space", "space")  # two runs marked


async def form_with_errors(pilot) -> None:
    await pilot.press("n")
    await _steady(pilot)
    pilot.app.screen.query_one("#field-lr", Input).value = "1e-3,fast"
    pilot.app.screen.query_one("#field-k", Input).value = "8,16,32"


async def run_detail_of_a_failed_run(pilot) -> None:
    failed = pilot.app.store.leaderboard(status="failed")[0]
    await pilot.press("3")
    await _steady(pilot)
    pilot.app.history_tab.table.focus()
    pilot.app.history_tab.table.select_run(failed.id)
    await pilot.press("enter")
    await _steady(pilot)
    pilot.app.screen.query_one(TextArea).text = "retry with batch 256"


async def compare_two_runs(pilot) -> None:
    await history_tab(pilot)
    await _steady(pilot)
    await pilot.press("m")


SCREENS = [queue_tab, live_tab, history_tab, form_with_errors, run_detail_of_a_failed_run, compare_two_runs]


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("screen", SCREENS, ids=[s.__name__ for s in SCREENS])
def test_screen(snap_compare, store, worker, screen, size):
    fill_lab(store, worker)
    freeze_times(store)

    async def run_before(pilot) -> None:
        # The first key waits for the app to have mounted, polled and drawn: a key that comes
        # sooner can be undone by the tabs still settling on their first one.
        await _steady(pilot)
        await screen(pilot)
        await _steady(pilot)

    assert snap_compare(make_app(store), terminal_size=size, run_before=run_before)
