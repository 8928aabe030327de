"""TLS 1.2 sessions captured on loopback and decrypted by tshark with the key log tlsmith
wrote (``CLIENT_RANDOM <client random> <master secret>``): an independent check of our
TLS 1.2 PRF, (extended) master secret, key block, record protection and wire format.

One capture holds both roles:

* our client -> ``openssl s_server -tls1_2 -www`` (tshark decrypts with our client's
  key log);
* ``openssl s_client -tls1_2`` -> our in-process server, which also speaks TLS 1.3
  (tshark decrypts with our server's key log; the ServerHello random must carry the
  RFC 8446 §4.1.3 downgrade sentinel).

Per role: ECDHE with an AEAD, RSA key transport, and CBC with encrypt_then_mac (RFC 7366,
which tshark decrypts too); plus DHE (RFC 7919) on the server side.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import CertFiles, free_port, require_peer
from peers import (
    TlsmithServerHandle,
    read_until_closed,
    run_s_client,
    start_s_server,
    tlsmith_server,
)
from test_interop_tshark import Sniffer, expert_rows
from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import DEFAULT_SUITES, CertifiedKey, ClientConfig, ServerConfig
from tlsmith.crypto.suites import TLS12_SUITES
from tlsmith.io.blocking import connect, with_keylog
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

TSHARK_TIMEOUT = 30.0
PROBE_PATH = "/tlsmith-tls12-probe"
DOWNGRADE_TLS12 = b"DOWNGRD\x01"  # RFC 8446 §4.1.3
EXT_ENCRYPT_THEN_MAC = 22  # RFC 7366
EXT_EXTENDED_MASTER_SECRET = 23  # RFC 7627

_CS = CipherSuite


@dataclass(frozen=True)
class Session:
    id: str
    suite: CipherSuite
    tlsmith_role: str  # "client" (-> openssl s_server) or "server" (<- openssl s_client)
    openssl_cipher: str = ""  # s_client's -cipher (server role)

    @property
    def uri(self) -> str:
        return f"{PROBE_PATH}-{self.id}"

    @property
    def cbc(self) -> bool:
        return TLS12_SUITES[self.suite].cipher == "cbc"


SESSIONS = (
    Session("client-ecdhe-rsa-aes128gcm", _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "client"),
    Session("client-rsa-kx-aes256gcm", _CS.TLS_RSA_WITH_AES_256_GCM_SHA384, "client"),
    Session("client-ecdhe-rsa-aes128cbc-etm", _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
            "client"),
    Session("server-ecdhe-ecdsa-chacha20", _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            "server", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    Session("server-rsa-kx-aes128gcm", _CS.TLS_RSA_WITH_AES_128_GCM_SHA256, "server",
            "AES128-GCM-SHA256"),
    Session("server-ecdhe-rsa-aes256cbc-sha384-etm", _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
            "server", "ECDHE-RSA-AES256-SHA384"),
    Session("server-dhe-rsa-aes256gcm", _CS.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, "server",
            "DHE-RSA-AES256-GCM-SHA384"),
)
SESSION_IDS = [session.id for session in SESSIONS]


@dataclass
class Stream:
    """What tshark showed of one TCP stream."""

    uris: list[str] = field(default_factory=list)
    response_codes: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    # handshake type ("1" ClientHello, "2" ServerHello) -> its suite/extensions/random
    hellos: dict[str, dict[str, list[str]]] = field(default_factory=dict)


@dataclass
class Capture:
    pcap: Path
    keylog: Path  # ours (client and server)
    openssl_keylog: Path  # s_server's and s_client's
    ports: tuple[int, ...]
    client_randoms: dict[str, bytes]  # session id -> client random (from our side)
    replies: dict[str, str]
    tshark: str
    _streams: dict[str, Stream] | None = None

    def read(self, *args: str) -> str:
        """``tshark -r`` on the capture, decrypting with our key log."""
        decode_as = [arg for port in self.ports for arg in ("-d", f"tcp.port=={port},tls")]
        done = subprocess.run(
            [self.tshark, "-r", str(self.pcap), "-o", f"tls.keylog_file:{self.keylog}",
             *decode_as, *args],
            capture_output=True, timeout=TSHARK_TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode("utf-8", "replace")

    def streams(self) -> dict[str, Stream]:
        """Session id -> the TCP stream whose decrypted request named its URI."""
        if self._streams is None:
            fields = ("tcp.stream", "tls.handshake.type", "tls.handshake.ciphersuite",
                      "tls.handshake.extension.type", "tls.handshake.random",
                      "http.request.uri", "http.response.code", "_ws.col.Info")
            # s_server -www's answer has no Content-Length: with body reassembly on,
            # tshark would wait for a FIN that comes after close_notify and never name it.
            out = self.read("-o", "http.desegment_body:FALSE",
                            "-Y", "tls || http", "-T", "fields", "-E", "separator=\t",
                            "-E", "occurrence=a", "-E", "aggregator=|",
                            *(arg for name in fields for arg in ("-e", name)))
            by_number: dict[str, Stream] = defaultdict(Stream)
            for line in out.splitlines():
                cols = line.split("\t")
                cols += [""] * (len(fields) - len(cols))
                stream = by_number[cols[0]]
                if cols[5]:
                    stream.uris += cols[5].split("|")
                if cols[6]:
                    stream.response_codes += cols[6].split("|")
                stream.info.append(cols[7])
                types = cols[1].split("|") if cols[1] else []
                for hello in ("1", "2"):  # ClientHello, ServerHello
                    if hello in types and hello not in stream.hellos:
                        stream.hellos[hello] = {
                            "suite": cols[2].split("|"),
                            "extensions": cols[3].split("|"),
                            "random": cols[4].split("|"),
                        }
            self._streams = {}
            for session in SESSIONS:
                matches = [s for s in by_number.values() if session.uri in s.uris]
                assert len(matches) == 1, (session.id, out)
                self._streams[session.id] = matches[0]
        return self._streams


# --------------------------------------------------------------------------- sessions
def client_session(port: int, cert: CertFiles, session: Session, keylog: Path
                   ) -> tuple[bytes, str]:
    """Our client (TLS 1.2 only) -> openssl s_server -www: GET the session's URI."""
    config = ClientConfig(server_name="localhost", cipher_suites=(session.suite,),
                          max_version=ProtocolVersion.TLS12,
                          trust=TrustStore.from_pem_file(cert.ca_path))
    tls = connect("127.0.0.1", port, config, timeout=10, keylog=keylog)
    try:
        info = tls.info
        assert info.version_label == "TLSv1.2" and info.cipher_suite == session.suite
        assert info.extended_master_secret is True
        assert info.encrypt_then_mac is session.cbc
        tls.sendall(f"GET {session.uri} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        return info.client_random, read_until_closed(tls).data.decode("utf-8", "replace")
    finally:
        tls.close()


def server_session(server: TlsmithServerHandle, ca: Path, session: Session,
                   openssl_keylog: Path) -> tuple[bytes, str]:
    """openssl s_client -tls1_2 -> our server: GET the session's URI (-ign_eof: it waits
    for our answer and close_notify)."""
    before = server.count()
    done = run_s_client(server.port, "-tls1_2", "-cipher", session.openssl_cipher,
                        "-groups", "X25519:P-256:ffdhe2048", "-servername", "localhost",
                        "-CAfile", str(ca), "-verify_return_error", "-ign_eof",
                        "-keylogfile", str(openssl_keylog),
                        stdin=f"GET {session.uri} HTTP/1.0\r\n\r\n".encode())
    served = server.wait_served(before)
    assert served.error is None, f"{served.error!r}\n{done.text}"
    assert done.returncode == 0, done.text
    assert served.info is not None
    assert served.info.version_label == "TLSv1.2"
    assert served.info.cipher_suite == session.suite
    assert served.info.extended_master_secret is True
    assert served.info.encrypt_then_mac is session.cbc
    return served.info.client_random, done.stdout


class LoopbackSniffer(Sniffer):
    """test_interop_tshark's Sniffer (probe-synchronised start and flush), on several
    TCP ports."""

    def __init__(self, tshark: str, ports: tuple[int, ...], pcap: Path, log_dir: Path
                 ) -> None:
        from peers import PeerProcess

        self.port = ports[0]
        self.probe_port = free_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = " or ".join(f"tcp port {port}" for port in ports)
        self.process = PeerProcess(
            [tshark, "-i", "lo", "-f", f"{tcp} or udp port {self.probe_port}",
             "-w", str(pcap), "-P", "-l"], log_dir / "tshark.log")


@pytest.fixture(scope="module")
def capture(certs: dict[str, CertFiles], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Capture]:
    tshark = require_peer("tshark")
    require_peer("openssl")
    rsa, ecdsa = certs["rsa-2048"], certs["ecdsa-p256"]
    work = tmp_path_factory.mktemp("tshark12")
    pcap, keylog, openssl_keylog = (work / "session.pcapng", work / "keys.log",
                                    work / "openssl-keys.log")
    randoms: dict[str, bytes] = {}
    replies: dict[str, str] = {}
    # our server: TLS 1.3 and 1.2, an RSA and an ECDSA certificate, RSA transport allowed
    config = with_keylog(ServerConfig(
        certificates=tuple(CertifiedKey.from_files(c.chain_path, c.key_path)
                           for c in (rsa, ecdsa)),
        cipher_suites=(*DEFAULT_SUITES, *(s.suite for s in SESSIONS
                                          if TLS12_SUITES[s.suite].key_exchange == "rsa")),
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.FFDHE2048),
        allow_rsa_key_exchange=True), keylog)
    s_server = start_s_server(rsa, "-www", "-tls1_2", "-cipher", "ALL",
                              "-keylogfile", str(openssl_keylog), log_dir=work,
                              tls13_only=False)
    try:
        with tlsmith_server(config, "http") as ours:
            ports = (s_server.port, ours.port)
            sniffer = LoopbackSniffer(tshark, ports, pcap, work)
            try:
                sniffer.wait_started()
                for session in SESSIONS:
                    if session.tlsmith_role == "client":
                        randoms[session.id], replies[session.id] = client_session(
                            s_server.port, rsa, session, keylog)
                    else:
                        randoms[session.id], replies[session.id] = server_session(
                            ours, rsa.ca_path, session, openssl_keylog)
                time.sleep(0.1)  # the last FIN/ACK
                sniffer.wait_flushed()
            finally:
                sniffer.stop()
    finally:
        s_server.stop()
    assert pcap.stat().st_size > 0
    yield Capture(pcap, keylog, openssl_keylog, ports, randoms, replies, tshark)


