"""The authors' dataset folders (`dataset/build_*_dataset.py` of the reference TRM code): import and export.

A folder built by the reference scripts (`data/arc1concept-aug-1000`, `data/sudoku-extreme-1k-aug-1000`, ...):

    identifiers.json                  puzzle id -> name: ["<blank>", "007bbfc7", "007bbfc7|||t3|||0921345678", ...]
    test_puzzles.json                 ARC only: the test tasks as loaded, {task: {"train": [...], "test": [...]}}
    {train,test}/dataset.json         pad_id, ignore_label_id, blank_identifier_id, vocab_size, seq_len,
                                      num_puzzle_identifiers, total_groups, mean_puzzle_examples, total_puzzles, sets
    {train,test}/all__inputs.npy              (rows, seq_len) token ids
    {train,test}/all__labels.npy              (rows, seq_len) token ids; cells equal to ignore_label_id are not scored
    {train,test}/all__puzzle_indices.npy      (puzzles + 1,) first row of each puzzle, then the row count
    {train,test}/all__puzzle_identifiers.npy  (puzzles,) id of each puzzle, an index into identifiers.json
    {train,test}/all__group_indices.npy       (groups + 1,) first puzzle of each group, then the puzzle count

A row is one example, a puzzle a run of rows with one puzzle id (one ARC task variant's examples, or
one Sudoku), a group a run of puzzles (an ARC task and its variants, or a Sudoku and its augmented
copies: the unit the reference trainer samples). `all` is the only "set" their builders write.

`import_reference_dataset` turns such a folder into our dataset folder (`metadata.save_trm_dataset`
layout), one row per example:

- `input_ids` = inputs; `labels` = labels with `ignore_label_id` cells set to -100. The token ids
  are already ours (ARC 0 PAD, 1 EOS, colours + 2; Sudoku 0 PAD, 1 blank, digits + 1; maze 0 PAD,
  `# SGo` -> 1..5), so nothing else changes.
- `puzzle_identifiers` = the row's puzzle's id; `puzzle_index`, `example_index` (position in the
  puzzle; for ARC test rows the task's test-input index) and `group` record the structure.
- ARC: `task_id` and `augmentation` from the puzzle's name. The authors name an augmented variant
  `<task>|||t<k>|||<10 digits>`: dihedral transform k of `dataset/common.py` applied after the
  colour map `c -> digits[c]`, which is exactly our `arc_augment` name `t<k>_p<10 digits>`;
  an un-augmented `<task>` is `arc_augment.IDENTITY_AUGMENTATION`.

What the rows cannot hold (each file's `.npy` header, hence its dtype and numpy header padding; the
exact `dataset.json`, `identifiers.json` and `test_puzzles.json` bytes; the set name; puzzles without
rows) goes to `reference_layout/` inside our folder, so `export_reference_dataset` writes the
authors' files back byte for byte. Arrays are read and converted in chunks with plain file reads, and
each chunk's rows go straight into the final Arrow shards (`tables.ArrowSplitWriter`); nothing is
memory-mapped or read back, so the peak RSS does not grow with the folder (ARC-AGI-1 x 1000: see
docs/data.md).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, Value, load_from_disk

from ..configuration_trm import ARC_SYMBOLS, MAZE_SYMBOLS, SUDOKU_SYMBOLS
from .arc_augment import (
    IDENTITY_AUGMENTATION,
    REFERENCE_ID_SEPARATOR,
    augmentation_to_reference_identifier,
    crop_arc_prediction,
    reference_identifier_to_augmentation,
)
from .atomic import atomic_directory, check_target
from .errors import DataFormatError
from .metadata import IGNORE_LABEL_ID, DatasetMetadata, load_trm_dataset
from .tables import (
    INPUT_DTYPE,
    LABEL_DTYPE,
    ArrowSplitWriter,
    grid_features,
    write_dataset_dict_json,
)

REFERENCE_FOLDER = "reference_layout"  # inside our dataset folder: what the rows cannot hold
LAYOUT_FILENAME = "layout.json"
LAYOUT_VERSION = 1
SPLITS = ("train", "test")
ARRAY_FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
DATASET_JSON = "dataset.json"
IDENTIFIERS_JSON = "identifiers.json"
TEST_PUZZLES_JSON = "test_puzzles.json"
ROOT_FILES = (IDENTIFIERS_JSON, TEST_PUZZLES_JSON)
# `PuzzleDatasetMetadata` of the reference `dataset/common.py`, in its field order (json.dump keeps it).
DATASET_JSON_FIELDS = ("pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
                       "num_puzzle_identifiers", "total_groups", "mean_puzzle_examples", "total_puzzles", "sets")
# Older (HRM-era) folders lack total_puzzles; the reference loader recomputes it, so it is optional here.
REQUIRED_DATASET_FIELDS = ("pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
                           "num_puzzle_identifiers", "sets")
SET_NAME = "all"  # the only set the reference builders write
BLANK_IDENTIFIER = "<blank>"  # name of id 0 and of ids no puzzle uses
CHUNK_ROWS = 8192  # rows converted at a time: ~22 MB of ARC tokens, whatever the set's size
ARC_CANVAS = 30

# (seq_len, vocab_size) of each benchmark the reference scripts build -> our task, symbols, grid, blank id.
REFERENCE_TASKS: dict[tuple[int, int], tuple[str, list[str], tuple[int, int], int | None]] = {
    (900, 12): ("arc", ARC_SYMBOLS, (30, 30), None),
    (81, 11): ("sudoku", SUDOKU_SYMBOLS, (9, 9), 1),
    (900, 6): ("maze", MAZE_SYMBOLS, (30, 30), None),
}

REFERENCE_PROVENANCE_FEATURES = {
    "puzzle_index": Value("int32"),  # the row's puzzle in its split (reference puzzle_indices)
    "example_index": Value("int32"),  # position of the row in its puzzle
    "group": Value("int32"),  # the puzzle's group in its split (reference group_indices)
}
ARC_REFERENCE_FEATURES = {
    **REFERENCE_PROVENANCE_FEATURES,
    "task_id": Value("string"),
    "augmentation": Value("string"),  # arc_augment name, e.g. "t3_p0921345678"
}


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _NpyFile:
    """One `.npy` file: its header bytes (magic, version, dict, padding) and what they say."""

    path: Path
    header: bytes
    dtype: np.dtype
    shape: tuple[int, ...]

    def load(self) -> np.ndarray:
        return np.load(self.path)

    def row_chunks(self, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) of a 2-D array, `chunk_rows` rows at a time, read into one reused buffer.

        Plain reads rather than `np.load(mmap_mode="r")`: every page of a mapping that is read stays in
        the process's resident set until the mapping goes, so mapping a 6 GB file adds 6 GB to peak RSS.
        """
        rows, width = self.shape
        buffer = np.empty((min(chunk_rows, rows), width), dtype=self.dtype)
        with open(self.path, "rb") as stream:
            stream.seek(len(self.header))
            for start in range(0, rows, chunk_rows):
                chunk = buffer[:min(chunk_rows, rows - start)]
                if stream.readinto(chunk.reshape(-1).view(np.uint8)) != chunk.nbytes:
                    raise DataFormatError(f"{self.path}: the file ended before row {start + len(chunk)} "
                                          "(did it change while being read?)")
                yield start, chunk


