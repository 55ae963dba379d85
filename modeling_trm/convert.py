"""Convert checkpoints of the reference TRM code to this project's format, and back.

The published TRM checkpoints (Sudoku, maze, ARC; `reference/TRM_FACTS.md` §7) are raw `torch.save`
state dicts of a `torch.compile`d training wrapper: no config, every key prefixed
`_orig_mod.model.inner.`. This module reads one, infers what the tensor shapes tell (hidden size,
vocabulary, mixer, layers, sequence length for `mlp_t`, puzzle-id count), takes every architecture
field of the run's `all_config.yaml` (pretrain.py's dumped `PretrainConfig`, `arch:` section) when
one lies beside the checkpoint, checked against the shapes, and the rest (task, grid, symbols; for a
bare file also T, n, halting) from a `TRMConfig` preset plus overrides, renames every tensor and writes
a `save_pretrained` folder that `AutoModel.from_pretrained` loads. `export_reference_state_dict` does
the reverse, so models trained here run in the reference scripts.

Both networks compute the same function: the names map one to one, the fused qkv / gate+up layouts
are the same, and `H_init`/`L_init` (bf16 buffers there) become the fp32 parameters
`y_init`/`z_init` with identical values. `tests/test_convert.py` checks the converted model step by
step against an independent re-derivation of the reference forward pass.

    trm convert-reference run/step_26040 ./trm-sudoku-mlp        # run/all_config.yaml gives the architecture
    trm convert-reference step_26040 ./trm-sudoku-mlp --preset sudoku-mlp   # a bare file
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .configuration_trm import PRESETS, SUDOKU_SYMBOLS, TRMConfig
from .modeling_trm import RotaryEmbedding, TRMForGridReasoning

logger = logging.getLogger(__name__)

REFERENCE_PREFIX = "_orig_mod.model.inner."
# ARC checkpoints are 1.8-2.5 GB, nearly all puzzle table: the network and the table land in separate
# safetensors shards (one tensor is never split), which load memory-mapped.
CONVERTED_SHARD_SIZE = "1GB"
# Wrapper prefixes of the reference training code, outermost first: torch.compile, the loss head, the ACT wrapper.
_WRAPPER_PREFIXES = ("_orig_mod.", "model.", "inner.")

# Reference name -> our name, for tensors outside the layer stack.
_TOP_LEVEL_NAMES = {
    "H_init": "y_init",
    "L_init": "z_init",
    "embed_tokens.embedding_weight": "embed_tokens.weight",
    # Not in §7 (no TRM run uses learned positions); named like the token embedding it sits beside.
    "embed_pos.embedding_weight": "embed_positions.weight",
    "puzzle_emb.weights": "puzzle_embedding.weight",
    "lm_head.weight": "lm_head.weight",
    "q_head.weight": "q_head.weight",
    "q_head.bias": "q_head.bias",
}
# Reference name -> our name inside `L_level.layers.{i}.` / `core.layers.{i}.`.
_LAYER_NAMES = {
    "self_attn.qkv_proj.weight": "self_attn.qkv_proj.weight",
    "self_attn.o_proj.weight": "self_attn.o_proj.weight",
    "mlp_t.gate_up_proj.weight": "mlp_t.swiglu.gate_up_proj.weight",
    "mlp_t.down_proj.weight": "mlp_t.swiglu.down_proj.weight",
    "mlp.gate_up_proj.weight": "mlp.gate_up_proj.weight",
    "mlp.down_proj.weight": "mlp.down_proj.weight",
}
_REFERENCE_LAYER = re.compile(r"L_level\.layers\.(\d+)\.(.+)")
_PROJECT_LAYER = re.compile(r"core\.layers\.(\d+)\.(.+)")
# Reference buffers that are recomputed at run time (sparse-embedding scratch space, RoPE tables).
_TRANSIENT_BUFFERS = re.compile(r"(^puzzle_emb\.local_(weights|ids)$)|((^|\.)(cos|sin)_cached$)")
# The reference keeps the initial states as bf16 buffers.
_INIT_STATE_NAMES = ("H_init", "L_init")


class ReferenceCheckpointError(ValueError):
    """A reference checkpoint that cannot be converted (unreadable, wrong keys or shapes)."""


# ----------------------------------------------------------------------------- names


def to_project_name(reference_name: str) -> str | None:
    """Our parameter name for a (prefix-free) reference name, or None if there is none."""
    if reference_name in _TOP_LEVEL_NAMES:
        return _TOP_LEVEL_NAMES[reference_name]
    match = _REFERENCE_LAYER.fullmatch(reference_name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"core.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    return None


def to_reference_name(project_name: str) -> str:
    """The reference name (without wrapper prefix) of one of our parameters."""
    for reference, ours in _TOP_LEVEL_NAMES.items():
        if ours == project_name:
            return reference
    match = _PROJECT_LAYER.fullmatch(project_name)
    if match:
        for reference, ours in _LAYER_NAMES.items():
            if ours == match.group(2):
                return f"L_level.layers.{match.group(1)}.{reference}"
    raise KeyError(f"{project_name!r} has no counterpart in the reference layout")


# ----------------------------------------------------------------------------- reading


def load_reference_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a reference checkpoint: `.safetensors`, or anything `torch.load(weights_only=True)` reads
    (the reference saves extension-less `step_N` files). A `{"model": sd}` / `{"state_dict": sd}`
    wrapper without tensors of its own is unwrapped; anything else that is not a flat
    name -> tensor mapping is refused."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceCheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as error:  # safetensors raises its own error types
            raise ReferenceCheckpointError(f"{path}: not a readable safetensors file ({error})") from error
    try:
        # Memory-mapped where the file is a zip archive (torch.save's format since 1.6): the tensors
        # stay pages of the file, so an ARC checkpoint's 1.8 GB puzzle table is never copied.
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # pickle, zip and weights-only errors all mean "cannot read"
        raise ReferenceCheckpointError(f"{path}: cannot be read with torch.load(weights_only=True) ({error})") from error
    return _as_state_dict(loaded, str(path))


def _as_state_dict(loaded: Any, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(loaded, Mapping):
        raise ReferenceCheckpointError(f"{source}: not a state dict (holds a {type(loaded).__name__})")
    has_tensors = any(isinstance(value, torch.Tensor) for value in loaded.values())
    if not has_tensors:
        for wrapper_key in ("model", "state_dict"):
            inner = loaded.get(wrapper_key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                logger.info("%s: using the state dict under %r", source, wrapper_key)
                return _as_state_dict(inner, f"{source}[{wrapper_key!r}]")
    if not loaded:
        raise ReferenceCheckpointError(f"{source}: not a state dict (it is empty)")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ReferenceCheckpointError(
                f"{source}: not a state dict (entry {key!r} holds a {type(value).__name__}, not a tensor)"
            )
    return dict(loaded)


def strip_reference_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `_orig_mod.` / `model.` / `inner.` wrapper prefixes, whichever are present."""
    stripped: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        name = key
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name in stripped:
            raise ReferenceCheckpointError(f"two keys become {name!r} once wrapper prefixes are stripped (one is {key!r})")
        stripped[name] = tensor
    return stripped


