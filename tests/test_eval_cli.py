"""`trm eval` and `modeling_trm.inference.evaluation`: the results file, numbers checked by hand and against the
metric functions on `solve` output, ARC voting through the evaluator, and checks that run before compute."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest
import torch
from tiny_models import tiny_config, tiny_model

from modeling_trm import TRMForGridReasoning, TRMSolveOutput
from modeling_trm.configuration_trm import ARC_SYMBOLS, SUDOKU_SYMBOLS
from modeling_trm.data.arc import ArcExample, ArcTask, build_arc_dataset
from modeling_trm.data.arc_augment import apply_arc_augmentation, arc_grid_to_canvas
from modeling_trm.data.generate_sudoku import generate_sudoku_splits
from modeling_trm.data.metadata import load_trm_dataset, save_trm_dataset
from modeling_trm.data.puzzle_csv import write_puzzle_csv
from modeling_trm.data.sudoku import build_sudoku_dataset
from modeling_trm.data.tables import dataset_from_columns, grid_features
from modeling_trm.inference.evaluation import (
    accuracy_by_rating,
    check_compatibility,
    evaluate_model,
    resolve_dtype,
    split_sha256,
    write_results,
)
from modeling_trm.commands.eval import add_subcommands
from modeling_trm.hub_card.render import check_results
from modeling_trm.metrics import grid_accuracy, sudoku_validity

NUM_TEST = 24


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers())
    args = parser.parse_args(["eval", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def sudoku_dir(tmp_path_factory):
    """A 4x4 Sudoku dataset folder built from generated puzzles (8 train, 24 test)."""
    root = tmp_path_factory.mktemp("sudoku")
    for split, rows in generate_sudoku_splits(4, 8, NUM_TEST, seed=0).items():
        write_puzzle_csv(root / f"{split}.csv", rows)
    dataset, metadata = build_sudoku_dataset(root)
    return save_trm_dataset(dataset, metadata, root / "data")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    tiny_model(num_puzzle_identifiers=1).save_pretrained(folder)
    return folder


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if anything calls `solve`."""

    def forbidden(*args, **kwargs):
        raise AssertionError("solve() ran although the inputs were already known to be bad")

    monkeypatch.setattr(TRMForGridReasoning, "solve", forbidden)


# ----------------------------------------------------------------------------- the results file


