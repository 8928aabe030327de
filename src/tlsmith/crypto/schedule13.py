"""The TLS 1.3 key schedule (RFC 8446 §7), as values rather than a mutable counter.

Each stage of the schedule is a frozen dataclass that exposes only what is valid at
that stage (design.md §6)::

    EarlySecret.derive(hash, psk)                       # RFC 8446 §7.1, top of the diagram
      .binder_key() / .client_early_traffic_secret() / .early_exporter_master_secret()
      .handshake_secret(shared_secret) -> HandshakeSecret
          .client_handshake_traffic_secret() / .server_handshake_traffic_secret()
          .master_secret() -> MasterSecret
              .client_application_traffic_secret_0() / .server_..._0()
              .exporter_master_secret() / .resumption_master_secret()

Every function takes the hash by its ``hashlib`` name (``"sha256"``, ``"sha384"``) and,
where the RFC says Transcript-Hash(Messages), the *already computed* transcript hash
(see ``tlsmith.crypto.transcript``).

HMAC is ``tlsmith.crypto.mac.hmac_digest`` (RFC 2104 over two ``hashlib`` constructor
calls; about half the cost of ``hmac.digest``, which fetches the MAC from OpenSSL's
provider on every call); HKDF-Expand is built on it as RFC 5869 §2.3
describes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from tlsmith.crypto.mac import (
    BINDER_CHAIN_BY_HASH,
    HMAC3_BY_HASH,
    HMAC_BY_HASH,
    fixed_expander,
    hmac_digest,
    hmac_digests,
)
from tlsmith.frozen import fast_init

# -- labels -------------------------------------------------------------------------
# RFC 8446 §7.1, §7.2, §7.3, §4.4.4, §4.6.1, §7.5: every label the schedule uses, in
# one place. HKDF-Expand-Label prefixes each with "tls13 ".
LABEL_EXT_BINDER = b"ext binder"
LABEL_RES_BINDER = b"res binder"
LABEL_IMP_BINDER = b"imp binder"  # RFC 9258 §4.2: an imported PSK's binder
LABEL_DERIVED_PSK = b"derived psk"  # RFC 9258 §4.2: ipskx from epskx
LABEL_C_E_TRAFFIC = b"c e traffic"
LABEL_E_EXP_MASTER = b"e exp master"
LABEL_DERIVED = b"derived"
LABEL_C_HS_TRAFFIC = b"c hs traffic"
LABEL_S_HS_TRAFFIC = b"s hs traffic"
LABEL_C_AP_TRAFFIC = b"c ap traffic"
LABEL_S_AP_TRAFFIC = b"s ap traffic"
LABEL_EXP_MASTER = b"exp master"
LABEL_RES_MASTER = b"res master"
LABEL_KEY = b"key"
LABEL_IV = b"iv"
LABEL_FINISHED = b"finished"
LABEL_TRAFFIC_UPD = b"traffic upd"
LABEL_RESUMPTION = b"resumption"
LABEL_EXPORTER = b"exporter"

# RFC 8446 §7.1: "tls13 " is prepended to every label in HkdfLabel.
LABEL_PREFIX = b"tls13 "

#: Every schedule label with the RFC 8446 name of what it derives (for traces and demos).
LABELS: dict[bytes, str] = {
    LABEL_EXT_BINDER: "binder_key (external PSK)",
    LABEL_RES_BINDER: "binder_key (resumption PSK)",
    LABEL_IMP_BINDER: "binder_key (imported PSK)",
    LABEL_DERIVED_PSK: "ipskx (imported PSK, RFC 9258)",
    LABEL_C_E_TRAFFIC: "client_early_traffic_secret",
    LABEL_E_EXP_MASTER: "early_exporter_master_secret",
    LABEL_DERIVED: "derived secret (salt of the next extraction)",
    LABEL_C_HS_TRAFFIC: "client_handshake_traffic_secret",
    LABEL_S_HS_TRAFFIC: "server_handshake_traffic_secret",
    LABEL_C_AP_TRAFFIC: "client_application_traffic_secret_0",
    LABEL_S_AP_TRAFFIC: "server_application_traffic_secret_0",
    LABEL_EXP_MASTER: "exporter_master_secret",
    LABEL_RES_MASTER: "resumption_master_secret",
    LABEL_KEY: "write_key",
    LABEL_IV: "write_iv",
    LABEL_FINISHED: "finished_key",
    LABEL_TRAFFIC_UPD: "application_traffic_secret_N+1",
    LABEL_RESUMPTION: "PSK for the ticket",
    LABEL_EXPORTER: "exported keying material",
}


# -- primitives -----------------------------------------------------------------------


@cache
def hash_length(hash_name: str) -> int:
    """Hash.length of RFC 8446 §7.1: the digest size in bytes."""
    return hashlib.new(hash_name).digest_size


@cache
def empty_hash(hash_name: str) -> bytes:
    """Transcript-Hash("") = Hash(""), the context of "derived" and of exporters."""
    return hashlib.new(hash_name).digest()


@cache
def _zeros(hash_name: str) -> bytes:
    return bytes(hash_length(hash_name))


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) -- RFC 5869 §2.2.

    An empty salt means "not provided", which RFC 5869 §2.2 sets to HashLen zeros.
    """
    if not salt:
        salt = _zeros(hash_name)
    mac = HMAC_BY_HASH.get(hash_name)
    return mac(salt, ikm) if mac is not None else hmac_digest(salt, ikm, hash_name)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand(PRK, info, L) -- RFC 5869 §2.3.

    T(0) = ""; T(i) = HMAC-Hash(PRK, T(i-1) | info | i); OKM = first L octets of T(1)|T(2)|...
    """
    hash_len = hash_length(hash_name)
    if length > 255 * hash_len:
        # RFC 5869 §2.3: L <= 255*HashLen.
        raise ValueError(f"HKDF-Expand: {length} bytes exceeds 255 * HashLen ({255 * hash_len})")
    if length <= hash_len:
        # The one-block case is the handshake's hot path.
        return hmac_digest(prk, info + b"\x01", hash_name)[:length]
    block = b""
    out = bytearray()
    counter = 1
    while len(out) < length:
        block = hmac_digest(prk, block + info + bytes((counter,)), hash_name)
        out += block
        counter += 1
    return bytes(out[:length])


def _opaque8(data: bytes, what: str) -> bytes:
    """``opaque data<0..255>``: a one-byte length taken from the data, then the data."""
    if len(data) > 255:
        raise ValueError(f"HkdfLabel: {what} of {len(data)} bytes exceeds 255")
    return bytes((len(data),)) + data


def hkdf_label(label: bytes, context: bytes, length: int) -> bytes:
    """The serialized HkdfLabel struct of RFC 8446 §7.1::

        struct {
            uint16 length = Length;
            opaque label<7..255> = "tls13 " + Label;
            opaque context<0..255> = Context;
        } HkdfLabel;
    """
    if len(context) > 255:
        _opaque8(context, "context")  # raises
    return b"".join((_label_head(label, length), _LENGTH_BYTES[len(context)], context))


_LENGTH_BYTES: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))
# Hash.length and the HMAC, per hash whose HKDF-Expand-Label outputs fit one block.
_ONE_BLOCK: dict[str, tuple[int, Callable[[bytes, bytes], bytes]]] = {
    name: (size, HMAC_BY_HASH[name]) for name, size in (("sha256", 32), ("sha384", 48),
                                                        ("sha512", 64))}


@functools.lru_cache(maxsize=256)
def _label_head(label: bytes, length: int) -> bytes:
    """``uint16 length`` and ``opaque label<7..255>``: the same few values every time."""
    return length.to_bytes(2, "big") + _opaque8(LABEL_PREFIX + label, "label")


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) -- RFC 8446 §7.1."""
    one_block = _ONE_BLOCK.get(hash_name)
    if one_block is not None and length <= one_block[0] and len(context) <= 255:
        # The handshake's case: one HMAC over HkdfLabel || 0x01 (RFC 5869 §2.3, T(1)).
        return one_block[1](secret, b"".join((_label_head(label, length),
                                              _LENGTH_BYTES[len(context)], context,
                                              b"\x01")))[:length]
    return hkdf_expand(hash_name, secret, hkdf_label(label, context, length), length)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret(Secret, Label, Messages) -- RFC 8446 §7.1.

    = HKDF-Expand-Label(Secret, Label, Transcript-Hash(Messages), Hash.length); the caller
    passes Transcript-Hash(Messages) already computed.
    """
    one_block = _ONE_BLOCK.get(hash_name)
    if one_block is not None and len(transcript_hash) <= 255:
        # hkdf_expand_label's one-block case, inlined (Hash.length fits one block).
        size, mac = one_block
        return mac(secret, b"".join((_label_head(label, size),
                                     _LENGTH_BYTES[len(transcript_hash)], transcript_hash,
                                     b"\x01")))
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, hash_length(hash_name))


def derive_secrets(hash_name: str, secret: bytes, labels: tuple[bytes, ...],
                   transcript_hash: bytes) -> list[bytes]:
    """``[derive_secret(hash_name, secret, label, transcript_hash) for label in labels]``
    with the HMAC key padded once (the traffic secrets of one stage share their secret
    and their transcript hash)."""
    one_block = _ONE_BLOCK.get(hash_name)
    if one_block is None or len(transcript_hash) > 255:
        return [derive_secret(hash_name, secret, label, transcript_hash) for label in labels]
    size = one_block[0]
    tail = b"".join((_LENGTH_BYTES[len(transcript_hash)], transcript_hash, b"\x01"))
    return hmac_digests(secret, tuple(_label_head(label, size) + tail for label in labels),
                        hash_name)


# -- the three stages -----------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class EarlySecret:
    """Early Secret = HKDF-Extract(0, PSK) -- RFC 8446 §7.1."""

    hash_name: str
    secret: bytes = field(repr=False)
    # Derive-Secret(., "derived", ""), the Handshake Secret's salt, when ``psk_binder``
    # computed it along with the binder (one HMAC key padding for both), so that
    # ``handshake_traffic`` does not derive it again.
    derived: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def derive(cls, hash_name: str, psk: bytes | None) -> EarlySecret:
        """RFC 8446 §7.1: "if PSK is not available, the input is a string of Hash.length
        bytes set to zeros"; the salt is 0 (also Hash.length zeros)."""
        if psk is None:
            return _no_psk_early(hash_name)  # a constant of the hash: computed once
        return cls(hash_name, hkdf_extract(hash_name, _zeros(hash_name), psk))

    def binder_key(self, *, external: bool, imported: bool = False) -> bytes:
        """binder_key = Derive-Secret(., "ext binder" | "res binder", "") -- RFC 8446 §7.1;
        "imp binder" for a PSK imported per RFC 9258 §4.2."""
        label = (LABEL_IMP_BINDER if imported else LABEL_EXT_BINDER if external
                 else LABEL_RES_BINDER)
        return derive_secret(self.hash_name, self.secret, label, empty_hash(self.hash_name))

    def client_early_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """Derive-Secret(., "c e traffic", ClientHello) -- RFC 8446 §7.1."""
        return derive_secret(self.hash_name, self.secret, LABEL_C_E_TRAFFIC, transcript_hash)

    def early_exporter_master_secret(self, transcript_hash: bytes) -> bytes:
        """Derive-Secret(., "e exp master", ClientHello) -- RFC 8446 §7.1."""
        return derive_secret(self.hash_name, self.secret, LABEL_E_EXP_MASTER, transcript_hash)

    def handshake_secret(self, shared_secret: bytes | None) -> HandshakeSecret:
        """Handshake Secret = HKDF-Extract(Derive-Secret(., "derived", ""), (EC)DHE)
        -- RFC 8446 §7.1; ``None`` (psk_ke, no (EC)DHE) is Hash.length zeros."""
        if self is _no_psk_early(self.hash_name):
            salt = _no_psk_salt(self.hash_name)  # (a full handshake: a constant as well)
        else:
            salt = derive_secret(
                self.hash_name, self.secret, LABEL_DERIVED, empty_hash(self.hash_name)
            )
        ikm = _zeros(self.hash_name) if shared_secret is None else shared_secret
        return HandshakeSecret(self.hash_name, hkdf_extract(self.hash_name, salt, ikm))

    def handshake_traffic(self, shared_secret: bytes | None, transcript_hash: bytes
                          ) -> tuple[HandshakeSecret, bytes, bytes]:
        """(``handshake_secret(shared_secret)``, and its ``traffic_secrets(transcript_hash)``)
        -- RFC 8446 §7.1. The Master Secret depends on nothing else, so it is derived
        here too (``HandshakeSecret.master_secret`` returns it): the Handshake Secret's
        three Derive-Secrets share one padding of the HMAC key."""
        kit = _KITS.get(self.hash_name)
        if kit is None or len(transcript_hash) > 255:
            hs = self.handshake_secret(shared_secret)
            chts, shts = hs.traffic_secrets(transcript_hash)
            return hs, chts, shts
        mac = kit.mac
        salt = (kit.no_psk_salt if self is kit.no_psk_early
                else self.derived or mac(self.secret, kit.derived_info))
        secret = mac(salt, kit.zeros if shared_secret is None else shared_secret)
        tail = _LENGTH_BYTES[len(transcript_hash)] + transcript_hash + b"\x01"
        chts, shts, derived = kit.mac3(secret, kit.c_hs + tail, kit.s_hs + tail,
                                       kit.derived_info)
        master = MasterSecret(self.hash_name, mac(derived, kit.zeros))
        return HandshakeSecret(self.hash_name, secret, master), chts, shts


