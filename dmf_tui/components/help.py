"""The help screen on `?`: every key, grouped by where it works."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# dmf-tui

Queue MF/DeepMF experiments, watch them train, rank every run. A worker (`w`, or
`dmf-tui worker --detach` in a shell) trains the queue; the TUI only reads and writes the database,
so it can be closed and reopened at any time.

| Where | Key | Does |
|---|---|---|
| anywhere | `1` `2` `3` | Queue, Live, History tab |
| | `n` | New experiment form |
| | `p` | pause / resume the queue (running runs go on) |
| | `w` / `W` | start a detached worker / stop workers |
| | `ctrl+p` | command palette: every action by name |
| | `?` | this help; `q` quits |
| Queue | `c` / `r` | cancel the run / retry a run that ended badly |
| | `K` `J` or `shift+↑` `shift+↓` | move a queued run up / down |
| Queue, Live, History | `enter` | run detail of the run under the cursor |
| History | `/` | filter: `model:deepmf dataset:ml-1m status:failed sweep:3` and free text |
| | `s` / `S` | sort by the cursor's column (again: next column) / reverse; or click a header |
| | `space` / `m` | mark runs / compare the marked runs |
| | `e` | export the listed runs to a CSV file in the current directory |
| Run detail | `l` | clone into the New experiment form |
| | `c` / `r` | cancel the run / retry it |
| | `ctrl+s` | save the notes |
| Compare | `t` | show the train curves too |
| Form | `ctrl+s` or `enter` | queue the grid; fields take comma lists (hidden: `10,5/64,32`) |
| | `escape` | close without queuing |
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
