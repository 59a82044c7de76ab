"""Workers grouped by the machine they run on, this machine's first: how `worker status` lists them
and the Queue tab orders its worker lines. Imports neither Textual nor torch (the CLI uses it)."""

from __future__ import annotations

from collections.abc import Iterable

from store.records import WorkerRecord
from store.workers import this_host


def by_host(workers: Iterable[WorkerRecord]) -> list[tuple[str, list[WorkerRecord]]]:
    """Each host with its workers (in the order given), this machine's first, then by name."""
    groups: dict[str, list[WorkerRecord]] = {}
    for worker in workers:
        groups.setdefault(worker.host, []).append(worker)
    return sorted(groups.items(), key=lambda group: (not is_this_machine(*group), group[0]))


def is_this_machine(host: str, workers: Iterable[WorkerRecord]) -> bool:
    """Whether `host` is this machine: its name, or the host of a worker whose pid names it here."""
    return host == this_host() or any(worker.local for worker in workers)
