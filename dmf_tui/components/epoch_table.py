"""The table of a run's epochs, shown by the Live tab and by Run detail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable

from dmf_tui.components import fmt
from store.records import EpochRecord


class EpochTable(DataTable[fmt.Cell]):
    # DataTable's own enter, named so the help lists it: the Live tab opens the run of the table
    # (in Run detail, which shows that run already, it does nothing).
    BINDINGS = [
        Binding("enter", "select_cursor", "Open run", show=False, id="epochs.open",
                tooltip="open Run detail on this running run"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, classes="epoch-table", **kwargs)
        self.add_columns("epoch", "TrnRMSE", "TestRMSE", "seconds")

    def add_epochs(self, epochs: Iterable[EpochRecord]) -> None:
        for e in epochs:
            self.add_row(e.epoch, fmt.rmse(e.train_rmse), fmt.rmse(e.test_rmse), f"{e.seconds:.1f}")
