"""A DataTable whose measured size always reaches the layout."""

from __future__ import annotations

from textual.widgets import DataTable


class FittedTable(DataTable):
    """A DataTable that a `height: auto` rule can rely on.

    A DataTable measures new rows on idle and then asks for a layout. Textual 8.2 caches a
    widget's size under a counter that such a request only advances when no other layout of
    the widget is pending; when one is, the new size is ignored and an auto-height table can
    stay zero rows tall. Asking once more after the next refresh, when nothing is pending,
    makes the new size count."""

    def watch_virtual_size(self) -> None:
        self.call_after_refresh(self.refresh, layout=True)
