"""The command palette (ctrl+p): every action of the app by name, wherever the focus is."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (title, what it does, app action)
COMMANDS = (
    ("New experiment", "open the form to queue a grid of runs", "new_experiment"),
    ("Show Queue", "running and queued runs", "show_tab('queue')"),
    ("Show Live", "epochs and curves of running runs", "show_tab('live')"),
    ("Show History", "finished runs ranked by best test RMSE", "show_tab('history')"),
    ("Cancel run", "cancel the run selected in the Queue", "queue_action('cancel')"),
    ("Retry run", "queue again the run selected in the Queue", "queue_action('retry')"),
    ("Move run up", "claim the selected queued run earlier", "queue_action('move(-1)')"),
    ("Move run down", "claim the selected queued run later", "queue_action('move(1)')"),
    ("Pause or resume the queue", "paused, workers take no new runs", "toggle_pause"),
    ("Start worker", "start a detached worker on this database", "start_worker"),
    ("Stop worker", "stop the workers of this database", "stop_worker"),
    ("Filter History", "model:, dataset:, status:, sweep: and free text", "history_action('focus_filter')"),
    ("Compare marked runs", "parameter diff and overlaid curves", "history_action('compare')"),
    ("Export runs to CSV", "the History as listed, to a file in the current directory", "history_action('export')"),
    ("Help", "keys and what they do", "help"),
    ("Quit", "leave the TUI (workers go on)", "quit"),
)


class DmfCommands(Provider):
    def _hits(self):
        for title, help_text, action in COMMANDS:
            yield title, help_text, partial(self.app.run_action, action)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._hits():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._hits():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
