"""Raw public keys (RFC 7250) in memory, both versions: the certificate_type extensions'
encodings, negotiation on both sides, the Certificate carrying an SPKI, pinning and the
verifier, resumption keeping the type, and malformed input getting the right alert."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from pair import pump
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import CertificateType, ProtocolVersion
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages_rpk import RawPublicKeyCertificate12, parse_certificate13_rpk
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.errors import (
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    TLSError,
    UnsupportedCertificate,
    UsageError,
)
from tlsmith.events import HandshakeComplete, HandshakeInfo, SessionTicketReceived
from tlsmith.x509.rpk import certificate_type_of, raw_public_key, spki_der

X509, RPK = CertificateType.X509, CertificateType.RAW_PUBLIC_KEY
VERSIONS = (ProtocolVersion.TLS13, ProtocolVersion.TLS12)
V_IDS = ("tls13", "tls12")


@pytest.fixture(scope="module")
def server_key() -> CertifiedKey:
    return CertifiedKey.raw(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def client_key() -> CertifiedKey:
    return CertifiedKey.raw(ed25519.Ed25519PrivateKey.generate())


def _pair(version: ProtocolVersion, client: dict[str, Any], server: dict[str, Any]
          ) -> tuple[ClientConfig, ServerConfig]:
    ccfg = ClientConfig(min_version=version, max_version=version, session_tickets=False,
                        **client)
    scfg = ServerConfig(min_version=version, max_version=version, session_ids=False,
                        tickets=0, **server)
    return ccfg, scfg


def _run(ccfg: ClientConfig, scfg: ServerConfig, session: Any = None
         ) -> tuple[TLSConnection, TLSConnection, HandshakeInfo | None,
                    HandshakeInfo | None, list[Any]]:
    c = TLSConnection(ccfg, session=session)
    s = TLSConnection(scfg)
    cev, sev = pump(c, s)
    ci = next((e.info for e in cev if isinstance(e, HandshakeComplete)), None)
    si = next((e.info for e in sev if isinstance(e, HandshakeComplete)), None)
    return c, s, ci, si, cev


# ---------------------------------------------------------------------------- codec
def test_extension_encodings() -> None:
    lst = ext.ServerCertificateTypeList((RPK, X509))
    assert lst.serialize_body() == bytes.fromhex("020200")
    assert ext.ServerCertificateTypeList.parse_body(b"\x02\x02\x00",
                                                    ExtensionContext.CLIENT_HELLO) == lst
    chosen = ext.ClientCertificateTypeChosen(RPK)
    assert chosen.serialize_body() == b"\x02"
    assert ext.registered_class(19, ExtensionContext.CLIENT_HELLO) is \
        ext.ClientCertificateTypeList
    assert ext.registered_class(20, ExtensionContext.ENCRYPTED_EXTENSIONS) is \
        ext.ServerCertificateTypeChosen
    assert ext.registered_class(20, ExtensionContext.SERVER_HELLO) is \
        ext.ServerCertificateTypeChosen
    # An empty list parses; the handshake refuses it (illegal_parameter).
    assert ext.ClientCertificateTypeList.parse_body(b"\x00", None).certificate_types == ()
    with pytest.raises(DecodeError):
        ext.ServerCertificateTypeChosen.parse_body(b"", None)
    with pytest.raises(DecodeError):
        ext.ServerCertificateTypeChosen.parse_body(b"\x02\x00", None)
    with pytest.raises(DecodeError):
        ext.ServerCertificateTypeList.parse_body(b"\x03\x02", None)  # truncated


def test_certificate_messages(server_key: CertifiedKey) -> None:
    spki = server_key.chain[0]
    msg = RawPublicKeyCertificate12(spki)
    raw = msg.serialize()
    assert raw[:1] == b"\x0b" and raw[4:7] == len(spki).to_bytes(3, "big")
    assert RawPublicKeyCertificate12.parse_body(raw[4:]) == msg
    assert RawPublicKeyCertificate12.parse_body(b"\x00\x00\x00").subject_public_key_info == b""
    with pytest.raises(DecodeError):
        RawPublicKeyCertificate12.parse_body(b"\x00\x00\x05ab")
    # TLS 1.3: context, list of entries; an empty cert_data is let through to be judged.
    cert = parse_certificate13_rpk(bytes.fromhex("00" "000005" "000000" "0000"))
    assert cert.certificate_list[0].cert_data == b""


def test_raw_public_key_parsing(server_key: CertifiedKey) -> None:
    spki = server_key.chain[0]
    assert spki == spki_der(server_key.private_key)
    assert isinstance(raw_public_key(spki), ec.EllipticCurvePublicKey)
    with pytest.raises(DecodeError) as info:
        raw_public_key(b"")
    assert info.value.check == "rpk_empty"
    with pytest.raises(DecodeError):
        raw_public_key(b"\x30\x03\x02\x01\x00")
    assert certificate_type_of((spki,)) == RPK
    assert certificate_type_of(()) is None


def test_config_rules(server_key: CertifiedKey) -> None:
    # Accepting raw public keys with verification on needs a pin or a verifier.
    with pytest.raises(UsageError):
        ClientConfig(server_certificate_types=(RPK,))
    ClientConfig(server_certificate_types=(RPK,), trusted_raw_public_keys=frozenset({b"x"}))
    with pytest.raises(UsageError):
        ClientConfig(server_certificate_types=(RPK, RPK), verify_certificates=False)
    with pytest.raises(UsageError):
        ServerConfig(certificates=(server_key,), client_auth="require",
                     client_certificate_types=(RPK,))
    assert server_key.certificate_type == RPK


# ------------------------------------------------------------------------ handshakes
@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_rpk_pinned(version: ProtocolVersion, server_key: CertifiedKey) -> None:
    ccfg, scfg = _pair(version, {
        "server_certificate_types": (RPK,),
        "trusted_raw_public_keys": frozenset({server_key.chain[0]})},
        {"certificates": (server_key,)})
    _c, _s, ci, si, _ = _run(ccfg, scfg)
    assert ci is not None and si is not None
    assert ci.server_certificate_type == RPK
    assert ci.peer_certificates == server_key.chain
    assert ci.certificate_verified  # the pin was checked


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_rpk_unpinned_key_refused(version: ProtocolVersion,
                                         server_key: CertifiedKey) -> None:
    other = CertifiedKey.raw(ec.generate_private_key(ec.SECP256R1()))
    ccfg, scfg = _pair(version, {
        "server_certificate_types": (RPK,),
        "raw_public_key_verifier": lambda spki: spki == other.chain[0]},
        {"certificates": (server_key,)})
    c = TLSConnection(ccfg)
    s = TLSConnection(scfg)
    with pytest.raises(TLSError) as info:
        pump(c, s)
    assert getattr(info.value, "check", None) == "rpk_not_trusted"


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_failing_rpk_verifier_is_internal_error(version: ProtocolVersion,
                                                server_key: CertifiedKey) -> None:
    """The application's verifier raising is our failure: internal_error, its check."""
    def verifier(spki: bytes) -> bool:
        raise OSError("key directory unreachable")

    ccfg, scfg = _pair(version, {"server_certificate_types": (RPK,),
                                 "raw_public_key_verifier": verifier},
                       {"certificates": (server_key,)})
    c = TLSConnection(ccfg)
    s = TLSConnection(scfg)
    with pytest.raises(InternalError) as info:
        pump(c, s)
    assert info.value.check == "rpk_verifier"
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_unverified_rpk_says_not_verified(version: ProtocolVersion,
                                          server_key: CertifiedKey) -> None:
    ccfg, scfg = _pair(version, {"server_certificate_types": (RPK, X509),
                                 "verify_certificates": False},
                       {"certificates": (server_key,)})
    _c, _s, ci, _si, _ = _run(ccfg, scfg)
    assert ci is not None and ci.server_certificate_type == RPK
    assert not ci.certificate_verified


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_without_shared_type(version: ProtocolVersion,
                                    server_key: CertifiedKey) -> None:
    """The client accepts only X.509 (no extension); the server has only a raw key."""
    ccfg, scfg = _pair(version, {"verify_certificates": False},
                       {"certificates": (server_key,)})
    with pytest.raises(HandshakeFailure) as info:
        _run(ccfg, scfg)
    assert info.value.check == "cert_type_no_credential"


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_server_without_listed_type(version: ProtocolVersion, certs: Any) -> None:
    """RFC 7250 §4.2: no credential of a type the client lists -> unsupported_certificate."""
    files = certs["ecdsa-p256"]
    x509 = CertifiedKey.from_files(files.chain_path, files.key_path)
    ccfg, scfg = _pair(version, {"server_certificate_types": (RPK,),
                                 "verify_certificates": False},
                       {"certificates": (x509,)})
    with pytest.raises(UnsupportedCertificate) as info:
        _run(ccfg, scfg)
    assert info.value.check == "cert_type_no_credential"


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_client_type_no_overlap(version: ProtocolVersion, server_key: CertifiedKey,
                                client_key: CertifiedKey) -> None:
    """The server asks only for X.509 client certificates; the client offers only its raw
    key: unsupported_certificate (RFC 7250 §4.2)."""
    ccfg, scfg = _pair(version, {"server_certificate_types": (RPK,), "certificate": client_key,
                                 "verify_certificates": False},
                       {"certificates": (server_key,), "client_auth": "require",
                        "client_trust": _trust_nothing()})
    with pytest.raises(UnsupportedCertificate) as info:
        _run(ccfg, scfg)
    assert info.value.check == "cert_type_no_overlap"


