"""`trm train --recipe NAME --output-dir DIR [--key value | --flag ...]`: build/load data, train, evaluate, save.

The same command runs under `torchrun --nproc_per_node N $(which trm) train ...` and
`accelerate launch $(which trm) train ...`: the global batch of the recipe is split over processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from pathlib import Path
from typing import Any

from ..recipes_io import available_recipes, load_recipe
from ..threads import THREADS_HELP, apply_thread_choice
from ..training.recipe_run import DEFAULT_CURVE_EVAL_LIMIT, RECIPE_ONLY_KEYS, RECIPE_ONLY_OPTIONS

# TrainingArguments fields that `trm train` derives itself.
DERIVED_FIELDS = {"output_dir": "--output-dir", "per_device_train_batch_size": "--global-batch-size"}
SECTION_PREFIXES = ("model", "data")
USAGE = ("trm train --recipe NAME --output-dir DIR [--dataset DIR] [--csv-dir DIR] [--resume] [--threads N] "
         "[TRAINING OPTIONS] [--model.KEY VALUE ...] [--data.KEY VALUE ...]")


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
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP + "; under torchrun or accelerate "
                        "the automatic count is shared by the processes of this machine (LOCAL_WORLD_SIZE)")
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

    from ..training.trainer import TRMTrainingArguments

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
    from ..training.trainer import TRMTrainingArguments

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
    apply_thread_choice(args.threads)  # recorded in train_results.json ("threads")
    from ..training.recipe_run import train_from_recipe

    results = train_from_recipe(recipe, Path(args.output_dir), dataset_dir=args.dataset, csv_dir=args.csv_dir,
                                resume=args.resume)
    print(json.dumps(results["metrics"], indent=2))
    return 0

