"""tlsmith's TLS 1.3 client against OpenSSL 3.0: ``openssl s_server`` and Python's ``ssl``.

One s_server per certificate type serves the whole suite × group matrix; our client
restricts each connection to one suite and one group.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CertFiles, require_peer
from peers import (
    OPENSSL_ALL_SUITES,
    OPENSSL_MATRIX_GROUPS,
    PeerProcess,
    python_ssl_server,
    read_until_closed,
    send_close_notify,
    start_s_server,
    wait_until,
)
from tlsmith.codec.enums import AlertDescription, CipherSuite, NamedGroup, SignatureScheme
from tlsmith.config import ALL_TLS13_SUITES, ClientConfig
from tlsmith.io.blocking import TLSSocket, connect
from tlsmith.observe import MessageTrace, TraceRecord
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

MATRIX_CERTS = ("rsa-2048", "ecdsa-p256", "ed25519")
MATRIX_GROUPS = (NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1,
                 NamedGroup.X448, NamedGroup.FFDHE2048)
EXPECTED_SCHEME = {
    # OpenSSL takes the first scheme of our list its key can make: for an
    # rsaEncryption key that is rsa_pss_rsae_sha256 (the rsa_pss_pss_* need a PSS key).
    "rsa-2048": SignatureScheme.RSA_PSS_RSAE_SHA256,
    "ecdsa-p256": SignatureScheme.ECDSA_SECP256R1_SHA256,
    "ed25519": SignatureScheme.ED25519,
}
TIMEOUT = 10.0
MIB = 1 << 20


# ------------------------------------------------------------------------------ fixtures
class ServerPool:
    """Long-lived s_server processes, started on first use and stopped at module end."""

    def __init__(self, certs: dict[str, CertFiles], log_dir: Path) -> None:
        self.certs = certs
        self.log_dir = log_dir
        self._servers: dict[tuple[str, tuple[str, ...]], PeerProcess] = {}

    def get(self, cert: str, *args: str) -> PeerProcess:
        key = (cert, args)
        server = self._servers.get(key)
        if server is None or server.proc.poll() is not None:
            server = start_s_server(self.certs[cert], *args, log_dir=self.log_dir,
                                    name=f"s_server-{cert}")
            self._servers[key] = server
        return server

    def www(self, cert: str) -> PeerProcess:
        """The matrix server: every suite, every group, ALPN, answers GET with -www."""
        return self.get(cert, "-www", "-ciphersuites", OPENSSL_ALL_SUITES,
                        "-groups", OPENSSL_MATRIX_GROUPS, "-alpn", "h2,http/1.1")

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()


@pytest.fixture(scope="module")
def servers(certs: dict[str, CertFiles], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[ServerPool]:
    require_peer("openssl")
    pool = ServerPool(certs, tmp_path_factory.mktemp("s_server"))
    try:
        yield pool
    finally:
        pool.stop()


def client_config(cert: CertFiles, **kw: object) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        **kw)  # type: ignore[arg-type]


class Recorder:
    """An observer keeping the messages (and alerts) that crossed the wire."""

    def __init__(self) -> None:
        self.messages: list[MessageTrace] = []

    def __call__(self, record: TraceRecord) -> None:
        if isinstance(record, MessageTrace):
            self.messages.append(record)

    def names(self, direction: str) -> list[str]:
        return [m.name for m in self.messages if m.direction == direction]

    def alerts(self, direction: str) -> list[AlertDescription]:
        return [m.message[1] for m in self.messages
                if m.direction == direction and m.name == "Alert"]


@contextlib.contextmanager
def open_tls(port: int, config: ClientConfig) -> Iterator[TLSSocket]:
    tls = connect("127.0.0.1", port, config, timeout=TIMEOUT)
    try:
        yield tls
    finally:
        tls.close()


def http_get(tls: TLSSocket, path: str = "/") -> str:
    tls.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    drained = read_until_closed(tls)
    return drained.data.decode("utf-8", "replace")


# ------------------------------------------------------------------------------ matrix
@pytest.mark.parametrize("cert_type", MATRIX_CERTS)
@pytest.mark.parametrize("group", MATRIX_GROUPS, ids=lambda g: g.name.lower())
@pytest.mark.parametrize("suite", ALL_TLS13_SUITES, ids=lambda s: s.name)
def test_matrix(servers: ServerPool, certs: dict[str, CertFiles], suite: CipherSuite,
                group: NamedGroup, cert_type: str) -> None:
    server = servers.www(cert_type)
    config = client_config(certs[cert_type], cipher_suites=(suite,), groups=(group,),
                           key_share_groups=(group,))
    with open_tls(server.port, config) as tls:
        info = tls.info
        assert info.version_label == "TLSv1.3"
        assert info.cipher_suite == suite
        assert info.group == group
        assert info.signature_scheme == EXPECTED_SCHEME[cert_type]
        assert info.certificate_verified
        assert not info.hello_retry_request
        assert info.alpn is None
        page = http_get(tls)
    assert page.startswith("HTTP/1.0 200 ok"), page[:200]
    assert f"New, TLSv1.3, Cipher is {suite.name}" in page, page


# ------------------------------------------------------------------------------ features
def test_hello_retry_request(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    server = servers.get("ecdsa-p256", "-www", "-groups", "P-384")
    recorder = Recorder()
    config = client_config(certs["ecdsa-p256"], observer=recorder)
    assert config.key_share_groups == (NamedGroup.X25519,)
    assert NamedGroup.SECP384R1 in config.groups
    with open_tls(server.port, config) as tls:
        assert tls.info.hello_retry_request
        assert tls.info.group == NamedGroup.SECP384R1
        assert tls.info.certificate_verified
        page = http_get(tls)
    assert recorder.names("sent").count("ClientHello") == 2
    assert "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256" in page


@pytest.mark.parametrize(("offered", "expected"), [
    (("http/1.1",), "http/1.1"),
    (("h2", "http/1.1"), "h2"),  # s_server picks by its own preference order
    (("http/1.1", "h2"), "h2"),
])
def test_alpn(servers: ServerPool, certs: dict[str, CertFiles], offered: tuple[str, ...],
              expected: str) -> None:
    server = servers.www("ecdsa-p256")
    config = client_config(certs["ecdsa-p256"], alpn_protocols=offered)
    with open_tls(server.port, config) as tls:
        assert tls.info.alpn == expected
        assert http_get(tls).startswith("HTTP/1.0 200 ok")


@pytest.mark.parametrize("extra", [
    ("-max_send_frag", "512"),  # the server's handshake messages span many records
    ("-record_padding", "512"),  # padded TLSInnerPlaintext
], ids=["max_send_frag-512", "record_padding-512"])
def test_record_layer_variants(servers: ServerPool, certs: dict[str, CertFiles],
                               extra: tuple[str, ...]) -> None:
    server = servers.get("rsa-2048", "-www", *extra)
    with open_tls(server.port, client_config(certs["rsa-2048"])) as tls:
        assert tls.info.certificate_verified
        page = http_get(tls)
    assert page.startswith("HTTP/1.0 200 ok") and "Cipher is TLS_AES_128_GCM_SHA256" in page


def test_ecdsa_p384_certificate(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    server = servers.get("ecdsa-p384", "-www")
    with open_tls(server.port, client_config(certs["ecdsa-p384"])) as tls:
        assert tls.info.signature_scheme == SignatureScheme.ECDSA_SECP384R1_SHA384
        assert tls.info.certificate_verified
        assert http_get(tls).startswith("HTTP/1.0 200 ok")


def test_session_tickets_received(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    server = servers.get("ecdsa-p256", "-www", "-num_tickets", "3")
    with open_tls(server.port, client_config(certs["ecdsa-p256"])) as tls:
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        page = bytearray()
        while chunk := tls.recv():  # the socket API collects the tickets on the way
            page += chunk
        assert len(tls.tickets) == 3
        assert all(t.ticket and t.lifetime > 0 for t in tls.tickets)
    assert page.startswith(b"HTTP/1.0 200 ok")


def console_server(servers: ServerPool) -> PeerProcess:
    """An s_server in its plain mode: what the client sends is printed, what we write to
    its stdin is sent (and "k"/"K" lines send a KeyUpdate); -msg shows every message."""
    return servers.get("ecdsa-p256", "-msg")


def rev_server(servers: ServerPool) -> PeerProcess:
    """An s_server -rev: answers each line reversed; the line "CLOSE" closes."""
    return servers.get("ed25519", "-rev", "-msg")


@pytest.mark.parametrize("command", ["K", "k"])
def test_key_update_from_server(servers: ServerPool, certs: dict[str, CertFiles],
                                command: str) -> None:
    server = console_server(servers)
    recorder = Recorder()
    mark = server.mark()
    with open_tls(server.port, client_config(certs["ecdsa-p256"], observer=recorder)) as tls:
        server.wait_for("CIPHER is", since=mark)
        server.send("before\n")
        assert tls.recv_exactly(7) == b"before\n"
        # s_server treats a read that *starts* with "K\n" as the whole command, so wait
        # until it has acted before writing the next line.
        server.send(f"{command}\n")
        server.wait_for(">>> TLS 1.3, Handshake [length 0005], KeyUpdate", since=mark)
        server.send("after\n")
        assert tls.recv_exactly(6) == b"after\n"
        assert tls.key_updates_received == 1
        received = [m for m in recorder.messages
                    if m.direction == "received" and m.name == "KeyUpdate"]
        assert len(received) == 1
        sent_updates = recorder.names("sent").count("KeyUpdate")
        if command == "K":  # update_requested: we must answer with our own KeyUpdate
            assert sent_updates == 1
        else:
            assert sent_updates == 0
        tls.sendall(b"client-after-update\n")
        out = server.wait_for("client-after-update", since=mark)
    if command == "K":
        # s_server read our KeyUpdate and then decrypted data under our new keys.
        assert out.index("<<< TLS 1.3, Handshake [length 0005], KeyUpdate") < out.index(
            "client-after-update")
    server.wait_for("DONE", since=mark)


@pytest.mark.parametrize("request_peer", [True, False])
def test_key_update_from_client(servers: ServerPool, certs: dict[str, CertFiles],
                                request_peer: bool) -> None:
    # The console s_server, not -rev: s_server -rev sleeps a whole second whenever a read
    # would block, which OpenSSL reports right after it has processed a KeyUpdate.
    server = console_server(servers)
    recorder = Recorder()
    mark = server.mark()
    with open_tls(server.port, client_config(certs["ecdsa-p256"], observer=recorder)) as tls:
        server.wait_for("CIPHER is", since=mark)
        tls.sendall(b"before the update\n")
        server.wait_for("before the update", since=mark)
        tls.key_update(request_peer=request_peer)
        for i in range(3):  # s_server decrypts with our new keys...
            tls.sendall(f"after the update {i}\n".encode())
            out = server.wait_for(f"after the update {i}", since=mark)
            # ...and we decrypt its lines (after its own KeyUpdate when requested)
            server.send(f"server line {i}\n")
            assert tls.recv_exactly(14) == f"server line {i}\n".encode()
        assert out.index("<<< TLS 1.3, Handshake [length 0005], KeyUpdate") < out.index(
            "after the update 0")
        answered = ">>> TLS 1.3, Handshake [length 0005], KeyUpdate" in out
        assert answered == request_peer
        assert tls.key_updates_received == (1 if request_peer else 0)
    assert recorder.names("sent").count("KeyUpdate") == 1
    server.wait_for("DONE", since=mark)


def test_close_notify_from_client(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    server = console_server(servers)
    mark = server.mark()
    tls = connect("127.0.0.1", server.port, client_config(certs["ecdsa-p256"]),
                  timeout=TIMEOUT)
    try:
        tls.sendall(b"hello before close\n")
        server.wait_for("hello before close", since=mark)
        send_close_notify(tls)
        out = server.wait_for("DONE", since=mark)
        assert "<<< TLS 1.3, Alert [length 0002], warning close_notify" in out
        # s_server answers our close_notify with its own
        drained = read_until_closed(tls)
        assert drained.closed is not None and drained.closed.clean
    finally:
        tls.close()
    after = server.output_since(mark)
    assert "ERROR" not in after[after.index("hello before close"):]


def test_close_notify_from_server(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    server = rev_server(servers)
    mark = server.mark()
    recorder = Recorder()
    with open_tls(server.port, client_config(certs["ed25519"], observer=recorder)) as tls:
        tls.sendall(b"abc\n")
        assert tls.recv_exactly(4) == b"cba\n"
        tls.sendall(b"CLOSE\n")
        assert tls.recv() == b""  # the socket API: end of stream
        assert tls.recv() == b""
        assert recorder.alerts("received") == [AlertDescription.CLOSE_NOTIFY]
    server.wait_for("CONNECTION CLOSED", since=mark)
    server.wait_for(">>> TLS 1.3, Alert [length 0002], warning close_notify", since=mark)


def test_close_notify_event_is_clean(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    server = servers.www("rsa-2048")
    with open_tls(server.port, client_config(certs["rsa-2048"])) as tls:
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        drained = read_until_closed(tls)
    assert drained.closed is not None
    assert drained.closed.clean, "s_server -www ends with close_notify"
    assert b"Cipher is" in drained.data


def test_one_mib_each_way_rev(servers: ServerPool, certs: dict[str, CertFiles]) -> None:
    server = rev_server(servers)
    # 1024 lines of 1024 bytes; sent 64 lines at a time so neither side's socket buffer
    # can fill up while the other is still writing.
    lines = [(f"{i:05d}-" + "abcdefghijklmnopqrstuvwxyz0123456789" * 29)[:1023].encode() + b"\n"
             for i in range(1024)]
    assert sum(map(len, lines)) == MIB
    sent = received = 0
    with open_tls(server.port, client_config(certs["ed25519"])) as tls:
        for start in range(0, len(lines), 64):
            batch = lines[start:start + 64]
            tls.sendall(b"".join(batch))
            sent += sum(map(len, batch))
            reply = tls.recv_exactly(sum(map(len, batch)))
            received += len(reply)
            expected = b"".join(line[-2::-1] + b"\n" for line in batch)
            assert reply == expected, f"batch at line {start} differs"
    assert sent == received == MIB


# ------------------------------------------------------------------------------ Python ssl
@pytest.mark.parametrize("cert_type", ["ecdsa-p256", "rsa-2048"])
def test_python_ssl_echo_one_mib(certs: dict[str, CertFiles], cert_type: str) -> None:
    cert = certs[cert_type]
    payload = bytes(range(256)) * (MIB // 256)
    with python_ssl_server(cert, "echo") as (port, served):
        tls = connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT)
        try:
            assert tls.info.version_label == "TLSv1.3"
            assert tls.info.certificate_verified
            echoed = bytearray()
            for start in range(0, MIB, 64 * 1024):
                chunk = payload[start:start + 64 * 1024]
                tls.sendall(chunk)
                echoed += tls.recv_exactly(len(chunk))
            assert echoed == payload
            # our close_notify -> Python sees a clean close and answers with its own
            send_close_notify(tls)
            drained = read_until_closed(tls)
        finally:
            tls.close()
        assert wait_until(lambda: bool(served) and served[0].done.is_set(), TIMEOUT)
    record = served[0]
    assert record.error is None, repr(record.error)
    assert record.version == "TLSv1.3"
    assert record.received == MIB
    assert record.peer_closed_cleanly
    assert record.unwrapped
    assert drained.data == b""
    assert drained.closed is not None and drained.closed.clean


def test_python_ssl_server_closes_first(certs: dict[str, CertFiles]) -> None:
    cert = certs["ed25519"]
    with python_ssl_server(cert, "close-first") as (port, served):
        tls = connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT)
        try:
            drained = read_until_closed(tls)
            assert drained.data == b"bye"
            assert drained.closed is not None and drained.closed.clean
            send_close_notify(tls)  # Python's unwrap() is waiting for this
            assert wait_until(lambda: served[0].done.is_set(), TIMEOUT)
        finally:
            tls.close()
    assert served[0].error is None, repr(served[0].error)
    assert served[0].unwrapped
