"""tlsmith's TLS 1.2 against GnuTLS 3.7 (an independent TLS 1.2 stack), both roles.

* tlsmith client -> gnutls-serv: gnutls-serv binds 0.0.0.0/::, so it runs in a private
  network namespace (``unshare -n``, only ``lo``) together with our client. As in
  test_interop_gnutls.py, this file runs itself as a script inside the namespace (see
  ``netns_main``): it starts gnutls-serv, runs one tlsmith client connection (the API or
  ``tlsmith connect --tls1.2 --json``), stops gnutls-serv and prints one JSON object.
* gnutls-cli -> an in-process tlsmith server on 127.0.0.1 (no namespace needed).

GnuTLS's priority string pins the version to TLS 1.2 and the key exchange, cipher, MAC and
group to one suite, and GnuTLS's own report (gnutls-serv's log and its ``--http`` page,
gnutls-cli's session info) must name what we negotiated. Every case also compares the
``CLIENT_RANDOM`` line both key logs wrote (our key log against ``SSLKEYLOGFILE``): two
independent TLS 1.2 PRFs and (extended) master secret derivations agree.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, free_port, require_netns, require_peer
from peers import TlsmithServerHandle, port_accepts, run_process_group, tlsmith_server, wait_until
from test_interop_gnutls import (
    GNUTLS_KX,
    SERVER_GROUPS,
    CliResult,
    run_gnutls_cli,
    server_errors,
    tlsmith_info,
)
from tlsmith.codec.enums import CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme
from tlsmith.config import DEFAULT_SUITES, CertifiedKey, ServerConfig
from tlsmith.crypto.suites import TLS12_SUITES
from tlsmith.io.blocking import with_keylog

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

TIMEOUT = 10.0
NETNS_TIMEOUT = 40.0
GET = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
TLS12_ONLY = "NORMAL:-VERS-ALL:+VERS-TLS1.2"
DOWNGRADE_TLS12 = b"DOWNGRD\x01"  # RFC 8446 §4.1.3
GNUTLS_PAGE = "This is <a href=\"http://www.gnu.org/software/gnutls\">GnuTLS</a>"

_CS = CipherSuite
#: What our in-process server accepts: the defaults (TLS 1.3 and 1.2) plus RSA transport.
SERVER_SUITES = (*DEFAULT_SUITES, _CS.TLS_RSA_WITH_AES_128_GCM_SHA256,
                 _CS.TLS_RSA_WITH_AES_256_GCM_SHA384)

# GnuTLS's names for the parts of a TLS 1.2 suite (priority strings and "Description").
GNUTLS_KX12 = {("ecdhe", "ecdsa"): "ECDHE-ECDSA", ("ecdhe", "rsa"): "ECDHE-RSA",
               ("dhe", "rsa"): "DHE-RSA", ("rsa", "rsa"): "RSA"}
GNUTLS_MAC = {"sha1": "SHA1", "sha256": "SHA256", "sha384": "SHA384"}
# TLS 1.2 signature names, as GnuTLS prints them in a TLS 1.2 "Description".
GNUTLS_SIG12 = {
    SignatureScheme.RSA_PKCS1_SHA256: "RSA-SHA256",
    SignatureScheme.RSA_PKCS1_SHA384: "RSA-SHA384",
    SignatureScheme.RSA_PKCS1_SHA512: "RSA-SHA512",
    SignatureScheme.RSA_PSS_RSAE_SHA256: "RSA-PSS-RSAE-SHA256",
    SignatureScheme.RSA_PSS_RSAE_SHA384: "RSA-PSS-RSAE-SHA384",
    SignatureScheme.RSA_PSS_RSAE_SHA512: "RSA-PSS-RSAE-SHA512",
    SignatureScheme.ECDSA_SECP256R1_SHA256: "ECDSA-SHA256",
    SignatureScheme.ECDSA_SECP384R1_SHA384: "ECDSA-SHA384",
    SignatureScheme.ECDSA_SECP521R1_SHA512: "ECDSA-SHA512",
    SignatureScheme.ED25519: "EdDSA-Ed25519",
}
GNUTLS_GROUP = {NamedGroup.X25519: "X25519", NamedGroup.SECP256R1: "SECP256R1",
                NamedGroup.SECP384R1: "SECP384R1", NamedGroup.FFDHE2048: "FFDHE2048"}


def gnutls_cipher(suite: CipherSuite) -> str:
    info = TLS12_SUITES[suite]
    if info.aead == "chacha20-poly1305":
        return "CHACHA20-POLY1305"
    mode = "CBC" if info.cipher == "cbc" else "GCM"
    return f"AES-{info.key_len * 8}-{mode}"


def gnutls_mac(suite: CipherSuite) -> str:
    info = TLS12_SUITES[suite]
    return GNUTLS_MAC[info.mac_name] if info.cipher == "cbc" and info.mac_name else "AEAD"


def priority12(suite: CipherSuite, group: NamedGroup | None = None, extra: str = "") -> str:
    """A TLS 1.2-only GnuTLS priority string that allows ``suite`` (and ``group``) only."""
    info = TLS12_SUITES[suite]
    assert info.key_exchange is not None and info.authentication is not None
    text = (f"{TLS12_ONLY}:-KX-ALL:+{GNUTLS_KX12[info.key_exchange, info.authentication]}"
            f":-CIPHER-ALL:+{gnutls_cipher(suite)}:-MAC-ALL:+{gnutls_mac(suite)}")
    if group is not None:
        text += f":-GROUP-ALL:+GROUP-{GNUTLS_GROUP[group]}"
    return text + extra


_CERT_CURVES = {"ecdsa-p256": NamedGroup.SECP256R1, "ecdsa-p384": NamedGroup.SECP384R1}


def cert_curve(case: Case) -> str:
    """RFC 8422 §5.1: a TLS 1.2 server uses an ECDSA certificate only if its curve is in the
    client's supported_groups, so the client also lists the certificate's curve (after the
    one the case wants for ECDHE, which the server prefers)."""
    curve = _CERT_CURVES.get(case.cert)
    if curve is None or curve == case.group:
        return ""
    return f":+GROUP-{GNUTLS_GROUP[curve]}"


def description12(suite: CipherSuite, group: NamedGroup | None,
                  scheme: SignatureScheme | None) -> str:
    """GnuTLS's "Description" of a TLS 1.2 session with these parameters, e.g.
    ``(TLS1.2-X.509)-(ECDHE-X25519)-(RSA-SHA256)-(AES-128-CBC)-(SHA256)``."""
    info = TLS12_SUITES[suite]
    parts = ["TLS1.2-X.509"]
    if info.key_exchange == "rsa":
        parts.append("RSA")  # RSA key transport: no ServerKeyExchange, nothing signed
    else:
        assert group is not None and scheme is not None
        parts += [GNUTLS_KX[group], GNUTLS_SIG12[scheme]]
    parts.append(gnutls_cipher(suite))
    if info.cipher == "cbc":
        parts.append(gnutls_mac(suite))
    return "-".join(f"({part})" for part in parts)


def gnutls_options(text: str) -> set[str]:
    """``extended master secret, safe renegotiation, EtM,`` -> a set of the options."""
    return {item.strip() for item in text.split(",") if item.strip()}


def client_random_lines(path: Path, client_random: bytes) -> list[str]:
    """The ``CLIENT_RANDOM <client_random> <master secret>`` lines for one session."""
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines()
            if line.startswith(f"CLIENT_RANDOM {client_random.hex()} ")]


def assert_same_master_secret(ours: Path, theirs: Path, client_random: bytes) -> None:
    ours_lines = client_random_lines(ours, client_random)
    theirs_lines = client_random_lines(theirs, client_random)
    assert len(ours_lines) == 1, (ours_lines, ours.read_text() if ours.exists() else "-")
    assert len(theirs_lines) == 1, (theirs_lines,
                                    theirs.read_text() if theirs.exists() else "-")
    assert ours_lines == theirs_lines
    assert len(ours_lines[0].split()[2]) == 96  # a 48-byte master secret


@dataclass(frozen=True)
class Case:
    id: str
    suite: CipherSuite
    cert: str
    group: NamedGroup | None  # the one group GnuTLS allows (None: RSA key transport)


# Every implemented suite family: ECDHE with ECDSA and RSA certificates, each AEAD (and
# the SHA-384 PRF), DHE with an RFC 7919 group, RSA key transport, and CBC with
# encrypt_then_mac (RFC 7366; SHA-256 and SHA-384 MACs).
CASES = [
    Case("ecdhe-ecdsa-aes128gcm", _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ecdsa-p256",
         NamedGroup.X25519),
    Case("ecdhe-ecdsa-aes256gcm-p384", _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
         "ecdsa-p384", NamedGroup.SECP384R1),
    Case("ecdhe-ecdsa-chacha20", _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
         "ecdsa-p256", NamedGroup.SECP256R1),
    Case("ecdhe-rsa-aes128gcm", _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "rsa-2048",
         NamedGroup.SECP256R1),
    Case("ecdhe-rsa-aes256gcm", _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "rsa-2048",
         NamedGroup.X25519),
    Case("ecdhe-rsa-chacha20", _CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "rsa-2048",
         NamedGroup.X25519),
    Case("dhe-rsa-aes128gcm-ffdhe2048", _CS.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, "rsa-2048",
         NamedGroup.FFDHE2048),
    Case("rsa-kx-aes128gcm", _CS.TLS_RSA_WITH_AES_128_GCM_SHA256, "rsa-2048", None),
    Case("ecdhe-rsa-aes128cbc-sha256-etm", _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
         "rsa-2048", NamedGroup.X25519),
    Case("ecdhe-ecdsa-aes256cbc-sha384-etm", _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
         "ecdsa-p256", NamedGroup.SECP256R1),
]
CASE_IDS = [case.id for case in CASES]


def key_exchange(suite: CipherSuite) -> str:
    """"ECDHE", "DHE" or "RSA", as HandshakeInfo.key_exchange names it."""
    name = TLS12_SUITES[suite].key_exchange
    assert name is not None
    return name.upper()


def is_cbc(suite: CipherSuite) -> bool:
    return TLS12_SUITES[suite].cipher == "cbc"


def expected_options(suite: CipherSuite, ems: bool = True, etm: bool | None = None) -> set[str]:
    """GnuTLS's "Options" for a TLS 1.2 session (EtM is only ever used with CBC)."""
    options = {"safe renegotiation"}
    if ems:
        options.add("extended master secret")
    if is_cbc(suite) if etm is None else etm:
        options.add("EtM")
    return options


