"""ARC scoring equals the authors' evaluator (`evaluators/arc.py` of the TRM repository), issue 23 item 6.

`authors_rule` below re-derives their rule as plainly as possible: their crop loop, their
`<task>|||t<k>|||<map>` names and transform numbering, sigmoid in float64 by torch, votes kept
per (task, un-augmented input grid), a stable sort on (votes, mean confidence), pass@k summed per
task over `test_puzzles` in file order. Our functions (rows in the authors' form and in ours), the
`evaluate` module and `trm eval`'s ARC scoring must give the same pass@k and submission.json bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import evaluate
import numpy as np
import pytest
import torch

from modeling_trm.data.arc_augment import (
    arc_grid_to_canvas,
    reference_identifier_to_augmentation,
)
from modeling_trm.inference.evaluation import _arc_metrics
from modeling_trm.metrics.arc import (
    PASS_AT_K,
    arc_pass_at_k,
    arc_pass_at_k_from_identifiers,
    arc_references_from_test_puzzles,
    halting_confidence,
    rank_arc_candidates,
    rank_arc_from_identifiers,
    read_reference_arc_files,
    write_arc_submission,
)

METRIC_DIR = Path(__file__).resolve().parents[1] / "eval" / "metrics" / "arc_pass_at_k"
BLANK = "<blank>"

# The authors' dihedral transforms (dataset/common.py), by id, and the id of each one's inverse.
TRANSFORMS = [lambda a: a, lambda a: np.rot90(a, 1), lambda a: np.rot90(a, 2), lambda a: np.rot90(a, 3),
              np.fliplr, np.flipud, lambda a: a.T, lambda a: np.fliplr(np.rot90(a, 1))]
INVERSE = [0, 3, 2, 1, 4, 5, 6, 7]


def authors_rule(names, test_puzzles, ids, inputs, preds, q_logits, ks=PASS_AT_K, blank_id=0):
    """(pass@k dict, submission dict) by the authors' algorithm, written out as plain loops."""

    def crop(canvas):  # largest top-left rectangle of tokens 2..11; rows scanned down, width only shrinks
        g = np.asarray(canvas).reshape(30, 30)
        best_area, best_rows, best_cols, width = 0, 0, 0, 30
        for r in range(30):
            c = 0
            while c < width and 2 <= g[r, c] <= 11:
                c += 1
            width = c
            if (r + 1) * width > best_area:
                best_area, best_rows, best_cols = (r + 1) * width, r + 1, width
        return (g[:best_rows, :best_cols] - 2).astype(np.uint8)

    def undo(name, grid):
        if "|||" not in name:
            return name, grid
        task, t, colour_map = name.split("|||")
        inverse_map = np.argsort([int(d) for d in colour_map]).astype(np.uint8)
        return task, inverse_map[TRANSFORMS[INVERSE[int(t[1:])]](grid)]

    def key(grid):
        grid = np.asarray(grid, dtype=np.uint8)
        return grid.shape, grid.tobytes()

    confidence = torch.tensor(np.asarray(q_logits, dtype=np.float64)).sigmoid().numpy()
    store = {}  # task -> input key -> [(prediction key, prediction grid, confidence)]
    for i, puzzle_id in enumerate(ids):
        if puzzle_id == blank_id:
            continue
        task, question = undo(names[puzzle_id], crop(inputs[i]))
        _, answer = undo(names[puzzle_id], crop(preds[i]))
        store.setdefault(task, {}).setdefault(key(question), []).append((key(answer), answer, float(confidence[i])))
    totals, submission = [0.0] * len(ks), {}
    for task, puzzle in test_puzzles.items():
        submission[task] = []
        found = [0] * len(ks)
        for pair in puzzle["test"]:
            ballots = store.get(task, {}).get(key(pair["input"]), [])
            if not ballots:
                continue
            stats, grids = {}, {}
            for h, grid, q in ballots:
                stats.setdefault(h, [0, 0.0])
                stats[h][0] += 1
                stats[h][1] += q
                grids[h] = grid
            order = sorted(stats, key=lambda h: (stats[h][0], stats[h][1] / stats[h][0]), reverse=True)
            for j, k in enumerate(ks):
                found[j] += key(pair["output"]) in order[:k]
            first = grids[order[0]].tolist()
            second = grids[order[1]].tolist() if len(order) > 1 else first
            submission[task].append({"attempt_1": first, "attempt_2": second})
        for j in range(len(ks)):
            totals[j] += found[j] / len(puzzle["test"])
    return {f"pass@{k}": totals[j] / len(test_puzzles) for j, k in enumerate(ks)}, submission


