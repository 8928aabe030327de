"""A small pcapng writer: the blocks a capture of our own connection needs.

pcapng is the IETF draft "PCAP Next Generation (pcapng) Capture File Format"
(draft-ietf-opsawg-pcapng). A file is a sequence of blocks, each::

    block type (4) | block total length (4) | body, padded to 32 bits | total length (4)

We write four kinds, little-endian (the Section Header's byte-order magic tells readers
which order we chose):

* Section Header Block (§4.1): starts the file;
* Interface Description Block (§4.2): one interface, LINKTYPE_RAW (each packet is an
  IPv4 or IPv6 packet, no link-layer header), microsecond timestamps;
* Decryption Secrets Block (§4.7): the NSS key log lines ("TLSK"), placed before the
  packets they decrypt, so Wireshark and tshark decrypt the file with no key-log option;
* Enhanced Packet Block (§4.3): one packet each.

This module knows nothing of TLS or TCP (see tlsmith.capture for the packets).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import BinaryIO

BLOCK_SECTION_HEADER = 0x0A0D0D0A
BLOCK_INTERFACE_DESCRIPTION = 0x00000001
BLOCK_ENHANCED_PACKET = 0x00000006
BLOCK_DECRYPTION_SECRETS = 0x0000000A

BYTE_ORDER_MAGIC = 0x1A2B3C4D
#: Secrets type of a DSB holding NSS key log lines ("TLSK", §4.7).
SECRETS_TLS_KEY_LOG = 0x544C534B

#: Link types (the tcpdump.org LINKTYPE_ registry).
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # the packet starts with an IPv4 or IPv6 header

# Option codes (§3.5 and each block's section).
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9

#: Interface snapshot length: no packet we write is longer.
SNAPLEN = 262144


def _pad4(data: bytes) -> bytes:
    """``data`` zero-padded to a multiple of 4 bytes (every block field is, §3.1)."""
    return data + b"\0" * (-len(data) % 4)


def options(*items: tuple[int, bytes]) -> bytes:
    """Encoded options (§3.5): code (2), length (2), value padded to 32 bits each, then
    opt_endofopt. No options at all: no bytes (the end marker is then left out too)."""
    if not items:
        return b""
    out = b"".join(struct.pack("<HH", code, len(value)) + _pad4(value)
                   for code, value in items)
    return out + struct.pack("<HH", OPT_ENDOFOPT, 0)


def block(block_type: int, body: bytes) -> bytes:
    """One block: the total length (12 bytes of framing + the padded body) is written
    at both ends, so a reader can walk the file forwards or backwards (§3.1)."""
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def section_header_block(*, user_application: str | None = None,
                         comment: str | None = None) -> bytes:
    """SHB (§4.1): version 1.0, section length -1 ("not given": we write as we go)."""
    opts: list[tuple[int, bytes]] = []
    if comment:
        opts.append((OPT_COMMENT, comment.encode()))
    if user_application:
        opts.append((SHB_USERAPPL, user_application.encode()))
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options(*opts)
    return block(BLOCK_SECTION_HEADER, body)


def interface_description_block(linktype: int = LINKTYPE_RAW, *, name: str | None = None,
                                description: str | None = None) -> bytes:
    """IDB (§4.2). if_tsresol is written as 6 (microseconds, also the default) so a
    reader need not assume it."""
    opts: list[tuple[int, bytes]] = []
    if name:
        opts.append((IF_NAME, name.encode()))
    if description:
        opts.append((IF_DESCRIPTION, description.encode()))
    opts.append((IF_TSRESOL, bytes([6])))
    body = struct.pack("<HHI", linktype, 0, SNAPLEN) + options(*opts)
    return block(BLOCK_INTERFACE_DESCRIPTION, body)


def enhanced_packet_block(packet: bytes, timestamp: float, *, interface_id: int = 0,
                          comment: str | None = None) -> bytes:
    """EPB (§4.3): the timestamp (seconds since the epoch) in microseconds, split into
    its upper and lower 32 bits; the whole packet captured."""
    micros = round(timestamp * 1_000_000)
    body = struct.pack("<IIIII", interface_id, micros >> 32, micros & 0xFFFFFFFF,
                       len(packet), len(packet))
    body += _pad4(packet)
    if comment:
        body += options((OPT_COMMENT, comment.encode()))
    return block(BLOCK_ENHANCED_PACKET, body)


def decryption_secrets_block(secrets: bytes,
                             secrets_type: int = SECRETS_TLS_KEY_LOG) -> bytes:
    """DSB (§4.7): for "TLSK", the bytes of an NSS key log file (one line per secret).
    A reader applies it to the packets after it, so it must come before them."""
    body = struct.pack("<II", secrets_type, len(secrets)) + _pad4(secrets)
    return block(BLOCK_DECRYPTION_SECRETS, body)


def write_file(path: str | os.PathLike[str], blocks: Iterable[bytes]) -> int:
    """Write ``blocks`` to ``path`` (created readable by its owner only: a DSB holds
    secrets); returns the number of bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    f: BinaryIO
    with os.fdopen(fd, "wb") as f:
        for b in blocks:
            written += f.write(b)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT: fix it
    return written
