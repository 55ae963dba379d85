"""Smoke tests of the benchmark suite's code paths on tiny configs (no timing assertions).

They check what the suite's numbers rest on: the FLOP formula against a hand count, the plain
baseline computing the same function as the package, the JSON record fields, and the package's
half-precision fast path (its hand-written backward passes and its agreement with fp32).
"""

from __future__ import annotations

import json

import pytest
import torch

from modeling_trm.benchmarks import run as bench
from modeling_trm.benchmarks.baseline import PlainTRM, plain_optimizer
from modeling_trm.benchmarks.measure import peak_rss_mb, reset_peak_rss, time_runs
from modeling_trm.benchmarks.workloads import baseline_training_step, package_training_step, saved_activation_bytes
from modeling_trm import TRMConfig, TRMForGridReasoning
from modeling_trm.flops import forward_step_flops, net_call_flops, training_step_flops
from modeling_trm.modeling_trm import _AddRMSNorm, _SwiGLUActivation
from tiny_models import random_batch, tiny_config

REQUIRED_FIELDS = {"preset", "batch_size", "mode", "dtype", "compiled", "seconds_median", "samples_per_s",
                   "baseline_samples_per_s", "gflops_per_s", "peak_fraction", "peak_rss_mb"}


def test_flop_formula_matches_hand_count_for_sudoku_mlp() -> None:
    config = TRMConfig.from_preset("sudoku-mlp")  # L 97, D 512, inner 512 (mlp_t) and 1536 (channel)
    per_layer = 6 * 512 * 97 * 512 + 6 * 97 * 512 * 1536
    assert net_call_flops(config) == 2 * per_layer  # 1.22 GFLOP
    heads = 2 * 81 * 512 * 11 + 2 * 512 * 2
    assert forward_step_flops(config, 3) == 3 * (21 * 2 * per_layer + heads)
    assert training_step_flops(config, 2) == 2 * (21 * 2 * per_layer + heads + 2 * (7 * 2 * per_layer + heads))


def test_attention_flops_count_scores_and_projections() -> None:
    config = TRMConfig.from_preset("maze")  # L 916, D 512, n = 4
    length, width = 916, 512
    attention = 8 * length * width**2 + 4 * length**2 * width
    assert net_call_flops(config) == 2 * (attention + 6 * length * width * 1536)


