"""How many CPU threads torch should use: the CPUs this process may actually use, not the machine's cores.

torch starts one intra-op thread per physical core of the machine. In a container with a CPU quota, under
`taskset`, or beside other busy processes that is too many: an OpenMP team waits at the end of every
parallel region for its slowest thread, so one thread the kernel has descheduled (quota used up, core
taken by another process) stalls all of them, and a smaller team finishes sooner
(`python -m benchmarks.contention` measures it; docs/performance.md has numbers).

The rule (`choose_threads`), first match wins:

1. an explicit count (a `--threads N` option);
2. a `torch.set_num_threads` made before, in this process, by the user: detected as a torch thread count
   that differs from torch's default (`torch_default_threads`: MKL_NUM_THREADS / OMP_NUM_THREADS, else the
   physical cores it may use) and from the last count chosen here. A user call that sets exactly
   torch's default cannot be told from no call; it is then treated as no call;
3. `OMP_NUM_THREADS` (or `MKL_NUM_THREADS`, which torch prefers when both are set) in the environment;
4. automatic: the smallest of the CPUs in the affinity mask (`os.sched_getaffinity`), the cgroup v2/v1 CPU
   quota rounded down (at least 1), torch's default (physical cores: torch never starts more, and SMT
   siblings share one core's arithmetic units), and the CPUs that other processes left idle during a
   short sample of /proc/stat at start (`IDLE_SAMPLE_SECONDS`; rounded to the nearest whole core, at
   least 1). The load sample is a snapshot: a machine that gets busy (or idle) later keeps the count.
   Under torchrun / accelerate (`LOCAL_WORLD_SIZE` > 1) the processes of one machine share the count.

This module imports only the standard library (the `trm` command line must stay light); torch is
imported only by the functions that read or set its thread count. It is copied beside saved models
with the `grid-reasoning` pipeline, which uses it too.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# /proc/stat sample at start: long enough for a few scheduler ticks (10 ms each at HZ=100), short
# enough not to delay a command noticeably.
IDLE_SAMPLE_SECONDS = 0.2
# Environment variables torch reads for its default thread count; the later one wins when both are set.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# `--threads N` help text of the `trm` commands.
THREADS_HELP = ("torch CPU threads (default: OMP_NUM_THREADS if set, else the CPUs this process may use (affinity, "
                "cgroup quota) that other processes leave idle at start; the choice is printed as '[threads] N (why)')")
# cgroup v1 mounts the cpu controller under one of these names (alone or joined with cpuacct).
CGROUP_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


@dataclass(frozen=True)
class ThreadChoice:
    """A torch thread count and why (`source`: option, torch, environment or automatic)."""

    threads: int
    reason: str
    source: str = "automatic"

    def record(self) -> dict[str, Any]:
        """The form kept in results files: `{"count": N, "reason": "..."}`."""
        return {"count": self.threads, "reason": self.reason}

    def line(self) -> str:
        """The one line the commands print, e.g. `[threads] 1 (automatic: 2 CPUs, 1.0 busy with others)`."""
        return f"[threads] {self.threads} ({self.reason})"


# The last choice `apply_thread_choice` made in this process: a later call keeps it (and prints nothing)
# unless given an explicit count, and a torch thread count equal to it is not taken for the user's.
_applied: ThreadChoice | None = None
# torch.get_num_threads() right after this module imported torch first (torch's own default), else None.
_observed_default: int | None = None


# ----------------------------------------------------------------------------- what the process may use


def affinity_cpus() -> set[int] | None:
    """The CPUs the scheduler lets this process run on (`taskset`, cpusets, container `--cpuset-cpus`)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


