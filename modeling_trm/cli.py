"""The `trm` command: one entry point whose subcommands live next to the code they drive."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trm", description="Tiny Recursive Model tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    # Each area adds its own subcommands; imports stay explicit so a reader sees every command here.
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
