"""RMSE curves per epoch, drawn with plotext inside the terminal."""

from __future__ import annotations

from textual_plotext import PlotextPlot

# plotext colour names, one per curve, cycled; train and test of one run share a colour.
COLOURS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")


class RmseCurves(PlotextPlot):
    DEFAULT_CSS = """
    RmseCurves { min-height: 8; }
    """

    def __init__(self, title: str = "RMSE per epoch", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self._series: list[tuple[str, list[int], list[float], str, str]] = []

    def set_runs(self, runs: dict[str, list], *, train: bool = True) -> None:
        """Draw the test RMSE (solid) and optionally the train RMSE (dotted) of each labelled run,
        where each run is given as its list of EpochRecords."""
        self._series = []
        for i, (label, epochs) in enumerate(runs.items()):
            colour = COLOURS[i % len(COLOURS)]
            points = [(e.epoch, e.test_rmse) for e in epochs if e.test_rmse is not None]
            self._series.append((f"{label} test", *_unzip(points), colour, "braille"))
            if train:
                points = [(e.epoch, e.train_rmse) for e in epochs if e.train_rmse is not None]
                self._series.append((f"{label} train", *_unzip(points), colour, "dot"))
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel("epoch")
        last = 1
        for label, xs, ys, colour, marker in self._series:
            if xs:
                plt.plot(xs, ys, label=label, color=colour, marker=marker)
                last = max(last, xs[-1])
        plt.xticks(epoch_ticks(last))
        self.refresh()


def epoch_ticks(last: int, most: int = 6) -> list[int]:
    """Whole epochs from 1 to `last`, at most `most` of them, evenly spread (plotext would
    otherwise label fractions of an epoch)."""
    if last <= most:
        return list(range(1, last + 1))
    return sorted({round(1 + i * (last - 1) / (most - 1)) for i in range(most)})


def _unzip(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [x for x, _ in points], [y for _, y in points]
