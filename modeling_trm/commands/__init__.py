"""The `trm` command: the entry point only dispatches; each subcommand is one module of this package.

Every module here registers its own subparser with `add_subcommands(subparsers)` and imports torch,
transformers or datasets only inside the function that runs the command, so `trm --help` and
`trm SUBCOMMAND --help` stay instant (`tests/test_cli_imports.py` checks that nothing heavy is imported).
"""

from __future__ import annotations

import argparse
import sys

from . import ablate, app, bench, convert, data, demo, eval, push, scale, solve, train, visualize

SUBCOMMAND_MODULES = (ablate, app, bench, convert, data, demo, eval, push, scale, solve, train, visualize)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trm", description="Tiny Recursive Model tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMAND_MODULES:
        module.add_subcommands(subparsers)
    return parser


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
