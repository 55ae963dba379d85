"""ARC scoring, step for step the rule of the authors' evaluator (`evaluators/arc.py` of
SamsungSAILMontreal/TinyRecursiveModels, run by their `pretrain.py` on the test split).

Each ARC test input is run under many augmentations (dihedral transform + colour permutation); each
run gives one predicted canvas and one halting logit q_halt. Given the same predictions, logits and
puzzle ids, these functions give the authors' pass@k and `submission.json`:

1. Crop (`crop_arc_canvas`): the largest-area top-left rectangle of colour tokens (ties: fewer rows).
   A malformed canvas (ragged rows, PAD inside, no EOS) gives whatever that rectangle is; a canvas whose
   top-left cell is not a colour gives the empty 0x0 grid. Every crop, the empty one included, votes.
2. Undo the augmentation: inverse dihedral transform, then the inverse colour map.
3. Vote per test input: identical grids (same shape and cells) pool their votes, and each vote brings
   the confidence sigmoid(q_halt), computed in float64 (`halting_confidence`).
4. Rank by vote count, then by the mean confidence of the voters; full ties keep the order in which
   the grids were first seen (rows in order).
5. pass@k of a task = the fraction of its test inputs whose true grid is among the top k; the figure
   is the mean over all test tasks (a task or input without predictions counts 0). k in 1, 2, 5, 10,
   100, 1000; the paper reports pass@2.
6. `submission.json`: per task, one `{"attempt_1", "attempt_2"}` entry per test input that has
   predictions (the top two; a single candidate fills both attempts).

Rows with the blank puzzle id 0 (named "<blank>"; the authors pad batches with it) cast no vote.
Our rows name each variant by task id, test index and `arc_augment` name (`rank_arc_candidates`);
the authors' by puzzle id into `identifiers.json`, whose names are `<task>|||t<k>|||<colour map>`
(`arc_pass_at_k_from_identifiers` scores those directly, with their `test_puzzles.json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.arc_augment import (
    crop_arc_prediction,
    invert_arc_augmentation,
    reference_identifier_to_augmentation,
)
from ..data.atomic import write_text_atomically
from .token_rows import IGNORE_LABEL_ID

PASS_AT_K = (1, 2, 5, 10, 100, 1000)
SUBMISSION_ATTEMPTS = 2  # Kaggle scores two attempts per test input
BLANK_IDENTIFIER_ID = 0  # the authors' padding id; rows carrying it cast no vote
BLANK_IDENTIFIER_NAME = "<blank>"  # its name in identifiers.json (and any task id we give such rows)

ArcOutputKey = tuple[str, int]  # (task id, test-input index)


@dataclass
class ArcCandidate:
    """One distinct answer grid (in the task's frame) and the variants that voted for it."""

    grid: np.ndarray  # (rows, cols) colours 0..9; (0, 0) for a canvas with no grid
    votes: int
    mean_confidence: float  # mean sigmoid(q_halt) over the voters


# ----------------------------------------------------------------------------- steps 1-4: crop, undo, vote, rank


def crop_arc_canvas(tokens: np.ndarray) -> np.ndarray:
    """The answer grid of a canvas as the authors crop it: `crop_arc_prediction`, or the empty 0x0 grid."""
    grid = crop_arc_prediction(tokens)
    return np.zeros((0, 0), dtype=np.int64) if grid is None else grid


def halting_confidence(q_halt_logits: Sequence[float] | np.ndarray) -> np.ndarray:
    """sigmoid(q_halt) in float64, `1 / (1 + exp(-q))` (0 and 1 at the extremes); a NaN logit is an error."""
    q = np.asarray(q_halt_logits, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(np.isnan(q))
    if bad.size:
        raise ValueError(f"q_halt_logits: row {bad[0]} is not finite (nan)")
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-q))


