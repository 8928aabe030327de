"""The ``tlsmith`` command and TLS 1.2: ``demo --version 1.2``, ``connect --tls1.2`` /
``--tls1.3`` against an in-process tlsmith server, ``serve --allow-rsa-kx``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from helpers import CertFiles
from peers import tlsmith_server
from tlsmith.codec.enums import CipherSuite
from tlsmith.config import DEFAULT_SUITES, CertifiedKey, ServerConfig

TIMEOUT = 60
RSA_SUITE = CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256


def tlsmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlsmith.cli.main", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "COLUMNS": "200"})


def server_config(cert: CertFiles, **kw: object) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ demo
LADDER = ["ClientHello", "ServerHello TLSv1.2", "Certificate chain=", "ServerHelloDone",
          "ClientKeyExchange", "ChangeCipherSpec", "🔒 Finished", "ChangeCipherSpec",
          "🔒 Finished", "Handshake complete: TLSv1.2"]


def in_order(text: str, needles: list[str]) -> None:
    pos = 0
    for needle in needles:
        found = text.find(needle, pos)
        assert found >= 0, f"{needle!r} missing after offset {pos}:\n{text}"
        pos = found + len(needle)


@pytest.mark.parametrize("kx, suite, extra", [
    ("ecdhe", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
     ["ServerKeyExchange ECDHE X25519", "leaf=ECDSA-secp256r1"]),
    ("dhe", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
     ["ServerKeyExchange DHE FFDHE2048", "leaf=RSA-2048"]),
    ("rsa", "TLS_RSA_WITH_AES_128_GCM_SHA256",
     ["ClientKeyExchange RSA encrypted_pre_master_secret=256B", "No forward secrecy"]),
])
def test_demo_tls12_each_key_exchange(kx: str, suite: str, extra: list[str]) -> None:
    hidden = tlsmith("demo", "--version", "1.2", "--kx", kx)
    assert hidden.returncode == 0, hidden.stdout + hidden.stderr
    out = hidden.stdout
    in_order(out, LADDER)
    for needle in [suite, *extra, "received close_notify", "session_hash", "key_block",
                   "(hidden: --show-secrets)"]:
        assert needle in out
    assert bool(re.search(r"ServerKeyExchange (ECDHE|DHE) ", out)) == (kx != "rsa")
    assert "✗" not in out  # every recomputed value matched the handshake
    assert "CLIENT_RANDOM" not in out
    assert not re.search(r"[0-9a-f]{96}", out), "a 48-byte secret leaked"

    shown = tlsmith("demo", "--version", "1.2", "--kx", kx, "--show-secrets")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    master = re.search(r"\bmaster_secret\s+48 bytes\s+([0-9a-f]{96})", shown.stdout)
    assert master, shown.stdout
    keylog = re.search(r"CLIENT_RANDOM ([0-9a-f]{64}) ([0-9a-f]{96})", shown.stdout)
    assert keylog and keylog.group(2) == master.group(1)
    if kx == "rsa":
        assert "0303 + 46 bytes (hidden: --show-secrets)" in out
        pms = re.search(r"pre_master_secret\s+48 bytes\s+([0-9a-f]{96})", shown.stdout)
        assert pms and pms.group(1).startswith("0303")


def test_demo_tls13_says_its_version_and_takes_dhe() -> None:
    result = tlsmith("demo", "--version", "1.3", "--kx", "dhe")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Handshake complete: TLSv1.3" in result.stdout
    assert "ServerHello TLSv1.3 TLS_AES_128_GCM_SHA256 key_share=FFDHE2048" in result.stdout
    assert "🔒 ChangeCipherSpec" not in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["--version", "1.3", "--kx", "rsa"], "--kx rsa needs --version 1.2"),
    (["--rfc8448", "--version", "1.2"], "--rfc8448"),
    (["--rfc8448", "--kx", "ecdhe"], "--rfc8448"),
    (["--version", "1.1"], "1.1"),
    (["--version", "1.2", "--kx", "psk"], "psk"),
])
def test_demo_invalid_combinations_are_usage_errors(args: list[str], needle: str) -> None:
    result = tlsmith("demo", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- connect
@pytest.mark.parametrize("flag, version, kx, ems", [
    ("--tls1.2", "TLSv1.2", "ECDHE", True),
    ("--tls1.3", "TLSv1.3", None, None),
])
def test_connect_version_flags_json(certs: dict[str, CertFiles], flag: str, version: str,
                                    kx: str | None, ems: bool | None) -> None:
    cert = certs["ecdsa-p256"]
    with tlsmith_server(server_config(cert)) as srv:
        result = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(cert.ca_path),
                         flag, "--json", "--timeout", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["version"] == version
    for key in ("extended_master_secret", "encrypt_then_mac", "key_exchange"):
        assert key in out
    assert out["key_exchange"] == kx
    assert out["extended_master_secret"] is ems
    if version == "TLSv1.2":
        assert out["encrypt_then_mac"] is False  # an AEAD suite
        assert out["cipher_suite"] == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    names = {r["name"] for r in out["trace"] if r["kind"] == "message"}
    assert ("ServerKeyExchangeECDHE" in names) == (version == "TLSv1.2")


def test_connect_rsa_key_transport(certs: dict[str, CertFiles]) -> None:
    cert = certs["rsa-2048"]
    config = server_config(cert, allow_rsa_key_exchange=True,
                           cipher_suites=(*DEFAULT_SUITES, RSA_SUITE))
    with tlsmith_server(config) as srv:
        result = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(cert.ca_path),
                         "--tls1.2", "--cipher", RSA_SUITE.name, "--json", "--timeout", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["version"] == "TLSv1.2"
    assert out["cipher_suite"] == RSA_SUITE.name
    assert out["key_exchange"] == "RSA"
    assert out["group"] is None and out["signature_scheme"] is None
    summaries = [r["summary"] for r in out["trace"] if r["kind"] == "message"]
    assert "ClientKeyExchange RSA encrypted_pre_master_secret=256B" in summaries
    assert not any(s.startswith("ServerKeyExchange") for s in summaries)


def test_connect_tls12_trace_ladder(certs: dict[str, CertFiles]) -> None:
    cert = certs["rsa-2048"]
    with tlsmith_server(server_config(cert)) as srv:
        result = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(cert.ca_path),
                         "--tls1.2", "--trace", "--timeout", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    in_order(result.stdout, [
        "ClientHello", "ServerHello TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 EMS",
        "Certificate chain=", "ServerKeyExchange ECDHE X25519", "ServerHelloDone",
        "ClientKeyExchange ECDHE", "ChangeCipherSpec", "🔒 Finished", "ChangeCipherSpec",
        "🔒 Finished", "✓ server Finished", "🔒 Alert WARNING CLOSE_NOTIFY", "TLSv1.2"])
    assert "🔒 ChangeCipherSpec" not in result.stdout
    assert "🔑 master_secret (48 bytes)" in result.stdout


def test_serve_help_lists_allow_rsa_kx() -> None:
    result = tlsmith("serve", "--help")
    assert result.returncode == 0
    assert "--allow-rsa-kx" in result.stdout
    demo_help = tlsmith("demo", "--help")
    assert "--version" in demo_help.stdout and "--kx" in demo_help.stdout
