"""What schema 4 adds to a run: its dataset's identity, set by every way a run is made; archived and
dismissed flags; its sweep's name, read in the same query as the run; and the leaderboard's index for
"the done runs of one dataset, best first"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from store.db import Store
from store.params import RunParams
from store.status import RunStatus
from store.tables import LEADERBOARD_ORDER, Run

pytestmark = pytest.mark.backends


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    (root / "ml-100k").mkdir(parents=True)
    (root / "ml-100k" / "u.data").write_text("1\t1\t3\t0\n")
    monkeypatch.setenv("DMF_DATA_DIR", str(root))
    return root


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (and their parameters) the store sends while the block runs."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def test_every_new_run_knows_its_datasets_identity(store: Store, data_dir: Path) -> None:
    by_name = store.enqueue(RunParams(data="ml-100k"))
    _, (by_path,) = store.enqueue_grid([RunParams(data=str(data_dir / "ml-100k" / "u.data"))])
    started = store.start_run(RunParams(data="synthetic-100k"), device="cpu")
    (retried,) = store.retry([by_path])
    assert [store.get_run(i).data_key for i in (by_name, by_path, retried)] == ["ml-100k"] * 3
    assert started.data_key == "synthetic-100k"
    assert store.get_run(by_path).data_label == "ml-100k/u.data"
    assert not started.archived and not started.dismissed


def test_a_runs_sweep_name_comes_with_it(store: Store) -> None:
    params = RunParams(data="synthetic-100k")
    store.enqueue_grid([params.replace(k=k) for k in (1, 2)], name="lr-grid")
    store.enqueue_grid([params.replace(k=3)])
    store.enqueue(params)
    assert [(r.id, r.sweep_name) for r in store.queue()] == [(1, "lr-grid"), (2, "lr-grid"), (3, None), (4, None)]
    assert store.get_run(1).sweep_name == "lr-grid"


def test_listing_runs_with_their_sweep_names_costs_no_query_per_run(store: Store) -> None:
    params = RunParams(data="synthetic-100k")

    def queries_to_list() -> int:
        with statements(store) as sent:
            runs = store.leaderboard()
        assert all(run.sweep_name is not None for run in runs)
        return len(sent)

    store.enqueue_grid([params.replace(k=1)], name="one")
    few = queries_to_list()
    for name in ("two", "three", "four"):
        store.enqueue_grid([params.replace(k=k) for k in (1, 2, 3)], name=name)
    assert queries_to_list() == few


def test_the_done_runs_of_one_dataset_are_ranked_from_the_index(store: Store, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("reads SQLite's query plan")
    for data in ("synthetic-100k", "synthetic-1m"):
        run = store.start_run(RunParams(data=data), device="cpu")
        store.record_epoch(run.id, 1, train_rmse=1.0, test_rmse=0.9, seconds=1)
        store.finish_run(run.id, "done")
    query = (select(Run).where(Run.status == RunStatus.DONE, Run.data_key == "synthetic-1m")
             .order_by(*LEADERBOARD_ORDER).limit(50))
    with statements(store) as sent, Session(store.engine) as session:
        assert [run.params["data"] for run in session.scalars(query)] == ["synthetic-1m"]
    ((sql, parameters),) = [(sql, parameters) for sql, parameters in sent if sql.startswith("SELECT")]
    with store.engine.connect() as conn:
        plan = " ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters))
    assert "USING INDEX ix_runs_leaderboard_data" in plan
    assert "TEMP B-TREE" not in plan  # read in the index's order, not sorted
