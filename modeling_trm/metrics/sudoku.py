"""Sudoku validity: a prediction counts if it is a complete, legal solution that keeps the givens.

Sudoku-Extreme puzzles can have more than one solution in principle, so a legal grid that differs
from the label is still solved; this metric reports it beside exact match.
Token ids follow the project vocabulary: 0 PAD, 1 blank, digit d is id d + 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .token_rows import check_same_shape, exact_rows, scored_mask, token_matrix

SUDOKU_BLANK_TOKEN_ID = 1
SUDOKU_DIGIT_OFFSET = 1  # digit d has token id d + 1
# Box (rows, cols) for each supported side N.
SUDOKU_BOX_SHAPES: dict[int, tuple[int, int]] = {4: (2, 2), 6: (2, 3), 9: (3, 3)}


def sudoku_side(seq_len: int) -> int:
    """Side N of a Sudoku of `seq_len` cells; raises `ValueError` for unsupported sizes."""
    side = math.isqrt(seq_len)
    if side * side != seq_len or side not in SUDOKU_BOX_SHAPES:
        sizes = ", ".join(f"{n * n} ({n}x{n})" for n in SUDOKU_BOX_SHAPES)
        raise ValueError(f"Sudoku rows must have one of {sizes} cells, got {seq_len}")
    return side


def _all_groups_complete(digits: np.ndarray) -> np.ndarray:
    """Per grid: each group along the last axis holds every digit 1..N exactly once. (batch, groups, N)."""
    side = digits.shape[-1]
    return (np.sort(digits, axis=-1) == np.arange(1, side + 1)).all(axis=(-2, -1))


def valid_sudoku_rows(predictions: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Per row: the prediction is a legal complete N x N solution that agrees with every given of the input."""
    side = sudoku_side(predictions.shape[1])
    box_rows, box_cols = SUDOKU_BOX_SHAPES[side]
    digits = predictions.reshape(-1, side, side) - SUDOKU_DIGIT_OFFSET  # (B, N, N), 1..N where legal
    in_range = ((digits >= 1) & (digits <= side)).all(axis=(1, 2))
    boxes = (
        digits.reshape(-1, side // box_rows, box_rows, side // box_cols, box_cols)
        .transpose(0, 1, 3, 2, 4)
        .reshape(-1, side, side)
    )  # (B, box index, cell in box)
    legal = in_range & _all_groups_complete(digits) & _all_groups_complete(digits.transpose(0, 2, 1))
    legal &= _all_groups_complete(boxes)
    givens = inputs != SUDOKU_BLANK_TOKEN_ID
    keeps_givens = ((predictions == inputs) | ~givens).all(axis=1)
    return legal & keeps_givens


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