# ------------------------------------------------------------------------------ tests
def keylog_entries(path: Path) -> dict[str, list[str]]:
    """client random (hex) -> the master secrets logged for it (CLIENT_RANDOM lines)."""
    entries: dict[str, list[str]] = defaultdict(list)
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "CLIENT_RANDOM":
            entries[parts[1]].append(parts[2])
    return entries


def test_key_logs_hold_one_master_secret_per_session(capture: Capture) -> None:
    """Our key log has exactly one CLIENT_RANDOM line per session, and OpenSSL's (the
    peer's) has the same master secret."""
    ours, theirs = keylog_entries(capture.keylog), keylog_entries(capture.openssl_keylog)
    for session in SESSIONS:
        random_hex = capture.client_randoms[session.id].hex()
        assert len(ours[random_hex]) == 1, (session.id, ours)
        assert len(ours[random_hex][0]) == 96, session.id  # 48 bytes
        assert theirs[random_hex] == ours[random_hex], session.id
    assert sum(map(len, ours.values())) == len(SESSIONS)


def test_sessions_got_their_pages(capture: Capture) -> None:
    for session in SESSIONS:
        reply = capture.replies[session.id]
        if session.tlsmith_role == "client":  # s_server -www's page
            assert reply.startswith("HTTP/1.0 200 ok"), reply[:300]
        else:  # our HTTP handler's page, as s_client printed it
            assert "HTTP/1.0 200 OK" in reply, reply[-2000:]
            assert f"suite={session.suite.name}" in reply, reply[-2000:]


