"""`trm convert-reference CHECKPOINT|REPO_ID [--file PATH_IN_REPO] OUT` and `trm export-reference MODEL OUT`: the reference code's checkpoints.

The work is `modeling_trm.convert`, imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The keys of `configuration_trm.PRESETS` and `convert.REFERENCE_PREFIX` (a test keeps them equal).
PRESET_NAMES = ("arc", "maze", "sudoku-att", "sudoku-mlp")
REFERENCE_PREFIX = "_orig_mod.model.inner."
RUN_CONFIG = "all_config.yaml"  # `convert.REFERENCE_RUN_CONFIG`


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """`trm convert-reference` and `trm export-reference`."""
    convert = subparsers.add_parser(
        "convert-reference",
        help="turn a reference TRM checkpoint into a from_pretrained folder",
        description="Convert a checkpoint of the reference TRM code (torch.save state dict, keys "
                    "'_orig_mod.model.inner.*') into a save_pretrained folder. The run's all_config.yaml beside "
                    "the checkpoint (or --config) gives every architecture field, checked against the tensor "
                    "shapes; without one, shapes give the hidden size, vocabulary, mixer, layers and puzzle-id "
                    "count and --preset gives the rest. Flags override either.",
    )
    convert.add_argument("checkpoint", help="reference checkpoint (.pt/.pth/step_N or .safetensors), or with "
                                            "--file a Hub repo id such as arcprize/trm_arc_prize_verification")
    convert.add_argument("out_dir", type=Path, help="folder to write (must not exist or be empty)")
    hub = convert.add_argument_group("Hub source (CHECKPOINT is a repo id)")
    hub.add_argument("--file", dest="hub_file", metavar="PATH_IN_REPO",
                     help=f"the checkpoint's path in the repo, e.g. arc_v1/step_518071; the {RUN_CONFIG} of its "
                          f"folder is fetched too (cached as every Hub download)")
    hub.add_argument("--revision", help="branch, tag or commit (default: main)")
    hub.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    hub.add_argument("--cache-dir", dest="cache_dir", type=Path, help="download cache (default: the Hub cache)")
    convert.add_argument("--preset", choices=PRESET_NAMES,
                         help="task preset for what shapes cannot tell (needed for a bare checkpoint; with a run "
                              "config, default: read off its data_paths)")
    convert.add_argument("--config", dest="config_path", type=Path, metavar="PATH",
                         help=f"the run's {RUN_CONFIG} (default: the one beside CHECKPOINT, if any)")
    convert.add_argument("--no-run-config", dest="no_run_config", action="store_true",
                         help=f"ignore an {RUN_CONFIG} beside CHECKPOINT (use --preset and flags only)")
    convert.add_argument("--H-cycles", dest="H_cycles", type=int, help="T, latent recursions per supervision step")
    convert.add_argument("--L-cycles", dest="L_cycles", type=int, help="n, z-updates per latent recursion")
    convert.add_argument("--halt-max-steps", dest="halt_max_steps", type=int, help="N_sup, most supervision steps")
    convert.add_argument("--grid-shape", dest="grid_shape", type=int, nargs=2, metavar=("ROWS", "COLS"))
    convert.add_argument("--num-heads", dest="num_heads", type=int, help="attention heads (reference: 8)")
    convert.add_argument("--expansion", type=float, help="SwiGLU expansion (reference: 4)")
    convert.add_argument("--pos-encodings", dest="pos_encodings", choices=("rope", "learned", "none"))
    convert.add_argument("--rope-theta", dest="rope_theta", type=float, help="RoPE base (reference: 10000)")
    convert.add_argument("--puzzle-emb-len", dest="puzzle_emb_len", type=int, help="prefix tokens (reference: 16)")
    convert.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    convert.set_defaults(func=_run_convert)

    export = subparsers.add_parser(
        "export-reference",
        help="save a from_pretrained TRM as a reference-layout state dict",
        description="Write the weights of a TRM folder as a torch.save state dict with the reference code's "
                    "key names ('_orig_mod.model.inner.*'), loadable by the reference scripts.",
    )
    export.add_argument("model_dir", type=Path, help="a save_pretrained folder of a TRM")
    export.add_argument("out_file", type=Path, help="file to write")
    export.add_argument("--prefix", default=REFERENCE_PREFIX, help=f"key prefix (default {REFERENCE_PREFIX!r})")
    export.set_defaults(func=_run_export)


def _run_convert(args: argparse.Namespace) -> int:
    from ..configuration_trm import TRMConfig
    from ..hub_card.render import count_parameters
    from ..convert import (
        OVERRIDE_FLAGS,
        ReferenceCheckpointError,
        convert_reference_checkpoint,
        show_notes,
    )

    show_notes()
    overrides = {name: getattr(args, name) for name in OVERRIDE_FLAGS if getattr(args, name) is not None}
    if "grid_shape" in overrides:
        overrides["grid_shape"] = tuple(overrides["grid_shape"])
    if args.no_run_config and args.config_path is not None:
        print("trm convert-reference: error: --config and --no-run-config exclude each other", file=sys.stderr)
        return 2
    config_path = False if args.no_run_config else args.config_path
    hub_options = [flag for flag, value in (("--revision", args.revision), ("--token", args.token),
                                            ("--cache-dir", args.cache_dir)) if value is not None]
    if args.hub_file is None and hub_options:
        print(f"trm convert-reference: error: {', '.join(hub_options)} need --file (CHECKPOINT is then a Hub repo id)",
              file=sys.stderr)
        return 2
    checkpoint = Path(args.checkpoint)
    if args.hub_file is None and not checkpoint.exists() and args.checkpoint.count("/") == 1:
        print(f"trm convert-reference: error: {args.checkpoint}: no such file; for a Hub repo, name the checkpoint "
              f"in it with --file PATH_IN_REPO", file=sys.stderr)
        return 1
    try:
        if args.hub_file is not None:
            from ..convert import download_reference_checkpoint

            checkpoint, fetched_config = download_reference_checkpoint(
                args.checkpoint, args.hub_file, revision=args.revision, token=args.token, cache_dir=args.cache_dir)
            print(f"fetched {args.checkpoint}/{args.hub_file}" + (f" and {RUN_CONFIG}" if fetched_config else ""))
            if config_path is None:
                config_path = fetched_config if fetched_config is not None else False
        out = convert_reference_checkpoint(checkpoint, args.out_dir, args.preset, overwrite=args.overwrite,
                                           config_path=config_path, **overrides)
    except ReferenceCheckpointError as error:
        print(f"trm convert-reference: error: {error}", file=sys.stderr)
        return 1
    config = TRMConfig.from_pretrained(out)
    total, _, table = count_parameters(out, config)
    print(f"wrote {out}: {config.mixer}, hidden {config.hidden_size}, {config.num_layers} layers, "
          f"{total - table:,} network parameters + {table:,} in the puzzle-id table, "
          f"vocab {config.vocab_size}, grid {config.grid_shape[0]}x{config.grid_shape[1]}, "
          f"{config.num_puzzle_identifiers} puzzle ids, T={config.H_cycles} n={config.L_cycles} "
          f"N_sup={config.halt_max_steps}"
          + ("; architecture from the run config (copied as reference_config.yaml)"
             if (out / "reference_config.yaml").is_file() else ""))
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from ..convert import save_reference_checkpoint, show_notes
    from ..modeling_trm import TRMForGridReasoning

    show_notes()
    try:
        model = TRMForGridReasoning.from_pretrained(args.model_dir)
    except (OSError, ValueError) as error:
        print(f"trm export-reference: error: cannot load {args.model_dir}: {error}", file=sys.stderr)
        return 1
    path = save_reference_checkpoint(model, args.out_file, prefix=args.prefix)
    print(f"wrote {path} ({len(model.state_dict())} tensors, prefix {args.prefix!r})")
    return 0
