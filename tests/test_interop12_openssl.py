"""TLS 1.2 against OpenSSL 3.0, both roles: ``openssl s_server`` / ``s_client``, Python's
``ssl``, curl (through ``tlsmith serve``), and version negotiation between TLS 1.2 and 1.3
(the RFC 8446 §4.1.3 downgrade sentinel, RFC 7507 TLS_FALLBACK_SCSV).

Covered: every key exchange (ECDHE with ECDSA/RSA/EdDSA certificates, DHE, RSA key
transport) and record protection (AES-GCM, ChaCha20-Poly1305, CBC with encrypt_then_mac, and
MAC-then-encrypt when allowed); extended master secret required; ALPN; small DHE groups
refused; renegotiation declined both ways.

Every test checks what the OpenSSL side reports, not only what tlsmith says: its
"Protocol"/"Cipher is" lines, "Extended master secret", its -trace of the ServerHello
(encrypt_then_mac, ALPN), the alerts it saw, and its master secret ("Master-Key" or its key
log) against ours. Servers are started once per module and shared by the cases.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CertFiles, require_peer
from peers import (
    OPENSSL_TLS12_CIPHER,
    PeerProcess,
    TlsmithServerHandle,
    openssl_conf_env,
    openssl_msg_bytes,
    python_ssl_server,
    read_until_closed,
    run_process_group,
    run_s_client,
    send_close_notify,
    start_s_client,
    start_s_server,
    start_tlsmith_serve_cli,
    tlsmith_server,
    wait_until,
)
from tlsmith.codec.enums import (
    AlertDescription,
    CipherSuite,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.config import (
    DEFAULT_SUITES,
    DEFAULT_TLS13_SUITES,
    CertifiedKey,
    ClientConfig,
    ServerConfig,
)
from tlsmith.crypto import kx
from tlsmith.errors import (
    AlertReceived,
    HandshakeFailure,
    InappropriateFallback,
    InsufficientSecurity,
    ProtocolVersionError,
    TLSError,
)
from tlsmith.events import HandshakeInfo
from tlsmith.io.blocking import TLSSocket, connect, with_keylog
from tlsmith.observe import MessageTrace
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = 10.0
S = CipherSuite
ECDSA_SUITES = (S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                S.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                S.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
RSA_SUITES = (S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
              S.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
              S.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
DHE = S.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
RSA_KX = S.TLS_RSA_WITH_AES_128_GCM_SHA256
CBC = S.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
#: (certificate, suite): every TLS 1.2 key exchange and record protection we speak.
MATRIX = ([("ecdsa-p256", s) for s in ECDSA_SUITES] + [("rsa-2048", s) for s in RSA_SUITES]
          + [("rsa-2048", DHE), ("rsa-2048", RSA_KX), ("rsa-2048", CBC)])
MATRIX_IDS = [s.name for _, s in MATRIX]
SCHEME = {"ecdsa-p256": SignatureScheme.ECDSA_SECP256R1_SHA256,
          # OpenSSL takes the first scheme of our list that an rsaEncryption key can make
          "rsa-2048": SignatureScheme.RSA_PSS_RSAE_SHA256}
#: What s_client prints as "Server Temp Key" for the group our server picks.
TEMP_KEY = {"ECDHE": "X25519, 253 bits", "DHE": "DH, 2048 bits", "RSA": None}
#: RFC 2409 §6.2 (Oakley group 2): a 1024-bit MODP prime, below our min_dhe_bits.
MODP1024 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22"
    "514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6"
    "F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381"
    "FFFFFFFFFFFFFFFF", 16)
DOWNGRADE_SENTINELS = (b"DOWNGRD\x01", b"DOWNGRD\x00")
GET = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"


def key_exchange(suite: CipherSuite) -> str:
    """"ECDHE", "DHE" or "RSA", as HandshakeInfo.key_exchange names it."""
    kind = suite.name.split("_")[1]  # TLS_<kx>_...
    return kind if kind in ("ECDHE", "DHE") else "RSA"


def is_cbc(suite: CipherSuite) -> bool:
    return "_CBC_" in suite.name


def field(output: str, name: str) -> str:
    match = re.search(rf"^[ \t]*{re.escape(name)}[ \t]*: ?(.*)$", output, re.MULTILINE)
    assert match, f"no {name!r} line in:\n{output[-4000:]}"
    return match.group(1).strip()


def trace_message(output: str, name: str) -> str:
    """The first ``-trace`` block of handshake message ``name`` (e.g. "ServerHello"): its
    header line and fields, up to the next message."""
    match = re.search(rf"^    {name}, Length=\d+\n(.*?)(?=^    \w+, Length=|^\S)",
                      output, re.MULTILINE | re.DOTALL)
    assert match, f"no {name} in the trace:\n{output[-4000:]}"
    return match.group(0)


def keylog_lines(path: Path, label: str = "CLIENT_RANDOM") -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.startswith(label + " ")]


def pkcs3_pem(p: int, g: int) -> str:
    """PKCS #3 DHParameter ::= SEQUENCE { prime INTEGER, base INTEGER }, as PEM."""
    def der(tag: int, body: bytes) -> bytes:
        n = len(body)
        size = bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + (
            n.to_bytes((n.bit_length() + 7) // 8, "big"))
        return bytes([tag]) + size + body

    def integer(v: int) -> bytes:
        return der(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))  # leading 0: positive

    b64 = base64.encodebytes(der(0x30, integer(p) + integer(g))).decode()
    return f"-----BEGIN DH PARAMETERS-----\n{b64}-----END DH PARAMETERS-----\n"


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop12")


@pytest.fixture(scope="module")
def dh_params(work: Path) -> dict[str, Path]:
    """DH parameter files for s_server -dhparam: RFC 7919 ffdhe2048 and a 1024-bit group."""
    out = {}
    for name, (p, g) in {"ffdhe2048": kx.ffdhe_params(NamedGroup.FFDHE2048),
                         "modp1024": (MODP1024, 2)}.items():
        out[name] = work / f"{name}.pem"
        out[name].write_text(pkcs3_pem(p, g))
    return out


class SServerPool:
    """Long-lived ``openssl s_server`` processes, started on first use."""

    def __init__(self, certs: dict[str, CertFiles], log_dir: Path) -> None:
        self.certs = certs
        self.log_dir = log_dir
        self._servers: dict[tuple[object, ...], PeerProcess] = {}

    def get(self, cert: str, *args: str, env: dict[str, str] | None = None) -> PeerProcess:
        """s_server with ``args`` (the version switches included: none means 1.3 + 1.2),
        line-buffered so that what it prints can be waited for."""
        key = (cert, args, tuple(sorted(env.items())) if env else None)
        server = self._servers.get(key)
        if server is None or server.proc.poll() is not None:
            server = start_s_server(self.certs[cert], *args, log_dir=self.log_dir,
                                    tls13_only=False, env=env, line_buffered=True)
            self._servers[key] = server
        return server

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()


@pytest.fixture(scope="module")
def s_servers(certs: dict[str, CertFiles], work: Path) -> Iterator[SServerPool]:
    require_peer("openssl")
    pool = SServerPool(certs, work)
    try:
        yield pool
    finally:
        pool.stop()


def matrix_server(s_servers: SServerPool, dh_params: dict[str, Path], cert: str
                  ) -> PeerProcess:
    """The TLS 1.2 s_server of the client matrix for ``cert``: every suite of the matrix
    that fits the key, DHE with ffdhe2048, ALPN, -trace (ServerHello extensions), -www."""
    names = ":".join(OPENSSL_TLS12_CIPHER[s] for c, s in MATRIX if c == cert)
    return s_servers.get(cert, "-tls1_2", "-www", "-trace", "-cipher", names,
                         "-dhparam", str(dh_params["ffdhe2048"]), "-alpn", "h2,http/1.1")


class TlsmithPool:
    """In-process tlsmith servers (HTTP handler), one per (certificate, options), each
    writing its own key log (``keylogs[port]``)."""

    def __init__(self, certs: dict[str, CertFiles], stack: contextlib.ExitStack,
                 log_dir: Path) -> None:
        self.certs = certs
        self.stack = stack
        self.log_dir = log_dir
        self._servers: dict[tuple[object, ...], TlsmithServerHandle] = {}
        self.keylogs: dict[int, Path] = {}

    def get(self, cert: str, /, **kw: object) -> TlsmithServerHandle:
        """A server with ``ServerConfig(**kw)`` and our test HTTP handler."""
        key = (cert, tuple(sorted(kw.items())))
        if key not in self._servers:
            files = self.certs[cert]
            keylog = self.log_dir / f"tlsmith-keys-{len(self._servers)}.log"
            config = with_keylog(ServerConfig(
                certificates=(CertifiedKey.from_files(files.chain_path, files.key_path),),
                **kw), keylog)  # type: ignore[arg-type]
            handle = self.stack.enter_context(tlsmith_server(config, "http"))
            self._servers[key] = handle
            self.keylogs[handle.port] = keylog
        return self._servers[key]


@pytest.fixture(scope="module")
def tlsmith_servers(certs: dict[str, CertFiles], work: Path) -> Iterator[TlsmithPool]:
    with contextlib.ExitStack() as stack:
        yield TlsmithPool(certs, stack, work)


#: The in-process server of the s_client matrix: default suites plus RSA key transport.
RSA_KX_SERVER = {"cipher_suites": (*DEFAULT_SUITES, RSA_KX), "allow_rsa_key_exchange": True,
                 "alpn_protocols": ("h2", "http/1.1")}


@pytest.fixture(scope="module")
def cli_server(certs: dict[str, CertFiles], work: Path) -> Iterator[PeerProcess]:
    """``tlsmith serve`` with its defaults (TLS 1.3 and 1.2) and the ECDSA certificate."""
    require_peer("openssl")
    serve = start_tlsmith_serve_cli(certs["ecdsa-p256"], log_dir=work)
    try:
        yield serve
    finally:
        serve.stop()


def client_config(cert: CertFiles, **kw: object) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                        **kw)  # type: ignore[arg-type]


