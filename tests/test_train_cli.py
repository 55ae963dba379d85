"""`trm train` end to end on a tiny recipe and a tiny saved dataset; recipe overrides and errors."""

from __future__ import annotations

import dataclasses
import json
import re

import datasets
import torch
import pytest
from datasets import Features, Sequence, Value

from modeling_trm.commands import main
from modeling_trm.data.generate_sudoku import generate_sudoku_splits
from modeling_trm.data.metadata import DatasetMetadata, save_trm_dataset
from modeling_trm.recipes_io import available_recipes, load_recipe
from modeling_trm.commands.train import RECIPE_ONLY_KEYS, apply_overrides, parse_overrides
from modeling_trm.training.trainer import TRMTrainingArguments

FEATURES = Features({"input_ids": Sequence(Value("int16"), length=16), "labels": Sequence(Value("int16"), length=16),
                     "puzzle_identifiers": Value("int32")})


def tiny_dataset_folder(path) -> str:
    splits = generate_sudoku_splits(4, 40, 8, seed=1)

    def encode(rows):
        return datasets.Dataset.from_dict({
            "input_ids": [[1 if c == "." else int(c) + 1 for c in r.question] for r in rows],
            "labels": [[int(c) + 1 for c in r.answer] for r in rows],
            "puzzle_identifiers": [0] * len(rows),
        }, features=FEATURES)

    metadata = DatasetMetadata(task="sudoku", id_to_symbol=["<pad>", ".", "1", "2", "3", "4"], seq_len=16,
                               grid_shape=(4, 4), blank_token_id=1)
    save_trm_dataset(datasets.DatasetDict(train=encode(splits["train"]), test=encode(splits["test"])), metadata, path)
    return str(path)


def test_paper_recipes_hold_the_reference_settings() -> None:
    assert {"sudoku-extreme-mlp", "sudoku-extreme-att", "maze-hard", "arc-agi-1", "arc-agi-2"} <= set(available_recipes())
    sudoku = load_recipe("sudoku-extreme-mlp")
    assert sudoku["model"]["preset"] == "sudoku-mlp"
    assert sudoku["training"]["global_batch_size"] == 768 and sudoku["training"]["epochs"] == 50000
    arc = load_recipe("arc-agi-1")
    assert arc["training"]["puzzle_emb_lr"] == 1e-2 and arc["training"]["weight_decay"] == 0.1


def test_overrides_are_routed_and_unknown_keys_refused() -> None:
    overrides = parse_overrides(["--max-steps", "20", "--model.hidden-size", "64", "--data.num-aug", "3"])
    assert overrides == {"training": {"max_steps": 20}, "model": {"hidden_size": 64}, "data": {"num_aug": 3}}
    recipe = apply_overrides(load_recipe("maze-hard"), overrides)
    assert recipe["training"]["max_steps"] == 20 and recipe["model"]["overrides"]["hidden_size"] == 64
    with pytest.raises(ValueError, match="unknown training keys"):
        apply_overrides(load_recipe("maze-hard"), parse_overrides(["--max-stepz", "1"]))
    with pytest.raises(ValueError, match="--max_steps/--max-steps: expected one argument"):
        parse_overrides(["--max-steps"])
    with pytest.raises(ValueError, match=r"--model\.hidden-size needs a value: '--model\.KEY VALUE' pairs"):
        parse_overrides(["--model.hidden-size", "--max-steps", "2"])


def test_training_options_parse_as_transformers_scripts_take_them() -> None:
    overrides = parse_overrides(["--use-cpu", "--max_steps", "20", "--learning-rate=3e-4", "--auto-bf16", "false",
                                 "--disable-tqdm", "--global-batch-size", "32", "--epochs", "2", "--eval_limit", "5",
                                 "--model.hidden_size=64", "--data.seed", "3", "--seed", "7"])
    assert overrides == {
        "training": {"use_cpu": True, "max_steps": 20, "learning_rate": 3e-4, "auto_bf16": False, "disable_tqdm": True,
                     "global_batch_size": 32, "epochs": 2.0, "eval_limit": 5, "seed": 7},
        "model": {"hidden_size": 64}, "data": {"seed": 3}}
    assert parse_overrides(["--no-auto-bf16", "--use_cpu", "false"])["training"] == {"auto_bf16": False,
                                                                                      "use_cpu": False}
    assert parse_overrides([])["training"] == {}  # options not given keep the recipe's values

    recipe = apply_overrides(load_recipe("demo"), parse_overrides(["--use-cpu", "--no-auto-bf16"]))
    training = {k: v for k, v in recipe["training"].items() if k not in RECIPE_ONLY_KEYS}
    args = TRMTrainingArguments(output_dir="unused", **training)
    assert args.use_cpu is True and args.bf16 is False and args.max_steps == 1200 and args.learning_rate == 2e-3

    with pytest.raises(ValueError, match=r"unknown training keys \['--use-cpus'\].*did you mean --use-cpu\?"):
        parse_overrides(["--use-cpus"])
    with pytest.raises(ValueError, match=r"--max_steps/--max-steps: invalid int value: 'twenty'"):
        parse_overrides(["--max-steps", "twenty"])
    with pytest.raises(ValueError, match=r"per_device_train_batch_size.*use --global-batch-size"):
        parse_overrides(["--per-device-train-batch-size", "4"])


