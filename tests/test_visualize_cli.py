"""`trm visualize`: the refinement picture of one puzzle, the exact Sudoku solution it is coloured
against, and errors that name the argument."""

from __future__ import annotations

import pytest

from modeling_trm.commands import main
from modeling_trm.data.generate_sudoku import generate_sudoku_splits
from modeling_trm.commands.visualize import exact_sudoku_solution, parse_one
from tiny_models import tiny_config, tiny_model


@pytest.fixture(scope="module")
def puzzle():
    return generate_sudoku_splits(4, 0, 1, seed=3)["test"][0]


def test_exact_solution_is_the_generated_answer_in_token_ids(puzzle) -> None:
    config = tiny_config()
    question = parse_one(puzzle.question, config, "--puzzle")
    assert exact_sudoku_solution(question, config) == [int(c) + 1 for c in puzzle.answer]  # digit d -> token d+1


def test_a_sudoku_with_several_solutions_asks_for_one() -> None:
    with pytest.raises(ValueError, match="several solutions"):
        exact_sudoku_solution([1] * 16, tiny_config())


def test_trm_visualize_writes_the_picture(tmp_path, puzzle, capsys) -> None:
    tiny_model().eval().save_pretrained(tmp_path / "model")
    out = tmp_path / "refinement.png"
    assert main(["visualize", str(tmp_path / "model"), "--puzzle", puzzle.question, "--out", str(out),
                 "--halting", "max"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "4 steps" in capsys.readouterr().out  # halt_max_steps of the tiny config, all drawn under max
    assert main(["visualize", str(tmp_path / "model"), "--puzzle", puzzle.question[:5]]) == 2
    assert "--puzzle: expected 16 symbols, got 5" in capsys.readouterr().err
