"""Sudoku-Extreme builder (and any N x N Sudoku CSV in the same schema, e.g. from `generate_sudoku`).

Reference protocol (TRM_FACTS §5): training rows = a subsample of `train.csv` (ours is seeded),
each original puzzle followed by `num_aug` augmented copies; test rows = `test.csv`, unaugmented.
Encoding: 0 PAD, 1 blank `.`, digits 1..N -> ids 2..N+1; labels are the full solution. Every row
uses puzzle id 0 (Sudoku has no per-puzzle embedding).

Augmentations, applied identically to question and answer (each keeps a valid Sudoku valid):
digit permutation, transpose with p=0.5 (only when boxes are square), shuffle of bands, of rows
within each band, of stacks, and of columns within each stack. Each row records its transform as
`augmentation`: `t{0|1}_r{rows}_c{cols}_d{digits}` means "transpose if t=1, then output row i is
row r[i] and output column j is column c[j], then digit x becomes d[x-1]"
(`apply_sudoku_augmentation` replays it).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import numpy as np
from datasets import DatasetDict, Value
from tqdm.auto import tqdm

from .csv_source import resolve_csv_files
from .errors import DataFormatError
from .metadata import DatasetMetadata
from .puzzle_csv import PuzzleRow, encode_strings, make_lookup, read_puzzle_csv
from .sudoku_solver import find_conflict, sudoku_box_shape, valid_solution_mask
from .tables import dataset_from_chunks, grid_features

SUDOKU_EXTREME_REPO_ID = "sapientinc/sudoku-extreme"
# Branch used when downloading; the commit it resolved to is stored in the dataset's metadata.
SUDOKU_EXTREME_REVISION = "main"
PAD_ID, BLANK_ID, DIGIT_OFFSET = 0, 1, 1  # digit d has id d + 1
_ROWS_PER_CHUNK = 65536
_NAME_PATTERN = re.compile(r"t([01])_r([0-9]+)_c([0-9]+)_d([0-9]+)")

SUDOKU_PROVENANCE_FEATURES = {
    "source": Value("string"),
    "rating": Value("int32"),
    "group": Value("int32"),  # index of the original puzzle within its split
    "augmentation": Value("string"),
}


def sudoku_symbols(size: int) -> list[str]:
    """`id_to_symbol` of an N x N Sudoku: PAD, blank, then the digits."""
    return ["<pad>", "."] + [str(d) for d in range(1, size + 1)]


def infer_sudoku_size(text: str, path: str | os.PathLike, line: int) -> int:
    """N from the length of a question (N*N characters)."""
    size = math.isqrt(len(text))
    if size * size != len(text):
        raise DataFormatError(f"{path}: line {line}: question has {len(text)} characters, not N*N for any N")
    try:
        sudoku_box_shape(size)
    except ValueError as error:
        raise DataFormatError(f"{path}: line {line}: {error}") from None
    return size


def encode_sudoku_rows(rows: list[PuzzleRow], size: int, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """`(questions, answers)` as `(n, N*N)` int16 ids, after checking every row.

    Raises `DataFormatError` naming the file and line for a wrong length, a symbol outside the
    alphabet, an answer that is not a valid solution, or an answer that contradicts a given.
    """
    length = size * size
    digits = {str(d): d + DIGIT_OFFSET for d in range(1, size + 1)}
    questions = encode_strings([r.question for r in rows], make_lookup({".": BLANK_ID, **digits}), length,
                               "question", rows, path)
    answers = encode_strings([r.answer for r in rows], make_lookup(digits), length, "answer", rows, path)
    clash = np.argwhere((questions != BLANK_ID) & (questions != answers))
    if clash.size:
        index, cell = (int(v) for v in clash[0])
        raise DataFormatError(
            f"{path}: line {rows[index].line}: answer has {rows[index].answer[cell]!r} at row {cell // size + 1}, "
            f"column {cell % size + 1} where the question gives {rows[index].question[cell]!r}"
        )
    valid = valid_solution_mask(answers - DIGIT_OFFSET, size)
    if not valid.all():
        index = int(np.flatnonzero(~valid)[0])
        problem = find_conflict((answers[index] - DIGIT_OFFSET).tolist(), size)
        raise DataFormatError(f"{path}: line {rows[index].line}: answer is not a valid {size}x{size} solution: {problem}")
    return questions, answers


def random_sudoku_augmentations(count: int, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`count` random transforms: `transpose` (count,), `row_perm`, `col_perm` (count, N), `digit_perm` (count, N)."""
    box_rows, box_cols = sudoku_box_shape(size)

    def shuffled_lines(block: int) -> np.ndarray:
        groups = size // block
        group_order = np.argsort(rng.random((count, groups)), axis=1)  # which band/stack goes where
        within = np.argsort(rng.random((count, groups, block)), axis=2)  # lines inside each
        return (group_order[:, :, None] * block + within).reshape(count, size)

    transpose = rng.random(count) < 0.5 if box_rows == box_cols else np.zeros(count, dtype=bool)
    return {
        "transpose": transpose,
        "row_perm": shuffled_lines(box_rows),
        "col_perm": shuffled_lines(box_cols),
        "digit_perm": np.argsort(rng.random((count, size)), axis=1) + 1,
    }


