"""Shared test setup: never touch the network, keep the 2-core machine responsive."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process; xdist's controller, which runs no test, does not import torch (~4 s)."""
    is_xdist_controller = not hasattr(config, "workerinput") and config.getoption("numprocesses", None)
    if not is_xdist_controller:
        import torch

        torch.set_num_threads(1)


# Files whose tests take the longest (`--durations`): collected first, so that under xdist (`--dist loadfile`) a
# worker starts each of them at once instead of leaving one worker alone with a long file at the end.
# Order by each file's total (2026-12-05, AVX2 CPU, 2 workers, `-vv --durations=0`): faults_ddp ~92 s, pretrained
# ~49 s, app ~43 s, learning ~40 s, publish ~30 s, convert_hub ~27 s, faults_publish ~26 s, test_time_scaling ~24 s,
# ablation ~21 s, inference ~20 s, faults_seed ~19 s, trainer_ddp ~19 s, then the rest.
LONGEST_FIRST = ("test_faults_ddp.py", "test_pretrained.py", "test_app.py", "test_training_learns.py", "test_publish.py",
                 "test_convert_hub.py", "test_faults_publish.py", "test_test_time_scaling.py", "test_ablation.py",
                 "test_inference.py", "test_faults_seed.py", "test_trainer_ddp.py", "test_demo.py",
                 "test_hub_server.py", "test_cli_imports.py", "test_compile.py", "test_convert.py", "test_modeling.py",
                 "test_faults_kill.py", "test_pipeline.py", "test_eval_cli.py", "test_faults_memory.py",
                 "test_benchmarks.py")


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file is kept
