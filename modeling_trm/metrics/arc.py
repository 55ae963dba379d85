"""ARC scoring: undo each variant's augmentation, vote across variants, score pass@k, write a submission.

Each ARC test input is run under many augmentations (dihedral transform + colour permutation). A
prediction is cropped from its canvas and mapped back to the task's own frame; identical grids
pool their votes. Candidates are ranked by vote count, then by the mean halting confidence
sigmoid(q_halt) of their voters (the model's own estimate that its answer is right).
pass@k of a task is the fraction of its test outputs whose true grid is among the top k
candidates; the benchmark figure is pass@2 averaged over tasks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.arc_augment import crop_arc_prediction, invert_arc_augmentation, parse_augmentation_name
from ..data.atomic import write_text_atomically
from .token_rows import IGNORE_LABEL_ID

PASS_AT_K = (1, 2, 5, 10, 100, 1000)
SUBMISSION_PLACEHOLDER = [[0]]  # Kaggle needs both attempts; this fills an attempt with no candidate

ArcOutputKey = tuple[str, int]  # (task id, test-output index)


@dataclass
class ArcCandidate:
    """One distinct answer grid (in the task's frame) and the variants that voted for it."""

    grid: np.ndarray  # (rows, cols) colours 0..9
    votes: int
    mean_confidence: float  # mean sigmoid(q_halt) over the voters


def _sigmoid(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * x))  # stable for large |x|


def _grid_key(grid: np.ndarray) -> tuple[tuple[int, int], bytes]:
    return grid.shape, np.ascontiguousarray(grid, dtype=np.int64).tobytes()


def _check_lengths(**fields: Sequence[Any]) -> int:
    lengths = {name: len(values) for name, values in fields.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"ARC prediction fields differ in length: {lengths}")
    return next(iter(lengths.values()))


def _output_key(task_ids: Sequence[str], test_indices: Sequence[int], row: int) -> ArcOutputKey:
    task_id, index = task_ids[row], test_indices[row]
    if not isinstance(task_id, str) or not task_id:
        raise ValueError(f"task_ids: row {row} must be a non-empty string, got {task_id!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"test_indices: row {row} must be a non-negative integer, got {index!r}")
    return task_id, int(index)


def rank_arc_candidates(
    task_ids: Sequence[str],
    test_indices: Sequence[int],
    augmentations: Sequence[str],
    predictions: Sequence[np.ndarray] | np.ndarray,
    q_halt_logits: Sequence[float],
) -> dict[ArcOutputKey, list[ArcCandidate]]:
    """Vote the predictions of every augmented variant into ranked candidates per (task id, test index).

    Args:
        task_ids: Task of each prediction.
        test_indices: Which of the task's test outputs each prediction answers.
        augmentations: Augmentation name of each prediction's variant (`arc_augment.make_augmentation_name`).
        predictions: Predicted canvases of token ids, each `(900,)` or `(30, 30)`.
        q_halt_logits: Halting logit of each prediction.

    Returns:
        Candidates per output, best first: more votes, then higher mean sigmoid(q_halt), then first seen.
        Canvases with no grid (see `crop_arc_prediction`) cast no vote.
    """
    count = _check_lengths(
        task_ids=task_ids, test_indices=test_indices, augmentations=augmentations,
        predictions=predictions, q_halt_logits=q_halt_logits,
    )
    # Per output: grid key -> [grid, votes, sum of confidences]; dicts keep first-seen order for ties.
    pools: dict[ArcOutputKey, dict[Any, list[Any]]] = {}
    for row in range(count):
        key = _output_key(task_ids, test_indices, row)
        q = float(q_halt_logits[row])
        if not math.isfinite(q):
            raise ValueError(f"q_halt_logits: row {row} is not finite ({q})")
        try:
            parse_augmentation_name(augmentations[row])
            grid = crop_arc_prediction(np.asarray(predictions[row]))
        except ValueError as error:
            raise ValueError(f"ARC prediction row {row} (task {key[0]!r}): {error}") from None
        pool = pools.setdefault(key, {})
        if grid is None:
            continue
        grid = invert_arc_augmentation(grid, augmentations[row])
        entry = pool.setdefault(_grid_key(grid), [grid, 0, 0.0])
        entry[1] += 1
        entry[2] += _sigmoid(q)
    ranked = {}
    for key, pool in pools.items():
        candidates = [ArcCandidate(grid, votes, total / votes) for grid, votes, total in pool.values()]
        candidates.sort(key=lambda c: (-c.votes, -c.mean_confidence))  # stable: first seen wins full ties
        ranked[key] = candidates
    return ranked


def score_arc_ranking(
    ranked: Mapping[ArcOutputKey, Sequence[ArcCandidate]],
    references: Mapping[ArcOutputKey, Any],
    ks: Sequence[int] = PASS_AT_K,
) -> dict[str, Any]:
    """pass@k averaged over tasks; each task scores the fraction of its test outputs found in the top k.

    Returns `{"pass@k" for each k, "num_tasks", "num_test_outputs", "num_voting_predictions"}`.
    Every output in `references` counts, with or without predictions; a ranked output that has no
    reference is an error (a wrong task id or index upstream).
    """
    if not references:
        raise ValueError("references: no ARC test outputs to score")
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    unknown = sorted(set(ranked) - set(references))
    if unknown:
        raise ValueError(f"predictions for ARC outputs without a reference: {unknown[:5]}")
    # For each output, the rank (0-based) of the true grid among its candidates, or None.
    hit_rank: dict[ArcOutputKey, int | None] = {}
    for key, reference in references.items():
        truth = _grid_key(_as_colour_grid(reference, f"references[{key!r}]"))
        candidates = ranked.get(key, ())
        hit_rank[key] = next((i for i, c in enumerate(candidates) if _grid_key(c.grid) == truth), None)
    outputs_by_task: dict[str, list[ArcOutputKey]] = {}
    for key in references:
        outputs_by_task.setdefault(key[0], []).append(key)
    result: dict[str, Any] = {}
    for k in ks:
        task_scores = [
            np.mean([hit_rank[key] is not None and hit_rank[key] < k for key in keys])
            for keys in outputs_by_task.values()
        ]
        result[f"pass@{int(k)}"] = float(np.mean(task_scores))
    result["num_tasks"] = len(outputs_by_task)
    result["num_test_outputs"] = len(references)
    result["num_voting_predictions"] = sum(c.votes for candidates in ranked.values() for c in candidates)
    return result


def _as_colour_grid(grid: Any, what: str) -> np.ndarray:
    array = np.asarray(grid)
    if array.ndim != 2 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what}: expected a non-empty 2-D integer grid, got shape {array.shape} dtype {array.dtype}")
    if array.min() < 0 or array.max() > 9:
        raise ValueError(f"{what}: colours must be in 0..9, got {array.min()}..{array.max()}")
    return array


