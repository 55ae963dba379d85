"""`trm data generate ...` and `trm data build ...` end to end on tiny offline data."""

import argparse
import json

import pytest

from modeling_trm.configuration_trm import TRMConfig
from modeling_trm.commands.data import add_subcommands
from modeling_trm.data.metadata import load_trm_dataset
from modeling_trm.data.puzzle_csv import iter_puzzle_csv


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="trm")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_generate_then_build_sudoku(tmp_path, capsys):
    csv_dir, out = tmp_path / "gen", tmp_path / "ds"
    assert run("data", "generate", "sudoku", "--size", "4", "--n", "12", "--n-test", "3", "--blanks", "6",
               "--out", str(csv_dir), "--seed", "2", "--no-progress") == 0
    assert "wrote 12 train + 3 test 4x4 Sudoku" in capsys.readouterr().out
    rows = list(iter_puzzle_csv(csv_dir / "train.csv"))
    assert len(rows) == 12 and all(row.question.count(".") == 6 for row in rows)
    assert run("data", "build", "sudoku-extreme", "--csv-dir", str(csv_dir), "--out", str(out), "--num-aug", "2",
               "--subsample-size", "5", "--seed", "1", "--no-progress") == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("wrote 15 train + 3 test rows (sudoku, seq_len 16") and str(out) in summary
    dataset, metadata = load_trm_dataset(out)
    assert dataset["train"].num_rows == 15
    assert metadata.build_settings["num_aug"] == 2 and metadata.num_rows == {"train": 15, "test": 3}
    config = metadata.apply_to(TRMConfig(hidden_size=64, num_heads=2))
    assert (config.vocab_size, config.seq_len) == (6, 16)


def test_generate_then_build_maze(tmp_path, capsys):
    csv_dir, out = tmp_path / "gen", tmp_path / "ds"
    assert run("data", "generate", "maze", "--size", "7", "--n", "4", "--min-path-length", "6",
               "--out", str(csv_dir), "--no-progress") == 0
    assert "wrote 4 train + 1 test 7x7 mazes" in capsys.readouterr().out
    assert run("data", "build", "maze-hard", "--csv-dir", str(csv_dir), "--out", str(out), "--dihedral",
               "--no-progress") == 0
    dataset, metadata = load_trm_dataset(out)
    assert (dataset["train"].num_rows, dataset["test"].num_rows, metadata.grid_shape) == (32, 1, (7, 7))


def test_build_arc_from_kaggle_json(tmp_path, capsys):
    task = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]]}]}
    for subset in ("training", "evaluation"):
        (tmp_path / f"arc-agi_{subset}_challenges.json").write_text(json.dumps({f"{subset}1": task}))
        (tmp_path / f"arc-agi_{subset}_solutions.json").write_text(json.dumps({f"{subset}1": [[[4, 3]]]}))
    out = tmp_path / "arc"
    assert run("data", "build", "arc", "--json-prefix", str(tmp_path / "arc-agi"), "--num-aug", "2",
               "--out", str(out), "--no-progress") == 0
    dataset, metadata = load_trm_dataset(out)
    assert metadata.num_puzzle_identifiers == 7 and dataset["test"].num_rows == 3


def test_errors_are_one_line_and_nothing_is_left_behind(tmp_path, capsys):
    out = tmp_path / "gen"
    out.mkdir()
    assert run("data", "generate", "sudoku", "--size", "4", "--n", "2", "--out", str(out), "--no-progress") == 1
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.csv").write_text("source,question,answer,rating\nx,12,12,0\n")
    (bad / "test.csv").write_text("source,question,answer,rating\n")
    assert run("data", "build", "sudoku-extreme", "--csv-dir", str(bad), "--out", str(tmp_path / "ds"),
               "--no-progress") == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "train.csv: line 2" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "gen"]


def test_arc_needs_exactly_one_source():
    with pytest.raises(SystemExit):
        run("data", "build", "arc", "--out", "x")
    with pytest.raises(SystemExit):
        run("data", "build", "arc", "--version", "arcagi", "--json-prefix", "p", "--out", "x")


def test_build_from_recipe(tmp_path):
    from modeling_trm.data.build import build_from_recipe
    from modeling_trm.data.generate_maze import generate_maze_splits
    from modeling_trm.data.puzzle_csv import write_puzzle_csv

    csv_dir = tmp_path / "mazes"
    csv_dir.mkdir()
    for split, rows in generate_maze_splits(6, 6, 2, 1, seed=0, min_path_length=5).items():
        write_puzzle_csv(csv_dir / f"{split}.csv", rows)
    recipe = {"builder": "maze-hard", "args": {"num_aug": 7, "seed": 0}}
    out = build_from_recipe(recipe, tmp_path / "ds", csv_dir=csv_dir, progress=False)
    dataset, metadata = load_trm_dataset(out)
    assert dataset["train"].num_rows == 16 and metadata.build_settings["dihedral"] is True
    with pytest.raises(ValueError, match="0 or 7"):
        build_from_recipe({"builder": "maze-hard", "args": {"num_aug": 3}}, tmp_path / "x", csv_dir=csv_dir)
    with pytest.raises(ValueError, match="do not fit the sudoku-extreme builder"):
        build_from_recipe({"builder": "sudoku-extreme", "args": {"subsample": 3}}, tmp_path / "x", csv_dir=csv_dir)
    with pytest.raises(ValueError, match="unknown dataset builder"):
        build_from_recipe({"builder": "chess", "args": {}}, tmp_path / "x")
    with pytest.raises(ValueError, match="exactly one of 'version' and 'json_prefix'"):
        build_from_recipe({"builder": "arc", "args": {"num_aug": 1}}, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_generated_sudoku_recipe_spreads_blanks_augments_and_records_the_generator(tmp_path):
    from modeling_trm.data.build import build_from_recipe

    recipe = {"builder": "generated-sudoku",
              "args": {"size": 4, "num_train": 6, "num_test": 3, "blank_range": [5, 8], "num_aug": 1, "seed": 2}}
    dataset, metadata = load_trm_dataset(build_from_recipe(recipe, tmp_path / "ds", progress=False))
    assert (dataset["train"].num_rows, dataset["test"].num_rows) == (12, 3)  # each puzzle and one augmented copy
    blanks = [row.count(1) for split in ("train", "test") for row in dataset[split]["input_ids"]]
    assert min(blanks) >= 5 and max(blanks) <= 8
    assert metadata.source["kind"] == "generated" and metadata.source["blank_range"] == [5, 8]
    assert (metadata.source["size"], metadata.source["seed"], metadata.build_settings["num_aug"]) == (4, 2, 1)
