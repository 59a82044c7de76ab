"""How run values read in tables: short, fixed-width friendly, never wall-clock relative
(so a snapshot of the same database always draws the same).

Text from the database or a file (a dataset path, an error, a note, a device) is data: it is
shown as it is, never read as markup, which could break the screen (`[/]`) or add a link that
runs an action (`[@click=app.quit]`). Tables take it through `literal`, and every Static or
Label that shows it is built with `markup=False`; the app's notifications are never markup."""

from __future__ import annotations

import math
from datetime import datetime
from typing import overload

from rich.text import Text

from store.params import PARAMS, RunParams, format_value
from store.records import RunRecord
from store.status import RunStatus

# What a table cell of the TUI holds: text (plain, or styled as a rich Text) or a whole number,
# which a table aligns on the right.
Cell = Text | str | int

STATUS_STYLE = {
    RunStatus.QUEUED: "dim",
    RunStatus.RUNNING: "bold green",
    RunStatus.DONE: "green",
    RunStatus.FAILED: "bold red",
    RunStatus.CANCELLED: "yellow",
    RunStatus.LOST: "red",
    RunStatus.INTERRUPTED: "yellow",
    # Stopped early by its search's pruner: an ending the search chose, neither success nor failure.
    RunStatus.PRUNED: "cyan",
}

# A search's phase (store.searches.SearchRecord.phase), styled as the run statuses it resembles.
PHASE_STYLE = {
    "running": "bold green",
    "paused": "yellow",
    "stopping": "bold yellow",
    "stopped": "dim",
    "finished": "green",
}


@overload
def literal(value: str | Text) -> Text: ...
@overload
def literal(value: int) -> int: ...
def literal(value: Cell) -> Text | int:
    """A str as Rich draws it unchanged (no markup, no :emoji: codes); any other value as is."""
    return Text(value) if isinstance(value, str) else value


def rmse(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def seconds(value: float) -> str:
    """An epoch's time: two decimals under 10 s, so a fast epoch (0.04 s on a GPU or ML-100K) does
    not read as 0.0, one above."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def count(number: int, noun: str) -> str:
    """'1 run', '2 runs', 'no runs'."""
    return f"{number or 'no'} {noun}{'' if number == 1 else 's'}"


def sweep_label(run: RunRecord) -> str:
    """How a message names the run's sweep: by its name and id, or its id alone."""
    return f"sweep {run.sweep_name!r} (#{run.sweep_id})" if run.sweep_name else f"sweep #{run.sweep_id}"


def when(moment: datetime | None) -> str:
    """UTC, to the minute: the same on every machine, whatever its time zone."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


# The parameters the Queue and History tables show, as (column key, heading): those declared with
# a heading in store/params.py, in declaration order.
PARAM_HEADINGS = tuple((name, declared.heading) for name, declared in PARAMS.items() if declared.heading)


def param_cells(run: RunRecord) -> tuple[int | str, ...]:
    """The cells of PARAM_HEADINGS for this run."""
    return tuple(param_cell(run.params, name) for name, _ in PARAM_HEADINGS)


def param_cell(params: RunParams, name: str) -> int | str:
    """A parameter as a table shows it: "-" where the run's model has no use for it (MF's hidden
    layers); integers as numbers, so they line up on the right."""
    value = getattr(params, name)
    if not PARAMS[name].applies_to(params.model):
        return "-"
    return value if isinstance(value, int) and not isinstance(value, bool) else format_value(value)


def device(run: RunRecord) -> str:
    """Where it ran, or before it has run, what it asked for."""
    return run.ran_on or run.params.device


def pack(run: RunRecord) -> str:
    """The pack a run trains (or trained) in: "#5", a multiplication sign and "3" for the pack whose
    first run is #5, of 3 runs; "" for a run that trains alone."""
    if run.pack_id is None or run.pack_size is None:
        return ""
    return f"#{run.pack_id}\N{MULTIPLICATION SIGN}{run.pack_size}"


def progress(run: RunRecord) -> str:
    """'3/20', and while the 4th epoch is under way '3/20 +45%'."""
    done = f"{run.epoch}/{run.params.epochs}"
    if run.status == RunStatus.RUNNING and run.epoch_progress > 0:
        return f"{done} +{run.epoch_progress:.0%}"
    return done


def status(run: RunRecord) -> str:
    if run.status == RunStatus.RUNNING and run.cancel_requested:
        return "cancelling"
    return run.status


def status_text(run: RunRecord) -> Text:
    """`status(run)` in the colour of the run's status."""
    return Text(status(run), STATUS_STYLE.get(run.status, ""))


def phase_text(phase: str) -> Text:
    """A search's phase in its colour."""
    return Text(phase, PHASE_STYLE.get(phase, ""))


def eta(run: RunRecord, epoch_seconds: float | None) -> float | None:
    """Seconds a running run still needs at `epoch_seconds` per epoch; None for any other run,
    or while its speed is not known yet."""
    if run.status != RunStatus.RUNNING or epoch_seconds is None:
        return None
    return epoch_seconds * max(run.params.epochs - run.epoch - run.epoch_progress, 0)


def first_line(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
