"""The TLS 1.3 key schedule and transcript against RFC 8448, byte for byte.

Every input and expected value is parsed from the RFC's text (tests/rfc8448.py): the
private keys, the handshake messages, every secret, key, IV, Finished and binder. The
test recomputes the schedule with ``tlsmith.crypto.schedule13`` and the transcript hashes
with ``tlsmith.crypto.transcript`` from the handshake messages printed in the trace.

Sections: §3 Simple 1-RTT Handshake, §4 Resumed 0-RTT Handshake (PSK from §3's ticket),
§5 HelloRetryRequest (message_hash substitution, RFC 8446 §4.4.1).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rich.console import Console

from rfc8448 import (
    SECTION_HELLO_RETRY_REQUEST,
    SECTION_RESUMED_0RTT,
    SECTION_SIMPLE_1RTT,
    Step,
    Trace,
    load_section,
    rfc_path,
)
from tlsmith import demo_keyschedule
from tlsmith.codec.buffer import Reader
from tlsmith.codec.enums import CipherSuite, HandshakeType
from tlsmith.crypto import schedule13 as ks
from tlsmith.crypto.transcript import Transcript, message_hash

SECTIONS = [SECTION_SIMPLE_1RTT, SECTION_RESUMED_0RTT, SECTION_HELLO_RETRY_REQUEST]

# All three traces negotiate TLS_AES_128_GCM_SHA256 (checked against the ServerHello in
# test_server_hello_selects_aes_128_gcm_sha256); RFC 8446 §B.4 gives its hash and sizes.
HASH = "sha256"
KEY_LEN = 16
IV_LEN = 12


# -- reading the trace ------------------------------------------------------------------


def steps_with_values(trace: Trace, description: str) -> list[Step]:
    """Every step (either actor) with this description that prints values."""
    found = [
        step
        for actor in ("client", "server")
        for step in trace.find_all(actor, description)
        if step.values
    ]
    assert found, f"RFC 8448 §{trace.section}: no step {description!r} with values"
    return found


def the_step(trace: Trace, description: str) -> Step:
    """The single step with values of that description (it must be unique)."""
    found = steps_with_values(trace, description)
    assert len(found) == 1, f"{description!r}: {len(found)} steps with values"
    return found[0]


def parse_server_hello_suite(server_hello: bytes) -> CipherSuite:
    # RFC 8446 §4.1.3: legacy_version, random[32], legacy_session_id_echo<0..32>, cipher_suite
    reader = Reader(server_hello[4:])
    reader.u16()
    reader.raw(32)
    reader.opaque(1)
    return CipherSuite(reader.u16())


def parse_ticket_nonce(new_session_ticket: bytes) -> bytes:
    # RFC 8446 §4.6.1: ticket_lifetime u32, ticket_age_add u32, ticket_nonce<0..255>, ...
    reader = Reader(new_session_ticket[4:])
    reader.u32()
    reader.u32()
    return reader.opaque(1)


def x25519_shared(private: bytes, peer_public: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    return key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))


def x25519_public(private: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def p256_private(private: bytes) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(private, "big"), ec.SECP256R1())


def p256_shared(private: bytes, peer_public: bytes) -> bytes:
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public)
    return p256_private(private).exchange(ec.ECDH(), peer)


def p256_public(private: bytes) -> bytes:
    return p256_private(private).public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )


# -- recomputing each handshake ------------------------------------------------------------


@dataclass
class Handshake:
    """What tlsmith computes for one trace, next to the trace itself."""

    trace: Trace
    psk: bytes | None
    client_hello: bytes  # the (last) ClientHello as sent, binders included
    shared_secret: bytes
    early: ks.EarlySecret
    handshake: ks.HandshakeSecret
    master: ks.MasterSecret
    transcript_hashes: dict[str, bytes] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)


def resumption_psk_from_section3() -> bytes:
    """RFC 8446 §4.6.1: the PSK of §3's ticket, from its resumption_master_secret and the
    ticket_nonce inside §3's NewSessionTicket."""
    hs3 = handshake(SECTION_SIMPLE_1RTT)
    nonce = parse_ticket_nonce(hs3.trace.message("server", "NewSessionTicket"))
    return ks.resumption_psk(HASH, hs3.secrets["res master"], nonce)


