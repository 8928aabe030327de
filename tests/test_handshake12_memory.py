"""TLS 1.2 handshakes between tlsmith's client and server in memory: every suite, the
configuration switches (EMS, EtM, RSA key transport), version negotiation with its
downgrade protections, and what may happen after the handshake (renegotiation refused,
warning alerts, no KeyUpdate).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from helpers import CertFiles
from mitm import body_of, edit_server_hello, plaintext_record, run
from mitm12 import (
    Mitm12,
    Session12,
    expect_alert12,
    handshake_record,
    patch_client_hello,
    read_alert12,
    without_extensions,
)
from pair import SecretSpy, configs, handshake, pump
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
)
from tlsmith.codec.messages import ClientHello, ServerHello
from tlsmith.codec.messages12 import HelloRequest
from tlsmith.config import ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import prf12
from tlsmith.crypto.suites import TLS12_SUITES, suite_info
from tlsmith.errors import (
    AlertReceived,
    HandshakeFailure,
    IllegalParameter,
    InappropriateFallback,
    UsageError,
)
from tlsmith.events import ApplicationData, ConnectionClosed, WarningAlert
from tlsmith.handshake import server12
from tlsmith.handshake.negotiate import offer
from tlsmith.observe import MessageTrace

TLS12 = ProtocolVersion.TLS12
TLS13 = ProtocolVersion.TLS13
A = AlertDescription
ALL_TLS12 = tuple(TLS12_SUITES)
EXPORTER_LABEL = b"EXPERIMENTAL tlsmith test"


def configs12(cert: CertFiles, **kw: Any) -> tuple[ClientConfig, ServerConfig]:
    """Both sides TLS 1.2 only (``server=`` overrides server fields)."""
    server_kw = {"max_version": TLS12, **kw.pop("server", {})}
    kw.setdefault("max_version", TLS12)
    return configs(cert, server=server_kw, **kw)


def data_both_ways(client: TLSConnection, server: TLSConnection) -> None:
    client.send_data(b"ping" * 1000)
    server.send_data(b"pong")
    cev, sev = pump(client, server)
    assert b"".join(e.data for e in sev if isinstance(e, ApplicationData)) == b"ping" * 1000
    assert b"".join(e.data for e in cev if isinstance(e, ApplicationData)) == b"pong"


def received(spy: SecretSpy, name: str) -> Any:
    """The message object of the first ``name`` message the spied side received."""
    for r in spy.records:
        if isinstance(r, MessageTrace) and r.direction == "received" and r.name == name:
            return r.message
    raise AssertionError(f"no {name} received")


def sent(spy: SecretSpy, name: str) -> Any:
    for r in spy.records:
        if isinstance(r, MessageTrace) and r.direction == "sent" and r.name == name:
            return r.message
    raise AssertionError(f"no {name} sent")


def server_hello_raw(m: Mitm12) -> bytes:
    """The genuine ServerHello the server answers the client's hello with (not
    delivered)."""
    return m.server_hello_flight().get(HandshakeType.SERVER_HELLO)


def session_of(cspy: SecretSpy) -> Session12:
    """The session's keys from the client's observer."""
    ch: ClientHello = sent(cspy, "ClientHello")
    sh: ServerHello = received(cspy, "ServerHello")
    suite = suite_info(sh.cipher_suite)
    assert suite is not None
    etm = ext.find_extension(sh.extensions, ext.EncryptThenMac) is not None
    return Session12(suite, cspy.secrets["master_secret"], ch.random, sh.random,
                     etm and suite.cipher == "cbc")


# -- every suite -----------------------------------------------------------------------------
def _suite_cases() -> list[Any]:
    cases = []
    for suite, info in TLS12_SUITES.items():
        keys = ["ecdsa-p256", "ed25519"] if info.authentication == "ecdsa" else ["rsa-2048"]
        cases += [pytest.param(suite, k, id=f"{suite.name}-{k}") for k in keys]
    return cases


@pytest.mark.parametrize(("suite", "key_type"), _suite_cases())
def test_every_tls12_suite(certs: dict[str, CertFiles], suite: CipherSuite,
                           key_type: str) -> None:
    info = TLS12_SUITES[suite]
    ccfg, scfg = configs12(certs[key_type], cipher_suites=(suite,),
                           server={"cipher_suites": ALL_TLS12,
                                   "allow_rsa_key_exchange": info.key_exchange == "rsa"})
    client, server, cspy, sspy = handshake(ccfg, scfg)
    assert client.handshake_complete and server.handshake_complete
    assert client.info is not None and server.info is not None
    for i in (client.info, server.info):
        assert i.version == TLS12 and i.cipher_suite == suite
        assert i.extended_master_secret is True
        assert i.key_exchange == info.key_exchange.upper()  # type: ignore[union-attr]
        # RFC 7366: a CBC suite is used with encrypt_then_mac by default.
        assert i.encrypt_then_mac is (info.cipher == "cbc")
    assert client.info.certificate_verified
    assert client.negotiated_version == server.negotiated_version == TLS12
    assert cspy.secrets["master_secret"] == sspy.secrets["master_secret"]
    data_both_ways(client, server)
    assert client.export_keying_material(EXPORTER_LABEL, b"ctx", 32) == (
        server.export_keying_material(EXPORTER_LABEL, b"ctx", 32))
    assert client.exporter(EXPORTER_LABEL, None, 20) == server.exporter(EXPORTER_LABEL,
                                                                        None, 20)
    assert client.exporter(EXPORTER_LABEL, None, 20) != client.exporter(EXPORTER_LABEL,
                                                                        b"", 20)


def test_alpn(certs: dict[str, CertFiles]) -> None:
    ccfg, scfg = configs12(certs["ecdsa-p256"], alpn_protocols=("h2", "http/1.1"),
                           server={"alpn_protocols": ("http/1.1",)})
    client, server, _, _ = handshake(ccfg, scfg)
    assert client.info is not None and server.info is not None
    assert client.info.alpn == server.info.alpn == "http/1.1"


def test_close_notify(certs: dict[str, CertFiles]) -> None:
    client, server, _, _ = handshake(*configs12(certs["ecdsa-p256"]))
    client.close()
    _, sev = pump(client, server)
    assert ConnectionClosed(clean=True) in sev


# -- extended master secret (RFC 7627) -----------------------------------------------------
def test_extended_master_secret_by_default(certs: dict[str, CertFiles]) -> None:
    client, server, cspy, sspy = handshake(*configs12(certs["ecdsa-p256"]))
    assert client.info is not None and server.info is not None
    assert client.info.extended_master_secret and server.info.extended_master_secret
    s = session_of(cspy)
    legacy = prf12.master_secret(s.suite.hash_name, cspy.secrets["pre_master_secret"],
                                 s.client_random, s.server_random)
    assert cspy.secrets["master_secret"] == sspy.secrets["master_secret"] != legacy


def test_server_refuses_client_without_ems(certs: dict[str, CertFiles],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    patch_client_hello(monkeypatch, without_extensions(ExtensionType.EXTENDED_MASTER_SECRET))
    m = Mitm12(*configs12(certs["ecdsa-p256"]))
    exc = expect_alert12(m.server, m.client_first.data, HandshakeFailure,
                         check="ems_required")
    assert "RFC 7627" in str(exc)
    m.client.receive_data(plaintext_record(ContentType.ALERT,
                                           bytes((AlertLevel.FATAL, A.HANDSHAKE_FAILURE))))
    with pytest.raises(AlertReceived):
        run(m.client)


def test_client_refuses_server_without_ems(certs: dict[str, CertFiles]) -> None:
    m = Mitm12(*configs12(certs["ecdsa-p256"]))
    stripped = edit_server_hello(server_hello_raw(m), extensions=tuple(
        e for e in m.server_hello.extensions
        if e.extension_type != ExtensionType.EXTENDED_MASTER_SECRET))
    exc = expect_alert12(m.client, handshake_record(stripped), HandshakeFailure,
                         check="ems_required")
    assert "RFC 7627" in str(exc)


def test_client_allowing_no_ems_accepts_server_hello_without_it(
        certs: dict[str, CertFiles]) -> None:
    m = Mitm12(*configs12(certs["ecdsa-p256"], require_extended_master_secret=False))
    stripped = edit_server_hello(
        server_hello_raw(m),
        extensions=tuple(e for e in m.server_hello.extensions
                         if e.extension_type != ExtensionType.EXTENDED_MASTER_SECRET))
    assert m.to_client(handshake_record(stripped)) == []
    assert m.client.state_name == "ExpectCertificate"


def test_no_ems_when_both_allow_it(certs: dict[str, CertFiles],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With require_extended_master_secret=False on both sides and a client that does not
    offer it, the master secret is RFC 5246 §8.1's PRF(pms, "master secret",
    client_random + server_random)."""
    patch_client_hello(monkeypatch, without_extensions(ExtensionType.EXTENDED_MASTER_SECRET))
    client, server, cspy, sspy = handshake(*configs12(
        certs["ecdsa-p256"], require_extended_master_secret=False,
        server={"require_extended_master_secret": False}))
    assert client.info is not None and server.info is not None
    assert client.info.extended_master_secret is False
    assert server.info.extended_master_secret is False
    s = session_of(cspy)
    pms = cspy.secrets["pre_master_secret"]
    assert pms == sspy.secrets["pre_master_secret"]
    expected = prf12.master_secret(s.suite.hash_name, pms, s.client_random, s.server_random)
    assert cspy.secrets["master_secret"] == sspy.secrets["master_secret"] == expected
    data_both_ways(client, server)


