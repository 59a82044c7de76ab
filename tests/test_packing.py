"""Packing (engine.trainer.fit_pack): V runs of one model structure trained as one batched model, each
of which must still be its own run exactly. Every packed run here is compared, epoch by epoch, with
the same run trained alone by fit(), on a tiny low-rank dataset (CPU, one thread, well under a second
a pack); plus the pieces packing is built from (StackedAdam, the sparse zeroing of the gradient
tables) against what they stand for.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from engine import adam, checkpoint, steps, trainer
from engine.adam import StackedAdam
from engine.errors import ConfigError, DivergedError
from engine.models import MODELS, _scatter_into, build_model
from engine.ranking import Ranking, ranking_metrics
from engine.split import Split, split_dataset
from engine.steps import HandStep, PackedStep
from engine.trainer import OPTIMIZERS, PER_RUN, TrainResult, fit, fit_pack, pack_refusal
from store.params import PARAMS, RunParams
from tests.tiny import tiny_dataset

# The issue's bound on a packed run's figures against its run alone. Measured with the variants below
# (train and test RMSE and ranking, max over every epoch of every run): MF 0 (bit for bit), DeepMF
# 1.0e-7, MF with biases 5.9e-8, DeepMF with biases 6.0e-8, GMF 1.3e-7, NeuMF 8.6e-8, NeuMF with
# biases 1.4e-7; through the autograd PackedStep, MF 4.3e-7, DeepMF 2.0e-7, with biases 1.2e-7 and
# 1.1e-7; with a validation part and early stopping (val RMSE too) MF 0, DeepMF 1.5e-7, NeuMF 1.9e-7;
# checkpoint weights 2.4e-7. (A NeuMF run at lr 1.0, whose RMSE stays over 10, came within 6.6e-6:
# the bound is absolute, so the runs here keep to rates that train.)
TOL = 1e-5

# What every run here shares: 1200 training rows (1501 ratings, 20% held out) make 10 batches of 128,
# the last one short.
BASE: dict[str, Any] = {"device": "cpu", "batch_size": 128, "k": 4}

# The model structures that pack, each as fit() arguments, with whether the CPU trains its pack with
# hand-written gradients (HandStep) or through autograd (PackedStep).
STRUCTURES: dict[str, tuple[dict[str, Any], type[steps.Step]]] = {
    "mf": ({"model": "mf"}, HandStep),
    "deepmf": ({"model": "deepmf"}, HandStep),
    "mf-bias": ({"model": "mf", "bias": True}, HandStep),
    "deepmf-bias": ({"model": "deepmf", "bias": True, "hidden": (8, 4)}, HandStep),
    "gmf": ({"model": "gmf"}, PackedStep),
    "neumf": ({"model": "neumf"}, PackedStep),
    "neumf-bias": ({"model": "neumf", "bias": True}, PackedStep),
}


def variants(structure: dict[str, Any]) -> list[dict[str, Any]]:
    """Four runs of `structure` that differ in everything a pack's runs may differ in."""
    runs: list[dict[str, Any]] = [{"lr": 0.01, "epochs": 3},
                                  {"lr": 0.03, "weight_decay": 1e-3, "seed": 1, "epochs": 4},
                                  {"lr": 0.02, "init_std": 0.1, "seed": 2, "epochs": 4, "schedule": "cosine",
                                   "warmup": 1, "clip": True},
                                  {"lr": 0.05, "weight_decay": 0.0, "reg": 0.05, "seed": 3, "epochs": 3,
                                   "schedule": "step", "lr_step": 1, "lr_gamma": 0.5, "warmup": 1, "rank_every": 2}]
    if structure.get("bias"):
        runs[1]["reg_bias"] = 0.02
    return [{**BASE, **structure, **run} for run in runs]


@pytest.fixture(scope="module")
def split() -> Split:
    return split_dataset(tiny_dataset(60, 40, 1501))


@pytest.fixture(scope="module")
def split_with_val() -> Split:
    return split_dataset(tiny_dataset(60, 40, 1501), val_size=0.2)


