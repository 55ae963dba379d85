"""ARC voting, pass@k and the Kaggle submission, plain and through the `evaluate` module."""

import json
import math
from pathlib import Path

import evaluate
import numpy as np
import pytest

from modeling_trm.data.arc_augment import (
    apply_arc_augmentation,
    arc_grid_to_canvas,
    make_augmentation_name,
)
from modeling_trm.metrics import (
    arc_pass_at_k,
    arc_references_from_labels,
    rank_arc_candidates,
    score_arc_ranking,
    write_arc_submission,
)

METRIC_DIR = Path(__file__).resolve().parents[1] / "eval" / "metrics" / "arc_pass_at_k"
RNG = np.random.default_rng(1)
# One augmentation per dihedral transform, each with its own colour permutation.
AUGMENTATIONS = [make_augmentation_name(k, np.concatenate([[0], 1 + RNG.permutation(9)])) for k in range(8)]

TRUTH = {
    ("t1", 0): np.array([[0, 1, 2], [3, 4, 5]]),
    ("t2", 0): np.array([[7, 7], [8, 9]]),
    ("t2", 1): np.array([[1]]),
    ("t3", 0): np.array([[2, 2, 2]]),  # no predictions at all
    ("t4", 0): np.array([[5, 6], [6, 5], [0, 0]]),
}
WRONG = {key: np.where(grid == grid.flat[0], (grid.flat[0] + 1) % 10, grid) for key, grid in TRUTH.items()}


def row(task, index, aug, grid, q):
    """One prediction: `grid` (task frame) as the model would draw it in variant `aug`."""
    canvas = arc_grid_to_canvas(apply_arc_augmentation(grid, AUGMENTATIONS[aug]))
    return task, index, AUGMENTATIONS[aug], canvas.reshape(-1), q


ROWS = [
    # t1: truth 3 votes (low q), wrong 2 votes (high q): votes decide -> pass@1.
    row("t1", 0, 0, TRUTH["t1", 0], -3.0),
    row("t1", 0, 1, WRONG["t1", 0], 5.0),
    row("t1", 0, 2, TRUTH["t1", 0], -3.0),
    row("t1", 0, 3, WRONG["t1", 0], 5.0),
    row("t1", 0, 4, TRUTH["t1", 0], -3.0),
    # t2 output 0: 2 votes each; mean sigmoid(q) breaks the tie. Wrong: logits 10, -2 (mean sigmoid 0.56,
    # mean logit 4); truth: 1, 1 (0.73, mean logit 1). The truth wins only under mean sigmoid -> pass@1.
    row("t2", 0, 5, WRONG["t2", 0], 10.0),
    row("t2", 0, 6, TRUTH["t2", 0], 1.0),
    row("t2", 0, 7, WRONG["t2", 0], -2.0),
    row("t2", 0, 0, TRUTH["t2", 0], 1.0),
    # t2 output 1: only a wrong grid plus a canvas with no grid (the empty grid, which votes, as the authors') ->
    # never found.
    row("t2", 1, 3, WRONG["t2", 1], 0.0),
    ("t2", 1, AUGMENTATIONS[2], np.zeros(900, dtype=np.int64), 9.0),
    # t4: wrong 3 votes, truth 2 votes -> found at rank 2 only.
    row("t4", 0, 1, WRONG["t4", 0], 0.0),
    row("t4", 0, 2, WRONG["t4", 0], 0.0),
    row("t4", 0, 3, WRONG["t4", 0], 0.0),
    row("t4", 0, 6, TRUTH["t4", 0], 0.0),
    row("t4", 0, 7, TRUTH["t4", 0], 0.0),
]
TASK_IDS, TEST_INDICES, AUGS, CANVASES, Q = (list(column) for column in zip(*ROWS))
# Task scores (pass@1, pass@2): t1 (1, 1), t2 (1/2, 1/2), t3 (0, 0), t4 (0, 1).
EXPECTED_ALL_TASKS = {"pass@1": 1.5 / 4, "pass@2": 2.5 / 4, "pass@5": 2.5 / 4, "pass@1000": 2.5 / 4}


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


def test_ranking_votes_then_mean_sigmoid_q():
    ranked = rank_arc_candidates(TASK_IDS, TEST_INDICES, AUGS, CANVASES, Q)
    t1 = ranked["t1", 0]
    assert [c.votes for c in t1] == [3, 2]
    np.testing.assert_array_equal(t1[0].grid, TRUTH["t1", 0])  # all 3 frames pooled back into one grid
    np.testing.assert_array_equal(t1[1].grid, WRONG["t1", 0])
    t2 = ranked["t2", 0]
    np.testing.assert_array_equal(t2[0].grid, TRUTH["t2", 0])
    assert t2[0].mean_confidence == pytest.approx(sigmoid(1.0))
    assert t2[1].mean_confidence == pytest.approx((sigmoid(10.0) + sigmoid(-2.0)) / 2)
    assert [c.grid.shape for c in ranked["t2", 1]] == [(0, 0), WRONG["t2", 1].shape]  # the empty grid votes
    assert ("t3", 0) not in ranked


def test_pass_at_k_hand_computed_over_all_reference_tasks():
    result = arc_pass_at_k(TASK_IDS, TEST_INDICES, AUGS, CANVASES, Q, TRUTH, ks=(1, 2, 5, 1000))
    assert result == pytest.approx(
        {**EXPECTED_ALL_TASKS, "num_tasks": 4, "num_test_outputs": 5, "num_predictions": 16,
         "num_voting_predictions": 16}
    )
    default = arc_pass_at_k(TASK_IDS, TEST_INDICES, AUGS, CANVASES, Q, TRUTH)
    assert [key for key in default if key.startswith("pass@")] == [f"pass@{k}" for k in (1, 2, 5, 10, 100, 1000)]


