"""tlsmith's TLS 1.3 server against OpenSSL 3.0: ``openssl s_client``, Python's ``ssl``
and curl (through the ``tlsmith serve`` command).

One in-process tlsmith server per certificate type serves the whole suite × group
matrix; each ``s_client`` restricts itself to one suite and one group.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from helpers import CertFiles, free_port, require_peer
from peers import (
    KEY_UPDATE_TRIGGER,
    PeerProcess,
    TlsmithServerHandle,
    environ_without,
    run_s_client,
    start_s_client,
    tlsmith_server,
    wait_until,
)
from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme
from tlsmith.config import ALL_TLS13_SUITES, CertifiedKey, ServerConfig

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

MATRIX_CERTS = ("rsa-2048", "ecdsa-p256", "ed25519")
MATRIX_GROUPS = (NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1,
                 NamedGroup.X448, NamedGroup.FFDHE2048)
OPENSSL_GROUP = {
    NamedGroup.X25519: "x25519",
    NamedGroup.SECP256R1: "P-256",
    NamedGroup.SECP384R1: "P-384",
    NamedGroup.X448: "x448",
    NamedGroup.FFDHE2048: "ffdhe2048",
}
# What OpenSSL 3.0's s_client prints as "Server Temp Key" (it does not name FFDHE groups).
TEMP_KEY = {
    NamedGroup.X25519: "X25519, 253 bits",
    NamedGroup.SECP256R1: "ECDH, prime256v1, 256 bits",
    NamedGroup.SECP384R1: "ECDH, secp384r1, 384 bits",
    NamedGroup.X448: "X448, 448 bits",
    NamedGroup.FFDHE2048: "DH, 2048 bits",
}
PEER_SIGNATURE_TYPE = {"rsa-2048": "RSA-PSS", "ecdsa-p256": "ECDSA", "ed25519": "ed25519"}
SCHEMES = {
    "rsa-2048": {SignatureScheme.RSA_PSS_RSAE_SHA256, SignatureScheme.RSA_PSS_RSAE_SHA384,
                 SignatureScheme.RSA_PSS_RSAE_SHA512},
    "ecdsa-p256": {SignatureScheme.ECDSA_SECP256R1_SHA256},
    "ed25519": {SignatureScheme.ED25519},
}
TIMEOUT = 10.0
MIB = 1 << 20
KEY_UPDATE_IN = "<<< TLS 1.3, Handshake [length 0005], KeyUpdate"
KEY_UPDATE_OUT = ">>> TLS 1.3, Handshake [length 0005], KeyUpdate"


def server_config(cert: CertFiles, **kw: object) -> ServerConfig:
    kw.setdefault("cipher_suites", ALL_TLS13_SUITES)
    kw.setdefault("groups", MATRIX_GROUPS)
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),),
                        **kw)  # type: ignore[arg-type]


class ServerPool:
    """In-process tlsmith servers, one per (certificate, handler, options), reused."""

    def __init__(self, certs: dict[str, CertFiles], stack: ExitStack) -> None:
        self.certs = certs
        self.stack = stack
        self._servers: dict[tuple[object, ...], TlsmithServerHandle] = {}

    def get(self, cert: str, handler: str = "http", **kw: object) -> TlsmithServerHandle:
        key = (cert, handler, tuple(sorted(kw.items())))
        if key not in self._servers:
            config = server_config(self.certs[cert], **kw)
            self._servers[key] = self.stack.enter_context(tlsmith_server(config, handler))
        return self._servers[key]


@pytest.fixture(scope="module")
def servers(certs: dict[str, CertFiles]) -> Iterator[ServerPool]:
    require_peer("openssl")
    with ExitStack() as stack:
        yield ServerPool(certs, stack)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


def s_client_args(cert: CertFiles, *extra: str) -> list[str]:
    return ["-tls1_3", "-CAfile", str(cert.ca_path), "-verify_return_error",
            "-servername", "localhost", *extra]


def field(output: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}: ?(.*)$", output, re.MULTILINE)
    assert match, f"no {name!r} line in:\n{output}"
    return match.group(1).strip()


def server_errors(server: TlsmithServerHandle) -> str:
    with server.lock:
        errors = [f"{s.peer}: {s.error!r}" for s in server.served if s.error is not None]
    return "\ntlsmith server errors:\n" + "\n".join(errors[-5:]) if errors else ""


GET = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"


# ------------------------------------------------------------------------------ matrix
@pytest.mark.parametrize("cert_type", MATRIX_CERTS)
@pytest.mark.parametrize("group", MATRIX_GROUPS, ids=lambda g: g.name.lower())
@pytest.mark.parametrize("suite", ALL_TLS13_SUITES, ids=lambda s: s.name)
def test_matrix(servers: ServerPool, certs: dict[str, CertFiles], suite: CipherSuite,
                group: NamedGroup, cert_type: str) -> None:
    cert = certs[cert_type]
    server = servers.get(cert_type)
    done = run_s_client(server.port, *s_client_args(
        cert, "-ciphersuites", suite.name, "-groups", OPENSSL_GROUP[group], "-ign_eof"),
        stdin=GET)
    out = done.stdout
    assert done.returncode == 0, done.text + server_errors(server)
    assert "Verification: OK" in out
    assert "Verify return code: 0 (ok)" in out
    assert f"New, TLSv1.3, Cipher is {suite.name}" in out
    assert field(out, "Server Temp Key") == TEMP_KEY[group]
    assert field(out, "Peer signature type") == PEER_SIGNATURE_TYPE[cert_type]
    # our HTTP handler's answer, describing the handshake as the tlsmith server saw it
    assert "HTTP/1.0 200 OK" in out
    match = re.search(r"^tlsmith-info (.*)$", out, re.MULTILINE)
    assert match, out
    seen = dict(item.split("=", 1) for item in match.group(1).split())
    assert seen["version"] == "TLSv1.3"
    assert seen["suite"] == suite.name
    assert seen["group"] == group.name
    assert SignatureScheme[seen["sig"]] in SCHEMES[cert_type]
    assert seen["sni"] == "localhost"
    assert seen["hrr"] == "no"


# ------------------------------------------------------------------------------ features
def test_hello_retry_request(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    server = servers.get("ecdsa-p256", groups=(NamedGroup.SECP256R1,))
    before = server.count()
    # s_client sends a key share for its first group only (x25519): we must ask for P-256
    done = run_s_client(server.port, *s_client_args(cert, "-groups", "x25519:P-256",
                                                     "-ign_eof", "-msg"), stdin=GET)
    assert done.returncode == 0, done.text
    assert "Verify return code: 0 (ok)" in done.stdout
    assert field(done.stdout, "Server Temp Key") == TEMP_KEY[NamedGroup.SECP256R1]
    client_hellos = re.findall(r"^>>> .*Handshake.*ClientHello$", done.stdout, re.MULTILINE)
    assert len(client_hellos) == 2, done.stdout
    served = server.wait_served(before)
    assert served.error is None, repr(served.error)
    assert served.info is not None
    assert served.info.hello_retry_request
    assert served.info.group == NamedGroup.SECP256R1
    assert "hrr=yes" in done.stdout


@pytest.mark.parametrize(("server_alpn", "client_alpn", "expected"), [
    (("http/1.1",), "http/1.1", "http/1.1"),
    (("h2", "http/1.1"), "http/1.1,h2", "h2"),  # the server's preference wins
    (("h2", "http/1.1"), "foo,http/1.1", "http/1.1"),
])
def test_alpn(servers: ServerPool, certs: dict[str, CertFiles],
              server_alpn: tuple[str, ...], client_alpn: str, expected: str) -> None:
    cert = certs["ed25519"]
    server = servers.get("ed25519", alpn_protocols=server_alpn)
    done = run_s_client(server.port, *s_client_args(cert, "-alpn", client_alpn, "-ign_eof"),
                        stdin=GET)
    assert done.returncode == 0, done.text
    assert f"ALPN protocol: {expected}" in done.stdout
    assert f"alpn={expected}" in done.stdout


def test_no_alpn_overlap_is_refused(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    cert = certs["ed25519"]
    server = servers.get("ed25519", alpn_protocols=("h2",))
    done = run_s_client(server.port, *s_client_args(cert, "-alpn", "http/1.1", "-ign_eof"),
                        stdin=GET)
    assert done.returncode != 0
    assert "no application protocol" in done.text, done.text


@pytest.mark.parametrize(("sigalgs", "expected"), [
    ("rsa_pss_rsae_sha384", SignatureScheme.RSA_PSS_RSAE_SHA384),
    ("rsa_pss_rsae_sha512:rsa_pss_rsae_sha256", SignatureScheme.RSA_PSS_RSAE_SHA512),
    ("rsa_pss_rsae_sha256:rsa_pss_rsae_sha512", SignatureScheme.RSA_PSS_RSAE_SHA256),
])
def test_signature_scheme_from_client_list(servers: ServerPool, certs: dict[str, CertFiles],
                                           sigalgs: str, expected: SignatureScheme) -> None:
    cert = certs["rsa-2048"]
    server = servers.get("rsa-2048")
    done = run_s_client(server.port, *s_client_args(cert, "-sigalgs", sigalgs, "-ign_eof"),
                        stdin=GET)
    assert done.returncode == 0, done.text + server_errors(server)
    assert f"sig={expected.name}" in done.stdout
    assert field(done.stdout, "Peer signing digest") == "SHA" + expected.name[-3:]


@pytest.mark.parametrize("extra", [
    ("-max_send_frag", "512"),
    ("-record_padding", "512"),
], ids=["max_send_frag-512", "record_padding-512"])
def test_client_record_layer_variants(servers: ServerPool, certs: dict[str, CertFiles],
                                      extra: tuple[str, ...]) -> None:
    cert = certs["rsa-2048"]
    server = servers.get("rsa-2048")
    done = run_s_client(server.port, *s_client_args(cert, *extra, "-ign_eof"), stdin=GET)
    assert done.returncode == 0, done.text + server_errors(server)
    assert "tlsmith-info version=TLSv1.3" in done.stdout


def test_ecdsa_p384_certificate(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p384"]
    server = servers.get("ecdsa-p384")
    done = run_s_client(server.port, *s_client_args(cert, "-ign_eof"), stdin=GET)
    assert done.returncode == 0, done.text + server_errors(server)
    assert "sig=ECDSA_SECP384R1_SHA384" in done.stdout
    assert field(done.stdout, "Peer signing digest") == "SHA384"


@pytest.mark.parametrize(("args", "alert", "error"), [
    (("-tls1_3", "-sigalgs", "RSA+SHA256"), "alert handshake failure", "HandshakeFailure"),
    (("-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256"), "alert handshake failure",
     "HandshakeFailure"),
    (("-tls1_2",), "alert protocol version", "ProtocolVersion"),
], ids=["pkcs1-only", "ccm8-only", "tls1_2-only"])
def test_refusals_are_alerts(servers: ServerPool, certs: dict[str, CertFiles],
                             args: tuple[str, ...], alert: str, error: str) -> None:
    """What a TLS 1.3-only server cannot do ends in the right alert, seen by OpenSSL."""
    cert = certs["rsa-2048"]
    server = servers.get("rsa-2048", min_version=ProtocolVersion.TLS13)
    before = server.count()
    done = run_s_client(server.port, *args, "-CAfile", str(cert.ca_path),
                        "-servername", "localhost", stdin=GET)
    assert done.returncode != 0
    assert alert in done.text, done.text
    served = server.wait_served(before)
    assert type(served.error).__name__.startswith(error), repr(served.error)


def interactive(servers: ServerPool, certs: dict[str, CertFiles], log_dir: Path,
                cert_type: str = "ecdsa-p256") -> tuple[TlsmithServerHandle, PeerProcess]:
    """An s_client talking to our echo server: stdin lines are sent ("k"/"K" lines
    send a KeyUpdate) and -msg shows every message."""
    cert = certs[cert_type]
    server = servers.get(cert_type, "echo")
    client = start_s_client(server.port, *s_client_args(cert, "-msg"), log_dir=log_dir)
    client.wait_for("Verify return code: 0 (ok)")
    return server, client


def echo_round(client: PeerProcess, text: str, mark: int) -> str:
    client.send(text + "\n")
    return client.wait_for(text, since=mark)


@pytest.mark.parametrize("command", ["K", "k"])
def test_key_update_from_s_client(servers: ServerPool, certs: dict[str, CertFiles],
                                  log_dir: Path, command: str) -> None:
    server, client = None, None
    try:
        before = servers.get("ecdsa-p256", "echo").count()
        server, client = interactive(servers, certs, log_dir)
        mark = client.mark()
        echo_round(client, "ping-before", mark)
        client.send(f"{command}\n")
        client.wait_for("KEYUPDATE", since=mark)
        for i in range(3):
            out = echo_round(client, f"ping-after-{i}", mark)
        assert out.index(KEY_UPDATE_OUT) < out.index("ping-after-0")
        # update_requested: our server answers with a KeyUpdate of its own
        assert (KEY_UPDATE_IN in out) == (command == "K")
        client.close_stdin()  # s_client sends close_notify and exits
        assert client.wait() == 0
        served = server.wait_served(before)
        assert served.error is None, repr(served.error)
        assert [ku.update_requested for ku in served.key_updates] == [command == "K"]
        assert bytes(served.received) == (b"ping-before\n" + b"".join(
            f"ping-after-{i}\n".encode() for i in range(3)))
        assert served.closed is not None and served.closed.clean
    finally:
        if client is not None:
            client.stop()


def test_key_update_from_tlsmith_server(servers: ServerPool, certs: dict[str, CertFiles],
                                        log_dir: Path) -> None:
    client = None
    try:
        before = servers.get("ecdsa-p256", "echo").count()
        server, client = interactive(servers, certs, log_dir)
        mark = client.mark()
        out = echo_round(client, KEY_UPDATE_TRIGGER.decode(), mark)
        assert out.index(KEY_UPDATE_IN) < out.rindex(KEY_UPDATE_TRIGGER.decode())
        for i in range(3):
            out = echo_round(client, f"after-server-update-{i}", mark)
        # s_client answered our update_requested before its next data
        assert KEY_UPDATE_OUT in out
        assert out.index(KEY_UPDATE_OUT) < out.index("after-server-update-0")
        client.close_stdin()
        assert client.wait() == 0
        served = server.wait_served(before)
        assert served.error is None, repr(served.error)
        assert [ku.update_requested for ku in served.key_updates] == [False]
        assert served.closed is not None and served.closed.clean
    finally:
        if client is not None:
            client.stop()


def test_close_notify_both_ways(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    cert = certs["rsa-2048"]
    server = servers.get("rsa-2048")
    before = server.count()
    # our HTTP handler answers and closes: s_client (-ign_eof) stops on our close_notify
    done = run_s_client(server.port, *s_client_args(cert, "-ign_eof", "-msg"), stdin=GET)
    assert done.returncode == 0, done.text
    assert "<<< TLS 1.3, Alert [length 0002], warning close_notify" in done.stdout
    assert server.wait_served(before).error is None
    # and s_client's close_notify (stdin at EOF) reaches our server as a clean close
    echo = servers.get("rsa-2048", "echo")
    before = echo.count()
    done = run_s_client(echo.port, *s_client_args(cert, "-msg"), stdin=b"")
    assert done.returncode == 0, done.text
    assert ">>> TLS 1.3, Alert [length 0002], warning close_notify" in done.stdout
    served = echo.wait_served(before)
    assert served.closed is not None and served.closed.clean
    assert served.error is None


# ------------------------------------------------------------------------------ Python ssl
@pytest.mark.parametrize("cert_type", ["ecdsa-p256", "rsa-2048"])
def test_python_ssl_client_one_mib(servers: ServerPool, certs: dict[str, CertFiles],
                                   cert_type: str) -> None:
    cert = certs[cert_type]
    server = servers.get(cert_type, "echo")
    before = server.count()
    ctx = ssl.create_default_context(cafile=str(cert.ca_path))
    payload = bytes(range(256)) * (MIB // 256)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             suppress_ragged_eofs=False) as tls:
            assert tls.version() == "TLSv1.3"
            echoed = bytearray()
            for start in range(0, MIB, 64 * 1024):
                chunk = payload[start:start + 64 * 1024]
                tls.sendall(chunk)
                while len(echoed) < start + len(chunk):
                    data = tls.recv(65536)
                    assert data, "the tlsmith server closed early"
                    echoed += data
            assert echoed == payload
            tls.unwrap()  # our close_notify, then the server's (ssl raises if unclean)
    served = server.wait_served(before)
    assert served.error is None, repr(served.error)
    assert len(served.received) == MIB
    assert served.closed is not None and served.closed.clean


# ------------------------------------------------------------------------------ the CLI
def start_tlsmith_serve(cert: CertFiles, log_dir: Path, *, env: dict[str, str]
                        ) -> PeerProcess:
    output = ""
    for attempt in range(3):  # the free port may be taken by someone else: retry
        port = free_port()
        cmd = [sys.executable, "-m", "tlsmith.cli.main", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--cert", str(cert.chain_path), "--key",
               str(cert.key_path), "--max-connections", "1"]
        serve = PeerProcess(cmd, log_dir / f"serve-{attempt}.log", port=port, env=env)
        wait_until(functools.partial(started_or_exited, serve), 10.0)
        if serve.proc.poll() is None and listening(serve):
            return serve
        serve.stop()
        output = serve.output()
    raise AssertionError(f"tlsmith serve did not start:\n{output}")


def started_or_exited(serve: PeerProcess) -> bool:
    return serve.proc.poll() is not None or listening(serve)


def listening(serve: PeerProcess) -> bool:
    # "tlsmith serving ..." is printed once the socket listens; a probe connection would
    # count against --max-connections 1, so read the banner instead of connecting.
    return "tlsmith serving TLSv1.3" in serve.output()


def curl(cert: CertFiles, port: int) -> str:
    done = subprocess.run(
        [require_peer("curl"), "-sS", "--max-time", "10", "--cacert", str(cert.ca_path),
         "--resolve", f"localhost:{port}:127.0.0.1", f"https://localhost:{port}/"],
        capture_output=True, timeout=15, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def handshake_log_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]


def test_tlsmith_serve_cli_with_curl(certs: dict[str, CertFiles], log_dir: Path) -> None:
    cert = certs["ecdsa-p256"]
    # A narrow "terminal": the handshake's log line must still be one line (a log file
    # or a pipe must not get a line wrapped at the console width).
    serve = start_tlsmith_serve(cert, log_dir, env={**environ_without("COLUMNS"),
                                                   "COLUMNS": "60"})
    try:
        page = curl(cert, serve.port)
        assert "TLSv1.3" in page
        assert page.startswith("tlsmith: your TLS handshake\n")  # curl gets text
        assert serve.wait(timeout=10) == 0  # --max-connections 1
    finally:
        serve.stop()
    lines = handshake_log_lines(serve.output())
    assert len(lines) == 1, serve.output()
    assert " TLSv1.3 TLS_AES_" in lines[0] and "sni=localhost" in lines[0]
    assert lines[0].rstrip().endswith("hrr=no"), serve.output()

