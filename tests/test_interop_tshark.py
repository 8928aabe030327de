"""A tlsmith client <-> openssl s_server session captured on loopback and decrypted by
tshark with the key log tlsmith wrote: an independent check of our key schedule, record
protection and wire format."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import CertFiles, free_port, require_peer
from peers import PeerProcess, read_until_closed, start_s_server, wait_until
from tlsmith.codec.enums import CipherSuite, NamedGroup
from tlsmith.config import ClientConfig
from tlsmith.io.blocking import connect
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

PROBE_PATH = "/tlsmith-tshark-probe"
TSHARK_TIMEOUT = 30.0
SESSIONS = (
    (CipherSuite.TLS_AES_128_GCM_SHA256, NamedGroup.X25519),
    (CipherSuite.TLS_AES_256_GCM_SHA384, NamedGroup.SECP384R1),
    (CipherSuite.TLS_CHACHA20_POLY1305_SHA256, NamedGroup.X448),
)
SESSION_IDS = [f"{suite.name}-{group.name.lower()}" for suite, group in SESSIONS]


def probe_path(suite: CipherSuite) -> str:
    return f"{PROBE_PATH}-{suite.name}"


@dataclass
class Capture:
    pcap: Path
    keylog: Path
    port: int
    pages: dict[CipherSuite, bytes]
    client_randoms: dict[CipherSuite, bytes]
    tshark: str

    def read(self, *args: str) -> str:
        """``tshark -r`` on the capture, decrypting with our key log."""
        done = subprocess.run(
            [self.tshark, "-r", str(self.pcap), "-o", f"tls.keylog_file:{self.keylog}",
             "-d", f"tcp.port=={self.port},tls", *args],
            capture_output=True, timeout=TSHARK_TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode("utf-8", "replace")


class Sniffer:
    """``tshark -i lo`` writing ``tcp port PORT`` to a pcapng file.

    tshark's "Capturing on 'lo'" comes a moment before the kernel filter is live, and
    dumpcap hands packets over in batches (stopping it can lose the last batch). So the
    capture filter also takes UDP probes to an unused port, and tshark prints each packet
    as it gets it (-P -l): a probe seen after the session's packets proves that they
    have all been captured."""

    def __init__(self, tshark: str, port: int, pcap: Path, log_dir: Path) -> None:
        self.port = port
        self.probe_port = free_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.process = PeerProcess(
            [tshark, "-i", "lo", "-f", f"tcp port {port} or udp port {self.probe_port}",
             "-w", str(pcap), "-P", "-l"], log_dir / "tshark.log")

    def _packet_lines(self) -> list[str]:
        return [line for line in self.process.output().splitlines()
                if "127.0.0.1 \u2192 127.0.0.1" in line]

    def _probe(self) -> None:
        self.udp.sendto(b"tlsmith-capture-probe", ("127.0.0.1", self.probe_port))

    def _is_probe(self, line: str) -> bool:
        return f" {self.probe_port} Len=" in line  # "UDP 63 40000 \u2192 41000 Len=21"

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        def step() -> bool:
            if self.process.proc.poll() is not None:
                return True
            if "Capturing on" in self.process.output():
                self._probe()
            return condition()

        if not wait_until(step, TSHARK_TIMEOUT, interval=0.05) or (
                self.process.proc.poll() is not None):
            self.stop()
            pytest.fail(f"tshark: {what}:\n{self.process.output()[-3000:]}")

    def wait_started(self) -> None:
        self._wait(lambda: any(map(self._is_probe, self._packet_lines())),
                   "no probe captured (capture did not start)")

    def wait_flushed(self) -> None:
        """Return once a probe sent now shows up after the session's packets."""
        def flushed() -> bool:
            lines = self._packet_lines()
            tcp = [i for i, line in enumerate(lines) if not self._is_probe(line)]
            return bool(tcp) and any(self._is_probe(line) for line in lines[tcp[-1]:])

        self._wait(flushed, "the session's packets were not captured")

    def stop(self) -> None:
        """SIGINT makes tshark (and its dumpcap) close the file and exit."""
        if self.process.proc.poll() is None:
            self.process.proc.send_signal(signal.SIGINT)
            try:
                self.process.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.process.stop()
        self.udp.close()