@pytest.fixture
def steps_made(monkeypatch: pytest.MonkeyPatch) -> list[steps.Step]:
    """Every step fit() and fit_pack() make from now on, in order."""
    made: list[steps.Step] = []
    make_step = steps.make_step

    def recording_make_step(*args: Any, **kwargs: Any) -> steps.Step:
        made.append(make_step(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(trainer, "make_step", recording_make_step)
    return made


def assert_same_ranking(packed: Ranking | None, alone: Ranking | None) -> None:
    assert (packed is None) == (alone is None)
    if packed is not None and alone is not None:
        assert packed.users == alone.users
        assert (packed.precision, packed.recall, packed.ndcg) == pytest.approx(
            (alone.precision, alone.recall, alone.ndcg), abs=TOL)


def assert_same_run(packed: TrainResult | Exception, alone: TrainResult) -> None:
    """`packed` is `alone`'s run: the same epochs, figures within TOL, best epoch, end and ranking."""
    assert isinstance(packed, TrainResult), packed
    assert ([e.epoch for e in packed.epochs], packed.best_epoch, packed.stopped) == (
        [e.epoch for e in alone.epochs], alone.best_epoch, alone.stopped)
    for mine, theirs in zip(packed.epochs, alone.epochs):
        assert (mine.train_rmse, mine.test_rmse) == pytest.approx((theirs.train_rmse, theirs.test_rmse), abs=TOL)
        assert (mine.val_rmse is None) == (theirs.val_rmse is None)
        if theirs.val_rmse is not None:
            assert mine.val_rmse == pytest.approx(theirs.val_rmse, abs=TOL)
        assert_same_ranking(mine.ranking, theirs.ranking)
    assert packed.best_test_rmse == pytest.approx(alone.best_test_rmse, abs=TOL, nan_ok=True)
    assert_same_ranking(packed.ranking, alone.ranking)


# --- each packed run is its own run ---------------------------------------------------------------

@pytest.mark.parametrize("name", STRUCTURES)
def test_each_packed_run_trains_exactly_as_it_would_alone(split: Split, steps_made: list[steps.Step],
                                                          name: str) -> None:
    structure, kind = STRUCTURES[name]
    runs = variants(structure)
    packed = fit_pack(split, runs)
    assert [type(step) for step in steps_made] == [kind]  # the pack's one step, of the kind this covers
    for run, outcome in zip(runs, packed):
        assert_same_run(outcome, fit(split, **run))
    # The variants do differ: a pack that trained them all alike would not pass the comparison.
    assert len({round(outcome.best_test_rmse, 4) for outcome in packed if isinstance(outcome, TrainResult)}) == 4


# Per model, an embedding size and a run that overfits the tiny data within a few epochs at it, so that
# patience 1 stops it early.
EARLY_STOPPERS = {"mf": (16, {"lr": 0.3, "init_std": 0.5}), "deepmf": (16, {"lr": 1.0}),
                  "neumf": (4, {"lr": 0.1, "init_std": 0.3})}


@pytest.mark.parametrize("model", ["mf", "deepmf"])
def test_a_hand_step_pack_gives_each_run_its_figures_alone_bit_for_bit_even_where_training_is_chaotic(
        split: Split, model: str) -> None:
    # At these rates a last-bit difference anywhere (a batched product summing in another order, Adam
    # over one buffer rather than per tensor) grows to more than 1e-5 within the epochs; only the very
    # same arithmetic keeps a run's figures its own.
    runs = [{**BASE, "model": model, "hidden": (16, 8), "bias": True, "epochs": 12, "lr": lr, "seed": seed}
            for seed, lr in enumerate((0.05, 0.1, 0.2))]
    for run, outcome in zip(runs, fit_pack(split, runs)):
        alone = fit(split, **run)
        assert isinstance(outcome, TrainResult)
        figures = [(e.train_rmse, e.test_rmse) for e in outcome.epochs]
        assert figures == [(e.train_rmse, e.test_rmse) for e in alone.epochs]


@pytest.mark.parametrize("model", EARLY_STOPPERS)
def test_a_run_that_stops_early_on_validation_leaves_the_others_as_they_would_be_alone(
        split_with_val: Split, model: str) -> None:
    k, stopper = EARLY_STOPPERS[model]
    shared = {**BASE, "model": model, "k": k, "epochs": 6}
    runs = [{**shared, "lr": 0.01, "patience": 2, "seed": 1},
            {**shared, **stopper, "patience": 1},
            {**shared, "lr": 0.03, "patience": 3, "seed": 2, "weight_decay": 1e-3, "schedule": "plateau",
             "lr_step": 1}]
    packed = fit_pack(split_with_val, runs)
    lengths = [len(outcome.epochs) for outcome in packed if isinstance(outcome, TrainResult)]
    assert isinstance(packed[1], TrainResult) and packed[1].stopped == "early_stopped"
    assert lengths[1] < min(lengths[0], lengths[2])  # it left while the others trained on
    for run, outcome in zip(runs, packed):
        assert_same_run(outcome, fit(split_with_val, **run))


@pytest.mark.parametrize("name", ["mf", "deepmf", "mf-bias", "deepmf-bias"])
def test_the_autograd_packed_step_trains_mf_and_deepmf_as_they_would_be_alone(
        split: Split, steps_made: list[steps.Step], monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    structure, _ = STRUCTURES[name]
    runs = variants(structure)
    alone = [fit(split, **run) for run in runs]
    monkeypatch.setattr(steps, "has_hand_grads", lambda net: False)  # as on a device without the hand step
    packed = fit_pack(split, runs)
    assert [type(step) for step in steps_made] == [HandStep] * len(runs) + [PackedStep]
    for outcome, result in zip(packed, alone):
        assert_same_run(outcome, result)


@pytest.mark.parametrize("name", ["mf-bias", "deepmf-bias"])
def test_a_hand_step_pack_without_the_fused_adam_kernel_trains_as_alone_too(
        split: Split, steps_made: list[steps.Step], monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # What a torch whose private kernel is missing or changed gets: each run's Adam is torch.optim.Adam.
    monkeypatch.setattr(adam, "FUSED_ADAM", None)
    structure, _ = STRUCTURES[name]
    runs = variants(structure)
    packed = fit_pack(split, runs)
    (step,) = steps_made
    assert isinstance(step, HandStep) and all(run_adam.kernel is None for run_adam in step.adams)
    for run, outcome in zip(runs, packed):
        assert_same_run(outcome, fit(split, **run))


@pytest.mark.parametrize("model", ["mf", "gmf"])
def test_each_run_trains_its_own_number_of_epochs_and_a_short_one_leaving_disturbs_no_other(
        split: Split, model: str) -> None:
    runs = [{**BASE, "model": model, "lr": 0.02, "epochs": 2},
            {**BASE, "model": model, "lr": 0.01, "seed": 1, "epochs": 4}]
    short, long = fit_pack(split, runs)
    assert isinstance(short, TrainResult) and isinstance(long, TrainResult)
    assert ([e.epoch for e in short.epochs], [e.epoch for e in long.epochs]) == ([1, 2], [1, 2, 3, 4])
    assert_same_run(short, fit(split, **runs[0]))
    assert_same_run(long, fit(split, **runs[1]))


@pytest.mark.parametrize("model, kernel", [("mf", True), ("mf", False), ("deepmf", True), ("gmf", True)])
def test_runs_that_have_left_cost_nothing_more_the_pack_goes_on_smaller(split: Split, model: str, kernel: bool,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if not kernel:  # torch.optim.Adam's state is carried over instead of the kernel's
        monkeypatch.setattr(adam, "FUSED_ADAM", None)
    kept: list[list[int]] = []
    for kind in (HandStep, PackedStep):
        def spying(self: Any, members: Sequence[int], real: Callable[..., steps.Step] = kind.keep) -> steps.Step:
            kept.append(list(members))
            return real(self, members)
        monkeypatch.setattr(kind, "keep", spying)
    runs = [{**BASE, "model": model, "epochs": epochs, "seed": seed, "lr": 0.01 * (seed + 1)}
            for seed, epochs in enumerate((1, 4, 2))]
    outcomes = fit_pack(split, runs)
    # After epoch 1 the step keeps runs 1 and 2 (its places 1 and 2), after epoch 2 run 1 (now place 0).
    assert kept == [[1, 2], [0]]
    for run, outcome in zip(runs, outcomes):
        assert_same_run(outcome, fit(split, **run))


def asked_to_stop_after(calls: int) -> tuple[Callable[[], bool], list[int]]:
    """A should_stop that says stop from its `calls`-th call on, and the list its calls go to."""
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) >= calls
    return should_stop, asked


@pytest.mark.parametrize("model", ["mf", "deepmf", "gmf", "neumf"])
def test_a_run_cancelled_mid_epoch_ends_alone_and_runs_end_in_the_order_they_ended(
        split: Split, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    monkeypatch.setattr(trainer, "CHECK_EVERY", 1)
    # Asked once before epoch 1, after each of its 10 batches, once before epoch 2, then after its
    # batches: the 14th call is after epoch 2's second batch.
    should_stop, asked = asked_to_stop_after(14)
    runs = [{**BASE, "model": model, "lr": 0.01, "epochs": 3},
            {**BASE, "model": model, "lr": 0.02, "seed": 1, "epochs": 4, "should_stop": should_stop},
            {**BASE, "model": model, "lr": 0.03, "seed": 2, "epochs": 4},
            {**BASE, "model": model, "lr": 0.05, "seed": 3, "epochs": 2}]
    ended: list[tuple[int, TrainResult | Exception]] = []
    packed = fit_pack(split, runs, on_end=lambda index, outcome: ended.append((index, outcome)))

    cancelled = packed[1]
    assert isinstance(cancelled, TrainResult)
    assert (cancelled.stopped, [e.epoch for e in cancelled.epochs]) == ("cancelled", [1])
    # Alone, the run is cancelled at the same batch, asked as often, with the same epoch 1.
    should_stop_alone, asked_alone = asked_to_stop_after(14)
    assert_same_run(cancelled, fit(split, **{**runs[1], "should_stop": should_stop_alone}))
    assert len(asked) == len(asked_alone) == 14  # never asked again once cancelled
    for index in (0, 2, 3):
        assert_same_run(packed[index], fit(split, **runs[index]))
    # Epoch 2 ends the cancelled run and the 2-epoch one (in the pack's order), then 3, then 4; each
    # once, with the outcome fit_pack returns.
    assert [index for index, _ in ended] == [1, 3, 0, 2]
    assert all(outcome is packed[index] for index, outcome in ended)


def test_a_packed_runs_epoch_seconds_are_its_training_and_its_own_evaluation_only(
        split: Split, monkeypatch: pytest.MonkeyPatch) -> None:
    # The trainer's clock stands still but for rankings, which take 100 s each on it: the final ranking
    # of a run that ends, and run 0's ranking every epoch. No run's epoch may count another's.
    now = [0.0]
    monkeypatch.setattr(trainer, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    ranked: list[int] = []

    def slow_ranking(*args: Any) -> Ranking | None:
        now[0] += 100.0
        ranked.append(1)
        return ranking_metrics(*args)
    monkeypatch.setattr(trainer, "ranking_metrics", slow_ranking)
    runs = [{**BASE, "model": "mf", "lr": 0.01, "seed": seed, "epochs": epochs, "rank_every": every}
            for seed, (epochs, every) in enumerate([(2, 1), (1, 0), (1, 0), (2, 0)])]
    outcomes = fit_pack(split, runs)

    assert len(ranked) == 2 + 3  # run 0 every epoch (its best one's is its final), the others at their end
    seconds = [e.seconds for o in outcomes if isinstance(o, TrainResult) for e in o.epochs]
    assert seconds == [0.0] * 6


@pytest.mark.parametrize("model", ["mf", "deepmf", "gmf", "neumf"])
def test_a_diverging_run_fails_alone(split: Split, model: str) -> None:
    runs = [{**BASE, "model": model, "lr": 0.01, "epochs": 3},
            {**BASE, "model": model, "lr": 1e30, "seed": 1, "epochs": 3},
            {**BASE, "model": model, "lr": 0.03, "seed": 2, "epochs": 3, "weight_decay": 0.0}]
    ended: list[int] = []
    packed = fit_pack(split, runs, on_end=lambda index, outcome: ended.append(index))
    assert isinstance(packed[1], DivergedError)
    assert str(packed[1]).startswith("diverged: ") and "at epoch 1" in str(packed[1])
    assert ended == [1, 0, 2]
    for index in (0, 2):
        assert_same_run(packed[index], fit(split, **runs[index]))
    with pytest.raises(DivergedError, match="at epoch 1"):
        fit(split, **runs[1])


class FailingStep(steps.Step):
    """`step`, but its `fail_at`-th call raises, as a step that ran out of memory would."""

    def __init__(self, step: steps.Step, fail_at: int) -> None:
        self.step, self.fail_at, self.calls, self.sse = step, fail_at, 0, step.sse

    def __call__(self, *batch: torch.Tensor) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("out of memory")
        self.step(*batch)

    def set_lrs(self, lrs: Sequence[float]) -> None:
        self.step.set_lrs(lrs)

    def drop(self, member: int) -> None:
        self.step.drop(member)

    def keep(self, members: Sequence[int]) -> steps.Step:
        return FailingStep(self.step.keep(members), self.fail_at - self.calls)  # the same call fails


def test_a_failing_step_ends_every_run_still_training_with_its_error(split: Split,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [{**BASE, "lr": 0.01, "epochs": 1},  # ends before the step fails, in epoch 2
            {**BASE, "lr": 0.02, "seed": 1, "epochs": 3},
            {**BASE, "lr": 0.03, "seed": 2, "epochs": 3}]
    alone = fit(split, **runs[0])
    make_step = steps.make_step
    monkeypatch.setattr(trainer, "make_step", lambda *args, **kwargs: FailingStep(make_step(*args, **kwargs), 15))
    ended: list[int] = []
    first, second, third = fit_pack(split, runs, on_end=lambda index, outcome: ended.append(index))
    assert_same_run(first, alone)
    assert isinstance(second, RuntimeError) and second is third and str(second) == "out of memory"
    assert ended == [0, 1, 2]


def test_a_run_cancelled_before_the_step_fails_in_its_epoch_ends_cancelled(split: Split,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "CHECK_EVERY", 2)
    stop, _ = asked_to_stop_after(2)  # asked before the epoch, then at its second batch: stop
    runs = [{**BASE, "lr": 0.01, "should_stop": stop}, {**BASE, "lr": 0.02, "seed": 1}]
    make_step = steps.make_step
    monkeypatch.setattr(trainer, "make_step", lambda *args, **kwargs: FailingStep(make_step(*args, **kwargs), 4))
    cancelled, failed = fit_pack(split, runs)
    assert isinstance(cancelled, TrainResult) and cancelled.stopped == "cancelled"
    assert isinstance(failed, RuntimeError) and str(failed) == "out of memory"


def test_hidden_layers_as_a_list_or_a_tuple_are_one_shape(split: Split) -> None:
    runs = [{**BASE, "model": "deepmf", "hidden": [8, 4]}, {**BASE, "model": "deepmf", "hidden": (8, 4), "seed": 1}]
    assert all(isinstance(outcome, TrainResult) for outcome in fit_pack(split, [{**run, "epochs": 1} for run in runs]))


@pytest.mark.parametrize("model, kind", [("mf", HandStep), ("deepmf", HandStep), ("gmf", PackedStep),
                                         ("neumf", PackedStep)])
def test_a_dropped_run_moves_no_further_while_the_others_train_on(model: str, kind: type[steps.Step]) -> None:
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(build_model(model, 60, 40, k=4))
    step = steps.make_step(nets, torch.zeros(3), optimizer="adam", lrs=[0.01] * 3, weight_decays=[1e-3] * 3,
                           batch_size=16, capture=False)
    assert isinstance(step, kind)
    draw = torch.Generator().manual_seed(0)
    batch = (torch.randint(0, 60, (3, 16), generator=draw), torch.randint(0, 40, (3, 16), generator=draw),
             torch.randint(1, 6, (3, 16), generator=draw).float())
    step(*batch)
    step.drop(1)
    before = [{name: p.detach().clone() for name, p in net.named_parameters()} for net in nets]
    for _ in range(3):
        step(*batch)
    for v, net in enumerate(nets):
        moved = [name for name, p in net.named_parameters() if not torch.equal(p.detach(), before[v][name])]
        assert (moved == []) == (v == 1), (v, moved)


def raising_on(call: int) -> Callable[..., Any]:
    """A callback that raises RuntimeError on its `call`-th call, and answers None (go on) before."""
    calls: list[int] = []

    def callback(*args: Any) -> None:
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError(f"refused at call {call}")
    return callback


@pytest.mark.parametrize("model", ["mf", "gmf"])
@pytest.mark.parametrize("callback, call", [("on_epoch", 2), ("on_progress", 13), ("should_stop", 14)])
def test_a_callback_that_raises_ends_only_its_own_run_with_that_exception(
        split: Split, monkeypatch: pytest.MonkeyPatch, model: str, callback: str, call: int) -> None:
    monkeypatch.setattr(trainer, "CHECK_EVERY", 1)  # the progress callbacks raise mid-epoch
    runs = [{**BASE, "model": model, "lr": 0.01, "epochs": 3},
            {**BASE, "model": model, "lr": 0.02, "seed": 1, "epochs": 4, callback: raising_on(call)},
            {**BASE, "model": model, "lr": 0.03, "seed": 2, "epochs": 4}]
    ended: list[int] = []
    packed = fit_pack(split, runs, on_end=lambda index, outcome: ended.append(index))
    assert isinstance(packed[1], RuntimeError) and str(packed[1]) == f"refused at call {call}"
    assert ended == [1, 0, 2]
    for index in (0, 2):
        assert_same_run(packed[index], fit(split, **runs[index]))
    with pytest.raises(RuntimeError, match=f"refused at call {call}"):  # alone, fit() raises it as before
        fit(split, **{**runs[1], callback: raising_on(call)})


# --- what packs and what does not -----------------------------------------------------------------

@pytest.mark.parametrize("runs, reason", [
    ([{"model": "autorec"}, {"model": "autorec", "lr": 0.01}], "autorec trains on whole rows"),
    ([{"optimizer": "sgd"}, {"optimizer": "sgd", "lr": 0.01}], "only adam packs, not sgd"),
    ([{"optimizer": "adamw"}, {"optimizer": "adamw", "lr": 0.01}], "only adam packs, not adamw"),
    ([{"model": "deepmf", "dropout": 0.1}, {"model": "deepmf", "dropout": 0.1, "lr": 0.01}], "dropout trains alone"),
    ([{"emb_dropout": 0.1}, {"emb_dropout": 0.1, "lr": 0.01}], "dropout trains alone"),
])
def test_runs_that_train_only_alone_are_refused_as_a_pack_in_one_line_but_each_trains_alone(
        split: Split, runs: list[dict[str, Any]], reason: str) -> None:
    runs = [{**BASE, "epochs": 1, **run} for run in runs]
    with pytest.raises(ConfigError, match=re.escape(reason)) as refused:
        fit_pack(split, runs)
    assert "\n" not in str(refused.value)
    (alone,) = fit_pack(split, runs[:1])  # a pack of one is a run alone, which trains as before
    assert isinstance(alone, TrainResult) and len(alone.epochs) == 1


@pytest.mark.parametrize("runs, message", [
    ([{"k": 4}, {"k": 8}], "the runs of a pack must have the same k (got 4 and 8)"),
    ([{"batch_size": 128}, {"batch_size": 256}], "must have the same batch_size (got 128 and 256)"),
    ([{"model": "mf"}, {"model": "deepmf"}], "must have the same model (got 'mf' and 'deepmf')"),
    ([{"lr": 0.01}, {"lr": 0.01, "learning_rate": 0.1}], "unknown fit() argument(s): learning_rate"),
    ([], "a pack needs at least one run"),
])
def test_runs_that_cannot_share_a_step_are_refused_in_one_line(split: Split, runs: list[dict[str, Any]],
                                                               message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        fit_pack(split, [{**BASE, **run} for run in runs])
    assert "\n" not in str(refused.value)


CALLBACKS = {"on_epoch", "on_progress", "should_stop", "checkpoint_path", "checkpoint_meta"}


def test_the_engine_and_the_store_agree_on_what_a_packs_runs_may_differ_in() -> None:
    assert {name for name, declared in PARAMS.items() if declared.per_run} | CALLBACKS == PER_RUN


@pytest.mark.parametrize("model, optimizer, dropout, emb_dropout",
                         itertools.product(MODELS, OPTIMIZERS, (0.0, 0.1), (0.0, 0.1)))
def test_the_store_packs_a_run_exactly_when_the_engine_would(model: str, optimizer: str, dropout: float,
                                                            emb_dropout: float) -> None:
    run = RunParams(model=model, optimizer=optimizer, dropout=dropout, emb_dropout=emb_dropout)
    refusal = pack_refusal(model=model, optimizer=optimizer, dropout=dropout, emb_dropout=emb_dropout)
    assert (run.pack_key() is None) == (refusal is not None)


# A value other than the base run's for each parameter fit() takes (below), valid with it.
PER_RUN_CHANGES: dict[str, Any] = {
    "lr": 0.01, "weight_decay": 0.0, "epochs": 2, "seed": 3, "patience": 1, "rank_every": 1, "init_std": 0.1,
    "reg": 0.01, "reg_bias": 0.01, "schedule": "cosine", "warmup": 1, "lr_step": 2, "lr_gamma": 0.3, "clip": True}
SHARED_CHANGES: dict[str, Any] = {
    "model": "neumf", "k": 8, "hidden": (4,), "batch_size": 64, "device": "auto", "bias": False, "dropout": 0.1,
    "emb_dropout": 0.1, "optimizer": "adamw", "momentum": 0.5, "reg_kernel": 0.01, "pretrain_epochs": 3,
    "conv_size": 5, "dot_scale": 2.0}


def test_runs_with_one_pack_key_train_in_one_pack_and_runs_with_another_are_refused(split: Split) -> None:
    base = RunParams(model="deepmf", k=4, batch_size=128, epochs=1, device="cpu", bias=True)
    fit_params = {name for name, declared in PARAMS.items() if declared.feeds == "fit"}
    assert set(PER_RUN_CHANGES) | set(SHARED_CHANGES) == fit_params  # a new parameter is added here too
    variant = base.replace(**PER_RUN_CHANGES)
    assert variant.pack_key() == base.pack_key() is not None
    assert all(isinstance(o, TrainResult) for o in fit_pack(split, [base.engine_args("fit"),
                                                                     variant.engine_args("fit")]))
    for name, value in SHARED_CHANGES.items():
        other = base.replace(**{name: value})
        assert other.pack_key() != base.pack_key(), name
        with pytest.raises(ConfigError):
            fit_pack(split, [base.engine_args("fit"), other.engine_args("fit")])


# --- checkpoints ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["deepmf", "neumf"])
def test_each_packed_runs_checkpoint_holds_its_own_weights_alone(split: Split, tmp_path: Path, model: str) -> None:
    runs = [{**BASE, "model": model, "lr": 0.01, "epochs": 3, "bias": True},
            {**BASE, "model": model, "lr": 0.03, "seed": 1, "epochs": 2, "bias": True},
            {**BASE, "model": model, "lr": 0.02, "seed": 2, "epochs": 3, "bias": True, "init_std": 0.1}]
    runs = [{**run, "checkpoint_meta": {"run": i}} for i, run in enumerate(runs)]
    packed = fit_pack(split, [{**run, "checkpoint_path": tmp_path / f"packed{i}.pt"} for i, run in enumerate(runs)])
    for i, (run, outcome) in enumerate(zip(runs, packed)):
        assert isinstance(outcome, TrainResult) and outcome.checkpoint == tmp_path / f"packed{i}.pt"
        fit(split, **run, checkpoint_path=tmp_path / f"alone{i}.pt")
        mine = checkpoint.load(tmp_path / f"packed{i}.pt", what="the packed run's checkpoint")
        theirs = checkpoint.load(tmp_path / f"alone{i}.pt", what="the run's checkpoint alone")
        assert mine.epoch == theirs.epoch == outcome.best_epoch
        assert mine.config == theirs.config and mine.config["run"] == i
        assert mine.state_dict.keys() == theirs.state_dict.keys()
        for name, weights in theirs.state_dict.items():
            # The run's own tensor, saved alone: not a view into the pack's stacked storage.
            saved = mine.state_dict[name]
            assert saved.shape == weights.shape, name
            assert saved.untyped_storage().nbytes() == saved.numel() * saved.element_size(), name
            torch.testing.assert_close(saved, weights, rtol=0, atol=TOL)
        packed_size = (tmp_path / f"packed{i}.pt").stat().st_size
        assert packed_size < 1.1 * (tmp_path / f"alone{i}.pt").stat().st_size


# --- the parts: StackedAdam and the sparse zeroing of gradient tables ------------------------------

def test_stacked_adam_moves_each_run_as_torch_adam_with_its_own_rate_and_decay() -> None:
    torch.manual_seed(0)
    first, second = torch.randn(7, 3), torch.randn(5)
    # Two runs' parameters in one buffer, and torch.optim.Adam over the same, a group per run.
    buffer = torch.cat([first.flatten(), second])
    member = torch.tensor([0] * first.numel() + [1] * second.numel())
    stacked = StackedAdam(buffer, member, lrs=[0.01, 0.003], weight_decays=[1e-2, 0.0])
    ours = [first.clone().requires_grad_(), second.clone().requires_grad_()]
    reference = torch.optim.Adam([{"params": [ours[0]], "lr": 0.01, "weight_decay": 1e-2},
                                  {"params": [ours[1]], "lr": 0.003, "weight_decay": 0.0}])
    gradients = torch.Generator().manual_seed(1)
    for _ in range(200):
        grads = torch.randn(7, 3, generator=gradients), torch.randn(5, generator=gradients)
        ours[0].grad, ours[1].grad = grads[0].clone(), grads[1].clone()
        reference.step()
        stacked.step(torch.cat([grads[0].flatten(), grads[1]]))
    expected = torch.cat([ours[0].detach().flatten(), ours[1].detach()])
    # Measured: equal to the bit.
    torch.testing.assert_close(buffer, expected, rtol=1e-6, atol=0)
    assert not torch.equal(buffer, torch.cat([first.flatten(), second]))


def test_stacked_adam_leaves_a_run_with_a_rate_of_zero_unchanged() -> None:
    torch.manual_seed(0)
    buffer = torch.randn(12)
    before = buffer.clone()
    member = torch.tensor([0] * 8 + [1] * 4)
    stacked = StackedAdam(buffer, member, lrs=[0.01, 0.01], weight_decays=[1e-3, 1e-3])
    stacked.step(torch.randn(12))
    moved = buffer.clone()
    stacked.set_lrs([0.01, 0.0])  # run 1 has ended: it moves no further, though its moments still do
    for _ in range(20):
        stacked.step(torch.randn(12))
    assert torch.equal(buffer[8:], moved[8:])
    assert not torch.equal(buffer[:8], moved[:8])
    assert not torch.equal(moved, before)


@pytest.mark.parametrize("shape", [(50, 6), (50, 5), (50,)], ids=["even rows", "odd rows", "biases"])
def test_a_gradient_table_holds_only_the_last_batchs_rows_after_many(shape: tuple[int, ...]) -> None:
    table = torch.full(shape, 7.0)  # what a fresh table holds is zeroed once, at the start
    scatter = _scatter_into(table)
    draw = torch.Generator().manual_seed(0)
    for size in (30, 5, 40, 1, 17, 30):
        index = torch.randint(0, shape[0], (size,), generator=draw)  # repeats add up
        rows = torch.randn(size, *shape[1:], generator=draw)
        scatter(index, rows)
        expected = torch.zeros(shape).index_add_(0, index, rows)
        assert torch.equal(table, expected)
        untouched = torch.ones(shape[0], dtype=torch.bool).index_fill_(0, index, False)
        assert not table[untouched].any()  # every row this call did not write is exactly zero


# --- the threads of a pack on CPU ---------------------------------------------------------------

@pytest.mark.parametrize("model", ["mf", "deepmf"])
def test_a_pack_trains_on_one_thread_whatever_the_process_has(split: Split, model: str) -> None:
    # Two threads split a matrix product's sums in another order (a run would drift from itself
    # alone) and wait for each other on a busy machine; the process's own setting comes back after.
    runs = [{**BASE, "model": model, "bias": True, "reg": 0.01, "epochs": 2, "lr": lr, "seed": seed}
            for seed, lr in enumerate((1e-3, 1e-2, 3e-3))]
    seen: list[int] = []
    before = torch.get_num_threads()
    try:
        figures = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outcomes = fit_pack(split, [{**run, "on_epoch": lambda stats: seen.append(torch.get_num_threads())}
                                        for run in runs])
            assert torch.get_num_threads() == threads
            figures.append([[(e.train_rmse, e.test_rmse) for e in o.epochs] for o in outcomes
                            if isinstance(o, TrainResult)])
    finally:
        torch.set_num_threads(before)
    assert set(seen) == {1} and len(figures[0]) == 3 and figures[0] == figures[1]
