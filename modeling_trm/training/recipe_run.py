"""One training run from a recipe: data (built once, by the main process), model, `TRMTrainer`, results.

`trm train` (`modeling_trm.commands.train`), `trm demo` and `trm ablate` call `train_from_recipe`; heavy
imports happen inside it, so importing this module stays cheap for the command line.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

# Keys of a recipe's "training" section that are not TrainingArguments fields: type and help.
RECIPE_ONLY_OPTIONS: dict[str, tuple[type, str]] = {
    "global_batch_size": (int, "samples per optimizer step over all processes (split into per-device batches)"),
    "epochs": (float, "passes over the original puzzles; sets max_steps when the recipe has none"),
    "eval_interval_epochs": (float, "evaluate (and checkpoint) every this many epochs; sets eval_steps"),
    "eval_limit": (int, "evaluate on at most this many test puzzles"),
    "curve_eval_limit": (int, "held-out puzzles scored at every --eval-steps point of the learning curve"),
}
RECIPE_ONLY_KEYS = tuple(RECIPE_ONLY_OPTIONS)
# Held-out puzzles scored at every `eval_steps` point of the learning curve (bounded time per point).
DEFAULT_CURVE_EVAL_LIMIT = 256


def train_from_recipe(recipe: dict[str, Any], output_dir: Path, dataset_dir: str | None = None,
                      csv_dir: str | None = None, resume: bool = False, callbacks: list | None = None) -> dict[str, Any]:
    """The whole run; returns the final evaluation (also written to OUTPUT_DIR/model/train_results.json)."""
    import torch
    from transformers import set_seed

    from ..configuration_trm import TRMConfig
    from ..data.metadata import load_trm_dataset
    from .learning_curve import LearningCurveCallback, curve_points
    from ..modeling_trm import TRMForGridReasoning
    from ..threads import current_threads
    from .trainer import TRMTrainer, TRMTrainingArguments

    training = dict(recipe["training"])
    check_training_options(training, output_dir)  # a bad value fails here, before any data is built
    launch = launch_arguments(training, output_dir)
    global_batch = int(training.pop("global_batch_size"))
    per_device_batch = split_global_batch(training, global_batch, launch.world_size)
    if dataset_dir is None:
        dataset_dir = str(output_dir / "dataset")
        build_dataset_once(recipe, dataset_dir, csv_dir, launch)
    dataset, metadata = load_trm_dataset(dataset_dir)

    config = TRMConfig.from_preset(recipe["model"]["preset"], **recipe["model"].get("overrides", {}))
    metadata.apply_to(config)
    set_seed(launch.seed)  # the weight init is the first random draw of the run: seed it (the Trainer seeds later)
    model = TRMForGridReasoning(config)

    groups = count_groups(dataset["train"])
    epochs = training.pop("epochs", None)
    eval_interval_epochs = training.pop("eval_interval_epochs", None)
    eval_limit = training.pop("eval_limit", None)
    curve_eval_limit = int(training.pop("curve_eval_limit", DEFAULT_CURVE_EVAL_LIMIT))
    if "max_steps" not in training:
        if epochs is None:
            raise ValueError("the recipe needs 'max_steps' or 'epochs' in its training section")
        training["max_steps"] = math.ceil(epochs * groups / global_batch)  # the reference's count
    if eval_interval_epochs and "eval_steps" not in training:
        training["eval_steps"] = max(1, math.ceil(eval_interval_epochs * groups / global_batch))
    if training.get("eval_steps"):
        training.setdefault("eval_strategy", "steps")
        training.setdefault("save_strategy", "steps")
        training.setdefault("save_steps", training["eval_steps"])
    training.setdefault("save_total_limit", 2)
    training.setdefault("report_to", [])
    training.setdefault("logging_steps", 10)
    eval_split = dataset["test"]
    if eval_limit is not None:
        eval_split = eval_split.select(range(min(int(eval_limit), len(eval_split))))
    curve_split = eval_split.select(range(min(curve_eval_limit, len(eval_split))))  # periodic evaluations

    targs = TRMTrainingArguments(output_dir=str(output_dir), per_device_train_batch_size=per_device_batch, **training)
    trainer = TRMTrainer(model=model, args=targs, train_dataset=dataset["train"], eval_dataset=curve_split,
                         callbacks=[*(callbacks or []), LearningCurveCallback()])
    train_output = trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_state()  # trainer_state.json with the log history (the learning curve's numbers)
    curve = curve_points(trainer.state.log_history)  # the periodic slice only, not the final full-split score
    # part of train_runtime that went to the periodic evaluations rather than to training steps
    curve_seconds = sum(float(entry.get("eval_runtime", 0.0)) for entry in trainer.state.log_history)
    metrics = trainer.evaluate(eval_split)
    model_dir = output_dir / "model"
    trainer.save_model(str(model_dir))
    results = {"recipe": recipe["name"], "metrics": metrics, "train_runtime_s": train_output.metrics["train_runtime"],
               "curve_eval_time_s": round(curve_seconds, 1),
               "train_samples_started": trainer.samples_started, "train_samples_finished": trainer.samples_finished,
               "global_step": trainer.state.global_step, "torch_num_threads": torch.get_num_threads(),
               "threads": current_threads().record(),
               "learning_curve": [{"step": step, "exact_accuracy": accuracy}
                                  for step, accuracy in curve]}
    if trainer.is_world_process_zero():
        (model_dir / "train_results.json").write_text(json.dumps(results, indent=2))
        (model_dir / "recipe.json").write_text(json.dumps(recipe, indent=2))
    return results


def split_global_batch(training: dict[str, Any], global_batch: int, world_size: int) -> int:
    """The per-device batch that makes the recipe's global batch over `world_size` processes. A given
    `per_device_train_batch_size` sets the gradient accumulation (written into `training`), so a batch that
    does not fit in memory can be split without changing the global batch the recipe trains with."""
    per_device = training.pop("per_device_train_batch_size", None)
    if per_device is not None and "gradient_accumulation_steps" not in training:
        per_device = int(per_device)
        if per_device < 1 or global_batch % (world_size * per_device):
            raise ValueError(f"global_batch_size {global_batch} is not divisible by {world_size} processes x "
                             f"per_device_train_batch_size {per_device}")
        training["gradient_accumulation_steps"] = global_batch // (world_size * per_device)
    accumulation = int(training.get("gradient_accumulation_steps", 1))
    if accumulation < 1 or global_batch % (world_size * accumulation):
        raise ValueError(f"global_batch_size {global_batch} is not divisible by {world_size} processes x "
                         f"{accumulation} accumulation steps")
    split = global_batch // (world_size * accumulation)
    if per_device is not None and int(per_device) != split:
        raise ValueError(f"per_device_train_batch_size {per_device} x {world_size} processes x {accumulation} "
                         f"accumulation steps is not the global_batch_size {global_batch}")
    return split


def count_groups(train: Any) -> int:
    """Original puzzles in the training set (an epoch in the reference visits each group once)."""
    if "group" in train.column_names:
        return len(set(train["group"]))
    return len(train)


def build_recipe_dataset(recipe: dict[str, Any], out_dir: str, csv_dir: str | None) -> None:
    from ..data.build import build_from_recipe

    build_from_recipe(recipe["data"], out_dir, csv_dir=csv_dir)


# TrainingArguments fields that decide the launch (process group, device, seed, shared file system).
LAUNCH_KEYS = ("seed", "use_cpu", "ddp_backend", "ddp_timeout", "auto_bf16", "bf16", "fp16", "save_on_each_node")


def check_training_options(training: dict[str, Any], output_dir: Path) -> None:
    """Build the run's TrainingArguments once from the recipe's options, so that values transformers checks
    (`lr_scheduler_type`, `optim`, `eval_strategy`, ...) are refused before the dataset is built."""
    from .trainer import TRMTrainingArguments

    options = {key: value for key, value in training.items() if key not in RECIPE_ONLY_KEYS}
    try:
        TRMTrainingArguments(output_dir=str(output_dir), **{"report_to": [], **options})
    except (ValueError, TypeError) as error:
        raise ValueError(f"training options: {error}") from None


def launch_arguments(training: dict[str, Any], output_dir: Path) -> Any:
    """The recipe's launch settings as TrainingArguments, made before any data exists: under torchrun or
    `accelerate launch` they join the process group, so ranks can wait for each other."""
    from .trainer import TRMTrainingArguments

    return TRMTrainingArguments(output_dir=str(output_dir), report_to=[],
                                **{key: training[key] for key in LAUNCH_KEYS if key in training})


def build_dataset_once(recipe: dict[str, Any], dataset_dir: str, csv_dir: str | None, launch: Any) -> None:
    """Build the recipe's dataset into `dataset_dir` unless it exists. Only the main process builds (each
    node's main process with `save_on_each_node`); the others wait for it and then read the result, so
    parallel ranks never race to write one folder."""
    with launch.main_process_first(local=launch.save_on_each_node, desc="dataset build"):
        is_builder = launch.distributed_state is None or (
            launch.distributed_state.is_local_main_process if launch.save_on_each_node
            else launch.distributed_state.is_main_process)
        if is_builder and not os.path.isdir(dataset_dir):
            build_recipe_dataset(recipe, dataset_dir, csv_dir)
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError(
            f"process {launch.process_index} does not see {dataset_dir}, which the main process built: the nodes do "
            f"not share a file system; pass --save-on-each-node true, or build the data with 'trm data' and pass "
            f"--dataset on every node")
