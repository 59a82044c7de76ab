"""CSV export: one row per run (its parameters as columns) and one row per epoch."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from os import PathLike
from typing import IO, Any

from sqlalchemy import select

from store.base import StoreBase
from store.errors import StoreError
from store.filters import RunFilter
from store.params import FIELD_NAMES, format_value
from store.records import RunRecord, epoch_record
from store.tables import Epoch

CsvTarget = str | PathLike[str] | IO[str]

RUN_COLUMNS = (
    "id", "sweep_id", "sweep_name", "trial", "status", *FIELD_NAMES, "data_key",
    "best_test_rmse", "best_epoch", "best_val_rmse", "precision_at_10", "recall_at_10", "ndcg_at_10",
    "epoch", "last_train_rmse", "last_test_rmse",
    # "device" is the requested device (a parameter); ran_on is where it actually ran.
    "ran_on", "worker_id", "created_at", "started_at", "finished_at", "notes", "tags", "error", "archived",
)
EPOCH_COLUMNS = ("run_id", "epoch", "train_rmse", "test_rmse", "val_rmse", "seconds", "precision_at_10",
                 "recall_at_10", "ndcg_at_10", "created_at")


class ExportOps(StoreBase):
    def export_runs_csv(self, file: CsvTarget, where: RunFilter | None = None, **filters: Any) -> int:
        """Write the runs that `leaderboard(where, **filters)` returns, in its order; returns the count."""
        runs = self.leaderboard(where, **filters)  # type: ignore[attr-defined]  # QueryOps, in Store
        with _open(file) as out:
            writer = csv.writer(out)
            writer.writerow(RUN_COLUMNS)
            writer.writerows(_run_row(run) for run in runs)
        return len(runs)

    def export_epochs_csv(self, file: CsvTarget, run_ids: Iterable[int] | None = None) -> int:
        """Write the epochs of these runs (every run when None), by run then epoch; returns the count."""
        query = select(Epoch).order_by(Epoch.run_id, Epoch.epoch)
        if run_ids is not None:
            query = query.where(Epoch.run_id.in_(list(run_ids)))
        with self._read() as session:
            epochs = [epoch_record(row) for row in session.scalars(query)]
        with _open(file) as out:
            writer = csv.writer(out)
            writer.writerow(EPOCH_COLUMNS)
            writer.writerows([_cell(getattr(e, c)) for c in EPOCH_COLUMNS] for e in epochs)
        return len(epochs)


def _run_row(run: RunRecord) -> list[str]:
    values = {
        **{name: format_value(getattr(run.params, name)) for name in FIELD_NAMES},
        "tags": ",".join(run.tags),
    }
    return [values[c] if c in values else _cell(getattr(run, c)) for c in RUN_COLUMNS]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, bool):
        return format_value(value)  # true or false, as parameters are written
    return str(value)


@contextmanager
def _open(file: CsvTarget) -> Iterator[IO[str]]:
    if not isinstance(file, (str, PathLike)):
        yield file  # an open text file: the caller closes it
        return
    # A directory, a missing folder or a full disk is the target's fault: one line, not a traceback.
    try:
        with open(file, "w", newline="", encoding="utf-8") as out:
            yield out
    except OSError as exc:
        raise StoreError(f"cannot write {file}: {exc.strerror or exc}") from None
