"""Sudoku: solver, generator, CSV builder encodings, augmentation invariants and bad-input errors."""

import random

import numpy as np
import pytest

from modeling_trm.data.errors import DataFormatError
from modeling_trm.data.generate_sudoku import generate_sudoku, generate_sudoku_splits
from modeling_trm.data.puzzle_csv import CSV_COLUMNS, PuzzleRow, iter_puzzle_csv, read_puzzle_csv, write_puzzle_csv
from modeling_trm.data.sudoku import apply_sudoku_augmentation, build_sudoku_dataset
from modeling_trm.data.sudoku_solver import count_solutions, rate_sudoku, solve_sudoku

# A 4x4 puzzle (2x2 boxes) and its solution, encoded by hand: '.' -> 1, digit d -> d + 1.
QUESTION_4 = "1.3..4..2....3.1"
ANSWER_4 = "1234341221434321"
QUESTION_4_IDS = [2, 1, 4, 1, 1, 5, 1, 1, 3, 1, 1, 1, 1, 4, 1, 2]
ANSWER_4_IDS = [2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2]
BOX = {4: (2, 2), 6: (2, 3), 9: (3, 3)}


def is_solution(grid: list[int], n: int) -> bool:
    """Independent check: every row, column and box holds 1..n once."""
    board = [grid[r * n:(r + 1) * n] for r in range(n)]
    br, bc = BOX[n]
    units = board + [list(col) for col in zip(*board)]
    units += [[board[r + i][c + j] for i in range(br) for j in range(bc)] for r in range(0, n, br) for c in range(0, n, bc)]
    return all(sorted(unit) == list(range(1, n + 1)) for unit in units)


def write_csvs(folder, train, test):
    folder.mkdir(parents=True, exist_ok=True)
    write_puzzle_csv(folder / "train.csv", train)
    write_puzzle_csv(folder / "test.csv", test)
    return folder


def digits(ids) -> list[int]:
    return [max(0, int(v) - 1) for v in ids]  # id -> digit, blank (1) and PAD (0) -> 0


def test_solver_counts_solutions_and_rates_backtracks():
    puzzle = [int(ch) if ch != "." else 0 for ch in QUESTION_4]
    result = solve_sudoku(puzzle, 4)
    assert ["".join(map(str, s)) for s in result.solutions] == [ANSWER_4]
    assert count_solutions([0] * 16, 4, limit=5) == 5
    assert count_solutions([1, 1] + [0] * 14, 4) == 0  # clashing givens
    # Only one cell empty: no guessing at all.
    assert rate_sudoku([int(ch) for ch in ANSWER_4[:-1]] + [0], 4) == 0
    # A 9x9 puzzle the solver cannot finish by singles: the rating counts its dead ends (> 0).
    hard = generate_sudoku(9, random.Random(5), min_rating=1)
    assert rate_sudoku(hard.question, 9) == hard.rating >= 1


@pytest.mark.parametrize("size", [4, 6, 9])
def test_generated_puzzles_have_one_solution_and_the_requested_size(size):
    rng = random.Random(size)
    for _ in range(3):
        puzzle = generate_sudoku(size, rng)
        assert len(puzzle.question) == len(puzzle.answer) == size * size
        assert is_solution(puzzle.answer, size)
        assert all(q in (0, a) for q, a in zip(puzzle.question, puzzle.answer))
        found = solve_sudoku(puzzle.question, size, limit=2).solutions
        assert found == [puzzle.answer]  # unique, and it is the recorded answer
        assert puzzle.rating == rate_sudoku(puzzle.question, size)
    easy = generate_sudoku(size, rng, num_blanks=size)
    assert easy.question.count(0) == size
    assert len(solve_sudoku(easy.question, size, limit=2).solutions) == 1


def test_generator_is_seeded_and_splits_do_not_overlap():
    first = generate_sudoku_splits(4, 20, 5, seed=1)
    again = generate_sudoku_splits(4, 20, 5, seed=1)
    other = generate_sudoku_splits(4, 20, 5, seed=2)
    assert first == again and first != other
    questions = [row.question for split in first.values() for row in split]
    assert len(set(questions)) == 25
    with pytest.raises(ValueError, match="blanks"):
        generate_sudoku(9, random.Random(0), num_blanks=70, max_attempts=2)


