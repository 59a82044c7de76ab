"""Learning-rate schedules: `_Schedule`'s rate for each epoch, the plateau rule and what it watches, that
fit() hands each epoch's rate to the optimizer, and the refusals (bad values, a captured CUDA step).
The expected rates are written out by hand from the documented formulas, not computed by the code
under test. Tiny synthetic data on CPU."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest
import torch

from dmf_tui.cli import main
from engine import adam, steps, trainer
from engine.errors import ConfigError
from engine.split import split_dataset
from engine.trainer import EpochStats, _Schedule, fit
from store.db import open_store

if TYPE_CHECKING:  # mypy, run from the repository root, names the module tests.test_trainer
    from tests.test_trainer import tiny_dataset
else:  # pytest puts tests/ on sys.path
    from test_trainer import tiny_dataset

C1, C3 = 0.5 * (1 + math.cos(math.pi / 4)), 0.5 * (1 + math.cos(3 * math.pi / 4))  # cosine over 4 epochs


def rates(kind: str, *, epochs: int, warmup: int = 0, step: int = 2, gamma: float = 0.5) -> list[float]:
    schedule = _Schedule(kind, lr=1.0, epochs=epochs, warmup=warmup, step=step, gamma=gamma)
    return [schedule.at(epoch) for epoch in range(1, epochs + 1)]


@pytest.mark.parametrize("kind, warmup, expected", [
    ("none", 0, [1, 1, 1, 1]),
    ("none", 3, [1 / 4, 2 / 4, 3 / 4, 1, 1, 1]),  # epoch e of the warm-up at e / (warmup + 1)
    ("step", 0, [1, 1, 0.5, 0.5, 0.25, 0.25]),  # halved every 2 epochs
    ("step", 2, [1 / 3, 2 / 3, 1, 1, 0.5, 0.5]),  # counted from the end of the warm-up
    ("cosine", 0, [1, C1, 0.5, C3]),  # from lr towards 0, reached one epoch after the last
    ("cosine", 2, [1 / 3, 2 / 3, 1, C1, 0.5, C3]),  # over the epochs after the warm-up
    ("plateau", 2, [1 / 3, 2 / 3, 1, 1, 1]),  # nothing observed: the full rate after the warm-up
])
def test_the_rate_of_each_epoch(kind, warmup, expected):
    assert rates(kind, epochs=len(expected), warmup=warmup) == pytest.approx(expected, rel=1e-12)


def test_only_none_without_warmup_is_constant():
    constant = {(kind, warmup): _Schedule(kind, lr=1.0, epochs=5, warmup=warmup, step=2, gamma=0.5).constant
                for kind in trainer.SCHEDULES for warmup in (0, 1)}
    assert [key for key, value in constant.items() if value] == [("none", 0)]


def test_plateau_decays_after_lr_step_epochs_without_improvement_and_waits_again():
    schedule = _Schedule("plateau", lr=1.0, epochs=20, warmup=0, step=2, gamma=0.5)
    watched = [1.0, 0.9, 0.95, 0.92, 0.85, 0.9, 0.9, 0.9, 0.9]
    after = []
    for epoch, rmse in enumerate(watched, start=1):
        schedule.observe(epoch, rmse)
        after.append(schedule.at(epoch + 1))
    # Best 0.9 at epoch 2; epochs 3 and 4 fail to beat it: halved for epoch 5. Epoch 5 improves (0.85);
    # 6 and 7 do not: halved again; 8 and 9 do not either: and again.
    assert after == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_plateau_ignores_the_warmup_epochs():
    schedule = _Schedule("plateau", lr=1.0, epochs=20, warmup=2, step=1, gamma=0.5)
    schedule.observe(1, 0.5)  # a warm-up epoch's RMSE, however good, is no best to beat
    schedule.observe(2, 0.6)
    schedule.observe(3, 0.9)  # the first epoch at the full rate: the first best
    assert schedule.at(4) == 1.0
    schedule.observe(4, 0.95)
    assert schedule.at(5) == 0.5


@pytest.mark.parametrize("options, message", [
    ({"schedule": "bogus"}, "unknown schedule 'bogus': choose one of none, cosine, step, plateau"),
    ({"warmup": -1}, "warmup must be >= 0"),
    ({"lr_step": 0}, "lr_step > 0"),
    ({"lr_gamma": 1.0}, "lr_gamma between 0 and 1"),
    ({"lr_gamma": 0.0}, "lr_gamma between 0 and 1"),
])
def test_bad_schedule_values_are_config_errors(split, options, message):
    with pytest.raises(ConfigError, match=message):
        fit(split, epochs=1, device="cpu", **options)


@pytest.fixture(scope="module")
def split():
    return split_dataset(tiny_dataset())


@pytest.fixture(scope="module")
def split_with_val():
    return split_dataset(tiny_dataset(), val_size=0.2)


def current_lr(step: steps.Step) -> float:
    """The rate the step's optimizer will use for its next update."""
    if isinstance(step, steps.HandStep):
        return step.adams[0].lr
    if isinstance(step, steps.LazyHandStep):  # sparse_adam on the CPU: its lazy tables and the rest
        rates = {step.users.lr, step.items.lr, *([step.dense.lr] if step.dense is not None else [])}
        assert len(rates) == 1
        return float(rates.pop())
    assert isinstance(step, steps.EagerStep)
    rates = {group["lr"] for group in step.optimizer.param_groups}
    assert len(rates) == 1  # every part of the optimizer (sparse_adam has two) follows the schedule
    return float(rates.pop())


