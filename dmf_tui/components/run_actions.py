"""What the Queue and History tabs both do to runs after asking first: delete them, cancel a sweep.
One wording of each question and outcome, whichever tab the key was pressed in."""

from __future__ import annotations

from textual.widget import Widget

from dmf_tui.components import fmt
from dmf_tui.components.confirm import Confirm
from dmf_tui.host import dmf_app
from dmf_tui.messages import StoreChanged
from store.records import RunRecord
from store.status import RunStatus


async def delete_runs(host: Widget, run_ids: list[int]) -> int | None:
    """Delete runs once confirmed: how many went, or None (not confirmed, or the store refused: a
    running run, named in a notification). Called from a worker of `host`."""
    app = dmf_app(host.app)
    which = f"run {run_ids[0]}" if len(run_ids) == 1 else fmt.count(len(run_ids), "run")
    question = f"Delete {which} with their epochs and logs? This cannot be undone (a archives instead)."
    if not await app.push_screen_wait(Confirm(question, yes="Delete")):
        return None
    deleted = await app.db(app.store.delete_runs, run_ids)
    if deleted is not None:
        host.notify(f"deleted {fmt.count(deleted, 'run')}")
        host.post_message(StoreChanged())
    return deleted


async def cancel_sweep(host: Widget, run: RunRecord) -> None:
    """Cancel the queued and running runs of `run`'s sweep once confirmed."""
    app = dmf_app(host.app)
    if run.sweep_id is None:
        host.notify(f"run {run.id} is not part of a sweep", severity="warning")
        return
    sweep = fmt.sweep_label(run)
    active = await app.db(app.store.sweep_run_ids, run.sweep_id, statuses=[RunStatus.QUEUED, RunStatus.RUNNING])
    if active is None:
        return
    if not active:
        host.notify(f"{sweep} has no queued or running runs", severity="warning")
        return
    question = f"Cancel {fmt.count(len(active), 'run')} of {sweep}? Running ones stop within the epoch."
    if not await app.push_screen_wait(Confirm(question, yes="Cancel sweep")):
        return
    outcome = await app.db(app.store.cancel, active)
    if outcome is not None:
        cancelled = sum(result == RunStatus.CANCELLED for result in outcome.values())
        stopping = sum(result == "cancelling" for result in outcome.values())
        host.notify(f"{sweep}: {cancelled} cancelled" + (f", {stopping} stopping" if stopping else ""))
        host.post_message(StoreChanged())