@cache
def _no_psk_early(hash_name: str) -> EarlySecret:
    """The Early Secret without a PSK: HKDF-Extract(0, 0), the same for every full
    handshake with this hash (RFC 8446 §7.1)."""
    zeros = _zeros(hash_name)
    return EarlySecret(hash_name, hkdf_extract(hash_name, zeros, zeros))


@cache
def _no_psk_salt(hash_name: str) -> bytes:
    """Derive-Secret(Early Secret without a PSK, "derived", ""): a constant too."""
    return derive_secret(hash_name, _no_psk_early(hash_name).secret, LABEL_DERIVED,
                         empty_hash(hash_name))


@fast_init
@dataclass(frozen=True, slots=True)
class HandshakeSecret:
    """Handshake Secret -- RFC 8446 §7.1."""

    hash_name: str
    secret: bytes = field(repr=False)
    # The Master Secret when derived along with this secret (EarlySecret.handshake_traffic).
    master: MasterSecret | None = field(default=None, repr=False, compare=False)

    def client_handshake_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """Derive-Secret(., "c hs traffic", ClientHello...ServerHello) -- RFC 8446 §7.1."""
        return derive_secret(self.hash_name, self.secret, LABEL_C_HS_TRAFFIC, transcript_hash)

    def server_handshake_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """Derive-Secret(., "s hs traffic", ClientHello...ServerHello) -- RFC 8446 §7.1."""
        return derive_secret(self.hash_name, self.secret, LABEL_S_HS_TRAFFIC, transcript_hash)

    def traffic_secrets(self, transcript_hash: bytes) -> tuple[bytes, bytes]:
        """(client_handshake_traffic_secret, server_handshake_traffic_secret): both
        ``*_handshake_traffic_secret`` methods at once -- RFC 8446 §7.1."""
        chts, shts = derive_secrets(self.hash_name, self.secret,
                                    (LABEL_C_HS_TRAFFIC, LABEL_S_HS_TRAFFIC), transcript_hash)
        return chts, shts

    def master_secret(self) -> MasterSecret:
        """Master Secret = HKDF-Extract(Derive-Secret(., "derived", ""), 0) -- RFC 8446 §7.1."""
        if self.master is not None:
            return self.master
        salt = derive_secret(
            self.hash_name, self.secret, LABEL_DERIVED, empty_hash(self.hash_name)
        )
        return MasterSecret(
            self.hash_name, hkdf_extract(self.hash_name, salt, _zeros(self.hash_name))
        )


