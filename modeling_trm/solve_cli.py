"""`trm solve MODEL [FILE]`: read puzzles (Sudoku-Extreme CSV or one puzzle string per line), print answers.

Each puzzle is a string of `seq_len` symbols of the model's own vocabulary (`config.id_to_symbol`),
row by row; for Sudoku, `0` is accepted as a blank besides `.`. Blank lines and `#` comments are
skipped. A malformed line is reported with its line number and nothing is solved.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Any, TextIO

import torch

from .puzzle_text import encode_puzzle, render_answer, symbol_lookup

CSV_HEADER = ("source", "question", "answer", "rating")


class PuzzleInputError(ValueError):
    """A puzzle line that does not fit the model (length or symbols); names the line."""


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("solve", help="solve puzzles from a file or stdin with a trained model")
    parser.add_argument("model", help="model folder or Hub repo id")
    parser.add_argument("file", nargs="?", help="puzzles file (CSV with a 'question' column, or one per line); "
                                                "default: stdin")
    parser.add_argument("--halting", choices=("act", "max"), default="act")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256, help="puzzles solved at once (slots)")
    parser.add_argument("--grid", action="store_true", help="print each answer as a grid instead of one line")
    parser.set_defaults(func=run_solve)


def read_puzzles(stream: TextIO, config: Any, name: str = "<stdin>") -> list[list[int]]:
    """Token ids of every puzzle in `stream`; raises `PuzzleInputError` naming the first bad line."""
    text = stream.read()
    lookup = symbol_lookup(config)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.strip().split(",")[:2] == list(CSV_HEADER[:2]):
        reader = csv.DictReader(io.StringIO(text))
        entries = [(reader.line_num, row.get("question") or "") for row in reader]
    else:
        entries = [(number, line.rstrip("\r\n")) for number, line in enumerate(lines, start=1)
                   if line.strip() and not line.lstrip().startswith("#")]
    puzzles = []
    for number, question in entries:
        try:
            puzzles.append(encode_puzzle(question, config, lookup))
        except ValueError as error:
            raise PuzzleInputError(f"{name} line {number}: {error}") from None
    if not puzzles:
        raise PuzzleInputError(f"{name}: no puzzles found")
    return puzzles


def run_solve(args: argparse.Namespace) -> int:
    """Solve every puzzle of the file in one stream of `--batch-size` slots: under ACT a slot whose
    puzzle halted takes the next one at once (`solve(..., slots=)`), so no step runs a half-empty batch."""
    from .evaluation import load_model_for_eval

    model = load_model_for_eval(args.model)  # this package's code, which has the slot-refill solve
    if args.file:
        with open(args.file) as handle:
            puzzles = read_puzzles(handle, model.config, args.file)
    else:
        puzzles = read_puzzles(sys.stdin, model.config)
    ids = torch.tensor(puzzles, device=next(model.parameters()).device)
    out = model.solve(ids, halting=args.halting, max_steps=args.max_steps, slots=args.batch_size)
    for answer in out.predictions.tolist():
        print(render_answer(answer, model.config, args.grid))
    return 0


__all__ = ["PuzzleInputError", "add_subcommands", "read_puzzles", "render_answer", "run_solve", "symbol_lookup"]
