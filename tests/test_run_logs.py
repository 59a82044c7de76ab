"""A run's log in the store: lines appended and read back in order, and the line a lost run gets."""

from __future__ import annotations

import socket

import pytest

from store.db import Store
from store.errors import StoreError, UnknownRunError
from store.params import RunParams
from tests.processes import dead_pid

pytestmark = pytest.mark.backends


def test_lines_come_back_in_order_after_the_last_one_read(store: Store) -> None:
    run = store.enqueue(RunParams(data="synthetic-100k"))
    assert store.run_log(run) == []
    store.append_log(run, "started")
    store.append_log(run, "Traceback (most recent call last):\n  ...\nValueError: [bold]x", level="error")
    lines = store.run_log(run)
    assert [(line.run_id, line.level, line.text) for line in lines] == [
        (run, "info", "started"), (run, "error", "Traceback (most recent call last):\n  ...\nValueError: [bold]x")]
    assert lines[0].id < lines[1].id and lines[0].created_at <= lines[1].created_at
    assert store.run_log(run, after=lines[0].id) == lines[1:]
    assert store.run_log(run, after=lines[1].id) == []


def test_bad_input(store: Store) -> None:
    run = store.enqueue(RunParams(data="synthetic-100k"))
    with pytest.raises(UnknownRunError, match="^no run with id 99$"):
        store.append_log(99, "x")
    with pytest.raises(UnknownRunError, match="^no run with id 99$"):
        store.run_log(99)
    with pytest.raises(UnknownRunError):
        store.run_log(2**70)
    with pytest.raises(StoreError, match="^unknown log level 'loud'"):
        store.append_log(run, "x", level="loud")
    assert store.run_log(run) == []


def test_a_lost_run_says_why_in_its_log(store: Store) -> None:
    pid, host = dead_pid(), socket.gethostname()
    worker = store.register_worker(pid=pid, host=host, devices=["cpu"], slots=1)
    run = store.start_run(RunParams(data="synthetic-100k"), worker_id=worker, device="cpu")
    assert store.reap_lost() == [run.id]
    (line,) = store.run_log(run.id)
    assert line.level == "error"
    assert line.text == f"marked lost: worker {worker} (pid {pid} on {host}) is no longer running"
