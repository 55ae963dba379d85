"""Mazes: generator answers are shortest paths, builder encodings, dihedral images, whitespace kept, errors."""

import random
from collections import deque

import numpy as np
import pytest

from modeling_trm.data.arc_augment import DIHEDRAL_NAMES, dihedral_transform
from modeling_trm.data.errors import DataFormatError
from modeling_trm.data.generate_maze import default_min_path_length, generate_maze, generate_maze_splits
from modeling_trm.data.maze import build_maze_dataset
from modeling_trm.data.puzzle_csv import PuzzleRow, write_puzzle_csv

# 3x3 maze whose first and last characters are spaces (they must survive the CSV round trip):
#   " S "      " So"
#   "## "  ->  "##o"
#   "G  "      "Goo"
QUESTION = " S ##" + " G  "
ANSWER = " So##oGoo"
QUESTION_IDS = [2, 3, 2, 1, 1, 2, 4, 2, 2]  # '#' 1, ' ' 2, 'S' 3, 'G' 4, 'o' 5
ANSWER_IDS = [2, 3, 5, 1, 1, 5, 4, 5, 5]


def bfs_distance(grid: str, rows: int, cols: int, start: int, goal: int) -> int:
    """Independent shortest-path length through non-wall cells."""
    seen = {start: 0}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        r, c = divmod(cell, cols)
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            nxt = nr * cols + nc
            if 0 <= nr < rows and 0 <= nc < cols and grid[nxt] != "#" and nxt not in seen:
                seen[nxt] = seen[cell] + 1
                queue.append(nxt)
    return seen.get(goal, -1)


def write_csvs(folder, train, test):
    folder.mkdir(parents=True, exist_ok=True)
    write_puzzle_csv(folder / "train.csv", train)
    write_puzzle_csv(folder / "test.csv", test)
    return folder


@pytest.mark.parametrize("rows, cols, min_length", [(8, 8, 10), (7, 11, 12), (12, 12, None)])
def test_generated_answers_mark_a_shortest_path(rows, cols, min_length):
    rng = random.Random(rows * cols)
    for _ in range(5):
        maze = generate_maze(rows, cols, rng, min_path_length=min_length)
        q, a = maze.question, maze.answer
        assert len(q) == len(a) == rows * cols and set(q) <= set("# SG")
        start, goal = q.index("S"), q.index("G")
        assert q.count("S") == q.count("G") == 1
        assert all(qc == ac or (qc == " " and ac == "o") for qc, ac in zip(q, a))
        shortest = bfs_distance(q, rows, cols, start, goal)
        assert maze.path_length == shortest >= (min_length or default_min_path_length(rows, cols))
        assert a.count("o") == shortest - 1
        # The marked cells form a walk S -> G: a path through 'o' cells alone is as short as the shortest.
        only_path = "".join(ch if ch in "SGo" else "#" for ch in a)
        assert bfs_distance(only_path, rows, cols, start, goal) == shortest
        assert q.count("#") <= round(0.5 * rows * cols)


def test_maze_generator_is_seeded_and_scales_the_maze_hard_minimum():
    assert default_min_path_length(30, 30) == 111  # Maze-Hard: longer than 110
    assert default_min_path_length(10, 10) == 37
    first = generate_maze_splits(6, 6, 3, 2, seed=4, min_path_length=5)
    assert first == generate_maze_splits(6, 6, 3, 2, seed=4, min_path_length=5)
    assert first != generate_maze_splits(6, 6, 3, 2, seed=5, min_path_length=5)
    with pytest.raises(ValueError, match="min_path_length"):
        generate_maze(4, 4, random.Random(0), min_path_length=30, max_attempts=3)


def test_builder_output_equals_hand_encoded_rows_and_keeps_whitespace(tmp_path):
    row = PuzzleRow("hand", QUESTION, ANSWER, 6)
    folder = write_csvs(tmp_path / "csv", [row], [row])
    dataset, metadata = build_maze_dataset(folder)
    for split in ("train", "test"):
        record = dataset[split][0]
        assert record["input_ids"] == QUESTION_IDS and record["labels"] == ANSWER_IDS
        assert (record["puzzle_identifiers"], record["rating"], record["augmentation"]) == (0, 6, "identity")
    assert metadata.id_to_symbol == ["<pad>", "#", " ", "S", "G", "o"]
    assert (metadata.grid_shape, metadata.blank_token_id, metadata.task) == ((3, 3), None, "maze")


def test_dihedral_rows_are_the_images_of_the_original(tmp_path):
    splits = generate_maze_splits(6, 6, 2, 1, seed=0, min_path_length=6)
    folder = write_csvs(tmp_path / "csv", splits["train"], splits["test"])
    dataset, _ = build_maze_dataset(folder, dihedral=True)
    train = dataset["train"]
    assert train.num_rows == 16 and dataset["test"].num_rows == 1
    assert train["augmentation"][:8] == list(DIHEDRAL_NAMES)
    for group in range(2):
        rows = train.select(range(8 * group, 8 * group + 8))
        original = np.array(rows[0]["input_ids"]).reshape(6, 6)
        solution = np.array(rows[0]["labels"]).reshape(6, 6)
        for k in range(8):
            assert rows[k]["input_ids"] == dihedral_transform(original, k).reshape(-1).tolist()
            assert rows[k]["labels"] == dihedral_transform(solution, k).reshape(-1).tolist()
            assert rows[k]["group"] == group


def test_non_square_mazes_need_a_shape_and_keep_their_orientation(tmp_path):
    splits = generate_maze_splits(4, 6, 1, 1, seed=0, min_path_length=4)
    folder = write_csvs(tmp_path / "csv", splits["train"], splits["test"])
    with pytest.raises(DataFormatError, match="24 characters, not a square grid"):
        build_maze_dataset(folder)
    dataset, metadata = build_maze_dataset(folder, grid_shape=(4, 6), dihedral=True)
    assert metadata.grid_shape == (4, 6)
    assert dataset["train"]["augmentation"] == ["identity", "rot180", "flip_lr", "flip_ud"]


@pytest.mark.parametrize(
    "question, answer, message",
    [
        (QUESTION[:-1], ANSWER, "question has 8 characters, expected 9"),
        (QUESTION[:-1] + "x", ANSWER, "question has symbol 'x' at position 8"),
        (QUESTION.replace("G", " "), ANSWER, "question has 0 'G' cells"),
        (QUESTION, ANSWER.replace("#", "o", 1), "answer has 'o' at row 2, column 1 where the question has '#'"),
        (QUESTION, ANSWER[:-1] + "S", "answer has 'S' at row 3, column 3"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, question, answer, message):
    folder = tmp_path / "csv"
    write_csvs(folder, [PuzzleRow("ok", QUESTION, ANSWER, 0), PuzzleRow("bad", question, answer, 0)],
               [PuzzleRow("ok", QUESTION, ANSWER, 0)])
    with pytest.raises(DataFormatError, match=message) as error:
        build_maze_dataset(folder)
    assert f"{folder / 'train.csv'}: line 3" in str(error.value)
