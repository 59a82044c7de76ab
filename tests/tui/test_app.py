"""Pilot tests of the TUI against a real temporary database, driven like a person would."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from textual.widgets import DataTable, Input, Label, Tab, TabbedContent, Tabs, TextArea
from textual.widgets.data_table import ColumnKey

from dmf_tui import config
from dmf_tui.components.compare import CompareScreen
from dmf_tui.components.new_run import NewRunScreen
from dmf_tui.components.param_plot import ParamPlotScreen
from dmf_tui.components.run_detail import RunDetailScreen
from dmf_tui.components.run_log import RunLogScreen
from dmf_tui.components.run_table import RunTable
from dmf_tui.messages import OpenRun, StoreChanged
from store.params import RunParams
from store.tables import Run
from tests.tui.confirming import answer, asks
from tests.tui.conftest import TextualPrivate, fill_lab, make_app, settle


def cells(table: DataTable, column: str) -> list:
    return [str(table.get_cell(row.key, column)) for row in table.ordered_rows]


async def test_form_queues_a_grid_as_one_sweep(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, NewRunScreen)
        form.query_one("#field-model", Input).value = "mf,deepmf"
        form.query_one("#field-lr", Input).value = "1e-3, 1e-2"
        form.query_one("#field-data", Input).value = "synthetic-100k"
        await pilot.pause()
        assert "4 runs will be queued" in str(form.query_one("#preview", Label).render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, NewRunScreen)
        table = app.queue_tab.query_one("#queue-table", DataTable)
        assert table.row_count == 4
        queued = store.queue()
        assert len({run.sweep_id for run in queued}) == 1
        assert [(r.params.model, r.params.lr) for r in queued] == [
            ("mf", 1e-3), ("mf", 1e-2), ("deepmf", 1e-3), ("deepmf", 1e-2)
        ]


async def test_invalid_form_input_shows_the_reason_and_keeps_the_form(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = app.screen
        form.query_one("#field-lr", Input).value = "1e-3,abc"
        form.query_one("#field-k", Input).value = "-4"
        await pilot.pause()
        assert "lr: 'abc' is not a number" in str(form.query_one("#message-lr", Label).render())
        assert "k: must be > 0" in str(form.query_one("#message-k", Label).render())
        assert "Fix 2 fields" in str(form.query_one("#preview", Label).render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form
        assert store.queue() == []


async def test_form_queues_runs_with_retries_and_refuses_a_bad_count(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = app.screen
        form.query_one("#field-seed", Input).value = "1,2"
        form.query_one("#field-retries", Input).value = "-1"
        await pilot.pause()
        assert "retries must be a whole number from 0" in str(form.query_one("#message-retries", Label).render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form and store.queue() == []
        form.query_one("#field-retries", Input).value = "3"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert [run.retries for run in store.queue()] == [3, 3]


async def test_hidden_alternatives_are_split_by_slash(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = app.screen
        form.query_one("#field-model", Input).value = "deepmf"
        form.query_one("#field-hidden", Input).value = "10,5/64,32,16"
        await pilot.pause()
        assert "2 runs will be queued" in str(form.query_one("#preview", Label).render())


async def test_header_shows_worker_and_queue_counts(store, worker):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        header = str(app.status_bar.render())
        assert "worker running on cpu" in header
        assert "2 queued, 1 running" in header
        assert "3 done, 1 failed" in header


async def test_queue_lists_runs_in_order_and_shows_failures(store, worker):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.queue_tab.query_one("#queue-table", DataTable)
        assert cells(table, "status") == ["running", "queued", "queued"]
        assert cells(table, "eta") == ["18s", "-", "-"]  # 7 epochs left at 2.5 s
        problems = app.queue_tab.query_one("#problems-table", DataTable)
        assert cells(problems, "reason") == ["CUDA out of memory. Tried to allocate 2.00 GiB"]


async def test_a_run_that_starts_widens_its_status_cell(store, worker):
    store.enqueue(RunParams(data="synthetic-100k"))
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.queue_tab.query_one("#queue-table", DataTable)
        worker.start()
        await settle(pilot)
        assert cells(table, "status") == ["running"]
        assert table.columns[ColumnKey("status")].content_width >= len("running")


async def test_a_long_epoch_shows_its_progress(store, worker):
    run = worker.start(RunParams(data="synthetic-100k", epochs=10))
    worker.train(run.id, 2)
    store.set_progress(run.id, 0.45)
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert cells(app.queue_tab.query_one("#queue-table", DataTable), "epoch") == ["2/10 +45%"]


async def test_queue_keys_move_and_cancel(store, worker):
    fill_lab(store, worker)
    first, second = [run.id for run in store.queue() if run.status == "queued"]
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.queue_tab.query_one("#queue-table", RunTable)
        table.focus()
        table.move_cursor(row=2)
        await pilot.press("K")
        await settle(pilot)
        assert [run.id for run in store.queue()][1:] == [second, first]
        assert table.current_run_id == second  # the cursor followed the run
        await pilot.press("c")
        await settle(pilot)
        assert store.get_run(second).status == "cancelled"
        assert cells(table, "id") == [str(store.queue()[0].id), str(first)]


async def test_live_appends_an_epoch_when_it_lands(store, worker):
    run = worker.start(RunParams(data="synthetic-100k", epochs=5))
    worker.train(run.id, 2)
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        table = app.live_tab.query_one(f"#live-{run.id} DataTable", DataTable)
        assert table.row_count == 2
        worker.train(run.id, 1, first=3)
        await settle(pilot)
        assert table.row_count == 3
        assert [str(c) for c in table.get_row_at(2)] == ["3", "1.0707", "1.1207", "2.50"]
        store.finish_run(run.id, "done")
        await settle(pilot)
        assert not app.live_tab.query(f"#live-{run.id}")


async def test_a_tab_chosen_by_key_survives_the_tab_bars_late_first_activation(store, worker):
    """A key typed ahead at startup can be handled before the tab bar's own activation of its
    first tab arrives; that late message must not switch back to Queue."""
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        bar = app.query_one("#tabs", TabbedContent).query_one(Tabs)
        bar.post_message(Tabs.TabActivated(bar, bar.query_one("#--content-tab-queue", Tab)))
        await settle(pilot)
        assert app.query_one("#tabs", TabbedContent).active == "history"
        assert app.focused is app.history_tab.table


async def test_history_ranks_sorts_and_filters(store, worker):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        await settle(pilot)
        history = app.history_tab
        table = history.table
        # The done runs (the failed one only when the filter asks for it).
        assert cells(table, "best_test_rmse") == ["0.9114", "0.9314", "0.9514"]
        assert cells(table, "model") == ["deepmf", "mf", "mf"]

        history.sort_by("lr", True)
        await settle(pilot)
        assert cells(table, "lr") == ["0.01", "0.001", "0.001"]

        history.query_one("#history-filter", Input).value = "model:deepmf status:failed"
        await settle(pilot)
        assert cells(table, "status") == ["failed"]

        history.query_one("#history-filter", Input).value = "sweep:x"
        await settle(pilot)
        assert "sweep: no sweep is named 'x'" in str(history.query_one("#filter-error", Label).render())


async def test_history_filter_takes_a_sweep_number_of_any_size(store, worker):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        await settle(pilot)
        history = app.history_tab
        history.query_one("#history-filter", Input).value = "sweep:" + "9" * 30
        await settle(pilot)
        assert app.is_running and history.table.row_count == 0
        # A digit str.isdigit takes but int() does not: a sweep's name, then.
        history.query_one("#history-filter", Input).value = "sweep:²"
        await settle(pilot)
        assert "sweep: no sweep is named '²'" in str(history.query_one("#filter-error", Label).render())


async def test_form_refuses_integers_beyond_int64_and_queues_nothing(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = app.screen
        huge = str(2**63)
        for name in ("k", "batch_size", "epochs", "seed"):
            form.query_one(f"#field-{name}", Input).value = huge
        form.query_one("#field-hidden", Input).value = f"10,{huge}"
        await pilot.pause()
        for name in ("k", "batch_size", "epochs", "seed", "hidden"):
            assert "must fit in 64 bits" in str(form.query_one(f"#message-{name}", Label).render()), name
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.is_running and app.screen is form
        assert store.queue() == []


async def test_marked_runs_open_in_compare(store, worker):
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        await settle(pilot)
        app.history_tab.table.focus()
        await pilot.press("space", "space", "m")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        table = screen.query_one("#compare-table", DataTable)
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)[1:]] for i in range(table.row_count)}
        assert rows["model"] == ["deepmf", "mf"]
        assert rows["best test"] == ["0.9114", "0.9314"]


async def test_run_detail_retries_and_cancels(store, worker):
    fill_lab(store, worker)
    failed = store.leaderboard(status="failed")[0]
    running = next(run for run in store.queue() if run.status == "running")
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        app.post_message(OpenRun(failed.id))
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        retried = store.queue()[-1]
        assert (retried.status, retried.params) == ("queued", failed.params)
        await pilot.press("escape")
        app.post_message(OpenRun(running.id))
        await settle(pilot)
        assert (await asks(pilot, "c")).startswith(f"Run {running.id} is running")
        await answer(pilot, "y")
        assert store.is_cancel_requested(running.id)


async def test_run_detail_shows_the_error_saves_notes_and_clones(store, worker):
    fill_lab(store, worker)
    failed = store.leaderboard(status="failed")[0]
    with store.engine.begin() as conn:  # queued with `--retries 2`: a clone keeps that
        conn.execute(update(Run).where(Run.id == failed.id).values(retries=2))
    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        await settle(pilot)
        # History lists done runs unless asked for others.
        app.history_tab.query_one("#history-filter", Input).value = "status:failed"
        await settle(pilot)
        app.history_tab.table.focus()
        app.history_tab.table.select_run(failed.id)
        await pilot.press("enter")
        await settle(pilot)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        assert "CUDA out of memory" in str(detail.query_one("#detail-error").render())
        assert detail.query_one(DataTable).row_count == 4
        detail.query_one("#notes", TextArea).text = "too big for this card"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert store.get_run(failed.id).notes == "too big for this card"
        await pilot.press("l")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen)
        assert form.values()["hidden"] == "64,32"
        assert form.values()["model"] == "deepmf"
        assert form.query_one("#field-retries", Input).value == "2"


async def test_w_starts_a_detached_worker_on_this_database(store, monkeypatch):
    calls = []

    def fake_worker_command(db_url, *args):
        calls.append((db_url, args))
        return 0, "worker started (pid 123)"

    monkeypatch.setattr("dmf_tui.app.worker_command", fake_worker_command)
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("w")
        await settle(pilot)
        await pilot.press("W")
        await settle(pilot)
    assert calls == [(store.url, ("--detach",)), (store.url, ("stop",))]


async def test_pause_key_pauses_the_queue(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        await settle(pilot)
        assert store.is_paused()
        assert "PAUSED" in str(app.status_bar.render())


def test_the_app_never_imports_torch_or_the_engine(tmp_path):
    code = (
        "import sys; from store.db import open_store; from dmf_tui.app import DmfApp; "
        f"DmfApp(open_store({str(tmp_path / 'runs.db')!r})); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'engine')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_a_database_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path, capsys):
    from dmf_tui.cli import main

    bad = tmp_path / "notes.txt"
    bad.write_text("not a database at all\n" * 100)
    assert main(["--db", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"dmf-tui: error: {bad} is not a SQLite database"


def test_demo_queues_mf_and_deepmf_once(tmp_path, monkeypatch):
    from dmf_tui.cli import main
    from store.db import open_store

    monkeypatch.setattr("dmf_tui.commands.tui._run_app", lambda db: 0)
    db = str(tmp_path / "demo.db")
    assert main(["--db", db, "demo"]) == 0
    assert main(["--db", db, "demo"]) == 0
    store = open_store(db)
    queued = [(r.params.model, r.params.data) for r in store.queue()]
    assert queued == [("mf", "synthetic-100k"), ("deepmf", "synthetic-100k")]
    store.close()


async def test_a_database_error_in_an_action_is_notified_and_the_app_stays(store, monkeypatch):
    def locked(*args, **kwargs):
        raise OperationalError("UPDATE queue_state", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "set_paused", locked)
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert app.is_running
        assert any("database error" in message and "database is locked" in message
                   for message in TextualPrivate.notifications(app))
        assert not store.is_paused()


async def test_keys_are_handled_while_a_slow_database_answers_after_a_write(store, monkeypatch):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        answer, answered_in_time = threading.Event(), []
        poll = app.source.poll

        def slow_poll():
            # The database answers only once the key below has been handled (or after 5 s).
            answered_in_time.append(answer.wait(5))
            return poll()

        monkeypatch.setattr(app.source, "poll", slow_poll)
        app.post_message(StoreChanged())
        await pilot.pause()
        await pilot.press("3")
        assert app.query_one("#tabs", TabbedContent).active == "history"
        answer.set()
        await settle(pilot)
        assert answered_in_time[0], "the key waited for the database"


async def test_run_detail_loads_when_the_database_is_slower_than_its_refresh(store, worker):
    run = worker.start(RunParams(data="synthetic-100k", epochs=5))
    worker.train(run.id, 2)
    get_run = store.get_run

    def slow_get_run(run_id):
        time.sleep(1.3)  # longer than the screen's one-second refresh
        return get_run(run_id)

    app = make_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        store.get_run = slow_get_run
        app.post_message(OpenRun(run.id))
        # The first read ends after 1.3 s, past the refresh that must not cancel it: wait for
        # the screen to load, up to the 3.5 s it has (a few refreshes, and room for a busy machine).
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline and not (isinstance(app.screen, RunDetailScreen) and app.screen.epochs):
            await pilot.pause(0.1)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        assert detail.run is not None and [e.epoch for e in detail.epochs] == [1, 2]


async def test_the_chosen_theme_is_remembered(store, user_config):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark"
        app.theme = "gruvbox"
        await settle(pilot)
    assert config.load() == config.Settings(theme="gruvbox")
    again = make_app(store)
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert again.theme == "gruvbox"


@pytest.mark.parametrize("content", ["{theme: nord", '{"theme": "no-such-theme"}'])
async def test_a_config_file_that_cannot_be_used_is_noted_and_the_app_starts(store, content):
    path = config.config_path()
    path.parent.mkdir(parents=True)
    path.write_text(content)
    app = make_app(store)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        assert app.is_running and app.theme == "textual-dark"
        assert any(str(path) in message for message in TextualPrivate.notifications(app))
    assert path.read_text() == content  # left as it is until the theme is changed


async def test_a_theme_that_cannot_be_saved_is_noted(store, user_config):
    user_config.mkdir()
    user_config.joinpath("dmf-tui").write_text("a file where the folder should be")
    app = make_app(store)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        app.theme = "nord"
        await settle(pilot)
        assert app.is_running
        assert any("the theme is not remembered" in message for message in TextualPrivate.notifications(app))


@pytest.mark.parametrize("tab", ["queue", "live", "history"])
async def test_at_80_columns_the_footer_shows_the_apps_keys_on_every_tab(store, worker, tab):
    """The app's keys come after the tab's in the footer, so a tab showing more than its 36
    columns of keys pushes w, W and q off the screen (issue 10)."""
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_show_tab(tab)
        await settle(pilot)
        footer = TextualPrivate.screen_lines(app)[-1]
        for key in ("? Help", "n New", "p Pause", "w Worker", "W Stop", "q Quit"):
            assert key in footer, f"{key!r} is not in the {tab} footer: {footer!r}"


async def _running_run_detail(app) -> None:
    app.post_message(OpenRun(app.store.queue()[0].id))


async def _compare(app) -> None:
    done = app.store.leaderboard(status="done")
    app.push_screen(CompareScreen([run.id for run in done]))


async def _form(app) -> None:
    app.open_form()


async def _parameter_plot(app) -> None:
    app.push_screen(ParamPlotScreen(app.store.leaderboard(status="done")))


async def _log(app) -> None:
    app.push_screen(RunLogScreen(app.store.queue()[0].id))


@pytest.mark.parametrize(("open_screen", "last"), [
    (_running_run_detail, "? Help q Quit"), (_compare, "? Help q Quit"), (_parameter_plot, "? Help q Quit"),
    (_log, "? Help q Quit"),
    (_form, "esc Close"),  # a text field has the focus: ? and q are letters there
])
async def test_at_80_columns_every_screens_footer_shows_all_its_keys(store, worker, open_screen, last):
    """A screen's own keys come first; the app's keys for the queue and workers stay on the tabs,
    so the last key is never pushed off the right edge."""
    fill_lab(store, worker)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_screen(app)
        await settle(pilot)
        footer = TextualPrivate.screen_lines(app)[-1]
        assert footer.rstrip().endswith(last), footer
        assert "w Worker" not in footer and "n New" not in footer
        app.screen.set_focus(None)
        await pilot.press("w", "n")  # the tabs' keys do nothing here
        await settle(pilot)
        assert len(app.screen_stack) == 2
