"""Test-time scaling (issue 22): K noisy trajectories per puzzle as PTRM runs them (`solve(samples=,
noise_std=, selection=, generator=, max_batch_rows=)`), refinement far beyond `halt_max_steps`, the checks
of the new arguments, `generate` and the `grid-reasoning` pipeline."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import pipeline

from modeling_trm import TRMSolveOutput
from modeling_trm.modeling_trm import select_trajectories
from modeling_trm.puzzle_text import render_answer
from tiny_models import random_batch, tiny_model

NUM_PUZZLES = 6
SIGMA = 0.5


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def varied_halting_model(seed: int = 0):
    """A tiny TRM whose q_halt has either sign (random halting weights, bias 1.5), so ACT stops puzzles at different
    steps: on the puzzles below plain ACT stops after 2, 2, 8 (never), 2, 5 and 2 of 8 steps."""
    model = tiny_model(seed=seed, hidden_size=16, num_heads=2).eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 2.0, generator=seeded(0))
        model.q_head.bias.fill_(1.5)
    return model


def always_halting_model():
    """q_halt = +10 whatever the state: ACT stops every trajectory after its first step."""
    model = tiny_model(hidden_size=16, num_heads=2).eval()
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias[0] = 10.0
    return model


@pytest.fixture(scope="module")
def puzzles():
    ids = random_batch(NUM_PUZZLES, seed=3)
    pids = torch.randint(0, 3, (NUM_PUZZLES,), generator=seeded(1))
    return ids, pids


def by_hand(model, ids: torch.Tensor, pids: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The refinement run step by step from the model's parts, no halting: every step's answer and q_halt."""
    x = model.embed_inputs(ids, pids)
    y = model.y_init.detach().expand(x.shape).clone()
    z = model.z_init.detach().expand(x.shape).clone()
    answers, q_halts = [], []
    with torch.no_grad():
        for _ in range(steps):
            y, z, logits, q_halt = model.supervision_step(x, y, z)
            answers.append(logits.argmax(-1))
            q_halts.append(q_halt)
    return torch.stack(answers, 1), torch.stack(q_halts, 1)


def assert_same_solve(a: TRMSolveOutput, b: TRMSolveOutput) -> None:
    for name in ("predictions", "steps", "q_halt_logits", "trajectory", "trajectory_q_halt_logits",
                 "sample_predictions", "sample_q_halt_logits", "sample_steps", "selected_sample"):
        left, right = getattr(a, name), getattr(b, name)
        assert (left is None) == (right is None), name
        assert left is None or torch.equal(left, right), name


# ----------------------------------------------------------------------------- breadth: K noisy trajectories


def test_one_sample_without_noise_is_the_plain_solve(puzzles) -> None:
    ids, pids = puzzles
    model = varied_halting_model()
    answers, q_halts = by_hand(model, ids, pids, steps=5)
    generator = seeded(0)
    state = generator.get_state()
    plain = model.solve(ids, pids, max_steps=5, halting="max", return_trajectory=True, samples=1, noise_std=0.0,
                        selection="halt", generator=generator)
    assert torch.equal(generator.get_state(), state), "a run without noise draws nothing"
    assert torch.equal(plain.trajectory, answers) and torch.equal(plain.trajectory_q_halt_logits, q_halts)
    assert torch.equal(plain.predictions, answers[:, -1]) and torch.equal(plain.q_halt_logits, q_halts[:, -1])
    assert plain.steps.tolist() == [5] * NUM_PUZZLES
    assert plain.sample_predictions is None and plain.selected_sample is None
    for halting in ("max", "act"):  # the new arguments at their defaults change nothing, bit for bit
        default = model.solve(ids, pids, max_steps=5, halting=halting, return_trajectory=True)
        explicit = model.solve(ids, pids, max_steps=5, halting=halting, return_trajectory=True, samples=1,
                               noise_std=0.0, selection="vote", generator=seeded(3), max_batch_rows=None)
        assert_same_solve(default, explicit)
    act = model.solve(ids, pids, max_steps=5, halting="act")
    assert 1 < len(set(act.steps.tolist())), "the halting head must stop puzzles at different steps"


