"""Tables that never draw part of a cell.

A DataTable wider than its screen cuts the column at the edge wherever the edge falls: on 80
columns a learning rate of 0.003 showed as `0.0`, another number, and scrolled sideways the column
after the frozen ones can read `03`. A table with WholeCells leaves a column the edge cuts blank
(its row's colours stay), so a cell is shown whole or not at all; scrolling sideways shows it.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import DataTable

from dmf_tui.components.fmt import Cell


class WholeCells(DataTable[Cell]):
    """Mix in after the table's own class (`class T(RunTable, WholeCells)`): Textual's CSS type
    names follow the first base only, so the table keeps its CSS."""

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
