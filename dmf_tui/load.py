"""The system load of each worker slot, sampled with every poll (in the poll's thread).

A slot is one worker row: one process (pid, host) training on one device. For the slots on this
host the Queue tab shows the CPU and memory of the slot's process (psutil) and, for a slot on
cuda:N, the utilisation and memory of that GPU (NVIDIA's management library, NVML, from the
nvidia-ml-py package). A slot on another host shows no figures: its process and GPU are not ours
to look at.

Whatever cannot be known is left out rather than shown as an error: no psutil, a process that is
gone or not ours, no pynvml, no NVIDIA driver or GPU, an NVML call that fails.

Both libraries are imported on first use, in the poll's thread, never when the TUI starts: pynvml
alone takes about 35 ms to import, and NVML's start-up talks to the driver. Tests replace
`Processes` and `Gpus` with fakes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from store.records import WorkerRecord


@dataclass(frozen=True)
class ProcessLoad:
    cpu_percent: float | None  # of one core, so a process on four cores can show 400; None on the first look
    memory_bytes: int  # resident


@dataclass(frozen=True)
class GpuLoad:
    percent: int  # of the time in the last sample period some kernel ran
    memory_used: int  # bytes, by every process on the GPU
    memory_total: int


@dataclass(frozen=True)
class SlotLoad:
    process: ProcessLoad | None
    gpu: GpuLoad | None


class Processes(Protocol):
    def sample(self, pid: int) -> ProcessLoad | None:
        """The process's load now; None when it is gone or cannot be looked at."""


class Gpus(Protocol):
    def sample(self, index: int) -> GpuLoad | None:
        """GPU `index`'s load now (CUDA's numbering, as in cuda:N); None when there is no such GPU
        or it cannot be asked."""


class LoadSampler:
    def __init__(self, processes: Processes | None = None, gpus: Gpus | None = None) -> None:
        self.processes = processes if processes is not None else PsutilProcesses()
        self.gpus = gpus if gpus is not None else NvmlGpus()

    def sample(self, workers: Sequence[WorkerRecord]) -> dict[int, SlotLoad]:
        """The load of each worker on this machine (WorkerRecord.local), by worker id."""
        loads = {}
        for worker in workers:
            if not worker.local:
                continue
            index = cuda_index(worker.devices)
            loads[worker.id] = SlotLoad(process=self.processes.sample(worker.pid),
                                        gpu=None if index is None else self.gpus.sample(index))
        return loads


def cuda_index(devices: Sequence[str]) -> int | None:
    """N of the slot's device when it is cuda:N (plain "cuda" is cuda:0); None for any other."""
    if len(devices) != 1:
        return None
    kind, _, number = devices[0].partition(":")
    if kind != "cuda":
        return None
    if not number:
        return 0
    return int(number) if number.isdigit() else None


class PsutilProcesses:
    def __init__(self) -> None:
        # psutil measures a process's CPU between two looks at the same Process object.
        self._seen: dict[int, Any] = {}

    def sample(self, pid: int) -> ProcessLoad | None:
        try:
            import psutil
        except ImportError:
            return None
        try:
            process = self._seen.get(pid)
            first = process is None
            if process is None:
                process = self._seen[pid] = psutil.Process(pid)
            with process.oneshot():
                cpu = process.cpu_percent(interval=None)
                memory = process.memory_info().rss
        except (psutil.Error, ValueError):  # gone, a zombie, another user's, or no pid at all (< 1)
            self._seen.pop(pid, None)
            return None
        return ProcessLoad(cpu_percent=None if first else cpu, memory_bytes=memory)


class NvmlGpus:
    def __init__(self) -> None:
        self._nvml: Any = None
        self._started = False  # NVML was tried: self._nvml is the module, or None when it failed

    def sample(self, index: int) -> GpuLoad | None:
        nvml = self._start()
        if nvml is None:
            return None
        try:
            handle = _handle(nvml, index)
            if handle is None:
                return None
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            percent = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
        except nvml.NVMLError:
            return None
        return GpuLoad(percent=int(percent), memory_used=int(memory.used), memory_total=int(memory.total))

    def _start(self) -> Any:
        """pynvml, started; None without it, without a driver or without a GPU (tried once)."""
        if not self._started:
            self._started = True
            try:
                import pynvml
            except ImportError:
                return None
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError:
                return None
            self._nvml = pynvml
        return self._nvml


def _handle(nvml: Any, index: int) -> Any:
    """NVML's handle of the GPU a process of this environment calls cuda:`index`. Workers the TUI
    starts inherit its environment, so a CUDA_VISIBLE_DEVICES here (indices or GPU UUIDs) is theirs
    too; NVML itself numbers every GPU. (CUDA may order unlike GPUs by speed where NVML orders them
    by PCI bus: with mixed models, set CUDA_DEVICE_ORDER=PCI_BUS_ID for the numbers to agree.)
    None when this environment shows no such GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return nvml.nvmlDeviceGetHandleByIndex(index)
    listed = [part.strip() for part in visible.split(",") if part.strip()]
    if index >= len(listed):
        return None
    chosen = listed[index]
    if chosen.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(chosen))
    return nvml.nvmlDeviceGetHandleByUUID(chosen)