def test_trm_eval_writes_every_field_of_the_schema(sudoku_dir, model_dir, tmp_path, capsys):
    out = tmp_path / "runs" / "results.json"
    assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--batch-size", "10",
                   "--no-progress", "--out", str(out)) == 0
    results = json.loads(out.read_text())
    assert {"schema_version", "task", "model", "dataset", "protocol", "metrics", "accuracy_by_steps", "act",
            "mean_steps", "wall_time_s", "examples_per_s", "versions", "created"} <= set(results)
    assert results["schema_version"] == 1 and results["task"] == "sudoku"
    model = results["model"]
    assert model["name_or_path"] == str(model_dir) and model["preset"] is None
    assert (model["hidden_size"], model["H_cycles"], model["L_cycles"], model["mixer"]) == (32, 2, 2, "attention")
    reloaded = TRMForGridReasoning.from_pretrained(model_dir)
    assert model["num_parameters"] == sum(p.numel() for p in reloaded.parameters())
    assert model["num_reference_parameters"] == reloaded.num_reference_parameters() < model["num_parameters"]
    # the network and the puzzle-id table apart (reference issue "7M vs ~435M?")
    assert model["num_puzzle_embedding_parameters"] == reloaded.puzzle_embedding.weight.numel() > 0
    assert model["num_network_parameters"] == model["num_parameters"] - model["num_puzzle_embedding_parameters"]
    dataset = results["dataset"]
    split, _ = load_trm_dataset(sudoku_dir)
    assert dataset["name"] == "generated-sudoku-4x4" and dataset["split"] == "test"
    assert dataset["path"] == str(sudoku_dir.resolve()) and dataset["revision"] is None
    assert dataset["num_examples"] == NUM_TEST
    assert re.fullmatch(r"[0-9a-f]{64}", dataset["sha256"]) and dataset["sha256"] == split_sha256(split["test"])
    threads = results["protocol"].pop("threads")  # how the count was chosen: tests/test_threads.py
    assert threads["count"] == torch.get_num_threads() and threads["reason"]
    assert results["protocol"] == {"halting": "max", "max_steps": 4, "batch_size": 10,
                                   "dtype": resolve_dtype("auto", torch.device("cpu")), "device": "cpu",
                                   "torch_threads": torch.get_num_threads(), "limit": None, "slot_refill": False,
                                   "samples": 1, "noise_std": 0.0, "selection": "halt", "seed": None,
                                   "escalate": False, "escalate_after": None, "escalate_confidence": None}
    metrics = results["metrics"]
    assert set(metrics) == {"exact_accuracy", "token_accuracy", "blank_accuracy", "valid_solution_accuracy"}
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    # the step budgets above max_steps=4 are dropped; the last budget is the final (halting=max) answer
    assert list(results["accuracy_by_steps"]) == ["1", "2", "4"]
    assert results["accuracy_by_steps"]["4"] == metrics["exact_accuracy"]
    assert set(results["act"]) == {"exact_accuracy", "mean_steps"} and 1.0 <= results["act"]["mean_steps"] <= 4.0
    assert results["mean_steps"] == 4.0
    # one trajectory of 4 steps per puzzle; the tiny model runs T=2 recursions of n=2 z-updates and a y-update
    assert results["compute"] == {"mean_total_steps": 4.0, "max_total_steps": 4, "network_calls_per_step": 6,
                                  "mean_network_calls": 24.0, "escalated_fraction": 0.0}
    assert results["examples_per_s"] > 0 and results["wall_time_s"] > 0
    assert set(results["versions"]) >= {"modeling_trm", "torch", "transformers", "datasets", "evaluate"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", results["created"])
    check_results(results, str(out))  # the model card accepts it
    printed = capsys.readouterr().out
    assert "| exact_accuracy |" in printed and str(out) in printed


def test_metrics_equal_the_metric_functions_on_solve_output(sudoku_dir):
    """evaluate_model in batches == grid_accuracy / sudoku_validity on one `solve` call; ACT read off the
    max-steps trajectory == a real `solve(halting="act")`. Half the labels are the model's own ACT answers,
    so the accuracies are far from 0."""
    dataset, metadata = load_trm_dataset(sudoku_dir)
    model = tiny_model(seed=3, num_puzzle_identifiers=1).eval()
    with torch.no_grad():  # a halting head with both signs, so ACT stops samples at different steps
        model.q_head.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(0))
        model.q_head.bias.zero_()
    inputs = torch.tensor(dataset["test"]["input_ids"], dtype=torch.long)
    solutions = torch.tensor(dataset["test"]["labels"], dtype=torch.long)
    act = model.solve(inputs, halting="act")
    labels = torch.where(torch.arange(len(inputs))[:, None] % 2 == 0, act.predictions, solutions)
    split = dataset_from_columns({"input_ids": inputs.numpy(), "labels": labels.numpy(),
                                  "puzzle_identifiers": np.zeros(len(inputs), dtype=np.int32)},
                                 grid_features(16, {}))

    results = evaluate_model(model, split, metadata, batch_size=5, dtype="fp32", progress=False)

    full = model.solve(inputs, halting="max", return_trajectory=True)
    expected = grid_accuracy(full.predictions, labels, inputs=inputs, blank_token_id=1)
    for key in ("exact_accuracy", "token_accuracy", "blank_accuracy"):
        assert results["metrics"][key] == pytest.approx(expected[key])
    assert results["metrics"]["valid_solution_accuracy"] == sudoku_validity(full.predictions, inputs)["valid_accuracy"]
    scored = labels != 0
    for budget in (1, 2, 4):
        right = ((full.trajectory[:, budget - 1] == labels) | ~scored).all(-1).float().mean()
        assert results["accuracy_by_steps"][str(budget)] == pytest.approx(float(right))
    act_exact = float(((act.predictions == labels) | ~scored).all(-1).float().mean())
    assert 1.0 < float(act.steps.float().mean()) < 4.0 and act_exact >= 0.5  # the comparison means something
    assert results["act"] == pytest.approx({"exact_accuracy": act_exact, "mean_steps": float(act.steps.float().mean())})


