"""`trm ablate --task sudoku6 --out DIR`: train the demo model under the paper's ablations, tabulate directions.

The work is `modeling_trm.experiments.ablation`, whose top-level imports are light (no torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..experiments.ablation import (ABLATION_TASKS, DEFAULT_EVAL_STEPS, DEFAULT_SEEDS, DEFAULT_STEPS, VARIANTS,
                                    default_jobs, run_ablation, steps_for_budget, variant_by_name)
from ..recipes_io import load_recipe
from ..threads import apply_thread_choice


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablate", help="train the demo model under the paper's ablations and tabulate the directions",
        description="Trains every variant with the same data, fixed step budget and seeds; scores each with the "
                    "paper protocol (16 steps, EMA weights); writes ablations.json, ablations.md and ablations.png.")
    parser.add_argument("--task", default="sudoku6", choices=sorted(ABLATION_TASKS))
    parser.add_argument("--out", required=True, help="output folder (runs, ablations.json/.md/.png); resumes if present")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"supervision steps per run (default {DEFAULT_STEPS})")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="instead of --steps: the step count whose whole ablation takes about M minutes on an "
                             "idle 2-core CPU, from a fixed per-step cost model (never a wall-clock stop)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds 0..K-1 per variant")
    parser.add_argument("--variants", nargs="+", default=None, help="a subset of the variants (default: all)")
    parser.add_argument("--eval-steps", type=int, default=DEFAULT_EVAL_STEPS,
                        help="also score a held-out slice every N steps for per-run learning curves (0: off)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs trained at once, each in its own process (default: one per CPU this process may "
                             "use (affinity, cgroup quota), at most 8; small models use cores better this way)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of each run (default: OMP_NUM_THREADS if set, else the automatic count "
                             "of `trm` (CPUs usable and left idle by other processes, printed as '[threads] N "
                             "(why)') shared by the JOBS runs, at least 1 each)")
    parser.set_defaults(func=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    if args.steps is not None and args.budget_minutes is not None:
        raise ValueError("give --steps or --budget-minutes, not both")
    variants = VARIANTS if args.variants is None else tuple(variant_by_name(n) for n in args.variants)
    recipe = load_recipe(ABLATION_TASKS[args.task])
    steps = args.steps if args.steps is not None else DEFAULT_STEPS
    if args.budget_minutes is not None:
        steps = steps_for_budget(args.budget_minutes, variants, args.seeds, recipe)
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise ValueError(f"--jobs must be positive, got {jobs}")
    choice = apply_thread_choice(args.threads)  # the parent's; runs with --jobs 1 train in this process
    # an automatic count is this machine's budget, split over the parallel runs; a user's count is per run
    per_run = max(1, choice.threads // jobs) if choice.source == "automatic" else choice.threads
    run_ablation(Path(args.out), recipe, variants, steps=steps, seeds=args.seeds, eval_steps=args.eval_steps,
                 jobs=jobs, threads_per_run=per_run)
    return 0
