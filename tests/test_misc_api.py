"""Small connection features: tls_unique() (RFC 5929), send_fatal_alert(), ignoring a
TLS 1.2 HelloRequest, equal-preference suite groups and the JDK 11 workaround."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import replace

import pytest

from helpers import CertFiles
from pair import configs, handshake, pump
from tlsmith.codec.enums import (
    AlertDescription,
    CipherSuite,
    ContentType,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    is_grease,
)
from tlsmith.codec.extensions import UnknownExtension
from tlsmith.codec.extensions_common import SignatureAlgorithmsCert
from tlsmith.codec.messages import ClientHello, NewSessionTicket
from tlsmith.codec.messages12 import HelloRequest
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import (
    AlertReceived,
    ConnectionClosedError,
    DecodeError,
    IllegalParameter,
    UsageError,
)
from tlsmith.events import (
    ApplicationData,
    HandshakeComplete,
    SessionTicketReceived,
    WarningAlert,
)
from tlsmith.handshake.common13 import RESUMPTION_ACROSS_NAMES, TLS_FLAGS, ticket_flags
from tlsmith.handshake.negotiate import is_probably_jdk11
from tlsmith.handshake.server12 import JDK11_DOWNGRADE
from tlsmith.io.blocking import connect
from tlsmith.record.framing import encode_record_header

_TLS12 = ProtocolVersion.TLS12
_CS = CipherSuite


def _pair12(cert: CertFiles, **kw: object) -> tuple[TLSConnection, TLSConnection]:
    client_cfg, server_cfg = configs(cert, max_version=_TLS12, **kw)  # type: ignore[arg-type]
    client, server, _, _ = handshake(client_cfg, server_cfg)
    assert client.handshake_complete and server.handshake_complete
    return client, server


# ------------------------------------------------------------------ tls-unique
def test_tls_unique_full_handshake_is_the_client_finished(certs: dict[str, CertFiles]
                                                          ) -> None:
    client, server = _pair12(certs["ecdsa-p256"])
    assert len(client.tls_unique()) == 12
    assert client.tls_unique() == server.tls_unique()


def test_tls_unique_resumption_is_the_server_finished(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"], max_version=_TLS12,
                                     session_tickets=True)
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    cev, _ = pump(client, server)
    session = next(e.session for e in cev if isinstance(e, SessionTicketReceived))
    resumed, server2 = TLSConnection(client_cfg, session=session), TLSConnection(server_cfg)
    cev2, _ = pump(resumed, server2)
    info = next(e.info for e in cev2 if isinstance(e, HandshakeComplete))
    assert info.resumed
    # An abbreviated handshake: the server's Finished is the first one (RFC 5929 §3.1).
    assert resumed.tls_unique() == server2.tls_unique() != client.tls_unique()
    assert len(resumed.tls_unique()) == 12


def test_tls_unique_is_not_defined_for_tls13(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"])
    client, _server, _, _ = handshake(client_cfg, server_cfg)
    with pytest.raises(UsageError):
        client.tls_unique()
    fresh = TLSConnection(client_cfg)
    with pytest.raises(UsageError):
        fresh.tls_unique()  # before the handshake


def test_tls_unique_matches_openssl(certs: dict[str, CertFiles]) -> None:
    """Python's ssl (OpenSSL) computes the same channel binding (TLS 1.2)."""
    cert = certs["rsa-2048"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert.chain_path), str(cert.key_path))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen: list[bytes | None] = []

    def serve() -> None:
        raw, _ = listener.accept()
        raw.settimeout(10)
        with ctx.wrap_socket(raw, server_side=True) as tls:
            seen.append(tls.get_channel_binding("tls-unique"))
            tls.sendall(tls.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client_cfg, _ = configs(cert, max_version=_TLS12)
        with connect("127.0.0.1", port, client_cfg, timeout=10) as tls:
            tls.sendall(b"ping")
            assert tls.recv_exactly(4) == b"ping"
            ours = tls.conn.tls_unique()
        thread.join(10)
    finally:
        listener.close()
    assert seen == [ours]


# ------------------------------------------------------------------ fatal alerts
def test_send_fatal_alert_ends_the_connection(certs: dict[str, CertFiles]) -> None:
    client, server = _pair12(certs["ecdsa-p256"])
    client.send_fatal_alert(AlertDescription.DECOMPRESSION_FAILURE)
    server.receive_data(client.data_to_send())
    with pytest.raises(AlertReceived) as err:
        server.next_event()
    assert err.value.description == AlertDescription.DECOMPRESSION_FAILURE
    with pytest.raises(ConnectionClosedError):
        client.send_data(b"late")


def test_send_fatal_alert_refuses_close_notify(certs: dict[str, CertFiles]) -> None:
    client, _ = _pair12(certs["ecdsa-p256"])
    with pytest.raises(UsageError):
        client.send_fatal_alert(AlertDescription.CLOSE_NOTIFY)


# ------------------------------------------------------------------ HelloRequest
def _hello_request(server: TLSConnection) -> bytes:
    """A HelloRequest under the server's keys (tlsmith's server never sends one)."""
    body = HelloRequest().serialize()
    return server._write.protect(ContentType.HANDSHAKE, body)


@pytest.mark.parametrize("ignore", [False, True])
def test_hello_request_refused_or_ignored(certs: dict[str, CertFiles], ignore: bool) -> None:
    client, server = _pair12(certs["ecdsa-p256"], ignore_hello_request=ignore)
    client.receive_data(_hello_request(server))
    server.send_data(b"after")
    client.receive_data(server.data_to_send())
    events = client.events()
    assert ApplicationData(b"after") in events
    answer = client.data_to_send()
    if ignore:
        assert answer == b""  # silently dropped (RFC 5246 §7.4.1.1)
    else:
        server.receive_data(answer)
        assert WarningAlert(AlertDescription.NO_RENEGOTIATION) in server.events()


# ------------------------------------------------------------------ suite groups
_GCM128 = _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
_GCM256 = _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
_CHACHA = _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256


@pytest.mark.parametrize(("client_order", "chosen"), [
    ((_GCM256, _CHACHA, _GCM128), _GCM256),
    ((_CHACHA, _GCM256, _GCM128), _CHACHA),
    ((_GCM128, _CHACHA), _CHACHA),  # the group outranks GCM128 on the server
])
def test_equal_preference_group(certs: dict[str, CertFiles], client_order: tuple[
        CipherSuite, ...], chosen: CipherSuite) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"], max_version=_TLS12,
                                     cipher_suites=client_order)
    server_cfg = replace(server_cfg, cipher_suites=(_GCM256, _CHACHA, _GCM128),
                         cipher_suite_groups=((_GCM256, _CHACHA),))
    client, _, _, _ = handshake(client_cfg, server_cfg)
    assert client.info is not None and client.info.cipher_suite == chosen


