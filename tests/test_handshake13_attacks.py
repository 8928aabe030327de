"""Malformed, tampered and hostile TLS 1.3 handshake input gets the RFC's answer.

A key-aware man in the middle (tests/mitm.py) changes, substitutes or forges messages
between a real tlsmith client and server. Where a forgery must get past earlier checks
to reach the one under test, the test holds the server's private key and every traffic
secret, so it re-signs CertificateVerify and recomputes Finished: a client that accepts
the forgery completes the handshake, and the test fails.

Each attack checks: the typed error (its ``.alert`` is the RFC's alert), that alert on
the wire as the victim's last record, and a dead connection afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import CertFiles
from mitm import (
    CCS,
    Mitm,
    ServerFirstFlight,
    alert,
    assert_dead,
    body_of,
    drop_extension,
    edit_client_hello,
    edit_server_hello,
    expect_alert,
    expect_alert_received,
    forged_certificate_verify,
    forged_finished,
    handshake_message,
    handshake_record,
    plaintext_record,
    read_alert,
    replace_extension,
    run,
    server_first_flight,
    write_secrets,
)
from pair import SecretSpy
from pair import configs as _configs
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    Certificate,
    CertificateEntry,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    NewSessionTicket,
    ServerHello,
)
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto.kx import deterministic_random, generate_key_share
from tlsmith.errors import (
    AlertReceived,
    BadCertificate,
    BadRecordMac,
    CertificateExpired,
    CertificateUnknown,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolError,
    ProtocolVersionError,
    RecordOverflow,
    TLSError,
    UnexpectedMessage,
    UnknownCA,
    UnsupportedExtension,
)
from tlsmith.events import HandshakeComplete
from tlsmith.x509.devca import DevCA
from tlsmith.x509.keys import load_private_key
from tlsmith.x509.verify import TrustStore

H = HandshakeType
A = AlertDescription


def configs(cert: CertFiles, **kw: Any) -> tuple[ClientConfig, ServerConfig]:
    """These attacks target the TLS 1.3 handshake: both sides speak TLS 1.3 only
    (TLS 1.2 negotiation has its own tests in test_handshake12_*)."""
    server_kw = {"min_version": ProtocolVersion.TLS13, **kw.pop("server", {})}
    return _configs(cert, min_version=ProtocolVersion.TLS13, server=server_kw, **kw)


# -- set-up --------------------------------------------------------------------------------
def client_victim(cert: CertFiles, **client_kw: Any) -> tuple[Mitm, ServerFirstFlight]:
    """A client that sent its ClientHello, and the genuine server flight (not delivered).
    ``client_kw`` overrides any ClientConfig field (server_name and trust included)."""
    client, server = configs(cert)
    m = Mitm(replace(client, **client_kw), server)
    return m, server_first_flight(m)


def deliver_server_hello(m: Mitm, f: ServerFirstFlight) -> None:
    assert m.to_client(handshake_record(f.server_hello)) == []
    assert m.client.state_name == "ExpectEncryptedExtensions"


def server_hello(f: ServerFirstFlight) -> ServerHello:
    return ServerHello.parse_body(body_of(f.server_hello))


def client_hello(m: Mitm) -> ClientHello:
    return ClientHello.parse_body(body_of(m.client_hello))


def forge_rest(m: Mitm, f: ServerFirstFlight, cert: CertFiles, ee: bytes,
               certificate: bytes, *, scheme: SignatureScheme | None = None,
               cv: bytes | None = None) -> tuple[bytes, bytes]:
    """A CertificateVerify (unless given) and Finished that fit a changed EE/Certificate,
    made with the server's key and handshake secret."""
    suite = f.suite
    if cv is None:
        scheme = scheme or CertificateVerify.parse_body(
            body_of(f.get(H.CERTIFICATE_VERIFY))).algorithm
        cv = forged_certificate_verify(suite, scheme, load_private_key(cert.key_path),
                                       m.client_hello, f.server_hello, ee, certificate)
    fin = forged_finished(suite, m.secret("server_handshake_traffic_secret"),
                          m.client_hello, f.server_hello, ee, certificate, cv)
    return cv, fin


def deliver_forged_flight(m: Mitm, f: ServerFirstFlight, cert: CertFiles, *,
                          ee: bytes | None = None, certificate: bytes | None = None,
                          scheme: SignatureScheme | None = None, cv: bytes | None = None
                          ) -> bytes:
    """ServerHello, then EE, Certificate, CertificateVerify and Finished with the given
    substitutions, CV and Finished recomputed to match. Returns the protected bytes."""
    ee = ee or f.get(H.ENCRYPTED_EXTENSIONS)
    certificate = certificate or f.get(H.CERTIFICATE)
    cv, fin = forge_rest(m, f, cert, ee, certificate, scheme=scheme, cv=cv)
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    return channel.handshake(ee, certificate, cv, fin)