def suites12(suite: CipherSuite) -> tuple[CipherSuite, ...]:
    """Our TLS 1.3 defaults and one TLS 1.2 suite: a client that could do TLS 1.3, as a
    real one is, restricted to ``suite`` when the server speaks only TLS 1.2."""
    return (*DEFAULT_TLS13_SUITES, suite)


def http_get(tls: TLSSocket) -> str:
    tls.sendall(GET)
    drained = read_until_closed(tls)
    assert drained.closed is not None and drained.closed.clean, "s_server -www ends cleanly"
    return drained.data.decode("utf-8", "replace")


def s_client_args(cert: CertFiles, *extra: str) -> list[str]:
    return ["-CAfile", str(cert.ca_path), "-verify_return_error", "-servername", "localhost",
            "-ign_eof", *extra]


def tlsmith_cli(*args: str, timeout: float = 20.0) -> dict[str, object]:
    """``tlsmith connect ARGS --json`` -> the JSON object it printed."""
    done = run_process_group([sys.executable, "-m", "tlsmith.cli.main", "connect", *args,
                              "--json"], timeout=timeout, what="tlsmith connect")
    try:
        result: dict[str, object] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"tlsmith connect printed no JSON:\n{done.text}") from None
    assert (done.returncode == 0) == bool(result["ok"]), done.text
    return result


def assert_tls12(info: HandshakeInfo, suite: CipherSuite, *, verified: bool = True) -> None:
    assert info.version == ProtocolVersion.TLS12
    assert info.version_label == "TLSv1.2"
    assert info.cipher_suite == suite
    assert info.key_exchange == key_exchange(suite)
    assert info.extended_master_secret is True
    assert info.encrypt_then_mac is is_cbc(suite)
    assert info.certificate_verified is verified  # a server gets no client certificate


def master_secret_line(path: Path, client_random: bytes) -> str:
    lines = [line for line in keylog_lines(path) if line.split()[1] == client_random.hex()]
    assert len(lines) == 1, f"{path}: {keylog_lines(path)}"
    return lines[0]


