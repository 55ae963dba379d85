"""Fault injection, hostile puzzle input (issue 15, scenario 6), fuzzed with `hypothesis`.

Targets: `trm solve` (in-process `main`, bytes on disk), its reader `read_puzzles`, the model's input
path (`check_inputs` through `solve` and `forward`), the Sudoku/maze CSV loaders and builders, and
the ARC JSON loaders and builder. Every generated input must either be refused with a `ValueError`
whose message names the file and the row/line/task, or be accepted and give results of the right
shape; never an error from deep inside torch/pyarrow/csv, never a hang, never a wrong-shaped result.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import math
import shutil
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tiny_models import tiny_config, tiny_model

from modeling_trm.commands import main
from modeling_trm.configuration_trm import MAZE_SYMBOLS
from modeling_trm.data.arc import build_arc_dataset, load_kaggle_tasks
from modeling_trm.data.errors import DataFormatError
from modeling_trm.data.maze import build_maze_dataset
from modeling_trm.data.sudoku import build_sudoku_dataset
from modeling_trm.commands.solve import PuzzleInputError, read_puzzles

pytestmark = pytest.mark.faults
# Hypothesis examples cannot take pytest's per-test tmp_path: each writes its files into a folder under this one,
# removed when the test process exits (they used to stay in /tmp: ~430 folders per suite run).
SCRATCH = Path(tempfile.mkdtemp(prefix="trm-fuzz-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
SUDOKU = tiny_config(num_puzzle_identifiers=1)
MAZE = tiny_config(task="maze", id_to_symbol=MAZE_SYMBOLS, blank_token_id=None, num_puzzle_identifiers=1)
SOLVER = tiny_model(num_puzzle_identifiers=1).eval()

# Characters that matter to the readers: the vocabularies, CSV syntax, line breaks of every kind
# (str.splitlines splits on more than "\n"), comments, NUL, non-ASCII and astral characters.
NASTY = "".join(SUDOKU.id_to_symbol[1:]) + "0#SGo ,\"'\t\r\n\x00\x0b\x0c\x1c\x85\u2028é漢\U0001F600-+.eE"
nasty_text = st.text(alphabet=NASTY, max_size=80)
puzzle_like = st.text(alphabet="1234.0", min_size=14, max_size=18)
maze_like = st.text(alphabet="# SGo", min_size=14, max_size=18)


def line_of(message: str) -> int | None:
    import re

    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else None


# ----------------------------------------------------------------------------- trm solve's reader


def _check_read(text: str, config) -> None:
    try:
        puzzles = read_puzzles(io.StringIO(text), config, "fuzz.txt")
    except PuzzleInputError as error:
        message = str(error)
        assert message.startswith("fuzz.txt"), message
        assert "no puzzles found" in message or line_of(message) is not None, message
        return
    assert puzzles and all(len(p) == config.seq_len for p in puzzles)
    assert all(0 <= token < config.vocab_size for p in puzzles for token in p)
    ids = torch.tensor(puzzles)
    out = SOLVER.solve(ids, halting="max", max_steps=1) if config is SUDOKU else None
    if out is not None:
        assert out.predictions.shape == ids.shape


@FUZZ
@given(st.lists(st.one_of(puzzle_like, nasty_text, st.just(""), st.just("# comment")), max_size=6))
def test_read_puzzles_sudoku_lines(lines) -> None:
    _check_read("\n".join(lines), SUDOKU)


@FUZZ
@given(st.lists(st.one_of(maze_like, nasty_text, st.just("################")), max_size=6))
def test_read_puzzles_maze_lines(lines) -> None:
    _check_read("\n".join(lines), MAZE)


@FUZZ
@given(st.lists(st.tuples(nasty_text, st.one_of(puzzle_like, nasty_text), nasty_text), max_size=5),
       st.sampled_from(["source,question,answer,rating", "source,question", "question,source"]))
def test_read_puzzles_csv(rows, header) -> None:
    body = "".join(f"{a},{q},{b},0\n" for a, q, b in rows)
    _check_read(header + "\n" + body, SUDOKU)


def test_read_puzzles_accepts_every_valid_line_and_skips_only_blanks_and_comments() -> None:
    """The accepted case has a known answer: one puzzle per non-blank, non-comment line, in order."""
    text = "# header\n1.3.....2..4...1\n\n  \n0000000000000000\n"
    assert read_puzzles(io.StringIO(text), SUDOKU) == [[2, 1, 4, 1, 1, 1, 1, 1, 3, 1, 1, 5, 1, 1, 1, 2], [1] * 16]


def test_maze_rows_starting_with_a_wall_are_puzzles_not_comments() -> None:
    """Regression: `#` is a maze wall, and nearly every maze row starts with one; they were skipped as comments."""
    row = "#S  #  G#  ##  #"
    assert read_puzzles(io.StringIO(row + "\n"), MAZE) == [[MAZE.id_to_symbol.index(c) for c in row]]


def test_huge_csv_field_is_a_named_error_not_a_csv_traceback() -> None:
    """Regression: a field over the csv module's limit raised `_csv.Error` (not a ValueError)."""
    text = "source,question,answer,rating\nx," + "1" * 200_000 + ",y,0\n"
    with pytest.raises(PuzzleInputError, match=r"fuzz\.txt line 2"):
        read_puzzles(io.StringIO(text), SUDOKU, "fuzz.txt")