def test_tshark_decrypts_the_requests(capture: Capture) -> None:
    uris = capture.read("-Y", "http.request", "-T", "fields", "-e", "http.request.uri")
    assert sorted(uris.split()) == sorted(session.uri for session in SESSIONS), uris


@pytest.mark.parametrize("session", SESSIONS, ids=SESSION_IDS)
def test_tshark_decrypts_the_session(capture: Capture, session: Session) -> None:
    stream = capture.streams()[session.id]
    # application data both ways: our request (above) and the server's answer
    assert stream.uris == [session.uri], stream.uris
    assert stream.response_codes == ["200"], stream
    # the suite and the TLS 1.2 extensions, as tshark read them off the wire
    client_hello, server_hello = stream.hellos["1"], stream.hellos["2"]
    assert int(server_hello["suite"][0], 0) == session.suite.value, server_hello
    for hello in (client_hello, server_hello):
        assert str(EXT_EXTENDED_MASTER_SECRET) in hello["extensions"], hello
    assert (str(EXT_ENCRYPT_THEN_MAC) in server_hello["extensions"]) is session.cbc
    # the encrypted Finished messages are only named when the keys are right
    info = "\n".join(stream.info)
    assert info.count("Finished") == 2, info
    assert "Encrypted Handshake Message" not in info, info
    assert "Ignored Unknown Record" not in info, info
    assert "Close Notify" in info, info


