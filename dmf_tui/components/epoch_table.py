"""The table of a run's epochs, shown by the Live tab and by Run detail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dmf_tui.components import fmt
from dmf_tui.components.fitted_table import FittedTable
from store.records import EpochRecord


class EpochTable(FittedTable):
    """One row an epoch: its train, test and (for a run with a validation split) validation RMSE,
    and how long it took. Headings are short so the table leaves the curves beside it most of an
    80-column terminal."""

    DEFAULT_CSS = """
    EpochTable { width: auto; height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.epochs: list[EpochRecord] = []
        # Whether the val column is shown: from the first epoch that has a validation RMSE on.
        self.has_validation = False
        self._add_columns()

    def _add_columns(self) -> None:
        # The order of `dmf-tui show`'s epoch table.
        val = [("val", "val")] if self.has_validation else []
        for key, label in [("epoch", "epoch"), ("train", "train"), ("test", "test"), *val, ("sec", "sec")]:
            self.add_column(label, key=key)

    def add_epochs(self, epochs: Iterable[EpochRecord]) -> None:
        new = list(epochs)
        if not self.has_validation and any(e.val_rmse is not None for e in new):
            # A run's epochs all have a validation RMSE or none do (a split either holds out
            # validation ratings or not), so this happens once, at the first epoch: the rows
            # already shown are drawn again with the new column.
            self.has_validation = True
            row = self.cursor_row
            self.clear(columns=True)
            self._add_columns()
            self._add_rows(self.epochs)
            self.move_cursor(row=row)
        self._add_rows(new)
        self.epochs.extend(new)

    def _add_rows(self, epochs: list[EpochRecord]) -> None:
        for e in epochs:
            val = [fmt.rmse(e.val_rmse)] if self.has_validation else []
            self.add_row(e.epoch, fmt.rmse(e.train_rmse), fmt.rmse(e.test_rmse), *val, fmt.seconds(e.seconds))
