"""Real `trm train` processes for the fault tests: a tiny recipe, launchers, and exact checkpoint comparison.

Every run is a separate OS process, so a kill, a rank failure or a memory limit hits a real process.
Launch paths start the way the README starts them (`trm train`, `torchrun ... $(which trm) train`,
`accelerate launch $(which trm) train`), in a fresh interpreter. Runs started only to be killed and resumed
pass `warm=True`: they are forked from an interpreter that has imported the stack once (`warm_trm`), which
saves ~9 s of imports each; test_faults_seed checks that such a run equals a fresh one bit for bit. A
torchrun command with `warm=True` keeps the launcher and forks each rank (`with_warm_ranks`).
Checkpoints are compared tensor by tensor with `torch.equal` (fp32 on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import warm_trm
from safetensors.torch import load_file
from warm_trm_client import SOCKET_ENV

from modeling_trm.faults import FAULT_ENV

# hidden 16, 4x4 Sudoku, 12 steps, a checkpoint every 4: one run is a few seconds of CPU.
TINY_RECIPE: dict[str, Any] = {
    "name": "tiny-faults",
    "model": {"preset": "sudoku-mlp", "overrides": {
        "hidden_size": 16, "H_cycles": 2, "L_cycles": 1, "puzzle_emb_len": 0, "expansion": 2.0,
        "halt_max_steps": 3, "halt_exploration_prob": 0.5}},
    "data": {"builder": "generated-sudoku", "args": {"size": 4, "num_train": 40, "num_test": 8, "seed": 0}},
    "training": {"global_batch_size": 8, "max_steps": 12, "learning_rate": 0.001, "warmup_steps": 6,
                 "lr_scheduler_type": "linear", "ema_decay": 0.9, "logging_steps": 4, "save_strategy": "steps",
                 "save_steps": 4, "disable_tqdm": True, "auto_bf16": False, "use_cpu": True, "seed": 7,
                 "per_device_eval_batch_size": 8},
}
SAVE_STEPS, MAX_STEPS = 4, 12
TIMEOUT_S = 300  # a hung process fails the test instead of the whole CI job
WARM_CLIENT = Path(__file__).with_name("warm_trm_client.py")


def write_recipe(path: Path, **training: Any) -> Path:
    recipe = json.loads(json.dumps(TINY_RECIPE))
    recipe["training"].update(training)
    path.write_text(json.dumps(recipe))
    return path


def build_dataset(recipe: Path, out: Path) -> Path:
    """The recipe's dataset, built once in this process (the runs then read it with --dataset)."""
    from modeling_trm.data.build import build_from_recipe

    build_from_recipe(json.loads(recipe.read_text())["data"], out, progress=False)
    return out


def trm_script() -> str:
    """The installed `trm` console script (what `$(which trm)` gives in the README's commands)."""
    script = shutil.which("trm", path=os.path.dirname(sys.executable)) or shutil.which("trm")
    assert script, "the `trm` console script is not installed (pip install -e .)"
    return script


def process_env(fault: str | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != FAULT_ENV}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1",
               TMPDIR=str(warm_trm.scratch_folder("tmp")))  # torchrun leaves a torchelastic_* folder per run
    if fault:
        env[FAULT_ENV] = fault
    return env


def train_command(recipe: Path, out: Path, *extra: str, dataset: Path | None = None) -> list[str]:
    command = [trm_script(), "train", "--recipe", str(recipe), "--output-dir", str(out)]
    if dataset is not None:
        command += ["--dataset", str(dataset)]
    return command + list(extra)


