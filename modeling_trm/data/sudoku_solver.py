"""A small exact Sudoku solver for N x N grids (N = 4, 6, 8, 9): uniqueness checks and difficulty ratings.

Depth-first search that always branches on the empty cell with the fewest candidates (a cell with
one candidate is filled without guessing). Its count of dead ends, i.e. cells left with no
candidate, before the first solution is the puzzle's *rating*: the same notion as the
`rating` column of Sudoku-Extreme ("backtracks a solver needed"), though that column came from a
different solver, so the two scales are comparable in kind, not number for number.

Grids are flat sequences of N*N digits in row-major order, 0 for an empty cell.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Box (rows, cols) of each supported size; single-character digits 1..9 limit N to 9.
BOX_SHAPES: dict[int, tuple[int, int]] = {4: (2, 2), 6: (2, 3), 8: (2, 4), 9: (3, 3)}


def sudoku_box_shape(size: int) -> tuple[int, int]:
    """Rows and columns of a box of an N x N Sudoku (4 -> 2x2, 6 -> 2x3, 8 -> 2x4, 9 -> 3x3)."""
    if size not in BOX_SHAPES:
        raise ValueError(f"unsupported Sudoku size {size}x{size}; supported sizes: {sorted(BOX_SHAPES)}")
    return BOX_SHAPES[size]


@dataclass(frozen=True)
class SudokuSearchResult:
    """Solutions found (at most the requested limit) and the dead ends met before the first one.

    `backtracks` counts the whole search when no solution exists.
    """

    solutions: list[list[int]]
    backtracks: int


@lru_cache(maxsize=None)
def _geometry(size: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Row, column and box index of every cell."""
    box_rows, box_cols = sudoku_box_shape(size)
    cells = range(size * size)
    row_of = tuple(cell // size for cell in cells)
    col_of = tuple(cell % size for cell in cells)
    box_of = tuple((r // box_rows) * (size // box_cols) + c // box_cols for r, c in zip(row_of, col_of))
    return row_of, col_of, box_of


def solve_sudoku(
    grid: Sequence[int],
    size: int,
    *,
    limit: int = 2,
    exclude: tuple[int, int] | None = None,
    rng: random.Random | None = None,
) -> SudokuSearchResult:
    """Find up to `limit` solutions of `grid` (flat, 0 = empty).

    Args:
        grid: N*N digits, row-major, 0 for an empty cell.
        size: N.
        limit: stop after this many solutions (2 is enough to tell "unique" from "several").
        exclude: `(cell, digit)`: forbid `digit` at the (empty) `cell`. A puzzle made by blanking
            `cell` of a uniquely solvable puzzle is still unique exactly when no solution remains
            with this exclusion, which takes one search instead of counting to 2.
        rng: try candidate digits in random order (used to draw random solved grids); otherwise in
            ascending order, which makes the rating deterministic.
    """
    if len(grid) != size * size:
        raise ValueError(f"a {size}x{size} Sudoku has {size * size} cells, got {len(grid)}")
    row_of, col_of, box_of = _geometry(size)
    full = (1 << size) - 1  # bit d-1 stands for digit d
    values = [int(v) for v in grid]
    rows, cols, boxes = [0] * size, [0] * size, [0] * size
    for cell, value in enumerate(values):
        if value == 0:
            continue
        if not 1 <= value <= size:
            raise ValueError(f"cell {cell} holds {value}, outside 0..{size}")
        bit = 1 << (value - 1)
        r, c, b = row_of[cell], col_of[cell], box_of[cell]
        if (rows[r] | cols[c] | boxes[b]) & bit:
            return SudokuSearchResult([], 0)  # the givens already clash
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit
    empty = [cell for cell, value in enumerate(values) if value == 0]
    banned = {exclude[0]: 1 << (exclude[1] - 1)} if exclude is not None else {}
    solutions: list[list[int]] = []
    dead_ends = 0
    dead_ends_at_first_solution = -1

    def search(depth: int) -> bool:
        """Fill `empty[depth:]`; True means "stop: enough solutions"."""
        nonlocal dead_ends, dead_ends_at_first_solution
        if depth == len(empty):
            solutions.append(values.copy())
            if dead_ends_at_first_solution < 0:
                dead_ends_at_first_solution = dead_ends
            return len(solutions) >= limit
        best_position, best_mask, best_count = -1, 0, size + 1
        for position in range(depth, len(empty)):
            cell = empty[position]
            mask = full & ~(rows[row_of[cell]] | cols[col_of[cell]] | boxes[box_of[cell]])
            if banned:
                mask &= ~banned.get(cell, 0)
            if not mask:
                dead_ends += 1
                return False
            count = mask.bit_count()
            if count < best_count:
                best_position, best_mask, best_count = position, mask, count
                if count == 1:
                    break
        empty[depth], empty[best_position] = empty[best_position], empty[depth]
        cell = empty[depth]
        r, c, b = row_of[cell], col_of[cell], box_of[cell]
        bits = []
        while best_mask:
            bit = best_mask & -best_mask
            bits.append(bit)
            best_mask ^= bit
        if rng is not None:
            rng.shuffle(bits)
        for bit in bits:
            values[cell] = bit.bit_length()
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            stop = search(depth + 1)
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            if stop:
                values[cell] = 0
                return True
        values[cell] = 0
        return False

    search(0)
    backtracks = dead_ends_at_first_solution if solutions else dead_ends
    return SudokuSearchResult(solutions, backtracks)


def count_solutions(grid: Sequence[int], size: int, limit: int = 2) -> int:
    """Number of solutions, counted up to `limit`."""
    return len(solve_sudoku(grid, size, limit=limit).solutions)


def rate_sudoku(grid: Sequence[int], size: int) -> int:
    """Difficulty: dead ends of the deterministic search before its first solution."""
    return solve_sudoku(grid, size, limit=1).backtracks


def find_conflict(grid: Sequence[int], size: int) -> str | None:
    """Why a filled grid is not a valid solution (first repeated or missing digit), or None if it is."""
    if len(grid) != size * size:
        return f"has {len(grid)} cells, expected {size * size}"
    board = np.asarray(grid).reshape(size, size)
    box_rows, box_cols = sudoku_box_shape(size)
    units = {
        "row": list(board),
        "column": list(board.T),
        "box": [
            board[r:r + box_rows, c:c + box_cols].reshape(-1)
            for r in range(0, size, box_rows) for c in range(0, size, box_cols)
        ],
    }
    expected = list(range(1, size + 1))
    for kind, unit_list in units.items():
        for index, unit in enumerate(unit_list):
            if sorted(int(v) for v in unit) != expected:
                return f"{kind} {index + 1} holds {[int(v) for v in unit]}, not each digit 1..{size} once"
    return None


def valid_solution_mask(digits: np.ndarray, size: int) -> np.ndarray:
    """Vectorised check of many filled grids `(rows, N*N)` of digits 1..N: True where a grid is a solution."""
    boards = np.asarray(digits).reshape(-1, size, size)
    box_rows, box_cols = sudoku_box_shape(size)
    boxes = boards.reshape(-1, size // box_rows, box_rows, size // box_cols, box_cols)
    boxes = boxes.transpose(0, 1, 3, 2, 4).reshape(-1, size, size)
    expected = np.arange(1, size + 1)
    ok = np.ones(boards.shape[0], dtype=bool)
    for units in (boards, boards.transpose(0, 2, 1), boxes):
        ok &= (np.sort(units, axis=2) == expected).all(axis=(1, 2))
    return ok


__all__ = [
    "BOX_SHAPES",
    "SudokuSearchResult",
    "count_solutions",
    "find_conflict",
    "rate_sudoku",
    "solve_sudoku",
    "sudoku_box_shape",
    "valid_solution_mask",
]