def test_equal_preference_group_must_be_configured_suites(certs: dict[str, CertFiles]
                                                          ) -> None:
    _, server_cfg = configs(certs["ecdsa-p256"])
    with pytest.raises(UsageError):
        replace(server_cfg, cipher_suite_groups=((_CS.TLS_RSA_WITH_AES_128_CBC_SHA,),))
    with pytest.raises(UsageError):
        replace(server_cfg, cipher_suites=(_GCM128, _GCM256),
                cipher_suite_groups=((_GCM128, _GCM256), (_GCM128,)))


# ------------------------------------------------------------------ JDK 11
_JDK_ORDER = (ExtensionType.SERVER_NAME, ExtensionType.SUPPORTED_GROUPS,
              ExtensionType.SIGNATURE_ALGORITHMS, ExtensionType.SIGNATURE_ALGORITHMS_CERT,
              ExtensionType.EXTENDED_MASTER_SECRET, ExtensionType.SUPPORTED_VERSIONS,
              ExtensionType.PSK_KEY_EXCHANGE_MODES, ExtensionType.KEY_SHARE)


def _jdk11_hello(cert: CertFiles) -> ClientHello:
    """A ClientHello shaped like JDK 11's: no ChaCha20, no X25519, JDK's extension order,
    signature_algorithms_cert equal to signature_algorithms."""
    client_cfg, _ = configs(cert, groups=(NamedGroup.SECP256R1,),
                            key_share_groups=(NamedGroup.SECP256R1,),
                            cipher_suites=(_CS.TLS_AES_128_GCM_SHA256, _GCM128))
    raw = TLSConnection(client_cfg).first_client_hello
    ch = ClientHello.parse_body(memoryview(raw)[4:])
    by_type = {e.extension_type: e for e in ch.extensions}
    algs = by_type[ExtensionType.SIGNATURE_ALGORITHMS]
    by_type[ExtensionType.SIGNATURE_ALGORITHMS_CERT] = SignatureAlgorithmsCert(
        algs.supported_signature_algorithms)  # type: ignore[union-attr]
    return replace(ch, extensions=tuple(by_type[t] for t in _JDK_ORDER))