# ================================================= 1. tlsmith client -> openssl s_server
@pytest.mark.parametrize(("cert_type", "suite"), MATRIX, ids=MATRIX_IDS)
def test_client_matrix(s_servers: SServerPool, dh_params: dict[str, Path],
                       certs: dict[str, CertFiles], tmp_path: Path, cert_type: str,
                       suite: CipherSuite) -> None:
    server = matrix_server(s_servers, dh_params, cert_type)
    keys = tmp_path / "keys.log"
    mark = server.mark()
    with connect("127.0.0.1", server.port, client_config(
            certs[cert_type], cipher_suites=suites12(suite)), timeout=TIMEOUT,
            keylog=keys) as tls:
        info = tls.info
        assert_tls12(info, suite)
        kind = key_exchange(suite)
        assert info.group == {"ECDHE": NamedGroup.X25519, "DHE": NamedGroup.FFDHE2048,
                              "RSA": None}[kind]
        assert info.signature_scheme == (None if kind == "RSA" else SCHEME[cert_type])
        assert info.alpn is None
        page = http_get(tls)  # application data both ways
    # what s_server says about the session
    assert page.startswith("HTTP/1.0 200 ok"), page[:300]
    assert f"New, TLSv1.2, Cipher is {OPENSSL_TLS12_CIPHER[suite]}" in page, page
    assert field(page, "Protocol") == "TLSv1.2"
    assert field(page, "Extended master secret") == "yes"
    # the master secret s_server derived is the one our key log holds
    line = master_secret_line(keys, info.client_random)
    assert field(page, "Master-Key") == line.split()[2].upper()
    # encrypt_then_mac in s_server's ServerHello exactly for the CBC suite
    server_hello = trace_message(server.wait_for("ServerHelloDone", since=mark),
                                 "ServerHello")
    assert ("encrypt_then_mac(22)" in server_hello) == is_cbc(suite), server_hello
    assert "extended_master_secret(23)" in server_hello


@pytest.mark.parametrize(("offered", "expected"), [
    ((), None),
    (("http/1.1",), "http/1.1"),
    (("http/1.1", "h2"), "h2"),  # s_server picks by its own preference (h2,http/1.1)
])
def test_client_alpn(s_servers: SServerPool, dh_params: dict[str, Path],
                     certs: dict[str, CertFiles], offered: tuple[str, ...],
                     expected: str | None) -> None:
    server = matrix_server(s_servers, dh_params, "ecdsa-p256")
    mark = server.mark()
    suite = ECDSA_SUITES[0]
    config = client_config(certs["ecdsa-p256"], cipher_suites=suites12(suite),
                           alpn_protocols=offered)
    with connect("127.0.0.1", server.port, config, timeout=TIMEOUT) as tls:
        assert tls.info.alpn == expected
        assert_tls12(tls.info, suite)
        assert http_get(tls).startswith("HTTP/1.0 200 ok")
    out = server.wait_for("ServerHelloDone", since=mark)
    server_hello = trace_message(out, "ServerHello")
    if expected is None:
        assert "ALPN protocols" not in out
        assert "application_layer_protocol_negotiation" not in server_hello
    else:
        assert f"ALPN protocols selected: {expected}" in out, out[-3000:]
        assert "application_layer_protocol_negotiation(16)" in server_hello


def test_client_dhe_with_server_default_group(s_servers: SServerPool,
                                              certs: dict[str, CertFiles]) -> None:
    """Without -dhparam, OpenSSL 3.0 sends its own 2048-bit group (RFC 3526 MODP, not an
    RFC 7919 one: OpenSSL does not negotiate FFDHE groups in TLS 1.2): accepted, unnamed."""
    server = s_servers.get("rsa-2048", "-tls1_2", "-www", "-cipher", OPENSSL_TLS12_CIPHER[DHE])
    with connect("127.0.0.1", server.port, client_config(
            certs["rsa-2048"], cipher_suites=suites12(DHE)), timeout=TIMEOUT) as tls:
        assert_tls12(tls.info, DHE)
        assert tls.info.group is None  # custom parameters
        page = http_get(tls)
    assert f"New, TLSv1.2, Cipher is {OPENSSL_TLS12_CIPHER[DHE]}" in page


def test_client_refuses_small_dhe_group(s_servers: SServerPool, dh_params: dict[str, Path],
                                        certs: dict[str, CertFiles]) -> None:
    """A 1024-bit DHE group (Logjam) is refused with insufficient_security unless
    min_dhe_bits allows it."""
    server = s_servers.get("rsa-2048", "-tls1_2", "-www", "-dhparam",
                           str(dh_params["modp1024"]),
                           "-cipher", OPENSSL_TLS12_CIPHER[DHE] + ":@SECLEVEL=0")
    mark = server.mark()
    cert = certs["rsa-2048"]
    with pytest.raises(InsufficientSecurity, match="1024 bits"):
        connect("127.0.0.1", server.port, client_config(cert, cipher_suites=suites12(DHE)),
                timeout=TIMEOUT)
    assert "alert insufficient security" in server.wait_for("alert insufficient security",
                                                            since=mark)
    config = client_config(cert, cipher_suites=suites12(DHE), min_dhe_bits=1024)
    with connect("127.0.0.1", server.port, config, timeout=TIMEOUT) as tls:
        assert_tls12(tls.info, DHE)
        assert http_get(tls).startswith("HTTP/1.0 200 ok")