def test_noise_goes_on_z_before_every_step_with_std_sigma(puzzles) -> None:
    """PTRM perturbs the low-level latent (z; z_L in the reference code) at every supervision step; y is not touched."""
    ids, pids = puzzles
    model = varied_halting_model()
    seen = []
    step = model.supervision_step

    def recording_step(x, y, z):
        out = step(x, y, z)
        seen.append((y.clone(), z.clone(), out[0].clone(), out[1].clone()))
        return out

    model.supervision_step = recording_step
    model.solve(ids, pids, max_steps=3, halting="max", samples=4, noise_std=SIGMA, generator=seeded(0))
    assert len(seen) == 3 and seen[0][0].shape[0] == NUM_PUZZLES * 4
    y_start = model.y_init.detach().expand_as(seen[0][0])
    z_start = model.z_init.detach().expand_as(seen[0][1])
    for y_in, z_in, _, _ in seen[:1]:
        assert torch.equal(y_in, y_start)
        assert float((z_in - z_start).std()) == pytest.approx(SIGMA, rel=0.05)
    for (y_in, z_in, _, _), (_, _, y_out, z_out) in zip(seen[1:], seen[:-1]):
        assert torch.equal(y_in, y_out), "y carries over untouched"
        added = z_in - z_out
        assert float(added.std()) == pytest.approx(SIGMA, rel=0.05) and abs(float(added.mean())) < 0.05


def test_the_same_seed_gives_the_same_answers_and_trajectories_differ(puzzles) -> None:
    ids, pids = puzzles
    model = varied_halting_model()
    first = model.solve(ids, pids, max_steps=6, halting="act", samples=5, noise_std=SIGMA, generator=seeded(7))
    again = model.solve(ids, pids, max_steps=6, halting="act", samples=5, noise_std=SIGMA, generator=seeded(7))
    assert_same_solve(first, again)
    other = model.solve(ids, pids, max_steps=6, halting="act", samples=5, noise_std=SIGMA, generator=seeded(8))
    assert not torch.equal(first.sample_q_halt_logits, other.sample_q_halt_logits)
    q = first.sample_q_halt_logits
    assert q.shape == (NUM_PUZZLES, 5) and first.sample_predictions.shape == (NUM_PUZZLES, 5, 16)
    assert bool((q[:, 0] != q[:, 1]).all()), "the K trajectories of a puzzle must differ"
    torch.manual_seed(11)  # without a generator the noise comes from torch's global one
    global_first = model.solve(ids, pids, max_steps=3, samples=2, noise_std=SIGMA)
    torch.manual_seed(11)
    assert_same_solve(global_first, model.solve(ids, pids, max_steps=3, samples=2, noise_std=SIGMA))


@pytest.mark.parametrize("halting", ["max", "act"])
@pytest.mark.parametrize("max_batch_rows", [3, 7, 13])
def test_chunked_rows_give_the_unchunked_answers(puzzles, halting: str, max_batch_rows: int) -> None:
    ids, pids = puzzles
    model = varied_halting_model()
    whole = model.solve(ids, pids, max_steps=6, halting=halting, samples=3, noise_std=SIGMA, generator=seeded(2),
                        return_trajectory=True)
    chunked = model.solve(ids, pids, max_steps=6, halting=halting, samples=3, noise_std=SIGMA, generator=seeded(2),
                          return_trajectory=True, max_batch_rows=max_batch_rows)
    assert torch.equal(whole.sample_predictions, chunked.sample_predictions)
    assert torch.equal(whole.sample_steps, chunked.sample_steps)
    assert torch.equal(whole.selected_sample, chunked.selected_sample)
    assert torch.equal(whole.trajectory, chunked.trajectory)
    torch.testing.assert_close(whole.sample_q_halt_logits, chunked.sample_q_halt_logits, atol=1e-5, rtol=1e-5)
    if halting == "act":
        assert len(set(whole.sample_steps.flatten().tolist())) > 1, "trajectories must halt at different steps"
    # `slots` counts puzzles: 2 puzzles x 3 samples at a time is the same run again
    slotted = model.solve(ids, pids, max_steps=6, halting=halting, samples=3, noise_std=SIGMA, generator=seeded(2),
                          slots=2)
    assert torch.equal(whole.sample_predictions, slotted.sample_predictions)