@cache
def handshake(section: int) -> Handshake:
    trace = load_section(section)
    resumed = section == SECTION_RESUMED_0RTT
    hrr = section == SECTION_HELLO_RETRY_REQUEST
    nth_hello = 1 if hrr else 0

    # Key exchange: x25519 in §3/§4, P-256 after the HelloRetryRequest in §5.
    curve = "P-256" if hrr else "x25519"
    client_kp = trace.find("client", f"create an ephemeral {curve} key pair")
    server_kp = trace.find("server", f"create an ephemeral {curve} key pair")
    exchange: Callable[[bytes, bytes], bytes] = p256_shared if hrr else x25519_shared
    shared = exchange(client_kp["private key"], server_kp["public key"])

    psk = resumption_psk_from_section3() if resumed else None
    early = ks.EarlySecret.derive(HASH, psk)
    hs_secret = early.handshake_secret(shared)
    master = hs_secret.master_secret()

    if resumed:
        # The construct step prints the ClientHello truncated before its binders; the
        # record carries the complete one (RFC 8446 §4.2.11.2).
        client_hello = trace.find("client", "send handshake record")["payload"]
    else:
        client_hello = trace.message("client", "ClientHello", nth_hello)
    result = Handshake(trace, psk, client_hello, shared, early, hs_secret, master)
    ths = result.transcript_hashes
    secrets = result.secrets

    transcript = Transcript()
    if hrr:
        # RFC 8446 §4.4.1: ClientHello1 is replaced by message_hash, then HRR, ClientHello2.
        transcript.update(trace.message("client", "ClientHello", 0))
        transcript.set_hash(HASH)
        transcript.restart_for_hello_retry_request()
        transcript.update(trace.message("server", "ServerHello", 0))
    transcript.update(client_hello)
    transcript.set_hash(HASH)
    ths["ClientHello"] = transcript.digest()
    transcript.update(trace.message("server", "ServerHello", nth_hello))
    ths["ServerHello"] = transcript.digest()
    transcript.update(trace.message("server", "EncryptedExtensions"))
    if not resumed:
        transcript.update(trace.message("server", "Certificate"))
        transcript.update(trace.message("server", "CertificateVerify"))
    ths["before server Finished"] = transcript.digest()
    transcript.update(trace.message("server", "Finished"))
    ths["server Finished"] = transcript.digest()
    if resumed:
        transcript.update(trace.message("client", "EndOfEarlyData"))
    ths["before client Finished"] = transcript.digest()
    transcript.update(trace.message("client", "Finished"))
    ths["client Finished"] = transcript.digest()

    if resumed:
        secrets["binder key"] = early.binder_key(external=False)
        secrets["c e traffic"] = early.client_early_traffic_secret(ths["ClientHello"])
        secrets["e exp master"] = early.early_exporter_master_secret(ths["ClientHello"])
    secrets["c hs traffic"] = hs_secret.client_handshake_traffic_secret(ths["ServerHello"])
    secrets["s hs traffic"] = hs_secret.server_handshake_traffic_secret(ths["ServerHello"])
    secrets["c ap traffic"] = master.client_application_traffic_secret_0(ths["server Finished"])
    secrets["s ap traffic"] = master.server_application_traffic_secret_0(ths["server Finished"])
    secrets["exp master"] = master.exporter_master_secret(ths["server Finished"])
    secrets["res master"] = master.resumption_master_secret(ths["client Finished"])
    return result


def assert_expand_step(
    step: Step, prk: bytes, label: bytes, context: bytes, expanded: bytes
) -> None:
    """A printed HKDF-Expand-Label: PRK, hash (the context), info (HkdfLabel), expanded."""
    assert step["PRK"] == prk
    assert step["hash"] == context
    assert step["info"] == ks.hkdf_label(label, context, len(expanded))
    assert step["expanded"] == expanded


def assert_keys_step(step: Step, traffic_secret: bytes) -> None:
    """A printed "derive ... traffic keys" step: RFC 8446 §7.3 key and IV."""
    key, iv = ks.traffic_keys(HASH, traffic_secret, KEY_LEN, IV_LEN)
    assert step["PRK"] == traffic_secret
    assert step["key info"] == ks.hkdf_label(ks.LABEL_KEY, b"", KEY_LEN)
    assert step["key expanded"] == key
    assert step["iv info"] == ks.hkdf_label(ks.LABEL_IV, b"", IV_LEN)
    assert step["iv expanded"] == iv


