"""A DataTable whose measured size always reaches the screen."""

from __future__ import annotations

from textual.widgets import DataTable


class FittedTable(DataTable):
    """A DataTable whose new rows never leave a stale header or a stale height behind.

    A DataTable measures new rows on idle, after they may already have been painted. In
    Textual 8.2 that measurement (1) keeps the lines painted before it in a cache that does not
    know the columns got wider, so the header can stay drawn at its old widths, and (2) asks for
    a layout that is dropped when another layout of the widget is pending (a size cache keyed by
    a counter only such a request advances), so an auto-height table can stay 0 rows tall. When
    the measured size changes, this drops the painted lines and, for an auto-height table, asks
    for the layout again after the next refresh, when nothing is pending."""

    def watch_virtual_size(self) -> None:
        self._clear_caches()
        height = self.styles.height
        if height is not None and height.is_auto:  # only then does the table's height follow its rows
            self.call_after_refresh(self.refresh, layout=True)
