"""tlsmith against GnuTLS 3.7, a second independent TLS 1.3 stack: ``gnutls-cli`` talks to
our server, our client talks to ``gnutls-serv``, and both sides' NSS key logs must agree.

* gnutls-cli -> an in-process tlsmith server on 127.0.0.1 (no namespace needed).
* tlsmith client -> gnutls-serv: gnutls-serv has no listen-address option and binds
  0.0.0.0/::, so it runs in a private network namespace (``unshare -n``) that has only
  ``lo``, together with the tlsmith client. That part runs this file as a script inside
  the namespace (see ``netns_main``): it starts gnutls-serv, waits for its port, runs one
  tlsmith client connection (the API or the ``tlsmith connect --json`` CLI), kills
  gnutls-serv and prints one JSON object.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, free_port, require_netns, require_peer
from peers import (
    ProcessResult,
    TlsmithServerHandle,
    port_accepts,
    run_process_group,
    tlsmith_server,
    wait_until,
)
from tlsmith.codec.enums import CipherSuite, NamedGroup, SignatureScheme
from tlsmith.config import ALL_TLS13_SUITES, CertifiedKey, ServerConfig
from tlsmith.io.blocking import with_keylog

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

TIMEOUT = 10.0
NETNS_TIMEOUT = 40.0
GET = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
SERVER_GROUPS = (NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1,
                 NamedGroup.FFDHE2048)
TLS13_ONLY = "NORMAL:-VERS-ALL:+VERS-TLS1.3"

# GnuTLS's names, as in its priority strings and its "Description" line
# "(TLS1.3-X.509)-(ECDHE-X25519)-(ECDSA-SECP256R1-SHA256)-(AES-128-GCM)".
GNUTLS_GROUP = {
    NamedGroup.X25519: "X25519",
    NamedGroup.SECP256R1: "SECP256R1",
    NamedGroup.SECP384R1: "SECP384R1",
    NamedGroup.FFDHE2048: "FFDHE2048",
}
GNUTLS_KX = {
    NamedGroup.X25519: "ECDHE-X25519",
    NamedGroup.SECP256R1: "ECDHE-SECP256R1",
    NamedGroup.SECP384R1: "ECDHE-SECP384R1",
    NamedGroup.FFDHE2048: "DHE-FFDHE2048",
}
GNUTLS_CIPHER = {
    CipherSuite.TLS_AES_128_GCM_SHA256: "AES-128-GCM",
    CipherSuite.TLS_AES_256_GCM_SHA384: "AES-256-GCM",
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256: "CHACHA20-POLY1305",
    CipherSuite.TLS_AES_128_CCM_SHA256: "AES-128-CCM",
}
GNUTLS_SIG = {
    SignatureScheme.RSA_PSS_RSAE_SHA256: "RSA-PSS-RSAE-SHA256",
    SignatureScheme.RSA_PSS_RSAE_SHA384: "RSA-PSS-RSAE-SHA384",
    SignatureScheme.RSA_PSS_RSAE_SHA512: "RSA-PSS-RSAE-SHA512",
    SignatureScheme.ECDSA_SECP256R1_SHA256: "ECDSA-SECP256R1-SHA256",
    SignatureScheme.ED25519: "EdDSA-Ed25519",
}
SCHEMES = {
    "rsa-2048": {SignatureScheme.RSA_PSS_RSAE_SHA256, SignatureScheme.RSA_PSS_RSAE_SHA384,
                 SignatureScheme.RSA_PSS_RSAE_SHA512},
    "ecdsa-p256": {SignatureScheme.ECDSA_SECP256R1_SHA256},
    "ed25519": {SignatureScheme.ED25519},
}
KEYLOG_LABELS = ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                 "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET")


def description(group: NamedGroup, scheme: SignatureScheme, suite: CipherSuite) -> str:
    """The line GnuTLS prints for a TLS 1.3 handshake with these parameters."""
    return (f"(TLS1.3-X.509)-({GNUTLS_KX[group]})-({GNUTLS_SIG[scheme]})-"
            f"({GNUTLS_CIPHER[suite]})")


def priority(group: NamedGroup | None = None, suite: CipherSuite | None = None) -> str:
    text = TLS13_ONLY
    if group is not None:
        text += f":-GROUP-ALL:+GROUP-{GNUTLS_GROUP[group]}"
    if suite is not None:
        text += f":-CIPHER-ALL:+{GNUTLS_CIPHER[suite]}"
    return text


def keylog_lines(path: Path, client_random: bytes) -> dict[str, str]:
    """label -> secret (hex) of the NSS key log lines for one client random."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#") and parts[1] == client_random.hex():
            assert parts[0] not in found, f"{parts[0]} logged twice in {path}"
            found[parts[0]] = parts[2]
    return found


