"""The reference-compatible ARC build: the authors' layout, ids, rows and test puzzles on tiny Kaggle-format tasks."""

import hashlib
import json
import re
import warnings

import numpy as np
import pytest

from modeling_trm.data.arc_augment import invert_arc_augmentation
from modeling_trm.data.arc_reference_build import (
    PAPER_BUILDS,
    NpyRowWriter,
    ReferenceArcOptions,
    write_reference_layout,
)
from modeling_trm.data.errors import DataFormatError

# Six tasks in three subsets. aa000001 lists "test" before "train", as the real ARC-AGI-1 files do; aa000002
# has a 30-wide grid (no room to translate sideways); aa000003 is all colour 0, so no augmentation differs
# from the original; bb000001 has two test inputs.
CHALLENGES = {
    "training": {
        "aa000001": {"test": [{"input": [[1, 2, 3], [4, 5, 6]]}],
                     "train": [{"input": [[1, 0], [0, 2]], "output": [[2, 0], [0, 1]]},
                               {"input": [[3, 4]], "output": [[4], [3]]}]},
        "aa000002": {"train": [{"input": [[7] * 30], "output": [[8, 9]]}], "test": [{"input": [[5, 6, 7]]}]},
        "aa000003": {"train": [{"input": [[0, 0], [0, 0]], "output": [[0]]}], "test": [{"input": [[0]]}]},
    },
    "evaluation": {
        "bb000001": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}, {"input": [[3], [4]], "output": [[4, 3]]}],
                     "test": [{"input": [[5, 6], [7, 8]]}, {"input": [[9, 1, 2]]}]},
        "bb000002": {"train": [{"input": [[2, 2, 3]], "output": [[3]]}], "test": [{"input": [[4, 4, 5]]}]},
    },
    "concept": {
        "Concept1": {"train": [{"input": [[1, 1], [2, 3]], "output": [[6]]}], "test": [{"input": [[4, 5], [5, 5]]}]},
    },
}
SOLUTIONS = {
    "training": {"aa000001": [[[6, 5, 4], [3, 2, 1]]], "aa000002": [[[7, 6, 5]]], "aa000003": [[[0]]]},
    "evaluation": {"bb000001": [[[8, 7], [6, 5]], [[2, 1, 9]]], "bb000002": [[[5]]]},
    "concept": {"Concept1": [[[5]]]},
}

# What the authors' dataset/build_arc_dataset.py (SamsungSAILMontreal/TinyRecursiveModels @ 4227606, run unchanged)
# wrote for these files with --subsets training evaluation concept --test-set-name evaluation --num-aug 3:
# sha256 (first 16 hex digits) of each JSON file and of each .npy file's array data.
AUTHORS_DIGESTS = {
    "identifiers.json": "8a26589389a29b94",
    "test/all__group_indices.npy": "a793829a02facc18",
    "test/all__inputs.npy": "4276a0a7aa4581d9",
    "test/all__labels.npy": "d88a694705747b8a",
    "test/all__puzzle_identifiers.npy": "20f799c49cf88120",
    "test/all__puzzle_indices.npy": "413d4cf4adaa5ec7",
    "test/dataset.json": "b4ee9d4e22cd7af9",
    "test_puzzles.json": "b7edbab7b66d99f5",
    "train/all__group_indices.npy": "4f40f534a5562117",
    "train/all__inputs.npy": "b9656b94c723fa72",
    "train/all__labels.npy": "7e4d4ba9bc36c377",
    "train/all__puzzle_identifiers.npy": "8e72670b9a511306",
    "train/all__puzzle_indices.npy": "993c583be70756c1",
    "train/dataset.json": "f0ac3030aaf399b6",
}
LAYOUT_FILES = sorted(AUTHORS_DIGESTS)


def parse_variant_name(name):
    """`abc|||t3|||0921345678` -> (`abc`, `t3_p0921345678`); `abc` -> (`abc`, the identity)."""
    if "|||" not in name:
        return name, "t0_p0123456789"
    task, transform, colours = name.split("|||")
    return task, f"{transform}_p{colours}"