@pytest.mark.parametrize("session", [s for s in SESSIONS if s.tlsmith_role == "server"],
                         ids=[s.id for s in SESSIONS if s.tlsmith_role == "server"])
def test_our_server_random_carries_the_downgrade_sentinel(capture: Capture,
                                                          session: Session) -> None:
    """Our server speaks TLS 1.3 too: negotiating TLS 1.2 with s_client (TLS 1.2 only)
    it ends its ServerHello random with DOWNGRD\\x01 (RFC 8446 §4.1.3)."""
    random = capture.streams()[session.id].hellos["2"]["random"][0]
    assert bytes.fromhex(random.replace(":", ""))[-8:] == DOWNGRADE_TLS12, random


def test_no_malformed_packets(capture: Capture) -> None:
    """As in test_interop_tshark.py: no malformed packet, no expert warning or error
    except TCP's own (a retransmission on a loaded machine is not our wire format)."""
    malformed = capture.read("-Y", "_ws.malformed", "-T", "fields", "-e", "frame.number",
                             "-e", "_ws.col.Info")
    assert malformed.strip() == "", malformed
    report = capture.read("-q", "-z", "expert,warn")
    problems = [row for row in expert_rows(report) if row[2] != "TCP"]
    assert problems == [], report


def test_without_our_key_log_nothing_decrypts(capture: Capture, tmp_path: Path) -> None:
    """The control: the same capture with an empty key log shows no HTTP at all."""
    empty = tmp_path / "empty.keys"
    empty.write_text("")
    blind = Capture(capture.pcap, empty, empty, capture.ports, {}, {}, capture.tshark)
    assert blind.read("-Y", "http", "-T", "fields", "-e", "frame.number").strip() == ""
    assert re.search(r"Encrypted Handshake Message",
                     blind.read("-Y", "tls", "-T", "fields", "-e", "_ws.col.Info"))
