"""Extension codec (tlsmith.codec.extensions): every body form round-trips, truncation and
trailing bytes are decode_error, RFC rules on extension blocks, raw keeping of unknowns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tlsmith.codec import extensions as x
from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import (
    AlertDescription,
    CertificateStatusType,
    CertificateType,
    ECPointFormat,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
)
from tlsmith.codec.extensions import Extension, ExtensionContext
from tlsmith.errors import DecodeError, IllegalParameter, ProtocolError

C = ExtensionContext
CH = C.CLIENT_HELLO
SH = C.SERVER_HELLO
HRR = C.HELLO_RETRY_REQUEST
EE = C.ENCRYPTED_EXTENSIONS
CT = C.CERTIFICATE
CR = C.CERTIFICATE_REQUEST
NST = C.NEW_SESSION_TICKET

DN = bytes.fromhex("3012311030 0e0603550403130774657374 2d6361".replace(" ", ""))


@dataclass(frozen=True)
class Sample:
    ext: Extension
    context: ExtensionContext
    # False when a shorter body is itself valid (an opaque "rest of body" form)
    truncation_fails: bool = True
    # False when one more byte is itself valid
    trailing_fails: bool = True

    @property
    def id(self) -> str:
        return f"{type(self.ext).__name__}-{self.context.value}"


SAMPLES: list[Sample] = [
    Sample(x.ServerName("example.com"), CH),
    Sample(x.ServerName(None), SH),
    Sample(x.ServerName(None), EE),
    Sample(x.MaxFragmentLength(2), CH),
    Sample(x.MaxFragmentLength(4), EE),
    Sample(x.StatusRequest(), CH),
    Sample(x.StatusRequest((b"\x04\x01\x02", b"\x30\x00"), b"\x30\x03\x02\x01\x00"), CH),
    Sample(x.StatusRequest(empty=True), CR),  # RFC 8446 §4.4.2.1: empty in CR
    Sample(x.StatusRequest(empty=True), SH),
    Sample(x.CertificateStatusExtension(CertificateStatusType.OCSP, b"\x30\x82ocsp"), CT),
    Sample(x.SupportedGroups((NamedGroup(0x3A3A), NamedGroup.X25519, NamedGroup.SECP256R1,
                              NamedGroup.FFDHE2048, NamedGroup(0x4242))), CH),
    Sample(x.SupportedGroups((NamedGroup.X25519,)), EE),
    Sample(x.ECPointFormats((ECPointFormat.UNCOMPRESSED, ECPointFormat(7))), CH),
    Sample(x.ECPointFormats((ECPointFormat.UNCOMPRESSED,)), SH),
    Sample(x.SignatureAlgorithms((SignatureScheme.ECDSA_SECP256R1_SHA256,
                                  SignatureScheme.RSA_PSS_RSAE_SHA256,
                                  SignatureScheme(0x1A1A))), CH),
    Sample(x.SignatureAlgorithms((SignatureScheme.ED25519,)), CR),
    Sample(x.SignatureAlgorithmsCert((SignatureScheme.RSA_PKCS1_SHA256,)), CH),
    Sample(x.SignatureAlgorithmsCert((SignatureScheme.ED448,)), CR),
    Sample(x.ApplicationLayerProtocolNegotiation((b"h2", b"http/1.1")), CH),
    Sample(x.ApplicationLayerProtocolNegotiation((b"h2",)), EE),
    Sample(x.ApplicationLayerProtocolNegotiation((b"x" * 255,)), SH),
    Sample(x.Padding(0), CH, truncation_fails=False, trailing_fails=False),
    Sample(x.Padding(17), CH, truncation_fails=False, trailing_fails=False),
    Sample(x.EncryptThenMac(), CH),
    Sample(x.EncryptThenMac(), SH),
    Sample(x.ExtendedMasterSecret(), CH),
    Sample(x.ExtendedMasterSecret(), SH),
    Sample(x.RecordSizeLimit(16385), CH),
    Sample(x.RecordSizeLimit(64), EE),
    Sample(x.SessionTicket(b""), CH, trailing_fails=False),
    Sample(x.SessionTicket(b"opaque-ticket"), CH, truncation_fails=False,
           trailing_fails=False),
    Sample(x.SessionTicket(), SH),
    Sample(x.RenegotiationInfo(b""), CH),
    Sample(x.RenegotiationInfo(bytes(range(24))), SH),
    Sample(x.SupportedVersionsClientHello((ProtocolVersion(0x7A7A), ProtocolVersion.TLS13,
                                           ProtocolVersion.TLS12)), CH),
    Sample(x.SupportedVersionsServerHello(ProtocolVersion.TLS13), SH),
    Sample(x.SupportedVersionsServerHello(ProtocolVersion.TLS13), HRR),
    Sample(x.Cookie(b"\x01"), CH),
    Sample(x.Cookie(bytes(300)), HRR),
    Sample(x.CertificateAuthorities((DN, b"\x30\x00")), CH),
    Sample(x.CertificateAuthorities((DN,)), CR),
    Sample(x.OIDFilters(()), CR),
    Sample(x.OIDFilters((x.OIDFilter(b"\x55\x1d\x25", b"\x30\x0a"),
                         x.OIDFilter(b"\x55\x1d\x0f", b""))), CR),
    Sample(x.PostHandshakeAuth(), CH),
    Sample(x.KeyShareClientHello(()), CH),
    Sample(x.KeyShareClientHello((x.KeyShareEntry(NamedGroup(0x2A2A), b"\x00"),
                                  x.KeyShareEntry(NamedGroup.X25519, bytes(32)),
                                  x.KeyShareEntry(NamedGroup.SECP256R1,
                                                  b"\x04" + bytes(64)))), CH),
    Sample(x.KeyShareServerHello(x.KeyShareEntry(NamedGroup.X25519, bytes(range(32)))), SH),
    Sample(x.KeyShareHelloRetryRequest(NamedGroup.SECP384R1), HRR),
    Sample(x.PskKeyExchangeModes((PskKeyExchangeMode.PSK_DHE_KE,
                                  PskKeyExchangeMode(0x0B))), CH),
    Sample(x.EarlyDataIndication(None), CH),
    Sample(x.EarlyDataIndication(), EE),
    Sample(x.EarlyDataIndication(0xFFFFFFFF), NST),
    Sample(x.PreSharedKeyClientHello((x.PskIdentity(b"ticket", 0x01020304),),
                                     (bytes(32),)), CH),
    Sample(x.PreSharedKeyClientHello((x.PskIdentity(b"a" * 100, 0),
                                      x.PskIdentity(b"b", 0xFFFFFFFF)),
                                     (bytes(range(48)), b"\xff" * 255)), CH),
    Sample(x.PreSharedKeyServerHello(1), SH),
    # draft-agl-tls-nextprotoneg §3: empty in ClientHello, an unprefixed list in ServerHello
    Sample(x.NextProtocolNegotiation(), CH),
    Sample(x.NextProtocolNegotiation((b"spdy/3", b"http/1.1")), SH, truncation_fails=False,
           trailing_fails=False),
    # draft-vvv-tls-alps §3, both codepoints: protocols in ClientHello, opaque settings after
    Sample(x.ApplicationSettingsClientHello((b"h2", b"foo")), CH),
    Sample(x.ApplicationSettingsNewClientHello((b"h2",)), CH),
    Sample(x.ApplicationSettings(b"settings"), EE, truncation_fails=False,
           trailing_fails=False),
    Sample(x.ApplicationSettingsNew(b""), EE, truncation_fails=False, trailing_fails=False),
    # RFC 7250 §4.1
    Sample(x.ClientCertificateTypeList((CertificateType.RAW_PUBLIC_KEY,
                                        CertificateType.X509)), CH),
    Sample(x.ClientCertificateTypeChosen(CertificateType.RAW_PUBLIC_KEY), EE),
    Sample(x.ServerCertificateTypeList((CertificateType.RAW_PUBLIC_KEY,)), CH),
    Sample(x.ServerCertificateTypeChosen(CertificateType.X509), SH),
]


def _ids(samples: list[Sample]) -> list[str]:
    return [s.id for s in samples]


def _block(exts: list[Extension]) -> bytes:
    w = Writer()
    x.serialize_extensions(w, exts)
    return w.getvalue()


def _parse_block(data: bytes, context: ExtensionContext) -> tuple[Extension, ...]:
    with Reader(data) as r:
        return x.parse_extensions(r, context)


def _raw_ext(ext_type: int, body: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def _block_of(*raw_exts: bytes) -> bytes:
    body = b"".join(raw_exts)
    return len(body).to_bytes(2, "big") + body


# ClientHello extensions only a TLS 1.2 server uses: a bad body is kept as
# MalformedExtension (RFC 8446 §4.1.2) instead of failing the parse.
TLS12_ONLY = frozenset({ExtensionType.EC_POINT_FORMATS, ExtensionType.ENCRYPT_THEN_MAC,
                        ExtensionType.EXTENDED_MASTER_SECRET,
                        ExtensionType.RENEGOTIATION_INFO, ExtensionType.SESSION_TICKET,
                        ExtensionType.NEXT_PROTOCOL_NEGOTIATION})


def _kept_malformed(ext_type: int, context: ExtensionContext) -> bool:
    return context is CH and ext_type in TLS12_ONLY


def _assert_kept_malformed(ext_type: ExtensionType, body: bytes) -> None:
    """In a ClientHello block: parsed as MalformedExtension, byte-exact round trip, and
    require_well_formed is a decode_error naming the extension."""
    data = _block_of(_raw_ext(ext_type, body))
    parsed = _parse_block(data, CH)
    assert len(parsed) == 1
    ext = parsed[0]
    assert isinstance(ext, x.MalformedExtension)
    assert ext.extension_type == ext_type and ext.data == body and ext.error
    assert _block(list(parsed)) == data
    with pytest.raises(DecodeError, match=x.ext_name(ext_type)) as excinfo:
        x.require_well_formed(parsed)
    assert excinfo.value.alert == AlertDescription.DECODE_ERROR


# -- round trips --------------------------------------------------------------------------


def test_extensions_every_class_has_a_sample() -> None:
    sampled = {type(s.ext) for s in SAMPLES}
    for name in x.__all__:
        obj = getattr(x, name)
        if isinstance(obj, type) and hasattr(obj, "parse_body"):
            assert obj in sampled, name


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_extensions_body_round_trip(sample: Sample) -> None:
    body = sample.ext.serialize_body()
    parsed = type(sample.ext).parse_body(body, sample.context)  # type: ignore[union-attr]
    assert parsed == sample.ext
    assert parsed.serialize_body() == body
    # memoryview input works the same
    assert type(sample.ext).parse_body(memoryview(body), sample.context) == sample.ext  # type: ignore[union-attr]


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_extensions_block_round_trip(sample: Sample) -> None:
    data = _block([sample.ext])
    parsed = _parse_block(data, sample.context)
    assert parsed == (sample.ext,)
    assert _block(list(parsed)) == data


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_extensions_registered_for_context(sample: Sample) -> None:
    assert x.registered_class(sample.ext.extension_type, sample.context) is type(sample.ext)


# -- truncation and trailing bytes ---------------------------------------------------------


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.truncation_fails],
                         ids=_ids([s for s in SAMPLES if s.truncation_fails]))
def test_extensions_body_truncated_is_decode_error(sample: Sample) -> None:
    body = sample.ext.serialize_body()
    cls = type(sample.ext)
    for cut in range(len(body)):
        with pytest.raises(DecodeError) as excinfo:
            cls.parse_body(body[:cut], sample.context)  # type: ignore[union-attr]
        assert excinfo.value.alert == AlertDescription.DECODE_ERROR


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_extensions_block_truncated_is_decode_error(sample: Sample) -> None:
    data = _block([sample.ext])
    for cut in range(len(data)):
        with pytest.raises(DecodeError) as excinfo:
            _parse_block(data[:cut], sample.context)
        assert excinfo.value.alert == AlertDescription.DECODE_ERROR


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.trailing_fails],
                         ids=_ids([s for s in SAMPLES if s.trailing_fails]))
def test_extensions_body_trailing_bytes_is_decode_error(sample: Sample) -> None:
    body = sample.ext.serialize_body()
    cls = type(sample.ext)
    for extra in (b"\x00", b"\x01\x02"):
        with pytest.raises(DecodeError) as excinfo:
            cls.parse_body(body + extra, sample.context)  # type: ignore[union-attr]
        assert excinfo.value.alert == AlertDescription.DECODE_ERROR


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.trailing_fails],
                         ids=_ids([s for s in SAMPLES if s.trailing_fails]))
def test_extensions_trailing_inside_extension_data_is_decode_error(sample: Sample) -> None:
    """The extension_data length says one byte more than the body form uses."""
    body = sample.ext.serialize_body() + b"\0"
    if _kept_malformed(sample.ext.extension_type, sample.context):
        _assert_kept_malformed(sample.ext.extension_type, body)
        return
    data = _block_of(_raw_ext(sample.ext.extension_type, body))
    with pytest.raises(DecodeError):
        _parse_block(data, sample.context)


def test_extensions_block_trailing_bytes_after_block() -> None:
    data = _block([x.ExtendedMasterSecret()]) + b"\x00"
    with pytest.raises(DecodeError, match="trailing"):
        _parse_block(data, CH)


def test_extensions_block_length_too_long_or_short() -> None:
    good = _block([x.Cookie(b"abc")])
    longer = (int.from_bytes(good[:2], "big") + 1).to_bytes(2, "big") + good[2:]
    shorter = (int.from_bytes(good[:2], "big") - 1).to_bytes(2, "big") + good[2:]
    with pytest.raises(DecodeError):
        _parse_block(longer, CH)
    with pytest.raises(DecodeError):
        _parse_block(shorter, CH)


# -- wrong inner lengths and invalid values ------------------------------------------------

BAD_BODIES: list[tuple[type[x.KnownExtension], ExtensionContext, str, type[ProtocolError], str]] = [
    # server_name: list length, name length, empty list, empty name, non-ASCII
    (x.ServerName, CH, "000a 00 0003 616263", DecodeError, "server_name"),
    (x.ServerName, CH, "0006 00 0004 616263", DecodeError, "server_name"),
    (x.ServerName, CH, "0000", DecodeError, "server_name"),
    (x.ServerName, CH, "0003 00 0000", DecodeError, "server_name"),
    (x.ServerName, CH, "", DecodeError, "server_name"),
    (x.ServerName, CH, "0005 00 0002 c3a9", DecodeError, "not ASCII"),
    (x.ServerName, CH, "000c 00 0003 616263 00 0003 646566", IllegalParameter, "host_name"),
    (x.ServerName, SH, "00", DecodeError, "server_name"),
    (x.ServerName, EE, "0005 00 0002 6162", DecodeError, "server_name"),
    (x.MaxFragmentLength, CH, "05", IllegalParameter, "max_fragment_length"),
    (x.MaxFragmentLength, CH, "00", IllegalParameter, "max_fragment_length"),
    (x.StatusRequest, CH, "01 0003 0002 aa 0000", DecodeError, "responder_id"),
    (x.StatusRequest, CH, "01 0002 0000 0000", DecodeError, "responder_id"),
    (x.StatusRequest, CH, "01 0000 0005 aa", DecodeError, "status_request"),
    (x.StatusRequest, SH, "01 0000 0000", DecodeError, "status_request"),
    (x.CertificateStatusExtension, CT, "01 000000", DecodeError, "status_request"),
    (x.CertificateStatusExtension, CT, "01 000005 aa", DecodeError, "status_request"),
    (x.SupportedGroups, CH, "0003 001d 00", DecodeError, "odd length"),
    (x.SupportedGroups, CH, "0000", DecodeError, "supported_groups"),
    (x.SupportedGroups, CH, "0004 001d", DecodeError, "supported_groups"),
    (x.SignatureAlgorithms, CH, "0000", DecodeError, "signature_algorithms"),
    (x.SignatureAlgorithms, CH, "0001 04", DecodeError, "odd length"),
    (x.SignatureAlgorithmsCert, CR, "0002 04", DecodeError, "signature_algorithms_cert"),
    (x.ECPointFormats, CH, "00", DecodeError, "ec_point_formats"),
    (x.ECPointFormats, CH, "02 00", DecodeError, "ec_point_formats"),
    (x.ApplicationLayerProtocolNegotiation, CH, "0000", DecodeError, "application_layer"),
    (x.ApplicationLayerProtocolNegotiation, CH, "0001 00", DecodeError, "application_layer"),
    (x.ApplicationLayerProtocolNegotiation, CH, "0003 03 6832", DecodeError, "application_layer"),
    (x.ApplicationLayerProtocolNegotiation, CH, "0004 02 6832", DecodeError, "application_layer"),
    (x.ApplicationLayerProtocolNegotiation, EE, "0006 02 6832 02 6833", DecodeError,
     "exactly one"),
    (x.ApplicationLayerProtocolNegotiation, SH, "0006 02 6832 02 6833", DecodeError,
     "exactly one"),
    (x.Padding, CH, "0000 01", IllegalParameter, "nonzero"),
    (x.EncryptThenMac, CH, "00", DecodeError, "encrypt_then_mac"),
    (x.EncryptThenMac, SH, "00", DecodeError, "encrypt_then_mac"),
    (x.ExtendedMasterSecret, CH, "00", DecodeError, "extended_master_secret"),
    (x.ExtendedMasterSecret, SH, "00", DecodeError, "extended_master_secret"),
    (x.ECPointFormats, SH, "05 00", DecodeError, "ec_point_formats"),
    (x.PostHandshakeAuth, CH, "00", DecodeError, "post_handshake_auth"),
    (x.RecordSizeLimit, CH, "003f", IllegalParameter, "below 64"),
    (x.RecordSizeLimit, CH, "0000", IllegalParameter, "below 64"),
    (x.RecordSizeLimit, CH, "40", DecodeError, "record_size_limit"),
    (x.SessionTicket, SH, "01", DecodeError, "session_ticket"),
    (x.RenegotiationInfo, CH, "02 00", DecodeError, "renegotiation_info"),
    (x.RenegotiationInfo, SH, "", DecodeError, "renegotiation_info"),
    (x.SupportedVersionsClientHello, CH, "00", DecodeError, "supported_versions"),
    (x.SupportedVersionsClientHello, CH, "03 0304 03", DecodeError, "supported_versions"),
    (x.SupportedVersionsClientHello, CH, "04 0304", DecodeError, "supported_versions"),
    (x.SupportedVersionsClientHello, CH, "ff" + "03" * 255, DecodeError, "supported_versions"),
    (x.SupportedVersionsServerHello, SH, "03", DecodeError, "supported_versions"),
    (x.Cookie, CH, "0000", DecodeError, "cookie"),
    (x.Cookie, HRR, "0002 aa", DecodeError, "cookie"),
    (x.CertificateAuthorities, CR, "0002 0000", DecodeError, "certificate_authorities"),
    (x.CertificateAuthorities, CR, "0000", DecodeError, "certificate_authorities"),
    (x.CertificateAuthorities, CR, "0004 0003 3000", DecodeError, "certificate_authorities"),
    (x.OIDFilters, CR, "0003 00 0000", DecodeError, "oid_filters"),
    (x.OIDFilters, CR, "0006 01 55 0005 aa", DecodeError, "oid_filters"),
    (x.KeyShareClientHello, CH, "0004 001d 0000", DecodeError, "key_share"),
    (x.KeyShareClientHello, CH, "0005 001d 0002 aa", DecodeError, "key_share"),
    (x.KeyShareClientHello, CH, "0006 001d 0001 aa 00", DecodeError, "key_share"),
    (x.KeyShareClientHello, CH, "000a 001d 0001 aa 001d 0001 bb", IllegalParameter,
     "two shares"),
    (x.KeyShareServerHello, SH, "001d 0000", DecodeError, "key_share"),
    (x.KeyShareServerHello, SH, "001d 0003 aabb", DecodeError, "key_share"),
    (x.KeyShareHelloRetryRequest, HRR, "001d 00", DecodeError, "key_share"),
    (x.PskKeyExchangeModes, CH, "00", DecodeError, "psk_key_exchange_modes"),
    (x.PskKeyExchangeModes, CH, "02 01", DecodeError, "psk_key_exchange_modes"),
    (x.EarlyDataIndication, CH, "00000000", DecodeError, "early_data"),
    (x.EarlyDataIndication, NST, "", DecodeError, "early_data"),
    (x.EarlyDataIndication, NST, "000000", DecodeError, "early_data"),
    # identities shorter than 7, identity length 0, binder shorter than 32, count mismatch
    (x.PreSharedKeyClientHello, CH, "0006 0002 6162 0000" + "0021 20" + "00" * 32,
     DecodeError, "pre_shared_key"),
    (x.PreSharedKeyClientHello, CH, "0007 0000 00000000 00" + "0021 20" + "00" * 32,
     DecodeError, "pre_shared_key"),
    (x.PreSharedKeyClientHello, CH, "0007 0001 61 00000000" + "0020 1f" + "00" * 31,
     DecodeError, "pre_shared_key"),
    (x.PreSharedKeyClientHello, CH, "0007 0001 61 00000000" + "0042 20" + "00" * 32 + "20"
     + "00" * 32, IllegalParameter, "2 binders"),
    (x.PreSharedKeyClientHello, CH, "0007 0001 61 00000000" + "0021 21" + "00" * 32,
     DecodeError, "pre_shared_key"),
    (x.PreSharedKeyServerHello, SH, "00", DecodeError, "pre_shared_key"),
    (x.ServerCertificateTypeList, CH, "0302", DecodeError, "server_certificate_type"),
    (x.ClientCertificateTypeChosen, EE, "0200", DecodeError, "client_certificate_type"),
]


@pytest.mark.parametrize(("cls", "context", "hexbody", "error", "match"), BAD_BODIES,
                         ids=[f"{c.__name__}-{i}" for i, (c, *_r) in enumerate(BAD_BODIES)])
def test_extensions_bad_body(cls: type[x.KnownExtension], context: ExtensionContext,
                             hexbody: str, error: type[ProtocolError], match: str) -> None:
    body = bytes.fromhex(hexbody.replace(" ", ""))
    with pytest.raises(error, match=match) as excinfo:
        cls.parse_body(body, context)
    assert type(excinfo.value) is error
    if _kept_malformed(cls.extension_type, context):
        assert error is DecodeError
        _assert_kept_malformed(cls.extension_type, body)
        return
    # through parse_extensions too: the same error, and a decode error names the extension
    with pytest.raises(error) as excinfo2:
        _parse_block(_block_of(_raw_ext(cls.extension_type, body)), context)
    assert type(excinfo2.value) is error
    if error is DecodeError:
        name = cls.extension_type.name.lower()
        assert name in str(excinfo2.value)


def test_extensions_server_name_non_ascii_is_decode_error() -> None:
    body = bytes.fromhex("0007 00 0004 6dc3a974".replace(" ", ""))
    with pytest.raises(DecodeError) as excinfo:
        x.ServerName.parse_body(body, CH)
    assert excinfo.value.alert == AlertDescription.DECODE_ERROR


# -- extension block rules -----------------------------------------------------------------


def test_extensions_duplicate_type_is_illegal_parameter() -> None:
    data = _block([x.ServerName("a.example"), x.ExtendedMasterSecret(),
                   x.ServerName("b.example")])
    with pytest.raises(IllegalParameter, match="duplicate server_name") as excinfo:
        _parse_block(data, CH)
    assert excinfo.value.alert == AlertDescription.ILLEGAL_PARAMETER


def test_extensions_duplicate_unknown_type_is_illegal_parameter() -> None:
    data = _block_of(_raw_ext(0x1234, b""), _raw_ext(0x1234, b"x"))
    with pytest.raises(IllegalParameter):
        _parse_block(data, EE)
    data = _block_of(_raw_ext(0x0A0A, b""), _raw_ext(0x0A0A, b""))
    with pytest.raises(IllegalParameter):
        _parse_block(data, CH)


def test_extensions_duplicate_detected_in_every_context() -> None:
    for context in ExtensionContext:
        data = _block_of(_raw_ext(0xFFFE, b""), _raw_ext(0xFFFE, b""))
        with pytest.raises(IllegalParameter):
            _parse_block(data, context)


def test_extensions_duplicate_reported_before_a_later_error() -> None:
    # Duplicates are found after the walk; an error the walk meets later must not win
    # over a duplicate before it (or over a malformed body that is itself a duplicate).
    bad_groups = _raw_ext(0x000A, b"\x00\x03\x00\x17\x00")  # odd list length
    short = b"\x00\x2b\x00\x09\x04"  # supported_versions, body cut short
    for tail in (bad_groups, short, b"\x00\x2b\x00"):
        data = _block_of(_raw_ext(0xFFFE, b""), _raw_ext(0xFFFE, b""), tail)
        with pytest.raises(IllegalParameter, match="duplicate"):
            _parse_block(data, CH)
    sni = x.ServerName("a.example")
    data = _block([sni, x.ExtendedMasterSecret()])[2:]
    with pytest.raises(IllegalParameter, match="duplicate server_name") as excinfo:
        _parse_block(_block_of(data, _raw_ext(0x0000, b"\x00")), CH)
    assert excinfo.value.__context__ is None
    # The error first, then the duplicate: the error wins, as before.
    with pytest.raises(DecodeError):
        _parse_block(_block_of(bad_groups, _raw_ext(0xFFFE, b""), _raw_ext(0xFFFE, b"")), CH)
    # A body longer than the block, its type a repeat: the truncation is reported.
    with pytest.raises(DecodeError, match="truncated"):
        _parse_block(_block_of(_raw_ext(0xFFFE, b""), b"\xff\xfe\x00\x09\x04"), CH)


def _psk() -> x.PreSharedKeyClientHello:
    return x.PreSharedKeyClientHello((x.PskIdentity(b"id", 5),), (bytes(32),))


def test_extensions_psk_not_last_is_illegal_parameter() -> None:
    data = _block([x.ServerName("a"), _psk(), x.PskKeyExchangeModes(
        (PskKeyExchangeMode.PSK_DHE_KE,))])
    with pytest.raises(IllegalParameter, match="last") as excinfo:
        _parse_block(data, CH)
    assert excinfo.value.alert == AlertDescription.ILLEGAL_PARAMETER
    # not last because an unknown extension follows: still illegal
    data = _block([_psk(), x.UnknownExtension(ExtensionType(0xDADA), b"")])
    with pytest.raises(IllegalParameter):
        _parse_block(data, CH)


def test_extensions_psk_last_is_fine() -> None:
    exts: list[Extension] = [x.ServerName("a"), _psk()]
    assert _parse_block(_block(exts), CH) == tuple(exts)
    assert _parse_block(_block([_psk()]), CH) == (_psk(),)


def test_extensions_psk_position_only_matters_in_client_hello() -> None:
    exts: list[Extension] = [x.PreSharedKeyServerHello(0),
                             x.SupportedVersionsServerHello(ProtocolVersion.TLS13)]
    assert _parse_block(_block(exts), SH) == tuple(exts)


def test_extensions_empty_block() -> None:
    assert _parse_block(b"\x00\x00", CH) == ()
    assert _block([]) == b"\x00\x00"


# -- unknown, GREASE and context-less forms ------------------------------------------------


def test_extensions_unknown_type_kept_raw() -> None:
    data = _block_of(_raw_ext(0x7777, b"\x01\x02\x03"), _raw_ext(0xFE0D, b"ech"))
    parsed = _parse_block(data, CH)
    assert parsed == (x.UnknownExtension(ExtensionType(0x7777), b"\x01\x02\x03"),
                      x.UnknownExtension(ExtensionType.ENCRYPTED_CLIENT_HELLO, b"ech"))
    assert not parsed[0].extension_type.known
    assert _block(list(parsed)) == data


def test_extensions_grease_types_survive() -> None:
    grease = [0x0A0A, 0x1A1A, 0x2A2A, 0xFAFA]
    data = _block_of(*(_raw_ext(g, bytes([i])) for i, g in enumerate(grease)))
    parsed = _parse_block(data, CH)
    assert [int(e.extension_type) for e in parsed] == grease
    assert all(str(e.extension_type).startswith("GREASE_") for e in parsed)
    assert _block(list(parsed)) == data


def test_extensions_grease_values_inside_bodies_survive() -> None:
    groups = x.SupportedGroups((NamedGroup(0xBABA), NamedGroup.X25519))
    versions = x.SupportedVersionsClientHello((ProtocolVersion(0x5A5A), ProtocolVersion.TLS13))
    shares = x.KeyShareClientHello((x.KeyShareEntry(NamedGroup(0xBABA), b"\x00"),))
    data = _block([groups, versions, shares])
    parsed = _parse_block(data, CH)
    assert _block(list(parsed)) == data
    sg = x.find_extension(parsed, x.SupportedGroups)
    assert sg is not None and str(sg.named_group_list[0]) == "GREASE_0xbaba"


@pytest.mark.parametrize(("ext_type", "context"), [
    (ExtensionType.KEY_SHARE, EE),
    (ExtensionType.KEY_SHARE, CR),
    (ExtensionType.SUPPORTED_VERSIONS, EE),
    (ExtensionType.SIGNATURE_ALGORITHMS, EE),
    (ExtensionType.PRE_SHARED_KEY, HRR),
    (ExtensionType.COOKIE, SH),
    (ExtensionType.PADDING, SH),
    (ExtensionType.EARLY_DATA, CT),
    (ExtensionType.STATUS_REQUEST, EE),
])
def test_extensions_known_type_without_form_in_context_kept_raw(
    ext_type: ExtensionType, context: ExtensionContext
) -> None:
    data = _block_of(_raw_ext(ext_type, b"\xde\xad"))
    parsed = _parse_block(data, context)
    assert parsed == (x.UnknownExtension(ext_type, b"\xde\xad"),)
    assert _block(list(parsed)) == data


def test_extensions_undefined_form_kept_raw() -> None:
    # server_name with a name_type other than host_name (RFC 6066 §3: 16-bit length)
    sni = bytes.fromhex("0008 01 0005 6162636465".replace(" ", ""))
    assert _parse_block(_block_of(_raw_ext(0, sni)), CH) == (
        x.UnknownExtension(ExtensionType.SERVER_NAME, sni),)
    # status_request with a status_type other than ocsp
    sr = b"\x02\x00\x00\x00\x00"
    assert _parse_block(_block_of(_raw_ext(5, sr)), CH) == (
        x.UnknownExtension(ExtensionType.STATUS_REQUEST, sr),)
    cs = b"\x02\x00\x00\x01\xaa"
    assert _parse_block(_block_of(_raw_ext(5, cs)), CT) == (
        x.UnknownExtension(ExtensionType.STATUS_REQUEST, cs),)
    # a direct parse_body call sees a DecodeError
    with pytest.raises(DecodeError):
        x.ServerName.parse_body(sni, CH)


def test_extensions_server_name_unknown_type_still_validates_structure() -> None:
    bad = bytes.fromhex("0008 01 0009 6162636465".replace(" ", ""))
    with pytest.raises(DecodeError):
        _parse_block(_block_of(_raw_ext(0, bad)), CH)


def test_extensions_context_selects_form() -> None:
    share = x.KeyShareEntry(NamedGroup.X25519, bytes(32))
    ch = _block([x.KeyShareClientHello((share,))])
    sh = _block([x.KeyShareServerHello(share)])
    hrr = _block([x.KeyShareHelloRetryRequest(NamedGroup.X25519)])
    assert isinstance(_parse_block(ch, CH)[0], x.KeyShareClientHello)
    assert isinstance(_parse_block(sh, SH)[0], x.KeyShareServerHello)
    assert isinstance(_parse_block(hrr, HRR)[0], x.KeyShareHelloRetryRequest)
    with pytest.raises(DecodeError):
        _parse_block(sh, CH)


# -- helpers --------------------------------------------------------------------------------


def test_extensions_find() -> None:
    exts: tuple[Extension, ...] = (
        x.ServerName("a"),
        x.UnknownExtension(ExtensionType(0x9999), b""),
        x.SupportedGroups((NamedGroup.X25519,)),
    )
    sg = x.find_extension(exts, x.SupportedGroups)
    assert sg is not None and sg.named_group_list == (NamedGroup.X25519,)
    assert x.find_extension(exts, x.Cookie) is None
    assert x.find_extension_type(exts, ExtensionType.SERVER_NAME) == x.ServerName("a")
    assert x.find_extension_type(exts, ExtensionType(0x9999)) == exts[1]
    assert x.find_extension_type(exts, ExtensionType.COOKIE) is None


def test_extensions_binders_length_matches_serialization() -> None:
    for sample in SAMPLES:
        ext = sample.ext
        if isinstance(ext, x.PreSharedKeyClientHello):
            w = Writer()
            ext.write_binders(w)
            assert ext.binders_length() == len(w.getvalue())
            assert ext.serialize_body().endswith(w.getvalue())


def test_extensions_key_share_share_for() -> None:
    ks = x.KeyShareClientHello((x.KeyShareEntry(NamedGroup.X25519, b"a"),
                                x.KeyShareEntry(NamedGroup.SECP256R1, b"b")))
    assert ks.share_for(NamedGroup.SECP256R1) == x.KeyShareEntry(NamedGroup.SECP256R1, b"b")
    assert ks.share_for(NamedGroup.X448) is None


def test_extensions_small_accessors() -> None:
    assert x.MaxFragmentLength(1).length == 512
    assert x.MaxFragmentLength(4).length == 4096
    assert x.ApplicationLayerProtocolNegotiation((b"h2",)).selected == b"h2"
    assert x.ext_name(ExtensionType.KEY_SHARE) == "key_share"
    assert x.ext_name(ExtensionType(0x0A0A)).startswith("GREASE")


def test_extensions_are_frozen() -> None:
    ext = x.Cookie(b"abc")
    with pytest.raises(AttributeError):
        ext.cookie = b"x"  # type: ignore[misc]


def test_status_request_empty_in_certificate_request() -> None:
    # RFC 8446 §4.4.2.1: an empty status_request in CertificateRequest asks for the
    # client's OCSP response (gnutls-serv sends it by default).
    from tlsmith.codec.extensions import ExtensionContext, StatusRequest

    ext = StatusRequest.parse_body(b"", ExtensionContext.CERTIFICATE_REQUEST)
    assert ext == StatusRequest(empty=True)
    assert ext.serialize_body() == b""


# -- TLS 1.2-only ClientHello extensions with a bad body -----------------------------------

BAD_TLS12_ONLY = [
    (ExtensionType.EC_POINT_FORMATS, b"\x05\x00"),  # says 5 formats, has 1
    (ExtensionType.EXTENDED_MASTER_SECRET, b"\x00"),  # RFC 7627 §5.1: empty
    (ExtensionType.ENCRYPT_THEN_MAC, b"junk"),  # RFC 7366 §2: empty
    (ExtensionType.RENEGOTIATION_INFO, b"\x03\x00"),
]


def _hello(*raw_exts: bytes) -> bytes:
    return (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + _block_of(*raw_exts))


def _server_hello(*raw_exts: bytes) -> bytes:
    return b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\xc0\x2f" + b"\x00" + _block_of(*raw_exts)


def test_tls12_only_bad_body_kept_in_client_hello() -> None:
    from tlsmith.codec.messages import ClientHello

    raws = [_raw_ext(t, body) for t, body in BAD_TLS12_ONLY]
    body = _hello(_raw_ext(ExtensionType.SUPPORTED_GROUPS, b"\x00\x02\x00\x1d"), *raws)
    hello = ClientHello.parse_body(body)
    assert hello.serialize_body() == body  # transcript stays byte-exact
    assert ClientHello.parse_body(hello.serialize_body()) == hello
    malformed = [e for e in hello.extensions if isinstance(e, x.MalformedExtension)]
    assert [(e.extension_type, e.data) for e in malformed] == BAD_TLS12_ONLY
    # a TLS 1.3 server looks them up by class and does not find them
    for cls in (x.ECPointFormats, x.ExtendedMasterSecret, x.EncryptThenMac,
                x.RenegotiationInfo):
        assert x.find_extension(hello.extensions, cls) is None
    assert x.find_extension(hello.extensions, x.SupportedGroups) is not None
    # a TLS 1.2 server refuses them: decode_error naming the first one
    with pytest.raises(DecodeError, match="ec_point_formats") as excinfo:
        x.require_well_formed(hello.extensions)
    assert excinfo.value.alert == AlertDescription.DECODE_ERROR


@pytest.mark.parametrize(("ext_type", "body"), BAD_TLS12_ONLY,
                         ids=[t.name for t, _ in BAD_TLS12_ONLY])
def test_tls12_only_bad_body_each(ext_type: ExtensionType, body: bytes) -> None:
    from tlsmith.codec.messages import ClientHello, ServerHello

    _assert_kept_malformed(ext_type, body)
    hello = ClientHello.parse_body(_hello(_raw_ext(ext_type, body)))
    assert hello.serialize_body() == _hello(_raw_ext(ext_type, body))
    cls = x.registered_class(ext_type, CH)
    assert cls is not None and x.find_extension(hello.extensions, cls) is None
    with pytest.raises(DecodeError, match=x.ext_name(ext_type)):
        x.require_well_formed(hello.extensions)
    # RFC 8446 §4.1.3 / RFC 5246 §7.4.1.4: a client still refuses the body in a ServerHello
    with pytest.raises(DecodeError, match=x.ext_name(ext_type)):
        ServerHello.parse_body(_server_hello(_raw_ext(ext_type, body)))
    with pytest.raises(DecodeError):
        _parse_block(_block_of(_raw_ext(ext_type, body)), SH)


def test_tls12_only_well_formed_passes() -> None:
    exts: list[Extension] = [
        x.ECPointFormats((ECPointFormat.UNCOMPRESSED,)), x.ExtendedMasterSecret(),
        x.EncryptThenMac(), x.RenegotiationInfo(b""), x.SessionTicket(b"t")]
    parsed = _parse_block(_block(exts), CH)
    assert parsed == tuple(exts)
    x.require_well_formed(parsed)  # no error
    x.require_well_formed(())
    assert x.find_extension(parsed, x.ExtendedMasterSecret) == x.ExtendedMasterSecret()


def test_tls12_only_other_client_hello_extensions_still_fail() -> None:
    # only the TLS 1.2-only types are spared; everything else still fails the parse
    for ext_type, body in [(ExtensionType.SUPPORTED_GROUPS, b"\x00\x03\x00\x1d\x00"),
                           (ExtensionType.SIGNATURE_ALGORITHMS, b"\x00"),
                           (ExtensionType.SUPPORTED_VERSIONS, b"\x05\x03\x04")]:
        with pytest.raises(DecodeError):
            _parse_block(_block_of(_raw_ext(ext_type, body)), CH)
    # a non-DecodeError (a value outside the enumeration) is not swallowed either
    with pytest.raises(IllegalParameter):
        _parse_block(_block_of(_raw_ext(ExtensionType.MAX_FRAGMENT_LENGTH, b"\x09")), CH)


def test_tls12_only_duplicates_still_detected() -> None:
    good = _raw_ext(ExtensionType.EC_POINT_FORMATS, b"\x01\x00")
    bad = _raw_ext(ExtensionType.EC_POINT_FORMATS, b"\x05\x00")
    for first, second in [(bad, good), (good, bad), (bad, bad)]:
        with pytest.raises(IllegalParameter, match="duplicate ec_point_formats"):
            _parse_block(_block_of(first, second), CH)
    ems = _raw_ext(ExtensionType.EXTENDED_MASTER_SECRET, b"\x00")
    with pytest.raises(IllegalParameter, match="duplicate extended_master_secret"):
        _parse_block(_block_of(ems, ems), CH)


def test_tls12_only_malformed_is_frozen_and_raw() -> None:
    ext = x.MalformedExtension(ExtensionType.EXTENDED_MASTER_SECRET, b"\x01", "why")
    assert ext.serialize_body() == b"\x01"
    assert x.find_extension_type((ext,), ExtensionType.EXTENDED_MASTER_SECRET) is ext
    with pytest.raises(AttributeError):
        ext.data = b""  # type: ignore[misc]
    with pytest.raises(DecodeError, match="extended_master_secret extension: why"):
        x.require_well_formed([ext])


def test_in_place_writers_match_the_writer_forms() -> None:
    """pre_shared_key and key_share are written straight into the Writer's buffer: the
    same bytes, and the same error after the same partial output, as Writer.vector /
    opaque / u16 / u32 give."""
    from tlsmith.codec.extensions_base import write_opaque_list

    def reference(e: Any, w: Writer) -> None:
        if isinstance(e, x.PreSharedKeyClientHello):
            with w.vector(2):
                for ident in e.identities:
                    w.opaque(2, ident.identity)
                    w.u32(ident.obfuscated_ticket_age)
            write_opaque_list(w, 2, 1, e.binders)
        else:
            with w.vector(2):
                for entry in e.client_shares:
                    w.u16(entry.group)
                    w.opaque(2, entry.key_exchange)

    def run(write: Any, e: Any) -> tuple[Any, ...]:
        w = Writer()
        try:
            write(e, w)
        except Exception as exc:  # (the error and the partial output are compared)
            return (type(exc), str(exc), w.getvalue())
        return ("ok", w.getvalue())

    psk, ident = x.PreSharedKeyClientHello, x.PskIdentity
    share, shares = x.KeyShareEntry, x.KeyShareClientHello
    cases: list[Any] = [
        psk((ident(b"id", 5),), (b"b" * 32,)),
        psk((ident(b"a" * 100, 2**32 - 1), ident(b"b", 0)), (b"x" * 48, b"y" * 32)),
        psk((ident(b"a" * 70000, 1),), (b"b" * 32,)),
        psk((ident(b"a", 2**32),), (b"b",)),
        psk((ident(b"a", 1),), (b"b" * 256,)),
        psk((ident(b"a" * 30000, 1),) * 3, (b"b",)),
        psk((ident(b"a", 1),), (b"b" * 255,) * 300),
        shares((share(NamedGroup.X25519, b"a" * 32), share(NamedGroup.SECP256R1, b"c" * 65))),
        shares((share(NamedGroup.X25519, b"a" * 70000),)),
        shares((share(70000, b"a"),)),  # type: ignore[arg-type]
        shares((share(NamedGroup.X25519, b"a" * 30000),) * 3),
    ]
    for e in cases:
        assert run(lambda e, w: e.write_body(w), e) == run(reference, e), e


def test_client_hello_leading_run_reused_only_when_identical() -> None:
    # A ClientHello's leading extensions are kept parsed (with their bytes) and taken
    # again only for a block that starts with the very same bytes and holds them whole.
    run = [x.ServerName("run.example"),
           x.SupportedGroups((NamedGroup.X25519, NamedGroup.SECP256R1)),
           x.SignatureAlgorithms((SignatureScheme.ECDSA_SECP256R1_SHA256,)),
           x.ExtendedMasterSecret()]
    share = x.KeyShareClientHello((x.KeyShareEntry(NamedGroup.X25519, bytes(32)),))
    data = _block([*run, share])
    first = _parse_block(data, CH)
    assert first == (*run, share)
    assert any(kept == tuple(run) for _, kept in x._RUNS.values())
    assert _parse_block(data, CH) == first  # (the second time from the kept run)
    # Same first bytes, another signature_algorithms later in the run: parsed as sent.
    other = x.SignatureAlgorithms((SignatureScheme.ED25519,))
    assert _parse_block(_block([*run[:2], other, *run[3:], share]), CH)[2] == other
    # The block ends inside the kept run: the truncation is reported as before.
    body = data[2:]
    with pytest.raises(DecodeError, match="truncated"):
        _parse_block(_block_of(body[:40]), CH)
    # A duplicate after the kept run is still found.
    with pytest.raises(IllegalParameter, match="duplicate extended_master_secret"):
        _parse_block(_block([*run, x.ExtendedMasterSecret()]), CH)


def test_pre_shared_key_fast_paths_agree_with_the_checked_reader() -> None:
    """pre_shared_key is read in place (one identity and binder: two struct reads; more:
    a walk); anything else goes to the checked reader. Every body changed, cut or grown
    gives what the checked reader gives: the same extension, or the same error."""
    psk, ident = x.PreSharedKeyClientHello, x.PskIdentity

    def outcome(parse: Any, body: bytes) -> object:
        try:
            return parse(memoryview(body))
        except Exception as exc:  # (the comparison is the test)
            return type(exc), str(exc)

    def checked(body: memoryview) -> object:
        return psk._parse_checked(body)

    def fast(body: memoryview) -> object:
        return psk.parse_body(body, CH)

    for e in (psk((ident(b"t" * 120, 0xDEADBEEF),), (b"b" * 32,)),
              psk((ident(b"i", 0),), (b"b" * 48,)),
              psk((ident(b"a" * 7, 1), ident(b"b", 2)), (b"x" * 32, b"y" * 48))):
        w = Writer()
        e.write_body(w)
        body = w.getvalue()
        assert fast(memoryview(body)) == e
        variants = [body[:cut] for cut in range(len(body))] + [body + b"\x00"]
        for i in range(len(body)):
            for value in (0, 1, 6, 7, 0x20, 0x21, 0xFF, body[i] ^ 0x01):
                variants.append(body[:i] + bytes((value,)) + body[i + 1:])
        for variant in variants:
            assert outcome(fast, variant) == outcome(checked, variant), variant.hex()
