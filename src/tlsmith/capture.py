"""A packet capture of our own connection, rebuilt from its trace (``connect --pcap``).

The trace (tlsmith.observe) holds every TLS record that crossed the wire, both ways, in
order, with the bytes as sent (``RecordTrace.wire``). Concatenated per direction they are
the two TCP byte streams. From them and the socket's real addresses we synthesize the
IPv4/IPv6 + TCP packets a sniffer would have seen -- SYN, SYN-ACK, ACK, data segments of
at most ``mss`` bytes with consistent sequence and acknowledgement numbers, FIN/ACK -- and
write them to a pcapng file (tlsmith.pcapng) with the connection's secrets in a
Decryption Secrets Block, so Wireshark and tshark show it decrypted.

What it is not: a sniffer. Timing within a record, retransmissions, window sizes and TCP
options other than the SYN's MSS are made up; bytes the peer sent that never formed a
whole TLS record (or that were not TLS) are not in the trace, so not in the capture.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tlsmith import __version__, pcapng
from tlsmith.codec.enums import ContentType
from tlsmith.keylog import format_line
from tlsmith.observe import RecordTrace, SecretTrace, TraceRecord

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Segment payload size: what a 1500-byte Ethernet MTU leaves after IPv4 + TCP headers.
DEFAULT_MSS = 1460
#: The most that fits an IPv4 packet's 16-bit total length after 20-byte IP and TCP headers.
MAX_MSS = 65535 - 40

# TCP flags (RFC 9293 §3.1)
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
_WINDOW = 65535
_TTL = 64
_PROTO_TCP = 6


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: Address
    port: int

    @classmethod
    def of(cls, sockaddr: Any) -> Endpoint:
        """From a socket address: ``(host, port)`` or IPv6's ``(host, port, flow, scope)``
        (a scope suffix such as ``%lo`` is dropped)."""
        host = str(sockaddr[0]).partition("%")[0]
        return cls(ipaddress.ip_address(host), int(sockaddr[1]))

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TcpConnection:
    """Who talked to whom: ``local`` sent the trace's "sent" records and opened the
    connection. ``opened``/``closed`` (trace-clock seconds) time the SYN and the FIN;
    None: at the first / last record."""

    local: Endpoint
    peer: Endpoint
    opened: float | None = None
    closed: float | None = None

    @classmethod
    def of_socket(cls, sock: socket.socket, *, opened: float | None = None
                  ) -> TcpConnection:
        return cls(Endpoint.of(sock.getsockname()), Endpoint.of(sock.getpeername()),
                   opened=opened)


@dataclass(frozen=True, slots=True)
class Packet:
    time: float
    data: bytes  # an IPv4 or IPv6 packet (LINKTYPE_RAW)
    comment: str | None = None


# ----------------------------------------------------------------------------- headers
def internet_checksum(data: bytes) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _tcp_segment(src: Endpoint, dst: Endpoint, seq: int, ack: int, flags: int,
                 payload: bytes, tcp_options: bytes = b"") -> bytes:
    """A TCP header (RFC 9293 §3.1) and payload, its checksum over the pseudo-header
    (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6)."""
    offset_words = (20 + len(tcp_options)) // 4
    header = struct.pack("!HHIIBBHHH", src.port, dst.port, seq & 0xFFFFFFFF,
                         ack & 0xFFFFFFFF if flags & ACK else 0, offset_words << 4, flags,
                         _WINDOW, 0, 0) + tcp_options
    segment = header + payload
    if src.address.version == 4:
        pseudo = (src.address.packed + dst.address.packed
                  + struct.pack("!BBH", 0, _PROTO_TCP, len(segment)))
    else:
        pseudo = (src.address.packed + dst.address.packed
                  + struct.pack("!IxxxB", len(segment), _PROTO_TCP))
    checksum = internet_checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", checksum) + segment[18:]


def _ip_packet(src: Address, dst: Address, segment: bytes, ident: int) -> bytes:
    if src.version == 4:
        # RFC 791 §3.1: version 4, IHL 5, don't fragment; the checksum covers the header.
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ident & 0xFFFF,
                             0x4000, _TTL, _PROTO_TCP, 0, src.packed, dst.packed)
        checksum = internet_checksum(header)
        return header[:10] + struct.pack("!H", checksum) + header[12:] + segment
    # RFC 8200 §3: version 6, no traffic class or flow label; no header checksum.
    return struct.pack("!IHBB16s16s", 6 << 28, len(segment), _PROTO_TCP, _TTL,
                       src.packed, dst.packed) + segment


# ----------------------------------------------------------------------------- streams
class _Side:
    """One end's sending state: its endpoint, next sequence number, IPv4 ident."""

    def __init__(self, endpoint: Endpoint, isn: int) -> None:
        self.endpoint = endpoint
        self.next_seq = isn
        self.ident = isn & 0xFFFF


