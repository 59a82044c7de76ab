"""Run detail's Recommend panel at 80x24, driven by keys: a user id in, the run's top 10 out, the model
loaded once and only when used, and one line in the panel for whatever stops it."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from textual.widgets import Static

from dmf_tui.components.epoch_table import EpochTable
from dmf_tui.components.recommend_panel import RecommendPanel
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.trained import checkpoint_of
from store.db import open_store
from store.errors import NoCheckpointError
from store.params import RunParams
from tests.tui.conftest import FakeWorker, TextualPrivate, make_app, settle
from tests.tui.test_run_detail import open_detail, type_text

SIZE = (80, 24)
REPO = Path(__file__).resolve().parents[2]
# Text a title could hold that Rich would read as markup, were it not shown as it is.
MARKUP = "[/]"
DONE = RunParams(data="synthetic-100k", epochs=2)


def train(db: str, data: Path | str) -> None:
    """One epoch of MF on `data` through `dmf-tui run`, which keeps the checkpoint beside `db`."""
    from dmf_tui.cli import main

    assert main(["--db", db, "run", "--data", str(data), "--epochs", "1", "--device", "cpu"]) == 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with one trained run (run 1) on 40 users x 30 items, whose u.item names every item
    with text that looks like markup."""
    folder = tmp_path_factory.mktemp("tiny")
    # Each user rates 12 of the 30 items, so every user has items left to recommend.
    ratings = [(user, (user * 7 + j) % 30 + 1, (user + j) % 5 + 1) for user in range(1, 41) for j in range(12)]
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t0\n" for u, i, r in ratings))
    flags = "|".join(["0"] * 18 + ["1"])  # Western
    (folder / "u.item").write_text("".join(f"{i}|Film {i} {MARKUP} (1995)|01-Jan-1995||http://x|{flags}\n"
                                           for i in range(1, 31)), encoding="latin-1")
    db = str(folder / "runs.db")
    train(db, folder / "u.data")
    return db


def status(panel: RecommendPanel) -> str:
    return str(panel.query_one("#recommend-status", Static).render())


def listed(app) -> list[str]:
    """The panel's rows as the screen shows them: the lines between its heading and the notes."""
    lines = TextualPrivate.screen_lines(app)
    heading = next(i for i, line in enumerate(lines) if line.split()[:2] == ["#", "item"])
    notes = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    return [line for line in lines[heading + 1:notes] if line.strip()]


async def ask(pilot, user: str) -> RecommendPanel:
    """Show the panel (unless shown), type `user` over what the user id held, and enter."""
    screen = pilot.app.screen
    assert isinstance(screen, RunDetailScreen)
    panel = screen.query_one(RecommendPanel)
    if not screen.recommending:
        await pilot.press("t")
    panel.user_input.value = ""
    await type_text(pilot, user)
    await pilot.press("enter")
    await settle(pilot)
    return panel


async def test_the_panel_lists_the_top_10_with_titles_loading_the_model_once(tiny, monkeypatch):
    from engine.recommend import TrainedModel

    real = TrainedModel.load
    loads: list[Path] = []
    gate = threading.Event()

    def load(path: Path, *, name: str) -> TrainedModel:
        loads.append(path)
        gate.wait(timeout=30)  # held until the test has seen what the panel says meanwhile
        return real(path, name=name)

    monkeypatch.setattr(TrainedModel, "load", load)
    with open_store(tiny) as store:
        app = make_app(store)
        async with app.run_test(size=SIZE) as pilot:
            detail = await open_detail(app, pilot, 1)
            await pilot.press("t")
            panel = detail.query_one(RecommendPanel)
            assert detail.recommending and panel.user_input.has_focus
            assert not detail.query_one("#detail-top").display, "the panel is in place of the curves"
            await type_text(pilot, "7")
            await pilot.press("enter")
            await pilot.pause()
            assert status(panel) == "loading the model of run 1…"
            gate.set()
            await settle(pilot)
            expected = real(loads[0], name="run 1").recommend(7, 10)
            rows = listed(app)
            assert [row.split()[:2] for row in rows] == [[str(rank), str(r.item)] for rank, r in
                                                          enumerate(expected, start=1)]
            for row, r in zip(rows, expected):
                assert f"{r.score:.3f}  {r.title}" in row, "the predicted rating and the title, markup as text"
                assert "Western" in row
            assert status(panel).startswith("Top 10 for user 7")
            # Another user, from the model already loaded.
            await ask(pilot, "8")
            assert [row.split()[1] for row in listed(app)] == [str(r.item) for r in
                                                               real(loads[0], name="run 1").recommend(8, 10)]
            assert len(loads) == 1, "the model was loaded again"
            # Letters are dropped by the user id, never taken as the screen's keys (l: clone, r: retry).
            await type_text(pilot, "lr")
            await settle(pilot)
            assert app.screen is detail and panel.user_input.value == "8"
            # esc goes back to the curves, and t shows the last answer again.
            await pilot.press("escape")
            await settle(pilot)
            assert app.screen is detail and not detail.recommending
            assert isinstance(app.focused, EpochTable)
            await pilot.press("t")
            await settle(pilot)
            assert status(panel).startswith("Top 10 for user 8") and len(listed(app)) == 10