def _trust_nothing() -> Any:
    from tlsmith.x509.devca import DevCA
    from tlsmith.x509.verify import TrustStore

    return TrustStore.from_certificates([DevCA.create("test: trusts nothing").certificate])


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_mutual_rpk(version: ProtocolVersion, server_key: CertifiedKey,
                    client_key: CertifiedKey) -> None:
    seen: list[bytes] = []

    def verifier(spki: bytes) -> bool:
        seen.append(spki)
        return hashlib.sha256(spki).digest() == hashlib.sha256(client_key.chain[0]).digest()

    ccfg, scfg = _pair(version, {
        "server_certificate_types": (RPK,), "certificate": client_key,
        "trusted_raw_public_keys": frozenset({server_key.chain[0]})},
        {"certificates": (server_key,), "client_auth": "require",
         "client_certificate_types": (RPK,), "client_raw_public_key_verifier": verifier})
    _c, _s, ci, si, _ = _run(ccfg, scfg)
    assert ci is not None and si is not None
    assert ci.client_certificate_sent
    assert si.client_certificate_type == RPK and si.client_certificate_verified
    assert seen == [client_key.chain[0]]


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
@pytest.mark.parametrize(("order", "want"), [("x509-first", X509), ("rpk-first", RPK)])
def test_server_prefers_its_credential_order(version: ProtocolVersion, order: str,
                                             want: CertificateType,
                                             server_key: CertifiedKey, certs: Any) -> None:
    """The client accepts both; the server takes its first credential of an accepted
    type (a raw key serves any name; the certificate matches the SNI)."""
    files = certs["ecdsa-p256"]
    x509 = CertifiedKey.from_files(files.chain_path, files.key_path)
    creds = (x509, server_key) if order == "x509-first" else (server_key, x509)
    ccfg, scfg = _pair(version, {"server_certificate_types": (RPK, X509),
                                 "server_name": "localhost", "verify_certificates": False},
                       {"certificates": creds})
    _c, _s, ci, _si, _ = _run(ccfg, scfg)
    assert ci is not None and ci.server_certificate_type == want


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
def test_resumption_keeps_type(version: ProtocolVersion, server_key: CertifiedKey) -> None:
    ccfg, scfg = _pair(version, {
        "server_certificate_types": (RPK,),
        "trusted_raw_public_keys": frozenset({server_key.chain[0]})},
        {"certificates": (server_key,)})
    ccfg = replace(ccfg, session_tickets=True)
    scfg = replace(scfg, tickets=2)
    _c, _s, _ci, _si, cev = _run(ccfg, scfg)
    sessions = [e.session for e in cev if isinstance(e, SessionTicketReceived)]
    assert sessions
    _c2, _s2, ci2, _si2, _ = _run(ccfg, replace(scfg, session_store=scfg.session_store),
                                  session=sessions[-1])
    assert ci2 is not None and ci2.resumed
    assert ci2.server_certificate_type == RPK and ci2.certificate_verified


