"""`trm demo` on a much shorter budget: every output the demo promises exists and loads."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel

from modeling_trm.commands import main
from modeling_trm.dtypes import native_dtype
from modeling_trm.experiments import demo as demo_module
from modeling_trm.experiments.demo import run_demo
from modeling_trm.inference.evaluation import resolve_dtype


def test_demo_writes_a_loadable_model_results_and_pictures(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    run_demo(str(out), size=4, recipe_overrides={
        "data": {"num_train": 200, "num_test": 40}, "model": {"H_cycles": 1, "L_cycles": 1},
        "training": {"max_steps": 16, "eval_steps": 8}})
    printed = capsys.readouterr().out
    for phase in ("[data", "[train", "[evaluate", "[pictures", "[reload"):
        assert phase in printed
    assert "| exact accuracy, ACT |" in printed and "unseen puzzle" in printed
    # a fixed number of steps, an up-front estimate, no cap, and the learning curve
    assert "16 of 16 supervision steps" in printed and "CUT SHORT" not in printed
    assert "[estimate]" in printed and "for 16 steps" in printed
    assert "learning curve (held-out exact accuracy): step 8: " in printed
    model_dir = out / "model"
    for name in ("config.json", "model.safetensors", "modeling_trm.py", "configuration_trm.py", "results.json",
                 "README.md"):
        assert (model_dir / name).is_file(), name
    results = json.loads((model_dir / "results.json").read_text())
    assert results["dataset"]["num_examples"] == 40
    assert set(results["accuracy_by_steps"]) == {"1", "2", "4", "8", "16"}
    assert results["accuracy_by_steps"]["16"] == pytest.approx(results["metrics"]["exact_accuracy"])
    # trained with the recipe's N_sup = 2, scored with its solve_max_steps = 16
    assert results["protocol"]["max_steps"] == 16 and "after 16 steps" in printed
    assert 1 <= results["act"]["mean_steps"] <= 16
    # the demo writes the same results file as `trm eval`: protocol, dataset identity and versions
    assert results["protocol"]["halting"] == "max" and results["protocol"]["dtype"] == "fp32"
    assert results["dataset"]["split"] == "test" and results["versions"]["torch"]
    assert results["training"]["steps"] == results["training"]["max_steps"] == 16
    assert results["training"]["cut_short_by_minutes"] is None
    assert [point["step"] for point in results["training"]["learning_curve"]] == [8, 16]
    for picture in ("refinement.png", "accuracy_vs_steps.png", "learning_curve.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = ModelCard.load(model_dir / "README.md")
    assert card.data.to_dict()["model-index"][0]["name"] == "demo"  # the run folder, not "model"
    assert card.data.to_dict()["model-index"][0]["results"][0]["metrics"][0]["value"] == \
        results["metrics"]["exact_accuracy"]
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True)
    assert model.config.grid_shape == [4, 4] and model.config.halt_max_steps == 2
    assert model.config.default_solve_steps == 16  # so the loaded model solves the way it was scored
    # the command refuses to overwrite the outputs of a previous run
    assert main(["demo", "--output-dir", str(out)]) == 2


class _State:
    def __init__(self, step: int, max_steps: int) -> None:
        self.global_step, self.max_steps = step, max_steps


def test_minutes_cap_stops_training_and_is_recorded(monkeypatch) -> None:
    from transformers import TrainerControl

    clock = iter([0.0, 0.0, 30.0, 61.0])  # __init__, on_train_begin, step 1, step 2
    monkeypatch.setattr(demo_module, "time", SimpleNamespace(time=lambda: next(clock)))
    budget = demo_module.TimeBudget(60)
    control = TrainerControl()
    budget.on_train_begin(None, _State(0, 100), control)
    budget.on_step_end(None, _State(1, 100), control)
    assert not control.should_training_stop and budget.stopped_at is None
    budget.on_step_end(None, _State(2, 100), control)
    assert control.should_training_stop and budget.stopped_at == 2
    # reaching the last step within the budget is not "cut short"
    monkeypatch.setattr(demo_module, "time", SimpleNamespace(time=lambda: 1000.0))
    finished = demo_module.TimeBudget(60)
    finished.on_step_end(None, _State(100, 100), TrainerControl())
    assert finished.stopped_at is None


def test_step_time_estimate_extrapolates_the_timed_steps(monkeypatch, capsys) -> None:
    from transformers import TrainerControl

    times = iter([10.0, 12.0])
    monkeypatch.setattr(demo_module, "time", SimpleNamespace(time=lambda: next(times)))
    estimate = demo_module.StepTimeEstimate(skip=3, timed=10)
    for step in range(1, 14):
        estimate.on_step_end(None, _State(step, 600), TrainerControl())
    assert estimate.seconds_per_step == pytest.approx(0.2)
    assert "0.200 s/step over steps 4-13 -> about 2.0 min for 600 steps" in capsys.readouterr().out


def test_unknown_demo_task_is_refused_before_any_work(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown demo task 'sudoku99'"):
        run_demo(str(tmp_path / "x"), task="sudoku99")
    assert not (tmp_path / "x").exists()


def test_sudoku9_task_runs_its_recipe_with_a_plan_curriculum_and_rating_bands(tmp_path, capsys) -> None:
    out = tmp_path / "demo9"
    run_demo(str(out), task="sudoku9", size=4, recipe_overrides={
        "data": {"num_train": 60, "num_test": 30, "blank_range": [4, 10], "num_aug": 0},
        "model": {"hidden_size": 32, "H_cycles": 1, "L_cycles": 1},
        "training": {"max_steps": 6, "eval_steps": 3, "curriculum_steps": 4, "curriculum_start_blanks": 4}})
    printed = capsys.readouterr().out
    # the plan comes before any work: 6 steps, and the recipe's idle phase times for the dtype this machine runs
    # (bf16 units: 0.6 + 55.5 + 3.1 = 59.2 min; fp32: 225.4 min, test_the_plan_states_the_times_...)
    assert printed.index("[plan    ] recipe sudoku9-cpu: 6 training steps") < printed.index("[data")
    times = ("about 59.2 min in all (data ~0.6 min, train ~55.5 min, evaluate ~3.1 min)" if native_dtype("cpu") == "bf16"
             else "about 225.4 min in all (data ~1.2 min, train ~211 min, evaluate ~13.2 min)")
    assert times in printed
    results = json.loads((out / "model" / "results.json").read_text())
    assert results["training"]["recipe"] == "sudoku9-cpu" and results["training"]["steps"] == 6
    bands = results["accuracy_by_rating"]
    assert sum(row["num_examples"] for row in bands.values()) == 30
    for band, row in bands.items():
        assert f"| exact accuracy, rating {band} | {row['exact_accuracy']:.1%} of {row['num_examples']} |" in printed
    assert "| rating | puzzles | exact accuracy |" in (out / "model" / "README.md").read_text()
    assert results["protocol"]["dtype"] == resolve_dtype("auto", torch.device("cpu"))  # the recipe's demo.eval_dtype


def test_recipes_without_phase_times_announce_no_plan() -> None:
    from modeling_trm.recipes_io import load_recipe

    assert demo_module.announce_plan(load_recipe("demo")) is None


def test_the_plan_states_the_times_of_the_dtype_this_machine_runs() -> None:
    from modeling_trm.recipes_io import load_recipe

    recipe = load_recipe("sudoku9-cpu")
    bf16, fp32 = (demo_module.announce_plan(recipe, dtype) for dtype in ("bf16", "fp32"))
    assert "with bf16 units about 59.2 min in all (data ~0.6 min, train ~55.5 min, evaluate ~3.1 min)" in bf16
    assert "without bf16 units (fp32) about 225.4 min in all (data ~1.2 min, train ~211 min, evaluate ~13.2 min)" \
        in fp32
    del recipe["demo"]["idle_minutes_fp32"]  # a recipe measured only with bf16 units says so on an fp32 machine
    assert "(this one runs fp32: expect longer) about 59.2 min" in demo_module.announce_plan(recipe, "fp32")
