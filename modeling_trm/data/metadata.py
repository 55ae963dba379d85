"""What a model must know about a dataset, stored beside the dataset and applied to a config in one call.

A TRM dataset on disk is a `DatasetDict.save_to_disk` folder (`train`/`test` splits with columns
`input_ids`, `labels`, `puzzle_identifiers` and provenance columns) plus `trm_metadata.json`: the
vocabulary, sequence length, grid shape, number of puzzle ids, where the puzzles came from and how
they were built. `DatasetMetadata.apply_to(config)` copies the model-facing fields onto a
`TRMConfig`, so a model is never built with a vocabulary that disagrees with its data.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from datasets import DatasetDict, load_from_disk

from .atomic import atomic_directory, fault_point, write_text_atomically

METADATA_FILENAME = "trm_metadata.json"
FORMAT_VERSION = 1
IGNORE_LABEL_ID = -100  # label of a cell that is not scored (PAD), as in `torch.nn.CrossEntropyLoss`
REQUIRED_SPLITS = ("train", "test")
REQUIRED_COLUMNS = ("input_ids", "labels", "puzzle_identifiers")

# The TRMConfig fields a dataset decides; everything else (width, cycles, ...) is the model's choice.
CONFIG_FIELDS = (
    "task", "vocab_size", "seq_len", "grid_shape", "num_puzzle_identifiers", "id_to_symbol",
    "pad_token_id", "blank_token_id",
)


@dataclass
class DatasetMetadata:
    """Model-facing description and provenance of a built TRM dataset.

    Args:
        task (`str`):
            Puzzle family: `"sudoku"`, `"maze"` or `"arc"` (picks metrics and grid printing).
        id_to_symbol (`list[str]`):
            Symbol of each token id; its length is the vocabulary size.
        seq_len (`int`):
            Tokens per puzzle (`rows * cols`), without the model's puzzle-id prefix.
        grid_shape (`tuple[int, int]`):
            Rows and columns of a puzzle grid.
        pad_token_id (`int`, *optional*, defaults to 0):
            Id of padding; its cells are labelled `-100` (not scored).
        blank_token_id (`int`, *optional*):
            Id of an unknown question cell (Sudoku), or `None` when the task has none.
        num_puzzle_identifiers (`int`, *optional*, defaults to 1):
            Rows the model's puzzle-id table needs: 1 for Sudoku/maze (every row uses id 0), and for
            ARC one per augmented task variant plus id 0 reserved for "unknown".
        source (`dict`, *optional*):
            Where the raw puzzles came from (paths, Hub repo id and revision, file hashes).
        build_settings (`dict`, *optional*):
            How they were turned into rows (seed, subsample size, augmentations, ...), so a build
            can be repeated exactly.
        num_rows (`dict[str, int]`, *optional*):
            Rows per split, as written.
        format_version (`int`, *optional*, defaults to 1):
            Version of this metadata layout.
    """

    task: str
    id_to_symbol: list[str]
    seq_len: int
    grid_shape: tuple[int, int]
    pad_token_id: int = 0
    blank_token_id: int | None = None
    num_puzzle_identifiers: int = 1
    source: dict[str, Any] = field(default_factory=dict)
    build_settings: dict[str, Any] = field(default_factory=dict)
    num_rows: dict[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.id_to_symbol = [str(symbol) for symbol in self.id_to_symbol]
        self.grid_shape = tuple(int(size) for size in self.grid_shape)
        self.validate()

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_symbol)

    def validate(self) -> None:
        """Raise `ValueError` naming the first inconsistent field."""

        def fail(name: str, message: str) -> None:
            raise ValueError(f"DatasetMetadata.{name}: {message}")

        if not isinstance(self.task, str) or not self.task:
            fail("task", f"must be a non-empty string, got {self.task!r}")
        if self.vocab_size < 2:
            fail("id_to_symbol", f"needs at least 2 symbols, got {self.id_to_symbol!r}")
        if len(set(self.id_to_symbol)) != self.vocab_size:
            fail("id_to_symbol", f"symbols must be distinct, got {self.id_to_symbol!r}")
        if len(self.grid_shape) != 2 or min(self.grid_shape) < 1:
            fail("grid_shape", f"must be two positive integers, got {self.grid_shape!r}")
        if self.seq_len != self.grid_shape[0] * self.grid_shape[1]:
            fail("seq_len", f"{self.seq_len} is not rows*cols of grid_shape {self.grid_shape}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            fail("pad_token_id", f"{self.pad_token_id} is outside the vocabulary of {self.vocab_size}")
        if self.blank_token_id is not None and not 0 <= self.blank_token_id < self.vocab_size:
            fail("blank_token_id", f"{self.blank_token_id} is outside the vocabulary of {self.vocab_size}")
        if not isinstance(self.num_puzzle_identifiers, int) or self.num_puzzle_identifiers < 1:
            fail("num_puzzle_identifiers", f"must be a positive integer, got {self.num_puzzle_identifiers!r}")
        if self.format_version != FORMAT_VERSION:
            fail("format_version", f"this code reads version {FORMAT_VERSION}, got {self.format_version!r}")

    def config_overrides(self) -> dict[str, Any]:
        """The `TRMConfig` fields this dataset decides, as keyword arguments (`TRMConfig(**overrides)`)."""
        return {
            "task": self.task,
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "grid_shape": list(self.grid_shape),
            "num_puzzle_identifiers": self.num_puzzle_identifiers,
            "id_to_symbol": list(self.id_to_symbol),
            "pad_token_id": self.pad_token_id,
            "blank_token_id": self.blank_token_id,
        }

    def apply_to(self, config: Any) -> Any:
        """Set the dataset's fields on a `TRMConfig` and re-validate it; returns the same config.

        If the result is invalid (e.g. `mixer="mlp_t"` with a width that no longer fits), the config is
        restored to its previous values and the `ValueError` is raised.
        """
        overrides = self.config_overrides()
        previous = {name: getattr(config, name) for name in overrides}
        for name, value in overrides.items():
            setattr(config, name, value)
        try:
            config.validate()
        except ValueError:
            for name, value in previous.items():
                setattr(config, name, value)
            raise
        return config

    def check_dataset(self, dataset: DatasetDict) -> None:
        """Raise `ValueError` if `dataset` lacks a split or column, or its rows do not match `seq_len`."""
        if not isinstance(dataset, DatasetDict):
            raise ValueError(f"expected a datasets.DatasetDict, got {type(dataset).__name__}")
        for split in REQUIRED_SPLITS:
            if split not in dataset:
                raise ValueError(f"dataset has no {split!r} split (splits: {sorted(dataset)})")
            missing = [name for name in REQUIRED_COLUMNS if name not in dataset[split].column_names]
            if missing:
                raise ValueError(f"split {split!r} lacks columns {missing} (has {dataset[split].column_names})")
            for name in ("input_ids", "labels"):
                length = getattr(dataset[split].features[name], "length", None)
                if length != self.seq_len:
                    raise ValueError(
                        f"split {split!r} column {name!r} must be a fixed-length sequence of {self.seq_len} "
                        f"tokens, got {dataset[split].features[name]}"
                    )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["grid_shape"] = list(self.grid_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "metadata") -> "DatasetMetadata":
        """Build from `to_dict()` output; `where` names the source in error messages."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown fields {unknown}")
        try:
            return cls(**data)
        except TypeError as error:  # a required field is missing
            raise ValueError(f"{where}: {error}") from None
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None

    def save(self, folder: str | os.PathLike) -> Path:
        """Write `trm_metadata.json` into `folder` (atomically); returns its path."""
        path = Path(folder) / METADATA_FILENAME
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        write_text_atomically(path, text + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "DatasetMetadata":
        """Read `trm_metadata.json` from a dataset folder."""
        path = Path(folder) / METADATA_FILENAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: {folder} is not a TRM dataset folder (build one with `trm data build ...`)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
        return cls.from_dict(data, where=str(path))


def save_trm_dataset(
    dataset: DatasetDict, metadata: DatasetMetadata, out_dir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Save `dataset` and its metadata as one folder, atomically; records the row counts in `metadata.num_rows`.

    Everything is written to a temporary folder beside `out_dir` and renamed into place at the end,
    so an interrupted build never leaves a half-written dataset under the final name.
    """
    metadata.check_dataset(dataset)
    metadata.num_rows = {split: dataset[split].num_rows for split in dataset}
    with atomic_directory(out_dir, overwrite=overwrite) as staging:
        dataset.save_to_disk(str(staging))
        fault_point("dataset-written")
        metadata.save(staging)
    return Path(out_dir)


def load_trm_dataset(path: str | os.PathLike) -> tuple[DatasetDict, DatasetMetadata]:
    """Load a folder written by `save_trm_dataset`: `(DatasetDict, DatasetMetadata)`."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"TRM dataset folder {folder} does not exist")
    metadata = DatasetMetadata.load(folder)
    dataset = load_from_disk(str(folder))
    if not isinstance(dataset, DatasetDict):
        raise ValueError(f"{folder} holds a single Dataset, expected a DatasetDict with 'train' and 'test' splits")
    try:
        metadata.check_dataset(dataset)
    except ValueError as error:
        raise ValueError(f"{folder}: {error}") from None
    return dataset, metadata


__all__ = [
    "CONFIG_FIELDS",
    "DatasetMetadata",
    "IGNORE_LABEL_ID",
    "METADATA_FILENAME",
    "load_trm_dataset",
    "save_trm_dataset",
]