# ----------------------------------------------------------------------------- hand-checked numbers

# A 4x4 solution; its 3s and 4s are the givens. Swapping 1 and 2 gives another valid solution with the
# same givens, which is "valid" but not "exact".
SOLUTION = np.array([[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]])


def crafted_rows() -> list[dict[str, np.ndarray]]:
    """Four puzzles (distinct questions, 8 blanks each) with label L, a one-blank-wrong W, and the valid
    alternative A."""
    rows = []
    for board in (SOLUTION, np.where(SOLUTION >= 3, 7 - SOLUTION, SOLUTION), SOLUTION.T,
                  np.where(SOLUTION.T >= 3, 7 - SOLUTION.T, SOLUTION.T)):
        label = board.reshape(-1) + 1  # digit d -> id d + 1
        question = np.where(board.reshape(-1) >= 3, label, 1)  # blank id 1
        wrong = label.copy()
        blank = int(np.flatnonzero(question == 1)[0])
        wrong[blank] = 2 if label[blank] != 2 else 3
        alternative = np.select([label == 2, label == 3], [3, 2], label)
        rows.append({"question": question, "L": label, "W": wrong, "A": alternative})
    return rows


# Per row: the answer after each of 4 steps and the sign of q_halt after each step.
SCRIPT = (
    ("LLLL", (+1, +1, +1, +1)),  # right from step 1; ACT halts at 1
    ("WWLL", (-1, -1, +1, +1)),  # right from step 3; ACT halts at 3
    ("LWWW", (+1, -1, -1, -1)),  # right at step 1 then regresses; ACT halts at 1 (right)
    ("AAAA", (-1, +1, -1, -1)),  # a valid solution that is not the label; ACT halts at 2
)


def scripted_model(rows, script, config) -> TRMForGridReasoning:
    """A TRM whose `solve` replays a fixed trajectory per question (ACT halting applied as `solve` does)."""
    model = TRMForGridReasoning(config).eval()
    table = {}
    for row, (answers, q_signs) in zip(rows, script):
        key = tuple(int(t) for t in row["question"])
        table[key] = (np.stack([row[a] for a in answers]), np.array(q_signs, dtype=np.float32))

    def solve(input_ids, puzzle_identifiers=None, max_steps=None, halting="act", return_trajectory=False,
              slots=None):  # slots change only the batching, never a puzzle's result
        trajectories, q_logits = zip(*(table[tuple(r)] for r in input_ids.tolist()))
        trajectory = torch.tensor(np.stack(trajectories))[:, :max_steps].clone()  # (B, S, seq)
        q = torch.tensor(np.stack(q_logits))[:, :max_steps].clone()
        steps = torch.full((len(trajectory),), max_steps, dtype=torch.int32)
        if halting == "act":
            for i in range(len(trajectory)):
                early = np.flatnonzero(q[i, : max_steps - 1].numpy() > 0)
                if early.size:
                    steps[i] = int(early[0]) + 1
                    trajectory[i, steps[i]:] = trajectory[i, steps[i] - 1]
                    q[i, steps[i]:] = q[i, steps[i] - 1]
        last = (torch.arange(len(trajectory)), steps.long() - 1)
        return TRMSolveOutput(predictions=trajectory[last], steps=steps, q_halt_logits=q[last],
                              trajectory=trajectory, trajectory_q_halt_logits=q)

    model.solve = solve
    return model


@pytest.fixture(scope="module")
def crafted(sudoku_dir):
    _, metadata = load_trm_dataset(sudoku_dir)
    rows = crafted_rows()
    split = dataset_from_columns({
        "input_ids": np.stack([r["question"] for r in rows]), "labels": np.stack([r["L"] for r in rows]),
        "puzzle_identifiers": np.zeros(4, dtype=np.int32)}, grid_features(16, {}))
    return scripted_model(rows, SCRIPT, tiny_config(num_puzzle_identifiers=1)), split, metadata


