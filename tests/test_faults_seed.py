"""Same seed, same run: two `trm train` processes from one recipe end bit-identical (fp32, CPU).

The weight init used to be drawn before anything was seeded (the Trainer seeds in its constructor,
after `train_from_recipe` had built the model), so two runs differed from the first logged step.
The first run is a fresh `trm` process that builds the recipe's dataset; the second is forked from the warm
interpreter (`warm_trm`) and reads that dataset: whatever the two starts leave in unseeded RNG states
(importing, building data) differs, so only seeding makes them equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fault_runs import MAX_STEPS, assert_identical, assert_same_checkpoint, checkpoint_contents, run, \
    train_command, write_recipe

pytestmark = pytest.mark.faults


def test_two_seeded_runs_are_bit_identical(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "recipe.json")
    first = run(train_command(recipe, tmp_path / "a"))  # builds the recipe's dataset into a/dataset
    assert first.returncode == 0, first.stderr[-3000:]
    second = run(train_command(recipe, tmp_path / "b", dataset=tmp_path / "a" / "dataset"), warm=True)
    assert second.returncode == 0, second.stderr[-3000:]
    # weights, EMA, optimizer, scheduler, RNG states, carry, data position, logged losses: all equal
    assert_same_checkpoint(tmp_path / "a" / f"checkpoint-{MAX_STEPS}", tmp_path / "b" / f"checkpoint-{MAX_STEPS}")
    assert_identical(checkpoint_contents(tmp_path / "a" / "model"), checkpoint_contents(tmp_path / "b" / "model"))

    assert_same_checkpoint(tmp_path / "a" / "checkpoint-8", tmp_path / "b" / "checkpoint-8")
    with pytest.raises(AssertionError, match="differ"):  # the comparison does tell two states apart
        assert_same_checkpoint(tmp_path / "a" / "checkpoint-8", tmp_path / "b" / f"checkpoint-{MAX_STEPS}")