def lr_of_each_epoch(split, monkeypatch, **options) -> tuple[list[float], list[EpochStats]]:
    """Train, and return the rate the optimizer held during each epoch, and the epochs' stats."""
    made: list[steps.Step] = []
    make_step = steps.make_step

    def kept_make_step(*args: Any, **kwargs: Any) -> steps.Step:
        made.append(make_step(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(trainer, "make_step", kept_make_step)
    seen: list[float] = []
    history: list[EpochStats] = []

    def on_epoch(stats: EpochStats) -> None:
        seen.append(current_lr(made[0]))
        history.append(stats)

    fit(split, device="cpu", on_epoch=on_epoch, **options)
    return seen, history


@pytest.mark.parametrize("optimizer, weight_decay", [("adam", 1e-5), ("sgd", 1e-5), ("sparse_adam", 0.0)])
def test_fit_gives_the_optimizer_each_epochs_rate(split, monkeypatch, optimizer, weight_decay):
    seen, _ = lr_of_each_epoch(split, monkeypatch, optimizer=optimizer, weight_decay=weight_decay, epochs=5,
                               lr=0.04, schedule="step", warmup=1, lr_step=2, lr_gamma=0.5)
    assert seen == pytest.approx([0.02, 0.04, 0.04, 0.02, 0.02])


# The hand-written step (with torch's fused Adam kernel, or torch.optim.Adam where the kernel is not
# there) and the autograd one.
@pytest.mark.parametrize("optimizer, kernel", [("adam", True), ("adam", False), ("sgd", True)])
def test_the_rate_changes_the_training_from_the_epoch_it_changes(split, monkeypatch, optimizer, kernel):
    if not kernel:
        monkeypatch.setattr(adam, "FUSED_ADAM", None)
    options: dict[str, Any] = {"optimizer": optimizer, "epochs": 3, "device": "cpu", "lr": 0.05}
    constant = fit(split, **options)
    decayed = fit(split, **options, schedule="step", lr_step=1, lr_gamma=0.1)
    warmed = fit(split, **options, warmup=1)
    curve = lambda result: [e.train_rmse for e in result.epochs]  # noqa: E731
    assert curve(decayed)[0] == curve(constant)[0] and curve(decayed)[1] != curve(constant)[1]
    assert curve(warmed)[0] != curve(constant)[0]


@pytest.mark.parametrize("with_val", [True, False])
def test_plateau_watches_validation_else_the_training_rmse_never_test(split, split_with_val, monkeypatch, with_val):
    observed: list[tuple[int, float]] = []
    observe = _Schedule.observe

    def recording_observe(self: _Schedule, epoch: int, rmse: float) -> None:
        observed.append((epoch, rmse))
        observe(self, epoch, rmse)

    monkeypatch.setattr(_Schedule, "observe", recording_observe)
    _, history = lr_of_each_epoch(split_with_val if with_val else split, monkeypatch, epochs=3, lr=0.05,
                                  schedule="plateau")
    expected = [(e.epoch, e.val_rmse if with_val else e.train_rmse) for e in history]
    assert observed == expected
    assert all(rmse != e.test_rmse for (_, rmse), e in zip(observed, history))


def test_plateau_in_fit_decays_after_each_epoch_that_fails_to_beat_the_best_validation(split_with_val, monkeypatch):
    # A model that overfits the tiny data, so that validation RMSE gets worse on some epochs (the 4th
    # first); with lr_step 1 each such epoch halves the rate.
    seen, history = lr_of_each_epoch(split_with_val, monkeypatch, epochs=8, lr=0.05, k=32, init_std=0.1,
                                     batch_size=128, bias=True, schedule="plateau", lr_step=1, lr_gamma=0.5)
    expected, best = [0.05], math.inf
    for stats in history[:-1]:
        assert stats.val_rmse is not None
        expected.append(expected[-1] * (0.5 if stats.val_rmse >= best else 1.0))
        best = min(best, stats.val_rmse)
    assert seen == pytest.approx(expected)
    assert min(seen) < 0.05  # else this run shows no decay


@pytest.mark.parametrize("options", [{"schedule": "cosine"}, {"warmup": 1}, {"schedule": "plateau"}])
def test_a_captured_cuda_step_refuses_a_changing_rate(split, monkeypatch, options):
    # The check comes after the device is resolved; a CUDA device stands in, as nothing reaches it
    # before the refusal. (That capture=None then trains a schedule eagerly needs a real GPU.)
    monkeypatch.setattr(trainer, "resolve_device", lambda spec: torch.device("cuda", 0))
    with pytest.raises(ConfigError, match="capture=True replays one learning rate: it cannot follow a schedule"):
        fit(split, epochs=2, capture=True, **options)


@pytest.mark.parametrize("model", ["autorec", "glocal_k"])
def test_a_captured_cuda_step_refuses_a_row_model(split, monkeypatch, model):
    # A captured step takes (user, item, rating) batches of one shape; a row model deals batches of items.
    monkeypatch.setattr(trainer, "resolve_device", lambda spec: torch.device("cuda", 0))
    with pytest.raises(ConfigError, match=f"capture=True captures a step over .* which {model} has not"):
        fit(split, model=model, epochs=2, capture=True)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "sparse_adam"])
def test_a_captured_cuda_step_refuses_an_optimizer_that_cannot_be_captured(split, monkeypatch, optimizer):
    monkeypatch.setattr(trainer, "resolve_device", lambda spec: torch.device("cuda", 0))
    with pytest.raises(ConfigError, match=f"capture=True needs a capturable optimizer .*not {optimizer}"):
        fit(split, optimizer=optimizer, weight_decay=0.0, epochs=2, capture=True)


def test_add_and_run_refuse_an_unknown_schedule_in_one_line_and_queue_nothing(db, capsys):
    assert main(["--db", db, "add", "--seed", "1"]) == 0
    for command in ("add", "run"):
        capsys.readouterr()
        assert main(["--db", db, command, "--data", "synthetic-100k", "--schedule", "bogus"]) == 2
        assert capsys.readouterr().err == ("dmf-tui: error: schedule: must be one of none, cosine, step, plateau "
                                           "(got 'bogus')\n")
    assert open_store(db).count_runs() == 1