def _server_hello_random(server_cfg: ServerConfig, hello: ClientHello) -> tuple[int, bytes]:
    server = TLSConnection(server_cfg)
    body = hello.serialize()
    server.receive_data(encode_record_header(ContentType.HANDSHAKE, 0x0301, len(body)) + body)
    server.events()
    out = server.data_to_send()
    assert out[5] == 2  # ServerHello
    version = int.from_bytes(out[9:11])
    return version, out[11:43]


def test_jdk11_hello_is_recognised(certs: dict[str, CertFiles]) -> None:
    hello = _jdk11_hello(certs["ecdsa-p256"])
    assert is_probably_jdk11(hello)
    assert not is_probably_jdk11(replace(hello, cipher_suites=(
        *hello.cipher_suites, _CS.TLS_CHACHA20_POLY1305_SHA256)))
    assert not is_probably_jdk11(replace(hello, extensions=hello.extensions[::-1]))


def test_jdk11_workaround_answers_with_tls12(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    hello = _jdk11_hello(cert)
    _, server_cfg = configs(cert)
    # The ServerHello's legacy_version is 0x0303 either way: look at the random.
    _, random = _server_hello_random(replace(server_cfg, jdk11_workaround=True), hello)
    assert random.endswith(JDK11_DOWNGRADE)
    _, random = _server_hello_random(server_cfg, hello)  # off by default: TLS 1.3
    assert not random.endswith(JDK11_DOWNGRADE)


def test_jdk11_workaround_leaves_other_clients_alone(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"])
    client, _, _, _ = handshake(client_cfg, replace(server_cfg, jdk11_workaround=True))
    assert client.info is not None and client.info.version == ProtocolVersion.TLS13


def test_client_config_ignore_hello_request_default() -> None:
    assert ClientConfig(verify_certificates=False).ignore_hello_request is False


# ------------------------------------------------------------------ GREASE (RFC 8701)
def _hello_of(client: TLSConnection) -> ClientHello:
    return ClientHello.parse_body(memoryview(client.first_client_hello)[4:])


def test_grease_client_hello(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"], grease=True)
    client, _, _, _ = handshake(client_cfg, server_cfg)
    assert client.info is not None and client.info.version == ProtocolVersion.TLS13
    hello = _hello_of(client)
    assert is_grease(hello.cipher_suites[0])
    types = [int(e.extension_type) for e in hello.extensions]
    assert is_grease(types[0]) and is_grease(types[-1]) and types[0] != types[-1]
    by_type = {int(e.extension_type): e for e in hello.extensions}
    groups = by_type[int(ExtensionType.SUPPORTED_GROUPS)]
    assert is_grease(groups.named_group_list[0])  # type: ignore[attr-defined]
    shares = by_type[int(ExtensionType.KEY_SHARE)]
    assert is_grease(shares.client_shares[0].group)  # type: ignore[attr-defined]
    versions = by_type[int(ExtensionType.SUPPORTED_VERSIONS)]
    assert is_grease(versions.versions[0])  # type: ignore[attr-defined]
    assert not is_grease(_hello_of(TLSConnection(replace(client_cfg, grease=False)))
                         .cipher_suites[0])


def test_grease_survives_hello_retry_request(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"], grease=True)
    server_cfg = replace(server_cfg, groups=(NamedGroup.SECP384R1,))
    client, _, _, _ = handshake(client_cfg, server_cfg)
    assert client.info is not None and client.info.hello_retry_request


def test_grease_in_new_session_tickets(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"])
    client = TLSConnection(client_cfg)
    server = TLSConnection(replace(server_cfg, grease=True))
    cev, _ = pump(client, server)
    tickets = [e for e in cev if isinstance(e, SessionTicketReceived)]
    assert tickets  # the client reads the unknown extension and keeps the ticket


# ------------------------------------------------------------------ ticket age skew
def test_ticket_age_skew_is_reported(certs: dict[str, CertFiles]) -> None:
    now = [time.time()]
    client_cfg, server_cfg = configs(certs["ecdsa-p256"], clock=lambda: now[0])
    server_cfg = replace(server_cfg, clock=lambda: now[0] + offset[0])
    offset = [0.0]
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    cev, _ = pump(client, server)
    assert client.info is not None and client.info.ticket_age_skew is None
    session = next(e.session for e in cev if isinstance(e, SessionTicketReceived))
    now[0] += 30
    offset[0] = 7.0  # the server's clock ran 7 s further than the client's
    resumed, server2 = TLSConnection(client_cfg, session=session), TLSConnection(server_cfg)
    pump(resumed, server2)
    assert server2.info is not None and server2.info.resumed
    assert server2.info.ticket_age_skew == pytest.approx(-7.0, abs=0.01)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_grease_client_against_openssl(certs: dict[str, CertFiles],
                                       version: ssl.TLSVersion) -> None:
    """OpenSSL (Python's ssl) ignores our GREASE values, as RFC 8701 asks of servers."""
    cert = certs["ecdsa-p256"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.load_cert_chain(str(cert.chain_path), str(cert.key_path))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        raw, _ = listener.accept()
        raw.settimeout(10)
        with ctx.wrap_socket(raw, server_side=True) as tls:
            tls.sendall(tls.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client_cfg, _ = configs(cert, grease=True)
        with connect("127.0.0.1", port, client_cfg, timeout=10) as tls:
            tls.sendall(b"grease")
            assert tls.recv_exactly(6) == b"grease"
            assert is_grease(_hello_of(tls.conn).cipher_suites[0])
        thread.join(10)
    finally:
        listener.close()


# ------------------------------------------------------------------ ticket flags
def _nst(*exts: UnknownExtension) -> NewSessionTicket:
    return NewSessionTicket(7200, 0, b"", b"t", exts)


def _flags_ext(body: bytes) -> UnknownExtension:
    return UnknownExtension(ExtensionType(TLS_FLAGS), body)


def test_ticket_flags_parse() -> None:
    assert ticket_flags(_nst()) == 0
    assert ticket_flags(_nst(_flags_ext(b"\x02\x00\x01"))) == 1 << RESUMPTION_ACROSS_NAMES
    assert ticket_flags(_nst(_flags_ext(b"\x01\x02"))) == 1 << 1


@pytest.mark.parametrize(("body", "error"), [
    (b"\x00", DecodeError), (b"", DecodeError), (b"\x03\x01", DecodeError),
    (b"\x02\x01\x00", IllegalParameter),  # not minimal
])
def test_ticket_flags_malformed(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        ticket_flags(_nst(_flags_ext(body)))
