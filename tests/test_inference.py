"""`generate` and slot-refill ACT (`solve(..., slots=)`): the same answers as `solve` and as ACT run on
each puzzle alone, with a halting head that stops puzzles at different steps."""

from __future__ import annotations

import os

import pytest
import torch

from modeling_trm import TRMForGridReasoning
from tiny_models import random_batch, tiny_model

NUM_PUZZLES = 200


def varied_halting_model(ids: torch.Tensor, pids: torch.Tensor):
    """A tiny TRM whose q_halt crosses 0 at different steps for different puzzles.

    Random halting weights, then a bias halfway inside the widest gap between the puzzles' step-2 and
    step-3 q_halt values near their median: q_halt is linear in the bias, so about half the puzzles
    turn positive around there, and no q_halt sits close enough to 0 for a rounding difference
    between batch shapes to flip a decision."""
    model = tiny_model(halt_max_steps=6, hidden_size=16, num_heads=2).eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
        model.q_head.bias.zero_()
        raw = model.solve(ids, pids, halting="max", return_trajectory=True).trajectory_q_halt_logits
        values = raw[:, 1:3].flatten().sort().values
        middle = values[len(values) // 3: 2 * len(values) // 3]
        gap = int((middle[1:] - middle[:-1]).argmax())
        model.q_head.bias[0] = -float(middle[gap] + middle[gap + 1]) / 2
        shifted = model.solve(ids, pids, halting="max", return_trajectory=True).trajectory_q_halt_logits
    assert bool((shifted.abs() > 1e-4).all()), "a q_halt near 0 would make the comparison depend on rounding"
    return model


@pytest.fixture(scope="module")
def puzzles():
    ids = random_batch(NUM_PUZZLES, seed=5)
    pids = torch.randint(0, 3, (NUM_PUZZLES,), generator=torch.Generator().manual_seed(1))
    return ids, pids, varied_halting_model(ids, pids)


def test_refill_act_equals_act_on_each_puzzle_alone(puzzles) -> None:
    ids, pids, model = puzzles
    refill = model.solve(ids, pids, halting="act", slots=7, return_trajectory=True)
    steps = refill.steps.tolist()
    assert len(set(steps)) >= 3 and 1 in steps and 6 in steps, f"halting must vary across puzzles: {sorted(set(steps))}"
    for i in range(NUM_PUZZLES):
        alone = model.solve(ids[i:i + 1], pids[i:i + 1], halting="act")
        assert torch.equal(alone.predictions[0], refill.predictions[i]), i
        assert int(alone.steps[0]) == steps[i], i
        torch.testing.assert_close(alone.q_halt_logits[0], refill.q_halt_logits[i], atol=1e-5, rtol=1e-5)
    # the trajectory is the shrink-only batch's: every step's answer, frozen once the puzzle halted
    shrink = model.solve(ids, pids, halting="act", return_trajectory=True)
    assert torch.equal(shrink.trajectory, refill.trajectory)
    torch.testing.assert_close(shrink.trajectory_q_halt_logits, refill.trajectory_q_halt_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("slots", [3, 64, NUM_PUZZLES + 5])
def test_refill_results_do_not_depend_on_the_number_of_slots(puzzles, slots: int) -> None:
    ids, pids, model = puzzles
    reference = model.solve(ids, pids, halting="act")
    out = model.solve(ids, pids, halting="act", slots=slots)
    assert torch.equal(out.predictions, reference.predictions) and torch.equal(out.steps, reference.steps)


def test_refill_under_max_halting_runs_every_step(puzzles) -> None:
    ids, pids, model = puzzles
    out = model.solve(ids[:20], pids[:20], halting="max", slots=6, max_steps=3)
    assert out.steps.tolist() == [3] * 20
    assert torch.equal(out.predictions, model.solve(ids[:20], pids[:20], halting="max", max_steps=3).predictions)


@pytest.mark.parametrize("slots", [0, -1, 2.5, True])
def test_bad_slots_are_refused(slots) -> None:
    with pytest.raises(ValueError, match="slots must be a positive integer"):
        tiny_model().solve(random_batch(2), slots=slots)


@pytest.mark.parametrize("halting", ["max", "act"])
def test_generate_returns_the_answer_ids_of_solve(puzzles, halting: str) -> None:
    ids, pids, model = puzzles
    generated = model.generate(ids[:30], puzzle_identifiers=pids[:30], halting=halting)
    solved = model.solve(ids[:30], pids[:30], halting=halting)
    assert generated.dtype == torch.long and generated.shape == (30, 16)
    assert torch.equal(generated, solved.predictions)
    assert torch.equal(model.generate(ids[:3], max_steps=2), model.solve(ids[:3], max_steps=2, halting="max").predictions)


def test_generate_is_not_generation_mixin_and_saves_no_generation_config(tmp_path, caplog) -> None:
    model = tiny_model()
    assert not model.can_generate()
    with caplog.at_level("WARNING"):
        model.save_pretrained(tmp_path)
        TRMForGridReasoning.from_pretrained(tmp_path)
    assert not [record.getMessage() for record in caplog.records if record.levelname in ("WARNING", "ERROR")]
    assert not (tmp_path / "generation_config.json").exists()
    assert "generation_config" not in (tmp_path / "config.json").read_text()
    assert {"pipeline_trm.py", "puzzle_text.py", "grid_checks.py", "arc_canvas.py"} <= set(os.listdir(tmp_path))
