"""The optimizers beside the lab's Adam: AdamW, SGD with momentum, Adagrad and the lazy sparse Adam.
Each trains, each trains otherwise; sparse Adam moves only the embedding rows a batch uses; and the
combinations that cannot train are refused, by fit() and, in one line, by the parameters and the
command line. Tiny synthetic data on CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import torch

from dmf_tui.cli import main
from engine import steps, trainer
from engine.errors import ConfigError
from engine.models import PairModel, RowModel, build_model
from engine.split import split_dataset
from engine.trainer import fit
from store.db import open_store
from store.errors import ParamError
from store.params import RunParams

if TYPE_CHECKING:  # mypy, run from the repository root, names the module tests.test_trainer
    from tests.test_trainer import tiny_dataset
else:  # pytest puts tests/ on sys.path
    from test_trainer import tiny_dataset


@pytest.fixture(scope="module")
def split():
    return split_dataset(tiny_dataset())


# A learning rate at which each trains on the tiny data in a few epochs; sparse Adam takes no weight decay.
SETTINGS = {"adam": (0.05, 1e-3), "adamw": (0.05, 1e-3), "sgd": (0.05, 1e-3), "adagrad": (0.1, 1e-3),
            "sparse_adam": (0.05, 0.0)}


def test_every_optimizer_trains_and_each_otherwise(split):
    assert set(SETTINGS) == set(trainer.OPTIMIZERS)
    curves = {}
    for name, (lr, weight_decay) in SETTINGS.items():
        result = fit(split, optimizer=name, lr=lr, weight_decay=weight_decay, epochs=4, bias=True, device="cpu")
        curves[name] = [e.train_rmse for e in result.epochs]
        assert curves[name][-1] < 0.8 * curves[name][0], name
        assert result.epochs[-1].test_rmse < result.epochs[0].test_rmse, name
    assert len({tuple(curve) for curve in curves.values()}) == len(curves)


@pytest.mark.parametrize("name, kind, model", [
    ("adamw", torch.optim.AdamW, "mf"), ("sgd", torch.optim.SGD, "mf"), ("adagrad", torch.optim.Adagrad, "mf"),
    ("sparse_adam", steps.SparseAdam, "gmf"),
])
def test_every_other_optimizer_takes_the_autograd_step_with_its_own_optimizer(name, kind, model):
    # The hand-written CPU steps are Adam's and sparse Adam's updates of the models whose gradients
    # are written by hand: any other optimizer or model must get autograd and its own optimizer.
    step = steps.make_step([build_model(model, 60, 40)], torch.zeros(()), optimizer=name, lrs=[0.01],
                              weight_decays=[0.0], momentum=0.7, batch_size=64, capture=False)
    assert isinstance(step, steps.EagerStep) and type(step.optimizer) is kind
    if name == "sgd":
        assert [group["momentum"] for group in step.optimizer.param_groups] == [0.7]


@pytest.mark.parametrize("model, options", [
    ("mf", {}), ("mf", {"bias": True, "reg": 0.05, "reg_bias": 0.02}), ("deepmf", {}),
    ("deepmf", {"bias": True, "reg": 0.05, "hidden": (6,)}),
])
def test_the_lazy_cpu_step_trains_as_torch_sparse_adam_through_autograd(model, options):
    # LazyHandStep against what it stands for: the model's loss, backward() into sparse table
    # gradients, and SparseAdam (torch.optim.SparseAdam for the tables, torch.optim.Adam for the
    # rest). Measured: plain MF bit for bit after 300 steps, the rest within 2.4e-7 (Adam's fused
    # kernel against torch's loop, the reg terms' sums in another order).
    def seeded() -> PairModel:
        torch.manual_seed(0)
        net = build_model(model, 30, 20, k=4, init_std=0.5, **options)
        assert isinstance(net, PairModel)
        return net

    nets = [seeded(), seeded()]
    lazy = steps.make_step([nets[0]], torch.zeros(()), optimizer="sparse_adam", lrs=[0.05], weight_decays=[0.0],
                           batch_size=16, capture=False)
    assert isinstance(lazy, steps.LazyHandStep)
    eager = steps.EagerStep(nets[1], steps.SparseAdam(nets[1], lr=0.05), torch.zeros(()))
    batches = torch.Generator().manual_seed(1)
    for n in range(300):
        if n == 150:  # a schedule's new rate, between epochs
            for step in (lazy, eager):
                step.set_lrs([0.02])
        # Users 0-24 of 30 and items 0-14 of 20: a batch of 16 repeats some; the rest never move.
        batch = (torch.randint(0, 25, (16,), generator=batches), torch.randint(0, 15, (16,), generator=batches),
                 torch.randint(1, 6, (16,), generator=batches).float())
        lazy(*batch)
        eager(*batch)
    start = seeded()
    assert torch.equal(nets[0].user_emb.weight[25:], start.user_emb.weight[25:])
    assert torch.equal(nets[0].item_emb.weight[15:], start.item_emb.weight[15:])
    for (name, mine), theirs, first in zip(nets[0].named_parameters(), nets[1].parameters(), start.parameters()):
        assert not torch.equal(mine, first), name  # every parameter trained
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6, msg=name)
    torch.testing.assert_close(lazy.sse, eager.sse, rtol=1e-6, atol=0)


def test_fit_with_sparse_adam_on_cpu_trains_through_the_lazy_step_as_through_autograd(split, monkeypatch):
    made: list[steps.Step] = []
    make_step = steps.make_step

    def recorded(*args, **kwargs):
        made.append(make_step(*args, **kwargs))
        return made[-1]
    monkeypatch.setattr(trainer, "make_step", recorded)
    lazy = fit(split, optimizer="sparse_adam", lr=0.05, weight_decay=0.0, epochs=3, device="cpu")
    assert [type(step) for step in made] == [steps.LazyHandStep]
    monkeypatch.setattr(steps, "has_hand_grads", lambda net: False)
    made.clear()
    eager = fit(split, optimizer="sparse_adam", lr=0.05, weight_decay=0.0, epochs=3, device="cpu")
    assert [type(step) for step in made] == [steps.EagerStep]
    for mine, theirs in zip(lazy.epochs, eager.epochs):
        assert mine.train_rmse == pytest.approx(theirs.train_rmse, abs=1e-6)
        assert mine.test_rmse == pytest.approx(theirs.test_rmse, abs=1e-6)


def test_sgd_uses_momentum(split):
    curve = lambda momentum: [e.train_rmse for e in fit(  # noqa: E731
        split, optimizer="sgd", lr=0.05, momentum=momentum, epochs=3, device="cpu").epochs]
    with_momentum, without = curve(0.9), curve(0.0)
    assert with_momentum != without
    # Momentum carries the steps on: on this data it gets further in the same epochs.
    assert with_momentum[-1] < without[-1]


def two_steps(optimizer: str, name: str = "mf") -> list[dict[str, torch.Tensor]]:
    """The model's parameters before, after a step on users 0, 1 x item 2, and after one on user 3 x item 4."""
    torch.manual_seed(0)
    net = build_model(name, 6, 6, bias=True)
    step = steps.make_step([net], torch.zeros(()), optimizer=optimizer, lrs=[0.1], weight_decays=[0.0],
                              batch_size=2, capture=False)
    snapshots = [{n: p.detach().clone() for n, p in net.named_parameters()}]
    for users, items, ratings in [([0, 1], [2, 2], [5.0, 1.0]), ([3], [4], [4.0])]:
        step(torch.tensor(users), torch.tensor(items), torch.tensor(ratings))
        snapshots.append({n: p.detach().clone() for n, p in net.named_parameters()})
    return snapshots


