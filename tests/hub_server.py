"""A Hugging Face Hub-compatible HTTP server for tests, built on the standard library only.

Why it exists: the publishing tests push checkpoints and datasets with the real `huggingface_hub`,
`datasets` and `transformers` clients and load them back. Pointing `HF_ENDPOINT` at this server lets
those round trips run offline, on 127.0.0.1, against the same HTTP routes the clients use on the Hub.

Run by hand::

    python tests/hub_server.py --port 8000 --root /tmp/hub
    HF_ENDPOINT=http://127.0.0.1:8000 HF_HUB_DISABLE_XET=1 python -c "..."

There is no Xet storage here: clients must set `HF_HUB_DISABLE_XET=1` so that large files go through
the classic LFS batch API (the Xet token routes answer 501 with that advice). Nothing is
authenticated; every caller is the user `user`, and repos created without a namespace go there.

Storage under `--root` (plain files, written atomically)::

    blobs/<sha256>                               every file's bytes, content-addressed
    repos/<models|datasets|spaces>/<ns>/<name>/
        repo.json                                id, type, private, createdAt
        refs.json                                {branch name: commit id}
        commits/<commit id>.json                 parent, title, message, date, full file tree
    FAIL_NEXT_COMMIT                             if present, the next commit answers 500 (then it is removed)
    FAULTS.json                                  armed faults {route handler: {"mode", "times"}}, see FAULT_MODES
    requests.log                                 one "METHOD path status" line per request

A commit holds the full tree: `{path: {"sha256", "size", "lfs", "oid"}}`, where `oid` is the git object
id the Hub reports (git blob sha1 of the content, or of the LFS pointer for LFS files). History is
linear per branch; revisions are branch names or full commit ids.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_USER = "user"
DEFAULT_BRANCH = "main"
FAIL_NEXT_COMMIT_FILENAME = "FAIL_NEXT_COMMIT"
FAULTS_FILENAME = "FAULTS.json"
# Failures a test can arm on any route handler (`POST /_test/fault {"handler", "mode", "times"}`), for the
# next `times` requests it serves. What the client sees, and what the server did:
FAULT_MODES = {
    "error": "a 500 answer; nothing was done",
    "drop": "the connection closes without an answer after the request was read; nothing was done",
    "drop-mid-body": "the connection closes after half of the request body was read (a dropped upload)",
    "drop-after": "the request is carried out (a commit lands), then the connection closes without an answer",
    "crash-mid-commit": "commit only: the commit object is written, then the server stops before moving the "
                        "branch (as a crash would) and the connection closes without an answer",
}
REQUEST_LOG_FILENAME = "requests.log"

# URL segment -> repo type, and the prefix a repo type gets in web URLs ("resolve", LFS).
REPO_TYPE_BY_SEGMENT = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX_BY_REPO_TYPE = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# The Hub stores these as LFS whatever their size (they are binary); anything larger than
# REGULAR_FILE_MAX_BYTES or containing a NUL byte in its first 512 bytes goes to LFS too.
LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack", ".npy", ".npz",
    ".pkl", ".pickle", ".parquet", ".arrow", ".zip", ".gz", ".tar", ".tgz", ".zst", ".xz", ".bz2",
    ".model", ".tflite", ".ot", ".joblib", ".7z",
)  # fmt: skip
REGULAR_FILE_MAX_BYTES = 10 * 1024 * 1024

INITIAL_GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)

_SEGMENT = r"([^/]+)"
_REPO_API = r"^/api/(models|datasets|spaces)/" + _SEGMENT + "/" + _SEGMENT
_REPO_WEB = r"^/(?:(datasets|spaces)/)?" + _SEGMENT + "/" + _SEGMENT
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
_BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")
_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


class ServerStopped(Exception):
    """Raised inside a handler to act out a server that dies mid-request: no answer is sent."""


class HubError(Exception):
    """An error answered to the client: HTTP status, optional `X-Error-Code` the client maps to an exception."""

    def __init__(self, status: int, message: str, error_code: str | None = None, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}
        self.body = body or {}


def utc_now_iso() -> str:
    """The Hub's date format, which `huggingface_hub.utils.parse_datetime` expects."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """Git object id of a blob: what the Hub reports as a regular file's `oid` and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file committed in place of an LFS file's content."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def write_json_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def validate_path_in_repo(path: str) -> str:
    """Reject paths that could escape the repo or clash with git internals."""
    parts = PurePosixPath(path).parts
    if not path or path.startswith("/") or path.endswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def should_use_lfs(path: str, size: int, sample: bytes) -> bool:
    """The preupload decision: binary-looking, large, or LFS-tracked suffix -> LFS."""
    return path.lower().endswith(LFS_SUFFIXES) or size > REGULAR_FILE_MAX_BYTES or b"\0" in sample[:512]


