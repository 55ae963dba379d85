"""`trm` processes forked from a warm interpreter, for the fault tests that start dozens of them.

A fresh `trm train` spends about 9 s of a 2-core machine importing torch, transformers and datasets before its
first step; the fault tests start some forty such processes only to kill and resume them. Here one server
process (`warm_trm_server.py`) imports the stack once and forks each run from there: every run is still its own
OS process, with its own memory, arguments, environment, working directory and output files, that a SIGKILL
ends mid-write exactly as it ends a fresh one. What differs from a fresh process is only what importing left
behind (module state, unseeded RNG states), so test_faults_seed compares a forked run bit for bit with a run
started the way the README starts it, in a fresh interpreter, and the launch paths themselves (`trm`,
`torchrun`, `accelerate launch`) keep fresh processes.

An environment that differs from the server's in anything but the variables read at run time (the fault hook)
gets a fresh process instead: the libraries read the others once, at import.

Under a launcher (`torchrun ... warm_trm_client.py TRM train ...`, see `fault_runs.run`), each rank is a small
client process that the launcher starts, signals and watches as it would `trm`; the server forks the rank's
run onto the client's stdin, stdout and stderr, with the environment the launcher gave it, and the client ends
as its run ended (the same exit code or signal). test_faults_ddp compares such runs with fresh torchrun runs
bit for bit.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from modeling_trm.faults import FAULT_ENV

SERVER = Path(__file__).with_name("warm_trm_server.py")
# The variables a run may set differently from the server: the fault hook reads its own at run time, and
# pytest names the running test in the other.
READ_AT_RUN_TIME = frozenset({FAULT_ENV, "PYTEST_CURRENT_TEST"})
# What torchrun sets for each rank (torch 2.6-2.13); torch.distributed, accelerate and the Trainer read them
# when the process group forms, inductor (TORCHINDUCTOR_CACHE_DIR, set by the launcher) when it compiles.
RANK_RUN_TIME = frozenset({"TORCHINDUCTOR_CACHE_DIR",
    "RANK", "LOCAL_RANK", "GROUP_RANK", "ROLE_RANK", "ROLE_NAME", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
    "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_ERROR_FILE",
    "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE",
    "TORCHELASTIC_SIGNALS_TO_HANDLE", "TORCH_NCCL_ASYNC_ERROR_HANDLING"})
START_TIMEOUT_S = 300.0


def differing_keys(env: dict[str, str], server_env: dict[str, str],
                   also_read_at_run_time: frozenset[str] = frozenset()) -> list[str]:
    """The variables a run in `env` would see differently from what a server's imports saw in `server_env`."""
    keys = (set(env) | set(server_env)) - READ_AT_RUN_TIME - also_read_at_run_time
    return sorted(key for key in keys if env.get(key) != server_env.get(key))


