"""Timing and memory probes shared by the benchmark suite.

Wall time is what a user waits for; CPU time (user + system of this process) is also kept because
this machine is shared: when other processes take the cores, wall time grows and CPU time much less,
so the pair shows how much a number was disturbed. Peak RSS is the kernel's high-water mark of
resident memory, reset before each configuration where Linux allows it (`/proc/self/clear_refs`).
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Timing:
    """Per-run wall and CPU seconds of the timed repetitions (warm-up runs excluded), and the CPU
    (in cores) that other processes used meanwhile."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    others_cores: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def time_runs(run: Callable[[], object], repeats: int, warmup: int = 1) -> Timing:
    """Call `run` `warmup` times untimed, then `repeats` times timed (wall and process CPU time)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        run()
    timing = Timing()
    for _ in range(repeats):
        with OtherProcesses() as others:
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            timing.cpu.append(time.process_time() - cpu)
            timing.wall.append(time.perf_counter() - wall)
        timing.others_cores.append(others.cores)
    return timing


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(values) - values[3] - values[4], sum(values)


def _own_ticks() -> int | None:
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


class OtherProcesses:
    """Context manager: how many cores other processes kept busy while the block ran (`cores`).

    0 means the machine was ours; on this 2-core machine 1.0 means half of it was taken. None where
    /proc is unavailable.
    """

    def __enter__(self) -> "OtherProcesses":
        self.cores: float | None = None
        self._start = (_cpu_ticks(), _own_ticks(), time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        (cpu0, own0, wall0), cpu1, own1 = self._start, _cpu_ticks(), _own_ticks()
        if None in (cpu0, own0, cpu1, own1):
            return
        seconds = time.perf_counter() - wall0
        busy = (cpu1[0] - cpu0[0]) - (own1 - own0)
        self.cores = round(max(0.0, busy / os.sysconf("SC_CLK_TCK") / max(seconds, 1e-9)), 2)


def _status_kib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as handle:
            match = re.search(rf"^{key}:\s+(\d+) kB", handle.read(), re.MULTILINE)
    except OSError:
        return None
    return float(match.group(1)) if match else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident set size since the last reset (or since start) in MiB."""
    kib = _status_kib("VmHWM")
    if kib is None:
        import resource

        kib = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    return kib / 1024


def current_rss_mb() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def load_average() -> float | None:
    """1-minute load average (runnable processes): above the core count means contention."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_description() -> dict[str, object]:
    """CPU model, cores, ISA level torch uses, bf16 units, torch version and threads, the GPU if any."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return {
        "cpu": model,
        "logical_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "amx_bf16": bool(amx),
        "avx512_bf16": bool(avx512_bf16),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
