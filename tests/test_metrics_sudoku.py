"""sudoku_validity: legal-solution checks for 4x4, 6x6 and 9x9 grids, plain and through `evaluate`."""

from pathlib import Path

import evaluate
import numpy as np
import pytest

from modeling_trm.metrics import SUDOKU_BOX_SHAPES, sudoku_validity

METRIC_DIR = Path(__file__).resolve().parents[1] / "eval" / "metrics" / "sudoku_validity"

# Digits (1..N) of a 4x4 solution; token ids are digit + 1.
SOLUTION_4 = np.array([[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]])
SWAPPED_4 = np.choose(SOLUTION_4 - 1, [2, 1, 3, 4])  # digits 1 and 2 exchanged: still a legal grid
LATIN_4 = np.array([[1, 2, 3, 4], [2, 3, 4, 1], [3, 4, 1, 2], [4, 1, 2, 3]])  # rows/cols fine, boxes not
SAME_ROWS_4 = np.tile([1, 2, 3, 4], (4, 1))  # rows fine, columns not


def ids(digits: np.ndarray) -> list[int]:
    return (np.asarray(digits) + 1).reshape(-1).tolist()


def question(solution: np.ndarray, keep: np.ndarray) -> list[int]:
    """Question token ids: given digits where `keep`, blank (1) elsewhere."""
    return np.where(keep, np.asarray(solution) + 1, 1).reshape(-1).tolist()


# Givens only where the label has 3 or 4, so the swapped grid keeps every given.
GIVENS_34 = question(SOLUTION_4, SOLUTION_4 >= 3)
GIVENS_WITH_1 = question(SOLUTION_4, SOLUTION_4 != 2)  # gives a 1 that the swapped grid changes
WITH_BLANK = ids(SOLUTION_4)
WITH_BLANK[5] = 1  # a cell left blank

PREDICTIONS = [ids(SOLUTION_4), ids(SWAPPED_4), ids(SWAPPED_4), WITH_BLANK, ids(SAME_ROWS_4), ids(LATIN_4)]
INPUTS = [GIVENS_34, GIVENS_34, GIVENS_WITH_1, GIVENS_34, [1] * 16, [1] * 16]
REFERENCES = [ids(SOLUTION_4)] * 6
# Legal and keeping the givens: rows 0 and 1. Equal to the label: row 0 only.
EXPECTED = {"valid_accuracy": 2 / 6, "exact_accuracy": 1 / 6, "num_examples": 6}


def pattern_solution(side: int) -> np.ndarray:
    """A legal N x N solution from the shifted-rows pattern (checked independently below)."""
    box_rows, box_cols = SUDOKU_BOX_SHAPES[side]
    r, c = np.indices((side, side))
    return (box_cols * (r % box_rows) + r // box_rows + c) % side + 1


def is_legal_by_sets(grid: np.ndarray) -> bool:
    side = grid.shape[0]
    box_rows, box_cols = SUDOKU_BOX_SHAPES[side]
    digits = set(range(1, side + 1))
    groups = [set(row) for row in grid] + [set(col) for col in grid.T]
    groups += [
        set(grid[r : r + box_rows, c : c + box_cols].ravel())
        for r in range(0, side, box_rows)
        for c in range(0, side, box_cols)
    ]
    return all(group == digits for group in groups)


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


def test_crafted_grids_hand_computed():
    assert is_legal_by_sets(SOLUTION_4) and is_legal_by_sets(SWAPPED_4)
    assert not is_legal_by_sets(LATIN_4) and not is_legal_by_sets(SAME_ROWS_4)
    assert sudoku_validity(PREDICTIONS, INPUTS, REFERENCES) == pytest.approx(EXPECTED)
    assert sudoku_validity(PREDICTIONS, INPUTS) == pytest.approx(
        {"valid_accuracy": 2 / 6, "num_examples": 6}
    )


@pytest.mark.parametrize("side", [6, 9])
def test_larger_sizes_use_their_boxes(side):
    solution = pattern_solution(side)
    assert is_legal_by_sets(solution)
    latin = (np.add.outer(np.arange(side), np.arange(side)) % side) + 1  # latin square, boxes repeat digits
    assert not is_legal_by_sets(latin)
    blank_question = [1] * (side * side)
    result = sudoku_validity([ids(solution), ids(latin)], [blank_question, blank_question], [ids(solution)] * 2)
    assert result == pytest.approx({"valid_accuracy": 0.5, "exact_accuracy": 0.5, "num_examples": 2})


def test_bad_input_raises():
    with pytest.raises(ValueError, match="25"):
        sudoku_validity([[2] * 25], [[1] * 25])
    with pytest.raises(ValueError, match="inputs: row 0 cell 3 has token id 0"):
        sudoku_validity([ids(SOLUTION_4)], [[1, 1, 1, 0] + [1] * 12])
    with pytest.raises(ValueError, match="inputs: row 0 cell 0 has token id 6"):
        sudoku_validity([ids(SOLUTION_4)], [[6] + [1] * 15])
    with pytest.raises(ValueError, match="predictions has 1 rows but inputs has 2"):
        sudoku_validity([ids(SOLUTION_4)], [GIVENS_34] * 2)


def test_evaluate_module_matches_plain_function(metric):
    result = metric.compute(predictions=PREDICTIONS, references=REFERENCES, inputs=INPUTS)
    assert result == pytest.approx(EXPECTED)
