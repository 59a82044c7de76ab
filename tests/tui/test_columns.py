"""The Queue and History tables show the parameters declared with a heading, and History can sort
by every one of its columns."""

from __future__ import annotations

import pytest

from dmf_tui.components.fmt import PARAM_HEADINGS, param_cells
from dmf_tui.components.history_tab import SORT_KEYS
from store.params import PARAMS, RunParams
from store.records import RunRecord


def test_the_tables_show_every_parameter_declared_with_a_heading():
    assert [name for name, _ in PARAM_HEADINGS] == [n for n, d in PARAMS.items() if d.heading]
    assert {"model", "data", "lr"} <= {name for name, _ in PARAM_HEADINGS}


@pytest.mark.parametrize("key", SORT_KEYS)
def test_history_sorts_by_each_of_its_columns(store, worker, key):
    worker.run(RunParams(data="synthetic-100k", model="deepmf", k=8), 2)
    worker.run(RunParams(data="synthetic-100k", k=16), 2, floor=0.8)
    assert len(store.leaderboard(sort=key)) == 2


def test_a_model_without_use_for_a_parameter_shows_a_dash(store, worker):
    worker.run(RunParams(data="synthetic-100k", model="mf", hidden=(64, 32)), 1)
    (run,) = store.leaderboard()
    assert isinstance(run, RunRecord)
    cells = dict(zip([name for name, _ in PARAM_HEADINGS], param_cells(run)))
    assert (cells["model"], cells["hidden"], cells["k"]) == ("mf", "-", 10)
