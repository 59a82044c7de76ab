"""The yes/no question: only y or the Yes button says yes; enter, n and esc say no."""

from __future__ import annotations

import pytest
from textual.app import App

from dmf_tui.components.confirm import Confirm


class Asker(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.answers: list[bool | None] = []

    def ask(self) -> None:
        self.push_screen(Confirm("delete [b]run[/b] 3?"), self.answers.append)


@pytest.mark.parametrize(("keys", "answer"), [(["y"], True), (["n"], False), (["escape"], False),
                                              (["enter"], False), (["tab", "enter"], True)])
async def test_only_yes_confirms(keys, answer):
    app = Asker()
    async with app.run_test() as pilot:
        app.ask()
        await pilot.pause()
        assert "[b]run[/b]" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press(*keys)
        await pilot.pause()
        assert app.answers == [answer]
        assert not isinstance(app.screen, Confirm)