# -- CBC without encrypt_then_mac (RFC 7366) ------------------------------------------------
CBC = (CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
       CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA)


def test_cbc_uses_encrypt_then_mac_by_default(certs: dict[str, CertFiles]) -> None:
    client, server, _, _ = handshake(*configs12(certs["ecdsa-p256"], cipher_suites=CBC))
    assert client.info is not None and server.info is not None
    assert client.info.encrypt_then_mac and server.info.encrypt_then_mac


def test_server_refuses_cbc_without_etm(certs: dict[str, CertFiles],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    patch_client_hello(monkeypatch, without_extensions(ExtensionType.ENCRYPT_THEN_MAC))
    m = Mitm12(*configs12(certs["ecdsa-p256"], cipher_suites=CBC,
                          allow_mac_then_encrypt=True))
    exc = expect_alert12(m.server, m.client_first.data, HandshakeFailure)
    assert "encrypt_then_mac" in str(exc)


def test_client_refuses_cbc_without_etm(certs: dict[str, CertFiles]) -> None:
    m = Mitm12(*configs12(certs["ecdsa-p256"], cipher_suites=CBC))
    stripped = edit_server_hello(server_hello_raw(m), extensions=tuple(
        e for e in m.server_hello.extensions
        if e.extension_type != ExtensionType.ENCRYPT_THEN_MAC))
    exc = expect_alert12(m.client, handshake_record(stripped), HandshakeFailure,
                         check="mte_refused")
    assert "encrypt_then_mac" in str(exc)


@pytest.mark.parametrize("suite", [s for s, i in TLS12_SUITES.items()
                                   if i.cipher == "cbc" and i.authentication == "ecdsa"],
                         ids=lambda s: s.name)
def test_mac_then_encrypt_when_both_allow_it(certs: dict[str, CertFiles],
                                             monkeypatch: pytest.MonkeyPatch,
                                             suite: CipherSuite) -> None:
    patch_client_hello(monkeypatch, without_extensions(ExtensionType.ENCRYPT_THEN_MAC))
    client, server, _, _ = handshake(*configs12(
        certs["ecdsa-p256"], cipher_suites=(suite,), allow_mac_then_encrypt=True,
        server={"allow_mac_then_encrypt": True, "cipher_suites": ALL_TLS12}))
    assert client.info is not None and server.info is not None
    assert client.info.cipher_suite == suite
    assert client.info.encrypt_then_mac is False and server.info.encrypt_then_mac is False
    data_both_ways(client, server)


def _offered(ccfg: ClientConfig, *drop: int) -> Any:
    hello = ClientHello.parse_body(body_of(TLSConnection(ccfg).data_to_send()[5:]))
    return offer(replace(hello, extensions=tuple(
        e for e in hello.extensions if e.extension_type not in drop)))


def test_choose12_cbc_needs_etm_or_permission(certs: dict[str, CertFiles]) -> None:
    ccfg, scfg = configs12(certs["ecdsa-p256"], cipher_suites=CBC)
    no_etm = _offered(ccfg, ExtensionType.ENCRYPT_THEN_MAC)
    with pytest.raises(HandshakeFailure, match="encrypt_then_mac"):
        server12.choose12(scfg, no_etm)
    choice = server12.choose12(replace(scfg, allow_mac_then_encrypt=True), no_etm)
    assert choice.suite.suite in CBC and choice.etm is False
    choice = server12.choose12(scfg, _offered(ccfg))
    assert choice.etm is True
    # With an AEAD suite also offered, the server takes it rather than MtE CBC.
    mixed = _offered(replace(ccfg, cipher_suites=(
        *CBC, CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)),
        ExtensionType.ENCRYPT_THEN_MAC)
    choice = server12.choose12(scfg, mixed)
    assert choice.suite.cipher == "aead" and choice.etm is False


# -- RSA key transport ----------------------------------------------------------------------
RSA_KX = (CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,)


def test_rsa_key_exchange_off_by_default(certs: dict[str, CertFiles]) -> None:
    m = Mitm12(*configs12(certs["rsa-2048"], cipher_suites=RSA_KX,
                          server={"cipher_suites": (*RSA_KX, *ALL_TLS12)}))
    exc = expect_alert12(m.server, m.client_first.data, HandshakeFailure)
    assert "allow_rsa_key_exchange" in str(exc)


def test_rsa_key_exchange_when_allowed(certs: dict[str, CertFiles]) -> None:
    client, server, cspy, sspy = handshake(*configs12(
        certs["rsa-2048"], cipher_suites=RSA_KX,
        server={"cipher_suites": RSA_KX, "allow_rsa_key_exchange": True}))
    assert client.info is not None and client.info.key_exchange == "RSA"
    assert client.info.signature_scheme is None  # nothing is signed
    pms = cspy.secrets["pre_master_secret"]
    assert len(pms) == 48 and pms[:2] == b"\x03\x03"  # RFC 5246 §7.4.7.1
    assert pms == sspy.secrets["pre_master_secret"]
    data_both_ways(client, server)


# -- version negotiation and downgrade protection -----------------------------------------
def test_default_client_and_tls12_only_server(certs: dict[str, CertFiles]) -> None:
    """Client 1.3+1.2, server max 1.2: TLS 1.2 and no sentinel (the server does not
    speak 1.3, RFC 8446 §4.1.3)."""
    ccfg, scfg = configs(certs["ecdsa-p256"], server={"max_version": TLS12})
    client, server, cspy, _ = handshake(ccfg, scfg)
    assert client.info is not None and client.info.version == TLS12
    sh: ServerHello = received(cspy, "ServerHello")
    assert sh.random[-8:] not in (b"DOWNGRD\x01", b"DOWNGRD\x00")
    data_both_ways(client, server)


def test_tls12_client_and_default_server_gets_the_sentinel(certs: dict[str, CertFiles]
                                                            ) -> None:
    ccfg, scfg = configs(certs["ecdsa-p256"], max_version=TLS12)
    client, server, cspy, sspy = handshake(ccfg, scfg)
    assert client.info is not None and client.info.version == TLS12
    sh: ServerHello = received(cspy, "ServerHello")
    assert sh.random.endswith(b"DOWNGRD\x01")
    assert sent(sspy, "ServerHello").random == sh.random
    data_both_ways(client, server)


@pytest.mark.parametrize("sentinel", [b"DOWNGRD\x01", b"DOWNGRD\x00"], ids=["tls12", "tls11"])
def test_default_client_refuses_the_sentinel(certs: dict[str, CertFiles],
                                             sentinel: bytes) -> None:
    """RFC 8446 §4.1.3: a TLS 1.3 client that gets a TLS 1.2 ServerHello whose random
    ends with a sentinel MUST abort with illegal_parameter."""
    m = Mitm12(*configs(certs["ecdsa-p256"], server={"max_version": TLS12}))
    forged = edit_server_hello(server_hello_raw(m),
                               random=m.server_hello.random[:24] + sentinel)
    expect_alert12(m.client, handshake_record(forged), IllegalParameter, match="RFC 8446")


def test_fallback_scsv_against_default_server(certs: dict[str, CertFiles]) -> None:
    m = Mitm12(*configs(certs["ecdsa-p256"], max_version=TLS12, send_fallback_scsv=True))
    expect_alert12(m.server, m.client_first.data, InappropriateFallback)


def test_fallback_scsv_against_tls12_only_server(certs: dict[str, CertFiles]) -> None:
    client, _server, _, _ = handshake(*configs12(certs["ecdsa-p256"], send_fallback_scsv=True))
    assert client.info is not None and client.info.version == TLS12


# -- after the handshake --------------------------------------------------------------------
def test_client_refuses_renegotiation(certs: dict[str, CertFiles]) -> None:
    """RFC 5746 §4.2 / RFC 5246 §7.4.1.1: a HelloRequest is answered with a
    no_renegotiation warning; the connection goes on."""
    client, server, cspy, _ = handshake(*configs12(certs["ecdsa-p256"]))
    s = session_of(cspy)
    to_client = s.channel(client=False, seq=1)  # the server wrote its Finished at 0
    client.receive_data(to_client.handshake(HelloRequest().serialize()))
    assert run(client) == []
    answer = client.data_to_send()
    assert read_alert12(answer, s, client=True) == (AlertLevel.WARNING,
                                                    A.NO_RENEGOTIATION, True)
    server.receive_data(answer)
    assert run(server) == [WarningAlert(A.NO_RENEGOTIATION)]
    # Still usable both ways.
    client.send_data(b"after")
    _, sev = pump(client, server)
    assert sev == [ApplicationData(b"after")]
    client.receive_data(to_client.record(ContentType.APPLICATION_DATA, b"back"))
    assert run(client) == [ApplicationData(b"back")]


def test_server_refuses_renegotiation(certs: dict[str, CertFiles]) -> None:
    """RFC 5746 §4.4: a ClientHello after the handshake gets a no_renegotiation
    warning; the connection goes on."""
    client, server, cspy, _ = handshake(*configs12(certs["ecdsa-p256"]))
    s = session_of(cspy)
    to_server = s.channel(client=True, seq=1)
    hello: ClientHello = sent(cspy, "ClientHello")
    server.receive_data(to_server.handshake(hello.serialize()))
    assert run(server) == []
    answer = server.data_to_send()
    assert read_alert12(answer, s, client=False) == (AlertLevel.WARNING,
                                                     A.NO_RENEGOTIATION, True)
    client.receive_data(answer)
    assert run(client) == [WarningAlert(A.NO_RENEGOTIATION)]
    server.send_data(b"after")
    cev, _ = pump(client, server)
    assert cev == [ApplicationData(b"after")]
    server.receive_data(to_server.record(ContentType.APPLICATION_DATA, b"back"))
    assert run(server) == [ApplicationData(b"back")]


@pytest.mark.parametrize("description", [A.USER_CANCELED, A.NO_RENEGOTIATION,
                                         A.BAD_CERTIFICATE],
                         ids=lambda d: d.name)
@pytest.mark.parametrize("role", ["client", "server"])
def test_warning_alert_is_an_event(certs: dict[str, CertFiles], role: str,
                                   description: AlertDescription) -> None:
    """RFC 5246 §7.2: a warning-level alert does not end a TLS 1.2 connection."""
    client, server, cspy, _ = handshake(*configs12(certs["ecdsa-p256"]))
    s = session_of(cspy)
    victim = client if role == "client" else server
    channel = s.channel(client=role == "server", seq=1)
    victim.receive_data(channel.record(ContentType.ALERT,
                                       bytes((AlertLevel.WARNING, description))))
    assert run(victim) == [WarningAlert(description)]
    assert victim.data_to_send() == b""
    victim.receive_data(channel.record(ContentType.APPLICATION_DATA, b"still here"))
    assert run(victim) == [ApplicationData(b"still here")]


@pytest.mark.parametrize("role", ["client", "server"])
def test_fatal_alert_ends_the_connection(certs: dict[str, CertFiles], role: str) -> None:
    client, server, cspy, _ = handshake(*configs12(certs["ecdsa-p256"]))
    s = session_of(cspy)
    victim = client if role == "client" else server
    channel = s.channel(client=role == "server", seq=1)
    victim.receive_data(channel.record(ContentType.ALERT,
                                       bytes((AlertLevel.FATAL, A.USER_CANCELED))))
    with pytest.raises(AlertReceived):
        run(victim)
    assert victim.data_to_send() == b""


@pytest.mark.parametrize("role", ["client", "server"])
def test_key_update_is_a_usage_error(certs: dict[str, CertFiles], role: str) -> None:
    client, server, _, _ = handshake(*configs12(certs["ecdsa-p256"]))
    conn = client if role == "client" else server
    with pytest.raises(UsageError):
        conn.key_update()
    assert conn.data_to_send() == b""
    data_both_ways(client, server)