# ======================================================== gnutls-cli -> tlsmith server
@dataclass
class Servers:
    """In-process tlsmith servers, one per (certificate, options), sharing a key log."""

    certs: dict[str, CertFiles]
    stack: ExitStack
    keylog: Path
    _servers: dict[tuple[object, ...], TlsmithServerHandle]

    def get(self, cert: str, **kw: Any) -> TlsmithServerHandle:
        key = (cert, tuple(sorted(kw.items())))
        if key not in self._servers:
            files = self.certs[cert]
            kw.setdefault("cipher_suites", SERVER_SUITES)
            kw.setdefault("groups", SERVER_GROUPS)
            kw.setdefault("allow_rsa_key_exchange", True)
            config = ServerConfig(certificates=(CertifiedKey.from_files(files.chain_path,
                                                                        files.key_path),),
                                  **kw)
            self._servers[key] = self.stack.enter_context(
                tlsmith_server(with_keylog(config, self.keylog), "http"))
        return self._servers[key]


@pytest.fixture(scope="module")
def servers(certs: dict[str, CertFiles], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Servers]:
    require_peer("gnutls-cli")
    keylog = tmp_path_factory.mktemp("tls12-servers") / "tlsmith-server.keys"
    with ExitStack() as stack:
        yield Servers(certs, stack, keylog, {})