# ======================================================== gnutls-cli -> tlsmith server
def server_config(cert: CertFiles, **kw: Any) -> ServerConfig:
    kw.setdefault("cipher_suites", ALL_TLS13_SUITES)
    kw.setdefault("groups", SERVER_GROUPS)
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),), **kw)


class ServerPool:
    """In-process tlsmith servers, one per (certificate, options), reused by the module."""

    def __init__(self, certs: dict[str, CertFiles], stack: ExitStack) -> None:
        self.certs = certs
        self.stack = stack
        self._servers: dict[tuple[object, ...], TlsmithServerHandle] = {}

    def get(self, cert: str, **kw: Any) -> TlsmithServerHandle:
        key = (cert, tuple(sorted(kw.items())))
        if key not in self._servers:
            config = server_config(self.certs[cert], **kw)
            self._servers[key] = self.stack.enter_context(tlsmith_server(config, "http"))
        return self._servers[key]


@pytest.fixture(scope="module")
def servers(certs: dict[str, CertFiles]) -> Iterator[ServerPool]:
    require_peer("gnutls-cli")
    with ExitStack() as stack:
        yield ServerPool(certs, stack)


class CliResult(ProcessResult):
    """gnutls-cli's output, with its ``- Name: value`` lines at hand."""

    def line(self, name: str) -> str:
        match = re.search(rf"^- {re.escape(name)}: (.*)$", self.stdout, re.MULTILINE)
        assert match, f"no '- {name}:' line in:\n{self.text}"
        return match.group(1).strip()


def run_gnutls_cli(port: int, cert: CertFiles, *args: str, stdin: bytes = GET,
                   env: dict[str, str] | None = None, timeout: float = TIMEOUT
                   ) -> CliResult:
    """``gnutls-cli`` to 127.0.0.1:PORT (SNI and name check: localhost) sending ``stdin``.

    Its stdin stays open (a pipe whose write end we hold) until it exits, so it never
    closes before our server's answer has arrived: it exits when the server closes. Killed
    (and the test failed) after ``timeout`` seconds."""
    cmd = [require_peer("gnutls-cli"), "--x509cafile", str(cert.ca_path),
           "--sni-hostname", "localhost", "--verify-hostname", "localhost",
           "-p", str(port), *args, "127.0.0.1"]
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, stdin)
        proc = subprocess.Popen(cmd, stdin=read_end, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        os.close(read_end)
        read_end = -1
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=5)
            raise AssertionError(f"gnutls-cli did not finish within {timeout} s:\n"
                                 f"{out.decode(errors='replace')}"
                                 f"{err.decode(errors='replace')}") from None
    finally:
        if read_end >= 0:
            os.close(read_end)
        os.close(write_end)
    return CliResult(proc.returncode, out.decode("utf-8", "replace"),
                     err.decode("utf-8", "replace"))


def tlsmith_info(result: CliResult) -> dict[str, str]:
    """The handshake as our server's HTTP handler described it in its answer."""
    match = re.search(r"^tlsmith-info (.*)$", result.stdout, re.MULTILINE)
    assert match, f"no answer from the tlsmith server in:\n{result.text}"
    return dict(item.split("=", 1) for item in match.group(1).split())


def server_errors(server: TlsmithServerHandle) -> str:
    with server.lock:
        errors = [f"{s.peer}: {s.error!r}" for s in server.served if s.error is not None]
    return "\ntlsmith server errors:\n" + "\n".join(errors[-5:]) if errors else ""


# Each group, each suite and each certificate at least once (not the full product).
CLIENT_MATRIX = [
    (NamedGroup.X25519, CipherSuite.TLS_AES_128_GCM_SHA256, "rsa-2048"),
    (NamedGroup.X25519, CipherSuite.TLS_CHACHA20_POLY1305_SHA256, "ed25519"),
    (NamedGroup.SECP256R1, CipherSuite.TLS_AES_256_GCM_SHA384, "ecdsa-p256"),
    (NamedGroup.SECP256R1, CipherSuite.TLS_AES_128_CCM_SHA256, "rsa-2048"),
    (NamedGroup.SECP384R1, CipherSuite.TLS_CHACHA20_POLY1305_SHA256, "ecdsa-p256"),
    (NamedGroup.SECP384R1, CipherSuite.TLS_AES_128_GCM_SHA256, "ed25519"),
    (NamedGroup.FFDHE2048, CipherSuite.TLS_AES_256_GCM_SHA384, "ed25519"),
    (NamedGroup.FFDHE2048, CipherSuite.TLS_AES_128_GCM_SHA256, "rsa-2048"),
]


