"""maze_path: exact match and valid shortest paths on a crafted 5x5 maze, plain and through `evaluate`."""

from pathlib import Path

import evaluate
import numpy as np
import pytest

from modeling_trm.metrics import is_valid_path, maze_path

METRIC_DIR = Path(__file__).resolve().parents[1] / "eval" / "metrics" / "maze_path"
SYMBOL_TO_ID = {"#": 1, " ": 2, "S": 3, "G": 4, "o": 5}

MAZE = [
    "S    ",
    " ### ",
    "     ",
    " ### ",
    "    G",
]  # shortest paths have 9 cells (S and G included); there are three of them


def encode(rows: list[str]) -> list[int]:
    return [SYMBOL_TO_ID[ch] for row in rows for ch in row]


def mark(cells: list[tuple[int, int]], base: list[str] = MAZE) -> list[int]:
    grid = np.array(encode(base)).reshape(len(base), -1)
    for r, c in cells:
        grid[r, c] = SYMBOL_TO_ID["o"]
    return grid.reshape(-1).tolist()


TOP_RIGHT = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 4), (2, 4), (3, 4)]
LEFT_BOTTOM = [(1, 0), (2, 0), (3, 0), (4, 0), (4, 1), (4, 2), (4, 3)]
MIDDLE = [(1, 0), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (3, 4)]
LABEL = mark(TOP_RIGHT)

THROUGH_WALL = mark([(0, 1), (0, 2), (2, 2), (2, 3), (2, 4), (3, 4)])
THROUGH_WALL[1 * 5 + 2] = SYMBOL_TO_ID["o"]  # (1, 2) is a wall: connected, 9 cells, but illegal
CHANGED_CELL = mark(TOP_RIGHT)
CHANGED_CELL[4 * 5 + 0] = SYMBOL_TO_ID["#"]  # right path, but an open cell turned into a wall

PREDICTIONS = [
    LABEL,  # exact
    mark(LEFT_BOTTOM),  # another shortest path
    mark(MIDDLE),  # a third one
    mark(TOP_RIGHT + [(4, 0)]),  # a stray extra cell: 10 cells
    mark([c for c in TOP_RIGHT if c != (0, 3)] + [(4, 0)]),  # 9 cells but broken
    THROUGH_WALL,
    CHANGED_CELL,
    mark(TOP_RIGHT[:4] + [(1, 4), (2, 4), (2, 3), (2, 2), (2, 1), (2, 0), (3, 0), (4, 0), (4, 1), (4, 2), (4, 3)]),
]  # the last one is connected S->G but 17 cells long
# Exact: only row 0. Valid shortest path: rows 0, 1, 2.
EXPECTED = {"exact_accuracy": 1 / 8, "valid_path_accuracy": 3 / 8, "num_examples": 8}


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


def test_crafted_paths_hand_computed():
    inputs = [encode(MAZE)] * len(PREDICTIONS)
    assert maze_path(PREDICTIONS, [LABEL] * len(PREDICTIONS), inputs) == pytest.approx(EXPECTED)


def test_rectangular_maze_with_pad_cells():
    maze = ["S  G", "    ", "\0\0\0\0"]  # third row is PAD (id 0)
    to_ids = {**SYMBOL_TO_ID, "\0": 0}
    question = [to_ids[ch] for row in maze for ch in row]
    label = question.copy()
    label[1:3] = [5, 5]  # S o o G along the top
    around = question.copy()
    around[4:8] = [5, 5, 5, 5]  # 6 cells: a valid path, but not a shortest one
    on_pad = question.copy()
    on_pad[1:3] = [5, 5]
    on_pad[8] = 5  # marks a PAD cell (and is one cell too long)
    result = maze_path([label, around, on_pad], [label] * 3, [question] * 3, grid_shape=(3, 4))
    # Exact match does not score the label's PAD cells, so `on_pad` matches; the path check rejects it.
    assert result == pytest.approx({"exact_accuracy": 2 / 3, "valid_path_accuracy": 1 / 3, "num_examples": 3})
    grid = (3, 4)
    assert is_valid_path(np.reshape(around, grid), np.reshape(question, grid), 6)  # legal, just not shortest
    # A connected path of the right length is still rejected when it runs over PAD cells.
    small = np.array([[3, 2, 4], [0, 0, 0]])
    assert not is_valid_path(np.array([[3, 2, 4], [5, 5, 5]]), small, 5)
    assert is_valid_path(np.array([[3, 5, 4], [0, 0, 0]]), small, 3)
    with pytest.raises(ValueError, match="not a square grid"):
        maze_path([label], [label], [question])
    with pytest.raises(ValueError, match=r"grid_shape \(2, 4\) has 8 cells"):
        maze_path([label], [label], [question], grid_shape=(2, 4))


def test_bad_questions_raise():
    two_starts = encode(MAZE)
    two_starts[1] = SYMBOL_TO_ID["S"]
    with pytest.raises(ValueError, match="inputs: row 1 has 2 start 'S' cells"):
        maze_path([LABEL] * 2, [LABEL] * 2, [encode(MAZE), two_starts])
    with pytest.raises(ValueError, match="path 5 belongs to the answer"):
        maze_path([LABEL], [LABEL], [LABEL])  # answer passed as the question


def test_evaluate_module_matches_plain_function(metric):
    n = len(PREDICTIONS)
    result = metric.compute(predictions=PREDICTIONS, references=[LABEL] * n, inputs=[encode(MAZE)] * n)
    assert result == pytest.approx(EXPECTED)
