"""``tlsmith diagnose``: the cause found by changing one thing at a time, and
``tlsmith connect``'s one-paragraph error agreeing with it.

Servers: tlsmith's own (in-process), ``openssl s_server`` with deliberately narrow
settings, and -- when it exists -- the gallery of broken servers (tlsmith.gallery).
Loopback only; every attempt has a short timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers import CertFiles, free_port
from peers import start_s_server, tlsmith_server
from tlsmith.cli.main import main as cli_main
from tlsmith.codec.enums import AlertDescription, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.errors import AlertReceived, HandshakeFailure, ProtocolVersionError
from tlsmith.explain import explain
from tlsmith.findings import KNOWN_IDS
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

pytestmark = pytest.mark.timeout(120)

TIMEOUT = "3"  # --timeout, per attempt


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def diagnose_json(port: int, cafile: Path | str, *extra: str) -> dict[str, Any]:
    code, out, err = run("diagnose", f"127.0.0.1:{port}", "--servername", "localhost",
                         "--cafile", str(cafile), "--timeout", TIMEOUT, "--json", *extra)
    assert code == 0, out + err
    obj: dict[str, Any] = json.loads(out)
    assert set(obj) >= {"ok", "findings", "attempts"}
    for finding in obj["findings"]:
        assert set(finding) >= {"id", "severity", "text", "fix", "evidence"}
        assert finding["evidence"].startswith("attempt ")
    assert 1 <= len(obj["attempts"]) <= 12
    return obj


def connect_error(port: int, cafile: Path | str, *extra: str) -> str:
    code, out, err = run("connect", f"127.0.0.1:{port}", "--servername", "localhost",
                         "--cafile", str(cafile), "--timeout", TIMEOUT, *extra)
    assert code == 1, out + err
    return " ".join(err.split())  # rich wraps lines: compare words


def ids(obj: dict[str, Any]) -> list[str]:
    return [f["id"] for f in obj["findings"]]


def server_config(cert_path: Path, key_path: Path, **kw: Any) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert_path, key_path),), **kw)


# --- against tlsmith servers ---------------------------------------------------------------
def test_healthy_server_is_ok(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    with tlsmith_server(server_config(cert.chain_path, cert.key_path)) as srv:
        obj = diagnose_json(srv.port, cert.ca_path)
        code, out, _ = run("diagnose", f"127.0.0.1:{srv.port}", "--servername", "localhost",
                           "--cafile", str(cert.ca_path), "--timeout", TIMEOUT)
    assert obj["ok"] is True and len(obj["attempts"]) == 1
    assert not [f for f in obj["findings"] if f["severity"] in ("critical", "high")]
    assert code == 0 and "connects" in out and "attempts" in out


def test_tls12_only_server_is_ok_with_a_note(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    config = server_config(cert.chain_path, cert.key_path,
                           max_version=ProtocolVersion.TLS12)
    with tlsmith_server(config) as srv:
        obj = diagnose_json(srv.port, cert.ca_path)
    assert obj["ok"] is True
    assert "tls12_only" in ids(obj)


def test_client_certificate_required(certs: dict[str, CertFiles], devca: DevCA) -> None:
    cert = certs["ecdsa-p256"]
    assert devca.ca_path is not None
    config = server_config(cert.chain_path, cert.key_path, client_auth="require",
                           client_trust=TrustStore.from_pem_file(devca.ca_path))
    with tlsmith_server(config) as srv:
        obj = diagnose_json(srv.port, cert.ca_path)
        said = connect_error(srv.port, cert.ca_path)
    assert obj["ok"] is False
    assert ids(obj)[0] == "client_certificate_required"
    finding = obj["findings"][0]
    assert "--cert/--key" in finding["fix"]
    assert "client certificate" in said and "--cert" in said


def test_client_certificate_required_tls12(certs: dict[str, CertFiles],
                                           devca: DevCA) -> None:
    cert = certs["ecdsa-p256"]
    assert devca.ca_path is not None
    config = server_config(cert.chain_path, cert.key_path, client_auth="require",
                           client_trust=TrustStore.from_pem_file(devca.ca_path),
                           max_version=ProtocolVersion.TLS12)
    with tlsmith_server(config) as srv:
        obj = diagnose_json(srv.port, cert.ca_path)
    assert ids(obj)[0] == "client_certificate_required"
    # A TLS 1.2 CertificateRequest names the CAs: the finding says which.
    assert "issued by" in obj["findings"][0]["text"]


@pytest.mark.parametrize(("when", "expect", "words"), [
    ("expired", "certificate_expired", "expired"),
    ("future", "certificate_not_yet_valid", "not valid for another"),
])
def test_certificate_validity(devca: DevCA, tmp_path: Path, when: str, expect: str,
                              words: str) -> None:
    now = datetime.now(UTC)
    if when == "expired":
        span = (now - timedelta(days=10), now - timedelta(days=2))
    else:
        span = (now + timedelta(days=2), now + timedelta(days=20))
    issued = devca.issue(not_before=span[0], not_after=span[1]).write(tmp_path, when)
    assert issued.chain_path and issued.key_path and devca.ca_path
    with tlsmith_server(server_config(issued.chain_path, issued.key_path)) as srv:
        obj = diagnose_json(srv.port, devca.ca_path)
        said = connect_error(srv.port, devca.ca_path)
    assert ids(obj)[0] == expect
    assert words in said
    if when == "future":
        assert "this machine's clock reads" in obj["findings"][0]["text"]
    # Verification off showed the rest of the handshake works.
    assert obj["attempts"][1]["ok"] is True


def test_unknown_ca_and_hostname(certs: dict[str, CertFiles], tmp_path: Path) -> None:
    cert = certs["ecdsa-p256"]
    other = DevCA.load_or_create(tmp_path / "other-ca")
    assert other.ca_path is not None
    with tlsmith_server(server_config(cert.chain_path, cert.key_path)) as srv:
        unknown = diagnose_json(srv.port, other.ca_path)
        said = connect_error(srv.port, other.ca_path)
        code, out, _ = run("diagnose", f"127.0.0.1:{srv.port}", "--servername",
                           "wrong.example", "--cafile", str(cert.ca_path), "--json")
    assert ids(unknown)[0] in ("unknown_issuer", "self_signed")
    assert "--cafile" in said
    assert code == 0 and ids(json.loads(out))[0] == "hostname_mismatch"


def test_unreachable_host_exits_1() -> None:
    port = free_port()  # nothing listens here
    code, out, err = run("diagnose", f"127.0.0.1:{port}", "--timeout", "2")
    assert code == 1
    assert "cannot diagnose" in err and "refused" in err
    code, out, _ = run("diagnose", f"127.0.0.1:{port}", "--timeout", "2", "--json")
    assert code == 1 and json.loads(out)["ok"] is False


def test_usage_errors_exit_2(certs: dict[str, CertFiles]) -> None:
    code, _, _ = run("diagnose", "127.0.0.1:99999")
    assert code == 2
    code, _, _ = run("diagnose", "127.0.0.1:443", "--cert", str(certs["ed25519"].cert_path))
    assert code == 2


# --- against openssl s_server ---------------------------------------------------------
@pytest.fixture
def s_server(tmp_path: Path) -> Iterator[Any]:
    started: list[Any] = []

    def start(cert: CertFiles, *args: str) -> Any:
        peer = start_s_server(cert, "-www", *args, log_dir=tmp_path, tls13_only=False)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


def test_rsa_kx_cbc_only_server(s_server: Any, certs: dict[str, CertFiles]) -> None:
    cert = certs["rsa-2048"]
    peer = s_server(cert, "-tls1_2", "-cipher", "AES128-SHA", "-no_etm")
    obj = diagnose_json(peer.port, cert.ca_path)
    said = connect_error(peer.port, cert.ca_path)
    assert ids(obj)[0] == "no_shared_cipher_suite"
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in obj["findings"][0]["text"]
    assert "cipher suite" in said and "tlsmith diagnose" in said


@pytest.mark.parametrize(("flag", "only"), [("-tls1_1", "TLS 1.1"), ("-tls1", "TLS 1.0")])
def test_old_version_only_server(s_server: Any, certs: dict[str, CertFiles], flag: str,
                                 only: str) -> None:
    pytest.importorskip("tlsmith.probe.hello")
    cert = certs["rsa-2048"]
    peer = s_server(cert, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
    obj = diagnose_json(peer.port, cert.ca_path)
    said = connect_error(peer.port, cert.ca_path)
    finding = obj["findings"][0]
    assert finding["id"] == "protocol_version_mismatch"
    assert f"only speaks {only}" in finding["text"] and "RFC 8996" in finding["text"]
    assert "RFC 8996" in said and "--cipher" not in said


def test_alpn_mismatch(s_server: Any, certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    peer = s_server(cert, "-alpn", "h2")
    obj = diagnose_json(peer.port, cert.ca_path)
    said = connect_error(peer.port, cert.ca_path, "--alpn", "http/1.1")
    assert ids(obj)[0] == "alpn_mismatch"
    assert obj["attempts"][-1]["label"] == "without ALPN" and obj["attempts"][-1]["ok"]
    assert "ALPN" in said


def test_tls12_only_server_refusing_tls13_only_client(s_server: Any,
                                                      certs: dict[str, CertFiles]) -> None:
    """connect --tls1.3 to a TLS 1.2-only server: the advice is about the version."""
    cert = certs["ecdsa-p256"]
    peer = s_server(cert, "-tls1_2")
    said = connect_error(peer.port, cert.ca_path, "--tls1.3")
    assert "--cipher" not in said and "TLSv1.2" in said


# --- explain() ------------------------------------------------------------------------------
def test_explain_handshake_failure_depends_on_what_we_offered() -> None:
    exc = AlertReceived(AlertDescription.HANDSHAKE_FAILURE)
    only13 = explain(exc, host="h", port=1, offered_versions=(ProtocolVersion.TLS13,))
    assert "--tls1.3" in only13 and "--cipher" not in only13
    both = explain(exc, host="h", port=1,
                   offered_versions=(ProtocolVersion.TLS13, ProtocolVersion.TLS12))
    assert "cipher suite" in both and "run `tlsmith diagnose h:1`" in both.lower()


def test_explain_old_version_chosen_by_server() -> None:
    exc = ProtocolVersionError("the server chose TLSv1.1, but this client accepts only "
                               "TLSv1.2")
    text = explain(exc, host="h", port=1)
    assert "RFC 8996" in text and "diagnose" not in text
    assert "tlsmith diagnose h:1" in explain(HandshakeFailure("no cipher suite in common"),
                                             host="h", port=1)


def test_known_ids_are_documented() -> None:
    from tlsmith.diagnose import REASON_IDS

    for reason in ("expired", "not_yet_valid", "hostname_mismatch", "self_signed",
                   "unknown_issuer", "missing_intermediate", "revoked", "weak_key"):
        assert REASON_IDS[reason] in KNOWN_IDS


# --- the gallery ----------------------------------------------------------------------------
def _gallery() -> Any:
    gallery = pytest.importorskip("tlsmith.gallery")
    if not hasattr(gallery, "start_gallery"):
        pytest.skip("tlsmith.gallery.start_gallery is not written yet")
    return gallery


def test_gallery(tmp_path: Path) -> None:
    gallery = _gallery()
    failures = []
    with gallery.start_gallery(base_port=0, directory=tmp_path) as g:
        for server in g.servers:
            expect = server.expect
            cafile = server.cafile
            obj = diagnose_json(server.port, cafile)
            if expect is None:
                if obj["ok"] is not True:
                    failures.append(f"{server.name}: expected ok, got {ids(obj)}")
                continue
            if expect not in ids(obj):
                failures.append(f"{server.name}: expected {expect}, got {ids(obj)} "
                                f"({obj['attempts']})")
                continue
            if obj["ok"]:
                # Not fatal for tlsmith (e.g. an RSA-1024 leaf it still accepts):
                # connect succeeds, so there is no error to agree with.
                continue
            extra = ("--alpn", "http/1.1") if expect == "alpn_mismatch" else ()
            said = connect_error(server.port, cafile, *extra).lower()
            words = AGREES[expect]
            if not any(w in said for w in words):
                failures.append(f"{server.name}: connect says {said!r}, none of {words}")
    assert not failures, "\n".join(failures)


#: Words `tlsmith connect`'s error must use for each finding (the same cause).
AGREES: dict[str, tuple[str, ...]] = {
    "certificate_expired": ("expired",),
    "certificate_not_yet_valid": ("not valid for another", "not_yet_valid"),
    "hostname_mismatch": ("not valid for",),
    "self_signed": ("self-signed",),
    "unknown_issuer": ("unknown_issuer", "not among"),
    "missing_intermediate": ("missing an intermediate", "missing_intermediate"),
    "certificate_revoked": ("revoked",),
    "protocol_version_mismatch": ("rfc 8996", "tlsv1.1 or older"),
    "no_shared_cipher_suite": ("cipher suite",),
    "no_shared_group": ("key-exchange group",),
    "client_certificate_required": ("client certificate",),
    "alpn_mismatch": ("alpn",),
    "weak_key": ("weak_key", "key or signature algorithm"),
    "sha1_signature": ("sha1", "sha-1", "signature algorithm"),
}


def test_plain_http_port_is_not_tls() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def answer() -> None:
        # Two connections: diagnose's first attempt decides; then connect.
        for _ in range(2):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        code, out, _ = run("diagnose", f"127.0.0.1:{port}", "--timeout", TIMEOUT, "--json")
        ccode, _, cerr = run("connect", f"127.0.0.1:{port}", "--timeout", TIMEOUT)
        said = " ".join(cerr.split())
    finally:
        listener.close()
        thread.join(timeout=5)
    assert code == 0
    obj = json.loads(out)
    assert ids(obj) == ["not_tls"] and "plain HTTP" in obj["findings"][0]["text"]
    assert ccode == 1 and "not seem to speak TLS" in said


def test_client_certificate_rejected(certs: dict[str, CertFiles], devca: DevCA,
                                     tmp_path: Path) -> None:
    """With --cert/--key from a CA the server does not trust: the server refuses it."""
    cert = certs["ecdsa-p256"]
    other = DevCA.load_or_create(tmp_path / "other-ca")
    client = other.issue(names=["client"], client=True).write(tmp_path, "client")
    assert devca.ca_path is not None and client.chain_path and client.key_path
    config = server_config(cert.chain_path, cert.key_path, client_auth="require",
                           client_trust=TrustStore.from_pem_file(devca.ca_path))
    with tlsmith_server(config) as srv:
        obj = diagnose_json(srv.port, cert.ca_path, "--cert", str(client.chain_path),
                            "--key", str(client.key_path))
    assert ids(obj)[0] == "client_certificate_rejected"


def test_old_version_without_the_prober(tmp_path: Path) -> None:
    """No raw prober: still protocol_version_mismatch, saying it cannot tell 1.0 from 1.1."""
    gallery = _gallery()
    from tlsmith.diagnose import diagnose

    with gallery.start_gallery(base_port=0, directory=tmp_path) as g:
        server = next(s for s in g.servers if s.name == "tls10-only")
        base = ClientConfig(server_name="localhost",
                            trust=TrustStore.from_pem_file(server.cafile))
        result = diagnose("127.0.0.1", server.port, base=base, timeout=3.0,
                          use_prober=False)
    assert not result.ok and [f.id for f in result.findings] == ["protocol_version_mismatch"]
    assert "TLS 1.1 or older" in result.findings[0].text
    assert all(not a.raw for a in result.attempts)