@pytest.mark.parametrize("mixer", ["mlp_t", "attention"])
def test_baseline_computes_the_package_function(mixer: str) -> None:
    config = tiny_config(mixer=mixer, pos_encodings="none" if mixer == "mlp_t" else "rope", num_puzzle_identifiers=1)
    torch.manual_seed(0)
    model = TRMForGridReasoning(config).eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.3)  # a halting head that reads y
    plain = PlainTRM(config)
    plain.load_package_weights(model)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in model.parameters())
    ids = random_batch(3)
    with torch.no_grad():
        expected = model(ids)
        carry = plain.new_carry(ids, ids)
        y, z, logits, q_halt = plain.supervision_step(plain.embed_inputs(ids), carry.y, carry.z)
    torch.testing.assert_close(logits, expected.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(q_halt, expected.q_halt_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y, expected.state.y, rtol=1e-4, atol=1e-5)


def test_baseline_training_step_learns_a_fixed_batch() -> None:
    config = tiny_config(mixer="mlp_t", pos_encodings="none", num_puzzle_identifiers=1, halt_max_steps=2)
    torch.manual_seed(0)
    plain = PlainTRM(config)
    optimizer = torch.optim.AdamW(plain.parameters(), lr=1e-2)
    ids, labels = random_batch(4), random_batch(4, seed=1)
    carry = plain.new_carry(ids, labels)
    losses = []
    for _ in range(30):
        loss, carry = plain.training_step(carry, ids, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.2 * losses[0]  # it memorises the batch
    assert isinstance(plain_optimizer(plain), torch.optim.AdamW)


def test_training_closures_run_in_both_dtypes() -> None:
    config = tiny_config(mixer="mlp_t", pos_encodings="none")
    for dtype in ("fp32", "bf16"):
        torch.manual_seed(0)
        step = package_training_step(TRMForGridReasoning(config).train(), 3, dtype)
        base = baseline_training_step(config, 3, dtype)
        assert all(torch.isfinite(torch.tensor([step(), step(), base(), base()])))
    with pytest.raises(ValueError, match="dtype"):
        package_training_step(TRMForGridReasoning(config), 2, "fp16")()


def test_saved_activations_grow_with_the_batch() -> None:
    model = TRMForGridReasoning(tiny_config(mixer="mlp_t", pos_encodings="none"))
    small, large = saved_activation_bytes(model, 2, "fp32"), saved_activation_bytes(model, 4, "fp32")
    assert 0 < small < large <= 2.2 * small


def test_timing_and_memory_probes() -> None:
    calls = []
    timing = time_runs(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.wall) == len(timing.cpu) == 3
    assert timing.median >= 0
    with pytest.raises(ValueError, match="repeats"):
        time_runs(lambda: None, repeats=0)
    reset_peak_rss()
    assert peak_rss_mb() > 0


def _tiny_peak() -> dict:
    return {"fp32": {"gflops_per_s": 100.0}, "bf16": {"gflops_per_s": 400.0}}


def test_train_case_records_have_the_fields_and_the_baseline_ratio(monkeypatch) -> None:
    config = tiny_config(mixer="mlp_t", pos_encodings="none", num_puzzle_identifiers=1)
    monkeypatch.setitem(bench.PRESETS, "tiny", "tiny")
    monkeypatch.setattr(bench.TRMConfig, "from_preset", classmethod(lambda cls, name, **kw: config))
    lines = []
    records = bench.run_train_case(bench.TrainCase("tiny", 2, "bf16", repeats=1), _tiny_peak(), lines.append)
    package, baseline = records
    assert REQUIRED_FIELDS <= package.keys()
    assert (package["implementation"], baseline["implementation"]) == ("package", "baseline")
    assert package["baseline_samples_per_s"] == baseline["samples_per_s"]
    flops = training_step_flops(config, 2)
    assert package["flops"] == flops
    assert package["gflops_per_s"] == pytest.approx(flops / package["seconds_median"] / 1e9, rel=0.01, abs=0.05)
    # from the unrounded rate: gflops_per_s is rounded to 0.1, which at tiny rates is more than abs allows
    assert package["peak_fraction"] == pytest.approx(flops / package["seconds_median"] / 1e9 / 400.0, rel=0.01, abs=1e-4)
    assert len(lines) == 2
    json.dumps(records)  # serialisable as written by --json

    solve = bench.run_solve_case(bench.SolveCase("tiny", 2, "fp32", max_steps=2, repeats=1), _tiny_peak(), lines.append)
    assert solve["mode"] == "solve-max" and solve["flops"] == 2 * forward_step_flops(config, 2)
    assert "trajectories_per_puzzle" not in solve and "rows_per_s" not in solve


def test_solve_with_k_samples_rows_count_puzzles_and_rows(monkeypatch) -> None:
    """The "solve with K samples" rows: K noisy trajectories per puzzle, puzzles/s and rows/s, FLOPs of every row."""
    config = tiny_config(mixer="mlp_t", pos_encodings="none", num_puzzle_identifiers=1)
    monkeypatch.setitem(bench.PRESETS, "tiny", "tiny")
    monkeypatch.setattr(bench.TRMConfig, "from_preset", classmethod(lambda cls, name, **kw: config))
    lines: list[str] = []
    records = [bench.run_solve_case(bench.SolveCase("tiny", 2, "fp32", max_steps=2, repeats=1, samples=k,
                                                    noise_std=0.3), _tiny_peak(), lines.append) for k in (1, 4)]
    for record, k in zip(records, (1, 4)):
        assert REQUIRED_FIELDS <= record.keys() and record["mode"] == f"solve-max-k{k}"
        assert (record["trajectories_per_puzzle"], record["noise_std"]) == (k, 0.3)
        assert record["flops"] == 2 * forward_step_flops(config, 2 * k)  # every trajectory is a row
        assert record["samples_per_s"] == pytest.approx(2 / record["seconds_median"], rel=1e-2)  # puzzles/s
        assert record["rows_per_s"] == pytest.approx(2 * k / record["seconds_median"], rel=1e-2)
    assert lines[1].split()[2] == "solve-max-k4/2"
    json.dumps(records)
    summary = bench.breadth_summary(records)
    assert summary.startswith("solve with K samples (tiny, 2 puzzles, 2 steps, noise 0.3, halting max): K=1 ")
    assert "; K=4 " in summary and "x the time per puzzle of K=1" in summary
    assert bench.breadth_summary([{"mode": "solve-max"}]) is None
    assert "(K = 4, noise 0.3: " in bench.markdown_table(records)

    solve = bench.package_solve(TRMForGridReasoning(config), random_batch(2), "fp32", "max", max_steps=2,
                                samples=4, noise_std=0.3)
    first, again = solve(), solve()  # a fresh generator per call: every timed call computes the same
    assert first.sample_predictions.shape == (2, 4, 16) and torch.equal(first.sample_predictions,
                                                                        again.sample_predictions)


@pytest.mark.parametrize("quick", [True, False])
def test_plans_measure_solve_with_k_samples(quick: bool) -> None:
    sampled = [case for case in bench.default_plan(quick).solve if case.samples > 1 or case.noise_std > 0]
    assert {case.preset for case in sampled} == {"Sudoku-MLP"} and {case.noise_std for case in sampled} == {0.3}
    assert [case.samples for case in sampled] == ([1, 8] if quick else [1, 8, 32])
    assert len({(case.batch_size, case.max_steps) for case in sampled}) == 1  # the same puzzles for every K


def test_targets_are_judged_from_the_records() -> None:
    records = [
        {"preset": "Sudoku-MLP", "mode": "train", "dtype": "bf16", "batch_size": 32, "implementation": "package",
         "compiled": False, "speedup_vs_baseline": 2.1},
        {"preset": "Sudoku-MLP", "mode": "train", "dtype": "bf16", "batch_size": 64, "implementation": "package",
         "compiled": False, "speedup_vs_baseline": 1.5},
        {"preset": "Sudoku-4x4 demo (trained)", "mode": "solve-max", "samples_per_s": 10.0, "exact_accuracy": 0.99},
        {"preset": "Sudoku-4x4 demo (trained)", "mode": "solve-act", "samples_per_s": 40.0, "exact_accuracy": 0.987},
    ]
    met = [t["met"] for t in bench.evaluate_targets(records)]
    assert met == [True, False, True]
    records[3]["exact_accuracy"] = 0.98  # one point lower: the ACT target fails
    assert bench.evaluate_targets(records)[2]["met"] is False


def test_refill_target_needs_the_speedup_and_the_same_results() -> None:
    preset = "Sudoku-4x4 varied halting"
    records = [{"preset": preset, "mode": "solve-max", "samples_per_s": 20.0, "exact_accuracy": 0.99},
               {"preset": preset, "mode": "solve-act-shrink", "samples_per_s": 200.0, "exact_accuracy": 0.99},
               {"preset": preset, "mode": "solve-act-refill", "samples_per_s": 320.0, "exact_accuracy": 0.99,
                "same_answers_and_steps_as_shrink": True}]
    assert [t["met"] for t in bench.evaluate_targets(records)] == [True]  # 1.6x
    records[2]["same_answers_and_steps_as_shrink"] = False
    assert [t["met"] for t in bench.evaluate_targets(records)] == [False]
    records[2].update(samples_per_s=280.0, same_answers_and_steps_as_shrink=True)  # 1.4x
    assert [t["met"] for t in bench.evaluate_targets(records)] == [False]


def test_json_is_written_atomically(tmp_path) -> None:
    path = tmp_path / "out" / "bench.json"
    bench.write_json(str(path), {"records": [{"preset": "x"}]})
    assert json.loads(path.read_text()) == {"records": [{"preset": "x"}]}
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]


def test_cli_parser_and_subcommand(monkeypatch) -> None:
    from modeling_trm.commands import main

    args = bench.build_parser().parse_args(["--quick", "--json", "x.json"])
    assert args.quick and args.json == "x.json"
    seen = []
    monkeypatch.setattr(bench, "main_from_args", lambda parsed: seen.append(parsed) or 0)
    assert main(["bench", "--threads", "1"]) == 0  # `trm bench` hands its options to the suite's parser
    assert len(seen) == 1 and seen[0].threads == 1 and not seen[0].quick


# ----------------------------------------------------------------------------- the package's bf16 fast path


@pytest.mark.parametrize("dim", [-1, 1])
def test_fused_add_norm_backward_matches_autograd(dim: int) -> None:
    a = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _AddRMSNorm.apply(a, b, 1e-5, dim), (a, b))
    plain = a + b
    expected = plain * torch.rsqrt(plain.square().mean(dim, keepdim=True) + 1e-5)
    torch.testing.assert_close(_AddRMSNorm.apply(a, b, 1e-5, dim), expected)