# ------------------------------------------------------------------ malformed input
def _client_hello_with(version: ProtocolVersion, extra: ext.Extension,
                       server_key: CertifiedKey) -> TLSError:
    from tlsmith.handshake import client as client_mod

    ccfg, scfg = _pair(version, {"verify_certificates": False},
                       {"certificates": (server_key,), "client_auth": "none"})
    original = client_mod._build_hello_parts

    def patched(io: Any) -> Any:
        p = original(io)
        return replace(p, tail=(*p.tail, extra))

    client_mod._build_hello_parts = patched  # type: ignore[assignment]
    try:
        c = TLSConnection(ccfg)
        s = TLSConnection(scfg)
        with pytest.raises(TLSError) as info:
            pump(c, s)
    finally:
        client_mod._build_hello_parts = original  # type: ignore[assignment]
    return info.value


@pytest.mark.parametrize("version", VERSIONS, ids=V_IDS)
@pytest.mark.parametrize("cls", [ext.ServerCertificateTypeList, ext.ClientCertificateTypeList])
@pytest.mark.parametrize("body", [(), (X509,)], ids=["empty", "x509-only"])
def test_server_refuses_invalid_lists(version: ProtocolVersion, cls: Any,
                                      body: tuple[Any, ...], server_key: CertifiedKey) -> None:
    """RFC 7250 §4.1: an empty list, or X.509 alone (the client omits the extension
    then), is illegal_parameter; the client hears that alert."""
    err = _client_hello_with(version, cls(body), server_key)
    assert isinstance(err, IllegalParameter) and err.check == "cert_type_list_invalid"


