"""Publish TRM checkpoints and datasets on the Hugging Face Hub, each in one commit.

    trm card  OUTPUT_DIR [--results FILE ...] [--recipe NAME_OR_PATH]       write OUTPUT_DIR/README.md
    trm push  OUTPUT_DIR --repo-id org/name [--private] [--revision BRANCH] [--commit-message TEXT] [--with-app]
    trm data push DATASET_DIR --repo-id org/name [--private] [--revision BRANCH] [--commit-message TEXT]

A model push uploads what `from_pretrained(..., trust_remote_code=True)` needs and what the card
cites: the EMA weights (`model.safetensors`), `config.json`, the remote code (`configuration_trm.py`,
`modeling_trm.py` and the modules they import: the `grid-reasoning` pipeline `pipeline_trm.py` and its
helpers), the card (`README.md`, rendered from the results if the folder has none) and the
results, recipe and training record it was rendered from; `--with-app` adds the browser demo as
`app.py` with its `requirements.txt` (a Space-style repo). Nothing else in the folder is sent
(checkpoints, raw weights and pickled training arguments stay local), and the folder is only read.
A dataset push uploads every split as Parquet (features kept), a dataset card and `trm_metadata.json`.

The target is `HF_ENDPOINT` (the Hub by default); the token comes from `token=`, `HF_TOKEN` or
`hf auth login`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"
REMOTE_CODE_FILES = ("configuration_trm.py", "modeling_trm.py")
CARD_NAME = "README.md"
RESULTS_NAME = "results.json"
RECIPE_NAME = "recipe.json"
TRAINING_RECORD_NAME = "train_results.json"
APP_NAME = "app.py"  # the Gradio demo (modeling_trm/inference/app.py), which imports only torch, transformers, gradio
APP_REQUIREMENTS_NAME = "requirements.txt"
APP_REQUIREMENTS = "torch>=2.6\ntransformers>=5.0\ngradio>=6.0\n"  # what a Space installs to run app.py
DATASET_CARD_TEMPLATE = "dataset_card.md.jinja"
MAX_PARQUET_SHARD_BYTES = 500 * 1024 * 1024  # the Hub's dataset viewer handles shards of this size well


class ModelFolderError(ValueError):
    """The folder cannot be published as it is (a required file is missing or malformed)."""


class PublishError(RuntimeError):
    """The Hub refused or the upload failed; the local folder is unchanged, and the message says what the
    branch holds now (a commit is all or nothing: the old commit, or, if only the answer was lost, the new one)."""


# ----------------------------------------------------------------------------- model folders


@dataclass
class CardInputs:
    """What a card is rendered from, and the files that must ship beside it so its numbers can be checked."""

    results: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] | None = None
    training: dict[str, Any] | None = None


def find_model_folder(path: str | os.PathLike) -> Path:
    """`path` itself if it holds config.json, else `path/model` (the layout `trm train` writes)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a folder")
    if not (path / CONFIG_NAME).is_file() and (path / "model" / CONFIG_NAME).is_file():
        return path / "model"
    return path