def test_hand_checked_numbers_under_max_halting(crafted):
    model, split, metadata = crafted
    results = evaluate_model(model, split, metadata, halting="max", batch_size=3, progress=False, dtype="fp32")
    # final answers L, L, W, A: 16 + 16 + 15 + 8 of 64 cells right; of the 32 blanks 8 + 8 + 7 + 0
    assert results["metrics"] == pytest.approx({"exact_accuracy": 0.5, "token_accuracy": 55 / 64,
                                                "blank_accuracy": 23 / 32, "valid_solution_accuracy": 0.75})
    assert results["accuracy_by_steps"] == pytest.approx({"1": 0.5, "2": 0.25, "4": 0.5})
    # ACT halts at steps 1, 3, 1, 2 with answers L, L, L, A
    assert results["act"] == pytest.approx({"exact_accuracy": 0.75, "mean_steps": 7 / 4})
    assert results["mean_steps"] == 4.0 and results["dataset"]["num_examples"] == 4


def test_hand_checked_numbers_under_act_halting(crafted):
    model, split, metadata = crafted
    results = evaluate_model(model, split, metadata, halting="act", batch_size=3, progress=False, dtype="fp32")
    assert results["metrics"] == pytest.approx({"exact_accuracy": 0.75, "token_accuracy": 56 / 64,
                                                "blank_accuracy": 24 / 32, "valid_solution_accuracy": 1.0})
    # with budget b, ACT keeps a halted sample's answer: row 2 stays right after step 1
    assert results["accuracy_by_steps"] == pytest.approx({"1": 0.5, "2": 0.5, "4": 0.75})
    assert results["mean_steps"] == pytest.approx(7 / 4)
    assert results["protocol"]["halting"] == "act"


@pytest.mark.parametrize("halting, by_band", [
    ("max", {"0": 1.0, "1-2": 1.0, "3-9": 0.0, "10+": 0.0}),  # final answers L, L, W, A
    ("act", {"0": 1.0, "1-2": 1.0, "3-9": 1.0, "10+": 0.0}),  # ACT answers L, L, L, A
])
def test_accuracy_by_rating_band_follows_each_puzzles_final_answer(crafted, halting, by_band):
    model, split, metadata = crafted
    rated = split.add_column("rating", [0, 2, 5, 12])
    results = evaluate_model(model, rated, metadata, halting=halting, batch_size=3, progress=False, dtype="fp32")
    assert {band: row["exact_accuracy"] for band, row in results["accuracy_by_rating"].items()} == by_band
    assert [row["num_examples"] for row in results["accuracy_by_rating"].values()] == [1, 1, 1, 1]
    assert "accuracy_by_rating" not in evaluate_model(model, split, metadata, progress=False, dtype="fp32")
    check_results(results)


def test_accuracy_by_rating_counts_each_band_and_leaves_empty_ones_out():
    table = accuracy_by_rating(np.array([0, 0, 0, 3, 9, 40]), np.array([1, 1, 0, 1, 0, 0], dtype=bool))
    assert table == {"0": {"num_examples": 3, "exact_accuracy": pytest.approx(2 / 3)},
                     "3-9": {"num_examples": 2, "exact_accuracy": 0.5},
                     "10+": {"num_examples": 1, "exact_accuracy": 0.0}}
    with pytest.raises(ValueError, match="one entry per puzzle"):
        accuracy_by_rating(np.array([0, 1]), np.array([True]))


