"""The ARC canvas: a colour grid laid on a fixed canvas of token ids, and the answer grid cut back out.

The model's canvas is 30x30 token ids: 0 PAD, 1 EOS (the row below and the column right of the
grid), colours 0..9 as ids 2..11. The data builder, the metrics and the `grid-reasoning` pipeline
share these functions, so a grid goes in and comes out the same way everywhere.

This file is copied next to saved checkpoints (the pipeline imports it for `trust_remote_code`): it
imports only numpy.
"""

from __future__ import annotations

import numpy as np

NUM_COLOURS = 10
ARC_CANVAS_SIZE = 30
ARC_PAD_TOKEN_ID = 0
ARC_EOS_TOKEN_ID = 1
ARC_COLOUR_OFFSET = 2  # token id of colour 0; colour c is token c + 2

def as_grid(grid: np.ndarray, what: str = "grid") -> np.ndarray:
    array = np.asarray(grid)
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D, got shape {array.shape}")
    return array


def as_colour_grid(grid: np.ndarray) -> np.ndarray:
    array = as_grid(grid)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"ARC grid must hold integer colours, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= NUM_COLOURS):
        raise ValueError(f"ARC grid colours must be in 0..9, got values in {array.min()}..{array.max()}")
    return array


def arc_grid_to_canvas(grid: np.ndarray, top: int = 0, left: int = 0,
                       canvas_shape: tuple[int, int] = (ARC_CANVAS_SIZE, ARC_CANVAS_SIZE)) -> np.ndarray:
    """Lay a colour grid on a canvas of token ids (30x30 unless `canvas_shape` says otherwise): colours
    at (top, left), EOS around it, PAD elsewhere.

    EOS fills the row below the grid (its columns plus the corner) and the column right of it,
    where those fall inside the canvas. `crop_arc_prediction` undoes this when `top = left = 0`.
    """
    array = as_colour_grid(grid)
    rows, cols = array.shape
    height, width = (int(size) for size in canvas_shape)
    fits = 0 <= top and top + rows <= height and 0 <= left and left + cols <= width
    if rows < 1 or cols < 1 or not fits:
        raise ValueError(f"a {rows}x{cols} grid at ({top}, {left}) does not fit a {height}x{width} canvas")
    canvas = np.full((height, width), ARC_PAD_TOKEN_ID, dtype=np.int64)
    canvas[top : top + rows, left : left + cols] = array + ARC_COLOUR_OFFSET
    bottom, right = top + rows, left + cols
    if bottom < height:
        canvas[bottom, left : min(right + 1, width)] = ARC_EOS_TOKEN_ID
    if right < width:
        canvas[top:bottom, right] = ARC_EOS_TOKEN_ID
    return canvas


def crop_arc_prediction(tokens: np.ndarray) -> np.ndarray | None:
    """Cut the answer grid (colours 0..9) out of a predicted canvas of token ids.

    A well-formed canvas holds an H x W block of colour tokens (ids 2..11) in its top-left corner,
    bounded by EOS/PAD. The model's canvas may be malformed (ragged rows, stray PAD inside), so the
    rule is: return the largest-area top-left rectangle whose cells are all colours (ties go to the
    rectangle with fewer rows). On a well-formed canvas this is exactly the grid; on a malformed one
    it is the same lenient crop the reference evaluation uses, so pass@k stays comparable.
    Returns `None` when the top-left cell is not a colour (no grid at all).

    Args:
        tokens: `(900,)` flat canvas, or a 2-D canvas (normally `(30, 30)`), of ids in 0..11.
    """
    canvas = np.asarray(tokens)
    if canvas.ndim == 1:
        if canvas.shape[0] != ARC_CANVAS_SIZE * ARC_CANVAS_SIZE:
            raise ValueError(f"flat ARC canvas must have {ARC_CANVAS_SIZE ** 2} tokens, got {canvas.shape[0]}")
        canvas = canvas.reshape(ARC_CANVAS_SIZE, ARC_CANVAS_SIZE)
    if canvas.ndim != 2:
        raise ValueError(f"ARC canvas must be 1-D (900,) or 2-D, got shape {canvas.shape}")
    if not np.issubdtype(canvas.dtype, np.integer):
        raise ValueError(f"ARC canvas must hold integer token ids, got dtype {canvas.dtype}")
    top = ARC_COLOUR_OFFSET + NUM_COLOURS
    if canvas.size and (canvas.min() < 0 or canvas.max() >= top):
        raise ValueError(f"ARC canvas token ids must be in 0..{top - 1}, got values in {canvas.min()}..{canvas.max()}")

    is_colour = canvas >= ARC_COLOUR_OFFSET
    # Length of the run of colours at the start of each row, then the widest rectangle down to that row.
    not_colour = ~is_colour
    run = np.where(not_colour.any(axis=1), not_colour.argmax(axis=1), canvas.shape[1])
    width = np.minimum.accumulate(run)
    area = width * np.arange(1, canvas.shape[0] + 1)
    if area.size == 0 or area.max() == 0:
        return None
    best = int(area.argmax())  # first maximum: fewer rows on a tie
    rows, cols = best + 1, int(width[best])
    return (canvas[:rows, :cols] - ARC_COLOUR_OFFSET).astype(np.int64)


__all__ = [
    "ARC_CANVAS_SIZE", "ARC_COLOUR_OFFSET", "ARC_EOS_TOKEN_ID", "ARC_PAD_TOKEN_ID", "NUM_COLOURS",
    "arc_grid_to_canvas", "as_colour_grid", "as_grid", "crop_arc_prediction",
]