def test_fused_swiglu_backward_matches_autograd() -> None:
    gate_up = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: _SwiGLUActivation.apply(g, -1), (gate_up,))
    gate, up = gate_up.chunk(2, -1)
    torch.testing.assert_close(_SwiGLUActivation.apply(gate_up, -1), torch.nn.functional.silu(gate) * up)


@pytest.mark.parametrize("mixer", ["mlp_t", "attention"])
def test_bf16_fast_path_stays_close_to_fp32(mixer: str) -> None:
    model = TRMForGridReasoning(tiny_config(mixer=mixer, pos_encodings="none" if mixer == "mlp_t" else "rope",
                                            H_cycles=1, L_cycles=1, loss_type="softmax")).train()
    ids, labels = random_batch(3), random_batch(3, seed=1)
    reference = model(ids, labels=labels)
    reference.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model(ids, labels=labels)
    fast.loss.backward()
    assert fast.state.y.dtype == torch.bfloat16  # the residual stream and carry stay in bf16
    assert (fast.logits.float() - reference.logits).norm() / reference.logits.norm() < 0.03
    for name, grad in grads.items():
        error = (dict(model.named_parameters())[name].grad - grad).norm() / grad.norm().clamp_min(1e-12)
        assert error < 0.08, name
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the in-place path without a graph
        torch.testing.assert_close(model(ids, labels=labels).logits, fast.logits.detach(), rtol=0, atol=0)


