"""ARC augmentations (dihedral transform + colour permutation), their names, and canvas cropping.

Every augmented ARC task variant is named by the transform that made it, e.g. `"t3_p0921345678"`:
dihedral transform 3 (rot270) and the colour map 0->0, 1->9, 2->2, ... . The name is all an
evaluator needs to map a prediction back to the original task's frame, so it travels with each
example from the builder to the voting in `modeling_trm.metrics.arc_pass_at_k`.

Grids here are 2-D integer arrays of ARC colours 0..9. The model's canvas is 30x30 token ids:
0 PAD, 1 EOS (the row below and the column right of the grid), colours 0..9 as ids 2..11.
Pure numpy on purpose: the data builder, the metrics and the tests all import it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

NUM_COLOURS = 10
ARC_CANVAS_SIZE = 30
ARC_PAD_TOKEN_ID = 0
ARC_EOS_TOKEN_ID = 1
ARC_COLOUR_OFFSET = 2  # token id of colour 0; colour c is token c + 2

# Index k of each name is the `k` of `dihedral_transform`.
DIHEDRAL_NAMES: tuple[str, ...] = (
    "identity",
    "rot90",  # np.rot90(grid, 1): counter-clockwise
    "rot180",
    "rot270",
    "flip_lr",  # mirror left-right (columns reversed)
    "flip_ud",  # mirror up-down (rows reversed)
    "transpose",  # reflect over the main diagonal
    "anti_transpose",  # reflect over the anti-diagonal
)
# The rotations by 90 and 270 undo each other; every reflection undoes itself.
_DIHEDRAL_INVERSE: tuple[int, ...] = (0, 3, 2, 1, 4, 5, 6, 7)

_NAME_PATTERN = re.compile(r"t([0-7])_p([0-9]{10})")


def _check_dihedral_index(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) < len(DIHEDRAL_NAMES):
        raise ValueError(f"dihedral transform index must be an integer in 0..7, got {k!r}")
    return int(k)


def _check_grid(grid: np.ndarray, what: str = "grid") -> np.ndarray:
    array = np.asarray(grid)
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D, got shape {array.shape}")
    return array


def dihedral_transform(grid: np.ndarray, k: int) -> np.ndarray:
    """Apply dihedral transform `k` (see `DIHEDRAL_NAMES`) to a 2-D grid; returns a new array."""
    k = _check_dihedral_index(k)
    array = _check_grid(grid)
    if k < 4:
        out = np.rot90(array, k)
    elif k == 4:
        out = array[:, ::-1]
    elif k == 5:
        out = array[::-1, :]
    elif k == 6:
        out = array.T
    else:
        out = array[::-1, ::-1].T  # out[W-1-j, H-1-i] = grid[i, j]
    return np.ascontiguousarray(out)


def inverse_dihedral_transform(grid: np.ndarray, k: int) -> np.ndarray:
    """Undo `dihedral_transform(., k)`."""
    return dihedral_transform(grid, _DIHEDRAL_INVERSE[_check_dihedral_index(k)])


def _check_colour_permutation(colour_perm: Sequence[int] | np.ndarray) -> np.ndarray:
    perm = np.asarray(colour_perm)
    if perm.shape != (NUM_COLOURS,) or not np.issubdtype(perm.dtype, np.integer):
        raise ValueError(f"colour permutation must be {NUM_COLOURS} integers, got {list(np.ravel(perm))!r}")
    if sorted(perm.tolist()) != list(range(NUM_COLOURS)):
        raise ValueError(f"colour permutation must be a permutation of 0..9, got {perm.tolist()}")
    if perm[0] != 0:
        raise ValueError(f"colour permutation must keep colour 0 (background) fixed, got 0 -> {perm[0]}")
    return perm.astype(np.int64)


def make_augmentation_name(dihedral: int, colour_perm: Sequence[int]) -> str:
    """Name of the augmentation `dihedral transform k` + `colour c -> colour_perm[c]`: `"t{k}_p{10 digits}"`."""
    k = _check_dihedral_index(dihedral)
    perm = _check_colour_permutation(colour_perm)
    return f"t{k}_p" + "".join(str(int(c)) for c in perm)


def parse_augmentation_name(name: str) -> tuple[int, np.ndarray]:
    """Inverse of `make_augmentation_name`: `(k, colour_perm)` with `colour_perm` an int64 array of 10."""
    if not isinstance(name, str):
        raise ValueError(f"augmentation name must be a string, got {type(name).__name__}")
    match = _NAME_PATTERN.fullmatch(name)
    if match is None:
        raise ValueError(
            f"malformed augmentation name {name!r}: expected 't<k>_p<10 digits>' with k in 0..7, e.g. 't0_p0123456789'"
        )
    perm_digits = [int(d) for d in match.group(2)]
    try:
        perm = _check_colour_permutation(perm_digits)
    except ValueError as error:
        raise ValueError(f"malformed augmentation name {name!r}: {error}") from None
    return int(match.group(1)), perm


IDENTITY_AUGMENTATION = make_augmentation_name(0, range(NUM_COLOURS))


def _check_colour_grid(grid: np.ndarray) -> np.ndarray:
    array = _check_grid(grid)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"ARC grid must hold integer colours, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= NUM_COLOURS):
        raise ValueError(f"ARC grid colours must be in 0..9, got values in {array.min()}..{array.max()}")
    return array


def apply_arc_augmentation(grid: np.ndarray, name: str) -> np.ndarray:
    """Augment an ARC colour grid: map colour c to perm[c], then apply the dihedral transform."""
    k, perm = parse_augmentation_name(name)
    array = _check_colour_grid(grid)
    return dihedral_transform(perm[array], k)


def invert_arc_augmentation(grid: np.ndarray, name: str) -> np.ndarray:
    """Map a grid in an augmented frame back to the original task's frame (exact inverse of `apply`)."""
    k, perm = parse_augmentation_name(name)
    array = _check_colour_grid(grid)
    inverse_perm = np.argsort(perm)
    return inverse_perm[inverse_dihedral_transform(array, k)]