# -- tests ------------------------------------------------------------------------------

all_sections = pytest.mark.parametrize("section", SECTIONS)


@all_sections
def test_server_hello_selects_aes_128_gcm_sha256(section: int) -> None:
    hs = handshake(section)
    nth = 1 if section == SECTION_HELLO_RETRY_REQUEST else 0
    server_hello = hs.trace.message("server", "ServerHello", nth)
    assert parse_server_hello_suite(server_hello) == CipherSuite.TLS_AES_128_GCM_SHA256


@all_sections
def test_ephemeral_public_keys_match_private_keys(section: int) -> None:
    trace = load_section(section)
    for actor in ("client", "server"):
        for curve, public in (("x25519", x25519_public), ("P-256", p256_public)):
            for step in trace.find_all(actor, f"create an ephemeral {curve} key pair"):
                assert public(step["private key"]) == step["public key"]


@all_sections
def test_ecdhe_shared_secret(section: int) -> None:
    hs = handshake(section)
    trace = hs.trace
    curve = "P-256" if section == SECTION_HELLO_RETRY_REQUEST else "x25519"
    exchange = p256_shared if section == SECTION_HELLO_RETRY_REQUEST else x25519_shared
    client = trace.find("client", f"create an ephemeral {curve} key pair")
    server = trace.find("server", f"create an ephemeral {curve} key pair")
    # Both sides agree, and the agreed value is the IKM of the handshake secret.
    assert exchange(server["private key"], client["public key"]) == hs.shared_secret
    assert the_step(trace, 'extract secret "handshake"')["IKM"] == hs.shared_secret


@all_sections
def test_early_secret(section: int) -> None:
    hs = handshake(section)
    step = the_step(hs.trace, 'extract secret "early"')
    assert step.notes["salt"] == "0 (all zero octets)"
    expected_ikm = hs.psk if hs.psk is not None else bytes(32)
    assert step["IKM"] == expected_ikm
    assert step["secret"] == hs.early.secret
    # RFC 8446 §7.1: the extraction spelled out.
    assert ks.hkdf_extract(HASH, bytes(32), step["IKM"]) == step["secret"]


@all_sections
def test_derived_secret_for_handshake(section: int) -> None:
    hs = handshake(section)
    for step in steps_with_values(hs.trace, 'derive secret for handshake "tls13 derived"'):
        derived = ks.derive_secret(HASH, hs.early.secret, ks.LABEL_DERIVED, ks.empty_hash(HASH))
        assert_expand_step(step, hs.early.secret, ks.LABEL_DERIVED, ks.empty_hash(HASH), derived)


@all_sections
def test_handshake_secret(section: int) -> None:
    hs = handshake(section)
    step = the_step(hs.trace, 'extract secret "handshake"')
    for derived in steps_with_values(hs.trace, 'derive secret for handshake "tls13 derived"'):
        assert step["salt"] == derived["expanded"]
    assert step["secret"] == hs.handshake.secret


@all_sections
def test_transcript_hash_through_server_hello(section: int) -> None:
    hs = handshake(section)
    for label in ("tls13 c hs traffic", "tls13 s hs traffic"):
        step = the_step(hs.trace, f'derive secret "{label}"')
        assert step["hash"] == hs.transcript_hashes["ServerHello"]


@all_sections
def test_handshake_traffic_secrets(section: int) -> None:
    hs = handshake(section)
    th = hs.transcript_hashes["ServerHello"]
    for name, label in (("c hs traffic", ks.LABEL_C_HS_TRAFFIC),
                        ("s hs traffic", ks.LABEL_S_HS_TRAFFIC)):
        step = the_step(hs.trace, f'derive secret "tls13 {name}"')
        assert_expand_step(step, hs.handshake.secret, label, th, hs.secrets[name])


@all_sections
def test_derived_secret_for_master_and_master_secret(section: int) -> None:
    hs = handshake(section)
    derived = ks.derive_secret(HASH, hs.handshake.secret, ks.LABEL_DERIVED, ks.empty_hash(HASH))
    step = the_step(hs.trace, 'derive secret for master "tls13 derived"')
    assert_expand_step(step, hs.handshake.secret, ks.LABEL_DERIVED, ks.empty_hash(HASH), derived)
    master = the_step(hs.trace, 'extract secret "master"')
    assert master["salt"] == derived
    assert master["IKM"] == bytes(32)
    assert master["secret"] == hs.master.secret


