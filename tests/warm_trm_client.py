"""What a launcher starts in place of `trm` for a rank forked from the warm server: `warm_trm_client.py TRM ARGS`
(or `warm_trm_client.py SCRIPT.py ARGS` for a test's worker script).

`torchrun ... warm_trm_client.py /path/to/trm train ...` starts this small process for each rank, as it would
start `trm train ...`. It imports nothing heavy: it hands its arguments, environment, working directory and
its own stdin, stdout and stderr to the server named by $WARM_TRM_SOCKET, which forks the run onto them
(`warm_trm_server.py`). Signals the launcher sends it go on to the run; it ends as the run ended (the same
exit code, or killed by the same signal), so the launcher sees what a `trm` rank would have shown it. If the
server is unreachable or refuses the environment, it becomes the real `trm` (exec): slower, never different.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

SOCKET_ENV = "WARM_TRM_SOCKET"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def become_fresh_trm(program: str, arguments: list[str], why: str) -> None:
    print(f"warm_trm_client: a fresh `trm` process ({why})", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, program, *arguments])


def receive(connection: socket.socket) -> dict:
    message = connection.recv(1 << 16)
    if not message:
        raise ConnectionError("the warm trm server closed the connection")
    return json.loads(message)


def end_as(returncode: int) -> None:
    """Exit with `returncode`, or die of the signal -`returncode`, as `subprocess` reports it."""
    if returncode < 0:
        if -returncode != signal.SIGKILL:
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
        sys.exit(128 - returncode)  # a signal whose default is to be ignored, as a shell reports it
    sys.exit(returncode)


def main() -> None:
    program, arguments = sys.argv[1], sys.argv[2:]
    env = {key: value for key, value in os.environ.items() if key != SOCKET_ENV}
    request = {"argv": [program, *arguments], "env": env, "cwd": os.getcwd()}
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        connection.connect(os.environ[SOCKET_ENV])
        socket.send_fds(connection, [json.dumps(request).encode()], [0, 1, 2])
        answer = receive(connection)
    except (KeyError, OSError) as error:
        become_fresh_trm(program, arguments, f"no warm server: {error!r}")
    if "refused" in answer:
        become_fresh_trm(program, arguments, f"the environment differs in {answer['refused']}")

    def forward(signum: int, _frame: object) -> None:
        connection.send(json.dumps({"signal": signum}).encode())

    for forwarded in FORWARDED_SIGNALS:
        signal.signal(forwarded, forward)
    answer = receive(connection)
    end_as(answer["returncode"])


if __name__ == "__main__":
    main()
