"""`trm app MODEL [--port P]`: serve the browser demo of `modeling_trm/inference/app.py` (needs the `[app]` extra)."""

from __future__ import annotations

import argparse

from ..inference import app  # imports torch only when a puzzle is solved
from ..threads import THREADS_HELP, apply_thread_choice


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("app", help="browser demo: solve a puzzle and watch every supervision step",
                                   description=app.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    app.add_arguments(parser, model_required=True)
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.set_defaults(func=run_app)


def run_app(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError("the demo app needs gradio: pip install 'modeling-trm[app]'") from None
    apply_thread_choice(args.threads)
    app.launch(args.model, args.port, args.host, args.step_delay)
    return 0
