"""RMSE curves per epoch, drawn with plotext inside the terminal."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from rich.text import Text
from textual_plotext import PlotextPlot

from store.records import EpochRecord

RGB = tuple[int, int, int]
Kind = Literal["test", "val", "train"]

# One run: a colour per curve, far apart, each readable on dark and light themes.
KIND_COLOURS: dict[Kind, RGB] = {"test": (0, 175, 255), "val": (220, 80, 220), "train": (255, 140, 0)}
# Several runs (Compare): a colour per run, cycled, and within a run its test curve in that colour,
# drawn as a line, its validation and train curves in a darker shade of it (train dotted).
RUN_COLOURS: tuple[RGB, ...] = (
    (0, 175, 255), (255, 140, 0), (80, 200, 80), (220, 80, 220), (240, 200, 0), (255, 80, 80), (130, 130, 255),
    (0, 200, 170),
)
SHADE: dict[Kind, float] = {"test": 1.0, "val": 0.7, "train": 0.55}
MARKER: dict[Kind, str] = {"test": "braille", "val": "braille", "train": "dot"}
# How the key shows and names each kind of curve.
SAMPLE: dict[Kind, str] = {"test": "⣿⣿", "val": "⣿⣿", "train": "••"}
KIND_WORDS: dict[Kind, str] = {"val": "darker", "train": "dots"}
VALUE: dict[Kind, Callable[[EpochRecord], float | None]] = {
    "test": lambda e: e.test_rmse, "val": lambda e: e.val_rmse, "train": lambda e: e.train_rmse,
}


class RmseCurves(PlotextPlot):
    """The test RMSE of each run, its validation RMSE where it has one, and its train RMSE on
    request; on a linear or (`set_log_scale`) logarithmic RMSE axis."""

    DEFAULT_CSS = """
    RmseCurves { min-height: 8; }
    """

    def __init__(self, title: str = "RMSE per epoch", *, legend: bool = True, **kwargs: Any) -> None:
        """`legend`: label the curves inside the plot, over its top left corner. Where several runs
        would cover much of the plot with it, a screen shows `key()` beside the plot instead."""
        super().__init__(**kwargs)
        self.title = title
        self.legend = legend
        self.log_scale = False
        self._runs: dict[str, list[EpochRecord]] = {}
        self._train = True
        self._kinds_drawn: set[Kind] = set()

    def set_runs(self, runs: dict[str, list[EpochRecord]], *, train: bool = True) -> None:
        """Draw the curves of each labelled run, given as its list of EpochRecords (train ones
        only if `train`)."""
        self._runs = runs
        self._train = train
        self._draw()

    def set_log_scale(self, on: bool) -> None:
        """Draw the RMSE axis logarithmic (or linear again): the late epochs' small gains show."""
        self.log_scale = on
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        if self.title:  # a screen that names the plot itself leaves the title out: a line more for curves
            plt.title(self.title + (" (log)" if self.log_scale else ""))
        plt.xlabel("epoch")
        kinds: list[Kind] = ["test", "val", "train"] if self._train else ["test", "val"]
        last, drawn = 1, []
        self._kinds_drawn = set()
        for i, (label, epochs) in enumerate(self._runs.items()):
            for kind in kinds:
                points = [(e.epoch, y) for e in epochs if (y := VALUE[kind](e)) is not None]
                if self.log_scale:
                    points = [(x, y) for x, y in points if y > 0]  # a log axis has no place for 0
                if not points:
                    continue
                xs, ys = [x for x, _ in points], [y for _, y in points]
                drawn += ys
                if self.log_scale:
                    # plotext 5's own log scale takes the logarithm of the data in place each time
                    # the plot is drawn, so a second draw (any repaint) fails; log10 is plotted here
                    # on a linear axis instead, whose ticks name the RMSEs.
                    ys = [math.log10(y) for y in ys]
                plt.plot(xs, ys, label=f"{label} {kind}" if self.legend else None,
                         color=curve_colour(kind, i, len(self._runs)), marker=MARKER[kind])
                last = max(last, xs[-1])
                self._kinds_drawn.add(kind)
        if self.log_scale and drawn:
            positions, labels = log_ticks(min(drawn), max(drawn))
            plt.yticks(positions, labels)
        # textual-plotext's types ask for a list[float], which a list[int] is not (lists are invariant).
        ticks: list[float] = [*epoch_ticks(last)]
        plt.xticks(ticks)
        self.refresh()

    def key(self) -> Text:
        """One line that tells the curves drawn apart: for one run the colour of each curve; for
        several, each run's colour (its test curve's), then how its other curves are drawn."""
        runs, key = len(self._runs), Text()
        kinds: list[Kind] = [kind for kind in ("test", "val", "train") if kind in self._kinds_drawn]
        if runs == 1:
            for kind in kinds:
                key.append(SAMPLE[kind], style=rgb(KIND_COLOURS[kind])).append(f" {kind}  ")
            return key
        for i, label in enumerate(self._runs):
            key.append(SAMPLE["test"], style=rgb(curve_colour("test", i, runs))).append(f" {label}  ")
        others = [f"{KIND_WORDS[kind]}: {kind}" for kind in kinds if kind != "test"]
        if others:  # the test curve is the plain line in the run's colour
            key.append("(" + ", ".join(others) + ")", style="dim")
        return key


def log_ticks(low: float, high: float, count: int = 5) -> tuple[list[float], list[str]]:
    """Ticks of a logarithmic axis drawn as log10 on a linear one: `count` positions evenly spread
    between log10(low) and log10(high), each labelled with its value."""
    first, span = math.log10(low), math.log10(high) - math.log10(low)
    positions = [first + span * i / (count - 1) for i in range(count)] if span > 0 else [first]
    return positions, [f"{10 ** p:.3f}" for p in positions]


def rgb(colour: RGB) -> str:
    """A colour as a Rich style."""
    return "rgb({},{},{})".format(*colour)


def curve_colour(kind: Kind, run: int, runs: int) -> RGB:
    """The colour of one curve: by kind when there is one run, by run (shaded by kind) when several."""
    if runs == 1:
        return KIND_COLOURS[kind]
    red, green, blue = RUN_COLOURS[run % len(RUN_COLOURS)]
    shade = SHADE[kind]
    return round(red * shade), round(green * shade), round(blue * shade)


def epoch_ticks(last: int, most: int = 6) -> list[int]:
    """Whole epochs from 1 to `last`, at most `most` of them, evenly spread (plotext would
    otherwise label fractions of an epoch)."""
    if last <= most:
        return list(range(1, last + 1))
    return sorted({round(1 + i * (last - 1) / (most - 1)) for i in range(most)})
