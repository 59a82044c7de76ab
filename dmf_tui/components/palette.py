"""The command palette (ctrl+p): every key that works where it is opened, by name.

The entries come from the bindings (dmf_tui.keys.palette_commands): a key added to the app, to a
main tab or to a screen is in the palette with its description and tooltip, and runs what the key runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from dmf_tui.host import dmf_app
from dmf_tui.keys import Command, palette_commands


class DmfCommands(Provider):
    def _hits(self) -> Iterator[tuple[Command, Callable[[], Awaitable[None]]]]:
        for command in palette_commands(self.screen):
            yield command, partial(self._run, command)

    async def _run(self, command: Command) -> None:
        """Run a key's action where the key would: on its tab, on the app, or on this screen."""
        place = command.place
        if place.tab is not None:
            await dmf_app(self.app).run_in_tab(place.tab, command.action)
        elif isinstance(self.app, place.owner):
            await self.app.run_action(command.action)
        else:
            await self.app.run_action(command.action, default_namespace=self.screen)

    async def discover(self) -> Hits:
        for command, callback in self._hits():
            yield DiscoveryHit(command.title, callback, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command, callback in self._hits():
            # The title is a footer's short word ("New"); what the key does ("open the New experiment
            # form") is found too, ranked below a match of the title.
            score = matcher.match(command.title) or matcher.match(command.help) / 2
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), callback, help=command.help)
