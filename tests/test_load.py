"""dmf_tui/load.py: the system load of each worker slot, with psutil and NVML replaced by fakes
(and psutil itself on this test's own process)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from dmf_tui.load import GpuLoad, LoadSampler, NvmlGpus, PsutilProcesses, cuda_index
from store.records import WorkerRecord
from store.status import WorkerState
from tests.fake_load import GIB, FakeGpus, FakeProcesses
from tests.processes import dead_pid

HOST = "here"
NOW = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def slot(worker_id: int, device: str, *, pid: int = 100, host: str = HOST, local: bool = True) -> WorkerRecord:
    return WorkerRecord(id=worker_id, pid=pid, host=host, devices=(device,), slots=1, started_at=NOW,
                        heartbeat_at=NOW, stopped_at=None, state=WorkerState.RUNNING, local=local)


def test_each_slot_on_this_host_gets_its_process_and_its_gpu():
    processes, gpus = FakeProcesses(), FakeGpus(count=2)
    sampler = LoadSampler(processes, gpus)

    loads = sampler.sample([slot(1, "cuda:1", pid=101), slot(2, "cpu", pid=102), slot(3, "cuda:0", pid=103)])

    assert processes.asked == [101, 102, 103]
    assert gpus.asked == [1, 0]  # the CPU slot has no GPU to ask about
    assert loads[1].gpu == GpuLoad(percent=41, memory_used=2 * GIB, memory_total=80 * GIB)
    assert loads[2].gpu is None
    assert loads[2].process == processes.load


def test_without_a_gpu_a_cuda_slot_shows_only_its_process():
    sampler = LoadSampler(FakeProcesses(), FakeGpus(count=0))

    loads = sampler.sample([slot(1, "cuda:0", pid=101)])

    assert loads[1].gpu is None and loads[1].process is not None


def test_slots_whose_pid_means_nothing_here_are_not_looked_at():
    processes, gpus = FakeProcesses(), FakeGpus()

    # Another machine, or this one's name in another container: their pid would name another process.
    loads = LoadSampler(processes, gpus).sample([slot(1, "cuda:0", host="elsewhere", local=False),
                                                 slot(2, "cuda:0", local=False)])

    assert loads == {} and processes.asked == [] and gpus.asked == []


@pytest.mark.parametrize(("devices", "index"), [
    (("cuda:0",), 0), (("cuda:3",), 3), (("cuda",), 0), (("cpu",), None), (("mps",), None),
    (("cuda:x",), None), (("cuda:0", "cuda:1"), None), ((), None),
])
def test_cuda_index(devices, index):
    assert cuda_index(devices) == index


def test_psutil_gives_this_process_memory_and_cpu_from_the_second_look_on():
    processes = PsutilProcesses()

    first, second = processes.sample(os.getpid()), processes.sample(os.getpid())

    assert first is not None and second is not None
    assert first.cpu_percent is None  # psutil measures CPU between two looks
    assert second.cpu_percent is not None and second.cpu_percent >= 0
    assert second.memory_bytes > 2**20


def test_a_process_that_has_exited_has_no_load():
    assert PsutilProcesses().sample(dead_pid()) is None


@pytest.mark.parametrize("pid", [0, -1, 2**70])
def test_a_pid_no_process_can_have_has_no_load(pid):
    assert PsutilProcesses().sample(pid) is None


def test_without_psutil_processes_have_no_load(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # what `import psutil` finds when it is not installed

    assert PsutilProcesses().sample(os.getpid()) is None


class FakeNvmlError(Exception):
    pass


def fake_nvml(*, init_fails: bool = False, gpus: int = 2) -> SimpleNamespace:
    """The part of pynvml that NvmlGpus calls: GPUs 0..gpus-1, GPU i at 10*i % busy with i GiB used,
    each also found by its UUID "GPU-i"."""
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if init_fails:
            raise FakeNvmlError("NVML Shared Library Not Found")

    def by_index(index: int) -> int:
        if not 0 <= index < gpus:
            raise FakeNvmlError("Invalid Argument")
        return index

    def by_uuid(uuid: str) -> int:
        return by_index(int(uuid.removeprefix("GPU-")))

    return SimpleNamespace(
        NVMLError=FakeNvmlError, calls=calls, nvmlInit=init,
        nvmlDeviceGetHandleByIndex=by_index, nvmlDeviceGetHandleByUUID=by_uuid,
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=h * 2**30, total=80 * 2**30, free=0),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=10 * h, memory=0),
    )


@pytest.fixture
def nvml(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    module = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def test_nvml_gives_a_gpus_utilisation_and_memory(nvml):
    gpus = NvmlGpus()

    assert gpus.sample(1) == GpuLoad(percent=10, memory_used=2**30, memory_total=80 * 2**30)
    assert gpus.sample(0) == GpuLoad(percent=0, memory_used=0, memory_total=80 * 2**30)
    assert nvml.calls == ["init"]  # started once


def test_a_gpu_that_nvml_does_not_know_has_no_load(nvml):
    assert NvmlGpus().sample(5) is None


def test_cuda_visible_devices_says_which_gpu_a_slot_calls_cuda_n(nvml, monkeypatch):
    gpus = NvmlGpus()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert [load.percent for load in (gpus.sample(0), gpus.sample(1)) if load] == [10, 0]
    assert gpus.sample(2) is None  # only two are visible
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1")
    load = gpus.sample(0)
    assert load is not None and load.percent == 10


def test_without_a_driver_there_is_no_gpu_load_and_nvml_is_not_asked_again(monkeypatch):
    module = fake_nvml(init_fails=True)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    gpus = NvmlGpus()

    assert gpus.sample(0) is None and gpus.sample(0) is None
    assert module.calls == ["init"]


def test_without_pynvml_there_is_no_gpu_load(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)

    assert NvmlGpus().sample(0) is None


def test_the_tui_starts_without_importing_the_load_sampler_psutil_or_pynvml():
    # A fresh interpreter: this one has imported them above. The first poll imports them.
    code = "import sys, dmf_tui.app; print(sorted({'dmf_tui.load', 'psutil', 'pynvml'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"
