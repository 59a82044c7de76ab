"""A DataTable whose measured size always reaches the screen."""

from __future__ import annotations

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from dmf_tui.components import fmt


class FittedTable(DataTable):
    """A DataTable of data whose new rows never leave a stale header or a stale height behind.

    Its cells are data: a str cell is drawn as it is (`fmt.literal`), where a plain DataTable
    would read it as markup.

    A DataTable measures new rows on idle, after they may already have been painted. In
    Textual 8.2 that measurement (1) keeps the lines painted before it in a cache that does not
    know the columns got wider, so the header can stay drawn at its old widths, and (2) asks for
    a layout that is dropped when another layout of the widget is pending (a size cache keyed by
    a counter only such a request advances), so an auto-height table can stay 0 rows tall. When
    the measured size changes, this drops the painted lines and, for an auto-height table, asks
    for the layout again after the next refresh, when nothing is pending."""

    def add_row(self, *cells, **kwargs) -> RowKey:
        return super().add_row(*map(fmt.literal, cells), **kwargs)

    def update_cell(self, row_key, column_key, value, **kwargs) -> None:
        super().update_cell(row_key, column_key, fmt.literal(value), **kwargs)

    def watch_virtual_size(self) -> None:
        self._clear_caches()
        height = self.styles.height
        if height is not None and height.is_auto:  # only then does the table's height follow its rows
            self.call_after_refresh(self.refresh, layout=True)
