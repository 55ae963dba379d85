"""Shared test setup: never touch the network, keep the 2-core machine responsive."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker more than the CPUs this process may use. Every worker runs torch on one thread, and
    many tests wait on subprocesses, servers or a browser, so one extra worker keeps both cores busy (measured on
    2 cores: 2 workers left a quarter of the CPU time idle)."""
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1
