"""Cell-level and whole-grid accuracy, the metric every TRM task reports (the paper's "accuracy" is exact)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .token_rows import check_same_shape, exact_rows, scored_mask, token_matrix


def grid_accuracy(
    predictions: Any,
    references: Any,
    inputs: Any = None,
    blank_token_id: int | None = None,
    pad_token_id: int | None = 0,
) -> dict[str, Any]:
    """Exact (whole-grid) and token accuracy of predicted token grids.

    Cells whose reference is PAD or -100 are not scored. With both `inputs` and `blank_token_id`,
    also `blank_accuracy`: accuracy over scored cells that were blank in the input (the cells the
    model had to fill); it is `None` when no such cell exists.

    Args:
        predictions: `(batch, seq)` (or `(batch, rows, cols)`) predicted token ids.
        references: Label token ids of the same shape.
        inputs: Question token ids of the same shape, optional.
        blank_token_id: Id of a blank question cell (Sudoku: 1), optional.
        pad_token_id: Id of padding in the references; `None` scores PAD cells too.

    Returns:
        `{"exact_accuracy", "token_accuracy", "num_examples"}` plus `"blank_accuracy"` when asked for.
    """
    pred = token_matrix("predictions", predictions)
    ref = token_matrix("references", references)
    check_same_shape("predictions", pred, "references", ref)
    scored = scored_mask(ref, pad_token_id)
    correct = (pred == ref) & scored
    result: dict[str, Any] = {
        "exact_accuracy": float(exact_rows(pred, ref, scored).mean()),
        "token_accuracy": float(correct.sum() / scored.sum()),
        "num_examples": int(pred.shape[0]),
    }
    if inputs is not None and blank_token_id is not None:
        question = token_matrix("inputs", inputs)
        check_same_shape("inputs", question, "references", ref)
        blank = scored & (question == blank_token_id)
        result["blank_accuracy"] = float(correct[blank].sum() / blank.sum()) if blank.any() else None
    return result
