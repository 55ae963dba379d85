"""Offline Sudoku generator (4x4, 6x6, 9x9, also 8x8) writing the Sudoku-Extreme CSV schema.

Recipe: draw a random solved grid (randomised search on an empty grid), then visit the cells in a
random order and blank each one unless that lets a second solution in, until the requested number
of blanks is reached (or, by default, no clue can go: a minimal puzzle). The rating is the
solver's dead-end count (`sudoku_solver.rate_sudoku`). Seeded with Python's `random.Random`, so
the same seed gives the same file on every platform.

Fewer blanks give easier puzzles, which is what a quick demo wants; the default (minimal
puzzles) gives the hardest puzzles this recipe reaches. Measured on one CPU core: 4x4 ~2300
puzzles/s, 6x6 ~520/s, 9x9 minimal ~46/s (mean 57 blanks, mean rating 24), 9x9 with 45 blanks ~280/s.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .puzzle_csv import PuzzleRow
from .sudoku_solver import rate_sudoku, solve_sudoku, sudoku_box_shape

GENERATOR_SIZES = (4, 6, 9)


@dataclass(frozen=True)
class GeneratedSudoku:
    """A puzzle with a unique solution, as flat digit lists (0 = blank), and its rating."""

    question: list[int]
    answer: list[int]
    rating: int

    def to_row(self, source: str) -> PuzzleRow:
        return PuzzleRow(source, grid_to_string(self.question), grid_to_string(self.answer), self.rating)


def grid_to_string(grid: list[int]) -> str:
    """Digits as in Sudoku-Extreme: `.` for a blank, `1`..`9` for a digit."""
    return "".join(str(value) if value else "." for value in grid)


def random_solved_grid(size: int, rng: random.Random) -> list[int]:
    """A uniformly-seeded random solution of the empty N x N grid."""
    return solve_sudoku([0] * (size * size), size, limit=1, rng=rng).solutions[0]


def carve_puzzle(solution: list[int], size: int, rng: random.Random, num_blanks: int | None = None) -> list[int] | None:
    """Blank cells of `solution` in random order while the solution stays unique.

    Stops at `num_blanks` blanks, or when every cell has been tried (`num_blanks=None`: a minimal
    puzzle). Returns None when `num_blanks` could not be reached on this grid and cell order.
    """
    puzzle = list(solution)
    order = list(range(size * size))
    rng.shuffle(order)
    target = size * size if num_blanks is None else num_blanks
    blanks = 0
    for cell in order:
        if blanks >= target:
            break
        value = puzzle[cell]
        puzzle[cell] = 0
        if solve_sudoku(puzzle, size, limit=1, exclude=(cell, value)).solutions:
            puzzle[cell] = value  # without this clue another solution exists
        else:
            blanks += 1
    if num_blanks is not None and blanks < num_blanks:
        return None
    return puzzle


def generate_sudoku(
    size: int,
    rng: random.Random,
    *,
    num_blanks: int | None = None,
    min_rating: int | None = None,
    max_attempts: int = 200,
) -> GeneratedSudoku:
    """One random puzzle with a unique solution.

    Args:
        size: N (4, 6 or 9; 8 also works).
        rng: source of randomness.
        num_blanks: blanks wanted; None removes clues until none can go (minimal puzzle).
        min_rating: redraw until the rating is at least this.
        max_attempts: redraws allowed before giving up with a `ValueError` (a target too high for
            the size, e.g. 60 blanks on 9x9 or rating 5 on 4x4).
    """
    sudoku_box_shape(size)  # validates the size
    if num_blanks is not None and not 0 <= num_blanks < size * size:
        raise ValueError(f"num_blanks must be in 0..{size * size - 1} for {size}x{size}, got {num_blanks}")
    for _ in range(max_attempts):
        solution = random_solved_grid(size, rng)
        puzzle = carve_puzzle(solution, size, rng, num_blanks)
        if puzzle is None:
            continue
        rating = rate_sudoku(puzzle, size)
        if min_rating is None or rating >= min_rating:
            return GeneratedSudoku(puzzle, solution, rating)
    wanted = []
    if num_blanks is not None:
        wanted.append(f"{num_blanks} blanks")
    if min_rating is not None:
        wanted.append(f"rating >= {min_rating}")
    raise ValueError(
        f"no {size}x{size} Sudoku with {' and '.join(wanted)} and a unique solution in {max_attempts} attempts; "
        "ask for fewer blanks or a lower rating"
    )


def generate_sudoku_splits(
    size: int,
    num_train: int,
    num_test: int,
    seed: int = 0,
    *,
    num_blanks: int | None = None,
    blank_range: tuple[int, int] | None = None,
    min_rating: int | None = None,
    on_puzzle: Callable[[], None] | None = None,
) -> dict[str, list[PuzzleRow]]:
    """`{"train": rows, "test": rows}` of distinct puzzles (no question appears twice, across splits).

    `blank_range=(low, high)` draws each puzzle's blank count uniformly from low..high (inclusive),
    so one set spans easy to hard puzzles (what a curriculum orders and rating bands split);
    it replaces `num_blanks`. `on_puzzle` is called once per accepted puzzle (for a progress bar).
    """
    if num_train < 0 or num_test < 0:
        raise ValueError(f"puzzle counts must be non-negative, got train={num_train}, test={num_test}")
    if blank_range is not None:
        if num_blanks is not None:
            raise ValueError("give num_blanks or blank_range, not both")
        low, high = blank_range
        if not 0 <= low <= high < size * size:
            raise ValueError(f"blank_range must satisfy 0 <= low <= high < {size * size}, got {tuple(blank_range)}")
    rng = random.Random(seed)
    source = f"generated_sudoku_{size}x{size}"
    seen: set[str] = set()
    splits: dict[str, list[PuzzleRow]] = {}
    for split, count in (("train", num_train), ("test", num_test)):
        rows: list[PuzzleRow] = []
        repeats = 0
        while len(rows) < count:
            blanks = num_blanks if blank_range is None else rng.randint(blank_range[0], blank_range[1])
            row = generate_sudoku(size, rng, num_blanks=blanks, min_rating=min_rating).to_row(source)
            if row.question in seen:
                repeats += 1
                if repeats > 100 + 10 * count:
                    raise ValueError(
                        f"only {len(seen)} distinct {size}x{size} puzzles found with these settings; "
                        "ask for fewer puzzles or more blanks"
                    )
                continue
            seen.add(row.question)
            rows.append(row)
            if on_puzzle is not None:
                on_puzzle()
        splits[split] = rows
    return splits


__all__ = [
    "GENERATOR_SIZES",
    "GeneratedSudoku",
    "carve_puzzle",
    "generate_sudoku",
    "generate_sudoku_splits",
    "grid_to_string",
    "random_solved_grid",
]