def test_act_stops_trajectories_early_inside_a_noisy_run(puzzles) -> None:
    ids, pids = puzzles
    model = always_halting_model()
    act = model.solve(ids, pids, max_steps=64, halting="act", samples=4, noise_std=1.0, generator=seeded(0))
    assert act.sample_steps.tolist() == [[1] * 4] * NUM_PUZZLES and act.steps.tolist() == [1] * NUM_PUZZLES
    full = model.solve(ids, pids, max_steps=64, halting="max", samples=4, noise_std=1.0, generator=seeded(0))
    assert full.sample_steps.unique().tolist() == [64]
    # a halting head of both signs: each trajectory stops at its own first positive q_halt
    varied = varied_halting_model().solve(ids, pids, max_steps=8, halting="act", samples=4, noise_std=SIGMA,
                                          generator=seeded(4), return_trajectory=True)
    assert varied.sample_steps.min() < 8 and len(varied.sample_steps.unique()) > 1
    for steps, q in zip(varied.steps.tolist(), varied.trajectory_q_halt_logits):
        assert bool((q[:steps - 1] <= 0).all()) and (steps == 8 or float(q[steps - 1]) > 0)


def test_halt_selection_takes_the_highest_final_q_halt(puzzles) -> None:
    ids, pids = puzzles
    out = varied_halting_model().solve(ids, pids, max_steps=4, halting="act", samples=6, noise_std=1.0,
                                       generator=seeded(5), return_trajectory=True)
    best = out.sample_q_halt_logits.argmax(1)
    assert torch.equal(out.selected_sample, best)
    rows = torch.arange(NUM_PUZZLES)
    assert torch.equal(out.predictions, out.sample_predictions[rows, best])
    assert torch.equal(out.q_halt_logits, out.sample_q_halt_logits.max(1).values)
    assert torch.equal(out.steps, out.sample_steps[rows, best])
    assert torch.equal(out.trajectory[rows, out.steps.long() - 1], out.predictions)


def test_vote_takes_the_most_frequent_answer_then_the_higher_q_halt_then_the_lower_index() -> None:
    a, b, c, d = ([value] * 3 for value in range(4))
    answers = torch.tensor([[a, b, a, b], [a, b, b, c], [a, b, c, d]])  # (3 puzzles, 4 samples, 3 cells)
    q_halt = torch.tensor([[1.0, 5.0, 2.0, 0.0], [9.0, 1.0, 1.0, 3.0], [0.0, 3.0, 3.0, 1.0]])
    solved = TRMSolveOutput(predictions=answers.view(12, 3), steps=torch.arange(12, dtype=torch.int32),
                            q_halt_logits=q_halt.view(12))
    vote = select_trajectories(solved, 4, "vote")
    # 0: a and b tie 2-2, b holds the higher q (5); 1: b wins 2 votes, its two q tie, the lower index;
    # 2: one vote each, q ties between 1 and 2, the lower index
    assert vote.selected_sample.tolist() == [1, 1, 1]
    assert vote.predictions.tolist() == [b, b, b] and vote.steps.tolist() == [1, 5, 9]
    assert vote.q_halt_logits.tolist() == [5.0, 1.0, 3.0]
    halt = select_trajectories(solved, 4, "halt")
    assert halt.selected_sample.tolist() == [1, 0, 1] and halt.predictions.tolist() == [b, a, b]
    assert torch.equal(vote.sample_predictions, answers) and torch.equal(vote.sample_q_halt_logits, q_halt)


