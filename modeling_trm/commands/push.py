"""`trm push OUTPUT_DIR --repo-id ORG/NAME`, `trm card OUTPUT_DIR` and `trm data push DATASET_DIR --repo-id ...`.

The work is `modeling_trm.publish` (its docstring is this command's help); its top-level imports are light.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import publish


def _add_push_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, help="target repo, 'org/name' (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", help="branch to commit to (created from main if missing; default main)")
    parser.add_argument("--commit-message", help="commit title")


def _report_errors(run):
    """Turn the errors a user can fix into one line on stderr and exit status 2 (bad input) or 1 (Hub)."""
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except publish.PublishError as error:
            print(f"trm: error: {error}", file=sys.stderr)
            return 1
        except (ValueError, FileNotFoundError) as error:
            print(f"trm: error: {error}", file=sys.stderr)
            return 2
    return wrapped


def _load_recipe_arg(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    from ..recipes_io import load_recipe

    return load_recipe(value)


@_report_errors
def _run_push(args: argparse.Namespace) -> int:
    commit = publish.push_model_folder(args.output_dir, args.repo_id, private=args.private, revision=args.revision,
                               commit_message=args.commit_message,
                               results=args.results or None, recipe=_load_recipe_arg(args.recipe),
                               render_card=True if args.render_card else None, with_app=args.with_app)
    print(f"pushed {publish.find_model_folder(args.output_dir)} to {args.repo_id}: {commit.commit_url}")
    return 0


@_report_errors
def _run_card(args: argparse.Namespace) -> int:
    path = publish.write_model_card(args.output_dir, results=args.results or None, recipe=_load_recipe_arg(args.recipe),
                            repo_id=args.repo_id)
    print(f"wrote {path}")
    return 0


@_report_errors
def _run_data_push(args: argparse.Namespace) -> int:
    commit = publish.push_dataset_folder(args.dataset_dir, args.repo_id, private=args.private, revision=args.revision,
                                 commit_message=args.commit_message)
    print(f"pushed {args.dataset_dir} to datasets/{args.repo_id}: {commit.commit_url}")
    return 0


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add `trm push` and `trm card`."""
    push = subparsers.add_parser("push", help="upload a trained model (EMA weights, code, card, results) in one commit",
                                 description=publish.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    push.add_argument("output_dir", metavar="OUTPUT_DIR", help="a model folder or a 'trm train' output dir")
    _add_push_options(push)
    push.add_argument("--results", action="append", metavar="FILE",
                      help="results JSON of 'trm eval' to publish instead of OUTPUT_DIR/results.json (repeatable); "
                           "the card is rendered from them")
    push.add_argument("--recipe", help="recipe name or JSON path for the card (default: OUTPUT_DIR/recipe.json)")
    push.add_argument("--render-card", action="store_true",
                      help="render the card even if OUTPUT_DIR/README.md exists (the local file is not changed)")
    push.add_argument("--with-app", action="store_true",
                      help="also upload the browser demo as app.py + requirements.txt (as a Gradio Space runs it; "
                           "the model repo itself stays a model repo)")
    push.set_defaults(func=_run_push)

    card = subparsers.add_parser("card", help="render the model card of a model folder into its README.md")
    card.add_argument("output_dir", metavar="OUTPUT_DIR", help="a model folder or a 'trm train' output dir")
    card.add_argument("--results", action="append", metavar="FILE",
                      help="results JSON (default: OUTPUT_DIR/results.json)")
    card.add_argument("--recipe", help="recipe name or JSON path (default: OUTPUT_DIR/recipe.json)")
    card.add_argument("--repo-id", help="Hub id to show in the loading snippet")
    card.set_defaults(func=_run_card)


def add_data_push_parser(data_subparsers: argparse._SubParsersAction) -> None:
    """Add `push` to the `trm data` group (call with the group's subparsers)."""
    parser = data_subparsers.add_parser("push", help="upload a TRM dataset folder (Parquet + trm_metadata.json)")
    parser.add_argument("dataset_dir", metavar="DATASET_DIR",
                        help="a folder written by 'trm data build' (save_trm_dataset)")
    _add_push_options(parser)
    parser.set_defaults(func=_run_data_push)