def arc_pass_at_k(
    task_ids: Sequence[str],
    test_indices: Sequence[int],
    augmentations: Sequence[str],
    predictions: Sequence[np.ndarray] | np.ndarray,
    q_halt_logits: Sequence[float],
    references: Mapping[ArcOutputKey, Any],
    ks: Sequence[int] = PASS_AT_K,
) -> dict[str, Any]:
    """Vote, rank and score ARC predictions (see `rank_arc_candidates` and `score_arc_ranking`).

    Args:
        references: True output grid (colours 0..9, the task's own frame) per (task id, test index).

    Returns:
        `{"pass@1", "pass@2", ..., "num_tasks", "num_test_outputs", "num_predictions", "num_voting_predictions"}`.
    """
    ranked = rank_arc_candidates(task_ids, test_indices, augmentations, predictions, q_halt_logits)
    result = score_arc_ranking(ranked, references, ks)
    result["num_predictions"] = len(task_ids)
    return result


def arc_references_from_labels(
    task_ids: Sequence[str],
    test_indices: Sequence[int],
    augmentations: Sequence[str],
    labels: Sequence[np.ndarray] | np.ndarray,
) -> dict[ArcOutputKey, np.ndarray]:
    """True grids per (task id, test index) from the label canvases of augmented variants.

    Each label (token ids, -100 or PAD outside the grid) is cropped and its augmentation undone;
    all variants of one output must agree, which also checks the augmentation names.
    """
    count = _check_lengths(task_ids=task_ids, test_indices=test_indices, augmentations=augmentations, labels=labels)
    references: dict[ArcOutputKey, np.ndarray] = {}
    for row in range(count):
        key = _output_key(task_ids, test_indices, row)
        canvas = np.asarray(labels[row]).copy()
        try:
            canvas[canvas == IGNORE_LABEL_ID] = 0
            grid = crop_arc_prediction(canvas)
            if grid is None:
                raise ValueError("the label canvas holds no grid")
            grid = invert_arc_augmentation(grid, augmentations[row])
        except ValueError as error:
            raise ValueError(f"ARC label row {row} (task {key[0]!r}): {error}") from None
        known = references.setdefault(key, grid)
        if _grid_key(known) != _grid_key(grid):
            raise ValueError(
                f"ARC label row {row}: task {key[0]!r} test output {key[1]} un-augments to a different grid than an "
                f"earlier row ({augmentations[row]!r}); check the augmentation names"
            )
    return references


def write_arc_submission(
    path: str | os.PathLike[str],
    ranked: Mapping[ArcOutputKey, Sequence[ArcCandidate]],
    num_test_outputs: Mapping[str, int] | None = None,
) -> dict[str, list[dict[str, list[list[int]]]]]:
    """Write the top two candidates per test output as a Kaggle ARC `submission.json`, atomically.

    Format: `{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}`, one entry per test output in
    index order. An output with fewer than two candidates gets `[[0]]` for the missing attempts.
    An existing file is replaced.

    Args:
        num_test_outputs: Test outputs per task; defaults to 1 + the highest ranked index of each task.
            Tasks listed here without predictions still get placeholder entries.

    Returns:
        The submission as written.
    """
    counts: dict[str, int] = dict(num_test_outputs or {})
    for task_id, index in ranked:
        if num_test_outputs is not None and index >= counts.get(task_id, 0):
            raise ValueError(f"ranked output {(task_id, index)} is outside num_test_outputs[{task_id!r}]")
        counts[task_id] = max(counts.get(task_id, 0), index + 1)
    submission = {}
    for task_id in sorted(counts):
        entries = []
        for index in range(counts[task_id]):
            candidates = list(ranked.get((task_id, index), ()))[:2]
            attempts = [c.grid.tolist() for c in candidates]
            attempts += [SUBMISSION_PLACEHOLDER] * (2 - len(attempts))
            entries.append({"attempt_1": attempts[0], "attempt_2": attempts[1]})
        submission[task_id] = entries
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(submission))
    return submission
