"""``tlsmith connect --pcap FILE`` against real servers, the file read by tshark.

tshark is given nothing but the file: no key log option, and a fresh home directory so
no saved preference can point it at one. It must still decrypt the session -- from the
Decryption Secrets Block tlsmith wrote -- and show the HTTP request, for TLS 1.3 and
TLS 1.2 (AEAD and CBC), over IPv4 and IPv6, with both connections of --resume, and for
a handshake that failed (what happened until then).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, require_peer
from peers import PeerProcess, start_s_server, start_tlsmith_serve_cli
from tlsmith.codec.enums import CipherSuite

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

TIMEOUT = 30
GCM12 = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
CBC12 = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"


@pytest.fixture(scope="module")
def serve(certs: dict[str, CertFiles], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[PeerProcess]:
    """``tlsmith serve`` (HTTP) offering TLS 1.3 and TLS 1.2 with an AEAD and a CBC
    suite."""
    server = start_tlsmith_serve_cli(
        certs["ecdsa-p256"], "--cipher", "TLS_AES_128_GCM_SHA256", "--cipher", GCM12,
        "--cipher", CBC12, log_dir=tmp_path_factory.mktemp("serve-pcap"))
    yield server
    server.stop()


def connect(target: str, pcap: Path, cert: CertFiles, *args: str
            ) -> tuple[int, Any, str]:
    """``tlsmith connect TARGET --http --json --pcap PCAP``: (exit code, JSON, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    done = subprocess.run(
        [sys.executable, "-m", "tlsmith.cli.main", "connect", target, "--servername",
         "localhost", "--cafile", str(cert.ca_path), "--http", "--json", "--pcap",
         str(pcap), "--timeout", "10", *args],
        capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
    return done.returncode, json.loads(done.stdout), done.stderr


def tshark_fields(pcap: Path, display_filter: str, *fields: str,
                  prefs: tuple[str, ...] = ()) -> list[list[str]]:
    """``tshark -r PCAP -Y FILTER -T fields``, with no key log and no preferences (but
    ``prefs``, each ``-o`` NAME:VALUE)."""
    tshark = require_peer("tshark")
    home = pcap.parent / "tshark-home"
    home.mkdir(exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"},
           "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    args = [tshark, "-r", str(pcap), "-Y", display_filter, "-T", "fields",
            "-E", "separator=|"]
    for pref in prefs:
        args += ["-o", pref]
    for field in fields:
        args += ["-e", field]
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [line.split("|") for line in done.stdout.splitlines()]


def assert_decrypted(pcap: Path, outcome: dict[str, Any], stream: int = 0) -> None:
    """tshark shows the stream's GET / and its reply, and the suite we negotiated."""
    where = f"tcp.stream == {stream}"
    requests = tshark_fields(pcap, f"{where} && http.request", "http.request.method",
                             "http.request.uri", "http.host")
    assert requests == [["GET", "/", "localhost"]]
    # s_server -www answers HTTP/1.0 with no Content-Length: the body ends with the
    # connection, which tshark's HTTP reassembly never sees through TLS; so look at the
    # response's first segment.
    replies = tshark_fields(pcap, f"{where} && http.response", "http.response.code",
                            prefs=("http.desegment_body:FALSE",))
    assert replies == [["200"]]
    hello = tshark_fields(pcap, f"{where} && tls.handshake.type == 2",
                          "tls.handshake.ciphersuite")
    assert [int(row[0], 0) for row in hello] == [
        CipherSuite[outcome["cipher_suite"]].value]
    # Finished is encrypted in both versions: seeing it, both ways, means decrypted.
    finished = tshark_fields(pcap, f"{where} && tls.handshake.type == 20", "frame.number")
    assert len(finished) == 2


@pytest.mark.parametrize(("args", "version", "suite"), [
    ((), "TLSv1.3", "TLS_AES_128_GCM_SHA256"),
    (("--tls1.2", "--cipher", GCM12), "TLSv1.2", GCM12),
    (("--tls1.2", "--cipher", CBC12), "TLSv1.2", CBC12),
], ids=["tls13", "tls12-gcm", "tls12-cbc"])
def test_tshark_decrypts_pcap_from_tlsmith_serve(
        serve: PeerProcess, certs: dict[str, CertFiles], tmp_path: Path,
        args: tuple[str, ...], version: str, suite: str) -> None:
    pcap = tmp_path / "connect.pcapng"
    code, out, stderr = connect(f"127.0.0.1:{serve.port}", pcap, certs["ecdsa-p256"], *args)
    assert code == 0, stderr
    assert (out["version"], out["cipher_suite"]) == (version, suite)
    assert pcap.stat().st_mode & 0o777 == 0o600
    assert_decrypted(pcap, out)
    ports = tshark_fields(pcap, "tcp.flags.syn == 1 && tcp.flags.ack == 0",
                          "ip.src", "tcp.dstport")
    assert ports == [["127.0.0.1", str(serve.port)]]


def test_tshark_decrypts_both_connections_of_resume(
        serve: PeerProcess, certs: dict[str, CertFiles], tmp_path: Path) -> None:
    pcap = tmp_path / "resume.pcapng"
    code, out, stderr = connect(f"127.0.0.1:{serve.port}", pcap, certs["ecdsa-p256"],
                                "--resume")
    assert code == 0, stderr
    assert [o["resumed"] for o in out] == [False, True]
    for stream, outcome in enumerate(out):
        assert_decrypted(pcap, outcome, stream)
    # The resumed handshake: a PSK, no Certificate (handshake type 11) in stream 1.
    certificates = tshark_fields(pcap, "tls.handshake.type == 11", "tcp.stream")
    assert certificates == [["0"]]


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
def test_tshark_decrypts_pcap_from_openssl_s_server(
        certs: dict[str, CertFiles], tmp_path: Path, tls12: bool) -> None:
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    extra = ("-tls1_2",) if tls12 else ()
    server = start_s_server(cert, "-www", *extra, log_dir=tmp_path, tls13_only=not tls12)
    try:
        pcap = tmp_path / "openssl.pcapng"
        code, out, stderr = connect(f"127.0.0.1:{server.port}", pcap, cert)
        assert code == 0, stderr
        assert out["version"] == ("TLSv1.2" if tls12 else "TLSv1.3")
        assert_decrypted(pcap, out)
    finally:
        server.stop()


def test_tshark_decrypts_pcap_over_ipv6(certs: dict[str, CertFiles], tmp_path: Path) -> None:
    cert = certs["ecdsa-p256"]
    # The later --host wins over the helper's 127.0.0.1.
    server = start_tlsmith_serve_cli(cert, "--host", "::1", log_dir=tmp_path)
    try:
        pcap = tmp_path / "v6.pcapng"
        code, out, stderr = connect(f"[::1]:{server.port}", pcap, cert)
        assert code == 0, stderr
        assert_decrypted(pcap, out)
        assert tshark_fields(pcap, "tcp.flags.syn == 1 && tcp.flags.ack == 0",
                             "ipv6.src", "ipv6.dst") == [["::1", "::1"]]
    finally:
        server.stop()


def test_failed_handshake_is_captured_too(serve: PeerProcess, certs: dict[str, CertFiles],
                                          tmp_path: Path) -> None:
    # An RSA suite against an ECDSA-only server: it answers handshake_failure.
    pcap = tmp_path / "failed.pcapng"
    code, out, _ = connect(f"127.0.0.1:{serve.port}", pcap, certs["ecdsa-p256"],
                           "--tls1.2", "--cipher", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    assert code == 1 and out["ok"] is False and out["alert_received"] == "handshake_failure"
    hello = tshark_fields(pcap, "tls.handshake.type == 1", "tls.handshake.ciphersuite")
    assert int(hello[0][0].split(",")[0], 0) == (
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256.value)
    alerts = tshark_fields(pcap, "tls.alert_message", "tls.alert_message.desc")
    assert alerts == [["40"]]  # handshake_failure
    fins = tshark_fields(pcap, "tcp.flags.fin == 1", "tcp.stream")
    assert len(fins) == 2


def test_tshark_decrypts_0rtt_data(certs: dict[str, CertFiles], tmp_path: Path) -> None:
    # The early data is protected with client_early_traffic_secret: the DSB carries it too.
    cert = certs["ecdsa-p256"]
    server = start_tlsmith_serve_cli(cert, "--early-data", log_dir=tmp_path)
    try:
        pcap = tmp_path / "early.pcapng"
        code, out, stderr = connect(
            f"127.0.0.1:{server.port}", pcap, cert, "--resume", "--early-data",
            "GET /early HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n")
        assert code == 0, stderr
        assert out[1]["early_data_accepted"] is True
        requests = tshark_fields(pcap, "http.request", "tcp.stream", "http.request.uri")
        assert ["1", "/early"] in requests, requests
        # In stream 1 the request travels with the ClientHello, before the server's hello.
        order = tshark_fields(pcap, "tcp.stream == 1 && (http.request || "
                              "tls.handshake.type == 2)", "frame.number", "http.request.uri")
        assert order[0][1] == "/early", order
    finally:
        server.stop()
