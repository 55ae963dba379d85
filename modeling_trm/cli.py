"""The `trm` command: one entry point whose subcommands live next to the code they drive."""

from __future__ import annotations

import argparse
import sys

from . import convert, demo, publish, solve_cli, train_cli
from .data import cli as data_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trm", description="Tiny Recursive Model tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    convert.add_subcommands(subparsers)
    data_cli.add_subcommands(subparsers)
    demo.add_subcommands(subparsers)
    publish.add_subcommands(subparsers)
    solve_cli.add_subcommands(subparsers)
    train_cli.add_subcommands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if getattr(args, "accepts_overrides", False):
            return int(args.func(args, extra) or 0)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"trm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
