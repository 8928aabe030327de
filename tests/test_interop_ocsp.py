"""OCSP stapling against OpenSSL, on 127.0.0.1, both versions (RFC 6066 §8, RFC 8446
§4.4.2.1): tlsmith's client against ``openssl s_server -status_file`` (good, revoked, no
staple), ``openssl s_client -status`` against tlsmith's server (in-process and
``tlsmith serve --ocsp``), and ``tlsmith connect --crl / --require-revocation --json``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from helpers import CertFiles, free_port, require_peer
from peers import PeerProcess, run_s_client, start_s_server, tlsmith_server, wait_until
from test_revocation_handshake import (
    REVOKED_AT,
    OcspPki,
    crl,
    good_response,
    make_pki,
    revoked_response,
    write_files,
)
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.errors import CertificateRevoked
from tlsmith.io.blocking import connect

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = 10.0
VERSIONS = {"tls13": ProtocolVersion.TLS13, "tls12": ProtocolVersion.TLS12}
OPENSSL_FLAG = {"tls13": "-tls1_3", "tls12": "-tls1_2"}


class Files:
    def __init__(self, pki: OcspPki, directory: Path) -> None:
        self.pki = pki
        self.ca, self.chain, self.key = write_files(pki, directory)
        self.good = directory / "good.der"
        self.good.write_bytes(good_response(pki))
        self.revoked = directory / "revoked.der"
        self.revoked.write_bytes(revoked_response(pki))
        self.crl = directory / "revoked.crl"
        self.crl.write_bytes(crl(pki, [pki.leaf.serial_number]).public_bytes(
            serialization.Encoding.PEM))
        self.cert_files = CertFiles("ecdsa-p256", self.chain, self.key, self.chain, self.ca)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(make_pki(), tmp_path_factory.mktemp("ocsp"))


def client_config(files: Files, version: str, **kw: object) -> ClientConfig:
    v = VERSIONS[version]
    return ClientConfig(server_name="localhost", trust=files.pki.trust(), min_version=v,
                        max_version=v, **kw)  # type: ignore[arg-type]


@pytest.fixture
def s_server(files: Files, tmp_path: Path) -> Iterator[functools.partial[PeerProcess]]:
    require_peer("openssl")
    started: list[PeerProcess] = []

    def start(version: str, *extra: str) -> PeerProcess:
        peer = start_s_server(files.cert_files, OPENSSL_FLAG[version], *extra,
                              log_dir=tmp_path, tls13_only=False)
        started.append(peer)
        return peer

    yield functools.partial(start)
    for peer in started:
        peer.stop()


# ------------------------------------------------------------ our client, OpenSSL's server
@pytest.mark.parametrize("version", VERSIONS)
def test_client_good_staple_from_s_server(files: Files, s_server: functools.partial[
        PeerProcess], version: str) -> None:
    peer = s_server(version, "-status_file", str(files.good))
    tls = connect("127.0.0.1", peer.port, client_config(files, version), timeout=TIMEOUT)
    try:
        assert tls.info.revocation_state == "good", tls.info.revocation
        assert tls.info.revocation is not None
        assert "the stapled OCSP response" in tls.info.revocation
    finally:
        tls.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_client_revoked_staple_from_s_server(files: Files, s_server: functools.partial[
        PeerProcess], version: str) -> None:
    peer = s_server(version, "-status_file", str(files.revoked))
    with pytest.raises(CertificateRevoked) as caught:
        connect("127.0.0.1", peer.port, client_config(files, version), timeout=TIMEOUT)
    assert caught.value.reason == "revoked"
    assert REVOKED_AT.strftime("%Y-%m-%d %H:%M UTC") in str(caught.value)
    assert "keyCompromise" in str(caught.value)
    assert wait_until(lambda: "certificate revoked" in peer.output().lower(), TIMEOUT), (
        peer.output())


@pytest.mark.parametrize("version", VERSIONS)
def test_client_without_staple_says_not_checked(files: Files, s_server: functools.partial[
        PeerProcess], version: str) -> None:
    """s_server without -status_file ignores status_request: soft-fail, said so."""
    peer = s_server(version)
    tls = connect("127.0.0.1", peer.port, client_config(files, version), timeout=TIMEOUT)
    try:
        assert tls.info.revocation_state == "not_checked"
        assert tls.info.revocation == ("revocation: not checked — no stapled OCSP response "
                                       "and no CRL")
    finally:
        tls.close()


# ------------------------------------------------------------ OpenSSL's client, our server
@pytest.mark.parametrize("version", VERSIONS)
def test_s_client_sees_our_staple(files: Files, version: str) -> None:
    require_peer("openssl")
    pki = files.pki
    certified = CertifiedKey(
        (pki.leaf.public_bytes(serialization.Encoding.DER),
         pki.ca.certificate.public_bytes(serialization.Encoding.DER)),
        pki.leaf_key, ("localhost",), ocsp_response=files.good.read_bytes())
    with tlsmith_server(ServerConfig(certificates=(certified,))) as srv:
        result = run_s_client(srv.port, OPENSSL_FLAG[version], "-status", "-servername",
                              "localhost", "-CAfile", str(files.ca), "-verify_return_error",
                              timeout=TIMEOUT)
    out = result.text
    assert "OCSP Response Status: successful" in out, out
    assert "Cert Status: good" in out, out
    assert "Verify return code: 0 (ok)" in out, out


def _started_or_exited(serve: PeerProcess) -> bool:
    return serve.proc.poll() is not None or "tlsmith serving" in serve.output()


def _start_serve(files: Files, log_dir: Path, ocsp: Path) -> PeerProcess:
    output = ""
    for attempt in range(3):  # the free port may be taken by someone else: retry
        port = free_port()
        cmd = [sys.executable, "-m", "tlsmith.cli.main", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--cert", str(files.chain), "--key", str(files.key),
               "--ocsp", str(ocsp), "--max-connections", "1"]
        serve = PeerProcess(cmd, log_dir / f"serve-{attempt}.log", port=port,
                            env={**os.environ, "COLUMNS": "200"})
        wait_until(functools.partial(_started_or_exited, serve), TIMEOUT)
        if serve.proc.poll() is None and "tlsmith serving" in serve.output():
            return serve
        serve.stop()
        output = serve.output()
    raise AssertionError(f"tlsmith serve did not start:\n{output}")


@pytest.mark.parametrize("version", VERSIONS)
def test_s_client_against_tlsmith_serve_ocsp(files: Files, tmp_path: Path,
                                             version: str) -> None:
    require_peer("openssl")
    serve = _start_serve(files, tmp_path, files.good)
    try:
        result = run_s_client(serve.port, OPENSSL_FLAG[version], "-status", "-servername",
                              "localhost", "-CAfile", str(files.ca), timeout=TIMEOUT)
        out = result.text
        assert "OCSP Response Status: successful" in out, out
        assert "Cert Status: good" in out, out
        # serve says what the stapled response says about its certificate.
        assert "stapling" in serve.output() and "is good" in serve.output(), serve.output()
    finally:
        serve.stop()


# ------------------------------------------------------------------------ tlsmith connect
def tlsmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlsmith.cli.main", *args],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "COLUMNS": "200"})


def test_connect_json_reports_a_good_staple(files: Files, s_server: functools.partial[
        PeerProcess]) -> None:
    peer = s_server("tls13", "-status_file", str(files.good))
    result = tlsmith("connect", f"localhost:{peer.port}", "--cafile", str(files.ca),
                     "--json", "--timeout", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["revocation"]["state"] == "good"
    assert "stapled OCSP response" in out["revocation"]["detail"]


def test_connect_summary_says_not_checked(files: Files, s_server: functools.partial[
        PeerProcess]) -> None:
    peer = s_server("tls12")
    result = tlsmith("connect", f"localhost:{peer.port}", "--cafile", str(files.ca),
                     "--timeout", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "revocation: not checked — no stapled OCSP response and no CRL" in result.stdout


def test_connect_crl_revokes(files: Files, s_server: functools.partial[PeerProcess]) -> None:
    peer = s_server("tls13")
    result = tlsmith("connect", f"localhost:{peer.port}", "--cafile", str(files.ca),
                     "--crl", str(files.crl), "--json", "--timeout", "5")
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "certificate_revoked" in text, text
    assert "keyCompromise" in text, text


def test_connect_require_revocation_fails_without_information(
        files: Files, s_server: functools.partial[PeerProcess]) -> None:
    peer = s_server("tls13")
    result = tlsmith("connect", f"localhost:{peer.port}", "--cafile", str(files.ca),
                     "--require-revocation", "--timeout", "5")
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "not checked" in text, text
