"""TRMConfig and TRMForGridReasoning: the paper's recursion, losses, halting, carry and save/load."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from modeling_trm import TRMConfig, TRMForGridReasoning, TRMState
from modeling_trm.modeling_trm import log_stablemax, stablemax_cross_entropy
from tiny_models import random_batch, tiny_config, tiny_model

# ----------------------------------------------------------------------------- config


def test_an_arc_model_states_its_network_and_its_puzzle_table_apart() -> None:
    # ARC-AGI-1 as the authors built it: 876,406 puzzle ids x 512 (reference issue "7M vs ~435M?")
    with torch.device("meta"):
        model = TRMForGridReasoning(TRMConfig.from_preset("arc", num_puzzle_identifiers=876_406))
    counts = model.parameter_counts()
    assert counts["puzzle_embedding"] == 876_406 * 512 == 448_719_872
    assert counts["reference"] == 6_829_058  # the paper's count: network without y_init / z_init
    assert counts["network"] == 6_829_058 + 2 * 512
    assert counts["total"] == counts["network"] + counts["puzzle_embedding"] == model.num_parameters()


@pytest.mark.parametrize(
    "preset, expected",
    [("sudoku-mlp", 5_028_866), ("sudoku-att", 6_828_034), ("maze", 6_822_914), ("arc", 6_829_058)],
)
def test_preset_parameter_counts_match_reference(preset: str, expected: int) -> None:
    with torch.device("meta"):
        model = TRMForGridReasoning(TRMConfig.from_preset(preset))
    assert model.num_reference_parameters() == expected
    # the puzzle table and the two initial states are the only parameters left out
    total = sum(p.numel() for p in model.parameters())
    assert total - expected == (model.config.num_puzzle_identifiers + 2) * 512


def test_preset_shapes() -> None:
    config = TRMConfig.from_preset("sudoku-mlp")
    assert config.total_seq_len == 97
    assert config.swiglu_inner_width(97) == 512 and config.swiglu_inner_width(512) == 1536
    assert TRMConfig.from_preset("maze").L_cycles == 4
    assert TRMConfig.from_preset("arc", num_puzzle_identifiers=10).num_puzzle_identifiers == 10


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(hidden_size=30, num_heads=4), "hidden_size"),
        (dict(mixer="conv"), "mixer"),
        (dict(L_cycles=-1), "L_cycles"),
        (dict(H_cycles=0), "H_cycles"),
        (dict(seq_len=15), "seq_len"),
        (dict(pos_encodings="alibi"), "pos_encodings"),
        (dict(loss_type="focal"), "loss_type"),
        (dict(halt_exploration_prob=1.5), "halt_exploration_prob"),
        (dict(id_to_symbol=["a", "b"]), "id_to_symbol"),
        (dict(id_to_symbol=["<pad>", ".", "1", "2", "3", "3"]), "id_to_symbol.*repeats \\['3'\\]"),
        (dict(blank_token_id=9), "blank_token_id"),
        (dict(solve_max_steps=0), "solve_max_steps"),
        (dict(solve_max_steps=True), "solve_max_steps"),
    ],
)
def test_bad_config_values_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        tiny_config(**overrides)


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        TRMConfig.from_preset("sudoku-xl")


# ----------------------------------------------------------------------------- recursion


class RecordingCore(torch.nn.Module):
    """Stands in for `net`: records each call and returns `hidden` unchanged (ignores injection)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor, bool]] = []

    def forward(self, hidden: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        self.calls.append((hidden.clone(), injection.clone(), torch.is_grad_enabled()))
        return hidden


def test_one_supervision_step_calls_net_T_times_n_plus_one() -> None:
    model = tiny_model(H_cycles=3, L_cycles=4)
    calls = []
    model.core.register_forward_hook(lambda module, args, out: calls.append(torch.is_grad_enabled()))
    model.train()
    model(random_batch(2), labels=random_batch(2, seed=1))
    assert len(calls) == 3 * (4 + 1)
    # gradients only in the last of the T cycles (n + 1 calls)
    assert calls == [False] * (2 * 5) + [True] * 5


def test_latent_recursion_structure_and_y_update_never_sees_x() -> None:
    model = tiny_model(L_cycles=3)
    model.core = RecordingCore()
    shape = (2, model.config.total_seq_len, model.config.hidden_size)
    y, z = torch.randn(shape), torch.randn(shape)
    x1, x2 = torch.randn(shape), torch.randn(shape)

    model.latent_recursion(x1, y, z)
    first = model.core.calls
    model.core.calls = []
    model.latent_recursion(x2, y, z)
    second = model.core.calls

    assert len(first) == 4
    for hidden, injection, _ in first[:3]:  # z <- net(z, y + x): fusion is addition
        assert torch.equal(hidden, z) and torch.equal(injection, y + x1)
    # the y-update receives (y, z) and nothing that depends on x
    assert torch.equal(first[3][0], y) and torch.equal(first[3][1], z)
    assert torch.equal(second[3][0], first[3][0]) and torch.equal(second[3][1], first[3][1])


def test_gradients_come_only_from_the_last_cycle() -> None:
    torch.manual_seed(0)
    model = tiny_model(H_cycles=3, L_cycles=2).train()
    ids = random_batch(3)
    state = model.initial_state(ids)
    x = model.embed_inputs(ids, state.puzzle_identifiers)
    y, z = state.y, state.z
    y_grad, z_grad = model.deep_recursion(x, y, z)
    loss = y_grad.square().sum()
    loss.backward()
    auto = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    # manual: run T-1 cycles, cut the graph, run the last cycle with gradients
    with torch.no_grad():
        for _ in range(2):
            y, z = model.latent_recursion(x, y, z)
    x_again = model.embed_inputs(ids, state.puzzle_identifiers)
    y_last, _ = model.latent_recursion(x_again, y.detach(), z.detach())
    y_last.square().sum().backward()
    manual = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert auto.keys() == manual.keys()
    for name in auto:
        torch.testing.assert_close(auto[name], manual[name], rtol=0, atol=0)
    # y_init/z_init are reached only through the no-grad cycles, so they get no gradient
    assert "y_init" not in auto and "z_init" not in auto


def test_returned_state_is_detached() -> None:
    model = tiny_model().train()
    out = model(random_batch(2), labels=random_batch(2, seed=1))
    assert not out.state.y.requires_grad and not out.state.z.requires_grad
    assert out.logits.requires_grad


# ----------------------------------------------------------------------------- losses and heads


def test_stablemax_matches_hand_computation() -> None:
    logits = torch.tensor([[[-1.0, 0.0, 2.0]]])
    # s(-1) = 1/2, s(0) = 1, s(2) = 3; total 4.5
    expected = torch.tensor([0.5, 1.0, 3.0]) / 4.5
    torch.testing.assert_close(log_stablemax(logits.double()).exp().squeeze(), expected.double())
    labels = torch.tensor([[2]])
    loss = stablemax_cross_entropy(logits, labels)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(-math.log(3.0 / 4.5), abs=1e-12)
    assert stablemax_cross_entropy(logits, torch.tensor([[-100]])).item() == 0.0


def test_stablemax_gradient_is_finite_where_a_logit_is_exactly_one() -> None:
    # bf16 logits hit 1.0 exactly; the 1/(1-x) branch must not leak 0 * inf = NaN into the gradient.
    logits = torch.tensor([[[1.0, -1.0]]], requires_grad=True)
    stablemax_cross_entropy(logits, torch.tensor([[0]])).sum().backward()
    # s = (2, 0.5), sum 2.5: dL/dx0 = -1/2 + 1/2.5, dL/dx1 = (1/2.5) * 1/(1 - x1)^2
    torch.testing.assert_close(logits.grad, torch.tensor([[[-0.1, 0.1]]]))


def test_loss_is_lm_mean_per_sequence_plus_half_bce() -> None:
    model = tiny_model().eval()
    ids = random_batch(3)
    labels = random_batch(3, seed=5)
    labels[1, :4] = -100
    out = model(ids, labels=labels)
    per_token = stablemax_cross_entropy(out.logits, labels)
    valid = labels != -100
    lm = (per_token.sum(-1) / valid.sum(-1)).sum()
    correct = ((out.logits.argmax(-1) == labels) | ~valid).all(-1).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.q_halt_logits, correct, reduction="sum")
    expected = (lm + 0.5 * bce) / 3
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.lm_loss.item() == pytest.approx(lm.item() / 3, rel=1e-6)


