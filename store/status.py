"""The states a run and a worker can be in, and the one table of the changes a run's status may make.

A run is created queued (`add`, the form) or running (`dmf-tui run`, which trains without the queue).
From there its status only moves along TRANSITIONS; store.base.change_run and the worker's fenced
writes in store.queue check every change against it, so no code path can turn a lost or cancelled run
into a done one. A status with no way out is finished: nothing changes it again.

A worker's state is not stored: store.workers derives it from the worker's row each time it is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

from store.errors import StoreError, TransitionError


class _PlainEnum(str, Enum):
    """A str Enum that prints as its bare value ("done"), as the database stores it. Without these
    two methods str() and f-strings of a (str, Enum) member say "RunStatus.DONE" on some Python
    versions and "done" on others (the rules changed in 3.11 and again in 3.12)."""

    _value_: str  # every member's value is its text (tells the type checker what .value is)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class RunStatus(_PlainEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # its worker died or stopped answering (store.workers.reap_lost)
    INTERRUPTED = "interrupted"  # its worker was told to stop (SIGTERM, Ctrl-C) before the run ended
    PRUNED = "pruned"  # a trial of a search that its pruner stopped early: its curve was not promising

    @property
    def is_finished(self) -> bool:
        """Whether the run has ended: its status will never change again."""
        return not TRANSITIONS[self]

    @property
    def is_retried(self) -> bool:
        """Whether a run that ends like this is queued again while it has retries left (add
        --retries N): it ended because its worker died or was stopped, not because of the run."""
        return self in (RunStatus.LOST, RunStatus.INTERRUPTED)

    def can_become(self, new: RunStatus) -> bool:
        return new in TRANSITIONS[self]


class WorkerState(_PlainEnum):
    RUNNING = "running"
    STALE = "stale"  # no recent heartbeat, or its pid is gone from this host: its runs are lost
    STOPPED = "stopped"  # it said it stopped, or was found gone and marked so


# Every change a run's status may make, and the only ones.
TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = MappingProxyType({
    # Claimed by a worker, or cancelled before any worker took it.
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    # Ended by its worker (finish_run), or declared lost when its worker is gone (reap_lost).
    # Pruned: a search's pruner stopped it (store/study.py).
    RunStatus.RUNNING: frozenset({RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED,
                                  RunStatus.INTERRUPTED, RunStatus.LOST, RunStatus.PRUNED}),
    RunStatus.DONE: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.LOST: frozenset(),
    RunStatus.INTERRUPTED: frozenset(),
    RunStatus.PRUNED: frozenset(),
})

# What a run is created as: queued, or running for `dmf-tui run`.
INITIAL_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
# Tuples of members (each equal to its plain string) in the order above, for listings and filters.
STATUSES = tuple(RunStatus)
FINISHED_STATUSES = tuple(s for s in RunStatus if s.is_finished)
# The runs that ended badly (a cancel was asked for): those the Queue lists with their reason and
# `retry --sweep` queues again.
ENDED_BADLY = (RunStatus.FAILED, RunStatus.LOST, RunStatus.INTERRUPTED)


def run_status(value: str) -> RunStatus:
    """The RunStatus named `value`; StoreError for any other text."""
    try:
        return RunStatus(value)
    except ValueError:
        raise StoreError(f"unknown run status {value!r}; one of {', '.join(STATUSES)}") from None


def check_transition(old: str, new: str, *, run_id: int | None = None) -> None:
    """TransitionError, naming both states, unless TRANSITIONS lets a run go from `old` to `new`."""
    before, after = run_status(old), run_status(new)
    if before.can_become(after):
        return
    which = "a run" if run_id is None else f"run {run_id}"
    allowed = sorted(TRANSITIONS[before], key=STATUSES.index)
    why = (f"a {before} run can only become {_or(allowed)}" if allowed
           else f"a {before} run has finished and does not change again")
    raise TransitionError(f"cannot change {which} from {before} to {after}: {why}")


def _or(items: list[RunStatus]) -> str:
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
