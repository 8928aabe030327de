"""Property tests (hypothesis) for the message and extension codec.

* Random valid ClientHello / ServerHello / Certificate / NewSessionTicket values
  round-trip: parse(serialize(v)) == v, and the bytes are identical.
* Any input to any parse_body either parses -- and then reserializes to exactly the same
  bytes (the codec is canonical) -- or raises a tlsmith ProtocolError; never IndexError,
  ValueError, UnicodeDecodeError, struct.error, ...
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsmith.codec import extensions as x
from tlsmith.codec import messages as m
from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import (
    CertificateStatusType,
    CipherSuite,
    ECPointFormat,
    ExtensionType,
    KeyUpdateRequest,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
)
from tlsmith.codec.extensions import Extension, ExtensionContext
from tlsmith.errors import ProtocolError

C = ExtensionContext
GREASE = [0x0A0A + 0x1010 * i for i in range(16)]

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
code16 = st.one_of(u16, st.sampled_from(GREASE))


def blob(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)


groups = code16.map(NamedGroup)
schemes = code16.map(SignatureScheme)
versions = code16.map(ProtocolVersion)
suites = code16.map(CipherSuite)
hostnames = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1,
                    max_size=40)
key_share_entry = st.builds(x.KeyShareEntry, groups, blob(1))


def _unique_groups(entries: list[x.KeyShareEntry]) -> bool:
    return len({e.group for e in entries}) == len(entries)


def _psk_client_hello() -> st.SearchStrategy[x.PreSharedKeyClientHello]:
    idents = st.lists(st.builds(x.PskIdentity, blob(1), u32), min_size=1, max_size=4)
    return idents.flatmap(lambda ids: st.builds(
        x.PreSharedKeyClientHello, st.just(tuple(ids)),
        st.lists(blob(32, 64), min_size=len(ids), max_size=len(ids)).map(tuple)))


def _ch_extension_strategies() -> list[st.SearchStrategy[Any]]:
    return [
        st.builds(x.ServerName, hostnames),
        st.builds(x.MaxFragmentLength, st.integers(1, 4)),
        st.builds(x.StatusRequest, st.lists(blob(1), max_size=3).map(tuple), blob()),
        st.builds(x.SupportedGroups, st.lists(groups, min_size=1, max_size=10).map(tuple)),
        st.builds(x.ECPointFormats,
                  st.lists(u8.map(ECPointFormat), min_size=1, max_size=4).map(tuple)),
        st.builds(x.SignatureAlgorithms, st.lists(schemes, min_size=1, max_size=10).map(tuple)),
        st.builds(x.SignatureAlgorithmsCert,
                  st.lists(schemes, min_size=1, max_size=10).map(tuple)),
        st.builds(x.ApplicationLayerProtocolNegotiation,
                  st.lists(blob(1, 20), min_size=1, max_size=4).map(tuple)),
        st.builds(x.Padding, st.integers(0, 300)),
        st.just(x.EncryptThenMac()),
        st.just(x.ExtendedMasterSecret()),
        st.builds(x.RecordSizeLimit, st.integers(64, 0xFFFF)),
        st.builds(x.SessionTicket, blob()),
        st.builds(x.RenegotiationInfo, blob(0, 36)),
        st.builds(x.SupportedVersionsClientHello,
                  st.lists(versions, min_size=1, max_size=8).map(tuple)),
        st.builds(x.Cookie, blob(1)),
        st.builds(x.CertificateAuthorities, st.lists(blob(1), min_size=1, max_size=3).map(tuple)),
        st.just(x.PostHandshakeAuth()),
        st.builds(x.KeyShareClientHello,
                  st.lists(key_share_entry, max_size=4).filter(_unique_groups).map(tuple)),
        st.builds(x.PskKeyExchangeModes,
                  st.lists(u8.map(PskKeyExchangeMode), min_size=1, max_size=3).map(tuple)),
        st.just(x.EarlyDataIndication()),
        _psk_client_hello(),
    ]


def unknown_extension(context: ExtensionContext) -> st.SearchStrategy[x.UnknownExtension]:
    return st.builds(
        x.UnknownExtension,
        code16.filter(lambda t: x.registered_class(t, context) is None).map(ExtensionType),
        blob(),
    )


def extension_block(
    context: ExtensionContext, known: list[st.SearchStrategy[Any]], max_size: int = 12
) -> st.SearchStrategy[tuple[Extension, ...]]:
    def arrange(exts: list[Extension]) -> tuple[Extension, ...]:
        # RFC 8446 §4.2.11: pre_shared_key goes last in a ClientHello
        psk = [e for e in exts if e.extension_type == ExtensionType.PRE_SHARED_KEY]
        rest = [e for e in exts if e.extension_type != ExtensionType.PRE_SHARED_KEY]
        return tuple(rest + psk)

    return st.lists(
        st.one_of(*known, unknown_extension(context)),
        max_size=max_size,
        unique_by=lambda e: int(e.extension_type),
    ).map(arrange)


client_hellos = st.one_of(
    st.builds(
        m.ClientHello,
        versions, blob(32, 32), blob(0, 32),
        st.lists(suites, min_size=1, max_size=30).map(tuple),
        st.lists(u8, min_size=1, max_size=4).map(tuple),
        extension_block(C.CLIENT_HELLO, _ch_extension_strategies()),
    ),
    st.builds(
        m.ClientHello,
        versions, blob(32, 32), blob(0, 32),
        st.lists(suites, min_size=1, max_size=30).map(tuple),
        st.lists(u8, min_size=1, max_size=4).map(tuple),
        st.just(()), st.just(False),
    ),
)

SH_EXTENSIONS: list[st.SearchStrategy[Any]] = [
    st.builds(x.SupportedVersionsServerHello, versions),
    st.builds(x.KeyShareServerHello, key_share_entry),
    st.builds(x.PreSharedKeyServerHello, u16),
    st.just(x.ServerName(None)),
    st.just(x.StatusRequest(empty=True)),
    st.builds(x.ApplicationLayerProtocolNegotiation, blob(1, 20).map(lambda b: (b,))),
    st.builds(x.RenegotiationInfo, blob(0, 24)),
    st.just(x.ExtendedMasterSecret()),
    st.just(x.SessionTicket()),
]
HRR_EXTENSIONS: list[st.SearchStrategy[Any]] = [
    st.builds(x.SupportedVersionsServerHello, versions),
    st.builds(x.KeyShareHelloRetryRequest, groups),
    st.builds(x.Cookie, blob(1)),
]

server_hellos = st.one_of(
    st.builds(m.ServerHello, versions, blob(32, 32).filter(
        lambda r: r != m.HELLO_RETRY_REQUEST_RANDOM), blob(0, 32), suites, u8,
        extension_block(C.SERVER_HELLO, SH_EXTENSIONS)),
    st.builds(m.ServerHello, versions, st.just(m.HELLO_RETRY_REQUEST_RANDOM), blob(0, 32),
              suites, u8, extension_block(C.HELLO_RETRY_REQUEST, HRR_EXTENSIONS)),
    st.builds(m.ServerHello, versions, blob(32, 32), blob(0, 32), suites, u8, st.just(()),
              st.just(False)),
)

certificates = st.builds(
    m.Certificate,
    blob(0, 255),
    st.lists(st.builds(m.CertificateEntry, blob(1, 300), extension_block(C.CERTIFICATE, [
        st.builds(x.CertificateStatusExtension, st.just(CertificateStatusType.OCSP), blob(1)),
    ], max_size=3)), max_size=4).map(tuple),
)

new_session_tickets = st.builds(
    m.NewSessionTicket, u32, u32, blob(0, 255), blob(1, 300),
    extension_block(C.NEW_SESSION_TICKET, [st.builds(x.EarlyDataIndication, u32)], max_size=3),
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _round_trip(msg: Any) -> None:
    body = msg.serialize_body()
    parsed = type(msg).parse_body(body)
    assert parsed == msg
    assert parsed.serialize_body() == body
    full = msg.serialize()
    assert m.parse_handshake_header(full) == (msg.msg_type, len(body))
    assert m.decode_handshake(msg.msg_type, full[4:]) == msg


@SETTINGS
@given(client_hellos)
def test_properties_client_hello_round_trip(ch: m.ClientHello) -> None:
    _round_trip(ch)


@SETTINGS
@given(server_hellos)
def test_properties_server_hello_round_trip(sh: m.ServerHello) -> None:
    _round_trip(sh)


@SETTINGS
@given(certificates)
def test_properties_certificate_round_trip(cert: m.Certificate) -> None:
    _round_trip(cert)


@SETTINGS
@given(new_session_tickets)
def test_properties_new_session_ticket_round_trip(nst: m.NewSessionTicket) -> None:
    _round_trip(nst)


@SETTINGS
@given(client_hellos)
def test_properties_client_hello_binders(ch: m.ClientHello) -> None:
    psk = ch.extensions[-1] if ch.extensions else None
    if not isinstance(psk, x.PreSharedKeyClientHello):
        return
    full = ch.serialize()
    assert ch.truncated_for_binders() == full[: len(full) - psk.binders_length()]
    rebound = ch.with_binders([bytes(len(b)) for b in psk.binders])
    assert rebound.truncated_for_binders() == ch.truncated_for_binders()


# -- every parser, arbitrary and mutated input ------------------------------------------------

Parser = Callable[[bytes], Any]

MESSAGE_PARSERS: dict[str, Parser] = {
    "ClientHello": m.ClientHello.parse_body,
    "ServerHello": m.ServerHello.parse_body,
    "EncryptedExtensions": m.EncryptedExtensions.parse_body,
    "CertificateRequest": m.CertificateRequest.parse_body,
    "Certificate": m.Certificate.parse_body,
    "CertificateVerify": m.CertificateVerify.parse_body,
    "Finished": m.Finished.parse_body,
    "NewSessionTicket": m.NewSessionTicket.parse_body,
    "KeyUpdate": m.KeyUpdate.parse_body,
    "EndOfEarlyData": m.EndOfEarlyData.parse_body,
    "HelloRequest": m.HelloRequest.parse_body,
    "ServerHelloDone": m.ServerHelloDone.parse_body,
    "Certificate12": m.Certificate12.parse_body,
    "CertificateRequest12": m.CertificateRequest12.parse_body,
    "ServerKeyExchangeECDHE": m.ServerKeyExchangeECDHE.parse_body,
    "ServerKeyExchangeECDHE-anon": lambda b: m.ServerKeyExchangeECDHE.parse_body(
        b, signed=False),
    "ServerKeyExchangeDHE": m.ServerKeyExchangeDHE.parse_body,
    "ServerKeyExchangeDHE-anon": lambda b: m.ServerKeyExchangeDHE.parse_body(b, signed=False),
    "ClientKeyExchangeECDHE": m.ClientKeyExchangeECDHE.parse_body,
    "ClientKeyExchangeDHE": m.ClientKeyExchangeDHE.parse_body,
    "ClientKeyExchangeRSA": m.ClientKeyExchangeRSA.parse_body,
    "NewSessionTicket12": m.NewSessionTicket12.parse_body,
    "CertificateStatus": m.CertificateStatus.parse_body,
}


def _extension_parsers() -> dict[str, Parser]:
    out: dict[str, Parser] = {}
    for context in ExtensionContext:
        for t in list(ExtensionType.__members__.values()):
            cls = x.registered_class(t, context)
            if cls is not None:
                out[f"{cls.__name__}-{context.value}"] = partial(cls.parse_body,
                                                                 context=context)
        out[f"parse_extensions-{context.value}"] = partial(_parse_block, context=context)
    return out


def _parse_block(data: bytes, context: ExtensionContext) -> tuple[Extension, ...]:
    with Reader(data) as r:
        return x.parse_extensions(r, context)


EXTENSION_PARSERS = _extension_parsers()


def _reserialize(value: Any) -> bytes:
    if isinstance(value, tuple):  # an extension block
        w = Writer()
        x.serialize_extensions(w, value)
        return w.getvalue()
    return bytes(value.serialize_body())


def _check_parser(parse: Parser, data: bytes) -> None:
    try:
        value = parse(data)
    except ProtocolError:
        return
    # the codec is canonical: whatever parses reserializes to the same bytes
    assert _reserialize(value) == data


@pytest.mark.parametrize("name", sorted(MESSAGE_PARSERS))
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_properties_message_parsers_raise_only_protocol_errors(name: str, data: bytes) -> None:
    _check_parser(MESSAGE_PARSERS[name], data)


@pytest.mark.parametrize("name", sorted(EXTENSION_PARSERS))
@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=120))
def test_properties_extension_parsers_raise_only_protocol_errors(name: str, data: bytes) -> None:
    _check_parser(EXTENSION_PARSERS[name], data)


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in edits:
        if not buf and kind != 1:
            continue
        i = pos % (len(buf) + (kind == 1))
        if kind == 0:
            buf[i] = value
        elif kind == 1:
            buf.insert(i, value)
        else:
            del buf[i]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 16), u8), min_size=1,
                 max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(client_hellos, server_hellos, certificates, new_session_tickets), edits)
def test_properties_mutated_messages_raise_only_protocol_errors(
    msg: Any, changes: list[tuple[int, int, int]]
) -> None:
    data = _mutate(msg.serialize_body(), changes)
    _check_parser(type(msg).parse_body, data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(*_ch_extension_strategies()), edits)
def test_properties_mutated_extensions_raise_only_protocol_errors(
    ext: Any, changes: list[tuple[int, int, int]]
) -> None:
    data = _mutate(ext.serialize_body(), changes)
    _check_parser(lambda b: type(ext).parse_body(b, C.CLIENT_HELLO), data)


@settings(max_examples=100, deadline=None)
@given(u8)
def test_properties_key_update_values(value: int) -> None:
    try:
        ku = m.KeyUpdate.parse_body(bytes([value]))
    except ProtocolError:
        assert value > 1
    else:
        assert ku.request_update in (KeyUpdateRequest.UPDATE_NOT_REQUESTED,
                                     KeyUpdateRequest.UPDATE_REQUESTED)
