"""`trm demo`: generate Sudoku offline, train a small TRM on this CPU, score it, draw it, package it.

Phases (one summary line each): data -> train (TRMTrainer, a fixed number of steps from the task's
recipe, so the result depends on the seed, not on the machine's speed) -> evaluate (paper protocol
and ACT) -> save a `from_pretrained` folder with card and results -> pictures -> reload with
AutoModel and solve unseen puzzles.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

# `trm demo --task NAME` -> the recipe in configuration/ that it trains.
DEMO_TASKS: dict[str, str] = {"sudoku6": "demo", "sudoku9": "sudoku9-cpu"}
TIMING_SKIP_STEPS = 3  # the first steps warm up the allocator and the autocast caches
TIMING_STEPS = 10  # steps timed after those for the up-front estimate


class StepTimeEstimate(TrainerCallback):
    """Times a few early steps and prints how long the whole fixed-step run should take."""

    def __init__(self, skip: int = TIMING_SKIP_STEPS, timed: int = TIMING_STEPS) -> None:
        self.skip, self.timed = skip, timed
        self.start: float | None = None
        self.seconds_per_step: float | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.skip:
            self.start = time.time()
        elif state.global_step == self.skip + self.timed and self.start is not None:
            self.seconds_per_step = (time.time() - self.start) / self.timed
            remaining = self.seconds_per_step * state.max_steps
            print(f"\n[estimate] {self.seconds_per_step:.3f} s/step over steps {self.skip + 1}-{state.global_step} "
                  f"-> about {remaining / 60:.1f} min for {state.max_steps} steps on {torch.get_num_threads()} "
                  f"threads (plus the periodic evaluations)", flush=True)
        return control


class TimeBudget(TrainerCallback):
    """Optional cap (`--minutes`): stops training once the wall-clock budget is spent and records where,
    so the summary can say the run was cut short (the result then depends on the machine's speed)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.time()
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step < state.max_steps and time.time() - self.start > self.seconds:
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control



def _phase(name: str, start: float, detail: str) -> None:
    print(f"[{name:<8}] {time.time() - start:7.1f}s  {detail}", flush=True)


def encode_rows(rows: list[Any]) -> dict[str, list]:
    """Generated Sudoku rows as dataset columns: 1 = blank, digit d -> token d + 1, one puzzle id."""
    return {
        "input_ids": [[1 if c == "." else int(c) + 1 for c in row.question] for row in rows],
        "labels": [[int(c) + 1 for c in row.answer] for row in rows],
        "puzzle_identifiers": [0] * len(rows),
        "rating": [int(row.rating) for row in rows],
    }


def format_grid(tokens: list[int], size: int, symbols: list[str]) -> str:
    lines = []
    for r in range(size):
        lines.append(" ".join(symbols[t] if len(symbols[t]) == 1 else "?" for t in tokens[r * size:(r + 1) * size]))
    return "\n".join(lines)


def run_demo(output_dir: str = "trm-demo", minutes: float | None = None, size: int | None = None, seed: int = 0,
             overwrite: bool = False, recipe_overrides: dict[str, dict[str, Any]] | None = None,
             task: str = "sudoku6", eval_steps: int | None = None) -> dict[str, Any]:
    """Run every phase; `recipe_overrides` ({"data": {...}, "model": {...}, "training": {...}}) shrinks it for tests.

    Training runs the recipe's `max_steps` (deterministic given the seed); `minutes` only caps it."""
    from transformers import AutoModel, set_seed

    from ..training.learning_curve import format_curve

    from ..data.build import build_from_recipe
    from ..data.generate_sudoku import generate_sudoku_splits
    from ..data.metadata import load_trm_dataset
    from ..dtypes import native_dtype
    from ..modeling_trm import TRMForGridReasoning
    from ..recipes_io import load_recipe
    from ..training.recipe_run import train_from_recipe

    if task not in DEMO_TASKS:
        raise ValueError(f"unknown demo task {task!r}; choose one of {sorted(DEMO_TASKS)}")
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} exists and is not empty; pass --overwrite or another --output-dir")
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = load_recipe(DEMO_TASKS[task])
    recipe["data"]["args"]["seed"] = seed
    if size is not None:
        recipe["data"]["args"]["size"] = size
    recipe["training"]["seed"] = seed
    if eval_steps is not None:
        recipe["training"]["eval_steps"] = eval_steps
    for section, values in (recipe_overrides or {}).items():
        target = recipe[section]["args"] if section == "data" else (
            recipe[section]["overrides"] if section == "model" else recipe[section])
        target.update(values)
    start = time.time()

    size = int(recipe["data"]["args"]["size"])
    plan = announce_plan(recipe, native_dtype("cuda" if torch.cuda.is_available() else "cpu"))
    if plan:
        print(plan, flush=True)
    build_from_recipe(recipe["data"], out / "data", progress=False)
    dataset, metadata = load_trm_dataset(out / "data")
    _phase("data", start, f"{len(dataset['train'])} train / {len(dataset['test'])} test {size}x{size} Sudoku "
                          f"generated offline (seed {seed}) -> {out / 'data'}")

    max_steps = int(recipe["training"]["max_steps"])
    callbacks: list[TrainerCallback] = [StepTimeEstimate()]
    budget = TimeBudget(minutes * 60) if minutes is not None else None
    if budget is not None:
        callbacks.append(budget)
    set_seed(seed)  # the model's initial weights come from the global generator
    trained = train_from_recipe(recipe, out, dataset_dir=str(out / "data"), callbacks=callbacks)
    train_time = trained["train_runtime_s"]
    cut_short = budget is not None and budget.stopped_at is not None
    curve = [(point["step"], point["exact_accuracy"]) for point in trained["learning_curve"]]
    curve_time = trained["curve_eval_time_s"]
    _phase("train", start, f"{trained['global_step']} of {max_steps} supervision steps in {train_time:.0f}s"
                           + (f" ({curve_time:.0f}s of it: {len(curve)} learning-curve evaluations)" if curve else "")
                           + (f" (CUT SHORT by the --minutes {minutes:g} cap)" if cut_short else ""))
    if curve:
        print(f"learning curve (held-out exact accuracy): {format_curve(curve)}", flush=True)

    model_dir = out / "model"
    ema_model = TRMForGridReasoning.from_pretrained(model_dir).eval()
    demo_settings = recipe.get("demo") or {}
    results = score(ema_model, dataset["test"], metadata, out / "data", dtype=demo_settings.get("eval_dtype", "fp32"))
    # the model's default_solve_steps: a recipe may train with fewer (demo: N_sup 2, solve_max_steps 16)
    score_steps = results["protocol"]["max_steps"]
    results["training"] = {"recipe": recipe["name"], "steps": trained["global_step"], "max_steps": max_steps,
                           "cut_short_by_minutes": minutes if cut_short else None,
                           "train_time_s": round(train_time, 1), "curve_eval_time_s": curve_time,
                           "torch_threads": torch.get_num_threads(),
                           "learning_curve": trained["learning_curve"]}
    write_results_and_card(model_dir, results, recipe)
    _phase("evaluate", start, f"exact {results['metrics']['exact_accuracy']:.1%} after {score_steps} steps, "
                              f"ACT {results['act']['exact_accuracy']:.1%} at {results['act']['mean_steps']:.1f} steps"
                              f" ({results['protocol']['dtype']})")

    symbols = list(metadata.id_to_symbol)
    draw(ema_model, dataset["test"], results, out, symbols, size)
    _phase("pictures", start, f"{out / 'refinement.png'}, {out / 'accuracy_vs_steps.png'}")

    reloaded = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    data_args = recipe["data"]["args"]
    spread = data_args.get("blank_range")
    unseen = generate_sudoku_splits(size, 0, 3, seed=seed + 10_000, num_blanks=data_args.get("num_blanks"),
                                    blank_range=None if spread is None else tuple(spread))["test"]
    encoded = encode_rows(unseen)
    solved = reloaded.solve(torch.tensor(encoded["input_ids"]), halting="act")
    for question, answer, prediction, steps in zip(encoded["input_ids"], encoded["labels"],
                                                   solved.predictions.tolist(), solved.steps.tolist()):
        verdict = "correct" if prediction == answer else "wrong"
        print(f"\nunseen puzzle:\n{format_grid(question, size, symbols)}\n"
              f"model's answer ({steps} steps, {verdict}):\n{format_grid(prediction, size, symbols)}")
    _phase("reload", start, f"AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True) "
                            f"solved {len(unseen)} unseen puzzles")

    print("\n| what | value |\n|---|---|")
    print(f"| train time | {train_time:.0f} s ({trained['global_step']} of {max_steps} steps, "
          f"{torch.get_num_threads()} threads; {curve_time:.0f} s of it on {len(curve)} learning-curve evaluations) |")
    if cut_short:
        print(f"| NOTE | training was cut short by the --minutes {minutes:g} cap at step {budget.stopped_at}: "
              f"this result depends on the machine's speed |")
    print(f"| exact accuracy, {score_steps} steps (paper protocol: every step) | {results['metrics']['exact_accuracy']:.1%} "
          f"of {results['dataset']['num_examples']} held-out puzzles |")
    for band, row in (results.get("accuracy_by_rating") or {}).items():
        print(f"| exact accuracy, rating {band} | {row['exact_accuracy']:.1%} of {row['num_examples']} |")
    print(f"| exact accuracy, ACT | {results['act']['exact_accuracy']:.1%} |")
    print(f"| mean ACT steps | {results['act']['mean_steps']:.2f} |")
    print(f"| total time | {time.time() - start:.0f} s |")
    print(f"| outputs | {model_dir} (model, README.md card, results.json), {out}/*.png "
          f"(refinement, accuracy_vs_steps, learning_curve) |")
    return results