def _drop_transient_buffers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    dropped = sorted(key for key in state_dict if _TRANSIENT_BUFFERS.search(key))
    if dropped:
        logger.info("dropping non-persistent reference buffers (recomputed at run time): %s", ", ".join(dropped))
    return {key: value for key, value in state_dict.items() if key not in dropped}


# ----------------------------------------------------------------------------- run config (all_config.yaml)

# pretrain.py dumps its whole `PretrainConfig` (`yaml.dump(config.model_dump())`) as this file beside the `step_N` files.
REFERENCE_RUN_CONFIG = "all_config.yaml"
# The converted folder keeps a verbatim copy under this name, and the parsed dict in config.json under this field.
REFERENCE_RUN_CONFIG_COPY = "reference_config.yaml"
REFERENCE_RUN_CONFIG_FIELD = "reference_run_config"
# `arch.name` of the reference TRM (`models/recursive_reasoning/trm.py`, class TinyRecursiveReasoningModel_ACTV1).
REFERENCE_ARCH_NAME = "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1"
# arch key -> (TRMConfig field, kind). vocab_size / seq_len / num_puzzle_identifiers come from the dataset
# metadata in pretrain.py and are usually absent; they are used (and checked) where a run config has them.
_ARCH_FIELDS = {
    "H_cycles": ("H_cycles", int), "L_cycles": ("L_cycles", int), "L_layers": ("num_layers", int),
    "hidden_size": ("hidden_size", int), "num_heads": ("num_heads", int), "expansion": ("expansion", float),
    "rope_theta": ("rope_theta", float), "rms_norm_eps": ("rms_norm_eps", float),
    "halt_max_steps": ("halt_max_steps", int), "halt_exploration_prob": ("halt_exploration_prob", float),
    "puzzle_emb_len": ("puzzle_emb_len", int), "vocab_size": ("vocab_size", int), "seq_len": ("seq_len", int),
    "num_puzzle_identifiers": ("num_puzzle_identifiers", int),
}
_LOSS_TYPES = {"stablemax_cross_entropy": "stablemax", "softmax_cross_entropy": "softmax"}