def gnutls_cli12(server: TlsmithServerHandle, cert: CertFiles, keylog: Path, *args: str
                 ) -> CliResult:
    env = {**os.environ, "SSLKEYLOGFILE": str(keylog)}
    return run_gnutls_cli(server.port, cert, *args, env=env)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gnutls_cli_to_tlsmith_server(servers: Servers, certs: dict[str, CertFiles],
                                      tmp_path: Path, case: Case) -> None:
    cert = certs[case.cert]
    server = servers.get(case.cert)
    before = server.count()
    theirs = tmp_path / "gnutls-cli.keys"
    done = gnutls_cli12(server, cert, theirs, "--priority",
                        priority12(case.suite, case.group, cert_curve(case)))
    assert done.returncode == 0, done.text + server_errors(server)
    assert done.line("Status") == "The certificate is trusted."
    served = server.wait_served(before)
    assert served.error is None, repr(served.error)
    info = served.info
    assert info is not None
    assert info.version_label == "TLSv1.2"
    assert info.cipher_suite == case.suite
    assert info.group == case.group
    assert info.extended_master_secret is True
    assert info.encrypt_then_mac is is_cbc(case.suite)
    assert info.key_exchange == key_exchange(case.suite)
    assert info.server_name == "localhost"
    # GnuTLS saw the same session
    assert done.line("Description") == description12(case.suite, case.group,
                                                     info.signature_scheme)
    assert gnutls_options(done.line("Options")) == expected_options(case.suite)
    # our HTTP handler's answer reached gnutls-cli
    assert "HTTP/1.0 200 OK" in done.stdout
    seen = tlsmith_info(done)
    assert (seen["version"], seen["suite"]) == ("TLSv1.2", case.suite.name)
    assert served.received.startswith(b"GET / HTTP/1.0\r\n")
    # and derived the same master secret
    assert_same_master_secret(servers.keylog, theirs, info.client_random)


def test_gnutls_cli_alpn_tls12(servers: Servers, certs: dict[str, CertFiles],
                               tmp_path: Path) -> None:
    suite = _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    server = servers.get("rsa-2048", alpn_protocols=("h2", "http/1.1"))
    before = server.count()
    done = gnutls_cli12(server, certs["rsa-2048"], tmp_path / "k", "--priority",
                        priority12(suite), "--alpn", "http/1.1", "--alpn", "h2")
    assert done.returncode == 0, done.text + server_errors(server)
    assert done.line("Application protocol") == "h2"  # our server's preference wins
    served = server.wait_served(before)
    assert served.info is not None
    assert served.info.version_label == "TLSv1.2" and served.info.alpn == "h2"
    assert tlsmith_info(done)["alpn"] == "h2"