def test_references_from_label_canvases_undo_each_augmentation():
    labels = [row(t, i, aug_index, TRUTH[t, i], 0.0)[3] for t, i, aug_index in [("t1", 0, 3), ("t1", 0, 6)]]
    labels = [np.where(label == 0, -100, label) for label in labels]  # labels mark PAD as -100
    refs = arc_references_from_labels(["t1", "t1"], [0, 0], [AUGMENTATIONS[3], AUGMENTATIONS[6]], labels)
    assert list(refs) == [("t1", 0)]
    np.testing.assert_array_equal(refs["t1", 0], TRUTH["t1", 0])
    with pytest.raises(ValueError, match="un-augments to a different grid"):
        arc_references_from_labels(["t1", "t1"], [0, 0], [AUGMENTATIONS[3], AUGMENTATIONS[5]], labels)
    with pytest.raises(ValueError, match="label row 0 .* no grid"):
        arc_references_from_labels(["t1"], [0], [AUGMENTATIONS[0]], [np.full(900, -100)])


def test_submission_is_kaggle_format_and_atomic(tmp_path):
    ranked = rank_arc_candidates(TASK_IDS, TEST_INDICES, AUGS, CANVASES, Q)
    path = tmp_path / "out" / "submission.json"
    written = write_arc_submission(path, ranked, num_test_outputs={"t1": 1, "t2": 2, "t3": 1, "t4": 1})
    loaded = json.loads(path.read_text())
    assert loaded == written
    assert sorted(loaded) == ["t1", "t2", "t3", "t4"]
    assert loaded["t1"] == [{"attempt_1": TRUTH["t1", 0].tolist(), "attempt_2": WRONG["t1", 0].tolist()}]
    # The authors' layout: the empty grid is an attempt, a lone candidate fills both attempts, a test input
    # without predictions has no entry.
    assert loaded["t2"][1] == {"attempt_1": [], "attempt_2": WRONG["t2", 1].tolist()}
    assert loaded["t4"] == [{"attempt_1": WRONG["t4", 0].tolist(), "attempt_2": TRUTH["t4", 0].tolist()}]
    assert loaded["t3"] == []
    single = write_arc_submission(path, {("t9", 0): ranked["t1", 0][:1]})
    assert single == {"t9": [{"attempt_1": TRUTH["t1", 0].tolist(), "attempt_2": TRUTH["t1", 0].tolist()}]}
    assert [p.name for p in path.parent.iterdir()] == ["submission.json"]  # no temporary left behind
    with pytest.raises(ValueError, match="outside num_test_outputs"):
        write_arc_submission(path, ranked, num_test_outputs={"t1": 1})


def test_bad_input_raises():
    with pytest.raises(ValueError, match="differ in length"):
        rank_arc_candidates(TASK_IDS, TEST_INDICES[:-1], AUGS, CANVASES, Q)
    bad_augs = AUGS.copy()
    bad_augs[4] = "t9_p0123456789"
    with pytest.raises(ValueError, match="row 4 .*malformed augmentation name"):
        rank_arc_candidates(TASK_IDS, TEST_INDICES, bad_augs, CANVASES, Q)
    with pytest.raises(ValueError, match="q_halt_logits: row 1 is not finite"):
        rank_arc_candidates(TASK_IDS, TEST_INDICES, AUGS, CANVASES, [0.0, float("nan")] + Q[2:])
    with pytest.raises(ValueError, match="row 0 .*900 tokens"):
        rank_arc_candidates(TASK_IDS[:1], TEST_INDICES[:1], AUGS[:1], [np.zeros(81, dtype=np.int64)], Q[:1])
    ranked = rank_arc_candidates(TASK_IDS, TEST_INDICES, AUGS, CANVASES, Q)
    with pytest.raises(ValueError, match="without a reference"):
        score_arc_ranking(ranked, {("t1", 0): TRUTH["t1", 0]})
    with pytest.raises(ValueError, match="ks must be positive"):
        score_arc_ranking(ranked, TRUTH, ks=(0,))
    with pytest.raises(ValueError, match="colours must be in 0..9"):
        score_arc_ranking(ranked, {**TRUTH, ("t1", 0): np.array([[12]])})


def test_evaluate_module_scores_label_canvases_and_writes_submission(metric, tmp_path):
    truth_canvas = {}
    for task, index, aug, _, _ in ROWS:
        truth_canvas.setdefault((task, index, aug), arc_grid_to_canvas(
            apply_arc_augmentation(TRUTH[task, index], aug)).reshape(-1))
    references = [np.where(c == 0, -100, c) for c in (truth_canvas[t, i, a] for t, i, a, _, _ in ROWS)]
    submission = tmp_path / "submission.json"
    result = metric.compute(
        predictions=CANVASES, references=references, task_ids=TASK_IDS, test_indices=TEST_INDICES,
        augmentations=AUGS, q_halt_logits=Q, ks=[1, 2], submission_path=str(submission),
    )
    # Only outputs that appear in rows are scored (no t3): (1 + 1/2 + 0) / 3 and (1 + 1/2 + 1) / 3.
    assert result == pytest.approx(
        {"pass@1": 1.5 / 3, "pass@2": 2.5 / 3, "num_tasks": 3, "num_test_outputs": 4, "num_predictions": 16,
         "num_voting_predictions": 16}
    )
    assert sorted(json.loads(submission.read_text())) == ["t1", "t2", "t4"]
