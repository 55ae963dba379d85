"""Turn numpy columns into a `datasets.Dataset` with explicit features, without a per-row Python loop.

Every builder ends here: token grids are `(rows, seq_len)` integer arrays, provenance columns are
1-D arrays or lists of strings. Going through Arrow directly keeps a million-row Sudoku build to
seconds (`Dataset.from_dict` on nested lists would take minutes).

A split too large to hold in memory (an imported ARC-AGI-1 x 1000 folder: 10 GiB of Arrow) is written
batch by batch with `ArrowSplitWriter` instead, straight into the files `Dataset.save_to_disk` writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features, List, Value, config
from datasets.arrow_writer import ArrowWriter
from datasets.table import InMemoryTable
from datasets.utils.py_utils import asdict, convert_file_size_to_int

INPUT_DTYPE = "int8"  # every vocabulary here has at most 12 ids
LABEL_DTYPE = "int16"  # labels also hold -100 (not scored)


def grid_features(seq_len: int, provenance: Mapping[str, Any]) -> Features:
    """Features of a split: `input_ids`, `labels`, `puzzle_identifiers`, then the provenance columns."""
    return Features(
        {
            "input_ids": List(Value(INPUT_DTYPE), length=seq_len),
            "labels": List(Value(LABEL_DTYPE), length=seq_len),
            "puzzle_identifiers": Value("int32"),
            **provenance,
        }
    )


def dataset_from_columns(columns: Mapping[str, np.ndarray | Sequence[Any]], features: Features) -> Dataset:
    """One split from one set of columns (see `dataset_from_chunks`)."""
    return dataset_from_chunks([columns], features)


def dataset_from_chunks(chunks: Iterable[Mapping[str, np.ndarray | Sequence[Any]]], features: Features) -> Dataset:
    """One split from chunks of columns (all chunks with the columns of `features`, in any order).

    2-D arrays become fixed-length lists, 1-D arrays and lists become scalars; values are cast to
    the feature types, so an out-of-range id fails here rather than wrapping around silently.
    """
    schema = features.arrow_schema
    batches = [_record_batch(chunk, features, schema) for chunk in chunks]
    table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
    # An explicit fingerprint: by default `datasets` hashes an in-memory table by serialising all of
    # it at once, which briefly needs several times the table's memory. Hashing one batch at a time
    # keeps it content-derived, so the same build writes the same `state.json` byte for byte.
    digest = hashlib.sha256(schema.serialize())
    for batch in batches:
        digest.update(batch.serialize())
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=features), fingerprint=digest.hexdigest()[:32])


def _record_batch(chunk: Mapping[str, Any], features: Features, schema: pa.Schema) -> pa.RecordBatch:
    missing = [name for name in features if name not in chunk]
    extra = [name for name in chunk if name not in features]
    if missing or extra:
        raise ValueError(f"columns do not match the features: missing {missing}, unexpected {extra}")
    arrays = []
    for arrow_field in schema:
        values = chunk[arrow_field.name]
        if pa.types.is_fixed_size_list(arrow_field.type):
            grid = np.asarray(values)
            width = arrow_field.type.list_size
            if grid.ndim != 2 or grid.shape[1] != width:
                raise ValueError(f"column {arrow_field.name!r} must have shape (rows, {width}), got {grid.shape}")
            flat = pa.array(np.ascontiguousarray(grid).reshape(-1)).cast(arrow_field.type.value_type, safe=True)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, width))
        else:
            arrays.append(pa.array(values).cast(arrow_field.type, safe=True))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class ArrowSplitWriter:
    """Write one split of a `DatasetDict.save_to_disk` folder batch by batch, in the format `load_from_disk` reads.

    `Dataset.save_to_disk` re-reads its table to write it; for a table in a memory-mapped file every page
    read stays resident, so the peak RSS of a 10 GB split grows by 10 GB. Here each batch goes to disk
    as it is made and nothing is read back. The files are those `save_to_disk` (datasets 5.2) writes:
    `data-0000k-of-0000N.arrow` shards (Arrow IPC streams written by `datasets`' own `ArrowWriter`, each
    about `max_shard_size`), `state.json` and `dataset_info.json`; `tests/test_reference_dataset.py`
    checks the two JSON files byte for byte against `save_to_disk`'s. Use as a context manager and
    call `finish(fingerprint)` after the last batch; leaving the block without it only closes the files.
    """

    def __init__(self, folder: str | os.PathLike, features: Features, max_shard_size: int | str | None = None):
        self.folder = Path(folder)
        self.features = features
        self.max_shard_bytes = convert_file_size_to_int(max_shard_size or config.MAX_SHARD_SIZE)
        self.num_rows = 0
        self._shards: list[Path] = []  # written shards, named before their count is known
        self._writer: ArrowWriter | None = None
        self._shard_bytes = 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows (columns and types of `features`, in order) as one Arrow record batch.

        One batch per call, not `save_to_disk`'s 1,000 rows: opening a split maps its shards and reads
        each batch's header, and every such read keeps ~64 kB of the file resident (the kernel maps
        the pages around a fault), so fewer, larger batches keep the reader's RSS small too.
        """
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if not table.num_rows:
            return
        if self._writer is None:
            self._shards.append(self.folder / f"data-{len(self._shards):05d}.arrow.partial")
            self._writer = ArrowWriter(features=self.features, path=str(self._shards[-1]))
            self._shard_bytes = 0
        self._writer.write_table(table, writer_batch_size=table.num_rows)
        self.num_rows += table.num_rows
        self._shard_bytes += table.nbytes
        if self._shard_bytes >= self.max_shard_bytes:
            self._close_shard()

    def finish(self, fingerprint: str) -> None:
        """Close the last shard, give the shards their final names and write `state.json`, `dataset_info.json`."""
        if self._writer is None and not self._shards:  # no rows: one empty shard (save_to_disk writes none,
            # which load_from_disk then cannot read)
            self._shards.append(self.folder / "data-00000.arrow.partial")
            self._writer = ArrowWriter(features=self.features, path=str(self._shards[-1]))
        self._close_shard()
        names = [f"data-{index:05d}-of-{len(self._shards):05d}.arrow" for index in range(len(self._shards))]
        for shard, name in zip(self._shards, names):
            os.rename(shard, self.folder / name)
        # What `Dataset.save_to_disk` writes for a dataset with no format set and no split name.
        state = {"_data_files": [{"filename": name} for name in names], "_fingerprint": fingerprint,
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
                 "_split": None}
        with open(self.folder / config.DATASET_STATE_JSON_FILENAME, "w", encoding="utf-8") as stream:
            json.dump(state, stream, indent=2, sort_keys=True)
        info = asdict(DatasetInfo(features=self.features))  # datasets' asdict: drops the fields that are None
        with open(self.folder / config.DATASET_INFO_FILENAME, "w", encoding="utf-8") as stream:
            json.dump({key: info[key] for key in sorted(info)}, stream, indent=2)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.finalize()
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_dataset_dict_json(folder: str | os.PathLike, splits: Sequence[str]) -> None:
    """The `dataset_dict.json` that `DatasetDict.save_to_disk` writes beside its split folders."""
    with open(Path(folder) / config.DATASETDICT_JSON_FILENAME, "w", encoding="utf-8") as stream:
        json.dump({"splits": list(splits)}, stream)


__all__ = ["INPUT_DTYPE", "LABEL_DTYPE", "ArrowSplitWriter", "dataset_from_chunks", "dataset_from_columns",
           "grid_features", "write_dataset_dict_json"]
