"""The table of a run's epochs, shown by the Live tab and by Run detail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dmf_tui.components import fmt, ranking
from dmf_tui.components.fitted_table import FittedTable
from store.records import EpochRecord


class EpochTable(FittedTable):
    """One row an epoch: its train, test and (for a run with a validation split) validation RMSE,
    its NDCG@10 (for a run ranked every few epochs), and how long it took. Headings are short so the
    table leaves the curves beside it most of an 80-column terminal."""

    DEFAULT_CSS = """
    EpochTable { width: auto; height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.epochs: list[EpochRecord] = []
        # Whether the val column is shown: from the first epoch that has a validation RMSE on.
        self.has_validation = False
        # Whether the NDCG@10 column is shown: from the first ranked epoch on. Precision and recall
        # stay in `dmf-tui show`: three more columns would leave the curves too little room.
        self.has_ranking = False
        self._add_columns()

    def _add_columns(self) -> None:
        # The order of `dmf-tui show`'s epoch table.
        val = [("val", "val")] if self.has_validation else []
        ndcg = [("ndcg", "NDCG@10")] if self.has_ranking else []
        for key, label in [("epoch", "epoch"), ("train", "train"), ("test", "test"), *val, *ndcg, ("sec", "sec")]:
            self.add_column(label, key=key)

    def add_epochs(self, epochs: Iterable[EpochRecord]) -> None:
        new = list(epochs)
        # A run's epochs all have a validation RMSE or none do (a split either holds out validation
        # ratings or not), so that column comes at the first epoch; a run ranked every few epochs
        # has its first NDCG@10 a few epochs in. Either way the rows already shown are drawn again
        # with the new column.
        validation = self.has_validation or any(e.val_rmse is not None for e in new)
        ranked = self.has_ranking or any(e.ndcg_at_10 is not None for e in new)
        if (validation, ranked) != (self.has_validation, self.has_ranking):
            self.has_validation, self.has_ranking = validation, ranked
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
            # Blank, not "-", on the epochs in between: the column reads as the ranked epochs only.
            ndcg = ["" if e.ndcg_at_10 is None else ranking.value(e.ndcg_at_10)] if self.has_ranking else []
            self.add_row(e.epoch, fmt.rmse(e.train_rmse), fmt.rmse(e.test_rmse), *val, *ndcg, fmt.seconds(e.seconds))
