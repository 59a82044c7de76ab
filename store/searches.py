"""Searches in the store: creating one, asking it for trials, consulting its pruner, and what a person
does to it (pause, resume, extend, stop).

A search is a sweep with a spec (store/search.py). It queues nothing up front: when a worker finds no
queued run, claim() asks the oldest active search with trials left for its next trial (ask_trial below),
in the same write transaction that creates the trial's run as running under that worker, so no two
workers are handed the same trial and none is lost between asking and recording. Each epoch the worker
asks should_prune() whether the search's pruner stops the trial. Everything the sampler and pruner see
is rebuilt from the trials' runs (store/study.py): closing every terminal and restarting every worker
loses nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from store import catalog, study
from store.base import StoreBase, change_claimed, find_sweep, last_position
from store.errors import ParamError, StoreError
from store.params import RunParams
from store.records import RunRecord, run_record
from store.search import MAX_TRIALS, SEARCH_STATES, SearchSpec
from store.status import RunStatus
from store.tables import Epoch, Run, Sweep, param_columns, utcnow


@dataclass(frozen=True)
class SearchRecord:
    """A search and where it stands, counted over its trials (each trial as its newest run)."""

    id: int  # its sweep's id
    name: str | None
    spec: SearchSpec  # spec.trials is the count it was created with; `trials` has any extensions
    state: str  # active, paused or stopped (SEARCH_STATES)
    trials: int  # how many trials it may ask for
    created_at: datetime
    asked: int  # trials asked for so far
    counts: Mapping[str, int]  # trials by the status of their newest run
    best_run_id: int | None  # the done trial with the lowest validation RMSE
    best_val_rmse: float | None
    best_test_rmse: float | None  # that trial's test RMSE: reported, never chosen by

    @property
    def label(self) -> str:
        return _label(self)

    @property
    def active_trials(self) -> int:
        return self.counts.get(RunStatus.QUEUED, 0) + self.counts.get(RunStatus.RUNNING, 0)

    @property
    def phase(self) -> str:
        """What a person reads: running, paused, stopped or finished (active with every trial asked
        and ended), or "stopping" while a stopped search's last trials run."""
        if self.state == "active":
            return "finished" if self.asked >= self.trials and not self.active_trials else "running"
        if self.state == "stopped" and self.active_trials:
            return "stopping"
        return self.state


class SearchOps(StoreBase):
    def create_search(self, spec: SearchSpec, *, name: str | None = None) -> int:
        """Record a new, active search; returns its id (its sweep's). Workers ask it for trials."""
        catalog.resolve(spec.base.data)  # an unreadable file fails now, not at every trial
        with self._write() as session:
            sweep = Sweep(name=name, search=spec.to_dict(), state="active", trials=spec.trials, study_attrs={},
                          position=last_position(session) + 1)
            session.add(sweep)
            session.flush()
            return sweep.id

    def searches(self) -> list[SearchRecord]:
        """Every search, newest first."""
        with self._read() as session:
            return search_records(session)

    def get_search(self, search: int | str) -> SearchRecord:
        """The search with this id or name; StoreError when there is none."""
        with self._read() as session:
            (record,) = search_records(session, [find_sweep(session, search, searches_only=True)])
            return record

    def search_trials(self, search: int | str) -> list[RunRecord]:
        """The runs of a search's trials, the newest run of each trial, in trial order."""
        with self._read() as session:
            sweep = find_sweep(session, search, searches_only=True)
            return [run_record(run) for run in _newest_runs(session, sweep.id)]

    def set_search_state(self, search: int | str, state: str) -> SearchRecord:
        """Pause (no trial of it starts; running ones go on), resume (active) or stop (no more trials;
        its queued ones are cancelled; running ones finish) a search."""
        if state not in SEARCH_STATES:
            raise StoreError(f"unknown search state {state!r}: one of {', '.join(SEARCH_STATES)}")
        now = utcnow()
        with self._write() as session:
            sweep = find_sweep(session, search, searches_only=True)
            sweep.state = state
            if state == "stopped":
                session.execute(update(Run).where(Run.sweep_id == sweep.id, Run.status == RunStatus.QUEUED)
                                .values(status=RunStatus.CANCELLED, finished_at=now, updated_at=now)
                                .execution_options(synchronize_session=False))
            session.flush()
            (record,) = search_records(session, [sweep])
            return record

    def extend_search(self, search: int | str, more: int) -> SearchRecord:
        """Let a search ask for `more` trials; a stopped or finished one becomes active again. A grid
        search goes up to its grid's size and no further (ParamError once it is there)."""
        if isinstance(more, bool) or not isinstance(more, int) or more < 1:
            raise ParamError(f"extend a search by 1 or more trials (got {more!r})")
        with self._write() as session:
            sweep = find_sweep(session, search, searches_only=True)
            total = (sweep.trials or 0) + more
            grid = _spec(sweep).grid_size() if _spec(sweep).sampler == "grid" else None
            if grid is not None and total > grid:
                # Past its last point the grid sampler would train points it has trained already.
                if sweep.trials is not None and sweep.trials >= grid:
                    raise ParamError(f"{_label(sweep)} has run its whole grid of {grid} points: nothing to extend")
                total = grid
            if total > MAX_TRIALS:
                raise ParamError(f"a search may have at most {MAX_TRIALS:,} trials ({sweep.trials} + {more} is more)")
            sweep.trials = total
            if sweep.state == "stopped":
                sweep.state = "active"
            session.flush()
            (record,) = search_records(session, [sweep])
            return record

    def search_importances(self, search: int | str) -> dict[str, float]:
        """Each searched parameter's share in explaining the finished trials' validation RMSE (Optuna's
        fANOVA), largest first; empty until two finished trials differ."""
        with self._read() as session:
            sweep = find_sweep(session, search, searches_only=True)
            spec = _spec(sweep)
            states = trial_states(session, sweep.id, spec)
        return study.importances(spec, states)

    def should_prune(self, run_id: int, *, worker_id: int | None = None) -> bool:
        """Whether the pruner of the search this run is a trial of stops it now, given the epochs it
        has recorded; False for a run that is no trial or a search without a pruner. What the pruner
        notes on the trial is saved on the run, while `worker_id` still holds it (ClaimLostError)."""
        with self._read() as session:
            run = session.get(Run, run_id)
            if run is None or run.trial is None or run.sweep is None or run.sweep.search is None:
                return False
            spec = _spec(run.sweep)
            if not study.judges_at(spec, run.epoch):
                return False
            number, key, attrs = run.trial, run.sweep.id, run.trial_attrs
            states = trial_states(session, key, spec)
        prune, noted = study.should_prune(spec, states, number, key=key)
        if noted != (attrs or {}):
            with self._write() as session:
                change_claimed(session, run_id, worker_id, trial_attrs=noted)
        return prune