@pytest.fixture
def ecdsa(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


# -- the alert table -----------------------------------------------------------------------
def test_error_classes_carry_the_rfc_alerts() -> None:
    """RFC 8446 §6: each error class sends the alert it is named after."""
    table = {
        UnexpectedMessage: 10, BadRecordMac: 20, RecordOverflow: 22, HandshakeFailure: 40,
        BadCertificate: 42, CertificateExpired: 45, CertificateUnknown: 46,
        IllegalParameter: 47, UnknownCA: 48, DecodeError: 50, DecryptError: 51,
        ProtocolVersionError: 70, InternalError: 80, MissingExtension: 109,
        UnsupportedExtension: 110, NoApplicationProtocol: 120,
    }
    for cls, value in table.items():
        assert int(cls.alert) == value, cls.__name__


# -- client: the protected server flight ---------------------------------------------------
@pytest.mark.parametrize("where", ["first", "middle", "tag", "header_version"])
@pytest.mark.parametrize("index", [0, 1, 2, 3], ids=["EE", "Certificate", "CV", "Finished"])
def test_client_corrupted_ciphertext(ecdsa: CertFiles, index: int, where: str) -> None:
    """RFC 8446 §5.2: a record that fails to deprotect is bad_record_mac (the header is
    the additional data, so it is covered too)."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    if index:
        m.to_client(channel.handshake(*f.messages[:index]))
    record = bytearray(channel.handshake(f.messages[index]))
    pos = {"first": 5, "middle": 5 + (len(record) - 5) // 2, "tag": len(record) - 1,
           "header_version": 2}[where]
    record[pos] ^= 0x01
    expect_alert(m.client, m.cspy, bytes(record), BadRecordMac, protected=True)


def test_client_corrupted_genuine_flight(ecdsa: CertFiles) -> None:
    """The same, on the flight exactly as the server wrote it: flip one byte in each
    protected record in turn."""
    _, f0 = client_victim(ecdsa)
    count = len(_protected_records(f0.data))
    assert count >= 1
    for i in range(count):
        m, f = client_victim(ecdsa)
        records = _protected_records(f.data)
        deliver_server_hello(m, f)
        if i:
            m.to_client(b"".join(records[:i]))
        bad = bytearray(records[i])
        bad[-5] ^= 0x80
        expect_alert(m.client, m.cspy, bytes(bad), BadRecordMac)


def _protected_records(data: bytes) -> list[bytes]:
    from mitm import split_records

    return [r.to_bytes() for r in split_records(data)
            if r.content_type == ContentType.APPLICATION_DATA]


def test_client_oversized_record(ecdsa: CertFiles) -> None:
    """RFC 8446 §5.2: TLSCiphertext.length > 2^14 + 256 is record_overflow, known from the
    header alone."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    header = plaintext_record(ContentType.APPLICATION_DATA, b"")[:3]
    data = header + (2**14 + 257).to_bytes(2, "big") + bytes(64)
    expect_alert(m.client, m.cspy, data, RecordOverflow)


def test_client_largest_legal_ciphertext_is_not_overflow(ecdsa: CertFiles) -> None:
    """Boundary: exactly 2^14 + 256 bytes is allowed in size (this garbage fails the MAC)."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    data = plaintext_record(ContentType.APPLICATION_DATA, bytes(2**14 + 256))
    expect_alert(m.client, m.cspy, data, BadRecordMac)


def test_client_oversized_inner_plaintext(ecdsa: CertFiles) -> None:
    """RFC 8446 §5.4: a TLSInnerPlaintext over 2^14 + 1 bytes is record_overflow even when
    it authenticates."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    inner = bytes(2**14) + bytes((ContentType.HANDSHAKE,)) + b"\x00"
    expect_alert(m.client, m.cspy, channel.sealed_inner(inner), RecordOverflow)


@pytest.mark.parametrize("role", ["client", "server"])
def test_oversized_plaintext_record(ecdsa: CertFiles, role: str) -> None:
    """RFC 8446 §5.1: TLSPlaintext.length MUST NOT exceed 2^14."""
    m = Mitm(*configs(ecdsa))
    victim, spy = (m.client, m.cspy) if role == "client" else (m.server, m.sspy)
    data = plaintext_record(ContentType.HANDSHAKE, bytes(2**14 + 1))
    expect_alert(victim, spy, data, RecordOverflow)


def test_client_server_finished_wrong_verify_data(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.4.4: a Finished that does not verify is decrypt_error."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    fin = bytearray(f.get(H.FINISHED))
    fin[10] ^= 0x01
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    data = channel.handshake(*f.messages[:3], bytes(fin))
    expect_alert(m.client, m.cspy, data, DecryptError, check="finished_mismatch")


@pytest.mark.parametrize("delta", [-1, 1])
def test_client_server_finished_wrong_length(ecdsa: CertFiles, delta: int) -> None:
    """A Finished whose verify_data is not Hash.length bytes cannot be decoded
    (RFC 8446 §4.4.4 ``opaque verify_data[Hash.length]``; §6.2 decode_error: "the length
    of the message was incorrect"). The Finished codec leaves this check to the
    handshake ("the handshake checks the length it expects")."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    verify_data = Finished.parse_body(body_of(f.get(H.FINISHED))).verify_data
    wrong = verify_data[:-1] if delta < 0 else verify_data + b"\x00"
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    data = channel.handshake(*f.messages[:3], Finished(wrong).serialize())
    expect_alert(m.client, m.cspy, data, DecodeError)


@pytest.mark.parametrize("key_type", ["rsa-2048", "ecdsa-p256", "ed25519"])
def test_client_certificate_verify_bad_signature(certs: dict[str, CertFiles],
                                                 key_type: str) -> None:
    """RFC 8446 §4.4.3: a signature that does not verify is decrypt_error."""
    m, f = client_victim(certs[key_type])
    deliver_server_hello(m, f)
    cv = CertificateVerify.parse_body(body_of(f.get(H.CERTIFICATE_VERIFY)))
    sig = bytearray(cv.signature)
    sig[-1] ^= 0x01
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    data = channel.handshake(*f.messages[:2], CertificateVerify(cv.algorithm,
                                                                bytes(sig)).serialize())
    expect_alert(m.client, m.cspy, data, DecryptError, check="signature_invalid")


def test_client_certificate_verify_with_the_client_context(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.4.3: the context string binds the signature to the server role; the
    right key signing the client's context string does not verify."""
    m, f = client_victim(ecdsa)
    ee, cert = f.get(H.ENCRYPTED_EXTENSIONS), f.get(H.CERTIFICATE)
    cv = forged_certificate_verify(f.suite, SignatureScheme.ECDSA_SECP256R1_SHA256,
                                   load_private_key(ecdsa.key_path), m.client_hello,
                                   f.server_hello, ee, cert, server=False)
    data = deliver_forged_flight(m, f, ecdsa, cv=cv)
    expect_alert(m.client, m.cspy, data, DecryptError)


def test_client_certificate_verify_over_another_transcript(ecdsa: CertFiles) -> None:
    m, f = client_victim(ecdsa)
    cert = f.get(H.CERTIFICATE)
    cv = forged_certificate_verify(f.suite, SignatureScheme.ECDSA_SECP256R1_SHA256,
                                   load_private_key(ecdsa.key_path), m.client_hello,
                                   f.server_hello, cert)  # EE left out
    data = deliver_forged_flight(m, f, ecdsa, cv=cv)
    expect_alert(m.client, m.cspy, data, DecryptError)


@pytest.mark.parametrize("scheme", [SignatureScheme.RSA_PSS_RSAE_SHA512,
                                    SignatureScheme.ECDSA_SECP384R1_SHA384,
                                    SignatureScheme(0x0A0A)], ids=lambda s: s.name)
def test_client_certificate_verify_scheme_not_offered(ecdsa: CertFiles,
                                                      scheme: SignatureScheme) -> None:
    """RFC 8446 §4.4.3: the scheme must be one the client offered: illegal_parameter."""
    m, f = client_victim(ecdsa, signature_schemes=(SignatureScheme.ECDSA_SECP256R1_SHA256,
                                                   SignatureScheme.RSA_PSS_RSAE_SHA256))
    deliver_server_hello(m, f)
    cv = CertificateVerify.parse_body(body_of(f.get(H.CERTIFICATE_VERIFY)))
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    data = channel.handshake(*f.messages[:2], CertificateVerify(scheme,
                                                                cv.signature).serialize())
    expect_alert(m.client, m.cspy, data, IllegalParameter, check="cv_scheme_not_offered")


def test_client_certificate_verify_rsa_pkcs1(certs: dict[str, CertFiles]) -> None:
    """RFC 8446 §4.2.3/§4.4.3: RSA signatures MUST use RSASSA-PSS in TLS 1.3, even when
    rsa_pkcs1_* is offered (for certificates). A correct PKCS#1 v1.5 signature by the
    server's key is still refused."""
    cert = certs["rsa-2048"]
    m, f = client_victim(cert)
    offered = ext.find_extension(client_hello(m).extensions, ext.SignatureAlgorithms)
    assert offered is not None
    assert SignatureScheme.RSA_PKCS1_SHA256 in offered.supported_signature_algorithms
    data = deliver_forged_flight(m, f, cert, scheme=SignatureScheme.RSA_PKCS1_SHA256)
    expect_alert(m.client, m.cspy, data, IllegalParameter)


def test_client_certificate_verify_ecdsa_curve_mismatch(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.3: in TLS 1.3 an ECDSA scheme names the curve; a P-256 key signing
    as ecdsa_secp384r1_sha384 is refused."""
    m, f = client_victim(ecdsa)
    data = deliver_forged_flight(m, f, ecdsa, scheme=SignatureScheme.ECDSA_SECP384R1_SHA384)
    expect_alert(m.client, m.cspy, data, IllegalParameter)


def test_client_forged_flight_control(ecdsa: CertFiles) -> None:
    """Control: the forging machinery, unchanged, gives a flight the client accepts."""
    m, f = client_victim(ecdsa)
    data = deliver_forged_flight(m, f, ecdsa)
    events = m.to_client(data)
    assert isinstance(events[0], HandshakeComplete)


def test_client_empty_certificate(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.4.2.4: an empty server Certificate is decode_error."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    data = channel.handshake(f.messages[0], Certificate(b"", ()).serialize())
    expect_alert(m.client, m.cspy, data, DecodeError)


def test_client_certificate_not_der(ecdsa: CertFiles) -> None:
    """RFC 8446 §6.2: a corrupt certificate is bad_certificate."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    bad = Certificate(b"", (CertificateEntry(b"\x30\x03\x02\x01\x00"),)).serialize()
    expect_alert(m.client, m.cspy, channel.handshake(f.messages[0], bad), BadCertificate)


def test_client_certificate_with_request_context(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.4.2: for server authentication the context SHALL be zero length."""
    m, f = client_victim(ecdsa)
    cert = Certificate.parse_body(body_of(f.get(H.CERTIFICATE)))
    changed = replace(cert, certificate_request_context=b"\x01").serialize()
    data = deliver_forged_flight(m, f, ecdsa, certificate=changed)
    expect_alert(m.client, m.cspy, data, IllegalParameter)


def _certificate_with_entry_extension(f: ServerFirstFlight, extension: ext.Extension
                                      ) -> bytes:
    cert = Certificate.parse_body(body_of(f.get(H.CERTIFICATE)))
    leaf, *rest = cert.certificate_list
    return replace(cert, certificate_list=(replace(leaf, extensions=(extension,)),
                                           *rest)).serialize()


def test_client_certificate_entry_with_unsolicited_extension(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2 / §4.4.2: extensions in the server's Certificate MUST correspond to
    ones from the ClientHello; a response to one never offered (here an OCSP status,
    status_request was not sent) MUST abort with unsupported_extension."""
    m, f = client_victim(ecdsa, request_ocsp=False)
    assert ext.find_extension_type(client_hello(m).extensions,
                                   ExtensionType.STATUS_REQUEST) is None
    status = ext.UnknownExtension(ExtensionType.STATUS_REQUEST,
                                  b"\x01" + (2).to_bytes(3, "big") + b"\x30\x00")
    certificate = _certificate_with_entry_extension(f, status)
    data = deliver_forged_flight(m, f, ecdsa, certificate=certificate)
    expect_alert(m.client, m.cspy, data, UnsupportedExtension)


def test_client_certificate_entry_with_extension_not_allowed_there(ecdsa: CertFiles
                                                                   ) -> None:
    """RFC 8446 §4.2: a recognised extension in a message it is not specified for (here
    key_share in a CertificateEntry) MUST abort with illegal_parameter."""
    m, f = client_victim(ecdsa)
    key_share = ext.UnknownExtension(ExtensionType.KEY_SHARE, b"\x00\x1d\x00\x01\x01")
    certificate = _certificate_with_entry_extension(f, key_share)
    data = deliver_forged_flight(m, f, ecdsa, certificate=certificate)
    expect_alert(m.client, m.cspy, data, IllegalParameter)


def test_client_untrusted_certificate(ecdsa: CertFiles) -> None:
    """A chain to a CA the client does not trust: unknown_ca (RFC 8446 §6.2)."""
    other = DevCA.create("another tlsmith test CA")
    m, f = client_victim(ecdsa, trust=TrustStore.from_pem_bytes(other.ca_pem))
    exc = expect_alert(m.client, m.cspy, f.data, UnknownCA, protected=True)
    assert exc.alert == A.UNKNOWN_CA == UnknownCA.alert


def test_client_wrong_hostname(ecdsa: CertFiles) -> None:
    """A valid chain for other names: certificate_unknown."""
    m, f = client_victim(ecdsa, server_name="wrong.example")
    exc = expect_alert(m.client, m.cspy, f.data, CertificateUnknown, protected=True)
    assert exc.alert == A.CERTIFICATE_UNKNOWN == CertificateUnknown.alert


def test_client_expired_certificate(devca: DevCA, tmp_path: Any) -> None:
    """An expired leaf: certificate_expired (RFC 8446 §6.2)."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    issued = devca.issue(not_before=now - timedelta(days=30),
                         not_after=now - timedelta(days=1)).write(tmp_path, "expired")
    assert issued.chain_path and issued.key_path and devca.ca_path
    client = ClientConfig(server_name="localhost",
                          trust=TrustStore.from_pem_file(devca.ca_path))
    server = ServerConfig(certificates=(CertifiedKey.from_files(issued.chain_path,
                                                                issued.key_path),))
    m = Mitm(client, server)
    f = server_first_flight(m)
    expect_alert(m.client, m.cspy, f.data, CertificateExpired)


# -- client: ServerHello tampering (plaintext) -------------------------------------------
def sh_attack(m: Mitm, f: ServerFirstFlight, error: type[ProtocolError], **changes: Any
              ) -> ProtocolError:
    raw = edit_server_hello(f.server_hello, **changes)
    return expect_alert(m.client, m.cspy, handshake_record(raw), error, protected=False)


@pytest.mark.parametrize("sentinel", [b"DOWNGRD\x01", b"DOWNGRD\x00"], ids=["tls12", "tls11"])
def test_client_downgrade_sentinel(ecdsa: CertFiles, sentinel: bytes) -> None:
    """RFC 8446 §4.1.3: a TLS 1.2-or-below ServerHello whose random ends in a downgrade
    sentinel MUST be answered with illegal_parameter."""
    m, f = client_victim(ecdsa)
    sh = server_hello(f)
    exc = sh_attack(m, f, IllegalParameter, random=sh.random[:24] + sentinel,
                    extensions=drop_extension(sh.extensions, ExtensionType.SUPPORTED_VERSIONS))
    assert exc.check == "downgrade_sentinel"


def test_client_tls12_server_hello_without_sentinel(ecdsa: CertFiles) -> None:
    """A TLS 1.2 ServerHello to a TLS 1.3-only client: protocol_version."""
    m, f = client_victim(ecdsa)
    sh_attack(m, f, ProtocolVersionError, extensions=(), has_extensions_block=False)


@pytest.mark.parametrize("version", [0x0303, 0x0302, 0x7F1C, 0x0305, 0x0A0A],
                         ids=lambda v: f"{v:#06x}")
def test_client_selected_version_not_offered(ecdsa: CertFiles, version: int) -> None:
    """RFC 8446 §4.2.1: a selected_version not offered, or below TLS 1.3, is
    illegal_parameter."""
    m, f = client_victim(ecdsa)
    sh = server_hello(f)
    exts = replace_extension(sh.extensions,
                             ext.SupportedVersionsServerHello(ProtocolVersion(version)))
    exc = sh_attack(m, f, IllegalParameter, extensions=exts)
    assert exc.check == "sh_version_not_offered"


@pytest.mark.parametrize("echo", [b"", bytes(32), b"\x01"], ids=["empty", "zeros", "short"])
def test_client_session_id_echo_mismatch(ecdsa: CertFiles, echo: bytes) -> None:
    """RFC 8446 §4.1.3: legacy_session_id_echo must match, else illegal_parameter."""
    m, f = client_victim(ecdsa)
    exc = sh_attack(m, f, IllegalParameter, legacy_session_id_echo=echo)
    assert exc.check == "session_id_echo"


@pytest.mark.parametrize("suite", [CipherSuite.TLS_AES_256_GCM_SHA384,
                                   CipherSuite.TLS_AES_128_CCM_SHA256,
                                   CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,
                                   CipherSuite(0x1A1A)], ids=lambda s: s.name)
def test_client_cipher_suite_not_offered(ecdsa: CertFiles, suite: CipherSuite) -> None:
    """RFC 8446 §4.1.3: a cipher suite not offered is illegal_parameter."""
    m, f = client_victim(ecdsa, cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,))
    sh_attack(m, f, IllegalParameter, cipher_suite=suite)


def test_client_compression_method_not_null(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.3: legacy_compression_method MUST be 0."""
    m, f = client_victim(ecdsa)
    sh_attack(m, f, IllegalParameter, legacy_compression_method=1)


@pytest.mark.parametrize("group", [NamedGroup.SECP256R1, NamedGroup.X448,
                                   NamedGroup.FFDHE2048])
def test_client_key_share_for_group_without_our_share(ecdsa: CertFiles,
                                                      group: NamedGroup) -> None:
    """RFC 8446 §4.2.8: the server's share must be for a group the client sent a share
    for, else illegal_parameter."""
    m, f = client_victim(ecdsa)
    share = generate_key_share(group, deterministic_random(b"mitm")).public_bytes
    sh = server_hello(f)
    exts = replace_extension(sh.extensions,
                             ext.KeyShareServerHello(ext.KeyShareEntry(group, share)))
    exc = sh_attack(m, f, IllegalParameter, extensions=exts)
    assert exc.check == "key_share_group_not_offered"


@pytest.mark.parametrize("value", [bytes(31), bytes(33), bytes(32), b"\x01" + bytes(31)],
                         ids=["short", "long", "zero", "low_order"])
def test_client_bad_x25519_share(ecdsa: CertFiles, value: bytes) -> None:
    """RFC 8446 §4.2.8.2 / §7.4.2: a malformed X25519 share, or one giving an all-zero
    secret, is illegal_parameter."""
    m, f = client_victim(ecdsa)
    sh = server_hello(f)
    exts = replace_extension(
        sh.extensions, ext.KeyShareServerHello(ext.KeyShareEntry(NamedGroup.X25519, value)))
    sh_attack(m, f, IllegalParameter, extensions=exts)


@pytest.mark.parametrize(("extension", "error"), [
    (ext.Cookie(b"c"), IllegalParameter),  # allowed in HRR only
    (ext.ApplicationLayerProtocolNegotiation((b"h2",)), IllegalParameter),  # EE, not SH
    (ext.UnknownExtension(ExtensionType(0x1234), b""), UnsupportedExtension),
    (ext.UnknownExtension(ExtensionType.EARLY_DATA, b""), IllegalParameter),
], ids=["cookie", "alpn", "unknown", "early_data"])
def test_client_server_hello_extension_not_allowed(ecdsa: CertFiles, extension: Any,
                                                   error: type[ProtocolError]) -> None:
    """RFC 8446 §4.2: an extension not defined for ServerHello is illegal_parameter; one
    the client never offered is unsupported_extension."""
    m, f = client_victim(ecdsa)
    sh = server_hello(f)
    sh_attack(m, f, error, extensions=(*sh.extensions, extension))


def test_client_truncated_server_hello(ecdsa: CertFiles) -> None:
    """Every truncation of the ServerHello body (re-framed so the lengths agree) is
    decode_error -- except the cut right after legacy_compression_method, which is a
    well-formed TLS 1.2 ServerHello without extensions: protocol_version."""
    _, f = client_victim(ecdsa)
    body = body_of(f.server_hello)
    sid_len = body[34]
    no_extensions = 2 + 32 + 1 + sid_len + 2 + 1
    for cut in range(len(body)):
        m = Mitm(*configs(ecdsa))
        error = ProtocolVersionError if cut == no_extensions else DecodeError
        raw = handshake_message(H.SERVER_HELLO, body[:cut])
        expect_alert(m.client, m.cspy, handshake_record(raw), error)


@pytest.mark.parametrize("garbage", [b"\xff" * 8, b"\x03\x03" + bytes(40), b"\x00",
                                     bytes(200)], ids=["ff", "zeros40", "one", "zeros200"])
def test_client_garbage_server_hello(ecdsa: CertFiles, garbage: bytes) -> None:
    m = Mitm(*configs(ecdsa))
    raw = handshake_message(H.SERVER_HELLO, garbage)
    expect_alert(m.client, m.cspy, handshake_record(raw), DecodeError)


def test_client_server_hello_trailing_bytes(ecdsa: CertFiles) -> None:
    m, f = client_victim(ecdsa)
    raw = handshake_message(H.SERVER_HELLO, body_of(f.server_hello) + b"\x00")
    expect_alert(m.client, m.cspy, handshake_record(raw), DecodeError)


# -- client: HelloRetryRequest -------------------------------------------------------------
def hello_retry_request(m: Mitm, *extensions: ext.Extension,
                        suite: CipherSuite = CipherSuite.TLS_AES_128_GCM_SHA256) -> bytes:
    return ServerHello(
        legacy_version=ProtocolVersion.TLS12,
        random=HELLO_RETRY_REQUEST_RANDOM,
        legacy_session_id_echo=client_hello(m).legacy_session_id,
        cipher_suite=suite,
        legacy_compression_method=0,
        extensions=(ext.SupportedVersionsServerHello(ProtocolVersion.TLS13), *extensions),
    ).serialize()


def test_client_hrr_for_group_already_shared(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.4/§4.2.8: an HRR asking for a group the client already sent a share
    for is illegal_parameter."""
    m = Mitm(*configs(ecdsa))
    hrr = hello_retry_request(m, ext.KeyShareHelloRetryRequest(NamedGroup.X25519))
    expect_alert(m.client, m.cspy, handshake_record(hrr), IllegalParameter)


def test_client_hrr_for_group_not_supported(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.8: the selected_group must be in the client's supported_groups."""
    m = Mitm(*configs(ecdsa, groups=(NamedGroup.X25519, NamedGroup.SECP256R1)))
    hrr = hello_retry_request(m, ext.KeyShareHelloRetryRequest(NamedGroup.SECP384R1))
    expect_alert(m.client, m.cspy, handshake_record(hrr), IllegalParameter)


def test_client_hrr_without_changes(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.4: an HRR that would not change the ClientHello is
    illegal_parameter."""
    m = Mitm(*configs(ecdsa))
    expect_alert(m.client, m.cspy, handshake_record(hello_retry_request(m)), IllegalParameter)


def test_client_hrr_with_unknown_extension(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.4/§4.2: an HRR extension the client never offered is
    unsupported_extension."""
    m = Mitm(*configs(ecdsa))
    hrr = hello_retry_request(m, ext.KeyShareHelloRetryRequest(NamedGroup.SECP384R1),
                              ext.UnknownExtension(ExtensionType(0x4242), b""))
    expect_alert(m.client, m.cspy, handshake_record(hrr), UnsupportedExtension)


def test_client_hrr_cookie_only_is_answered(ecdsa: CertFiles) -> None:
    """Control: a cookie alone is a change; the client answers with a second hello that
    echoes it and keeps its share."""
    m = Mitm(*configs(ecdsa))
    assert m.to_client(handshake_record(hello_retry_request(m, ext.Cookie(b"cookie")))) == []
    hello2 = ClientHello.parse_body(body_of(m.from_client().plaintext_messages[0]))
    cookie = ext.find_extension(hello2.extensions, ext.Cookie)
    assert cookie is not None and cookie.cookie == b"cookie"
    assert m.client.state_name == "ExpectServerHello"


def _after_real_hrr(cert: CertFiles) -> tuple[Mitm, bytes]:
    """A client that received the server's genuine HRR (server wants P-384) and sent its
    second ClientHello; returns the HRR."""
    m = Mitm(*configs(cert, server={"groups": (NamedGroup.SECP384R1,)}))
    m.to_server(m.client_first.data)
    hrr = m.from_server().plaintext_messages[0]
    assert ServerHello.parse_body(body_of(hrr)).is_hello_retry_request
    assert m.to_client(handshake_record(hrr)) == []
    return m, hrr


def test_client_second_hrr(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.4: a second HelloRetryRequest is unexpected_message."""
    m, hrr = _after_real_hrr(ecdsa)
    second = edit_server_hello(hrr, extensions=(
        ext.SupportedVersionsServerHello(ProtocolVersion.TLS13),
        ext.KeyShareHelloRetryRequest(NamedGroup.SECP256R1)))
    expect_alert(m.client, m.cspy, handshake_record(second), UnexpectedMessage)


def test_client_server_hello_group_differs_from_hrr(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.8: after an HRR the ServerHello's group must be the HRR's."""
    m, _ = _after_real_hrr(ecdsa)
    m.to_server(m.from_client().data)
    flight = m.from_server()
    sh = ServerHello.parse_body(body_of(flight.plaintext_messages[0]))
    share = generate_key_share(NamedGroup.X25519, deterministic_random(b"x")).public_bytes
    exts = replace_extension(sh.extensions, ext.KeyShareServerHello(
        ext.KeyShareEntry(NamedGroup.X25519, share)))
    raw = replace(sh, extensions=exts).serialize()
    expect_alert(m.client, m.cspy, handshake_record(raw), IllegalParameter)


def test_client_server_hello_suite_differs_from_hrr(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.4: the ServerHello's cipher suite must be the HRR's."""
    m, _ = _after_real_hrr(ecdsa)
    m.to_server(m.from_client().data)
    sh_raw = m.from_server().plaintext_messages[0]
    raw = edit_server_hello(sh_raw, cipher_suite=CipherSuite.TLS_AES_256_GCM_SHA384)
    expect_alert(m.client, m.cspy, handshake_record(raw), IllegalParameter,
                 check="hrr_suite_changed")


# -- client: EncryptedExtensions ---------------------------------------------------------
@pytest.mark.parametrize(("extension", "error"), [
    (ext.ApplicationLayerProtocolNegotiation((b"h2",)), UnsupportedExtension),
    (ext.EarlyDataIndication(None), UnsupportedExtension),
    (ext.UnknownExtension(ExtensionType(0x5A5B), b""), UnsupportedExtension),
    (ext.UnknownExtension(ExtensionType.KEY_SHARE, b"\x00\x1d"), IllegalParameter),
    (ext.UnknownExtension(ExtensionType.SUPPORTED_VERSIONS, b"\x03\x04"), IllegalParameter),
], ids=["alpn", "early_data", "unknown", "key_share", "supported_versions"])
def test_client_encrypted_extensions_not_allowed(ecdsa: CertFiles, extension: Any,
                                                 error: type[ProtocolError]) -> None:
    """RFC 8446 §4.2: a response to an extension the client never offered is
    unsupported_extension (e.g. ALPN when none was offered); an extension not defined
    for EncryptedExtensions is illegal_parameter."""
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    ee = EncryptedExtensions((extension,)).serialize()
    channel = m.channel("server_handshake_traffic_secret", f.suite)
    expect_alert(m.client, m.cspy, channel.handshake(ee), error)


def test_client_new_session_ticket_extension_not_allowed(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2: key_share is not defined for NewSessionTicket: illegal_parameter."""
    m, f = client_victim(ecdsa)
    m.to_client(f.data)
    channel = m.channel("server_application_traffic_secret_0", f.suite)
    ticket = NewSessionTicket(7200, 1, b"\x00", b"ticket", (
        ext.UnknownExtension(ExtensionType.KEY_SHARE, b"\x00\x1d"),)).serialize()
    expect_alert(m.client, m.cspy, channel.handshake(ticket), IllegalParameter)


# -- server: the ClientHello --------------------------------------------------------------
def server_victim(cert: CertFiles, **kw: Any) -> Mitm:
    return Mitm(*configs(cert, **kw))


def ch_attack(m: Mitm, error: type[ProtocolError], **changes: Any) -> ProtocolError:
    raw = edit_client_hello(m.client_hello, **changes)
    return expect_alert(m.server, m.sspy, handshake_record(raw), error, protected=False)


def test_server_client_hello_without_supported_versions(ecdsa: CertFiles) -> None:
    """A TLS 1.2 ClientHello to a TLS 1.3-only server: protocol_version (RFC 8446 §4.2.1,
    §6.2)."""
    m = server_victim(ecdsa)
    exts = drop_extension(client_hello(m).extensions, ExtensionType.SUPPORTED_VERSIONS)
    ch_attack(m, ProtocolVersionError, extensions=exts)


def test_server_client_hello_offers_only_tls12(ecdsa: CertFiles) -> None:
    m = server_victim(ecdsa)
    exts = replace_extension(client_hello(m).extensions, ext.SupportedVersionsClientHello(
        (ProtocolVersion.TLS12, ProtocolVersion.TLS11)))
    ch_attack(m, ProtocolVersionError, extensions=exts)


def test_server_client_hello_without_extensions_block(ecdsa: CertFiles) -> None:
    m = server_victim(ecdsa)
    ch_attack(m, ProtocolVersionError, extensions=(), has_extensions_block=False)


@pytest.mark.parametrize("methods", [(0, 1), (1,), (1, 0), (0, 0)], ids=str)
def test_server_compression_methods(ecdsa: CertFiles, methods: tuple[int, ...]) -> None:
    """RFC 8446 §4.1.2: exactly one compression method, null; else illegal_parameter."""
    m = server_victim(ecdsa)
    ch_attack(m, IllegalParameter, legacy_compression_methods=methods)


def test_server_key_share_group_not_in_supported_groups(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.8: each share's group must be in supported_groups."""
    m = server_victim(ecdsa)
    exts = replace_extension(client_hello(m).extensions,
                             ext.SupportedGroups((NamedGroup.SECP256R1,)))
    exc = ch_attack(m, IllegalParameter, extensions=exts)
    assert exc.check == "key_share_group_not_offered"


def test_server_duplicate_key_share_groups(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.8: clients MUST NOT send two shares for one group; illegal_parameter."""
    m = server_victim(ecdsa)
    hello = client_hello(m)
    shares = ext.find_extension(hello.extensions, ext.KeyShareClientHello)
    assert shares is not None
    entry = shares.client_shares[0]
    exts = replace_extension(hello.extensions, ext.KeyShareClientHello((entry, entry)))
    exc = ch_attack(m, IllegalParameter, extensions=exts)
    # The codec refuses the extension (no reason code there yet); server13 checks again.
    assert exc.check == "duplicate_key_share" or "two shares" in str(exc), exc


@pytest.mark.parametrize("value", [bytes(31), bytes(32)], ids=["short", "zero"])
def test_server_bad_x25519_share(ecdsa: CertFiles, value: bytes) -> None:
    """RFC 8446 §4.2.8.2 / §7.4.2: illegal_parameter, never internal_error."""
    m = server_victim(ecdsa)
    exts = replace_extension(client_hello(m).extensions, ext.KeyShareClientHello(
        (ext.KeyShareEntry(NamedGroup.X25519, value),)))
    ch_attack(m, IllegalParameter, extensions=exts)


def test_server_missing_signature_algorithms(ecdsa: CertFiles) -> None:
    """RFC 8446 §9.2: a certificate-authenticated handshake needs signature_algorithms;
    without it, missing_extension."""
    m = server_victim(ecdsa)
    exts = drop_extension(client_hello(m).extensions, ExtensionType.SIGNATURE_ALGORITHMS)
    ch_attack(m, MissingExtension, extensions=exts)


def test_server_key_share_without_supported_groups(ecdsa: CertFiles) -> None:
    """RFC 8446 §9.2: key_share without supported_groups is missing_extension."""
    m = server_victim(ecdsa)
    exts = drop_extension(client_hello(m).extensions, ExtensionType.SUPPORTED_GROUPS)
    ch_attack(m, MissingExtension, extensions=exts)


def test_server_extension_not_allowed_in_client_hello(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2: oid_filters belongs in CertificateRequest only: illegal_parameter."""
    m = server_victim(ecdsa)
    exts = (*client_hello(m).extensions,
            ext.UnknownExtension(ExtensionType.OID_FILTERS, b"\x00\x00"))
    ch_attack(m, IllegalParameter, extensions=exts)


def test_server_no_common_cipher_suite(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.1: no acceptable parameters: handshake_failure."""
    m = server_victim(ecdsa, cipher_suites=(CipherSuite.TLS_AES_128_CCM_SHA256,))
    expect_alert(m.server, m.sspy, m.client_first.data, HandshakeFailure)


def test_server_only_tls12_cipher_suites(ecdsa: CertFiles) -> None:
    m = server_victim(ecdsa)
    ch_attack(m, HandshakeFailure, cipher_suites=(
        CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV))


def test_server_no_common_alpn(ecdsa: CertFiles) -> None:
    """RFC 7301 §3.2: no protocol in common: no_application_protocol."""
    m = server_victim(ecdsa, alpn_protocols=("h2",), server={"alpn_protocols": ("http/1.1",)})
    expect_alert(m.server, m.sspy, m.client_first.data, NoApplicationProtocol)


def test_server_truncated_client_hello(ecdsa: CertFiles) -> None:
    """Every truncation of the ClientHello body (re-framed) is decode_error -- except the
    cut right after the compression methods: a well-formed extension-less (TLS 1.2)
    hello, so protocol_version."""
    m0 = server_victim(ecdsa)
    body = body_of(m0.client_hello)
    sid_len = body[34]
    pos = 35 + sid_len
    suites_len = int.from_bytes(body[pos : pos + 2], "big")
    pos += 2 + suites_len
    no_extensions = pos + 1 + body[pos]
    for cut in range(len(body)):
        m = server_victim(ecdsa)
        error = ProtocolVersionError if cut == no_extensions else DecodeError
        raw = handshake_message(H.CLIENT_HELLO, body[:cut])
        expect_alert(m.server, m.sspy, handshake_record(raw), error)


def test_server_client_hello_trailing_bytes(ecdsa: CertFiles) -> None:
    m = server_victim(ecdsa)
    raw = handshake_message(H.CLIENT_HELLO, body_of(m.client_hello) + b"\x00")
    expect_alert(m.server, m.sspy, handshake_record(raw), DecodeError)


# -- server: the client's Finished ------------------------------------------------------
def _client_finished(cert: CertFiles) -> tuple[Mitm, ServerFirstFlight, bytes]:
    """The server sent its flight; the real client answered; returns its Finished."""
    m = server_victim(cert)
    f = server_first_flight(m)
    m.to_client(f.data)
    client_flight = m.from_client()
    opened = client_flight.protected_messages(f.suite,
                                              m.secret("client_handshake_traffic_secret"))
    assert [raw[0] for raw in opened] == [H.FINISHED]
    return m, f, opened[0]


def test_server_client_finished_wrong_verify_data(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.4.4: decrypt_error."""
    m, f, fin = _client_finished(ecdsa)
    bad = bytearray(fin)
    bad[-1] ^= 0x01
    channel = m.channel("client_handshake_traffic_secret", f.suite)
    expect_alert(m.server, m.sspy, CCS + channel.handshake(bytes(bad)), DecryptError,
                 check="finished_mismatch")


def test_server_client_finished_wrong_length(ecdsa: CertFiles) -> None:
    """See test_client_server_finished_wrong_length: decode_error."""
    m, f, fin = _client_finished(ecdsa)
    channel = m.channel("client_handshake_traffic_secret", f.suite)
    short = Finished(body_of(fin)[:-1]).serialize()
    expect_alert(m.server, m.sspy, channel.handshake(short), DecodeError)


def test_server_client_finished_corrupted_ciphertext(ecdsa: CertFiles) -> None:
    """RFC 8446 §5.2: bad_record_mac."""
    m, f, fin = _client_finished(ecdsa)
    channel = m.channel("client_handshake_traffic_secret", f.suite)
    record = bytearray(channel.handshake(fin))
    record[7] ^= 0x40
    expect_alert(m.server, m.sspy, bytes(record), BadRecordMac)


def test_server_client_finished_control(ecdsa: CertFiles) -> None:
    """Control: the re-protected genuine Finished completes the handshake."""
    m, f, fin = _client_finished(ecdsa)
    channel = m.channel("client_handshake_traffic_secret", f.suite)
    events = m.to_server(CCS + channel.handshake(fin))
    assert isinstance(events[0], HandshakeComplete)


# -- server: the second ClientHello -------------------------------------------------------
def _second_hello(cert: CertFiles) -> tuple[Mitm, ClientHello]:
    """The server sent an HRR (it wants P-384); the real client answered with its second
    ClientHello, which is returned, not delivered."""
    m = server_victim(cert, server={"groups": (NamedGroup.SECP384R1,)})
    m.to_server(m.client_first.data)
    m.to_client(m.from_server().data)
    hello2 = ClientHello.parse_body(body_of(m.from_client().plaintext_messages[0]))
    assert m.server.state_name == "ExpectClientHelloAgain"
    return m, hello2


def test_server_second_hello_control(ecdsa: CertFiles) -> None:
    m, hello2 = _second_hello(ecdsa)
    m.to_server(handshake_record(hello2.serialize()))
    assert m.server.state_name == "ExpectClientFinished"


def _second_hello_attack(m: Mitm, hello2: ClientHello, error: type[ProtocolError],
                         check: str | None = None, **changes: Any) -> None:
    raw = replace(hello2, **changes).serialize()
    expect_alert(m.server, m.sspy, handshake_record(raw), error, check=check)


def test_server_second_hello_wrong_cookie(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.2: the cookie must be the one the server sent: illegal_parameter."""
    m, hello2 = _second_hello(ecdsa)
    cookie = ext.find_extension(hello2.extensions, ext.Cookie)
    assert cookie is not None
    bad = bytearray(cookie.cookie)
    bad[0] ^= 0x01
    exts = replace_extension(hello2.extensions, ext.Cookie(bytes(bad)))
    _second_hello_attack(m, hello2, IllegalParameter, check="cookie_mac", extensions=exts)


def test_server_second_hello_cookie_from_another_server(ecdsa: CertFiles) -> None:
    m, hello2 = _second_hello(ecdsa)
    _, other_hello2 = _second_hello(ecdsa)  # a different cookie_secret
    cookie = ext.find_extension(other_hello2.extensions, ext.Cookie)
    assert cookie is not None
    exts = replace_extension(hello2.extensions, cookie)
    _second_hello_attack(m, hello2, IllegalParameter, check="cookie_mac", extensions=exts)


def test_server_second_hello_without_cookie(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.2.2: the client MUST echo the cookie; this stateless server cannot go
    on without it (missing_extension)."""
    m, hello2 = _second_hello(ecdsa)
    exts = drop_extension(hello2.extensions, ExtensionType.COOKIE)
    _second_hello_attack(m, hello2, MissingExtension, extensions=exts)


def test_server_second_hello_wrong_key_share_group(ecdsa: CertFiles) -> None:
    """RFC 8446 §4.1.2/§4.2.8: after the HRR the share must be for the selected group."""
    m, hello2 = _second_hello(ecdsa)
    share = generate_key_share(NamedGroup.X25519, deterministic_random(b"y")).public_bytes
    exts = replace_extension(hello2.extensions, ext.KeyShareClientHello(
        (ext.KeyShareEntry(NamedGroup.X25519, share),)))
    _second_hello_attack(m, hello2, IllegalParameter, extensions=exts)


def test_server_second_hello_two_key_shares(ecdsa: CertFiles) -> None:
    m, hello2 = _second_hello(ecdsa)
    shares = ext.find_extension(hello2.extensions, ext.KeyShareClientHello)
    assert shares is not None
    x = generate_key_share(NamedGroup.X25519, deterministic_random(b"z")).public_bytes
    exts = replace_extension(hello2.extensions, ext.KeyShareClientHello(
        (*shares.client_shares, ext.KeyShareEntry(NamedGroup.X25519, x))))
    _second_hello_attack(m, hello2, IllegalParameter, extensions=exts)


@pytest.mark.parametrize("field", ["random", "legacy_session_id", "cipher_suites"])
def test_server_second_hello_changed_fields(ecdsa: CertFiles, field: str) -> None:
    """RFC 8446 §4.1.2: the second ClientHello is the first with only the allowed changes."""
    m, hello2 = _second_hello(ecdsa)
    value = {"random": bytes(32), "legacy_session_id": bytes(32),
             "cipher_suites": (CipherSuite.TLS_AES_256_GCM_SHA384,
                               CipherSuite.TLS_AES_128_GCM_SHA256)}[field]
    _second_hello_attack(m, hello2, IllegalParameter, check="hrr_hello_changed",
                         **{field: value})


# -- alerts from the peer ------------------------------------------------------------------
def _fatal(description: AlertDescription = A.HANDSHAKE_FAILURE) -> bytes:
    return alert(description, AlertLevel.FATAL)


def test_server_receives_alert_before_client_hello(ecdsa: CertFiles) -> None:
    m = server_victim(ecdsa)
    expect_alert_received(m.server, plaintext_record(ContentType.ALERT, _fatal()),
                          A.HANDSHAKE_FAILURE)


def test_client_receives_plaintext_alert(ecdsa: CertFiles) -> None:
    m = server_victim(ecdsa)
    expect_alert_received(m.client, plaintext_record(ContentType.ALERT,
                                                     _fatal(A.PROTOCOL_VERSION)),
                          A.PROTOCOL_VERSION)


@pytest.mark.parametrize("protected", [True, False])
def test_client_receives_alert_during_handshake(ecdsa: CertFiles, protected: bool) -> None:
    m, f = client_victim(ecdsa)
    deliver_server_hello(m, f)
    if protected:
        channel = m.channel("server_handshake_traffic_secret", f.suite)
        data = channel.record(ContentType.ALERT, _fatal(A.DECODE_ERROR))
    else:
        data = plaintext_record(ContentType.ALERT, _fatal(A.DECODE_ERROR))
    expect_alert_received(m.client, data, A.DECODE_ERROR)


def test_server_receives_protected_alert_instead_of_finished(ecdsa: CertFiles) -> None:
    m, f, _ = _client_finished(ecdsa)
    channel = m.channel("client_handshake_traffic_secret", f.suite)
    expect_alert_received(m.server, channel.record(ContentType.ALERT, _fatal(A.BAD_CERTIFICATE)),
                          A.BAD_CERTIFICATE)


@pytest.mark.parametrize("role", ["client", "server"])
def test_alert_after_the_handshake(ecdsa: CertFiles, role: str) -> None:
    m, f = client_victim(ecdsa)
    m.to_client(f.data)
    m.to_server(m.from_client().data)
    if role == "client":
        channel = m.channel("server_application_traffic_secret_0", f.suite)
        victim = m.client
    else:
        channel = m.channel("client_application_traffic_secret_0", f.suite)
        victim = m.server
    expect_alert_received(victim, channel.record(ContentType.ALERT, _fatal(A.INTERNAL_ERROR)),
                          A.INTERNAL_ERROR)


@pytest.mark.parametrize("payload", [alert(A.BAD_CERTIFICATE, AlertLevel.WARNING),
                                     alert(0xEE, AlertLevel.FATAL),
                                     alert(A.UNEXPECTED_MESSAGE, 0x07)],
                         ids=["warning_level", "unknown_description", "unknown_level"])
def test_any_alert_but_close_notify_and_user_canceled_is_fatal(ecdsa: CertFiles,
                                                               payload: bytes) -> None:
    """RFC 8446 §6: unknown alert types are errors, and every alert except close_notify
    and user_canceled ends the connection whatever its level claims."""
    m = server_victim(ecdsa)
    expect_alert_received(m.client, plaintext_record(ContentType.ALERT, payload),
                          AlertDescription(payload[1]))


@pytest.mark.parametrize("payload", [b"\x02", b"\x02\x28\x00", b""], ids=["1", "3", "0"])
def test_alert_record_of_wrong_length(ecdsa: CertFiles, payload: bytes) -> None:
    """RFC 8446 §5.1: one alert per record, never fragmented or coalesced; a record that
    is not exactly one alert does not decode."""
    m = server_victim(ecdsa)
    expect_alert(m.client, m.cspy, plaintext_record(ContentType.ALERT, payload), DecodeError)


# -- never anything but a TLSError, never a hang -----------------------------------------
@pytest.fixture(scope="module")
def fuzz_server_config(certs: dict[str, CertFiles]) -> ServerConfig:
    _, server = configs(certs["ecdsa-p256"])
    return replace(server, random=deterministic_random(b"fuzz server"))


@pytest.fixture(scope="module")
def fuzz_client_hello(certs: dict[str, CertFiles]) -> bytes:
    """A valid ClientHello record, the same on every run."""
    client, _ = configs(certs["ecdsa-p256"], random=deterministic_random(b"fuzz client"))
    return TLSConnection(client).data_to_send()


def feed_fresh_server(config: ServerConfig, data: bytes) -> None:
    """Feed ``data`` to a new server: NeedData, or a TLSError whose alert was sent --
    never another exception, never internal_error for bad input, never a loop."""
    spy = SecretSpy()
    server = TLSConnection(replace(config, observer=spy))
    server.receive_data(data)
    try:
        run(server, limit=16)
    except ProtocolError as exc:
        assert not isinstance(exc, InternalError), f"peer input caused internal_error: {exc}"
        _, description, _ = read_alert(server.data_to_send(), write_secrets(spy, False))
        assert description == exc.alert
        assert_dead(server)
    except AlertReceived:
        assert server.data_to_send() == b""
        assert_dead(server)
    except TLSError as exc:  # pragma: no cover - anything else is a finding
        pytest.fail(f"unexpected {type(exc).__name__}: {exc}")


def _record(content_type: int, body: bytes) -> bytes:
    return plaintext_record(content_type, body, 0x0301)


fuzz_input = st.one_of(
    st.binary(max_size=400),
    st.builds(_record, st.sampled_from([20, 21, 22, 23, 24, 0]), st.binary(max_size=300)),
    st.builds(lambda body: _record(22, handshake_message(H.CLIENT_HELLO, body)),
              st.binary(max_size=300)),
    st.builds(lambda t, body: _record(22, handshake_message(t, body)),
              st.integers(0, 255), st.binary(max_size=64)),
)


@pytest.mark.timeout(120)
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=fuzz_input)
def test_fuzz_random_bytes_to_server(fuzz_server_config: ServerConfig, data: bytes) -> None:
    feed_fresh_server(fuzz_server_config, data)


Mutation = tuple[str, int, Any]
mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 2**16), st.integers(0, 255)),
    st.tuples(st.just("xor"), st.integers(0, 2**16), st.integers(1, 255)),
    st.tuples(st.just("delete"), st.integers(0, 2**16), st.integers(1, 24)),
    st.tuples(st.just("insert"), st.integers(0, 2**16), st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("truncate"), st.integers(0, 2**16), st.none()),
)


def _mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in mutations:
        pos = where % (len(buf) + 1)
        if kind == "set" and pos < len(buf):
            buf[pos] = arg
        elif kind == "xor" and pos < len(buf):
            buf[pos] ^= arg
        elif kind == "delete":
            del buf[pos : pos + arg]
        elif kind == "insert":
            buf[pos:pos] = arg
        elif kind == "truncate":
            del buf[pos:]
    return bytes(buf)


@pytest.mark.timeout(120)
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(mutation, min_size=1, max_size=6), reframe=st.booleans())
def test_fuzz_mutated_client_hello(fuzz_server_config: ServerConfig,
                                   fuzz_client_hello: bytes, mutations: list[Mutation],
                                   reframe: bool) -> None:
    """Random mutations of a valid ClientHello record; with ``reframe`` only the hello
    body is mutated and both length headers are fixed up, to get past the framing."""
    if reframe:
        body = _mutate(fuzz_client_hello[9:], mutations)
        data = _record(22, handshake_message(H.CLIENT_HELLO, body))
    else:
        data = _mutate(fuzz_client_hello, mutations)
    feed_fresh_server(fuzz_server_config, data)
