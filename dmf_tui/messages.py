"""Messages the tabs and screens send up to the app, which owns the screens and the polling."""

from __future__ import annotations

from textual.message import Message

from store.params import RunParams


class OpenRun(Message):
    """Show the Run detail screen of one run."""

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id


class CompareRuns(Message):
    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids


class NewExperiment(Message):
    """Open the New experiment form, pre-filled from `params` and `retries` when cloning a run."""

    def __init__(self, params: RunParams | None = None, retries: int = 0) -> None:
        super().__init__()
        self.params = params
        self.retries = retries


class OpenSearch(Message):
    """Show the view of one search: its trials, best-so-far curve, importances."""

    def __init__(self, search_id: int) -> None:
        super().__init__()
        self.search_id = search_id


class NewSearch(Message):
    """Open the New search form, its fields filled from `base` when given."""

    def __init__(self, base: RunParams | None = None) -> None:
        super().__init__()
        self.base = base


class CancelRun(Message):
    """Cancel a queued run, or ask a running one to stop (from the Queue or Run detail)."""

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id


class RetryRun(Message):
    """Queue a fresh copy of a run (from the Queue or Run detail)."""

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id


class StoreChanged(Message):
    """Something was written to the store from the TUI: poll now rather than in a second."""