def test_arc_votes_across_variants_and_writes_a_submission(tmp_path):
    """Two variants answer right, two answer the same wrong grid (in the task's frame) with higher q_halt:
    the wrong grid ranks first on the q tie-break, so pass@1 = 0 and pass@2 = 1."""
    truth, wrong = np.array([[1, 2, 3]]), np.array([[4], [4]])
    task = ArcTask("cafe0001", [ArcExample(np.array([[1]]), np.array([[2]]))],
                   [ArcExample(np.array([[5, 6]]), truth)])
    dataset, metadata = build_arc_dataset([], [task], num_aug=3, seed=0)
    test = dataset["test"]
    assert test.num_rows == 4 and len(set(test["augmentation"])) == 4
    rows, script = [], []
    for index, (question, augmentation) in enumerate(zip(test["input_ids"], test["augmentation"])):
        grid = truth if index % 2 == 0 else wrong
        canvas = arc_grid_to_canvas(apply_arc_augmentation(grid, augmentation)).reshape(-1)
        rows.append({"question": np.array(question), "P": canvas})
        q = 1.0 if index % 2 == 0 else 2.0
        script.append(("PP", (q, q)))
    config = tiny_config(vocab_size=12, seq_len=900, grid_shape=(30, 30), id_to_symbol=ARC_SYMBOLS, task="arc",
                         blank_token_id=None, num_puzzle_identifiers=metadata.num_puzzle_identifiers,
                         halt_max_steps=2)
    model = scripted_model(rows, script, config)
    submission = tmp_path / "submission.json"
    results = evaluate_model(model, test, metadata, batch_size=3, progress=False, dtype="fp32",
                             submission_path=submission)
    metrics = results["metrics"]
    assert metrics["pass@1"] == 0.0 and metrics["pass@2"] == 1.0 and metrics["pass@1000"] == 1.0
    assert (metrics["num_tasks"], metrics["num_test_outputs"], metrics["num_predictions"]) == (1, 1, 4)
    assert metrics["exact_accuracy"] == 0.5 and results["accuracy_by_steps"] == {"1": 0.5, "2": 0.5}
    assert json.loads(submission.read_text()) == {"cafe0001": [{"attempt_1": wrong.tolist(),
                                                                "attempt_2": truth.tolist()}]}
    assert results["arc"] == {"submission": str(submission)}
    check_results(results)


# ----------------------------------------------------------------------------- errors before compute


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(vocab_size=11, id_to_symbol=SUDOKU_SYMBOLS), r"vocab_size: model 11, dataset 6"),
    (dict(seq_len=81, grid_shape=(9, 9)),
     r"seq_len: model 81, dataset 16.*grid_shape: model \[9, 9\], dataset \[4, 4\]"),
])
def test_mismatched_model_fails_before_compute(sudoku_dir, tmp_path, capsys, no_compute, overrides, message):
    folder = tmp_path / "model"
    tiny_model(num_puzzle_identifiers=1, **overrides).save_pretrained(folder)
    out = tmp_path / "results.json"
    assert run_cli("--model", str(folder), "--dataset", str(sudoku_dir), "--out", str(out)) == 2
    error = capsys.readouterr().err
    assert re.search(message, error) and "does not fit the dataset" in error
    assert not out.exists()


def test_check_compatibility_names_both_values(sudoku_dir, no_compute):
    dataset, metadata = load_trm_dataset(sudoku_dir)
    check_compatibility(tiny_config(num_puzzle_identifiers=1), metadata)  # fits
    with pytest.raises(ValueError, match=r"num_puzzle_identifiers: model 3, dataset 1"):
        evaluate_model(tiny_model(num_puzzle_identifiers=3), dataset["test"], metadata, progress=False)
    renamed = list(metadata.id_to_symbol[:-1]) + ["x"]
    with pytest.raises(ValueError, match=r"id_to_symbol: .*first difference at id 5"):
        check_compatibility(tiny_config(num_puzzle_identifiers=1, id_to_symbol=renamed), metadata)
    with pytest.raises(ValueError, match=r"task: model 'maze', dataset 'sudoku'"):
        check_compatibility(tiny_config(num_puzzle_identifiers=1, task="maze"), metadata)