def moved_rows(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    changed = before != after
    return changed.reshape(len(changed), -1).any(dim=1).nonzero().flatten().tolist()


def test_sparse_adam_moves_only_the_embedding_rows_a_batch_uses_and_every_dense_part():
    start, first, second = two_steps("sparse_adam")
    assert moved_rows(start["user_emb.weight"], first["user_emb.weight"]) == [0, 1]
    assert moved_rows(start["item_emb.weight"], first["item_emb.weight"]) == [2]
    # The second batch uses neither user 0 or 1 nor item 2: their rows and moments stay as they are.
    assert moved_rows(first["user_emb.weight"], second["user_emb.weight"]) == [3]
    assert moved_rows(first["item_emb.weight"], second["item_emb.weight"]) == [4]
    # The biases are dense, under plain Adam: the first batch's keep moving on their momentum.
    assert moved_rows(first["user_bias"], second["user_bias"]) == [0, 1, 3]
    assert not torch.equal(first["global_bias"], second["global_bias"])
    # Plain Adam, for contrast, moves the first batch's rows again on the second step.
    _, adam_first, adam_second = two_steps("adam")
    assert moved_rows(adam_first["user_emb.weight"], adam_second["user_emb.weight"]) == [0, 1, 3]


def test_sparse_adam_moves_the_mlp_of_deepmf():
    start, first, _ = two_steps("sparse_adam", "deepmf")
    assert moved_rows(start["user_emb.weight"], first["user_emb.weight"]) == [0, 1]
    for name in start:
        if name.startswith("mlp."):
            assert not torch.equal(start[name], first[name]), name


class Reconstruction(RowModel):
    """The least RowModel: one weight, no embedding tables."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))


def test_sparse_adam_refuses_a_model_without_embedding_tables():
    with pytest.raises(ConfigError, match="optimizer sparse_adam needs embedding tables, which Reconstruction has not"):
        steps.make_step([Reconstruction()], torch.zeros(()), optimizer="sparse_adam", lrs=[0.01], weight_decays=[0.0],
                           batch_size=64, capture=False)


def test_sparse_adam_refuses_weight_decay_in_the_engine_too():
    # fit() called from a script skips RunParams: it must not decay the dense parts and not the tables.
    with pytest.raises(ConfigError, match="sparse_adam takes no weight decay"):
        steps.make_step([build_model("mf", 10, 10)], torch.zeros(()), optimizer="sparse_adam", lrs=[0.01],
                           weight_decays=[1e-5], batch_size=64, capture=False)


@pytest.mark.parametrize("fields, message", [
    ({"optimizer": "sparse_adam"}, "optimizer sparse_adam takes no weight decay: decay the rows it moves with "
                                   "--reg and set --weight-decay 0"),
    ({"optimizer": "sparse_adam", "weight_decay": 0.0, "model": "autorec"},
     "optimizer sparse_adam needs embedding tables, which autorec has not"),
    ({"reg_bias": 0.1}, "reg_bias regularises the biases, which need --bias true"),
])
def test_parameters_that_cannot_train_together_are_one_line_param_errors(fields, message):
    with pytest.raises(ParamError) as refused:
        RunParams(**fields).validate()
    assert str(refused.value) == message


@pytest.mark.parametrize("fields", [
    {"optimizer": "sparse_adam", "weight_decay": 0.0},
    {"optimizer": "sparse_adam", "weight_decay": 0.0, "model": "deepmf"},
    {"reg_bias": 0.1, "bias": True},
])
def test_the_fixes_those_errors_name_are_accepted(fields):
    RunParams(**fields).validate()


def test_add_and_run_refuse_sparse_adam_with_the_default_weight_decay_and_queue_nothing(db, capsys):
    assert main(["--db", db, "add", "--seed", "1"]) == 0
    for command in ("add", "run"):
        capsys.readouterr()
        assert main(["--db", db, command, "--data", "synthetic-100k", "--optimizer", "sparse_adam"]) == 2
        assert capsys.readouterr().err == ("dmf-tui: error: optimizer sparse_adam takes no weight decay: decay the "
                                           "rows it moves with --reg and set --weight-decay 0\n")
    assert open_store(db).count_runs() == 1
    # As the message says:
    assert main(["--db", db, "add", "--optimizer", "sparse_adam", "--weight-decay", "0"]) == 0
    assert open_store(db).count_runs() == 2


def test_the_lazy_cpu_steps_dense_moments_never_go_subnormal_and_the_flag_is_left_off():
    # A bias no batch uses has its first moment decay by 0.9 a step: subnormal after ~700 steps, on
    # which the CPU's vector units run 20x slower. The lazy step flushes them to zero.
    torch.manual_seed(0)
    net = build_model("mf", 30, 20, k=4, bias=True)
    step = steps.make_step([net], torch.zeros(()), optimizer="sparse_adam", lrs=[0.05], weight_decays=[0.0],
                           batch_size=4, capture=False)
    assert isinstance(step, steps.LazyHandStep) and step.dense is not None
    batch = (torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    step(torch.arange(30) % 30, torch.arange(30) % 20, torch.full((30,), 3.0))  # every bias moves once
    for _ in range(900):
        step(*batch)  # then users 4-29 and items 4-19 are never used again
    tiny = torch.finfo(torch.float32).tiny
    for moments in step.dense.exp_avgs:
        assert not ((moments != 0) & (moments.abs() < tiny)).any()
    assert (torch.tensor([tiny]) / 4).item() > 0  # subnormals are back once the step is done
