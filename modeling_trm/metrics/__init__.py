"""Metric arithmetic for TRM tasks, as plain functions.

The `evaluate` modules under `eval/metrics/` and `trm eval` call these, so every number has one
definition. All functions take batches of token ids as lists, numpy arrays or CPU tensors.
"""

from .arc import (
    PASS_AT_K,
    ArcCandidate,
    arc_pass_at_k,
    arc_references_from_labels,
    rank_arc_candidates,
    score_arc_ranking,
    write_arc_submission,
)
from .grid import grid_accuracy
from .maze import is_valid_path, maze_path
from .sudoku import SUDOKU_BOX_SHAPES, sudoku_validity, valid_sudoku_rows
from .token_rows import IGNORE_LABEL_ID, token_matrix

__all__ = [
    "IGNORE_LABEL_ID",
    "PASS_AT_K",
    "SUDOKU_BOX_SHAPES",
    "ArcCandidate",
    "arc_pass_at_k",
    "arc_references_from_labels",
    "grid_accuracy",
    "is_valid_path",
    "maze_path",
    "rank_arc_candidates",
    "score_arc_ranking",
    "sudoku_validity",
    "token_matrix",
    "valid_sudoku_rows",
    "write_arc_submission",
]
