"""`trm scale MODEL --dataset DIR --out DIR`: exact accuracy against compute for depth, breadth, both, adaptive.

The work is `modeling_trm.experiments.scaling` (and `inference.evaluation` for each point), imported when
the command runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..threads import THREADS_HELP, apply_thread_choice
from .eval import DTYPES, SELECTION_RULES

DESCRIPTION = """Sweep solve's test-time compute on one held-out split, with unchanged weights: one trajectory
of the default steps (plain), more steps (depth), K noisy trajectories (breadth, PTRM), both, and adaptive
escalation (K deep noisy trajectories only for puzzles whose halting head is unsure after the default steps).
Writes OUT/scaling.json (every point as it is measured; a rerun resumes), scaling.md and scaling.png
(exact accuracy against network calls per puzzle)."""


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add `trm scale` to the `trm` parser."""
    parser = subparsers.add_parser(
        "scale", help="measure exact accuracy against test-time compute (depth, breadth, both, adaptive)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="save_pretrained folder or Hub repo id")
    parser.add_argument("--dataset", required=True, type=Path, help="dataset folder (trm data build/generate)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (scaling.json/.md/.png)")
    parser.add_argument("--split", default="test", help="split to score (default test)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--depths", type=int, nargs="+", default=None,
                        help="supervision-step budgets of the depth sweep (default 1 2 4 8 16 32 64); the largest "
                             "is also the depth of the 'both' and 'adaptive' points")
    parser.add_argument("--samples", type=int, nargs="+", default=None,
                        help="K values (>= 2) of the breadth, both and adaptive points (default 4 16)")
    parser.add_argument("--modes", nargs="+", default=None, metavar="MODE",
                        help="points to measure, some of plain depth breadth both adaptive (default all; plain "
                             "is always measured); a rerun with more modes adds their points")
    parser.add_argument("--escalate-confidence", dest="escalate_confidence", type=float, nargs="+", default=None,
                        metavar="P", help="halting probabilities a first answer must exceed to be kept: one adaptive "
                                          "point per value (default 0.5, the ACT rule)")
    parser.add_argument("--noise-std", dest="noise_std", type=float, default=None,
                        help="std of the noise on the latent z before every step (default 0.3, PTRM's)")
    parser.add_argument("--selection", choices=SELECTION_RULES, default="halt")
    parser.add_argument("--seed", type=int, default=0, help="seeds the noise (same seed, same answers)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype", choices=DTYPES, default="auto")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.add_argument("--overwrite", action="store_true", help="discard a previous sweep in OUT")
    parser.set_defaults(func=run_scale_command)


def run_scale_command(args: argparse.Namespace) -> int:
    """Check everything cheap first (options, dataset, config), then load the weights and sweep."""
    if args.threads is not None and args.threads < 1:
        print(f"trm scale: error: --threads must be positive, got {args.threads}", file=sys.stderr)
        return 2
    apply_thread_choice(args.threads)
    import functools

    from ..data.metadata import load_trm_dataset
    from ..experiments.scaling import (DEFAULT_DEPTHS, DEFAULT_NOISE_STD, DEFAULT_SAMPLES, MODES, plan_points,
                                       run_scaling)
    from ..inference.evaluation import check_compatibility, evaluate_model, load_model_for_eval, sampling_arguments

    depths = args.depths or list(DEFAULT_DEPTHS)
    samples = args.samples or list(DEFAULT_SAMPLES)
    noise_std = DEFAULT_NOISE_STD if args.noise_std is None else args.noise_std
    modes = args.modes or list(MODES)
    confidences = args.escalate_confidence or [None]
    try:
        plan_points(16, depths, samples, modes, confidences)
        for k in samples:
            sampling_arguments(k, noise_std, args.selection, args.seed)
        if noise_std <= 0:
            raise ValueError(f"--noise-std must be > 0 for noisy trajectories, got {noise_std}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be positive, got {args.limit}")
        dataset_dict, metadata = load_trm_dataset(args.dataset)
        if args.split not in dataset_dict:
            raise ValueError(f"{args.dataset}: no split {args.split!r} (splits: {sorted(dataset_dict)})")
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(args.model))
        check_compatibility(config, metadata)
    except (ValueError, OSError) as error:
        print(f"trm scale: error: {error}", file=sys.stderr)
        return 2
    if args.overwrite and args.out.exists():
        shutil.rmtree(args.out)
    # the weights load at the first point still to measure, once: a finished sweep reruns without them
    model = functools.cache(lambda: load_model_for_eval(args.model, args.device))

    def evaluate(**options):
        return evaluate_model(model(), dataset_dict[args.split], metadata, batch_size=args.batch_size,
                              limit=args.limit, dtype=args.dtype, progress=False, run_act=False,
                              dataset_path=args.dataset, split=args.split, **options)

    settings = {"model": str(args.model), "dataset": str(args.dataset), "split": args.split, "limit": args.limit}
    try:
        run_scaling(evaluate, args.out, config.default_solve_steps, depths=depths, samples=samples,
                    noise_std=noise_std, selection=args.selection, seed=args.seed, settings=settings, modes=modes,
                    confidences=confidences)
    except ValueError as error:
        print(f"trm scale: error: {error}", file=sys.stderr)
        return 2
    print((args.out / "scaling.md").read_text(encoding="utf-8"))
    return 0
