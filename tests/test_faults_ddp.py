"""The README's multi-process commands through the CLI (2 CPU processes, gloo), data built from the recipe.

`torchrun --nproc_per_node 2 $(which trm) train --recipe R --output-dir OUT` used to fail: both ranks
built the dataset into OUT/dataset and rank 1 died with FileExistsError. Now the main process builds
while the others wait; a rank killed mid-run fails the whole job, and `--resume` continues exactly.
The reference run and the accelerate launches are fresh processes; the killed, resumed and no-`use_cpu` runs
keep torchrun but fork each rank from the warm server (`warm=True`, see warm_trm) and must equal the reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from fault_runs import MAX_STEPS, assert_same_checkpoint, free_port, run, torchrun_command, train_command, \
    write_recipe
from modeling_trm.data.metadata import load_trm_dataset
from modeling_trm.training.trainer import last_complete_checkpoint

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def torchrun_reference(tmp_path_factory) -> dict[str, Path]:
    """`torchrun --nproc_per_node 2 $(which trm) train --recipe R --output-dir OUT`: no --dataset."""
    root = tmp_path_factory.mktemp("torchrun")
    recipe = write_recipe(root / "recipe.json")
    result = run(torchrun_command(2, *train_command(recipe, root / "run")))
    assert result.returncode == 0, result.stderr[-4000:]
    return {"recipe": recipe, "run": root / "run"}


def test_torchrun_builds_the_recipe_dataset_once_and_both_ranks_train(torchrun_reference) -> None:
    out = torchrun_reference["run"]
    dataset, metadata = load_trm_dataset(str(out / "dataset"))
    assert len(dataset["train"]) == 40 and metadata.seq_len == 16
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    checkpoint = out / f"checkpoint-{MAX_STEPS}"
    assert {"trm_carry_rank0.pt", "trm_carry_rank1.pt", "rng_state_0.pth", "rng_state_1.pth"} <= \
        {p.name for p in checkpoint.iterdir()}


def test_torchrun_rank_killed_fails_the_job_and_resume_continues_exactly(torchrun_reference, tmp_path) -> None:
    recipe, out = torchrun_reference["recipe"], tmp_path / "run"
    killed = run(torchrun_command(2, *train_command(recipe, out)), fault="kill:step:6:1", warm=True)
    assert killed.returncode != 0
    report = killed.stdout + killed.stderr
    assert "killing rank 1 at step of step 6" in report and "Signal 9 (SIGKILL)" in report, report[-4000:]
    assert last_complete_checkpoint(str(out)).endswith("checkpoint-4")
    # rank 1 dies inside the next checkpoint, after rank 0 wrote its part: the folder stays partial
    killed = run(torchrun_command(2, *train_command(recipe, out, "--resume")), fault="kill:save-carry:8:1", warm=True)
    assert killed.returncode != 0 and "Signal 9 (SIGKILL)" in killed.stdout + killed.stderr
    assert (out / "checkpoint-8").is_dir() and last_complete_checkpoint(str(out)).endswith("checkpoint-4")
    resumed = run(torchrun_command(2, *train_command(recipe, out, "--resume")), warm=True)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert_same_checkpoint(torchrun_reference["run"] / f"checkpoint-{MAX_STEPS}", out / f"checkpoint-{MAX_STEPS}")


def test_accelerate_launch_builds_once_and_matches_torchrun(torchrun_reference, tmp_path) -> None:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()),
               *train_command(torchrun_reference["recipe"], tmp_path / "run")]
    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert_same_checkpoint(torchrun_reference["run"] / f"checkpoint-{MAX_STEPS}",
                           tmp_path / "run" / f"checkpoint-{MAX_STEPS}")


def write_recipe_without_use_cpu(path: Path) -> Path:
    """The tiny recipe as a user would write it for any machine: no `use_cpu`."""
    recipe = json.loads(write_recipe(path).read_text())
    del recipe["training"]["use_cpu"]
    path.write_text(json.dumps(recipe))
    return path


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine (no accelerator)")
def test_torchrun_without_use_cpu_joins_the_process_group_on_a_cpu_only_machine(torchrun_reference, tmp_path) -> None:
    """Regression: without --use-cpu no process group formed on a CPU-only machine; rank 1 raced rank 0 to
    build OUT/dataset and died with FileExistsError. Now the same run as with use_cpu, to the byte."""
    recipe = write_recipe_without_use_cpu(tmp_path / "recipe.json")
    result = run(torchrun_command(2, *train_command(recipe, tmp_path / "run")), warm=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert_same_checkpoint(torchrun_reference["run"] / f"checkpoint-{MAX_STEPS}",
                           tmp_path / "run" / f"checkpoint-{MAX_STEPS}")


def test_accelerate_launch_with_no_flags_as_the_readme_writes_it(tmp_path) -> None:
    """`accelerate launch $(which trm) train ...` with no accelerate config and no flags: on a CPU-only machine
    accelerate starts one process (multi-process CPU needs --multi_gpu or mpirun); it trains exactly as `trm train`."""
    recipe = write_recipe_without_use_cpu(tmp_path / "recipe.json")
    env_free = {"HF_HOME": str(tmp_path / "hf")}  # no accelerate config file from the user's home
    launched = run([sys.executable, "-m", "accelerate.commands.launch", *train_command(recipe, tmp_path / "launched")],
                   env_extra=env_free)
    assert launched.returncode == 0, launched.stderr[-4000:]
    plain = run(train_command(recipe, tmp_path / "plain"), warm=True)
    assert plain.returncode == 0, plain.stderr[-4000:]
    assert_same_checkpoint(tmp_path / "plain" / f"checkpoint-{MAX_STEPS}",
                           tmp_path / "launched" / f"checkpoint-{MAX_STEPS}")