def test_server_ignores_unknown_types() -> None:
    from tlsmith.handshake import certtype

    unknown = CertificateType(5)
    found = ext.ServerCertificateTypeList((unknown, RPK))
    assert certtype.offered_types(found) == (RPK,)
    assert certtype.offered_types(ext.ServerCertificateTypeList((unknown,))) == ()
    assert certtype.offered_types(None) is None


@pytest.mark.parametrize(("answer", "follows", "check"), [
    ((ext.ServerCertificateTypeChosen(X509),), False, "cert_type_not_offered"),
    ((), True, "cert_type_not_offered"),  # X.509 by default, which we refused
    ((ext.ClientCertificateTypeChosen(X509),), False, "cert_type_not_offered"),
], ids=["server-picked-x509", "server-default-x509", "client-type-not-offered"])
def test_client_checks_the_answer(answer: tuple[Any, ...], follows: bool, check: str,
                                  client_key: CertifiedKey) -> None:
    from tlsmith.handshake import certtype

    cfg = ClientConfig(server_certificate_types=(RPK,), verify_certificates=False,
                       certificate=client_key)
    with pytest.raises(UnsupportedCertificate) as info:
        certtype.client_read_answer(cfg, answer, certificate_follows=follows)
    assert info.value.check == check
    # Resuming (no Certificate follows), the default is fine.
    assert certtype.client_read_answer(cfg, (), certificate_follows=False).server == X509


def test_client_credential_for_the_type(client_key: CertifiedKey, certs: Any) -> None:
    from tlsmith.handshake import certtype

    files = certs["ecdsa-p256"]
    x509 = CertifiedKey.from_files(files.chain_path, files.key_path)
    cfg = ClientConfig(verify_certificates=False, certificate=x509, raw_public_key=client_key)
    assert certtype.client_offered_types(cfg) == (X509, RPK)
    creds = cfg.client_credentials
    assert certtype.of_client_type(creds, certtype.CertTypes(RPK, RPK, (X509, RPK))) \
        == (client_key,)
    assert certtype.of_client_type(creds, certtype.CertTypes(RPK, X509, (X509, RPK))) \
        == (x509,)
    assert certtype.of_client_type(creds, None) == (x509,)  # post-handshake: X.509 only
    with pytest.raises(UnsupportedCertificate) as info:  # default X.509, which we refused
        certtype.of_client_type(creds, certtype.CertTypes(X509, X509, (RPK,)))
    assert info.value.check == "client_cert_type_default"
    with pytest.raises(UsageError):
        ClientConfig(verify_certificates=False, raw_public_key=x509)
