"""A DataTable of runs keyed by run id that redraws only what changed between two polls."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from textual.binding import Binding
from textual.widgets.data_table import RowDoesNotExist, RowKey

from dmf_tui.components.fitted_table import FittedTable
from dmf_tui.components.fmt import Cell

# A row of a RunTable: (run id, its cells).
Row = tuple[int, tuple[Cell, ...]]


def run_id_of(key: RowKey) -> int:
    """The run id a row key of a RunTable holds."""
    # Every row is added with its run id as key, so a key has a value.
    assert key.value is not None
    return int(key.value)


class RunTable(FittedTable):
    """Rows are keyed by run id (as text) and the column "id" holds the id itself, so the
    table can be put back into the order the store gave without rebuilding it."""

    DEFAULT_CSS = """
    RunTable { height: 1fr; }
    """
    # DataTable's own enter, named so the help lists it: the Queue and History tabs open the run
    # of the selected row.
    BINDINGS = [
        Binding("enter", "select_cursor", "Open run", show=False, id="runs.open",
                tooltip="open Run detail on the run under the cursor: config, epochs, curves, error, notes"),
    ]

    def __init__(self, columns: Sequence[tuple[str, str]], *, fixed_columns: int = 0, **kwargs: Any) -> None:
        """`fixed_columns`: how many of the first columns stay on the left when the table scrolls
        sideways (the run's id and status, so a narrow terminal still says which run a row is)."""
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=fixed_columns, **kwargs)
        self._columns = columns
        self._cells: dict[int, tuple[Cell, ...]] = {}
        for key, label in columns:
            self.add_column(label, key=key)

    @property
    def run_ids(self) -> list[int]:
        return [run_id_of(row.key) for row in self.ordered_rows]

    @property
    def current_run_id(self) -> int | None:
        if not self.row_count:
            return None
        return run_id_of(self.coordinate_to_cell_key(self.cursor_coordinate).row_key)

    def sync(self, rows: Iterable[Row]) -> None:
        """Make the table show exactly `rows` (run id, cells) in that order, touching only
        rows and cells that differ; the cursor stays on the run it was on."""
        rows = list(rows)
        keep = self.current_run_id
        wanted = {run_id for run_id, _ in rows}
        for run_id in [r for r in self._cells if r not in wanted]:
            self.remove_row(str(run_id))
            del self._cells[run_id]
        for run_id, cells in rows:
            if run_id in self._cells:
                self.update_run(run_id, cells)
            else:
                self.add_row(*cells, key=str(run_id))
                self._cells[run_id] = cells
        order = [run_id for run_id, _ in rows]
        if self.run_ids != order:
            position = {run_id: i for i, run_id in enumerate(order)}
            self.sort("id", key=lambda run_id: position[run_id])
        if keep is not None:
            self.select_run(keep)

    def update_run(self, run_id: int, cells: tuple[Cell, ...]) -> None:
        """Redraw the cells of one shown run that differ from what it shows."""
        old = self._cells[run_id]
        for (key, _), before, after in zip(self._columns, old, cells):
            if before != after:
                # update_width: a cell that grows ("queued" -> "running") must widen its column.
                self.update_cell(str(run_id), key, after, update_width=True)
        self._cells[run_id] = cells

    def append(self, rows: Iterable[Row]) -> None:
        """Add rows after the last one: a further page costs its own rows, not the table's."""
        for run_id, cells in rows:
            if run_id not in self._cells:
                self.add_row(*cells, key=str(run_id))
                self._cells[run_id] = cells

    def select_run(self, run_id: int) -> None:
        try:
            self.move_cursor(row=self.get_row_index(str(run_id)))
        except RowDoesNotExist:
            pass
