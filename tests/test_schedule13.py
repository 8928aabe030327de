"""Unit tests for the TLS 1.3 key schedule primitives and the transcript, beyond RFC 8448.

HKDF is checked against RFC 5869 Appendix A, parsed from the RFC's text (no copied hex).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsmith.codec.enums import HandshakeType
from tlsmith.crypto import schedule13 as ks
from tlsmith.crypto.transcript import Transcript, message_hash
from tlsmith.errors import InternalError, ProtocolError

# -- RFC 5869 Appendix A, parsed -------------------------------------------------------


def rfc5869_path() -> Path:
    """RFC 5869 as published, kept in the repository (tests/vectors/README.md)."""
    return Path(__file__).resolve().parent / "vectors" / "rfc5869.txt"


@dataclasses.dataclass(frozen=True)
class HkdfCase:
    name: str
    hash_name: str
    ikm: bytes
    salt: bytes  # b"" for "not provided" and "(0 octets)" alike
    info: bytes
    length: int
    prk: bytes
    okm: bytes


def _hex_field(case: str, fields: dict[str, str], field: str) -> bytes:
    """``0x0b0b... (22 octets)`` -> bytes; ``(0 octets)`` and ``not provided`` -> b""."""
    value = fields[field]
    match = re.match(r"^0x([0-9a-f]+) \((\d+) octets\)$", value)
    if match:
        data = bytes.fromhex(match.group(1))
        assert len(data) == int(match.group(2)), (case, field)
        return data
    assert value == "(0 octets)" or value.startswith("not provided"), (case, field)
    return b""


def _hkdf_cases() -> list[HkdfCase]:
    text = rfc5869_path().read_text(encoding="utf-8")
    appendix = text[text.index("Appendix A.  Test Vectors") :]
    blocks = re.split(r"\n(?=A\.\d+\.\s+Test Case \d+)", appendix)[1:]
    cases = []
    for block in blocks:
        name = block.splitlines()[0].strip()
        fields: dict[str, str] = {}
        key: str | None = None
        for line in block.splitlines()[1:]:
            match = re.match(r"^   (\w+)\s*=\s*(.*)$", line)
            if match:
                key = match.group(1)
                fields[key] = match.group(2).strip()
            elif key and re.match(r"^ {10,}[0-9a-f]", line):
                fields[key] += line.strip()
            elif not line.strip() or line.startswith(("Krawczyk", "RFC 5869", "\f")):
                continue
            else:
                key = None

        cases.append(
            HkdfCase(
                name=name,
                hash_name=fields["Hash"].replace("-", "").lower(),
                ikm=_hex_field(name, fields, "IKM"),
                salt=_hex_field(name, fields, "salt"),
                info=_hex_field(name, fields, "info"),
                length=int(fields["L"]),
                prk=_hex_field(name, fields, "PRK"),
                okm=_hex_field(name, fields, "OKM"),
            )
        )
    return cases


HKDF_CASES = _hkdf_cases()


def test_rfc5869_vectors_parsed() -> None:
    assert len(HKDF_CASES) == 7
    assert {c.hash_name for c in HKDF_CASES} == {"sha256", "sha1"}
    assert all(c.okm and c.prk for c in HKDF_CASES)


@pytest.mark.parametrize("case", HKDF_CASES, ids=lambda c: c.name)
def test_hkdf_extract_rfc5869(case: HkdfCase) -> None:
    assert ks.hkdf_extract(case.hash_name, case.salt, case.ikm) == case.prk


@pytest.mark.parametrize("case", HKDF_CASES, ids=lambda c: c.name)
def test_hkdf_expand_rfc5869(case: HkdfCase) -> None:
    assert ks.hkdf_expand(case.hash_name, case.prk, case.info, case.length) == case.okm


def test_hkdf_expand_prefixes_are_consistent() -> None:
    # RFC 5869 §2.3: OKM is the first L octets of T(1) | T(2) | ...
    prk = bytes(range(32))
    full = ks.hkdf_expand("sha256", prk, b"info", 255 * 32)
    for length in (0, 1, 31, 32, 33, 64, 65, 100):
        assert ks.hkdf_expand("sha256", prk, b"info", length) == full[:length]


def test_hkdf_expand_rejects_more_than_255_blocks() -> None:
    with pytest.raises(ValueError, match="255"):
        ks.hkdf_expand("sha256", bytes(32), b"", 255 * 32 + 1)


# -- HKDF-Expand-Label and friends -----------------------------------------------------


def test_hkdf_label_structure() -> None:
    # RFC 8446 §7.1: uint16 length, opaque label<7..255> = "tls13 " + Label, opaque context<0..255>
    info = ks.hkdf_label(b"key", b"\x01\x02", 16)
    assert info == b"\x00\x10" + b"\x09tls13 key" + b"\x02\x01\x02"


def test_hkdf_label_rejects_oversized_fields() -> None:
    with pytest.raises(ValueError, match="label"):
        ks.hkdf_label(b"x" * 250, b"", 32)
    with pytest.raises(ValueError, match="context"):
        ks.hkdf_label(b"x", b"c" * 256, 32)
    assert ks.hkdf_label(b"x" * 249, b"c" * 255, 32)  # the largest allowed


def test_derive_secret_is_expand_label_with_hash_length() -> None:
    secret = bytes(range(48))
    th = hashlib.sha384(b"messages").digest()
    out = ks.derive_secret("sha384", secret, b"c hs traffic", th)
    assert len(out) == 48
    assert out == ks.hkdf_expand_label("sha384", secret, b"c hs traffic", th, 48)


def test_empty_hash_and_hash_length() -> None:
    assert ks.empty_hash("sha256") == hashlib.sha256(b"").digest()
    assert ks.empty_hash("sha384") == hashlib.sha384(b"").digest()
    assert ks.hash_length("sha256") == 32
    assert ks.hash_length("sha384") == 48


def test_labels_table_names_every_label() -> None:
    labels = [v for k, v in vars(ks).items() if k.startswith("LABEL_") and k != "LABEL_PREFIX"]
    assert set(labels) == set(ks.LABELS)
    assert all(len(ks.LABEL_PREFIX + label) <= 255 for label in labels)


# -- the stages ------------------------------------------------------------------------


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_no_psk_and_no_ecdhe_mean_zeros(hash_name: str) -> None:
    zeros = bytes(ks.hash_length(hash_name))
    early = ks.EarlySecret.derive(hash_name, None)
    assert early == ks.EarlySecret.derive(hash_name, zeros)
    assert early.handshake_secret(None) == early.handshake_secret(zeros)
    assert len(early.secret) == ks.hash_length(hash_name)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_secret_lengths_follow_the_hash(hash_name: str) -> None:
    n = ks.hash_length(hash_name)
    th = hashlib.new(hash_name, b"transcript").digest()
    early = ks.EarlySecret.derive(hash_name, b"p" * n)
    hs = early.handshake_secret(b"s" * 32)
    ms = hs.master_secret()
    values = [
        early.binder_key(external=True),
        early.client_early_traffic_secret(th),
        early.early_exporter_master_secret(th),
        hs.secret,
        hs.client_handshake_traffic_secret(th),
        hs.server_handshake_traffic_secret(th),
        ms.secret,
        ms.client_application_traffic_secret_0(th),
        ms.server_application_traffic_secret_0(th),
        ms.exporter_master_secret(th),
        ms.resumption_master_secret(th),
    ]
    assert all(len(v) == n for v in values)
    assert len(set(values)) == len(values)  # every label gives a different secret


def test_stages_are_frozen_and_do_not_print_secrets() -> None:
    early = ks.EarlySecret.derive("sha256", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        early.secret = b""  # type: ignore[misc]
    assert early.secret.hex() not in repr(early)
    assert "sha256" in repr(early)


def test_traffic_keys_lengths() -> None:
    key, iv = ks.traffic_keys("sha384", bytes(48), 32, 12)
    assert (len(key), len(iv)) == (32, 12)
    assert key == ks.hkdf_expand_label("sha384", bytes(48), b"key", b"", 32)
    assert iv == ks.hkdf_expand_label("sha384", bytes(48), b"iv", b"", 12)


def test_finished_verify_data_is_hmac_with_finished_key() -> None:
    # RFC 8446 §4.4.4
    base_key = bytes(range(32))
    th = hashlib.sha256(b"hello").digest()
    expected = hmac.new(ks.finished_key("sha256", base_key), th, "sha256").digest()
    assert ks.finished_verify_data("sha256", base_key, th) == expected
    assert ks.binder_value("sha256", base_key, th) == expected


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512", "sha3_256"])
@pytest.mark.parametrize(("external", "imported"), [(False, False), (True, False),
                                                    (True, True)])
def test_psk_binder_is_binder_value_of_binder_key(hash_name: str, external: bool,
                                                  imported: bool) -> None:
    # RFC 8446 §4.2.11.2 in one step (the server's check), and the Early Secret it keeps
    # goes on to the same Handshake Secret as one derived afresh.
    psk = bytes(range(ks.hash_length(hash_name)))
    th = hashlib.new(hash_name, b"truncated ClientHello").digest()
    early, binder = ks.psk_binder(hash_name, psk, th, external=external, imported=imported)
    fresh = ks.EarlySecret.derive(hash_name, psk)
    assert early == fresh
    # (The one-pass chain is for the hashes with a one-block kit; others derive it later.)
    assert early.derived == (ks.derive_secret(hash_name, fresh.secret, b"derived",
                                              ks.empty_hash(hash_name))
                             if hash_name in ks._KITS else None)
    assert binder == ks.binder_value(
        hash_name, fresh.binder_key(external=external, imported=imported), th)
    share = bytes(32)
    assert early.handshake_traffic(share, th) == fresh.handshake_traffic(share, th)
    assert early.handshake_secret(share) == fresh.handshake_secret(share)


# -- KeyUpdate (RFC 8446 §7.2) ---------------------------------------------------------


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_next_traffic_secret_chain(hash_name: str) -> None:
    n = ks.hash_length(hash_name)
    secret0 = hashlib.new(hash_name, b"application_traffic_secret_0").digest()
    secret1 = ks.next_traffic_secret(hash_name, secret0)
    secret2 = ks.next_traffic_secret(hash_name, secret1)
    assert secret1 == ks.hkdf_expand_label(hash_name, secret0, b"traffic upd", b"", n)
    assert len({secret0, secret1, secret2}) == 3
    assert len(secret2) == n
    # New keys and IVs come from the new secret exactly as from the first (§7.3).
    keys0 = ks.traffic_keys(hash_name, secret0, 16, 12)
    assert ks.traffic_keys(hash_name, secret1, 16, 12) != keys0


# -- exporters (RFC 8446 §7.5) -----------------------------------------------------------


def test_exporter_spelled_out() -> None:
    ems = bytes(range(32))
    derived = ks.derive_secret("sha256", ems, b"EXPORTER-test", hashlib.sha256(b"").digest())
    expected = ks.hkdf_expand_label(
        "sha256", derived, b"exporter", hashlib.sha256(b"ctx").digest(), 42
    )
    assert ks.export_keying_material("sha256", ems, b"EXPORTER-test", b"ctx", 42) == expected


def test_exporter_no_context_equals_empty_context() -> None:
    # RFC 8446 §7.5: "providing no context computes the same value as providing an empty
    # context" -- the opposite of TLS 1.2 (RFC 5705), where the two differ.
    ems = bytes(range(32))
    none = ks.export_keying_material("sha256", ems, b"EXPORTER-x", None, 32)
    empty = ks.export_keying_material("sha256", ems, b"EXPORTER-x", b"", 32)
    assert none == empty
    assert none != ks.export_keying_material("sha256", ems, b"EXPORTER-x", b"\x00", 32)


def test_exporter_separates_labels_contexts_and_lengths() -> None:
    ems = bytes(range(48))
    base = ks.export_keying_material("sha384", ems, b"EXPORTER-a", b"c", 64)
    assert len(base) == 64
    assert base != ks.export_keying_material("sha384", ems, b"EXPORTER-b", b"c", 64)
    assert base != ks.export_keying_material("sha384", ems, b"EXPORTER-a", b"d", 64)
    # The length is part of HkdfLabel, so a shorter export is not a prefix.
    assert ks.export_keying_material("sha384", ems, b"EXPORTER-a", b"c", 32) != base[:32]


# -- Transcript --------------------------------------------------------------------------

CH1 = b"\x01\x00\x00\x03abc"
SH = b"\x02\x00\x00\x02de"
EE = b"\x08\x00\x00\x01f"


def test_transcript_buffers_until_hash_is_set() -> None:
    t = Transcript()
    t.update(CH1)
    assert t.hash_name is None
    with pytest.raises(InternalError, match="set_hash"):
        t.digest()
    t.set_hash("sha256")
    t.update(SH)
    assert t.digest() == hashlib.sha256(CH1 + SH).digest()
    assert t.message_count == 2


def test_transcript_digest_does_not_finalise() -> None:
    t = Transcript()
    t.set_hash("sha384")
    t.update(CH1)
    first = t.digest()
    assert t.digest() == first
    t.update(SH)
    assert t.digest() == hashlib.sha384(CH1 + SH).digest()


def test_transcript_set_hash_is_fixed() -> None:
    t = Transcript()
    t.set_hash("sha256")
    t.set_hash("sha256")  # the same again is harmless
    with pytest.raises(InternalError, match="sha384"):
        t.set_hash("sha384")


def test_transcript_copy_is_independent() -> None:
    for hash_first in (False, True):
        t = Transcript()
        if hash_first:
            t.set_hash("sha256")
        t.update(CH1)
        fork = t.copy()
        fork.update(SH)
        t.update(EE)
        if not hash_first:
            t.set_hash("sha256")
            fork.set_hash("sha256")
        assert t.digest() == hashlib.sha256(CH1 + EE).digest()
        assert fork.digest() == hashlib.sha256(CH1 + SH).digest()


def test_transcript_digest_with_does_not_mutate() -> None:
    t = Transcript()
    t.update(CH1)
    # Before the hash is known (a client's first ClientHello) the PSK's hash is named.
    assert t.digest_with(SH, hash_name="sha256") == hashlib.sha256(CH1 + SH).digest()
    with pytest.raises(InternalError, match="hash_name"):
        t.digest_with(SH)
    t.set_hash("sha256")
    assert t.digest_with(SH) == hashlib.sha256(CH1 + SH).digest()
    assert t.digest_with(SH, hash_name="sha256") == hashlib.sha256(CH1 + SH).digest()
    assert t.digest() == hashlib.sha256(CH1).digest()
    assert t.message_count == 1
    with pytest.raises(InternalError, match="sha384"):
        t.digest_with(SH, hash_name="sha384")


def test_transcript_hello_retry_request_restart() -> None:
    t = Transcript()
    t.update(CH1)
    t.set_hash("sha256")
    t.restart_for_hello_retry_request()
    assert t.restarted
    assert t.message_count == 1
    synthetic = message_hash("sha256", CH1)
    assert synthetic == bytes([HandshakeType.MESSAGE_HASH, 0, 0, 32]) + hashlib.sha256(CH1).digest()
    t.update(SH)
    assert t.digest() == hashlib.sha256(synthetic + SH).digest()


def test_transcript_restart_needs_exactly_client_hello1() -> None:
    empty = Transcript()
    empty.set_hash("sha256")
    with pytest.raises(InternalError, match="exactly one message"):
        empty.restart_for_hello_retry_request()

    two = Transcript()
    two.update(CH1)
    two.update(SH)
    two.set_hash("sha256")
    with pytest.raises(InternalError, match="holds 2"):
        two.restart_for_hello_retry_request()

    unhashed = Transcript()
    unhashed.update(CH1)
    with pytest.raises(InternalError, match="hash must be set"):
        unhashed.restart_for_hello_retry_request()

    twice = Transcript()
    twice.update(CH1)
    twice.set_hash("sha256")
    twice.restart_for_hello_retry_request()
    with pytest.raises(InternalError, match="already restarted"):
        twice.restart_for_hello_retry_request()


def test_transcript_errors_carry_an_alert() -> None:
    t = Transcript()
    with pytest.raises(ProtocolError) as info:
        t.digest()
    assert info.value.alert.rfc_name == "internal_error"


def test_transcript_keep_raw() -> None:
    t = Transcript(keep_raw=True)
    t.update(CH1)
    assert t.raw() == CH1
    t.set_hash("sha256")
    t.restart_for_hello_retry_request()
    t.update(SH)
    assert t.raw() == message_hash("sha256", CH1) + SH
    assert t.copy().raw() == t.raw()

    plain = Transcript()
    plain.update(CH1)
    assert plain.raw() == CH1  # still buffered
    plain.set_hash("sha256")
    with pytest.raises(InternalError, match="keep_raw"):
        plain.raw()


@given(
    messages=st.lists(st.binary(max_size=64), max_size=8),
    set_at=st.integers(min_value=0, max_value=8),
    hash_name=st.sampled_from(["sha256", "sha384"]),
)
def test_transcript_equals_hash_of_concatenation(
    messages: list[bytes], set_at: int, hash_name: str
) -> None:
    t = Transcript()
    for i, message in enumerate(messages):
        if i == set_at:
            t.set_hash(hash_name)
        t.update(message)
    t.set_hash(hash_name)
    assert t.digest() == hashlib.new(hash_name, b"".join(messages)).digest()
    assert t.message_count == len(messages)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_batched_derivations_equal_one_at_a_time(hash_name: str) -> None:
    """derive_secrets / traffic_secrets / application_secrets and the inlined one-block
    paths give exactly what HKDF-Expand-Label one label at a time gives."""
    size = ks.hash_length(hash_name)
    secret = bytes(range(size))
    th = hashlib.new(hash_name, b"transcript").digest()
    hs = ks.HandshakeSecret(hash_name, secret)
    assert hs.traffic_secrets(th) == (hs.client_handshake_traffic_secret(th),
                                      hs.server_handshake_traffic_secret(th))
    ms = ks.MasterSecret(hash_name, secret)
    assert ms.application_secrets(th) == (ms.client_application_traffic_secret_0(th),
                                          ms.server_application_traffic_secret_0(th),
                                          ms.exporter_master_secret(th))
    for context in (th, b"", b"x" * 255, b"x" * 256):
        expected = ks.hkdf_expand(hash_name, secret,
                                  ks.hkdf_label(b"c ap traffic", context, size)
                                  if len(context) <= 255 else b"", size)
        if len(context) > 255:
            with pytest.raises(ValueError):
                ks.derive_secret(hash_name, secret, b"c ap traffic", context)
            with pytest.raises(ValueError):
                ks.derive_secrets(hash_name, secret, (b"c ap traffic",), context)
            continue
        assert ks.derive_secret(hash_name, secret, b"c ap traffic", context) == expected
        assert ks.derive_secrets(hash_name, secret, (b"c ap traffic", b"exp master"),
                                 context)[0] == expected
    finished_key = ks.hkdf_expand(hash_name, secret, ks.hkdf_label(b"finished", b"", size),
                                  size)
    assert ks.finished_verify_data(hash_name, secret, th) == hmac.digest(
        finished_key, th, hash_name)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("psk", [None, b"p" * 32])
@pytest.mark.parametrize("shared", [None, b"s" * 32])
def test_handshake_traffic_equals_the_stages_one_at_a_time(
        hash_name: str, psk: bytes | None, shared: bytes | None) -> None:
    """EarlySecret.handshake_traffic (one key padding, the Master Secret alongside) gives
    what handshake_secret / traffic_secrets / master_secret give step by step."""
    early = ks.EarlySecret.derive(hash_name, psk)
    th = hashlib.new(hash_name, b"ClientHello...ServerHello").digest()
    hs, chts, shts = early.handshake_traffic(shared, th)
    step = early.handshake_secret(shared)
    assert hs == step
    assert (chts, shts) == step.traffic_secrets(th)
    assert hs.master_secret() == step.master_secret()
    assert hs.master is not None and step.master is None
    # A context too long for HkdfLabel: the checked path, which raises.
    with pytest.raises(ValueError):
        early.handshake_traffic(shared, b"x" * 256)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize(("key_len", "iv_len"), [(16, 12), (32, 12), (0, 0), (48, 64)])
def test_traffic_keys_and_finished_key(hash_name: str, key_len: int, iv_len: int) -> None:
    """The one-padding path equals HKDF-Expand-Label label by label (RFC 8446 §7.3,
    §4.4.4), and falls back to it when a length needs more than one block."""
    size = ks.hash_length(hash_name)
    secret = bytes(range(size))
    th = hashlib.new(hash_name, b"transcript").digest()
    if max(key_len, iv_len) > ks.hash_length(hash_name):
        key_len = iv_len = 2 * size  # two blocks each: the general path
    key, iv, fkey = ks.traffic_keys_and_finished_key(hash_name, secret, key_len, iv_len)
    assert key == ks.hkdf_expand_label(hash_name, secret, b"key", b"", key_len)
    assert iv == ks.hkdf_expand_label(hash_name, secret, b"iv", b"", iv_len)
    assert (key, iv) == ks.traffic_keys(hash_name, secret, key_len, iv_len)
    assert fkey == ks.finished_key(hash_name, secret)
    assert (ks.verify_data_with_key(hash_name, fkey, th)
            == ks.finished_verify_data(hash_name, secret, th))


def test_fixed_expander_any_number_of_infos() -> None:
    from tlsmith.crypto.mac import HMAC3_BY_HASH, fixed_expander

    key = b"k" * 32
    infos = (b"a", b"bb", b"ccc", b"dddd")
    full = [hmac.digest(key, i, "sha256") for i in infos]
    for n in (1, 2, 3, 4):
        lengths = tuple(range(5, 5 + n))
        assert fixed_expander("sha256", infos[:n], lengths)(key) == tuple(
            d[:length] for d, length in zip(full, lengths, strict=False))
    long_key = b"L" * 100  # longer than the block: hashed first (RFC 2104 §2)
    assert fixed_expander("sha256", infos[:2], (32, 32))(long_key) == tuple(
        hmac.digest(long_key, i, "sha256") for i in infos[:2])
    assert HMAC3_BY_HASH["sha384"](long_key * 2, *infos[:3]) == tuple(
        hmac.digest(long_key * 2, i, "sha384") for i in infos[:3])
    with pytest.raises(ValueError):
        fixed_expander("sha256", infos, (1,))


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_resumption_secrets_equal_hkdf_expand_label(hash_name: str) -> None:
    size = ks.hash_length(hash_name)
    secret = bytes(range(size))
    th = hashlib.new(hash_name, b"...client Finished").digest()
    assert ks.MasterSecret(hash_name, secret).resumption_master_secret(th) == (
        ks.hkdf_expand_label(hash_name, secret, b"res master", th, size))
    for nonce in (b"", bytes(8), b"n" * 255):
        assert ks.resumption_psk(hash_name, secret, nonce) == ks.hkdf_expand_label(
            hash_name, secret, b"resumption", nonce, size)
    with pytest.raises(ValueError):
        ks.resumption_psk(hash_name, secret, b"n" * 256)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_client_binder_keeps_the_derived_salt(hash_name: str) -> None:
    """The client's first binder comes with its Early Secret and the "derived" salt
    (psk_binder, one key padding); the handshake that follows uses that salt and gets the
    secrets of the plain derivation; a second binder (after an HRR) is the same MAC."""
    from tlsmith.handshake.psk13 import OfferedPsk, binder_for

    size = ks.hash_length(hash_name)
    psk = bytes(range(1, size + 1))
    empty = ks.empty_hash(hash_name)
    th = hashlib.new(hash_name, b"ClientHello...ServerHello").digest()
    for external, label in ((False, b"res binder"), (True, b"ext binder")):
        offered = OfferedPsk(b"id", 0, psk, hash_name, external=external)
        binder = binder_for(offered, th)
        plain_early = ks.EarlySecret.derive(hash_name, psk)
        key = ks.derive_secret(hash_name, plain_early.secret, label, empty)
        assert binder == ks.binder_value(hash_name, key, th)
        early = offered.early_secret()
        assert early.derived == ks.derive_secret(hash_name, plain_early.secret,
                                                 b"derived", empty)
        assert binder_for(offered, th) == binder  # (the Early Secret kept)
        hs, chts, shts = early.handshake_traffic(bytes(size), th)
        plain = plain_early.handshake_secret(bytes(size))
        assert hs.secret == plain.secret
        assert (chts, shts) == plain.traffic_secrets(th)
        assert hs.master_secret().secret == plain.master_secret().secret
