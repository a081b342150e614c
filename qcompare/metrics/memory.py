"""Memory metrics: peak resident memory of the worker and, on CUDA, peak allocated and
NVML-used device memory, measured per phase (load+quantize, then inference) by `PhasePeak`.

* peak_rss: Linux's VmHWM of the worker process, reset at phase start by writing 5 to
  /proc/self/clear_refs (where the kernel refuses, a 10 ms sampler of VmRSS is used instead and
  the row's value is a lower bound).
* cuda peak allocated: torch.cuda.max_memory_allocated after reset_peak_memory_stats.
* NVML used: the largest device-wide used memory (pynvml nvmlDeviceGetMemoryInfo) seen by a
  10 ms sampler during the phase; it includes the CUDA context and any other process on the GPU.
"""
from __future__ import annotations

import re
import threading

MIB = 1024 * 1024


def rss_bytes(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) * 1024 if m else 0


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PhasePeak:
    """Context manager: peaks of one phase, in MiB, in `.result` after exit."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.result: dict[str, float] = {}
        self._stop = threading.Event()
        self._sampled_rss = 0
        self._nvml_peak = 0
        self._nvml_handle = None

    def _sample(self):
        while not self._stop.wait(0.01):
            self._sampled_rss = max(self._sampled_rss, rss_bytes())
            if self._nvml_handle is not None:
                import pynvml
                used = pynvml.nvmlDeviceGetMemoryInfo(self._nvml_handle).used
                self._nvml_peak = max(self._nvml_peak, used)

    def __enter__(self):
        self._hwm_ok = _reset_hwm()
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            try:
                import pynvml
                pynvml.nvmlInit()
                index = torch.cuda.current_device()
                self._nvml_handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            except Exception:  # noqa: BLE001 - NVML missing is reported as an absent column
                self._nvml_handle = None
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        peak = rss_bytes("VmHWM") if self._hwm_ok else max(self._sampled_rss, rss_bytes())
        self.result = {"peak_rss_mib": peak / MIB}
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()
            self.result["cuda_peak_alloc_mib"] = torch.cuda.max_memory_allocated() / MIB
            if self._nvml_handle is not None:
                import pynvml
                used = pynvml.nvmlDeviceGetMemoryInfo(self._nvml_handle).used
                self.result["nvml_used_peak_mib"] = max(self._nvml_peak, used) / MIB
        return False
