"""The byte-level explainer against real peers: ``tlsmith connect --explain`` to
``openssl s_server`` (TLS 1.3; TLS 1.2 with ECDHE, DHE, RSA key transport, CBC with
encrypt-then-MAC and MAC-then-encrypt) writes a page with every record of the
connection, each protected one decrypted, and every recomputed key equal to the one
the connection used; headless Chromium renders the page (offline, from a file) and its
DOM holds every record and the derivation's values. A screenshot is kept in
tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import pytest

import trace_handshakes
from helpers import CertFiles, require_peer
from peers import environ_without, run_process_group, start_s_server
from test_interop_chromium import run_chromium
from tlsmith.codec.enums import CipherSuite, ProtocolVersion
from tlsmith.config import ClientConfig
from tlsmith.connection import TLSConnection
from tlsmith.explainer import render_explainer
from tlsmith.io.blocking import TLSSocket
from tlsmith.observe import RecordTrace, SecretTrace
from tlsmith.trace import TraceCollector
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

TIMEOUT = 20.0
ARTIFACTS = Path(__file__).parent / "artifacts"
#: "HTTP/1.0 200 ok": the start of every ``openssl s_server -www`` reply.
WWW_REPLY = b"HTTP/1.0 200 ok".hex()

_SECTION = re.compile(r'<section class="record from-(client|server)" id="record-(\d+)" '
                      r'data-index="\d+" data-sender="\w+" data-protected="(true|false)">'
                      r'\s*<header>.*?<strong>([^<]*)</strong>.*?'
                      r'<span class="tag">(\d+) bytes</span></header>', re.S)


def check_page(page: str, wire_lengths: list[int] | None = None) -> list[tuple[str, ...]]:
    """The page's records (sender, index, protected, title, length), after checking that
    every protected one is shown decrypted and every recomputed value matched."""
    sections = _SECTION.findall(page)
    assert sections, "no record on the page"
    if wire_lengths is not None:
        assert [int(s[4]) for s in sections] == wire_lengths
    protected = sum(1 for s in sections if s[2] == "true")
    assert protected and page.count('class="view decrypted"') == protected
    assert 'class="problems"' not in page, re.findall(r'<ul class="problems">.*?</ul>',
                                                       page, re.S)
    assert 'data-check="false"' not in page
    assert page.count('data-check="true"') >= 7
    assert 'id="secrets-warning"' in page
    return sections


def connect_explain(port: int, ca: Path, out: Path, *args: str) -> dict[str, object]:
    """``tlsmith connect --http --json --explain OUT``; its JSON (with the trace)."""
    done = run_process_group(
        [sys.executable, "-m", "tlsmith.cli.main", "connect", f"localhost:{port}",
         "--cafile", str(ca), "--http", "--json", "--explain", str(out), *args],
        timeout=TIMEOUT, what="tlsmith connect",
        env={**environ_without("SSLKEYLOGFILE"), "COLUMNS": "200"})
    assert done.returncode == 0, done.text[-3000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


OPENSSL_CASES = {
    "tls13": ((), ()),
    "tls12-ecdhe-gcm": (("-tls1_2",), ("--tls1.2",)),
    "tls12-dhe": (("-tls1_2",), ("--tls1.2", "--cipher",
                                 "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384")),
    "tls12-rsa-cbc-etm": (("-tls1_2",), ("--tls1.2", "--cipher",
                                         "TLS_RSA_WITH_AES_128_CBC_SHA256")),
    "tls12-chacha": (("-tls1_2",), ("--tls1.2", "--cipher",
                                    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")),
}


@pytest.mark.parametrize("case", sorted(OPENSSL_CASES))
def test_connect_explain_openssl_server(certs: dict[str, CertFiles], tmp_path: Path,
                                        case: str) -> None:
    server_args, client_args = OPENSSL_CASES[case]
    cert = certs["rsa-2048"]
    out = tmp_path / "explained.html"
    with start_s_server(cert, "-www", *server_args, log_dir=tmp_path,
                        tls13_only=case == "tls13") as server:
        result = connect_explain(server.port, cert.ca_path, out, *client_args)
    trace = result["trace"]
    assert isinstance(trace, list)
    lengths = [r["length"] for r in trace if r["kind"] == "record"]
    page = out.read_text(encoding="utf-8")
    sections = check_page(page, lengths)
    titles = [s[3] for s in sections]
    assert titles[0] == "ClientHello" and titles[1].startswith("ServerHello")
    assert any(t.startswith("application data") for t in titles)
    assert WWW_REPLY in page  # the server's reply, decrypted
    assert (out.stat().st_mode & 0o777) == 0o600  # it holds the secrets
    version = "TLS 1.3" if case == "tls13" else "TLS 1.2"
    assert f"connection ({version})" in page


def test_explain_mac_then_encrypt_openssl_server(certs: dict[str, CertFiles],
                                                 tmp_path: Path) -> None:
    """CBC without encrypt_then_mac (RFC 5246 §6.2.3.2): the record opened by hand shows
    content || MAC || padding, and the MAC check passes."""
    cert = certs["rsa-2048"]
    collector = TraceCollector()
    config = ClientConfig(server_name="localhost", trust=TrustStore.from_pem_file(cert.ca_path),
                          max_version=ProtocolVersion.TLS12,
                          cipher_suites=(CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,),
                          allow_mac_then_encrypt=True, session_tickets=False,
                          observer=collector)
    with start_s_server(cert, "-www", "-tls1_2", "-no_etm", log_dir=tmp_path,
                        tls13_only=False) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        tls = TLSSocket(sock, TLSConnection(config))
        try:
            tls.do_handshake(timeout=TIMEOUT)
            tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := tls.recv():
                reply += chunk
        finally:
            sock.close()
    assert reply.startswith(b"HTTP/1.0 200 ok")
    page = render_explainer(collector.records, local="client")
    check_page(page)
    assert "MAC-then-encrypt: content || MAC || padding || padding_length" in page
    assert WWW_REPLY in page


def test_explainer_page_renders_in_chromium(tmp_path: Path) -> None:
    """Chromium (offline, file://) renders the page of a deterministic TLS 1.3 handshake:
    the DOM holds every record and the recomputed secrets; a screenshot is kept."""
    chromium = require_peer("chromium")
    records = trace_handshakes.tls13().records
    page_path = tmp_path / "explained.html"
    page_path.write_text(render_explainer(records, local="client"), encoding="utf-8")
    url = page_path.as_uri()
    run = run_chromium(chromium, url, tmp_path, "--disable-remote-fonts",
                       "--host-resolver-rules=MAP * ~NOTFOUND")
    assert run.returncode == 0, run.stderr[-3000:]
    dom = run.dom
    n = sum(isinstance(r, RecordTrace) for r in records)
    assert len(re.findall(r'<section class="record from-', dom)) == n
    for i in range(n):
        assert f'id="record-{i}"' in dom
    for r in records:
        if isinstance(r, SecretTrace):
            assert r.value.hex() in dom, r.name
    assert dom.count('data-check="true"') >= 10 and 'data-check="false"' not in dom
    # The script ran: hovering works on spans it found (it leaves the DOM as it was).
    assert "This connection, byte by byte" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "explainer-chromium.png"
    shot.unlink(missing_ok=True)
    taken = run_chromium(chromium, url, tmp_path, f"--screenshot={shot}",
                         "--window-size=1280,2400")
    assert taken.returncode == 0, taken.stderr[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