def ask_trial(session: Session, worker_id: int | None, device: str, *, before: int | None,
              search: int | None = None, joins: Callable[[RunParams], bool] | None = None) -> Run | None:
    """In a claim's write transaction: the next trial of the first active search in the queue (placed
    before queue position `before`, when there is a queued run there) with trials left, created as a
    run running under `worker_id` on `device`; None when no such search has one to give.

    A trial whose sampled values cannot train together (a conflict between two parameters) is recorded
    as failed with the reason, which teaches the sampler, and the next trial is asked.

    A pack asking for more trials of its search names it (`search`) and says which trials may train
    with it (`joins`). A trial that may not is queued at its search's place in the queue, so the
    next claim takes it first, and None is returned: once a search draws something else, the pack has
    had what that search can give it now.

    On a server, a search another claim is asking is skipped rather than waited for (SKIP LOCKED):
    its sampler state and trial numbers are that claim's until it commits."""
    searches = (select(Sweep).where(Sweep.state == "active").order_by(Sweep.position)
                .with_for_update(skip_locked=True))
    if before is not None:
        searches = searches.where(Sweep.position < before)
    if search is not None:
        searches = searches.where(Sweep.id == search)
    for sweep in session.scalars(searches):
        spec = _spec(sweep)
        while True:
            # Counted first, cheaply: an idle worker asks at every poll, and most searches are used up.
            asked = session.scalar(select(func.max(Run.trial)).where(Run.sweep_id == sweep.id)) or 0
            if asked >= (sweep.trials or 0):
                break
            states = trial_states(session, sweep.id, spec)
            now = utcnow()
            try:
                answer = study.ask(spec, states, sweep.study_attrs or {}, key=sweep.id)
            except Exception as error:  # whatever the sampler raised, no worker may die of it
                # The search stops, with a failed trial that says why, rather than fail at every claim.
                sweep.state = "stopped"
                session.add(Run(status=RunStatus.FAILED, sweep_id=sweep.id, trial=asked + 1, created_at=now,
                                updated_at=now, started_at=now, finished_at=now,
                                error=f"the search's sampler failed, so the search was stopped: "
                                      f"{type(error).__name__}: {error}", **param_columns(spec.base)))
                session.flush()
                break
            sweep.study_attrs = answer.study_attrs
            values: dict[str, Any] = dict(sweep_id=sweep.id, trial=asked + 1, trial_attrs=answer.trial_attrs,
                                          retries=spec.retries, created_at=now, updated_at=now)
            try:
                params = spec.params_for(answer.sampled)
            except ParamError as error:
                # Recorded with the values drawn, unchecked, so a person sees what conflicted.
                session.add(Run(status=RunStatus.FAILED, started_at=now, finished_at=now,
                                error=f"the trial's values conflict: {error}", **values,
                                **param_columns(spec.params_for(answer.sampled, validate=False))))
                session.flush()
                continue
            if joins is not None and not joins(params):
                session.add(Run(status=RunStatus.QUEUED, position=sweep.position, **values, **param_columns(params)))
                session.flush()
                return None
            run = Run(status=RunStatus.RUNNING, worker_id=worker_id, ran_on=device, started_at=now, **values,
                      **param_columns(params))
            session.add(run)
            session.flush()
            return run
    return None