class WarmProcess:
    """The parts of `subprocess.Popen` the fault tests use, for a process forked by the server."""

    def __init__(self, server: WarmServer, pid: int, args: list[str], stdout: Path | None, stderr: Path | None):
        self.pid, self.args, self.returncode = pid, args, None
        self._server, self._stdout, self._stderr = server, stdout, stderr

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.returncode(self.pid, timeout=0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._server.returncode(self.pid, timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not yet reaped by the server, so the pid is still this process's
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
        self.wait(timeout)
        read = (lambda path: path.read_text(errors="replace") if path is not None else None)
        return read(self._stdout), read(self._stderr)


class WarmServer:
    """One server process and a thread that reads its answers."""

    def __init__(self, env: dict[str, str]):
        self.env = dict(env)
        self._log = open(output_file("server-log"), "wb")
        self.socket_path = str(_OUTPUTS / f"server-{len(_SERVERS)}.sock")
        self._process = subprocess.Popen([sys.executable, str(SERVER), self.socket_path], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._log, env=self.env)
        self._ready = threading.Event()
        self._started: queue.Queue[int | None] = queue.Queue()
        self._exited: dict[int, int] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._lock = threading.Lock()
        threading.Thread(target=self._read_answers, daemon=True).start()

    def _read_answers(self) -> None:
        for line in self._process.stdout:
            event = json.loads(line)
            if "ready" in event:
                self._ready.set()
            elif "started" in event:
                self._started.put(event["started"])
            else:
                with self._changed:
                    self._exited[event["exited"]] = event["returncode"]
                    self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._ready.set()
        self._started.put(None)

    def _log_tail(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-3000:]

    def wait_ready(self) -> int:
        """The server's pid, once it has imported the stack."""
        if not self._ready.wait(START_TIMEOUT_S) or self._closed:
            raise RuntimeError(f"the warm trm server did not start:\n{self._log_tail()}")
        return self._process.pid

    def accepts(self, env: dict[str, str]) -> bool:
        return not differing_keys(env, self.env)

    def spawn(self, argv: list[str], env: dict[str, str], stdout: Path | None, stderr: Path | None,
              cwd: str | None = None, rlimits: dict[str, tuple[int, int]] | None = None) -> WarmProcess:
        with self._lock:
            self.wait_ready()
            request = {"argv": argv, "env": env, "cwd": cwd or os.getcwd(), "rlimits": rlimits or {},
                       "stdout": str(stdout) if stdout else None, "stderr": str(stderr) if stderr else None}
            self._process.stdin.write((json.dumps(request) + "\n").encode())
            self._process.stdin.flush()
            pid = self._started.get(timeout=60)
            if pid is None:
                raise RuntimeError(f"the warm trm server died:\n{self._log_tail()}")
        return WarmProcess(self, pid, argv, stdout, stderr)

    def returncode(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exited or self._closed, timeout)
            if pid not in self._exited and self._closed:
                raise RuntimeError(f"the warm trm server died while process {pid} ran:\n{self._log_tail()}")
            return self._exited.get(pid)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()  # the server kills what still runs and exits
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._log.close()


_SERVERS: list[WarmServer] = []
_OUTPUTS = Path(tempfile.mkdtemp(prefix="warm-trm-"))  # the runs' captured output, removed at exit


def scratch_folder(name: str) -> Path:
    """A folder for this process's runs to write in, removed when this process exits."""
    folder = _OUTPUTS / name
    folder.mkdir(exist_ok=True)
    return folder


def output_file(kind: str) -> Path:
    """A new empty file for a run's stdout or stderr, removed when this process exits."""
    fd, path = tempfile.mkstemp(prefix=f"{kind}-", dir=_OUTPUTS)
    os.close(fd)
    return Path(path)


def server_for(env: dict[str, str]) -> WarmServer:
    """A running server whose environment `env` matches (started on first use: ~9 s, once per test worker)."""
    for server in _SERVERS:
        if server.accepts(env):
            return server
    server = WarmServer({key: value for key, value in env.items() if key not in READ_AT_RUN_TIME})
    _SERVERS.append(server)
    return server


@atexit.register
def _close_servers() -> None:
    for server in _SERVERS:
        server.close()
    shutil.rmtree(_OUTPUTS, ignore_errors=True)


def start(argv: list[str], env: dict[str, str], stdout: Path | None, stderr: Path | None,
          **options: Any) -> WarmProcess:
    """Fork `trm ARGV[1:]` (argv[0] is the program name it sees) with `env`, writing to the given files."""
    return server_for(env).spawn(argv, env, stdout, stderr, **options)


def run(argv: list[str], env: dict[str, str], timeout: float, **options: Any) -> subprocess.CompletedProcess:
    """`subprocess.run(..., capture_output=True, text=True, timeout=...)` for a forked `trm` process."""
    out, err = output_file("stdout"), output_file("stderr")
    try:
        process = start(argv, env, out, err, **options)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        stdout, stderr = process.communicate()
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    finally:
        out.unlink()
        err.unlink()
