"""`trm data import-reference` / `export-reference`: the authors' dataset folders, on tiny folders written here.

The folders follow the reference `dataset/build_{arc,sudoku}_dataset.py` byte for byte in what matters:
`np.save` of uint8 grids and int32 indices, `json.dump` of `PuzzleDatasetMetadata` fields in their order,
`identifiers.json` and (ARC) `test_puzzles.json`, names `<task>|||t<k>|||<10 digits>` for augmented variants.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modeling_trm.arc_canvas import crop_arc_prediction
from modeling_trm.commands import main
from modeling_trm.data import reference_layout
from modeling_trm.data.arc import ArcExample, ArcTask, build_arc_dataset
from modeling_trm.data.arc_augment import (
    IDENTITY_AUGMENTATION,
    arc_grid_to_canvas,
    augmentation_to_reference_identifier,
    invert_arc_augmentation,
    reference_identifier_to_augmentation,
)
from modeling_trm.data.errors import DataFormatError
from modeling_trm.data.metadata import (
    IGNORE_LABEL_ID,
    load_trm_dataset,
    save_trm_dataset,
)
from modeling_trm.data.reference_layout import (
    REFERENCE_FOLDER,
    export_reference_dataset,
    import_reference_dataset,
)

# The reference `dataset/common.py` dihedral transforms, written out independently of ours.
AUTHORS_DIHEDRAL = (
    lambda a: a, lambda a: np.rot90(a, 1), lambda a: np.rot90(a, 2), lambda a: np.rot90(a, 3),
    np.fliplr, np.flipud, lambda a: a.T, lambda a: np.fliplr(np.rot90(a, 1)),
)


def authors_augment(grid: np.ndarray, k: int, digits: str) -> np.ndarray:
    """The reference `aug`: colour map `mapping[grid]`, then dihedral transform k."""
    mapping = np.array([int(d) for d in digits], dtype=np.uint8)
    return AUTHORS_DIHEDRAL[k](mapping[grid])


def dataset_json(**fields) -> dict:
    order = ("pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len", "num_puzzle_identifiers",
             "total_groups", "mean_puzzle_examples", "total_puzzles", "sets")
    return {name: fields[name] for name in order}


def write_split(folder: Path, arrays: dict, info: dict) -> None:
    folder.mkdir(parents=True)
    for name, values in arrays.items():
        np.save(folder / f"all__{name}.npy", values)
    with open(folder / "dataset.json", "w") as stream:
        json.dump(info, stream)


def split_info(arrays: dict, vocab_size: int, seq_len: int, num_ids: int) -> dict:
    puzzles = len(arrays["puzzle_identifiers"])
    return dataset_json(pad_id=0, ignore_label_id=0, blank_identifier_id=0, vocab_size=vocab_size, seq_len=seq_len,
                        num_puzzle_identifiers=num_ids, total_groups=len(arrays["group_indices"]) - 1,
                        mean_puzzle_examples=len(arrays["inputs"]) / max(puzzles, 1), total_puzzles=puzzles,
                        sets=["all"])


def write_sudoku_folder(root: Path, label_dtype=np.uint8) -> dict:
    """3 Sudoku groups, each the puzzle and one augmented copy (one row per puzzle), in the reference encoding."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, groups in (("train", 3), ("test", 2)):
        copies = 2 if split == "train" else 1
        rows = groups * copies
        labels = rng.integers(2, 11, size=(rows, 81)).astype(label_dtype)  # digits 1..9 -> 2..10
        inputs = np.where(rng.random((rows, 81)) < 0.5, 1, labels).astype(np.uint8)  # blanks are 1
        arrays = {
            "inputs": inputs, "labels": labels,
            "puzzle_identifiers": np.zeros(rows, dtype=np.int32),
            "puzzle_indices": np.arange(rows + 1, dtype=np.int32),
            "group_indices": np.arange(0, rows + 1, copies, dtype=np.int32),
        }
        write_split(root / split, arrays, split_info(arrays, 11, 81, 1))
        splits[split] = arrays
    (root / "identifiers.json").write_text(json.dumps(["<blank>"]))
    return splits


ARC_NAMES = ["<blank>", "aaa", "aaa|||t1|||0321456789", "bbb", "bbb|||t7|||0987654321", "bbb|||t5|||0213456789"]