# ----------------------------------------------------------------------------- the fixture


def augment(grid, name):
    """The authors' forward augmentation of a task-frame grid: colour map, then dihedral transform."""
    if "|||" not in name:
        return np.asarray(grid)
    _, t, colour_map = name.split("|||")
    return TRANSFORMS[int(t[1:])](np.array([int(d) for d in colour_map])[np.asarray(grid)])


def canvas(grid):
    return arc_grid_to_canvas(np.ascontiguousarray(grid)).reshape(-1)


RNG = np.random.default_rng(23)
MAPS = ["0" + "".join(str(d) for d in 1 + RNG.permutation(9)) for _ in range(40)]


def name(task, k=None, m=0):
    """The authors' identifier name of a variant of `task`: dihedral k after colour map MAPS[m] (None: identity)."""
    return task if k is None else f"{task}|||t{k}|||{MAPS[m]}"


def grid(seed, shape):
    return np.random.default_rng(seed).integers(0, 10, size=shape)


def other(g):
    return (g + 1) % 10


IA, OA = grid(1, (3, 2)), grid(2, (2, 3))
IB0, OB0, IB1, OB1 = grid(3, (2, 2)), grid(4, (3, 1)), grid(5, (4, 4)), grid(6, (2, 5))
IC, OC = grid(7, (3, 3)), grid(8, (3, 3))
ID, OD = grid(9, (1, 2)), grid(10, (5, 5))
IE, OE = grid(11, (2, 3)), grid(12, (1, 4))
IG, OG = grid(13, (6, 2)), grid(14, (2, 2))
TEST_PUZZLES = {  # file order is not sorted order on purpose
    "e0000005": {"train": [], "test": [{"input": IE.tolist(), "output": OE.tolist()}]},
    "a0000001": {"train": [], "test": [{"input": IA.tolist(), "output": OA.tolist()}]},
    "b0000002": {"train": [], "test": [{"input": IB0.tolist(), "output": OB0.tolist()},
                                       {"input": IB1.tolist(), "output": OB1.tolist()}]},
    "c0000003": {"train": [], "test": [{"input": IC.tolist(), "output": OC.tolist()}]},
    "d0000004": {"train": [], "test": [{"input": ID.tolist(), "output": OD.tolist()}]},
    "g0000007": {"train": [], "test": [{"input": IG.tolist(), "output": OG.tolist()}]},
}


def with_pad_inside(c):
    c = c.reshape(30, 30).copy()
    c[1, 1] = 0  # PAD inside the grid: the crop shrinks to the largest rectangle that avoids it
    return c.reshape(-1)


def ragged(c):
    c = c.reshape(30, 30).copy()
    c[1, 2] = 1  # row 1 ends early (EOS): widths 3, 2, 3 -> the 3x2 block
    return c.reshape(-1)


def without_eos(c):
    c = c.reshape(30, 30).copy()
    c[c < 2] = 7  # no EOS, no PAD: the crop is the whole 30x30 canvas
    return c.reshape(-1)


def eos_first(c):
    c = c.reshape(30, 30).copy()
    c[0, 0] = 1  # top-left cell not a colour: the empty grid
    return c.reshape(-1)


def row(nm, question, index, pred, q, truth, blank=False, raw=None):
    """One evaluated row of variant `nm`: its test input and predicted grid (task frame) drawn on the variant's
    canvas (`pred=None`: an all-PAD canvas; `raw` malforms the drawn canvas), its q_halt logit, the true
    output, and whether the row carries the blank puzzle id."""
    if raw is not None:
        drawn = raw(canvas(augment(pred, nm)))
    elif pred is None:
        drawn = np.zeros(900, dtype=np.int64)
    else:
        drawn = canvas(augment(pred, nm))
    return {"name": nm, "input": canvas(augment(question, nm)), "index": index, "pred": drawn, "q": q,
            "truth": truth, "blank": blank}


