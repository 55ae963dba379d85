"""`trm train` end to end on a tiny recipe and a tiny saved dataset; recipe overrides and errors."""

from __future__ import annotations

import json

import datasets
import pytest
from datasets import Features, Sequence, Value

from modeling_trm.cli import main
from modeling_trm.data.generate_sudoku import generate_sudoku_splits
from modeling_trm.data.metadata import DatasetMetadata, save_trm_dataset
from modeling_trm.recipes_io import available_recipes, load_recipe
from modeling_trm.train_cli import apply_overrides, parse_overrides

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
    with pytest.raises(ValueError, match="pairs"):
        parse_overrides(["--max-steps"])


def test_trm_train_runs_a_recipe_end_to_end(tmp_path, capsys) -> None:
    dataset = tiny_dataset_folder(tmp_path / "data")
    recipe = load_recipe("sudoku-extreme-mlp")
    recipe["model"]["overrides"] = {"hidden_size": 32, "H_cycles": 2, "L_cycles": 1, "halt_max_steps": 3,
                                    "puzzle_emb_len": 4}
    recipe_path = tmp_path / "recipe.json"
    recipe_path.write_text(json.dumps(recipe))
    out = tmp_path / "run"
    code = main(["train", "--recipe", str(recipe_path), "--dataset", dataset, "--output-dir", str(out),
                 "--global-batch-size", "8", "--max-steps", "3", "--warmup-steps", "1", "--auto-bf16", "false",
                 "--disable-tqdm", "true"])
    assert code == 0
    results = json.loads((out / "model" / "train_results.json").read_text())
    assert results["global_step"] == 3 and results["metrics"]["eval_num_examples"] == 8
    assert {"config.json", "model.safetensors", "modeling_trm.py", "recipe.json"} <= {p.name for p in (out / "model").iterdir()}
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["seq_len"] == 16 and config["vocab_size"] == 6 and config["hidden_size"] == 32


def test_trm_train_reports_bad_recipes(tmp_path, capsys) -> None:
    assert main(["train", "--recipe", "no-such-recipe", "--output-dir", str(tmp_path)]) == 2
    assert "unknown recipe" in capsys.readouterr().err
