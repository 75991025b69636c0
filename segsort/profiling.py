"""Operator calls and host synchronisations of a piece of work, counted with the PyTorch profiler; the peak
memory of a piece of work, on a CPU or a GPU (the benchmarks' meters).

On a CPU these counts are the evidence of what would stall a GPU: every host sync waits for the device
queue to drain, and every operator call is at least one kernel launch.
"""
from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Callable

import torch

# Operators that make the host wait for the device: a scalar read (`.item()`, `int(t)`, `if t.any()`), a
# data-dependent output size (boolean indexing, `nonzero`, `unique`, `masked_select`).
SYNC_OPERATORS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::unique_dim",
                  "aten::unique_consecutive", "aten::masked_select"}


def count_operators(work: Callable[[], object]) -> tuple[int, int]:
    """(aten operator calls, host syncs among them) of one call of `work`."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        work()
    names = [event.name for event in profile.events() if event.name.startswith("aten::")]
    return len(names), sum(name in SYNC_OPERATORS for name in names)


def _status_kib(field: str, path: str = "/proc/self/status") -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{path} has no {field}")


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim_heap() -> None:
    """Give freed heap memory back to the OS, so a peak is not hidden by memory cached from a previous run."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class CpuPeak:
    """Peak resident set size of this process during a block: VmHWM after resetting it through
    /proc/self/clear_refs (Linux >= 4.0), or, where that is refused, the resident size sampled every 2 ms."""

    def __init__(self):
        self.reset_works = False
        try:
            _trim_heap()
            Path("/proc/self/clear_refs").write_text("5")
            self.reset_works = _status_kib("VmHWM") <= _status_kib("VmRSS") + 1024
        except OSError:
            pass
        self.measure = ("process peak RSS (VmHWM reset by /proc/self/clear_refs)" if self.reset_works
                        else "process RSS sampled every 2 ms (clear_refs refused)")
        self._stop = threading.Event()
        self._sampled = 0
        self._thread = None

    def start(self) -> int:
        """Reset the peak; returns the resident bytes at the start."""
        _trim_heap()
        if self.reset_works:
            Path("/proc/self/clear_refs").write_text("5")
            return _status_kib("VmHWM") * 1024
        self._stop.clear()
        self._sampled = _rss_bytes()

        def sample():
            while not self._stop.wait(0.002):
                self._sampled = max(self._sampled, _rss_bytes())
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self._sampled

    def stop(self) -> int:
        """The peak resident bytes since start()."""
        if self.reset_works:
            return _status_kib("VmHWM") * 1024
        self._stop.set()
        self._thread.join()
        return max(self._sampled, _rss_bytes())


class CudaPeak:
    measure = "torch.cuda.max_memory_allocated"

    def __init__(self, device: torch.device):
        self.device = device

    def start(self) -> int:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return torch.cuda.memory_allocated(self.device)

    def stop(self) -> int:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)


def peak_meter(device: torch.device) -> CpuPeak | CudaPeak:
    """The meter of peak memory on `device`: start() before a piece of work, stop() after it."""
    return CudaPeak(device) if device.type == "cuda" else CpuPeak()


def available_memory() -> int | None:
    """Bytes of memory this machine can still give a process without swapping (MemAvailable of
    /proc/meminfo); None where that is not known."""
    try:
        return _status_kib("MemAvailable", "/proc/meminfo") * 1024
    except (OSError, RuntimeError):
        return None
