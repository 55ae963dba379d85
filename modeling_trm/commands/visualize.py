"""`trm visualize MODEL --puzzle Q [--solution S] [--out refinement.png]`: draw one puzzle's refinement.

The picture shows the question, the model's answer after every supervision step (cells that equal
the solution green, the others red, with sigmoid(q_halt) under each step) and the solution. Without
`--solution`, a Sudoku is solved exactly by the package's solver; for other tasks the cells are
compared with the model's own final answer (the title says so).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any


from .solve import PuzzleInputError, read_puzzles


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("visualize", help="draw one puzzle's refinement step by step (PNG)")
    parser.add_argument("model", help="model folder or Hub repo id")
    parser.add_argument("--puzzle", required=True, help="the question, row by row, in the model's symbols")
    parser.add_argument("--solution", default=None, help="the answer, same format (default: solved exactly for "
                                                          "Sudoku, else the model's final answer)")
    parser.add_argument("--out", type=Path, default=Path("refinement.png"))
    parser.add_argument("--halting", choices=("act", "max"), default="act",
                        help="act: draw the steps until the model halts; max: all steps")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.set_defaults(func=run_visualize)


def parse_one(text: str, config: Any, what: str) -> list[int]:
    """Token ids of one puzzle string; errors name the argument."""
    try:
        puzzles = read_puzzles(io.StringIO(text + "\n"), config, name=what)
    except PuzzleInputError as error:
        raise ValueError(str(error).replace(" line 1", "")) from None
    if len(puzzles) != 1:
        raise ValueError(f"{what}: expected one puzzle, got {len(puzzles)}")
    return puzzles[0]


def exact_sudoku_solution(question: list[int], config: Any) -> list[int]:
    """The unique solution of a Sudoku question in token ids (blank -> solved digit)."""
    from ..data.sudoku_solver import solve_sudoku

    size = config.grid_shape[0]
    symbols = list(config.id_to_symbol)
    digits = [0 if token == config.blank_token_id else int(symbols[token]) for token in question]
    found = solve_sudoku(digits, size, limit=2).solutions
    if len(found) != 1:
        raise ValueError(f"--puzzle: the Sudoku has {'no' if not found else 'several'} solutions; pass --solution")
    return [symbols.index(str(digit)) for digit in found[0]]


def run_visualize(args: argparse.Namespace) -> int:
    import torch

    from transformers import AutoModel

    from ..inference.visualize import plot_refinement

    model = AutoModel.from_pretrained(args.model, trust_remote_code=True).eval()
    config = model.config
    question = parse_one(args.puzzle, config, "--puzzle")
    solution = parse_one(args.solution, config, "--solution") if args.solution else None
    if solution is None and config.task == "sudoku":
        solution = exact_sudoku_solution(question, config)
    solved = model.solve(torch.tensor([question]), halting=args.halting, max_steps=args.max_steps,
                         return_trajectory=True)
    steps = int(solved.steps[0])
    against = "the solution"
    if solution is None:
        solution, against = solved.predictions[0].tolist(), "the model's final answer"
    probabilities = torch.sigmoid(solved.trajectory_q_halt_logits[0]).tolist()
    right = solved.predictions[0].tolist() == solution
    title = (f"TRM refinement: {steps} steps ({args.halting}), final answer "
             f"{'equals' if right else 'differs from'} {against}")
    path = plot_refinement(question, solution, solved.trajectory[0].numpy(), probabilities,
                           tuple(config.grid_shape), list(config.id_to_symbol), args.out, steps_used=steps,
                           title=title)
    print(f"{path}: {steps} steps, final answer {'right' if right else 'wrong'} (against {against})")
    return 0
