"""The TLS 1.3 server flight's shortcuts give exactly what the generic code gives."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.codec.messages import ServerHello
from tlsmith.crypto.transcript import Transcript
from tlsmith.handshake.server13 import server_hello13_wire


def _generic(random: bytes, session_id: bytes, suite: int, group: int | None,
             share: bytes | None, psk_index: int | None) -> bytes:
    exts: list[ext.Extension] = [ext.SupportedVersionsServerHello(ProtocolVersion.TLS13)]
    if share is not None:
        assert group is not None
        exts.append(ext.KeyShareServerHello(ext.KeyShareEntry(NamedGroup(group), share)))
    if psk_index is not None:
        exts.append(ext.PreSharedKeyServerHello(psk_index))
    return ServerHello(ProtocolVersion.TLS12, random, session_id, CipherSuite(suite), 0,
                       tuple(exts)).serialize()


@given(random=st.binary(min_size=32, max_size=32),
       session_id=st.binary(max_size=32),
       suite=st.sampled_from([0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0xABCD]),
       group=st.sampled_from([0x001D, 0x0017, 0x11EC, 0x0A0A]),
       share=st.none() | st.binary(min_size=1, max_size=1300),
       psk_index=st.none() | st.integers(min_value=0, max_value=0xFFFF))
def test_server_hello13_wire_is_the_message_serialized(
        random: bytes, session_id: bytes, suite: int, group: int, share: bytes | None,
        psk_index: int | None) -> None:
    assert (server_hello13_wire(random, session_id, suite, group, share, psk_index)
            == _generic(random, session_id, suite, group, share, psk_index))


@pytest.mark.parametrize(("random", "session_id", "share"), [
    (bytes(31), b"", b"k"),  # a random of the wrong length (an injected ServerConfig.random)
    (bytes(32), bytes(33), b"k"),  # a session id too long
    (bytes(32), b"", bytes(0x10000)),  # a key share too long for its length prefix
])
def test_server_hello13_wire_refuses_what_serialize_refuses(
        random: bytes, session_id: bytes, share: bytes) -> None:
    """The flight then builds the message, whose serialization raises as it always did."""
    assert server_hello13_wire(random, session_id, 0x1301, 0x001D, share, None) is None
    with pytest.raises(ValueError):
        _generic(random, session_id, 0x1301, 0x001D, share, None)


@pytest.mark.parametrize("keep_raw", [False, True])
@pytest.mark.parametrize("hash_first", [False, True])
def test_update_and_digest(keep_raw: bool, hash_first: bool) -> None:
    a, b = Transcript(keep_raw=keep_raw), Transcript(keep_raw=keep_raw)
    for t in (a, b):
        if hash_first:
            t.set_hash("sha256")
        t.update(b"first")
    if not hash_first:
        with pytest.raises(Exception, match="before the hash is known"):
            a.update_and_digest(b"second")
        return
    b.update(b"second")
    assert a.update_and_digest(b"second") == b.digest() == hashlib.sha256(
        b"firstsecond").digest()
    assert a.message_count == b.message_count == 2
    if keep_raw:
        assert a.raw() == b.raw() == b"firstsecond"


def test_encrypted_extensions_cache_gives_the_same_message() -> None:
    """Cached EncryptedExtensions (keyed by the SNI acknowledgement, ALPN, 0-RTT) are the
    messages built from scratch; ALPS and certificate type answers are never cached."""
    from tlsmith.crypto.suites import suite_info
    from tlsmith.handshake import server13
    from tlsmith.handshake.server13 import Choice, _encrypted_extensions

    suite = suite_info(CipherSuite.TLS_AES_128_GCM_SHA256)
    assert suite is not None
    server13._EE_CACHE.clear()
    for name, matched, alpn, early in [("a.example", True, None, False),
                                       ("a.example", False, "h2", False),
                                       (None, False, "http/1.1", True),
                                       (None, False, None, False)]:
        choice = Choice(suite, NamedGroup.X25519, b"k", None, None, alpn, name, matched,
                        early_data=early)
        want: list[ext.Extension] = []
        if name and matched:
            want.append(ext.ServerName(None))
        if alpn is not None:
            want.append(ext.ApplicationLayerProtocolNegotiation((alpn.encode(),)))
        if early:
            want.append(ext.EarlyDataIndication())
        for _ in range(2):  # built, then from the cache
            ee, raw = _encrypted_extensions(None, choice, None, None)  # type: ignore[arg-type]
            assert ee.extensions == tuple(want)
            assert raw == ee.serialize()
    assert len(server13._EE_CACHE) == 4
    typed = Choice(suite, NamedGroup.X25519, b"k", None, None, None, None, False,
                   server_cert_types=(server13.CertificateType.RAW_PUBLIC_KEY,))
    ee, _ = _encrypted_extensions(None, typed, server13.CertificateType.RAW_PUBLIC_KEY,  # type: ignore[arg-type]
                                  None)
    assert ee.extensions == (ext.ServerCertificateTypeChosen(
        server13.CertificateType.RAW_PUBLIC_KEY),)
    assert len(server13._EE_CACHE) == 4
