"""The server side of `warm_trm`: import the training stack once, then fork one `trm` process per request (or
one `python SCRIPT.py` process, for a test's own worker script).

Started by `warm_trm.WarmServer` with the environment every fault-test process gets; it reads one JSON request
per line on stdin and answers on stdout, one JSON line per event: {"ready": true} once the imports are done,
{"started": PID} after each fork, {"exited": PID, "returncode": CODE} when a child ends (CODE is -SIGNAL for a
signal, as `subprocess` reports it). It starts no thread of its own, so a fork never copies a Python lock held
by another thread (the one other thread here is jemalloc's background purger, started by pyarrow's import;
jemalloc prepares for fork itself). It exits (killing its children) when stdin closes.

It also listens on a Unix socket (its one argument) for `warm_trm_client.py`, the program a launcher such as
torchrun starts in place of `trm`: a client sends its arguments, environment and working directory with its
own stdin, stdout and stderr attached; the server forks the run onto those descriptors, answers
{"started": PID} and later {"exited": PID, "returncode": CODE} on that connection, delivers {"signal": N}
to the run, and SIGKILLs the run if the connection drops (the launcher killed the client). An environment
that differs from the server's in anything but the variables read at run time is answered {"refused": KEYS}.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import runpy
import select
import signal
import socket
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
from warm_trm import RANK_RUN_TIME, differing_keys
from warm_trm_client import SOCKET_ENV

SERVER_ENV = dict(os.environ)  # what the imports above saw
MAX_REQUEST_BYTES = 1 << 20


def reply(**event: object) -> None:
    os.write(REPLY_FD, (json.dumps(event) + "\n").encode())


def returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def redirect(fd: int, path: str | None, mode: int) -> None:
    target = os.open(path or os.devnull, mode, 0o644)
    os.dup2(target, fd)
    os.close(target)


def run_child(request: dict, stdio: list[int] | None = None, close: tuple[int, ...] = ()) -> None:
    """In the forked child: become the requested `trm` process, then exit with its status. Its stdin, stdout and
    stderr are `stdio` (a client's own) or else /dev/null and the files the request names."""
    code = 1
    try:
        for fd in (REPLY_FD, *close):
            os.close(fd)
        if stdio is not None:
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            for fd in stdio:
                os.close(fd)
        else:
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
        if sys.argv[0].endswith(".py"):  # a test's own worker script (ddp_worker.py), run as `python SCRIPT`
            sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
            runpy.run_path(sys.argv[0], run_name="__main__")
            code = 0
        else:
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


class Clients:
    """The connections of `warm_trm_client.py` processes, each with the run forked for it."""

    def __init__(self, path: str):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(16)
        self.run_of: dict[socket.socket, int | None] = {}  # connection -> pid of its run (None: not started)

    def fds(self) -> list[int]:
        return [self.listener.fileno(), *(connection.fileno() for connection in self.run_of)]

    def connection_of(self, pid: int) -> socket.socket | None:
        return next((connection for connection, run in self.run_of.items() if run == pid), None)

    def answer(self, connection: socket.socket, **event: object) -> None:
        try:
            connection.send(json.dumps(event).encode())
        except OSError:
            pass  # the client is gone; its run was or will be killed

    def drop(self, connection: socket.socket, children: set[int]) -> None:
        pid = self.run_of.pop(connection)
        connection.close()
        if pid in children:
            os.kill(pid, signal.SIGKILL)  # the launcher killed the client: its run dies with it

    def handle(self, fd: int, children: set[int]) -> None:
        if fd == self.listener.fileno():
            connection, _ = self.listener.accept()
            self.run_of[connection] = None
            return
        connection = next((connection for connection in self.run_of if connection.fileno() == fd), None)
        if connection is None:
            return  # dropped earlier in this round
        try:
            message, stdio, _, _ = socket.recv_fds(connection, MAX_REQUEST_BYTES, 3)
        except OSError:
            message, stdio = b"", []
        if not message:
            for received in stdio:
                os.close(received)
            self.drop(connection, children)
            return
        request = json.loads(message)
        pid = self.run_of[connection]
        if pid is not None:  # a signal the launcher sent the client
            if pid in children:
                os.kill(pid, request["signal"])
            return
        refused = differing_keys(request["env"], SERVER_ENV, RANK_RUN_TIME | {SOCKET_ENV})
        if refused or len(stdio) != 3:
            for received in stdio:
                os.close(received)
            self.answer(connection, refused=refused or ["stdin, stdout and stderr were not attached"])
            self.drop(connection, children)
            return
        pid = os.fork()
        if pid == 0:
            run_child(request, stdio, close=tuple(self.fds()))
        for received in stdio:
            os.close(received)
        children.add(pid)
        self.run_of[connection] = pid
        self.answer(connection, started=pid)

    def exited(self, pid: int, code: int) -> bool:
        """Tell the client of `pid` that its run ended; False if `pid` was not a client's run."""
        connection = self.connection_of(pid)
        if connection is None:
            return False
        self.answer(connection, exited=pid, returncode=code)
        self.drop(connection, children=set())  # reaped: nothing left to kill
        return True


def serve(socket_path: str) -> None:
    children: set[int] = set()
    clients = Clients(socket_path)
    buffer = b""
    reply(ready=True)
    while True:
        readable, _, _ = select.select([0, *clients.fds()], [], [], 0.005)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            if not clients.exited(pid, returncode(status)):
                reply(exited=pid, returncode=returncode(status))
        for fd in readable:
            if fd != 0:
                clients.handle(fd, children)
        if 0 not in readable:
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
                run_child(request, close=tuple(clients.fds()))
            children.add(pid)
            reply(started=pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    serve(sys.argv[1])