def _read_npy_header(path: Path) -> _NpyFile:
    if not path.is_file():
        raise DataFormatError(f"{path}: file is missing")
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(path, "rb") as stream:
            version = np.lib.format.read_magic(stream)
            if version not in readers:
                raise DataFormatError(f"{path}: .npy format version {version} is not supported (1.0 or 2.0)")
            shape, fortran_order, dtype = readers[version](stream)
            offset = stream.tell()
            stream.seek(0)
            header = stream.read(offset)
    except ValueError as error:
        raise DataFormatError(f"{path}: not a readable .npy file ({error})") from None
    if fortran_order:
        raise DataFormatError(f"{path}: Fortran-ordered arrays are not supported (re-save it with np.save)")
    if dtype.kind not in "iu":
        raise DataFormatError(f"{path}: dtype {dtype} is not an integer type")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if path.stat().st_size != expected:
        raise DataFormatError(f"{path}: {path.stat().st_size} bytes, but its header ({dtype}, shape {shape}) "
                              f"describes {expected}")
    return _NpyFile(path, header, dtype, tuple(int(size) for size in shape))


def _read_json_bytes(path: Path) -> tuple[bytes, Any]:
    raw = path.read_bytes()
    try:
        return raw, json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: malformed JSON ({error})") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_dataset_json(path: Path, info: Any) -> None:
    if not isinstance(info, dict):
        raise DataFormatError(f"{path}: expected a JSON object, got {type(info).__name__}")
    missing = [name for name in REQUIRED_DATASET_FIELDS if name not in info]
    if missing:
        raise DataFormatError(f"{path}: missing fields {missing}")
    for name, least in (("pad_id", 0), ("blank_identifier_id", 0), ("vocab_size", 1), ("seq_len", 1),
                        ("num_puzzle_identifiers", 1)):
        if not _is_int(info[name]) or info[name] < least:
            raise DataFormatError(f"{path}: {name} must be an integer >= {least}, got {info[name]!r}")
    if info["ignore_label_id"] is not None and not _is_int(info["ignore_label_id"]):
        raise DataFormatError(f"{path}: ignore_label_id must be an integer or null, got {info['ignore_label_id']!r}")
    sets = info["sets"]
    if not isinstance(sets, list) or len(sets) != 1 or not isinstance(sets[0], str) or not sets[0] \
            or "/" in sets[0] or "\\" in sets[0]:
        raise DataFormatError(f"{path}: sets must name exactly one set (the reference builders write ['all']), "
                              f"got {sets!r}")


def _check_indices(npy: _NpyFile, values: np.ndarray, end: int, what: str) -> None:
    """A (count + 1,) index array: starts at 0, never decreases, ends at `end` (the number of `what`)."""
    if values.ndim != 1 or values.size < 1:
        raise DataFormatError(f"{npy.path}: expected a 1-D array of at least one index, got shape {values.shape}")
    if values[0] != 0 or values[-1] != end:
        raise DataFormatError(f"{npy.path}: must run from 0 to the number of {what} ({end}), "
                              f"got {int(values[0])} .. {int(values[-1])}")
    drops = np.flatnonzero(np.diff(values.astype(np.int64)) < 0)
    if drops.size:
        i = int(drops[0])
        raise DataFormatError(f"{npy.path}: indices are not monotone: entry {i + 1} ({int(values[i + 1])}) "
                              f"is below entry {i} ({int(values[i])})")


