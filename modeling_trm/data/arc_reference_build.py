"""ARC datasets built as the TRM authors' `dataset/build_arc_dataset.py` builds them, byte for byte.

A checkpoint trained with the authors' code has one puzzle-embedding row per augmented task variant,
numbered by their builder; without the same numbering it scores about 0%. Their builder is seeded
(`np.random.seed(42)`), so the numbering can be reproduced from the same Kaggle files and options by
making the same numpy draws in the same order (SamsungSAILMontreal/TinyRecursiveModels,
`dataset/build_arc_dataset.py` and `dataset/common.py`):

1. Tasks. For each subset in the given order, `PREFIX_SUBSET_challenges.json` is read; the test
   outputs come from `PREFIX_SUBSET_solutions.json`, or are `[[0]]` when that file is absent. The
   list of `(task id, task)` items is shuffled (one `shuffle`). A task of the test set (`test_set_name`
   or `test_set_name2`) sends its demonstrations to the train split and its test pairs to the test
   split; any other task sends every pair to the train split, in the order of the keys in its JSON.
2. Variants. Per task, at most 5 * `num_aug` draws of a dihedral transform (`randint(0, 8)`) and a
   permutation of colours 1..9 (0 stays fixed); a draw is kept when its grids, taken as a multiset of
   (input, output) pairs over both splits, differ from the original's and every kept variant's, and
   drawing stops once `num_aug` are kept. A variant is named `TASK|||t<k>|||<10 digits>`.
3. Puzzle ids. Id 0 is `<blank>`; then `puzzle_identifiers_start`, ... in order of first appearance over
   the splits, tasks and variants. A test-set task's test rows share the ids of its demonstration rows.
4. Rows. Per split, task and variant: one `randint(0, n)` picks the example left in the corner; every
   other train-split example is moved to a random offset (rows first, then columns), the same for its
   input and output. Canvas: 30x30 uint8, 0 PAD, 1 EOS on the row below and the column right of the
   grid (not the corner cell between them), colours 0..9 as 2..11.

Output (`write_reference_layout`): the authors' folder, `train/` and `test/` with `all__inputs.npy`,
`all__labels.npy` (uint8, N x 900), `all__puzzle_identifiers.npy`, `all__puzzle_indices.npy`,
`all__group_indices.npy` (int32) and `dataset.json`, plus `identifiers.json` and `test_puzzles.json`.
`build_arc_reference_compatible` then turns that folder into our dataset format
(`reference_layout.import_reference_dataset`).

Memory: the authors' script holds every row in lists (about 10 GB for ARC-AGI-1 x 1000). Here the
rows are written to disk in chunks as they are made; what stays in memory is the tasks, one
(transform, colour map) per variant and the id map: a few hundred MB for ARC-AGI-1 x 1000
(`benchmarks/arc_build_memory.py` measures it).

Where this differs from the authors' script, it is on input their script would mishandle: a missing
or malformed file, a grid that is not a non-empty rectangle of integer colours 0..9 no larger than
30x30, a key given twice in one JSON object, solutions that do not match the tests, a task with no
example for a split, or no test-set subset among the subsets raise an error naming the file and task.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from tqdm.auto import tqdm

from .arc import _read_json, parse_grid
from .atomic import atomic_directory, check_target
from .errors import DataFormatError
from .puzzle_csv import file_sha256

if TYPE_CHECKING:
    from datasets import DatasetDict

    from .metadata import DatasetMetadata

CANVAS = 30  # ARCMaxGridSize in the authors' script
SEQ_LEN = CANVAS * CANVAS
PAD, EOS, COLOUR_OFFSET = 0, 1, 2
VOCAB_SIZE = 12  # PAD, EOS, colours 0..9
RETRIES_PER_VARIANT = 5  # the authors' ARCAugmentRetriesFactor: draws allowed per wanted variant
VARIANT_SEPARATOR = "|||"  # the authors' PuzzleIdSeparator
BLANK_IDENTIFIER = "<blank>"
SUBSET_NAME = "all"  # the only set in each split of the authors' layout
SPLITS = ("train", "test")
ARRAY_NAMES = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
ROWS_PER_CHUNK = 16384  # rows held before a write: 2 x 16384 x 900 bytes = 29 MB

# The paper's builds from the authors' combined Kaggle files (`kaggle/combined/arc-agi`).
PAPER_BUILDS = {
    "arc-agi-1": (("training", "evaluation", "concept"), "evaluation"),
    "arc-agi-2": (("training2", "evaluation2", "concept"), "evaluation2"),
}
IDENTITY_COLOURS = np.arange(10, dtype=np.uint8)


@dataclass(frozen=True)
class ReferenceArcOptions:
    """The options of the authors' `build_arc_dataset.py` (its `DataProcessConfig` less `output_dir`).

    Args:
        input_file_prefix (`str`):
            Files are `{prefix}_{subset}_challenges.json` and `{prefix}_{subset}_solutions.json`.
        subsets (`tuple[str, ...]`, *optional*, defaults to ARC-AGI-1's `training evaluation concept`):
            Subsets to read, in this order (the order decides the random draws).
        test_set_name (`str`, *optional*, defaults to `"evaluation"`):
            Subset whose test pairs form the test split.
        test_set_name2 (`str`, *optional*, defaults to `"evaluation2"`):
            A second such subset (the authors' default; an earlier version of their script used
            `"your_test_set"`).
        seed (`int`, *optional*, defaults to 42):
            Seed of numpy's legacy generator, as `np.random.seed(seed)`.
        num_aug (`int`, *optional*, defaults to 1000):
            Augmented variants wanted per task beside the original.
        puzzle_identifiers_start (`int`, *optional*, defaults to 1):
            First puzzle id; ids below it are `<blank>`.
    """

    input_file_prefix: str
    subsets: tuple[str, ...] = PAPER_BUILDS["arc-agi-1"][0]
    test_set_name: str = "evaluation"
    test_set_name2: str = "evaluation2"
    seed: int = 42
    num_aug: int = 1000
    puzzle_identifiers_start: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_file_prefix", str(self.input_file_prefix))
        object.__setattr__(self, "subsets", tuple(str(subset) for subset in self.subsets))
        if not self.subsets:
            raise ValueError("subsets must name at least one subset (e.g. training evaluation concept)")
        if self.num_aug < 0:
            raise ValueError(f"num_aug must be non-negative, got {self.num_aug}")
        if self.puzzle_identifiers_start < 1:
            raise ValueError(f"puzzle_identifiers_start must be at least 1 (0 is <blank>), got "
                             f"{self.puzzle_identifiers_start}")
        if not set(self.test_sets) & set(self.subsets):
            raise ValueError(f"none of the subsets {list(self.subsets)} is the test set {self.test_set_name!r} "
                             f"(or {self.test_set_name2!r}): the build would have no test split")

    @property
    def test_sets(self) -> tuple[str, str]:
        return (self.test_set_name, self.test_set_name2)

    def paper_name(self) -> str | None:
        """`arc-agi-1` / `arc-agi-2` when the subsets and test set are the paper's, else None."""
        for name, (subsets, test_set) in PAPER_BUILDS.items():
            if self.subsets == subsets and self.test_set_name == test_set:
                return name
        return None

    def challenges_path(self, subset: str) -> Path:
        return Path(f"{self.input_file_prefix}_{subset}_challenges.json")

    def solutions_path(self, subset: str) -> Path:
        return Path(f"{self.input_file_prefix}_{subset}_solutions.json")

    def to_dict(self) -> dict[str, Any]:
        return {"input_file_prefix": self.input_file_prefix, "subsets": list(self.subsets),
                "test_set_name": self.test_set_name, "test_set_name2": self.test_set_name2, "seed": self.seed,
                "num_aug": self.num_aug, "puzzle_identifiers_start": self.puzzle_identifiers_start}


class _TaskGrids:
    """One task's (input, output) grids as uint8 arrays, per split, with every dihedral image laid out flat.

    `frame(k)` is all grids of dihedral image k concatenated (train-split pairs, then test-split pairs,
    input before output), so one colour map lookup augments a whole task.
    """

    def __init__(self, name: str, pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> None:
        self.name = name
        self.pairs = pairs
        self._frames: dict[int, tuple[np.ndarray, list[tuple[int, int, int, int, int, int]]]] = {}

    def frame(self, k: int) -> tuple[np.ndarray, list[tuple[int, int, int, int, int, int]]]:
        """`(flat, layout)`: flat uint8 grids of dihedral image k, and per pair `(start, h_in, w_in, h_out, w_out,
        end)` in split order."""
        if k not in self._frames:
            grids, layout, start = [], [], 0
            for split in SPLITS:
                for inp, out in self.pairs.get(split, ()):
                    inp, out = dihedral(inp, k), dihedral(out, k)
                    end = start + inp.size + out.size
                    layout.append((start, *inp.shape, *out.shape, end))
                    grids += [inp.ravel(), out.ravel()]
                    start = end
            flat = np.concatenate(grids) if grids else np.zeros(0, np.uint8)
            self._frames[k] = (flat, layout)
        return self._frames[k]

    def fingerprint(self, k: int, colours: np.ndarray) -> bytes:
        """Equal exactly when two variants hold the same multiset of (input, output) pairs (the authors'
        duplicate test: sorted per-pair hashes, over both splits)."""
        flat, layout = self.frame(k)
        data = colours[flat].tobytes()
        # the four shape bytes make each record unambiguous, so sorting gives a canonical form of the multiset
        records = sorted(bytes(shape) + data[start:end] for start, *shape, end in layout)
        return hashlib.sha256(b"".join(records)).digest()

    def split_pairs(self, split: str, k: int, colours: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The variant's (input, output) grids of one split, in order."""
        flat, layout = self.frame(k)
        data = colours[flat]
        first = len(self.pairs.get("train", ())) if split == "test" else 0
        for start, h_in, w_in, h_out, w_out, end in layout[first:first + len(self.pairs.get(split, ()))]:
            middle = start + h_in * w_in
            yield data[start:middle].reshape(h_in, w_in), data[middle:end].reshape(h_out, w_out)


def dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    """The authors' dihedral transform k (`dataset/common.py`), as a view: 1-3 rotate by k quarter turns
    counter-clockwise, 4 mirrors left-right, 5 up-down, 6 transposes, 7 reflects over the anti-diagonal."""
    if k < 4:
        return np.rot90(grid, k)
    if k == 4:
        return grid[:, ::-1]
    if k == 5:
        return grid[::-1]
    if k == 6:
        return grid.T
    return grid[::-1, ::-1].T


@dataclass
class _Group:
    """A task in one split: its variants as (dihedral id, colour map) rows, the original first."""

    task: _TaskGrids
    transforms: np.ndarray  # (V,) uint8
    colour_maps: np.ndarray  # (V, 10) uint8

    def variant_names(self) -> Iterator[str]:
        yield self.task.name
        for k, colours in zip(self.transforms[1:], self.colour_maps[1:]):
            yield variant_name(self.task.name, int(k), colours)


def variant_name(task_id: str, k: int, colours: np.ndarray) -> str:
    """The authors' puzzle name of a variant: `TASK|||t<k>|||<colour map digits>`."""
    digits = "".join(str(int(c)) for c in colours)
    return f"{task_id}{VARIANT_SEPARATOR}t{k}{VARIANT_SEPARATOR}{digits}"


@dataclass
class _Plan:
    """Everything drawn before the rows: groups per split (in the authors' split order) and test puzzles."""

    splits: dict[str, list[_Group]]
    test_puzzles: dict[str, Any]
    short_tasks: dict[str, int] = field(default_factory=dict)  # task -> variants, when fewer than num_aug + 1
    dummy_outputs: list[str] = field(default_factory=list)  # subsets without a solutions file


@dataclass
class ReferenceLayoutSummary:
    """What `write_reference_layout` wrote."""

    path: Path
    rows: dict[str, int]
    puzzles: dict[str, int]
    groups: dict[str, int]
    num_puzzle_identifiers: int
    short_tasks: dict[str, int]
    dummy_outputs: list[str]
    seconds: float


def _load_subset(options: ReferenceArcOptions, subset: str) -> tuple[dict[str, Any], bool]:
    """The subset's tasks (raw JSON objects, test outputs filled in) and whether a solutions file was found."""
    path = options.challenges_path(subset)
    if not path.is_file():
        raise FileNotFoundError(f"ARC challenges file {path} does not exist (input_file_prefix "
                                f"{options.input_file_prefix!r}, subset {subset!r})")
    tasks = _read_json(path)
    if not isinstance(tasks, dict):
        raise DataFormatError(f"{path}: expected an object mapping task ids to tasks")
    for name, task in tasks.items():
        if not isinstance(task, dict) or not isinstance(task.get("test"), list) \
                or not all(isinstance(example, dict) for example in task["test"]):
            raise DataFormatError(f"{path}: task {name}: expected an object with a 'test' list of examples")
    solutions_path = options.solutions_path(subset)
    if not solutions_path.is_file():  # the authors' script fills unknown outputs with [[0]]
        for task in tasks.values():
            for example in task["test"]:
                example.setdefault("output", [[0]])
        return tasks, False
    solutions = _read_json(solutions_path)
    if not isinstance(solutions, dict):
        raise DataFormatError(f"{solutions_path}: expected an object mapping task ids to lists of grids")
    for name, task in tasks.items():
        outputs = solutions.get(name)
        if not isinstance(outputs, list) or len(outputs) != len(task["test"]):
            found = "no entry" if outputs is None else f"{len(outputs) if isinstance(outputs, list) else outputs!r}"
            raise DataFormatError(f"{solutions_path}: task {name}: expected a list of {len(task['test'])} "
                                  f"output grids, found {found}")
        for example, output in zip(task["test"], outputs):
            example["output"] = output
    return tasks, True


def _task_grids(name: str, task: dict[str, Any], dests: dict[str, str], where: Path) -> _TaskGrids:
    """Parse a task's pairs into the splits `dests` maps each example list to, keeping the JSON key order."""
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for role, examples in task.items():
        if role not in dests:
            raise DataFormatError(f"{where}: task {name}: unknown key {role!r} (a task holds 'train' and 'test')")
        if not isinstance(examples, list):
            raise DataFormatError(f"{where}: task {name}: {role!r} must be a list of examples")
        for index, example in enumerate(examples):
            here = f"{where}: task {name}: {role} example {index}"
            if not isinstance(example, dict) or "input" not in example or "output" not in example:
                raise DataFormatError(f"{here}: expected an object with 'input' and 'output'")
            grids = tuple(parse_grid(example[key], f"{here} {key}").astype(np.uint8) for key in ("input", "output"))
            pairs.setdefault(dests[role], []).append(grids)
    return _TaskGrids(name, pairs)


def _draw_variants(task: _TaskGrids, num_aug: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """`(transforms, colour_maps)` of the original and its kept variants, drawn as the authors' script draws."""
    transforms, colour_maps = [0], [IDENTITY_COLOURS]
    if num_aug > 0:
        seen = {task.fingerprint(0, IDENTITY_COLOURS)}
        for _ in range(RETRIES_PER_VARIANT * num_aug):
            k = int(rng.randint(0, 8))
            colours = np.concatenate([IDENTITY_COLOURS[:1], rng.permutation(np.arange(1, 10, dtype=np.uint8))])
            key = task.fingerprint(k, colours)
            if key not in seen:
                seen.add(key)
                transforms.append(k)
                colour_maps.append(colours)
            if len(transforms) > num_aug:
                break
    return np.array(transforms, dtype=np.uint8), np.stack(colour_maps)


def plan_reference_build(options: ReferenceArcOptions, rng: np.random.RandomState,
                         progress: bool = False) -> _Plan:
    """Read the subsets and draw every task's variants (step 1 and 2 of the module docstring)."""
    plan = _Plan(splits={}, test_puzzles={})
    for subset in options.subsets:
        tasks, solved = _load_subset(options, subset)
        if not solved:
            plan.dummy_outputs.append(subset)
        items = list(tasks.items())
        rng.shuffle(items)  # the authors shuffle the list of (id, task) items: n - 1 draws
        is_test_set = subset in options.test_sets
        dests = {"train": "train", "test": "test" if is_test_set else "train"}
        where = options.challenges_path(subset)
        for name, task in tqdm(items, desc=f"augmenting {subset}", unit=" tasks", disable=not progress):
            if is_test_set:
                plan.test_puzzles[name] = task
            grids = _task_grids(name, task, dests, where)
            transforms, colour_maps = _draw_variants(grids, options.num_aug, rng)
            if len(transforms) < options.num_aug + 1:
                plan.short_tasks[name] = len(transforms)
            if not plan.splits:
                # The authors' first task creates the splits in the iteration order of a Python set of its
                # destinations: train then test unless the first subset is a test set, where it depends on
                # PYTHONHASHSEED. Reproduce it: same set, same process hash seed.
                order = [split for split, _ in {("train", SUBSET_NAME), (dests["test"], SUBSET_NAME)}]
                if len(order) > 1:
                    warnings.warn("the first subset is a test set: the authors' split order (and so their ids and "
                                  "translations) then depends on PYTHONHASHSEED; this build used "
                                  f"{order} (run with the same PYTHONHASHSEED as theirs to match)", stacklevel=2)
                plan.splits = {split: [] for split in order}
            for split in dict.fromkeys(dests.values()):
                plan.splits.setdefault(split, []).append(_Group(grids, transforms, colour_maps))
    return plan


def assign_identifiers(plan: _Plan, start: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """`(identifiers, ids per split)`: the names by id (`<blank>` below `start`) and each split's puzzle ids in row
    order (step 3)."""
    names: list[str] = [BLANK_IDENTIFIER] * start
    ids: dict[str, int] = {}
    for groups in plan.splits.values():
        for group in groups:
            for name in group.variant_names():
                if name not in ids:
                    ids[name] = len(names)
                    names.append(name)
    per_split = {
        split: np.array([ids[name] for group in groups for name in group.variant_names()], dtype=np.int32)
        for split, groups in plan.splits.items()
    }
    return names, per_split


class NpyRowWriter:
    """Write a 2-D `.npy` file chunk by chunk to an open binary stream: the header first (the row count is known
    in advance), then the rows.

    The header is numpy's own (`write_array_header_1_0`, as `np.save` writes it), so the file is byte-identical
    to `np.save` of the whole array; pages written go to the page cache, not to this process's memory.
    """

    def __init__(self, stream: BinaryIO, rows: int, width: int, dtype: np.dtype | type = np.uint8) -> None:
        self.stream, self.rows, self.width, self.dtype = stream, rows, width, np.dtype(dtype)
        self.written = 0
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (rows, width)}
        np.lib.format.write_array_header_1_0(stream, header)

    def write(self, block: np.ndarray) -> None:
        if block.ndim != 2 or block.shape[1] != self.width or block.dtype != self.dtype:
            raise ValueError(f"expected rows of {self.width} {self.dtype}, got {block.shape} {block.dtype}")
        if self.written + len(block) > self.rows:
            raise ValueError(f"more rows than the {self.rows} announced in the .npy header")
        self.stream.write(np.ascontiguousarray(block).tobytes())
        self.written += len(block)

    def check_complete(self) -> None:
        if self.written != self.rows:
            raise RuntimeError(f"wrote {self.written} rows, the .npy header says {self.rows}")


def _paint(canvas: np.ndarray, grid: np.ndarray, top: int, left: int) -> None:
    """Lay a grid on a zeroed (30, 30) canvas: colours + 2 at (top, left), EOS below and right (no corner)."""
    rows, cols = grid.shape
    canvas[top:top + rows, left:left + cols] = grid + COLOUR_OFFSET
    if top + rows < CANVAS:
        canvas[top + rows, left:left + cols] = EOS
    if left + cols < CANVAS:
        canvas[top:top + rows, left + cols] = EOS


def _write_split(folder: Path, split: str, groups: list[_Group], identifiers: np.ndarray,
                 num_identifiers: int, rng: np.random.RandomState, progress: bool) -> tuple[int, int, int]:
    """Write one split's arrays and `dataset.json` (step 4); returns (rows, puzzles, groups)."""
    translate = split == "train"
    folder.mkdir(parents=True, exist_ok=True)
    total = sum(len(group.transforms) * len(group.task.pairs.get(split, ())) for group in groups)
    buffers = {key: np.zeros((ROWS_PER_CHUNK, CANVAS, CANVAS), dtype=np.uint8) for key in ("inputs", "labels")}
    puzzle_indices, group_indices, rows, filled = [0], [0], 0, 0
    with open(folder / f"{SUBSET_NAME}__inputs.npy", "wb") as inputs, \
            open(folder / f"{SUBSET_NAME}__labels.npy", "wb") as labels:
        writers = {"inputs": NpyRowWriter(inputs, total, SEQ_LEN), "labels": NpyRowWriter(labels, total, SEQ_LEN)}

        def flush() -> None:
            for key, writer in writers.items():
                writer.write(buffers[key][:filled].reshape(filled, SEQ_LEN))
                buffers[key][:filled] = PAD

        for group in tqdm(groups, desc=f"writing {split} rows", unit=" tasks", disable=not progress):
            count = len(group.task.pairs.get(split, ()))
            if count == 0:
                raise DataFormatError(f"task {group.task.name}: no examples for the {split} split (the authors' "
                                      "script fails here too)")
            for k, colours in zip(group.transforms, group.colour_maps):
                untranslated = rng.randint(0, count)
                for index, (inp, out) in enumerate(group.task.split_pairs(split, int(k), colours)):
                    top = left = 0
                    if translate and index != untranslated:
                        top = rng.randint(0, CANVAS - max(inp.shape[0], out.shape[0]) + 1)
                        left = rng.randint(0, CANVAS - max(inp.shape[1], out.shape[1]) + 1)
                    _paint(buffers["inputs"][filled], inp, top, left)
                    _paint(buffers["labels"][filled], out, top, left)
                    filled += 1
                    if filled == ROWS_PER_CHUNK:
                        flush()
                        filled = 0
                rows += count
                puzzle_indices.append(rows)
            group_indices.append(len(puzzle_indices) - 1)
        flush()
        for writer in writers.values():
            writer.check_complete()
    arrays = {"puzzle_identifiers": identifiers, "puzzle_indices": puzzle_indices, "group_indices": group_indices}
    for key, values in arrays.items():
        np.save(folder / f"{SUBSET_NAME}__{key}.npy", np.asarray(values, dtype=np.int32))
    puzzles = len(puzzle_indices) - 1
    # the authors' PuzzleDatasetMetadata, fields in its declaration order
    metadata = {
        "pad_id": PAD, "ignore_label_id": PAD, "blank_identifier_id": 0, "vocab_size": VOCAB_SIZE,
        "seq_len": SEQ_LEN, "num_puzzle_identifiers": num_identifiers, "total_groups": len(groups),
        "mean_puzzle_examples": rows / puzzles, "total_puzzles": puzzles, "sets": [SUBSET_NAME],
    }
    with open(folder / "dataset.json", "w") as stream:
        json.dump(metadata, stream)
    return rows, puzzles, len(groups)


def write_reference_layout(options: ReferenceArcOptions, out_dir: str | os.PathLike, overwrite: bool = False,
                           progress: bool = False) -> ReferenceLayoutSummary:
    """Build the authors' dataset folder into `out_dir` (atomically: it appears only when complete)."""
    started = time.perf_counter()
    check_target(out_dir, overwrite)
    rng = np.random.RandomState(options.seed)  # the same stream as np.random.seed(seed)
    plan = plan_reference_build(options, rng, progress=progress)
    identifiers, ids_per_split = assign_identifiers(plan, options.puzzle_identifiers_start)
    for subset in plan.dummy_outputs:
        warnings.warn(f"{options.solutions_path(subset)} not found: the {subset} test outputs are [[0]], as in the "
                      "authors' script", stacklevel=2)
    if plan.short_tasks:
        warnings.warn(f"{len(plan.short_tasks)} tasks have fewer than {options.num_aug} distinct augmentations "
                      f"(e.g. {next(iter(plan.short_tasks))}: {next(iter(plan.short_tasks.values())) - 1})",
                      stacklevel=2)
    rows, puzzles, groups = {}, {}, {}
    with atomic_directory(out_dir, overwrite=overwrite) as staging:
        for split, split_groups in plan.splits.items():
            rows[split], puzzles[split], groups[split] = _write_split(
                staging / split, split, split_groups, ids_per_split.pop(split), len(identifiers), rng, progress)
        with open(staging / "identifiers.json", "w") as stream:
            json.dump(identifiers, stream)
        with open(staging / "test_puzzles.json", "w") as stream:
            json.dump(plan.test_puzzles, stream)
    return ReferenceLayoutSummary(Path(out_dir), rows, puzzles, groups, len(identifiers), plan.short_tasks,
                                  plan.dummy_outputs, time.perf_counter() - started)


def build_arc_reference_compatible(
    input_file_prefix: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    subsets: Sequence[str] = PAPER_BUILDS["arc-agi-1"][0],
    test_set_name: str = "evaluation",
    test_set_name2: str = "evaluation2",
    num_aug: int = 1000,
    seed: int = 42,
    puzzle_identifiers_start: int = 1,
    reference_layout_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> tuple[DatasetDict, DatasetMetadata]:
    """Build ARC as the authors' script does and save it in our format at `out_dir`.

    The authors' folder is written first (to `reference_layout_dir` when given, kept; else to a temporary
    sibling of `out_dir`, removed afterwards) and imported with `reference_layout.import_reference_dataset`.
    Returns `(DatasetDict, DatasetMetadata)` as saved; the metadata records the Kaggle files' hashes and
    the options, so the build can be repeated.
    """
    options = ReferenceArcOptions(str(input_file_prefix), tuple(subsets), test_set_name, test_set_name2, seed,
                                  num_aug, puzzle_identifiers_start)
    out_dir = check_target(out_dir, overwrite)
    if reference_layout_dir is not None:
        check_target(reference_layout_dir, overwrite)
    # the importer reads the authors' layout (imported here, when a build runs)
    from .reference_layout import import_reference_dataset

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = None
    if reference_layout_dir is None:
        scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.reference.", suffix=".tmp",
                                        dir=out_dir.parent))
        layout_dir = scratch / "layout"
    else:
        layout_dir = Path(reference_layout_dir)
    try:
        summary = write_reference_layout(options, layout_dir, overwrite=overwrite, progress=progress)
        dataset, metadata = import_reference_dataset(layout_dir, out_dir, overwrite=overwrite)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    imported_source, imported_settings = dict(metadata.source or {}), dict(metadata.build_settings or {})
    if scratch is not None:
        imported_source.pop("path", None)  # the temporary layout folder, now removed
    metadata.source = {
        "kind": "kaggle_json_reference", "name": options.paper_name(), "input_file_prefix": options.input_file_prefix,
        "sha256": _source_hashes(options),
        "builder": "SamsungSAILMontreal/TinyRecursiveModels dataset/build_arc_dataset.py (reproduced)",
        "imported": imported_source,
    }
    metadata.build_settings = {
        **imported_settings, "builder": "arc-reference", **options.to_dict(),
        "reference_layout": None if reference_layout_dir is None else str(Path(reference_layout_dir).resolve()),
        "short_tasks": summary.short_tasks, "dummy_outputs": summary.dummy_outputs,
    }
    metadata.save(out_dir)
    return dataset, metadata


def _source_hashes(options: ReferenceArcOptions) -> dict[str, str]:
    paths = [options.challenges_path(subset) for subset in options.subsets]
    paths += [path for subset in options.subsets if (path := options.solutions_path(subset)).is_file()]
    return {path.name: file_sha256(path) for path in paths}


__all__ = [
    "PAPER_BUILDS",
    "NpyRowWriter",
    "ReferenceArcOptions",
    "ReferenceLayoutSummary",
    "assign_identifiers",
    "build_arc_reference_compatible",
    "dihedral",
    "plan_reference_build",
    "variant_name",
    "write_reference_layout",
]