def announce_plan(recipe: dict[str, Any], dtype: str = "bf16") -> str | None:
    """The recipe's expected phase times on an idle 2-core CPU, printed before any work so a long demo says up
    front what it will cost; the [estimate] line later measures this machine. `demo.idle_minutes` were measured
    with bf16 units; on a CPU without them (`dtype` "fp32") `demo.idle_minutes_fp32` are used where the recipe
    has them, since fp32 steps take several times longer there."""
    demo = recipe.get("demo") or {}
    minutes = demo.get("idle_minutes")
    if not minutes:
        return None
    where = "an idle 2-core CPU with bf16 units"
    if dtype == "fp32" and demo.get("idle_minutes_fp32"):
        minutes, where = demo["idle_minutes_fp32"], "an idle 2-core CPU without bf16 units (fp32)"
    elif dtype == "fp32":
        where += " (this one runs fp32: expect longer)"
    phases = ", ".join(f"{phase} ~{value:g} min" for phase, value in minutes.items())
    return (f"[plan    ] recipe {recipe['name']}: {int(recipe['training']['max_steps']):,} training steps; on "
            f"{where} about {sum(minutes.values()):g} min in all ({phases}); a busy machine takes longer")


def write_results_and_card(model_dir: Path, results: dict[str, Any], recipe: dict[str, Any]) -> None:
    """results.json and the README.md model card beside the weights (the card reads only the results)."""
    from ..inference.evaluation import write_results
    from ..hub_card import render_model_card

    write_results(results, model_dir / "results.json", overwrite=True)
    card = render_model_card(model_dir, results=results, recipe=recipe, training=results.get("training"))
    card.save(model_dir / "README.md")