@dataclass
class _ReferenceSplit:
    """One split of an authors' folder, checked; inputs/labels stay on disk."""

    folder: Path
    dataset_json: bytes
    info: dict[str, Any]
    files: dict[str, _NpyFile]
    puzzle_indices: np.ndarray
    puzzle_identifiers: np.ndarray
    group_indices: np.ndarray

    @property
    def num_rows(self) -> int:
        return self.files["inputs"].shape[0]

    @property
    def num_puzzles(self) -> int:
        return self.puzzle_identifiers.size

    @property
    def num_groups(self) -> int:
        return self.group_indices.size - 1


def _read_split(folder: Path, num_identifiers: int | None) -> _ReferenceSplit:
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: split folder is missing")
    json_path = folder / DATASET_JSON
    if not json_path.is_file():
        raise DataFormatError(f"{json_path}: file is missing")
    raw, info = _read_json_bytes(json_path)
    _check_dataset_json(json_path, info)
    set_name = info["sets"][0]
    files = {name: _read_npy_header(folder / f"{set_name}__{name}.npy") for name in ARRAY_FIELDS}
    inputs, labels = files["inputs"], files["labels"]
    if len(inputs.shape) != 2 or inputs.shape[1] != info["seq_len"]:
        raise DataFormatError(f"{inputs.path}: expected shape (rows, {info['seq_len']}) (seq_len of {json_path}), "
                              f"got {inputs.shape}")
    if labels.shape != inputs.shape:
        raise DataFormatError(f"{labels.path}: shape {labels.shape} differs from the inputs' {inputs.shape}")
    puzzle_indices = files["puzzle_indices"].load()
    puzzle_identifiers = files["puzzle_identifiers"].load()
    group_indices = files["group_indices"].load()
    _check_indices(files["puzzle_indices"], puzzle_indices, inputs.shape[0], "rows")
    num_puzzles = puzzle_indices.size - 1
    if puzzle_identifiers.shape != (num_puzzles,):
        raise DataFormatError(f"{files['puzzle_identifiers'].path}: expected one id per puzzle, shape ({num_puzzles},) "
                              f"from puzzle_indices, got {puzzle_identifiers.shape}")
    _check_indices(files["group_indices"], group_indices, num_puzzles, "puzzles")
    limit = info["num_puzzle_identifiers"] if num_identifiers is None else min(info["num_puzzle_identifiers"],
                                                                                 num_identifiers)
    bad = np.flatnonzero((puzzle_identifiers < 0) | (puzzle_identifiers >= limit))
    if bad.size:
        p = int(bad[0])
        raise DataFormatError(
            f"{files['puzzle_identifiers'].path}: puzzle {p} has id {int(puzzle_identifiers[p])}, outside 0..{limit - 1} "
            f"(num_puzzle_identifiers {info['num_puzzle_identifiers']}"
            + ("" if num_identifiers is None else f", {num_identifiers} names in {IDENTIFIERS_JSON}") + ")")
    for name, count in (("total_puzzles", num_puzzles), ("total_groups", group_indices.size - 1)):
        if name in info and info[name] != count:
            raise DataFormatError(f"{json_path}: {name} is {info[name]!r}, but the index arrays hold {count}")
    return _ReferenceSplit(folder, raw, info, files, puzzle_indices, puzzle_identifiers, group_indices)


@dataclass
class _ReferenceFolder:
    root: Path
    splits: dict[str, _ReferenceSplit]
    root_files: dict[str, bytes]  # verbatim identifiers.json / test_puzzles.json, where present
    identifiers: list[str] | None
    task: str
    symbols: list[str]
    grid_shape: tuple[int, int]
    blank_token_id: int | None
    ignored_files: list[str] = field(default_factory=list)

    def info(self, name: str) -> Any:
        return self.splits["train"].info[name]