@fast_init
@dataclass(frozen=True, slots=True)
class MasterSecret:
    """Master Secret -- RFC 8446 §7.1."""

    hash_name: str
    secret: bytes = field(repr=False)

    def client_application_traffic_secret_0(self, transcript_hash: bytes) -> bytes:
        """Derive-Secret(., "c ap traffic", ClientHello...server Finished) -- RFC 8446 §7.1."""
        return derive_secret(self.hash_name, self.secret, LABEL_C_AP_TRAFFIC, transcript_hash)

    def server_application_traffic_secret_0(self, transcript_hash: bytes) -> bytes:
        """Derive-Secret(., "s ap traffic", ClientHello...server Finished) -- RFC 8446 §7.1."""
        return derive_secret(self.hash_name, self.secret, LABEL_S_AP_TRAFFIC, transcript_hash)

    def exporter_master_secret(self, transcript_hash: bytes) -> bytes:
        """Derive-Secret(., "exp master", ClientHello...server Finished) -- RFC 8446 §7.1."""
        return derive_secret(self.hash_name, self.secret, LABEL_EXP_MASTER, transcript_hash)

    def application_secrets(self, transcript_hash: bytes) -> tuple[bytes, bytes, bytes]:
        """(client_application_traffic_secret_0, server_application_traffic_secret_0,
        exporter_master_secret): the three secrets of ClientHello...server Finished at
        once -- RFC 8446 §7.1."""
        kit = _KITS.get(self.hash_name)
        if kit is not None and len(transcript_hash) <= 255:
            tail = _LENGTH_BYTES[len(transcript_hash)] + transcript_hash + b"\x01"
            return kit.mac3(self.secret, kit.c_ap + tail, kit.s_ap + tail, kit.exp + tail)
        cats, sats, ems = derive_secrets(
            self.hash_name, self.secret, (LABEL_C_AP_TRAFFIC, LABEL_S_AP_TRAFFIC,
                                          LABEL_EXP_MASTER), transcript_hash)
        return cats, sats, ems

    def resumption_master_secret(self, transcript_hash: bytes) -> bytes:
        """Derive-Secret(., "res master", ClientHello...client Finished) -- RFC 8446 §7.1."""
        kit = _KITS.get(self.hash_name)
        if kit is not None and len(transcript_hash) <= 255:
            return kit.mac(self.secret, b"".join((kit.res_master,
                                                  _LENGTH_BYTES[len(transcript_hash)],
                                                  transcript_hash, b"\x01")))
        return derive_secret(self.hash_name, self.secret, LABEL_RES_MASTER, transcript_hash)


