"""Queue operations: adding runs, claiming them, recording their epochs and their end.

Every state change is a conditional UPDATE ("... WHERE id = ? AND status = 'queued'") whose row count
says whether it happened, so two processes racing for the same run cannot both win, on SQLite (where
BEGIN IMMEDIATE serialises writers anyway) or on a server database. Which changes may happen at all
is store/status.py's table.

A worker's writes to the run it claimed (device, progress, epochs, its end) are fenced the same way:
they happen only while the run is still running under that worker. A worker stopped for longer than
the heartbeat grace (SIGSTOP, a hung mount, a closed laptop) finds its run declared lost when it
wakes, and gets ClaimLostError instead of writing on into it.

A worker may claim several runs at once, a pack that trains as one batched model (claim_pack). Each
stays its own run for all of the above: claimed, fenced, ended and found lost one by one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, and_, case, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import catalog
from store.base import StoreBase, change_claimed, change_run, hold_queue_order, last_position, load_runs
from store.errors import ParamError, StoreError, UnknownRunError
from store.params import RunParams, check_retries
from store.records import Ranking, RunRecord, run_record
from store.searches import ask_trial, stopped_search
from store.status import RunStatus
from store.study import sampler_attrs
from store.tables import Epoch, QueueState, Run, Sweep, param_columns, utcnow


class QueueOps(StoreBase):
    # --- adding runs -------------------------------------------------------------------------

    def enqueue(self, params: RunParams, *, sweep_id: int | None = None, retries: int = 0) -> int:
        """Queue one run at the end of the queue; returns its id. With `retries`, a run whose worker
        dies or is stopped is queued again by itself, up to that many times."""
        params.validate()
        check_retries(retries)
        with self._write() as session:
            return _insert_queued(session, [params], sweep_id, retries=retries)[0]

    def enqueue_grid(self, runs: Sequence[RunParams], *, name: str | None = None,
                     retries: int = 0) -> tuple[int, list[int]]:
        """Queue runs (e.g. from params.expand_grid) as one new sweep; returns (sweep id, run ids).
        `retries` is as for enqueue, for each run."""
        if not runs:
            raise StoreError("nothing to queue: the grid is empty")
        for params in runs:
            params.validate()
        check_retries(retries)
        with self._write() as session:
            sweep = Sweep(name=name)
            session.add(sweep)
            session.flush()
            return sweep.id, _insert_queued(session, runs, sweep.id, retries=retries)

    def start_run(self, params: RunParams, *, worker_id: int | None = None, device: str) -> RunRecord:
        """Record a run that starts now without going through the queue (`dmf-tui run`)."""
        params.validate()
        now = utcnow()
        with self._write() as session:
            run = Run(status=RunStatus.RUNNING, worker_id=worker_id, ran_on=device, started_at=now,
                      created_at=now, updated_at=now, **param_columns(params))
            session.add(run)
            session.flush()
            return run_record(run)

    def retry(self, run_ids: Iterable[int]) -> list[int]:
        """Queue a fresh copy of each run (same parameters, same sweep); returns the new ids."""
        with self._write() as session:
            return [_queue_copy(session, source, notes=f"retry of #{source.id}")
                    for source in load_runs(session, run_ids)]

    # --- the worker's side -------------------------------------------------------------------

    def claim(self, worker_id: int | None, *, device: str) -> RunRecord | None:
        """Take the first queued run and mark it running on `device`; None when the queue is empty
        or paused. That is claim_pack's first run, alone."""
        pack = self.claim_pack(worker_id, device=device, limit=1)
        return pack[0] if pack else None

    def claim_pack(self, worker_id: int | None, *, device: str, limit: int) -> list[RunRecord]:
        """Take the first queued run and up to `limit` - 1 more that can train with it as one pack
        (engine.trainer.fit_pack), all marked running on `device` in one transaction; [] when the
        queue is empty or paused.

        The first run is the first in the queue. A search holds a place in the queue, as a grid's runs
        do: when it comes before the first queued run and has trials left, its next trial is asked and
        taken. The others share the first's RunParams.pack_key (a run whose key is None trains alone):
        more trials of the first's search while it draws ones that fit (the first that does not is
        queued, to be taken next), then queued runs in queue order among the next PACK_WINDOW, those
        of paused searches excepted. Every run of a pack of two or more records the pack (pack_id, the
        first run's id; pack_size)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ParamError(f"a pack is 1 run or more: limit must be a whole number >= 1 (got {limit!r})")
        with self._write() as session:
            if session.get_one(QueueState, 1).paused:
                return []
            first = _claim_first(session, worker_id, device)
            if first is None:
                return []
            pack = [first]
            key = RunParams.from_dict(first.params, validate=False).pack_key()
            if key is not None and limit > 1:
                if first.trial is not None:
                    while len(pack) < limit:
                        trial = ask_trial(session, worker_id, device, before=None, search=first.sweep_id,
                                          joins=lambda params: params.pack_key() == key)
                        if trial is None:
                            break
                        pack.append(trial)
                pack += _claim_matching(session, worker_id, device, key, limit - len(pack))
            if len(pack) > 1:
                for run in pack:
                    run.pack_id, run.pack_size = first.id, len(pack)
            return [run_record(run) for run in pack]

    # The writes below take the id of the worker that claimed the run (None: any worker, as for a
    # run started without one) and raise ClaimLostError when the run is no longer running under it.

    def set_device(self, run_id: int, device: str, *, worker_id: int | None = None) -> None:
        """Record the device a claimed run really trains on when it is not its slot's (a run that
        asked for the CPU, claimed by a GPU slot)."""
        with self._write() as session:
            change_claimed(session, run_id, worker_id, ran_on=device, updated_at=utcnow())

    def set_pack(self, run_ids: Sequence[int], *, worker_id: int | None = None) -> None:
        """Record that the claimed runs `run_ids` train together as one pack (the first's id, their
        count), or alone when there is one: what a worker records when its device has room for
        fewer of a claim's runs at once than it claimed."""
        pack_id, pack_size = (run_ids[0], len(run_ids)) if len(run_ids) > 1 else (None, None)
        with self._write() as session:
            for run_id in run_ids:
                change_claimed(session, run_id, worker_id, pack_id=pack_id, pack_size=pack_size, updated_at=utcnow())

    def set_progress(self, run_id: int, fraction: float, *, worker_id: int | None = None) -> None:
        """How far the running epoch has got (0..1); record_epoch sets it back to 0."""
        with self._write() as session:
            change_claimed(session, run_id, worker_id, epoch_progress=min(max(fraction, 0.0), 1.0),
                            updated_at=utcnow())

    def record_epoch(self, run_id: int, epoch: int, *, train_rmse: float, test_rmse: float,
                     seconds: float, val_rmse: float | None = None, ranking: Ranking | None = None,
                     worker_id: int | None = None) -> None:
        """Store one finished epoch and update the run's current, last and best figures with it,
        in one transaction. An epoch number can be recorded once per run."""
        train, test, val = (_finite(x) for x in (train_rmse, test_rmse, val_rmse))
        values = dict(epoch=case((Run.epoch > epoch, Run.epoch), else_=epoch), epoch_progress=0.0,
                      last_train_rmse=train, last_test_rmse=test, updated_at=utcnow())
        # The best epoch is chosen by validation RMSE when the run has a validation split, as the
        # trainer's early stopping and checkpoint choose it, else by test RMSE as the lab did. Every
        # CASE reads the row as it was before this UPDATE, as SQL requires.
        if val is not None:
            improved = or_(Run.best_val_rmse.is_(None), Run.best_val_rmse > val)
            values["best_val_rmse"] = case((improved, val), else_=Run.best_val_rmse)
        elif test is not None:
            improved = or_(Run.best_test_rmse.is_(None), Run.best_test_rmse > test)
        if val is not None or test is not None:
            values["best_test_rmse"] = case((improved, test), else_=Run.best_test_rmse)
            values["best_epoch"] = case((improved, epoch), else_=Run.best_epoch)
        try:
            with self._write() as session:
                change_claimed(session, run_id, worker_id, **values)
                session.add(Epoch(run_id=run_id, epoch=epoch, train_rmse=train, test_rmse=test,
                                  val_rmse=val, seconds=seconds, **_ranking_columns(ranking)))
        except IntegrityError:
            raise StoreError(f"run {run_id} already has epoch {epoch}") from None

    def finish_run(self, run_id: int, status: str, *, error: str | None = None, worker_id: int | None = None,
                   checkpoint: str | None = None, ranking: Ranking | None = None) -> int | None:
        """End a running run: done, failed, cancelled, interrupted or lost (with the reason in
        `error`), with its best epoch's checkpoint file and ranking metrics where it has them.
        A run that ends interrupted or lost with retries left is queued again as a new
        run; returns that run's id (else None). A run that is not running (still queued, or
        already ended: lost while its worker was stopped, cancelled) is left as it is:
        ClaimLostError; a status a running run cannot take (queued): TransitionError."""
        now = utcnow()
        with self._write() as session:
            change_claimed(session, run_id, worker_id, status=status, error=error, finished_at=now,
                            updated_at=now, checkpoint=checkpoint, **_ranking_columns(ranking))
            return queue_again(session, run_id)

    def is_cancel_requested(self, run_id: int) -> bool:
        with self._read() as session:
            requested = session.scalar(select(Run.cancel_requested).where(Run.id == run_id))
        if requested is None:
            raise UnknownRunError(f"no run with id {run_id}")
        return requested

    # --- what a person does to the queue ----------------------------------------------------

    def cancel(self, run_ids: Iterable[int]) -> dict[int, str]:
        """Cancel runs: a queued run is cancelled at once ("cancelled"), a running one is asked to
        stop at its next check ("cancelling", which is not a status: its worker then ends it
        cancelled); any other run is left as it is (its status)."""
        outcome: dict[int, str] = {}
        now = utcnow()
        with self._write() as session:
            for run in load_runs(session, run_ids):
                if change_run(session, run.id, RunStatus.QUEUED, status=RunStatus.CANCELLED, finished_at=now,
                              updated_at=now):
                    outcome[run.id] = RunStatus.CANCELLED
                elif change_run(session, run.id, RunStatus.RUNNING, cancel_requested=True, updated_at=now):
                    outcome[run.id] = "cancelling"
                else:
                    outcome[run.id] = run.status  # as loaded: the write lock is held
        return outcome

    def move(self, run_id: int, offset: int) -> None:
        """Move a queued run `offset` places later in the queue (negative: earlier), clamped to the
        ends. The queue's existing positions are dealt out again in the new order."""
        with self._write() as session:
            hold_queue_order(session)
            (run,) = load_runs(session, [run_id])
            if run.status != RunStatus.QUEUED:
                raise StoreError(f"run {run_id} is {run.status}, not queued")
            queued = list(session.scalars(
                select(Run).where(Run.status == RunStatus.QUEUED).order_by(Run.position, Run.id)
            ))
            positions = sorted(r.position or 0 for r in queued)
            index = queued.index(run)
            queued.insert(max(0, min(len(queued) - 1, index + offset)), queued.pop(index))
            for row, position in zip(queued, positions):
                if row.position != position:
                    row.position = position

    def set_paused(self, paused: bool) -> None:
        """Paused, workers claim nothing; running runs go on."""
        with self._write() as session:
            session.get_one(QueueState, 1).paused = paused

    def is_paused(self) -> bool:
        with self._read() as session:
            return session.get_one(QueueState, 1).paused

    def set_notes(self, run_id: int, text: str) -> None:
        with self._write() as session:
            (run,) = load_runs(session, [run_id])
            run.notes = text
            run.updated_at = utcnow()

    def set_tags(self, run_id: int, tags: Iterable[str]) -> None:
        with self._write() as session:
            (run,) = load_runs(session, [run_id])
            run.tags = ",".join(t.strip() for t in tags if t.strip())
            run.updated_at = utcnow()


