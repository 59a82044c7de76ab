"""Driving a key that may ask first (components/confirm.py) in a pilot test.

settle() returns while a question is up (the worker that asked waits for the answer), so it
cannot tell whether a key asked. `asks` waits for the question, `does_not_ask` for the key's work
to end without one, failing (not hanging) when the other happens."""

from __future__ import annotations

from typing import Any, TypeVar

from textual.pilot import Pilot
from textual.screen import Screen

from dmf_tui.components.confirm import Confirm
from tests.tui.conftest import settle

S = TypeVar("S", bound=Screen[Any])


async def opens(pilot: Pilot, keys: str, kind: type[S]) -> S:
    """Press `keys` (words, as pilot.press takes them) and return the screen of `kind` they open: a
    question, or a window asking for a value (settle() would wait for the answer)."""
    await pilot.press(*keys.split())
    for _ in range(500):
        screen = pilot.app.screen
        if isinstance(screen, kind):
            await pilot.pause()  # let it draw and take the focus
            return screen
        await pilot.pause(0.01)
    raise AssertionError(f"{keys or 'that'} did not open {kind.__name__}")


async def asks(pilot: Pilot, keys: str = "") -> str:
    """Press `keys` and return the question they asked."""
    return (await opens(pilot, keys, Confirm)).question


async def does_not_ask(pilot: Pilot, keys: str = "") -> None:
    """Press `keys` and wait for what they started to finish, failing if it asks instead."""
    await pilot.press(*keys.split())
    for _ in range(500):
        screen = pilot.app.screen
        assert not isinstance(screen, Confirm), f"{keys or 'that'} asked: {screen.question}"
        if not pilot.app.workers:
            await settle(pilot)
            return
        await pilot.pause(0.01)
    raise AssertionError(f"{keys or 'that'} never finished")


async def answer(pilot: Pilot, key: str) -> None:
    """Answer the question on screen with `key` (y, n, escape) and let what follows finish."""
    assert isinstance(pilot.app.screen, Confirm), "no question to answer"
    await pilot.press(key)
    await settle(pilot)
