"""Publishing against the local Hub-compatible server (`tests/hub_server.py`).

Pushes run in a client subprocess (the real `huggingface_hub` with `HF_ENDPOINT` set, see
`hub_fixtures`); loading runs in another one where `modeling_trm` cannot be imported, as on a
machine that only has `transformers`. Checks that need no server (refusals, what a trainer push
sends) run in this process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file
from hub_fixtures import read_request_log, run_hub_client, running_hub_server

from modeling_trm import GridReasoningPipeline, TRMForGridReasoning
from modeling_trm.data.metadata import DatasetMetadata, save_trm_dataset
from modeling_trm.commands.push import add_subcommands
from modeling_trm.publish import ModelFolderError, prepare_model_upload
from modeling_trm.recipes_io import load_recipe
from modeling_trm.training.trainer import TRMTrainer, TRMTrainingArguments
from test_model_card import make_results
from tiny_models import TINY_SUDOKU_SYMBOLS, tiny_model

TESTS_DIR = Path(__file__).resolve().parent
# the model code and what it imports: the grid-reasoning pipeline and its helpers
CODE_FILES = ["arc_canvas.py", "configuration_trm.py", "grid_checks.py", "modeling_trm.py", "pipeline_trm.py",
              "puzzle_text.py", "threads.py"]
PUSHED_MODEL_FILES = sorted(["README.md", "config.json", "model.safetensors", "recipe.json", "results.json",
                             "train_results.json", *CODE_FILES])


class Hub:
    def __init__(self, endpoint: str, root: Path, home: Path) -> None:
        self.endpoint, self.root, self.home = endpoint, root, home

    def client(self, code: str) -> Any:
        return run_hub_client(code, self.endpoint, self.home)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    base = tmp_path_factory.mktemp("hub")
    with running_hub_server(base / "server") as endpoint:
        yield Hub(endpoint, base / "server", base / "hf_home")


def random_rows(rows: int, seed: int) -> dict[str, list]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, 6, (rows, 16), generator=generator)
    labels = torch.randint(2, 6, (rows, 16), generator=generator)
    labels[:, :2] = -100
    return {"input_ids": inputs.tolist(), "labels": labels.tolist(), "puzzle_identifiers": [r % 3 for r in range(rows)],
            "rating": list(range(rows))}


@pytest.fixture(scope="module")
def trainer(tmp_path_factory) -> TRMTrainer:
    """A tiny model trained for a few steps, with an EMA far enough from the raw weights to tell them apart."""
    args = TRMTrainingArguments(output_dir=str(tmp_path_factory.mktemp("run")), per_device_train_batch_size=4,
                                max_steps=3, report_to=[], save_strategy="no", warmup_steps=1, disable_tqdm=True,
                                auto_bf16=False, seed=5, learning_rate=1e-2, ema_decay=0.5, logging_steps=1)
    trainer = TRMTrainer(model=tiny_model(), args=args, train_dataset=datasets.Dataset.from_dict(random_rows(24, 0)))
    trainer.train()
    return trainer


@pytest.fixture(scope="module")
def model_dir(trainer, tmp_path_factory) -> Path:
    """What `trm train` leaves in OUTPUT_DIR/model: EMA weights, code, results, recipe, training record."""
    folder = tmp_path_factory.mktemp("out") / "model"
    trainer.save_model(str(folder))
    model = TRMForGridReasoning.from_pretrained(folder)
    (folder / "results.json").write_text(json.dumps(make_results(model), indent=2))
    (folder / "recipe.json").write_text(json.dumps(load_recipe("sudoku-extreme-att"), indent=2))
    (folder / "train_results.json").write_text(json.dumps({"global_step": trainer.state.global_step}))
    return folder


def folder_state(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Bytes and mtime of every entry: 'the local folder is untouched' means this does not change."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in [folder, *sorted(folder.rglob("*"))]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- without a server


def test_folders_that_cannot_load_are_refused_before_any_upload(model_dir, tmp_path, capsys) -> None:
    def broken_copy(name: str, drop: str) -> Path:
        target = tmp_path / name
        shutil.copytree(model_dir, target)
        (target / drop).unlink()
        return target

    with pytest.raises(ModelFolderError, match=r"missing modeling_trm\.py"):
        prepare_model_upload(broken_copy("no-code", "modeling_trm.py"), "org/x")
    with pytest.raises(ModelFolderError, match=r"missing model\.safetensors"):
        prepare_model_upload(broken_copy("no-weights", "model.safetensors"), "org/x")
    diverged = broken_copy("diverged", "model.safetensors")
    weights = dict(TRMForGridReasoning.from_pretrained(model_dir).state_dict())
    weights["lm_head.weight"][0, 0] = float("nan")
    save_file({name: tensor.contiguous() for name, tensor in weights.items()}, str(diverged / "model.safetensors"))
    with pytest.raises(ModelFolderError, match=r"1 tensors hold NaN or infinite values \(lm_head\.weight\)"):
        prepare_model_upload(diverged, "org/x")
    no_auto_map = tmp_path / "no-auto-map"
    shutil.copytree(model_dir, no_auto_map)
    config = json.loads((no_auto_map / "config.json").read_text())
    del config["auto_map"]
    (no_auto_map / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="no auto_map entry for AutoModel"):
        prepare_model_upload(no_auto_map, "org/x")

    parser = argparse.ArgumentParser(prog="trm")
    add_subcommands(parser.add_subparsers(required=True))
    args = parser.parse_args(["push", str(tmp_path / "no-code"), "--repo-id", "org/x"])
    assert args.func(args) == 2  # one line on stderr, no traceback, no request (there is no server here)
    assert "missing modeling_trm.py" in capsys.readouterr().err


def test_upload_is_the_whitelist_and_the_card_is_rendered_in_memory(model_dir) -> None:
    before = folder_state(model_dir)
    files = prepare_model_upload(model_dir.parent, "org/trm-tiny")  # OUTPUT_DIR/model is found
    assert sorted(files) == PUSHED_MODEL_FILES  # not training_args.bin
    card = files["README.md"].decode()
    assert card.startswith("---\n") and 'AutoModel.from_pretrained("org/trm-tiny", trust_remote_code=True)' in card
    assert "43.2%" in card and "Recipe `sudoku-extreme-att`" in card
    assert folder_state(model_dir) == before  # README.md was not written


def test_trm_card_writes_readme_atomically_from_the_folder_files(model_dir, tmp_path, capsys) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    parser = argparse.ArgumentParser(prog="trm")
    add_subcommands(parser.add_subparsers(required=True))
    args = parser.parse_args(["card", str(folder), "--repo-id", "org/trm-tiny"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == f"wrote {folder / 'README.md'}"
    card = ModelCard.load(folder / "README.md")
    assert [e.metric_value for e in card.data.eval_results] == [0.4321, 0.8765, 0.4567, 0.4012]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*PUSHED_MODEL_FILES, "training_args.bin"])
    # with README.md present, a push sends it as written (no re-render) unless told to
    (folder / "README.md").write_text(str(card) + "\nA note by hand.\n")
    assert prepare_model_upload(folder, "org/x")["README.md"] == folder / "README.md"
    assert b"A note by hand" not in prepare_model_upload(folder, "org/x", render_card=True)["README.md"]
    # a card older than the results would publish numbers that results.json no longer holds
    results = json.loads((folder / "results.json").read_text())
    results["metrics"]["exact_accuracy"] = 0.5
    (folder / "results.json").write_text(json.dumps(results))
    with pytest.raises(ModelFolderError, match="model-index does not list exactly the metrics.*stale"):
        prepare_model_upload(folder, "org/x")
    assert b"50.0%" in prepare_model_upload(folder, "org/x", render_card=True)["README.md"]


def test_push_trainer_output_sends_ema_weights_and_the_trm_card(trainer, monkeypatch) -> None:
    import modeling_trm.publish as publish

    sent: dict[str, Any] = {}

    def capture(folder, repo_id, **kwargs):
        files = publish.prepare_model_upload(folder, repo_id, render_card=kwargs["render_card"])
        sent.update({name: value if isinstance(value, bytes) else value.read_bytes() for name, value in files.items()})
        sent["kwargs"] = kwargs
        return "commit"

    monkeypatch.setattr(publish, "push_model_folder", capture)
    results = make_results(trainer.model)
    assert publish.push_trainer_output(trainer, "org/trm-trained", results=results, private=True) == "commit"

    assert sorted(set(sent) - {"kwargs"}) == sorted(["README.md", "config.json", "model.safetensors", "results.json",
                                                     "train_results.json", *CODE_FILES])
    pushed = load_file_bytes(sent["model.safetensors"])
    ema = trainer.ema.state_dict_for(trainer.model)
    assert set(pushed) == set(ema)
    assert all(torch.equal(pushed[name], ema[name].cpu()) for name in pushed)
    raw = trainer.model.state_dict()
    assert any(not torch.equal(pushed[name], raw[name]) for name in pushed)  # EMA, not the raw weights
    card = sent["README.md"].decode()
    assert "Tiny Recursive Model" in card and "43.2%" in card and "Optimizer steps | 3 |" in card
    assert "This model is a fine-tuned version" not in card  # not the Trainer's generic card
    assert json.loads(sent["results.json"]) == results
    assert json.loads(sent["train_results.json"])["global_step"] == 3
    assert sent["kwargs"]["private"] is True


def load_file_bytes(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(data)


# ----------------------------------------------------------------------------- against the server


def test_pushed_model_and_app_load_without_the_package_and_solve_identically(hub, model_dir) -> None:
    before = folder_state(model_dir)
    pushed = hub.client(f"""
