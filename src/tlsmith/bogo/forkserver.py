"""A fork server for the shim: the runner starts one shim process per test, and
importing tlsmith and ``cryptography`` costs far more than a handshake. ``make bogo``
starts ``python -m tlsmith.bogo.forkserver SOCKET`` once; ``tests/bogo/shim`` (with
``TLSMITH_BOGO_FORKSERVER=SOCKET``) then runs a bare interpreter (``python -S``) that
hands its arguments to the server, which forks a warm child to run ``shim.main`` and
sends back the exit status, stdout and stderr. Without the variable the shim runs in its
own process as usual; the behaviour is the same either way.

Protocol on the Unix socket: the client sends JSON ``{"argv": [...]}`` and shuts down
its write side; the child answers JSON ``{"rc": int, "stdout": str, "stderr": str}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import sys

from tlsmith.bogo import shim

#: A child that has not finished after this long is stopped (the runner gave up long ago).
CHILD_DEADLINE = 120


def _read_all(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _child(conn: socket.socket) -> None:
    signal.alarm(CHILD_DEADLINE)
    request = json.loads(_read_all(conn))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = shim.main(list(request["argv"]))
        except Exception as exc:  # a shim bug: report it like a crashed process would
            print(f"shim crashed: {exc!r}", file=sys.stderr)
            rc = 2
    conn.sendall(json.dumps({"rc": rc, "stdout": out.getvalue(),
                             "stderr": err.getvalue()}).encode())
    conn.close()


def serve(path: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            try:
                _child(conn)
            finally:
                os._exit(0)
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