def test_gnutls_cli_offering_tls13_to_a_tls12_only_server(servers: Servers,
                                                          certs: dict[str, CertFiles],
                                                          tmp_path: Path) -> None:
    """gnutls-cli (TLS 1.3 and 1.2) against our server limited to TLS 1.2: TLS 1.2 is
    negotiated, and GnuTLS finds no downgrade sentinel in our random (RFC 8446 §4.1.3:
    only a server that speaks TLS 1.3 sets it; GnuTLS would abort otherwise)."""
    server = servers.get("ecdsa-p256", max_version=ProtocolVersion.TLS12)
    before = server.count()
    done = gnutls_cli12(server, certs["ecdsa-p256"], tmp_path / "k", "--priority", "NORMAL")
    assert done.returncode == 0, done.text + server_errors(server)
    assert done.line("Description").startswith("(TLS1.2-X.509)-")
    served = server.wait_served(before)
    assert served.info is not None and served.info.version_label == "TLSv1.2"


def test_gnutls_cli_without_extended_master_secret(servers: Servers,
                                                   certs: dict[str, CertFiles],
                                                   tmp_path: Path) -> None:
    """RFC 7627: by default our server refuses a client without extended_master_secret;
    allowed, it derives the master secret the old way, and GnuTLS agrees on it."""
    suite = _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    cert = certs["rsa-2048"]
    args = ("--priority", priority12(suite, NamedGroup.X25519, ":%NO_SESSION_HASH"))

    strict = servers.get("rsa-2048")
    before = strict.count()
    refused = gnutls_cli12(strict, cert, tmp_path / "refused.keys", *args)
    assert refused.returncode != 0, refused.text
    assert "Handshake failed" in refused.text, refused.text  # handshake_failure alert
    error = strict.wait_served(before).error
    assert error is not None and "extended master secret" in str(error).lower(), repr(error)

    lenient = servers.get("rsa-2048", require_extended_master_secret=False)
    before = lenient.count()
    theirs = tmp_path / "gnutls-cli.keys"
    done = gnutls_cli12(lenient, cert, theirs, *args)
    assert done.returncode == 0, done.text + server_errors(lenient)
    assert gnutls_options(done.line("Options")) == expected_options(suite, ems=False)
    served = lenient.wait_served(before)
    assert served.error is None, repr(served.error)
    assert served.info is not None and served.info.extended_master_secret is False
    assert_same_master_secret(servers.keylog, theirs, served.info.client_random)


def test_gnutls_cli_cbc_mac_then_encrypt(servers: Servers, certs: dict[str, CertFiles],
                                         tmp_path: Path) -> None:
    """RFC 7366: by default our server takes no CBC suite without encrypt_then_mac;
    allowed, MAC-then-encrypt records interoperate with GnuTLS."""
    suite = _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
    cert = certs["rsa-2048"]
    args = ("--priority", priority12(suite, NamedGroup.X25519, ":%NO_ETM"))

    strict = servers.get("rsa-2048")
    before = strict.count()
    refused = gnutls_cli12(strict, cert, tmp_path / "refused.keys", *args)
    assert refused.returncode != 0, refused.text
    error = strict.wait_served(before).error
    assert error is not None and "encrypt_then_mac" in str(error), repr(error)

    lenient = servers.get("rsa-2048", allow_mac_then_encrypt=True)
    before = lenient.count()
    theirs = tmp_path / "gnutls-cli.keys"
    done = gnutls_cli12(lenient, cert, theirs, *args)
    assert done.returncode == 0, done.text + server_errors(lenient)
    assert gnutls_options(done.line("Options")) == expected_options(suite, etm=False)
    assert "HTTP/1.0 200 OK" in done.stdout
    served = lenient.wait_served(before)
    assert served.error is None, repr(served.error)
    assert served.info is not None and served.info.encrypt_then_mac is False
    assert served.info.cipher_suite == suite
    assert_same_master_secret(servers.keylog, theirs, served.info.client_random)


BIG_REQUEST = (b"GET /big HTTP/1.0\r\nHost: localhost\r\nX-Pad: " + b"p" * 50_000
               + b"\r\n\r\n")


@pytest.mark.parametrize(("suite", "mte"), [
    (_CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, False),
    (_CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384, False),
    (_CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, True),
], ids=["aes256gcm", "aes256cbc-sha384-etm", "aes128cbc-sha256-mte"])
def test_gnutls_cli_large_request_to_tlsmith_server(servers: Servers,
                                                    certs: dict[str, CertFiles],
                                                    suite: CipherSuite, mte: bool) -> None:
    """A 50 KB request: several full-size records from GnuTLS that our server decrypts."""
    server = servers.get("rsa-2048", allow_mac_then_encrypt=mte)
    before = server.count()
    done = run_gnutls_cli(server.port, certs["rsa-2048"], "--priority",
                          priority12(suite, extra=":%NO_ETM" if mte else ""),
                          stdin=BIG_REQUEST)
    assert done.returncode == 0, done.text + server_errors(server)
    assert "HTTP/1.0 200 OK" in done.stdout
    served = server.wait_served(before)
    assert served.error is None, repr(served.error)
    assert served.info is not None and served.info.cipher_suite == suite
    assert served.info.encrypt_then_mac is (is_cbc(suite) and not mte)
    assert bytes(served.received) == BIG_REQUEST


