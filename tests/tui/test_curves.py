"""RMSE curves: train, test and validation each in a colour of its own, several runs told apart,
and a log RMSE axis that can be drawn again and again."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import datetime, timezone
from itertools import pairwise

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult

from dmf_tui.components.curves import RmseCurves
from store.records import EpochRecord


class Curves(App[None]):
    def compose(self) -> ComposeResult:
        yield RmseCurves()


def epochs(run_id: int, count: int = 8, *, val: bool = False, scale: float = 1.0) -> list[EpochRecord]:
    """A learning curve: train below test, validation (if any) just above it."""
    made = []
    for n in range(1, count + 1):
        test = scale * (0.9 + 0.6 * math.exp(-n / 3))
        made.append(EpochRecord(run_id=run_id, epoch=n, train_rmse=test - 0.1, test_rmse=test,
                                val_rmse=test + 0.02 if val else None, seconds=1.0,
                                created_at=datetime(2024, 5, 1, tzinfo=timezone.utc)))
    return made


def drawn(curves: RmseCurves) -> Text:
    """The plot as the widget draws it now (each call draws it again, as a repaint does)."""
    text = curves.render()
    assert isinstance(text, Text)
    return text


def colour_of(style: str | Style) -> tuple[int, int, int] | None:
    """The foreground of a style as red, green, blue (None: no true colour)."""
    colour = (style if isinstance(style, Style) else Style.parse(style)).color
    triplet = colour.triplet if colour is not None else None
    return (triplet.red, triplet.green, triplet.blue) if triplet is not None else None


def legend_colours(curves: RmseCurves) -> dict[str, tuple[int, int, int]]:
    """Each curve's label in the legend, and the colour of the marker drawn before it."""
    colours = {}
    for line in drawn(curves).split("\n"):
        for span in line.spans:
            label = re.match(r" (#\d+ \w+)", line.plain[span.end:])
            if label and (colour := colour_of(span.style)) is not None:
                colours[label.group(1)] = colour
    return colours


def y_ticks(curves: RmseCurves) -> list[float]:
    """The values the RMSE axis is labelled with, top to bottom."""
    return [float(m.group(1)) for line in drawn(curves).plain.splitlines() if (m := re.match(r"\s*([\d.]+)┤", line))]


async def test_one_run_draws_test_validation_and_train_each_in_its_own_colour():
    app = Curves()
    async with app.run_test(size=(80, 24)) as pilot:
        curves = app.query_one(RmseCurves)
        curves.set_runs({"#1": epochs(1, val=True)})
        await pilot.pause()
        colours = legend_colours(curves)
        assert set(colours) == {"#1 test", "#1 val", "#1 train"}
        assert len(set(colours.values())) == 3


async def test_a_run_without_validation_has_no_validation_curve():
    app = Curves()
    async with app.run_test(size=(80, 24)) as pilot:
        curves = app.query_one(RmseCurves)
        curves.set_runs({"#1": epochs(1)})
        await pilot.pause()
        assert set(legend_colours(curves)) == {"#1 test", "#1 train"}


async def test_overlaid_runs_differ_in_colour_and_each_runs_train_from_its_test():
    app = Curves()
    async with app.run_test(size=(80, 24)) as pilot:
        curves = app.query_one(RmseCurves)
        curves.set_runs({"#1": epochs(1), "#2": epochs(2, scale=1.1), "#3": epochs(3, scale=1.2)})
        await pilot.pause()
        colours = legend_colours(curves)
        assert set(colours) == {f"#{run} {kind}" for run in (1, 2, 3) for kind in ("test", "train")}
        assert len(set(colours.values())) == 6


async def test_the_log_scale_spaces_the_rmse_ticks_by_ratio_and_survives_every_repaint():
    app = Curves()
    async with app.run_test(size=(80, 24)) as pilot:
        curves = app.query_one(RmseCurves)
        # A test RMSE that halves each epoch, from 16 to 0.125: two decades.
        halving = [replace(e, test_rmse=16 / 2 ** (e.epoch - 1)) for e in epochs(1)]
        curves.set_runs({"#1": halving}, train=False)
        await pilot.pause()
        linear = y_ticks(curves)
        steps = [a - b for a, b in pairwise(linear)]
        assert all(math.isclose(step, steps[0], abs_tol=0.11) for step in steps), linear  # labels are rounded

        curves.set_log_scale(True)
        await pilot.pause()
        for _ in range(2):  # drawn again, as on any repaint: plotext's own log scale fails here
            ticks = y_ticks(curves)
            ratios = [a / b for a, b in pairwise(ticks)]
            assert ratios[0] > 2 and all(math.isclose(r, ratios[0], rel_tol=0.02) for r in ratios), ticks

        curves.set_log_scale(False)
        await pilot.pause()
        assert y_ticks(curves) == linear


async def test_a_log_axis_leaves_out_an_rmse_of_zero_and_draws_without_points():
    app = Curves()
    async with app.run_test(size=(80, 24)) as pilot:
        curves = app.query_one(RmseCurves)
        curves.set_log_scale(True)
        await pilot.pause()
        drawn(curves)  # nothing to draw yet (a run before its first epoch)
        run = epochs(1)
        run[0] = replace(run[0], train_rmse=0.0)
        curves.set_runs({"#1": run})
        await pilot.pause()
        assert set(legend_colours(curves)) == {"#1 test", "#1 train"}


async def test_the_key_tells_the_curves_apart_as_the_plot_draws_them():
    app = Curves()
    async with app.run_test(size=(80, 24)) as pilot:
        curves = app.query_one(RmseCurves)
        curves.set_runs({"#1": epochs(1, val=True)})
        await pilot.pause()
        legend = legend_colours(curves)
        key = curves.key()
        assert key.plain == "⣿⣿ test  ⣿⣿ val  •• train  "
        in_plot = [legend[f"#1 {kind}"] for kind in ("test", "val", "train")]
        assert [colour_of(span.style) for span in key.spans] == in_plot

        # Several runs: each in its colour, then how the other curves are drawn.
        curves.set_runs({"#1": epochs(1, val=True), "#2": epochs(2)}, train=False)
        await pilot.pause()
        assert curves.key().plain == "⣿⣿ #1  ⣿⣿ #2  (darker: val)"
