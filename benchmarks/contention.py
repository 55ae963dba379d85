"""The demo's training step on an idle and on a shared machine: torch's default threads vs the automatic choice.

    python -m benchmarks.contention [--quick] [--json PATH] [--busy 0 1 2] [--busy-kind python|numpy]

For each level of contention (0, 1 and 2 busy processes by default: pure-Python `while True` loops, or
single-threaded numpy matmuls, started as subprocesses on the same CPUs) it times the training step of
the `demo` recipe (its model config and global batch, bf16 autocast where the CPU has bf16 units as the
trainer's default, else fp32; `step_time.time_config_steps`: forward of all cycles, backward of the
last, optimizer) twice in one process: with torch's default thread count (`threads.torch_default_threads`:
the physical cores it may use, or OMP_NUM_THREADS) and with the count `trm` would choose automatically
at that moment (`threads.automatic_threads`: affinity, cgroup quota, idle CPUs from a /proc/stat
sample). The two blocks alternate in order from level to level, and a count equal to the default is
timed once. Prints a Markdown table; `--json PATH` writes the rows and the machine.

A benchmark, not a test: the numbers depend on the machine and on anything else running there, which
each row records (`others_busy_cpus`: CPUs other processes, the busy loops included, kept busy when the
level started; the load average). To compare OpenMP wait policies run it twice, once with
`OMP_WAIT_POLICY=PASSIVE` in the environment (recorded as `omp_wait_policy`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from modeling_trm.data.atomic import write_text_atomically
from modeling_trm.dtypes import native_dtype
from modeling_trm.recipes_io import load_recipe
from modeling_trm.threads import (
    automatic_threads,
    others_busy_cpus,
    torch_default_threads,
)

from .measure import load_average, machine_description
from .step_time import recipe_config, time_config_steps

RECIPE = "demo"
BUSY_LOOPS = {
    "python": "while True:\n    pass\n",
    "numpy": "import numpy as np\na = np.random.rand(256, 256)\nwhile True:\n    a @ a\n",
}
# single-threaded numpy: the busy process should take one CPU, not start a BLAS team of its own
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SETTLE_SECONDS = 0.5  # let the busy processes start before the automatic choice samples the load
# --quick: no new step of a count after this many seconds (one step of the demo takes 0.1-0.3 s on 2 idle
# cores, but over 10 s with torch's 2 threads beside a busy process on this machine)
QUICK_SECONDS_PER_COUNT = 6.0


def start_busy(count: int, kind: str) -> list[subprocess.Popen]:
    """`count` busy-loop subprocesses (each one CPU's worth of work), on this process's CPUs."""
    env = {**os.environ, **SINGLE_THREAD_ENV}
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOPS[kind]], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]


def stop_busy(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait()


def time_steps(config: Any, batch_size: int, dtype: str, threads: int, repeats: int, warmup: int,
               max_seconds: float | None = None) -> dict[str, Any]:
    """Median and all wall seconds of up to `repeats` training steps on `threads` torch threads (fewer when
    `max_seconds` runs out; at least one), and the process CPU seconds per step, warm-up included."""
    torch.set_num_threads(threads)
    cpu = time.process_time()
    times = time_config_steps(config, batch_size, dtype, repeats, warmup, max_seconds=max_seconds)
    return {"threads": threads, "seconds_median": round(statistics.median(times), 4),
            "seconds_all": [round(t, 4) for t in times],
            "cpu_seconds_per_step": round((time.process_time() - cpu) / (len(times) + warmup), 4)}


def run_level(busy: int, kind: str, config: Any, batch_size: int, dtype: str, default_threads: int, repeats: int,
              warmup: int, default_first: bool, max_seconds: float | None = None, log=print) -> dict[str, Any]:
    """One contention level: start the busy loops, choose, time default and automatic, stop the loops."""
    processes = start_busy(busy, kind)
    try:
        time.sleep(SETTLE_SECONDS if busy else 0.0)
        others = others_busy_cpus(seconds=0.5)  # everything else on the machine, the busy loops included
        choice = automatic_threads()
        load = load_average()
        order = ("default", "automatic") if default_first else ("automatic", "default")
        counts = {"default": default_threads, "automatic": choice.threads}
        timed: dict[str, dict[str, Any]] = {}
        for name in order:
            if counts[name] in [t["threads"] for t in timed.values()]:  # same count: time it once
                timed[name] = next(t for t in timed.values() if t["threads"] == counts[name])
                continue
            timed[name] = time_steps(config, batch_size, dtype, counts[name], repeats, warmup, max_seconds)
    finally:
        stop_busy(processes)
    default, auto = timed["default"], timed["automatic"]
    row = {"busy_processes": busy, "busy_kind": kind, "others_busy_cpus": None if others is None else round(others, 2),
           "load_avg": load, "default": default, "automatic": auto, "automatic_reason": choice.reason,
           "speedup_automatic_vs_default": round(default["seconds_median"] / auto["seconds_median"], 3)}
    log(f"busy {busy}: default {default['threads']} threads {default['seconds_median']:.3f} s/step, automatic "
        f"{auto['threads']} threads {auto['seconds_median']:.3f} s/step ({choice.reason})")
    return row


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [("| busy processes | others busy (CPUs) | default threads | s/step | automatic threads | s/step | "
              "automatic vs default | why (automatic) |"),
             "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        others = "" if r["others_busy_cpus"] is None else f"{r['others_busy_cpus']:.1f}"
        lines.append(f"| {r['busy_processes']} ({r['busy_kind']}) | {others} | {r['default']['threads']} | "
                     f"{r['default']['seconds_median']:.3f} | {r['automatic']['threads']} | "
                     f"{r['automatic']['seconds_median']:.3f} | {r['speedup_automatic_vs_default']:.2f}x | "
                     f"{r['automatic_reason']} |")
    return "\n".join(lines)


def run(busy_levels: list[int], kind: str, repeats: int, warmup: int, max_seconds: float | None = None,
        log=print) -> dict[str, Any]:
    started = time.perf_counter()
    recipe = load_recipe(RECIPE)
    config = recipe_config(RECIPE)
    batch_size = int(recipe["training"]["global_batch_size"])
    dtype = native_dtype("cpu")
    default_threads = torch_default_threads()
    machine = machine_description()
    log(f"machine: {machine['cpu']}, {machine['logical_cores']} CPUs, torch default {default_threads} threads, "
        f"load {load_average()}; recipe {RECIPE!r}, batch {batch_size}, {dtype}, {warmup} warm-up + {repeats} "
        f"timed steps per count" + (f" (fewer after {max_seconds:g} s)" if max_seconds else "")
        + f"; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    rows = [run_level(busy, kind, config, batch_size, dtype, default_threads, repeats, warmup,
                      default_first=index % 2 == 0, max_seconds=max_seconds, log=log)
            for index, busy in enumerate(busy_levels)]
    torch.set_num_threads(default_threads)
    seconds = time.perf_counter() - started
    return {"recipe": RECIPE, "batch_size": batch_size, "dtype": dtype, "repeats": repeats, "warmup": warmup,
            "max_seconds_per_count": max_seconds,
            "torch_default_threads": default_threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "machine": machine, "rows": rows, "seconds": round(seconds, 1),
            "command": " ".join(["python -m benchmarks.contention"] + sys.argv[1:])}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.contention", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"at most 2 steps per count, no warm-up (the first step of a fresh model is timed too), "
                             f"and no new step after {QUICK_SECONDS_PER_COUNT:g} s: under 2 minutes even where a "
                             "count is 10x slower than idle (default: 8 timed steps after 2 warm-up)")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="busy processes per level (default 0 1 2)")
    parser.add_argument("--busy-kind", choices=sorted(BUSY_LOOPS), default="python")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per count (overrides --quick's)")
    parser.add_argument("--json", default=None, help="write the rows here (atomically)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if any(level < 0 for level in args.busy):
        raise SystemExit("--busy levels must be >= 0")
    repeats = args.repeats or (2 if args.quick else 8)
    result = run(args.busy, args.busy_kind, repeats=repeats, warmup=0 if args.quick else 2,
                 max_seconds=QUICK_SECONDS_PER_COUNT if args.quick else None)
    print(markdown_table(result["rows"]))
    print(f"total {result['seconds']:.0f} s")
    if args.json:
        target = Path(args.json)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(target, json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
