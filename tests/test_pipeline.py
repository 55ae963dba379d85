"""The `grid-reasoning` pipeline: in process, from a saved folder without the package, batched == single,
outputs equal to `solve`, bad inputs refused before any compute."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import pipeline

from modeling_trm import GridReasoningPipeline
from modeling_trm.arc_canvas import arc_grid_to_canvas, crop_arc_prediction
from modeling_trm.configuration_trm import ARC_SYMBOLS, MAZE_SYMBOLS
from modeling_trm.grid_checks import is_shortest_maze_path, shortest_path_cells, valid_sudoku_rows
from modeling_trm.puzzle_text import render_answer
from tiny_models import tiny_model

QUESTIONS = ["1..4.4...3.1..1.", "0203000000000000", "....3..........4", "12..34..........", "................"]


@pytest.fixture(scope="module")
def sudoku_model():
    model = tiny_model(seed=2, num_puzzle_identifiers=1).eval()
    with torch.no_grad():  # a halting head with both signs, so puzzles stop at different steps
        model.q_head.weight.normal_(0, 2.0, generator=torch.Generator().manual_seed(0))
        model.q_head.bias.zero_()
    return model


def expected_outputs(model, questions: list[str], halting: str = "act") -> list[dict]:
    """What the pipeline must return, computed from `solve` directly."""
    lookup = {".": 1, "0": 1, "1": 2, "2": 3, "3": 4, "4": 5}
    ids = torch.tensor([[lookup[c] for c in q] for q in questions])
    solved = model.solve(ids, halting=halting)
    valid = valid_sudoku_rows(solved.predictions.numpy(), ids.numpy())
    return [{"answer": render_answer(solved.predictions[i].tolist(), model.config), "steps": int(solved.steps[i]),
             "halt_probability": 1 / (1 + math.exp(-float(solved.q_halt_logits[i]))), "valid": bool(valid[i])}
            for i in range(len(questions))]


def assert_same_outputs(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert set(got) == set(want)
        assert got["answer"] == want["answer"] and got["steps"] == want["steps"] and got["valid"] == want["valid"]
        assert got["halt_probability"] == pytest.approx(want["halt_probability"], abs=1e-5)


def test_in_process_pipeline_returns_solve_outputs(sudoku_model) -> None:
    solver = pipeline("grid-reasoning", model=sudoku_model, device="cpu")
    assert isinstance(solver, GridReasoningPipeline) and solver.device.type == "cpu"
    expected = expected_outputs(sudoku_model, QUESTIONS)
    assert len({e["steps"] for e in expected}) > 1, "test needs puzzles that halt at different steps"
    single = [solver(q) for q in QUESTIONS]
    assert_same_outputs(single, expected)
    for batch_size in (2, 5):  # batched calls equal single calls
        assert_same_outputs(solver(QUESTIONS, batch_size=batch_size), expected)
    assert_same_outputs(solver(QUESTIONS, halting="max"), expected_outputs(sudoku_model, QUESTIONS, "max"))
    assert {out["steps"] for out in solver(QUESTIONS, halting="max", max_steps=2)} == {2}
    assert solver([]) == []


def test_batch_size_given_at_construction(sudoku_model) -> None:
    solver = pipeline("grid-reasoning", model=sudoku_model, device="cpu", batch_size=3)
    batches = []
    original = sudoku_model.solve
    sudoku_model.solve = lambda ids, **kwargs: batches.append(len(ids)) or original(ids, **kwargs)
    try:
        assert_same_outputs(solver(QUESTIONS), expected_outputs(sudoku_model, QUESTIONS))
    finally:
        del sudoku_model.solve
    assert batches[:2] == [3, 2]


@pytest.mark.parametrize("inputs, message", [
    (["1..4.4...3.1..1.", "1..4"], "puzzle 1: expected 16 symbols, got 4"),
    ("1..4.4...3.1..1.\u00e9", "puzzle 0: expected 16 symbols, got 17"),
    (["1..4.4...3.1..1.", "1..4.4...3.1..1.", "1..4.4...3.1..9."], r"puzzle 2: symbols \['9'\] are not in"),
    ([[1, 2], [3, 4]], "puzzle 0: expected a puzzle string of 16 symbols, got list"),
])
def test_bad_sudoku_inputs_name_the_puzzle_before_any_compute(sudoku_model, inputs, message) -> None:
    solver = pipeline("grid-reasoning", model=sudoku_model, device="cpu")
    sudoku_model.solve = lambda *args, **kwargs: pytest.fail("solve ran although an input was bad")
    try:
        with pytest.raises(ValueError, match=message):
            solver(inputs)
    finally:
        del sudoku_model.solve
    with pytest.raises(ValueError, match="halting must be one of"):
        solver(QUESTIONS[0], halting="sometimes")
    with pytest.raises(ValueError, match=r"unknown grid-reasoning parameters \['max_step'\]"):
        solver(QUESTIONS[0], max_step=3)


def test_maze_answers_say_whether_they_mark_a_shortest_path() -> None:
    model = tiny_model(task="maze", vocab_size=6, id_to_symbol=MAZE_SYMBOLS, blank_token_id=None,
                       num_puzzle_identifiers=1).eval()
    question = "S  ## # #  #   G"  # 4x4, row by row
    out = pipeline("grid-reasoning", model=model, device="cpu")(question)
    ids = torch.tensor([[MAZE_SYMBOLS.index(c) for c in question]])
    prediction = model.solve(ids).predictions[0].numpy().reshape(4, 4)
    assert out["answer"] == render_answer(prediction.reshape(-1).tolist(), model.config)
    assert out["valid"] == is_shortest_maze_path(prediction, ids[0].numpy().reshape(4, 4))


def test_shortest_maze_path_is_judged_from_the_question_alone() -> None:
    symbols = {c: i for i, c in enumerate(MAZE_SYMBOLS) if len(c) == 1}
    grid = lambda rows: np.array([[symbols[c] for c in row] for row in rows])  # noqa: E731
    question = grid(["S  ", " # ", "  G"])
    assert shortest_path_cells(question) == 5
    assert is_shortest_maze_path(grid(["Soo", " #o", "  G"]), question)
    assert is_shortest_maze_path(grid(["S  ", "o# ", "ooG"]), question)  # the other shortest path
    assert not is_shortest_maze_path(grid(["So ", " # ", "  G"]), question)  # broken
    assert not is_shortest_maze_path(grid(["S  ", " # ", "  G"]), question)  # no path marked
    assert shortest_path_cells(grid(["S# ", "## ", "  G"])) is None  # G unreachable
    assert not is_shortest_maze_path(grid(["S# ", "## ", "  G"]), grid(["S# ", "## ", "  G"]))


def arc_model():
    return tiny_model(task="arc", vocab_size=12, id_to_symbol=ARC_SYMBOLS, blank_token_id=None, seq_len=36,
                      grid_shape=(6, 6), num_puzzle_identifiers=1, halt_max_steps=2).eval()


def test_arc_grids_in_cropped_grids_out() -> None:
    model = arc_model()
    solver = pipeline("grid-reasoning", model=model, device="cpu")
    grids = [[[1, 2], [3, 4]], [[0, 0, 5]], np.full((6, 6), 7)]
    outputs = solver(grids, batch_size=2)
    canvases = torch.tensor(np.stack([arc_grid_to_canvas(np.asarray(g), canvas_shape=(6, 6)).reshape(-1)
                                      for g in grids]))
    solved = model.solve(canvases)
    for out, prediction, steps in zip(outputs, solved.predictions, solved.steps):
        crop = crop_arc_prediction(prediction.numpy().reshape(6, 6))
        assert out["answer"] == (None if crop is None else crop.tolist())
        assert out["steps"] == int(steps) and "valid" not in out
    assert solver(grids[0]) == outputs[0]  # a single grid is one puzzle, not a batch of rows
    with pytest.raises(ValueError, match="puzzle 1: grid is 7x1, larger than the model's 6x6 canvas"):
        solver([[[1]], [[1]] * 7])
    with pytest.raises(ValueError, match="puzzle 0: grid cells must be integer colours 0..9"):
        solver([[1, 10]])
    with pytest.raises(ValueError, match="puzzle 0: grid rows must all have the same non-zero length"):
        solver([[1, 2], [3]])
    with pytest.raises(ValueError, match="puzzle 1: expected a 2-D grid"):
        solver([[[1]], "12"])


def test_saved_folder_runs_the_pipeline_without_the_package(sudoku_model, tmp_path) -> None:
    model_dir = tmp_path / "model"
    sudoku_model.save_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["custom_pipelines"] == {"grid-reasoning": {"impl": "pipeline_trm.GridReasoningPipeline",
                                                             "pt": ["AutoModel"]}}
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["modeling_trm"] = None  # the installed package must not be importable
        from transformers import pipeline
        solver = pipeline(model={str(model_dir)!r}, trust_remote_code=True, device="cpu")
        assert not type(solver).__module__.startswith("modeling_trm"), type(solver).__module__
        questions = {QUESTIONS!r}
        try:
            solver(questions[:1] + ["1..4"])
            raise AssertionError("a bad puzzle was accepted")
        except ValueError as error:
            message = str(error)
        print("RESULT", json.dumps({{"module": type(solver).__module__, "single": [solver(q) for q in questions],
                                    "batched": solver(questions, batch_size=2), "error": message}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert remote["module"].startswith("transformers_modules.")
    expected = expected_outputs(sudoku_model, QUESTIONS)
    assert_same_outputs(remote["single"], expected)
    assert_same_outputs(remote["batched"], expected)
    assert remote["error"] == "puzzle 1: expected 16 symbols, got 4"