import argparse
from huggingface_hub import HfApi
from modeling_trm.commands.push import add_subcommands
parser = argparse.ArgumentParser(prog="trm")
add_subcommands(parser.add_subparsers(required=True))
args = parser.parse_args(["push", {str(model_dir.parent)!r}, "--repo-id", "org/trm-tiny", "--commit-message", "first",
                          "--with-app"])
status = args.func(args)
api = HfApi()
emit({{"status": status, "files": sorted(api.list_repo_files("org/trm-tiny")),
      "commits": [c.title for c in api.list_repo_commits("org/trm-tiny")]}})
""")
    with_app = sorted([".gitattributes", *PUSHED_MODEL_FILES, "app.py", "requirements.txt"])
    assert pushed == {"status": 0, "files": with_app,
                      "commits": ["first", "initial commit"]}  # one commit holds everything
    assert sorted(prepare_model_upload(model_dir, "org/x")) == PUSHED_MODEL_FILES  # the app only when asked
    assert folder_state(model_dir) == before
    commits = [status for method, path, status in read_request_log(hub.root)
               if method == "POST" and path.startswith("/api/models/org/trm-tiny/commit/")]
    assert commits == [200]  # weights, config, code, card, results: one commit request

    batch = torch.randint(1, 6, (5, 16), generator=torch.Generator().manual_seed(3))
    questions = ["".join(TINY_SUDOKU_SYMBOLS[t] for t in row) for row in batch.tolist()]
    loaded = hub.client(f"""
