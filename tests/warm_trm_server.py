"""The server side of `warm_trm`: import the training stack once, then fork one `trm` process per request.

Started by `warm_trm.WarmServer` with the environment every fault-test process gets; it reads one JSON request
per line on stdin and answers on stdout, one JSON line per event: {"ready": true} once the imports are done,
{"started": PID} after each fork, {"exited": PID, "returncode": CODE} when a child ends (CODE is -SIGNAL for a
signal, as `subprocess` reports it). It starts no thread of its own, so a fork never copies a Python lock held
by another thread (the one other thread here is jemalloc's background purger, started by pyarrow's import;
jemalloc prepares for fork itself). It exits (killing its children) when stdin closes.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import select
import signal
import sys
import traceback

REPLY_FD = os.dup(1)  # the answers go here; fd 1 itself becomes stderr here and each child's stdout
os.dup2(2, 1)  # so that nothing printed while importing can garble an answer

# What a `trm train`, `trm eval` or `trm data build` process imports before it does anything: paid once here.
import modeling_trm.commands
import modeling_trm.data.build
import modeling_trm.inference.evaluation
import modeling_trm.training.recipe_run
import modeling_trm.training.trainer


def reply(**event: object) -> None:
    os.write(REPLY_FD, (json.dumps(event) + "\n").encode())


def returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def redirect(fd: int, path: str | None, mode: int) -> None:
    target = os.open(path or os.devnull, mode, 0o644)
    os.dup2(target, fd)
    os.close(target)


def run_child(request: dict) -> None:
    """In the forked child: become the requested `trm` process, then exit with its status."""
    code = 1
    try:
        os.close(REPLY_FD)
        redirect(0, None, os.O_RDONLY)
        write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        redirect(1, request["stdout"], write)
        if request["stderr"] == request["stdout"]:
            os.dup2(1, 2)
        else:
            redirect(2, request["stderr"], write)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for name, (soft, hard) in request.get("rlimits", {}).items():
            resource.setrlimit(getattr(resource, name), (soft, hard))
        sys.argv = list(request["argv"])
        code = modeling_trm.commands.main(request["argv"][1:])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - report it as an uncaught exception would, then exit 1
        traceback.print_exc()
        code = 1
    finally:
        try:
            atexit._run_exitfuncs()  # what interpreter shutdown runs; os._exit below skips it
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    children: set[int] = set()
    buffer = b""
    reply(ready=True)
    while True:
        readable, _, _ = select.select([0], [], [], 0.005)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            reply(exited=pid, returncode=returncode(status))
        if not readable:
            continue
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                run_child(request)
            children.add(pid)
            reply(started=pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    serve()
