"""`trm demo`: generate Sudoku offline, train a small TRM on this CPU, score it, draw it, package it.

The work is `modeling_trm.experiments.demo.run_demo`, imported when the command runs.
"""

from __future__ import annotations

import argparse

from ..threads import THREADS_HELP, apply_thread_choice

# `trm demo --task NAME`: the keys of `experiments.demo.DEMO_TASKS` (a test keeps them equal).
DEMO_TASK_NAMES = ("sudoku6", "sudoku9")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="train, score, draw and package a small TRM on this CPU")
    parser.add_argument("--task", default="sudoku6", choices=sorted(DEMO_TASK_NAMES),
                        help="which demo recipe to train: sudoku6 (default, recipe 'demo', about 5 min) or sudoku9 "
                             "(recipe 'sudoku9-cpu', about an hour on an idle 2-core CPU)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="optional wall-clock cap on training; training otherwise runs the recipe's fixed "
                             "number of steps, and a run cut short by the cap says so in its summary")
    parser.add_argument("--eval-steps", type=int, default=None,
                        help="score the held-out slice every N steps for the learning curve (default: the recipe's)")
    parser.add_argument("--output-dir", default="trm-demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.set_defaults(func=_run_demo_command)


def _run_demo_command(args: argparse.Namespace) -> int:
    apply_thread_choice(args.threads)  # before torch is imported: a fresh import shows torch's default
    from ..experiments.demo import run_demo

    run_demo(args.output_dir, args.minutes, seed=args.seed, overwrite=args.overwrite, task=args.task,
             eval_steps=args.eval_steps)
    return 0