def help_entries(text: str) -> dict[str, str]:
    """`--option ...` -> its help text (argparse wraps one option's entry over several lines)."""
    entries, current = {}, None
    for line in text.splitlines():
        flags = re.match(r"  (--[\w-]+)", line)
        if flags:
            current = flags.group(1)
            entries[current] = line
        elif current and line.startswith("      "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {flag: " ".join(entry.split()) for flag, entry in entries.items()}


def test_train_help_lists_every_training_field_with_the_recipe_value(capsys) -> None:
    assert main(["train", "--recipe", "demo", "--help"]) == 0
    entries = help_entries(capsys.readouterr().out)
    fields = [f.name for f in dataclasses.fields(TRMTrainingArguments) if f.init]
    assert [name for name in fields if f"--{name}" not in entries] == []
    recipe = load_recipe("demo")["training"]
    for key, value in recipe.items():
        assert entries[f"--{key}"].endswith(f"(recipe: {value!r})"), entries[f"--{key}"]
    assert entries["--use_cpu"].startswith("--use_cpu [USE_CPU], --use-cpu [USE_CPU]")  # a bare flag works
    assert entries["--seed"].endswith("(default: 42)")  # not in the recipe: the field's default
    assert entries["--max_steps"].endswith("(recipe: 1200)")

    assert main(["train", "--help"]) == 0  # without a recipe: TRMTrainingArguments' own defaults
    assert help_entries(capsys.readouterr().out)["--learning_rate"].endswith("(default: 0.0001)")
    assert main(["train", "--recipe", "demo"]) == 2
    assert "the following arguments are required: --output-dir" in capsys.readouterr().err


def test_trm_train_runs_a_recipe_end_to_end(tmp_path, capsys) -> None:
    dataset = tiny_dataset_folder(tmp_path / "data")
    recipe = load_recipe("sudoku-extreme-mlp")
    recipe["model"]["overrides"] = {"hidden_size": 32, "H_cycles": 2, "L_cycles": 1, "halt_max_steps": 3,
                                    "puzzle_emb_len": 4}
    recipe_path = tmp_path / "recipe.json"
    recipe_path.write_text(json.dumps(recipe))
    out = tmp_path / "run"
    code = main(["train", "--recipe", str(recipe_path), "--dataset", dataset, "--output-dir", str(out),
                 "--global-batch-size", "8", "--max-steps", "3", "--warmup_steps", "1", "--auto-bf16", "false",
                 "--disable-tqdm", "true", "--use-cpu"])
    assert code == 0
    saved_args = torch.load(out / "model" / "training_args.bin", weights_only=False)
    assert (saved_args.use_cpu, saved_args.bf16, saved_args.warmup_steps, saved_args.per_device_train_batch_size) == \
        (True, False, 1, 8)
    results = json.loads((out / "model" / "train_results.json").read_text())
    assert results["global_step"] == 3 and results["metrics"]["eval_num_examples"] == 8
    assert {"config.json", "model.safetensors", "modeling_trm.py", "recipe.json"} <= {p.name for p in (out / "model").iterdir()}
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["seq_len"] == 16 and config["vocab_size"] == 6 and config["hidden_size"] == 32


def test_trm_train_reports_bad_recipes(tmp_path, capsys) -> None:
    assert main(["train", "--recipe", "no-such-recipe", "--output-dir", str(tmp_path)]) == 2
    assert "unknown recipe" in capsys.readouterr().err


def test_trm_output_is_line_buffered_when_written_to_a_file(monkeypatch) -> None:
    import io

    from modeling_trm.commands import line_buffered_output

    sink = io.BytesIO()
    stream = io.TextIOWrapper(sink, encoding="utf-8")  # a file or pipe: block-buffered, not a tty
    monkeypatch.setattr("sys.stdout", stream)
    line_buffered_output()
    print("step 1 of 10")
    assert sink.getvalue() == b"step 1 of 10\n"  # on disk at once, without a flush or the process ending


def test_bad_string_training_option_is_refused_before_the_dataset_is_built(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--recipe", "demo", "--output-dir", str(out), "--lr-scheduler-type", "cosine-ish"]) == 2
    error = capsys.readouterr().err
    assert "cosine-ish" in error and "training options" in error
    assert not (out / "dataset").exists()  # nothing was built
