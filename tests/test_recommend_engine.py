"""engine/recommend.py: on a real ML-100K run, top-N lists, their reasons and similar items, checked
against the data itself (the split, u.item) and the model's own forward, and the errors a person
meets with a wrong id or n; on tiny data, every model rebuilt from its checkpoint alone, and data
without titles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.datasets import load_dataset
from engine.errors import ConfigError
from engine.item_matrix import ItemMatrixModel
from engine.models import PairModel
from engine.ranking import ranking_metrics
from engine.recommend import Recommendation, TrainedModel
from engine.scoring import user_scorer
from engine.split import Split, split_dataset
from engine.trainer import fit
from tests.conftest import ML100K
from tests.tiny import tiny_dataset


@dataclass(frozen=True)
class Run:
    model: TrainedModel
    split: Split

    def rated(self, raw_user: int) -> dict[int, float]:
        """The raw items the user rated in the run's training or validation part, with the rating."""
        ds = self.split.dataset
        rows = np.concatenate([self.split.train, self.split.val])
        mine = rows[ds.users[rows] == ds.user_index(raw_user)]
        return {int(ds.item_ids[i]): float(r) for i, r in zip(ds.items[mine], ds.ratings[mine])}

    def forward(self, raw_user: int, raw_items: list[int]) -> list[float]:
        """The model's forward on (user, item) pairs given by raw id."""
        ds = self.split.dataset
        with torch.no_grad():
            users = torch.full((len(raw_items),), ds.user_index(raw_user))
            predicted: torch.Tensor = self.model.net(users, torch.from_numpy(ds.item_index(raw_items)))
        return predicted.tolist()


def train(split: Split, folder: Path, name: str, **options: Any) -> Run:
    fit(split, epochs=3, device="cpu", checkpoint_path=folder / "run.pt", **options)
    return Run(TrainedModel.load(folder / "run.pt", name=name), split)


@pytest.fixture(scope="module")
def ml100k_split() -> Split:
    if not ML100K.exists():
        pytest.skip(f"real ML-100K not found at {ML100K} (it is not redistributable)")
    return split_dataset(load_dataset(str(ML100K)), val_size=0.1)


