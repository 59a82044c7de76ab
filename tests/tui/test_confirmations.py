"""What is hard to undo asks first (components/confirm.py): starting a second worker, stopping the
workers, cancelling a running run, queueing more than 100 runs, closing a changed form. What is
easy to undo does not: a queued run cancels, a first worker starts, an untouched form closes."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from dmf_tui.components.new_run import CONFIRM_ABOVE, NewRunScreen
from dmf_tui.messages import CancelRun
from store.params import RunParams
from store.status import RunStatus
from tests.tui.confirming import answer, asks, does_not_ask
from tests.tui.conftest import make_app, settle


@pytest.fixture
def worker_calls(monkeypatch) -> list[tuple[str, ...]]:
    """The `dmf-tui worker ...` commands the app runs (none really runs)."""
    calls: list[tuple[str, ...]] = []

    def fake_worker_command(db_url, *args):
        calls.append(args)
        return 0, "done"

    monkeypatch.setattr("dmf_tui.app.worker_command", fake_worker_command)
    return calls


async def test_w_asks_only_when_a_worker_already_runs(store, worker_calls):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await does_not_ask(pilot, "w")
        assert worker_calls == [("--detach",)]  # the first one starts at once
        store.register_worker(pid=123, host="elsewhere", devices="cpu", slots=1)
        question = await asks(pilot, "w")
        assert "a worker is already running on this database: start another?" in question.lower()
        await answer(pilot, "n")
        assert worker_calls == [("--detach",)]
        await asks(pilot, "w")
        await answer(pilot, "y")
        assert worker_calls == [("--detach",), ("--detach",)]


async def test_W_names_the_workers_and_the_runs_they_would_stop(store, worker, worker_calls):
    store.enqueue_grid([RunParams(data="synthetic-100k", seed=seed) for seed in (1, 2, 3)])
    worker.start()
    worker.start()
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        question = await asks(pilot, "W")
        assert question.startswith("Stop 1 worker of this database, running 2 runs?")
        await answer(pilot, "n")
        assert worker_calls == []
        await asks(pilot, "W")
        await answer(pilot, "y")
        assert worker_calls == [("stop",)]


async def test_W_without_a_worker_here_stops_nothing_without_asking(store, worker_calls):
    store.register_worker(pid=123, host="elsewhere", devices="cpu", slots=1)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await does_not_ask(pilot, "W")
        assert worker_calls == [("stop",)]  # which says where the other worker runs


async def test_cancelling_a_running_run_asks_and_a_queued_one_does_not(store, worker):
    running = worker.start(RunParams(data="synthetic-100k", epochs=10))
    worker.train(running.id, 3)
    queued = store.enqueue(RunParams(data="synthetic-100k", seed=1))
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.post_message(CancelRun(queued))
        await does_not_ask(pilot, "")
        assert store.get_run(queued).status == RunStatus.CANCELLED

        app.post_message(CancelRun(running.id))
        question = await asks(pilot, "")
        assert question.startswith(f"Run {running.id} is running (epoch 3 of 10): cancel it?")
        await answer(pilot, "n")
        assert not store.is_cancel_requested(running.id)
        app.post_message(CancelRun(running.id))
        await asks(pilot, "")
        await answer(pilot, "y")
        assert store.is_cancel_requested(running.id)


def seeds(count: int) -> str:
    return ",".join(str(seed) for seed in range(count))


async def open_form(pilot) -> NewRunScreen:
    await pilot.press("n")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, NewRunScreen)
    return form


async def test_the_form_queues_up_to_the_limit_without_asking(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        form.query_one("#field-seed", Input).value = seeds(CONFIRM_ABOVE)
        await settle(pilot)
        await does_not_ask(pilot, "ctrl+s")
        assert not isinstance(app.screen, NewRunScreen)
        assert len(store.queue()) == CONFIRM_ABOVE


async def test_the_form_asks_before_queueing_more_than_the_limit(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        form.query_one("#field-seed", Input).value = seeds(CONFIRM_ABOVE + 140)
        await settle(pilot)
        question = await asks(pilot, "ctrl+s")
        assert question.startswith(f"Queue {CONFIRM_ABOVE + 140} runs?")
        await answer(pilot, "n")
        assert app.screen is form and store.queue() == []
        await asks(pilot, "ctrl+s")
        await answer(pilot, "y")
        assert not isinstance(app.screen, NewRunScreen)
        assert len(store.queue()) == CONFIRM_ABOVE + 140


async def test_esc_closes_an_untouched_form_at_once(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_form(pilot)
        await does_not_ask(pilot, "escape")
        assert app.screen is app.screen_stack[0]
        # Typed, then typed back as it was: nothing to lose.
        form = await open_form(pilot)
        field = form.query_one("#field-k", Input)
        field.focus()
        await does_not_ask(pilot, "end 0 backspace escape")
        assert app.screen is app.screen_stack[0]


@pytest.mark.parametrize("field", ["model", "data", "name", "retries", "dropout"])
async def test_esc_asks_before_dropping_a_changed_form(store, field):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        form.query_one(f"#field-{field}", Input).value += "1"
        await settle(pilot)
        assert "Discard" in await asks(pilot, "escape")
        await answer(pilot, "n")
        assert app.screen is form
        await asks(pilot, "escape")
        await answer(pilot, "y")
        assert app.screen is app.screen_stack[0]
        assert store.queue() == []