# -- what the secrets are used for ----------------------------------------------------


def traffic_keys(
    hash_name: str, traffic_secret: bytes, key_len: int, iv_len: int
) -> tuple[bytes, bytes]:
    """(write_key, write_iv) -- RFC 8446 §7.3:

    [sender]_write_key = HKDF-Expand-Label(Secret, "key", "", key_length)
    [sender]_write_iv  = HKDF-Expand-Label(Secret, "iv", "", iv_length)
    """
    expand = _key_iv_expander(hash_name, key_len, iv_len)
    if expand is None:
        key = hkdf_expand_label(hash_name, traffic_secret, LABEL_KEY, b"", key_len)
        iv = hkdf_expand_label(hash_name, traffic_secret, LABEL_IV, b"", iv_len)
        return key, iv
    key, iv = expand(traffic_secret)
    return key, iv


def traffic_keys_and_finished_key(
    hash_name: str, traffic_secret: bytes, key_len: int, iv_len: int
) -> tuple[bytes, bytes, bytes]:
    """(write_key, write_iv, finished_key) of a handshake traffic secret -- RFC 8446
    §7.3 and §4.4.4: ``traffic_keys`` and ``finished_key`` with one HMAC key padding."""
    expand = _key_iv_finished_expander(hash_name, key_len, iv_len)
    if expand is None:
        key, iv = traffic_keys(hash_name, traffic_secret, key_len, iv_len)
        return key, iv, finished_key(hash_name, traffic_secret)
    key, iv, fkey = expand(traffic_secret)
    return key, iv, fkey


