"""Periodic held-out evaluation: it scores the EMA weights, leaves training bit-for-bit unchanged, and
ends in trainer_state.json and learning_curve.png."""

from __future__ import annotations

import dataclasses
import json

import torch

from modeling_trm.commands import main
from modeling_trm.training.learning_curve import curve_points
from test_train_cli import tiny_dataset_folder
from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments
from test_trainer import make_trainer, random_dataset
from tiny_models import tiny_model

TRAINING_FIELDS = {f.name for f in dataclasses.fields(TRMTrainingArguments) if f.init}


def test_periodic_evaluation_scores_ema_weights_and_does_not_change_training(tmp_path) -> None:
    dataset = random_dataset(rows=24)
    plain = make_trainer(tmp_path / "plain", dataset=dataset, max_steps=4)
    plain.train()

    settings = dict(plain.args.to_dict(), output_dir=str(tmp_path / "eval"), eval_strategy="steps", eval_steps=2)
    evaluated = TRMTrainer(model=tiny_model(), args=TRMTrainingArguments(**{
        k: v for k, v in settings.items() if k in TRAINING_FIELDS}), train_dataset=dataset,
        eval_dataset=dataset.select(range(8)))
    seen: list[torch.Tensor] = []
    solve = evaluated.model.solve
    evaluated.model.solve = lambda *a, **k: seen.append(evaluated.model.lm_head.weight.detach().clone()) or solve(*a, **k)
    evaluated.train()

    # identical weights, EMA and training losses with and without the evaluations
    for name, param in plain.model.state_dict().items():
        assert torch.equal(param, evaluated.model.state_dict()[name]), name
    for name, shadow in plain.ema.shadow.items():
        assert torch.equal(shadow, evaluated.ema.shadow[name]), name
    losses = [e["loss"] for e in plain.state.log_history if "loss" in e]
    assert losses == [e["loss"] for e in evaluated.state.log_history if "loss" in e]
    # two evaluations (steps 2 and 4), each solving with the EMA weights, not the raw ones
    assert curve_points(evaluated.state.log_history) and [p[0] for p in curve_points(evaluated.state.log_history)] == [2, 4]
    assert len(seen) == 2
    assert torch.equal(seen[-1], evaluated.ema.shadow["lm_head.weight"].to(seen[-1].dtype))
    assert not torch.equal(seen[-1], evaluated.model.lm_head.weight)
    assert evaluated.model.training  # back in training mode with the raw weights restored


def test_trm_train_logs_a_learning_curve(tmp_path) -> None:
    dataset = tiny_dataset_folder(tmp_path / "data")
    out = tmp_path / "run"
    code = main(["train", "--recipe", "demo", "--dataset", dataset, "--output-dir", str(out),
                 "--model.hidden-size", "32", "--model.H-cycles", "1", "--model.L-cycles", "1",
                 "--model.halt-max-steps", "2", "--global-batch-size", "8", "--max-steps", "5", "--warmup-steps", "1",
                 "--auto-bf16", "false", "--disable-tqdm", "true", "--eval-steps", "2", "--curve-eval-limit", "3",
                 "--save-strategy", "no"])
    assert code == 0
    state = json.loads((out / "trainer_state.json").read_text())
    evaluations = [e for e in state["log_history"] if "eval_exact_accuracy" in e or "eval_exact_accuracy_max" in e]
    assert [e["step"] for e in evaluations] == [2, 4, 5]  # the Trainer also scores the slice at the last step
    assert all(e.get("eval_num_examples", e.get("eval_num_examples_max")) == 3 for e in evaluations)
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "model" / "train_results.json").read_text())
    assert [p["step"] for p in results["learning_curve"]] == [2, 4, 5]
    assert results["metrics"]["eval_num_examples"] == 8  # the final evaluation scores the whole test split