# ===================================================== tlsmith client -> gnutls-serv
@pytest.fixture(scope="module")
def netns() -> None:
    """gnutls-serv binds 0.0.0.0: it may only run in a private network namespace."""
    require_peer("gnutls-serv")
    require_netns()


@dataclass
class NetnsResult:
    """What the script inside the namespace reported."""

    ok: bool
    info: dict[str, Any]
    reply: str
    error: str
    serv_log: str
    echoed: list[int]  # the sizes gnutls-serv --echo sent back intact

    def serv_line(self, name: str) -> str:
        """gnutls-serv's own ``- Name: value`` report of the session."""
        match = re.search(rf"^- {re.escape(name)}: (.*)$", self.serv_log, re.MULTILINE)
        assert match, f"no '- {name}:' line in gnutls-serv's log:\n{self.serv_log}"
        return match.group(1).strip()

    def page_cell(self, name: str) -> str:
        """A row of the ``--http`` page gnutls-serv sent (``<TD>name</TD><TD>value``)."""
        match = re.search(rf"<TD>{re.escape(name)}</TD><TD>([^<]*)</TD>", self.reply)
        assert match, self.reply
        return match.group(1)


def run_in_netns(cert: CertFiles, tmp_path: Path, serv_priority: str, *,
                 mode: str = "api", suites: tuple[CipherSuite, ...] = (),
                 alpn: tuple[str, ...] = (), serv_alpn: tuple[str, ...] = (),
                 max_version: ProtocolVersion = ProtocolVersion.TLS12,
                 require_ems: bool = True, allow_mte: bool = False,
                 serv_keylog: Path | None = None, client_keylog: Path | None = None,
                 echo_sizes: tuple[int, ...] = ()) -> NetnsResult:
    """gnutls-serv (``--http``, or ``--echo`` with ``echo_sizes``) and one tlsmith client
    connection, in a new network namespace.

    The script runs in its own session: if it outlives ``NETNS_TIMEOUT`` the whole process
    group (gnutls-serv included) is killed."""
    params = {
        "serv": {"cert": str(cert.chain_path), "key": str(cert.key_path),
                 "priority": serv_priority, "alpn": list(serv_alpn),
                 "echo": bool(echo_sizes),
                 "keylog": str(serv_keylog) if serv_keylog else None,
                 "log": str(tmp_path / f"gnutls-serv-{time.monotonic_ns()}.log")},
        "client": {"mode": mode, "ca": str(cert.ca_path), "suites": [s.name for s in suites],
                   "alpn": list(alpn), "max_version": max_version.name,
                   "require_ems": require_ems, "allow_mte": allow_mte,
                   "echo_sizes": list(echo_sizes),
                   "keylog": str(client_keylog) if client_keylog else None},
    }
    cmd = [require_peer("unshare"), "-n", sys.executable, str(Path(__file__).resolve()),
           "--netns-client12", json.dumps(params)]
    done = run_process_group(cmd, timeout=NETNS_TIMEOUT, what="the namespace script")
    text = done.stdout
    assert done.returncode == 0 and text.strip(), (
        f"the namespace script failed ({done.returncode}):\n{text}{done.stderr}")
    raw = json.loads(text.strip().splitlines()[-1])
    return NetnsResult(raw["ok"], raw.get("info") or {}, raw.get("reply", ""),
                       raw.get("error", ""), raw.get("serv_log", ""), raw.get("echoed", []))


def check_ok(result: NetnsResult, http: bool = True) -> None:
    assert result.ok, (f"tlsmith client failed: {result.error}\n"
                       f"gnutls-serv:\n{result.serv_log[-3000:]}")
    assert result.info["version"] == "TLSv1.2"
    assert result.info["certificate_verified"] is True
    assert result.info["server_name"] == "localhost"
    assert result.serv_line("Version") == "TLS1.2"
    if not http:
        return
    assert result.reply.startswith("HTTP/1.0 200 OK"), result.reply[:500]
    assert GNUTLS_PAGE in result.reply
    # gnutls-serv's view: its log and the page it served
    assert result.page_cell("Protocol version:") == "TLS1.2"
    assert result.page_cell("Description:") == result.serv_line("Description")