def test_memory_probe_reports_the_step_peak_above_the_set_up() -> None:
    from modeling_trm.benchmarks.memory_probe import probe
    from modeling_trm.dtypes import native_dtype

    # the dtype this CPU runs natively: bf16 without bf16 units is emulated, about 15x slower than fp32
    result = probe("sudoku-mlp", 2, "package", native_dtype("cpu"), steps=1)
    assert result["peak_rss_mb"] >= result["rss_ready_mb"] > 0
    assert result["step_added_mb"] == pytest.approx(result["peak_rss_mb"] - result["rss_ready_mb"], abs=0.2)


# ----------------------------------------------------------------------------- dtypes follow the hardware


@pytest.fixture
def bf16_units(monkeypatch):
    """Set whether the CPU 'has' bf16 units (AVX512-BF16 / AMX): `bf16_units(True)`."""
    from modeling_trm import dtypes

    return lambda present: monkeypatch.setattr(dtypes, "cpu_supports_bf16", lambda: present)


def test_native_dtype_follows_the_cpu_and_the_gpu(bf16_units, monkeypatch) -> None:
    from modeling_trm import dtypes
    from modeling_trm.inference.evaluation import resolve_dtype
    from modeling_trm.training import trainer

    assert trainer.cpu_supports_bf16 is dtypes.cpu_supports_bf16  # one check, which the trainer imports
    bf16_units(True)
    assert dtypes.native_dtype("cpu") == "bf16" and dtypes.bf16_skip_reason("cpu") is None
    assert resolve_dtype("auto", torch.device("cpu")) == "bf16"  # trm eval --dtype auto
    bf16_units(False)
    assert dtypes.native_dtype("cpu") == "fp32" and dtypes.native_dtype(torch.device("cpu")) == "fp32"
    assert "AVX512-BF16" in dtypes.bf16_skip_reason("cpu") and "AMX" in dtypes.bf16_skip_reason("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == "fp32"
    assert resolve_dtype("bf16", torch.device("cpu")) == "bf16"  # an explicit choice is kept
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dtypes.native_dtype("cuda") == dtypes.native_dtype("cuda:1") == "bf16"  # whatever the CPU has
    assert resolve_dtype("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dtypes.native_dtype("cuda") == "fp32" and "is_bf16_supported" in dtypes.bf16_skip_reason("cuda")
    assert dtypes.native_dtype("meta") == "fp32"


def _plan_dtypes(plan) -> set[str]:
    return {case.dtype for case in plan.train + plan.solve}


@pytest.mark.parametrize("quick", [True, False])
def test_bench_plan_dtypes_follow_the_cpu(bf16_units, quick: bool) -> None:
    bf16_units(True)
    plan = bench.default_plan(quick)
    assert plan.dtype == "bf16" and plan.peak_dtypes == ("fp32", "bf16") and plan.notes == []
    fp32_cases = [case for case in plan.train + plan.solve if case.dtype == "fp32"]
    # beside bf16, the full plan keeps one fp32 training row (what bf16 gains), without a baseline
    assert [(c.preset, c.baseline) for c in fp32_cases] == ([] if quick else [("Sudoku-MLP", False)])
    bf16_units(False)
    plan = bench.default_plan(quick)
    assert plan.dtype == "fp32" and _plan_dtypes(plan) == {"fp32"} and plan.peak_dtypes == ("fp32",)
    assert len(plan.notes) == 1 and plan.notes[0].startswith("bf16 skipped: this CPU has no bf16 units")
    assert "AVX512-BF16" in plan.notes[0] and plan.notes[0].endswith("every row runs in fp32")
    assert len({(c.preset, c.batch_size, c.compiled) for c in plan.train}) == len(plan.train)  # no duplicate rows


def test_quick_plan_fits_two_minutes_of_fp32_on_two_cores(bf16_units) -> None:
    """--quick promises under 2 minutes on 2 idle cores. The slowest native case is fp32 on an AVX2 CPU
    (about 30 GFLOP/s per core): the model rows' matmul FLOPs, every call counted (first call, warm-up,
    timed runs; package and baseline), must leave most of the 2 minutes to the demo rows and the peaks,
    and the demo model (about 2 TFLOP to train) is not trained by --quick."""
    bf16_units(False)
    plan = bench.default_plan(True)
    total = 0.0
    for case in plan.train:
        config = TRMConfig.from_preset(bench.PRESETS[case.preset])
        runs = max(case.warmup, 1) + case.repeats
        total += training_step_flops(config, case.batch_size) * runs * (2 if case.baseline else 1)
    for case in plan.solve:
        config = TRMConfig.from_preset(bench.PRESETS[case.preset])
        total += (forward_step_flops(config, case.batch_size * case.samples) * case.max_steps
                  * (max(case.warmup, 1) + case.repeats))
    assert total / (2 * 30e9) < 40, f"{total / 1e12:.2f} TFLOP: {total / 60e9:.0f} s at 60 GFLOP/s"
    assert plan.demo_puzzles is not None and plan.demo_puzzles <= 256 and plan.memory_batch is None
    assert not plan.demo_train and bench.default_plan(False).demo_train


@pytest.mark.parametrize("units", [True, False])
def test_suite_measures_only_native_peaks_and_says_why(bf16_units, monkeypatch, units: bool) -> None:
    """The suite (its cases stubbed): the peaks it measures, the dtype the demo rows get, the skip line."""
    bf16_units(units)
    calls = {"peaks": [], "train": [], "solve": [], "demo": []}

    def fake_peaks(batch_rows, repeats, dtypes, device):
        calls["peaks"].append((tuple(dtypes), device))
        return {d: {"gflops_per_s": 50.0, "median_gflops_per_s": 45.0, "shape": "s"} for d in dtypes}

    monkeypatch.setattr(bench, "measure_peaks", fake_peaks)
    monkeypatch.setattr(bench, "run_train_case", lambda case, peak, log, device: calls["train"].append(case) or [])
    monkeypatch.setattr(bench, "run_solve_case", lambda case, peak, log: calls["solve"].append(case) or {
        "compiled": False, "gflops_per_s": 1.0, "dtype": case.dtype, "preset": case.preset, "mode": "solve-max"})
    monkeypatch.setattr(bench, "run_act_demo", lambda *a, **k: calls["demo"].append(k) or [])
    monkeypatch.setattr(bench, "run_refill_comparison", lambda *a, **k: calls["demo"].append(k) or [])
    monkeypatch.setattr(bench.act_demo, "demo_model_cached", lambda: True)
    overhead = {"ratio": 1.1, "trainer_ms_per_step": 2.2, "plain_ms_per_step": 2.0, "met": True}
    monkeypatch.setattr(bench.host_overhead, "measure", lambda steps, repeats, device, log: overhead)
    lines: list[str] = []
    result = bench.run_suite(bench.default_plan(True), log=lines.append)
    assert result["host_overhead"] is overhead
    assert any(t["target"].startswith("TRMTrainer time per step <= 1.25x") and t["met"] for t in result["targets"])
    expected = "bf16" if units else "fp32"
    assert calls["peaks"] == [(("fp32", "bf16") if units else ("fp32",), "cpu")] * 2  # start and end
    assert {case.dtype for case in calls["train"] + calls["solve"]} == {expected}
    assert [k["dtype"] for k in calls["demo"]] == [expected] * 2
    skipped = [line for line in lines if line.startswith("bf16 skipped")]
    assert len(skipped) == (0 if units else 1) and result["dtype"] == expected
    assert set(result["matmul_peak"]) == ({"fp32", "bf16"} if units else {"fp32"})
    assert [k["puzzles"] for k in calls["demo"]] == [bench.QUICK_DEMO_PUZZLES] * 2

    monkeypatch.setattr(bench.act_demo, "demo_model_cached", lambda: False)  # --quick never trains it
    lines.clear()
    bench.run_suite(bench.default_plan(True), log=lines.append)
    assert len(calls["demo"]) == 2 and any(line.startswith("ACT demo and slot-refill rows skipped") for line in lines)


def test_gpu_plan_trains_both_sudoku_models_at_batch_768_in_bf16(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    plan = bench.default_plan(False, device="cuda")
    assert [(c.preset, c.batch_size, c.dtype, c.baseline) for c in plan.train] == [
        ("Sudoku-MLP", 768, "bf16", False), ("Sudoku-Att", 768, "bf16", False)]
    assert plan.solve == [] and not plan.demo and plan.memory_batch is None and plan.notes == []
    assert plan.peak_dtypes == ("fp32", "bf16") and plan.peak_rows == 768 * 97 and plan.device == "cuda"
    assert bench.build_parser().parse_args(["--gpu"]).device == "cuda"
    assert bench.build_parser().parse_args([]).device == "cpu"


def test_gpu_plan_refused_without_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        bench.main(["--device", "cuda"])
    with pytest.raises(ValueError, match="cpu or cuda"):
        bench.main(["--device", "meta"])


def test_gpu_records_report_peak_allocated_memory() -> None:
    from modeling_trm.benchmarks.measure import Timing

    timing = Timing(wall=[0.5], cpu=[0.5], others_cores=[None])
    record = bench._record("Sudoku-MLP", 768, "train", "bf16", "package", timing, 768, 1e12, _tiny_peak(),
                           (100.0, 2148.0), None, device="cuda")
    assert record["peak_rss_mb"] is None and record["device"] == "cuda"
    assert (record["peak_cuda_memory_mb"], record["cuda_memory_added_mb"]) == (2148.0, 2048.0)
    assert bench._row(record).split()[-1] == "2148"  # the table's memory column (no `others` figure)
    cpu = bench._record("Sudoku-MLP", 2, "train", "fp32", "package", timing, 2, 1e9, _tiny_peak(), (10.0, 30.0), None)
    assert (cpu["peak_rss_mb"], cpu["rss_added_mb"], cpu["device"]) == (30.0, 20.0, "cpu")


def test_memory_probe_defaults_to_the_native_dtype(bf16_units, monkeypatch) -> None:
    from modeling_trm.benchmarks import memory_probe

    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        return type("Done", (), {"returncode": 0, "stdout": '{"peak_rss_mb": 1}\n', "stderr": ""})()

    monkeypatch.setattr(memory_probe.subprocess, "run", fake_run)
    for units, expected in ((False, "fp32"), (True, "bf16")):
        bf16_units(units)
        memory_probe.probe_in_subprocess("sudoku-mlp", 2, "package")
        assert commands[-1][commands[-1].index("--dtype") + 1] == expected


def test_matmul_peaks_only_for_the_dtypes_asked() -> None:
    from modeling_trm.benchmarks.matmul_peak import measure_peaks

    peaks = measure_peaks(batch_rows=4, repeats=1, dtypes=("fp32",))
    assert list(peaks) == ["fp32"] and peaks["fp32"]["gflops_per_s"] > 0


def test_host_overhead_section_times_the_trainer_and_a_plain_loop() -> None:
    """`benchmarks/host_overhead.py` (issue 24 item 4): both implementations run, the table says the ratio."""
    from benchmarks import host_overhead

    lines: list[str] = []
    result = host_overhead.measure(steps=3, repeats=1, warmup=1, log=lines.append)
    assert result["trainer_ms_per_step"] > 0 and result["plain_ms_per_step"] > 0
    assert result["ratio"] == pytest.approx(result["trainer_ms_per_step"] / result["plain_ms_per_step"], rel=1e-2)
    assert lines[0].startswith("host overhead per step (ms)") and "TRMTrainer" in lines[1]
    assert "target <= 1.25x" in lines[-1]