@pytest.mark.parametrize(("group", "suite", "cert_type"), CLIENT_MATRIX,
                         ids=[f"{g.name.lower()}-{s.name}-{c}" for g, s, c in CLIENT_MATRIX])
def test_gnutls_cli_matrix(servers: ServerPool, certs: dict[str, CertFiles],
                           group: NamedGroup, suite: CipherSuite, cert_type: str) -> None:
    cert = certs[cert_type]
    server = servers.get(cert_type)
    before = server.count()
    done = run_gnutls_cli(server.port, cert, "--priority", priority(group, suite))
    assert done.returncode == 0, done.text + server_errors(server)
    assert done.line("Status") == "The certificate is trusted."
    served = server.wait_served(before)
    assert served.error is None, repr(served.error)
    info = served.info
    assert info is not None
    assert info.version_label == "TLSv1.3"
    assert info.cipher_suite == suite
    assert info.group == group
    assert info.signature_scheme in SCHEMES[cert_type]
    assert info.server_name == "localhost"
    assert not info.hello_retry_request
    # GnuTLS saw exactly what our server recorded
    assert done.line("Description") == description(group, info.signature_scheme, suite)
    # and our HTTP handler's answer reached gnutls-cli
    assert "HTTP/1.0 200 OK" in done.stdout
    seen = tlsmith_info(done)
    assert (seen["version"], seen["suite"], seen["group"]) == ("TLSv1.3", suite.name,
                                                              group.name)
    assert served.received.startswith(b"GET / HTTP/1.0\r\n")


def test_gnutls_cli_hello_retry_request(servers: ServerPool,
                                        certs: dict[str, CertFiles]) -> None:
    # gnutls-cli's default TLS 1.3 ClientHello carries shares for x25519 and secp256r1
    # only: a server that takes nothing but secp384r1 must send a HelloRetryRequest.
    cert = certs["ecdsa-p256"]
    server = servers.get("ecdsa-p256", groups=(NamedGroup.SECP384R1,))
    before = server.count()
    done = run_gnutls_cli(server.port, cert, "--priority", TLS13_ONLY)
    assert done.returncode == 0, done.text + server_errors(server)
    served = server.wait_served(before)
    assert served.error is None, repr(served.error)
    assert served.info is not None
    assert served.info.hello_retry_request
    assert served.info.group == NamedGroup.SECP384R1
    assert done.line("Description") == description(
        NamedGroup.SECP384R1, SignatureScheme.ECDSA_SECP256R1_SHA256,
        served.info.cipher_suite)
    assert tlsmith_info(done)["hrr"] == "yes"


@pytest.mark.parametrize(("server_alpn", "client_alpn", "expected"), [
    (("http/1.1",), ("http/1.1",), "http/1.1"),
    (("h2", "http/1.1"), ("http/1.1", "h2"), "h2"),  # our server's preference wins
])
def test_gnutls_cli_alpn(servers: ServerPool, certs: dict[str, CertFiles],
                         server_alpn: tuple[str, ...], client_alpn: tuple[str, ...],
                         expected: str) -> None:
    cert = certs["ed25519"]
    server = servers.get("ed25519", alpn_protocols=server_alpn)
    before = server.count()
    args = [arg for proto in client_alpn for arg in ("--alpn", proto)]
    done = run_gnutls_cli(server.port, cert, "--priority", TLS13_ONLY, *args)
    assert done.returncode == 0, done.text + server_errors(server)
    assert done.line("Application protocol") == expected
    served = server.wait_served(before)
    assert served.info is not None and served.info.alpn == expected
    assert tlsmith_info(done)["alpn"] == expected