def one_session(port: int, cert: CertFiles, suite: CipherSuite, group: NamedGroup,
                keylog: Path) -> tuple[bytes, bytes]:
    config = ClientConfig(server_name="localhost", alpn_protocols=("http/1.1",),
                          cipher_suites=(suite,), groups=(group,), key_share_groups=(group,),
                          trust=TrustStore.from_pem_file(cert.ca_path))
    tls = connect("127.0.0.1", port, config, timeout=10, keylog=keylog)
    try:
        assert tls.info.cipher_suite == suite and tls.info.group == group
        assert tls.info.alpn == "http/1.1"
        tls.sendall(f"GET {probe_path(suite)} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        return read_until_closed(tls).data, tls.info.client_random
    finally:
        tls.close()


@pytest.fixture(scope="module")
def capture(certs: dict[str, CertFiles], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Capture]:
    """One capture holding three sessions (one per suite), decrypted with our key log."""
    tshark = require_peer("tshark")
    require_peer("openssl")
    cert = certs["ecdsa-p256"]
    work = tmp_path_factory.mktemp("tshark")
    pcap, keylog = work / "session.pcapng", work / "keys.log"
    pages: dict[CipherSuite, bytes] = {}
    randoms: dict[CipherSuite, bytes] = {}
    server = start_s_server(cert, "-www", "-alpn", "http/1.1", log_dir=work)
    try:
        sniffer = Sniffer(tshark, server.port, pcap, work)
        try:
            sniffer.wait_started()
            for suite, group in SESSIONS:
                pages[suite], randoms[suite] = one_session(server.port, cert, suite, group,
                                                           keylog)
            time.sleep(0.1)  # the last FIN/ACK
            sniffer.wait_flushed()
        finally:
            sniffer.stop()
    finally:
        server.stop()
    assert pcap.stat().st_size > 0
    yield Capture(pcap, keylog, server.port, pages, randoms, tshark)


def test_key_log_has_tls13_secrets(capture: Capture) -> None:
    lines = [line.split() for line in capture.keylog.read_text().splitlines()
             if line and not line.startswith("#")]
    for suite, _ in SESSIONS:
        random_hex = capture.client_randoms[suite].hex()
        labels = {label for label, client_random, _ in lines if client_random == random_hex}
        assert labels >= {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                          "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"}, labels
        assert b"200 ok" in capture.pages[suite]
        assert f"Cipher is {suite.name}".encode() in capture.pages[suite]


def test_tshark_decrypts_the_requests(capture: Capture) -> None:
    uris = capture.read("-Y", "http.request", "-T", "fields", "-e", "http.request.uri")
    assert sorted(uris.split()) == sorted(probe_path(suite) for suite, _ in SESSIONS), uris


@pytest.mark.parametrize(("suite", "group"), SESSIONS, ids=SESSION_IDS)
def test_tshark_sees_the_negotiated_suite(capture: Capture, suite: CipherSuite,
                                          group: NamedGroup) -> None:
    # the ServerHello of the session whose (decrypted) request names this suite
    out = capture.read("-Y", f'http.request.uri == "{probe_path(suite)}"', "-T", "fields",
                       "-e", "tcp.stream")
    streams = set(out.split())
    assert len(streams) == 1, out
    hello = capture.read("-Y", f"tcp.stream == {streams.pop()} && tls.handshake.type == 2",
                         "-T", "fields", "-e", "tls.handshake.ciphersuite",
                         "-e", "tls.handshake.extensions_key_share_group")
    fields = hello.split()
    assert int(fields[0], 0) == suite.value, hello
    assert int(fields[1], 0) == group.value, hello


def test_tshark_decrypts_the_handshakes(capture: Capture) -> None:
    info = capture.read("-Y", "tls", "-T", "fields", "-e", "_ws.col.Info")
    # Encrypted handshake messages are only named when the handshake keys are right.
    for name in ("Client Hello", "Server Hello", "Encrypted Extensions", "Certificate",
                 "Certificate Verify", "Finished", "Close Notify"):
        assert info.count(name) >= len(SESSIONS), info
    assert "Ignored Unknown Record" not in info


def expert_rows(report: str) -> list[tuple[str, str, str, str]]:
    """(severity, group, protocol, summary) rows of ``tshark -z expert,warn``."""
    rows: list[tuple[str, str, str, str]] = []
    severity = ""
    for line in report.splitlines():
        heading = re.match(r"^(Errors|Warns|Notes|Chats) \(\d+\)$", line.strip())
        if heading:
            severity = heading.group(1)
            continue
        row = re.match(r"^\s*\d+\s+(.+?)\s{2,}(\S+)\s{2}(.*)$", line)
        if row and severity:
            rows.append((severity, row.group(1).strip(), row.group(2), row.group(3)))
    return rows


def test_no_malformed_packets(capture: Capture) -> None:
    """The filter of peers.md (malformed packets, expert warnings and errors), except
    what TCP says about itself: on a loaded machine loopback can drop a segment, and a
    retransmission or a (D-)SACK is a transport matter, not our wire format."""
    malformed = capture.read("-Y", "_ws.malformed", "-T", "fields", "-e", "frame.number",
                             "-e", "_ws.col.Info")
    assert malformed.strip() == "", malformed
    report = capture.read("-q", "-z", "expert,warn")
    problems = [row for row in expert_rows(report) if row[2] != "TCP"]
    assert problems == [], report


def test_expert_rows_parser() -> None:
    # the layout of tshark 4.0's "-z expert" tables (columns right-aligned)
    report = """
Errors (1)
=============
   Frequency      Group           Protocol  Summary
           1   Malformed               TLS  Malformed Packet (Exception occurred)

Warns (2)
=============
   Frequency      Group           Protocol  Summary
           1    Sequence               TCP  D-SACK Sequence
           1 Request Code              TLS  Ignored Unknown Record
"""
    assert expert_rows(report) == [
        ("Errors", "Malformed", "TLS", "Malformed Packet (Exception occurred)"),
        ("Warns", "Sequence", "TCP", "D-SACK Sequence"),
        ("Warns", "Request Code", "TLS", "Ignored Unknown Record"),
    ]
