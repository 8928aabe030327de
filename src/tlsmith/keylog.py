"""NSS key log output (the SSLKEYLOGFILE format Wireshark and tshark read).

One line per secret: ``<LABEL> <client_random hex> <secret hex>``. It is an observer of
the core's trace stream; only secrets with an NSS label are written.
"""

from __future__ import annotations

import os
import threading

from tlsmith.observe import SecretTrace, TraceRecord

_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def format_line(label: str, client_random: bytes, secret: bytes) -> str:
    return f"{label} {client_random.hex()} {secret.hex()}\n"


class KeyLogWriter:
    """Appends key-log lines to ``path``; safe to share between connections and threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        with _GUARD:
            self._lock = _LOCKS.setdefault(os.path.abspath(self.path), threading.Lock())

    def __call__(self, record: TraceRecord) -> None:
        if isinstance(record, SecretTrace) and record.nss_label:
            line = format_line(record.nss_label, record.client_random, record.value)
            with self._lock:
                # The file holds secrets: create it readable by its owner only.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