def load_reference_run_config(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a run's `all_config.yaml` (needs PyYAML): a mapping with an `arch:` mapping, or a clear error."""
    import yaml  # PyYAML comes with transformers / huggingface_hub / datasets

    path = Path(path)
    if not path.is_file():
        raise ReferenceCheckpointError(f"{path}: no such run config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ReferenceCheckpointError(f"{path}: cannot be read ({error})") from error
    except yaml.YAMLError as error:
        raise ReferenceCheckpointError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(data, dict):
        raise ReferenceCheckpointError(f"{path}: not a run config (holds a {type(data).__name__}; expected the "
                                       f"mapping pretrain.py dumps, with an 'arch:' section)")
    if not isinstance(data.get("arch"), dict):
        raise ReferenceCheckpointError(f"{path}: no 'arch:' section, so not a reference run config "
                                       f"(top-level keys: {_summarise(list(map(str, data)))})")
    return data


def read_run_config(checkpoint: Any, config_path: str | os.PathLike | bool | None = None
                    ) -> tuple[dict[str, Any] | None, Path | None]:
    """The run config for a checkpoint: `config_path` if given, else `all_config.yaml` beside a checkpoint
    file if there is one, else none. `config_path=False` ignores any run config."""
    if config_path is False:
        return None, None
    if config_path is not None and config_path is not True:
        path = Path(config_path)
    elif isinstance(checkpoint, (str, os.PathLike)) and (Path(checkpoint).parent / REFERENCE_RUN_CONFIG).is_file():
        path = Path(checkpoint).parent / REFERENCE_RUN_CONFIG
    else:
        return None, None
    return load_reference_run_config(path), path


def download_reference_checkpoint(repo_id: str, filename: str, *, revision: str | None = None,
                                  token: str | bool | None = None, cache_dir: str | os.PathLike | None = None
                                  ) -> tuple[Path, Path | None]:
    """Fetch a published checkpoint (`filename`, e.g. `arc_v1/step_518071`) and the `all_config.yaml`
    of its folder from a Hub repo into the usual cache; `(checkpoint, run config or None)`. Revision,
    token, cache and `HF_HUB_OFFLINE` work as in `hf_hub_download`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    folder = filename.rsplit("/", 1)[0] if "/" in filename else ""
    config_name = f"{folder}/{REFERENCE_RUN_CONFIG}" if folder else REFERENCE_RUN_CONFIG
    fetch = dict(repo_id=repo_id, revision=revision, token=token, cache_dir=cache_dir)
    try:
        checkpoint = Path(hf_hub_download(filename=filename, **fetch))
    except RepositoryNotFoundError as error:
        raise ReferenceCheckpointError(f"{repo_id}: no such model repo on the Hub (or no access with this "
                                       f"token)") from error
    except RevisionNotFoundError as error:
        raise ReferenceCheckpointError(f"{repo_id}: no revision {revision!r}") from error
    except LocalEntryNotFoundError as error:  # a subclass of EntryNotFoundError: test it first
        raise ReferenceCheckpointError(f"{where}/{filename}: not in the local cache and the Hub cannot be reached "
                                       f"(HF_HUB_OFFLINE is {os.environ.get('HF_HUB_OFFLINE', 'unset')})") from error
    except EntryNotFoundError as error:
        raise ReferenceCheckpointError(f"{where}: no file {filename!r} in the repo") from error
    except HfHubHTTPError as error:
        raise ReferenceCheckpointError(f"{where}/{filename}: download failed ({error})") from error
    try:
        run_config = Path(hf_hub_download(filename=config_name, **fetch))
    except LocalEntryNotFoundError:
        logger.warning("%s: %s is not cached and the Hub cannot be reached; shapes and --preset give the "
                       "architecture", where, config_name)
        run_config = None
    except EntryNotFoundError:
        logger.info("%s: no %s beside %s; shapes and --preset give the architecture", where, config_name, filename)
        run_config = None
    return checkpoint, run_config


def _run_config_settings(state_dict: Mapping[str, torch.Tensor], run_config: Mapping[str, Any],
                         source: str) -> tuple[dict[str, Any], str | None]:
    """TRMConfig fields from a run config's `arch:` section, each checked against the checkpoint's shapes,
    and the preset its `data_paths` name (None if they name no known task)."""
    arch = run_config.get("arch")
    if not isinstance(arch, Mapping):
        raise ReferenceCheckpointError(f"{source}: no 'arch:' section, so not a reference run config")
    name = arch.get("name")
    if name != REFERENCE_ARCH_NAME:
        raise ReferenceCheckpointError(f"{source}: arch.name is {name!r}, not the reference TRM ({REFERENCE_ARCH_NAME!r})")
    sd = _drop_transient_buffers(strip_reference_prefixes(state_dict))

    def disagree(key: str, value: Any, where: str, found: Any) -> ReferenceCheckpointError:
        return ReferenceCheckpointError(
            f"{source}: arch.{key}={value!r} disagrees with the checkpoint, where {key}={found!r} (from {where})")

    def typed(key: str, kind: type) -> Any:
        value = arch[key]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise ReferenceCheckpointError(f"{source}: arch.{key} must be {'a number' if kind is float else 'an integer'}, "
                                           f"got {value!r}")
        return float(value) if kind is float else value

    fields: dict[str, Any] = {}
    for key, (field, kind) in _ARCH_FIELDS.items():
        if arch.get(key) is not None:
            fields[field] = typed(key, kind)

    embed = next((k for k in ("embed_tokens.embedding_weight", "lm_head.weight") if k in sd and sd[k].ndim == 2), None)
    if embed is not None:
        vocab, hidden = tuple(sd[embed].shape)
        if "hidden_size" in fields and fields["hidden_size"] != hidden:
            raise disagree("hidden_size", fields["hidden_size"], f"{embed} {list(sd[embed].shape)}", hidden)
        if "vocab_size" in fields and fields["vocab_size"] != vocab:
            raise disagree("vocab_size", fields["vocab_size"], f"{embed} {list(sd[embed].shape)}", vocab)
    else:
        hidden = fields.get("hidden_size")
    layer_ids = {int(m.group(1)) for key in sd if (m := _REFERENCE_LAYER.fullmatch(key))}
    if layer_ids and "num_layers" in fields and fields["num_layers"] != max(layer_ids) + 1:
        raise disagree("L_layers", fields["num_layers"], "the L_level.layers.<i> keys", max(layer_ids) + 1)
    if arch.get("H_layers"):
        logger.info("%s: arch.H_layers=%r is ignored by the reference TRM (one network, L_level)", source, arch["H_layers"])

    has_mlp_t = any(".mlp_t." in key for key in sd)
    if "mlp_t" in arch:
        if not isinstance(arch["mlp_t"], bool):
            raise ReferenceCheckpointError(f"{source}: arch.mlp_t must be true or false, got {arch['mlp_t']!r}")
        if layer_ids and arch["mlp_t"] != has_mlp_t:
            raise disagree("mlp_t", arch["mlp_t"], "mlp_t keys" if has_mlp_t else "self_attn keys", has_mlp_t)
        fields["mixer"] = "mlp_t" if arch["mlp_t"] else "attention"
    mixer = fields.get("mixer", "mlp_t" if has_mlp_t else "attention")

    pos = arch.get("pos_encodings")
    if pos is not None:
        has_learned = "embed_pos.embedding_weight" in sd
        if (pos == "learned") != has_learned:
            raise disagree("pos_encodings", pos, "embed_pos.embedding_weight" + (" (present)" if has_learned else " (absent)"),
                           "learned" if has_learned else "rope or none")
        if mixer == "mlp_t" and pos == "rope":
            logger.info("%s: arch.pos_encodings='rope' is unused by mlp_t blocks: converting with 'none'", source)
            pos = "none"
        fields["pos_encodings"] = pos

    ndim = arch.get("puzzle_emb_ndim")
    if isinstance(ndim, str) and ndim.replace(" ", "") in ("${.hidden_size}", "${arch.hidden_size}"):
        ndim = hidden  # an unresolved hydra interpolation
    if ndim is not None:
        if isinstance(ndim, bool) or not isinstance(ndim, int):
            raise ReferenceCheckpointError(f"{source}: arch.puzzle_emb_ndim must be an integer, got {ndim!r}")
        table = sd.get("puzzle_emb.weights")
        if table is not None and table.ndim == 2 and table.shape[1] != ndim:
            raise disagree("puzzle_emb_ndim", ndim, f"puzzle_emb.weights {list(table.shape)}", table.shape[1])
        if table is None and ndim > 0:
            raise disagree("puzzle_emb_ndim", ndim, "the missing puzzle_emb.weights", 0)
        if ndim != hidden:
            raise ReferenceCheckpointError(
                f"{source}: arch.puzzle_emb_ndim={ndim!r} differs from hidden_size {hidden!r}; this project's model "
                f"holds one hidden-size puzzle vector per id, so such a run cannot be converted")
        if fields.get("puzzle_emb_len") == 0:  # reference: 0 means ceil(puzzle_emb_ndim / hidden_size)
            fields["puzzle_emb_len"] = -(ndim // -hidden)
    table = sd.get("puzzle_emb.weights")
    if "num_puzzle_identifiers" in fields and table is not None and table.shape[0] != fields["num_puzzle_identifiers"]:
        raise disagree("num_puzzle_identifiers", fields["num_puzzle_identifiers"], f"puzzle_emb.weights {list(table.shape)}",
                       table.shape[0])

    prefix = fields.get("puzzle_emb_len", 16)
    width = sd.get("L_level.layers.0.mlp_t.gate_up_proj.weight")
    if width is not None and width.ndim == 2 and "seq_len" in fields and width.shape[1] - prefix != fields["seq_len"]:
        raise disagree("seq_len", fields["seq_len"],
                       f"L_level.layers.0.mlp_t.gate_up_proj.weight {list(width.shape)} minus the {prefix}-token prefix",
                       width.shape[1] - prefix)

    loss = arch.get("loss")
    if isinstance(loss, Mapping) and loss.get("loss_type") in _LOSS_TYPES:
        fields["loss_type"] = _LOSS_TYPES[loss["loss_type"]]

    paths = run_config.get("data_paths") or ([run_config["data_path"]] if run_config.get("data_path") else [])
    names = " ".join(Path(str(p)).name.lower() for p in (paths if isinstance(paths, list) else [paths]))
    preset = None
    if "sudoku" in names:
        preset = "sudoku-mlp" if mixer == "mlp_t" else "sudoku-att"
    elif "maze" in names:
        preset = "maze"
    elif "arc" in names:
        preset = "arc"
    fields["_data_paths"] = paths
    return fields, preset


def _check_run_config_shapes(state_dict: Mapping[str, torch.Tensor], config: TRMConfig, source: str) -> None:
    """The SwiGLU widths follow from `expansion`: name it when the checkpoint's MLP shapes disagree."""
    sd = _drop_transient_buffers(strip_reference_prefixes(state_dict))
    for key, shape in reference_shapes(config).items():
        if key in sd and (".mlp." in key or ".mlp_t." in key) and tuple(sd[key].shape) != shape:
            raise ReferenceCheckpointError(
                f"{source}: arch.expansion={config.expansion!r} disagrees with the checkpoint: {key} is "
                f"{list(sd[key].shape)}, expansion {config.expansion!r} gives {list(shape)}")


# ----------------------------------------------------------------------------- config


def infer_reference_config(state_dict: Mapping[str, torch.Tensor], preset: str | None = None,
                           run_config: Mapping[str, Any] | None = None, run_config_source: str = REFERENCE_RUN_CONFIG,
                           **overrides: Any) -> TRMConfig:
    """A `TRMConfig` for a reference state dict (any wrapper prefix).

    From the shapes: `hidden_size`, `vocab_size`, `mixer` (`mlp_t` vs `self_attn` keys), `num_layers`,
    `num_puzzle_identifiers`, and for `mlp_t` (or learned positions) the sequence length. With
    `run_config` (the run's parsed `all_config.yaml`) every architecture field of its `arch:` section
    is taken from it and checked against the shapes (a disagreement names the field and both values);
    the preset, if not given, is read off its `data_paths`. Everything else comes from the preset
    (`TRMConfig.from_preset` names) and `overrides` (config fields, which win over the run config). An
    override that contradicts the shapes is refused. For the `sudoku` task a vocabulary of another
    size gets the N x N Sudoku symbols (N = vocab - 2); other tasks need an `id_to_symbol` override.
    """
    if run_config is not None:
        yaml_fields, yaml_preset = _run_config_settings(state_dict, run_config, run_config_source)
        data_paths = yaml_fields.pop("_data_paths")
        if preset is None:
            if yaml_preset is None:
                raise ReferenceCheckpointError(
                    f"{run_config_source}: its data_paths {data_paths!r} name no known task (sudoku, maze, arc); "
                    f"pass --preset (one of {sorted(PRESETS)})")
            logger.info("%s: data_paths %r -> preset %r", run_config_source, data_paths, yaml_preset)
            preset = yaml_preset
        for field, value in overrides.items():
            if value is not None and field in yaml_fields and yaml_fields[field] != value:
                logger.info("%s=%r replaces %s's %r", field, value, run_config_source, yaml_fields[field])
        overrides = {**yaml_fields, **{k: v for k, v in overrides.items() if v is not None}}
        config = infer_reference_config(state_dict, preset, **overrides)
        if "expansion" in yaml_fields and overrides.get("expansion") == yaml_fields["expansion"]:
            _check_run_config_shapes(state_dict, config, run_config_source)
        return config
    if preset is None:
        raise ReferenceCheckpointError(
            f"no run config ({REFERENCE_RUN_CONFIG}) and no preset: pass --preset for a bare checkpoint "
            f"(one of {sorted(PRESETS)}) or --config PATH")
    if preset not in PRESETS:
        raise ReferenceCheckpointError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    sd = _drop_transient_buffers(strip_reference_prefixes(state_dict))
    settings: dict[str, Any] = dict(PRESETS[preset])
    inferred: dict[str, tuple[Any, str]] = {}  # field -> (value, the key it was read from)

    def shape_of(*keys: str) -> tuple[str, tuple[int, ...]] | None:
        for key in keys:
            if key in sd:
                return key, tuple(sd[key].shape)
        return None

    found = shape_of("embed_tokens.embedding_weight", "lm_head.weight")
    if found is None or len(found[1]) != 2:
        raise ReferenceCheckpointError(
            "cannot infer hidden and vocabulary sizes: need a 2-D 'embed_tokens.embedding_weight' or 'lm_head.weight' "
            f"(keys present: {_summarise(sd)})"
        )
    inferred["vocab_size"] = (found[1][0], found[0])
    inferred["hidden_size"] = (found[1][1], found[0])

    layer_ids = {int(m.group(1)) for key in sd if (m := _REFERENCE_LAYER.fullmatch(key))}
    if not layer_ids:
        raise ReferenceCheckpointError(
            f"no 'L_level.layers.<i>.' keys: not a reference TRM checkpoint (keys: {_summarise(sd)})"
            + _project_layout_hint(sd)
        )
    inferred["num_layers"] = (max(layer_ids) + 1, "L_level.layers.<i>")

    has_attention = any(".self_attn." in key for key in sd)
    has_mlp_t = any(".mlp_t." in key for key in sd)
    if has_attention and has_mlp_t:
        raise ReferenceCheckpointError("the checkpoint has both 'self_attn' and 'mlp_t' layer keys; a TRM uses one mixer")
    if not (has_attention or has_mlp_t):
        raise ReferenceCheckpointError("the checkpoint has neither 'self_attn' nor 'mlp_t' layer keys: no token mixer")
    mixer = "attention" if has_attention else "mlp_t"
    inferred["mixer"] = (mixer, "self_attn keys" if has_attention else "mlp_t keys")

    if "embed_pos.embedding_weight" in sd:
        inferred["pos_encodings"] = ("learned", "embed_pos.embedding_weight")
    elif overrides.get("pos_encodings") is None and settings.get("mixer") != mixer:
        # The preset was written for the other mixer: use that mixer's reference default.
        settings["pos_encodings"] = "rope" if mixer == "attention" else "none"

    puzzle = shape_of("puzzle_emb.weights")
    if puzzle is not None and len(puzzle[1]) == 2:
        inferred["num_puzzle_identifiers"] = (puzzle[1][0], puzzle[0])

    for field, (value, source) in inferred.items():
        if overrides.get(field) is not None and overrides[field] != value:
            raise ReferenceCheckpointError(
                f"override {field}={overrides[field]!r} contradicts the checkpoint: {source} says {value!r}"
            )
        settings[field] = value
    settings.update({key: value for key, value in overrides.items() if value is not None and key not in inferred})
    if (overrides.get("seq_len") is not None and overrides.get("grid_shape") is None
            and int(settings["grid_shape"][0]) * int(settings["grid_shape"][1]) != settings["seq_len"]):
        side = math.isqrt(settings["seq_len"])
        if side * side != settings["seq_len"]:
            raise ReferenceCheckpointError(
                f"seq_len {settings['seq_len']} does not fill the preset's {settings['grid_shape'][0]}x"
                f"{settings['grid_shape'][1]} grid and is not a square; pass grid_shape")
        settings["grid_shape"] = (side, side)

    total = shape_of("L_level.layers.0.mlp_t.gate_up_proj.weight", "embed_pos.embedding_weight")
    if total is not None:
        _settle_sequence_length(settings, total[1][-1] if "mlp_t" in total[0] else total[1][0], total[0],
                                grid_given=overrides.get("grid_shape") is not None,
                                seq_len_given=overrides.get("seq_len"))
    elif overrides.get("grid_shape") is not None and overrides.get("seq_len") is None:
        settings["seq_len"] = int(settings["grid_shape"][0]) * int(settings["grid_shape"][1])

    if overrides.get("id_to_symbol") is None and len(settings["id_to_symbol"]) != settings["vocab_size"]:
        if settings.get("task") != "sudoku" or settings["vocab_size"] < 3:
            raise ReferenceCheckpointError(
                f"the checkpoint has {settings['vocab_size']} token ids but preset {preset!r} names "
                f"{len(settings['id_to_symbol'])} symbols; pass id_to_symbol"
            )
        size = settings["vocab_size"] - 2
        settings["id_to_symbol"] = SUDOKU_SYMBOLS[:2] + [str(d) for d in range(1, size + 1)]
    try:
        return TRMConfig(**settings)
    except ValueError as error:
        raise ReferenceCheckpointError(f"preset {preset!r} with the checkpoint's shapes is not a valid config: {error}") from error


def _settle_sequence_length(settings: dict[str, Any], total_len: int, source: str, grid_given: bool,
                            seq_len_given: int | None = None) -> None:
    """Grid length = full length read from `source` minus the puzzle-id prefix; fix the grid shape to match."""
    prefix = settings.get("puzzle_emb_len", 16)
    seq_len = total_len - prefix
    if seq_len < 1:
        raise ReferenceCheckpointError(f"{source} gives a sequence of {total_len}, not longer than the {prefix}-token prefix")
    if seq_len_given is not None and seq_len_given != seq_len:
        raise ReferenceCheckpointError(
            f"seq_len={seq_len_given!r} contradicts the checkpoint: {source} gives a sequence of {total_len} = "
            f"{prefix} prefix (puzzle_emb_len) + {seq_len} grid tokens")
    rows, cols = (int(s) for s in settings["grid_shape"])
    if rows * cols != seq_len:
        if grid_given:
            raise ReferenceCheckpointError(
                f"grid_shape {rows}x{cols} has {rows * cols} cells but {source} gives {total_len} = "
                f"{prefix} prefix + {seq_len} grid tokens"
            )
        side = math.isqrt(seq_len)
        if side * side != seq_len:
            raise ReferenceCheckpointError(
                f"{source} gives {seq_len} grid tokens ({total_len} - {prefix} prefix), which the preset's "
                f"{rows}x{cols} grid does not hold; pass grid_shape"
            )
        logger.info("%s gives %d grid tokens: using a %dx%d grid", source, seq_len, side, side)
        settings["grid_shape"] = (side, side)
    settings["seq_len"] = seq_len


def _project_layout_hint(keys: Any) -> str:
    if any(key.startswith(("core.layers.", "puzzle_embedding.", "y_init")) for key in keys):
        return " (these look like this project's names: load such a folder with from_pretrained instead)"
    return ""


def _summarise(keys: Mapping[str, Any] | list[str], limit: int = 8) -> str:
    names = sorted(keys)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


# ----------------------------------------------------------------------------- conversion


def reference_shapes(config: TRMConfig) -> dict[str, tuple[int, ...]]:
    """Prefix-free reference key -> shape for a config (read off a meta-device model, so it always
    matches what the model will load)."""
    with torch.device("meta"):
        model = TRMForGridReasoning(config)
    return {to_reference_name(name): tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def convert_reference_state_dict(state_dict: Mapping[str, torch.Tensor], config: TRMConfig) -> dict[str, torch.Tensor]:
    """Our state dict (fp32, our names) from a reference one (any wrapper prefix), checked against
    `config`: every missing and unknown key, and every shape mismatch, is reported at once."""
    sd = _drop_transient_buffers(strip_reference_prefixes(state_dict))
    expected = reference_shapes(config)
    missing = sorted(set(expected) - set(sd))
    unknown = sorted(set(sd) - set(expected))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown keys: {', '.join(unknown)}")
        raise ReferenceCheckpointError(f"the checkpoint does not match a {config.mixer} TRM with "
                                       f"{config.num_layers} layers: " + "; ".join(parts) + _project_layout_hint(unknown))
    wrong = [
        f"{key}: expected {list(shape)}, got {list(sd[key].shape)}"
        for key, shape in expected.items() if tuple(sd[key].shape) != shape
    ]
    if wrong:
        raise ReferenceCheckpointError("shape mismatches against the inferred config: " + "; ".join(wrong))
    converted: dict[str, torch.Tensor] = {}
    for key in expected:
        tensor = sd[key]
        if not tensor.dtype.is_floating_point:
            raise ReferenceCheckpointError(f"{key}: expected a floating-point tensor, got {tensor.dtype}")
        # bf16/fp16 -> fp32 is exact, so H_init/L_init keep their values bit for bit.
        converted[to_project_name(key)] = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
    return converted


def load_reference_model(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor], preset: str | None = None,
    config_path: str | os.PathLike | bool | None = None, **overrides: Any
) -> TRMForGridReasoning:
    """A `TRMForGridReasoning` (fp32, eval mode) holding a reference checkpoint's weights. The architecture
    comes from the run config (`config_path`, else `all_config.yaml` beside a checkpoint file; `False`
    ignores it) when there is one, else from `preset`; the parsed run config is kept on the model's
    config as `reference_run_config`."""
    run_config, path = read_run_config(checkpoint, config_path)
    return _load_reference_model(checkpoint, preset, run_config, path, overrides)


def _load_reference_model(checkpoint: Any, preset: str | None, run_config: dict[str, Any] | None,
                          path: Path | None, overrides: dict[str, Any]) -> TRMForGridReasoning:
    state_dict = checkpoint if isinstance(checkpoint, Mapping) else load_reference_state_dict(checkpoint)
    config = infer_reference_config(state_dict, preset, run_config=run_config,
                                    run_config_source=str(path) if path is not None else REFERENCE_RUN_CONFIG,
                                    **overrides)
    weights = convert_reference_state_dict(state_dict, config)
    model = _model_holding(config, weights)
    if run_config is not None:
        # JSON-safe copy (YAML may hold dates and the like), written into config.json by save_pretrained.
        setattr(model.config, REFERENCE_RUN_CONFIG_FIELD, json.loads(json.dumps(run_config, default=str)))
    return model.eval()


def _model_holding(config: TRMConfig, weights: Mapping[str, torch.Tensor]) -> TRMForGridReasoning:
    """A model whose parameters are the `weights` tensors themselves. Built on the meta device, so no
    random copy of an ARC-size puzzle table is allocated and initialised first; the RoPE tables (not
    in a state dict) are then computed on the CPU."""
    with torch.device("meta"):
        model = TRMForGridReasoning(config)
    model.load_state_dict(weights, strict=True, assign=True)
    for module in model.modules():
        if isinstance(module, RotaryEmbedding):
            for name in ("cos", "sin"):
                setattr(module, name, torch.empty(module.cos.shape, dtype=module.cos.dtype, device="cpu"))
            model._init_weights(module)
    return model


def convert_reference_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    preset: str | None = None,
    overwrite: bool = False,
    config_path: str | os.PathLike | bool | None = None,
    **overrides: Any,
) -> Path:
    """Write a `save_pretrained` folder (config.json, model.safetensors, remote code) for a reference
    checkpoint. The architecture comes from the run's `all_config.yaml` beside the checkpoint (or
    `config_path`; `False` ignores it), else from `preset`; a run config used is copied into the folder
    as `reference_config.yaml` and kept in config.json as `reference_run_config`. The folder is built
    next to `out_dir` and renamed into place, so a failure never leaves a half-written output; an
    existing non-empty `out_dir` is replaced only with `overwrite`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReferenceCheckpointError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ReferenceCheckpointError(f"{out_dir}: folder exists and is not empty (pass overwrite=True / --overwrite)")
    run_config, config_file = read_run_config(checkpoint, config_path)
    model = _load_reference_model(checkpoint, preset, run_config, config_file, overrides)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, max_shard_size=CONVERTED_SHARD_SIZE)
        if config_file is not None:
            shutil.copyfile(config_file, staging / REFERENCE_RUN_CONFIG_COPY)
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _replace_folder(new: Path, target: Path) -> None:
    """Rename `new` to `target`; an existing `target` is moved aside first and removed afterwards."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old / target.name, target)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- export


def export_reference_state_dict(model: TRMForGridReasoning, prefix: str = REFERENCE_PREFIX) -> dict[str, torch.Tensor]:
    """The model's weights under reference names (default prefix `_orig_mod.model.inner.`), as the
    reference stores them: `H_init`/`L_init` in bf16, everything else fp32."""
    exported: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        reference = to_reference_name(name)
        tensor = tensor.detach().to("cpu")
        if reference in _INIT_STATE_NAMES:
            rounded = tensor.to(torch.bfloat16)
            if not torch.equal(rounded.float(), tensor.float()):
                logger.warning("%s -> %s: rounded to bf16 (the reference keeps it as a bf16 buffer)", name, reference)
            exported[prefix + reference] = rounded
        else:
            exported[prefix + reference] = tensor.to(torch.float32).clone()
    return exported


def save_reference_checkpoint(model: TRMForGridReasoning, path: str | os.PathLike,
                              prefix: str = REFERENCE_PREFIX) -> Path:
    """`torch.save` the exported reference state dict, atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(handle)
    try:
        torch.save(export_reference_state_dict(model, prefix), temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path



# Config fields `trm convert-reference` takes as flags (for what shapes cannot tell).
OVERRIDE_FLAGS = ("H_cycles", "L_cycles", "halt_max_steps", "grid_shape", "num_heads", "expansion",
                   "pos_encodings", "rope_theta", "puzzle_emb_len")



def show_notes() -> None:
    """Let the converter's informational notes reach the terminal when nothing else configured logging."""
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("note: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


__all__ = [
    "ReferenceCheckpointError", "REFERENCE_PREFIX", "load_reference_state_dict", "strip_reference_prefixes",
    "infer_reference_config", "reference_shapes", "convert_reference_state_dict", "load_reference_model",
    "convert_reference_checkpoint", "export_reference_state_dict", "save_reference_checkpoint",
    "to_project_name", "to_reference_name", "show_notes", "REFERENCE_RUN_CONFIG", "REFERENCE_RUN_CONFIG_COPY",
    "REFERENCE_RUN_CONFIG_FIELD", "load_reference_run_config", "read_run_config", "download_reference_checkpoint",
]