def _read_cpu_max(path: Path) -> float | None:
    """cgroup v2 `cpu.max`: "QUOTA PERIOD" in microseconds -> QUOTA / PERIOD CPUs; "max ..." -> no limit."""
    try:
        fields = path.read_text().split()
    except (OSError, UnicodeDecodeError):
        return None
    if not fields or fields[0] == "max":
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) > 1 else 100_000  # the kernel's default period
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read_cfs(folder: Path) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` -> CPUs; a quota of -1 means no limit."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text().strip())
        period = int((folder / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _own_cgroup_paths(proc_cgroup: Path) -> tuple[list[str], list[str]]:
    """(v2 path, v1 cpu-controller paths) of this process from /proc/self/cgroup, relative to the mounts."""
    v2: list[str] = []
    v1: list[str] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return v2, v1
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        relative = path.strip().lstrip("/")
        if ".." in relative.split("/"):  # outside this cgroup namespace: not visible under the mount
            continue
        if controllers == "":
            v2.append(relative)
        elif "cpu" in controllers.split(","):
            v1.append(relative)
    return v2, v1


def _with_ancestors(base: Path, relative: str) -> list[Path]:
    """`base/relative` and each folder above it up to `base`: a parent cgroup's limit applies as well."""
    folders = [base]
    parts = [part for part in relative.split("/") if part]
    for end in range(1, len(parts) + 1):
        folders.append(base.joinpath(*parts[:end]))
    return folders


def cpu_quota(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (1.5 = 150 ms per 100 ms period), None when unlimited.

    Docker `--cpus`, Kubernetes CPU limits and systemd `CPUQuota=` set it: the process sees every core
    but is throttled once its threads together have used the quota in a period. Reads cgroup v2
    `cpu.max` and cgroup v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us` in `cgroup_root` itself, in the
    v1 cpu controller's folder, and along this process's own cgroup path (from `proc_cgroup`) with its
    ancestors; the smallest limit found is the one that binds. Missing or unreadable files mean no limit.
    """
    cgroup_root = Path(cgroup_root)
    v2_paths, v1_paths = _own_cgroup_paths(Path(proc_cgroup))
    limits: list[float] = []
    v2_folders = [cgroup_root] + [f for path in v2_paths for f in _with_ancestors(cgroup_root, path)]
    for folder in dict.fromkeys(v2_folders):
        limit = _read_cpu_max(folder / "cpu.max")
        if limit is not None:
            limits.append(limit)
    v1_folders = [cgroup_root]
    for name in CGROUP_V1_CPU_DIRS:
        mount = cgroup_root / name
        v1_folders.append(mount)
        v1_folders.extend(f for path in v1_paths for f in _with_ancestors(mount, path))
    for folder in dict.fromkeys(v1_folders):
        limit = _read_cfs(folder)
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def quota_threads(quota: float) -> int:
    """Whole threads for a fractional quota: rounded down, at least 1 (1.5 CPUs -> 1, 0.5 -> 1, 2.0 -> 2).

    Down, because a team of 2 on 1.5 CPUs is throttled in every period and waits at each barrier for
    the throttled thread; 1 thread never exceeds the quota."""
    return max(1, math.floor(quota + 1e-9))


def available_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """CPUs this process may use: the smaller of its affinity mask and its cgroup quota (rounded down, >= 1).

    Unlike `os.cpu_count()`, which counts the machine's CPUs whatever the process is allowed."""
    cpus = affinity_cpus()
    count = len(cpus) if cpus else (os.cpu_count() or 1)
    quota = cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        count = min(count, quota_threads(quota))
    return max(1, count)


def physical_cores(cpus: set[int] | None = None) -> int:
    """Physical cores (SMT siblings counted once) among `cpus` (default: the affinity mask), as torch counts
    them for its default (its count follows the affinity mask: `taskset -c 0` gives 1).

    From /sys/devices/system/cpu/cpuN/topology (package, core id); the CPU count where that is missing."""
    if cpus is None:
        cpus = affinity_cpus()
    cores: set[tuple[str, str]] = set()
    for folder in Path("/sys/devices/system/cpu").glob("cpu[0-9]*"):
        if cpus is not None and int(folder.name[3:]) not in cpus:
            continue
        try:
            package = (folder / "topology" / "physical_package_id").read_text().strip()
            core = (folder / "topology" / "core_id").read_text().strip()
        except OSError:
            continue
        cores.add((package, core))
    return len(cores) or (len(cpus) if cpus else os.cpu_count() or 1)


# ----------------------------------------------------------------------------- load


