"""Sudoku validity: a prediction counts if it is a complete, legal solution that keeps the givens.

Sudoku-Extreme puzzles can have more than one solution in principle, so a legal grid that differs
from the label is still solved; this metric reports it beside exact match.
Token ids follow the project vocabulary: 0 PAD, 1 blank, digit d is id d + 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..grid_checks import (SUDOKU_BLANK_TOKEN_ID, SUDOKU_BOX_SHAPES, SUDOKU_DIGIT_OFFSET, sudoku_side,
                           valid_sudoku_rows)
from .token_rows import check_same_shape, exact_rows, scored_mask, token_matrix


def _check_sudoku_inputs(inputs: np.ndarray) -> None:
    side = sudoku_side(inputs.shape[1])
    bad = (inputs < SUDOKU_BLANK_TOKEN_ID) | (inputs > side + SUDOKU_DIGIT_OFFSET)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"inputs: row {row} cell {col} has token id {int(inputs[row, col])}; a {side}x{side} Sudoku question "
            f"holds only blank ({SUDOKU_BLANK_TOKEN_ID}) and digits "
            f"({1 + SUDOKU_DIGIT_OFFSET}..{side + SUDOKU_DIGIT_OFFSET})"
        )


def sudoku_validity(predictions: Any, inputs: Any, references: Any = None) -> dict[str, Any]:
    """Share of predictions that are legal complete Sudoku solutions consistent with the givens.

    Args:
        predictions: `(batch, N*N)` predicted token ids, N in (4, 6, 9).
        inputs: The questions, same shape (1 = blank, d + 1 = given digit d).
        references: The labels, optional; when given, `exact_accuracy` is reported too.

    Returns:
        `{"valid_accuracy", "num_examples"}` plus `"exact_accuracy"` with references.
    """
    pred = token_matrix("predictions", predictions)
    question = token_matrix("inputs", inputs)
    check_same_shape("predictions", pred, "inputs", question)
    _check_sudoku_inputs(question)
    result: dict[str, Any] = {
        "valid_accuracy": float(valid_sudoku_rows(pred, question).mean()),
        "num_examples": int(pred.shape[0]),
    }
    if references is not None:
        ref = token_matrix("references", references)
        check_same_shape("predictions", pred, "references", ref)
        result["exact_accuracy"] = float(exact_rows(pred, ref, scored_mask(ref)).mean())
    return result