@all_sections
def test_server_finished(section: int) -> None:
    hs = handshake(section)
    th = hs.transcript_hashes["before server Finished"]
    base_key = hs.secrets["s hs traffic"]
    step = hs.trace.find("server", 'calculate finished "tls13 finished"')
    verify_data = ks.finished_verify_data(HASH, base_key, th)
    assert step["PRK"] == base_key
    assert step["hash"] == b""
    assert step["info"] == ks.hkdf_label(ks.LABEL_FINISHED, b"", 32)
    assert step["expanded"] == ks.finished_key(HASH, base_key)
    assert step["finished"] == verify_data
    message = hs.trace.message("server", "Finished")
    assert message[0] == HandshakeType.FINISHED
    assert message[4:] == verify_data


@all_sections
def test_client_finished(section: int) -> None:
    hs = handshake(section)
    th = hs.transcript_hashes["before client Finished"]
    base_key = hs.secrets["c hs traffic"]
    step = hs.trace.find("client", 'calculate finished "tls13 finished"')
    verify_data = ks.finished_verify_data(HASH, base_key, th)
    assert step["PRK"] == base_key
    assert step["expanded"] == ks.finished_key(HASH, base_key)
    assert step["finished"] == verify_data
    message = hs.trace.message("client", "Finished")
    assert message[0] == HandshakeType.FINISHED
    assert message[4:] == verify_data


@all_sections
def test_application_traffic_and_exporter_master_secrets(section: int) -> None:
    hs = handshake(section)
    th = hs.transcript_hashes["server Finished"]
    for name, label in (("c ap traffic", ks.LABEL_C_AP_TRAFFIC),
                        ("s ap traffic", ks.LABEL_S_AP_TRAFFIC),
                        ("exp master", ks.LABEL_EXP_MASTER)):
        step = the_step(hs.trace, f'derive secret "tls13 {name}"')
        assert_expand_step(step, hs.master.secret, label, th, hs.secrets[name])


@all_sections
def test_resumption_master_secret(section: int) -> None:
    hs = handshake(section)
    th = hs.transcript_hashes["client Finished"]
    step = the_step(hs.trace, 'derive secret "tls13 res master"')
    assert_expand_step(step, hs.master.secret, ks.LABEL_RES_MASTER, th, hs.secrets["res master"])


def own_or_peer_secret(hs: Handshake, step: Step, phase: str) -> bytes:
    """RFC 8446 §7.3: a side writes with its own traffic secret and reads with the peer's."""
    writer = step.actor if "write" in step.description else (
        "server" if step.actor == "client" else "client"
    )
    return hs.secrets[f"{writer[0]} {phase} traffic"]


@all_sections
def test_handshake_traffic_keys(section: int) -> None:
    hs = handshake(section)
    checked = 0
    for direction in ("write", "read"):
        description = f"derive {direction} traffic keys for handshake data"
        for actor in ("client", "server"):
            for step in hs.trace.find_all(actor, description):
                assert_keys_step(step, own_or_peer_secret(hs, step, "hs"))
                checked += 1
    # The server's write keys and the client's write keys are printed in every trace.
    assert checked >= 2


@all_sections
def test_application_traffic_keys(section: int) -> None:
    hs = handshake(section)
    description = "derive write traffic keys for application data"
    steps = steps_with_values(hs.trace, description)
    assert {step.actor for step in steps} == {"client", "server"}
    for step in steps:
        assert_keys_step(step, own_or_peer_secret(hs, step, "ap"))


# -- §3 only: the ticket; §4 only: PSK, binder, early data; §5 only: message_hash -------


def test_resumption_psk_from_ticket_nonce() -> None:
    hs = handshake(SECTION_SIMPLE_1RTT)
    step = the_step(hs.trace, 'generate resumption secret "tls13 resumption"')
    nonce = parse_ticket_nonce(hs.trace.message("server", "NewSessionTicket"))
    psk = ks.resumption_psk(HASH, hs.secrets["res master"], nonce)
    assert_expand_step(step, hs.secrets["res master"], ks.LABEL_RESUMPTION, nonce, psk)
    # §4 resumes with exactly this PSK.
    assert the_step(load_section(SECTION_RESUMED_0RTT), 'extract secret "early"')["IKM"] == psk


