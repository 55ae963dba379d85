"""`trm demo`: generate Sudoku offline, train a small TRM on this CPU, score it, draw it, package it.

Phases (one summary line each): data -> train (TRMTrainer, time budget) -> evaluate (paper protocol
and ACT) -> save a `from_pretrained` folder with card and results -> pictures -> reload with
AutoModel and solve unseen puzzles.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

class TimeBudget(TrainerCallback):
    """Stops training once the wall-clock budget is spent (the step count is not known in advance)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if time.time() - self.start > self.seconds:
            control.should_training_stop = True
        return control


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="train, score, draw and package a small TRM on this CPU")
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget (the whole demo adds ~2 min)")
    parser.add_argument("--output-dir", default="trm-demo")
    parser.add_argument("--size", type=int, default=6, choices=(4, 6, 9))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=_run_demo_command)


def _run_demo_command(args: argparse.Namespace) -> int:
    run_demo(args.output_dir, args.minutes, args.size, args.seed, args.overwrite)
    return 0


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


def run_demo(output_dir: str = "trm-demo", minutes: float = 6.0, size: int = 6, seed: int = 0,
             overwrite: bool = False, recipe_overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run every phase; `recipe_overrides` ({"data": {...}, "model": {...}, "training": {...}}) shrinks it for tests."""
    from transformers import AutoModel

    from .data.cli import build_from_recipe
    from .data.generate_sudoku import generate_sudoku_splits
    from .data.metadata import load_trm_dataset
    from .modeling_trm import TRMForGridReasoning
    from .recipes_io import load_recipe
    from .train_cli import train_from_recipe

    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} exists and is not empty; pass --overwrite or another --output-dir")
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = load_recipe("demo")
    recipe["data"]["args"].update(size=size, seed=seed)
    recipe["training"]["seed"] = seed
    for section, values in (recipe_overrides or {}).items():
        target = recipe[section]["args"] if section == "data" else (
            recipe[section]["overrides"] if section == "model" else recipe[section])
        target.update(values)
    start = time.time()

    build_from_recipe(recipe["data"], out / "data", progress=False)
    dataset, metadata = load_trm_dataset(out / "data")
    _phase("data", start, f"{len(dataset['train'])} train / {len(dataset['test'])} test {size}x{size} Sudoku "
                          f"generated offline (seed {seed}) -> {out / 'data'}")

    budget = TimeBudget(minutes * 60)
    trained = train_from_recipe(recipe, out, dataset_dir=str(out / "data"), callbacks=[budget])
    train_time = trained["train_runtime_s"]
    _phase("train", start, f"{trained['global_step']} supervision steps in {train_time:.0f}s")

    model_dir = out / "model"
    ema_model = TRMForGridReasoning.from_pretrained(model_dir).eval()
    results = score(ema_model, dataset["test"], metadata, out / "data")
    results["training"] = {"recipe": recipe["name"], "steps": trained["global_step"], "train_time_s": round(train_time, 1),
                           "torch_threads": torch.get_num_threads()}
    write_results_and_card(model_dir, results, recipe)
    _phase("evaluate", start, f"exact {results['metrics']['exact_accuracy']:.1%} after 16 steps, "
                              f"ACT {results['act']['exact_accuracy']:.1%} at {results['act']['mean_steps']:.1f} steps")

    symbols = list(metadata.id_to_symbol)
    draw(ema_model, dataset["test"], results, out, symbols, size)
    _phase("pictures", start, f"{out / 'refinement.png'}, {out / 'accuracy_vs_steps.png'}")

    reloaded = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    unseen = generate_sudoku_splits(size, 0, 3, seed=seed + 10_000)["test"]
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
    print(f"| train time | {train_time:.0f} s ({trained['global_step']} steps, {torch.get_num_threads()} threads) |")
    print(f"| exact accuracy, 16 steps (paper protocol) | {results['metrics']['exact_accuracy']:.1%} "
          f"of {results['dataset']['num_examples']} held-out puzzles |")
    print(f"| exact accuracy, ACT | {results['act']['exact_accuracy']:.1%} |")
    print(f"| mean ACT steps | {results['act']['mean_steps']:.2f} |")
    print(f"| total time | {time.time() - start:.0f} s |")
    print(f"| outputs | {model_dir} (model, README.md card, results.json), {out}/*.png |")
    return results


def write_results_and_card(model_dir: Path, results: dict[str, Any], recipe: dict[str, Any]) -> None:
    """results.json and the README.md model card beside the weights (the card reads only the results)."""
    from .evaluation import write_results
    from .hub_card import render_model_card

    write_results(results, model_dir / "results.json", overwrite=True)
    card = render_model_card(model_dir, results=results, recipe=recipe, training=results.get("training"))
    card.save(model_dir / "README.md")


def score(model: Any, test: Any, metadata: Any, dataset_path: Path | None = None) -> dict[str, Any]:
    """`trm eval`'s results for the test split: paper protocol (16 steps), ACT read off the same pass.

    Scored in fp32 whatever the training dtype: the numbers then do not depend on the CPU's bf16 units."""
    from .evaluation import evaluate_model

    return evaluate_model(model, test, metadata, halting="max", dtype="fp32", progress=False,
                          dataset_path=dataset_path, split="test")


def draw(model: Any, test: Any, results: dict[str, Any], out: Path, symbols: list[str], size: int) -> None:
    from .visualize import plot_accuracy_by_steps, plot_refinement

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