# One-block HKDF-Expand of constant labels (empty context: HkdfLabel ends in 0x00, then
# the block counter 0x01) under one HMAC key, padded once; None: not one block each.
@functools.lru_cache(maxsize=64)
def _key_iv_expander(hash_name: str, key_len: int, iv_len: int
                     ) -> Callable[[bytes], tuple[bytes, ...]] | None:
    if hash_name not in _ONE_BLOCK or max(key_len, iv_len) > hash_length(hash_name):
        return None
    return fixed_expander(hash_name, (_label_info(LABEL_KEY, key_len),
                                      _label_info(LABEL_IV, iv_len)), (key_len, iv_len))


@functools.lru_cache(maxsize=64)
def _key_iv_finished_expander(hash_name: str, key_len: int, iv_len: int
                              ) -> Callable[[bytes], tuple[bytes, ...]] | None:
    if hash_name not in _ONE_BLOCK or max(key_len, iv_len) > hash_length(hash_name):
        return None
    size = hash_length(hash_name)
    return fixed_expander(hash_name, (_label_info(LABEL_KEY, key_len),
                                      _label_info(LABEL_IV, iv_len),
                                      _label_info(LABEL_FINISHED, size)),
                          (key_len, iv_len, size))


@functools.lru_cache(maxsize=64)
def _label_info(label: bytes, length: int) -> bytes:
    """HkdfLabel with an empty context, then T(1)'s counter byte (RFC 5869 §2.3)."""
    return _label_head(label, length) + b"\x00\x01"