def torchrun_command(nproc: int, *train_args: str) -> list[str]:
    """`torchrun --nproc_per_node N $(which trm) train ...` (torchrun run as a module of this interpreter)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
            "127.0.0.1", "--master_port", str(free_port()), *train_args]


def warm_argv(command: list[str]) -> list[str] | None:
    """`["trm", *arguments]` if `command` runs the `trm` console script, else None (another launcher)."""
    if command[:1] == [trm_script()]:
        return ["trm", *command[1:]]
    if command[:3] == [sys.executable, "-m", "modeling_trm.commands"]:
        return ["trm", *command[3:]]
    return None


def run(command: list[str], fault: str | None = None, env_extra: dict[str, str] | None = None,
        warm: bool = False, rlimits: dict[str, tuple[int, int]] | None = None) -> subprocess.CompletedProcess:
    """Run `command` to its end, capturing its output; `warm=True` forks a `trm` command from `warm_trm`."""
    env = {**process_env(fault), **(env_extra or {})}
    argv = warm_argv(command) if warm else None
    if argv is not None:
        return warm_trm.run(argv, env, TIMEOUT_S, rlimits=rlimits)
    if warm:
        command, env = with_warm_ranks(command, env)

    def limit() -> None:
        for name, limits in (rlimits or {}).items():
            resource.setrlimit(getattr(resource, name), limits)

    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
                          preexec_fn=limit if rlimits else None)


def with_warm_ranks(launch: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """`launch` (torchrun) starting `warm_trm_client.py PROGRAM` in place of its program (`$(which trm)` or a
    test's worker script): each rank it starts is forked from the warm server of `env` (see warm_trm)."""
    program = trm_script()
    entries = [index for index, part in enumerate(launch) if part == program or part.endswith(".py")]
    if not entries:
        raise ValueError(f"warm=True needs a `trm` command or a launcher of `trm` or a .py script, not {launch}")
    entry = entries[0]
    server = warm_trm.server_for(env)
    server.wait_ready()  # its socket is listening
    return ([*launch[:entry], str(WARM_CLIENT), *launch[entry:]],
            {**env, SOCKET_ENV: server.socket_path})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- exact comparison


def checkpoint_contents(folder: Path) -> dict[str, Any]:
    """Everything a checkpoint holds that decides how training continues: EMA and raw weights, optimizer,
    LR scheduler, the Trainer's RNG states, each rank's carry / data position / generator, trainer state."""
    contents: dict[str, Any] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".safetensors":
            contents[path.name] = load_file(str(path))
        elif path.suffix in (".pt", ".pth"):
            contents[path.name] = torch.load(path, weights_only=False)
        elif path.name == "trainer_state.json":
            contents[path.name] = json.loads(path.read_text())
    return contents


def assert_identical(left: Any, right: Any, where: str = "") -> None:
    """Exact equality through dicts, lists, dataclasses, tensors and arrays (bitwise for floats)."""
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor) and left.dtype == right.dtype and left.shape == right.shape, where
        assert torch.equal(left, right), f"{where}: tensors differ (max |diff| " \
            f"{(left.double() - right.double()).abs().max().item() if left.is_floating_point() else 'int'})"
    elif isinstance(left, np.ndarray):
        assert np.array_equal(left, right), where
    elif dataclasses.is_dataclass(left) and not isinstance(left, type):
        assert type(left) is type(right), where
        for field in dataclasses.fields(left):
            assert_identical(getattr(left, field.name), getattr(right, field.name), f"{where}.{field.name}")
    elif isinstance(left, Mapping):
        assert isinstance(right, Mapping) and set(left) == set(right), \
            f"{where}: keys differ: {sorted(map(str, set(left) ^ set(right)))}"
        for key in left:
            assert_identical(left[key], right[key], f"{where}[{key!r}]")
    elif isinstance(left, (list, tuple)):
        assert isinstance(right, (list, tuple)) and len(left) == len(right), f"{where}: lengths differ"
        for index, (a, b) in enumerate(zip(left, right)):
            assert_identical(a, b, f"{where}[{index}]")
    else:
        assert left == right, f"{where}: {left!r} != {right!r}"


def assert_same_checkpoint(left: Path, right: Path) -> None:
    assert_identical(checkpoint_contents(left), checkpoint_contents(right), where=left.name)


def start(command: list[str], log: Path, fault: str | None = None,
          warm: bool = False) -> subprocess.Popen | warm_trm.WarmProcess:
    """A process to kill from outside; its output goes to `log` (a pipe nobody reads could block it)."""
    argv = warm_argv(command) if warm else None
    if argv is not None:
        return warm_trm.start(argv, process_env(fault), log, log)
    handle = open(log, "w")
    try:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=process_env(fault))
    finally:
        handle.close()