def test_client_mac_then_encrypt_refused_by_default(s_servers: SServerPool,
                                                    certs: dict[str, CertFiles]) -> None:
    """s_server -no_etm chooses a CBC suite without encrypt_then_mac: refused unless
    allow_mac_then_encrypt=True (then MAC-then-encrypt records both ways)."""
    server = s_servers.get("rsa-2048", "-tls1_2", "-www", "-no_etm",
                           "-cipher", OPENSSL_TLS12_CIPHER[CBC])
    cert = certs["rsa-2048"]
    mark = server.mark()
    with pytest.raises(HandshakeFailure, match="without encrypt_then_mac"):
        connect("127.0.0.1", server.port, client_config(cert), timeout=TIMEOUT)
    server.wait_for("alert handshake failure", since=mark)
    config = client_config(cert, allow_mac_then_encrypt=True)
    with connect("127.0.0.1", server.port, config, timeout=TIMEOUT) as tls:
        assert tls.info.cipher_suite == CBC
        assert tls.info.encrypt_then_mac is False
        page = http_get(tls)
    assert f"New, TLSv1.2, Cipher is {OPENSSL_TLS12_CIPHER[CBC]}" in page


def test_client_requires_extended_master_secret(s_servers: SServerPool, work: Path,
                                                certs: dict[str, CertFiles]) -> None:
    """An s_server without RFC 7627 (Options = -ExtendedMasterSecret): our client refuses
    it, with a message that names the way out; --allow-no-ems connects."""
    cert = certs["rsa-2048"]
    server = s_servers.get("rsa-2048", "-tls1_2", "-www",
                           env=openssl_conf_env(work, "Options = -ExtendedMasterSecret"))
    mark = server.mark()
    with pytest.raises(HandshakeFailure, match="extended master secret"):
        connect("127.0.0.1", server.port, client_config(cert), timeout=TIMEOUT)
    server.wait_for("alert handshake failure", since=mark)
    target = f"127.0.0.1:{server.port}"
    common = ("--cafile", str(cert.ca_path), "--servername", "localhost")
    refused = tlsmith_cli(target, *common)
    assert refused["ok"] is False
    assert refused["error"] == "HandshakeFailure"
    assert "extended master secret" in str(refused["explanation"])
    assert "--allow-no-ems" in str(refused["explanation"])
    allowed = tlsmith_cli(target, *common, "--allow-no-ems", "--http")
    assert allowed["ok"] is True
    assert allowed["version"] == "TLSv1.2"
    assert allowed["extended_master_secret"] is False
    assert field(str(allowed["reply"]), "Extended master secret") == "no"


@pytest.mark.parametrize("suite", [S.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                                   S.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384],
                         ids=lambda s: s.name)
def test_client_data_both_ways_rev(s_servers: SServerPool, certs: dict[str, CertFiles],
                                   suite: CipherSuite) -> None:
    server = s_servers.get("ecdsa-p256", "-tls1_2", "-rev", "-cipher",
                           ":".join(OPENSSL_TLS12_CIPHER[s] for s in (
                               S.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                               S.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384)))
    lines = [(f"{i:04d}-" + "tlsmith-speaks-tls12-" * 60)[:1023].encode() + b"\n"
             for i in range(128)]
    with connect("127.0.0.1", server.port, client_config(
            certs["ecdsa-p256"], cipher_suites=suites12(suite)), timeout=TIMEOUT) as tls:
        assert_tls12(tls.info, suite)
        for start in range(0, len(lines), 32):
            batch = lines[start:start + 32]
            tls.sendall(b"".join(batch))
            reply = tls.recv_exactly(sum(map(len, batch)))
            assert reply == b"".join(line[-2::-1] + b"\n" for line in batch)
        tls.sendall(b"CLOSE\n")
        assert tls.recv() == b""
        assert tls.closed_cleanly


#: name -> (certificate, extra s_server switches, the signature scheme we must see)
CLIENT_VARIANTS = {
    # TLS 1.2's ecdsa_secp256r1_sha256 code point means "ECDSA with SHA-256" on any curve
    # (the curve binding is TLS 1.3's): OpenSSL signs with it using its P-384 key.
    "ecdsa-p384-cert": ("ecdsa-p384", (), SignatureScheme.ECDSA_SECP256R1_SHA256),
    "ed25519-cert": ("ed25519", (), SignatureScheme.ED25519),  # RFC 8422 EdDSA in 1.2
    "pkcs1-only-server": ("rsa-2048", ("-sigalgs", "RSA+SHA256"),
                          SignatureScheme.RSA_PKCS1_SHA256),
    "max_send_frag-512": ("rsa-2048", ("-max_send_frag", "512"),
                          SignatureScheme.RSA_PSS_RSAE_SHA256),
    # CertificateRequest: we have no client certificate, so we send an empty one
    "client-cert-requested": ("ecdsa-p256", ("-verify", "1"),
                              SignatureScheme.ECDSA_SECP256R1_SHA256),
}


@pytest.mark.parametrize("variant", CLIENT_VARIANTS)
def test_client_variants(s_servers: SServerPool, certs: dict[str, CertFiles],
                         variant: str) -> None:
    cert_type, extra, scheme = CLIENT_VARIANTS[variant]
    cert = certs[cert_type]
    if "-verify" in extra:
        extra = (*extra, "-CAfile", str(cert.ca_path))
    server = s_servers.get(cert_type, "-tls1_2", "-www", *extra)
    with connect("127.0.0.1", server.port, client_config(cert), timeout=TIMEOUT) as tls:
        assert tls.info.version_label == "TLSv1.2"
        assert tls.info.signature_scheme == scheme
        assert tls.info.certificate_verified
        page = http_get(tls)
    assert page.startswith("HTTP/1.0 200 ok"), page[:300]
    assert field(page, "Protocol") == "TLSv1.2"
    if "-verify" in extra:
        assert "no client certificate available" in page