def finished_key(hash_name: str, base_key: bytes) -> bytes:
    """finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length) -- §4.4.4."""
    return hkdf_expand_label(hash_name, base_key, LABEL_FINISHED, b"", hash_length(hash_name))


def finished_verify_data(hash_name: str, base_key: bytes, transcript_hash: bytes) -> bytes:
    """verify_data = HMAC(finished_key, Transcript-Hash(Handshake Context, Certificate*,
    CertificateVerify*)) -- RFC 8446 §4.4.4."""
    kit = _KITS.get(hash_name)
    if kit is not None:  # finished_key's one block, inlined
        mac = kit.mac
        return mac(mac(base_key, kit.finished_info), transcript_hash)
    return verify_data_with_key(hash_name, finished_key(hash_name, base_key), transcript_hash)


def verify_data_with_key(hash_name: str, key: bytes, transcript_hash: bytes) -> bytes:
    """verify_data = HMAC(finished_key, Transcript-Hash(...)) -- RFC 8446 §4.4.4, from a
    finished_key already derived (``traffic_keys_and_finished_key``)."""
    mac = HMAC_BY_HASH.get(hash_name)
    return mac(key, transcript_hash) if mac is not None else hmac_digest(key, transcript_hash,
                                                                          hash_name)


def binder_value(hash_name: str, binder_key: bytes, truncated_transcript_hash: bytes) -> bytes:
    """A PSK binder -- RFC 8446 §4.2.11.2: computed as a Finished message (§4.4.4) with
    BaseKey = binder_key over the transcript up to and including the truncated
    ClientHello (the ClientHello without its binders list)."""
    return finished_verify_data(hash_name, binder_key, truncated_transcript_hash)


