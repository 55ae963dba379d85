"""`trm train --recipe NAME --output-dir DIR [--key value | --flag ...]`: build/load data, train, evaluate, save.

The same command runs under `torchrun --nproc_per_node N $(which trm) train ...` and
`accelerate launch $(which trm) train ...`: the global batch of the recipe is split over processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
from pathlib import Path
from typing import Any

from .recipes_io import available_recipes, load_recipe

# Keys of a recipe's "training" section that are not TrainingArguments fields: type and help.
RECIPE_ONLY_OPTIONS: dict[str, tuple[type, str]] = {
    "global_batch_size": (int, "samples per optimizer step over all processes (split into per-device batches)"),
    "epochs": (float, "passes over the original puzzles; sets max_steps when the recipe has none"),
    "eval_interval_epochs": (float, "evaluate (and checkpoint) every this many epochs; sets eval_steps"),
    "eval_limit": (int, "evaluate on at most this many test puzzles"),
    "curve_eval_limit": (int, "held-out puzzles scored at every --eval-steps point of the learning curve"),
}
RECIPE_ONLY_KEYS = tuple(RECIPE_ONLY_OPTIONS)
# TrainingArguments fields that `trm train` derives itself.
DERIVED_FIELDS = {"output_dir": "--output-dir", "per_device_train_batch_size": "--global-batch-size"}
SECTION_PREFIXES = ("model", "data")
USAGE = ("trm train --recipe NAME --output-dir DIR [--dataset DIR] [--csv-dir DIR] [--resume] "
         "[TRAINING OPTIONS] [--model.KEY VALUE ...] [--data.KEY VALUE ...]")
# Held-out puzzles scored at every `eval_steps` point of the learning curve (bounded time per point).
DEFAULT_CURVE_EVAL_LIMIT = 256


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a TRM from a recipe", add_help=False, usage=USAGE,
        description="Train with a recipe from configuration/. Training options override the recipe the way "
                    "transformers example scripts take them (--max-steps 20, --learning_rate 3e-4, a bare "
                    "--use-cpu); '--model.KEY VALUE' overrides the model config (e.g. --model.hidden-size 128), "
                    "'--data.KEY VALUE' the dataset build. 'trm train --recipe NAME --help' lists every training "
                    "option with the recipe's value. With --eval-steps N the held-out exact accuracy (EMA weights, all "
                    "supervision steps) of the first --curve-eval-limit puzzles (default "
                    f"{DEFAULT_CURVE_EVAL_LIMIT}) is logged every N steps and drawn in OUTPUT_DIR/learning_curve.png.",
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help, with every training option")
    # --recipe and --output-dir are required; checked in run_train so that --help works without them
    parser.add_argument("--recipe", help=f"(required) one of {available_recipes()} or a JSON path")
    parser.add_argument("--output-dir", "--output_dir", help="(required) checkpoints, final EMA model and results")
    parser.add_argument("--dataset", help="a dataset folder built by 'trm data build/generate' (skips building)")
    parser.add_argument("--csv-dir", help="local folder with the source CSVs (Sudoku-Extreme / Maze-Hard)")
    parser.add_argument("--resume", action="store_true", help="resume from the last complete checkpoint")
    parser.set_defaults(func=run_train, accepts_overrides=True, format_command_help=parser.format_help)


class _OptionError(ValueError):
    """A training option argparse refused (bad value, missing value)."""


def training_option_parser(recipe_training: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """`HfArgumentParser` over `TRMTrainingArguments` plus the recipe-only keys.

    Every default is `SUPPRESS`, so parsing returns only the options given (the recipe keeps the
    rest); the help shows the value each option has without it: the recipe's, else the field's default.
    Booleans take a bare flag (`--use-cpu`) as well as a value (`--use-cpu false`).
    """
    from transformers import HfArgumentParser
    from transformers.hf_argparser import string_to_bool

    from .trainer import TRMTrainingArguments

    class OptionParser(HfArgumentParser):
        def error(self, message: str):  # argparse would print and exit; `trm` reports ValueErrors itself
            raise _OptionError(message)

    parser = OptionParser(TRMTrainingArguments, prog="trm train", usage=argparse.SUPPRESS, add_help=False,
                          allow_abbrev=False, formatter_class=argparse.HelpFormatter)
    for name, (kind, text) in RECIPE_ONLY_OPTIONS.items():
        parser.add_argument(f"--{name}", f"--{name.replace('_', '-')}", type=kind, default=None, help=text)
    recipe_training = recipe_training or {}
    for action in parser._actions:
        if action.type is string_to_bool and action.nargs is None:  # `bool | None` fields: bare flag too
            action.nargs, action.const = "?", True
        if not action.option_strings[0].startswith("--no_"):
            if action.dest in DERIVED_FIELDS:
                shown = f"set by trm train from {DERIVED_FIELDS[action.dest]}"
            elif action.dest in recipe_training:
                shown = f"recipe: {recipe_training[action.dest]!r}"
            else:
                shown = f"default: {action.default!r}"
            action.help = (action.help or "") + f" ({shown})".replace("%", "%%")  # argparse %-formats help
        action.default, action.required = argparse.SUPPRESS, False
    return parser


def parse_overrides(options: list[str]) -> dict[str, dict[str, Any]]:
    """`--a-b 1 --use-cpu --model.c x` -> {"training": {"a_b": 1, "use_cpu": True}, "model": {"c": "x"}, "data": {}}.

    Training options are parsed by `training_option_parser` (typed as the TrainingArguments fields);
    `--model.KEY VALUE` / `--data.KEY VALUE` (or `=VALUE`) take JSON values or plain text.
    """
    overrides: dict[str, dict[str, Any]] = {"training": {}, "model": {}, "data": {}}
    training: list[str] = []
    index = 0
    while index < len(options):
        option = options[index]
        key, has_value, value = option[2:].partition("=")
        if not (option.startswith("--") and "." in key):
            training.append(option)
            index += 1
            continue
        section, name = key.split(".", 1)
        if section not in SECTION_PREFIXES:
            raise ValueError(f"unknown override section {section!r} in {option}; use model.KEY or data.KEY")
        if not has_value:
            if index + 1 == len(options) or options[index + 1].startswith("--"):
                raise ValueError(f"{option} needs a value: '--{section}.KEY VALUE' pairs")
            value = options[index + 1]
            index += 1
        try:
            overrides[section][name.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            overrides[section][name.replace("-", "_")] = value
        index += 1
    overrides["training"] = parse_training_options(training)
    return overrides


def parse_training_options(options: list[str]) -> dict[str, Any]:
    """The training options given, by field name; unknown options are named in the error."""
    parser = training_option_parser()
    try:
        namespace, unknown = parser.parse_known_args(options)
    except _OptionError as error:
        raise ValueError(f"training option: {error}") from None
    if unknown:
        flags = [token for token in unknown if token.startswith("-")] or unknown
        known = [flag for action in parser._actions for flag in action.option_strings]
        hints = [f"{flag}: did you mean {close[0]}?" for flag in flags
                 if (close := difflib.get_close_matches(flag, known, n=1))]
        raise ValueError(f"unknown training keys {flags}; they are neither TrainingArguments fields nor "
                         f"{list(RECIPE_ONLY_KEYS)} ('trm train --help' lists them)"
                         + (f"; {' '.join(hints)}" if hints else ""))
    given = vars(namespace)
    derived = sorted(set(given) & set(DERIVED_FIELDS))
    if derived:
        raise ValueError(f"{derived} are set by trm train itself: use " + ", ".join(DERIVED_FIELDS[d] for d in derived))
    return given


def training_help(command_help: str, recipe_name: str | None) -> str:
    """`trm train --help`: the command's own options, then every training option with its value."""
    recipe = load_recipe(recipe_name) if recipe_name else None
    values = recipe["training"] if recipe else None
    heading = (f"training options, with the values of recipe {recipe['name']!r} where it sets them" if recipe else
               "training options, with their defaults (give --recipe NAME to see a recipe's values)")
    options = training_option_parser(values).format_help().split("\n", 1)[1]  # drop the "options:" title
    return f"{command_help}\n{heading}:\n{options}"


