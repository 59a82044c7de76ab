"""RMSE curves per epoch, drawn with plotext inside the terminal."""

from __future__ import annotations

from typing import Any

from textual_plotext import PlotextPlot

from store.records import EpochRecord

# plotext colour names, one per curve, cycled; train and test of one run share a colour.
COLOURS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")


class RmseCurves(PlotextPlot):
    DEFAULT_CSS = """
    RmseCurves { min-height: 8; }
    """

    def __init__(self, title: str = "RMSE per epoch", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title

    def set_runs(self, runs: dict[str, list[EpochRecord]], *, train: bool = True) -> None:
        """Draw the test RMSE (solid) and optionally the train RMSE (dotted) of each labelled run,
        where each run is given as its list of EpochRecords."""
        plt = self.plt
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel("epoch")
        last = 1
        for i, (label, epochs) in enumerate(runs.items()):
            colour = COLOURS[i % len(COLOURS)]
            test = [(e.epoch, e.test_rmse) for e in epochs if e.test_rmse is not None]
            last = max(last, self._add_curve(f"{label} test", test, colour, "braille"))
            if train:
                points = [(e.epoch, e.train_rmse) for e in epochs if e.train_rmse is not None]
                last = max(last, self._add_curve(f"{label} train", points, colour, "dot"))
        # textual-plotext's types ask for a list[float], which a list[int] is not (lists are invariant).
        ticks: list[float] = [*epoch_ticks(last)]
        plt.xticks(ticks)
        self.refresh()

    def _add_curve(self, label: str, points: list[tuple[int, float]], colour: str, marker: str) -> int:
        """Plot one curve; its last epoch (0 for no points)."""
        if not points:
            return 0
        xs, ys = [x for x, _ in points], [y for _, y in points]
        self.plt.plot(xs, ys, label=label, color=colour, marker=marker)
        return xs[-1]


def epoch_ticks(last: int, most: int = 6) -> list[int]:
    """Whole epochs from 1 to `last`, at most `most` of them, evenly spread (plotext would
    otherwise label fractions of an epoch)."""
    if last <= most:
        return list(range(1, last + 1))
    return sorted({round(1 + i * (last - 1) / (most - 1)) for i in range(most)})