def test_client_refuses_renegotiation(s_servers: SServerPool,
                                      certs: dict[str, CertFiles]) -> None:
    """A HelloRequest (s_server's "R" command) is answered with a no_renegotiation warning
    (RFC 5246 §7.4.1.1, §7.2.2); what OpenSSL does next is its business (it aborts)."""
    server = s_servers.get("ecdsa-p256", "-tls1_2", "-msg")  # the console mode
    mark = server.mark()
    recorder: list[tuple[str, str]] = []

    def observe(record: object) -> None:
        if isinstance(record, MessageTrace):
            recorder.append((record.direction, record.name))

    with connect("127.0.0.1", server.port, client_config(
            certs["ecdsa-p256"], observer=observe), timeout=TIMEOUT) as tls:
        server.wait_for("CIPHER is", since=mark)
        server.send("before\n")
        assert tls.recv_exactly(7) == b"before\n"
        server.send("R\n")
        server.wait_for("HelloRequest", since=mark)
        with contextlib.suppress(TLSError, OSError):
            tls.recv()  # reads (and answers) the HelloRequest; OpenSSL then closes
        out = server.wait_for("<<< TLS 1.2, Alert [length 0002], warning no_renegotiation",
                              since=mark)
    assert ("received", "HelloRequest") in recorder
    assert ">>> TLS 1.2, Handshake [length 0004], HelloRequest" in out
    assert recorder.count(("sent", "ClientHello")) == 1  # no second handshake


# ================================================= 2. openssl s_client -> tlsmith server
@pytest.mark.parametrize(("cert_type", "suite"), MATRIX, ids=MATRIX_IDS)
def test_server_matrix(tlsmith_servers: TlsmithPool, certs: dict[str, CertFiles],
                       tmp_path: Path, cert_type: str, suite: CipherSuite) -> None:
    cert = certs[cert_type]
    server = tlsmith_servers.get(cert_type, **RSA_KX_SERVER)
    before = server.count()
    keys = tmp_path / "s_client-keys.log"
    name = OPENSSL_TLS12_CIPHER[suite]
    done = run_s_client(server.port, *s_client_args(
        cert, "-tls1_2", "-cipher", name, "-keylogfile", str(keys), "-trace"), stdin=GET)
    out = done.stdout
    assert done.returncode == 0, done.text + repr(server.wait_served(before).error)
    # what s_client reports
    assert f"New, TLSv1.2, Cipher is {name}" in out
    assert field(out, "Protocol") == "TLSv1.2"
    assert field(out, "Cipher") == name
    assert field(out, "Extended master secret") == "yes"
    assert field(out, "Verify return code") == "0 (ok)"
    kind = key_exchange(suite)
    if TEMP_KEY[kind] is None:
        assert "Server Temp Key" not in out
    else:
        assert field(out, "Server Temp Key") == TEMP_KEY[kind]
    server_hello = trace_message(out, "ServerHello")
    assert ("encrypt_then_mac(22)" in server_hello) == is_cbc(suite), server_hello
    # our server speaks TLS 1.3 too: RFC 8446 §4.1.3's sentinel ends its random
    assert field(server_hello, "random_bytes (len=28)").endswith(b"DOWNGRD\x01".hex().upper())
    # our HTTP answer: the handshake as the tlsmith server saw it
    assert f"tlsmith-info version=TLSv1.2 suite={suite.name} " in out, out[-2000:]
    served = server.wait_served(before)
    assert served.error is None, repr(served.error)
    assert served.info is not None
    assert_tls12(served.info, suite, verified=False)
    # s_client's key log line (its client random, its master secret) is ours too
    theirs = keylog_lines(keys)
    assert len(theirs) == 1
    assert theirs[0] == master_secret_line(tlsmith_servers.keylogs[server.port],
                                           served.info.client_random)
    assert field(out, "Master-Key") == theirs[0].split()[2].upper()


@pytest.mark.parametrize(("offered", "expected"), [
    ("http/1.1", "http/1.1"),
    ("http/1.1,h2", "h2"),  # our server's preference wins
])
def test_server_alpn(tlsmith_servers: TlsmithPool, certs: dict[str, CertFiles],
                     offered: str, expected: str) -> None:
    cert = certs["ecdsa-p256"]
    server = tlsmith_servers.get("ecdsa-p256", **RSA_KX_SERVER)
    done = run_s_client(server.port, *s_client_args(cert, "-tls1_2", "-alpn", offered),
                        stdin=GET)
    assert done.returncode == 0, done.text
    assert field(done.stdout, "Protocol") == "TLSv1.2"
    assert f"ALPN protocol: {expected}" in done.stdout
    assert f"alpn={expected}" in done.stdout


@pytest.mark.parametrize("config", [
    {},  # the defaults: no TLS_RSA_WITH_* suite at all
    {"cipher_suites": (*DEFAULT_SUITES, RSA_KX)},  # listed, but allow_rsa_key_exchange off
], ids=["default-suites", "listed-not-allowed"])
def test_server_refuses_rsa_key_exchange(tlsmith_servers: TlsmithPool,
                                         certs: dict[str, CertFiles],
                                         config: dict[str, object]) -> None:
    cert = certs["rsa-2048"]
    server = tlsmith_servers.get("rsa-2048", **config)
    before = server.count()
    done = run_s_client(server.port, *s_client_args(
        cert, "-tls1_2", "-cipher", OPENSSL_TLS12_CIPHER[RSA_KX]), stdin=GET)
    assert done.returncode != 0
    assert "alert handshake failure" in done.text, done.text
    served = server.wait_served(before)
    assert isinstance(served.error, HandshakeFailure), repr(served.error)
    if config:
        assert "allow_rsa_key_exchange" in str(served.error)


#: name -> (certificate, s_client switches, its "Peer signature type", our scheme)
SERVER_VARIANTS = {
    "pkcs1-sha256": ("rsa-2048", ("-sigalgs", "RSA+SHA256"), "RSA", "RSA_PKCS1_SHA256"),
    # the client's order of preference: PKCS#1 SHA-512 before PSS SHA-384
    "pkcs1-sha512-first": ("rsa-2048", ("-sigalgs", "RSA+SHA512:RSA-PSS+SHA384"), "RSA",
                           "RSA_PKCS1_SHA512"),
    "ecdsa-p384-cert": ("ecdsa-p384", (), "ECDSA", "ECDSA_SECP256R1_SHA256"),
    "ed25519-cert": ("ed25519", (), "ed25519", "ED25519"),
    "curves-P-384": ("rsa-2048", ("-curves", "P-384"), "RSA-PSS", "RSA_PSS_RSAE_SHA256"),
    "max_send_frag-512": ("rsa-2048", ("-max_send_frag", "512"), "RSA-PSS",
                          "RSA_PSS_RSAE_SHA256"),
}