def arc_canvas(grid: np.ndarray, top: int = 0, left: int = 0) -> np.ndarray:
    return arc_grid_to_canvas(grid, top, left).astype(np.uint8).reshape(-1)


def write_arc_folder(root: Path) -> dict:
    """Task `aaa` (training: original + 1 variant) and `bbb` (evaluation: original + 2 variants, one of which has
    no train rows), with a trailing empty group, as the reference ARC builder lays them out."""
    rng = np.random.default_rng(1)
    grids = {"aaa": [rng.integers(0, 10, (2, 3)) for _ in range(4)], "bbb": [rng.integers(0, 10, (3, 2)) for _ in range(4)]}
    variant = {1: ("aaa", None), 2: ("aaa", (1, "0321456789")), 3: ("bbb", None), 4: ("bbb", (7, "0987654321")),
               5: ("bbb", (5, "0213456789"))}

    def grid_of(identifier: int, index: int) -> np.ndarray:
        task, aug = variant[identifier]
        grid = grids[task][index].astype(np.uint8)
        return grid if aug is None else authors_augment(grid, *aug)

    def rows(pairs, top=0):
        inputs = np.stack([arc_canvas(grid_of(i, a), top, top) for i, a, _ in pairs])
        labels = np.stack([arc_canvas(grid_of(i, b), top, top) for i, _, b in pairs])
        return inputs, labels

    # train: aaa puzzles 1, 2 (2 rows each); bbb puzzles 3 (1 row), 4 (no rows), 5 (1 row); then an empty group
    train_pairs = [(1, 0, 1), (1, 2, 3), (2, 0, 1), (2, 2, 3), (3, 0, 1), (5, 0, 1)]
    inputs, labels = rows(train_pairs, top=2)
    train = {"inputs": inputs, "labels": labels,
             "puzzle_identifiers": np.array([1, 2, 3, 4, 5], dtype=np.int32),
             "puzzle_indices": np.array([0, 2, 4, 5, 5, 6], dtype=np.int32),
             "group_indices": np.array([0, 2, 5, 5], dtype=np.int32)}
    # test: bbb's test input (grid 2 -> grid 3) in each of its three variants
    inputs, labels = rows([(3, 2, 3), (4, 2, 3), (5, 2, 3)])
    test = {"inputs": inputs, "labels": labels,
            "puzzle_identifiers": np.array([3, 4, 5], dtype=np.int32),
            "puzzle_indices": np.array([0, 1, 2, 3], dtype=np.int32),
            "group_indices": np.array([0, 3], dtype=np.int32)}
    for split, arrays in (("train", train), ("test", test)):
        write_split(root / split, arrays, split_info(arrays, 12, 900, len(ARC_NAMES)))
    with open(root / "identifiers.json", "w") as stream:
        json.dump(ARC_NAMES, stream)
    test_puzzles = {"bbb": {"train": [{"input": grids["bbb"][0].tolist(), "output": grids["bbb"][1].tolist()}],
                            "test": [{"input": grids["bbb"][2].tolist(), "output": grids["bbb"][3].tolist()}]}}
    with open(root / "test_puzzles.json", "w") as stream:
        json.dump(test_puzzles, stream)
    return {"train": train, "test": test, "grids": grids}