def test_psk_binder() -> None:
    hs = handshake(SECTION_RESUMED_0RTT)
    step = hs.trace.find("client", "calculate PSK binder")
    prefix = step["ClientHello prefix"]
    # The construct step prints the same truncated ClientHello.
    assert hs.trace.message("client", "ClientHello") == prefix
    # RFC 8446 §4.2.11.2: Transcript-Hash(Truncate(ClientHello1)); no hash chosen yet, so
    # the PSK's hash is named.
    binder_hash = Transcript().digest_with(prefix, hash_name=HASH)
    assert step["binder hash"] == binder_hash
    binder_key = hs.early.binder_key(external=False)
    assert step["PRK"] == binder_key
    assert step["expanded"] == ks.finished_key(HASH, binder_key)
    binder = ks.binder_value(HASH, binder_key, binder_hash)
    assert step["finished"] == binder
    # The full ClientHello is the prefix followed by the binders list holding the binder:
    # PskBinderEntry binders<33..2^16-1> with one opaque PskBinderEntry<32..255>.
    full = hs.client_hello
    assert full.startswith(prefix)
    binders = Reader(full[len(prefix):])
    with binders.vector(2) as entries:
        assert entries.opaque(1) == binder


def test_binder_key_external_label_differs() -> None:
    hs = handshake(SECTION_RESUMED_0RTT)
    external = hs.early.binder_key(external=True)
    assert external != hs.early.binder_key(external=False)
    assert external == ks.derive_secret(
        HASH, hs.early.secret, ks.LABEL_EXT_BINDER, ks.empty_hash(HASH)
    )


def test_early_traffic_secret_and_early_exporter() -> None:
    hs = handshake(SECTION_RESUMED_0RTT)
    th = hs.transcript_hashes["ClientHello"]
    assert th == hashlib.sha256(hs.client_hello).digest()
    assert_expand_step(the_step(hs.trace, 'derive secret "tls13 c e traffic"'),
                       hs.early.secret, ks.LABEL_C_E_TRAFFIC, th, hs.secrets["c e traffic"])
    assert_expand_step(the_step(hs.trace, 'derive secret "tls13 e exp master"'),
                       hs.early.secret, ks.LABEL_E_EXP_MASTER, th, hs.secrets["e exp master"])
    assert_keys_step(
        hs.trace.find("client", "derive write traffic keys for early application data"),
        hs.secrets["c e traffic"],
    )


def test_hello_retry_request_message_hash() -> None:
    hs = handshake(SECTION_HELLO_RETRY_REQUEST)
    trace = hs.trace
    client_hello1 = trace.message("client", "ClientHello", 0)
    hello_retry_request = trace.message("server", "ServerHello", 0)
    client_hello2 = trace.message("client", "ClientHello", 1)
    server_hello = trace.message("server", "ServerHello", 1)
    synthetic = message_hash(HASH, client_hello1)
    # RFC 8446 §4.4.1: message_hash(254) || 00 00 Hash.length || Hash(ClientHello1)
    assert synthetic[:1] == bytes([HandshakeType.MESSAGE_HASH])
    assert Reader(synthetic[1:4]).u24() == 32
    assert synthetic[4:] == hashlib.sha256(client_hello1).digest()
    spelled_out = hashlib.sha256(synthetic + hello_retry_request + client_hello2 + server_hello)
    assert hs.transcript_hashes["ServerHello"] == spelled_out.digest()
    # Without the substitution the trace's hash is not reproduced.
    naive = hashlib.sha256(client_hello1 + hello_retry_request + client_hello2 + server_hello)
    assert the_step(trace, 'derive secret "tls13 c hs traffic"')["hash"] != naive.digest()


def test_demo_walkthrough_matches_every_value() -> None:
    rows = demo_keyschedule.walkthrough_rows(load_section(SECTION_SIMPLE_1RTT))
    assert len(rows) >= 25
    assert [row.name for row in rows if not row.matches] == []
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None)
    demo_keyschedule.walkthrough(rfc_path(), console)
    text = out.getvalue()
    assert "✗" not in text
    assert text.count("✓") == len(rows)
    assert "client_handshake_traffic_secret" in text
    assert f"{len(rows)}/{len(rows)} values match" in text