def test_heads_and_initial_states_are_initialised_as_in_the_paper() -> None:
    model = tiny_model()
    assert torch.count_nonzero(model.q_head.weight) == 0
    assert torch.equal(model.q_head.bias.data, torch.tensor([-5.0, -5.0]))
    assert torch.count_nonzero(model.puzzle_embedding.weight) == 0
    assert isinstance(model.y_init, torch.nn.Parameter) and model.y_init.shape == (32,)
    assert model.y_init.abs().max() <= 2.0 / 0.8796 + 1e-5  # truncated at 2 std
    # an untrained model never halts early: sigmoid(-5) ~ 0.007
    out = model.solve(random_batch(4), halting="act")
    assert torch.all(out.steps == model.config.halt_max_steps)


def test_embedding_is_scaled_and_prefixed() -> None:
    model = tiny_model()
    with torch.no_grad():
        model.puzzle_embedding.weight.normal_()
    ids = random_batch(2)
    pids = torch.tensor([2, 1])
    x = model.embed_inputs(ids, pids)
    scale = math.sqrt(32)
    assert x.shape == (2, 18, 32)
    torch.testing.assert_close(x[:, 0], scale * model.puzzle_embedding.weight[pids])
    assert torch.count_nonzero(x[:, 1]) == 0
    torch.testing.assert_close(x[:, 2:], scale * model.embed_tokens(ids))