def test_gnutls_cli_keylog_matches_tlsmith_server(certs: dict[str, CertFiles],
                                                  tmp_path: Path) -> None:
    """gnutls-cli (SSLKEYLOGFILE) and our server (keylog=) log the same secrets."""
    cert = certs["ecdsa-p256"]
    ours, theirs = tmp_path / "tlsmith-server.keys", tmp_path / "gnutls-cli.keys"
    config = with_keylog(server_config(cert), ours)
    with tlsmith_server(config, "http") as server:
        done = run_gnutls_cli(server.port, cert, "--priority",
                              priority(NamedGroup.X25519,
                                       CipherSuite.TLS_AES_256_GCM_SHA384),
                              env={**os.environ, "SSLKEYLOGFILE": str(theirs)})
        assert done.returncode == 0, done.text + server_errors(server)
        served = server.wait_served(0)
    assert served.info is not None
    ours_lines = keylog_lines(ours, served.info.client_random)
    theirs_lines = keylog_lines(theirs, served.info.client_random)
    for label in KEYLOG_LABELS:
        assert label in ours_lines and label in theirs_lines, (ours_lines, theirs_lines)
        assert ours_lines[label] == theirs_lines[label], label
        assert len(ours_lines[label]) == 96  # SHA-384


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
    client_hellos_sent: int
    serv_log: str
    raw: dict[str, Any]


def run_in_netns(cert: CertFiles, tmp_path: Path, *, serv_priority: str = TLS13_ONLY,
                 serv_alpn: tuple[str, ...] = (), request_client_cert: bool = False,
                 serv_keylog: Path | None = None, mode: str = "api",
                 groups: tuple[NamedGroup, ...] = (),
                 suites: tuple[CipherSuite, ...] = (), alpn: tuple[str, ...] = (),
                 client_keylog: Path | None = None) -> NetnsResult:
    """gnutls-serv --http and one tlsmith client connection, in a new network namespace.

    The script runs in its own session: if it outlives ``NETNS_TIMEOUT`` the whole process
    group (gnutls-serv included) is killed."""
    params = {
        "serv": {"cert": str(cert.chain_path), "key": str(cert.key_path),
                 "priority": serv_priority, "alpn": list(serv_alpn),
                 "request_client_cert": request_client_cert,
                 "keylog": str(serv_keylog) if serv_keylog else None,
                 "log": str(tmp_path / f"gnutls-serv-{time.monotonic_ns()}.log")},
        "client": {"mode": mode, "ca": str(cert.ca_path), "groups": [g.name for g in groups],
                   "suites": [s.name for s in suites], "alpn": list(alpn),
                   "keylog": str(client_keylog) if client_keylog else None},
    }
    cmd = [require_peer("unshare"), "-n", sys.executable, str(Path(__file__).resolve()),
           "--netns-client", json.dumps(params)]
    done = run_process_group(cmd, timeout=NETNS_TIMEOUT, what="the namespace script")
    text = done.stdout
    assert done.returncode == 0 and text.strip(), (
        f"the namespace script failed ({done.returncode}):\n{text}{done.stderr}")
    raw = json.loads(text.strip().splitlines()[-1])
    return NetnsResult(raw["ok"], raw.get("info") or {}, raw.get("reply", ""),
                       raw.get("error", ""), raw.get("client_hellos_sent", 0),
                       raw.get("serv_log", ""), raw)


def check_ok(result: NetnsResult) -> None:
    assert result.ok, (f"tlsmith client failed: {result.error}\n"
                       f"gnutls-serv:\n{result.serv_log[-3000:]}")
    assert result.info["version"] == "TLSv1.3"
    assert result.info["certificate_verified"] is True
    assert result.info["server_name"] == "localhost"
    assert result.reply.startswith("HTTP/1.0 200 OK"), result.reply[:500]
    assert "This is <a href=\"http://www.gnu.org/software/gnutls\">GnuTLS</a>" in result.reply


def gnutls_serv_description(result: NetnsResult) -> str:
    """gnutls-serv --http's page shows the handshake as GnuTLS saw it."""
    match = re.search(r"<TD>Description:</TD><TD>([^<]*)</TD>", result.reply)
    assert match, result.reply
    return match.group(1)


def our_description(result: NetnsResult) -> str:
    info = result.info
    return description(NamedGroup[info["group"]], SignatureScheme[info["signature_scheme"]],
                       CipherSuite[info["cipher_suite"]])


