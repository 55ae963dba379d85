"""`trm bench [--quick] [--json PATH] ...`: the benchmark suite (`benchmarks/`, installed as `modeling_trm.benchmarks`).

Its options belong to `benchmarks.run`; they are handed over untouched, and the suite is imported only
when `trm bench` runs.
"""

from __future__ import annotations

import argparse
import sys


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", add_help=False,
                                   help="benchmark suite: training step, solve, GFLOP/s, memory")
    parser.set_defaults(func=_run_bench, accepts_overrides=True)


def _run_bench(args: argparse.Namespace, argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:  # the suite's options, without importing the suite (torch)
        from ..benchmarks.options import build_parser

        build_parser().parse_args(argv)
    try:
        from ..benchmarks import run as bench
    except ImportError as error:
        print(f"trm bench: the benchmark suite could not be imported ({error}); reinstall the package "
              "(pip install modeling-trm) or run `python -m benchmarks.run` from a source checkout", file=sys.stderr)
        return 2
    return bench.main(argv)