def score(model: Any, test: Any, metadata: Any, dataset_path: Path | None = None, dtype: str = "fp32") -> dict[str, Any]:
    """`trm eval`'s results for the test split: paper protocol (every one of the model's `default_solve_steps`),
    ACT read off the same pass.

    Scored in fp32 by default whatever the training dtype: the numbers then do not depend on the CPU's bf16
    units. A recipe may ask for `demo.eval_dtype: "auto"` where fp32 would cost too long (1,000 9x9 puzzles:
    about 3x the bf16 time); the results file records the dtype used."""
    from ..inference.evaluation import evaluate_model

    return evaluate_model(model, test, metadata, halting="max", dtype=dtype, progress=False,
                          dataset_path=dataset_path, split="test")


def draw(model: Any, test: Any, results: dict[str, Any], out: Path, symbols: list[str], size: int) -> None:
    from ..inference.visualize import plot_accuracy_by_steps, plot_refinement

    inputs = torch.tensor(test["input_ids"][:64])
    labels = torch.tensor(test["labels"][:64])
    solved = model.solve(inputs, halting="act", return_trajectory=True)
    # a puzzle the model gets right after visibly refining it, if there is one
    improved = [i for i in range(len(inputs)) if bool((solved.predictions[i] == labels[i]).all())
                and not bool((solved.trajectory[i, 0] == labels[i]).all())]
    index = improved[0] if improved else 0
    steps = int(solved.steps[index])
    probabilities = torch.sigmoid(solved.trajectory_q_halt_logits[index]).tolist()
    plot_refinement(inputs[index].tolist(), labels[index].tolist(), solved.trajectory[index].numpy(), probabilities,
                    (size, size), symbols, out / "refinement.png", steps_used=steps,
                    title=f"TRM refines a {size}x{size} Sudoku (ACT halted after {steps} steps)")
    curve = {int(k): v for k, v in results["accuracy_by_steps"].items()}
    plot_accuracy_by_steps(curve, out / "accuracy_vs_steps.png",
                           act_point=(results["act"]["mean_steps"], results["act"]["exact_accuracy"]))