def _read_reference_folder(root: Path) -> _ReferenceFolder:
    if not root.is_dir():
        raise DataFormatError(f"{root}: not a folder (expected the output folder of the reference build scripts)")
    root_files: dict[str, bytes] = {}
    identifiers = None
    if (root / IDENTIFIERS_JSON).is_file():
        root_files[IDENTIFIERS_JSON], identifiers = _read_json_bytes(root / IDENTIFIERS_JSON)
        if not isinstance(identifiers, list) or not all(isinstance(name, str) for name in identifiers):
            raise DataFormatError(f"{root / IDENTIFIERS_JSON}: expected a JSON list of puzzle names")
    if (root / TEST_PUZZLES_JSON).is_file():
        root_files[TEST_PUZZLES_JSON], test_puzzles = _read_json_bytes(root / TEST_PUZZLES_JSON)
        if not isinstance(test_puzzles, dict):
            raise DataFormatError(f"{root / TEST_PUZZLES_JSON}: expected a JSON object mapping task ids to tasks")
    splits = {split: _read_split(root / split, None if identifiers is None else len(identifiers)) for split in SPLITS}
    train, test = splits["train"].info, splits["test"].info
    for name in ("seq_len", "vocab_size", "pad_id", "ignore_label_id"):
        if train[name] != test[name]:
            raise DataFormatError(f"{root}: train/{DATASET_JSON} has {name} {train[name]!r} but test/{DATASET_JSON} "
                                  f"has {test[name]!r}")
    key = (train["seq_len"], train["vocab_size"])
    arc_names = identifiers is not None and any(REFERENCE_ID_SEPARATOR in name for name in identifiers)
    if key not in REFERENCE_TASKS or ((TEST_PUZZLES_JSON in root_files or arc_names) and key != (900, 12)):
        known = ", ".join(f"{task} (seq_len {s}, vocab_size {v})" for (s, v), (task, *_) in REFERENCE_TASKS.items())
        raise DataFormatError(f"{root / 'train' / DATASET_JSON}: seq_len {key[0]} and vocab_size {key[1]} match none "
                              f"of the reference benchmarks ({known})")
    task, symbols, grid_shape, blank = REFERENCE_TASKS[key]
    if train["pad_id"] != 0:
        raise DataFormatError(f"{root / 'train' / DATASET_JSON}: pad_id {train['pad_id']} differs from the {task} "
                              "encoding's PAD id 0")
    if task == "arc" and identifiers is None:
        raise DataFormatError(f"{root / IDENTIFIERS_JSON}: file is missing (ARC rows need their puzzle names)")
    known_files = {*ROOT_FILES, *SPLITS}
    ignored = sorted(path.name for path in root.iterdir() if path.name not in known_files)
    for split, data in splits.items():
        expected = {DATASET_JSON, *(file.path.name for file in data.files.values())}
        ignored += sorted(f"{split}/{path.name}" for path in data.folder.iterdir() if path.name not in expected)
    return _ReferenceFolder(root, splits, root_files, identifiers, task, symbols, grid_shape, blank, ignored)


# ---------------------------------------------------------------------------------------------- import


def import_reference_dataset(
    source: str | os.PathLike, target: str | os.PathLike, overwrite: bool = False
) -> tuple[DatasetDict, DatasetMetadata]:
    """Convert a dataset folder built by the authors' scripts into our dataset folder at `target`, losslessly.

    Columns, label mapping and what is kept beside the rows: see the module docstring. The task
    (`arc`, `sudoku` or `maze`) follows from `seq_len`/`vocab_size` of `dataset.json`. Files, shapes,
    dtypes and index arrays are checked before converting, token values while converting; bad input
    raises `DataFormatError` naming the file and the problem. The output appears only when complete
    (an existing `target` is replaced only with `overwrite`).
    Returns the written dataset and its metadata, as `load_trm_dataset(target)` would.
    """
    source, target = Path(source), check_target(target, overwrite)
    reference = _read_reference_folder(source)
    arc = reference.task == "arc"
    features = grid_features(reference.info("seq_len"), ARC_REFERENCE_FEATURES if arc else REFERENCE_PROVENANCE_FEATURES)
    names = _arc_names(reference) if arc else None
    num_identifiers = max(data.info["num_puzzle_identifiers"] for data in reference.splits.values())
    layout: dict[str, Any] = {"layout_version": LAYOUT_VERSION, "root_files": sorted(reference.root_files),
                              "splits": {}}
    hashes = {name: hashlib.sha256(raw).hexdigest() for name, raw in reference.root_files.items()}
    with atomic_directory(target, overwrite=overwrite) as staging:
        num_rows = {}
        for split, data in reference.splits.items():
            num_rows[split], file_hashes = _convert_split(data, reference.info("ignore_label_id"), names, features,
                                                          staging / split)
            hashes.update({f"{split}/{data.files[name].path.name}": digest for name, digest in file_hashes.items()})
            hashes[f"{split}/{DATASET_JSON}"] = hashlib.sha256(data.dataset_json).hexdigest()
            layout["splits"][split] = _split_layout(data, file_hashes)
        metadata = DatasetMetadata(
            task=reference.task, id_to_symbol=reference.symbols, seq_len=reference.info("seq_len"),
            grid_shape=reference.grid_shape, pad_token_id=reference.info("pad_id"),
            blank_token_id=reference.blank_token_id, num_puzzle_identifiers=num_identifiers,
            source={"kind": "reference_layout", "path": str(source.resolve()), "sha256": hashes,
                    "ignored_files": reference.ignored_files},
            build_settings={"builder": "import-reference", "ignore_label_id": reference.info("ignore_label_id"),
                            "sets": {split: data.info["sets"] for split, data in reference.splits.items()}},
        )
        write_dataset_dict_json(staging, list(reference.splits))
        written = load_from_disk(str(staging))  # maps the shards without reading them
        metadata.check_dataset(written)
        del written  # release the mappings before the folder is renamed
        metadata.num_rows = num_rows
        metadata.save(staging)
        _write_reference_folder(staging / REFERENCE_FOLDER, reference, layout)
    return load_trm_dataset(target)


