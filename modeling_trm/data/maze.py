"""Maze-Hard builder (and any maze CSV in the same schema, e.g. from `generate_maze`).

`sapientinc/maze-30x30-hard-1k` rows hold 900 characters of `# SG` (answer: `o` on the path).
Encoding 0 PAD, `#` 1, space 2, `S` 3, `G` 4, `o` 5; labels are the full answer grid. Whitespace is
data here: rows are read with the `csv` module and never stripped. With `dihedral=True`, every
training maze is followed by its 7 other dihedral images (rotations and reflections; only the
shape-preserving ones for a non-square grid). Every row uses puzzle id 0.
"""

from __future__ import annotations

import math
import os

import numpy as np
from datasets import DatasetDict, Value
from tqdm.auto import tqdm

from ..configuration_trm import MAZE_SYMBOLS
from .arc_augment import DIHEDRAL_NAMES, dihedral_transform
from .csv_source import resolve_csv_files
from .errors import DataFormatError
from .metadata import DatasetMetadata
from .puzzle_csv import PuzzleRow, encode_strings, make_lookup, read_puzzle_csv
from .tables import dataset_from_chunks, grid_features

MAZE_HARD_REPO_ID = "sapientinc/maze-30x30-hard-1k"
MAZE_HARD_REVISION = "main"  # the commit it resolves to is stored in the dataset's metadata
WALL_ID, OPEN_ID, START_ID, GOAL_ID, PATH_ID = 1, 2, 3, 4, 5
_ORIENTATION_KEEPING = (0, 2, 4, 5)  # dihedral transforms that keep an R x C grid R x C

MAZE_PROVENANCE_FEATURES = {
    "source": Value("string"),
    "rating": Value("int32"),
    "group": Value("int32"),  # index of the original maze within its split
    "augmentation": Value("string"),  # a name from arc_augment.DIHEDRAL_NAMES
}


def infer_maze_shape(text: str, path: str | os.PathLike, line: int) -> tuple[int, int]:
    """A square grid from the row length (900 -> 30x30); pass `grid_shape` for anything else."""
    side = math.isqrt(len(text))
    if side * side != len(text) or side < 2:
        raise DataFormatError(
            f"{path}: line {line}: question has {len(text)} characters, not a square grid; pass grid_shape"
        )
    return side, side