def test_form_feeds_and_unicode_line_separators_do_not_split_a_line() -> None:
    """Regression: `str.splitlines` split at \\x0c, \\x85, \\u2028, ..., so line numbers did not match the file."""
    text = "1.3.....2..4...1\n1.3.\x0c....2..4...1\n"
    with pytest.raises(PuzzleInputError, match=r"line 2: expected 16 symbols, got 17"):
        read_puzzles(io.StringIO(text), SUDOKU, "fuzz.txt")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=60) | st.builds(lambda p: p.encode(), puzzle_like))
def test_trm_solve_on_hostile_bytes(model_dir, tmp_path, capsys, data) -> None:
    puzzles = Path(tempfile.mkdtemp(dir=tmp_path)) / "puzzles.txt"
    puzzles.write_bytes(data)
    status = main(["solve", str(model_dir), str(puzzles), "--max-steps", "1"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if status == 0:
        answers = [line for line in captured.out.splitlines() if line]
        assert answers and all(len(answer) == 16 for answer in answers)
    else:
        assert status == 2 and captured.out == ""
        assert f"trm solve: error: {puzzles}" in captured.err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    SOLVER.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------- the model's input path

INT_DTYPES = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool, torch.float32,
              torch.float16]


@FUZZ
@given(batch=st.integers(0, 3), length=st.sampled_from([0, 1, 15, 16, 17]), extra_dim=st.booleans(),
       dtype=st.sampled_from(INT_DTYPES), low=st.integers(-3, 8), high=st.integers(-3, 8),
       ids_kind=st.sampled_from(["none", "ok", "negative", "too-large", "wrong-shape", "float"]),
       halting=st.sampled_from(["act", "max", "ACT", ""]), max_steps=st.sampled_from([None, -1, 0, 1, 2, 2.7]))
def test_solve_and_forward_on_hostile_tensors(batch, length, extra_dim, dtype, low, high, ids_kind, halting,
                                              max_steps) -> None:
    low, high = min(low, high), max(low, high) + 1
    values = torch.randint(low, high, (batch, length) + ((2,) if extra_dim else ()))
    if dtype is torch.bool:
        input_ids = values > 0
    elif dtype.is_floating_point:
        input_ids = values.to(dtype)
    else:
        input_ids = values.clamp(torch.iinfo(dtype).min, torch.iinfo(dtype).max).to(dtype)
    pids = {"none": None, "ok": torch.zeros(batch, dtype=torch.long), "negative": torch.full((batch,), -1),
            "too-large": torch.full((batch,), 5), "wrong-shape": torch.zeros(batch + 1, dtype=torch.long),
            "float": torch.zeros(batch)}[ids_kind]
    try:
        out = SOLVER.solve(input_ids, puzzle_identifiers=pids, halting=halting, max_steps=max_steps)
    except ValueError as error:
        assert "Traceback" not in str(error) and str(error)
    else:
        assert out.predictions.shape == (batch, 16) and out.predictions.dtype == input_ids.dtype
        assert out.steps.shape == (batch,)
        assert bool(((out.steps >= 1) & (out.steps <= int(max_steps or 4))).all())
    try:
        result = SOLVER(input_ids, puzzle_identifiers=pids)
    except ValueError:
        pass
    else:
        assert result.logits.shape == (batch, 16, SOLVER.config.vocab_size)


def test_small_integer_dtypes_are_refused_with_the_fix_named() -> None:
    """Regression: int8/uint8/int16/bool ids passed the checks and failed inside `nn.Embedding`."""
    for dtype in (torch.int8, torch.uint8, torch.int16, torch.bool):
        with pytest.raises(ValueError, match=r"input_ids must be int64 or int32"):
            SOLVER.solve(torch.ones(2, 16, dtype=dtype))
    with pytest.raises(ValueError, match=r"puzzle_identifiers must be int64 or int32"):
        SOLVER.solve(torch.ones(2, 16, dtype=torch.long), puzzle_identifiers=torch.zeros(2))


# ----------------------------------------------------------------------------- CSV loaders and builders

SOLVED = "1234341221434321"  # a valid 4x4 Sudoku solution
QUESTION = "1.3.....2..3...1"  # its givens agree with SOLVED
MAZE_Q = "#S  #  G#  ##  #"
MAZE_A = "#Soo#  G#  ##  #"
rating_text = st.one_of(st.integers(-5, 5).map(str), st.sampled_from(
    ["NaN", "nan", "inf", "-inf", "1e400", "2.0", "2.5", "", " 3", "0x10", str(2**31), str(-2**31 - 1), "1" * 40,
     "٣", "3_000"]))


def _csv(rows) -> str:
    return "source,question,answer,rating\n" + "".join(",".join(row) + "\n" for row in rows)


def _csv_records(text: str) -> int:
    """Data records in `text` as the csv module reads them: a field that opens with a quote runs on to its closing
    quote, across line ends (two lines can be one record); a blank line is none."""
    return sum(1 for fields in csv.reader(io.StringIO(text, newline="")) if fields) - 1


def _build(builder, text: str | bytes, test_text: str, count_records: bool = False) -> None:
    folder = Path(tempfile.mkdtemp(dir=SCRATCH))
    train = folder / "train.csv"
    (train.write_bytes if isinstance(text, bytes) else train.write_text)(text)
    (folder / "test.csv").write_text(test_text)
    try:
        dataset, metadata = builder(folder)
    except (ValueError, OSError) as error:
        message = str(error)
        assert str(folder) in message, message
        assert line_of(message) is not None or "no puzzles left" in message or "no mazes left" in message, message
        return
    if count_records:  # accepted: one dataset row per CSV record (no augmentation), nothing dropped
        assert dataset["train"].num_rows == _csv_records(text)
    for split in dataset.values():
        assert split.features["input_ids"].length == metadata.seq_len
        ids = np.asarray(split["input_ids"], dtype=np.int64)
        if split.num_rows:
            assert ids.shape == (split.num_rows, metadata.seq_len)
            assert ((ids >= 0) & (ids < metadata.vocab_size)).all()


valid_sudoku_row = st.tuples(st.just("gen"), st.just(QUESTION), st.just(SOLVED), st.integers(0, 9).map(str))
valid_maze_row = st.tuples(st.just("gen"), st.just(MAZE_Q), st.just(MAZE_A), st.integers(0, 9).map(str))


@FUZZ
@example([('"', QUESTION, SOLVED, "0"), ('"', QUESTION, SOLVED, "0")])  # one record over two lines (CI, 2026-12-05)
@given(st.lists(st.one_of(valid_sudoku_row, st.tuples(st.one_of(st.just("gen"), nasty_text),
                                                      st.one_of(st.just(QUESTION), puzzle_like, nasty_text),
                                                      st.one_of(st.just(SOLVED), puzzle_like, nasty_text),
                                                      rating_text)), max_size=4))
def test_sudoku_builder_on_hostile_csv(rows) -> None:
    _build(build_sudoku_dataset, _csv(rows), _csv([("gen", QUESTION, SOLVED, "0")]), count_records=True)


@FUZZ
@given(st.lists(st.one_of(valid_maze_row, st.tuples(st.just("gen"), st.one_of(st.just(MAZE_Q), maze_like, nasty_text),
                                                    st.one_of(st.just(MAZE_A), maze_like), rating_text)), max_size=4))
def test_maze_builder_on_hostile_csv(rows) -> None:
    _build(build_maze_dataset, _csv(rows), _csv([("gen", MAZE_Q, MAZE_A, "0")]), count_records=True)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=40), st.sampled_from([b"", b"gen,", b"\xff\xfe"]))