def trial_states(session: Session, sweep_id: int, spec: SearchSpec) -> list[study.TrialState]:
    """What the study needs of each trial of the search: its newest run's status, drawn values, best
    validation RMSE, its curve (the best validation RMSE up to each epoch) and sampler attributes."""
    runs = _newest_runs(session, sweep_id)
    curves: dict[int, dict[int, float]] = {run.id: {} for run in runs}
    rows = session.execute(select(Epoch.run_id, Epoch.epoch, Epoch.val_rmse)
                           .where(Epoch.run_id.in_(list(curves))).order_by(Epoch.run_id, Epoch.epoch))
    for run_id, epoch, val in rows:
        if val is not None:
            curve = curves[run_id]
            curve[epoch] = min(val, min(curve.values(), default=val))
    states = []
    for run in runs:
        params = RunParams.from_dict(run.params, validate=False)
        sampled = {dim.name: dim.sampled(params) for dim in spec.space}
        states.append(study.TrialState(number=run.trial or 0, status=run.status, sampled=sampled,
                                       value=run.best_val_rmse, curve=curves[run.id], attrs=run.trial_attrs or {}))
    return states


def _newest_runs(session: Session, sweep_id: int) -> Sequence[Run]:
    """The newest run of each trial of the search (a trial run again keeps its number), in trial order."""
    runs = session.scalars(select(Run).where(Run.sweep_id == sweep_id, Run.trial.is_not(None)).order_by(Run.id))
    newest = {run.trial or 0: run for run in runs}
    return [newest[number] for number in sorted(newest)]


def search_records(session: Session, sweeps: Sequence[Sweep] | None = None) -> list[SearchRecord]:
    """The records of these searches (every search, newest first, when None), counted in one query over
    the few columns of their trials' runs: the TUI reads them every second."""
    if sweeps is None:
        sweeps = list(session.scalars(select(Sweep).where(Sweep.search.is_not(None)).order_by(Sweep.id.desc())))
    # By search, by trial: the row of its newest run (sweep_id, trial, id, status, best val and test RMSE).
    trials: dict[int, dict[int, Any]] = {sweep.id: {} for sweep in sweeps}
    rows = session.execute(select(Run.sweep_id, Run.trial, Run.id, Run.status, Run.best_val_rmse, Run.best_test_rmse)
                           .where(Run.sweep_id.in_(list(trials)), Run.trial.is_not(None)).order_by(Run.id))
    for row in rows:
        trials[row.sweep_id or 0][row.trial or 0] = row  # the newest run of each trial comes last
    return [_search_record(sweep, list(trials[sweep.id].values())) for sweep in sweeps]


def _search_record(sweep: Sweep, runs: list[Any]) -> SearchRecord:
    done = [run for run in runs if run.status == RunStatus.DONE and run.best_val_rmse is not None]
    best = min(done, key=lambda run: (run.best_val_rmse, run.id), default=None)
    return SearchRecord(
        id=sweep.id, name=sweep.name, spec=_spec(sweep), state=sweep.state or "active", trials=sweep.trials or 0,
        created_at=sweep.created_at, asked=max((run.trial for run in runs), default=0),
        counts=dict(Counter(str(run.status) for run in runs)), best_run_id=best.id if best else None,
        best_val_rmse=best.best_val_rmse if best else None, best_test_rmse=best.best_test_rmse if best else None)



def _label(search: Sweep | SearchRecord) -> str:
    return f"search {search.name!r} (#{search.id})" if search.name else f"search #{search.id}"


def _spec(sweep: Sweep) -> SearchSpec:
    return SearchSpec.from_dict(sweep.search or {})


def stopped_search(session: Session, sweep_id: int | None) -> bool:
    """Whether the run's sweep is a search that was stopped (its trials are not run again)."""
    if sweep_id is None:
        return False
    return session.scalar(select(Sweep.state).where(Sweep.id == sweep_id)) == "stopped"

