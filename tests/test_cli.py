"""The ``tlsmith`` command as a person or a script uses it (subprocesses, loopback only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import CertFiles, free_port
from peers import tlsmith_server
from tlsmith.codec.enums import NamedGroup
from tlsmith.config import CertifiedKey, ServerConfig

TIMEOUT = 30


def tlsmith(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlsmith.cli.main", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, **(env or {})})


def server_config(cert: CertFiles, **kw: object) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),), **kw)  # type: ignore[arg-type]


def test_connect_json_has_the_contract_keys(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    with tlsmith_server(server_config(cert, alpn_protocols=("http/1.1",))) as srv:
        result = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(cert.ca_path),
                         "--alpn", "http/1.1", "--json", "--http")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for key in ("version", "cipher_suite", "group", "signature_scheme", "alpn",
                "server_name", "hello_retry_request", "resumed", "peer_certificates"):
        assert key in out
    assert out["version"] == "TLSv1.3"
    assert out["cipher_suite"] == "TLS_AES_128_GCM_SHA256"
    assert out["group"] == "x25519"
    assert out["signature_scheme"] == "ecdsa_secp256r1_sha256"
    assert out["alpn"] == "http/1.1"
    assert out["server_name"] == "localhost"
    assert out["hello_retry_request"] is False and out["resumed"] is False
    leaf = out["peer_certificates"][0]
    assert leaf["subject"] == "CN=localhost"
    assert {"issuer", "not_before", "not_after"} <= leaf.keys()
    assert "TLSv1.3" in out["reply"]


def test_connect_summary_and_hello_retry(certs: dict[str, CertFiles]) -> None:
    cert = certs["rsa-2048"]
    with tlsmith_server(server_config(cert, groups=(NamedGroup.SECP384R1,))) as srv:
        result = tlsmith("connect", f"127.0.0.1:{srv.port}", "--servername", "localhost",
                         "--cafile", str(cert.ca_path), "--trace",
                         "--cipher", "TLS_CHACHA20_POLY1305_SHA256")
    assert result.returncode == 0, result.stderr
    assert "HelloRetryRequest  yes" in result.stdout
    assert "TLS_CHACHA20_POLY1305_SHA256" in result.stdout
    assert "✓ certificate chain" in result.stdout


def test_connect_failure_is_explained_without_traceback(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    with tlsmith_server(server_config(cert)) as srv:
        # No --cafile: the development CA is not trusted by the system store.
        result = tlsmith("connect", f"localhost:{srv.port}", "--timeout", "5")
        wrong_name = tlsmith("connect", f"127.0.0.1:{srv.port}", "--servername",
                             "wrong.example", "--cafile", str(cert.ca_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "unknown_ca" in result.stderr and "--cafile" in result.stderr
    assert wrong_name.returncode == 1
    assert "not valid for 'wrong.example'" in wrong_name.stderr
    assert "Traceback" not in wrong_name.stderr


def test_connect_json_failure(certs: dict[str, CertFiles]) -> None:
    port = free_port()  # nothing listens here
    result = tlsmith("connect", f"127.0.0.1:{port}", "--json", "--timeout", "3")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False and "refused" in out["explanation"]


def test_connect_insecure_reports_unverified(certs: dict[str, CertFiles]) -> None:
    cert = certs["ed25519"]
    with tlsmith_server(server_config(cert)) as srv:
        result = tlsmith("connect", f"localhost:{srv.port}", "--insecure", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["certificate_verified"] is False
    assert out["signature_scheme"] == "ed25519"


def test_connect_keylog_option(certs: dict[str, CertFiles], tmp_path: object) -> None:
    from pathlib import Path

    keylog = Path(str(tmp_path)) / "keys.log"
    cert = certs["ecdsa-p256"]
    with tlsmith_server(server_config(cert)) as srv:
        result = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(cert.ca_path),
                         "--keylog", str(keylog))
    assert result.returncode == 0, result.stderr
    labels = {line.split()[0] for line in keylog.read_text().splitlines()}
    assert labels == {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                      "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
                      "EXPORTER_SECRET"}


@pytest.mark.parametrize("args, needle", [
    (["connect", "localhost:1", "--group", "nosuchgroup"], "unknown group"),
    (["connect", "localhost:1", "--cipher", "TLS_NOPE"], "unknown cipher suite"),
    (["connect", "localhost:abc"], "is not a TCP port"),
    (["connect", "localhost:70000"], "is not a TCP port"),
    (["connect", "[::1"], "write IPv6 addresses as [addr]:port"),
])
def test_bad_options_are_usage_errors(args: list[str], needle: str) -> None:
    result = tlsmith(*args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_offline() -> None:
    result = tlsmith("demo")
    assert result.returncode == 0, result.stderr
    assert "Handshake complete: TLSv1.3" in result.stdout
    assert "received close_notify" in result.stdout
    assert "🔒 ChangeCipherSpec" not in result.stdout  # a CCS record is never encrypted


def test_demo_rfc8448_walkthrough() -> None:
    result = tlsmith("demo", "--rfc8448")
    assert result.returncode == 0, result.stderr
    assert "✗" not in result.stdout


def test_unexpected_exception_is_one_line_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tlsmith.cli import main as cli

    def broken(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "main", broken)
    monkeypatch.delenv("TLSMITH_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.run()
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "internal error" in err and "boom" in err and "Traceback" not in err
