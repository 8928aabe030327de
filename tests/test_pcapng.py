"""The pcapng writer and the packets rebuilt from a trace (tlsmith.pcapng, tlsmith.capture).

A deterministic in-memory handshake (injected randomness and clock, an Ed25519 server so
even the signature repeats) is written to a file, which is then read back block by block
with a parser written here from the pcapng draft (not with tlsmith's writer): lengths at
both ends, 32-bit alignment, the Decryption Secrets Block's key log before the packets, IP
and TCP checksums, sequence/acknowledgement numbers, and the TCP payload of each direction
equal to the TLS records that crossed the wire. capinfos and tshark then read the file,
and tshark decrypts it with nothing but what the file holds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography import x509

from helpers import CertFiles, free_port, require_peer
from pair import configs, pump
from tlsmith import pcapng
from tlsmith.capture import (
    ACK,
    FIN,
    MAX_MSS,
    PSH,
    SYN,
    Endpoint,
    TcpConnection,
    internet_checksum,
    key_log,
    packets,
    pcapng_blocks,
    write_pcapng,
)
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.connection import TLSConnection
from tlsmith.crypto.kx import deterministic_random
from tlsmith.events import ApplicationData
from tlsmith.observe import RecordTrace, SecretTrace, TraceRecord
from tlsmith.trace import TraceCollector

pytestmark = pytest.mark.timeout(60)

TSHARK_TIMEOUT = 30
REQUEST = b"GET /pcapng-unit HTTP/1.1\r\nHost: localhost\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2400\r\n"
            b"Connection: close\r\n\r\n" + b"x" * 2400)
CLIENT = Endpoint(ipaddress.ip_address("127.0.0.1"), 50123)
SERVER = Endpoint(ipaddress.ip_address("127.0.0.1"), 443)
CLIENT6 = Endpoint(ipaddress.ip_address("::1"), 50124)
SERVER6 = Endpoint(ipaddress.ip_address("::1"), 443)
VERSIONS = {"1.3": ProtocolVersion.TLS13, "1.2": ProtocolVersion.TLS12}


def ticking_clock(cert: CertFiles, step: float = 0.000_25) -> Callable[[], float]:
    """A clock that starts an hour into the certificate's validity and ticks ``step``
    seconds per reading: the same readings every run."""
    issued = x509.load_pem_x509_certificate(cert.cert_path.read_bytes())
    now = issued.not_valid_before_utc.timestamp() + 3600

    def clock() -> float:
        nonlocal now
        now += step
        return now

    return clock


def session_records(cert: CertFiles, version: ProtocolVersion, *, tickets: int = 2
                    ) -> list[TraceRecord]:
    """The client's trace of a handshake, one request, one reply and a close_notify each
    way; deterministic without tickets (the server's ticket key is its own randomness)."""
    client_cfg, server_cfg = configs(cert, max_version=version, server={"tickets": tickets})
    collector = TraceCollector()
    client = TLSConnection(replace(client_cfg, observer=collector, clock=ticking_clock(cert),
                                   random=deterministic_random(b"pcap client")))
    server = TLSConnection(replace(server_cfg, clock=ticking_clock(cert),
                                   random=deterministic_random(b"pcap server")))
    pump(client, server)
    client.send_data(REQUEST)
    _, server_events = pump(client, server)
    assert any(isinstance(e, ApplicationData) and e.data == REQUEST for e in server_events)
    server.send_data(RESPONSE)
    server.close()
    client_events, _ = pump(client, server)
    got = b"".join(e.data for e in client_events if isinstance(e, ApplicationData))
    assert got == RESPONSE
    client.close()
    pump(client, server)
    assert client.negotiated_version == version
    return collector.records


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def records(request: pytest.FixtureRequest, certs: dict[str, CertFiles]
            ) -> list[TraceRecord]:
    return session_records(certs["ed25519"], VERSIONS[request.param])


# --------------------------------------------------------------------------- a reader
@dataclass
class Block:
    offset: int
    type: int
    body: bytes


def read_blocks(data: bytes) -> list[Block]:
    """Walk a little-endian pcapng file, checking each block's framing (§3.1)."""
    blocks = []
    pos = 0
    while pos < len(data):
        block_type, total = struct.unpack_from("<II", data, pos)
        assert total % 4 == 0 and total >= 12, (pos, total)
        assert pos + total <= len(data), "a block runs past the end of the file"
        (trailer,) = struct.unpack_from("<I", data, pos + total - 4)
        assert trailer == total, "the two block total lengths differ"
        blocks.append(Block(pos, block_type, data[pos + 8:pos + total - 4]))
        pos += total
    assert pos == len(data)
    return blocks


def read_options(data: bytes) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    pos = 0
    if not data:  # options are optional, and so is their end marker then
        return out
    while pos < len(data):
        code, length = struct.unpack_from("<HH", data, pos)
        if code == 0:
            assert length == 0 and pos + 4 == len(data), "data after opt_endofopt"
            return out
        out.setdefault(code, []).append(data[pos + 4:pos + 4 + length])
        pos += 4 + length + (-length % 4)
    raise AssertionError("options without opt_endofopt")


@dataclass
class Segment:
    time: float
    src: Endpoint
    dst: Endpoint
    seq: int
    ack: int
    flags: int
    payload: bytes
    comment: str | None


def ones_complement_ok(data: bytes) -> bool:
    """A header with its checksum in place sums to 0xFFFF (RFC 1071 §1)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def parse_packet(packet: bytes) -> tuple[Endpoint, Endpoint, bytes]:
    """An IPv4/IPv6 packet (LINKTYPE_RAW) -> source, destination, TCP segment; checks
    the IPv4 header checksum and the TCP checksum."""
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        total_length = int.from_bytes(packet[2:4], "big")
        assert total_length == len(packet) and packet[9] == 6
        assert ones_complement_ok(packet[:ihl]), "bad IPv4 header checksum"
        src, dst = packet[12:16], packet[16:20]
        segment = packet[ihl:]
        pseudo = src + dst + bytes([0, 6]) + len(segment).to_bytes(2, "big")
    else:
        assert version == 6 and packet[6] == 6
        assert int.from_bytes(packet[4:6], "big") == len(packet) - 40
        src, dst = packet[8:24], packet[24:40]
        segment = packet[40:]
        pseudo = src + dst + len(segment).to_bytes(4, "big") + bytes([0, 0, 0, 6])
    assert ones_complement_ok(pseudo + segment), "bad TCP checksum"
    sport, dport = struct.unpack_from("!HH", segment)
    return (Endpoint(ipaddress.ip_address(src), sport),
            Endpoint(ipaddress.ip_address(dst), dport), segment)


def parse_capture(data: bytes) -> tuple[list[Block], bytes, list[Segment]]:
    """The file's blocks, the key log of its DSBs, and its TCP segments in order."""
    blocks = read_blocks(data)
    assert blocks[0].type == pcapng.BLOCK_SECTION_HEADER
    magic, major, minor, section_length = struct.unpack_from("<IHHq", blocks[0].body)
    assert (magic, major, minor, section_length) == (0x1A2B3C4D, 1, 0, -1)
    assert b"tlsmith" in read_options(blocks[0].body[16:])[4][0]  # shb_userappl
    assert blocks[1].type == pcapng.BLOCK_INTERFACE_DESCRIPTION
    linktype, reserved, _snaplen = struct.unpack_from("<HHI", blocks[1].body)
    assert (linktype, reserved) == (101, 0)  # LINKTYPE_RAW
    assert read_options(blocks[1].body[8:])[9] == [b"\x06"]  # if_tsresol: microseconds
    secrets = b""
    segments: list[Segment] = []
    for blk in blocks[2:]:
        if blk.type == pcapng.BLOCK_DECRYPTION_SECRETS:
            secrets_type, length = struct.unpack_from("<II", blk.body)
            assert secrets_type == 0x544C534B  # "TLSK"
            assert len(blk.body) == 8 + length + (-length % 4)  # no options
            secrets += blk.body[8:8 + length]
            continue
        assert blk.type == pcapng.BLOCK_ENHANCED_PACKET
        assert secrets, "a packet before the secrets that decrypt it"
        iface, hi, lo, captured, original = struct.unpack_from("<IIIII", blk.body)
        assert iface == 0 and captured == original
        packet = blk.body[20:20 + captured]
        opts = read_options(blk.body[20 + captured + (-captured % 4):])
        comment = opts[1][0].decode() if 1 in opts else None
        src, dst, segment = parse_packet(packet)
        seq, ack, offset, flags = struct.unpack_from("!IIBB", segment, 4)
        segments.append(Segment(((hi << 32) | lo) / 1e6, src, dst, seq, ack, flags,
                                segment[(offset >> 4) * 4:], comment))
    return blocks, secrets, segments


def streams(segments: list[Segment]) -> dict[Endpoint, bytes]:
    """Each sender's TCP payload, placed by sequence number (relative to its SYN)."""
    isn: dict[Endpoint, int] = {}
    data: dict[Endpoint, bytearray] = {}
    for s in segments:
        if s.flags & SYN:
            isn[s.src] = s.seq
            data[s.src] = bytearray()
            continue
        if not s.payload:  # a bare ACK, or FIN (whose sequence number is its own)
            continue
        at = (s.seq - isn[s.src] - 1) % 2**32
        assert at == len(data[s.src]), "a gap or overlap in the stream"
        data[s.src] += s.payload
    return {k: bytes(v) for k, v in data.items()}


def wire(records: list[TraceRecord], direction: str) -> bytes:
    return b"".join(r.wire for r in records
                    if isinstance(r, RecordTrace) and r.direction == direction)


# ----------------------------------------------------------------------------- tests
def test_internet_checksum_known_header() -> None:
    # The IPv4 header worked through in RFC 1071's style on many references
    # (192.168.0.1 -> 192.168.0.199, UDP, total length 0x73): checksum 0xb861.
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert internet_checksum(header) == 0xB861
    assert internet_checksum(b"\x01") == 0xFEFF  # an odd byte is padded with zero


def test_block_framing_and_options() -> None:
    epb = pcapng.enhanced_packet_block(b"abcde", 1.5, comment="hi")
    (blk,) = read_blocks(epb)
    assert blk.type == 6
    assert struct.unpack_from("<IIIII", blk.body) == (0, 0, 1_500_000, 5, 5)
    assert blk.body[20:28] == b"abcde\0\0\0"
    assert read_options(blk.body[28:]) == {1: [b"hi"]}
    dsb = pcapng.decryption_secrets_block(b"CLIENT_RANDOM aa bb\n")
    (blk,) = read_blocks(dsb)
    assert blk.type == 0x0A and blk.body[:8] == struct.pack("<II", 0x544C534B, 20)
    assert pcapng.options() == b""


@pytest.mark.parametrize("mss", [1460, 100])
def test_capture_carries_every_record(records: list[TraceRecord], mss: int,
                                      tmp_path: Path) -> None:
    path = tmp_path / "session.pcapng"
    summary = write_pcapng(str(path), [(TcpConnection(CLIENT, SERVER), records)], mss=mss)
    assert path.stat().st_mode & 0o777 == 0o600  # it holds secrets
    data = path.read_bytes()
    assert summary.size == len(data) and summary.streams == 1
    blocks, secrets, segments = parse_capture(data)
    assert summary.packets == len(segments)
    # The key log: one line per labelled secret, as tlsmith.keylog writes it.
    expected = [r for r in records if isinstance(r, SecretTrace) and r.nss_label]
    lines = secrets.decode().splitlines()
    assert len(lines) == len(expected) == summary.secrets
    for line, secret in zip(lines, expected, strict=True):
        assert line == (f"{secret.nss_label} {secret.client_random.hex()} "
                        f"{secret.value.hex()}")
    assert blocks[2].type == pcapng.BLOCK_DECRYPTION_SECRETS  # before every packet
    # TCP: the three-way handshake, then data, then FIN/ACK both ways and the last ACK.
    flags = [s.flags for s in segments]
    assert flags[:3] == [SYN, SYN | ACK, ACK]
    assert flags[-3:] == [FIN | ACK, FIN | ACK, ACK]
    assert all(f & ACK and not f & (SYN | FIN) for f in flags[3:-3])
    assert (segments[0].src, segments[0].dst) == (CLIENT, SERVER)
    assert all(len(s.payload) <= mss for s in segments)
    # PSH ends each record (its last segment).
    n_records = sum(isinstance(r, RecordTrace) for r in records)
    assert sum(bool(s.flags & PSH) for s in segments) == n_records
    # Each side acknowledges exactly what the other has sent so far.
    sent = {CLIENT: segments[0].seq + 1, SERVER: segments[1].seq + 1}
    for s in segments[2:]:
        assert s.seq == sent[s.src]
        assert s.ack == sent[s.dst]
        sent[s.src] += len(s.payload) + (1 if s.flags & FIN else 0)
    # The byte streams are the records' wire bytes, in order.
    got = streams(segments)
    assert got[CLIENT] == wire(records, "sent")
    assert got[SERVER] == wire(records, "received")
    # Timestamps come from the trace (its injected clock) and never go backwards.
    times = [s.time for s in segments]
    assert times == sorted(times)
    first = next(r for r in records if isinstance(r, RecordTrace))
    assert times[0] == pytest.approx(first.time, abs=1e-6)
    # Each record's first segment says what it carries.
    comments = [s.comment for s in segments if s.comment and s.comment.startswith("TLS")]
    assert len(comments) == sum(isinstance(r, RecordTrace) for r in records)
    assert comments[0] == (f"TLS record sent: handshake, plaintext, {len(first.wire)} "
                           "bytes on the wire")


def test_capture_over_ipv6(records: list[TraceRecord]) -> None:
    data = b"".join(pcapng_blocks([(TcpConnection(CLIENT6, SERVER6), records)]))
    _, _, segments = parse_capture(data)
    assert {s.src for s in segments} == {CLIENT6, SERVER6}
    assert streams(segments)[SERVER6] == wire(records, "received")


def test_two_connections_two_streams_each_after_its_secrets(records: list[TraceRecord]
                                                             ) -> None:
    second = Endpoint(CLIENT.address, CLIENT.port + 1)
    data = b"".join(pcapng_blocks([(TcpConnection(CLIENT, SERVER), records),
                                   (TcpConnection(second, SERVER), records)]))
    blocks, _, segments = parse_capture(data)
    kinds = [b.type for b in blocks[2:]]
    assert kinds.count(pcapng.BLOCK_DECRYPTION_SECRETS) == 2
    assert kinds[0] == pcapng.BLOCK_DECRYPTION_SECRETS
    assert kinds.index(pcapng.BLOCK_DECRYPTION_SECRETS, 1) == len(segments) // 2 + 1
    assert {s.src for s in segments} == {CLIENT, second, SERVER}


def test_replayed_handshake_gives_the_same_file(certs: dict[str, CertFiles]) -> None:
    conn = TcpConnection(CLIENT, SERVER)
    for version in VERSIONS.values():
        files = [b"".join(pcapng_blocks([(conn, session_records(certs["ed25519"], version,
                                                                 tickets=0))]))
                 for _ in range(2)]
        assert hashlib.sha256(files[0]).digest() == hashlib.sha256(files[1]).digest()


def test_failed_or_empty_connection_still_makes_packets() -> None:
    conn = TcpConnection(CLIENT, SERVER, opened=10.0, closed=11.0)
    got = packets(conn, [])
    assert [p.time for p in got] == [10.0] * 3 + [11.0] * 3
    assert key_log([]) == b""


def test_open_and_close_times_frame_the_records(records: list[TraceRecord]) -> None:
    tls = [r for r in records if isinstance(r, RecordTrace)]
    conn = TcpConnection(CLIENT, SERVER, opened=tls[0].time - 0.5,
                         closed=tls[-1].time + 0.5)
    got = packets(conn, records)
    assert got[0].time == tls[0].time - 0.5 and got[-1].time == tls[-1].time + 0.5
    assert got[0].data != got[1].data  # SYN, then SYN-ACK


def test_mss_out_of_range() -> None:
    for mss in (0, MAX_MSS + 1):
        with pytest.raises(ValueError, match="MSS"):
            packets(TcpConnection(CLIENT, SERVER), [], mss=mss)
    big = packets(TcpConnection(CLIENT, SERVER), [], mss=MAX_MSS)
    assert len(big) == 6


def test_connect_writes_the_file_when_nothing_answers(tmp_path: Path) -> None:
    # Nothing listens: no TCP stream, but a valid (empty) capture and a clear note.
    path = tmp_path / "refused.pcapng"
    done = subprocess.run(
        [sys.executable, "-m", "tlsmith.cli.main", "connect", f"127.0.0.1:{free_port()}",
         "--pcap", str(path), "--timeout", "5"],
        capture_output=True, text=True, timeout=TSHARK_TIMEOUT, check=False)
    assert done.returncode == 1, done.stderr
    assert "capture written to" in done.stderr and "0 TCP streams" in done.stderr
    blocks = read_blocks(path.read_bytes())
    assert [b.type for b in blocks] == [pcapng.BLOCK_SECTION_HEADER,
                                        pcapng.BLOCK_INTERFACE_DESCRIPTION]


def test_capinfos_and_tshark_read_and_decrypt_it(records: list[TraceRecord],
                                                 tmp_path: Path) -> None:
    capinfos = require_peer("capinfos")
    tshark = require_peer("tshark")
    path = tmp_path / "session.pcapng"
    write_pcapng(str(path), [(TcpConnection(CLIENT, SERVER), records),
                             (TcpConnection(CLIENT6, SERVER6), records)], mss=500)
    info = subprocess.run([capinfos, "-t", "-E", "-c", str(path)], capture_output=True,
                          text=True, timeout=TSHARK_TIMEOUT, check=True).stdout
    assert "pcapng" in info and "Raw IP" in info, info
    n_packets = sum(len(packets(TcpConnection(CLIENT, SERVER), records, mss=500))
                    for _ in range(2))
    assert f"Number of packets:   {n_packets}" in info, info

    def fields(*args: str) -> list[list[str]]:
        done = subprocess.run(
            [tshark, "-r", str(path), "-o", "tcp.check_checksum:TRUE",
             "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=|", *args],
            capture_output=True, text=True, timeout=TSHARK_TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr
        return [line.split("|") for line in done.stdout.splitlines()]

    # No key log option: the secrets come from the file's Decryption Secrets Blocks.
    requests = fields("-Y", "http.request", "-e", "tcp.stream", "-e",
                      "http.request.method", "-e", "http.request.uri")
    assert requests == [["0", "GET", "/pcapng-unit"], ["1", "GET", "/pcapng-unit"]]
    replies = fields("-Y", "http.response", "-e", "http.response.code",
                     "-e", "http.content_length")
    assert replies == [["200", "2400"], ["200", "2400"]]
    # Decrypted handshake messages (Finished is always encrypted) and good checksums.
    finished = fields("-Y", "tls.handshake.type == 20", "-e", "tcp.stream")
    assert sorted(row[0] for row in finished) == ["0", "0", "1", "1"]
    bad = fields("-Y", "ip.checksum.status == 0 || tcp.checksum.status == 0 || "
                 "tcp.analysis.flags", "-e", "frame.number")
    assert bad == [], bad
