"""A batch that does not fit: `trm train` under an address-space limit (RLIMIT_AS) fails with advice on
the per-device batch and gradient accumulation, and leaves the last checkpoint as it was."""

from __future__ import annotations

import hashlib
import json
import resource
from pathlib import Path

import pytest
import torch
import warm_trm

from fault_runs import build_dataset, process_env, run, train_command, write_recipe
from modeling_trm.training.recipe_run import split_global_batch
from modeling_trm.training.trainer import last_complete_checkpoint

pytestmark = pytest.mark.faults
HEADROOM = 1 << 30  # 1 GiB above what importing the training stack maps; a tiny run needs ~0.2 GiB of it
TOO_BIG_BATCH = 1 << 21  # its first activation alone (2M x 16 cells x 16 hidden x 4 bytes) is 2 GiB


def address_space_limit() -> int:
    """Virtual memory of the warm interpreter the runs are forked from (it imported the training stack; the
    figure differs between machines), plus HEADROOM."""
    server = warm_trm.server_for(process_env())
    with open(f"/proc/{server.wait_ready()}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmPeak")) * 1024 + HEADROOM


def file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmPeak from Linux /proc")
def test_a_batch_beyond_the_memory_limit_fails_with_advice_and_keeps_the_checkpoint(tmp_path) -> None:
    recipe = write_recipe(tmp_path / "recipe.json")
    # 2,000 training puzzles instead of 40: the too-big batch draws 8 x 2M rows ahead, one seeded permutation per
    # epoch, so a 40-row set meant 419k epochs (35 s of drawing before the allocation that fails)
    settings = json.loads(recipe.read_text())
    settings["data"]["args"]["num_train"] = 2000
    recipe.write_text(json.dumps(settings))
    dataset = build_dataset(recipe, tmp_path / "dataset")
    limit = address_space_limit()

    limited = {"RLIMIT_AS": (limit, resource.getrlimit(resource.RLIMIT_AS)[1])}
    out = tmp_path / "run"
    fits = run(train_command(recipe, out, "--max-steps", "4", dataset=dataset), rlimits=limited, warm=True)
    assert fits.returncode == 0, fits.stderr[-3000:]  # the recipe's batch fits under the same limit
    checkpoint = out / "checkpoint-4"
    before = file_digests(checkpoint)

    too_big = run(train_command(recipe, out, "--max-steps", "8", "--global-batch-size", str(TOO_BIG_BATCH),
                                dataset=dataset), rlimits=limited, warm=True)
    assert too_big.returncode == 2, too_big.stderr[-3000:]
    message = too_big.stderr.strip().splitlines()[-1]
    assert message.startswith("trm train: error: out of memory with a per-device batch of 2097152 samples")
    assert "--per-device-train-batch-size" in message and "--gradient-accumulation-steps" in message
    assert str(checkpoint) in message
    assert file_digests(checkpoint) == before
    assert last_complete_checkpoint(str(out)) == str(checkpoint)


def test_per_device_batch_sets_the_accumulation_and_keeps_the_global_batch() -> None:
    # a recipe's per_device_train_batch_size used to reach TrainingArguments twice (TypeError)
    training = {"per_device_train_batch_size": 4}
    assert split_global_batch(training, 32, world_size=2) == 4
    assert training == {"gradient_accumulation_steps": 4}
    assert split_global_batch({"gradient_accumulation_steps": 2}, 32, world_size=2) == 8
    with pytest.raises(ValueError, match="not divisible by 2 processes x per_device_train_batch_size 5"):
        split_global_batch({"per_device_train_batch_size": 5}, 32, world_size=2)
    with pytest.raises(ValueError, match="is not the global_batch_size 32"):
        split_global_batch({"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}, 32, world_size=2)


def test_resume_with_another_batch_layout_is_refused(tmp_path) -> None:
    # the carry holds one puzzle per slot; resuming with other slots used to continue silently on the old ones
    from test_trainer import make_trainer

    first = make_trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    first.train()
    other = make_trainer(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, per_device_train_batch_size=2)
    with pytest.raises(ValueError, match=r"trained on 1 process\(es\) x 1 accumulation step\(s\) x \[4\] samples; "
                                         r"this run has 1 x 1 x \[2\]"):
        other.train(resume_from_checkpoint=True)


def test_gather_rows_equals_datasets_indexing_also_on_views() -> None:
    # the stream gathers a batch in one Arrow take; `datasets`' row-by-row indexing aborted the process
    # (std::bad_alloc, no message) when a batch did not fit under the memory limit above
    from modeling_trm.training.sample_stream import MODEL_COLUMNS, gather_rows
    from test_trainer import random_dataset

    dataset = random_dataset(rows=30)
    for view in (dataset, dataset.select(range(29, 4, -2)), dataset.shuffle(seed=3)):
        indices = [3, 0, 7, 3, 11]
        expected = view.with_format("torch")[indices]
        gathered = gather_rows(view, indices)
        for name in MODEL_COLUMNS:
            assert gathered[name].dtype == torch.int64
            assert torch.equal(gathered[name], expected[name].long()), name