def _grid_key(grid: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    return tuple(grid.shape), np.ascontiguousarray(grid, dtype=np.int64).tobytes()


def _vote(ballots: Iterable[tuple[np.ndarray, float]]) -> list[ArcCandidate]:
    """Pool `(grid, confidence)` ballots into candidates, best first (votes, then mean confidence)."""
    pool: dict[Any, list[Any]] = {}  # grid key -> [grid, votes, sum of confidences], in first-seen order
    for grid, confidence in ballots:
        entry = pool.setdefault(_grid_key(grid), [grid, 0, 0.0])
        entry[1] += 1
        entry[2] += confidence
    candidates = [ArcCandidate(grid, votes, total / votes) for grid, votes, total in pool.values()]
    candidates.sort(key=lambda c: (c.votes, c.mean_confidence), reverse=True)  # stable: first seen wins ties
    return candidates


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
        task_ids: Task of each prediction; rows of task `"<blank>"` cast no vote.
        test_indices: Which of the task's test inputs each prediction answers.
        augmentations: Augmentation name of each prediction's variant (`arc_augment.make_augmentation_name`).
        predictions: Predicted canvases of token ids, each `(900,)` or `(30, 30)`.
        q_halt_logits: Halting logit of each prediction.

    Returns:
        Candidates per output, best first (module docstring, steps 1-4), outputs in first-seen order.
    """
    count = _check_lengths(
        task_ids=task_ids, test_indices=test_indices, augmentations=augmentations,
        predictions=predictions, q_halt_logits=q_halt_logits,
    )
    confidences = halting_confidence(q_halt_logits)
    ballots: dict[ArcOutputKey, list[tuple[np.ndarray, float]]] = {}
    for row in range(count):
        key = _output_key(task_ids, test_indices, row)
        if key[0] == BLANK_IDENTIFIER_NAME:
            continue
        try:
            grid = invert_arc_augmentation(crop_arc_canvas(np.asarray(predictions[row])), augmentations[row])
        except ValueError as error:
            raise ValueError(f"ARC prediction row {row} (task {key[0]!r}): {error}") from None
        ballots.setdefault(key, []).append((grid, float(confidences[row])))
    return {key: _vote(entries) for key, entries in ballots.items()}


# ----------------------------------------------------------------------------- step 5: pass@k


def score_arc_ranking(
    ranked: Mapping[ArcOutputKey, Sequence[ArcCandidate]],
    references: Mapping[ArcOutputKey, Any],
    ks: Sequence[int] = PASS_AT_K,
) -> dict[str, Any]:
    """pass@k averaged over tasks; each task scores the fraction of its test inputs found in the top k.

    Every output in `references` counts, with or without predictions, and tasks are summed in the
    order they first appear there (the authors sum over `test_puzzles.json` in file order). A ranked
    output that has no reference is an error (a wrong task id or index upstream).

    Returns `{"pass@k" for each k, "num_tasks", "num_test_outputs", "num_voting_predictions"}`.
    """
    if not references:
        raise ValueError("references: no ARC test outputs to score")
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    unknown = [key for key in ranked if key not in references]
    if unknown:
        raise ValueError(f"predictions for ARC outputs without a reference: {sorted(unknown)[:5]}")
    # For each task, the 0-based rank of the true grid among the candidates of each of its outputs (None: absent).
    hit_ranks: dict[str, list[int | None]] = {}
    for key, reference in references.items():
        truth = _grid_key(_as_colour_grid(reference, f"references[{key!r}]"))
        candidates = ranked.get(key, ())
        rank = next((i for i, c in enumerate(candidates) if _grid_key(c.grid) == truth), None)
        hit_ranks.setdefault(key[0], []).append(rank)
    result: dict[str, Any] = {}
    for k in ks:
        total = 0.0
        for ranks in hit_ranks.values():  # a plain running sum, in task order, as the authors add
            total += sum(rank is not None and rank < k for rank in ranks) / len(ranks)
        result[f"pass@{int(k)}"] = total / len(hit_ranks)
    result["num_tasks"] = len(hit_ranks)
    result["num_test_outputs"] = len(references)
    result["num_voting_predictions"] = sum(c.votes for key in references for c in ranked.get(key, ()))
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
        references: True output grid (colours 0..9, the task's own frame) per (task id, test index),
            for every test input of every task to score, e.g. `arc_references_from_test_puzzles`.

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
    all variants of one output must agree, which also checks the augmentation names. Rows of task
    `"<blank>"` are skipped.
    """
    count = _check_lengths(task_ids=task_ids, test_indices=test_indices, augmentations=augmentations, labels=labels)
    references: dict[ArcOutputKey, np.ndarray] = {}
    for row in range(count):
        key = _output_key(task_ids, test_indices, row)
        if key[0] == BLANK_IDENTIFIER_NAME:
            continue
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


# ----------------------------------------------------------------------------- the authors' identifiers


def read_reference_arc_files(data_dir: str | os.PathLike[str]) -> tuple[list[str], dict[str, Any]]:
    """`identifiers.json` (name of each puzzle id) and `test_puzzles.json` of a dataset the authors' builder wrote."""
    folder = Path(data_dir)
    loaded = []
    for name in ("identifiers.json", "test_puzzles.json"):
        try:
            loaded.append(json.loads((folder / name).read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"{folder / name} not found: expected a dataset built by the authors' "
                                    "dataset/build_arc_dataset.py") from None
    names, test_puzzles = loaded
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{folder / 'identifiers.json'}: expected a list of names")
    if not isinstance(test_puzzles, dict):
        raise TypeError(f"{folder / 'test_puzzles.json'}: expected an object of tasks")
    return names, test_puzzles


def arc_references_from_test_puzzles(test_puzzles: Mapping[str, Any]) -> dict[ArcOutputKey, np.ndarray]:
    """True grids per (task id, test index) from `test_puzzles.json` (`{task: {"test": [{"output": grid}]}}`), in file order."""
    references = {}
    for task in test_puzzles:
        for index, pair in enumerate(_test_pairs(test_puzzles, task)):
            references[task, index] = _as_colour_grid(pair.get("output"), f"test_puzzles[{task!r}]['test'][{index}] output")
    return references


def _test_pairs(test_puzzles: Mapping[str, Any], task: str) -> list[Mapping[str, Any]]:
    pairs = test_puzzles[task].get("test") if isinstance(test_puzzles[task], Mapping) else None
    if not isinstance(pairs, list) or not pairs or not all(isinstance(pair, Mapping) for pair in pairs):
        raise ValueError(f"test_puzzles[{task!r}]: expected a 'test' list of {{'input', 'output'}} pairs")
    return pairs


def rank_arc_from_identifiers(
    identifier_names: Sequence[str],
    test_puzzles: Mapping[str, Any],
    puzzle_identifiers: Sequence[int] | np.ndarray,
    inputs: Sequence[np.ndarray] | np.ndarray,
    predictions: Sequence[np.ndarray] | np.ndarray,
    q_halt_logits: Sequence[float],
    blank_identifier_id: int = BLANK_IDENTIFIER_ID,
) -> tuple[dict[ArcOutputKey, list[ArcCandidate]], dict[str, int]]:
    """Ranked candidates per (task, test index) of `test_puzzles`, from rows in the authors' form.

    A row's task and augmentation come from `identifier_names[puzzle_identifiers[row]]`; the test input
    it answers is the one whose grid equals its un-augmented input crop (the authors match on that,
    not on an index). Rows with `blank_identifier_id` cast no vote; rows of tasks or inputs outside
    `test_puzzles` are ignored.

    Returns:
        `(ranked, counts)`: ranked has an entry for each test input with at least one vote, in file
        order; counts gives `num_predictions`, `num_blank_predictions`, `num_unmatched_predictions`.
    """
    count = _check_lengths(puzzle_identifiers=puzzle_identifiers, inputs=inputs, predictions=predictions,
                           q_halt_logits=q_halt_logits)
    confidences = halting_confidence(q_halt_logits)
    ids = np.asarray(puzzle_identifiers).reshape(-1)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"puzzle_identifiers must be integers, got dtype {ids.dtype}")
    parsed: dict[int, tuple[str, str]] = {}
    ballots: dict[tuple[str, Any], list[tuple[np.ndarray, float]]] = {}  # (task, input grid key) -> ballots
    blank = 0
    for row in range(count):
        puzzle_id = int(ids[row])
        if puzzle_id == blank_identifier_id:
            blank += 1
            continue
        if not 0 <= puzzle_id < len(identifier_names):
            raise ValueError(f"puzzle_identifiers: row {row} is {puzzle_id}, outside the {len(identifier_names)} "
                             "identifier names (a different build's ids?)")
        if puzzle_id not in parsed:
            parsed[puzzle_id] = reference_identifier_to_augmentation(identifier_names[puzzle_id])
        task, augmentation = parsed[puzzle_id]
        try:
            question = invert_arc_augmentation(crop_arc_canvas(np.asarray(inputs[row])), augmentation)
            grid = invert_arc_augmentation(crop_arc_canvas(np.asarray(predictions[row])), augmentation)
        except ValueError as error:
            raise ValueError(f"ARC row {row} ({identifier_names[puzzle_id]!r}): {error}") from None
        ballots.setdefault((task, _grid_key(question)), []).append((grid, float(confidences[row])))
    ranked: dict[ArcOutputKey, list[ArcCandidate]] = {}
    matched: set[tuple[str, Any]] = set()
    for task in test_puzzles:
        for index, pair in enumerate(_test_pairs(test_puzzles, task)):
            question = _grid_key(_as_colour_grid(pair.get("input"), f"test_puzzles[{task!r}]['test'][{index}] input"))
            if (task, question) in ballots:
                matched.add((task, question))
                ranked[task, index] = _vote(ballots[task, question])
    unmatched = sum(len(entries) for key, entries in ballots.items() if key not in matched)
    counts = {"num_predictions": count, "num_blank_predictions": blank, "num_unmatched_predictions": unmatched}
    return ranked, counts


def arc_pass_at_k_from_identifiers(
    identifier_names: Sequence[str],
    test_puzzles: Mapping[str, Any],
    puzzle_identifiers: Sequence[int] | np.ndarray,
    inputs: Sequence[np.ndarray] | np.ndarray,
    predictions: Sequence[np.ndarray] | np.ndarray,
    q_halt_logits: Sequence[float],
    ks: Sequence[int] = PASS_AT_K,
    blank_identifier_id: int = BLANK_IDENTIFIER_ID,
    submission_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """pass@k (and optionally `submission.json`) exactly as the authors' `evaluators/arc.py` computes them.

    Args:
        identifier_names: `identifiers.json` of the dataset: the name of each puzzle id.
        test_puzzles: `test_puzzles.json`: `{task: {"test": [{"input": grid, "output": grid}, ...]}}`;
            every task in it counts, in file order.
        puzzle_identifiers, inputs, predictions, q_halt_logits: per row, the puzzle id, input canvas,
            predicted canvas (900 token ids each) and final halting logit, as `pretrain.py` hands them over.
        ks: the k of pass@k.
        blank_identifier_id: the dataset's blank id (`dataset.json`), whose rows cast no vote.
        submission_path: where to write the Kaggle `submission.json` (see `write_arc_submission`).

    Returns:
        `{"pass@k" for each k, "num_tasks", "num_test_outputs", "num_voting_predictions", "num_predictions",
        "num_blank_predictions", "num_unmatched_predictions"}`.
    """
    ranked, counts = rank_arc_from_identifiers(identifier_names, test_puzzles, puzzle_identifiers, inputs,
                                               predictions, q_halt_logits, blank_identifier_id)
    result = score_arc_ranking(ranked, arc_references_from_test_puzzles(test_puzzles), ks)
    result.update(counts)
    if submission_path is not None:
        num_test_outputs = {task: len(_test_pairs(test_puzzles, task)) for task in test_puzzles}
        write_arc_submission(submission_path, ranked, num_test_outputs)
    return result


# ----------------------------------------------------------------------------- step 6: submission.json


def arc_submission(
    ranked: Mapping[ArcOutputKey, Sequence[ArcCandidate]],
    num_test_outputs: Mapping[str, int] | None = None,
) -> dict[str, list[dict[str, list[list[int]]]]]:
    """The Kaggle submission of ranked candidates, in the authors' layout (see `write_arc_submission`)."""
    counts: dict[str, int] = dict(num_test_outputs or {})
    for task_id, index in ranked:
        if num_test_outputs is not None and index >= counts.get(task_id, 0):
            raise ValueError(f"ranked output {(task_id, index)} is outside num_test_outputs[{task_id!r}]")
        counts[task_id] = max(counts.get(task_id, 0), index + 1)
    submission = {}
    for task_id, count in counts.items():
        entries = []
        for index in range(count):
            grids = [c.grid.tolist() for c in list(ranked.get((task_id, index), ()))[:SUBMISSION_ATTEMPTS]]
            if not grids:
                continue  # the authors leave out a test input without predictions
            grids += [grids[0]] * (SUBMISSION_ATTEMPTS - len(grids))
            entries.append({f"attempt_{i + 1}": grid for i, grid in enumerate(grids)})
        submission[task_id] = entries
    return submission


def write_arc_submission(
    path: str | os.PathLike[str],
    ranked: Mapping[ArcOutputKey, Sequence[ArcCandidate]],
    num_test_outputs: Mapping[str, int] | None = None,
) -> dict[str, list[dict[str, list[list[int]]]]]:
    """Write the top two candidates per test input as a Kaggle ARC `submission.json`, atomically.

    The authors' layout, byte for byte (`json.dump` defaults): `{task_id: [{"attempt_1": grid,
    "attempt_2": grid}, ...]}` with one entry per test input that has candidates, in index order; a
    single candidate fills both attempts; a test input without candidates gets no entry (so Kaggle
    would reject the file: evaluate every test input). An existing file is replaced.

    Args:
        num_test_outputs: Test inputs per task, in the order the tasks should appear (the authors
            follow `test_puzzles.json`); tasks listed here without predictions get an empty list.
            Defaults to the tasks of `ranked` in first-seen order, each with 1 + its highest index.

    Returns:
        The submission as written.
    """
    submission = arc_submission(ranked, num_test_outputs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(submission))
    return submission
