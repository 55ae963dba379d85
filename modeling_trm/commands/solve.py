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


from ..puzzle_text import encode_puzzle, render_answer, symbol_lookup
from ..threads import THREADS_HELP, apply_thread_choice
from .eval import add_test_time_options

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
    add_test_time_options(parser)
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.set_defaults(func=run_solve)


def read_puzzles(stream: TextIO, config: Any, name: str = "<stdin>") -> list[list[int]]:
    """Token ids of every puzzle in `stream`; raises `PuzzleInputError` naming the first bad line."""
    try:
        text = stream.read()
    except UnicodeDecodeError as error:
        raise PuzzleInputError(f"{name}: not UTF-8 text ({error})") from None
    lookup = symbol_lookup(config)
    # Only "\n" ends a line: str.splitlines would also split at form feeds, \x85, \u2028, ..., and the
    # line numbers in errors would no longer match the file.
    lines = text.split("\n")
    first = next((line for line in lines if line.strip()), "")
    if first.strip().split(",")[:2] == list(CSV_HEADER[:2]):
        entries = _csv_questions(text, name)
    else:
        comments = "#" not in lookup  # in a maze '#' is a wall, and nearly every maze row starts with one
        entries = [(number, line.rstrip("\r")) for number, line in enumerate(lines, start=1)
                   if line.strip() and not (comments and line.lstrip().startswith("#"))]
    puzzles = []
    for number, question in entries:
        try:
            puzzles.append(encode_puzzle(question, config, lookup))
        except ValueError as error:
            raise PuzzleInputError(f"{name} line {number}: {error}") from None
    if not puzzles:
        raise PuzzleInputError(f"{name}: no puzzles found")
    return puzzles


def _csv_questions(text: str, name: str) -> list[tuple[int, str]]:
    """(line number, question) of each row of a CSV with a `question` column."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    entries: list[tuple[int, str]] = []
    try:
        for row in reader:
            entries.append((reader.line_num, row.get("question") or ""))
    except csv.Error as error:  # a stray quote or carriage return, a field over the csv module's size limit
        complete = entries[-1][0] if entries else 1  # the failing row starts after the last complete one
        raise PuzzleInputError(f"{name} line {complete + 1}: not a readable CSV row ({error})") from None
    return entries


def run_solve(args: argparse.Namespace) -> int:
    """Config, then every puzzle, then the weights: bad input is refused before the model loads.

    All puzzles go through one stream of `--batch-size` slots: under ACT a slot whose puzzle halted
    takes the next one at once (`solve(..., slots=)`), so no step runs a nearly empty batch."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    apply_thread_choice(args.threads, stream=sys.stderr)  # stdout carries only the answers
    import torch

    from ..inference.evaluation import sampling_arguments

    sampling = sampling_arguments(args.samples, args.noise_std, args.selection, args.seed, args.escalate,
                                  args.escalate_after, args.escalate_confidence) or {}

    from transformers import AutoConfig

    from ..inference.evaluation import load_model_for_eval

    try:
        try:
            config = AutoConfig.from_pretrained(args.model, trust_remote_code=True)
        except ValueError as error:  # a config.json field that TRMConfig.validate refuses
            raise ValueError(f"{args.model}: {error}") from None
        if args.file:
            with open(args.file, encoding="utf-8") as handle:
                puzzles = read_puzzles(handle, config, args.file)
        else:
            puzzles = read_puzzles(sys.stdin, config)
        model = load_model_for_eval(args.model)  # this package's code, which has the slot-refill solve
    except OSError as error:  # no such model or puzzles file, unreadable config
        raise ValueError(str(error)) from None
    ids = torch.tensor(puzzles, device=next(model.parameters()).device)
    out = model.solve(ids, halting=args.halting, max_steps=args.max_steps, slots=args.batch_size, **sampling)
    for answer in out.predictions.tolist():
        print(render_answer(answer, model.config, args.grid))
    return 0


__all__ = ["PuzzleInputError", "add_subcommands", "read_puzzles", "render_answer", "run_solve", "symbol_lookup"]