def test_sudoku_builder_on_bytes_that_are_not_utf8(noise, prefix) -> None:
    text = _csv([("gen", QUESTION, SOLVED, "0")]).encode() + prefix + noise
    _build(build_sudoku_dataset, text, _csv([("gen", QUESTION, SOLVED, "0")]))


def test_rating_outside_int32_is_a_named_error() -> None:
    """Regression: a rating over 2**31 - 1 passed the reader and failed in pyarrow's cast."""
    with pytest.raises(DataFormatError, match=r"line 2: rating 2147483648 is outside"):
        _build_strict(build_sudoku_dataset, _csv([("gen", QUESTION, SOLVED, str(2**31))]))


def test_invalid_utf8_and_huge_fields_are_named_errors() -> None:
    """Regression: undecodable bytes raised a bare UnicodeDecodeError naming no file or line, and a field
    over the csv module's size limit a `_csv.Error` (not a ValueError, so a traceback from `trm data build`)."""
    rows = [("gen", QUESTION, SOLVED, "0")] * 3
    text = _csv(rows).encode() + b"gen,\xff\n"
    with pytest.raises(DataFormatError, match=r"train\.csv: line 5: not UTF-8"):
        _build_strict(build_sudoku_dataset, text)
    with pytest.raises(DataFormatError, match=r"train\.csv: line 3: not a readable CSV row"):
        _build_strict(build_sudoku_dataset, _csv([rows[0], ("gen", "1" * 200_000, SOLVED, "0")]))


