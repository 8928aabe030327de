"""Extensions introduced by TLS 1.3 (RFC 8446 §4.2)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from tlsmith.codec.buffer import Reader, Writer
from tlsmith.codec.enums import (
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    member,
)
from tlsmith.codec.extensions_base import (
    ExtensionBody,
    ExtensionContext,
    enum_tuple,
    expect_empty,
    ext_reader,
    read_opaque_list,
    read_u8_enums,
    write_opaque_list,
    write_u8s,
    write_u16s,
)
from tlsmith.errors import DecodeError, IllegalParameter

_T = ExtensionType


# -- supported_versions (§4.2.1) ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SupportedVersionsClientHello(ExtensionBody):
    """ClientHello form: ProtocolVersion versions<2..254>."""

    extension_type: ClassVar[ExtensionType] = _T.SUPPORTED_VERSIONS
    versions: tuple[ProtocolVersion, ...]

    def write_body(self, w: Writer) -> None:
        write_u16s(w, 1, self.versions)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            raw = r.opaque(1, min_len=2, max_len=254)
        if len(raw) & 1:
            raise DecodeError(f"supported_versions extension: odd list length {len(raw)}")
        return cls(enum_tuple(ProtocolVersion, struct.unpack(f">{len(raw) >> 1}H", raw)))


@dataclass(frozen=True, slots=True)
class SupportedVersionsServerHello(ExtensionBody):
    """ServerHello / HelloRetryRequest form: ProtocolVersion selected_version."""

    extension_type: ClassVar[ExtensionType] = _T.SUPPORTED_VERSIONS
    selected_version: ProtocolVersion

    def write_body(self, w: Writer) -> None:
        w.u16(self.selected_version)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            version = ProtocolVersion(r.u16())
        return cls(version)


# -- cookie (§4.2.2) ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cookie(ExtensionBody):
    """opaque cookie<1..2^16-1>."""

    extension_type: ClassVar[ExtensionType] = _T.COOKIE
    cookie: bytes

    def write_body(self, w: Writer) -> None:
        w.opaque(2, self.cookie)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            cookie = r.opaque(2, min_len=1)
        return cls(cookie)


# -- certificate_authorities (§4.2.4) ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class CertificateAuthorities(ExtensionBody):
    """DistinguishedName authorities<3..2^16-1>; opaque DistinguishedName<1..2^16-1>
    (DER-encoded X.501 names, kept as bytes)."""

    extension_type: ClassVar[ExtensionType] = _T.CERTIFICATE_AUTHORITIES
    authorities: tuple[bytes, ...]

    def write_body(self, w: Writer) -> None:
        write_opaque_list(w, 2, 2, self.authorities)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            names = read_opaque_list(r, 2, 2, min_len=3, max_len=0xFFFF, item_min=1,
                                     item_max=None, what="certificate_authorities list")
        return cls(names)


# -- oid_filters (§4.2.5) ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OIDFilter:
    """opaque certificate_extension_oid<1..2^8-1>; opaque certificate_extension_values
    <0..2^16-1> (both DER, kept raw)."""

    certificate_extension_oid: bytes
    certificate_extension_values: bytes


@dataclass(frozen=True, slots=True)
class OIDFilters(ExtensionBody):
    """OIDFilter filters<0..2^16-1> (CertificateRequest only)."""

    extension_type: ClassVar[ExtensionType] = _T.OID_FILTERS
    filters: tuple[OIDFilter, ...]

    def write_body(self, w: Writer) -> None:
        with w.vector(2):
            for f in self.filters:
                w.opaque(1, f.certificate_extension_oid)
                w.opaque(2, f.certificate_extension_values)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        filters: list[OIDFilter] = []
        with ext_reader(data, cls.extension_type) as r, r.vector(2) as sub:
            while not sub.at_end():
                filters.append(OIDFilter(sub.opaque(1, min_len=1), sub.opaque(2)))
        return cls(tuple(filters))


# -- post_handshake_auth (§4.2.6) -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PostHandshakeAuth(ExtensionBody):
    """Empty body."""

    extension_type: ClassVar[ExtensionType] = _T.POST_HANDSHAKE_AUTH

    def write_body(self, w: Writer) -> None:
        pass

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        expect_empty(data, cls.extension_type)
        return cls()


# -- key_share (§4.2.8) -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeyShareEntry:
    """NamedGroup group; opaque key_exchange<1..2^16-1>."""

    group: NamedGroup
    key_exchange: bytes

    def write(self, w: Writer) -> None:
        # (w.u16 and w.opaque(2, ...) in place: a share is written in every hello.)
        buf = w._buf
        buf += self.group.to_bytes(2, "big")
        key_exchange = self.key_exchange
        n = len(key_exchange)
        if n > 0xFFFF:
            raise ValueError(f"{n} bytes do not fit a 2-byte length prefix")
        buf += n.to_bytes(2, "big")
        buf += key_exchange

    @classmethod
    def read(cls, r: Reader) -> KeyShareEntry:
        group = member(NamedGroup, r.u16())
        return cls(group, r.opaque(2, min_len=1))


@dataclass(frozen=True, slots=True)
class KeyShareClientHello(ExtensionBody):
    """KeyShareEntry client_shares<0..2^16-1>."""

    extension_type: ClassVar[ExtensionType] = _T.KEY_SHARE
    client_shares: tuple[KeyShareEntry, ...]

    def write_body(self, w: Writer) -> None:
        # (w.vector(2) in place, as serialize_extensions does.)
        buf = w._buf
        start = len(buf)
        buf += b"\x00\x00"
        for entry in self.client_shares:
            entry.write(w)
        _fill_u16_length(buf, start)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        # Fast path for a well-formed body (every check below, made in place); anything
        # else is read again by ``_parse_checked``, which says what is wrong.
        n = len(data)
        if n >= 2 and (data[0] << 8 | data[1]) == n - 2:
            if n > 6 and (data[4] << 8 | data[5]) == n - 6:
                # One share filling the body (most clients): the loop below, unrolled.
                return cls((KeyShareEntry(member(NamedGroup, data[2] << 8 | data[3]),
                                          bytes(data[6:])),))
            shares: list[KeyShareEntry] = []
            seen: set[int] = set()
            pos = 2
            while pos + 4 <= n:
                group = data[pos] << 8 | data[pos + 1]
                start = pos + 4
                end = start + (data[pos + 2] << 8 | data[pos + 3])
                if end == start or end > n or group in seen:
                    break
                seen.add(group)
                shares.append(KeyShareEntry(member(NamedGroup, group), bytes(data[start:end])))
                pos = end
            if pos == n:
                return cls(tuple(shares))
        return cls._parse_checked(data)

    @classmethod
    def _parse_checked(cls, data: memoryview | bytes) -> Self:
        shares: list[KeyShareEntry] = []
        seen: set[int] = set()
        with ext_reader(data, cls.extension_type) as r, r.vector(2) as sub:
            while not sub.at_end():
                entry = KeyShareEntry.read(sub)
                if entry.group in seen:
                    # RFC 8446 §4.2.8: clients MUST NOT offer multiple KeyShareEntry
                    # values for the same group; servers MAY abort with illegal_parameter.
                    raise IllegalParameter(
                        f"key_share extension: two shares for the group {entry.group}")
                seen.add(entry.group)
                shares.append(entry)
        return cls(tuple(shares))

    def share_for(self, group: NamedGroup) -> KeyShareEntry | None:
        for entry in self.client_shares:
            if entry.group == group:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class KeyShareServerHello(ExtensionBody):
    """KeyShareEntry server_share."""

    extension_type: ClassVar[ExtensionType] = _T.KEY_SHARE
    server_share: KeyShareEntry

    def write_body(self, w: Writer) -> None:
        self.server_share.write(w)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        n = len(data)
        if n > 4 and (data[2] << 8 | data[3]) == n - 4:
            # Well-formed (group, key_exchange<1..2^16-1> filling the body): read in place.
            return cls(KeyShareEntry(member(NamedGroup, data[0] << 8 | data[1]),
                                     bytes(data[4:])))
        return cls._parse_checked(data)

    @classmethod
    def _parse_checked(cls, data: memoryview | bytes) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            entry = KeyShareEntry.read(r)
        return cls(entry)


@dataclass(frozen=True, slots=True)
class KeyShareHelloRetryRequest(ExtensionBody):
    """NamedGroup selected_group."""

    extension_type: ClassVar[ExtensionType] = _T.KEY_SHARE
    selected_group: NamedGroup

    def write_body(self, w: Writer) -> None:
        w.u16(self.selected_group)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            group = NamedGroup(r.u16())
        return cls(group)


# -- psk_key_exchange_modes (§4.2.9) ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class PskKeyExchangeModes(ExtensionBody):
    """PskKeyExchangeMode ke_modes<1..255>."""

    extension_type: ClassVar[ExtensionType] = _T.PSK_KEY_EXCHANGE_MODES
    ke_modes: tuple[PskKeyExchangeMode, ...]

    def write_body(self, w: Writer) -> None:
        write_u8s(w, 1, self.ke_modes)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            modes = read_u8_enums(r, 1, PskKeyExchangeMode, min_len=1, max_len=255,
                                  what="psk_key_exchange_modes extension")
        return cls(modes)


# -- early_data (§4.2.10) ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EarlyDataIndication(ExtensionBody):
    """Empty in ClientHello/EncryptedExtensions (``None``); ``uint32 max_early_data_size``
    in NewSessionTicket."""

    extension_type: ClassVar[ExtensionType] = _T.EARLY_DATA
    max_early_data_size: int | None = None

    def write_body(self, w: Writer) -> None:
        if self.max_early_data_size is not None:
            w.u32(self.max_early_data_size)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        if context is not ExtensionContext.NEW_SESSION_TICKET:
            expect_empty(data, cls.extension_type)
            return cls(None)
        with ext_reader(data, cls.extension_type) as r:
            size = r.u32()
        return cls(size)


# -- pre_shared_key (§4.2.11) -----------------------------------------------------------
def _fill_u16_length(buf: bytearray, start: int) -> None:
    """The 2-byte length at ``start`` of the vector written after it (Writer.vector's
    ending, in place)."""
    n = len(buf) - start - 2
    if n > 0xFFFF:
        raise ValueError(f"{n} bytes do not fit a 2-byte length prefix")
    buf[start:start + 2] = n.to_bytes(2, "big")


_U16_PAIR = struct.Struct(">HH").unpack_from
# obfuscated_ticket_age, then the binders vector's length and the first binder's.
_AGE_AND_BINDER_LENGTHS = struct.Struct(">IHB").unpack_from


@dataclass(frozen=True, slots=True)
class PskIdentity:
    """opaque identity<1..2^16-1>; uint32 obfuscated_ticket_age."""

    identity: bytes
    obfuscated_ticket_age: int


@dataclass(frozen=True, slots=True)
class PreSharedKeyClientHello(ExtensionBody):
    """OfferedPsks: PskIdentity identities<7..2^16-1>; PskBinderEntry binders<33..2^16-1>;
    opaque PskBinderEntry<32..255>."""

    extension_type: ClassVar[ExtensionType] = _T.PRE_SHARED_KEY
    identities: tuple[PskIdentity, ...]
    binders: tuple[bytes, ...]

    # (Both vectors written in place, as w.vector / w.opaque / w.u32 would, with the same
    # errors in the same order: a resuming client writes them for every hello.)
    def write_body(self, w: Writer) -> None:
        buf = w._buf
        start = len(buf)
        buf += b"\x00\x00"
        for ident in self.identities:
            identity = ident.identity
            n = len(identity)
            if n > 0xFFFF:
                raise ValueError(f"{n} bytes do not fit a 2-byte length prefix")
            buf += n.to_bytes(2, "big")
            buf += identity
            buf += ident.obfuscated_ticket_age.to_bytes(4, "big")
        _fill_u16_length(buf, start)
        self.write_binders(w)

    def write_binders(self, w: Writer) -> None:
        buf = w._buf
        start = len(buf)
        buf += b"\x00\x00"
        for binder in self.binders:
            n = len(binder)
            if n > 0xFF:
                raise ValueError(f"{n} bytes do not fit a 1-byte length prefix")
            buf.append(n)
            buf += binder
        _fill_u16_length(buf, start)

    def binders_length(self) -> int:
        """Bytes of the serialized binders vector, its 2-byte length included: what
        RFC 8446 §4.2.11.2 truncates off the ClientHello for the binder transcript."""
        return 2 + sum(1 + len(b) for b in self.binders)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        # Fast path for a well-formed body (every check below, made in place); anything
        # else is read again by ``_parse_checked``, which says what is wrong.
        found = cls._parse_well_formed(data)
        return found if found is not None else cls._parse_checked(data)

    @classmethod
    def _parse_well_formed(cls, data: memoryview | bytes) -> Self | None:
        n = len(data)
        if n >= 11:
            # One identity and one binder (a resuming client's usual offer), in two
            # struct reads: identities<7..>, its identity<1..>, binders<33..>, the
            # binder<32..>, the lengths adding up.
            ids_len, id_len = _U16_PAIR(data, 0)
            end = 4 + id_len
            if ids_len == id_len + 6 and id_len and end + 7 <= n:
                age, binders_len, binder_len = _AGE_AND_BINDER_LENGTHS(data, end)
                if binders_len == binder_len + 1 and binder_len >= 32 and (
                        end + 7 + binder_len == n):
                    return cls((PskIdentity(bytes(data[4:end]), age),),
                               (bytes(data[end + 7:]),))
        elif n < 2:
            return None
        ids_end = 2 + (data[0] << 8 | data[1])
        if ids_end < 9 or ids_end + 2 > n:
            return None
        identities: list[PskIdentity] = []
        pos = 2
        while pos < ids_end:
            start = pos + 2
            end = start + (data[pos] << 8 | data[pos + 1]) if start <= ids_end else 0
            if end <= start or end + 4 > ids_end:
                return None
            identities.append(PskIdentity(bytes(data[start:end]),
                                          int.from_bytes(data[end:end + 4], "big")))
            pos = end + 4
        if (data[ids_end] << 8 | data[ids_end + 1]) < 33 or (
                ids_end + 2 + (data[ids_end] << 8 | data[ids_end + 1]) != n):
            return None
        binders: list[bytes] = []
        pos = ids_end + 2
        while pos < n:
            start = pos + 1
            end = start + data[pos]
            if end - start < 32 or end > n:
                return None
            binders.append(bytes(data[start:end]))
            pos = end
        if len(binders) != len(identities):
            return None
        return cls(tuple(identities), tuple(binders))

    @classmethod
    def _parse_checked(cls, data: memoryview | bytes) -> Self:
        identities: list[PskIdentity] = []
        with ext_reader(data, cls.extension_type) as r:
            with r.vector(2, min_len=7, what="pre_shared_key identities") as ids:
                while not ids.at_end():
                    identity = ids.opaque(2, min_len=1)
                    identities.append(PskIdentity(identity, ids.u32()))
            binders = read_opaque_list(r, 2, 1, min_len=33, max_len=0xFFFF, item_min=32,
                                       item_max=255, what="pre_shared_key binders")
        if len(binders) != len(identities):
            # RFC 8446 §4.2.11: one binder "for each value in the identities list".
            raise IllegalParameter(
                f"pre_shared_key extension: {len(identities)} identities but "
                f"{len(binders)} binders")
        return cls(tuple(identities), binders)


@dataclass(frozen=True, slots=True)
class PreSharedKeyServerHello(ExtensionBody):
    """uint16 selected_identity."""

    extension_type: ClassVar[ExtensionType] = _T.PRE_SHARED_KEY
    selected_identity: int

    def write_body(self, w: Writer) -> None:
        w.u16(self.selected_identity)

    @classmethod
    def parse_body(cls, data: memoryview | bytes, context: ExtensionContext) -> Self:
        with ext_reader(data, cls.extension_type) as r:
            selected = r.u16()
        return cls(selected)