def apply_overrides(recipe: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from .trainer import TRMTrainingArguments

    recipe = json.loads(json.dumps(recipe))  # deep copy
    known = {f.name for f in dataclasses.fields(TRMTrainingArguments)} | set(RECIPE_ONLY_KEYS)
    unknown = sorted(set(overrides["training"]) - known)
    if unknown:
        raise ValueError(f"unknown training keys {unknown}; they are neither TrainingArguments fields nor {RECIPE_ONLY_KEYS}")
    recipe["training"].update(overrides["training"])
    recipe["model"].setdefault("overrides", {}).update(overrides["model"])
    recipe["data"].setdefault("args", {}).update(overrides["data"])
    return recipe


def run_train(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    if args.help:
        print(training_help(args.format_command_help(), args.recipe))
        return 0
    missing = [flag for flag, value in (("--recipe", args.recipe), ("--output-dir", args.output_dir)) if not value]
    if missing:
        raise ValueError(f"the following arguments are required: {', '.join(missing)}")
    recipe = apply_overrides(load_recipe(args.recipe), parse_overrides(extra or []))
    results = train_from_recipe(recipe, Path(args.output_dir), dataset_dir=args.dataset, csv_dir=args.csv_dir,
                                resume=args.resume)
    print(json.dumps(results["metrics"], indent=2))
    return 0


def train_from_recipe(recipe: dict[str, Any], output_dir: Path, dataset_dir: str | None = None,
                      csv_dir: str | None = None, resume: bool = False, callbacks: list | None = None) -> dict[str, Any]:
    """The whole run; returns the final evaluation (also written to OUTPUT_DIR/model/train_results.json)."""
    import torch
    from transformers import set_seed

    from .configuration_trm import TRMConfig
    from .data.metadata import load_trm_dataset
    from .learning_curve import LearningCurveCallback, curve_points
    from .modeling_trm import TRMForGridReasoning
    from .trainer import TRMTrainer, TRMTrainingArguments

    training = dict(recipe["training"])
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
    from .data import cli as data_cli

    data_cli.build_from_recipe(recipe["data"], out_dir, csv_dir=csv_dir)


# TrainingArguments fields that decide the launch (process group, device, seed, shared file system).
LAUNCH_KEYS = ("seed", "use_cpu", "ddp_backend", "ddp_timeout", "auto_bf16", "bf16", "fp16", "save_on_each_node")


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
