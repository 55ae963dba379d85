"""One compiled graph (issue 24 item 3): a training supervision step and a solve step trace whole.

`torch.compile(fullgraph=True)` raises on any graph break (naming its reason); a backend that records what
it is given counts the graphs (one), then runs them as captured (capture is what is tested, and it needs no
C++ compiler) and the outputs must match eager. One trace per test: each takes seconds on a CPU.
"""

from __future__ import annotations

import pytest
import torch

from tiny_models import random_batch, tiny_model

MIXERS = {"attention": {}, "mlp_t": dict(mixer="mlp_t", pos_encodings="none")}


def _train_step(model):
    def step(input_ids, labels, puzzle_identifiers, state, draws):
        """Forward with labels on the carried state, the loss and the carry update (new state); the halting
        rule's random draws made beforehand, as `TRMTrainer` makes them from its generator."""
        out = model(input_ids, labels=labels, puzzle_identifiers=puzzle_identifiers, state=state, exploration=draws)
        return out.loss, out.state.y, out.state.z, out.state.steps, out.state.halted, out.state.input_ids

    return step


def _solve_step(model):
    def step(input_ids, puzzle_identifiers, y, z):
        """One supervision step of `solve`: embed, deep recursion, heads, answer and halting."""
        x = model.embed_inputs(input_ids, puzzle_identifiers)
        y, z, logits, q_halt = model.supervision_step(x, y, z)
        return y, z, logits.argmax(-1), q_halt, q_halt > 0

    return step


def _compile_whole(fn, *args) -> tuple[tuple, list[torch.fx.GraphModule]]:
    """`fn(*args)` through `torch.compile(fullgraph=True)`, and the graphs Dynamo captured on the way."""
    graphs: list[torch.fx.GraphModule] = []

    def recording_backend(graph: torch.fx.GraphModule, example_inputs) -> object:
        graphs.append(graph)
        return graph.forward

    torch._dynamo.reset()
    try:
        return torch.compile(fn, backend=recording_backend, fullgraph=True)(*args), graphs
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("mixer", MIXERS)
def test_training_supervision_step_is_one_graph(mixer: str) -> None:
    model = tiny_model(**MIXERS[mixer]).train()
    ids, labels = random_batch(3), random_batch(3, seed=1)
    pids = torch.tensor([0, 1, 2])
    state = model(ids, labels=labels, puzzle_identifiers=pids).state  # a carried state, as in training
    draws = model.exploration_draws(3, "cpu", torch.Generator().manual_seed(0))
    step = _train_step(model)
    eager = step(ids, labels, pids, state, draws)
    traced, graphs = _compile_whole(step, ids, labels, pids, state, draws)
    assert len(graphs) == 1
    for a, b in zip(eager, traced, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mixer", MIXERS)
def test_solve_step_is_one_graph(mixer: str) -> None:
    model = tiny_model(**MIXERS[mixer]).eval()
    ids, pids = random_batch(3), torch.tensor([0, 1, 2])
    shape = (3, model.config.total_seq_len, model.config.hidden_size)
    y, z = model.y_init.detach().expand(shape).clone(), model.z_init.detach().expand(shape).clone()
    step = _solve_step(model)
    with torch.no_grad():
        eager = step(ids, pids, y, z)
        traced, graphs = _compile_whole(step, ids, pids, y, z)
    assert len(graphs) == 1
    for a, b in zip(eager, traced, strict=True):
        torch.testing.assert_close(a, b)


def test_draws_made_beforehand_are_the_draws_forward_makes() -> None:
    """`exploration=` (the trainer's way) and `generator=` give the same halting decisions and losses."""
    model = tiny_model(halt_exploration_prob=0.5).train()
    ids, labels = random_batch(6), random_batch(6, seed=1)
    state = model(ids, labels=labels).state
    inside = model(ids, labels=labels, state=state, generator=torch.Generator().manual_seed(4))
    draws = model.exploration_draws(6, "cpu", torch.Generator().manual_seed(4))
    before = model(ids, labels=labels, state=state, exploration=draws)
    assert torch.equal(inside.state.halted, before.state.halted)
    torch.testing.assert_close(inside.loss, before.loss, rtol=0, atol=0)

