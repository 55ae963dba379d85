"""Round trips through the local Hub-compatible server (`tests/hub_server.py`).

The client tests run the real `huggingface_hub`, `datasets` and `transformers` code in a subprocess
whose `HF_ENDPOINT` points at a server on 127.0.0.1 (see `hub_fixtures`), then compare bytes, history
and errors with what was pushed. The raw-HTTP tests pin the headers and error codes those clients rely on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hub_fixtures import commit_failure_armed, read_request_log, run_hub_client, running_hub_server
from safetensors.numpy import save_file


@dataclass
class LocalHub:
    endpoint: str
    root: Path  # server storage
    home: Path  # HF_HOME of the client subprocesses

    def client(self, code: str) -> Any:
        return run_hub_client(code, self.endpoint, self.home)


@pytest.fixture
def hub(tmp_path: Path):
    with running_hub_server(tmp_path / "hub") as endpoint:
        yield LocalHub(endpoint, tmp_path / "hub", tmp_path / "hf_home")


def write_model_folder(folder: Path, scale: float = 1.0, config: dict | None = None) -> dict[str, bytes]:
    """A tiny checkpoint folder: safetensors weights (LFS), config.json and a nested text file (regular)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes").mkdir(exist_ok=True)
    weights = {"embed.weight": np.arange(12, dtype=np.float32).reshape(4, 3) * scale}
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config or {"vocab_size": 11, "hidden_size": 8}))
    (folder / "notes" / "readme.txt").write_text("trained for 0 steps\n")
    return folder_contents(folder)


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def folder_state(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Bytes and mtime of every file and folder: what 'the local folder is untouched' means."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in [folder, *folder.rglob("*")]
    }


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def post_json(url: str, payload: Any) -> tuple[int, Message, bytes]:
    return http("POST", url, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def ndjson(*items: dict) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


# --------------------------------------------------------------------------- huggingface_hub clients


def test_upload_folder_then_snapshot_download_gives_identical_bytes_with_weights_in_lfs(hub: LocalHub, tmp_path):
    local = write_model_folder(tmp_path / "ckpt")
    result = hub.client(
        f"""
from huggingface_hub import HfApi, snapshot_download
api = HfApi()
api.create_repo("org/tiny-model")
commit = api.upload_folder(folder_path={str(tmp_path / "ckpt")!r}, repo_id="org/tiny-model", commit_message="first")
infos = api.get_paths_info("org/tiny-model", ["model.safetensors", "config.json"])
emit({{"commit": commit.oid, "snapshot": snapshot_download("org/tiny-model"),
      "lfs_sha256": {{i.path: i.lfs.sha256 if i.lfs else None for i in infos}},
      "blob_id": {{i.path: i.blob_id for i in infos}}}})
"""
    )
    snapshot = Path(result["snapshot"])
    assert snapshot.name == result["commit"]
    downloaded = folder_contents(snapshot)
    assert downloaded.pop(".gitattributes").startswith(b"*.safetensors filter=lfs")  # the repo's initial commit
    assert downloaded == local

    weights_sha256 = hashlib.sha256(local["model.safetensors"]).hexdigest()
    assert result["lfs_sha256"] == {"model.safetensors": weights_sha256, "config.json": None}
    assert result["blob_id"]["config.json"] == git_blob_sha1(local["config.json"])
    assert (hub.root / "blobs" / weights_sha256).read_bytes() == local["model.safetensors"]
    log = read_request_log(hub.root)
    # Only the weights travel through the LFS PUT; the json and text files are inlined in the commit.
    assert [path for method, path, _ in log if method == "PUT"] == [f"/_lfs/{weights_sha256}"]
    assert not [path for _, path, _ in log if "xet" in path]
    assert all(status < 400 for method, _, status in log if method != "HEAD")


def test_second_upload_adds_a_commit_and_the_old_revision_keeps_the_old_content(hub: LocalHub, tmp_path):
    v1 = write_model_folder(tmp_path / "v1", config={"hidden_size": 8})
    v2 = write_model_folder(tmp_path / "v2", config={"hidden_size": 16})  # same weights, new config
    (tmp_path / "v2" / "notes" / "added.txt").write_text("second run\n")
    result = hub.client(
        f"""
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
api.create_repo("org/tiny-model")
first = api.upload_folder(folder_path={str(tmp_path / "v1")!r}, repo_id="org/tiny-model", commit_message="first").oid
second = api.upload_folder(folder_path={str(tmp_path / "v2")!r}, repo_id="org/tiny-model", commit_message="second").oid
read = lambda revision: open(hf_hub_download("org/tiny-model", "config.json", revision=revision), "rb").read().decode()
emit({{"first": first, "second": second,
      "commits": [[c.commit_id, c.title] for c in api.list_repo_commits("org/tiny-model")],
      "config_at_first": read(first), "config_at_main": read("main"),
      "files_at_first": api.list_repo_files("org/tiny-model", revision=first),
      "files_at_main": api.list_repo_files("org/tiny-model")}})
"""
    )
    commits = result["commits"]
    assert [title for _, title in commits] == ["second", "first", "initial commit"]  # newest first
    assert [commit_id for commit_id, _ in commits[:2]] == [result["second"], result["first"]]
    assert result["config_at_first"].encode() == v1["config.json"]
    assert result["config_at_main"].encode() == v2["config.json"]
    assert "notes/added.txt" not in result["files_at_first"]
    assert "notes/added.txt" in result["files_at_main"]
    # The unchanged weights were not uploaded again: the LFS batch answered "already present".
    weights_sha256 = hashlib.sha256(v1["model.safetensors"]).hexdigest()
    puts = [path for method, path, _ in read_request_log(hub.root) if method == "PUT"]
    assert puts == [f"/_lfs/{weights_sha256}"]


def test_branch_gets_its_own_history_and_main_is_unchanged(hub: LocalHub):
    result = hub.client(
        """
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
api.create_repo("org/tiny-model", repo_type="dataset")
api.create_branch("org/tiny-model", branch="v2", repo_type="dataset")
api.create_branch("org/tiny-model", branch="v2", repo_type="dataset", exist_ok=True)  # 409 -> tolerated
api.upload_file(path_or_fileobj=b"branch only", path_in_repo="x.txt", repo_id="org/tiny-model",
                repo_type="dataset", revision="v2")
refs = api.list_repo_refs("org/tiny-model", repo_type="dataset")
emit({"branches": sorted(b.name for b in refs.branches),
      "x_on_v2": open(hf_hub_download("org/tiny-model", "x.txt", repo_type="dataset", revision="v2")).read(),
      "main_files": api.list_repo_files("org/tiny-model", repo_type="dataset"),
      "v2_commits": len(api.list_repo_commits("org/tiny-model", repo_type="dataset", revision="v2"))})
"""
    )
    assert result == {"branches": ["main", "v2"], "x_on_v2": "branch only", "main_files": [".gitattributes"],
                      "v2_commits": 2}  # fmt: skip


def test_missing_file_repo_and_revision_raise_the_matching_errors(hub: LocalHub):
    result = hub.client(
        """
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
HfApi().create_repo("org/tiny-model")
def raised(call):
    try:
        call()
    except Exception as error:
        kinds = (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)
        return [isinstance(error, kind) for kind in kinds]
    return "no error"
emit({
    "file": raised(lambda: hf_hub_download("org/tiny-model", "missing.json")),
    "repo": raised(lambda: hf_hub_download("org/absent", "config.json")),
    "repo_type": raised(lambda: hf_hub_download("org/tiny-model", ".gitattributes", repo_type="dataset")),
    "revision": raised(lambda: hf_hub_download("org/tiny-model", ".gitattributes", revision="no-such-branch")),
})
"""
    )
    entry, repo, revision = [True, False, False], [False, True, False], [False, False, True]
    assert result == {"file": entry, "repo": repo, "repo_type": repo, "revision": revision}


def test_injected_commit_failure_raises_http_error_and_leaves_folder_and_repo_untouched(hub: LocalHub, tmp_path):
    write_model_folder(tmp_path / "v1")
    v2 = write_model_folder(tmp_path / "v2", scale=2.0, config={"hidden_size": 16})  # new weights: an LFS upload
    before = folder_state(tmp_path / "v2")
    result = hub.client(
        f"""
import os, urllib.request
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
api, repo = HfApi(), "org/tiny-model"
api.create_repo(repo)
api.upload_folder(folder_path={str(tmp_path / "v1")!r}, repo_id=repo, commit_message="first")
history = lambda: [c.commit_id for c in api.list_repo_commits(repo)]
before = history()
arm = urllib.request.Request(os.environ["HF_ENDPOINT"] + "/_test/fail-next-commit", data=b"", method="POST")
urllib.request.urlopen(arm).read()
try:
    api.upload_folder(folder_path={str(tmp_path / "v2")!r}, repo_id=repo, commit_message="doomed")
    error = None
except HfHubHTTPError as exc:
    error = {{"status": exc.response.status_code, "message": str(exc)}}
after_failure = history()
config_after_failure = open(hf_hub_download(repo, "config.json"), "rb").read().decode()
retried = api.upload_folder(folder_path={str(tmp_path / "v2")!r}, repo_id=repo, commit_message="retried").oid
emit({{"error": error, "before": before, "after_failure": after_failure, "after_retry": history(),
      "retried": retried, "config_after_failure": config_after_failure}})
"""
    )
    assert result["error"]["status"] == 500
    assert "Injected failure" in result["error"]["message"]
    assert result["after_failure"] == result["before"]  # the failed commit left no trace in the history
    assert result["config_after_failure"] == json.dumps({"vocab_size": 11, "hidden_size": 8})
    assert result["after_retry"] == [result["retried"], *result["before"]]  # the switch fails one commit only
    assert not commit_failure_armed(hub.root)
    assert folder_state(tmp_path / "v2") == before
    assert folder_contents(tmp_path / "v2") == v2


# --------------------------------------------------------------------------- datasets and transformers


def test_datasets_push_to_hub_then_load_dataset_round_trips_rows_and_features(hub: LocalHub):
    result = hub.client(
        """
import datasets
features = datasets.Features({"inputs": datasets.List(datasets.Value("int8")),
                              "labels": datasets.List(datasets.Value("int16"))})
rows = {"inputs": [[1, 2, 0, 3], [0, 1, 2, 3], [3, 0, 0, 1]], "labels": [[-100, 2, 3, 4], [5, 4, 3, 2], [1, 1, 1, 1]]}
train = datasets.Dataset.from_dict(rows, features=features)
datasets.DatasetDict({"train": train, "test": train.select([1])}).push_to_hub("org/tiny-puzzles")
# A second push adds a split in a new commit; it must read back and extend the card of the first.
train.select([2, 0]).push_to_hub("org/tiny-puzzles", split="validation")
loaded = datasets.load_dataset("org/tiny-puzzles")
emit({"features": features.to_dict(),
      "loaded": {name: {"rows": split.to_dict(), "features": split.features.to_dict()}
                 for name, split in loaded.items()}})
"""
    )
    inputs = [[1, 2, 0, 3], [0, 1, 2, 3], [3, 0, 0, 1]]
    labels = [[-100, 2, 3, 4], [5, 4, 3, 2], [1, 1, 1, 1]]
    expected_rows = {
        "train": {"inputs": inputs, "labels": labels},
        "test": {"inputs": [inputs[1]], "labels": [labels[1]]},
        "validation": {"inputs": [inputs[2], inputs[0]], "labels": [labels[2], labels[0]]},
    }
    assert {name: split["rows"] for name, split in result["loaded"].items()} == expected_rows
    for split in result["loaded"].values():
        assert split["features"] == result["features"]  # int8 / int16 survive the trip


def test_transformers_autoconfig_loads_a_pushed_config(hub: LocalHub):
    result = hub.client(
        """
from huggingface_hub import HfApi
from transformers import AutoConfig, BertConfig
BertConfig(vocab_size=11, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
           intermediate_size=32, max_position_embeddings=81).push_to_hub("org/tiny-bert")
loaded = AutoConfig.from_pretrained("org/tiny-bert")
emit({"class": type(loaded).__name__,
      "fields": [loaded.vocab_size, loaded.hidden_size, loaded.num_hidden_layers, loaded.max_position_embeddings],
      "files": sorted(HfApi().list_repo_files("org/tiny-bert"))})
"""
    )
    assert result["class"] == "BertConfig"
    assert result["fields"] == [11, 16, 1, 81]
    assert "config.json" in result["files"]


# --------------------------------------------------------------------------- raw protocol


def test_lfs_upload_commit_and_resolve_headers_over_raw_http(hub: LocalHub):
    api = f"{hub.endpoint}/api/models/org/raw"
    assert post_json(f"{hub.endpoint}/api/repos/create", {"name": "raw", "organization": "org"})[0] == 200
    assert post_json(f"{hub.endpoint}/api/repos/create", {"name": "raw", "organization": "org"})[0] == 409

    weights, config = bytes(range(256)) * 3, b'{"a": 1}'
    oid = hashlib.sha256(weights).hexdigest()
    files = [{"path": "w.safetensors", "size": len(weights), "sample": base64.b64encode(weights[:512]).decode()},
             {"path": "c.json", "size": len(config), "sample": base64.b64encode(config).decode()}]  # fmt: skip
    status, _, body = post_json(f"{api}/preupload/main", {"files": files})
    assert status == 200
    assert [(f["path"], f["uploadMode"]) for f in json.loads(body)["files"]] == [
        ("w.safetensors", "lfs"),
        ("c.json", "regular"),
    ]

    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(weights)}]}
    status, _, body = post_json(f"{hub.endpoint}/org/raw.git/info/lfs/objects/batch", batch)
    actions = json.loads(body)["objects"][0]["actions"]
    assert http("PUT", actions["upload"]["href"], weights[:-1])[0] == 400  # wrong bytes are refused
    assert http("PUT", actions["upload"]["href"], weights)[0] == 200
    assert post_json(actions["verify"]["href"], {"oid": oid, "size": len(weights)})[0] == 200

    payload = ndjson(
        {"key": "header", "value": {"summary": "raw commit", "description": ""}},
        {"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": oid, "size": len(weights)}},
        {"key": "file", "value": {"path": "c.json", "content": base64.b64encode(config).decode()}},
    )
    status, _, body = http("POST", f"{api}/commit/main", payload, {"Content-Type": "application/x-ndjson"})
    assert status == 200
    commit = json.loads(body)["commitOid"]

    status, headers, _ = http("HEAD", f"{hub.endpoint}/org/raw/resolve/main/w.safetensors")
    assert (status, headers["X-Repo-Commit"], headers["X-Linked-Etag"]) == (200, commit, f'"{oid}"')
    assert int(headers["X-Linked-Size"]) == int(headers["Content-Length"]) == len(weights)
    status, headers, _ = http("HEAD", f"{hub.endpoint}/org/raw/resolve/{commit}/c.json")
    assert (status, headers["ETag"], headers["X-Linked-Etag"]) == (200, f'"{git_blob_sha1(config)}"', None)
    status, headers, body = http("GET", f"{hub.endpoint}/org/raw/resolve/main/w.safetensors",
                                 headers={"Range": "bytes=250-261"})  # fmt: skip
    assert (status, body, headers["Content-Range"]) == (206, weights[250:262], f"bytes 250-261/{len(weights)}")
    assert http("GET", f"{hub.endpoint}/org/raw/resolve/main/c.json", headers={"Range": "bytes=99-"})[0] == 416