def test_vote_on_a_model_returns_the_first_answer_with_the_most_votes(puzzles) -> None:
    ids, pids = puzzles
    model = tiny_model().eval()  # untrained halting head: q_halt = -5 everywhere, so ties go to the lower index
    out = model.solve(ids, pids, max_steps=4, halting="max", samples=8, noise_std=2.0, generator=seeded(6),
                      selection="vote")
    assert bool((out.sample_q_halt_logits == -5.0).all())
    distinct = [len(torch.unique(candidates, dim=0)) for candidates in out.sample_predictions]
    assert max(distinct) > 1 and min(distinct) < 8, f"the samples must disagree, and some agree: {distinct}"
    for chosen, k, candidates in zip(out.predictions, out.selected_sample.tolist(), out.sample_predictions):
        votes = [int((candidates == answer).all(-1).sum()) for answer in candidates]
        assert k == votes.index(max(votes)) and torch.equal(chosen, candidates[k])


# ----------------------------------------------------------------------------- depth: many supervision steps


@pytest.mark.parametrize("max_steps", [64, 256])
def test_refinement_runs_far_beyond_halt_max_steps(puzzles, max_steps: int) -> None:
    ids, pids = puzzles
    model = varied_halting_model()
    assert model.config.halt_max_steps == 4
    long = model.solve(ids, pids, max_steps=max_steps, halting="max", return_trajectory=True)
    assert long.steps.tolist() == [max_steps] * NUM_PUZZLES
    assert long.trajectory.shape == (NUM_PUZZLES, max_steps, 16)
    assert long.trajectory_q_halt_logits.shape == (NUM_PUZZLES, max_steps)
    assert torch.equal(long.trajectory[:, -1], long.predictions)
    assert torch.equal(long.trajectory_q_halt_logits[:, -1], long.q_halt_logits)
    # the carry continues: the first steps are those of a shorter run, and the state still moves after them
    short = model.solve(ids, pids, max_steps=max_steps // 4, halting="max", return_trajectory=True)
    assert torch.equal(long.trajectory[:, :max_steps // 4], short.trajectory)
    assert torch.equal(long.trajectory_q_halt_logits[:, :max_steps // 4], short.trajectory_q_halt_logits)
    q = long.trajectory_q_halt_logits
    assert bool((q[:, 4] != q[:, 5]).all()) and bool((q[:, -2] != q[:, -1]).any())
    # ACT stops early, and a trajectory keeps its last answer after it halted
    act = model.solve(ids, pids, max_steps=max_steps, halting="act", return_trajectory=True)
    assert bool((act.steps < 8).any()) and int(act.steps.max()) == max_steps  # one puzzle's q_halt stays < 0
    for steps, trajectory in zip(act.steps.tolist(), act.trajectory):
        assert bool((trajectory[steps:] == trajectory[steps - 1]).all())
    stopped = always_halting_model().solve(ids, pids, max_steps=max_steps, halting="act", return_trajectory=True,
                                           samples=2, noise_std=SIGMA, generator=seeded(0))
    assert stopped.steps.tolist() == [1] * NUM_PUZZLES and stopped.trajectory.shape == (NUM_PUZZLES, max_steps, 16)


# ----------------------------------------------------------------------------- adaptive: escalate=True


def test_escalation_sends_only_the_unconfident_puzzles_to_k_trajectories(puzzles) -> None:
    ids, pids = puzzles
    model = varied_halting_model()
    budget, depth, k = 4, 8, 5
    plain = model.solve(ids, pids, max_steps=budget, halting="act")
    unsure = plain.q_halt_logits <= 0
    # plain ACT stops these puzzles after 2, 2, never, 2, 5 and 2 steps: within 4 steps, #2 and #4 stay unsure
    assert unsure.tolist() == [False, False, True, False, True, False]
    out = model.solve(ids, pids, max_steps=depth, halting="act", samples=k, noise_std=SIGMA, generator=seeded(4),
                      escalate=True, escalate_after=budget)
    assert torch.equal(out.escalated, unsure)
    # confident puzzles keep the one noise-free answer and its steps
    assert torch.equal(out.predictions[~unsure], plain.predictions[~unsure])
    assert torch.equal(out.steps[~unsure], plain.steps[~unsure])
    assert torch.equal(out.total_steps[~unsure], plain.steps[~unsure])
    # the others: exactly a K-sample solve of them alone with the same seed, after their budget was spent
    alone = model.solve(ids[unsure], pids[unsure], max_steps=depth, halting="act", samples=k, noise_std=SIGMA,
                        generator=seeded(4))
    assert torch.equal(out.predictions[unsure], alone.predictions)
    assert torch.equal(out.q_halt_logits[unsure], alone.q_halt_logits)
    assert torch.equal(out.selected_sample[unsure], alone.selected_sample)
    assert torch.equal(out.total_steps[unsure], budget + alone.sample_steps.sum(1))
    # same seed, same answers; the batch size (slots) changes no answer (logits only in the last bits, as a
    # matmul over another number of rows may)
    again = model.solve(ids, pids, max_steps=depth, halting="act", samples=k, noise_std=SIGMA, generator=seeded(4),
                        escalate=True, escalate_after=budget, slots=2, max_batch_rows=k)
    for name in ("predictions", "steps", "total_steps", "escalated", "selected_sample"):
        assert torch.equal(getattr(again, name), getattr(out, name)), name
    torch.testing.assert_close(again.q_halt_logits, out.q_halt_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("confidence", [0.52, 0.6, 0.9])  # 4, 2 and 0 of the 6 puzzles confident
def test_escalation_confidence_keeps_only_answers_the_halting_head_is_surer_of(puzzles, confidence) -> None:
    ids, pids = puzzles
    model = varied_halting_model()
    budget, depth, k = 4, 8, 3
    # the first round, read off one noise-free run of `budget` steps: a puzzle is confident at its first step
    # whose halting probability exceeds the threshold, and stops there
    run = model.solve(ids, pids, max_steps=budget, halting="max", return_trajectory=True)
    above = torch.sigmoid(run.trajectory_q_halt_logits) > confidence
    confident = above.any(1)
    out = model.solve(ids, pids, max_steps=depth, halting="act", samples=k, noise_std=SIGMA, generator=seeded(4),
                      escalate=True, escalate_after=budget, escalate_confidence=confidence)
    assert torch.equal(out.escalated, ~confident)
    first = above.int().argmax(1)  # index of the first confident step
    rows = confident.nonzero().squeeze(1)
    assert torch.equal(out.steps[rows], (first[rows] + 1).int())
    assert torch.equal(out.total_steps[rows], (first[rows] + 1).int())
    assert torch.equal(out.predictions[rows], run.trajectory[rows, first[rows]])
    unsure = ~confident
    alone = model.solve(ids[unsure], pids[unsure], max_steps=depth, halting="act", samples=k, noise_std=SIGMA,
                        generator=seeded(4))
    assert torch.equal(out.predictions[unsure], alone.predictions)
    assert torch.equal(out.total_steps[unsure], budget + alone.sample_steps.sum(1))


def test_escalation_confidence_one_half_is_the_act_rule(puzzles) -> None:
    ids, pids = puzzles
    model = varied_halting_model()
    arguments = dict(max_steps=8, halting="act", samples=3, noise_std=SIGMA, escalate=True, escalate_after=4)
    default = model.solve(ids, pids, generator=seeded(4), **arguments)
    half = model.solve(ids, pids, generator=seeded(4), escalate_confidence=0.5, **arguments)
    for name in ("predictions", "steps", "q_halt_logits", "total_steps", "escalated", "selected_sample"):
        assert torch.equal(getattr(half, name), getattr(default, name)), name
    # a stricter threshold escalates a superset of the puzzles
    strict = model.solve(ids, pids, generator=seeded(4), escalate_confidence=0.95, **arguments)
    assert bool((strict.escalated | ~default.escalated).all()) and strict.escalated.sum() > default.escalated.sum()


def test_escalation_with_every_puzzle_confident_runs_no_second_round() -> None:
    model = always_halting_model()
    ids = random_batch(4, seed=0)
    out = model.solve(ids, samples=8, noise_std=1.0, escalate=True, generator=seeded(0))
    assert not out.escalated.any() and out.total_steps.tolist() == [1, 1, 1, 1]
    assert torch.equal(out.predictions, model.solve(ids, halting="act").predictions)


def test_pipeline_and_generate_take_the_escalation() -> None:
    model = varied_halting_model()
    questions = ["33.2433232414121", "4143342.4..3.432", ".2.1.2231.43.4.3", "242.424144423.43"]
    solver = pipeline("grid-reasoning", model=model, device="cpu")
    arguments = dict(samples=4, noise_std=1.0, max_steps=8, escalate=True, escalate_after=3)
    got = solver(questions, seed=5, **arguments)
    assert [result["escalated"] for result in got] == [False, True, False, True]
    lookup = {".": 1, "1": 2, "2": 3, "3": 4, "4": 5}
    for question, result in zip(questions, got):  # batch_size 1: each puzzle with a generator seeded 5
        ids = torch.tensor([[lookup[c] for c in question]])
        want = model.solve(ids, halting="act", generator=seeded(5), **arguments)
        assert result["escalated"] == bool(want.escalated[0]) and result["total_steps"] == int(want.total_steps[0])
        assert result["answer"] == render_answer(want.predictions[0].tolist(), model.config)
        assert torch.equal(model.generate(ids, halting="act", generator=seeded(5), **arguments), want.predictions)
    # a stricter threshold reaches the model through the pipeline (and is checked there before any compute)
    strict = solver(questions, seed=5, escalate_confidence=0.9, **arguments)
    for question, result in zip(questions, strict):
        ids = torch.tensor([[lookup[c] for c in question]])
        want = model.solve(ids, halting="act", generator=seeded(5), escalate_confidence=0.9, **arguments)
        assert result["escalated"] == bool(want.escalated[0]) and result["total_steps"] == int(want.total_steps[0])
    assert sum(result["escalated"] for result in strict) > 2
    with pytest.raises(ValueError, match="needs samples >= 2 and noise_std > 0"):
        solver(questions, escalate=True)
    with pytest.raises(ValueError, match="escalate_confidence must be a halting probability"):
        solver(questions, escalate_confidence=2.0, **arguments)


@pytest.mark.parametrize("kwargs, message", [
    (dict(escalate=True), "escalate=True sends unconfident puzzles to `samples` noisy trajectories"),
    (dict(escalate=True, samples=4), "needs samples >= 2 and noise_std > 0"),
    (dict(escalate=True, noise_std=0.3), "needs samples >= 2 and noise_std > 0"),
    (dict(escalate="yes", samples=4, noise_std=0.3), "escalate must be True or False"),
    (dict(escalate=True, samples=4, noise_std=0.3, escalate_after=0), "escalate_after must be a positive integer"),
    (dict(samples=4, noise_std=0.3, escalate_after=3), "pass escalate=True as well"),
    (dict(escalate=True, samples=4, noise_std=0.3, return_trajectory=True), "return_trajectory is not available"),
    (dict(escalate=True, samples=4, noise_std=0.3, escalate_confidence=1.0), "escalate_confidence must be a halting"),
    (dict(escalate=True, samples=4, noise_std=0.3, escalate_confidence=0), "escalate_confidence must be a halting"),
    (dict(escalate=True, samples=4, noise_std=0.3, escalate_confidence="high"), "escalate_confidence must be"),
    (dict(samples=4, noise_std=0.3, escalate_confidence=0.9), "pass escalate=True as well"),
])
def test_bad_escalation_arguments_are_refused_before_any_compute(puzzles, kwargs, message) -> None:
    ids, pids = puzzles
    model = tiny_model()
    model.embed_inputs = lambda *args, **kw: pytest.fail("the model ran although an argument was bad")
    with pytest.raises(ValueError, match=message):
        model.solve(ids, pids, **kwargs)


# ----------------------------------------------------------------------------- checks, generate, pipeline


@pytest.mark.parametrize("kwargs, message", [
    (dict(samples=0), "samples must be a positive integer"),
    (dict(samples=-2), "samples must be a positive integer"),
    (dict(samples=2.0), "samples must be a positive integer"),
    (dict(samples=True), "samples must be a positive integer"),
    (dict(noise_std=-0.1), "noise_std must be a finite number >= 0"),
    (dict(noise_std=math.nan), "noise_std must be a finite number >= 0"),
    (dict(noise_std=math.inf), "noise_std must be a finite number >= 0"),
    (dict(noise_std="0.3"), "noise_std must be a finite number >= 0"),
    (dict(selection="best"), "selection must be one of"),
    (dict(generator=5), "generator must be a torch.Generator"),
    (dict(samples=4, max_batch_rows=3), r"max_batch_rows must be an integer >= samples \(4\)"),
    (dict(max_batch_rows=0), "max_batch_rows must be an integer >= samples"),
    (dict(max_batch_rows=8.0), "max_batch_rows must be an integer >= samples"),
])
def test_bad_sampling_arguments_are_refused_before_any_compute(puzzles, kwargs, message) -> None:
    ids, pids = puzzles
    model = tiny_model()
    model.embed_inputs = lambda *args, **kw: pytest.fail("the model ran although an argument was bad")
    with pytest.raises(ValueError, match=message):
        model.solve(ids, pids, **kwargs)
    with pytest.raises(ValueError, match=message):
        model.generate(ids, pids, **kwargs)


def test_generate_forwards_the_sampling_arguments(puzzles) -> None:
    ids, pids = puzzles
    model = varied_halting_model()
    arguments = dict(max_steps=5, samples=4, noise_std=1.0, selection="vote", max_batch_rows=10)
    generated = model.generate(ids, pids, halting="act", generator=seeded(9), **arguments)
    solved = model.solve(ids, pids, halting="act", generator=seeded(9), **arguments)
    assert torch.equal(generated, solved.predictions)
    assert torch.equal(model.generate(ids, pids, generator=seeded(9), **arguments),
                       model.solve(ids, pids, halting="max", generator=seeded(9), **arguments).predictions)


def test_pipeline_takes_samples_noise_selection_and_seed() -> None:
    model = varied_halting_model()
    questions = ["1..4.4...3.1..1.", "....3..........4", "12..34.........."]
    solver = pipeline("grid-reasoning", model=model, device="cpu")
    sampled = solver(questions, samples=4, noise_std=1.0, selection="vote", seed=5, max_steps=6)
    assert sampled == solver(questions, samples=4, noise_std=1.0, selection="vote", seed=5, max_steps=6)
    lookup = {".": 1, "1": 2, "2": 3, "3": 4, "4": 5}
    for question, got in zip(questions, sampled):  # batch_size 1: each puzzle with a generator seeded 5
        ids = torch.tensor([[lookup[c] for c in question]])
        want = model.solve(ids, max_steps=6, halting="act", samples=4, noise_std=1.0, selection="vote",
                           generator=seeded(5))
        assert got["steps"] == int(want.steps[0])
        assert got["halt_probability"] == pytest.approx(1 / (1 + math.exp(-float(want.q_halt_logits[0]))))
        assert got["answer"] == render_answer(want.predictions[0].tolist(), model.config)
    model.solve = lambda *args, **kwargs: pytest.fail("solve ran although an argument was bad")
    try:
        for kwargs, message in [(dict(samples=0), "samples must be a positive integer"),
                                (dict(noise_std=-1.0), "noise_std must be a finite number"),
                                (dict(selection="best"), "selection must be one of"),
                                (dict(seed=-1), "seed must be an integer"),
                                (dict(seed="7"), "seed must be an integer"),
                                (dict(seed=True), "seed must be an integer")]:
            with pytest.raises(ValueError, match=message):
                solver(questions, **kwargs)
    finally:
        del model.solve