# ----------------------------------------------------------------------------- carry


def test_only_halted_slots_take_new_inputs_and_restart() -> None:
    model = tiny_model().eval()
    old, new = random_batch(4, seed=1), random_batch(4, seed=2)
    state = model(old).state
    state.halted = torch.tensor([True, False, True, False])
    out = model(new, state=state)
    assert torch.equal(out.state.input_ids[[0, 2]], new[[0, 2]])
    assert torch.equal(out.state.input_ids[[1, 3]], old[[1, 3]])
    assert out.state.steps.tolist() == [1, 2, 1, 2]
    fresh = model(new)  # a restarted slot computes what a brand-new batch computes
    torch.testing.assert_close(out.logits[[0, 2]], fresh.logits[[0, 2]])
    continued = model(old, state=model(old).state)
    torch.testing.assert_close(out.logits[[1, 3]], continued.logits[[1, 3]])


def test_eval_mode_halts_only_at_the_step_cap() -> None:
    model = tiny_model(halt_max_steps=4).eval()
    with torch.no_grad():
        model.q_head.bias.fill_(5.0)  # q_halt > 0 everywhere: would halt at once in training
    ids = random_batch(2)
    state = None
    for step in range(1, 5):
        out = model(ids, state=state)
        state = out.state
        assert state.steps.tolist() == [step, step]
        assert state.halted.tolist() == [step == 4] * 2
    assert model(ids, state=state).state.steps.tolist() == [1, 1]  # capped slots restart