class HubStorage:
    """Repos, commits and blobs on disk; one lock serialises all writes (commits, refs, blobs)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    # --- blobs -------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def store_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha256, len(data)):
            fd, tmp = tempfile.mkstemp(dir=self.root / "blobs", prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.blob_path(sha256))
        return sha256

    # --- repos -------------------------------------------------------------------------------
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / repo_id

    def repo_meta(self, repo_type: str, repo_id: str) -> dict:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        if not path.is_file():
            raise HubError(404, f"{repo_type.capitalize()} repository {repo_id!r} not found", "RepoNotFound")
        return read_json(path)

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> bool:
        """Create the repo with an initial `.gitattributes` commit, as the Hub does; False if it exists."""
        namespace, _, name = repo_id.partition("/")
        if not (_REPO_NAME.match(namespace) and _REPO_NAME.match(name)):
            raise HubError(400, f"Invalid repo id {repo_id!r}: expected 'namespace/name'")
        with self.lock:
            repo_dir = self.repo_dir(repo_type, repo_id)
            if (repo_dir / "repo.json").is_file():
                return False
            write_json_atomic(repo_dir / "refs.json", {})
            entry = self.file_entry(INITIAL_GITATTRIBUTES.encode())
            commit = self._write_commit(repo_type, repo_id, None, "initial commit", "", {".gitattributes": entry})
            write_json_atomic(repo_dir / "refs.json", {DEFAULT_BRANCH: commit["id"]})
            meta = {"id": repo_id, "type": repo_type, "private": private, "createdAt": commit["date"]}
            write_json_atomic(repo_dir / "repo.json", meta)  # written last: the repo exists once complete
            return True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        namespace, _, name = repo_id.partition("/")
        if not (_REPO_NAME.match(namespace) and _REPO_NAME.match(name)):  # never rmtree outside repos/
            raise HubError(400, f"Invalid repo id {repo_id!r}: expected 'namespace/name'")
        with self.lock:
            self.repo_meta(repo_type, repo_id)
            shutil.rmtree(self.repo_dir(repo_type, repo_id))

    # --- refs and commits --------------------------------------------------------------------
    def branches(self, repo_type: str, repo_id: str) -> dict[str, str]:
        self.repo_meta(repo_type, repo_id)
        return read_json(self.repo_dir(repo_type, repo_id) / "refs.json")

    def get_commit(self, repo_type: str, repo_id: str, commit_id: str) -> dict | None:
        path = self.repo_dir(repo_type, repo_id) / "commits" / f"{commit_id}.json"
        return read_json(path) if path.is_file() else None

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> dict:
        """Branch name or full commit id -> commit; RevisionNotFound otherwise."""
        branches = self.branches(repo_type, repo_id)
        commit_id = branches.get(revision)
        if commit_id is None and _COMMIT_ID.match(revision):
            commit_id = revision
        commit = self.get_commit(repo_type, repo_id, commit_id) if commit_id else None
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def history(self, repo_type: str, repo_id: str, commit: dict) -> list[dict]:
        """The commit and its ancestors, newest first."""
        commits = [commit]
        while commits[-1]["parent"] is not None:
            commits.append(self.get_commit(repo_type, repo_id, commits[-1]["parent"]))
        return commits

    def create_branch(self, repo_type: str, repo_id: str, branch: str, starting_point: str | None) -> None:
        if not _BRANCH_NAME.match(branch) or branch.startswith("refs/") or ".." in branch:
            raise HubError(400, f"Invalid branch name {branch!r}")
        with self.lock:
            branches = self.branches(repo_type, repo_id)
            if branch in branches:
                raise HubError(409, f"Branch {branch!r} already exists")
            start = self.resolve(repo_type, repo_id, starting_point or DEFAULT_BRANCH)
            branches[branch] = start["id"]
            write_json_atomic(self.repo_dir(repo_type, repo_id) / "refs.json", branches)

    def delete_branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        with self.lock:
            branches = self.branches(repo_type, repo_id)
            if branch == DEFAULT_BRANCH:
                raise HubError(403, "Cannot delete the default branch")
            if branches.pop(branch, None) is None:
                raise HubError(404, f"Branch {branch!r} not found", "RevisionNotFound")
            write_json_atomic(self.repo_dir(repo_type, repo_id) / "refs.json", branches)

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        title: str,
        description: str,
        operations: list[tuple[str, str, dict | None]],
        parent_commit: str | None = None,
        stop_before_ref_update: bool = False,
    ) -> dict:
        """Apply ("add", path, entry) / ("delete_file" | "delete_folder", path, None) operations on the branch head.

        `stop_before_ref_update` acts out a crash between writing the commit object and moving the branch.
        """
        with self.lock:
            branches = self.branches(repo_type, repo_id)
            if branch not in branches:
                if self.get_commit(repo_type, repo_id, branch) is not None:
                    raise HubError(400, f"Cannot commit on {branch!r}: a commit id is not a branch")
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = self.get_commit(repo_type, repo_id, branches[branch])
            if parent_commit is not None and parent_commit != head["id"]:
                raise HubError(412, f"Parent commit {parent_commit} is not the head of {branch!r} ({head['id']})")
            tree = dict(head["tree"])
            for kind, path, entry in operations:
                if kind == "add":
                    tree[path] = entry
                elif kind == "delete_file":
                    if tree.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                else:  # delete_folder
                    prefix = path.rstrip("/") + "/"
                    doomed = [p for p in tree if p.startswith(prefix)]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del tree[p]
            commit = self._write_commit(repo_type, repo_id, head["id"], title, description, tree)
            if stop_before_ref_update:
                raise ServerStopped(f"stopped before moving {branch!r} to {commit['id']}")
            branches[branch] = commit["id"]
            write_json_atomic(self.repo_dir(repo_type, repo_id) / "refs.json", branches)
            return commit

    def last_commits(self, repo_type: str, repo_id: str, commit: dict, paths: list[str]) -> dict[str, dict]:
        """For each path (file or folder), the newest commit at or before `commit` that changed it."""
        found: dict[str, dict] = {}
        for current in self.history(repo_type, repo_id, commit):
            parent = self.get_commit(repo_type, repo_id, current["parent"]) if current["parent"] else None
            parent_tree = parent["tree"] if parent else {}
            changed = {
                p for p in set(current["tree"]) | set(parent_tree) if current["tree"].get(p) != parent_tree.get(p)
            }
            for path in paths:
                if path not in found and (path in changed or any(c.startswith(path + "/") for c in changed)):
                    found[path] = current
            if len(found) == len(paths):
                break
        return found

    def consume_commit_failure(self) -> bool:
        """True once after `arm_commit_failure` (or after someone creates FAIL_NEXT_COMMIT by hand)."""
        with self.lock:
            flag = self.root / FAIL_NEXT_COMMIT_FILENAME
            if flag.exists():
                flag.unlink()
                return True
            return False

    def arm_commit_failure(self) -> None:
        (self.root / FAIL_NEXT_COMMIT_FILENAME).touch()

    def arm_fault(self, handler: str, mode: str, times: int = 1) -> None:
        """Make the next `times` requests to route handler `handler` fail as `mode` (see FAULT_MODES); 0 disarms."""
        if mode not in FAULT_MODES or handler not in {name for _, _, name in ROUTES}:
            raise HubError(400, f"Unknown fault {mode!r} or route handler {handler!r}")
        if mode == "crash-mid-commit" and handler != "commit":
            raise HubError(400, "crash-mid-commit only applies to the commit handler")
        with self.lock:
            faults = self.armed_faults()
            faults[handler] = {"mode": mode, "times": int(times)}
            if int(times) <= 0:  # times 0 disarms
                del faults[handler]
            write_json_atomic(self.root / FAULTS_FILENAME, faults)

    def armed_faults(self) -> dict[str, dict]:
        path = self.root / FAULTS_FILENAME
        return read_json(path) if path.is_file() else {}

    def take_fault(self, handler: str) -> str | None:
        """The fault mode armed for `handler`, counting this request against its `times`; None if none."""
        with self.lock:
            faults = self.armed_faults()
            fault = faults.get(handler)
            if fault is None:
                return None
            fault["times"] -= 1
            if fault["times"] <= 0:
                del faults[handler]
            write_json_atomic(self.root / FAULTS_FILENAME, faults)
            return fault["mode"]

    def file_entry(self, data: bytes) -> dict:
        """Store `data` as a regular (git) file and return its tree entry."""
        return {"sha256": self.store_blob(data), "size": len(data), "lfs": False, "oid": git_blob_oid(data)}

    def lfs_entry(self, sha256: str) -> dict:
        """Tree entry of an uploaded LFS object; its git oid is the one of its pointer file."""
        size = self.blob_path(sha256).stat().st_size
        return {"sha256": sha256, "size": size, "lfs": True, "oid": git_blob_oid(lfs_pointer(sha256, size))}

    def _write_commit(
        self, repo_type: str, repo_id: str, parent: str | None, title: str, description: str, tree: dict
    ) -> dict:
        date = utc_now_iso()
        identity = json.dumps([parent, title, description, date, tree], sort_keys=True).encode()
        commit = {
            "id": hashlib.sha1(identity).hexdigest(),
            "parent": parent,
            "title": title,
            "message": description,
            "date": date,
            "author": DEFAULT_USER,
            "tree": tree,
        }
        write_json_atomic(self.repo_dir(repo_type, repo_id) / "commits" / f"{commit['id']}.json", commit)
        return commit


def tree_item(path: str, entry: dict) -> dict:
    """A file as the `tree` and `paths-info` routes describe it (parsed by `huggingface_hub.RepoFile`)."""
    item = {"type": "file", "path": path, "oid": entry["oid"], "size": entry["size"]}
    if entry["lfs"]:
        pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
        item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
    return item


def folder_item(path: str, tree: dict) -> dict:
    prefix = path + "/"
    content = sorted((p, e["oid"]) for p, e in tree.items() if p.startswith(prefix))
    return {"type": "directory", "path": path, "oid": hashlib.sha1(json.dumps(content).encode()).hexdigest()}


def folders_of(tree: dict) -> set[str]:
    return {str(parent) for path in tree for parent in PurePosixPath(path).parents if str(parent) != "."}


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


class HubRequestHandler(BaseHTTPRequestHandler):
    """Routes Hub API, LFS and download requests to `HubStorage`; see ROUTES for the list."""

    protocol_version = "HTTP/1.1"
    server_version = "TRMTestHub/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds
    storage: HubStorage  # set by make_server
    quiet: bool = True

    # ----------------------------------------------------------------- plumbing
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        if not self.quiet:
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        self.status_sent = 0
        self.swallow_response = False
        route = self._match_route(method, split.path)
        self.fault = self.storage.take_fault(route[0]) if route is not None else None
        if self.fault == "drop-mid-body":
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length // 2)
            self._drop_connection()
            self._log_request(method, split.path)
            return
        try:
            # Read the whole body first so that an early error never leaves bytes on a keep-alive connection.
            self.body = self._read_body()
            if route is None:
                raise HubError(404, f"Route not implemented by the test Hub server: {method} {split.path}")
            if self.fault == "error":
                raise HubError(500, f"Injected failure: the test Hub server was told to fail this {route[0]} request")
            if self.fault == "drop":
                raise ServerStopped("dropped before handling")
            self.swallow_response = self.fault == "drop-after"
            handler_name, arguments = route
            getattr(self, handler_name)(*arguments)
            if self.swallow_response:
                raise ServerStopped("dropped after handling")
        except ServerStopped:
            self._drop_connection()
        except Exception as error:  # a bug here must reach the client as a 500, not a dropped connection
            if not isinstance(error, HubError):
                error = HubError(500, f"Internal test server error: {type(error).__name__}: {error}")
            if self.status_sent:  # headers already out (e.g. the client hung up mid-download)
                self.close_connection = True
            else:
                self._send_error(error)
        self._log_request(method, split.path)

    def _match_route(self, method: str, path: str) -> tuple[str, list[str | None]] | None:
        for route_method, pattern, handler_name in ROUTES:
            match = pattern.match(path)
            if match and (route_method == method or (route_method == "GET" and method == "HEAD")):
                return handler_name, [unquote(g) if g is not None else None for g in match.groups()]
        return None

    def _drop_connection(self) -> None:
        """Close the socket with no (further) answer, as a crashed server or a cut network would."""
        self.close_connection = True
        self.status_sent = 0
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _log_request(self, method: str, path: str) -> None:
        with self.storage.lock:
            with open(self.storage.root / REQUEST_LOG_FILENAME, "a", encoding="utf-8") as log:
                log.write(f"{method} {path} {self.status_sent}\n")

    def _base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        return f"http://{host}"

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type: str = "") -> None:
        self.status_sent = status
        if self.swallow_response:  # a "drop-after" fault: the work is done, the answer never leaves
            return
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, value: Any, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers, "application/json; charset=utf-8")

    def _send_error(self, error: HubError) -> None:
        # Header values must be latin-1: escape anything else (e.g. a non-ASCII path in the message).
        message = error.message.replace("\n", " ").encode("ascii", "backslashreplace").decode()
        headers = {"X-Error-Message": message, **error.headers}
        if error.error_code:
            headers["X-Error-Code"] = error.error_code
        self._send_json({"error": error.message, **error.body}, error.status, headers)

    def _json_body(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"Request body is not valid JSON: {error}") from None

    def _repo(self, type_segment: str | None, namespace: str, name: str) -> tuple[str, str]:
        """(repo_type, repo_id) from URL segments; RepoNotFound if the repo does not exist."""
        repo_type = REPO_TYPE_BY_SEGMENT[type_segment] if type_segment else "model"
        repo_id = f"{namespace}/{name}"
        if not (_REPO_NAME.match(namespace) and _REPO_NAME.match(name)):  # also keeps "..", "a/b" off the disk
            raise HubError(404, f"Repository {repo_id!r} not found", "RepoNotFound")
        self.storage.repo_meta(repo_type, repo_id)
        return repo_type, repo_id

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self._base_url()}/{URL_PREFIX_BY_REPO_TYPE[repo_type]}{repo_id}"

    # ----------------------------------------------------------------- account and repos
    def whoami(self) -> None:
        self._send_json(
            {
                "type": "user",
                "id": "000000000000000000000001",
                "name": DEFAULT_USER,
                "fullname": "Test User",
                "email": None,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def agent_harnesses(self) -> None:
        """An empty registry: `huggingface_hub` fetches it for its user agent, and then caches it."""
        self._send_json({"standardEnvVars": [], "harnesses": {}})

    def create_repo(self) -> None:
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX_BY_REPO_TYPE:
            raise HubError(400, f"Unsupported repo type {repo_type!r}")
        name = payload.get("name")
        if not isinstance(name, str) or not name:
            raise HubError(400, "Field 'name' is required")
        repo_id = f"{payload.get('organization') or DEFAULT_USER}/{name}"
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        url = self._repo_url(repo_type, repo_id)
        if not self.storage.create_repo(repo_type, repo_id, private):
            # the Hub's 409 carries the url; `create_repo(exist_ok=True)` reads it
            raise HubError(409, f"You already created this {repo_type} repo: {repo_id}", body={"url": url})
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def delete_repo(self) -> None:
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or DEFAULT_USER}/{payload.get('name')}"
        self.storage.delete_repo(repo_type, repo_id)
        self._send_json({})

    def validate_yaml(self) -> None:
        """Accept any card whose front matter is closed: the standard library has no YAML parser to check more."""
        content = self._json_body().get("content", "")
        if content.startswith("---") and "\n---" not in content[3:]:
            self._send_json({"errors": [{"message": "Unterminated YAML front matter in README.md"}]}, 400)
            return
        self._send_json({"errors": [], "warnings": []})

    def repo_info(self, type_segment: str, namespace: str, name: str, revision: str | None = None) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        meta = self.storage.repo_meta(repo_type, repo_id)
        commit = self.storage.resolve(repo_type, repo_id, revision or DEFAULT_BRANCH)
        siblings = []
        for path, entry in sorted(commit["tree"].items()):
            sibling = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
            if entry["lfs"]:
                pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
                sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": pointer_size}
            siblings.append(sibling)
        self._send_json(
            {
                "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit["id"],
                "lastModified": commit["date"],
                "createdAt": meta["createdAt"],
                "private": meta["private"],
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
        )

    def list_refs(self, type_segment: str, namespace: str, name: str) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        branches = [
            {"name": branch, "ref": f"refs/heads/{branch}", "targetCommit": commit_id}
            for branch, commit_id in sorted(self.storage.branches(repo_type, repo_id).items())
        ]
        self._send_json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def list_commits(self, type_segment: str, namespace: str, name: str, revision: str) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        commit = self.storage.resolve(repo_type, repo_id, revision)
        self._send_json(
            [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "message": c["message"],
                    "date": c["date"],
                    "authors": [{"user": c["author"], "avatar": None}],
                }
                for c in self.storage.history(repo_type, repo_id, commit)
            ]
        )

    def create_branch(self, type_segment: str, namespace: str, name: str, branch: str) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        self.storage.create_branch(repo_type, repo_id, branch, self._json_body().get("startingPoint"))
        self._send_json({})

    def delete_branch(self, type_segment: str, namespace: str, name: str, branch: str) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        self.storage.delete_branch(repo_type, repo_id, branch)
        self._send_json({})

    def xet_token(self, type_segment: str, namespace: str, name: str, _token_type: str) -> None:
        raise HubError(
            501,
            "This test Hub server has no Xet storage: set HF_HUB_DISABLE_XET=1 so uploads use the LFS batch API",
        )

    # ----------------------------------------------------------------- listing
    def list_tree(self, type_segment: str, namespace: str, name: str, revision: str, path: str | None) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        commit = self.storage.resolve(repo_type, repo_id, revision)
        tree = commit["tree"]
        folder = (path or "").strip("/")
        prefix = folder + "/" if folder else ""
        folders = folders_of(tree)
        if folder and folder not in folders:
            raise HubError(404, f"Folder {folder!r} not found at {revision}", "EntryNotFound",
                           {"X-Repo-Commit": commit["id"]})  # fmt: skip
        recursive = _is_true(self.query.get("recursive"))

        def listed(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

        items = [folder_item(p, tree) for p in sorted(folders) if listed(p)]
        items += [tree_item(p, e) for p, e in sorted(tree.items()) if listed(p)]
        if _is_true(self.query.get("expand")):
            self._add_last_commits(repo_type, repo_id, commit, items)
        self._send_json(items)

    def paths_info(self, type_segment: str, namespace: str, name: str, revision: str) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        commit = self.storage.resolve(repo_type, repo_id, revision)
        if "json" in (self.headers.get("Content-Type") or ""):
            payload = self._json_body()
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:  # form-encoded, as HfApi.get_paths_info sends it (`paths` repeated)
            form = parse_qs(self.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), _is_true((form.get("expand") or ["false"])[-1])
        tree, folders = commit["tree"], folders_of(commit["tree"])
        items = []
        for raw in paths if isinstance(paths, list) else [paths]:
            path = raw.strip("/")
            if path in tree:
                items.append(tree_item(path, tree[path]))
            elif path in folders:
                items.append(folder_item(path, tree))
        if expand:
            self._add_last_commits(repo_type, repo_id, commit, items)
        self._send_json(items)

    def _add_last_commits(self, repo_type: str, repo_id: str, commit: dict, items: list[dict]) -> None:
        last = self.storage.last_commits(repo_type, repo_id, commit, [item["path"] for item in items])
        for item in items:
            changed_in = last.get(item["path"])
            if changed_in is not None:
                item["lastCommit"] = {"id": changed_in["id"], "title": changed_in["title"], "date": changed_in["date"]}

    # ----------------------------------------------------------------- uploads
    def preupload(self, type_segment: str, namespace: str, name: str, revision: str) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        if _is_true(self.query.get("create_pr")):
            raise HubError(400, "Pull requests are not supported by the test Hub server")
        tree = self.storage.resolve(repo_type, repo_id, revision)["tree"]
        files = []
        for item in self._json_body().get("files", []):
            path = validate_path_in_repo(item["path"])
            sample = base64.b64decode(item.get("sample", ""))
            lfs = should_use_lfs(path, int(item.get("size", 0)), sample)
            existing = tree.get(path)
            # The oid the client compares with its local one to skip unchanged files.
            oid = None if existing is None else (existing["sha256"] if existing["lfs"] else existing["oid"])
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._send_json({"files": files, "commitOid": None})

    def lfs_batch(self, type_segment: str | None, namespace: str, name: str) -> None:
        self._repo(type_segment, namespace, name)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only the 'upload' LFS batch operation is supported")
        if "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "Only the 'basic' LFS transfer is supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            if not (isinstance(oid, str) and _SHA256_HEX.match(oid) and isinstance(size, int)):
                raise HubError(400, f"Malformed LFS object {obj!r}")
            answer = {"oid": oid, "size": size}
            if not self.storage.has_blob(oid, size):
                answer["authenticated"] = True
                answer["actions"] = {
                    "upload": {"href": f"{self._base_url()}/_lfs/{oid}?size={size}"},
                    "verify": {"href": f"{self._base_url()}/_lfs/{oid}/verify"},
                }
            objects.append(answer)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")  # fmt: skip

    def lfs_upload(self, oid: str) -> None:
        actual = hashlib.sha256(self.body).hexdigest()
        if actual != oid:
            raise HubError(400, f"LFS upload content has sha256 {actual}, expected {oid}")
        expected_size = self.query.get("size")
        if expected_size is not None and int(expected_size) != len(self.body):
            raise HubError(400, f"LFS upload has {len(self.body)} bytes, expected {expected_size}")
        self.storage.store_blob(self.body)
        self._send(200, headers={"ETag": f'"{oid}"'})

    def lfs_verify(self, oid: str) -> None:
        size = self._json_body().get("size")
        if not self.storage.has_blob(oid, size):
            raise HubError(404, f"LFS object {oid} (size {size}) was not uploaded")
        self._send_json({"success": True})

    def commit(self, type_segment: str, namespace: str, name: str, revision: str) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        if _is_true(self.query.get("create_pr")):
            raise HubError(400, "Pull requests are not supported by the test Hub server")
        if self.storage.consume_commit_failure():
            raise HubError(500, "Injected failure: the test Hub server was told to fail this commit")
        header, operations = None, []
        for line_number, line in enumerate(self.body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise HubError(400, f"Commit payload line {line_number} is not a {{key, value}} JSON object") from None
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {value.get('path')}")
                path = validate_path_in_repo(value["path"])
                operations.append(("add", path, self.storage.file_entry(base64.b64decode(value["content"]))))
            elif key == "lfsFile":
                oid = value.get("oid", "")
                size = value.get("size")
                if not self.storage.has_blob(oid, size):
                    raise HubError(422, f"LFS object {oid} for {value.get('path')} was not uploaded")
                operations.append(("add", validate_path_in_repo(value["path"]), self.storage.lfs_entry(oid)))
            elif key == "deletedFile":
                operations.append(("delete_file", validate_path_in_repo(value["path"]), None))
            elif key == "deletedFolder":
                operations.append(("delete_folder", validate_path_in_repo(value["path"].rstrip("/")), None))
            else:
                raise HubError(400, f"Unsupported commit operation {key!r} on line {line_number}")
        if header is None or not header.get("summary"):
            raise HubError(400, "Commit payload needs a header line with a non-empty summary")
        commit = self.storage.commit(
            repo_type,
            repo_id,
            revision,
            header["summary"],
            header.get("description", ""),
            operations,
            parent_commit=header.get("parentCommit"),
            stop_before_ref_update=self.fault == "crash-mid-commit",
        )
        self._send_json(
            {
                "success": True,
                "commitOid": commit["id"],
                "commitUrl": f"{self._repo_url(repo_type, repo_id)}/commit/{commit['id']}",
                "pullRequestUrl": None,
                "hookOutput": "",
            }
        )

    # ----------------------------------------------------------------- downloads
    def resolve_file(self, type_segment: str | None, namespace: str, name: str, revision: str, path: str) -> None:
        repo_type, repo_id = self._repo(type_segment, namespace, name)
        commit = self.storage.resolve(repo_type, repo_id, revision)
        entry = commit["tree"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path} at {revision}", "EntryNotFound",
                           {"X-Repo-Commit": commit["id"]})  # fmt: skip
        size = entry["size"]
        headers = {"X-Repo-Commit": commit["id"], "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            headers.update({"ETag": f'"{entry["sha256"]}"', "X-Linked-Etag": f'"{entry["sha256"]}"',
                            "X-Linked-Size": size})  # fmt: skip
        else:
            headers["ETag"] = f'"{entry["oid"]}"'
        start, end, status = 0, size, 200
        requested = self.headers.get("Range")
        if requested and self.command == "GET":
            start, end = self._parse_range(requested, size)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = end - start
        self._send(status, headers=headers, content_type="application/octet-stream")
        if self.command == "GET" and end > start:
            with open(self.storage.blob_path(entry["sha256"]), "rb") as blob:
                blob.seek(start)
                remaining = end - start
                while remaining > 0:
                    chunk = blob.read(min(remaining, 1 << 20))
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

    @staticmethod
    def _parse_range(header: str, size: int) -> tuple[int, int]:
        """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range -> half-open [start, end)."""
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
        if not match or match.groups() == ("", ""):
            raise HubError(416, f"Unsupported Range header {header!r}", headers={"Content-Range": f"bytes */{size}"})
        first, last = match.groups()
        if first == "":
            start, end = max(size - int(last), 0), size
        else:
            start, end = int(first), min(int(last) + 1, size) if last else size
        if start >= size or start >= end:
            raise HubError(416, f"Range {header!r} not satisfiable for {size} bytes",
                           headers={"Content-Range": f"bytes */{size}"})  # fmt: skip
        return start, end

    # ----------------------------------------------------------------- test controls
    def arm_commit_failure(self) -> None:
        self.storage.arm_commit_failure()
        self._send_json({"armed": True})

    def arm_fault(self) -> None:
        payload = self._json_body()
        self.storage.arm_fault(payload.get("handler", ""), payload.get("mode", ""), payload.get("times", 1))
        self._send_json({"armed": self.storage.armed_faults()})


def _route(method: str, pattern: str, handler: Callable) -> tuple[str, re.Pattern, str]:
    return method, re.compile(pattern + "$"), handler.__name__


H = HubRequestHandler
# (method, raw-path regex, handler). Captured segments are percent-decoded before the call; a GET
# route also answers HEAD. Revisions arrive quoted as one segment (`refs%2Fpr%2F1`), as the clients send them.
ROUTES = [
    _route("GET", r"^/api/whoami-v2", H.whoami),
    _route("GET", r"^/api/agent-harnesses", H.agent_harnesses),
    _route("POST", r"^/api/repos/create", H.create_repo),
    _route("DELETE", r"^/api/repos/delete", H.delete_repo),
    _route("POST", r"^/api/validate-yaml", H.validate_yaml),
    _route("POST", r"^/_test/fail-next-commit", H.arm_commit_failure),
    _route("POST", r"^/_test/fault", H.arm_fault),
    _route("GET", _REPO_API, H.repo_info),
    _route("GET", _REPO_API + "/revision/" + _SEGMENT, H.repo_info),
    _route("GET", _REPO_API + "/refs", H.list_refs),
    _route("GET", _REPO_API + "/commits/" + _SEGMENT, H.list_commits),
    _route("GET", _REPO_API + "/tree/" + _SEGMENT + r"(?:/(.*))?", H.list_tree),
    _route("POST", _REPO_API + "/paths-info/" + _SEGMENT, H.paths_info),
    _route("POST", _REPO_API + "/preupload/" + _SEGMENT, H.preupload),
    _route("POST", _REPO_API + "/commit/" + _SEGMENT, H.commit),
    _route("POST", _REPO_API + "/branch/" + _SEGMENT, H.create_branch),
    _route("DELETE", _REPO_API + "/branch/" + _SEGMENT, H.delete_branch),
    _route("GET", _REPO_API + r"/xet-(read|write)-token(?:/.*)?", H.xet_token),
    _route("POST", _REPO_WEB + r"\.git/info/lfs/objects/batch", H.lfs_batch),
    _route("PUT", r"^/_lfs/([0-9a-f]{64})", H.lfs_upload),
    _route("POST", r"^/_lfs/([0-9a-f]{64})/verify", H.lfs_verify),
    _route("GET", _REPO_WEB + "/resolve/" + _SEGMENT + "/(.+)", H.resolve_file),
]


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # do not wait for idle keep-alive connections on shutdown


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> HubServer:
    """A server bound to (host, port) serving the repos under `root`; port 0 picks a free port."""
    handler = type("BoundHubRequestHandler", (HubRequestHandler,), {"storage": HubStorage(root), "quiet": quiet})
    return HubServer((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="directory holding repos and blobs")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: pick a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    args = parser.parse_args(argv)
    server = make_server(args.root, args.host, args.port, quiet=args.quiet)
    host, port = server.server_address[:2]
    print(f"Serving a Hub-compatible API on http://{host}:{port} (root: {args.root})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
