"""A DataTable whose measured size always reaches the screen, which takes the keys terminal users
expect of a list (j/k, g/G, Home/End), and which never draws part of a cell.

A DataTable wider than its screen cuts the column at the edge wherever the edge falls: on 80
columns a learning rate of 0.003 showed as `0.0`, another number, and scrolled sideways the column
after the frozen ones can read `03`. A FittedTable leaves a column the edge cuts blank (its row's
colours stay), so a cell is shown whole or not at all; scrolling sideways shows it."""

from __future__ import annotations

from rich.segment import Segment
from rich.text import TextType
from textual.binding import Binding
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from dmf_tui.components import fmt


class FittedTable(DataTable[fmt.Cell]):
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

    # Every table of the TUI is a list of rows: Home and End go to the first and last row (a plain
    # DataTable scrolls sideways with them), and j/k/g/G do what they do in less and vi.
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="table.down", tooltip="cursor down a row (as ↓)"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up", tooltip="cursor up a row (as ↑)"),
        Binding("g,home", "scroll_top", "First row", show=False, id="table.first", tooltip="cursor to the first row"),
        Binding("G,end", "scroll_bottom", "Last row", show=False, id="table.last", tooltip="cursor to the last row"),
    ]

    def add_row(
        self, *cells: fmt.Cell, height: int | None = 1, key: str | None = None, label: TextType | None = None,
    ) -> RowKey:
        return super().add_row(*(fmt.literal(cell) for cell in cells), height=height, key=key, label=label)

    def update_cell(
        self, row_key: RowKey | str, column_key: ColumnKey | str, value: fmt.Cell, *, update_width: bool = False,
    ) -> None:
        super().update_cell(row_key, column_key, fmt.literal(value), update_width=update_width)

    def watch_virtual_size(self) -> None:
        self._clear_caches()
        height = self.styles.height
        if height is not None and height.is_auto:  # only then does the table's height follow its rows
            self.call_after_refresh(self.refresh, layout=True)

    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        for start, end in self.cut_columns():
            blank = Strip(Segment(" " * segment.cell_length, segment.style) for segment in line.crop(start, end))
            line = Strip.join([line.crop(0, start), blank, line.crop(end, line.cell_length)])
        return line

    def cut_columns(self) -> list[tuple[int, int]]:
        """Where on the table's lines (x from its left edge, end excluded) a column shows only in
        part: cut by the right edge, or scrolled under the frozen columns on the left."""
        widths = [column.get_render_width(self) for column in self.ordered_columns]
        fixed = sum(widths[: self.fixed_columns])
        # The columns after the frozen ones are drawn from x = fixed on, scrolled by scroll_x; every
        # column's x in the scrolled line counts from the first column, frozen ones included.
        scroll_x = self.scroll_offset.x
        shown_from, shown_to = scroll_x + fixed, scroll_x + self.size.width
        pad = self.cell_padding  # blank on each side of a cell: cutting it cuts no text
        cuts = []
        start = 0
        for index, width in enumerate(widths):
            end = start + width
            text_from, text_to = start + pad, end - pad
            cut = text_from < shown_from < text_to or text_from < shown_to < text_to
            if index >= self.fixed_columns and cut:
                cuts.append((max(start, shown_from) - scroll_x, min(end, shown_to) - scroll_x))
            start = end
        return cuts