import sys
sys.modules["modeling_trm"] = None  # a machine with transformers only: the package cannot be imported
import hashlib, importlib.util, re, torch
from huggingface_hub import hf_hub_download
try:
    import modeling_trm
    package_importable = True
except ImportError:
    package_importable = False
card = open(hf_hub_download("org/trm-tiny", "README.md"), encoding="utf-8").read()
snippet = re.search(r"```python\\n(.*?)```", card, re.S).group(1)
ran = {{}}
exec(snippet, ran)  # the card's own usage example: AutoModel.from_pretrained(..., trust_remote_code=True)
model = ran["model"]
batch = torch.tensor({batch.tolist()})
paper, act = model.solve(batch, halting="max"), model.solve(batch, halting="act")
app_path = hf_hub_download("org/trm-tiny", "app.py")  # the demo app, as a Space would run it
spec = importlib.util.spec_from_file_location("space_app", app_path)
app = sys.modules["space_app"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
app_model = app.load_model("org/trm-tiny")
refinement = app.refine(app_model, batch[0].tolist(), None, "act")
requirements = open(hf_hub_download("org/trm-tiny", "requirements.txt"), encoding="utf-8").read()
from transformers import pipeline
solver = pipeline(model="org/trm-tiny", trust_remote_code=True, device="cpu")  # custom_pipelines in config.json
emit({{"package_importable": package_importable, "module": type(model).__module__,
      "pipeline": solver({questions!r}, batch_size=2), "pipeline_module": type(solver).__module__,
      "app": open(app_path, encoding="utf-8").read(), "requirements": requirements,
      "app_model_module": type(app_model).__module__, "app_final": refinement.final,
      "app_steps": len(refinement.answers),
      "snippet_input": ran["input_ids"].tolist(), "snippet_predictions": ran["out"].predictions.tolist(),
      "predictions": paper.predictions.tolist(), "q_halt": paper.q_halt_logits.tolist(),
      "act_predictions": act.predictions.tolist(), "act_steps": act.steps.tolist(),
      "weights_sha256": hashlib.sha256(open(hf_hub_download("org/trm-tiny", "model.safetensors"), "rb").read())
      .hexdigest(),
      "results": open(hf_hub_download("org/trm-tiny", "results.json"), "rb").read().decode()}})
""")
    assert loaded["package_importable"] is False
    assert loaded["module"].startswith("transformers_modules.")  # the remote code from the repo
    assert loaded["weights_sha256"] == sha256(model_dir / "model.safetensors")
    assert loaded["results"] == (model_dir / "results.json").read_text()

    local = TRMForGridReasoning.from_pretrained(model_dir).eval()
    snippet_input = torch.tensor(loaded["snippet_input"])
    assert snippet_input.shape == (1, 16)
    assert loaded["snippet_predictions"] == local.solve(snippet_input, halting="max").predictions.tolist()
    paper, act = local.solve(batch, halting="max"), local.solve(batch, halting="act")
    assert loaded["predictions"] == paper.predictions.tolist()
    assert loaded["pipeline_module"].startswith("transformers_modules.")
    assert loaded["pipeline"] == GridReasoningPipeline(model=local, device="cpu")(questions)
    assert torch.allclose(torch.tensor(loaded["q_halt"]), paper.q_halt_logits, rtol=0, atol=1e-6)
    assert (loaded["act_predictions"], loaded["act_steps"]) == (act.predictions.tolist(), act.steps.tolist())
    # app.py: this package's demo file as it is, with what a Space installs to run it
    assert loaded["app"] == (TESTS_DIR.parent / "modeling_trm" / "inference" / "app.py").read_text(encoding="utf-8")
    assert sorted(line.split(">=")[0] for line in loaded["requirements"].split()) == ["gradio", "torch", "transformers"]
    assert loaded["app_model_module"].startswith("transformers_modules.")
    assert (loaded["app_final"], loaded["app_steps"]) == (act.predictions[0].tolist(), int(act.steps[0]))


def test_second_push_adds_a_commit_and_a_failed_push_changes_nothing(hub, model_dir, tmp_path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(model_dir, first)
    shutil.copytree(model_dir, second)
    model = TRMForGridReasoning.from_pretrained(model_dir)
    (second / "results.json").write_text(json.dumps(make_results(model, metrics={"exact_accuracy": 0.5})))
    on_branch = tmp_path / "on-branch"
    shutil.copytree(model_dir, on_branch)
    (on_branch / "results.json").write_text(json.dumps(make_results(model, metrics={"exact_accuracy": 0.625})))
    doomed = tmp_path / "doomed"  # new weights (an LFS upload before the commit), no README: rendered in memory
    tiny_model(seed=7).save_pretrained(doomed)
    (doomed / "results.json").write_text(json.dumps(make_results(model, metrics={"exact_accuracy": 0.75})))
    before = folder_state(doomed)

    result = hub.client(f"""
import json, os, sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from hub_fixtures import arm_commit_failure
from huggingface_hub import HfApi, hf_hub_download
from modeling_trm.publish import PublishError, push_model_folder
api, repo = HfApi(), "org/trm-history"
one = push_model_folder({str(first)!r}, repo, private=True, commit_message="one").oid
two = push_model_folder({str(second)!r}, repo, commit_message="two").oid
same = push_model_folder({str(second)!r}, repo, commit_message="nothing changed").oid  # no empty commit
branch = push_model_folder({str(on_branch)!r}, repo, revision="experiment", commit_message="on a branch").oid
history = lambda revision="main": [c.commit_id for c in api.list_repo_commits(repo, revision=revision)]
before = history()
arm_commit_failure(os.environ["HF_ENDPOINT"])
try:
    push_model_folder({str(doomed)!r}, repo, commit_message="doomed")
    error = None
except PublishError as exc:
    error = {{"message": str(exc), "status": exc.__cause__.response.status_code}}
read = lambda revision: json.load(open(hf_hub_download(repo, "results.json", revision=revision)))
emit({{"private": api.repo_info(repo).private, "one": one, "two": two, "same": same, "branch": branch,
      "before": before, "after": history(),
      "titles": [c.title for c in api.list_repo_commits(repo)], "branch_history": history("experiment"),
      "error": error, "at_one": read(one)["metrics"], "at_main": read("main")["metrics"],
      "readme_at_main": open(hf_hub_download(repo, "README.md"), encoding="utf-8").read()}})
""")
    assert result["private"] is True
    assert result["titles"] == ["two", "one", "initial commit"]  # the branch push did not touch main
    assert result["same"] == result["two"]
    assert result["before"][:2] == [result["two"], result["one"]]
    assert result["branch_history"][:3] == [result["branch"], result["two"], result["one"]]
    assert result["at_one"]["exact_accuracy"] == 0.4321 and result["at_main"] == {"exact_accuracy": 0.5}
    assert "50.0%" in result["readme_at_main"]  # the new results re-rendered the card

    assert result["error"]["status"] == 500
    assert "nothing was committed" in result["error"]["message"] and "Injected failure" in result["error"]["message"]
    assert result["after"] == result["before"]  # history and main untouched
    assert folder_state(doomed) == before  # byte-identical, same mtimes, no README.md written
    assert not (doomed / "README.md").exists()


def test_dataset_push_round_trips_through_load_dataset(hub, tmp_path) -> None:
    features = datasets.Features({
        "input_ids": datasets.List(datasets.Value("int8"), length=16),
        "labels": datasets.List(datasets.Value("int16"), length=16),
        "puzzle_identifiers": datasets.Value("int32"),
        "rating": datasets.Value("int32"),
    })
    dataset = datasets.DatasetDict({"train": datasets.Dataset.from_dict(random_rows(12, 1), features=features),
                                    "test": datasets.Dataset.from_dict(random_rows(3, 2), features=features)})
    metadata = DatasetMetadata(task="sudoku", id_to_symbol=TINY_SUDOKU_SYMBOLS, seq_len=16, grid_shape=(4, 4),
                               blank_token_id=1, num_puzzle_identifiers=3, source={"generator": "random_rows"},
                               build_settings={"seed": 1})
    folder = save_trm_dataset(dataset, metadata, tmp_path / "tiny-sudoku")
    before = folder_state(folder)

    result = hub.client(f"""
import argparse, json
import datasets
from huggingface_hub import HfApi, hf_hub_download
from modeling_trm.data.metadata import DatasetMetadata, load_trm_dataset, save_trm_dataset
from modeling_trm.commands.push import add_data_push_parser
from modeling_trm.publish import push_dataset_folder
repo, api = "org/tiny-sudoku", HfApi()
push_dataset_folder({str(folder)!r}, repo, max_shard_bytes=300)  # several small shards
first_files = sorted(api.list_repo_files(repo, repo_type="dataset"))
parser = argparse.ArgumentParser(prog="trm")
data = parser.add_subparsers(required=True).add_parser("data")
add_data_push_parser(data.add_subparsers(required=True))
args = parser.parse_args(["data", "push", {str(folder)!r}, "--repo-id", repo, "--commit-message", "one shard each"])
status = args.func(args)
loaded = datasets.load_dataset(repo)
metadata = json.load(open(hf_hub_download(repo, "trm_metadata.json", repo_type="dataset")))
save_trm_dataset(loaded, DatasetMetadata.from_dict(metadata), "local-copy")  # the dataset card's recipe
copy, _ = load_trm_dataset("local-copy")
emit({{"status": status, "first_files": first_files, "files": sorted(api.list_repo_files(repo, repo_type="dataset")),
      "commits": [c.title for c in api.list_repo_commits(repo, repo_type="dataset")],
      "rows": {{name: split.to_dict() for name, split in loaded.items()}},
      "features": {{name: split.features.to_dict() for name, split in loaded.items()}},
      "copy_rows": {{name: split.num_rows for name, split in copy.items()}}, "metadata": metadata}})
""")
    assert result["status"] == 0
    train_shards = [f for f in result["first_files"] if f.startswith("data/train-")]
    assert len(train_shards) > 1 and "trm_metadata.json" in result["first_files"]
    assert result["files"] == [".gitattributes", "README.md", "data/test-00000-of-00001.parquet",
                               "data/train-00000-of-00001.parquet", "trm_metadata.json"]  # old shards deleted
    assert result["commits"][:2] == ["one shard each", "Upload TRM dataset from tiny-sudoku"]
    for name in ("train", "test"):
        assert result["rows"][name] == dataset[name].to_dict()
        assert result["features"][name] == features.to_dict()  # int8 / int16 and the fixed length survive
    assert result["copy_rows"] == {"train": 12, "test": 3}
    assert DatasetMetadata.from_dict(result["metadata"]).to_dict() == DatasetMetadata.load(folder).to_dict()
    assert folder_state(folder) == before
