"""`trm eval --model PATH_OR_HUB_ID --dataset DIR [...]`: score a checkpoint and write its results JSON.

The work is `modeling_trm.inference.evaluation` (its docstring is this command's help), imported when the
command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..threads import THREADS_HELP, apply_thread_choice

# The choices of `inference.evaluation.HALTING_MODES` / `DTYPES` (a test keeps them equal).
HALTING_MODES = ("max", "act")
DTYPES = ("auto", "fp32", "bf16")
# `modeling_trm.modeling_trm.SELECTION_RULES` (a test keeps them equal).
SELECTION_RULES = ("halt", "vote")
DESCRIPTION = """Score a TRM checkpoint on a TRM dataset folder and write the results JSON.

Every check (output path, dataset, model config) runs before the weights load or anything is computed.
The JSON's protocol block records how the number was obtained (steps, halting, dtype, device, threads)."""


def add_test_time_options(parser: argparse.ArgumentParser) -> None:
    """`solve`'s test-time compute as options, shared by `trm eval` and `trm solve`."""
    parser.add_argument("--samples", type=int, default=1,
                        help="test-time breadth: K noisy trajectories per puzzle, one answer chosen (default 1: "
                             "today's single deterministic run)")
    parser.add_argument("--noise-std", type=float, default=0.0,
                        help="std of the Gaussian noise added to the latent z before every supervision step "
                             "(PTRM reports 0.3 with 100 samples and 64 steps)")
    parser.add_argument("--selection", choices=SELECTION_RULES, default="halt",
                        help="halt: the trajectory the halting head is surest of (PTRM); vote: the most common answer")
    parser.add_argument("--seed", type=int, default=0, help="seeds the noise (same seed, same answers)")
    parser.add_argument("--escalate", action="store_true",
                        help="adaptive compute: one trajectory under ACT first; only puzzles whose halting head is "
                             "not confident after --escalate-after steps get the --samples noisy trajectories")
    parser.add_argument("--escalate-after", dest="escalate_after", type=int, default=None,
                        help="step budget of the first trajectory under --escalate (default: the model's)")
    parser.add_argument("--escalate-confidence", dest="escalate_confidence", type=float, default=None,
                        help="under --escalate, the halting probability a first answer must exceed to be kept "
                             "(default 0.5, the ACT rule; higher escalates more puzzles)")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add `trm eval` to the `trm` parser."""
    parser = subparsers.add_parser(
        "eval", help="score a checkpoint on a TRM dataset folder and write a results JSON",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="save_pretrained folder or Hub repo id")
    parser.add_argument("--dataset", required=True, type=Path, help="dataset folder (trm data build/generate)")
    parser.add_argument("--split", default="test", help="split to score (default test)")
    parser.add_argument("--halting", choices=HALTING_MODES, default="max",
                        help="max: every step (paper protocol, default); act: stop once q_halt > 0")
    parser.add_argument("--max-steps", type=int, default=None, help="supervision steps (default: the model's, 16)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="auto: bf16 autocast where the hardware has bf16 units, else fp32")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    add_test_time_options(parser)
    parser.add_argument("--no-act", action="store_true", help="under --halting max, skip the ACT figures")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON to write (default: results.json inside a local model folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    parser.set_defaults(func=run_eval_command)


def run_eval_command(args: argparse.Namespace) -> int:
    """`trm eval`: every check (output path, dataset, model config) runs before weights load or compute."""
    if args.threads is not None and args.threads < 1:
        print(f"trm eval: error: --threads must be positive, got {args.threads}", file=sys.stderr)
        return 2
    apply_thread_choice(args.threads)  # before torch is imported below: a fresh import shows torch's default

    from ..inference.evaluation import evaluate_checkpoint, summary_table

    out = args.out
    if out is None:
        if not Path(args.model).is_dir():
            print(f"trm eval: error: --out is required when --model ({args.model}) is not a local folder",
                  file=sys.stderr)
            return 2
        out = Path(args.model) / "results.json"
    try:
        results = evaluate_checkpoint(
            args.model, args.dataset, out, split=args.split, halting=args.halting, max_steps=args.max_steps,
            batch_size=args.batch_size, limit=args.limit, dtype=args.dtype, device=args.device,
            run_act=not args.no_act, progress=not args.no_progress, overwrite=args.overwrite,
            samples=args.samples, noise_std=args.noise_std, selection=args.selection, seed=args.seed,
            escalate=args.escalate, escalate_after=args.escalate_after,
            escalate_confidence=args.escalate_confidence)
    except (ValueError, OSError) as error:
        print(f"trm eval: error: {error}", file=sys.stderr)
        return 2
    print(summary_table(results))
    print(f"results: {out}")
    return 0
