"""The `trm` command: one entry point whose subcommands live next to the code they drive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import ablation, app_cli, convert, demo, evaluation, publish, solve_cli, train_cli, visualize_cli
from .data import cli as data_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trm", description="Tiny Recursive Model tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    ablation.add_subcommands(subparsers)
    app_cli.add_subcommands(subparsers)
    convert.add_subcommands(subparsers)
    data_cli.add_subcommands(subparsers)
    demo.add_subcommands(subparsers)
    evaluation.add_subcommands(subparsers)
    publish.add_subcommands(subparsers)
    solve_cli.add_subcommands(subparsers)
    train_cli.add_subcommands(subparsers)
    visualize_cli.add_subcommands(subparsers)
    _add_bench_subcommand(subparsers)
    return parser


def _add_bench_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """`trm bench [--quick] [--json PATH] ...`: the suite in a source checkout's `benchmarks/` (not installed).

    Its options belong to `benchmarks.run`; they are handed over untouched, and the suite is imported
    only when `trm bench` runs, so no other command looks at the working directory."""
    parser = subparsers.add_parser("bench", add_help=False,
                                   help="benchmark suite: training step, solve, GFLOP/s, memory (source checkout)")
    parser.set_defaults(func=_run_bench, accepts_overrides=True)


def _run_bench(args: argparse.Namespace, argv: list[str]) -> int:
    if Path("benchmarks/run.py").is_file() and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the console script does not put the checkout on the path
    try:
        from benchmarks import run as bench
    except ImportError:
        print("trm bench: the benchmark suite is in the source checkout's benchmarks/ folder; run it from the "
              "repository root (or `python -m benchmarks.run`)", file=sys.stderr)
        return 2
    return bench.main(argv)


def line_buffered_output() -> None:
    """Progress lines reach a log file or pipe as they are printed, not in 8 KiB blocks (`trm train > log`)."""
    for stream in (sys.stdout, sys.stderr):
        if not stream.isatty() and hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)


def main(argv: list[str] | None = None) -> int:
    line_buffered_output()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if getattr(args, "accepts_overrides", False):
            return int(args.func(args, extra) or 0)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, MemoryError) as error:
        print(f"trm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
