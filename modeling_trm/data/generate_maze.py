"""Offline maze generator following the Maze-Hard recipe at any size, writing the Sudoku-Extreme CSV schema.

Maze-Hard (`sapientinc/maze-30x30-hard-1k`): 30x30 grids with 270-450 wall cells (30-50% of the
grid), a start `S` and goal `G` whose shortest path is longer than 110 steps, and the answer marking
one shortest path with `o`. The recipe here, for R x C:

1. carve a perfect maze (randomised depth-first search on the cells at even coordinates), which
   leaves about half of the grid as walls and long winding corridors;
2. open random wall cells until the wall count drawn uniformly from `wall_fraction` of R*C is
   reached (loops appear, as in Maze-Hard);
3. pick a random open start, and a goal among the cells at least `min_path_length` steps away by
   breadth-first search; redraw if there is none;
4. answer: the breadth-first shortest path (neighbours tried up, down, left, right), `o` on every
   cell between `S` and `G`. The CSV `rating` is the shortest path length in steps.

`min_path_length` defaults to Maze-Hard's "longer than 110" scaled by the side length
(`default_min_path_length`), so a 10x10 maze asks for at least 37 steps.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .puzzle_csv import PuzzleRow

WALL, OPEN, START, GOAL, PATH = "#", " ", "S", "G", "o"
MAZE_HARD_SIDE = 30
MAZE_HARD_MIN_PATH = 111  # "shortest path longer than 110"
MAZE_HARD_WALL_FRACTION = (0.3, 0.5)  # 270..450 walls of 900
_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


def default_min_path_length(rows: int, cols: int) -> int:
    """Maze-Hard's minimum path length scaled by the mean side: 111 at 30x30, 37 at 10x10."""
    return max(1, math.ceil(MAZE_HARD_MIN_PATH * (rows + cols) / (2 * MAZE_HARD_SIDE)))


@dataclass(frozen=True)
class GeneratedMaze:
    """Question and answer as strings of `# SG` (+ `o` in the answer), row-major, and the path length."""

    question: str
    answer: str
    path_length: int

    def to_row(self, source: str) -> PuzzleRow:
        return PuzzleRow(source, self.question, self.answer, self.path_length)