def test_existing_results_are_kept_without_overwrite(sudoku_dir, model_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "results.json"
    out.write_text("earlier results")
    calls = []
    original = TRMForGridReasoning.solve
    monkeypatch.setattr(TRMForGridReasoning, "solve", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--out", str(out), "--no-progress") == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "earlier results" and not calls
    with pytest.raises(FileExistsError, match="already exists"):
        write_results({"schema_version": 1}, out)
    assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--out", str(out), "--no-progress",
                   "--overwrite", "--limit", "3") == 0
    assert json.loads(out.read_text())["dataset"]["num_examples"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


def test_limit_is_respected(sudoku_dir, model_dir, tmp_path, monkeypatch):
    solved_rows = []
    original = TRMForGridReasoning.solve

    def counting(self, input_ids, *args, **kwargs):
        solved_rows.append((input_ids.shape[0], kwargs.get("slots")))
        return original(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(TRMForGridReasoning, "solve", counting)
    out = tmp_path / "results.json"
    assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--out", str(out), "--limit", "7",
                   "--batch-size", "4", "--dtype", "bf16", "--halting", "act", "--max-steps", "3",
                   "--no-progress") == 0
    results = json.loads(out.read_text())
    assert solved_rows == [(7, 4)]  # ACT: the 7 rows stream through 4 slots that refill as puzzles halt
    assert results["dataset"]["num_examples"] == 7 and results["dataset"]["split_rows"] == NUM_TEST
    assert results["protocol"]["limit"] == 7 and results["protocol"]["dtype"] == "bf16"
    assert list(results["accuracy_by_steps"]) == ["1", "2", "3"]
    assert 1.0 <= results["mean_steps"] <= 3.0


def test_bad_arguments_and_missing_split(sudoku_dir, model_dir, tmp_path, capsys, no_compute):
    assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--split", "validation",
                   "--out", str(tmp_path / "r.json")) == 2
    assert "no split 'validation'" in capsys.readouterr().err
    assert run_cli("--model", str(tmp_path / "missing"), "--dataset", str(sudoku_dir),
                   "--out", str(tmp_path / "r.json")) == 2
    assert "could not load a model config" in capsys.readouterr().err
    dataset, metadata = load_trm_dataset(sudoku_dir)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        evaluate_model(tiny_model(num_puzzle_identifiers=1), dataset["test"], metadata, batch_size=0)


def test_results_go_inside_a_local_model_folder_by_default(sudoku_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    tiny_model(num_puzzle_identifiers=1).save_pretrained(folder)
    assert run_cli("--model", str(folder), "--dataset", str(sudoku_dir), "--limit", "2", "--no-progress") == 0
    assert json.loads((folder / "results.json").read_text())["dataset"]["num_examples"] == 2
    assert run_cli("--model", "my-org/trm-sudoku", "--dataset", str(sudoku_dir)) == 2
    assert "--out is required" in capsys.readouterr().err


def test_trm_eval_on_arc_writes_a_submission_beside_the_results(tmp_path, capsys):
    task = ArcTask("cafe0002", [ArcExample(np.array([[1]]), np.array([[2]]))], [ArcExample(np.array([[3, 4]]), None)])
    solved = ArcTask("cafe0003", [ArcExample(np.array([[1]]), np.array([[2]]))],
                     [ArcExample(np.array([[5]]), np.array([[6, 6]]))])
    dataset, metadata = build_arc_dataset([], [task, solved], num_aug=1, seed=0)
    data = save_trm_dataset(dataset, metadata, tmp_path / "arc")
    folder = tmp_path / "model"
    tiny_model(vocab_size=12, seq_len=900, grid_shape=(30, 30), id_to_symbol=ARC_SYMBOLS, task="arc",
               blank_token_id=None, num_puzzle_identifiers=metadata.num_puzzle_identifiers,
               halt_max_steps=2).save_pretrained(folder)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "submission.json").write_text("{}")
    args = ("--model", str(folder), "--dataset", str(data), "--out", str(tmp_path / "out" / "results.json"),
            "--no-progress", "--dtype", "fp32")
    assert run_cli(*args) == 2 and "submission.json already exists" in capsys.readouterr().err
    assert run_cli(*args, "--overwrite") == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    # the unsolved task is voted on and submitted but not scored
    assert results["metrics"]["num_tasks"] == 1 and results["metrics"]["num_scored_rows"] == 2
    assert results["metrics"]["num_predictions"] == 4 and set(results["accuracy_by_steps"]) == {"1", "2"}
    assert 0.0 <= results["metrics"]["pass@2"] <= 1.0 and "exact_accuracy" in results["metrics"]
    submission = json.loads((tmp_path / "out" / "submission.json").read_text())
    assert sorted(submission) == ["cafe0002", "cafe0003"]
    assert all(set(entry) == {"attempt_1", "attempt_2"} for entries in submission.values() for entry in entries)
    check_results(results)


def test_trm_eval_with_noisy_samples_is_reproducible_and_recorded(sudoku_dir, model_dir, tmp_path) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.json"
        assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--batch-size", "8", "--no-progress",
                       "--samples", "3", "--noise-std", "0.5", "--selection", "vote", "--seed", "7",
                       "--out", str(out)) == 0
        runs.append(json.loads(out.read_text()))
    first, second = runs
    assert {key: first["protocol"][key] for key in ("samples", "noise_std", "selection", "seed")} == \
        {"samples": 3, "noise_std": 0.5, "selection": "vote", "seed": 7}
    assert first["metrics"] == second["metrics"] and first["accuracy_by_steps"] == second["accuracy_by_steps"]
    plain = tmp_path / "plain.json"
    assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--batch-size", "8", "--no-progress",
                   "--out", str(plain)) == 0
    assert json.loads(plain.read_text())["protocol"]["samples"] == 1


