"""Run statuses and worker states: how they print, the table of legal changes, and the store keeping to it."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.base import change_run
from store.db import Store
from store.errors import StoreError, TransitionError
from store.params import RunParams
from store.status import (
    FINISHED_STATUSES,
    INITIAL_STATUSES,
    STATUSES,
    TRANSITIONS,
    RunStatus,
    WorkerState,
    check_transition,
)
from store.tables import Run

pytestmark = pytest.mark.backends

PAIRS = list(itertools.product(RunStatus, repeat=2))


@pytest.mark.parametrize("member", [*RunStatus, *WorkerState])
def test_a_member_prints_as_its_plain_value(member) -> None:
    value = member.value
    assert (str(member), f"{member}", f"{member:>12}", "%s" % member,  # noqa: UP031  (the old formatting must print the value too)
        f"{member}") == (
        value, value, f"{value:>12}", value, value)
    assert json.dumps({member: member}) == json.dumps({value: value})
    assert member == value and hash(member) == hash(value)  # a plain string finds it in a dict, and back


def test_every_status_is_reachable_and_every_run_can_end() -> None:
    reachable = set(INITIAL_STATUSES)
    frontier = list(INITIAL_STATUSES)
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in reachable:
                reachable.add(new)
                frontier.append(new)
    assert reachable == set(RunStatus)
    # Only a finished status is a dead end, so no run can be stuck queued or running.
    for status in RunStatus:
        assert status.is_finished or any(new.is_finished for new in TRANSITIONS[status]), status


def test_the_tuples_follow_the_enum() -> None:
    assert tuple(RunStatus) == STATUSES
    assert tuple(s for s in RunStatus if not TRANSITIONS[s]) == FINISHED_STATUSES
    retried = {status for status in RunStatus if status.is_retried}
    assert retried == {RunStatus.LOST, RunStatus.INTERRUPTED}
    # A run is queued again only once it has ended, so a retried status must be a finished one.
    assert all(status.is_finished for status in retried)
    assert not RunStatus.QUEUED.is_finished and not RunStatus.RUNNING.is_finished


@pytest.mark.parametrize("old, new", PAIRS)
def test_check_transition_walks_the_table(old: RunStatus, new: RunStatus) -> None:
    if new in TRANSITIONS[old]:
        check_transition(old, new)
    else:
        with pytest.raises(TransitionError, match=f"cannot change run 3 from {old} to {new}: a {old} run "):
            check_transition(old, new, run_id=3)


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(StoreError, match="unknown run status 'finished'"):
        check_transition("running", "finished")


def _run_in(store: Store, status: RunStatus) -> int:
    run_id = store.enqueue(RunParams())
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == run_id).values(status=status, error=None))
    return run_id


def _stored(store: Store, run_id: int) -> tuple[str, str | None]:
    with Session(store.engine) as session:
        status, error = session.execute(select(Run.status, Run.error).where(Run.id == run_id)).one()
    return status, error


def test_change_run_makes_every_legal_change_and_refuses_every_other(store: Store) -> None:
    """The store's one door for status changes: each of the 49 pairs, on a real row."""
    for old, new in PAIRS:
        run_id = _run_in(store, old)
        with Session(store.engine) as session, session.begin():
            if new in TRANSITIONS[old]:
                assert change_run(session, run_id, old, status=new, error="changed")
            else:
                with pytest.raises(TransitionError, match=f"cannot change run {run_id} from {old} to {new}"):
                    change_run(session, run_id, old, status=new, error="changed")
        expected = (new, "changed") if new in TRANSITIONS[old] else (old, None)
        assert _stored(store, run_id) == expected, (old, new)


def test_finish_run_takes_only_the_changes_of_a_running_run(store: Store) -> None:
    for new in RunStatus:
        run = store.start_run(RunParams(), device="cpu")
        if RunStatus.RUNNING.can_become(new):
            store.finish_run(run.id, new, error="changed")
            assert _stored(store, run.id) == (new, "changed")
        else:
            with pytest.raises(TransitionError, match=f"cannot change run {run.id} from running to {new}"):
                store.finish_run(run.id, new, error="changed")
            assert store.get_run(run.id) == run