def identity_sudoku_augmentations(count: int, size: int) -> dict[str, np.ndarray]:
    lines = np.tile(np.arange(size), (count, 1))
    return {"transpose": np.zeros(count, dtype=bool), "row_perm": lines, "col_perm": lines.copy(),
            "digit_perm": lines + 1}


def apply_sudoku_augmentations(grids: np.ndarray, augmentations: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Transform row k of `grids` (ids, `(count, N*N)`) by transform k of `augmentations`; vectorised."""
    rows = augmentations["row_perm"][:, :, None]
    cols = augmentations["col_perm"][:, None, :]
    source = np.where(augmentations["transpose"][:, None, None], cols * size + rows, rows * size + cols)
    moved = np.take_along_axis(grids, source.reshape(len(grids), size * size), axis=1)
    lookup = np.concatenate(  # per row: id -> new id; PAD and blank stay
        [np.tile([PAD_ID, BLANK_ID], (len(grids), 1)), augmentations["digit_perm"] + DIGIT_OFFSET], axis=1
    )
    return np.take_along_axis(lookup, moved.astype(np.int64), axis=1).astype(grids.dtype)


def sudoku_augmentation_names(augmentations: dict[str, np.ndarray]) -> np.ndarray:
    """Names `t{0|1}_r..._c..._d...` of the transforms (a numpy string array)."""
    count, size = augmentations["row_perm"].shape
    parts = [
        np.full((count, 1), ord("t")), augmentations["transpose"][:, None].astype(np.int64) + ord("0"),
        np.tile([ord("_"), ord("r")], (count, 1)), augmentations["row_perm"] + ord("0"),
        np.tile([ord("_"), ord("c")], (count, 1)), augmentations["col_perm"] + ord("0"),
        np.tile([ord("_"), ord("d")], (count, 1)), augmentations["digit_perm"] + ord("0"),
    ]
    chars = np.ascontiguousarray(np.concatenate(parts, axis=1).astype(np.uint8))
    return chars.view(f"S{chars.shape[1]}").ravel().astype(str)


def apply_sudoku_augmentation(grid: np.ndarray, name: str) -> np.ndarray:
    """Replay one named transform on a flat grid of ids (plain reference version of the vectorised one)."""
    match = _NAME_PATTERN.fullmatch(name)
    if match is None:
        raise ValueError(f"malformed Sudoku augmentation name {name!r}")
    rows, cols, digits = ([int(ch) for ch in match.group(i)] for i in (2, 3, 4))
    size = len(rows)
    board = np.asarray(grid).reshape(size, size)
    if match.group(1) == "1":
        board = board.T
    board = board[rows][:, cols]
    lookup = np.array([PAD_ID, BLANK_ID] + [d + DIGIT_OFFSET for d in digits])
    return lookup[board].reshape(-1)


def build_sudoku_dataset(
    csv_dir: str | os.PathLike | None = None,
    *,
    subsample_size: int | None = None,
    test_subsample_size: int | None = None,
    num_aug: int = 0,
    min_rating: int | None = None,
    seed: int = 0,
    repo_id: str = SUDOKU_EXTREME_REPO_ID,
    revision: str = SUDOKU_EXTREME_REVISION,
    progress: bool = False,
) -> tuple[DatasetDict, DatasetMetadata]:
    """Build Sudoku `train`/`test` splits and their metadata.

    Args:
        csv_dir: folder with `train.csv` and `test.csv`; None downloads `repo_id` at `revision`.
        subsample_size: original training puzzles to keep, drawn with `seed` (reference: 1000); None keeps all.
        test_subsample_size: test puzzles to keep (reference: all 422,786); None keeps all.
        num_aug: augmented copies per training puzzle (reference: 1000); the test split is never augmented.
        min_rating: drop puzzles rated below this (both splits), before subsampling.
        seed: seeds the subsampling and the augmentations; the same seed gives the same dataset.
        progress: show progress bars.
    """
    if num_aug < 0:
        raise ValueError(f"num_aug must be non-negative, got {num_aug}")
    paths, source = resolve_csv_files(csv_dir, repo_id, revision)
    train_rng, test_rng, augment_rng = np.random.default_rng(seed).spawn(3)
    rows = {
        "train": read_puzzle_csv(paths["train"], min_rating=min_rating, subsample_size=subsample_size,
                                 rng=train_rng, progress=progress),
        "test": read_puzzle_csv(paths["test"], min_rating=min_rating, subsample_size=test_subsample_size,
                                rng=test_rng, progress=progress),
    }
    first = next(((split, r[0]) for split, r in rows.items() if r), None)
    if first is None:
        raise ValueError(f"no puzzles left in {paths['train']} or {paths['test']} (min_rating={min_rating})")
    size = infer_sudoku_size(first[1].question, paths[first[0]], first[1].line)
    features = grid_features(size * size, SUDOKU_PROVENANCE_FEATURES)
    splits = {}
    for split, copies in (("train", num_aug), ("test", 0)):
        questions, answers = encode_sudoku_rows(rows[split], size, paths[split])
        chunks = _augmented_chunks(rows[split], questions, answers, size, copies, augment_rng, progress, split)
        splits[split] = dataset_from_chunks(chunks, features)
    metadata = DatasetMetadata(
        task="sudoku",
        id_to_symbol=sudoku_symbols(size),
        seq_len=size * size,
        grid_shape=(size, size),
        pad_token_id=PAD_ID,
        blank_token_id=BLANK_ID,
        num_puzzle_identifiers=1,
        source=source,
        build_settings={
            "builder": "sudoku", "subsample_size": subsample_size, "test_subsample_size": test_subsample_size,
            "num_aug": num_aug, "min_rating": min_rating, "seed": seed,
        },
    )
    return DatasetDict(splits), metadata


def _augmented_chunks(
    rows: list[PuzzleRow],
    questions: np.ndarray,
    answers: np.ndarray,
    size: int,
    num_aug: int,
    rng: np.random.Generator,
    progress: bool,
    split: str,
) -> list[dict[str, Any]]:
    """Columns of a split in chunks: each puzzle, then its `num_aug` augmented copies."""
    copies = 1 + num_aug
    groups_per_chunk = max(1, _ROWS_PER_CHUNK // copies)
    sources = np.asarray([row.source for row in rows], dtype=str)
    ratings = np.asarray([row.rating for row in rows], dtype=np.int64)
    chunks = []
    bar = tqdm(total=len(rows) * copies, desc=f"encoding {split}", unit=" rows", disable=not progress)
    for start in range(0, len(rows), groups_per_chunk):
        group = np.repeat(np.arange(start, min(start + groups_per_chunk, len(rows))), copies)
        count = group.size
        augmentations = random_sudoku_augmentations(count, size, rng)
        original = np.arange(count) % copies == 0
        for key, values in identity_sudoku_augmentations(int(original.sum()), size).items():
            augmentations[key][original] = values
        chunks.append({
            "input_ids": apply_sudoku_augmentations(questions[group], augmentations, size),
            "labels": apply_sudoku_augmentations(answers[group], augmentations, size),
            "puzzle_identifiers": np.zeros(count, dtype=np.int32),
            "source": sources[group],
            "rating": ratings[group],
            "group": group,
            "augmentation": sudoku_augmentation_names(augmentations),
        })
        bar.update(count)
    bar.close()
    return chunks


__all__ = [
    "SUDOKU_EXTREME_REPO_ID",
    "SUDOKU_EXTREME_REVISION",
    "apply_sudoku_augmentation",
    "apply_sudoku_augmentations",
    "build_sudoku_dataset",
    "encode_sudoku_rows",
    "random_sudoku_augmentations",
    "sudoku_augmentation_names",
    "sudoku_symbols",
]