def our_description12(result: NetnsResult) -> str:
    info = result.info
    group = NamedGroup[info["group"]] if info["group"] else None
    scheme = SignatureScheme[info["signature_scheme"]] if info["signature_scheme"] else None
    return description12(CipherSuite[info["cipher_suite"]], group, scheme)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_tlsmith_client_to_gnutls_serv(netns: None, certs: dict[str, CertFiles],
                                       tmp_path: Path, case: Case) -> None:
    ours, theirs = tmp_path / "tlsmith-client.keys", tmp_path / "gnutls-serv.keys"
    # RSA key transport is never offered by default: name it
    rsa_kx = TLS12_SUITES[case.suite].key_exchange == "rsa"
    result = run_in_netns(certs[case.cert], tmp_path, priority12(case.suite, case.group),
                          suites=(case.suite,) if rsa_kx else (),
                          serv_keylog=theirs, client_keylog=ours)
    check_ok(result)
    info = result.info
    assert info["cipher_suite"] == case.suite.name
    assert info["group"] == (case.group.name if case.group else None)
    assert info["key_exchange"] == key_exchange(case.suite)
    assert info["extended_master_secret"] is True
    assert info["encrypt_then_mac"] is is_cbc(case.suite)
    assert result.serv_line("Description") == our_description12(result)
    assert gnutls_options(result.serv_line("Options")) == expected_options(case.suite)
    assert_same_master_secret(ours, theirs, bytes.fromhex(info["client_random"]))


def test_tlsmith_client_alpn_with_gnutls_serv(netns: None, certs: dict[str, CertFiles],
                                              tmp_path: Path) -> None:
    suite = _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    result = run_in_netns(certs["ecdsa-p256"], tmp_path, priority12(suite),
                          serv_alpn=("http/1.1",), alpn=("h2", "http/1.1"))
    check_ok(result)
    assert result.info["alpn"] == "http/1.1"
    assert result.serv_line("Application protocol") == "http/1.1"


def test_tlsmith_client_offering_tls13_to_tls12_gnutls_serv(netns: None,
                                                            certs: dict[str, CertFiles],
                                                            tmp_path: Path) -> None:
    """Our default client (TLS 1.3 and 1.2) falls back to TLS 1.2 with a server that
    speaks nothing newer (no downgrade sentinel in its random)."""
    result = run_in_netns(certs["rsa-2048"], tmp_path, TLS12_ONLY,
                          max_version=ProtocolVersion.TLS13)
    check_ok(result)
    assert result.info["extended_master_secret"] is True
    assert not bytes.fromhex(result.info["server_random"]).endswith(DOWNGRADE_TLS12)


def test_tlsmith_client_tls12_only_to_dual_version_gnutls_serv(
        netns: None, certs: dict[str, CertFiles], tmp_path: Path) -> None:
    """Our client limited to TLS 1.2 against gnutls-serv with TLS 1.3 enabled: GnuTLS
    marks its random with DOWNGRD\\x01, which a client that did not offer TLS 1.3 must
    accept (RFC 8446 §4.1.3)."""
    result = run_in_netns(certs["ecdsa-p256"], tmp_path, "NORMAL")
    check_ok(result)
    assert bytes.fromhex(result.info["server_random"]).endswith(DOWNGRADE_TLS12)


def test_tlsmith_connect_cli_tls12_with_gnutls_serv(netns: None, certs: dict[str, CertFiles],
                                                    tmp_path: Path) -> None:
    """``tlsmith connect --tls1.2 --cipher ... --json --http --keylog`` in the namespace."""
    suite = _CS.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
    ours, theirs = tmp_path / "tlsmith-cli.keys", tmp_path / "gnutls-serv.keys"
    result = run_in_netns(certs["rsa-2048"], tmp_path, priority12(suite, NamedGroup.FFDHE2048),
                          mode="cli", suites=(suite,), alpn=("http/1.1",),
                          serv_alpn=("http/1.1",), serv_keylog=theirs, client_keylog=ours)
    check_ok(result)
    assert result.info["cipher_suite"] == suite.name
    assert result.info["group"] == "FFDHE2048"
    assert result.info["alpn"] == "http/1.1"
    assert result.info["key_exchange"] == "DHE"
    assert result.info["extended_master_secret"] is True
    assert result.serv_line("Description") == our_description12(result)
    # the CLI's JSON has no client random: find the one line each side logged
    theirs_lines = [line for line in theirs.read_text().splitlines()
                    if line.startswith("CLIENT_RANDOM ")]
    assert len(theirs_lines) == 1, theirs_lines
    assert_same_master_secret(ours, theirs, bytes.fromhex(theirs_lines[0].split()[1]))


@pytest.mark.parametrize("require_ems", [True, False], ids=["required", "allowed"])
def test_tlsmith_client_without_extended_master_secret(netns: None,
                                                       certs: dict[str, CertFiles],
                                                       tmp_path: Path,
                                                       require_ems: bool) -> None:
    """RFC 7627 against a gnutls-serv that does not do extended_master_secret: refused by
    default; allowed, the classic master secret matches GnuTLS's."""
    suite = _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    ours, theirs = tmp_path / "tlsmith-client.keys", tmp_path / "gnutls-serv.keys"
    result = run_in_netns(certs["ecdsa-p256"], tmp_path,
                          priority12(suite, NamedGroup.X25519, ":%NO_SESSION_HASH"),
                          require_ems=require_ems, serv_keylog=theirs, client_keylog=ours)
    if require_ems:
        assert not result.ok, result.info
        assert "extended master secret" in result.error.lower(), result.error
        return
    check_ok(result)
    assert result.info["extended_master_secret"] is False
    assert gnutls_options(result.serv_line("Options")) == expected_options(suite, ems=False)
    assert_same_master_secret(ours, theirs, bytes.fromhex(result.info["client_random"]))


