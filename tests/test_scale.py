"""`trm scale` (issue 22 item 6): accuracy against network calls for depth, breadth, both and adaptive."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_models import tiny_model

from modeling_trm.commands import main
from modeling_trm.data.generate_sudoku import generate_sudoku_splits
from modeling_trm.data.metadata import load_trm_dataset, save_trm_dataset
from modeling_trm.data.puzzle_csv import write_puzzle_csv
from modeling_trm.data.sudoku import build_sudoku_dataset
from modeling_trm.experiments.scaling import plan_points, run_scaling
from modeling_trm.inference.evaluation import evaluate_model

CALLS_PER_STEP = 6  # the tiny model: T=2 recursions of n=2 z-updates and one y-update


@pytest.fixture(scope="module")
def sudoku_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sudoku")
    for split, rows in generate_sudoku_splits(4, 8, 12, seed=0).items():
        write_puzzle_csv(root / f"{split}.csv", rows)
    dataset, metadata = build_sudoku_dataset(root)
    return save_trm_dataset(dataset, metadata, root / "data")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model whose halting head has either sign, so some puzzles are confident early and others not."""
    model = tiny_model(num_puzzle_identifiers=1).eval()
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
        model.q_head.bias.fill_(-1.2)  # plain ACT: 2 of the 12 test puzzles still unsure after 4 steps
    folder = tmp_path_factory.mktemp("model") / "tiny"
    model.save_pretrained(folder)
    return folder


def test_the_plan_covers_every_mode_cheapest_first() -> None:
    points = plan_points(16, [1, 4, 16, 64], [4, 16])
    assert [(p.mode, p.max_steps, p.samples, p.escalate_after) for p in points] == [
        ("plain", 16, 1, None), ("depth", 64, 1, None),
        ("breadth", 16, 4, None), ("both", 64, 4, None), ("adaptive", 64, 4, 16),
        ("breadth", 16, 16, None), ("both", 64, 16, None), ("adaptive", 64, 16, 16)]
    chosen = plan_points(16, [1, 4, 16, 64], [4, 16], modes=["adaptive"])
    assert [(p.mode, p.samples) for p in chosen] == [("plain", 1), ("adaptive", 4), ("adaptive", 16)]
    stricter = plan_points(16, [16, 64], [4], modes=["adaptive"], confidences=[None, 0.9, 0.9])
    assert [(p.mode, p.escalate_confidence, p.key()) for p in stricter] == [
        ("plain", None, "plain/steps=16/samples=1/after=None"),
        ("adaptive", None, "adaptive/steps=64/samples=4/after=16"),
        ("adaptive", 0.9, "adaptive/steps=64/samples=4/after=16/confidence=0.9")]
    with pytest.raises(ValueError, match="escalation confidences must be halting probabilities"):
        plan_points(16, [16], [4], confidences=[1.0])
    with pytest.raises(ValueError, match="modes must be some of"):
        plan_points(16, [16], [4], modes=["deep"])
    with pytest.raises(ValueError, match="samples must be integers >= 2"):
        plan_points(16, [16], [1])
    with pytest.raises(ValueError, match="depths must be positive integers"):
        plan_points(16, [0, 4], [4])