@pytest.fixture(scope="module")
def mf(ml100k_split: Split, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return train(ml100k_split, tmp_path_factory.mktemp("mf"), "run 5", model="mf", bias=True, lr=0.01)


@pytest.fixture(scope="module")
def autorec(ml100k_split: Split, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return train(ml100k_split, tmp_path_factory.mktemp("autorec"), "run 6", model="autorec", k=20, batch_size=256)


def u_item() -> dict[int, tuple[str, tuple[str, ...]]]:
    """ML-100K's titles and genres, read here the plain way."""
    genres = [line.split("|")[0] for line in (ML100K.parent / "u.genre").read_text("latin-1").splitlines() if line]
    items = {}
    for line in (ML100K.parent / "u.item").read_text("latin-1").splitlines():
        fields = line.split("|")
        items[int(fields[0])] = (fields[1], tuple(g for g, flag in zip(genres, fields[5:]) if flag == "1"))
    return items


def assert_best_first(entries: list[Recommendation]) -> None:
    scores = [entry.score for entry in entries]
    assert scores == sorted(scores, reverse=True)


# A call of the model, in a parametrised test.
Request = Callable[[TrainedModel], object]
USERS = (1, 405, 242)  # the first, the one who rated most (737 movies), one who rated 20 (12 in the run)


@pytest.mark.parametrize("user", USERS)
def test_recommendations_are_unrated_items_best_first_with_the_models_scores(mf: Run, user: int) -> None:
    entries = mf.model.recommend(user, n=25)
    items = [entry.item for entry in entries]
    assert len(entries) == 25 and len(set(items)) == 25
    assert not set(items) & set(mf.rated(user))
    assert_best_first(entries)
    assert [entry.score for entry in entries] == pytest.approx(mf.forward(user, items), abs=1e-5)


def test_no_unrated_item_scores_above_the_last_recommended(mf: Run) -> None:
    last = mf.model.recommend(1, n=10)[-1].score
    unrated = [item for item in map(int, mf.split.dataset.item_ids) if item not in mf.rated(1)]
    assert sorted(mf.forward(1, unrated), reverse=True)[10] <= last + 1e-6


def test_titles_and_genres_are_u_items(mf: Run) -> None:
    titles = u_item()
    entries = mf.model.recommend(1, n=20)
    assert [(entry.title, entry.genres) for entry in entries] == [titles[entry.item] for entry in entries]
    assert mf.model.titles.source == ML100K.parent / "u.item"
    assert mf.model.titles_note is None


def test_n_past_the_catalogue_gives_every_unrated_item(mf: Run) -> None:
    ds = mf.split.dataset
    entries = mf.model.recommend(405, n=ds.n_items + 100)
    assert {entry.item for entry in entries} == set(map(int, ds.item_ids)) - set(mf.rated(405))
    assert len(entries) == ds.n_items - len(mf.rated(405))
    assert_best_first(entries)


@pytest.mark.parametrize("user", USERS)
def test_explain_names_an_item_the_user_rated_and_its_rating(mf: Run, user: int) -> None:
    titles, rated = u_item(), mf.rated(user)
    entries = mf.model.recommend(user, n=10, explain=True)
    assert [e.item for e in entries] == [e.item for e in mf.model.recommend(user, n=10)]  # the same list
    for entry in entries:
        assert entry.because is not None
        item, title, rating = entry.because
        assert item in rated and rating == rated[item] and title == titles[item][0]


def test_explain_picks_the_closest_of_the_users_favourites(mf: Run) -> None:
    # User 242 rated fewer items than --explain compares with, so every one of them is a candidate.
    rated = mf.rated(242)
    assert len(rated) < 50
    ds, net = mf.split.dataset, mf.model.net
    assert isinstance(net, PairModel)
    vectors = F.normalize(net.item_emb.weight.detach(), dim=1)
    for entry in mf.model.recommend(242, n=5, explain=True):
        assert entry.because is not None
        cosine = {raw: float(vectors[ds.item_index(entry.item)] @ vectors[ds.item_index(raw)]) for raw in rated}
        assert cosine[entry.because[0]] == pytest.approx(max(cosine.values()), abs=1e-6)


def test_similar_items_exclude_the_item_and_are_closest_first(mf: Run) -> None:
    ds, net = mf.split.dataset, mf.model.net
    assert isinstance(net, PairModel)
    vectors = F.normalize(net.item_emb.weight.detach(), dim=1)
    entries = mf.model.similar(50, n=15)  # Star Wars
    assert len(entries) == 15 and 50 not in [entry.item for entry in entries]
    assert_best_first(entries)
    star_wars = vectors[ds.item_index(50)]
    cosine = (vectors @ star_wars).tolist()
    assert [entry.score for entry in entries] == pytest.approx([cosine[ds.item_index(e.item)] for e in entries],
                                                               abs=1e-5)
    others = sorted((c for i, c in enumerate(cosine) if i != ds.item_index(50)), reverse=True)
    assert entries[-1].score == pytest.approx(others[14], abs=1e-6)
    assert [entry.title for entry in entries] == [u_item()[entry.item][0] for entry in entries]


def test_similar_past_the_catalogue_gives_every_other_item(mf: Run) -> None:
    assert len(mf.model.similar(1, n=10_000)) == mf.split.dataset.n_items - 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.recommend(99999), r"^user 99999 is not in the data of run 5 \(943 users, ids 1\.\.943\)$"),
    (lambda m: m.recommend(0), r"^user 0 is not in the data of run 5 "),
    (lambda m: m.recommend(-3), r"^user -3 is not in the data of run 5 "),
    (lambda m: m.similar(1683), r"^item 1683 is not in the data of run 5 \(1,682 items, ids 1\.\.1682\)$"),
    (lambda m: m.recommend(1, n=0), r"^-n must be at least 1 \(got 0\)$"),
    (lambda m: m.recommend(1, n=-2), r"^-n must be at least 1 \(got -2\)$"),
    (lambda m: m.similar(1, n=0), r"^-n must be at least 1 \(got 0\)$"),
], ids=["user-past", "user-0", "user-negative", "item", "n-0", "n-negative", "similar-n-0"])
def test_bad_requests_are_one_clear_line(mf: Run, call: Request, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call(mf.model)


def test_an_id_too_large_for_any_dataset_is_one_clear_line(mf: Run) -> None:
    with pytest.raises(ConfigError, match=r"^user 100000000000000000000 is not in the data of run 5 "):
        mf.model.recommend(10**20)


# ---- a row model


@pytest.mark.parametrize("user", USERS)
def test_a_row_model_recommends_unrated_items_with_its_forwards_scores(autorec: Run, user: int) -> None:
    entries = autorec.model.recommend(user, n=10)
    items = [entry.item for entry in entries]
    assert len(entries) == 10 and not set(items) & set(autorec.rated(user))
    assert_best_first(entries)
    assert [entry.score for entry in entries] == pytest.approx(autorec.forward(user, items), abs=1e-4)


def test_a_row_model_predicts_from_the_training_ratings_it_was_trained_on(autorec: Run) -> None:
    # The loaded model attached the checkpoint's training ratings: exactly the split's training part.
    net, (users, items, ratings) = autorec.model.net, autorec.split.part("train")
    assert isinstance(net, ItemMatrixModel)
    want = torch.zeros_like(net.ratings)
    want[torch.from_numpy(items), torch.from_numpy(users)] = torch.from_numpy(ratings)
    assert torch.equal(net.ratings, want)
    assert net.mean == pytest.approx(float(ratings.mean()))


@pytest.mark.parametrize("call", [lambda m: m.similar(50), lambda m: m.recommend(1, explain=True)],
                         ids=["similar", "explain"])
def test_a_row_model_refuses_to_compare_items(autorec: Run, call: Request) -> None:
    with pytest.raises(ConfigError, match=r"^AutoRec has no item embedding to compare items in: `similar` and "
                                          r"--explain need a run of mf, deepmf, gmf or neumf$"):
        call(autorec.model)


# ---- data without an item file


def test_synthetic_data_has_no_titles(tmp_path: Path) -> None:
    ds = tiny_dataset(30, 40, 500)  # made in memory, as the synthetic datasets are: no file, no titles
    run = train(split_dataset(ds), tmp_path, "run 7", model="mf")
    entries = run.model.recommend(3, n=5) + run.model.similar(3, n=5)
    assert [(entry.title, entry.genres) for entry in entries] == [(None, ())] * 10
    assert run.model.titles.source is None
    assert run.model.titles_note == f"{ds.name} has no item file: items show by id"


def test_a_ratings_file_without_an_item_file_has_no_titles(tmp_path: Path) -> None:
    ds = tiny_dataset(30, 40, 500)
    path = tmp_path / "ratings.csv"
    path.write_text("".join(f"{u + 1},{i + 1},{r:g},0\n" for u, i, r in zip(ds.users, ds.items, ds.ratings)))
    run = train(split_dataset(load_dataset(str(path))), tmp_path, "run 8", model="mf")
    assert run.model.data.path == str(path)
    assert [entry.title for entry in run.model.recommend(3, n=5)] == [None] * 5
    assert run.model.titles_note == f"no item file beside {path}: items show by id"


def test_a_partly_malformed_item_file_is_named_in_the_note(tmp_path: Path) -> None:
    ds = tiny_dataset(30, 40, 500)
    path = tmp_path / "ratings.csv"
    path.write_text("".join(f"{u + 1},{i + 1},{r:g},0\n" for u, i, r in zip(ds.users, ds.items, ds.ratings)))
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,[/] One,Drama\nx,Two,Comedy\n")
    run = train(split_dataset(load_dataset(str(path))), tmp_path, "run 9", model="mf")
    assert run.model.titles.title(1) == "[/] One"
    assert run.model.titles_note == run.model.titles.problem
    assert run.model.titles_note is not None and run.model.titles_note.startswith("movies.csv line 3: ")


# ---- any model, from its checkpoint alone


@pytest.mark.parametrize("options", [
    {"model": "mf"},
    {"model": "deepmf", "hidden": (8,), "bias": True, "dropout": 0.2},
    {"model": "gmf"},
    {"model": "neumf"},
    {"model": "autorec", "k": 8, "batch_size": 16},
    {"model": "glocal_k", "k": 3, "hidden": (8, 8), "pretrain_epochs": 1, "batch_size": 16},
], ids=lambda options: str(options["model"]))
def test_a_loaded_model_ranks_as_the_trained_one_did(tmp_path: Path, options: dict[str, Any]) -> None:
    # Rebuilt from the checkpoint alone (a row model re-attaching its training ratings from it, GLocal-K
    # in its fine-tuning phase), the model ranks the test part as fit() ranked the best epoch's model.
    split = split_dataset(tiny_dataset(30, 40, 600))
    result = fit(split, epochs=3, lr=0.01, device="cpu", checkpoint_path=tmp_path / "run.pt", **options)
    model = TrainedModel.load(tmp_path / "run.pt", name="run 9")
    if options["model"] == "glocal_k":
        assert result.best_epoch > 1 and bool(model.net.get_buffer("fine_tuning"))
    users, items, ratings = (torch.from_numpy(part) for part in split.part("test"))
    again = ranking_metrics(user_scorer(model.net), model.data.known, (users, items, ratings), split.dataset.n_items)
    assert again is not None and result.ranking is not None
    assert (again.precision, again.recall, again.ndcg, again.users) == pytest.approx(
        (result.ranking.precision, result.ranking.recall, result.ranking.ndcg, result.ranking.users), abs=1e-6)


def test_a_checkpoint_that_does_not_fit_its_model(tmp_path: Path) -> None:
    train(split_dataset(tiny_dataset(30, 40, 500)), tmp_path, "run 9", model="mf", k=4)
    saved = torch.load(tmp_path / "run.pt", weights_only=True)
    saved["config"]["k"] = 5
    torch.save(saved, tmp_path / "run.pt")
    with pytest.raises(ConfigError, match=r"^run 9's checkpoint \(.*run\.pt\) does not match its model: "):
        TrainedModel.load(tmp_path / "run.pt", name="run 9")


def test_a_checkpoint_of_the_previous_release_names_the_run(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "config": {"model": "mf"}, "epoch": 1, "test_rmse": 1.0}, tmp_path / "run.pt")
    with pytest.raises(ConfigError, match=r"^run 9's checkpoint \(.*run\.pt\) was written by an older dmf-tui"):
        TrainedModel.load(tmp_path / "run.pt", name="run 9")