@pytest.mark.parametrize("variant", SERVER_VARIANTS)
def test_server_variants(tlsmith_servers: TlsmithPool, certs: dict[str, CertFiles],
                         variant: str) -> None:
    cert_type, extra, peer_type, scheme = SERVER_VARIANTS[variant]
    server = tlsmith_servers.get(cert_type)
    done = run_s_client(server.port, *s_client_args(certs[cert_type], "-tls1_2", *extra),
                        stdin=GET)
    assert done.returncode == 0, done.text
    out = done.stdout
    assert field(out, "Protocol") == "TLSv1.2"
    assert field(out, "Peer signature type") == peer_type
    assert f" sig={scheme} " in out, out[-1500:]
    if "-curves" in extra:
        assert field(out, "Server Temp Key") == "ECDH, secp384r1, 384 bits"
        assert " group=SECP384R1 " in out


def test_server_full_handshakes_on_reconnect(tlsmith_servers: TlsmithPool,
                                             certs: dict[str, CertFiles]) -> None:
    """A server with resumption off (no session IDs, no tickets): s_client -reconnect's
    five attempts to resume are full handshakes, all fine (the resuming case is in
    test_interop_resume12.py)."""
    server = tlsmith_servers.get("ecdsa-p256", session_ids=False, tickets=0)
    before = server.count()
    done = run_s_client(server.port, *s_client_args(certs["ecdsa-p256"], "-tls1_2",
                                                    "-reconnect"), stdin=GET)
    assert done.returncode == 0, done.text
    assert done.stdout.count("New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256") == 6
    assert "Reused, " not in done.stdout
    for i in range(6):
        assert server.wait_served(before + i).error is None


def test_server_refuses_renegotiation(certs: dict[str, CertFiles], work: Path) -> None:
    """s_client's "R" (a new ClientHello on the established connection) gets a
    no_renegotiation warning (RFC 5746 §4.2 / RFC 5246 §7.2.2)."""
    cert = certs["ecdsa-p256"]
    config = ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                                cert.key_path),))
    with tlsmith_server(config, "echo") as server:
        # (no -ign_eof: with it, s_client sends "R" as data instead of renegotiating)
        client = start_s_client(server.port, "-CAfile", str(cert.ca_path), "-servername",
                                "localhost", "-tls1_2", "-msg", log_dir=work)
        try:
            client.wait_for("Verify return code: 0 (ok)")
            mark = client.mark()
            client.send("hello\n")
            client.wait_for("hello", since=mark)
            client.send("R\n")
            out = client.wait_for("<<< TLS 1.2, Alert [length 0002], warning no_renegotiation",
                                  since=mark)
            assert "RENEGOTIATING" in out
            assert client.wait() != 0  # OpenSSL then gives up with handshake_failure
        finally:
            client.stop()
        served = server.wait_served(0)
    assert bytes(served.received) == b"hello\n"
    assert served.info is not None and not served.info.resumed


@pytest.mark.parametrize("certificates", [("ecdsa-p256",), ("ecdsa-p256", "rsa-2048")],
                         ids=["ecdsa-only", "ecdsa-and-rsa"])
def test_server_certificate_curve_from_supported_groups(
        certs: dict[str, CertFiles], certificates: tuple[str, ...]) -> None:
    config = ServerConfig(certificates=tuple(
        CertifiedKey.from_files(certs[c].chain_path, certs[c].key_path)
        for c in certificates))
    with tlsmith_server(config) as server:
        done = run_s_client(server.port, *s_client_args(certs["ecdsa-p256"], "-tls1_2",
                                                        "-curves", "P-384"), stdin=GET)
        served = server.wait_served(0)
    assert "wrong curve" not in done.text, done.text
    if "rsa-2048" in certificates:  # the RSA certificate makes ECDHE_RSA possible
        assert done.returncode == 0, done.text
        assert field(done.stdout, "Cipher") == "ECDHE-RSA-AES128-GCM-SHA256"
        assert field(done.stdout, "Server Temp Key") == "ECDH, secp384r1, 384 bits"
    else:  # no ECC suite may be chosen, and there is no other: handshake_failure
        assert "alert handshake failure" in done.text, done.text
        assert isinstance(served.error, HandshakeFailure), repr(served.error)


def cli_rsa_kx(certs: dict[str, CertFiles], work: Path, *args: str) -> None:
    cert = certs["rsa-2048"]
    serve = start_tlsmith_serve_cli(cert, "--allow-rsa-kx", *args, "--max-connections", "1",
                                    log_dir=work)
    try:
        name = OPENSSL_TLS12_CIPHER[RSA_KX]
        done = run_s_client(serve.port, *s_client_args(cert, "-tls1_2", "-cipher", name),
                            stdin=GET)
        assert serve.wait(timeout=TIMEOUT) == 0  # --max-connections 1
        assert done.returncode == 0, done.text + serve.output()
        assert f"New, TLSv1.2, Cipher is {name}" in done.stdout
        assert field(done.stdout, "Extended master secret") == "yes"
        assert "<h1>tlsmith: your TLS handshake</h1>" in done.stdout
        assert f" TLSv1.2 {RSA_KX.name} group=- " in serve.output()
    finally:
        serve.stop()


def test_cli_serve_rsa_key_exchange_named(certs: dict[str, CertFiles], work: Path) -> None:
    require_peer("openssl")
    cli_rsa_kx(certs, work, "--cipher", RSA_KX.name)


def test_cli_serve_allow_rsa_kx_alone(certs: dict[str, CertFiles], work: Path) -> None:
    require_peer("openssl")
    cli_rsa_kx(certs, work)