SERVER_CASES = [
    # (id, cert, gnutls-serv priority, client suites, expected group, expected hrr)
    ("x25519", "ecdsa-p256", priority(NamedGroup.X25519), (), NamedGroup.X25519, False),
    # our client sends an x25519 share only: gnutls-serv asks for secp384r1
    ("secp384r1-hrr", "ecdsa-p256", priority(NamedGroup.SECP384R1), (),
     NamedGroup.SECP384R1, True),
    ("chacha20", "rsa-2048", priority(NamedGroup.X25519,
                                      CipherSuite.TLS_CHACHA20_POLY1305_SHA256),
     (CipherSuite.TLS_CHACHA20_POLY1305_SHA256,), NamedGroup.X25519, False),
    ("ed25519-aes256", "ed25519", priority(NamedGroup.X25519,
                                           CipherSuite.TLS_AES_256_GCM_SHA384), (),
     NamedGroup.X25519, False),
    ("ffdhe2048-hrr", "rsa-2048", priority(NamedGroup.FFDHE2048), (),
     NamedGroup.FFDHE2048, True),
]


@pytest.mark.parametrize(("cert_type", "serv_priority", "suites", "group", "hrr"),
                         [case[1:] for case in SERVER_CASES],
                         ids=[case[0] for case in SERVER_CASES])
def test_tlsmith_client_to_gnutls_serv(netns: None, certs: dict[str, CertFiles],
                                       tmp_path: Path, cert_type: str, serv_priority: str,
                                       suites: tuple[CipherSuite, ...], group: NamedGroup,
                                       hrr: bool) -> None:
    result = run_in_netns(certs[cert_type], tmp_path, serv_priority=serv_priority,
                          suites=suites)
    check_ok(result)
    assert result.info["group"] == group.name
    assert result.info["hello_retry_request"] is hrr
    assert result.client_hellos_sent == (2 if hrr else 1)
    assert SignatureScheme[result.info["signature_scheme"]] in SCHEMES[cert_type]
    if suites:
        assert result.info["cipher_suite"] == suites[0].name
    assert gnutls_serv_description(result) == our_description(result)


def test_tlsmith_client_alpn_with_gnutls_serv(netns: None, certs: dict[str, CertFiles],
                                              tmp_path: Path) -> None:
    result = run_in_netns(certs["ed25519"], tmp_path, serv_alpn=("http/1.1",),
                          alpn=("h2", "http/1.1"))
    check_ok(result)
    assert result.info["alpn"] == "http/1.1"


def test_tlsmith_connect_cli_json_with_gnutls_serv(netns: None, certs: dict[str, CertFiles],
                                                   tmp_path: Path) -> None:
    """``tlsmith connect --json --http`` (the CLI, in a subprocess) in the namespace."""
    result = run_in_netns(certs["ecdsa-p256"], tmp_path, mode="cli",
                          serv_priority=priority(NamedGroup.SECP384R1),
                          serv_alpn=("http/1.1",), alpn=("http/1.1",),
                          groups=(NamedGroup.X25519, NamedGroup.SECP384R1))
    check_ok(result)
    assert result.info["group"] == "SECP384R1"
    assert result.info["hello_retry_request"] is True
    assert result.info["alpn"] == "http/1.1"
    assert result.client_hellos_sent == 2
    assert gnutls_serv_description(result) == our_description(result)


def test_gnutls_serv_requesting_a_client_certificate(netns: None,
                                                     certs: dict[str, CertFiles],
                                                     tmp_path: Path) -> None:
    """gnutls-serv's default: an optional CertificateRequest that carries an *empty*
    status_request extension (RFC 8446 §4.4.2.1: "A server MAY request that a client
    present an OCSP response with its certificate by sending an empty status_request
    extension in its CertificateRequest message"). Without a certificate of its own our
    client answers with an empty Certificate and the handshake completes."""
    result = run_in_netns(certs["ecdsa-p256"], tmp_path, request_client_cert=True)
    check_ok(result)


def test_keylog_matches_gnutls_serv(netns: None, certs: dict[str, CertFiles],
                                    tmp_path: Path) -> None:
    """Our client (keylog=) and gnutls-serv (SSLKEYLOGFILE) log identical secrets for
    one connection: two independent key schedules agree."""
    ours, theirs = tmp_path / "tlsmith-client.keys", tmp_path / "gnutls-serv.keys"
    result = run_in_netns(certs["rsa-2048"], tmp_path, serv_keylog=theirs,
                          client_keylog=ours,
                          serv_priority=priority(NamedGroup.X25519,
                                                 CipherSuite.TLS_AES_128_GCM_SHA256))
    check_ok(result)
    client_random = bytes.fromhex(result.info["client_random"])
    ours_lines = keylog_lines(ours, client_random)
    theirs_lines = keylog_lines(theirs, client_random)
    for label in KEYLOG_LABELS:
        assert label in ours_lines and label in theirs_lines, (ours_lines, theirs_lines)
        assert ours_lines[label] == theirs_lines[label], label
        assert len(ours_lines[label]) == 64  # SHA-256