def model_files(folder: Path) -> dict[str, Path]:
    """The files a loadable checkpoint needs (path in repo -> local path); `ModelFolderError` if any is missing."""
    missing = [name for name in (CONFIG_NAME, *REMOTE_CODE_FILES) if not (folder / name).is_file()]
    files = {name: folder / name for name in (CONFIG_NAME, *REMOTE_CODE_FILES) if (folder / name).is_file()}
    for name in imported_code_files(folder, [name for name in REMOTE_CODE_FILES if name in files]):
        if (folder / name).is_file():
            files[name] = folder / name
        else:
            missing.append(name)
    if (folder / WEIGHTS_INDEX_NAME).is_file():
        try:
            shards = sorted(set(json.loads((folder / WEIGHTS_INDEX_NAME).read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as error:
            raise ModelFolderError(f"{folder / WEIGHTS_INDEX_NAME} is not a safetensors index: {error}") from None
        files[WEIGHTS_INDEX_NAME] = folder / WEIGHTS_INDEX_NAME
        for shard in shards:
            if (folder / shard).is_file():
                files[shard] = folder / shard
            else:
                missing.append(shard)
    elif (folder / WEIGHTS_NAME).is_file():
        files[WEIGHTS_NAME] = folder / WEIGHTS_NAME
    else:
        hint = " (only PyTorch .bin weights found: save with safe_serialization)" \
            if (folder / "pytorch_model.bin").is_file() else ""
        missing.append(WEIGHTS_NAME + hint)
    if missing:
        raise ModelFolderError(
            f"{folder} cannot be published: missing {', '.join(missing)}. A TRM model folder is written by "
            "`trm train` (OUTPUT_DIR/model), `TRMTrainer.save_model` or `TRMForGridReasoning.save_pretrained`."
        )
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelFolderError(f"{folder / CONFIG_NAME}: malformed JSON at line {error.lineno}: {error.msg}") from None
    if config.get("model_type") != "trm":
        raise ModelFolderError(f"{folder / CONFIG_NAME}: model_type is {config.get('model_type')!r}, expected 'trm'")
    if "AutoModel" not in (config.get("auto_map") or {}):
        raise ModelFolderError(f"{folder / CONFIG_NAME}: no auto_map entry for AutoModel, so "
                               "trust_remote_code loading would fail; re-save the model with save_pretrained")
    return files


def imported_code_files(folder: Path, code_files: list[str]) -> list[str]:
    """The modules `code_files` import relatively (`from .pipeline_trm import ...`), recursively: the
    remote code needs them beside it (the pipeline and its helpers, for models saved with them)."""
    from transformers.dynamic_module_utils import get_relative_imports

    found: list[str] = []
    pending = list(code_files)
    while pending:
        path = folder / pending.pop()
        if not path.is_file():
            continue
        for module in get_relative_imports(path):
            name = f"{module}.py"
            if name not in found and name not in code_files:
                found.append(name)
                pending.append(name)
    return sorted(found)


def check_finite_weights(files: dict[str, Path]) -> None:
    """Refuse weights holding NaN or infinity: a diverged run would load fine and answer nonsense."""
    import torch
    from safetensors import safe_open

    for name, path in files.items():
        if not name.endswith(".safetensors"):
            continue
        with safe_open(str(path), "pt") as handle:
            bad = []
            for key in handle.keys():
                tensor = handle.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    bad.append(key)
        if bad:
            raise ModelFolderError(f"{path}: {len(bad)} tensors hold NaN or infinite values ({', '.join(bad[:3])}"
                                   f"{', ...' if len(bad) > 3 else ''}); the run diverged, refusing to publish")


def read_card_inputs(folder: Path) -> CardInputs:
    """The results, recipe and training record saved beside a model (each optional)."""
    from .hub_card.render import load_json_file, load_results

    inputs = CardInputs()
    if (folder / RESULTS_NAME).is_file():
        inputs.results = load_results(folder / RESULTS_NAME)
    if (folder / RECIPE_NAME).is_file():
        inputs.recipe = load_json_file(folder / RECIPE_NAME, "recipe")
    if (folder / TRAINING_RECORD_NAME).is_file():
        inputs.training = load_json_file(folder / TRAINING_RECORD_NAME, "training record")
    return inputs


def as_results_list(results: Any) -> list[dict[str, Any]]:
    """Results given as a dict, a list of dicts, or paths to results JSON files -> a checked list."""
    from .hub_card.render import check_results, load_results

    items = results if isinstance(results, (list, tuple)) else [results]
    checked: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            checked.extend(load_results(item))
        else:
            checked.append(check_results(item, f"results[{i}]"))
    return checked


def json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode("utf-8")


def prepare_model_upload(
    folder: str | os.PathLike,
    repo_id: str,
    results: Any = None,
    recipe: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    render_card: bool | None = None,
    with_app: bool = False,
) -> dict[str, Path | bytes]:
    """Everything one push sends (path in repo -> local file or bytes), checked, without touching the network.

    Results/recipe/training given here replace the folder's `results.json`/`recipe.json`/
    `train_results.json` in the upload (not on disk). The card is rendered when `render_card` is True,
    or when it is None and the folder has no README.md or new results were given; otherwise the
    folder's README.md is sent as it is. `with_app` adds the demo app (`app.py`, `requirements.txt`).
    """
    from .hub_card.render import render_model_card

    folder = find_model_folder(folder)
    files: dict[str, Path | bytes] = dict(model_files(folder))
    check_finite_weights(files)
    on_disk = read_card_inputs(folder)
    inputs = CardInputs(
        results=as_results_list(results) if results is not None else on_disk.results,
        recipe=recipe if recipe is not None else on_disk.recipe,
        training=training if training is not None else on_disk.training,
    )
    for name, given, value in ((RESULTS_NAME, results, inputs.results), (RECIPE_NAME, recipe, inputs.recipe),
                               (TRAINING_RECORD_NAME, training, inputs.training)):
        if given is not None:
            files[name] = json_bytes(value[0] if name == RESULTS_NAME and len(value) == 1 else value)
        elif (folder / name).is_file():
            files[name] = folder / name
    if render_card is None:
        render_card = not (folder / CARD_NAME).is_file() or results is not None
    if render_card:
        card = render_model_card(folder, inputs.results, inputs.recipe, inputs.training, repo_id=repo_id)
        files[CARD_NAME] = str(card).encode("utf-8")
    else:
        check_card_matches_results(folder / CARD_NAME, inputs.results)
        files[CARD_NAME] = folder / CARD_NAME
    if with_app:
        files[APP_NAME] = Path(__file__).parent / "inference" / APP_NAME
        files[APP_REQUIREMENTS_NAME] = APP_REQUIREMENTS.encode("utf-8")
    return files


def check_card_matches_results(card_path: Path, results: list[dict[str, Any]]) -> None:
    """Refuse a hand-kept README.md whose model-index disagrees with the results sent beside it (a stale card)."""
    from huggingface_hub import ModelCard

    from .hub_card.render import build_eval_results, load_config

    def rows(eval_results) -> list[tuple]:
        return sorted((e.metric_type, e.metric_value, e.metric_config, e.dataset_name, e.dataset_split,
                       e.dataset_revision) for e in eval_results or [])

    try:
        card = ModelCard.load(card_path)
    except ValueError as error:
        raise ModelFolderError(f"{card_path}: not a model card with YAML metadata: {error}") from None
    expected = build_eval_results(results, load_config(card_path.parent).task)
    if rows(card.data.eval_results) != rows(expected):
        raise ModelFolderError(
            f"{card_path}: its model-index does not list exactly the metrics of the results being published "
            "(the card is stale); re-render it with `trm card` or push with --render-card"
        )


def push_model_folder(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    *,
    results: Any = None,
    recipe: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    render_card: bool | None = None,
    with_app: bool = False,
):
    """Upload a saved TRM model folder to `repo_id` in one commit; returns the `huggingface_hub.CommitInfo`.

    Args:
        folder (`str` or `os.PathLike`):
            A model folder (config.json, model.safetensors, remote code), or a `trm train` output dir
            holding one under `model/`. It is only read.
        repo_id (`str`):
            `org/name` on the Hub; created (model repo) if it does not exist.
        private (`bool`, *optional*, defaults to `False`):
            Visibility of a newly created repo (an existing repo keeps its visibility).
        revision (`str`, *optional*):
            Branch to commit to (created from `main` if missing); defaults to `main`.
        commit_message (`str`, *optional*):
            Title of the commit.
        token (`str`, *optional*):
            Hub token; defaults to `HF_TOKEN` / the stored login.
        results, recipe, training, render_card, with_app:
            See `prepare_model_upload`.
    """
    files = prepare_model_upload(folder, repo_id, results, recipe, training, render_card, with_app)
    message = commit_message or f"Upload TRM model from {find_model_folder(folder).name}"
    return _commit_files(repo_id, "model", files, private, revision, message, token,
                         stale=lambda path: path.startswith("model") and ".safetensors" in path)


# ----------------------------------------------------------------------------- datasets


def push_dataset_folder(
    dataset_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    max_shard_bytes: int = MAX_PARQUET_SHARD_BYTES,
):
    """Upload a TRM dataset folder (`save_trm_dataset` layout) as a Hub dataset in one commit.

    Every split becomes `data/<split>-NNNNN-of-NNNNN.parquet` (the Parquet schema carries the
    `datasets` features, so `load_dataset(repo_id)` gives back the same dtypes and fixed lengths),
    beside `trm_metadata.json` (fetch it with `hf_hub_download(repo_id, "trm_metadata.json",
    repo_type="dataset")`) and a dataset card. Shards of an earlier push that this one does not
    rewrite are deleted in the same commit. The folder is only read; Parquet files are staged in a
    temporary folder.
    """
    from .data.metadata import METADATA_FILENAME, load_trm_dataset

    dataset_dir = Path(dataset_dir)
    dataset, metadata = load_trm_dataset(dataset_dir)
    with tempfile.TemporaryDirectory(prefix="trm-dataset-push-") as staging:
        files: dict[str, Path | bytes] = {}
        for split, table in dataset.items():
            shards = max(1, math.ceil(table.data.nbytes / max_shard_bytes))
            for index in range(shards):
                name = f"data/{split}-{index:05d}-of-{shards:05d}.parquet"
                target = Path(staging) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                table.shard(shards, index, contiguous=True).to_parquet(str(target))
                files[name] = target
        files[METADATA_FILENAME] = dataset_dir / METADATA_FILENAME
        files[CARD_NAME] = render_dataset_card(dataset, metadata, repo_id).encode("utf-8")
        message = commit_message or f"Upload TRM dataset from {dataset_dir.name}"
        return _commit_files(repo_id, "dataset", files, private, revision, message, token,
                             stale=lambda path: path.startswith("data/"))


def render_dataset_card(dataset: Any, metadata: Any, repo_id: str) -> str:
    """Dataset card: `configs` + `dataset_info` YAML (splits and features) and a body from the metadata."""
    import jinja2
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard, DatasetCardData

    first = next(iter(dataset.values()))
    info = DatasetInfo(features=first.features)
    info.splits = SplitDict({name: SplitInfo(name, num_bytes=split.data.nbytes, num_examples=split.num_rows)
                             for name, split in dataset.items()})
    card_data = DatasetCardData(
        tags=["trm", "recursive-reasoning", metadata.task],
        configs=[{"config_name": "default",
                  "data_files": [{"split": name, "path": f"data/{name}-*"} for name in dataset]}],
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    template = (resources.files("modeling_trm.hub_card") / DATASET_CARD_TEMPLATE).read_text(encoding="utf-8")
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined)
    content = environment.from_string(template).render(
        card_data=card_data.to_yaml(), repo_id=repo_id, metadata=metadata,
        splits=[(name, split.num_rows) for name, split in dataset.items()],
        columns=[(name, str(feature)) for name, feature in first.features.items()],
        source=json.dumps(metadata.source, indent=2, sort_keys=True),
        build_settings=json.dumps(metadata.build_settings, indent=2, sort_keys=True),
    )
    return str(DatasetCard(content))


# ----------------------------------------------------------------------------- trainer


def training_record(trainer: Any) -> dict[str, Any]:
    """What a finished `TRMTrainer` run did, for the card's compute table (all read from the trainer)."""
    state, args = trainer.state, trainer.args
    record: dict[str, Any] = {"global_step": state.global_step}
    for name in ("samples_started", "samples_finished"):
        if hasattr(trainer, name):
            record[f"train_{name}"] = getattr(trainer, name)
    record["world_size"] = args.world_size
    record["device"] = str(args.device)
    runtime = [entry["train_runtime"] for entry in state.log_history if "train_runtime" in entry]
    if runtime:
        record["train_runtime"] = runtime[-1]
    if state.total_flos:
        record["total_flos"] = state.total_flos
    return record


def push_trainer_output(
    trainer: Any,
    repo_id: str | None = None,
    results: Any = None,
    *,
    recipe: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
):
    """Save the trainer's EMA model, render the TRM card, push both in one commit (`TRMTrainer.push_to_hub`).

    Every process saves (some backends gather weights collectively); only the main process pushes and
    gets the `CommitInfo`, the others get `None`. `repo_id`, `private` and `token` default to the
    training arguments' `hub_model_id`, `hub_private_repo` and `hub_token`. The training record
    defaults to `training_record(trainer)` and ships as `train_results.json` beside the card.
    """
    args = trainer.args
    repo_id = repo_id or getattr(args, "hub_model_id", None)
    if not repo_id:
        raise ValueError("push_trainer_output needs repo_id (or TrainingArguments.hub_model_id)")
    private = bool(getattr(args, "hub_private_repo", False)) if private is None else private
    token = token or getattr(args, "hub_token", None)
    with tempfile.TemporaryDirectory(prefix="trm-push-") as staging:
        trainer.save_model(staging, _internal_call=True)  # EMA weights; _internal_call: no Trainer auto-push
        if not trainer.is_world_process_zero():
            return None
        if results is not None:
            listed = as_results_list(results)
            (Path(staging) / RESULTS_NAME).write_bytes(json_bytes(listed[0] if len(listed) == 1 else listed))
        if recipe is not None:
            (Path(staging) / RECIPE_NAME).write_bytes(json_bytes(recipe))
        record = training if training is not None else training_record(trainer)
        (Path(staging) / TRAINING_RECORD_NAME).write_bytes(json_bytes(record))
        message = commit_message or f"Upload TRM model after {trainer.state.global_step} steps"
        return push_model_folder(staging, repo_id, private=private, revision=revision, token=token,
                                 commit_message=message, render_card=True)


# ----------------------------------------------------------------------------- the Hub


def _commit_files(repo_id: str, repo_type: str, files: dict[str, Path | bytes], private: bool,
                  revision: str | None, commit_message: str, token: str | None, stale) -> Any:
    """Create the repo/branch if needed and commit `files` (plus deletions of `stale` old files) at once."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"invalid repo id {repo_id!r}: {error}") from None
    api = HfApi(token=token)
    where = f"{repo_type} repo {repo_id}" + (f" (branch {revision})" if revision else "")
    head = None
    try:
        if not api.repo_exists(repo_id, repo_type=repo_type):  # asking first: not every server answers 409 alike
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        head = api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
        existing = api.list_repo_files(repo_id, repo_type=repo_type, revision=head)
        deletions = [CommitOperationDelete(path_in_repo=path) for path in existing if stale(path) and path not in files]
        additions = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(src) if isinstance(src, Path) else src)
                     for path, src in sorted(files.items())]
        # parent_commit: if anyone moved the branch since `existing` was listed, the Hub refuses the commit
        # instead of applying deletions computed from a stale listing.
        return api.create_commit(repo_id, [*deletions, *additions], commit_message=commit_message,
                                 repo_type=repo_type, revision=revision, parent_commit=head)
    except Exception as error:
        if not _caused_by_the_hub(error, (HfHubHTTPError, OSError)):
            raise
        outcome = _commit_outcome(api, repo_id, repo_type, revision, head)
        raise PublishError(f"pushing to the {where} failed, {outcome} (the local files are unchanged): {error}") \
            from error


def _commit_outcome(api: Any, repo_id: str, repo_type: str, revision: str | None, head: str | None) -> str:
    """What a failed push left on the Hub, asked again after the failure: a commit is all or nothing, but a
    connection lost while the Hub stored it leaves the client unsure which."""
    if head is None:
        return "nothing was committed"
    try:
        now = api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
    except Exception:  # the Hub cannot be reached right now either
        return (f"and whether the commit landed is unknown (the branch was at {head}); pushing again is safe: "
                "an identical push adds no commit")
    if now == head:
        return f"nothing was committed (the branch is still at {head})"
    return (f"but the branch moved from {head} to {now}: the commit landed although its answer was lost; pushing "
            "again is safe: an identical push adds no commit")


def _caused_by_the_hub(error: BaseException, hub_errors: tuple[type[BaseException], ...]) -> bool:
    """An HTTP or connection error, or an error raised because of one (huggingface_hub wraps a failed LFS
    upload in a plain RuntimeError whose cause is the connection error)."""
    while error is not None:
        if isinstance(error, hub_errors) or _is_transport_error(error):
            return True
        error = error.__cause__
    return False


def _is_transport_error(error: BaseException) -> bool:
    """Connection/timeout errors of the HTTP library under huggingface_hub (httpx or its successor)."""
    return type(error).__module__.split(".")[0].startswith("httpx")


# ----------------------------------------------------------------------------- CLI


def write_model_card(folder: str | os.PathLike, results: Any = None, recipe: dict[str, Any] | None = None,
                     repo_id: str | None = None) -> Path:
    """Render the card of a model folder (from its own results.json etc. unless given) into README.md, atomically."""
    from .hub_card.render import render_model_card

    folder = find_model_folder(folder)
    model_files(folder)
    on_disk = read_card_inputs(folder)
    card = render_model_card(folder, as_results_list(results) if results is not None else on_disk.results,
                             recipe if recipe is not None else on_disk.recipe, on_disk.training, repo_id=repo_id)
    handle, temp_name = tempfile.mkstemp(prefix=f".{CARD_NAME}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(str(card))
        os.replace(temp_name, folder / CARD_NAME)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return folder / CARD_NAME



__all__ = [
    "ModelFolderError", "PublishError", "prepare_model_upload",
    "push_dataset_folder", "push_model_folder", "push_trainer_output", "render_dataset_card", "training_record",
    "write_model_card",
]
