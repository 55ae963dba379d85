"""Turning a batch of token sequences (lists, numpy arrays, CPU tensors) into one checked int64 matrix.

Every metric takes batches in whatever form a caller has them: lists of lists from an `evaluate`
Arrow table, a `(batch, seq)` numpy array, or a `(batch, rows, cols)` tensor. This is the one
place that converts them and says clearly which field and row is wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IGNORE_LABEL_ID = -100  # label of a cell that is not scored (the loss's ignore index)


def token_matrix(field: str, values: Any) -> np.ndarray:
    """`values` as an int64 `(batch, seq)` matrix; trailing grid dimensions are flattened.

    Raises `ValueError` naming `field` when it is missing, empty, ragged or not integer.
    """
    if values is None:
        raise ValueError(f"{field}: missing (got None)")
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):  # ragged nested lists
        array = None
    if array is None or array.dtype == object:
        rows = [np.asarray(row) for row in values]
        for index, row in enumerate(rows):
            if row.shape != rows[0].shape:
                raise ValueError(
                    f"{field}: row {index} has shape {row.shape} but row 0 has {rows[0].shape}; "
                    "all sequences in a batch must have the same length"
                )
        array = np.stack(rows)
    if array.ndim >= 1 and array.shape[0] == 0:
        raise ValueError(f"{field}: no rows")
    if array.ndim < 2:
        raise ValueError(f"{field}: expected a batch of token sequences (2-D or more), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{field}: token ids must be integers, got dtype {array.dtype}")
    return array.reshape(array.shape[0], -1).astype(np.int64, copy=False)


def check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Raise `ValueError` unless two token matrices have the same number of rows and tokens."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} has {a.shape[0]} rows but {name_b} has {b.shape[0]}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} rows have {a.shape[1]} tokens but {name_b} rows have {b.shape[1]}")


def scored_cells(references: np.ndarray, pad_token_id: int | None = 0) -> np.ndarray:
    """Cells that count: the reference is neither `IGNORE_LABEL_ID` nor PAD (rows may have none)."""
    mask = references != IGNORE_LABEL_ID
    if pad_token_id is not None:
        mask &= references != pad_token_id
    return mask


def scored_mask(references: np.ndarray, pad_token_id: int | None = 0) -> np.ndarray:
    """`scored_cells`, checked: every row needs at least one scored cell."""
    mask = scored_cells(references, pad_token_id)
    empty_rows = np.flatnonzero(~mask.any(axis=1))
    if empty_rows.size:
        raise ValueError(f"references: row {int(empty_rows[0])} has no scored cells (all PAD or {IGNORE_LABEL_ID})")
    return mask


def exact_rows(predictions: np.ndarray, references: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Per row: every scored cell predicted right."""
    return ((predictions == references) | ~scored).all(axis=1)