def arc_grid_to_canvas(grid: np.ndarray, top: int = 0, left: int = 0) -> np.ndarray:
    """Lay a colour grid on a 30x30 canvas of token ids: colours at (top, left), EOS around it, PAD elsewhere.

    EOS fills the row below the grid (its columns plus the corner) and the column right of it,
    where those fall inside the canvas. `crop_arc_prediction` undoes this when `top = left = 0`.
    """
    array = _check_colour_grid(grid)
    rows, cols = array.shape
    fits = 0 <= top and top + rows <= ARC_CANVAS_SIZE and 0 <= left and left + cols <= ARC_CANVAS_SIZE
    if rows < 1 or cols < 1 or not fits:
        raise ValueError(
            f"a {rows}x{cols} grid at ({top}, {left}) does not fit a {ARC_CANVAS_SIZE}x{ARC_CANVAS_SIZE} canvas"
        )
    canvas = np.full((ARC_CANVAS_SIZE, ARC_CANVAS_SIZE), ARC_PAD_TOKEN_ID, dtype=np.int64)
    canvas[top : top + rows, left : left + cols] = array + ARC_COLOUR_OFFSET
    bottom, right = top + rows, left + cols
    if bottom < ARC_CANVAS_SIZE:
        canvas[bottom, left : min(right + 1, ARC_CANVAS_SIZE)] = ARC_EOS_TOKEN_ID
    if right < ARC_CANVAS_SIZE:
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
    "ARC_CANVAS_SIZE",
    "ARC_COLOUR_OFFSET",
    "ARC_EOS_TOKEN_ID",
    "ARC_PAD_TOKEN_ID",
    "DIHEDRAL_NAMES",
    "IDENTITY_AUGMENTATION",
    "NUM_COLOURS",
    "apply_arc_augmentation",
    "arc_grid_to_canvas",
    "crop_arc_prediction",
    "dihedral_transform",
    "inverse_dihedral_transform",
    "invert_arc_augmentation",
    "make_augmentation_name",
    "parse_augmentation_name",
]