def carve_perfect_maze(rows: int, cols: int, rng: random.Random) -> list[bool]:
    """Open cells (True) of a perfect maze: randomised DFS over the cells at even coordinates."""
    is_open = [False] * (rows * cols)
    start = (0, 0)
    is_open[0] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        neighbours = [
            (r + 2 * dr, c + 2 * dc) for dr, dc in _STEPS
            if 0 <= r + 2 * dr < rows and 0 <= c + 2 * dc < cols and not is_open[(r + 2 * dr) * cols + c + 2 * dc]
        ]
        if not neighbours:
            stack.pop()
            continue
        nr, nc = rng.choice(neighbours)
        is_open[((r + nr) // 2) * cols + (c + nc) // 2] = True  # the wall between the two cells
        is_open[nr * cols + nc] = True
        stack.append((nr, nc))
    return is_open


def breadth_first_distances(is_open: Sequence[bool], rows: int, cols: int, start: int) -> list[int]:
    """Steps from `start` to every cell through open cells (-1 where unreachable)."""
    distance = [-1] * (rows * cols)
    distance[start] = 0
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        r, c = divmod(cell, cols)
        for dr, dc in _STEPS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < rows and 0 <= nc < cols:
                neighbour = nr * cols + nc
                if is_open[neighbour] and distance[neighbour] < 0:
                    distance[neighbour] = distance[cell] + 1
                    queue.append(neighbour)
    return distance


def shortest_path(is_open: Sequence[bool], rows: int, cols: int, start: int, goal: int) -> list[int] | None:
    """Cells of one shortest path from `start` to `goal` (both included), or None if unreachable."""
    distance = breadth_first_distances(is_open, rows, cols, goal)
    if distance[start] < 0:
        return None
    path = [start]
    cell = start
    while cell != goal:  # walk downhill in the distance-to-goal field, first neighbour in _STEPS order
        r, c = divmod(cell, cols)
        for dr, dc in _STEPS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < rows and 0 <= nc < cols and distance[nr * cols + nc] == distance[cell] - 1:
                cell = nr * cols + nc
                break
        path.append(cell)
    return path


def generate_maze(
    rows: int,
    cols: int,
    rng: random.Random,
    *,
    min_path_length: int | None = None,
    wall_fraction: tuple[float, float] = MAZE_HARD_WALL_FRACTION,
    max_attempts: int = 1000,
) -> GeneratedMaze:
    """One maze by the recipe in the module docstring; `ValueError` if `max_attempts` grids all fail."""
    if rows < 2 or cols < 2:
        raise ValueError(f"a maze needs at least 2x2 cells, got {rows}x{cols}")
    low, high = wall_fraction
    if not 0.0 <= low <= high < 1.0:
        raise ValueError(f"wall_fraction must satisfy 0 <= low <= high < 1, got {wall_fraction}")
    min_path_length = default_min_path_length(rows, cols) if min_path_length is None else min_path_length
    if min_path_length < 1:
        raise ValueError(f"min_path_length must be at least 1, got {min_path_length}")
    for _ in range(max_attempts):
        is_open = carve_perfect_maze(rows, cols, rng)
        walls = [cell for cell, open_ in enumerate(is_open) if not open_]
        target_walls = rng.randint(round(low * rows * cols), round(high * rows * cols))
        for cell in rng.sample(walls, max(0, len(walls) - target_walls)):
            is_open[cell] = True
        open_cells = [cell for cell, open_ in enumerate(is_open) if open_]
        for _ in range(4):  # a few starts per grid before redrawing the walls
            start = rng.choice(open_cells)
            distance = breadth_first_distances(is_open, rows, cols, start)
            goals = [cell for cell, steps in enumerate(distance) if steps >= min_path_length]
            if goals:
                goal = rng.choice(goals)
                return _render(is_open, rows, cols, start, goal)
    raise ValueError(
        f"no {rows}x{cols} maze with a shortest path of at least {min_path_length} steps in {max_attempts} "
        "attempts; lower min_path_length"
    )


def _render(is_open: list[bool], rows: int, cols: int, start: int, goal: int) -> GeneratedMaze:
    path = shortest_path(is_open, rows, cols, start, goal)
    assert path is not None  # the goal was picked among reachable cells
    question = [OPEN if open_ else WALL for open_ in is_open]
    question[start], question[goal] = START, GOAL
    answer = list(question)
    for cell in path[1:-1]:
        answer[cell] = PATH
    return GeneratedMaze("".join(question), "".join(answer), len(path) - 1)


def generate_maze_splits(
    rows: int,
    cols: int,
    num_train: int,
    num_test: int,
    seed: int = 0,
    *,
    min_path_length: int | None = None,
    wall_fraction: tuple[float, float] = MAZE_HARD_WALL_FRACTION,
    on_puzzle: Callable[[], None] | None = None,
) -> dict[str, list[PuzzleRow]]:
    """`{"train": rows, "test": rows}` of distinct mazes; `on_puzzle` is called per accepted maze."""
    if num_train < 0 or num_test < 0:
        raise ValueError(f"maze counts must be non-negative, got train={num_train}, test={num_test}")
    rng = random.Random(seed)
    source = f"generated_maze_{rows}x{cols}"
    seen: set[str] = set()
    splits: dict[str, list[PuzzleRow]] = {}
    for split, count in (("train", num_train), ("test", num_test)):
        found: list[PuzzleRow] = []
        repeats = 0
        while len(found) < count:
            maze = generate_maze(rows, cols, rng, min_path_length=min_path_length, wall_fraction=wall_fraction)
            row = maze.to_row(source)
            if row.question in seen:
                repeats += 1
                if repeats > 100 + 10 * count:
                    raise ValueError(f"only {len(seen)} distinct {rows}x{cols} mazes found; ask for fewer")
                continue
            seen.add(row.question)
            found.append(row)
            if on_puzzle is not None:
                on_puzzle()
        splits[split] = found
    return splits


__all__ = [
    "GeneratedMaze",
    "MAZE_HARD_MIN_PATH",
    "MAZE_HARD_WALL_FRACTION",
    "breadth_first_distances",
    "carve_perfect_maze",
    "default_min_path_length",
    "generate_maze",
    "generate_maze_splits",
    "shortest_path",
]
