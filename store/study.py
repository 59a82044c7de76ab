"""The bridge to Optuna: its samplers choose a search's next trial, its pruners judge a trial's curve,
its importance evaluators explain a finished search.

dmf-tui's runs are the one truth. Optuna's study is rebuilt from them each time it is needed (an
in-memory study holding each trial's parameters, state, best validation RMSE and its curve), asked or
consulted, and thrown away. What the samplers keep between trials in a study (QMC's counter, the grid's
visited points, CMA-ES's state) lives in "system attributes", which are saved with the search's sweep
and its runs and given back when the study is rebuilt; so a search survives closing every terminal and
restarting every worker, and several workers share it. The store calls ask() inside the write
transaction that creates the trial's run, so no two workers are handed the same trial.

Optuna is imported only here and only when called: the TUI and the CLI start without it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from store.search import Dimension, SearchSpec
from store.status import RunStatus

if TYPE_CHECKING:
    import optuna

# Successive halving and Hyperband keep the best third of the trials at each rung.
REDUCTION_FACTOR = 3


@dataclass(frozen=True)
class TrialState:
    """What the study needs of one trial: from its newest run (a trial whose worker died is run again)."""

    number: int  # 1-based, as dmf-tui shows it; Optuna counts from 0
    status: RunStatus
    sampled: Mapping[str, Any]  # by dimension name: what the sampler drew
    value: float | None  # the best validation RMSE reached
    curve: Mapping[int, float] = field(default_factory=dict)  # epoch -> best validation RMSE so far
    attrs: Mapping[str, Any] = field(default_factory=dict)  # the sampler's system attributes


@dataclass(frozen=True)
class Asked:
    """A new trial: what the sampler drew, and what the sampler wants kept of it and of the study."""

    sampled: dict[str, Any]
    trial_attrs: dict[str, Any]
    study_attrs: dict[str, Any]


def ask(spec: SearchSpec, trials: Sequence[TrialState], study_attrs: Mapping[str, Any], *, key: int) -> Asked:
    """Trial number len(trials) + 1 of the search with id `key`, drawn by its sampler given every
    trial so far (those still running count, through TPE's constant liar, so parallel workers spread out)."""
    number = len(trials) + 1
    with _quiet():
        study = _study(spec, trials, study_attrs, key=key, number=number)
        trial = study.ask({dim.name: _distribution(dim) for dim in spec.space})
        storage = study._storage
        return Asked(sampled=dict(trial.params),
                     trial_attrs=dict(storage.get_trial_system_attrs(trial._trial_id)),
                     study_attrs=dict(storage.get_study_system_attrs(study._study_id)))


def should_prune(spec: SearchSpec, trials: Sequence[TrialState], number: int, *,
                 key: int) -> tuple[bool, dict[str, Any]]:
    """Whether the search's pruner stops trial `number` (running, its curve so far in `trials`), and
    the trial's system attributes after the pruner's look: successive halving and Hyperband note there
    each rung the trial passed, which the next trials are measured against, so they must be kept."""
    current = next(t for t in trials if t.number == number)
    if spec.pruner == "none":
        return False, dict(current.attrs)
    with _quiet():
        study = _study(spec, trials, {}, key=key, number=number)
        # The study numbers trials from 0 in the order added: trial `number`'s place among them.
        frozen = study.get_trials(deepcopy=False)[sorted(t.number for t in trials).index(number)]
        prune = bool(study.pruner.prune(study, frozen))
        return prune, dict(study._storage.get_trial_system_attrs(frozen._trial_id))


def importances(spec: SearchSpec, trials: Sequence[TrialState]) -> dict[str, float]:
    """How much each searched parameter explains of the finished trials' validation RMSE (Optuna's
    fANOVA, which fits a random forest), largest first; empty until at least two trials differ."""
    import optuna

    finished = [t for t in trials if t.status == RunStatus.DONE and t.value is not None]
    varied = [dim for dim in spec.space if len({_hashable(t.sampled.get(dim.name)) for t in finished}) > 1]
    if len(finished) < 2 or not varied:
        return {}
    with _quiet():
        study = _study(spec, finished, {}, key=0, number=len(finished) + 1)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        try:
            found = optuna.importance.get_param_importances(study, evaluator=evaluator,
                                                            params=[dim.name for dim in varied])
        except (RuntimeError, ValueError):  # every value the same, or too few to fit a forest
            return {}
    return {name: float(share) for name, share in found.items() if math.isfinite(share)}


def _study(spec: SearchSpec, trials: Sequence[TrialState], study_attrs: Mapping[str, Any], *, key: int,
           number: int) -> optuna.Study:
    import optuna

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=_sampler(spec, number),
                                pruner=_pruner(spec), study_name=f"dmf-tui-search-{key}", direction="minimize")
    for name, value in study_attrs.items():
        study._storage.set_study_system_attr(study._study_id, name, value)
    distributions = {dim.name: _distribution(dim) for dim in spec.space}
    for trial in sorted(trials, key=lambda t: t.number):
        study.add_trial(_frozen(trial, distributions))
    return study


