"""Helpers to start the test Hub server (`tests/hub_server.py`) and run Hugging Face clients against it.

Why clients run in a subprocess: `huggingface_hub`, `datasets` and `transformers` read `HF_ENDPOINT`
and the offline switches when they are imported, and this pytest process has already imported them
with `HF_HUB_OFFLINE=1` (see conftest). A fresh interpreter started with `hub_client_env(...)` talks to
the local server instead, and the offline setting of the rest of the suite stays untouched.

Typical use::

    with running_hub_server(tmp_path / "hub") as endpoint:
        result = run_hub_client("from huggingface_hub import HfApi; emit(HfApi().whoami()['name'])",
                                endpoint, tmp_path / "hf_home")
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:  # also importable when pytest runs with --import-mode=importlib
    sys.path.insert(0, str(_TESTS_DIR))

from hub_server import FAIL_NEXT_COMMIT_FILENAME, FAULTS_FILENAME, REQUEST_LOG_FILENAME, make_server  # noqa: E402

HUB_SERVER_SCRIPT = _TESTS_DIR / "hub_server.py"
RESULT_MARKER = "HUB_CLIENT_RESULT "

# Prepended to client code: `emit(value)` hands a JSON-serialisable result back to the test.
_CLIENT_PREAMBLE = f"""
import json as _json
def emit(value):
    print({RESULT_MARKER!r} + _json.dumps(value, default=str), flush=True)
"""


@contextmanager
def running_hub_server(root: Path, *, in_subprocess: bool = False) -> Iterator[str]:
    """Serve the repos under `root` on a free 127.0.0.1 port; yields the endpoint (`http://127.0.0.1:PORT`).

    Args:
        root (`Path`):
            Storage directory of the server (created if missing); inspect it to check what was stored.
        in_subprocess (`bool`, *optional*, defaults to `False`):
            Run `python tests/hub_server.py` in its own process (as a person would) instead of a thread.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if in_subprocess:
        with _server_process(root) as endpoint:
            yield endpoint
        return
    server = make_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def _server_process(root: Path) -> Iterator[str]:
    command = [sys.executable, str(HUB_SERVER_SCRIPT), "--port", "0", "--root", str(root), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()  # "Serving a Hub-compatible API on http://127.0.0.1:PORT (root: ...)"
        if "http://" not in banner:
            process.kill()
            raise RuntimeError(f"hub_server.py did not start: {banner!r} {process.stderr.read()!r}")
        yield banner.split(" on ", 1)[1].split()[0]
    finally:
        stop_process(process)
        process.stdout.close()
        process.stderr.close()


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate a server process this test started, and kill it if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def hub_client_env(endpoint: str, home: Path) -> dict[str, str]:
    """Environment for a client process: online against `endpoint` only, plain LFS uploads, private caches."""
    env = dict(os.environ)
    env.update(
        {
            "HF_ENDPOINT": endpoint,
            "HF_HUB_DISABLE_XET": "1",  # the server has no Xet storage: large files go through the LFS batch API
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
            "HF_HOME": str(home),  # hub, datasets and token caches of this test only
            "HF_TOKEN": "hf_local_test_token",  # never a real token; the server accepts anything
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0",  # datasets would otherwise ping an S3 bucket
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
        }
    )
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_DATASETS_CACHE", None)
    return env


def run_hub_client(code: str, endpoint: str, home: Path, timeout: float = 120.0) -> Any:
    """Run `code` in a fresh interpreter pointed at `endpoint`; return the value it passed to `emit(...)`.

    Raises `AssertionError` with the client's output if it exits non-zero or never calls `emit`.
    """
    Path(home).mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        [sys.executable, "-c", _CLIENT_PREAMBLE + code],
        env=hub_client_env(endpoint, Path(home)),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(home),  # relative paths a client writes stay inside the test's directory
    )
    results = [line[len(RESULT_MARKER) :] for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not results:
        raise AssertionError(
            f"Hub client failed (exit {completed.returncode}).\n--- stdout ---\n{completed.stdout[-4000:]}"
            f"\n--- stderr ---\n{completed.stderr[-4000:]}"
        )
    return json.loads(results[-1])


def arm_commit_failure(endpoint: str) -> None:
    """Make the server answer 500 to the next commit request; the switch resets itself after one commit."""
    request = urllib.request.Request(f"{endpoint}/_test/fail-next-commit", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def arm_fault(endpoint: str, handler: str, mode: str, times: int = 1) -> None:
    """Make the server fail the next `times` requests to route handler `handler` (e.g. "commit",
    "lfs_upload") as `mode`, one of `hub_server.FAULT_MODES`."""
    body = json.dumps({"handler": handler, "mode": mode, "times": times}).encode()
    request = urllib.request.Request(f"{endpoint}/_test/fault", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def armed_faults(root: Path) -> dict:
    path = Path(root) / FAULTS_FILENAME
    return json.loads(path.read_text()) if path.is_file() else {}


def commit_failure_armed(root: Path) -> bool:
    return (Path(root) / FAIL_NEXT_COMMIT_FILENAME).exists()


def read_request_log(root: Path) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request the server answered, oldest first."""
    log = Path(root) / REQUEST_LOG_FILENAME
    if not log.exists():
        return []
    entries = []
    for line in log.read_text(encoding="utf-8").splitlines():
        method, path, status = line.rsplit(" ", 2)
        entries.append((method, path, int(status)))
    return entries