def test_error_codes_and_commit_preconditions_over_raw_http(hub: LocalHub):
    post_json(f"{hub.endpoint}/api/repos/create", {"name": "raw", "organization": "org", "type": "dataset"})
    api = f"{hub.endpoint}/api/datasets/org/raw"
    head = json.loads(http("GET", api)[2])["sha"]

    status, headers, _ = http("HEAD", f"{hub.endpoint}/datasets/org/raw/resolve/main/missing.txt")
    assert (status, headers["X-Error-Code"], headers["X-Repo-Commit"]) == (404, "EntryNotFound", head)
    status, headers, _ = http("HEAD", f"{hub.endpoint}/org/raw/resolve/main/.gitattributes")  # a model: no such repo
    assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
    status, headers, _ = http("GET", f"{api}/revision/{'0' * 40}")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")
    assert http("GET", f"{api}/tree/main/no-such-folder")[1]["X-Error-Code"] == "EntryNotFound"

    def commit(*operations: dict, parent: str | None = None) -> int:
        header = {"summary": "change", **({"parentCommit": parent} if parent else {})}
        payload = ndjson({"key": "header", "value": header}, *operations)
        return http("POST", f"{api}/commit/main", payload, {"Content-Type": "application/x-ndjson"})[0]

    add = {"key": "file", "value": {"path": "a.txt", "content": base64.b64encode(b"a").decode()}}
    assert commit(add, parent="f" * 40) == 412  # stale parent commit: datasets retries on this
    assert commit({"key": "lfsFile", "value": {"path": "x.bin", "oid": "e" * 64, "size": 3}}) == 422  # not uploaded
    assert commit({"key": "file", "value": {"path": "../escape", "content": ""}}) == 400
    assert commit({"key": "deletedFile", "value": {"path": "never-there.txt"}}) == 404
    assert commit(add, parent=head) == 200
    assert len(json.loads(http("GET", f"{api}/commits/main")[2])) == 2
    assert http("GET", f"{hub.endpoint}/api/no-such-route")[1]["X-Error-Message"].startswith("Route not implemented")
    status, headers, _ = http("GET", f"{api}/xet-write-token/main")  # a client that forgot HF_HUB_DISABLE_XET
    assert status == 501 and "HF_HUB_DISABLE_XET=1" in headers["X-Error-Message"]


def test_server_script_runs_standalone_and_keeps_repos_on_disk_across_restarts(tmp_path):
    root = tmp_path / "hub"
    with running_hub_server(root, in_subprocess=True) as endpoint:
        assert json.loads(http("GET", f"{endpoint}/api/whoami-v2")[2])["name"] == "user"
        status, _, body = post_json(f"{endpoint}/api/repos/create", {"name": "kept"})  # no namespace: the user's
        assert (status, json.loads(body)["url"]) == (200, f"{endpoint}/user/kept")
        sha = json.loads(http("GET", f"{endpoint}/api/models/user/kept")[2])["sha"]
    with running_hub_server(root, in_subprocess=True) as endpoint:
        assert json.loads(http("GET", f"{endpoint}/api/models/user/kept")[2])["sha"] == sha