class _Builder:
    def __init__(self, conn: TcpConnection, mss: int) -> None:
        self.mss = mss
        # Deterministic initial sequence numbers (a replayed trace gives the same file);
        # readers show sequence numbers relative to them anyway.
        self.local = _Side(conn.local, zlib.crc32(f"{conn.local}>{conn.peer}".encode()))
        self.peer = _Side(conn.peer, zlib.crc32(f"{conn.peer}>{conn.local}".encode()))
        self.packets: list[Packet] = []

    def send(self, side: _Side, flags: int, time: float, payload: bytes = b"",
             comment: str | None = None, tcp_options: bytes = b"") -> None:
        other = self.peer if side is self.local else self.local
        segment = _tcp_segment(side.endpoint, other.endpoint, side.next_seq,
                               other.next_seq, flags, payload, tcp_options)
        packet = _ip_packet(side.endpoint.address, other.endpoint.address, segment,
                            side.ident)
        side.ident += 1
        # SYN and FIN each take one sequence number (RFC 9293 §3.4).
        side.next_seq += len(payload) + (1 if flags & (SYN | FIN) else 0)
        self.packets.append(Packet(time, packet, comment))

    def open(self, time: float) -> None:
        mss_option = struct.pack("!BBH", 2, 4, self.mss)  # RFC 9293 §3.2: kind 2, MSS
        self.send(self.local, SYN, time, tcp_options=mss_option,
                  comment="synthesized by tlsmith from the connection's trace: the TCP "
                          "packets are rebuilt, the TLS records are the real bytes")
        self.send(self.peer, SYN | ACK, time, tcp_options=mss_option)
        self.send(self.local, ACK, time)

    def data(self, side: _Side, record: RecordTrace, time: float) -> None:
        """The record in segments of at most ``mss`` bytes, PSH on its last one."""
        wire = record.wire
        chunks = [wire[i:i + self.mss] for i in range(0, len(wire), self.mss)]
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            comment = _record_comment(record) if n == 0 else None
            self.send(side, ACK | (PSH if last else 0), time, chunk, comment)

    def close(self, time: float) -> None:
        self.send(self.local, FIN | ACK, time)
        self.send(self.peer, FIN | ACK, time)
        self.send(self.local, ACK, time)


def _record_comment(record: RecordTrace) -> str:
    kind = ContentType(record.content_type).name.lower()  # open enum: never raises
    state = f"protected ({record.epoch} keys)" if record.protected else "plaintext"
    return (f"TLS record {record.direction}: {kind}, {state}, {len(record.wire)} bytes "
            f"on the wire")


def packets(conn: TcpConnection, records: Iterable[TraceRecord], *,
            mss: int = DEFAULT_MSS) -> list[Packet]:
    """The packets of one TCP connection carrying the trace's records: handshake at
    ``conn.opened`` (else the first record's time), one or more segments per record at
    its time, FIN/ACK at ``conn.closed`` (else the last record's time)."""
    if not 0 < mss <= MAX_MSS:
        raise ValueError(f"MSS {mss} is out of range")
    wire = [r for r in records if isinstance(r, RecordTrace)]
    first = wire[0].time if wire else conn.opened or conn.closed or 0.0
    last = wire[-1].time if wire else first
    opened = conn.opened if conn.opened is not None else first
    builder = _Builder(conn, mss)
    builder.open(min(opened, first))
    now = min(opened, first)
    for record in wire:
        now = max(now, record.time)  # a capture's timestamps never go backwards
        builder.data(builder.local if record.direction == "sent" else builder.peer,
                     record, now)
    closed = conn.closed if conn.closed is not None else last
    builder.close(max(now, closed))
    return builder.packets


def key_log(records: Iterable[TraceRecord]) -> bytes:
    """The NSS key log lines (tlsmith.keylog's format) of the trace's secrets."""
    return "".join(format_line(r.nss_label, r.client_random, r.value) for r in records
                   if isinstance(r, SecretTrace) and r.nss_label).encode()


@dataclass
class CaptureSummary:
    """What a capture holds (counted while its blocks are made)."""

    streams: int = 0
    packets: int = 0
    secrets: int = 0  # key log lines embedded
    size: int = 0  # bytes of the file


Sessions = Sequence[tuple[TcpConnection, Sequence[TraceRecord]]]


def pcapng_blocks(sessions: Sessions, *, mss: int = DEFAULT_MSS,
                  application: str | None = None,
                  summary: CaptureSummary | None = None) -> Iterator[bytes]:
    """The blocks of a pcapng file holding ``sessions`` (one TCP stream each, in order),
    each preceded by a Decryption Secrets Block with its secrets, if it has any."""
    counts = summary if summary is not None else CaptureSummary()
    yield pcapng.section_header_block(user_application=application
                                      or f"tlsmith {__version__}")
    yield pcapng.interface_description_block(
        pcapng.LINKTYPE_RAW, name="tlsmith",
        description="packets synthesized from tlsmith's trace of its own connection")
    for conn, records in sessions:
        counts.streams += 1
        secrets = key_log(records)
        if secrets:
            counts.secrets += secrets.count(b"\n")
            yield pcapng.decryption_secrets_block(secrets)
        for packet in packets(conn, records, mss=mss):
            counts.packets += 1
            yield pcapng.enhanced_packet_block(packet.data, packet.time,
                                               comment=packet.comment)


def write_pcapng(path: str, sessions: Sessions, *, mss: int = DEFAULT_MSS,
                 application: str | None = None) -> CaptureSummary:
    """Write ``sessions`` to ``path`` (mode 0600: it holds secrets)."""
    summary = CaptureSummary()
    summary.size = pcapng.write_file(path, pcapng_blocks(sessions, mss=mss,
                                                         application=application,
                                                         summary=summary))
    return summary