# ================================================= 3. Python's ssl module, both roles
PYTHON_CASES = [("ecdsa-p256", S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
                ("rsa-2048", S.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
                ("rsa-2048", S.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
                ("rsa-2048", DHE),
                ("ecdsa-p256", S.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384)]


@pytest.mark.parametrize(("cert_type", "suite"), PYTHON_CASES,
                         ids=[s.name for _, s in PYTHON_CASES])
def test_python_ssl_client(tlsmith_servers: TlsmithPool, certs: dict[str, CertFiles],
                           tmp_path: Path, cert_type: str, suite: CipherSuite) -> None:
    cert = certs[cert_type]
    server = tlsmith_servers.get(cert_type, **RSA_KX_SERVER)
    before = server.count()
    keys = tmp_path / "python-keys.log"
    ctx = ssl.create_default_context(cafile=str(cert.ca_path))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(OPENSSL_TLS12_CIPHER[suite])
    ctx.keylog_filename = str(keys)
    reply = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.2"
        cipher = tls.cipher()
        assert cipher is not None and cipher[0] == OPENSSL_TLS12_CIPHER[suite]
        tls.sendall(GET)
        while data := tls.recv(65536):  # our server closes with close_notify
            reply += data
    assert f"tlsmith-info version=TLSv1.2 suite={suite.name} ".encode() in reply, reply
    served = server.wait_served(before)
    assert served.error is None, repr(served.error)
    assert served.info is not None
    assert_tls12(served.info, suite, verified=False)
    theirs = keylog_lines(keys)
    assert len(theirs) == 1
    assert theirs[0] == master_secret_line(tlsmith_servers.keylogs[server.port],
                                           served.info.client_random)


@pytest.mark.parametrize(("cert_type", "suite"), PYTHON_CASES,
                         ids=[s.name for _, s in PYTHON_CASES])
def test_python_ssl_server(certs: dict[str, CertFiles], dh_params: dict[str, Path],
                           tmp_path: Path, cert_type: str, suite: CipherSuite) -> None:
    """A TLS 1.2-only Python server; our default client (TLS 1.3 and 1.2 offered) gets
    TLS 1.2 from it (and no downgrade sentinel: OpenSSL's maximum is TLS 1.2)."""
    cert = certs[cert_type]
    theirs_path, ours_path = tmp_path / "python-keys.log", tmp_path / "tlsmith-keys.log"
    payload = bytes(range(256)) * 256
    with python_ssl_server(cert, "echo", minimum_version=ssl.TLSVersion.TLSv1_2,
                           maximum_version=ssl.TLSVersion.TLSv1_2,
                           ciphers=OPENSSL_TLS12_CIPHER[suite],
                           keylog=theirs_path, dh_params=dh_params["ffdhe2048"],
                           ) as (port, served):
        tls = connect("127.0.0.1", port, client_config(cert), timeout=TIMEOUT,
                      keylog=ours_path)
        try:
            assert_tls12(tls.info, suite)
            if key_exchange(suite) == "DHE":
                assert tls.info.group == NamedGroup.FFDHE2048
            for start in range(0, len(payload), 16384):
                chunk = payload[start:start + 16384]
                tls.sendall(chunk)
                assert tls.recv_exactly(len(chunk)) == chunk
            send_close_notify(tls)
            drained = read_until_closed(tls)
            client_random = tls.info.client_random
        finally:
            tls.close()
        assert wait_until(lambda: bool(served) and served[0].done.is_set(), TIMEOUT)
    record = served[0]
    assert record.error is None, repr(record.error)
    assert record.version == "TLSv1.2"
    assert record.cipher == OPENSSL_TLS12_CIPHER[suite]
    assert record.received == len(payload)
    assert record.peer_closed_cleanly and record.unwrapped
    assert drained.closed is not None and drained.closed.clean
    assert keylog_lines(theirs_path) == [master_secret_line(ours_path, client_random)]


# ================================================= 4. curl -> tlsmith serve
def test_curl_tls12(cli_server: PeerProcess, certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    port = cli_server.port
    mark = cli_server.mark()
    done = run_process_group(
        [require_peer("curl"), "-v", "-sS", "--max-time", "10", "--tlsv1.2", "--tls-max", "1.2",
         "--cacert", str(cert.ca_path), "--resolve", f"localhost:{port}:127.0.0.1",
         f"https://localhost:{port}/"], timeout=15, what="curl")
    assert done.returncode == 0, done.text
    # curl gets the page as text (serve_page.choose_format)
    assert done.stdout.startswith("tlsmith: your TLS handshake\n"), done.stdout[:300]
    assert re.search(r"^Protocol +TLSv1\.2$", done.stdout, re.M), done.stdout[:600]
    assert ("SSL connection using TLSv1.2 / "
            f"{OPENSSL_TLS12_CIPHER[ECDSA_SUITES[0]]}") in done.stderr, done.stderr
    log = cli_server.wait_for(" TLSv1.2 ", since=mark)
    assert f" TLSv1.2 {ECDSA_SUITES[0].name} group=x25519 sni=localhost" in log


# ================================================= 5. version negotiation
@pytest.mark.parametrize(("args", "expected"), [
    ((), "TLSv1.3"),
    (("-tls1_2",), "TLSv1.2"),
], ids=["s_server-default", "s_server-tls1_2"])
def test_default_client_version(s_servers: SServerPool, certs: dict[str, CertFiles],
                                args: tuple[str, ...], expected: str) -> None:
    server = s_servers.get("ecdsa-p256", *args, "-www")
    with connect("127.0.0.1", server.port, client_config(certs["ecdsa-p256"]),
                 timeout=TIMEOUT) as tls:
        assert tls.info.version_label == expected
        page = http_get(tls)
    assert f"New, {expected}, Cipher is " in page
    assert field(page, "Protocol") == expected


def server_random(output: str) -> bytes:
    """ServerHello.random from s_client -msg output (the message after its 4-byte
    header and the 2-byte version)."""
    hellos = openssl_msg_bytes(output, "<<<", "ServerHello")
    assert len(hellos) == 1, output[-3000:]
    return hellos[0][6:38]


def test_s_client_default_gets_tls13(cli_server: PeerProcess,
                                     certs: dict[str, CertFiles]) -> None:
    done = run_s_client(cli_server.port, *s_client_args(certs["ecdsa-p256"]), stdin=GET)
    assert done.returncode == 0, done.text
    # (no "Protocol :" line: s_client prints its session only once it has a ticket)
    assert "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256" in done.stdout
    assert "<th>Protocol</th><td>TLSv1.3</td>" in done.stdout


def test_downgrade_sentinel_for_tls12_only_client(cli_server: PeerProcess,
                                                  certs: dict[str, CertFiles]) -> None:
    """RFC 8446 §4.1.3: a server that speaks TLS 1.3, negotiating TLS 1.2 with a client
    that offered only 1.2, ends its random with DOWNGRD\\x01 (s_client -tls1_2 accepts it:
    it does not offer TLS 1.3)."""
    done = run_s_client(cli_server.port, *s_client_args(certs["ecdsa-p256"], "-tls1_2",
                                                        "-msg"), stdin=GET)
    assert done.returncode == 0, done.text
    assert field(done.stdout, "Protocol") == "TLSv1.2"
    assert server_random(done.stdout)[-8:] == b"DOWNGRD\x01"  # 44 4f 57 4e 47 52 44 01
    assert "<th>Protocol</th><td>TLSv1.2</td>" in done.stdout


def test_tls12_only_server_serves_tls13_capable_client(tlsmith_servers: TlsmithPool,
                                                       certs: dict[str, CertFiles]) -> None:
    """A max_version=TLS12 server writes no sentinel: a default (TLS 1.3-capable)
    s_client, which would abort on one, gets TLS 1.2."""
    server = tlsmith_servers.get("ecdsa-p256", max_version=ProtocolVersion.TLS12)
    before = server.count()
    done = run_s_client(server.port, *s_client_args(certs["ecdsa-p256"], "-msg"), stdin=GET)
    assert done.returncode == 0, done.text
    assert field(done.stdout, "Protocol") == "TLSv1.2"
    assert field(done.stdout, "Extended master secret") == "yes"
    assert server_random(done.stdout)[-8:] not in DOWNGRADE_SENTINELS
    assert "tlsmith-info version=TLSv1.2 " in done.stdout
    assert server.wait_served(before).error is None


def test_tls13_only_client_against_tls12_server(s_servers: SServerPool,
                                                certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    server = s_servers.get("ecdsa-p256", "-tls1_2", "-www")
    mark = server.mark()
    result = tlsmith_cli(f"127.0.0.1:{server.port}", "--tls1.3", "--cafile",
                         str(cert.ca_path), "--servername", "localhost")
    assert result["ok"] is False
    assert result["error"] == "AlertReceived"
    explanation = str(result["explanation"])
    assert "protocol_version" in explanation
    assert "TLSv1.3" in explanation  # what we offered
    assert re.search(r"TLS ?v?1\.2", explanation), explanation  # what such servers speak
    server.wait_for("unsupported protocol", since=mark)
    # the API: min_version=TLS13 ends in the same alert
    with pytest.raises(AlertReceived) as caught:
        connect("127.0.0.1", server.port, client_config(
            cert, min_version=ProtocolVersion.TLS13), timeout=TIMEOUT)
    assert caught.value.description == AlertDescription.PROTOCOL_VERSION


def test_tls11_client_refused(tlsmith_servers: TlsmithPool,
                              certs: dict[str, CertFiles]) -> None:
    server = tlsmith_servers.get("ecdsa-p256")
    before = server.count()
    done = run_s_client(server.port, *s_client_args(
        certs["ecdsa-p256"], "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"), stdin=GET)
    assert done.returncode != 0
    assert "alert protocol version" in done.text, done.text
    served = server.wait_served(before)
    assert isinstance(served.error, ProtocolVersionError), repr(served.error)


# ================================================= 6. TLS_FALLBACK_SCSV (RFC 7507)
@pytest.mark.parametrize("max_version", [ProtocolVersion.TLS13, ProtocolVersion.TLS12],
                         ids=["server-tls13", "server-tls12-max"])
def test_fallback_scsv_from_s_client(tlsmith_servers: TlsmithPool,
                                     certs: dict[str, CertFiles],
                                     max_version: ProtocolVersion) -> None:
    server = tlsmith_servers.get("ecdsa-p256", max_version=max_version)
    before = server.count()
    done = run_s_client(server.port, *s_client_args(
        certs["ecdsa-p256"], "-tls1_2", "-fallback_scsv"), stdin=GET)
    served = server.wait_served(before)
    if max_version == ProtocolVersion.TLS13:  # a fallback below our best: an attack
        assert done.returncode != 0
        assert "alert inappropriate fallback" in done.text, done.text
        assert isinstance(served.error, InappropriateFallback), repr(served.error)
    else:  # TLS 1.2 is our best: the SCSV is harmless
        assert done.returncode == 0, done.text
        assert field(done.stdout, "Protocol") == "TLSv1.2"
        assert served.error is None, repr(served.error)


@pytest.mark.parametrize("args", [(), ("-tls1_2",)], ids=["s_server-default",
                                                          "s_server-tls1_2"])
def test_fallback_scsv_from_tlsmith_client(s_servers: SServerPool,
                                           certs: dict[str, CertFiles],
                                           args: tuple[str, ...]) -> None:
    """Our client's TLS_FALLBACK_SCSV (a TLS 1.2-only retry) as OpenSSL judges it."""
    server = s_servers.get("ecdsa-p256", *args, "-www")
    config = client_config(certs["ecdsa-p256"], max_version=ProtocolVersion.TLS12,
                           send_fallback_scsv=True)
    if not args:  # s_server speaks TLS 1.3: refused
        mark = server.mark()
        with pytest.raises(AlertReceived) as caught:
            connect("127.0.0.1", server.port, config, timeout=TIMEOUT)
        assert caught.value.description == AlertDescription.INAPPROPRIATE_FALLBACK
        server.wait_for("inappropriate fallback", since=mark)
    else:
        with connect("127.0.0.1", server.port, config, timeout=TIMEOUT) as tls:
            assert tls.info.version_label == "TLSv1.2"
            assert http_get(tls).startswith("HTTP/1.0 200 ok")