def test_training_halts_on_q_and_exploration_is_seeded() -> None:
    model = tiny_model(halt_max_steps=8, halt_exploration_prob=0.0).train()
    with torch.no_grad():
        model.q_head.bias.fill_(5.0)
    ids = random_batch(6)
    assert model(ids).state.halted.all()  # q_halt > 0 halts after one step without exploration

    model.config.halt_exploration_prob = 0.5
    out_a = model(ids, generator=torch.Generator().manual_seed(7))
    out_b = model(ids, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out_a.state.halted, out_b.state.halted)
    reference = torch.Generator().manual_seed(7)
    explore = torch.rand(6, generator=reference) < 0.5
    min_steps = torch.randint(2, 9, (6,), generator=reference)
    # step 1 < every forced minimum (>= 2), so exactly the exploring slots keep going
    assert torch.equal(out_a.state.halted, ~explore)
    assert min_steps.min() >= 2

    model.config.halt_exploration_prob = 1.0
    with torch.no_grad():
        model.q_head.bias.fill_(-5.0)
    state = None
    for step in range(1, 9):  # never q-halts; the cap still ends every sample at step 8
        state = model(ids, state=state).state
    assert state.halted.all() and state.steps.tolist() == [8] * 6


# ----------------------------------------------------------------------------- solve


def test_solve_max_equals_repeated_forward_in_eval_mode() -> None:
    model = tiny_model(halt_max_steps=5).eval()
    ids = random_batch(3)
    pids = torch.tensor([0, 2, 1])
    solved = model.solve(ids, puzzle_identifiers=pids, halting="max", return_trajectory=True)
    state = None
    with torch.no_grad():
        for step in range(5):
            out = model(ids, puzzle_identifiers=pids, state=state)
            state = out.state
            assert torch.equal(solved.trajectory[:, step], out.logits.argmax(-1))
    assert torch.equal(solved.predictions, out.logits.argmax(-1))
    torch.testing.assert_close(solved.q_halt_logits, out.q_halt_logits)
    assert solved.steps.tolist() == [5, 5, 5]


def test_solve_runs_solve_max_steps_by_default_and_training_still_halts_at_n_sup(tmp_path) -> None:
    """A model trained with N_sup = 2 that should be run for 5 steps: solve's default changes, training's does not."""
    plain = tiny_model(halt_max_steps=2).eval()
    longer = tiny_model(halt_max_steps=2, solve_max_steps=5).eval()
    assert plain.config.default_solve_steps == 2 and longer.config.default_solve_steps == 5
    ids = random_batch(3)
    assert plain.solve(ids, halting="max").steps.tolist() == [2, 2, 2]
    solved = longer.solve(ids, halting="max", return_trajectory=True)
    assert solved.steps.tolist() == [5, 5, 5]
    # the same weights: an explicit max_steps gives the same answers whichever default the config has
    assert torch.equal(solved.predictions, plain.solve(ids, halting="max", max_steps=5).predictions)
    assert torch.equal(solved.trajectory[:, 1], plain.solve(ids, halting="max").predictions)
    # training halts every slot at N_sup = 2 (no exploration), not at solve_max_steps
    longer.train()
    longer.config.halt_exploration_prob = 0.0
    state = None
    for step in (1, 2):
        out = longer(ids, labels=ids, state=state)
        state = out.state
        assert not bool((out.q_halt_logits > 0).any())  # the halting head's initial bias: no early halt
        assert state.halted.tolist() == [step == 2] * 3
    longer.save_pretrained(tmp_path / "m")
    assert type(longer).from_pretrained(tmp_path / "m").config.default_solve_steps == 5


def test_solve_act_is_independent_of_batch_composition() -> None:
    model = tiny_model(halt_max_steps=6).eval()
    with torch.no_grad():  # a halting head that fires at different steps for different samples
        model.q_head.weight.normal_(0, 2.0)
        model.q_head.bias.zero_()
    ids = random_batch(8, seed=3)
    batched = model.solve(ids, halting="act", return_trajectory=True)
    assert len(set(batched.steps.tolist())) > 1, "test needs samples that halt at different steps"
    for i in range(8):
        alone = model.solve(ids[i:i + 1], halting="act")
        assert torch.equal(alone.predictions[0], batched.predictions[i])
        assert alone.steps[0] == batched.steps[i]
        torch.testing.assert_close(alone.q_halt_logits[0], batched.q_halt_logits[i], atol=1e-5, rtol=1e-5)
    # a halted sample's trajectory is frozen after it stops
    i = int(batched.steps.argmin())
    s = int(batched.steps[i])
    assert torch.equal(batched.trajectory[i, s - 1:], batched.predictions[i].expand(6 - s + 1, -1))
    # ACT halts a sample exactly when its q_halt logit turns positive
    assert torch.all((batched.q_halt_logits > 0) | (batched.steps == 6))


