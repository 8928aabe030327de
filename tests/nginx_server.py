"""A throwaway nginx HTTPS server on the loopback for tests (import as ``from nginx_server
import nginx_server``).

``with nginx_server(certs["ecdsa-p256"]) as server:`` starts Debian's ``nginx`` in the
foreground from a temp prefix (config, pid, logs and temp paths all inside it: nothing
is written elsewhere and no network is needed) on a free 127.0.0.1 port with the given
dev-CA certificate, TLS 1.2 and 1.3, HTTP/1.1 keep-alive (100 requests a connection).
It returns once the port accepts connections (at most 5 s) and kills the whole process
group on exit. Every request is answered ``200`` with the body ``BODY_FORMAT``:
nginx's connection serial number and the request's number on that connection, then the
TLS version and whether the session was resumed -- so a test sees connection reuse and
resumption from the server's side.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import CertFiles, free_port, require_peer

_START_TIMEOUT = 5.0

#: What nginx answers to every request (split() it: 4 fields).
BODY_FORMAT = "$connection $connection_requests $ssl_protocol $ssl_session_reused"

_CONFIG = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {chain};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:tlsmith:1m;
        keepalive_requests 100;
        keepalive_timeout 30s;
        location / {{
            default_type text/plain;
            return 200 "{body}\\n";
        }}
    }}
}}
"""


@dataclass(frozen=True)
class ServerReply:
    """nginx's answer (``BODY_FORMAT``) parsed."""

    connection: int  # nginx's serial number of the TCP connection
    requests: int  # the request's number on that connection (1, 2, ...)
    protocol: str  # "TLSv1.3" / "TLSv1.2"
    reused: bool  # whether the TLS session was resumed ("r" in nginx's terms)

    @classmethod
    def parse(cls, text: str) -> ServerReply:
        connection, requests, protocol, reused = text.split()
        return cls(int(connection), int(requests), protocol, reused == "r")


class NginxServer:
    """One running nginx (``port``, ``url``, ``error_log()``, ``stop()``)."""

    def __init__(self, binary: str, directory: Path, cert: CertFiles) -> None:
        self.binary = binary
        self.directory = directory
        self.cert = cert
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/"

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, port: int) -> None:
        self.port = port
        conf = self.directory / "nginx.conf"
        conf.write_text(_CONFIG.format(dir=self.directory, port=port,
                                       chain=self.cert.chain_path, key=self.cert.key_path,
                                       body=BODY_FORMAT))
        args = [self.binary, "-p", f"{self.directory}/", "-c", str(conf),
                "-g", "daemon off;"]
        if _supports_e(self.binary):
            # nginx opens its default error log before reading the config: keep it here.
            args[1:1] = ["-e", str(self.directory / "error.log")]
        with open(self.directory / "stderr.log", "ab") as log:
            # Its own session: stop() kills the master and its workers as one group.
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _accepts(port):
                return
            time.sleep(0.05)
        stderr = (self.directory / "stderr.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"nginx did not accept on port {port} within {_START_TIMEOUT} "
                           f"s:\n{stderr[-2000:]}\n{self.error_log()[-2000:]}")

    def stop(self) -> None:
        """Stop nginx (SIGTERM, then SIGKILL to the whole group); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers left behind, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=3)


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _supports_e(binary: str) -> bool:
    """Whether this nginx has ``-e`` (1.19.5 and later)."""
    try:
        done = subprocess.run([binary, "-v"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    found = re.search(rb"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr + done.stdout)
    return found is not None and tuple(int(x) for x in found.groups()) >= (1, 19, 5)


@contextlib.contextmanager
def nginx_server(cert: CertFiles) -> Iterator[NginxServer]:
    """A running nginx on a free loopback port serving ``cert``, stopped on exit (skips,
    or fails under CI=true, when nginx is not installed)."""
    binary = require_peer("nginx")
    with tempfile.TemporaryDirectory(prefix="tlsmith-nginx-") as directory:
        server = NginxServer(binary, Path(directory), cert)
        for attempt in range(3):  # the free port may be taken in between: try another
            try:
                server.start(free_port())
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        try:
            yield server
        finally:
            server.stop()
