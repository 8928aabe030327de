"""JA3 and JA3S against Wireshark's own (``tshark``: ``tls.handshake.ja3``,
``ja3_full``, ``ja3s``, ``ja3s_full``) for real hellos: tlsmith's ClientHello and
OpenSSL's ServerHello (tlsmith connects to ``openssl s_server``), OpenSSL's ClientHello
and tlsmith's ServerHello (``openssl s_client`` connects to tlsmith), in TLS 1.3 and 1.2,
plus Chrome's published ClientHello with GREASE (tests/vectors/fingerprints).

The hellos are put in a small pcap written here (IPv4/TCP on port 443, one stream per
handshake) that tshark reads: loopback only, nothing captured live.
"""

from __future__ import annotations

import json
import struct
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import CertFiles, require_peer
from peers import openssl_msg_bytes, run_s_client, start_s_server, tlsmith_server
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.fingerprint import ja3, ja3_string, ja3s, ja3s_string
from tlsmith.io.blocking import connect
from tlsmith.observe import MessageTrace
from tlsmith.trace import TraceCollector
from tlsmith.x509.verify import TrustStore

TSHARK_TIMEOUT = 60
VECTORS = json.loads((Path(__file__).parent / "vectors" / "fingerprints" /
                      "published.json").read_text())

Hellos = tuple[str, bytes, bytes]  # (what, ClientHello, ServerHello), headers included


def _hello(collector: TraceCollector, name: str) -> bytes:
    return next(r.raw for r in collector.records
                if isinstance(r, MessageTrace) and r.name == name)


def tlsmith_to_s_server(cert: CertFiles, log_dir: Path, *, tls12: bool) -> Hellos:
    server_args = ("-alpn", "http/1.1", "-tls1_2") if tls12 else ()
    server = start_s_server(cert, *server_args, log_dir=log_dir, tls13_only=not tls12)
    collector = TraceCollector()
    config = ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                          alpn_protocols=("h2", "http/1.1"), observer=collector)
    if tls12:
        config = replace(config, max_version=ProtocolVersion.TLS12)
    try:
        with connect("127.0.0.1", server.port, config, timeout=10) as tls:
            assert tls.info.version == (ProtocolVersion.TLS12 if tls12
                                        else ProtocolVersion.TLS13)
    finally:
        server.stop()
    what = f"tlsmith -> openssl s_server ({'TLS 1.2' if tls12 else 'TLS 1.3'})"
    return what, _hello(collector, "ClientHello"), _hello(collector, "ServerHello")


def s_client_to_tlsmith(cert: CertFiles, *, tls12: bool) -> Hellos:
    collector = TraceCollector()
    config = ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                                cert.key_path),),
                          alpn_protocols=("http/1.1",), observer=collector)
    with tlsmith_server(config) as srv:
        done = run_s_client(srv.port, "-CAfile", str(cert.ca_path), "-servername",
                            "localhost", "-alpn", "http/1.1", "-msg", "-ign_eof",
                            *(("-tls1_2",) if tls12 else ()),
                            stdin=b"GET / HTTP/1.0\r\n\r\n")
        srv.wait_served(0)
    assert done.returncode == 0, done.text
    client_hello, server_hello = (_hello(collector, "ClientHello"),
                                  _hello(collector, "ServerHello"))
    # The trace's bytes are the wire's: what OpenSSL printed it sent and received.
    assert openssl_msg_bytes(done.stdout, ">>>", "ClientHello")[0] == client_hello
    assert openssl_msg_bytes(done.stdout, "<<<", "ServerHello")[0] == server_hello
    what = f"openssl s_client -> tlsmith ({'TLS 1.2' if tls12 else 'TLS 1.3'})"
    return what, client_hello, server_hello


# ----------------------------------------------------------------- a minimal pcap writer
def _ipv4_tcp(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
              payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0,
                         src.to_bytes(4, "big"), dst.to_bytes(4, "big"))
    words = struct.unpack("!10H", header)
    checksum = sum(words)
    while checksum >> 16:
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
    header = header[:10] + struct.pack("!H", ~checksum & 0xFFFF) + header[12:]
    return header + tcp + payload  # tshark does not check TCP checksums by default