def _build_strict(builder, text: str | bytes):
    folder = Path(tempfile.mkdtemp(dir=SCRATCH))
    train = folder / "train.csv"
    (train.write_bytes if isinstance(text, bytes) else train.write_text)(text)
    (folder / "test.csv").write_text(_csv([("gen", QUESTION, SOLVED, "0")]))
    return builder(folder)


# ----------------------------------------------------------------------------- ARC JSON loaders

cell = st.one_of(st.integers(0, 9), st.integers(-3, 12), st.sampled_from([float("nan"), float("-inf"), 1.0, 2.5, True,
                                                                          None, "3", [2], {}]),
                 st.integers(2**63, 2**64))
good_cell = st.integers(0, 9)


def grid(cells=good_cell, max_side=4):
    return st.integers(1, max_side).flatmap(lambda w: st.lists(st.lists(cells, min_size=w, max_size=w),
                                                               min_size=1, max_size=max_side))


hostile_grid = st.one_of(grid(), grid(cell), st.just([]), st.just([[]]), st.just([[1, 2], [3]]),
                         st.just([[0] * 31]), st.just([[0]] * 31), st.just([[0] * 30] * 30), st.just(7),
                         st.just([[[1]]]))
example = st.fixed_dictionaries({"input": hostile_grid, "output": hostile_grid})
task = st.fixed_dictionaries({"train": st.lists(example, max_size=2), "test": st.lists(
    st.fixed_dictionaries({"input": hostile_grid}), min_size=0, max_size=2)})
task_ids = st.sampled_from(["a1", "a1", "b2", "", "é", "x" * 200])


def _arc_json(tasks: list[tuple[str, dict]]) -> str:
    """A challenges file; duplicate ids are written as duplicate JSON keys, as a careless merge would."""
    return "{" + ",".join(f"{json.dumps(task_id)}: {json.dumps(body)}" for task_id, body in tasks) + "}"


@FUZZ
@given(st.lists(st.tuples(task_ids, task), min_size=1, max_size=3))
def test_arc_loader_and_builder_on_hostile_json(tasks) -> None:
    path = Path(tempfile.mkdtemp(dir=SCRATCH)) / "fuzz_challenges.json"
    path.write_text(_arc_json(tasks))
    try:
        loaded = load_kaggle_tasks(path)
        built, metadata = build_arc_dataset(loaded[:1], loaded[1:], num_aug=1, seed=0)
    except ValueError as error:
        message = str(error)
        assert str(path) in message or "task " in message, message
        return
    ids = [task_id for task_id, _ in tasks]
    assert len(set(ids)) == len(ids)  # duplicates were refused above
    assert [t.task_id for t in loaded] == ids
    for split in built.values():
        assert all(len(row) == 900 for row in split["input_ids"])
        assert not any(math.isnan(v) for row in split["labels"] for v in row)


def test_duplicate_task_ids_in_one_json_file_are_refused() -> None:
    """Regression: `json.loads` kept the last of two equal keys, silently dropping a task."""
    path = Path(tempfile.mkdtemp(dir=SCRATCH)) / "dup_challenges.json"
    body = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}
    path.write_text(_arc_json([("a1", body), ("a1", body)]))
    with pytest.raises(DataFormatError, match=r"dup_challenges\.json: key 'a1' appears twice"):
        load_kaggle_tasks(path)


@pytest.mark.parametrize("grid, message", [
    ([[[1]]], r"grid must be a list of rows of colours, got 3 levels"),
    ([[1, [2]]], r"cell \(0, 1\) is \[2\], not a colour"),
])
def test_nested_grids_are_refused_where_they_are_read(grid, message) -> None:
    """Regression: a 3-D grid passed `parse_grid` and failed inside the augmentation; ragged nesting
    raised numpy's own ValueError naming no task."""
    path = Path(tempfile.mkdtemp(dir=SCRATCH)) / "nested_challenges.json"
    path.write_text(json.dumps({"t1": {"train": [], "test": [{"input": grid}]}}))
    with pytest.raises(DataFormatError, match=r"nested_challenges\.json: task t1: test example 0 input: " + message):
        load_kaggle_tasks(path)