def test_solve_rejects_bad_arguments() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="halting"):
        model.solve(random_batch(1), halting="sometimes")
    with pytest.raises(ValueError, match="max_steps"):
        model.solve(random_batch(1), max_steps=0)


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="vocabulary"):
        model(torch.full((1, 16), 6))
    with pytest.raises(ValueError, match=r"shape \(batch, 16\)"):
        model(torch.ones(1, 15, dtype=torch.long))
    with pytest.raises(ValueError, match="puzzle_identifiers"):
        model(random_batch(2), puzzle_identifiers=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        model(random_batch(2), labels=torch.full((2, 16), 7))
    state = model(random_batch(2)).state
    with pytest.raises(ValueError, match="slots"):
        model(random_batch(3), state=state)


# ----------------------------------------------------------------------------- dtypes and variants


@pytest.mark.parametrize("overrides", [dict(mixer="mlp_t", pos_encodings="none"), dict(pos_encodings="learned"),
                                       dict(puzzle_emb_len=0), dict(loss_type="softmax")])
def test_variants_run_and_train(overrides: dict) -> None:
    model = tiny_model(**overrides).train()
    out = model(random_batch(2), labels=random_batch(2, seed=1))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.lm_head.weight.grad is not None and model.embed_tokens.weight.grad is not None


def test_bf16_autocast_on_cpu() -> None:
    model = tiny_model(mixer="mlp_t", pos_encodings="none").train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(random_batch(2), labels=random_batch(2, seed=1))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.q_halt_logits.dtype == torch.float32
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        solved = model.eval().solve(random_batch(2), halting="act")
    assert solved.predictions.shape == (2, 16)


def test_state_moves_and_slices() -> None:
    model = tiny_model()
    state = model(random_batch(3)).state
    part = state.index_select(torch.tensor([0, 2]))
    assert isinstance(part, TRMState) and part.batch_size == 2 and part.labels is None
    assert torch.equal(part.y, state.y[[0, 2]])
    assert state.to("cpu").steps.device.type == "cpu"


# ----------------------------------------------------------------------------- save / load


def test_save_and_load_round_trip(tmp_path) -> None:
    from transformers import AutoConfig, AutoModel

    model = tiny_model(mixer="mlp_t", pos_encodings="none").eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert {"modeling_trm.py", "configuration_trm.py"} <= set(os.listdir(tmp_path))
    assert not (tmp_path / "generation_config.json").exists()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "trm"
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, TRMForGridReasoning)
    ids = random_batch(3)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    a, b = model.solve(ids, return_trajectory=True), loaded.solve(ids, return_trajectory=True)
    assert torch.equal(a.trajectory, b.trajectory) and torch.equal(a.q_halt_logits, b.q_halt_logits)


def test_remote_code_loads_without_the_package(tmp_path) -> None:
    model = tiny_model().eval()
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    ids = random_batch(2)
    expected = model.solve(ids, halting="max")
    torch.save({"ids": ids, "predictions": expected.predictions, "q": expected.q_halt_logits}, tmp_path / "io.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["modeling_trm"] = None  # the installed package must not be importable
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True).eval()
        assert not type(model).__module__.startswith("modeling_trm"), type(model).__module__
        io = torch.load({str(tmp_path / "io.pt")!r})
        out = model.solve(io["ids"], halting="max")
        assert torch.equal(out.predictions, io["predictions"])
        assert torch.equal(out.q_halt_logits, io["q"])
        print("REMOTE_OK", type(model).__module__)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REMOTE_OK transformers_modules" in result.stdout