def _frozen(trial: TrialState, distributions: Mapping[str, Any]) -> optuna.trial.FrozenTrial:
    """The trial as Optuna records it. A run still queued or running is a running trial; one pruned
    keeps its curve (TPE ranks pruned trials by it); one that failed, was cancelled or lost is a failure."""
    import optuna

    states = optuna.trial.TrialState
    state = {RunStatus.QUEUED: states.RUNNING, RunStatus.RUNNING: states.RUNNING, RunStatus.DONE: states.COMPLETE,
             RunStatus.PRUNED: states.PRUNED}.get(trial.status, states.FAIL)
    value = trial.value if state == states.COMPLETE else None
    if state == states.COMPLETE and value is None:
        state = states.FAIL  # done without a single finite validation RMSE: nothing to learn from
    params = {name: trial.sampled[name] for name in distributions if name in trial.sampled}
    return optuna.trial.create_trial(
        state=state, value=value, params=params, distributions={name: distributions[name] for name in params},
        intermediate_values=dict(trial.curve), system_attrs=dict(trial.attrs))


def _distribution(dim: Dimension) -> optuna.distributions.BaseDistribution:
    import optuna

    if dim.kind == "categorical":
        return optuna.distributions.CategoricalDistribution(dim.choices)
    if dim.kind == "int":
        return optuna.distributions.IntDistribution(int(dim.low), int(dim.high), log=dim.log)
    return optuna.distributions.FloatDistribution(dim.low, dim.high, log=dim.log)


def _sampler(spec: SearchSpec, number: int) -> optuna.samplers.BaseSampler:
    """The search's sampler for drawing trial `number`. Samplers whose randomness is all in their seed
    (TPE, random) get one seed per trial, from the search's seed and the trial's number: rebuilt
    for every trial, one seed for all would draw the same numbers each time. QMC's sequence and CMA-ES's
    state carry on through the system attributes, and the grid's order of points is drawn once: they
    take the search's seed as it is."""
    import optuna

    samplers = optuna.samplers
    per_trial = (spec.seed * 1_000_003 + number) % 2**32
    if spec.sampler == "tpe":
        # Fewer random trials first than Optuna's 10 for a short search, so TPE has turns of its own.
        startup = max(2, min(10, spec.trials // 4))
        return samplers.TPESampler(seed=per_trial, n_startup_trials=startup, constant_liar=True)
    if spec.sampler == "random":
        return samplers.RandomSampler(seed=per_trial)
    if spec.sampler == "grid":
        return samplers.GridSampler(spec.grid(), seed=spec.seed)
    if spec.sampler == "cmaes":
        return samplers.CmaEsSampler(seed=spec.seed, warn_independent_sampling=False,
                                     independent_sampler=samplers.RandomSampler(seed=per_trial))
    return samplers.QMCSampler(seed=spec.seed, warn_independent_sampling=False,
                               warn_asynchronous_seeding=False)


def sampler_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A trial's system attributes less the pruners' (successive halving and Hyperband note each rung
    passed as "completed_rung_N"): what a trial run again keeps, as its new curve is judged afresh."""
    if attrs is None:
        return None
    return {name: value for name, value in attrs.items() if not name.startswith("completed_rung_")}


def judges_at(spec: SearchSpec, epoch: int) -> bool:
    """Whether the search's pruner can stop a trial after `epoch`: successive halving and Hyperband only
    at their rungs (_first_rung(spec) times a power of 3), the median pruner after its warm-up. The
    worker asks the pruner only then, which decides the same and spares rebuilding the study each epoch."""
    first = _first_rung(spec)
    if spec.pruner == "median":
        return epoch >= first
    if spec.pruner in ("asha", "hyperband"):
        rung = first
        while rung < epoch:
            rung *= REDUCTION_FACTOR
        return rung == epoch
    return False


def _first_rung(spec: SearchSpec) -> int:
    """The epoch at which the pruners first compare trials: after a quarter of the epochs. Earlier is
    too soon to tell: replayed on the curves of whole ML-100K searches (bench/RESULTS.md, issue 12), a
    first rung at a tenth stopped the trial that would have ended best in 7 of 9 searches; the trials
    that end best are often those that start slowly (a small learning rate, strong regularisation)."""
    return max(1, spec.max_epochs() // 4)


def _pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    """The search's pruner, its resource counted in epochs. Successive halving (ASHA) and Hyperband
    first compare trials after a quarter of the epochs, keeping a third at each rung."""
    import optuna

    pruners = optuna.pruners
    epochs = spec.max_epochs()
    first = _first_rung(spec)
    if spec.pruner == "median":
        return pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=first)
    if spec.pruner == "asha":
        return pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=REDUCTION_FACTOR)
    if spec.pruner == "hyperband":
        return pruners.HyperbandPruner(min_resource=first, max_resource=max(epochs, first + 1),
                                       reduction_factor=REDUCTION_FACTOR)
    return pruners.NopPruner()


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's own log lines and its warnings about experimental options are not the user's business."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
