"""Fault injection, interrupted publishing (issue 15, scenario 4).

The local Hub server (`tests/hub_server.py`, failure hooks `FAULT_MODES`) fails or drops the connection
mid-upload (LFS batch, LFS PUT, preupload) and mid-commit (before, during and after storing it). After
every fault the repo's branch holds the old commit or the complete new one, never a mix; the error
says which; a retry succeeds; the local folder is byte-identical, mtimes included.

All pushes run in one client process (the real `huggingface_hub` against the server, as in
`test_publish.py`), one repo per fault, so each case costs a few pushes rather than a process start.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hub_fixtures import armed_faults, run_hub_client, running_hub_server
from tiny_models import tiny_model

from modeling_trm.data.metadata import DatasetMetadata, save_trm_dataset

pytestmark = pytest.mark.faults

TESTS_DIR = Path(__file__).resolve().parent

# (case id, route handler, fault mode, times, what the branch must hold after the failed push)
FAULTS = [
    ("lfs-upload-dropped-mid-body", "lfs_upload", "drop-mid-body", 20, "old"),
    ("lfs-upload-500", "lfs_upload", "error", 20, "old"),
    ("lfs-batch-dropped", "lfs_batch", "drop", 20, "old"),
    ("preupload-dropped", "preupload", "drop", 20, "old"),
    ("commit-500", "commit", "error", 1, "old"),
    ("commit-dropped-before-storing", "commit", "drop", 1, "old"),
    ("commit-crash-before-branch-moves", "commit", "crash-mid-commit", 1, "old"),
    ("commit-answer-lost-after-storing", "commit", "drop-after", 1, "new"),
    ("lfs-upload-dropped-once", "lfs_upload", "drop-mid-body", 1, "pushed"),  # the client's own retry copes
    ("dataset-parquet-upload-dropped", "lfs_upload", "drop-mid-body", 20, "old"),
]

CLIENT = """
import functools, json, os, sys
sys.path.insert(0, {tests!r})
from hub_fixtures import arm_fault, armed_faults
from huggingface_hub import HfApi
from modeling_trm.publish import PublishError, push_dataset_folder, push_model_folder
# The client retries some requests with backoff (1, 2, 4, 8, 8 s): shorter waits, the same number of tries.
for module in [m for name, m in sys.modules.items() if name.startswith("huggingface_hub") and m is not None]:
    if callable(getattr(module, "http_backoff", None)):
        module.http_backoff = functools.partial(module.http_backoff, base_wait_time=0.01, max_wait_time=0.01)
api, endpoint = HfApi(), os.environ["HF_ENDPOINT"]

def state(repo, repo_type):
    info = api.repo_info(repo, repo_type=repo_type)
    history = [c.commit_id for c in api.list_repo_commits(repo, repo_type=repo_type)]
    return {{"head": info.sha, "history": history,
             "tree": {{s.rfilename: (s.lfs.sha256 if s.lfs else s.blob_id) for s in info.siblings}}}}

report = {{}}
for case, handler, mode, times, old_folder, new_folder in json.loads({cases!r}):
    dataset = case.startswith("dataset")
    repo, repo_type = "org/" + case, "dataset" if dataset else "model"
    push = (lambda folder: push_dataset_folder(folder, repo, commit_message=os.path.basename(folder))) if dataset \\
        else (lambda folder: push_model_folder(folder, repo, commit_message=os.path.basename(folder)))
    push(old_folder)
    before = state(repo, repo_type)
    arm_fault(endpoint, handler, mode, times)
    try:
        push(new_folder)
        error = None
    except PublishError as exc:
        error = str(exc)
    left = armed_faults({root!r}).get(handler, {{}}).get("times", 0)  # times minus the requests that met it
    after_failure = state(repo, repo_type)
    arm_fault(endpoint, handler, mode, 0)  # the network is back
    retried = push(new_folder).oid
    report[case] = {{"before": before, "error": error, "after_failure": after_failure, "retried": retried,
                     "after_retry": state(repo, repo_type), "met": times - left}}