def test_trm_scale_measures_every_point_and_resumes(sudoku_dir, model_dir, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "scale"
    argv = ["scale", str(model_dir), "--dataset", str(sudoku_dir), "--out", str(out), "--depths", "1", "4", "8",
            "--samples", "3", "--noise-std", "0.5", "--seed", "1", "--batch-size", "8", "--threads", "1"]
    # some modes first (plus plain, the reference); the full sweep then adds only the missing points
    assert main([*argv, "--modes", "adaptive"]) == 0
    partial = json.loads((out / "scaling.json").read_text())
    assert [row["key"] for row in partial["rows"]] == ["plain/steps=4/samples=1/after=None",
                                                       "adaptive/steps=8/samples=3/after=4"]
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("already measured") == 2
    record = json.loads((out / "scaling.json").read_text())
    assert record["rows"][:2] == partial["rows"]
    rows = {row["key"]: row for row in record["rows"]}
    assert list(rows) == ["plain/steps=4/samples=1/after=None", "adaptive/steps=8/samples=3/after=4",
                          "depth/steps=1", "depth/steps=4", "depth/steps=8",
                          "breadth/steps=4/samples=3/after=None", "both/steps=8/samples=3/after=None"]
    # the tiny model's default is 4 steps; depth rows cost d steps of 6 calls each, the plain run 4 of them
    assert [rows[f"depth/steps={d}"]["mean_network_calls"] for d in (1, 4, 8)] == [6.0, 24.0, 48.0]
    assert rows["plain/steps=4/samples=1/after=None"]["mean_network_calls"] == 4 * CALLS_PER_STEP
    assert rows["breadth/steps=4/samples=3/after=None"]["mean_network_calls"] == 3 * 4 * CALLS_PER_STEP
    assert rows["both/steps=8/samples=3/after=None"]["mean_network_calls"] == 3 * 8 * CALLS_PER_STEP

    # the plain and adaptive points equal direct evaluations of the same settings
    split, metadata = load_trm_dataset(sudoku_dir)
    from modeling_trm.inference.evaluation import load_model_for_eval

    model = load_model_for_eval(model_dir)
    plain = evaluate_model(model, split["test"], metadata, batch_size=8, progress=False)
    assert rows["plain/steps=4/samples=1/after=None"]["exact_accuracy"] == plain["metrics"]["exact_accuracy"]
    assert rows["depth/steps=4"]["exact_accuracy"] == plain["metrics"]["exact_accuracy"]
    adaptive = evaluate_model(model, split["test"], metadata, batch_size=8, progress=False, max_steps=8, samples=3,
                              noise_std=0.5, seed=1, escalate=True, escalate_after=4)
    row = rows["adaptive/steps=8/samples=3/after=4"]
    assert row["escalated_fraction"] == adaptive["compute"]["escalated_fraction"]
    assert 0 < row["escalated_fraction"] < 1, "some puzzles must be confident, others not"
    assert row["mean_network_calls"] == adaptive["compute"]["mean_network_calls"]
    assert row["exact_accuracy"] == adaptive["metrics"]["exact_accuracy"]
    # only the unconfident ones paid for K trajectories: cheaper than 'both' at the same depth and K
    assert row["mean_network_calls"] < rows["both/steps=8/samples=3/after=None"]["mean_network_calls"]

    table = (out / "scaling.md").read_text()
    assert "| adaptive | 8 | 3 |" in table and "| plain | 4 | 1 |" in table
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a rerun measures nothing again (nor loads the weights); other settings in the same folder are refused
    capsys.readouterr()
    import modeling_trm.inference.evaluation as evaluation

    monkeypatch.setattr(evaluation, "load_model_for_eval", lambda *a, **k: pytest.fail("weights loaded"))
    assert main(argv) == 0
    assert capsys.readouterr().out.count("already measured") == 5  # every point of the plan
    assert json.loads((out / "scaling.json").read_text()) == record
    assert main([*argv[:-2], "--threads", "1", "--seed", "2"]) == 2
    assert "holds a sweep with other settings" in capsys.readouterr().err

    # a stricter escalation threshold adds its own adaptive point, equal to a direct evaluation
    monkeypatch.undo()
    assert main([*argv, "--modes", "adaptive", "--escalate-confidence", "0.9"]) == 0
    strict = json.loads((out / "scaling.json").read_text())["rows"][-1]
    assert strict["key"] == "adaptive/steps=8/samples=3/after=4/confidence=0.9"
    direct = evaluate_model(model, split["test"], metadata, batch_size=8, progress=False, max_steps=8, samples=3,
                            noise_std=0.5, seed=1, escalate=True, escalate_after=4, escalate_confidence=0.9)
    assert strict["exact_accuracy"] == direct["metrics"]["exact_accuracy"]
    assert strict["escalated_fraction"] == direct["compute"]["escalated_fraction"] > row["escalated_fraction"]
    assert "| adaptive (P(halt) > 0.9) | 8 | 3 |" in (out / "scaling.md").read_text()


def test_bad_options_are_refused_before_the_weights_load(sudoku_dir, model_dir, tmp_path, capsys, monkeypatch) -> None:
    import modeling_trm.inference.evaluation as evaluation

    monkeypatch.setattr(evaluation, "load_model_for_eval", lambda *a, **k: pytest.fail("weights loaded"))
    base = ["scale", str(model_dir), "--dataset", str(sudoku_dir), "--out", str(tmp_path / "s")]
    for flags, message in ((["--samples", "1"], "samples must be integers >= 2"),
                           (["--noise-std", "-1"], "noise_std must be a finite number >= 0"),
                           (["--noise-std", "0"], "--noise-std must be > 0"),
                           (["--depths", "0"], "depths must be positive integers"),
                           (["--split", "validation"], "no split 'validation'"),
                           (["--modes", "deep"], "modes must be some of"),
                           (["--escalate-confidence", "1.5"], "escalation confidences must be halting")):
        assert main([*base, *flags]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_run_scaling_records_each_point_before_the_next(tmp_path) -> None:
    calls = []

    def evaluate(**options):
        calls.append(options)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the sweep is stopped while measuring the second point
        return {"metrics": {"exact_accuracy": 0.5}, "compute": {"mean_network_calls": 12.0, "mean_total_steps": 2.0,
                                                                 "network_calls_per_step": 6,
                                                                 "escalated_fraction": 0.0},
                "wall_time_s": 1.0, "accuracy_by_steps": {"1": 0.25, "2": 0.5}}

    with pytest.raises(KeyboardInterrupt):
        run_scaling(evaluate, tmp_path, default_steps=2, depths=[1, 2, 4], samples=[4], log=lambda line: None)
    record = json.loads((tmp_path / "scaling.json").read_text())
    assert record["points"] == ["plain/steps=2/samples=1/after=None"]
    assert calls[0] == {"max_steps": 2, "halting": "max"}
    assert calls[1] == {"max_steps": 4, "halting": "max", "step_budgets": [1, 2, 4]}  # the depth run


def test_a_depth_sweep_no_deeper_than_the_default_is_read_off_the_plain_run(tmp_path) -> None:
    calls = []

    def evaluate(**options):
        calls.append(options)
        return {"metrics": {"exact_accuracy": 0.5}, "compute": {"mean_network_calls": 12.0, "mean_total_steps": 2.0,
                                                                 "network_calls_per_step": 6,
                                                                 "escalated_fraction": 0.0},
                "wall_time_s": 1.0, "accuracy_by_steps": {"1": 0.25, "2": 0.5}}

    record = run_scaling(evaluate, tmp_path, default_steps=2, depths=[1, 2], samples=[4], modes=["depth"],
                         log=lambda line: None)
    assert calls == [{"max_steps": 2, "halting": "max", "step_budgets": [1, 2]}]  # one run, not two
    assert [(row["key"], row["exact_accuracy"]) for row in record["rows"]] == [
        ("plain/steps=2/samples=1/after=None", 0.5), ("depth/steps=1", 0.25), ("depth/steps=2", 0.5)]
    assert record["points"] == ["plain/steps=2/samples=1/after=None", "depth/steps=2/samples=1/after=None"]
    assert run_scaling(evaluate, tmp_path, default_steps=2, depths=[1, 2], samples=[4], modes=["depth"],
                       log=lambda line: None) == record and len(calls) == 1  # resumed: nothing to measure