@pytest.mark.parametrize("confidence", [None, 0.7])
def test_trm_eval_escalates_only_unconfident_puzzles_and_reports_their_cost(confidence, sudoku_dir, model_dir,
                                                                           tmp_path) -> None:
    out = tmp_path / "escalated.json"
    threshold = [] if confidence is None else ["--escalate-confidence", str(confidence)]
    assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--batch-size", "8", "--no-progress",
                   "--samples", "3", "--noise-std", "0.5", "--seed", "7", "--max-steps", "6", "--escalate",
                   "--escalate-after", "2", *threshold, "--out", str(out)) == 0
    results = json.loads(out.read_text())
    assert results["protocol"]["escalate"] is True and results["protocol"]["escalate_after"] == 2
    assert results["protocol"]["escalate_confidence"] == (0.5 if confidence is None else confidence)
    # the same solve by hand: which puzzles escalated, what they cost, how many are right
    split, _ = load_trm_dataset(sudoku_dir)
    model = TRMForGridReasoning.from_pretrained(model_dir).eval()
    test = split["test"]
    ids = torch.tensor(test["input_ids"])
    solved = model.solve(ids, torch.tensor(test["puzzle_identifiers"]), max_steps=6, halting="max", samples=3,
                         noise_std=0.5, selection="halt", generator=torch.Generator().manual_seed(7), escalate=True,
                         escalate_after=2, escalate_confidence=confidence)
    labels = torch.tensor(test["labels"])
    right = ((solved.predictions == labels) | (labels == -100)).all(1).float().mean().item()
    assert results["metrics"]["exact_accuracy"] == pytest.approx(right)
    assert list(results["accuracy_by_steps"]) == ["6"] and "act" not in results
    compute = results["compute"]
    assert compute["escalated_fraction"] == pytest.approx(solved.escalated.float().mean().item())
    assert compute["mean_total_steps"] == pytest.approx(solved.total_steps.float().mean().item())
    assert compute["mean_network_calls"] == pytest.approx(6 * compute["mean_total_steps"])
    check_results(results)


@pytest.mark.parametrize("flags, named", [(["--samples", "0"], "samples"), (["--noise-std", "-0.1"], "noise_std"),
                                          (["--seed", "-1"], "seed"), (["--escalate"], "escalate"),
                                          (["--escalate-after", "3"], "escalate_after"),
                                          (["--escalate", "--samples", "4", "--noise-std", "0.3",
                                            "--escalate-confidence", "1.5"], "escalate_confidence"),
                                          (["--escalate-confidence", "0.9"], "escalate_confidence")])
def test_trm_eval_refuses_bad_sampling_options_before_loading(flags, named, sudoku_dir, model_dir, tmp_path, capsys,
                                                              no_compute, monkeypatch) -> None:
    import modeling_trm.inference.evaluation as evaluation

    monkeypatch.setattr(evaluation, "load_model_for_eval", lambda *a, **k: pytest.fail("weights loaded"))
    assert run_cli("--model", str(model_dir), "--dataset", str(sudoku_dir), "--no-progress",
                   "--out", str(tmp_path / "r.json"), *flags) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