@pytest.mark.parametrize("allow_mte", [False, True], ids=["refused", "allowed"])
def test_tlsmith_client_cbc_mac_then_encrypt(netns: None, certs: dict[str, CertFiles],
                                             tmp_path: Path, allow_mte: bool) -> None:
    """RFC 7366 against a gnutls-serv that does not do encrypt_then_mac: a CBC suite is
    refused by default; allowed, MAC-then-encrypt records interoperate."""
    suite = _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
    ours, theirs = tmp_path / "tlsmith-client.keys", tmp_path / "gnutls-serv.keys"
    result = run_in_netns(certs["rsa-2048"], tmp_path,
                          priority12(suite, NamedGroup.X25519, ":%NO_ETM"),
                          allow_mte=allow_mte, serv_keylog=theirs, client_keylog=ours)
    if not allow_mte:
        assert not result.ok, result.info
        assert "encrypt_then_mac" in result.error, result.error
        return
    check_ok(result)
    assert result.info["cipher_suite"] == suite.name
    assert result.info["encrypt_then_mac"] is False
    assert gnutls_options(result.serv_line("Options")) == expected_options(suite, etm=False)
    assert_same_master_secret(ours, theirs, bytes.fromhex(result.info["client_random"]))


# Around every CBC block boundary (padding of 1..16 bytes), and across the 2^14-byte
# record limit (several records per write, and a write split into several records).
ECHO_SIZES = (1, 15, 16, 17, 31, 32, 33, 47, 48, 255, 256, 1000, 4095, 16383, 16384, 16385,
              100_000)
ECHO_CASES = [
    # (id, cert, suite, gnutls-serv priority suffix, allow MAC-then-encrypt)
    ("aes128gcm", "ecdsa-p256", _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "", False),
    ("chacha20", "rsa-2048", _CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "", False),
    ("aes128cbc-sha256-etm", "rsa-2048", _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, "",
     False),
    ("aes256cbc-sha384-mte", "ecdsa-p256", _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
     ":%NO_ETM", True),
]


@pytest.mark.parametrize(("cert_type", "suite", "suffix", "allow_mte"),
                         [case[1:] for case in ECHO_CASES], ids=[c[0] for c in ECHO_CASES])
def test_tlsmith_client_records_echoed_by_gnutls_serv(netns: None,
                                                      certs: dict[str, CertFiles],
                                                      tmp_path: Path, cert_type: str,
                                                      suite: CipherSuite, suffix: str,
                                                      allow_mte: bool) -> None:
    """Application data of many lengths through gnutls-serv --echo and back: GnuTLS
    decrypts our records and we decrypt its (AEAD nonces, CBC padding and IVs, both MAC
    orders, fragmentation at 2^14 bytes)."""
    result = run_in_netns(certs[cert_type], tmp_path, priority12(suite, extra=suffix),
                          allow_mte=allow_mte, echo_sizes=ECHO_SIZES)
    check_ok(result, http=False)
    assert result.info["cipher_suite"] == suite.name
    assert result.info["encrypt_then_mac"] is (is_cbc(suite) and not allow_mte)
    assert result.echoed == list(ECHO_SIZES)


# =============================================== the script run inside the namespace
def _kill_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the script dies (PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _start_gnutls_serv(serv: dict[str, Any], port: int) -> subprocess.Popen[bytes]:
    cmd = ["gnutls-serv", "--echo", "--crlf"] if serv["echo"] else ["gnutls-serv", "--http"]
    cmd += ["--x509certfile", serv["cert"], "--x509keyfile", serv["key"], "-p", str(port),
            "--priority", serv["priority"], "--disable-client-cert"]
    for proto in serv["alpn"]:
        cmd += ["--alpn", proto]
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    if serv["keylog"]:
        env["SSLKEYLOGFILE"] = serv["keylog"]
    with open(serv["log"], "wb") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_kill_with_parent)


def _echo(tls: Any, sizes: list[int]) -> list[int]:
    """Send each size's payload and read it back; the sizes that came back intact,
    stopping at the first that did not. gnutls-serv --echo answers line by line: each
    payload is letters and one final LF."""
    echoed: list[int] = []
    for size in sizes:
        payload = bytes(65 + (i + size) % 26 for i in range(size - 1)) + b"\n"
        tls.sendall(payload)
        if tls.recv_exactly(size) != payload:
            break
        echoed.append(size)
    return echoed
