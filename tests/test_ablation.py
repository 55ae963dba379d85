"""Ablation switches and `trm ablate`: each variant builds the intended network, the default path is
untouched, variants are never taken for a paper preset, and the summary judges directions honestly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from modeling_trm import TRMConfig
from modeling_trm.experiments.ablation import BASELINE, VARIANTS, markdown_table, variant_by_name, variant_recipe, verdict
from modeling_trm.inference.evaluation import detect_preset
from modeling_trm.modeling_trm import TRMForGridReasoning
from modeling_trm.recipes_io import load_recipe
from tiny_models import random_batch, tiny_model


def demo_variant_model(name: str) -> TRMForGridReasoning:
    """The demo recipe's network (6x6 Sudoku, D 64) with the variant's overrides."""
    recipe = variant_recipe(load_recipe("demo"), variant_by_name(name), steps=1, seed=0, eval_steps=0)
    overrides = dict(recipe["model"]["overrides"])
    config = TRMConfig.from_preset(recipe["model"]["preset"], **overrides, vocab_size=8, seq_len=36,
                                   grid_shape=(6, 6), id_to_symbol=["<pad>", "."] + [str(d) for d in range(1, 7)])
    torch.manual_seed(0)
    return TRMForGridReasoning(config)


def count_core_calls(model: TRMForGridReasoning) -> list[bool]:
    calls: list[bool] = []
    model.core.register_forward_hook(lambda module, args, out: calls.append(torch.is_grad_enabled()))
    model.train()
    ids = torch.randint(1, 8, (2, 36))
    model(ids, labels=torch.randint(2, 8, (2, 36)))
    return calls


def test_each_variant_builds_the_intended_network() -> None:
    base = demo_variant_model(BASELINE)
    base_params = sum(p.numel() for p in base.parameters())
    block_params = sum(p.numel() for p in base.core.layers[0].parameters())
    assert len(base.core.layers) == 2 and base.config.mixer == "mlp_t" and base.config.ablation is None
    # every variant trains with the paper's N_sup = 16, although the demo recipe trains with 2
    assert load_recipe("demo")["model"]["overrides"]["halt_max_steps"] == 2
    assert base.config.halt_max_steps == 16 and demo_variant_model("T1-n2").config.halt_max_steps == 16
    # baseline: T (n + 1) = 3 * 7 calls, the last 7 with gradients
    assert count_core_calls(base) == [False] * 14 + [True] * 7

    four = demo_variant_model("4-layers-n3")
    assert len(four.core.layers) == 4 and four.config.L_cycles == 3
    assert sum(p.numel() for p in four.parameters()) == base_params + 2 * block_params
    assert count_core_calls(four) == [False] * 8 + [True] * 4  # 3 * (3 + 1) calls of a 4-block network

    attention = demo_variant_model("attention")
    assert hasattr(attention.core.layers[0], "self_attn") and not hasattr(attention.core.layers[0], "mlp_t")
    d = 64
    # the sequence MLP (36 -> 2*256 -> 36) is replaced by qkv (d -> 3d) and o (d -> d) in both blocks
    assert sum(p.numel() for p in attention.parameters()) == base_params + 2 * (4 * d * d - 3 * 36 * 256)

    full = demo_variant_model("full-backprop")
    assert full.config.backprop_all_cycles
    assert count_core_calls(full) == [True] * 21  # no no-grad cycles
    assert sum(p.numel() for p in full.parameters()) == base_params

    single = demo_variant_model("single-latent")
    assert count_core_calls(single) == [False] * 14 + [True] * 7  # as many calls as y/z

    for name, cycles in (("T2-n2", [False] * 3 + [True] * 3), ("T1-n2", [True] * 3)):
        assert count_core_calls(demo_variant_model(name)) == cycles

    no_ema = variant_recipe(load_recipe("demo"), variant_by_name("no-ema"), steps=5, seed=1, eval_steps=0)
    assert no_ema["training"]["ema_decay"] == 0.0 and no_ema["training"]["max_steps"] == 5
    assert no_ema["model"]["overrides"]["ablation"] == "no-ema"


def test_single_latent_updates_z_from_x_and_reads_the_answer_from_z() -> None:
    model = tiny_model(L_cycles=2, single_latent=True, ablation="single-latent")
    seen = []
    model.core.register_forward_hook(lambda module, args, out: seen.append(args))
    shape = (2, model.config.total_seq_len, model.config.hidden_size)
    x, y, z = torch.randn(shape), torch.randn(shape), torch.randn(shape)
    new_y, new_z = model.latent_recursion(x, y, z)
    assert len(seen) == 3  # n + 1 updates
    assert torch.equal(seen[0][0], z) and all(torch.equal(args[1], x) for args in seen)  # y never enters
    assert new_y is new_z


def test_full_backprop_matches_manual_backprop_through_every_cycle() -> None:
    model = tiny_model(H_cycles=2, L_cycles=2, backprop_all_cycles=True, ablation="full-backprop").train()
    ids = random_batch(2)
    state = model.initial_state(ids)
    x = model.embed_inputs(ids, state.puzzle_identifiers)
    y, _ = model.deep_recursion(x, model.y_init.expand_as(state.y), model.z_init.expand_as(state.z))
    y.square().sum().backward()
    auto = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    y_m, z_m = model.y_init.expand_as(state.y), model.z_init.expand_as(state.z)
    x_m = model.embed_inputs(ids, state.puzzle_identifiers)
    for _ in range(2):
        y_m, z_m = model.latent_recursion(x_m, y_m, z_m)
    y_m.square().sum().backward()
    manual = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert auto.keys() == manual.keys() and "y_init" in auto and "z_init" in auto
    for name in auto:
        torch.testing.assert_close(auto[name], manual[name], rtol=0, atol=0)


def test_switches_off_leave_the_default_function_bit_for_bit() -> None:
    ids, labels = random_batch(3), random_batch(3, seed=1)
    default = tiny_model(seed=4).train()
    explicit = tiny_model(seed=4, backprop_all_cycles=False, single_latent=False).train()
    out_a = default(ids, labels=labels, generator=torch.Generator().manual_seed(0))
    out_b = explicit(ids, labels=labels, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out_a.logits, out_b.logits) and torch.equal(out_a.state.z, out_b.state.z)


def test_ablation_switches_need_a_variant_name_and_are_never_a_paper_preset() -> None:
    with pytest.raises(ValueError, match="TRMConfig.ablation"):
        TRMConfig.from_preset("sudoku-mlp", backprop_all_cycles=True)
    with pytest.raises(ValueError, match="TRMConfig.single_latent"):
        TRMConfig.from_preset("sudoku-mlp", single_latent="yes", ablation="x")
    assert detect_preset(TRMConfig.from_preset("sudoku-mlp")) == "sudoku-mlp"
    # same architecture fields as the preset, but named as an ablation (e.g. trained without EMA)
    assert detect_preset(TRMConfig.from_preset("sudoku-mlp", ablation="no-ema")) is None
    assert detect_preset(TRMConfig.from_preset("sudoku-mlp", single_latent=True, ablation="single-latent")) is None
    for variant in VARIANTS:
        overrides = variant.recipe_overrides()["model"]
        assert ("ablation" in overrides) == (variant.name != BASELINE)


def test_saved_variant_keeps_its_name_and_switches(tmp_path) -> None:
    model = tiny_model(backprop_all_cycles=True, ablation="full-backprop")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["ablation"] == "full-backprop" and config["backprop_all_cycles"] is True
    assert TRMForGridReasoning.from_pretrained(tmp_path).config.backprop_all_cycles


def test_verdict_compares_seed_ranges_with_the_baseline() -> None:
    base = {"name": BASELINE, "values": [0.8, 0.9], "mean": 0.85, "min": 0.8, "max": 0.9}
    lower = {"name": "a", "values": [0.5, 0.6], "mean": 0.55, "min": 0.5, "max": 0.6}
    higher = {"name": "b", "values": [0.95, 0.97], "mean": 0.96, "min": 0.95, "max": 0.97}
    overlap = {"name": "c", "values": [0.7, 0.85], "mean": 0.775, "min": 0.7, "max": 0.85}
    assert verdict(lower, base).startswith("reproduced")
    assert verdict(higher, base).startswith("NOT reproduced")
    assert verdict(overlap, base) == "lower on average, ranges overlap"
    assert verdict(base, base) == "-"
    rows = [dict(base, change="c", paper="p", num_parameters=10, verdict="-", token_accuracy=0.95),
            dict(lower, change="c", paper="p", num_parameters=10, verdict=verdict(lower, base), token_accuracy=0.9)]
    table = markdown_table(rows, {"task_recipe": "demo", "steps": 5, "seeds": 2})
    assert "| baseline | c | 10 | 85.0% ± 5.0 | 80.0, 90.0 | 95.0% | p | - |" in table
    assert "| a |" in table and "reproduced" in table


def tiny_ablation_recipe() -> dict:
    """The demo recipe shrunk to 4x4 puzzles and a 16-wide model: ablation runs of a few steps in seconds."""
    recipe = load_recipe("demo")
    recipe["data"]["args"].update(size=4, num_train=64, num_test=8)
    recipe["model"]["overrides"].update(hidden_size=16, H_cycles=2, L_cycles=1, halt_max_steps=2)
    recipe["training"].update(global_batch_size=8, auto_bf16=False, warmup_steps=1)
    return recipe


def same_weights(run_a, run_b) -> bool:
    """Whether two ablation runs saved bit-identical weights."""
    first = load_file(run_a / "model" / "model.safetensors")
    second = load_file(run_b / "model" / "model.safetensors")
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_run_ablation_writes_json_table_and_chart_and_resumes(tmp_path, capsys) -> None:
    from modeling_trm.experiments.ablation import run_ablation

    recipe = tiny_ablation_recipe()
    variants = (variant_by_name(BASELINE), variant_by_name("full-backprop"))
    out = tmp_path / "ablate"
    summary = run_ablation(out, recipe, variants, steps=2, seeds=2)
    rows = {row["name"]: row for row in summary["rows"]}
    assert set(rows) == {BASELINE, "full-backprop"} and rows[BASELINE]["seeds"] == [0, 1]
    assert rows["full-backprop"]["verdict"] != "-" and rows[BASELINE]["verdict"] == "-"
    saved = json.loads((out / "ablations.json").read_text())
    assert saved["settings"]["steps"] == 2 and len(saved["rows"]) == 2
    assert "| full-backprop |" in (out / "ablations.md").read_text()
    assert (out / "ablations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((out / "runs" / "full-backprop-seed1" / "result.json").read_text())
    config = json.loads((out / "runs" / "full-backprop-seed1" / "model" / "config.json").read_text())
    assert run["steps"] == 2 and config["ablation"] == "full-backprop" and config["backprop_all_cycles"]
    # same seed, same weights: every run is seeded (initial weights included), so reruns are reproducible
    run_ablation(tmp_path / "again", recipe, variants[:1], steps=2, seeds=1)
    assert same_weights(out / "runs" / "baseline-seed0", tmp_path / "again" / "runs" / "baseline-seed0")
    first = load_file(out / "runs" / "baseline-seed0" / "model" / "model.safetensors")
    other_seed = load_file(out / "runs" / "baseline-seed1" / "model" / "model.safetensors")
    assert not torch.equal(first["lm_head.weight"], other_seed["lm_head.weight"])
    # a second call with the same settings trains nothing; other settings are refused
    capsys.readouterr()
    run_ablation(out, recipe, variants, steps=2, seeds=2)
    assert "seed 0: exact" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="other settings"):
        run_ablation(out, recipe, variants, steps=3, seeds=2)


def test_parallel_runs_train_the_same_weights_as_one_at_a_time(tmp_path, capsys) -> None:
    import os

    from modeling_trm.experiments.ablation import run_ablation

    recipe = tiny_ablation_recipe()
    variants = (variant_by_name(BASELINE), variant_by_name("single-latent"))
    threads = max(1, (os.cpu_count() or 1) // 2)  # what each of 2 workers gets
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run_ablation(tmp_path / "serial", recipe, variants, steps=3, seeds=2, jobs=1)
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    summary = run_ablation(tmp_path / "parallel", recipe, variants, steps=3, seeds=2, jobs=2)
    printed = capsys.readouterr().out
    assert printed.count(": exact ") == 4 and f"on {threads} thread(s)" in printed
    assert {row["name"]: row["seeds"] for row in summary["rows"]} == {BASELINE: [0, 1], "single-latent": [0, 1]}
    for run in ("baseline-seed0", "baseline-seed1", "single-latent-seed0", "single-latent-seed1"):
        assert same_weights(tmp_path / "serial" / "runs" / run, tmp_path / "parallel" / "runs" / run), run
        result = json.loads((tmp_path / "parallel" / "runs" / run / "result.json").read_text())
        assert result["torch_threads"] == threads and result["steps"] == 3
    with pytest.raises(ValueError, match="jobs"):
        run_ablation(tmp_path / "bad", recipe, variants, steps=3, seeds=1, jobs=0)


def test_budget_minutes_become_a_fixed_step_count_from_the_cost_model() -> None:
    from modeling_trm.experiments.ablation import (DEFAULT_SEEDS, DEFAULT_STEPS, IDLE_SECONDS_PER_BASELINE_STEP, Variant,
                                       steps_for_budget)

    base = {"num_layers": 2, "H_cycles": 3, "L_cycles": 6}
    # block applications per step, backward = 2 forwards: baseline 2 * 7 * (2 + 3) = 70
    assert variant_by_name(BASELINE).relative_cost(base) == 1.0
    assert variant_by_name("full-backprop").relative_cost(base) == pytest.approx(2 * 7 * 9 / 70)
    assert variant_by_name("4-layers-n3").relative_cost(base) == pytest.approx(4 * 4 * 5 / 70)
    assert variant_by_name("T1-n2").relative_cost(base) == pytest.approx(2 * 3 * 3 / 70)
    recipe = load_recipe("demo")
    one = (variant_by_name(BASELINE),)
    assert steps_for_budget(10, one, 2, recipe) == int(600 / (IDLE_SECONDS_PER_BASELINE_STEP * 2))
    # the budget counts measured step costs where known (attention does more work than its block count says)
    attention = variant_by_name("attention")
    assert attention.relative_cost(base) == 1.0 and attention.measured_cost > 2
    pair = (variant_by_name(BASELINE), attention)
    assert steps_for_budget(10, pair, 2, recipe) == int(
        600 / (IDLE_SECONDS_PER_BASELINE_STEP * 2 * (1 + attention.measured_cost)))
    assert Variant("x", "y", model={"num_layers": 4, "L_cycles": 3}).expected_cost(base) == pytest.approx(80 / 70)
    # the defaults fit the 45-minute budget under the same model (training only)
    default_seconds = DEFAULT_STEPS * DEFAULT_SEEDS * IDLE_SECONDS_PER_BASELINE_STEP * sum(
        v.expected_cost(base) for v in VARIANTS)
    assert default_seconds <= 42 * 60
    with pytest.raises(ValueError, match="budget-minutes"):
        steps_for_budget(0, one, 1, recipe)