# =============================================== the script run inside the namespace
def _kill_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the script dies (PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _start_gnutls_serv(serv: dict[str, Any], port: int) -> subprocess.Popen[bytes]:
    cmd = ["gnutls-serv", "--http", "--x509certfile", serv["cert"], "--x509keyfile",
           serv["key"], "-p", str(port), "--priority", serv["priority"]]
    if not serv["request_client_cert"]:
        cmd.append("--disable-client-cert")
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


def _client_api(client: dict[str, Any], port: int) -> dict[str, Any]:
    from peers import read_until_closed
    from tlsmith.config import ClientConfig
    from tlsmith.io.blocking import connect
    from tlsmith.observe import MessageTrace, TraceRecord
    from tlsmith.x509.verify import TrustStore

    sent: list[str] = []
    lock = threading.Lock()

    def observer(record: TraceRecord) -> None:
        if isinstance(record, MessageTrace) and record.direction == "sent":
            with lock:
                sent.append(record.name)

    kw: dict[str, Any] = {}
    if client["groups"]:
        kw["groups"] = tuple(NamedGroup[g] for g in client["groups"])
        kw["key_share_groups"] = kw["groups"][:1]
    if client["suites"]:
        kw["cipher_suites"] = tuple(CipherSuite[s] for s in client["suites"])
    config = ClientConfig(server_name="localhost",
                          trust=TrustStore.from_pem_file(client["ca"]),
                          alpn_protocols=tuple(client["alpn"]), observer=observer, **kw)
    tls = connect("127.0.0.1", port, config, timeout=TIMEOUT, keylog=client["keylog"])
    try:
        info = tls.info
        tls.sendall(GET)
        reply = read_until_closed(tls).data
    finally:
        tls.close()
    return {
        "ok": True,
        "info": {
            "version": info.version_label,
            "cipher_suite": info.cipher_suite.name,
            "group": info.group.name if info.group else None,
            "signature_scheme": info.signature_scheme.name if info.signature_scheme
            else None,
            "alpn": info.alpn,
            "server_name": info.server_name,
            "hello_retry_request": info.hello_retry_request,
            "certificate_verified": info.certificate_verified,
            "client_random": info.client_random.hex(),
        },
        "reply": reply.decode("utf-8", "replace"),
        "client_hellos_sent": sent.count("ClientHello"),
    }


def _client_cli(client: dict[str, Any], port: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tlsmith.cli.main", "connect", f"127.0.0.1:{port}",
           "--servername", "localhost", "--cafile", client["ca"], "--http", "--json",
           "--timeout", str(TIMEOUT)]
    for group in client["groups"]:
        cmd += ["--group", group.lower()]
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
    trace = out.get("trace", [])
    hellos = sum(1 for r in trace if r.get("kind") == "message"
                 and r.get("direction") == "sent" and r.get("name") == "ClientHello")
    if not out.get("ok"):
        return {"ok": False, "error": f"{out.get('error')}: {out.get('explanation')}",
                "client_hellos_sent": hellos}
    info = {key: out[key] for key in ("version", "cipher_suite", "alpn", "server_name",
                                      "hello_retry_request", "certificate_verified")}
    info["group"] = out["group"].upper() if out["group"] else None
    info["signature_scheme"] = (out["signature_scheme"].upper()
                                if out["signature_scheme"] else None)
    return {"ok": done.returncode == 0, "info": info, "reply": out.get("reply", ""),
            "client_hellos_sent": hellos}


def netns_main(params: dict[str, Any]) -> dict[str, Any]:
    """Inside ``unshare -n``: lo up, gnutls-serv, one tlsmith client, gnutls-serv killed."""
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
    result["serv_log"] = Path(serv["log"]).read_text(errors="replace")[-4000:]
    return result


if __name__ == "__main__" and sys.argv[1:2] == ["--netns-client"]:
    print(json.dumps(netns_main(json.loads(sys.argv[2]))), flush=True)