def _arc_names(reference: _ReferenceFolder) -> tuple[pa.Array, pa.Array]:
    """`task_id` and `augmentation` of every puzzle id, as Arrow string arrays indexed by id."""
    tasks, augmentations = [], []
    for index, name in enumerate(reference.identifiers or []):
        try:
            task, augmentation = reference_identifier_to_augmentation(name)
        except ValueError as error:
            raise DataFormatError(f"{reference.root / IDENTIFIERS_JSON}: entry {index}: {error}") from None
        tasks.append(task)
        augmentations.append(augmentation)
    return pa.array(tasks, pa.string()), pa.array(augmentations, pa.string())


def _check_tokens(values: np.ndarray, allowed: range, extra: int | None, path: Path, start: int) -> None:
    """Every cell in `allowed` (or equal to `extra`); else name the first bad cell."""
    low, high = int(values.min()), int(values.max())
    if low >= allowed.start and high < allowed.stop:
        return
    wide = values.astype(np.int64)
    bad = (wide < allowed.start) | (wide >= allowed.stop)
    if extra is not None:
        bad &= wide != extra
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        also = "" if extra is None else f" or the ignore_label_id {extra}"
        raise DataFormatError(f"{path}: row {start + row} cell {col} is {int(wide[row, col])}, outside the "
                              f"vocabulary 0..{allowed.stop - 1}{also}")


def _convert_split(
    data: _ReferenceSplit, ignore_label_id: int | None, names: tuple[pa.Array, pa.Array] | None,
    features: Features, folder: Path,
) -> tuple[int, dict[str, str]]:
    """Stream one split into our split folder `folder`, chunk by chunk; returns its rows and each file's sha256."""
    vocab = range(data.info["vocab_size"])
    row_puzzle = np.repeat(np.arange(data.num_puzzles, dtype=np.int32), np.diff(data.puzzle_indices))
    puzzle_group = np.repeat(np.arange(data.num_groups, dtype=np.int32), np.diff(data.group_indices))
    digests = {name: hashlib.sha256(npy.header) for name, npy in data.files.items()}
    for name in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
        digests[name].update(np.ascontiguousarray(getattr(data, name)).tobytes())
    schema = features.arrow_schema
    seq_len = data.info["seq_len"]
    chunks = zip(data.files["inputs"].row_chunks(CHUNK_ROWS), data.files["labels"].row_chunks(CHUNK_ROWS))
    with ArrowSplitWriter(folder, features) as writer:
        for (start, x), (_, y) in chunks:
            stop = start + len(x)
            digests["inputs"].update(x)
            digests["labels"].update(y)
            _check_tokens(x, vocab, None, data.files["inputs"].path, start)
            _check_tokens(y, vocab, ignore_label_id, data.files["labels"].path, start)
            ignored = (y == ignore_label_id) if ignore_label_id is not None else None
            y = y.astype(LABEL_DTYPE)  # safe: every other cell is inside the vocabulary
            if ignored is not None:
                y[ignored] = IGNORE_LABEL_ID
            puzzle = row_puzzle[start:stop]
            ids = data.puzzle_identifiers[puzzle].astype(np.int32)
            columns = {
                "input_ids": _grid_array(x.astype(INPUT_DTYPE), seq_len),
                "labels": _grid_array(y, seq_len),
                "puzzle_identifiers": pa.array(ids),
                "puzzle_index": pa.array(puzzle),
                "example_index": pa.array((np.arange(start, stop) - data.puzzle_indices[puzzle]).astype(np.int32)),
                "group": pa.array(puzzle_group[puzzle]),
            }
            if names is not None:
                columns["task_id"], columns["augmentation"] = (table.take(pa.array(ids)) for table in names)
            writer.write(pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema))
        hashes = {name: digest.hexdigest() for name, digest in digests.items()}
        writer.finish(fingerprint=hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:32])
    return writer.num_rows, hashes


def _grid_array(grid: np.ndarray, width: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(grid.reshape(-1)), width)


def _split_layout(data: _ReferenceSplit, hashes: dict[str, str]) -> dict[str, Any]:
    empty = np.flatnonzero(np.diff(data.puzzle_indices) == 0)
    puzzle_group = np.repeat(np.arange(data.num_groups), np.diff(data.group_indices))
    return {
        "set_name": data.info["sets"][0],
        "num_puzzles": data.num_puzzles,
        "num_groups": data.num_groups,
        # puzzles without rows: [puzzle index, puzzle id, group], which no row can record
        "empty_puzzles": [[int(p), int(data.puzzle_identifiers[p]), int(puzzle_group[p])] for p in empty],
        "arrays": {
            name: {"header": base64.b64encode(npy.header).decode("ascii"), "dtype": npy.dtype.str,
                   "shape": list(npy.shape), "sha256": hashes[name]}
            for name, npy in data.files.items()
        },
    }