def write_pcap(path: Path, streams: list[Hellos]) -> None:
    """Classic pcap (LINKTYPE_RAW: IPv4 packets): per stream a TCP handshake, then the
    ClientHello in a record from client to server, the ServerHello back."""
    syn, ack, psh_ack = 0x02, 0x10, 0x18
    client, server = 0x7F000001, 0x7F000001
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    t = 1_700_000_000
    for i, (_, client_hello, server_hello) in enumerate(streams):
        sport, cseq, sseq = 40000 + i, 1000, 5000
        c_record = b"\x16\x03\x01" + len(client_hello).to_bytes(2, "big") + client_hello
        s_record = b"\x16\x03\x03" + len(server_hello).to_bytes(2, "big") + server_hello
        packets = [
            _ipv4_tcp(client, server, sport, 443, cseq, 0, syn, b""),
            _ipv4_tcp(server, client, 443, sport, sseq, cseq + 1, syn | ack, b""),
            _ipv4_tcp(client, server, sport, 443, cseq + 1, sseq + 1, ack, b""),
            _ipv4_tcp(client, server, sport, 443, cseq + 1, sseq + 1, psh_ack, c_record),
            _ipv4_tcp(server, client, 443, sport, sseq + 1, cseq + 1 + len(c_record),
                      psh_ack, s_record),
        ]
        for n, packet in enumerate(packets):
            out += struct.pack("<IIII", t + i, n * 1000, len(packet), len(packet)) + packet
    path.write_bytes(bytes(out))


def tshark_fingerprints(path: Path) -> dict[tuple[int, int], tuple[str, str]]:
    """{(tcp stream, handshake type): (full string, md5)} as tshark computes them."""
    done = subprocess.run(
        [require_peer("tshark"), "-n", "-r", str(path), "-Y", "tls.handshake", "-T", "fields",
         "-E", "separator=|", "-e", "tcp.stream", "-e", "tls.handshake.type",
         "-e", "tls.handshake.ja3_full", "-e", "tls.handshake.ja3",
         "-e", "tls.handshake.ja3s_full", "-e", "tls.handshake.ja3s"],
        capture_output=True, text=True, timeout=TSHARK_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    found: dict[tuple[int, int], tuple[str, str]] = {}
    for line in done.stdout.splitlines():
        stream, kind, full, md5, full_s, md5_s = line.split("|")
        found[(int(stream), int(kind))] = (full, md5) if kind == "1" else (full_s, md5_s)
    return found


@pytest.fixture(scope="module")
def captured(certs: dict[str, CertFiles], tmp_path_factory: pytest.TempPathFactory
             ) -> list[Hellos]:
    require_peer("openssl")
    log_dir = tmp_path_factory.mktemp("fingerprint-peers")
    cert = certs["ecdsa-p256"]
    chrome = bytes.fromhex(VECTORS["client_hellos"][4]["record"])[5:]
    tls12_server_hello = bytes.fromhex(VECTORS["server_hellos"][2]["record"])[5:]
    return [
        tlsmith_to_s_server(cert, log_dir, tls12=False),
        tlsmith_to_s_server(cert, log_dir, tls12=True),
        s_client_to_tlsmith(cert, tls12=False),
        s_client_to_tlsmith(cert, tls12=True),
        ("Chrome's published ClientHello (GREASE)", chrome, tls12_server_hello),
    ]


def test_ja3_and_ja3s_match_tshark(captured: list[Hellos], tmp_path: Path) -> None:
    require_peer("tshark")
    pcap = tmp_path / "hellos.pcap"
    write_pcap(pcap, captured)
    theirs = tshark_fingerprints(pcap)
    assert len(theirs) == 2 * len(captured), theirs
    for stream, (what, client_hello, server_hello) in enumerate(captured):
        assert theirs[(stream, 1)] == (ja3_string(client_hello), ja3(client_hello)), what
        assert theirs[(stream, 2)] == (ja3s_string(server_hello), ja3s(server_hello)), what


def test_the_captured_hellos_are_what_we_think(captured: list[Hellos]) -> None:
    """The comparison covers what it should: GREASE in Chrome's hello, an ALPN choice in
    a TLS 1.2 ServerHello, supported_versions in TLS 1.3 ones."""
    strings = {what: (ja3_string(ch), ja3s_string(sh)) for what, ch, sh in captured}
    assert "43" in strings["tlsmith -> openssl s_server (TLS 1.3)"][1].split(",")[2].split("-")
    assert "16" in strings["tlsmith -> openssl s_server (TLS 1.2)"][1].split(",")[2].split("-")
    chrome = next(ch for what, ch, _ in captured if what.startswith("Chrome"))
    assert b"\x5a\x5a" in chrome and "23130" not in ja3_string(chrome)  # 0x5a5a dropped