emit(report)
"""


def folder_state(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in [folder, *sorted(folder.rglob("*"))]}


def _dataset_folder(path: Path, seed: int) -> Path:
    import datasets
    import torch

    generator = torch.Generator().manual_seed(seed)
    rows = {"input_ids": torch.randint(1, 6, (6, 16), generator=generator).tolist(),
            "labels": torch.randint(2, 6, (6, 16), generator=generator).tolist(), "puzzle_identifiers": [0] * 6}
    features = datasets.Features({"input_ids": datasets.List(datasets.Value("int8"), length=16),
                                  "labels": datasets.List(datasets.Value("int16"), length=16),
                                  "puzzle_identifiers": datasets.Value("int32")})
    split = datasets.Dataset.from_dict(rows, features=features)
    metadata = DatasetMetadata(task="sudoku", id_to_symbol=["<pad>", ".", "1", "2", "3", "4"], seq_len=16,
                               grid_shape=(4, 4), blank_token_id=1)
    return save_trm_dataset(datasets.DatasetDict({"train": split, "test": split}), metadata, path)


def _run_cases(root: Path, cases: list[tuple]) -> dict:
    """Every case pushes an old folder, then (under its fault) a new one with weights of its own: the
    server stores blobs by content, so weights another case already uploaded would skip the upload."""
    old_model = root / "model-old"
    tiny_model(seed=1).save_pretrained(old_model)
    folders = {}
    for case, *_ in cases:
        if case.startswith("dataset"):
            folders[case] = (_dataset_folder(root / "data-old", 1), _dataset_folder(root / "data-new", 2))
        else:
            tiny_model(seed=10 + [c[0] for c in FAULTS].index(case)).save_pretrained(root / f"model-{case}")
            folders[case] = (old_model, root / f"model-{case}")
    local = {str(folder): folder_state(folder) for pair in folders.values() for folder in pair}
    listed = json.dumps([(case, handler, mode, times, str(folders[case][0]), str(folders[case][1]))
                         for case, handler, mode, times, _ in cases])
    with running_hub_server(root / "server") as endpoint:
        report = run_hub_client(CLIENT.format(tests=str(TESTS_DIR), cases=listed, root=str(root / "server")),
                                endpoint, root / "hf_home", timeout=300)
        leftover = armed_faults(root / "server")
    return {"report": report, "local": local, "folders": folders, "leftover": leftover}


def _group(handler: str) -> str:
    return "commit_pushes" if handler == "commit" else "upload_pushes"


@pytest.fixture(scope="module")
def upload_pushes(tmp_path_factory) -> dict:
    """The cases that fail before the commit request (preupload, LFS batch, LFS upload), in one client process."""
    return _run_cases(tmp_path_factory.mktemp("upload-faults"), [c for c in FAULTS if _group(c[1]) == "upload_pushes"])


@pytest.fixture(scope="module")
def commit_pushes(tmp_path_factory) -> dict:
    """The cases that fail in or after the commit request, in another client process."""
    return _run_cases(tmp_path_factory.mktemp("commit-faults"), [c for c in FAULTS if _group(c[1]) == "commit_pushes"])


@pytest.mark.parametrize("case, handler, mode, times, expected", FAULTS, ids=[case[0] for case in FAULTS])
def test_interrupted_push_leaves_old_or_new_commit_and_a_retry_succeeds(case, handler, mode, times, expected,
                                                                       request) -> None:
    pushes = request.getfixturevalue(_group(handler))
    result = pushes["report"][case]
    before, failed, final = result["before"], result["after_failure"], result["after_retry"]
    assert 1 <= result["met"] <= times  # the push did run into the fault
    new_tree = final["tree"]
    assert new_tree != before["tree"]  # the second push changes files, so "old" and "new" are distinguishable

    if expected == "pushed":  # a dropped upload that the client retried on its own: no error at all
        assert result["error"] is None
        assert failed["history"] == [failed["head"], *before["history"]] and failed["tree"] == new_tree
    elif expected == "old":
        assert failed == before  # the same head, history and files: nothing of the new push is visible
        assert f"nothing was committed (the branch is still at {before['head']})" in result["error"]
    else:  # the commit was stored and only its answer was lost: the complete new tree, and the error says so
        assert failed["history"][1:] == before["history"] and failed["tree"] == new_tree
        assert f"the branch moved from {before['head']} to {failed['head']}" in result["error"]
        assert "the commit landed although its answer was lost" in result["error"]

    # the retry: one commit on top of the old history (none more if the failed push had landed), complete files
    assert final["history"][1:] == before["history"] and final["head"] == result["retried"]
    if expected != "old":
        assert final == failed  # an identical push adds no commit
    if not case.startswith("dataset"):  # the weights on the Hub are the local bytes
        weights = hashlib.sha256((pushes["folders"][case][1] / "model.safetensors").read_bytes()).hexdigest()
        assert final["tree"]["model.safetensors"] == weights


@pytest.mark.parametrize("group", ["upload_pushes", "commit_pushes"])
def test_faults_were_consumed_and_local_folders_untouched(group, request) -> None:
    pushes = request.getfixturevalue(group)
    assert pushes["leftover"] == {}  # every fault disarmed: no later push met a fault meant for another
    for folder, state in pushes["local"].items():
        assert folder_state(Path(folder)) == state, folder  # byte-identical, same mtimes