def _client_api(client: dict[str, Any], port: int) -> dict[str, Any]:
    from peers import read_until_closed
    from tlsmith.config import ClientConfig
    from tlsmith.io.blocking import connect
    from tlsmith.observe import MessageTrace, TraceRecord
    from tlsmith.x509.verify import TrustStore

    server_randoms: list[bytes] = []

    def observer(record: TraceRecord) -> None:
        if (isinstance(record, MessageTrace) and record.direction == "received"
                and record.name == "ServerHello"):
            server_randoms.append(bytes(record.message.random))

    kw: dict[str, Any] = {}
    if client["suites"]:
        kw["cipher_suites"] = tuple(CipherSuite[s] for s in client["suites"])
    config = ClientConfig(server_name="localhost",
                          trust=TrustStore.from_pem_file(client["ca"]),
                          alpn_protocols=tuple(client["alpn"]),
                          max_version=ProtocolVersion[client["max_version"]],
                          require_extended_master_secret=client["require_ems"],
                          allow_mac_then_encrypt=client["allow_mte"], observer=observer,
                          **kw)
    tls = connect("127.0.0.1", port, config, timeout=TIMEOUT, keylog=client["keylog"])
    echoed: list[int] = []
    reply = b""
    try:
        info = tls.info
        if client["echo_sizes"]:
            echoed = _echo(tls, client["echo_sizes"])
        else:
            tls.sendall(GET)
            reply = read_until_closed(tls).data
    finally:
        tls.close()
    return {
        "echoed": echoed,
        "ok": True,
        "info": {
            "version": info.version_label,
            "cipher_suite": info.cipher_suite.name,
            "group": info.group.name if info.group else None,
            "signature_scheme": info.signature_scheme.name if info.signature_scheme
            else None,
            "alpn": info.alpn,
            "server_name": info.server_name,
            "certificate_verified": info.certificate_verified,
            "client_random": info.client_random.hex(),
            "server_random": server_randoms[0].hex() if server_randoms else None,
            "extended_master_secret": info.extended_master_secret,
            "encrypt_then_mac": info.encrypt_then_mac,
            "key_exchange": info.key_exchange,
        },
        "reply": reply.decode("utf-8", "replace"),
    }


def _client_cli(client: dict[str, Any], port: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tlsmith.cli.main", "connect", f"127.0.0.1:{port}",
           "--servername", "localhost", "--cafile", client["ca"], "--http", "--json",
           "--no-trace", "--timeout", str(TIMEOUT)]
    if client["max_version"] == "TLS12":
        cmd.append("--tls1.2")
    for suite in client["suites"]:
        cmd += ["--cipher", suite]
    for proto in client["alpn"]:
        cmd += ["--alpn", proto]
    if client["keylog"]:
        cmd += ["--keylog", client["keylog"]]
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("SSLKEYLOGFILE", None)
    done = subprocess.run(cmd, capture_output=True, timeout=2 * TIMEOUT, check=False,
                          env=env)
    try:
        out = json.loads(done.stdout)
    except ValueError:
        return {"ok": False, "error": f"tlsmith connect exited {done.returncode}: "
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"}
    if not out.get("ok"):
        return {"ok": False, "error": f"{out.get('error')}: {out.get('explanation')}"}
    info = {key: out.get(key) for key in (
        "version", "cipher_suite", "alpn", "server_name", "certificate_verified",
        "extended_master_secret", "encrypt_then_mac", "key_exchange")}
    info["group"] = out["group"].upper() if out.get("group") else None
    info["signature_scheme"] = (out["signature_scheme"].upper()
                                if out.get("signature_scheme") else None)
    return {"ok": done.returncode == 0, "info": info, "reply": out.get("reply", "")}


def netns_main(params: dict[str, Any]) -> dict[str, Any]:
    """Inside ``unshare -n``: lo up, gnutls-serv, one tlsmith client, gnutls-serv stopped."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=5)
    serv, client = params["serv"], params["client"]
    port = free_port()
    server = _start_gnutls_serv(serv, port)
    result: dict[str, Any]
    try:
        if not wait_until(lambda: server.poll() is not None or port_accepts(port), 5.0) \
                or server.poll() is not None:
            result = {"ok": False, "error": "gnutls-serv did not start"}
        else:
            try:
                result = (_client_cli if client["mode"] == "cli" else _client_api)(
                    client, port)
            except Exception as exc:
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=3)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=3)
    # gnutls-serv's session report ("- Version: TLS1.2" ...), then the end of its log (in
    # echo mode the log also holds every line echoed)
    log = Path(serv["log"]).read_text(errors="replace")
    report = [line[:300] for line in log.splitlines() if line.startswith(("- ", " - ", "*"))]
    result["serv_log"] = "\n".join(report[:60]) + "\n[...]\n" + log[-2000:]
    return result


if __name__ == "__main__" and sys.argv[1:2] == ["--netns-client12"]:
    print(json.dumps(netns_main(json.loads(sys.argv[2]))), flush=True)
