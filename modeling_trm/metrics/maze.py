"""Maze path metrics: exact match, and "valid shortest path".

A maze usually has many shortest paths and the label marks only one, so a prediction that marks a
different shortest path is a correct answer that exact match calls wrong. The valid-path check
accepts it. Token ids: 0 PAD, 1 wall "#", 2 open " ", 3 start "S", 4 goal "G", 5 path "o".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..grid_checks import MAZE_GOAL, MAZE_PAD, MAZE_PATH, MAZE_START, is_valid_path
from .token_rows import check_same_shape, exact_rows, scored_mask, token_matrix


def _maze_shape(seq_len: int, grid_shape: tuple[int, int] | None) -> tuple[int, int]:
    if grid_shape is not None:
        rows, cols = (int(s) for s in grid_shape)
        if rows * cols != seq_len:
            raise ValueError(f"grid_shape {tuple(grid_shape)} has {rows * cols} cells but rows have {seq_len} tokens")
        return rows, cols
    side = math.isqrt(seq_len)
    if side * side != seq_len:
        raise ValueError(f"rows of {seq_len} tokens are not a square grid; pass grid_shape=(rows, cols)")
    return side, side


def _check_maze_inputs(inputs: np.ndarray) -> None:
    for name, token in (("start 'S'", MAZE_START), ("goal 'G'", MAZE_GOAL)):
        counts = (inputs == token).sum(axis=1)
        bad = np.flatnonzero(counts != 1)
        if bad.size:
            row = int(bad[0])
            raise ValueError(f"inputs: row {row} has {int(counts[row])} {name} cells; a maze needs exactly one")
    bad_cells = (inputs < MAZE_PAD) | (inputs > MAZE_GOAL)
    if bad_cells.any():
        row, col = (int(i) for i in np.argwhere(bad_cells)[0])
        raise ValueError(
            f"inputs: row {row} cell {col} has token id {int(inputs[row, col])}; a maze question holds only "
            f"PAD, wall, open, S and G ({MAZE_PAD}..{MAZE_GOAL}); the path {MAZE_PATH} belongs to the answer"
        )


def maze_path(
    predictions: Any, references: Any, inputs: Any, grid_shape: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Exact match and valid-shortest-path rate of predicted maze solutions.

    A prediction is a valid shortest path when it marks (with "o") a simple 4-connected path of open
    cells from S to G whose length equals the label's path length, and changes nothing else
    (see `is_valid_path`). The label's path is a shortest path, so an equally long path is one too.

    Args:
        predictions: `(batch, rows*cols)` predicted token ids.
        references: The labels (the question with the path marked), same shape.
        inputs: The questions, same shape.
        grid_shape: `(rows, cols)`; defaults to a square grid.

    Returns:
        `{"exact_accuracy", "valid_path_accuracy", "num_examples"}`.
    """
    pred = token_matrix("predictions", predictions)
    ref = token_matrix("references", references)
    question = token_matrix("inputs", inputs)
    check_same_shape("predictions", pred, "references", ref)
    check_same_shape("inputs", question, "references", ref)
    shape = _maze_shape(pred.shape[1], grid_shape)
    _check_maze_inputs(question)
    path_lengths = (ref == MAZE_PATH).sum(axis=1) + 2  # the marked cells plus S and G
    valid = [
        is_valid_path(p.reshape(shape), q.reshape(shape), int(n)) for p, q, n in zip(pred, question, path_lengths)
    ]
    return {
        "exact_accuracy": float(exact_rows(pred, ref, scored_mask(ref)).mean()),
        "valid_path_accuracy": float(np.mean(valid)),
        "num_examples": int(pred.shape[0]),
    }
