"""``tlsmith gallery``: every case, seen by tlsmith's default client (and openssl)."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

import tlsmith
from tlsmith.cli.main import main
from tlsmith.codec.enums import AlertDescription, CipherSuite, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig
from tlsmith.errors import AlertReceived, CertificateError, ProtocolVersionError
from tlsmith.findings import KNOWN_IDS
from tlsmith.gallery import CASES, Gallery, GalleryServer, start_gallery
from tlsmith.io.blocking import TLSSocket
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

REQUEST = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gallery]:
    started = time.monotonic()
    with start_gallery(base_port=0, directory=tmp_path_factory.mktemp("gallery")) as g:
        assert time.monotonic() - started < 3.0  # keys are made once, the start is quick
        yield g


def _config(server: GalleryServer, **changes: object) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(server.cafile),
                        **changes)  # type: ignore[arg-type]


def _connect(server: GalleryServer, **changes: object) -> TLSSocket:
    return tlsmith.connect("127.0.0.1", server.port, _config(server, **changes), timeout=5)


def _get(tls: TLSSocket) -> bytes:
    tls.sendall(REQUEST)
    reply = b""
    while chunk := tls.recv():
        reply += chunk
    return reply


# --- the API ----------------------------------------------------------------------------


def test_cases_are_named_and_expect_known_findings(gallery: Gallery) -> None:
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names)
    assert names[0] == "good" and CASES[0].expect is None
    for c in CASES:
        assert c.expect is None or c.expect in KNOWN_IDS, c
    assert [s.name for s in gallery.servers] == names
    assert len({s.port for s in gallery.servers}) == len(names)
    for s in gallery.servers:
        assert s.cafile == gallery.cafile and s.cafile.is_file()
    assert {c.expect for c in CASES} - {None} <= set(KNOWN_IDS)


# --- each case, with the default client ---------------------------------------------------


@pytest.mark.parametrize("name", ["good", "tls12-only", "hrr-required", "0rtt-rejected"])
def test_healthy_cases_connect(gallery: Gallery, name: str) -> None:
    server = gallery.server(name)
    assert server.expect is None
    with _connect(server) as tls:
        info = tls.info
        assert _get(tls).endswith(f"tlsmith gallery: {name}\n".encode())
    assert info.version_label == ("TLSv1.2" if name == "tls12-only" else "TLSv1.3")
    assert info.hello_retry_request == (name == "hrr-required")


@pytest.mark.parametrize(("name", "reason"), [
    ("expired", "expired"),
    ("not-yet-valid", "not_yet_valid"),
    ("wrong-host", "hostname_mismatch"),
    ("self-signed", "self_signed"),
    ("untrusted-root", "unknown_issuer"),
    ("missing-intermediate", "missing_intermediate"),
    ("revoked", "revoked"),
])
def test_certificate_cases_fail_for_their_reason(gallery: Gallery, name: str,
                                                 reason: str) -> None:
    with pytest.raises(CertificateError) as caught:
        _connect(gallery.server(name))
    assert caught.value.reason == reason


def test_missing_intermediate_is_served_at_the_aia_url(gallery: Gallery) -> None:
    import urllib.request

    leaf = x509.load_pem_x509_certificate(
        (gallery.directory / "missing-intermediate.pem").read_bytes())
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [gallery.aia_url]
    with urllib.request.urlopen(gallery.aia_url, timeout=5) as reply:
        intermediate = x509.load_der_x509_certificate(reply.read())
    assert intermediate.subject == leaf.issuer
    # With the intermediate the chain verifies: the server's only fault is not sending it.
    ca = x509.load_pem_x509_certificate(gallery.cafile.read_bytes())
    intermediate.verify_directly_issued_by(ca)
    leaf.verify_directly_issued_by(intermediate)


@pytest.mark.parametrize(("name", "label"), [("tls10-only", "TLSv1,"),
                                             ("tls11-only", "TLSv1.1,")])
def test_legacy_version_servers(gallery: Gallery, name: str, label: str) -> None:
    server = gallery.server(name)
    # Default client (supported_versions 1.3, 1.2): the server finds no version in common.
    with pytest.raises(AlertReceived) as caught:
        _connect(server)
    assert caught.value.description == AlertDescription.PROTOCOL_VERSION
    # A TLS 1.2 client offering an RSA CBC suite sees the old version in the ServerHello.
    with pytest.raises(ProtocolVersionError, match=label):
        _connect(server, max_version=ProtocolVersion.TLS12,
                 cipher_suites=(CipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA,))


def test_cbc_only_has_no_suite_for_a_default_client(gallery: Gallery) -> None:
    server = gallery.server("cbc-only")
    with pytest.raises(AlertReceived) as caught:
        _connect(server)
    assert caught.value.description == AlertDescription.HANDSHAKE_FAILURE
    # Honest: a client that offers its suite connects (with encrypt_then_mac).
    with _connect(server, max_version=ProtocolVersion.TLS12,
                  cipher_suites=(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,)) as tls:
        assert tls.info.cipher_suite == CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
        assert _get(tls).endswith(b"tlsmith gallery: cbc-only\n")


def _raw_client_hello(groups: list[int]) -> bytes:
    """A TLS 1.3 ClientHello offering ``groups`` in supported_groups and no key share."""
    def ext(kind: int, data: bytes) -> bytes:
        return kind.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data

    group_list = b"".join(g.to_bytes(2, "big") for g in groups)
    extensions = (ext(0x002B, b"\x02\x03\x04")
                  + ext(0x000A, len(group_list).to_bytes(2, "big") + group_list)
                  + ext(0x000D, b"\x00\x02\x04\x03")
                  + ext(0x0033, b"\x00\x00"))
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) + b"\x00\x02\x13\x01"
            + b"\x01\x00" + len(extensions).to_bytes(2, "big") + extensions)
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(message).to_bytes(2, "big") + message


def _first_record(port: int, hello: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(hello)
        data = b""
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def test_no_common_group(gallery: Gallery) -> None:
    server = gallery.server("no-common-group")
    with pytest.raises(AlertReceived) as caught:
        _connect(server)
    assert caught.value.description == AlertDescription.HANDSHAKE_FAILURE
    # A ClientHello that offers ffdhe8192 gets a HelloRetryRequest asking for a share.
    record = _first_record(server.port, _raw_client_hello([0x001D, 0x0104]))
    assert record[0] == 22 and record[5] == 2
    assert bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891") in record  # HRR random
    assert record.endswith(b"\x00\x33\x00\x02\x01\x04")  # key_share: ffdhe8192
    # Without it: handshake_failure, the same as the default client gets.
    refused = _first_record(server.port, _raw_client_hello([0x001D]))
    assert refused == b"\x15\x03\x03\x00\x02\x02\x28"


def test_client_certificate_required(gallery: Gallery) -> None:
    server = gallery.server("client-cert-required")
    # TLS 1.3: the server judges the (empty) client Certificate after our Finished.
    with _connect(server) as tls, pytest.raises(AlertReceived) as caught:
        _get(tls)
    assert caught.value.description == AlertDescription.CERTIFICATE_REQUIRED
    # A client certificate from the gallery CA is accepted.
    issued = DevCA.load(gallery.directory).issue(["gallery-client"], client=True)
    from tlsmith.x509.keys import der_chain, load_private_key

    client = CertifiedKey(tuple(der_chain([issued.certificate])),
                          load_private_key(issued.key_pem))
    with _connect(server, certificate=client) as tls:
        assert _get(tls).endswith(b"tlsmith gallery: client-cert-required\n")


def test_alpn_mismatch(gallery: Gallery) -> None:
    server = gallery.server("alpn-mismatch")
    with pytest.raises(AlertReceived) as caught:
        _connect(server, alpn_protocols=("http/1.1",))
    assert caught.value.description == AlertDescription.NO_APPLICATION_PROTOCOL
    with _connect(server, alpn_protocols=("h2",)) as tls:
        assert tls.info.alpn == "h2"


def test_0rtt_rejected_but_resumption_works(gallery: Gallery) -> None:
    server = gallery.server("0rtt-rejected")
    with _connect(server) as tls:
        session = tls.wait_for_session(2.0)
        assert _get(tls)
    assert session is not None and getattr(session, "max_early_data", 0) > 0
    config = _config(server)
    with tlsmith.connect("127.0.0.1", server.port, config, timeout=5, session=session,
                         early_data=REQUEST) as tls:
        assert tls.info.resumed
        assert tls.early_data_accepted is False
        reply = b""
        while chunk := tls.recv():  # the request was resent after the handshake
            reply += chunk
    assert reply.endswith(b"tlsmith gallery: 0rtt-rejected\n")


def test_weak_rsa_1024_is_refused_as_weak_key(gallery: Gallery) -> None:
    # As OpenSSL's default security level does: RSA below 2048 bits is "key too small".
    leaf = x509.load_pem_x509_certificate(
        (gallery.directory / "weak-rsa-1024.pem").read_bytes())
    key = leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024
    with pytest.raises(CertificateError) as caught:
        _connect(gallery.server("weak-rsa-1024"))
    assert caught.value.reason == "weak_key" and "1024 bits" in str(caught.value)


def test_sha1_signature_is_refused(gallery: Gallery) -> None:
    leaf = x509.load_pem_x509_certificate(
        (gallery.directory / "sha1-signature.pem").read_bytes())
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA1)
    # Refused, naming SHA-1 (cryptography cannot even check ecdsa-with-SHA1).
    with pytest.raises(CertificateError) as caught:
        _connect(gallery.server("sha1-signature"))
    assert caught.value.reason == "weak_signature" and "SHA1" in str(caught.value)


def test_every_case_is_covered(gallery: Gallery) -> None:
    """Each server keeps serving: a second round of connections behaves the same (only
    the handshake: client-cert-required refuses after it)."""
    for server in gallery.servers:
        alpn = ("http/1.1",) if server.name == "alpn-mismatch" else ()
        try:
            _connect(server, alpn_protocols=alpn).close()
            outcome = "ok"
        except (CertificateError, AlertReceived, ProtocolVersionError):
            outcome = "refused"
        assert (outcome == "ok") == (server.expect is None
                                     or server.name == "client-cert-required"), server.name


def test_many_connections_at_once(gallery: Gallery) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def fetch(name: str) -> bytes:
        with _connect(gallery.server(name)) as tls:
            return _get(tls)

    names = ["good", "hrr-required", "tls12-only"] * 6
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(fetch, names))
    assert all(r.endswith(f"tlsmith gallery: {n}\n".encode())
               for r, n in zip(replies, names, strict=True))


# --- openssl agrees -----------------------------------------------------------------------


def _s_client(server: GalleryServer, *extra: str) -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    done = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername",
         "localhost", "-verify_hostname", "localhost", "-CAfile", str(server.cafile),
         *extra],
        input=b"", capture_output=True, timeout=15, check=False)
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


def test_openssl_good(gallery: Gallery) -> None:
    out = _s_client(gallery.server("good"))
    assert "Verify return code: 0 (ok)" in out and "TLSv1.3" in out


def test_openssl_expired(gallery: Gallery) -> None:
    out = _s_client(gallery.server("expired"))
    assert "certificate has expired" in out and "Verify return code: 10" in out


def test_openssl_tls12_only(gallery: Gallery) -> None:
    out = _s_client(gallery.server("tls12-only"))
    assert "Verify return code: 0 (ok)" in out
    assert "Protocol  : TLSv1.2" in out or "New, TLSv1.2" in out


def test_openssl_tls11_only(gallery: Gallery) -> None:
    server = gallery.server("tls11-only")
    out = _s_client(server, "-tls1_1", "-cipher", "AES128-SHA:@SECLEVEL=0")
    if "no protocols available" in out or "Protocol  :" not in out:
        pytest.skip("this openssl cannot speak TLS 1.1")
    # The emulation gets as far as ServerHelloDone: version, suite and certificate.
    assert "Protocol  : TLSv1.1" in out and "AES128-SHA" in out
    assert "subject=CN = localhost" in out
    # openssl's default (TLS 1.2 and 1.3 at security level 1+) is refused.
    assert "Protocol  : TLSv1.1" not in _s_client(server, "-tls1_2")


# --- the CLI ------------------------------------------------------------------------------


def test_list_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["gallery", "list", "--json", "--base-port", "9400",
                                       "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [e["name"] for e in entries] == [c.name for c in CASES]
    for i, (entry, c) in enumerate(zip(entries, CASES, strict=True)):
        assert set(entry) == {"name", "port", "cafile", "expect", "description"}
        assert entry["port"] == 9400 + i
        assert entry["cafile"] == str(tmp_path / "ca.pem")
        assert entry["expect"] == c.expect and entry["description"] == c.description
    result = CliRunner().invoke(main, ["gallery", "list", "--json"],
                                env={"TLSMITH_HOME": str(tmp_path / "home")})
    entries = json.loads(result.output)
    assert {e["port"] for e in entries} == {None}
    assert entries[0]["cafile"] == str(tmp_path / "home" / "gallery" / "ca.pem")
    table = CliRunner().invoke(main, ["gallery", "list"])
    assert table.exit_code == 0 and "missing-intermediate" in table.output


def _free_base_port(count: int) -> int:
    """A port P with P .. P+count-1 all free (at the time of asking)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip("no run of free ports")


def test_serve_with_base_port(tmp_path: Path) -> None:
    base = _free_base_port(len(CASES) + 1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tlsmith.cli.main", "gallery", "serve", "--base-port",
         str(base), "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    assert proc.stdout is not None
    out = b""
    try:
        deadline = time.monotonic() + 20
        while b"Ctrl-C" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
        text = out.decode()
        assert "serving; Ctrl-C to stop" in text, text
        for i, c in enumerate(CASES):
            assert c.name in text and str(base + i) in text
        assert str(tmp_path / "ca.pem") in text
        good = GalleryServer("good", base, tmp_path / "ca.pem", None, "")
        with _connect(good) as tls:
            assert _get(tls).endswith(b"tlsmith gallery: good\n")
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert b"gallery stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