def psk_binder(hash_name: str, psk: bytes, truncated_transcript_hash: bytes, *,
               external: bool, imported: bool = False) -> tuple[EarlySecret, bytes]:
    """(the Early Secret of ``psk``, its binder over ``truncated_transcript_hash``) --
    RFC 8446 §7.1, §4.2.11.2: ``binder_value(binder_key(EarlySecret.derive(psk)))``,
    with the Early Secret's HMAC key padded once for the binder key and the "derived"
    salt of the Handshake Secret (kept in the Early Secret)."""
    kit = _KITS.get(hash_name)
    if kit is None:
        early = EarlySecret.derive(hash_name, psk)
        return early, binder_value(
            hash_name, early.binder_key(external=external, imported=imported),
            truncated_transcript_hash)
    # Early Secret = HKDF-Extract(0, PSK); binder_key = Derive-Secret(., "... binder",
    # ""); the binder = HMAC(finished_key(binder_key), hash) -- and the "derived" salt.
    secret, derived, binder = kit.binder_chain(
        psk, kit.imp_binder_info if imported else kit.ext_binder_info if external
        else kit.res_binder_info, kit.derived_info, kit.finished_info,
        truncated_transcript_hash)
    return EarlySecret(hash_name, secret, derived), binder


def next_traffic_secret(hash_name: str, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 = HKDF-Expand-Label(application_traffic_secret_N,
    "traffic upd", "", Hash.length) -- RFC 8446 §7.2 (KeyUpdate)."""
    return hkdf_expand_label(hash_name, secret, LABEL_TRAFFIC_UPD, b"", hash_length(hash_name))


def imported_psk(epsk_hash: str, epsk: bytes, imported_identity: bytes,
                 target_hash: str) -> bytes:
    """RFC 9258 §4.2: epskx = HKDF-Extract(0, epsk); ipskx = HKDF-Expand-Label(epskx,
    "derived psk", Hash(ImportedIdentity), L) -- both with the EPSK's hash, L the
    target KDF's output length."""
    epskx = hkdf_extract(epsk_hash, b"", epsk)
    context = hashlib.new(epsk_hash, imported_identity).digest()
    return hkdf_expand_label(epsk_hash, epskx, LABEL_DERIVED_PSK, context,
                             hash_length(target_hash))


def resumption_psk(hash_name: str, resumption_master_secret: bytes, ticket_nonce: bytes) -> bytes:
    """The PSK of a ticket = HKDF-Expand-Label(resumption_master_secret, "resumption",
    ticket_nonce, Hash.length) -- RFC 8446 §4.6.1."""
    kit = _KITS.get(hash_name)
    if kit is not None and len(ticket_nonce) <= 255:
        return kit.mac(resumption_master_secret, b"".join((
            kit.resumption, _LENGTH_BYTES[len(ticket_nonce)], ticket_nonce, b"\x01")))
    return hkdf_expand_label(
        hash_name, resumption_master_secret, LABEL_RESUMPTION, ticket_nonce, hash_length(hash_name)
    )


def export_keying_material(
    hash_name: str,
    exporter_master_secret: bytes,
    label: bytes,
    context: bytes | None,
    length: int,
) -> bytes:
    """TLS-Exporter(label, context_value, key_length) -- RFC 8446 §7.5::

        HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter",
                          Hash(context_value), key_length)

    RFC 8446 §7.5: "If no context is provided, the context_value is zero length.
    Consequently, providing no context computes the same value as providing an empty
    context" -- unlike TLS 1.2's exporter (RFC 5705), ``None`` and ``b""`` agree here.
    Pass the early_exporter_master_secret for early exporters.
    """
    context_value = b"" if context is None else context
    derived = derive_secret(hash_name, exporter_master_secret, label, empty_hash(hash_name))
    context_hash = hashlib.new(hash_name, context_value).digest()
    return hkdf_expand_label(hash_name, derived, LABEL_EXPORTER, context_hash, length)


class _Kit:
    """One hash's constants for the one-block paths of the handshake (every
    HKDF-Expand-Label output fits one HMAC block): the HMACs, the label heads, the
    infos with an empty context, the no-PSK Early Secret and its "derived" salt."""

    __slots__ = ("binder_chain", "c_ap", "c_hs", "derived_info", "exp",
                 "ext_binder_info", "finished_info", "imp_binder_info", "mac", "mac3",
                 "no_psk_early", "no_psk_salt", "res_binder_info", "res_master",
                 "resumption", "s_ap", "s_hs", "zeros")

    def __init__(self, hash_name: str) -> None:
        size = hash_length(hash_name)
        self.mac = HMAC_BY_HASH[hash_name]
        self.binder_chain = BINDER_CHAIN_BY_HASH[hash_name]
        self.mac3 = HMAC3_BY_HASH[hash_name]
        self.zeros = _zeros(hash_name)
        self.c_hs = _label_head(LABEL_C_HS_TRAFFIC, size)
        self.s_hs = _label_head(LABEL_S_HS_TRAFFIC, size)
        self.c_ap = _label_head(LABEL_C_AP_TRAFFIC, size)
        self.s_ap = _label_head(LABEL_S_AP_TRAFFIC, size)
        self.exp = _label_head(LABEL_EXP_MASTER, size)
        self.res_master = _label_head(LABEL_RES_MASTER, size)
        self.resumption = _label_head(LABEL_RESUMPTION, size)
        # Derive-Secret(., "derived", ""): HkdfLabel with the empty hash as context.
        empty = empty_hash(hash_name)
        self.derived_info = (_label_head(LABEL_DERIVED, size) + _LENGTH_BYTES[len(empty)]
                             + empty + b"\x01")
        # The binder keys' HkdfLabels: Derive-Secret(., "... binder", "") (RFC 8446 §7.1,
        # RFC 9258 §4.2).
        self.res_binder_info, self.ext_binder_info, self.imp_binder_info = (
            _label_head(label, size) + _LENGTH_BYTES[len(empty)] + empty + b"\x01"
            for label in (LABEL_RES_BINDER, LABEL_EXT_BINDER, LABEL_IMP_BINDER))
        self.finished_info = _label_info(LABEL_FINISHED, size)
        self.no_psk_early = _no_psk_early(hash_name)
        self.no_psk_salt = _no_psk_salt(hash_name)


_KITS: dict[str, _Kit] = {name: _Kit(name) for name in _ONE_BLOCK}


__all__ = [
    "LABELS",
    "LABEL_C_AP_TRAFFIC",
    "LABEL_C_E_TRAFFIC",
    "LABEL_C_HS_TRAFFIC",
    "LABEL_DERIVED",
    "LABEL_EXPORTER",
    "LABEL_EXP_MASTER",
    "LABEL_EXT_BINDER",
    "LABEL_E_EXP_MASTER",
    "LABEL_FINISHED",
    "LABEL_IV",
    "LABEL_KEY",
    "LABEL_PREFIX",
    "LABEL_RESUMPTION",
    "LABEL_RES_BINDER",
    "LABEL_RES_MASTER",
    "LABEL_S_AP_TRAFFIC",
    "LABEL_S_HS_TRAFFIC",
    "LABEL_TRAFFIC_UPD",
    "EarlySecret",
    "HandshakeSecret",
    "MasterSecret",
    "binder_value",
    "derive_secret",
    "empty_hash",
    "export_keying_material",
    "finished_key",
    "finished_verify_data",
    "hash_length",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_extract",
    "hkdf_label",
    "next_traffic_secret",
    "psk_binder",
    "resumption_psk",
    "traffic_keys",
    "traffic_keys_and_finished_key",
    "verify_data_with_key",
]
