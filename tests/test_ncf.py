"""GMF and NeuMF (engine/ncf.py) against plain functional references written from the state_dict,
and trained through fit() on a tiny low-rank dataset (CPU, well under a second per fit)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine import steps
from engine.models import build_model, has_hand_grads
from engine.ncf import GMF, NeuMF
from engine.split import split_dataset
from engine.trainer import OPTIMIZERS, fit
from tests.tiny import tiny_dataset

N_USERS, N_ITEMS = 60, 40
# Users and items past these have no ratings at all: rows that no batch ever uses.
RATED_USERS, RATED_ITEMS = 50, 34


@pytest.fixture(scope="module")
def split():
    ratings = tiny_dataset(N_USERS, N_ITEMS, 1500, rated_users=RATED_USERS, rated_items=RATED_ITEMS)
    return split_dataset(ratings, val_size=0.1)


def quick(split, **kwargs):
    kwargs = {"batch_size": 256, "epochs": 3, "device": "cpu", "lr": 0.01, "k": 6, "hidden": (8, 4), **kwargs}
    return fit(split, **kwargs)


# The references: each model's prediction and batch loss from its state_dict, in plain torch ops.

def gmf_reference(w: dict[str, torch.Tensor], users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    product = w["user_emb.weight"][users] * w["item_emb.weight"][items]
    return product @ w["h.weight"][0] + w["h.bias"][0] + biases_reference(w, users, items)


def neumf_reference(w: dict[str, torch.Tensor], users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    x = torch.cat([w["mlp_user_emb.weight"][users], w["mlp_item_emb.weight"][items]], dim=1)
    n = 0
    while f"mlp.{n}.weight" in w:  # Linear, ReLU pairs: the Linear layers sit at even indices
        x = torch.relu(x @ w[f"mlp.{n}.weight"].T + w[f"mlp.{n}.bias"])
        n += 2
    gmf = w["user_emb.weight"][users] * w["item_emb.weight"][items]
    joined = torch.cat([gmf, x], dim=1)
    return joined @ w["out.weight"][0] + w["out.bias"][0] + biases_reference(w, users, items)


def biases_reference(w: dict[str, torch.Tensor], users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    if "user_bias" not in w:
        return torch.zeros(())
    return w["user_bias"][users] + w["item_bias"][items] + w["global_bias"]


TABLES = {"gmf": ("user_emb", "item_emb"),
          "neumf": ("user_emb", "item_emb", "mlp_user_emb", "mlp_item_emb")}
REFERENCES = {"gmf": gmf_reference, "neumf": neumf_reference}


def loss_reference(model: str, w, users, items, ratings, *, reg: float, reg_bias: float):
    """The MSE plus reg times each used row's squared norm (every table of the model) plus reg_bias
    times each used bias squared, per rating."""
    error = REFERENCES[model](w, users, items) - ratings
    penalty = sum(w[f"{table}.weight"][users if "user" in table else items].square().sum()
                  for table in TABLES[model])
    bias_penalty = w["user_bias"][users].square().sum() + w["item_bias"][items].square().sum()
    return error.square().mean() + (reg * penalty + reg_bias * bias_penalty) / len(ratings)


def batch():
    # Repeated users and items, so that a row's gradient adds up over its uses.
    users = torch.tensor([0, 3, 3, 7, 1, 0, 9])
    items = torch.tensor([2, 2, 5, 0, 5, 1, 2])
    ratings = torch.tensor([4.0, 3.0, 5.0, 1.0, 2.0, 4.0, 3.0])
    return users, items, ratings


def made(model: str, **config):
    torch.manual_seed(1)
    net = build_model(model, 10, 6, **{"k": 4, "hidden": (5, 3), **config})
    with torch.no_grad():  # biases away from zero, so that their gradients are not trivially alike
        for name, p in net.named_parameters():
            if "bias" in name:
                p.normal_()
    return net


@pytest.mark.parametrize("model", ["gmf", "neumf"])
@pytest.mark.parametrize("bias", [False, True])
def test_forward_is_the_functional_reference(model, bias):
    net = made(model, bias=bias, init_std=0.3)
    users, items, _ = batch()
    w = net.state_dict()
    assert torch.allclose(net(users, items), REFERENCES[model](w, users, items), atol=1e-6)


@pytest.mark.parametrize("model", ["gmf", "neumf"])
def test_batch_loss_and_its_gradients_are_the_references(model):
    net = made(model, bias=True, reg=0.3, reg_bias=0.7)
    users, items, ratings = batch()
    loss, sse = net.batch_loss(users, items, ratings)
    loss.backward()

    w = {name: t.detach().clone().requires_grad_() for name, t in net.state_dict().items()}
    expected = loss_reference(model, w, users, items, ratings, reg=0.3, reg_bias=0.7)
    expected.backward()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(sse, (REFERENCES[model](w, users, items) - ratings).square().sum(), atol=1e-5)
    for name, p in net.named_parameters():
        assert torch.allclose(p.grad, w[name].grad, atol=1e-6), name


@pytest.mark.parametrize("table", TABLES["neumf"])
def test_reg_penalises_every_neumf_table(table):
    net = made("neumf", reg=0.5).eval()
    users, items, ratings = batch()
    with torch.no_grad():  # every other table zero: what penalty is left is this table's alone
        for other in TABLES["neumf"]:
            if other != table:
                getattr(net, other).weight.zero_()
    penalty = net.batch_loss(users, items, ratings)[0] - F.mse_loss(net(users, items), ratings)
    rows = getattr(net, table).weight[users if "user" in table else items]
    assert penalty.item() > 0
    assert torch.allclose(penalty, 0.5 * rows.square().sum() / len(ratings), atol=1e-6)


def test_build_model_makes_them_and_ignores_what_they_do_not_take():
    options = {"k": 4, "hidden": (7, 3), "dropout": 0.2, "bias": True, "emb_dropout": 0.1, "init_std": 0.0,
               "reg": 0.01, "reg_bias": 0.02}
    gmf, neumf = build_model("gmf", 10, 6, **options), build_model("neumf", 10, 6, **options)
    assert type(gmf) is GMF and type(neumf) is NeuMF
    assert (gmf.reg, gmf.reg_bias, gmf.emb_dropout, gmf.bias) == (0.01, 0.02, 0.1, True)
    assert not any(isinstance(m, torch.nn.Dropout) for m in gmf.modules())  # dropout: no hidden layers
    linears = [m for m in neumf.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 7), (7, 3)]
    assert (neumf.out.in_features, neumf.mlp_user_emb.weight.shape) == (4 + 3, (10, 4))
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in neumf.mlp) == 2


@pytest.mark.parametrize("model", ["gmf", "neumf"])
def test_init_std_draws_every_table_from_a_normal_of_that_spread(model):
    torch.manual_seed(0)
    net = build_model(model, 300, 200, k=16, init_std=0.05)
    for table in TABLES[model]:
        assert abs(getattr(net, table).weight.std().item() - 0.05) < 0.005, table
    torch.manual_seed(0)
    default = build_model(model, 300, 200, k=16)  # PyTorch's own: N(0, 1)
    assert all(abs(getattr(default, table).weight.std().item() - 1) < 0.1 for table in TABLES[model])


def test_embedding_dropout_drops_the_mlp_branch_rows_too():
    net = made("neumf", emb_dropout=0.5)
    with torch.no_grad():  # the GMF branch silenced: the prediction comes from the MLP branch alone
        net.out.weight[0, :4] = 0
    users, items, _ = batch()
    eval_prediction = net.eval()(users, items)
    net.train()
    torch.manual_seed(0)
    first = net(users, items)
    torch.manual_seed(1)
    assert not torch.equal(first, net(users, items))  # other rows dropped, another prediction
    net.emb_dropout = 0.0
    assert torch.equal(net(users, items), eval_prediction)


@pytest.mark.parametrize("model", ["gmf", "neumf"])
def test_they_take_the_autograd_step_not_the_hand_written_one(model):
    net = build_model(model, 10, 6, k=4)
    assert not has_hand_grads(net)
    step = steps.make_step([net], torch.zeros(()), optimizer="adam", lrs=[0.01], weight_decays=[0.0],
                              batch_size=8, capture=False)
    assert isinstance(step, steps.EagerStep)


@pytest.mark.parametrize("model", ["gmf", "neumf"])
def test_fit_trains_them(split, model):
    result = quick(split, model=model, epochs=6, bias=True, reg=0.01, reg_bias=0.01, dropout=0.1,
                   emb_dropout=0.1, init_std=0.1)
    train, val = [e.train_rmse for e in result.epochs], [e.val_rmse for e in result.epochs]
    assert train[-1] < train[0] and min(val) < val[0]
    assert result.best_epoch > 1


@pytest.mark.parametrize("model", ["gmf", "neumf"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_trains_them(split, model, optimizer):
    lr = 0.1 if optimizer in ("sgd", "adagrad") else 0.01
    result = quick(split, model=model, optimizer=optimizer, lr=lr, epochs=3, init_std=0.1, bias=True, reg=0.01,
                   weight_decay=0.0)
    train = [e.train_rmse for e in result.epochs]
    assert all(math.isfinite(r) for r in train) and train[-1] < train[0]


@pytest.mark.parametrize("model", ["gmf", "neumf"])
def test_sparse_adam_leaves_rows_no_batch_used_where_they_started(split, model, tmp_path):
    config = {"k": 6, "hidden": (8, 4), "init_std": 0.1, "reg": 0.01}

    def trained(optimizer: str):
        path = tmp_path / f"{optimizer}.pt"
        # sparse_adam takes no weight decay; Adam's is the contrast below.
        quick(split, model=model, optimizer=optimizer, weight_decay=0.0 if optimizer == "sparse_adam" else 0.01,
              checkpoint_path=path, **config)
        return torch.load(path)["state_dict"]

    torch.manual_seed(0)  # fit's seed: the weights it starts from
    start = build_model(model, N_USERS, N_ITEMS, **config).state_dict()
    lazy, dense = trained("sparse_adam"), trained("adam")
    for table in TABLES[model]:
        unused = slice(RATED_USERS, None) if "user" in table else slice(RATED_ITEMS, None)
        used = slice(0, 5)
        name = f"{table}.weight"
        assert torch.equal(lazy[name][unused], start[name][unused]), table
        assert not torch.equal(lazy[name][used], start[name][used]), table
        # Adam's weight decay pulls every row at every step: the contrast that shows the check can fail.
        assert not torch.equal(dense[name][unused], start[name][unused]), table


@pytest.mark.parametrize("model", ["gmf", "neumf"])
def test_a_seed_reproduces_a_run_exactly(split, model):
    def curve(seed: int):
        result = quick(split, model=model, seed=seed, epochs=2, dropout=0.2, emb_dropout=0.2)
        return [(e.train_rmse, e.val_rmse, e.test_rmse) for e in result.epochs]

    assert curve(3) == curve(3)
    assert curve(3) != curve(4)
