"""Fill the model card of a TRM checkpoint from files, never from memory.

Inputs are the saved config (and weights, for the parameter count), the results JSON(s) written by
`trm eval` (schema: `eval/results_schema.md`), the training recipe and a training record. The rule the
card keeps: every measured number it states is in one of those files. The only other numbers are
config values, parameter counts and the paper's published figures, which are always labelled as
the paper's. `model-index` in the YAML header lists exactly the measured metrics, so the Hub shows
nothing this checkpoint was not evaluated on.

    card = render_model_card("runs/sudoku/model", results=load_results("runs/sudoku/results.json"))
    card.save("README.md")
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

MODEL_CARD_TEMPLATE = "model_card.md.jinja"
RESULTS_SCHEMA_VERSION = 1

# The paper (arXiv:2510.04871) Table results: test-set exact accuracy (ARC: pass@2), in percent.
# These are the only accuracy figures a card may print without a results file.


@dataclass(frozen=True)
class PaperResult:
    benchmark: str
    task: str
    model: str  # the paper's variant name
    mixer: str  # our config value for that variant
    metric: str  # key of the matching value in a results file's "metrics"
    percent: float


PAPER_RESULTS = (
    PaperResult("Sudoku-Extreme", "sudoku", "TRM-MLP", "mlp_t", "exact_accuracy", 87.4),
    PaperResult("Sudoku-Extreme", "sudoku", "TRM-Att", "attention", "exact_accuracy", 74.7),
    PaperResult("Maze-Hard", "maze", "TRM-Att", "attention", "exact_accuracy", 85.3),
    PaperResult("ARC-AGI-1", "arc", "TRM-Att", "attention", "pass@2", 44.6),
    PaperResult("ARC-AGI-2", "arc", "TRM-Att", "attention", "pass@2", 7.8),
)

# Names a results file may give a paper benchmark (dataset "name" or Hub id), lower-cased.
BENCHMARK_ALIASES = {
    "Sudoku-Extreme": ("sudoku-extreme", "sapientinc/sudoku-extreme"),
    "Maze-Hard": ("maze-hard", "maze-30x30-hard-1k", "sapientinc/maze-30x30-hard-1k"),
    "ARC-AGI-1": ("arc-agi-1", "arc-agi", "arcagi"),
    "ARC-AGI-2": ("arc-agi-2", "kaggle2025"),
}
BENCHMARK_HUB_IDS = {"Sudoku-Extreme": "sapientinc/sudoku-extreme", "Maze-Hard": "sapientinc/maze-30x30-hard-1k"}

TASK_NAMES = {"sudoku": "Sudoku", "maze": "Maze path finding", "arc": "ARC-AGI abstract reasoning"}
MODEL_INDEX_TASK_TYPE = "grid-reasoning"  # no Hub pipeline fits a grid-to-grid puzzle solver

METRIC_LABELS = {
    "exact_accuracy": "Exact accuracy (whole grid correct)",
    "token_accuracy": "Token accuracy",
    "blank_accuracy": "Blank-cell accuracy",
    "valid_accuracy": "Valid solution rate",
    "valid_solution_accuracy": "Valid solution rate",
    "valid_path_accuracy": "Valid shortest-path rate",
}
TRAINING_LABELS = {
    "recipe": "Recipe",
    "global_step": "Optimizer steps",
    "steps": "Optimizer steps",
    "train_samples_started": "Training samples loaded",
    "train_samples_finished": "Training samples finished (halted)",
    "samples_started": "Training samples loaded",
    "samples_finished": "Training samples finished (halted)",
    "train_runtime": "Training wall time (s)",
    "train_time_s": "Training wall time (s)",
    "curve_eval_time_s": "Of which learning-curve evaluations (s)",
    "torch_num_threads": "CPU threads (torch)",
    "torch_threads": "CPU threads (torch)",
    "threads.count": "CPU threads (torch)",
    "threads.reason": "Why that many CPU threads",
    "world_size": "Processes",
    "device": "Device",
    "hardware": "Hardware",
    "total_flos": "Floating-point operations (Trainer estimate)",
}
SKIPPED_TRAINING_KEYS = ("metrics",)  # evaluation belongs to the results file, not the training record

BIBTEX = """@misc{jolicoeurmartineau2025less,
  title         = {Less is More: Recursive Reasoning with Tiny Networks},
  author        = {Alexia Jolicoeur-Martineau},
  year          = {2025},
  eprint        = {2510.04871},
  archivePrefix = {arXiv},
  primaryClass  = {cs.LG},
  url           = {https://arxiv.org/abs/2510.04871}
}"""


class CardInputError(ValueError):
    """A results file, recipe or config cannot be put on a card; the message names the file and field."""


# ----------------------------------------------------------------------------- reading inputs


def load_json_file(path: str | os.PathLike, what: str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardInputError(f"{what} file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise CardInputError(
            f"{path}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None


def load_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a results JSON (one results object or a list of them) and check it; returns a list."""
    data = load_json_file(path, "results")
    items = data if isinstance(data, list) else [data]
    names = [f"{path}[{i}]" for i in range(len(items))] if isinstance(data, list) else [str(path)]
    return [check_results(item, name) for item, name in zip(items, names)]


def check_results(results: Any, where: str = "results") -> dict[str, Any]:
    """Raise `CardInputError` unless `results` follows the `trm eval` schema far enough to be carded."""
    if not isinstance(results, dict):
        raise CardInputError(f"{where}: expected a JSON object, got {type(results).__name__}")
    version = results.get("schema_version", RESULTS_SCHEMA_VERSION)
    if version != RESULTS_SCHEMA_VERSION:
        raise CardInputError(
            f"{where}: schema_version {version!r} is not supported (expected {RESULTS_SCHEMA_VERSION})"
        )
    for section in ("dataset", "metrics"):
        if not isinstance(results.get(section), dict):
            raise CardInputError(f"{where}: field {section!r} must be an object")
    if not isinstance(results["dataset"].get("name"), str) or not results["dataset"]["name"]:
        raise CardInputError(f"{where}: field 'dataset.name' must be a non-empty string")
    for key, value in results["metrics"].items():
        if value is None or _is_count(value):
            continue
        if not _is_real(value) or not 0.0 <= value <= 1.0:
            raise CardInputError(f"{where}: metric 'metrics.{key}' must be a fraction in [0, 1], got {value!r}")
    for key, value in (results.get("accuracy_by_steps") or {}).items():
        if not str(key).isdigit() or not _is_real(value) or not 0.0 <= value <= 1.0:
            raise CardInputError(
                f"{where}: 'accuracy_by_steps.{key}' must map a step count to a fraction, got {value!r}"
            )
    bands = results.get("accuracy_by_rating") or {}
    if not isinstance(bands, dict):
        raise CardInputError(f"{where}: field 'accuracy_by_rating' must be an object")
    for band, row in bands.items():
        value = row.get("exact_accuracy") if isinstance(row, dict) else None
        if not _is_real(value) or not 0.0 <= value <= 1.0 or not _is_count(row.get("num_examples")):
            raise CardInputError(f"{where}: 'accuracy_by_rating.{band}' needs a count 'num_examples' and a fraction "
                                 f"'exact_accuracy', got {row!r}")
    act = results.get("act")
    if act is not None and not isinstance(act, dict):
        raise CardInputError(f"{where}: field 'act' must be an object")
    return results


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    """JSON integers in `metrics` are counts (e.g. ARC's number of tasks), not fractions."""
    return isinstance(value, int) and not isinstance(value, bool)


def load_config(model_dir_or_config: Any):
    """A `TRMConfig` from a model folder, a config object, or a config dict."""
    from modeling_trm.configuration_trm import TRMConfig

    if isinstance(model_dir_or_config, TRMConfig):
        return model_dir_or_config
    if isinstance(model_dir_or_config, dict):
        fields = {k: v for k, v in model_dir_or_config.items() if k not in ("architectures", "auto_map", "model_type")}
        return TRMConfig(**fields)
    folder = Path(model_dir_or_config)
    if not (folder / "config.json").is_file():
        raise CardInputError(f"{folder} has no config.json: not a saved TRM model folder")
    data = load_json_file(folder / "config.json", "config")
    if data.get("model_type") != "trm":
        raise CardInputError(f"{folder / 'config.json'}: model_type is {data.get('model_type')!r}, expected 'trm'")
    try:
        return load_config(data)
    except ValueError as error:
        raise CardInputError(f"{folder / 'config.json'}: {error}") from None


def count_parameters(model_dir_or_config: Any, config) -> tuple[int, int, int]:
    """(all parameters, parameters as the paper counts them: no puzzle-id table, no y/z initial states,
    parameters of the puzzle-id table). An ARC model's table (876,406 x 512 for ARC-AGI-1) is 98% of
    its weights, so the card states it apart from the network.

    Read from the safetensors header when a folder holds weights, so the count is of what ships;
    otherwise the model is built on the meta device (no memory, no init cost).
    """
    skip = ("puzzle_embedding.", "y_init", "z_init")
    shapes = _safetensors_shapes(model_dir_or_config) if isinstance(model_dir_or_config, (str, os.PathLike)) else None
    if shapes is None:
        import torch

        from modeling_trm.modeling_trm import TRMForGridReasoning

        with torch.device("meta"):
            model = TRMForGridReasoning(config)
        shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    total = sum(math.prod(shape) for shape in shapes.values())
    reference = sum(math.prod(shape) for name, shape in shapes.items() if not name.startswith(skip))
    table = sum(math.prod(shape) for name, shape in shapes.items() if name.startswith("puzzle_embedding."))
    return total, reference, table


def _safetensors_shapes(folder: str | os.PathLike) -> dict[str, tuple[int, ...]] | None:
    from safetensors import safe_open

    folder = Path(folder)
    files = [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = [folder / name for name in sorted(set(load_json_file(index, "weights index")["weight_map"].values()))]
    if not all(path.is_file() for path in files):
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


# ----------------------------------------------------------------------------- formatting


def percent(fraction: float) -> str:
    return f"{100.0 * fraction:.1f}%"


def plain_number(value: Any) -> str:
    """Integers with thousands separators, floats as Python writes them (so they match the file)."""
    if _is_count(value):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1e6:  # e.g. a FLOP count stored as a float
            return f"{int(value):,}"
        return repr(value)
    return str(value)


def raw_value(value: Any) -> str:
    """A recipe value as written in the recipe (no thousands separators: it reads as a setting)."""
    return repr(value) if isinstance(value, float) else str(value)


def metric_label(key: str) -> str:
    if key.startswith("pass@"):
        return f"{key} (a task's test output is among the top {key[5:]} voted answers)"
    return METRIC_LABELS.get(key, key.replace("_", " ").capitalize())


def benchmark_of(dataset_name: str) -> str | None:
    name = dataset_name.strip().lower()
    for benchmark, aliases in BENCHMARK_ALIASES.items():
        if name in aliases:
            return benchmark
    return None


def hub_dataset_id(dataset: dict[str, Any]) -> str | None:
    """The Hub dataset id a results file was measured on, if it names one."""
    benchmark = benchmark_of(dataset["name"])
    if benchmark in BENCHMARK_HUB_IDS:
        return BENCHMARK_HUB_IDS[benchmark]
    # A dataset pushed with `trm data push` is named by its Hub id ("org/name"); a local path is not an id.
    for candidate in (dataset.get("repo_id"), dataset["name"]):
        if isinstance(candidate, str) and candidate.count("/") == 1 and not candidate.startswith((".", "/", "~")):
            return candidate
    return None


def flatten(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar entries of a nested dict as (dotted key, value); lists are kept only if all scalars."""
    rows: list[tuple[str, Any]] = []
    for key, value in record.items():
        if not prefix and key in SKIPPED_TRAINING_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            if all(isinstance(v, (str, int, float, bool)) or v is None for v in value):
                rows.append((name, ", ".join(raw_value(v) for v in value)))
        elif value is not None:
            rows.append((name, value))
    return rows


# ----------------------------------------------------------------------------- the card


def build_eval_results(results_list: Sequence[dict[str, Any]], task: str) -> list[EvalResult]:
    """One `EvalResult` per measured metric (plus the ACT exact accuracy when the file has one)."""
    task_name = TASK_NAMES.get(task, task)
    entries: list[EvalResult] = []
    for results in results_list:
        dataset = results["dataset"]
        halting = (results.get("protocol") or {}).get("halting")
        common = dict(
            task_type=MODEL_INDEX_TASK_TYPE, task_name=task_name,
            dataset_name=dataset["name"], dataset_type=hub_dataset_id(dataset) or dataset["name"],
            dataset_split=dataset.get("split"), dataset_revision=dataset.get("revision"),
        )
        for key, value in results["metrics"].items():
            if value is None or _is_count(value):
                continue
            entries.append(EvalResult(**common, metric_type=key, metric_name=metric_label(key),
                                      metric_config=halting, metric_value=value))
        act = results.get("act") or {}
        if _is_real(act.get("exact_accuracy")) and halting != "act":
            entries.append(EvalResult(**common, metric_type="exact_accuracy", metric_config="act",
                                      metric_name="Exact accuracy with ACT halting",
                                      metric_value=act["exact_accuracy"]))
    return entries


def example_question(config) -> dict[str, Any]:
    """A question the usage snippet can tokenise with the config's own symbols (`kind` picks the snippet)."""
    rows, cols = config.grid_shape
    symbols = list(config.id_to_symbol)
    if config.task == "arc" and all(str(c) in symbols for c in range(10)) and "<eos>" in symbols \
            and rows >= 3 and cols >= 4:  # room for the 2x3 example and its end-of-grid marks
        return {"kind": "arc", "grid": [[0, 1, 2], [3, 4, 5]]}
    single_char = [s for s in symbols if len(s) == 1]
    if config.task == "sudoku" and rows == cols and all(str(d) in symbols for d in range(1, rows + 1)):
        box_rows, box_cols = {4: (2, 2), 6: (2, 3), 9: (3, 3)}.get(rows, (1, rows))
        blank = symbols[config.blank_token_id] if config.blank_token_id is not None else "."
        lines = []
        for r in range(rows):  # a solved grid by the shifted-row pattern, every other cell blanked
            digits = [(box_cols * (r % box_rows) + r // box_rows + c) % rows + 1 for c in range(cols)]
            lines.append("".join(str(d) if (r + c) % 2 == 0 else blank for c, d in enumerate(digits)))
        return {"kind": "text", "lines": lines}
    if config.task == "maze" and rows >= 3 and cols >= 3 and all(s in symbols for s in "# SG"):
        lines = ["#" * cols] + ["#" + " " * (cols - 2) + "#" for _ in range(rows - 2)] + ["#" * cols]
        lines[1] = "#S" + lines[1][2:]
        lines[-2] = lines[-2][:-2] + "G#"
        return {"kind": "text", "lines": lines}
    filler = next((s for i, s in enumerate(symbols) if len(s) == 1 and i != config.pad_token_id), None)
    if filler is None or not single_char:
        return {"kind": "blank"}
    return {"kind": "text", "lines": [filler * cols for _ in range(rows)]}


def paper_rows(config, results_list: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's figures for this task, each beside this checkpoint's value on the same benchmark, if any."""
    rows = []
    for paper in PAPER_RESULTS:
        if paper.task != config.task:
            continue
        mine = None
        for results in results_list:
            value = results["metrics"].get(paper.metric)
            if benchmark_of(results["dataset"]["name"]) == paper.benchmark and paper.mixer == config.mixer \
                    and _is_real(value) and results["dataset"].get("split", "test") == "test":
                mine = f"{percent(value)} ({plain_number(results['dataset'].get('num_examples', '?'))} test puzzles)" \
                    if results["dataset"].get("num_examples") is not None else percent(value)
                break
        rows.append({"benchmark": paper.benchmark, "model": paper.model, "metric": paper.metric,
                     "paper": f"{paper.percent}%", "mine": mine or "not evaluated on it"})
    return rows


def results_context(results: dict[str, Any], config) -> dict[str, Any]:
    dataset = results["dataset"]
    protocol = results.get("protocol") or {}
    metrics = [{"label": metric_label(k), "key": k, "value": percent(v)}
               for k, v in results["metrics"].items() if _is_real(v) and not _is_count(v)]
    counts = [{"label": k.replace("_", " "), "value": plain_number(v)}
              for k, v in results["metrics"].items() if _is_count(v)]
    steps = sorted(((int(k), v) for k, v in (results.get("accuracy_by_steps") or {}).items()), key=lambda kv: kv[0])
    act = results.get("act") or {}
    return {
        "dataset_name": dataset["name"],
        "dataset_hub_id": hub_dataset_id(dataset),
        "split": dataset.get("split"),
        "revision": dataset.get("revision"),
        "sha256": dataset.get("sha256"),
        "num_examples": plain_number(dataset["num_examples"]) if dataset.get("num_examples") is not None else None,
        "halting": protocol.get("halting"),
        "max_steps": protocol.get("max_steps"),
        "batch_size": protocol.get("batch_size"),
        "dtype": protocol.get("dtype"),
        "samples": protocol.get("samples"),
        "noise_std": protocol.get("noise_std"),
        "selection": protocol.get("selection"),
        "seed": protocol.get("seed"),
        "metrics": metrics,
        "counts": counts,
        "accuracy_by_steps": [{"steps": s, "value": percent(v)} for s, v in steps],
        "accuracy_by_rating": [{"band": band, "num_examples": plain_number(row["num_examples"]),
                                "value": percent(row["exact_accuracy"])}
                               for band, row in (results.get("accuracy_by_rating") or {}).items()],
        "act_exact": percent(act["exact_accuracy"]) if _is_real(act.get("exact_accuracy")) else None,
        "act_mean_steps": f"{act['mean_steps']:.2f}" if _is_real(act.get("mean_steps")) else None,
        "mean_steps": f"{results['mean_steps']:.2f}" if _is_real(results.get("mean_steps")) else None,
        "wall_time_s": plain_number(results["wall_time_s"]) if _is_real(results.get("wall_time_s")) else None,
        "examples_per_s": plain_number(results["examples_per_s"]) if _is_real(results.get("examples_per_s")) else None,
        "versions": ", ".join(f"{k} {v}" for k, v in (results.get("versions") or {}).items()),
        "created": results.get("created"),
    }


def recipe_context(recipe: dict[str, Any] | None) -> dict[str, Any] | None:
    if not recipe:
        return None
    model = recipe.get("model") or {}
    data = recipe.get("data") or {}
    return {
        "name": recipe.get("name"),
        "description": recipe.get("description"),
        "preset": model.get("preset"),
        "model_overrides": [(k, raw_value(v)) for k, v in flatten(model.get("overrides") or {})],
        "builder": data.get("builder"),
        "data_args": [(k, raw_value(v)) for k, v in flatten(data.get("args") or {})],
        "training": [(k, raw_value(v)) for k, v in flatten(recipe.get("training") or {})],
    }


def evaluated_steps(results_list: Sequence[dict[str, Any]], config: Any) -> int | None:
    """The supervision steps the results were measured with, where `solve` would not run that many by
    default; None otherwise (the snippet then needs no `max_steps`)."""
    for item in results_list:
        steps = (item.get("protocol") or {}).get("max_steps")
        if steps is not None and int(steps) != config.default_solve_steps:
            return int(steps)
    return None


def render_model_card(
    model_dir_or_config: str | os.PathLike | Any,
    results: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    recipe: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    repo_id: str | None = None,
) -> ModelCard:
    """Render the model card of a TRM checkpoint.

    Args:
        model_dir_or_config (`str`, `os.PathLike`, `TRMConfig` or `dict`):
            A saved model folder (config.json, and model.safetensors for the parameter count) or its config.
        results (`dict` or `list[dict]`, *optional*):
            Results JSON(s) of `trm eval`. Without them the card states no measured accuracy at all.
        recipe (`dict`, *optional*):
            The training recipe (`modeling_trm.recipes_io.load_recipe`), shown as the training setup.
        training (`dict`, *optional*):
            What the run did (steps, samples, wall time, hardware), e.g. `train_results.json`; defaults
            to the `training` section of the first results file, if it has one.
        repo_id (`str`, *optional*):
            Hub id used in the loading snippet and as the model name.
    """
    config = load_config(model_dir_or_config)
    if results is None:
        results_list: list[dict[str, Any]] = []
    elif isinstance(results, dict):
        results_list = [results]
    else:
        results_list = list(results)
    for i, item in enumerate(results_list):
        check_results(item, f"results[{i}]")
        if item.get("task") not in (None, config.task):
            raise CardInputError(f"results[{i}]: task {item['task']!r} does not match the model's task {config.task!r}")
    total, reference, table = count_parameters(model_dir_or_config, config)
    for i, item in enumerate(results_list):
        claimed = (item.get("model") or {}).get("num_parameters")
        if claimed is not None and claimed != total:
            raise CardInputError(f"results[{i}]: model.num_parameters is {claimed} but this checkpoint has {total}: "
                                 "the results are for another model")
    if training is None and results_list and isinstance(results_list[0].get("training"), dict):
        training = results_list[0]["training"]

    if repo_id is None and isinstance(model_dir_or_config, (str, os.PathLike)):
        folder = Path(model_dir_or_config).resolve()
        # `trm train` and `trm demo` save into RUN_DIR/model: the run's name says more than "model"
        model_name = folder.parent.name if folder.name == "model" and folder.parent.name else folder.name
    else:
        model_name = (repo_id or f"trm-{config.task}").split("/")[-1]
    dataset_ids = sorted({d for d in (hub_dataset_id(r["dataset"]) for r in results_list) if d})
    eval_results = build_eval_results(results_list, config.task)
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        tags=["trm", "recursive-reasoning", config.task],
        datasets=dataset_ids or None,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    context = {
        "card_data": card_data.to_yaml(),
        "model_name": model_name,
        "repo_id": repo_id or "ORG/NAME",
        "task": config.task,
        "task_name": TASK_NAMES.get(config.task, config.task),
        "config": config,
        "variant": "TRM-MLP" if config.mixer == "mlp_t" else "TRM-Att",
        "num_parameters": plain_number(total),
        "num_reference_parameters": plain_number(reference),
        "num_network_parameters": plain_number(total - table),
        "num_puzzle_embedding_parameters": plain_number(table),
        "example": example_question(config),
        "blank_symbol": config.id_to_symbol[config.blank_token_id] if config.blank_token_id is not None else None,
        "results": [results_context(r, config) for r in results_list],
        "solve_steps": evaluated_steps(results_list, config),
        "paper_rows": paper_rows(config, results_list),
        "recipe": recipe_context(recipe),
        "training": [(TRAINING_LABELS.get(k, k), plain_number(v)) for k, v in flatten(training)] if training else None,
        "bibtex": BIBTEX,
    }
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined, autoescape=False)
    template_text = (resources.files(__package__) / MODEL_CARD_TEMPLATE).read_text(encoding="utf-8")
    return ModelCard(environment.from_string(template_text).render(**context))


__all__ = [
    "BIBTEX", "CardInputError", "PAPER_RESULTS", "PaperResult", "build_eval_results", "check_results",
    "count_parameters", "load_config", "load_results", "render_model_card",
]