def test_blank_range_spreads_blank_counts_within_its_bounds():
    splits = generate_sudoku_splits(4, 40, 10, seed=3, blank_range=(4, 9))
    counts = [row.question.count(".") for split in splits.values() for row in split]
    assert min(counts) >= 4 and max(counts) <= 9 and len(set(counts)) >= 4
    for row in splits["test"]:
        question = [0 if ch == "." else int(ch) for ch in row.question]
        assert ["".join(map(str, s)) for s in solve_sudoku(question, 4, limit=2).solutions] == [row.answer]
    with pytest.raises(ValueError, match="not both"):
        generate_sudoku_splits(4, 1, 1, num_blanks=4, blank_range=(4, 6))
    with pytest.raises(ValueError, match=r"0 <= low <= high < 16, got \(6, 4\)"):
        generate_sudoku_splits(4, 1, 1, blank_range=(6, 4))


def test_csv_round_trip_keeps_every_field(tmp_path):
    rows = [PuzzleRow("a,b", QUESTION_4, ANSWER_4, 7)]
    write_puzzle_csv(tmp_path / "x.csv", rows)
    assert (tmp_path / "x.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert list(iter_puzzle_csv(tmp_path / "x.csv")) == [PuzzleRow("a,b", QUESTION_4, ANSWER_4, 7, line=2)]


def test_builder_output_equals_hand_encoded_rows(tmp_path):
    row = PuzzleRow("hand", QUESTION_4, ANSWER_4, 3)
    folder = write_csvs(tmp_path / "csv", [row], [row])
    dataset, metadata = build_sudoku_dataset(folder)
    for split in ("train", "test"):
        assert dataset[split].num_rows == 1
        record = dataset[split][0]
        assert record["input_ids"] == QUESTION_4_IDS
        assert record["labels"] == ANSWER_4_IDS
        assert record["puzzle_identifiers"] == 0
        assert (record["source"], record["rating"], record["group"]) == ("hand", 3, 0)
        assert record["augmentation"] == "t0_r0123_c0123_d1234"
    assert dataset["train"].features["input_ids"].length == 16
    assert dataset["train"].features["labels"].feature.dtype == "int16"
    assert metadata.id_to_symbol == ["<pad>", ".", "1", "2", "3", "4"]
    assert (metadata.seq_len, metadata.grid_shape, metadata.blank_token_id) == (16, (4, 4), 1)
    assert metadata.source["kind"] == "local_csv" and len(metadata.source["sha256"]["train.csv"]) == 64


@pytest.mark.parametrize("size", [9, 6])
def test_every_augmented_puzzle_is_valid_and_its_label_is_its_solution(tmp_path, size):
    splits = generate_sudoku_splits(size, 3, 1, seed=size)
    folder = write_csvs(tmp_path / "csv", splits["train"], splits["test"])
    dataset, _ = build_sudoku_dataset(folder, num_aug=12, seed=0)
    train = dataset["train"]
    assert train.num_rows == 3 * 13 and dataset["test"].num_rows == 1
    assert all(name.startswith("t0_") for name in dataset["test"]["augmentation"])
    originals = {}
    for record in train:
        question, label = digits(record["input_ids"]), digits(record["labels"])
        assert is_solution(label, size)
        assert all(q in (0, a) for q, a in zip(question, label))
        assert solve_sudoku(question, size, limit=2).solutions == [label]
        if record["group"] not in originals:  # each group starts with its unaugmented puzzle
            lines = "".join(map(str, range(size)))
            assert record["augmentation"] == f"t0_r{lines}_c{lines}_d{''.join(str(d) for d in range(1, size + 1))}"
            originals[record["group"]] = record
        original = originals[record["group"]]
        for column in ("input_ids", "labels"):
            replay = apply_sudoku_augmentation(np.array(original[column]), record["augmentation"])
            assert replay.tolist() == record[column]
    names = set(train["augmentation"])
    assert len(names) > 30  # the copies really differ
    if size == 6:  # 2x3 boxes: a transpose would break them, so it is never drawn
        assert all(name.startswith("t0_") for name in names)
    else:
        assert any(name.startswith("t1_") for name in names)


def test_subsampling_and_min_rating_are_seeded(tmp_path):
    rows = [PuzzleRow(f"s{i}", QUESTION_4, ANSWER_4, i) for i in range(20)]
    folder = write_csvs(tmp_path / "csv", rows, rows[:4])
    first, _ = build_sudoku_dataset(folder, subsample_size=5, min_rating=10, seed=1)
    again, metadata = build_sudoku_dataset(folder, subsample_size=5, min_rating=10, seed=1)
    other, _ = build_sudoku_dataset(folder, subsample_size=5, min_rating=10, seed=2)
    ratings = first["train"]["rating"]
    assert len(ratings) == 5 and min(ratings) >= 10 and ratings == sorted(ratings)
    assert ratings == again["train"]["rating"] and ratings != other["train"]["rating"]
    assert first["test"].num_rows == 0  # min_rating applies to the test split too
    assert metadata.build_settings["subsample_size"] == 5
    with pytest.raises(ValueError, match="only 10 rows"):
        read_puzzle_csv(folder / "train.csv", min_rating=10, subsample_size=11)


@pytest.mark.parametrize(
    "question, answer, rating, message",
    [
        (QUESTION_4[:-1], ANSWER_4, "1", "question has 15 characters, expected 16"),
        (QUESTION_4[:-1] + "x", ANSWER_4, "1", "symbol 'x' at position 15"),
        (QUESTION_4, ANSWER_4[:-1] + ".", "1", "answer has symbol '.' at position 15"),
        (QUESTION_4, ANSWER_4[:-1] + "5", "1", "answer has symbol '5'"),
        ("2" + QUESTION_4[1:], ANSWER_4, "1", "answer has '1' at row 1, column 1 where the question gives '2'"),
        (QUESTION_4, "1234342121434321", "1", "not a valid 4x4 solution: column 3"),
        (QUESTION_4, ANSWER_4, "hard", "rating 'hard' is not an integer"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, question, answer, rating, message):
    folder = tmp_path / "csv"
    folder.mkdir()
    good = f"ok,{QUESTION_4},{ANSWER_4},0\n"
    (folder / "train.csv").write_text("source,question,answer,rating\n" + good + f"bad,{question},{answer},{rating}\n")
    (folder / "test.csv").write_text("source,question,answer,rating\n" + good)
    with pytest.raises(DataFormatError, match=message) as error:
        build_sudoku_dataset(folder)
    assert f"{folder / 'train.csv'}: line 3" in str(error.value)


def test_bad_files_and_sizes(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "train.csv").write_text("source,question,answer\nx,1,2\n")
    (folder / "test.csv").write_text("source,question,answer,rating\n")
    with pytest.raises(DataFormatError, match="line 1: header"):
        build_sudoku_dataset(folder)
    (folder / "train.csv").write_text("source,question,answer,rating\nx,1,2\n")
    with pytest.raises(DataFormatError, match="line 2: expected 4 fields"):
        build_sudoku_dataset(folder)
    (folder / "train.csv").write_text("source,question,answer,rating\nx," + "." * 25 + "," + "1" * 25 + ",0\n")
    with pytest.raises(DataFormatError, match="unsupported Sudoku size 5x5"):
        build_sudoku_dataset(folder)
    with pytest.raises(FileNotFoundError, match="train.csv and test.csv"):
        build_sudoku_dataset(tmp_path)


def test_without_a_csv_dir_the_hub_is_asked_and_offline_fails_clearly():
    # conftest sets HF_HUB_OFFLINE=1, and this repository is in no cache.
    with pytest.raises(RuntimeError, match="could not get train.csv of the Hub dataset trm-tests/missing.*--csv-dir"):
        build_sudoku_dataset(None, repo_id="trm-tests/missing", revision="main")
