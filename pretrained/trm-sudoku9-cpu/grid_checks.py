"""Whether one predicted grid is a valid answer: a legal Sudoku solution, a shortest maze path.

These are the per-puzzle rules behind the Sudoku and maze metrics (`modeling_trm.metrics`) and the
`valid` field of the `grid-reasoning` pipeline, so both judge answers the same way. Token ids follow
the project vocabularies: Sudoku 0 PAD, 1 blank, digit d = d + 1; maze 0 PAD, 1 wall "#", 2 open " ",
3 start "S", 4 goal "G", 5 path "o".

This file is copied next to saved checkpoints (the pipeline imports it for `trust_remote_code`): it
imports only the standard library and numpy.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

SUDOKU_BLANK_TOKEN_ID = 1
SUDOKU_DIGIT_OFFSET = 1  # digit d has token id d + 1
# Box (rows, cols) for each supported side N.
SUDOKU_BOX_SHAPES: dict[int, tuple[int, int]] = {4: (2, 2), 6: (2, 3), 9: (3, 3)}

MAZE_PAD, MAZE_WALL, MAZE_OPEN, MAZE_START, MAZE_GOAL, MAZE_PATH = 0, 1, 2, 3, 4, 5


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


def _path_distances(walkable: np.ndarray, start: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Breadth-first distances from `start` over 4-connected `walkable` cells."""
    rows, cols = walkable.shape
    distance = {start: 0}
    frontier = deque([start])
    while frontier:
        r, c = frontier.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < rows and 0 <= nc < cols and walkable[nr, nc] and (nr, nc) not in distance:
                distance[(nr, nc)] = distance[(r, c)] + 1
                frontier.append((nr, nc))
    return distance


def _start_and_goal(question: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    start = tuple(int(i) for i in np.argwhere(question == MAZE_START)[0])
    goal = tuple(int(i) for i in np.argwhere(question == MAZE_GOAL)[0])
    return start, goal


def is_valid_path(prediction: np.ndarray, question: np.ndarray, path_length: int) -> bool:
    """Whether a predicted `(rows, cols)` maze marks one simple S-to-G path of `path_length` cells (S and G included).

    Conditions: walls, S and G are unchanged; open cells stay open or become path; PAD cells never become path;
    the path cells plus S and G form a single 4-connected chain from S to G with exactly `path_length` cells.
    """
    known = question != MAZE_PAD
    open_cells = question == MAZE_OPEN
    fixed = known & ~open_cells
    if (prediction[fixed] != question[fixed]).any():
        return False
    if not np.isin(prediction[open_cells], (MAZE_OPEN, MAZE_PATH)).all():
        return False
    if (prediction[~known] == MAZE_PATH).any():
        return False
    on_path = (prediction == MAZE_PATH) | (question == MAZE_START) | (question == MAZE_GOAL)
    num_cells = int(on_path.sum())
    if num_cells != path_length:
        return False
    # From S over path cells, G must be num_cells - 1 steps away: the cells form one chain with nothing left over.
    start, goal = _start_and_goal(question)
    return _path_distances(on_path, start).get(goal) == num_cells - 1


def shortest_path_cells(question: np.ndarray) -> int | None:
    """Cells (S and G included) of a shortest 4-connected S-to-G path through open cells of a `(rows, cols)`
    maze question, or None when G cannot be reached (or S or G is not there exactly once)."""
    if (question == MAZE_START).sum() != 1 or (question == MAZE_GOAL).sum() != 1:
        return None
    start, goal = _start_and_goal(question)
    walkable = np.isin(question, (MAZE_OPEN, MAZE_START, MAZE_GOAL))
    steps = _path_distances(walkable, start).get(goal)
    return None if steps is None else steps + 1


def is_shortest_maze_path(prediction: np.ndarray, question: np.ndarray) -> bool:
    """Whether a predicted `(rows, cols)` maze marks a shortest S-to-G path, judged from the question alone."""
    length = shortest_path_cells(question)
    return length is not None and is_valid_path(prediction, question, length)


__all__ = [
    "MAZE_GOAL", "MAZE_OPEN", "MAZE_PAD", "MAZE_PATH", "MAZE_START", "MAZE_WALL", "SUDOKU_BLANK_TOKEN_ID",
    "SUDOKU_BOX_SHAPES", "SUDOKU_DIGIT_OFFSET", "is_shortest_maze_path", "is_valid_path", "shortest_path_cells",
    "sudoku_side", "valid_sudoku_rows",
]