def encode_maze_rows(
    rows: list[PuzzleRow], shape: tuple[int, int], path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """`(questions, answers)` as `(n, R*C)` int16 ids, after checking every row.

    The question may only hold `# SG` with one `S` and one `G`; the answer must equal the question
    except for `o` marks, which may only cover open cells.
    """
    length = shape[0] * shape[1]
    question_ids = {"#": WALL_ID, " ": OPEN_ID, "S": START_ID, "G": GOAL_ID}
    questions = encode_strings([r.question for r in rows], make_lookup(question_ids), length, "question", rows, path)
    answers = encode_strings([r.answer for r in rows], make_lookup({**question_ids, "o": PATH_ID}), length,
                             "answer", rows, path)
    for symbol, token in (("S", START_ID), ("G", GOAL_ID)):
        counts = (questions == token).sum(axis=1)
        bad = np.flatnonzero(counts != 1)
        if bad.size:
            index = int(bad[0])
            raise DataFormatError(
                f"{path}: line {rows[index].line}: question has {counts[index]} {symbol!r} cells, expected 1"
            )
    path_ok = (answers == PATH_ID) & (questions == OPEN_ID)
    clash = np.argwhere((answers != questions) & ~path_ok)
    if clash.size:
        index, cell = (int(v) for v in clash[0])
        raise DataFormatError(
            f"{path}: line {rows[index].line}: answer has {rows[index].answer[cell]!r} at row {cell // shape[1] + 1}, "
            f"column {cell % shape[1] + 1} where the question has {rows[index].question[cell]!r}"
        )
    return questions, answers


def build_maze_dataset(
    csv_dir: str | os.PathLike | None = None,
    *,
    subsample_size: int | None = None,
    test_subsample_size: int | None = None,
    dihedral: bool = False,
    min_rating: int | None = None,
    grid_shape: tuple[int, int] | None = None,
    seed: int = 0,
    repo_id: str = MAZE_HARD_REPO_ID,
    revision: str = MAZE_HARD_REVISION,
    progress: bool = False,
) -> tuple[DatasetDict, DatasetMetadata]:
    """Build maze `train`/`test` splits and their metadata.

    Args:
        csv_dir: folder with `train.csv` and `test.csv`; None downloads `repo_id` at `revision`.
        subsample_size: training mazes to keep, drawn with `seed`; None keeps all (reference: all 1000).
        test_subsample_size: test mazes to keep; None keeps all.
        dihedral: add the 7 other dihedral images of every training maze (the test split is never augmented).
        min_rating: drop mazes whose `rating` is below this.
        grid_shape: `(rows, cols)` for non-square grids; None infers a square from the row length.
        seed: seeds the subsampling.
        progress: show progress bars.
    """
    paths, source = resolve_csv_files(csv_dir, repo_id, revision)
    train_rng, test_rng = np.random.default_rng(seed).spawn(2)
    rows = {
        "train": read_puzzle_csv(paths["train"], min_rating=min_rating, subsample_size=subsample_size,
                                 rng=train_rng, progress=progress),
        "test": read_puzzle_csv(paths["test"], min_rating=min_rating, subsample_size=test_subsample_size,
                                rng=test_rng, progress=progress),
    }
    if grid_shape is None:
        first = next(((split, r[0]) for split, r in rows.items() if r), None)
        if first is None:
            raise ValueError(f"no mazes left in {paths['train']} or {paths['test']} (min_rating={min_rating})")
        grid_shape = infer_maze_shape(first[1].question, paths[first[0]], first[1].line)
    grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
    transforms = tuple(range(len(DIHEDRAL_NAMES))) if grid_shape[0] == grid_shape[1] else _ORIENTATION_KEEPING
    features = grid_features(grid_shape[0] * grid_shape[1], MAZE_PROVENANCE_FEATURES)
    splits = {}
    for split, split_transforms in (("train", transforms if dihedral else (0,)), ("test", (0,))):
        questions, answers = encode_maze_rows(rows[split], grid_shape, paths[split])
        columns = _dihedral_columns(rows[split], questions, answers, grid_shape, split_transforms, progress, split)
        splits[split] = dataset_from_chunks([columns], features)
    metadata = DatasetMetadata(
        task="maze",
        id_to_symbol=MAZE_SYMBOLS,
        seq_len=grid_shape[0] * grid_shape[1],
        grid_shape=grid_shape,
        pad_token_id=0,
        blank_token_id=None,
        num_puzzle_identifiers=1,
        source=source,
        build_settings={
            "builder": "maze", "subsample_size": subsample_size, "test_subsample_size": test_subsample_size,
            "dihedral": dihedral, "min_rating": min_rating, "seed": seed,
        },
    )
    return DatasetDict(splits), metadata


def _dihedral_columns(
    rows: list[PuzzleRow],
    questions: np.ndarray,
    answers: np.ndarray,
    shape: tuple[int, int],
    transforms: tuple[int, ...],
    progress: bool,
    split: str,
) -> dict[str, np.ndarray]:
    """Columns with each maze followed by its images under `transforms` (transform 0 first)."""
    count, length = len(rows), shape[0] * shape[1]

    def images(values: np.ndarray, k: int) -> np.ndarray:
        boards = [dihedral_transform(board, k).reshape(-1) for board in values.reshape(count, *shape)]
        return np.stack(boards) if boards else np.empty((0, length), dtype=values.dtype)

    inputs = np.empty((count, len(transforms), length), dtype=np.int16)
    labels = np.empty_like(inputs)
    for position, k in enumerate(tqdm(transforms, desc=f"encoding {split}", disable=not progress)):
        inputs[:, position] = images(questions, k)
        labels[:, position] = images(answers, k)
    group = np.repeat(np.arange(count), len(transforms))
    return {
        "input_ids": inputs.reshape(-1, length),
        "labels": labels.reshape(-1, length),
        "puzzle_identifiers": np.zeros(group.size, dtype=np.int32),
        "source": np.asarray([row.source for row in rows], dtype=str).reshape(-1)[group],
        "rating": np.asarray([row.rating for row in rows], dtype=np.int64).reshape(-1)[group],
        "group": group,
        "augmentation": np.asarray([DIHEDRAL_NAMES[k] for k in transforms] * count, dtype=str),
    }


__all__ = ["MAZE_HARD_REPO_ID", "MAZE_HARD_REVISION", "MAZE_SYMBOLS", "build_maze_dataset", "encode_maze_rows"]
