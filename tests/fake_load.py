"""Fakes of the system load's two sources (dmf_tui/load.py) that always say the same: the TUI tests
and their snapshots must not show this machine's real CPU, memory or GPUs."""

from __future__ import annotations

from dataclasses import dataclass, field

from dmf_tui.load import GpuLoad, LoadSampler, ProcessLoad

GIB = 2**30
# What every process of the tests' workers shows.
BUSY = ProcessLoad(cpu_percent=97.5, memory_bytes=GIB * 3 // 2)


@dataclass
class FakeProcesses:
    """Every process at `load` (None: as if gone); `asked` records the pids looked at."""

    load: ProcessLoad | None = BUSY
    asked: list[int] = field(default_factory=list)

    def sample(self, pid: int) -> ProcessLoad | None:
        self.asked.append(pid)
        return self.load


@dataclass
class FakeGpus:
    """`count` GPUs (0: a machine without any), GPU i at 40+i % with i+1 GiB of 80 used; `asked`
    records the indices looked at."""

    count: int = 0
    asked: list[int] = field(default_factory=list)

    def sample(self, index: int) -> GpuLoad | None:
        self.asked.append(index)
        if not 0 <= index < self.count:
            return None
        return GpuLoad(percent=40 + index, memory_used=(index + 1) * GIB, memory_total=80 * GIB)


def fake_sampler(processes: FakeProcesses | None = None, gpus: FakeGpus | None = None) -> LoadSampler:
    """A LoadSampler over the fakes (of the tests' workers, those registered on this host)."""
    return LoadSampler(processes or FakeProcesses(), gpus or FakeGpus())
