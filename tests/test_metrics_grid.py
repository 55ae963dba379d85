"""grid_accuracy: hand-computed values through the plain function and the `evaluate` module."""

from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch

from modeling_trm.metrics import grid_accuracy, token_matrix

METRIC_DIR = Path(__file__).resolve().parents[1] / "eval" / "metrics" / "grid_accuracy"

PREDICTIONS = [[2, 3, 4, 5], [2, 3, 4, 4], [5, 5, 5, 5]]
REFERENCES = [[2, 3, 4, 5], [2, 3, 4, 5], [2, -100, 0, 5]]  # row 2 scores only cells 0 and 3
INPUTS = [[2, 1, 1, 1], [1, 1, 4, 1], [1, 1, 1, 1]]
# Row 0: 4/4 right; row 1: 3/4; row 2: 1/2 scored cells. Exact 1/3, token 8/10.
# Blank cells that are scored: row 0 cells 1-3 (3 right), row 1 cells 0,1,3 (2 right), row 2 cells 0,3 (1 right): 6/8.
EXPECTED = {"exact_accuracy": 1 / 3, "token_accuracy": 0.8, "num_examples": 3}


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


def test_plain_function_hand_computed():
    assert grid_accuracy(PREDICTIONS, REFERENCES) == pytest.approx(EXPECTED)
    with_blanks = grid_accuracy(PREDICTIONS, REFERENCES, inputs=INPUTS, blank_token_id=1)
    assert with_blanks == pytest.approx({**EXPECTED, "blank_accuracy": 0.75})


def test_pad_scored_when_pad_token_id_is_none():
    # Row 2 cell 2 (reference 0, predicted 5) now counts and is wrong: 8 / 11.
    result = grid_accuracy(PREDICTIONS, REFERENCES, pad_token_id=None)
    assert result["token_accuracy"] == pytest.approx(8 / 11)
    assert result["exact_accuracy"] == pytest.approx(1 / 3)


def test_blank_accuracy_needs_both_inputs_and_blank_id_and_is_none_without_blanks():
    assert "blank_accuracy" not in grid_accuracy(PREDICTIONS, REFERENCES, inputs=INPUTS)
    assert "blank_accuracy" not in grid_accuracy(PREDICTIONS, REFERENCES, blank_token_id=1)
    no_blanks = grid_accuracy(PREDICTIONS, REFERENCES, inputs=[[2, 2, 2, 2]] * 3, blank_token_id=1)
    assert no_blanks["blank_accuracy"] is None


def test_accepts_arrays_tensors_and_grids():
    expected = grid_accuracy(PREDICTIONS, REFERENCES)
    assert grid_accuracy(np.array(PREDICTIONS), torch.tensor(REFERENCES)) == expected
    as_grids = grid_accuracy(np.array(PREDICTIONS).reshape(3, 2, 2), np.array(REFERENCES).reshape(3, 2, 2))
    assert as_grids == expected


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="predictions has 2 rows but references has 3"):
        grid_accuracy(PREDICTIONS[:2], REFERENCES)
    with pytest.raises(ValueError, match="predictions rows have 3 tokens but references rows have 4"):
        grid_accuracy([row[:3] for row in PREDICTIONS], REFERENCES)
    with pytest.raises(ValueError, match="predictions: row 1 has shape"):
        grid_accuracy([[2, 3], [2], [2, 3]], REFERENCES)
    with pytest.raises(ValueError, match="integers"):
        grid_accuracy(np.array(PREDICTIONS, dtype=float), REFERENCES)
    with pytest.raises(ValueError, match="references: row 1 has no scored cells"):
        grid_accuracy([[2], [2]], [[2], [0]])
    with pytest.raises(ValueError, match="predictions: no rows"):
        grid_accuracy([], [])
    with pytest.raises(ValueError, match="inputs"):
        grid_accuracy(PREDICTIONS, REFERENCES, inputs=[[1, 1]] * 3, blank_token_id=1)


def test_token_matrix_flattens_and_names_the_field():
    assert token_matrix("x", np.zeros((2, 3, 3), dtype=np.int32)).shape == (2, 9)
    with pytest.raises(ValueError, match="x: missing"):
        token_matrix("x", None)
    with pytest.raises(ValueError, match="x: expected a batch"):
        token_matrix("x", [1, 2, 3])


def test_evaluate_module_matches_plain_function(metric):
    assert metric.compute(predictions=PREDICTIONS, references=REFERENCES) == pytest.approx(EXPECTED)
    result = metric.compute(predictions=PREDICTIONS, references=REFERENCES, inputs=INPUTS, blank_token_id=1)
    assert result == pytest.approx({**EXPECTED, "blank_accuracy": 0.75})
    # Streaming in batches gives the same numbers.
    metric.add_batch(predictions=PREDICTIONS[:1], references=REFERENCES[:1])
    metric.add_batch(predictions=np.array(PREDICTIONS[1:]), references=np.array(REFERENCES[1:]))
    assert metric.compute() == pytest.approx(EXPECTED)