# How many queued runs a claim looks through for runs to pack with its first: more than any grid a
# person queues, and a bound on one claim's work however long the queue grows.
PACK_WINDOW = 1000


def _claimable() -> ColumnElement[bool]:
    """The queued runs a worker may take: not those of a paused search, which wait with it."""
    paused = select(Sweep.id).where(Sweep.state == "paused")
    return and_(Run.status == RunStatus.QUEUED, or_(Run.sweep_id.is_(None), Run.sweep_id.not_in(paused)))


def _claim_first(session: Session, worker_id: int | None, device: str) -> Run | None:
    """The first run of a claim, marked running: the first claimable run, or the next trial of a
    search placed before it; None when there is neither."""
    while True:
        # Locked, skipping the runs other claims hold, so that claims on many machines sharing a
        # server never wait on each other (SQLite renders no FOR UPDATE: its write lock is held).
        first = session.execute(select(Run.id, Run.position).where(_claimable()).order_by(Run.position, Run.id)
                                .limit(1).with_for_update(skip_locked=True)).one_or_none()
        trial = ask_trial(session, worker_id, device, before=None if first is None else first.position)
        if trial is not None:
            return trial
        if first is None:
            return None
        if _take(session, first.id, worker_id, device):
            return session.get_one(Run, first.id)