async def test_an_unknown_user_id_is_one_line_and_the_panel_goes_on(tiny):
    with open_store(tiny) as store:
        app = make_app(store)
        async with app.run_test(size=SIZE) as pilot:
            detail = await open_detail(app, pilot, 1)
            panel = await ask(pilot, "99999")
            assert status(panel) == "user 99999 is not in the data of run 1 (40 users, ids 1..40)"
            assert panel.query_one("#recommend-status").has_class("error")
            assert any("user 99999 is not in the data of run 1" in line for line in TextualPrivate.screen_lines(app))
            panel = await ask(pilot, "3")
            assert status(panel).startswith("Top 10 for user 3") and len(listed(app)) == 10
            # Tab goes on to the notes, and esc from them comes back to the user id, the panel still shown.
            await pilot.press("tab")
            assert detail.notes.has_focus
            await pilot.press("escape")
            await settle(pilot)
            assert panel.user_input.has_focus and detail.recommending
            await pilot.press("enter")  # nothing typed
            panel.user_input.value = ""
            await pilot.press("enter")
            await settle(pilot)
            assert status(panel) == "type a user id (digits), then enter"


async def test_a_real_ml100k_run_shows_its_titles(ml100k_path, db, store):
    from engine.titles import read_titles

    train(db, ml100k_path)
    titles = read_titles(ml100k_path)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(app, pilot, 1)
        panel = await ask(pilot, "196")
        rows = listed(app)
        assert len(rows) == 10 and status(panel).startswith("Top 10 for user 196")
        for row in rows:
            item = int(row.split()[1])
            title = titles.label(item)
            shown = row.split(maxsplit=3)[3]
            # Long titles are cut with an ellipsis to leave the genres room.
            assert shown.startswith(title) or title.startswith(shown.split("…")[0]), (row, title)
        panel = await ask(pilot, "99999")
        assert status(panel).startswith("user 99999 is not in the data of run 1 (943 users")


async def test_why_items_show_by_id_is_a_dim_line_over_the_list(tiny, db, store):
    train(db, "synthetic-100k")  # no item file: ids only
    for database, said in ((tiny, None), (db, "synthetic-100k has no item file: items show by id")):
        with open_store(database) as opened:
            app = make_app(opened)
            async with app.run_test(size=SIZE) as pilot:
                await open_detail(app, pilot, 1)
                panel = await ask(pilot, "3")
                note = panel.query_one("#recommend-note", Static)
                assert len(listed(app)) == 10
                assert note.display == (said is not None)
                if said is not None:
                    assert str(note.render()) == said
                    assert any(said in line for line in TextualPrivate.screen_lines(app))


def no_checkpoint(worker: FakeWorker) -> int:
    return int(worker.run(DONE, 2))


def queued(worker: FakeWorker) -> int:
    return int(worker.store.enqueue(DONE))


@pytest.mark.parametrize("make", [no_checkpoint, queued], ids=["done", "queued"])
async def test_a_run_without_a_checkpoint_says_why_in_the_panel(store, worker, make):
    run_id = make(worker)
    with pytest.raises(NoCheckpointError) as why:  # what `dmf-tui recommend` says: why, and how to get one
        checkpoint_of(store.get_run(run_id), store.url)
    says = str(why.value)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(app, pilot, run_id)
        panel = await ask(pilot, "1")
        assert status(panel) == says
        # Wrapped, it is all on the screen above the notes.
        assert says in " ".join(line.strip() for line in TextualPrivate.screen_lines(app))
        assert app.screen is detail


def damaged_run(worker: FakeWorker, folder: Path) -> int:
    """A done run whose recorded checkpoint file is not one."""
    damaged = folder / "run-1.pt"
    damaged.write_bytes(b"not a checkpoint")
    run = worker.start(DONE)
    worker.train(run.id, 2)
    worker.store.finish_run(run.id, "done", checkpoint=str(damaged))
    return int(run.id)


async def test_a_damaged_checkpoint_or_any_other_failure_is_one_line(store, worker, tmp_path, monkeypatch):
    run_id = damaged_run(worker, tmp_path)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(app, pilot, run_id)
        panel = await ask(pilot, "1")
        assert status(panel).startswith(f"run 1's checkpoint ({tmp_path / 'run-1.pt'}) cannot be read")
        from engine.recommend import TrainedModel

        def fail(path: Path, *, name: str) -> TrainedModel:
            raise RuntimeError("the disk went away\nwith a traceback")

        monkeypatch.setattr(TrainedModel, "load", fail)
        panel = await ask(pilot, "1")
        assert status(panel) == "the model could not be used: RuntimeError: the disk went away"
        assert app.screen is detail


# Run in a fresh interpreter: this process has long imported the engine (other tests). The panel
# stands on a run whose checkpoint is damaged, so using it imports the engine but needs no real model.
UNUSED_THEN_USED = """
import asyncio, sys
from pathlib import Path
from store.db import open_store
from tests.tui.conftest import FakeWorker, make_app, settle
from tests.tui.test_recommend import ask, damaged_run
from tests.tui.test_run_detail import open_detail

def engine():
    return sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'engine'))

async def main(folder):
    with open_store(str(folder / "runs.db")) as store:
        run_id = damaged_run(FakeWorker(store), folder)
        app = make_app(store)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_detail(app, pilot, run_id)
            await pilot.press("t", "1")
            await settle(pilot)
            print("before", engine())
            panel = await ask(pilot, "1")
            print("after", "engine.recommend" in sys.modules, str(panel.query_one("#recommend-status").render()))

asyncio.run(main(Path(sys.argv[1])))
"""


def test_the_engine_is_imported_only_once_the_panel_is_used(tmp_path):
    done = subprocess.run([sys.executable, "-c", UNUSED_THEN_USED, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.splitlines()[-2:]
    assert before == "before []", "opening Run detail and its panel imported the engine"
    assert after.startswith("after True run 1's checkpoint"), after
