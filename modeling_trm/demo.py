"""`trm demo`: generate Sudoku offline, train a small TRM on this CPU, score it, draw it, package it.

Phases (one summary line each): data -> train (TRMTrainer, time budget) -> evaluate (paper protocol
and ACT) -> save a `from_pretrained` folder with card and results -> pictures -> reload with
AutoModel and solve unseen puzzles.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

DEMO_SETTINGS: dict[str, Any] = dict(
    size=6,  # 6x6 Sudoku, 2x3 boxes, about 27 of 36 cells blank: learnable on 2 CPU cores in minutes
    num_train=3000,
    num_test=300,
    hidden_size=64,
    H_cycles=3,
    L_cycles=6,
    batch_size=64,
    learning_rate=1e-3,
    weight_decay=0.1,
    warmup_steps=50,
    ema_decay=0.99,  # 0.999 averages over more steps than a few-minute run takes
)


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
    parser.add_argument("--size", type=int, default=DEMO_SETTINGS["size"], choices=(4, 6, 9))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=lambda args: run_demo(args.output_dir, args.minutes, args.size, args.seed, args.overwrite))


def _phase(name: str, start: float, detail: str) -> None:
    print(f"[{name:<8}] {time.time() - start:7.1f}s  {detail}", flush=True)


def encode_rows(rows: list[Any]) -> dict[str, list]:
    return {
        "input_ids": [[1 if c == "." else int(c) + 1 for c in row.question] for row in rows],
        "labels": [[int(c) + 1 for c in row.answer] for row in rows],
        "puzzle_identifiers": [0] * len(rows),
        "rating": [int(row.rating) for row in rows],
    }


def format_grid(tokens: list[int], size: int, symbols: list[str]) -> str:
    lines = []
    for r in range(size):
        lines.append(" ".join(symbols[t] for t in tokens[r * size:(r + 1) * size]))
    return "\n".join(lines)


def run_demo(output_dir: str = "trm-demo", minutes: float = 6.0, size: int = 6, seed: int = 0,
             overwrite: bool = False, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    import datasets
    from transformers import AutoModel

    from .configuration_trm import TRMConfig
    from .data.generate_sudoku import generate_sudoku_splits
    from .modeling_trm import TRMForGridReasoning
    from .trainer import TRMTrainer, TRMTrainingArguments

    settings = {**DEMO_SETTINGS, **(settings or {}), "size": size}
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} exists and is not empty; pass --overwrite or another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()

    splits = generate_sudoku_splits(size, settings["num_train"], settings["num_test"] + 3, seed=seed)
    symbols = ["<pad>", "."] + [str(d) for d in range(1, size + 1)]
    train = datasets.Dataset.from_dict(encode_rows(splits["train"]))
    test = datasets.Dataset.from_dict(encode_rows(splits["test"][: settings["num_test"]]))
    unseen = splits["test"][settings["num_test"]:]
    _phase("data", start, f"{len(train)} train / {len(test)} test {size}x{size} Sudoku generated (seed {seed})")

    config = TRMConfig(vocab_size=size + 2, seq_len=size * size, grid_shape=(size, size), task="sudoku",
                       hidden_size=settings["hidden_size"], num_heads=2, H_cycles=settings["H_cycles"],
                       L_cycles=settings["L_cycles"], mixer="mlp_t", pos_encodings="none", puzzle_emb_len=0,
                       id_to_symbol=symbols)
    torch.manual_seed(seed)
    model = TRMForGridReasoning(config)
    args = TRMTrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=settings["batch_size"], max_steps=1_000_000,
        learning_rate=settings["learning_rate"], weight_decay=settings["weight_decay"],
        warmup_steps=settings["warmup_steps"], ema_decay=settings["ema_decay"], auto_bf16=False, report_to=[],
        logging_steps=50, save_strategy="no", seed=seed, per_device_eval_batch_size=256,
    )
    trainer = TRMTrainer(model=model, args=args, train_dataset=train, callbacks=[TimeBudget(minutes * 60)])
    train_start = time.time()
    trainer.train()
    train_time = time.time() - train_start
    _phase("train", start, f"{trainer.state.global_step} steps in {train_time:.0f}s")

    model_dir = out / "model"
    trainer.save_model(str(model_dir))
    ema_model = TRMForGridReasoning.from_pretrained(model_dir).eval()
    results = score(ema_model, test, symbols)
    results["training"] = {"steps": trainer.state.global_step, "train_time_s": round(train_time, 1),
                           "settings": settings, "torch_threads": torch.get_num_threads()}
    (model_dir / "results.json").write_text(json.dumps(results, indent=2))
    _phase("evaluate", start, f"exact {results['metrics']['exact_accuracy']:.1%} (16 steps), "
                              f"ACT {results['act']['exact_accuracy']:.1%} at {results['act']['mean_steps']:.1f} steps")

    draw(ema_model, test, results, out, symbols, size)
    _phase("pictures", start, f"{out / 'refinement.png'}, {out / 'accuracy_vs_steps.png'}")

    reloaded = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    questions = torch.tensor(encode_rows(unseen)["input_ids"])
    solved = reloaded.solve(questions, halting="act")
    for row, prediction, steps in zip(unseen, solved.predictions.tolist(), solved.steps.tolist()):
        question = [1 if c == "." else int(c) + 1 for c in row.question]
        answer = [int(c) + 1 for c in row.answer]
        verdict = "correct" if prediction == answer else "wrong"
        print(f"\npuzzle ({steps} steps, {verdict}):\n{format_grid(question, size, symbols)}\n"
              f"answer:\n{format_grid(prediction, size, symbols)}")
    _phase("reload", start, f"AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True) solved {len(unseen)}")

    print("\n| what | value |\n|---|---|")
    print(f"| train time | {train_time:.0f} s ({trainer.state.global_step} steps) |")
    print(f"| exact accuracy, 16 steps | {results['metrics']['exact_accuracy']:.1%} of {len(test)} held-out |")
    print(f"| exact accuracy, ACT | {results['act']['exact_accuracy']:.1%} |")
    print(f"| mean ACT steps | {results['act']['mean_steps']:.2f} |")
    print(f"| outputs | {model_dir} (model, card, results), {out}/*.png |")
    return results


@torch.no_grad()
def score(model: Any, test: Any, symbols: list[str]) -> dict[str, Any]:
    from .metrics import grid_accuracy, sudoku_validity

    inputs = torch.tensor(test["input_ids"])
    labels = torch.tensor(test["labels"])
    start = time.time()
    paper = model.solve(inputs, halting="max", return_trajectory=True)
    elapsed = time.time() - start
    act = model.solve(inputs, halting="act")
    metrics = grid_accuracy(paper.predictions, labels, inputs=inputs, blank_token_id=1)
    validity = sudoku_validity(paper.predictions, inputs, labels)
    exact_by_step = (paper.trajectory == labels[:, None, :]).all(-1).float().mean(0).tolist()
    return {
        "schema_version": 1, "task": "sudoku",
        "dataset": {"name": f"generated-sudoku-{int(len(inputs[0]) ** 0.5)}", "split": "test",
                    "num_examples": len(inputs)},
        "protocol": {"halting": "max", "max_steps": model.config.halt_max_steps, "dtype": "fp32"},
        "metrics": {**{k: v for k, v in metrics.items() if isinstance(v, float)},
                    "valid_solution_accuracy": validity["valid_accuracy"]},
        "accuracy_by_steps": {str(s): exact_by_step[s - 1] for s in (1, 2, 4, 8, 16) if s <= len(exact_by_step)},
        "act": {"exact_accuracy": float((act.predictions == labels).all(-1).float().mean()),
                "mean_steps": float(act.steps.float().mean())},
        "mean_steps": float(paper.steps.float().mean()),
        "wall_time_s": round(elapsed, 2), "examples_per_s": round(len(inputs) / max(elapsed, 1e-9), 1),
    }


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