def _write_reference_folder(folder: Path, reference: _ReferenceFolder, layout: dict[str, Any]) -> None:
    folder.mkdir()
    for name, raw in reference.root_files.items():
        (folder / name).write_bytes(raw)
    for split, data in reference.splits.items():
        (folder / split).mkdir()
        (folder / split / DATASET_JSON).write_bytes(data.dataset_json)
    (folder / LAYOUT_FILENAME).write_text(json.dumps(layout, indent=1) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- export


@dataclass
class _SplitPlan:
    """What `export_reference_dataset` writes for one split besides the token grids."""

    set_name: str
    dataset_json: bytes
    ignore_label_id: int | None
    dtypes: dict[str, np.dtype]
    headers: dict[str, bytes]
    indices: dict[str, np.ndarray]  # puzzle_identifiers, puzzle_indices, group_indices


def export_reference_dataset(dataset: str | os.PathLike, target: str | os.PathLike, overwrite: bool = False) -> None:
    """Write our dataset folder `dataset` in the authors' layout at `target` (see the module docstring).

    An imported dataset (it has `reference_layout/`) is written back byte for byte: the stored `.npy`
    headers, `dataset.json`, `identifiers.json` and `test_puzzles.json`; puzzles and groups from the
    `puzzle_index` and `group` columns; labels of -100 back to the stored `ignore_label_id`.

    Any other dataset (one of our builders) is exported as the reference builders would have written it:
    uint8 grids, int32 indices, set `all`, `pad_id` 0, `ignore_label_id` = the PAD id (-100 labels
    become PAD, so a label equal to PAD is refused as ambiguous), `blank_identifier_id` 0. Structure from
    the columns: a new puzzle starts where `puzzle_index` changes or, without that column, where `group`
    or `puzzle_identifiers` changes and at every row with puzzle id 0 (so each Sudoku or maze row is its
    own puzzle, as theirs are); a new group starts where `group` changes (without it, each puzzle is a
    group). `identifiers.json`: for ARC the names `<task>` / `<task>|||t<k>|||<digits>` from `task_id`
    and `augmentation` (`<blank>` for unused ids), else `<blank>` for each id. ARC `test_puzzles.json`
    is rebuilt from the un-augmented rows of the `evaluation` tasks when the rows carry `subset`,
    `example_role` and the offsets (our ARC builder's columns); an unsolved test gets the dummy output
    `[[0]]`, as the reference builder writes. The output appears only when complete.
    """
    dataset_dir = Path(dataset)
    target = check_target(target, overwrite)
    data, metadata = load_trm_dataset(dataset_dir)
    layout_path = dataset_dir / REFERENCE_FOLDER / LAYOUT_FILENAME
    layout = json.loads(layout_path.read_text(encoding="utf-8")) if layout_path.is_file() else None
    if layout is not None and layout.get("layout_version") != LAYOUT_VERSION:
        raise DataFormatError(f"{layout_path}: layout_version {layout.get('layout_version')!r}, "
                              f"this code reads {LAYOUT_VERSION}")
    plans = {
        split: _imported_plan(data[split], dataset_dir, split, layout) if layout is not None
        else _fresh_plan(data[split], metadata, split)
        for split in SPLITS
    }
    with atomic_directory(target, overwrite=overwrite) as staging:
        for split, plan in plans.items():
            (staging / split).mkdir()
            _write_split(data[split], plan, staging / split, metadata.seq_len, split)
        if layout is not None:
            for name in layout["root_files"]:
                shutil.copyfile(dataset_dir / REFERENCE_FOLDER / name, staging / name)
        else:
            names = _fresh_identifiers(data, metadata)
            (staging / IDENTIFIERS_JSON).write_text(json.dumps(names), encoding="utf-8")
            test_puzzles = _fresh_test_puzzles(data) if metadata.task == "arc" else None
            if test_puzzles is not None:
                (staging / TEST_PUZZLES_JSON).write_text(json.dumps(test_puzzles), encoding="utf-8")


def _column(split: Dataset, name: str) -> np.ndarray:
    return split.data.column(name).to_numpy()


def _structure(
    row_puzzle: np.ndarray, row_group: np.ndarray, ids: np.ndarray, num_puzzles: int, num_groups: int,
    empty_puzzles: list[list[int]], where: str,
) -> dict[str, np.ndarray]:
    """The reference index arrays from each row's puzzle and group (both 0-based, rows in order)."""
    if row_puzzle.size and ((np.diff(row_puzzle) < 0).any() or row_puzzle[-1] >= num_puzzles or row_puzzle[0] < 0):
        raise DataFormatError(f"{where}: rows are not in puzzle order (puzzle_index must not decrease)")
    puzzle_indices = np.searchsorted(row_puzzle, np.arange(num_puzzles + 1), side="left")
    first, filled = puzzle_indices[:-1], np.diff(puzzle_indices) > 0
    puzzle_identifiers = np.zeros(num_puzzles, dtype=np.int64)
    puzzle_group = np.zeros(num_puzzles, dtype=np.int64)
    puzzle_identifiers[filled] = ids[first[filled]]
    puzzle_group[filled] = row_group[first[filled]]
    for puzzle, identifier, group in empty_puzzles:
        puzzle_identifiers[puzzle], puzzle_group[puzzle] = identifier, group
    if (puzzle_identifiers[row_puzzle] != ids).any():
        raise DataFormatError(f"{where}: rows of one puzzle have different puzzle_identifiers")
    if (puzzle_group[row_puzzle] != row_group).any():
        raise DataFormatError(f"{where}: rows of one puzzle lie in different groups")
    if puzzle_group.size and ((np.diff(puzzle_group) < 0).any() or puzzle_group[-1] >= num_groups):
        raise DataFormatError(f"{where}: puzzles are not in group order (group must not decrease)")
    return {"puzzle_identifiers": puzzle_identifiers,
            "puzzle_indices": puzzle_indices,
            "group_indices": np.searchsorted(puzzle_group, np.arange(num_groups + 1), side="left")}


def _imported_plan(split: Dataset, dataset_dir: Path, name: str, layout: dict[str, Any]) -> _SplitPlan:
    saved = layout["splits"][name]
    where = f"{dataset_dir} split {name!r}"
    for column in ("puzzle_index", "group"):
        if column not in split.column_names:
            raise DataFormatError(f"{where}: column {column!r} is missing (it was imported with it)")
    indices = _structure(_column(split, "puzzle_index"), _column(split, "group"), _column(split, "puzzle_identifiers"),
                         saved["num_puzzles"], saved["num_groups"], saved["empty_puzzles"], where)
    headers = {field_name: base64.b64decode(entry["header"]) for field_name, entry in saved["arrays"].items()}
    dtypes = {field_name: np.dtype(entry["dtype"]) for field_name, entry in saved["arrays"].items()}
    shapes = {"inputs": (split.num_rows, *saved["arrays"]["inputs"]["shape"][1:]),
              **{field_name: values.shape for field_name, values in indices.items()}}
    shapes["labels"] = shapes["inputs"]
    for field_name, shape in shapes.items():
        if tuple(saved["arrays"][field_name]["shape"]) != tuple(shape):
            raise DataFormatError(f"{where}: {field_name} would have shape {tuple(shape)}, but it was imported with "
                                  f"{tuple(saved['arrays'][field_name]['shape'])}; the dataset changed since the import")
    raw = (dataset_dir / REFERENCE_FOLDER / name / DATASET_JSON).read_bytes()
    return _SplitPlan(saved["set_name"], raw, json.loads(raw)["ignore_label_id"], dtypes, headers, indices)


def _fresh_plan(split: Dataset, metadata: DatasetMetadata, name: str) -> _SplitPlan:
    ids = _column(split, "puzzle_identifiers")
    names = split.column_names
    group_values = _column(split, "group") if "group" in names else None
    if "puzzle_index" in names:
        puzzle_values = _column(split, "puzzle_index")
        new_puzzle = np.ones(ids.size, dtype=bool)
        new_puzzle[1:] = puzzle_values[1:] != puzzle_values[:-1]
    else:
        new_puzzle = ids == 0
        new_puzzle[1:] |= ids[1:] != ids[:-1]
        if group_values is not None:
            new_puzzle[1:] |= group_values[1:] != group_values[:-1]
        new_puzzle[:1] = True
    row_puzzle = np.cumsum(new_puzzle) - 1
    if group_values is None:
        row_group = row_puzzle
    else:
        new_group = np.ones(ids.size, dtype=bool)
        new_group[1:] = group_values[1:] != group_values[:-1]
        row_group = np.cumsum(new_group) - 1
    num_puzzles = int(row_puzzle[-1]) + 1 if ids.size else 0
    num_groups = int(row_group[-1]) + 1 if ids.size else 0
    indices = _structure(row_puzzle, row_group, ids, num_puzzles, num_groups, [], f"split {name!r}")
    ignore = metadata.pad_token_id
    info = {
        "pad_id": metadata.pad_token_id, "ignore_label_id": ignore, "blank_identifier_id": 0,
        "vocab_size": metadata.vocab_size, "seq_len": metadata.seq_len,
        "num_puzzle_identifiers": metadata.num_puzzle_identifiers, "total_groups": num_groups,
        "mean_puzzle_examples": ids.size / num_puzzles if num_puzzles else 0.0, "total_puzzles": num_puzzles,
        "sets": [SET_NAME],
    }
    dtypes = {"inputs": np.dtype(np.uint8), "labels": np.dtype(np.uint8),
              **{name: np.dtype(np.int32) for name in indices}}
    shapes = {"inputs": (ids.size, metadata.seq_len), "labels": (ids.size, metadata.seq_len),
              **{name: values.shape for name, values in indices.items()}}
    headers = {name: _npy_header(dtypes[name], shapes[name]) for name in dtypes}
    return _SplitPlan(SET_NAME, json.dumps(info).encode("utf-8"), ignore, dtypes, headers, indices)


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The header `np.save` writes for a C-ordered array of this dtype and shape."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _fitting(values: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    limits = np.iinfo(dtype)
    if values.size and (values.min() < limits.min or values.max() > limits.max):
        raise DataFormatError(f"{what}: values {int(values.min())}..{int(values.max())} do not fit {dtype}")
    return values.astype(dtype)


def _write_split(split: Dataset, plan: _SplitPlan, folder: Path, seq_len: int, split_name: str) -> None:
    def path(name: str) -> Path:
        return folder / f"{plan.set_name}__{name}.npy"

    with open(path("inputs"), "wb") as inputs, open(path("labels"), "wb") as labels:
        inputs.write(plan.headers["inputs"])
        labels.write(plan.headers["labels"])
        start = 0
        for batch in split.select_columns(["input_ids", "labels"]).with_format("arrow").iter(batch_size=CHUNK_ROWS):
            x = batch.column("input_ids").combine_chunks().flatten().to_numpy().reshape(-1, seq_len)
            y = batch.column("labels").combine_chunks().flatten().to_numpy().reshape(-1, seq_len)
            where = f"split {split_name!r} rows {start}..{start + len(x) - 1}"
            if plan.ignore_label_id is not None:
                if (y == plan.ignore_label_id).any() and plan.ignore_label_id != IGNORE_LABEL_ID:
                    raise DataFormatError(f"{where}: a label equals ignore_label_id {plan.ignore_label_id}, so the "
                                          "reference loader would not score it")
                y = np.where(y == IGNORE_LABEL_ID, plan.ignore_label_id, y)
            inputs.write(_fitting(x, plan.dtypes["inputs"], f"{where} input_ids").tobytes())
            labels.write(_fitting(y, plan.dtypes["labels"], f"{where} labels").tobytes())
            start += len(x)
    for name, values in plan.indices.items():
        path(name).write_bytes(plan.headers[name] + _fitting(values, plan.dtypes[name], name).tobytes())
    (folder / DATASET_JSON).write_bytes(plan.dataset_json)


def _fresh_identifiers(data: DatasetDict, metadata: DatasetMetadata) -> list[str]:
    names = [BLANK_IDENTIFIER] * metadata.num_puzzle_identifiers
    if metadata.task != "arc":
        return names
    for split_name in SPLITS:
        split = data[split_name]
        missing = [name for name in ("task_id", "augmentation") if name not in split.column_names]
        if missing:
            raise DataFormatError(f"split {split_name!r}: exporting ARC needs the columns {missing}")
        ids = _column(split, "puzzle_identifiers")
        unique, first = np.unique(ids, return_index=True)
        if unique.size and (unique[0] < 0 or unique[-1] >= len(names)):
            raise DataFormatError(f"split {split_name!r}: puzzle ids {int(unique[0])}..{int(unique[-1])} exceed the "
                                  f"{len(names)} ids of the metadata")
        # "task_id\naugmentation" of every row must equal that of the first row with its id
        keys = pc.binary_join_element_wise(split.data.column("task_id"), split.data.column("augmentation"), "\n")
        first_keys = keys.take(pa.array(first))
        if not pc.all(pc.equal(keys, first_keys.take(pa.array(np.searchsorted(unique, ids))))).as_py():
            raise DataFormatError(f"split {split_name!r}: rows with one puzzle id differ in task_id or augmentation")
        for identifier, key in zip(unique.tolist(), first_keys.to_pylist()):
            task, augmentation = key.rsplit("\n", 1)
            try:
                name = augmentation_to_reference_identifier(task, augmentation)
            except ValueError as error:
                raise DataFormatError(f"split {split_name!r}: puzzle id {identifier}: {error}") from None
            if names[identifier] not in (BLANK_IDENTIFIER, name):
                raise DataFormatError(f"puzzle id {identifier} names both {names[identifier]!r} and {name!r}")
            names[identifier] = name
    return names


def _crop(tokens: np.ndarray, top: int, left: int) -> list[list[int]] | None:
    grid = crop_arc_prediction(tokens.reshape(ARC_CANVAS, ARC_CANVAS)[top:, left:])
    return None if grid is None else grid.tolist()


def _fresh_test_puzzles(data: DatasetDict) -> dict[str, Any] | None:
    """The evaluation tasks as the reference builder stores them, from our ARC builder's un-augmented rows;
    None when the rows lack the columns that say which rows those are."""
    needed = ("task_id", "augmentation", "subset", "example_role", "example_index", "row_offset", "col_offset")
    if any(name not in data[split].column_names for split in SPLITS for name in needed):
        return None
    puzzles: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for split_name, role in (("test", "test"), ("train", "train")):
        split = data[split_name]
        table = split.data
        keep = pc.and_(pc.equal(table.column("augmentation"), IDENTITY_AUGMENTATION),
                       pc.and_(pc.equal(table.column("subset"), "evaluation"),
                               pc.equal(table.column("example_role"), role)))
        rows = split.select(np.flatnonzero(keep.to_numpy())).with_format("numpy")
        for row in rows:
            task = str(row["task_id"])
            if split_name == "train" and task not in puzzles:
                continue  # only tasks with test inputs
            top, left = int(row["row_offset"]), int(row["col_offset"])
            labels = np.where(row["labels"] == IGNORE_LABEL_ID, 0, row["labels"])
            output = _crop(labels, top, left)
            example = {"input": _crop(row["input_ids"], top, left), "output": output if output is not None else [[0]]}
            entry = puzzles.setdefault(task, {"train": [], "test": []})[role]
            index = int(row["example_index"])
            entry.extend([None] * (index + 1 - len(entry)))
            entry[index] = example
    return puzzles


__all__ = [
    "REFERENCE_FOLDER",
    "export_reference_dataset",
    "import_reference_dataset",
]
