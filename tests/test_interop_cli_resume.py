"""Resumption and 0-RTT of ``tlsmith connect`` / ``tlsmith serve`` against real peers:
openssl s_server / s_client, gnutls-cli and a redis-server session store (loopback only;
every process and wait is bounded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, require_peer
from peers import (
    run_process_group,
    run_s_client,
    start_s_server,
)

TIMEOUT = 30
GET = "GET / HTTP/1.0\r\n\r\n"


def tlsmith_connect(port: int, cert: CertFiles, *args: str) -> Any:
    """``tlsmith connect localhost:PORT --json ARGS``: its JSON (exit code 0 asserted)."""
    result = subprocess.run(
        [sys.executable, "-m", "tlsmith.cli.main", "connect", f"localhost:{port}",
         "--cafile", str(cert.ca_path), "--json", *args],
        capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]




# ------------------------------------------------------ tlsmith connect -> openssl s_server
def test_connect_resume_early_data_to_s_server(cert: CertFiles, tmp_path: Path) -> None:
    # s_server refuses -early_data with -www/-rev: it prints what it reads instead.
    with start_s_server(cert, "-early_data", log_dir=tmp_path) as server:
        first, second = tlsmith_connect(server.port, cert, "--resume", "--early-data",
                                        r"early-hello\n", "--timeout", "3")
        assert first["resumed"] is False
        assert second["resumed"] is True and second["resumed_with"] == "psk_dhe_ke"
        assert second["early_data_accepted"] is True
        out = server.wait_for("End of early data")
        assert "Early data received" in out
        server.wait_for("early-hello")


@pytest.mark.parametrize(("extra", "how"), [((), "ticket"), (("-no_ticket",), "session_id")])
def test_connect_resume_tls12_to_s_server(cert: CertFiles, tmp_path: Path,
                                          extra: tuple[str, ...], how: str) -> None:
    with start_s_server(cert, "-tls1_2", "-www", *extra, log_dir=tmp_path,
                        tls13_only=False) as server:
        first, second = tlsmith_connect(server.port, cert, "--tls1.2", "--resume", "--http")
    assert first["resumed"] is False and "New, TLSv1.2" in first["reply"]
    assert second["resumed"] is True and second["resumed_with"] == how
    assert "Reused, TLSv1.2" in second["reply"]  # s_server's -www page agrees


def test_connect_resume_tls13_to_s_server_www(cert: CertFiles, tmp_path: Path) -> None:
    with start_s_server(cert, "-www", log_dir=tmp_path) as server:
        first, second = tlsmith_connect(server.port, cert, "--resume", "--http")
    assert first["resumed"] is False and "New, TLSv1.3" in first["reply"]
    assert second["resumed"] is True and "Reused, TLSv1.3" in second["reply"]


# ------------------------------------------------------ openssl s_client -> tlsmith serve
def _s_client_twice(port: int, cert: CertFiles, tmp_path: Path, version: str,
                    *extra: str, early: bool = False) -> tuple[str, str]:
    session = tmp_path / f"s_client{version}{''.join(extra)}.pem"
    common = ["-servername", "localhost", "-CAfile", str(cert.ca_path), version, *extra]
    # -ign_eof with a request: s_client stays until tlsmith serve answers and closes,
    # so the TLS 1.3 tickets (sent right after the handshake) reach -sess_out.
    first = run_s_client(port, *common, "-sess_out", str(session), "-ign_eof",
                         stdin=GET.encode())
    assert first.returncode == 0, first.text
    assert session.exists(), first.text
    if early:
        request = tmp_path / "early.txt"
        request.write_bytes(GET.encode())
        second = run_s_client(port, *common, "-sess_in", str(session), "-early_data",
                              str(request), "-ign_eof")
    else:
        second = run_s_client(port, *common, "-sess_in", str(session), "-ign_eof",
                              stdin=GET.encode())
    assert second.returncode == 0, second.text
    return first.text, second.text


def test_s_client_resumes_with_early_data(cert: CertFiles, serve_factory: Any,
                                          tmp_path: Path) -> None:
    serve = serve_factory("--early-data")
    first, second = _s_client_twice(serve.port, cert, tmp_path, "-tls1_3", early=True)
    assert "New, TLSv1.3" in first
    assert "Reused, TLSv1.3" in second
    assert "Early data was accepted" in second
    assert "HTTP/1.0 200 OK" in second
    serve.wait_for("0-RTT accepted, 18 bytes")


@pytest.mark.parametrize(("extra", "how"), [((), "ticket"), (("-no_ticket",), "session_id")])
def test_s_client_resumes_tls12(cert: CertFiles, serve_factory: Any, tmp_path: Path,
                                extra: tuple[str, ...], how: str) -> None:
    serve = serve_factory()
    first, second = _s_client_twice(serve.port, cert, tmp_path, "-tls1_2", *extra)
    assert "New, TLSv1.2" in first
    assert "Reused, TLSv1.2" in second
    assert "HTTP/1.0 200 OK" in second
    serve.wait_for(f"resumed ({how})")


# ------------------------------------------------------ gnutls-cli -> tlsmith serve
def test_gnutls_cli_resumes_tls13(cert: CertFiles, serve_factory: Any) -> None:
    gnutls = require_peer("gnutls-cli")
    serve = serve_factory("--tls1.3")
    result = run_process_group(
        [gnutls, "--x509cafile", str(cert.ca_path), "-p", str(serve.port), "--resume",
         "localhost"], timeout=TIMEOUT, what="gnutls-cli --resume")
    assert "This is a resumed session" in result.text, result.text
    serve.wait_for("resumed (psk_dhe_ke)")


# ------------------------------------------------------ redis-server session store
def test_serve_with_a_redis_store(cert: CertFiles, serve_factory: Any,
                                  tmp_path: Path) -> None:
    pytest.importorskip("redis")
    from redis_server import redis_server

    with redis_server() as redis:
        serve = serve_factory("--store", redis.url, "--early-data")
        assert "warning" not in serve.output()
        first, second = tlsmith_connect(serve.port, cert, "--resume", "--early-data",
                                        r"GET / HTTP/1.0\r\n\r\n")
        assert first["resumed"] is False
        assert second["resumed"] is True and second["early_data_accepted"] is True
        assert second["reply"].startswith("HTTP/1.0 200 OK")
        # Another server on the same Redis shares the ticket keys and the TLS 1.2
        # session-ID cache: sessions from one resume on the other.
        other = serve_factory("--store", redis.url, "--tickets", "0")
        for version in ("--tls1.3", "--tls1.2"):
            path = tmp_path / f"redis{version}.pem"
            made = tlsmith_connect(serve.port if version == "--tls1.3" else other.port,
                                   cert, version, "--sess-out", str(path))
            assert made["session_saved"] is True
            again = tlsmith_connect(other.port if version == "--tls1.3" else serve.port,
                                    cert, version, "--sess-in", str(path))
            assert again["resumed"] is True, version