def _cpu_jiffies(cpus: set[int] | None) -> tuple[int, int] | None:
    """(busy, total) jiffies since boot over `cpus` (all CPUs when None), from the per-CPU lines of /proc/stat."""
    busy = total = 0
    found = False
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                fields = line.split()
                if cpus is not None and int(fields[0][3:]) not in cpus:
                    continue
                values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
                total += sum(values)
                busy += sum(values) - values[3] - values[4]
                found = True
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if found else None


def _own_jiffies() -> int | None:
    """utime + stime of this process (all its threads) in jiffies."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def others_busy_cpus(cpus: set[int] | None = None, seconds: float = IDLE_SAMPLE_SECONDS) -> float | None:
    """CPUs (of `cpus`) that other processes kept busy during a `seconds` sample; None without /proc.

    This process's own CPU time in the sample is subtracted, so its own threads do not count."""
    first, own_first = _cpu_jiffies(cpus), _own_jiffies()
    if first is None:
        return None
    time.sleep(seconds)
    second, own_second = _cpu_jiffies(cpus), _own_jiffies()
    if second is None:
        return None
    count = len(cpus) if cpus else (os.cpu_count() or 1)
    elapsed = (second[1] - first[1]) / count  # jiffies per CPU in the sample
    if elapsed <= 0:
        return None
    busy = second[0] - first[0]
    if own_first is not None and own_second is not None:
        busy -= own_second - own_first
    return max(0.0, busy / elapsed)