def write_kaggle(folder, challenges=CHALLENGES, solutions=SOLUTIONS):
    for subset, tasks in challenges.items():
        (folder / f"arc-agi_{subset}_challenges.json").write_text(json.dumps(tasks))
        if subset in solutions:
            (folder / f"arc-agi_{subset}_solutions.json").write_text(json.dumps(solutions[subset]))
    return str(folder / "arc-agi")


def build(tmp_path, name="layout", num_aug=3, **options):
    prefix = write_kaggle(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aa000003 has no distinct augmentation: a warning, as the authors print
        summary = write_reference_layout(ReferenceArcOptions(prefix, num_aug=num_aug, **options), tmp_path / name)
    return summary.path, summary


def digests(folder):
    def data(path):
        return np.load(path).tobytes() if path.suffix == ".npy" else path.read_bytes()

    return {name: hashlib.sha256(data(folder / name)).hexdigest()[:16] for name in LAYOUT_FILES}


def load(folder, split):
    return {name: np.load(folder / split / f"all__{name}.npy")
            for name in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")}


def crop(canvas):
    """The colour grid on a 30x30 canvas, its offset, and whether EOS sits exactly below and right of it."""
    canvas = canvas.reshape(30, 30)
    rows, cols = np.nonzero(canvas >= 2)
    top, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
    expected = np.zeros((30, 30), dtype=np.uint8)
    expected[top:bottom, left:right] = canvas[top:bottom, left:right]
    if bottom < 30:
        expected[bottom, left:right] = 1  # not the corner cell
    if right < 30:
        expected[top:bottom, right] = 1
    return canvas[top:bottom, left:right].astype(np.int64) - 2, (top, left), np.array_equal(canvas, expected)


def original_pairs(task_id, split):
    """The task's (input, output) pairs a split holds, in the authors' order (the task's JSON key order)."""
    subset = next(name for name, tasks in CHALLENGES.items() if task_id in tasks)
    pairs = []
    for role, examples in CHALLENGES[subset][task_id].items():
        goes_to = "test" if subset == "evaluation" and role == "test" else "train"
        for index, example in enumerate(examples):
            output = example.get("output", SOLUTIONS[subset][task_id][index] if role == "test" else None)
            if goes_to == split:
                pairs.append((np.array(example["input"]), np.array(output)))
    return pairs


def test_layout_equals_the_authors_script_output(tmp_path):
    folder, summary = build(tmp_path)
    assert digests(folder) == AUTHORS_DIGESTS
    assert summary.short_tasks == {"aa000003": 1}  # 15 draws, none distinct: the authors' "augmentation not full"


def test_same_inputs_and_seed_give_byte_identical_files(tmp_path):
    first, _ = build(tmp_path, "a")
    second, _ = build(tmp_path, "b")
    for name in LAYOUT_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    other, _ = build(tmp_path, "c", seed=7)
    assert (other / "train/all__inputs.npy").read_bytes() != (first / "train/all__inputs.npy").read_bytes()


def test_identifiers_without_augmentation_follow_the_seeded_shuffle(tmp_path):
    folder, summary = build(tmp_path, num_aug=0, puzzle_identifiers_start=2)
    rng = np.random.RandomState(42)  # = np.random.seed(42); with num_aug 0 the shuffles are the only draws
    expected = ["<blank>", "<blank>"]
    for subset in ("training", "evaluation", "concept"):
        items = list(CHALLENGES[subset].items())
        rng.shuffle(items)
        expected += [name for name, _ in items]
    assert json.loads((folder / "identifiers.json").read_text()) == expected
    assert summary.num_puzzle_identifiers == 8 and summary.puzzles == {"train": 6, "test": 2}


def test_identifiers_hand_checked_with_augmentation(tmp_path):
    folder, summary = build(tmp_path)
    names = json.loads((folder / "identifiers.json").read_text())
    # id 0 is blank; per task the original, then its distinct variants (3 each; aa000003 has none)
    assert names[0] == "<blank>" and len(names) == 1 + 6 * 4 - 3 == summary.num_puzzle_identifiers
    bare = [name for name in names[1:] if "|||" not in name]
    assert sorted(bare) == sorted(task for tasks in CHALLENGES.values() for task in tasks)
    for index, name in enumerate(names[1:], start=1):
        task, _ = parse_variant_name(name)
        if "|||" in name:
            assert names[index - 1].split("|||")[0] == task  # each task's variants follow it
            digits = name.rsplit("|||", 1)[1]
            assert digits[0] == "0" and sorted(digits) == list("0123456789")  # colour 0 stays fixed
    # the first training task's first variant: shuffle, then randint(0, 8) and a permutation of 1..9
    rng = np.random.RandomState(42)
    items = list(CHALLENGES["training"].items())
    rng.shuffle(items)
    k, perm = rng.randint(0, 8), rng.permutation(np.arange(1, 10, dtype=np.uint8))
    assert names[1] == items[0][0]
    assert names[2] == f"{items[0][0]}|||t{k}|||0" + "".join(str(c) for c in perm)


def test_test_puzzles_share_the_ids_of_their_demonstrations(tmp_path):
    folder, _ = build(tmp_path)
    names = json.loads((folder / "identifiers.json").read_text())
    train, test = load(folder, "train"), load(folder, "test")
    test_names = [names[i] for i in test["puzzle_identifiers"]]
    assert {parse_variant_name(name)[0] for name in test_names} == {"bb000001", "bb000002"}
    assert set(test["puzzle_identifiers"]) <= set(train["puzzle_identifiers"])
    puzzles = json.loads((folder / "test_puzzles.json").read_text())
    assert list(puzzles) == [name for name in dict.fromkeys(parse_variant_name(n)[0] for n in test_names)]
    assert puzzles["bb000001"]["test"][1] == {"input": [[9, 1, 2]], "output": [[2, 1, 9]]}  # solution filled in
    # groups: one per task and split; each group holds the original and its variants
    assert list(test["group_indices"]) == [0, 4, 8]
    assert train["group_indices"][-1] == len(train["puzzle_identifiers"]) == 21


def test_rows_decode_to_the_original_grids(tmp_path):
    folder, _ = build(tmp_path)
    names = json.loads((folder / "identifiers.json").read_text())
    for split in ("train", "test"):
        arrays = load(folder, split)
        bounds = arrays["puzzle_indices"]
        for puzzle, identifier in enumerate(arrays["puzzle_identifiers"]):
            task, augmentation = parse_variant_name(names[identifier])
            expected = original_pairs(task, split)
            rows = range(bounds[puzzle], bounds[puzzle + 1])
            assert len(rows) == len(expected)
            offsets = []
            for row, (inp, out) in zip(rows, expected):
                got_in, at_in, eos_in = crop(arrays["inputs"][row])
                got_out, at_out, eos_out = crop(arrays["labels"][row])
                assert eos_in and eos_out and at_in == at_out  # one offset for input and output
                np.testing.assert_array_equal(invert_arc_augmentation(got_in, augmentation), inp)
                np.testing.assert_array_equal(invert_arc_augmentation(got_out, augmentation), out)
                offsets.append(at_in)
            assert (0, 0) in offsets  # one example per puzzle stays in the corner
            if split == "test":
                assert set(offsets) == {(0, 0)}  # no translation in the test split


def test_dtypes_shapes_and_dataset_json(tmp_path):
    folder, summary = build(tmp_path)
    for split in ("train", "test"):
        arrays = load(folder, split)
        assert arrays["inputs"].dtype == arrays["labels"].dtype == np.uint8
        assert arrays["inputs"].shape == arrays["labels"].shape == (summary.rows[split], 900)
        assert int(arrays["inputs"].max()) <= 11
        for name in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
            assert arrays[name].dtype == np.int32 and arrays[name].ndim == 1
        assert arrays["puzzle_indices"][0] == 0 and np.all(np.diff(arrays["puzzle_indices"]) > 0)
        meta = json.loads((folder / split / "dataset.json").read_text())
        assert list(meta) == ["pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
                              "num_puzzle_identifiers", "total_groups", "mean_puzzle_examples", "total_puzzles",
                              "sets"]
        assert (meta["seq_len"], meta["vocab_size"], meta["sets"]) == (900, 12, ["all"])
        assert meta["total_puzzles"] == summary.puzzles[split] and meta["num_puzzle_identifiers"] == 22
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == LAYOUT_FILES


def test_npy_writer_writes_what_np_save_writes(tmp_path):
    array = np.arange(3 * 900, dtype=np.int64).astype(np.uint8).reshape(3, 900)
    np.save(tmp_path / "whole.npy", array)
    with open(tmp_path / "chunks.npy", "wb") as stream:
        writer = NpyRowWriter(stream, rows=3, width=900)
        writer.write(array[:2])
        writer.write(array[2:])
        writer.check_complete()
        with pytest.raises(ValueError, match="more rows"):
            writer.write(array[:1])
    assert (tmp_path / "chunks.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()


def test_missing_solutions_give_dummy_outputs_as_the_authors_do(tmp_path):
    prefix = write_kaggle(tmp_path, solutions={k: v for k, v in SOLUTIONS.items() if k != "concept"})
    with pytest.warns(UserWarning, match="concept_solutions.json not found"):
        summary = write_reference_layout(ReferenceArcOptions(prefix, num_aug=0), tmp_path / "layout")
    assert summary.dummy_outputs == ["concept"]
    names = json.loads((summary.path / "identifiers.json").read_text())
    train = load(summary.path, "train")
    row = train["puzzle_indices"][train["puzzle_identifiers"].tolist().index(names.index("Concept1")) + 1] - 1
    np.testing.assert_array_equal(crop(train["labels"][row])[0], [[0]])  # its test output became [[0]]


@pytest.mark.parametrize("breakage, message", [
    ("missing", "arc-agi_concept_challenges.json does not exist"),
    ("malformed", "arc-agi_evaluation_challenges.json: malformed JSON at line 1"),
    ("bad colour", "arc-agi_training_challenges.json: task aa000002: train example 0 output: cell (0, 1) is 10"),
    ("few solutions", "arc-agi_evaluation_solutions.json: task bb000001: expected a list of 2 output grids"),
])
def test_bad_input_names_the_file(tmp_path, breakage, message):
    prefix = write_kaggle(tmp_path)
    if breakage == "missing":
        (tmp_path / "arc-agi_concept_challenges.json").unlink()
    elif breakage == "malformed":
        (tmp_path / "arc-agi_evaluation_challenges.json").write_text('{"bb000001": {"train": [}')
    elif breakage == "bad colour":
        tasks = json.loads(json.dumps(CHALLENGES["training"]))
        tasks["aa000002"]["train"][0]["output"] = [[8, 10]]
        (tmp_path / "arc-agi_training_challenges.json").write_text(json.dumps(tasks))
    else:
        (tmp_path / "arc-agi_evaluation_solutions.json").write_text(json.dumps({**SOLUTIONS["evaluation"],
                                                                               "bb000001": [[[1]]]}))
    with pytest.raises((FileNotFoundError, DataFormatError), match=re.escape(message)):
        write_reference_layout(ReferenceArcOptions(prefix, num_aug=1), tmp_path / "layout")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("arc-agi_")) == []  # nothing left


def test_options_are_checked():
    with pytest.raises(ValueError, match="no test split"):
        ReferenceArcOptions("p", subsets=("training", "concept"))
    with pytest.raises(ValueError, match="num_aug"):
        ReferenceArcOptions("p", num_aug=-1)
    assert ReferenceArcOptions("p").paper_name() == "arc-agi-1"
    assert ReferenceArcOptions("p", subsets=PAPER_BUILDS["arc-agi-2"][0], test_set_name="evaluation2").paper_name() \
        == "arc-agi-2"


def test_cli_defaults_match_the_paper_build():
    from modeling_trm.commands.data import ARC_REFERENCE_SUBSETS

    assert ARC_REFERENCE_SUBSETS == PAPER_BUILDS["arc-agi-1"][0]


# ---------------------------------------------------------------- through the importer into our format


def run_cli(*argv):
    import argparse

    from modeling_trm.commands.data import add_subcommands

    parser = argparse.ArgumentParser(prog="trm")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.mark.filterwarnings("ignore:1 tasks have fewer")
def test_cli_builds_the_reference_layout_and_our_dataset(tmp_path, capsys):
    pytest.importorskip("modeling_trm.data.reference_layout")
    from modeling_trm.data.metadata import load_trm_dataset

    prefix = write_kaggle(tmp_path)
    out, layout = tmp_path / "ds", tmp_path / "layout"
    assert run_cli("data", "build", "arc", "--reference-compatible", "--input-file-prefix", prefix, "--num-aug", "3",
                   "--out", str(out), "--reference-layout", str(layout), "--no-progress") == 0
    assert "wrote 42 train + 12 test rows (arc, reference-compatible" in capsys.readouterr().out
    assert digests(layout) == AUTHORS_DIGESTS  # seed 42 by default
    dataset, metadata = load_trm_dataset(out)
    assert (dataset["train"].num_rows, dataset["test"].num_rows, metadata.num_puzzle_identifiers) == (42, 12, 22)
    assert metadata.source["name"] == "arc-agi-1" and set(metadata.source["sha256"]) == {
        f"arc-agi_{subset}_{kind}.json" for subset in CHALLENGES for kind in ("challenges", "solutions")}
    assert metadata.build_settings["builder"] == "arc-reference" and metadata.build_settings["seed"] == 42
    test_ids = load(layout, "test")["puzzle_identifiers"]
    bounds = load(layout, "test")["puzzle_indices"]
    assert dataset["test"]["puzzle_identifiers"] == np.repeat(test_ids, np.diff(bounds)).tolist()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("arc-agi_")) == ["ds", "layout"]


def test_cli_refuses_mixed_sources(tmp_path, capsys):
    pytest.importorskip("modeling_trm.data.reference_layout")
    prefix = write_kaggle(tmp_path)
    assert run_cli("data", "build", "arc", "--input-file-prefix", prefix, "--out", str(tmp_path / "x")) == 1
    assert "needs --reference-compatible" in capsys.readouterr().err
    assert run_cli("data", "build", "arc", "--reference-compatible", "--json-prefix", prefix,
                   "--out", str(tmp_path / "x")) == 1
    assert "reads --input-file-prefix" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.filterwarnings("ignore:1 tasks have fewer")
def test_recipe_builds_the_reference_way(tmp_path):
    pytest.importorskip("modeling_trm.data.reference_layout")
    from modeling_trm.data.build import build_from_recipe
    from modeling_trm.data.metadata import load_trm_dataset
    from modeling_trm.recipes_io import load_recipe

    recipe = load_recipe("arc-agi-1")["data"]
    assert recipe["args"]["reference_compatible"] and recipe["args"]["seed"] == 42
    recipe["args"].update(input_file_prefix=write_kaggle(tmp_path), num_aug=3)
    dataset, metadata = load_trm_dataset(build_from_recipe(recipe, tmp_path / "ds", progress=False))
    assert (dataset["train"].num_rows, metadata.num_puzzle_identifiers) == (42, 22)
    arc2 = load_recipe("arc-agi-2")["data"]["args"]
    assert (arc2["subsets"], arc2["test_set_name"]) == (list(PAPER_BUILDS["arc-agi-2"][0]), "evaluation2")