WE = [np.full((2 + i // 4, 1 + i % 4), 3) for i in range(12)]  # 12 distinct wrong answers for task e (OE is 1x4)
ROWS = [
    # a: truth 3 votes (low q) beats a wrong grid's 2 votes (high q); every dihedral id appears in the file.
    row(name("a0000001"), IA, 0, OA, -1.0, OA),
    row(name("a0000001", 1, 0), IA, 0, OA, -2.0, OA),
    row(name("a0000001", 4, 1), IA, 0, other(OA), 3.0, OA),
    row(name("a0000001", 7, 2), IA, 0, OA, 0.0, OA),
    row(name("a0000001", 5, 3), IA, 0, other(OA), 4.0, OA),
    row(name("a0000001", 3, 4), IA, 0, other(OA), 4.0, OA, blank=True),  # blank id: would tie the votes
    # b, input 0: 2 votes each; mean sigmoid(q) 0.73 (truth) vs 0.56 (wrong), though the wrong grid's mean
    # logit is higher (4 vs 1).
    row(name("b0000002", 2, 5), IB0, 0, other(OB0), 10.0, OB0),
    row(name("b0000002", 6, 6), IB0, 0, OB0, 1.0, OB0),
    row(name("b0000002", 0, 7), IB0, 0, other(OB0), -2.0, OB0),
    row(name("b0000002"), IB0, 0, OB0, 1.0, OB0),
    # b, input 1: one vote each and equal q: the first seen (wrong) ranks first -> pass@1 0, pass@2 1.
    row(name("b0000002", 2, 5), IB1, 1, other(OB1), 0.5, OB1),
    row(name("b0000002", 6, 6), IB1, 1, OB1, 0.5, OB1),
    row(name("b0000002"), IB1, 1, OB1, 9.0, OB1, blank=True),
    row(name("b0000002", 0, 7), IB1, 1, OB1, 9.0, OB1, blank=True),
    # c: invalid crops. Two empty grids (2 votes) first, then by sigmoid(q): ragged 3x2, the whole 30x30
    # canvas, the truth (rank 4 -> pass@5 only), the PAD-inside crop.
    row(name("c0000003", 1, 8), IC, 0, None, 5.0, OC),
    row(name("c0000003", 5, 9), IC, 0, OC, 5.0, OC, raw=eos_first),
    row(name("c0000003", 3, 10), IC, 0, OC, -1.0, OC, raw=with_pad_inside),
    row(name("c0000003", 7, 11), IC, 0, OC, 2.0, OC, raw=ragged),
    row(name("c0000003", 6, 12), IC, 0, OC, 1.0, OC, raw=without_eos),
    row(name("c0000003"), IC, 0, OC, 0.0, OC),
    # d: only a blank row -> scores 0 and gets an empty submission list.
    row(name("d0000004", 2, 13), ID, 0, OD, 3.0, OD, blank=True),
    # e: twelve wrong answers above the truth (rank 12 -> pass@100); q at +-1000 saturates the sigmoid.
    *[row(name("e0000005", i % 8, 14 + i), IE, 0, WE[i], 1000.0 if i == 0 else 5.0 - i / 4, OE) for i in range(12)],
    row(name("e0000005", 4, 26), IE, 0, OE, -1000.0, OE),
    # g: a single candidate fills both attempts.
    row(name("g0000007", 3, 27), IG, 0, OG, 0.0, OG),
]
# Rows the authors keep but never look up: a task outside test_puzzles, an input that is no test input.
STRAY = [row(name("f0000006", 1, 28), IA, 0, OA, 0.0, OA), row(name("a0000001", 2, 29), IB1, 0, OA, 0.0, OA)]
# Task scores (pass@1, 2, 5, 10, 100, 1000): e (0,0,0,0,1,1), a (1,...), b (1/2, 1, ...), c (0,0,1,1,1,1), d 0, g 1.
EXPECTED = {"pass@1": 2.5 / 6, "pass@2": 3 / 6, "pass@5": 4 / 6, "pass@10": 4 / 6, "pass@100": 5 / 6,
            "pass@1000": 5 / 6}


def authors_form(rows):
    """identifiers.json names (id 0 = <blank>) and per-row ids, inputs, predictions, logits."""
    names = [BLANK]
    for row in rows:
        if row["name"] not in names:
            names.append(row["name"])
    ids = np.array([0 if r["blank"] else names.index(r["name"]) for r in rows], dtype=np.int32)
    inputs = np.stack([r["input"] for r in rows])
    preds = np.stack([r["pred"] for r in rows])
    q = np.array([r["q"] for r in rows], dtype=np.float32)
    return names, ids, inputs, preds, q


def our_form(rows):
    """task_ids (blank rows: "<blank>"), test indices, augmentation names, predictions, logits, label canvases."""
    parsed = [reference_identifier_to_augmentation(r["name"]) for r in rows]
    task_ids = [BLANK if r["blank"] else task for r, (task, _) in zip(rows, parsed)]
    augmentations = [aug for _, aug in parsed]
    labels = np.stack([canvas(augment(r["truth"], r["name"])) for r in rows])
    labels[labels == 0] = -100  # our label canvases mark PAD as ignored
    return (task_ids, [r["index"] for r in rows], augmentations, np.stack([r["pred"] for r in rows]),
            [float(np.float32(r["q"])) for r in rows], labels)


def in_order(test_puzzles, rows):
    """test_puzzles restricted to the tasks of non-blank `rows`, in the order the rows first name them."""
    tasks = dict.fromkeys(reference_identifier_to_augmentation(r["name"])[0] for r in rows if not r["blank"])
    return {task: test_puzzles[task] for task in tasks}


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


# ----------------------------------------------------------------------------- tests


def test_authors_rule_gives_the_hand_computed_numbers():
    names, ids, inputs, preds, q = authors_form(ROWS + STRAY)
    expected, submission = authors_rule(names, TEST_PUZZLES, ids, inputs, preds, q)
    assert expected == pytest.approx(EXPECTED)
    assert list(submission) == list(TEST_PUZZLES)
    assert submission["a0000001"] == [{"attempt_1": OA.tolist(), "attempt_2": other(OA).tolist()}]
    assert submission["b0000002"] == [{"attempt_1": OB0.tolist(), "attempt_2": other(OB0).tolist()},
                                      {"attempt_1": other(OB1).tolist(), "attempt_2": OB1.tolist()}]
    assert submission["c0000003"][0]["attempt_1"] == []  # the empty grid
    assert np.array(submission["c0000003"][0]["attempt_2"]).shape in {(3, 2), (2, 3)}  # the ragged crop, un-rotated
    assert submission["d0000004"] == []
    assert submission["e0000005"] == [{"attempt_1": WE[0].tolist(), "attempt_2": WE[1].tolist()}]
    assert submission["g0000007"] == [{"attempt_1": OG.tolist(), "attempt_2": OG.tolist()}]


def test_scoring_from_identifiers_equals_the_authors(tmp_path):
    names, ids, inputs, preds, q = authors_form(ROWS + STRAY)
    expected, expected_submission = authors_rule(names, TEST_PUZZLES, ids, inputs, preds, q)
    path = tmp_path / "submission.json"
    result = arc_pass_at_k_from_identifiers(names, TEST_PUZZLES, ids, inputs, preds, q, submission_path=path)
    assert {k: v for k, v in result.items() if k.startswith("pass@")} == expected  # exactly, not approximately
    assert path.read_text() == json.dumps(expected_submission)  # byte for byte what their json.dump writes
    assert result["num_tasks"] == 6 and result["num_test_outputs"] == 7
    assert (result["num_predictions"], result["num_blank_predictions"], result["num_unmatched_predictions"]) == (
        len(ROWS) + 2, sum(r["blank"] for r in ROWS), 2)
    # The authors' folder files read back the same.
    (tmp_path / "identifiers.json").write_text(json.dumps(names))
    (tmp_path / "test_puzzles.json").write_text(json.dumps(TEST_PUZZLES))
    assert read_reference_arc_files(tmp_path) == (names, TEST_PUZZLES)


def test_our_rows_score_the_same_as_the_authors(tmp_path):
    names, ids, inputs, preds, q = authors_form(ROWS)
    expected, expected_submission = authors_rule(names, TEST_PUZZLES, ids, inputs, preds, q)
    task_ids, indices, augmentations, predictions, logits, _ = our_form(ROWS)
    references = arc_references_from_test_puzzles(TEST_PUZZLES)
    result = arc_pass_at_k(task_ids, indices, augmentations, predictions, logits, references)
    assert {k: v for k, v in result.items() if k.startswith("pass@")} == expected
    ranked = rank_arc_candidates(task_ids, indices, augmentations, predictions, logits)
    path = tmp_path / "submission.json"
    write_arc_submission(path, ranked, {task: len(p["test"]) for task, p in TEST_PUZZLES.items()})
    assert path.read_text() == json.dumps(expected_submission)


def test_evaluate_module_gives_the_same_numbers(metric, tmp_path):
    names, ids, inputs, preds, q = authors_form(ROWS)
    task_ids, indices, augmentations, predictions, logits, labels = our_form(ROWS)
    expected, expected_submission = authors_rule(names, TEST_PUZZLES, ids, inputs, preds, q)
    path, listing = tmp_path / "submission.json", tmp_path / "test_puzzles.json"
    listing.write_text(json.dumps(TEST_PUZZLES))
    result = metric.compute(predictions=predictions, references=labels, task_ids=task_ids, test_indices=indices,
                            augmentations=augmentations, q_halt_logits=logits, submission_path=str(path),
                            test_puzzles=str(listing))
    assert {k: v for k, v in result.items() if k.startswith("pass@")} == expected
    assert path.read_text() == json.dumps(expected_submission)
    # Without test_puzzles the module scores the tasks its rows name (not d, whose only row is blank).
    expected, _ = authors_rule(names, in_order(TEST_PUZZLES, ROWS), ids, inputs, preds, q)
    assert "d0000004" not in in_order(TEST_PUZZLES, ROWS)
    result = metric.compute(predictions=predictions, references=labels, task_ids=task_ids, test_indices=indices,
                            augmentations=augmentations, q_halt_logits=logits)
    assert {k: v for k, v in result.items() if k.startswith("pass@")} == expected


def test_trm_eval_arc_scoring_gives_the_same_numbers(tmp_path):
    """`trm eval`'s ARC step: blank-id rows (puzzle id 0) cast no vote, but their outputs still count."""
    names, ids, inputs, preds, q = authors_form(ROWS)
    parsed = [reference_identifier_to_augmentation(r["name"]) for r in ROWS]
    rows = datasets.Dataset.from_dict({
        "task_id": [task for task, _ in parsed], "augmentation": [aug for _, aug in parsed],
        "example_index": [r["index"] for r in ROWS], "example_role": ["test"] * len(ROWS),
        "puzzle_identifiers": ids.tolist(),
    })
    outputs = {"predictions": preds, "q_halt_logits": q,
               "labels": np.stack([canvas(augment(r["truth"], r["name"])) for r in ROWS])}
    path = tmp_path / "submission.json"
    result = _arc_metrics(rows, outputs, 0, path)
    # trm eval knows the tasks of its rows, blank ones included, in row order (the authors' test split lists
    # its rows in test_puzzles order, so there the two orders agree).
    puzzles = {task: TEST_PUZZLES[task] for task in dict.fromkeys(task for task, _ in parsed)}
    assert list(puzzles) == ["a0000001", "b0000002", "c0000003", "d0000004", "e0000005", "g0000007"]
    expected, expected_submission = authors_rule(names, puzzles, ids, inputs, preds, q)
    assert {k: v for k, v in result.items() if k.startswith("pass@")} == expected
    assert result["num_tasks"] == 6 and result["num_blank_predictions"] == sum(r["blank"] for r in ROWS)
    assert path.read_text() == json.dumps(expected_submission)


@pytest.mark.parametrize("seed", range(12))
def test_random_rows_match_the_authors(seed, tmp_path):
    """Random tasks and votes with many ties (q from a few values, small answer pools), both row forms."""
    rng = np.random.default_rng(seed)
    test_puzzles, rows = {}, []
    for t in range(4):
        task = f"{seed:02d}{t:06d}"
        pairs = []
        for i in range(int(rng.integers(1, 3))):
            question = grid(1000 * seed + 10 * t + i, (2 + i, 3))
            truth = grid(500_000 + 1000 * seed + 10 * t + i, (2, 2 + t % 3))
            pairs.append({"input": question.tolist(), "output": truth.tolist()})
            pool = [truth, other(truth), (truth + 2) % 10, None, truth]  # the last one drawn with PAD inside
            for _ in range(int(rng.integers(0, 9))):
                k = None if rng.random() < 0.2 else int(rng.integers(0, 8))
                pick = int(rng.integers(0, len(pool)))
                rows.append(row(name(task, k, int(rng.integers(0, 40))), question, i, pool[pick],
                              float(rng.choice([-1.0, 0.0, 0.0, 2.0])), truth, blank=bool(rng.random() < 0.15),
                              raw=with_pad_inside if pick == 4 else None))
        test_puzzles[task] = {"train": [], "test": pairs}
    if not rows:
        return
    names, ids, inputs, preds, q = authors_form(rows)
    expected, expected_submission = authors_rule(names, test_puzzles, ids, inputs, preds, q)
    path = tmp_path / "submission.json"
    result = arc_pass_at_k_from_identifiers(names, test_puzzles, ids, inputs, preds, q, submission_path=path)
    assert {k: v for k, v in result.items() if k.startswith("pass@")} == expected
    assert path.read_text() == json.dumps(expected_submission)
    task_ids, indices, augmentations, predictions, logits, _ = our_form(rows)
    ours = arc_pass_at_k(task_ids, indices, augmentations, predictions, logits,
                         arc_references_from_test_puzzles(test_puzzles))
    assert {k: v for k, v in ours.items() if k.startswith("pass@")} == expected


def test_identical_test_inputs_pool_their_votes_like_the_authors():
    """The authors key votes by the un-augmented input grid, so two equal test inputs share every vote."""
    question, truth = grid(1, (2, 2)), grid(2, (1, 3))
    puzzles = {"h0000008": {"test": [{"input": question.tolist(), "output": truth.tolist()}] * 2}}
    rows = [row(name("h0000008", 2, 0), question, 0, other(truth), 0.0, truth),
            row(name("h0000008", 5, 1), question, 1, truth, 0.0, truth),
            row(name("h0000008", 6, 2), question, 1, truth, 0.0, truth)]
    names, ids, inputs, preds, q = authors_form(rows)
    ranked, _ = rank_arc_from_identifiers(names, puzzles, ids, inputs, preds, q)
    assert [c.votes for c in ranked["h0000008", 0]] == [c.votes for c in ranked["h0000008", 1]] == [2, 1]
    assert arc_pass_at_k_from_identifiers(names, puzzles, ids, inputs, preds, q, ks=(1,))["pass@1"] == \
        authors_rule(names, puzzles, ids, inputs, preds, q, ks=(1,))[0]["pass@1"] == 1.0


def test_halting_confidence_is_torch_float64_sigmoid():
    q = np.array([-1000.0, -40.0, -2.5, -1e-8, 0.0, 0.3, 1.0, 17.0, 1000.0, np.inf, -np.inf], dtype=np.float64)
    np.testing.assert_array_max_ulp(halting_confidence(q), torch.tensor(q).sigmoid().numpy(), maxulp=1)
    with pytest.raises(ValueError, match="row 1 is not finite"):
        halting_confidence([0.0, float("nan")])


def test_identifier_names_and_bad_ids():
    assert reference_identifier_to_augmentation("007bbfb7") == ("007bbfb7", "t0_p0123456789")
    assert reference_identifier_to_augmentation("007bbfb7|||t3|||0921345678") == ("007bbfb7", "t3_p0921345678")
    with pytest.raises(ValueError, match="malformed identifier name"):
        reference_identifier_to_augmentation("007bbfb7|||t8|||0921345678")
    names, _, inputs, preds, q = authors_form(ROWS[:2])
    with pytest.raises(ValueError, match="outside the 3 identifier names"):
        arc_pass_at_k_from_identifiers(names, TEST_PUZZLES, [1, 7], inputs, preds, q)