def load_average() -> float | None:
    """The 1-minute load average (runnable tasks, ours included), for the printed reason only."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ----------------------------------------------------------------------------- the choice


def env_threads() -> tuple[str, int] | None:
    """(variable, count) of the thread-count variable torch follows, if one is set to a positive integer.

    torch reads OMP_NUM_THREADS, then MKL_NUM_THREADS over it; a list such as "4,2" (nested levels)
    counts by its first entry. Values torch would ignore (0, text) are ignored here too."""
    found = None
    for name in THREAD_ENV_VARS:
        value = os.environ.get(name, "").strip().split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            found = (name, int(value))
    return found


def torch_default_threads() -> int:
    """The thread count torch starts with in this process: as seen when this module imported torch first,
    else estimated as torch computes it (the variable it follows, else the physical cores it may use)."""
    if _observed_default is not None:
        return _observed_default
    env = env_threads()
    return env[1] if env else physical_cores()


def _torch_threads() -> tuple[int, bool]:
    """(torch.get_num_threads(), whether that is certainly torch's untouched default).

    Importing torch here for the first time means nobody can have changed it yet: the count is then
    remembered as torch's default (`torch_default_threads`)."""
    global _observed_default
    fresh = "torch" not in sys.modules
    import torch

    current = torch.get_num_threads()
    if fresh:
        _observed_default = current
    return current, fresh


def _user_torch_threads(current: int, fresh: bool) -> int | None:
    """The count a user's earlier `torch.set_num_threads` left, or None when torch is at its default."""
    if fresh or current == torch_default_threads():
        return None
    if _applied is not None and current == _applied.threads:  # ours, from an earlier call
        return None
    return current


def local_processes() -> int:
    """Processes of this launch on this machine (`LOCAL_WORLD_SIZE`, set by torchrun and accelerate), else 1."""
    value = os.environ.get("LOCAL_WORLD_SIZE", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 1


def automatic_threads(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP,
                      sample_seconds: float = IDLE_SAMPLE_SECONDS) -> ThreadChoice:
    """Rule 4 of the module docstring: affinity, quota, physical cores and idle CPUs, the smallest wins.

    Under a multi-process launch (`LOCAL_WORLD_SIZE` > 1) the processes of this machine share that count
    and no idle sample is taken: the other ranks, starting at the same moment, would count as load."""
    cpus = affinity_cpus()
    machine = os.cpu_count() or 1
    limits: dict[str, int] = {"affinity": len(cpus) if cpus else machine}
    quota = cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        limits["quota"] = quota_threads(quota)
    limits["physical cores"] = physical_cores(cpus)
    threads = max(1, min(limits.values()))
    notes = [f"{limits['affinity']} of {machine} CPUs usable" if limits["affinity"] < machine
             else f"{machine} CPUs"]
    if quota is not None:
        notes.append(f"cgroup quota {quota:g} CPUs")
    if limits["physical cores"] < limits["affinity"]:
        notes.append(f"{limits['physical cores']} physical cores")
    ranks = local_processes()
    if ranks > 1:
        threads = max(1, threads // ranks)
        notes.append(f"shared by {ranks} processes of this launch")
    elif threads > 1 and sample_seconds > 0:
        busy = others_busy_cpus(cpus, sample_seconds)
        if busy is not None:
            idle = limits["affinity"] - busy
            threads = min(threads, max(1, math.floor(idle + 0.5)))  # nearest whole core, at least 1
            notes.append(f"{busy:.1f} busy with other processes")
    load = load_average()
    if load is not None:
        notes.append(f"load {load:.2f}")
    return ThreadChoice(threads, "automatic: " + ", ".join(notes), "automatic")


def choose_threads(explicit: int | None = None, cgroup_root: Path = CGROUP_ROOT,
                   proc_cgroup: Path = PROC_SELF_CGROUP, sample_seconds: float = IDLE_SAMPLE_SECONDS,
                   reason: str = "--threads option") -> ThreadChoice:
    """The thread count by the rule of the module docstring (explicit, user's torch setting, environment,
    automatic); sets nothing. `reason` describes an explicit count. Raises ValueError for one below 1."""
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < 1:
            raise ValueError(f"--threads must be positive, got {explicit}")
        return ThreadChoice(explicit, reason, "option")
    current, fresh = _torch_threads()
    user = _user_torch_threads(current, fresh)
    if user is not None:
        return ThreadChoice(user, f"set earlier with torch.set_num_threads (torch's default here: "
                                  f"{torch_default_threads()})", "torch")
    env = env_threads()
    if env is not None:
        return ThreadChoice(env[1], f"{env[0]}={env[1]}", "environment")
    return automatic_threads(cgroup_root, proc_cgroup, sample_seconds)


def apply_thread_choice(explicit: int | None = None, announce: bool = True, stream: TextIO | None = None,
                        **choose_kwargs: Any) -> ThreadChoice:
    """Choose (`choose_threads`), set `torch.set_num_threads`, print the `[threads]` line once per process.

    The line goes to `stream` (default stdout; `trm solve` passes stderr, its stdout being the answers).
    A second call without an explicit count keeps the first call's choice (no new load sample, nothing
    printed) as long as torch's count is still that choice, so a command and the pipeline it uses agree."""
    global _applied
    if explicit is None and _applied is not None and "torch" in sys.modules:
        import torch

        if torch.get_num_threads() == _applied.threads:
            return _applied
    choice = choose_threads(explicit, **choose_kwargs)  # imports torch after noting whether it was loaded
    import torch

    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    if announce and choice != _applied:
        print(choice.line(), file=stream or sys.stdout, flush=True)
    _applied = choice
    return choice


def current_threads() -> ThreadChoice:
    """The thread count torch has now and where it came from, for records; changes nothing.

    The last `apply_thread_choice` when torch still has its count; else as `choose_threads` would tell the
    sources apart (user's torch.set_num_threads, environment, torch's default)."""
    current, fresh = _torch_threads()
    if _applied is not None and current == _applied.threads:
        return _applied
    user = _user_torch_threads(current, fresh)
    if user is not None:
        return ThreadChoice(user, "set with torch.set_num_threads", "torch")
    env = env_threads()
    if env is not None and env[1] == current:
        return ThreadChoice(current, f"{env[0]}={env[1]}", "environment")
    return ThreadChoice(current, "torch's default", "torch")


def reset_for_tests() -> None:
    """Forget the last applied choice (tests start each case from a clean process state)."""
    global _applied, _observed_default
    _applied = _observed_default = None


__all__ = ["THREADS_HELP", "ThreadChoice", "apply_thread_choice", "automatic_threads", "available_cpus", "choose_threads",
           "cpu_quota", "current_threads", "env_threads", "local_processes", "others_busy_cpus", "physical_cores",
           "quota_threads", "torch_default_threads"]