def _claim_matching(session: Session, worker_id: int | None, device: str, key: tuple[object, ...],
                    room: int) -> list[Run]:
    """Up to `room` claimable runs whose pack key is `key`, in queue order among the next
    PACK_WINDOW, marked running."""
    if room < 1:
        return []
    window = session.execute(
        select(Run.id, Run.params).where(_claimable()).order_by(Run.position, Run.id).limit(PACK_WINDOW)
    ).all()
    matching = [run_id for run_id, params in window if RunParams.from_dict(params, validate=False).pack_key() == key]
    # Only the runs that match are locked (others' claims skip them), and only once known to match:
    # locking the whole window would hide it from every other claim for as long as this one lasts.
    free = session.scalars(select(Run.id).where(Run.id.in_(matching), _claimable()).order_by(Run.position, Run.id)
                           .limit(room).with_for_update(skip_locked=True)).all() if matching else []
    return [session.get_one(Run, run_id) for run_id in free if _take(session, run_id, worker_id, device)]


def _take(session: Session, run_id: int, worker_id: int | None, device: str) -> bool:
    """Mark a queued run running under `worker_id` on `device`; False when another claimer took it first."""
    now = utcnow()
    return change_run(session, run_id, RunStatus.QUEUED, status=RunStatus.RUNNING, worker_id=worker_id,
                      ran_on=device, started_at=now, updated_at=now)


