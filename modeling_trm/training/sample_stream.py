"""The rows a training rank sees: a seeded, resumable stream of dataset rows, one fresh permutation per epoch.

`TRMTrainer` refills halted carry slots from it; `CurriculumStream` (`curriculum.py`) narrows its pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

MODEL_COLUMNS = ("input_ids", "labels", "puzzle_identifiers")
IGNORE_LABEL = -100  # an unscored cell


class SampleStream:
    """Seeded, resumable stream of dataset rows for one rank: a fresh permutation every epoch."""

    def __init__(self, dataset: Any, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if len(dataset) < world_size:
            raise ValueError(f"the training set has {len(dataset)} rows, fewer than {world_size} processes")
        missing = [c for c in MODEL_COLUMNS if c not in dataset.column_names]
        if missing:
            raise ValueError(f"the training set lacks columns {missing}; it has {dataset.column_names}")
        self.dataset = dataset.with_format("torch", columns=list(MODEL_COLUMNS))
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        permutation = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.dataset))
        usable = len(permutation) - len(permutation) % self.world_size  # every rank gets as many rows
        return permutation[:usable][self.rank::self.world_size]

    def take(self, count: int, step: int | None = None) -> dict[str, torch.Tensor]:
        """The next `count` rows; `step` (the optimizer step) matters only to a curriculum."""
        indices: list[int] = []
        while len(indices) < count:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order()
            grab = min(count - len(indices), len(self._order) - self.position)
            indices.extend(self._order[self.position:self.position + grab].tolist())
            self.position += grab
        return gather_rows(self.dataset, indices)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self.seed = state["epoch"], state["position"], state["seed"]
        self._order = self._epoch_order()


def gather_rows(dataset: Any, indices: list[int]) -> dict[str, torch.Tensor]:
    """The model columns of `indices` as int64 tensors, in one Arrow `take`.

    `datasets`' own list indexing slices every row separately; for a batch too big for memory its
    allocator then aborts the whole process (`std::bad_alloc`) instead of raising MemoryError."""
    table = getattr(getattr(dataset, "data", None), "table", None)
    if table is None:  # not an Arrow-backed datasets.Dataset
        rows = dataset[indices]
        return {name: torch.as_tensor(rows[name]).long() for name in MODEL_COLUMNS}
    positions = pa.array(indices, type=pa.int64())
    if dataset._indices is not None:  # a select()/shuffle() view: map to rows of the underlying table
        positions = dataset._indices.column(0).take(positions)
    rows = table.select(list(MODEL_COLUMNS)).take(positions)
    batch = {}
    for name in MODEL_COLUMNS:
        column = rows.column(name).combine_chunks()
        if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) \
                or pa.types.is_large_list(column.type):
            values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(indices), -1)
        else:
            values = column.to_numpy(zero_copy_only=False)
        batch[name] = torch.from_numpy(values.astype(np.int64))
    return batch


def column_ranges(dataset: Any, chunk_rows: int = 65536) -> dict[str, tuple[int, int] | None]:
    """(min, max) of each model column over every row of `dataset`, read once on the host in chunks; for
    `labels` over the scored cells only (-100 left out). None for a column without a value."""
    ranges: dict[str, tuple[int, int] | None] = {name: None for name in MODEL_COLUMNS}
    for start in range(0, len(dataset), chunk_rows):
        rows = gather_rows(dataset, list(range(start, min(len(dataset), start + chunk_rows))))
        for name in MODEL_COLUMNS:
            values = rows[name].numpy()
            if name == "labels":
                values = values[values != IGNORE_LABEL]
            if values.size:
                low, high = int(values.min()), int(values.max())
                old = ranges[name]
                ranges[name] = (low, high) if old is None else (min(old[0], low), max(old[1], high))
    return ranges

