"""ARC augmentations (dihedral transform + colour permutation) and their names.

Every augmented ARC task variant is named by the transform that made it, e.g. `"t3_p0921345678"`:
dihedral transform 3 (rot270) and the colour map 0->0, 1->9, 2->2, ... . The name is all an
evaluator needs to map a prediction back to the original task's frame, so it travels with each
example from the builder to the voting in `modeling_trm.metrics.arc`. The authors name the same
variants `"<task>|||t<k>|||<d0..d9>"` in their identifiers.json; the two functions at the end map between them.

Grids here are 2-D integer arrays of ARC colours 0..9. The model's canvas is 30x30 token ids:
0 PAD, 1 EOS (the row below and the column right of the grid), colours 0..9 as ids 2..11.
Pure numpy on purpose: the data builder, the metrics and the tests all import it. The canvas layout
(`arc_grid_to_canvas`, `crop_arc_prediction`) lives in `modeling_trm.arc_canvas` and is re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..arc_canvas import (
    ARC_CANVAS_SIZE,
    ARC_COLOUR_OFFSET,
    ARC_EOS_TOKEN_ID,
    ARC_PAD_TOKEN_ID,
    NUM_COLOURS,
    arc_grid_to_canvas,
    as_colour_grid,
    as_grid,
    crop_arc_prediction,
)

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


def dihedral_transform(grid: np.ndarray, k: int) -> np.ndarray:
    """Apply dihedral transform `k` (see `DIHEDRAL_NAMES`) to a 2-D grid; returns a new array."""
    k = _check_dihedral_index(k)
    array = as_grid(grid)
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


def apply_arc_augmentation(grid: np.ndarray, name: str) -> np.ndarray:
    """Augment an ARC colour grid: map colour c to perm[c], then apply the dihedral transform."""
    k, perm = parse_augmentation_name(name)
    array = as_colour_grid(grid)
    return dihedral_transform(perm[array], k)


def invert_arc_augmentation(grid: np.ndarray, name: str) -> np.ndarray:
    """Map a grid in an augmented frame back to the original task's frame (exact inverse of `apply`)."""
    k, perm = parse_augmentation_name(name)
    array = as_colour_grid(grid)
    inverse_perm = np.argsort(perm)
    return inverse_perm[inverse_dihedral_transform(array, k)]



# The authors' identifier names (identifiers.json of their ARC builds): "<task>|||t<k>|||<d0..d9>".
REFERENCE_ID_SEPARATOR = "|||"
_REFERENCE_NAME_PATTERN = re.compile(r"t([0-7])\|\|\|([0-9]{10})")


def reference_identifier_to_augmentation(name: str) -> tuple[str, str]:
    """`(task id, augmentation name)` of one of the authors' identifier names.

    `"<task>|||t<k>|||<d0..d9>"` is dihedral transform k after the colour map c -> d_c, the same
    augmentation as our `"t<k>_p<d0..d9>"`; a name without `|||` is the task itself (identity).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"identifier name must be a non-empty string, got {name!r}")
    task, separator, augmentation = name.partition(REFERENCE_ID_SEPARATOR)
    if not separator:
        return name, IDENTITY_AUGMENTATION
    match = _REFERENCE_NAME_PATTERN.fullmatch(augmentation)
    if not task or match is None:
        raise ValueError(f"malformed identifier name {name!r}: expected '<task>|||t<k>|||<10 digits>' with k in 0..7")
    ours = f"t{match.group(1)}_p{match.group(2)}"
    try:
        parse_augmentation_name(ours)  # the digits must be a colour permutation keeping 0
    except ValueError as error:
        raise ValueError(f"malformed identifier name {name!r}: {error}") from None
    return task, ours


def augmentation_to_reference_identifier(task_id: str, augmentation: str) -> str:
    """The authors' identifier name of a task variant; inverse of `reference_identifier_to_augmentation`."""
    if augmentation == IDENTITY_AUGMENTATION:
        return task_id
    k, perm = parse_augmentation_name(augmentation)
    return REFERENCE_ID_SEPARATOR.join((task_id, f"t{k}", "".join(str(int(c)) for c in perm)))

__all__ = [
    "ARC_CANVAS_SIZE",
    "ARC_COLOUR_OFFSET",
    "ARC_EOS_TOKEN_ID",
    "ARC_PAD_TOKEN_ID",
    "DIHEDRAL_NAMES",
    "IDENTITY_AUGMENTATION",
    "NUM_COLOURS",
    "REFERENCE_ID_SEPARATOR",
    "apply_arc_augmentation",
    "augmentation_to_reference_identifier",
    "arc_grid_to_canvas",
    "crop_arc_prediction",
    "dihedral_transform",
    "inverse_dihedral_transform",
    "invert_arc_augmentation",
    "make_augmentation_name",
    "parse_augmentation_name",
    "reference_identifier_to_augmentation",
]