def queue_again(session: Session, run_id: int) -> int | None:
    """Queue a copy of a run that just ended lost or interrupted, if it has retries left (with one
    fewer); the run itself stays as it ended, with its epochs. Returns the copy's id, else None.

    A search's trial that was interrupted (its worker was stopped, not the trial's fault) is queued
    again whatever its retries: restarting workers loses no trial. No trial of a stopped search is."""
    run = session.get_one(Run, run_id)
    if not run.status.is_retried or (run.trial is not None and stopped_search(session, run.sweep_id)):
        return None
    if run.trial is not None and run.status == RunStatus.INTERRUPTED:
        return _queue_copy(session, run, notes=f"trial {run.trial} again after #{run.id} was interrupted",
                           retries=run.retries)
    if run.retries <= 0:
        return None
    return _queue_copy(session, run, notes=f"automatic retry of #{run.id}", retries=run.retries - 1)



def _queue_copy(session: Session, source: Run, *, notes: str, retries: int = 0) -> int:
    """Queue a copy of `source` (its parameters, sweep, tags and trial) at the end of the queue."""
    params = RunParams.from_dict(source.params)
    (new_id,) = _insert_queued(session, [params], source.sweep_id, retries=retries)
    copy = session.get_one(Run, new_id)
    copy.tags = source.tags
    copy.notes = notes
    # The sampler's notes go with the trial; the pruner's rungs start again with its new curve.
    copy.trial, copy.trial_attrs = source.trial, sampler_attrs(source.trial_attrs)
    if source.trial is not None and source.sweep is not None and source.sweep.position is not None:
        # A trial run again keeps its search's place: it is taken before the search asks new ones.
        copy.position = source.sweep.position
    return new_id


def _insert_queued(session: Session, runs: Sequence[RunParams], sweep_id: int | None, *,
                   retries: int = 0) -> list[int]:
    last = last_position(session)
    now = utcnow()
    keys = {data: catalog.resolve(data).key for data in {params.data for params in runs}}
    rows = [
        Run(status=RunStatus.QUEUED, sweep_id=sweep_id, position=last + i, retries=retries, created_at=now,
            updated_at=now, **param_columns(params, keys[params.data]))
        for i, params in enumerate(runs, start=1)
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]



def _ranking_columns(ranking: Ranking | None) -> dict[str, float | None]:
    if ranking is None:
        return {}
    return {"precision_at_10": _finite(ranking.precision), "recall_at_10": _finite(ranking.recall),
            "ndcg_at_10": _finite(ranking.ndcg)}


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