def files_of(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def expected_rows(arrays: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's puzzle, example index and group, from the reference index arrays by hand."""
    puzzle, example, group = [], [], []
    starts = arrays["puzzle_indices"]
    for p in range(len(starts) - 1):
        g = int(np.searchsorted(arrays["group_indices"], p, side="right") - 1)
        for e in range(starts[p + 1] - starts[p]):
            puzzle.append(p), example.append(e), group.append(g)
    return np.array(puzzle), np.array(example), np.array(group)


def test_sudoku_round_trip_is_byte_identical(tmp_path):
    source = tmp_path / "sudoku-extreme-1k-aug-1000"
    arrays = write_sudoku_folder(source)
    dataset, metadata = import_reference_dataset(source, tmp_path / "ours")
    assert (metadata.task, metadata.vocab_size, metadata.seq_len, metadata.blank_token_id) == ("sudoku", 11, 81, 1)
    assert metadata.num_rows == {"train": 6, "test": 2} and metadata.num_puzzle_identifiers == 1
    for split in ("train", "test"):
        rows = dataset[split].with_format("numpy")
        np.testing.assert_array_equal(rows["input_ids"], arrays[split]["inputs"])
        np.testing.assert_array_equal(rows["labels"], arrays[split]["labels"])  # no label equals ignore id 0
        puzzle, example, group = expected_rows(arrays[split])
        np.testing.assert_array_equal(rows["puzzle_index"], puzzle)
        np.testing.assert_array_equal(rows["group"], group)
        np.testing.assert_array_equal(rows["example_index"], example)
    assert list(dataset["train"]["group"]) == [0, 0, 1, 1, 2, 2]
    export_reference_dataset(tmp_path / "ours", tmp_path / "back")
    assert files_of(tmp_path / "back") == files_of(source)


def test_other_dtypes_and_headers_survive_the_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(reference_layout, "CHUNK_ROWS", 4)  # several chunks per split, both ways
    source = tmp_path / "src"
    write_sudoku_folder(source, label_dtype=np.int64)
    np.save(source / "train" / "all__group_indices.npy", np.array([0, 2, 4, 6], dtype=">i8"))  # big-endian
    _, metadata = import_reference_dataset(source, tmp_path / "ours")
    export_reference_dataset(tmp_path / "ours", tmp_path / "back")
    assert files_of(tmp_path / "back") == files_of(source)
    # a file the reference loader does not read is not carried, and the import says so
    np.save(source / "train" / "all__aug_identifiers.npy", np.zeros(6, np.int32))
    _, metadata = import_reference_dataset(source, tmp_path / "ours", overwrite=True)
    assert metadata.source["ignored_files"] == ["train/all__aug_identifiers.npy"]


def test_arc_import_keeps_rows_structure_and_names(tmp_path):
    source = tmp_path / "arc1concept-aug-1000"
    arrays = write_arc_folder(source)
    dataset, metadata = import_reference_dataset(source, tmp_path / "ours")
    assert (metadata.task, metadata.num_puzzle_identifiers, metadata.grid_shape) == ("arc", 6, (30, 30))
    for split in ("train", "test"):
        rows = dataset[split].with_format("numpy")
        np.testing.assert_array_equal(rows["input_ids"], arrays[split]["inputs"])
        labels = arrays[split]["labels"].astype(np.int16)
        labels[labels == 0] = IGNORE_LABEL_ID  # PAD is the reference ignore_label_id
        np.testing.assert_array_equal(rows["labels"], labels)
        puzzle, example, group = expected_rows(arrays[split])
        np.testing.assert_array_equal(rows["puzzle_index"], puzzle)
        np.testing.assert_array_equal(rows["example_index"], example)
        np.testing.assert_array_equal(rows["group"], group)
        np.testing.assert_array_equal(rows["puzzle_identifiers"], arrays[split]["puzzle_identifiers"][puzzle])
    train = dataset["train"]
    assert train["task_id"] == ["aaa"] * 4 + ["bbb"] * 2
    assert train["augmentation"] == [IDENTITY_AUGMENTATION] * 2 + ["t1_p0321456789"] * 2 + [IDENTITY_AUGMENTATION,
                                                                                           "t5_p0213456789"]
    assert dataset["test"]["augmentation"] == [IDENTITY_AUGMENTATION, "t7_p0987654321", "t5_p0213456789"]
    stored = tmp_path / "ours" / REFERENCE_FOLDER
    assert (stored / "identifiers.json").read_bytes() == (source / "identifiers.json").read_bytes()
    assert (stored / "test_puzzles.json").read_bytes() == (source / "test_puzzles.json").read_bytes()


def test_arc_round_trip_is_byte_identical(tmp_path):
    source = tmp_path / "src"
    write_arc_folder(source)
    import_reference_dataset(source, tmp_path / "ours")
    export_reference_dataset(tmp_path / "ours", tmp_path / "back")
    assert files_of(tmp_path / "back") == files_of(source)
    with pytest.raises(FileExistsError):
        export_reference_dataset(tmp_path / "ours", tmp_path / "back")
    export_reference_dataset(tmp_path / "ours", tmp_path / "back", overwrite=True)


def test_imported_test_rows_invert_to_the_original_task_frame(tmp_path):
    source = tmp_path / "src"
    arrays = write_arc_folder(source)
    dataset, _ = import_reference_dataset(source, tmp_path / "ours")
    original = arrays["grids"]["bbb"][3]
    for row in dataset["test"].with_format("numpy"):
        label = np.where(row["labels"] == IGNORE_LABEL_ID, 0, row["labels"])
        np.testing.assert_array_equal(invert_arc_augmentation(crop_arc_prediction(label), row["augmentation"]),
                                      original)


@pytest.mark.parametrize("k", range(8))
def test_authors_names_map_to_our_augmentation_names(k):
    grid = np.random.default_rng(k).integers(0, 10, (3, 5))
    digits = "0" + "".join(str(d) for d in np.random.default_rng(k).permutation(np.arange(1, 10)))
    name = f"task|||t{k}|||{digits}"
    task, augmentation = reference_identifier_to_augmentation(name)
    assert (task, augmentation) == ("task", f"t{k}_p{digits}")
    np.testing.assert_array_equal(invert_arc_augmentation(authors_augment(grid, k, digits), augmentation), grid)
    assert augmentation_to_reference_identifier(task, augmentation) == name
    assert reference_identifier_to_augmentation("task") == ("task", IDENTITY_AUGMENTATION)
    assert augmentation_to_reference_identifier("task", IDENTITY_AUGMENTATION) == "task"


def test_export_of_our_own_arc_build(tmp_path):
    """Not imported: indices from the rows, names from task_id/augmentation, test_puzzles from un-augmented rows."""
    def task(name, seed):
        grids = [np.random.default_rng(seed + i).integers(0, 10, (2 + i % 2, 3)).astype(np.int8) for i in range(6)]
        return ArcTask(name, [ArcExample(grids[0], grids[1]), ArcExample(grids[2], grids[3])],
                       [ArcExample(grids[4], grids[5])])

    dataset, metadata = build_arc_dataset([task("train1", 0)], [task("eval1", 10)], num_aug=2, seed=3)
    save_trm_dataset(dataset, metadata, tmp_path / "ours")
    export_reference_dataset(tmp_path / "ours", tmp_path / "authors")
    out = tmp_path / "authors"
    names = json.loads((out / "identifiers.json").read_text())
    assert names[0] == "<blank>" and len(names) == metadata.num_puzzle_identifiers
    assert {reference_identifier_to_augmentation(n) for n in names[1:]} == set(
        zip(dataset["train"]["task_id"], dataset["train"]["augmentation"]))
    for split in ("train", "test"):
        for name in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices"):
            path = out / split / f"all__{name}.npy"
            values = np.load(path)
            assert path.read_bytes()[:128] == _saved(values)[:128]  # the header np.save writes
        info = json.loads((out / split / "dataset.json").read_text())
        assert list(info) == ["pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
                              "num_puzzle_identifiers", "total_groups", "mean_puzzle_examples", "total_puzzles", "sets"]
    # each variant of each task is one puzzle; each task one group
    np.testing.assert_array_equal(np.load(out / "test" / "all__group_indices.npy"), [0, 3])
    np.testing.assert_array_equal(np.load(out / "test" / "all__puzzle_indices.npy"), [0, 1, 2, 3])
    train_ids = np.load(out / "train" / "all__puzzle_identifiers.npy")
    assert train_ids.tolist() == sorted(set(dataset["train"]["puzzle_identifiers"]))
    tasks = json.loads((out / "test_puzzles.json").read_text())
    evaluation = task("eval1", 10)
    assert list(tasks) == ["eval1"]
    assert tasks["eval1"]["train"] == [{"input": e.input.tolist(), "output": e.output.tolist()} for e in evaluation.train]
    assert tasks["eval1"]["test"] == [{"input": e.input.tolist(), "output": e.output.tolist()} for e in evaluation.test]
    # and it imports back to the same rows
    back, _ = import_reference_dataset(out, tmp_path / "again")
    for split in ("train", "test"):
        for column in ("input_ids", "labels", "puzzle_identifiers", "task_id", "augmentation"):
            assert back[split][column] == dataset[split][column]


def _saved(values: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, values)
    return buffer.getvalue()


def _drop(path: Path) -> None:
    path.unlink()


def _rewrite_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


BAD_INPUTS = {
    "missing file": (lambda root: _drop(root / "train" / "all__labels.npy"), "all__labels.npy: file is missing"),
    "short labels": (lambda root: np.save(root / "train" / "all__labels.npy", np.ones((5, 900), np.uint8)),
                     "differs from the inputs' (6, 900)"),
    "puzzle indices not monotone": (
        lambda root: np.save(root / "train" / "all__puzzle_indices.npy", np.array([0, 4, 2, 5, 5, 6], np.int32)),
        "all__puzzle_indices.npy: indices are not monotone: entry 2 (2) is below entry 1 (4)"),
    "puzzle indices end early": (
        lambda root: np.save(root / "test" / "all__puzzle_indices.npy", np.array([0, 1, 2, 2], np.int32)),
        "must run from 0 to the number of rows (3)"),
    "dataset.json without seq_len": (lambda root: _rewrite_json(root / "test" / "dataset.json",
                                                                lambda d: d.pop("seq_len")),
                                     "test/dataset.json: missing fields ['seq_len']"),
    "id beyond identifiers.json": (lambda root: root.joinpath("identifiers.json").write_text(json.dumps(ARC_NAMES[:4])),
                                   "puzzle 3 has id 4, outside 0..3"),
    "malformed augmented name": (
        lambda root: root.joinpath("identifiers.json").write_text(json.dumps(ARC_NAMES[:2] + ["aaa|||t9|||01"] + ARC_NAMES[3:])),
        "identifiers.json: entry 2: malformed identifier name 'aaa|||t9|||01'"),
    "token outside the vocabulary": (
        lambda root: np.save(root / "test" / "all__inputs.npy", np.full((3, 900), 12, np.uint8)),
        "all__inputs.npy: row 0 cell 0 is 12, outside the vocabulary 0..11"),
    "more than one set": (lambda root: _rewrite_json(root / "train" / "dataset.json",
                                                     lambda d: d.update(sets=["all", "more"])),
                          "sets must name exactly one set"),
    "total_puzzles disagrees": (lambda root: _rewrite_json(root / "train" / "dataset.json",
                                                           lambda d: d.update(total_puzzles=9)),
                                "total_puzzles is 9, but the index arrays hold 5"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_the_file_and_problem(tmp_path, case):
    source = tmp_path / "src"
    write_arc_folder(source)
    spoil, message = BAD_INPUTS[case]
    spoil(source)
    with pytest.raises(DataFormatError, match=_escaped(message)):
        import_reference_dataset(source, tmp_path / "ours")
    assert not (tmp_path / "ours").exists() and [p.name for p in tmp_path.iterdir()] == ["src"]


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_missing_source_and_unknown_shape(tmp_path):
    with pytest.raises(DataFormatError, match="not a folder"):
        import_reference_dataset(tmp_path / "nothing", tmp_path / "ours")
    source = tmp_path / "src"
    write_sudoku_folder(source)
    for split in ("train", "test"):
        _rewrite_json(source / split / "dataset.json", lambda d: d.update(vocab_size=13))
    with pytest.raises(DataFormatError, match="seq_len 81 and vocab_size 13 match none of the reference benchmarks"):
        import_reference_dataset(source, tmp_path / "ours")


def test_cli_import_and_export(tmp_path, capsys):
    source, ours, back = tmp_path / "src", tmp_path / "ours", tmp_path / "back"
    write_arc_folder(source)
    assert main(["data", "import-reference", str(source), str(ours)]) == 0
    assert "imported 6 train + 3 test rows (arc, 6 puzzle ids)" in capsys.readouterr().out
    assert main(["data", "export-reference", str(ours), str(back)]) == 0
    assert files_of(back) == files_of(source)
    dataset, _ = load_trm_dataset(ours)
    assert dataset["test"].num_rows == 3
    assert main(["data", "import-reference", str(source), str(ours)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "import-reference", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 1
    assert "not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- memory and files

def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux 4.0+); False where /proc does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") <= _status_kib("VmRSS") + 1024


def write_large_arc_folder(root: Path, rows: int) -> int:
    """An ARC-shaped folder of `rows` train rows (4 per puzzle, 8 puzzles per group); returns its bytes."""
    rng = np.random.default_rng(0)
    block = rng.integers(0, 12, size=(64, 900), dtype=np.uint8)
    puzzles = rows // 4
    names = ["<blank>"] + [f"t{p // 8:05d}" if p % 8 == 0 else f"t{p // 8:05d}|||t{p % 8}|||0123456789"
                           for p in range(puzzles)]
    for split, count in (("train", rows), ("test", 8)):
        grid = np.tile(block, (count // 64 + 1, 1))[:count]
        arrays = {"inputs": grid, "labels": grid[::-1].copy(),
                  "puzzle_identifiers": np.arange(1, count // 4 + 1, dtype=np.int32),
                  "puzzle_indices": np.arange(0, count + 1, 4, dtype=np.int32),
                  "group_indices": np.append(np.arange(0, count // 4, 8), count // 4).astype(np.int32)}
        write_split(root / split, arrays, split_info(arrays, 12, 900, len(names)))
    (root / "identifiers.json").write_text(json.dumps(names))
    (root / "test_puzzles.json").write_text("{}")
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def test_import_peak_rss_does_not_grow_with_the_folder(tmp_path, monkeypatch):
    """Regression: the import read the `.npy` files and a scratch Arrow copy memory-mapped, and every page read
    stayed resident, so peak RSS grew with the folder (11.5 MiB per ARC augmentation, ~12 GB at ARC-AGI-1 x 1000).
    Now it reads and writes with plain file calls and only a chunk is in memory at a time. Here 48k ARC rows
    (82 MiB of `.npy`, 126 MiB of Arrow) in chunks of 1,024 rows: the import's own peak (VmHWM reset before it)
    rose by 17 MiB; the memory-mapped import rose by 138 MiB."""
    source = tmp_path / "big"
    write_large_arc_folder(source, rows=48_000)
    monkeypatch.setattr(reference_layout, "CHUNK_ROWS", 1024)
    if not Path("/proc/self/clear_refs").exists() or not _reset_peak_rss():
        pytest.skip("needs Linux /proc/self/clear_refs to measure a peak RSS")
    before_kib = _status_kib("VmRSS")
    dataset, _ = import_reference_dataset(source, tmp_path / "ours")
    growth_mib = (_status_kib("VmHWM") - before_kib) / 1024
    arrow_mib = sum(path.stat().st_size for path in (tmp_path / "ours").rglob("*.arrow")) / 2**20
    assert dataset["train"].num_rows == 48_000 and arrow_mib > 120
    assert growth_mib < 64, f"the import's peak RSS grew by {growth_mib:.0f} MiB while writing {arrow_mib:.0f} MiB"


def test_split_writer_writes_what_save_to_disk_writes(tmp_path):
    """`ArrowSplitWriter` (the import's streaming writer) against `DatasetDict.save_to_disk`: the same JSON files byte
    for byte, the same rows; more shards once a shard passes `max_shard_size`; an empty split stays loadable."""
    from datasets import DatasetDict, Value, load_from_disk

    from modeling_trm.data.tables import (
        ArrowSplitWriter,
        dataset_from_columns,
        grid_features,
        write_dataset_dict_json,
    )

    features = grid_features(4, {"task_id": Value("string")})
    rng = np.random.default_rng(0)
    columns = {"input_ids": rng.integers(0, 12, (50, 4)), "labels": rng.integers(-100, 12, (50, 4)),
               "puzzle_identifiers": np.arange(50), "task_id": [f"task{i % 7}" for i in range(50)]}
    expected = DatasetDict({"train": dataset_from_columns(columns, features),
                            "test": dataset_from_columns({k: v[:0] for k, v in columns.items()}, features)})
    expected["train"].save_to_disk(str(tmp_path / "saved"))
    ours = tmp_path / "ours"
    for split, shard_size in (("train", 500), ("test", None)):  # 50 train rows of ~25 bytes: several shards
        with ArrowSplitWriter(ours / split, features, max_shard_size=shard_size) as writer:
            for start in range(0, expected[split].num_rows, 10):
                writer.write(expected[split].data.table.slice(start, 10))
            writer.finish(expected[split]._fingerprint)
    write_dataset_dict_json(ours, ["train", "test"])
    for name in ("state.json", "dataset_info.json"):
        saved = (tmp_path / "saved" / name).read_text()
        written = (ours / "train" / name).read_text()
        if name == "state.json":  # the shard names differ: save_to_disk wrote one shard, the writer several
            saved, written = json.loads(saved), json.loads(written)
            names = [entry["filename"] for entry in written.pop("_data_files")]
            assert len(names) > 1 and names == [f"data-{i:05d}-of-{len(names):05d}.arrow" for i in range(len(names))]
            assert sorted(path.name for path in (ours / "train").glob("*.arrow")) == names
            saved.pop("_data_files")
        assert written == saved, name
    loaded = load_from_disk(str(ours))
    assert loaded["train"].data.table.equals(expected["train"].data.table)
    assert loaded["test"].num_rows == 0 and loaded["test"].features == features
