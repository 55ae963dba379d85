"""ARC augmentation names, dihedral transforms, exact inversion and canvas cropping."""

import numpy as np
import pytest

from modeling_trm.data.arc_augment import (
    DIHEDRAL_NAMES,
    IDENTITY_AUGMENTATION,
    apply_arc_augmentation,
    arc_grid_to_canvas,
    crop_arc_prediction,
    dihedral_transform,
    inverse_dihedral_transform,
    invert_arc_augmentation,
    make_augmentation_name,
    parse_augmentation_name,
)

# 2 x 3 grid with distinct cells, so every transform gives a different array.
GRID = np.array([[1, 2, 3], [4, 5, 6]])


def test_dihedral_transforms_match_their_names():
    expected = {
        0: [[1, 2, 3], [4, 5, 6]],
        1: [[3, 6], [2, 5], [1, 4]],  # rot90 counter-clockwise
        2: [[6, 5, 4], [3, 2, 1]],
        3: [[4, 1], [5, 2], [6, 3]],
        4: [[3, 2, 1], [6, 5, 4]],  # flip left-right
        5: [[4, 5, 6], [1, 2, 3]],  # flip up-down
        6: [[1, 4], [2, 5], [3, 6]],  # transpose
        7: [[6, 3], [5, 2], [4, 1]],  # anti-transpose
    }
    assert len(DIHEDRAL_NAMES) == 8 and DIHEDRAL_NAMES[0] == "identity"
    for k, want in expected.items():
        np.testing.assert_array_equal(dihedral_transform(GRID, k), np.array(want), err_msg=DIHEDRAL_NAMES[k])
        np.testing.assert_array_equal(inverse_dihedral_transform(dihedral_transform(GRID, k), k), GRID)
    # The eight transforms are distinct (the grid has no symmetry).
    outputs = {(dihedral_transform(GRID, k).shape, dihedral_transform(GRID, k).tobytes()) for k in range(8)}
    assert len(outputs) == 8


def test_name_round_trip_and_format():
    perm = [0, 9, 2, 3, 4, 5, 6, 7, 8, 1]
    name = make_augmentation_name(3, perm)
    assert name == "t3_p0923456781"
    k, parsed = parse_augmentation_name(name)
    assert k == 3 and parsed.tolist() == perm
    assert IDENTITY_AUGMENTATION == "t0_p0123456789"


def test_apply_maps_colours_then_transforms():
    grid = np.array([[0, 1], [2, 3]])
    name = make_augmentation_name(4, [0, 2, 1, 3, 4, 5, 6, 7, 8, 9])  # swap 1<->2, flip left-right
    np.testing.assert_array_equal(apply_arc_augmentation(grid, name), np.array([[2, 0], [3, 1]]))


def test_invert_after_apply_is_identity_for_every_transform_and_random_permutations():
    rng = np.random.default_rng(0)
    for trial in range(40):
        grid = rng.integers(0, 10, size=(rng.integers(1, 8), rng.integers(1, 8)))
        perm = np.concatenate([[0], 1 + rng.permutation(9)])
        for k in range(8):
            name = make_augmentation_name(k, perm)
            augmented = apply_arc_augmentation(grid, name)
            if k in (1, 3, 6, 7):
                assert augmented.shape == grid.shape[::-1]
            restored = invert_arc_augmentation(augmented, name)
            assert restored.shape == grid.shape
            np.testing.assert_array_equal(restored, grid, err_msg=f"trial {trial} {name}")


@pytest.mark.parametrize(
    "name",
    ["", "t8_p0123456789", "t0_p012345678", "t0_p01234567890", "t0_p1023456789", "t0_p0123456788",
     "T0_p0123456789", "t0p0123456789", " t0_p0123456789", 7],
)
def test_malformed_names_raise(name):
    with pytest.raises(ValueError, match="augmentation name"):
        parse_augmentation_name(name)


def test_bad_make_arguments_raise():
    with pytest.raises(ValueError, match="0..7"):
        make_augmentation_name(8, range(10))
    with pytest.raises(ValueError, match="fixed"):
        make_augmentation_name(0, [1, 0, 2, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ValueError, match="permutation"):
        make_augmentation_name(0, [0, 1, 1, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ValueError, match="10 integers"):
        make_augmentation_name(0, range(9))


def test_bad_grids_raise():
    with pytest.raises(ValueError, match="2-D"):
        apply_arc_augmentation(np.arange(5), IDENTITY_AUGMENTATION)
    with pytest.raises(ValueError, match="0..9"):
        invert_arc_augmentation(np.array([[10]]), IDENTITY_AUGMENTATION)


def test_grid_to_canvas_layout():
    canvas = arc_grid_to_canvas(np.array([[0, 9], [5, 1]]))
    assert canvas.shape == (30, 30)
    np.testing.assert_array_equal(canvas[:3, :3], [[2, 11, 1], [7, 3, 1], [1, 1, 1]])
    assert (canvas[3:, :] == 0).all() and (canvas[:, 3:] == 0).all()
    shifted = arc_grid_to_canvas(np.array([[4]]), top=28, left=29)  # EOS row only; no room on the right
    np.testing.assert_array_equal(shifted[28:, 29], [6, 1])
    assert shifted.sum() == 7
    assert crop_arc_prediction(shifted) is None  # a translated grid is not at the top-left
    with pytest.raises(ValueError, match="does not fit"):
        arc_grid_to_canvas(np.zeros((3, 3), dtype=np.int64), top=28)


def test_crop_well_formed_canvas_flat_and_2d():
    grid = np.array([[0, 1, 2], [3, 4, 5]])
    canvas = arc_grid_to_canvas(grid)
    np.testing.assert_array_equal(crop_arc_prediction(canvas), grid)
    np.testing.assert_array_equal(crop_arc_prediction(canvas.reshape(-1)), grid)
    full = np.arange(900).reshape(30, 30) % 10
    np.testing.assert_array_equal(crop_arc_prediction(arc_grid_to_canvas(full)), full)


def test_crop_malformed_canvas_takes_largest_colour_rectangle():
    canvas = np.zeros((6, 6), dtype=np.int64)
    canvas[0, :4] = 2  # row 0: 4 colours
    canvas[1, :4] = 3
    canvas[2, :2] = 4  # row 2 is ragged: only 2 colours
    canvas[3, :2] = 5
    canvas[4, :2] = 6
    # Candidates: 1x4, 2x4 = 8, 3x2, 4x2, 5x2 = 10 -> 5 rows x 2 columns.
    np.testing.assert_array_equal(crop_arc_prediction(canvas), canvas[:5, :2] - 2)
    canvas[4, :2] = 0  # now 2x4 = 8 ties 4x2 = 8: fewer rows wins
    np.testing.assert_array_equal(crop_arc_prediction(canvas), canvas[:2, :4] - 2)


def test_crop_returns_none_without_a_grid_and_rejects_bad_canvases():
    canvas = arc_grid_to_canvas(np.array([[1, 2]]))
    canvas[0, 0] = 1  # EOS in the corner
    assert crop_arc_prediction(canvas) is None
    assert crop_arc_prediction(np.zeros(900, dtype=np.int64)) is None
    with pytest.raises(ValueError, match="900"):
        crop_arc_prediction(np.zeros(81, dtype=np.int64))
    with pytest.raises(ValueError, match="0..11"):
        crop_arc_prediction(np.full((30, 30), 12))
    with pytest.raises(ValueError, match="integer"):
        crop_arc_prediction(np.zeros((30, 30), dtype=np.float32))
