"""Headless Chromium loads the "how's my TLS" page from ``tlsmith serve`` (the CLI, as a
subprocess): the page shows Chromium's own ClientHello -- its RFC 8701 GREASE values, its
X25519MLKEM768 key share -- and its JA4, which must be the JA4 of the ClientHello bytes
the server recorded (``/json/<id>`` carries them). A screenshot is kept in
tests/artifacts/ (git-ignored), and the page's link to the byte-level explainer of the
same connection is followed by Chromium too.

Chromium trusts the served certificate by its public key only
(``--ignore-certificate-errors-spki-list``), runs with a throwaway profile and HOME, and
is killed after ``CHROMIUM_TIMEOUT`` (see test_interop_chromium.py).
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.client
import json
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from helpers import CertFiles
from peers import PeerProcess, environ_without, start_tlsmith_serve_cli
from test_interop_chromium import MLKEM_SINCE, chromium_major, run_chromium
from tlsmith.codec.enums import is_grease
from tlsmith.fingerprint import ja4

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

TIMEOUT = 10.0
ARTIFACTS = Path(__file__).parent / "artifacts"
MLKEM_SHARE_LEN = 1184 + 32


@pytest.fixture(scope="module")
def chromium() -> str:
    from helpers import require_peer

    return require_peer("chromium")


@pytest.fixture
def cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


@pytest.fixture
def serve(cert: CertFiles, tmp_path: Path) -> Iterator[PeerProcess]:
    proc = start_tlsmith_serve_cli(cert, "--alpn", "http/1.1", log_dir=tmp_path,
                                   env={**environ_without("SSLKEYLOGFILE"),
                                        "COLUMNS": "200"})
    yield proc
    proc.stop()


def spki_hash(cert: CertFiles) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the leaf, as Chromium's
    --ignore-certificate-errors-spki-list wants it."""
    leaf = x509.load_pem_x509_certificates(cert.chain_path.read_bytes())[0]
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def fetch_json(port: int, cert: CertFiles, path: str) -> Any:
    """GET ``path`` with Python's ssl (a second, independent client)."""
    context = ssl.create_default_context(cafile=str(cert.ca_path))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, response.read()[:500]
        return json.loads(response.read())
    finally:
        conn.close()


def section(dom: str, cls: str) -> str:
    match = re.search(rf'<ol class="codes {cls}">(.*?)</ol>', dom, re.S)
    assert match, f"no {cls} list in the page:\n{dom[:3000]}"
    return match.group(1)


def grease_values(fragment: str) -> list[str]:
    return re.findall(r'class="grease" data-value="(0x[0-9a-f]{4})"', fragment)


def test_chromium_sees_its_own_client_hello(chromium: str, serve: PeerProcess,
                                            cert: CertFiles, tmp_path: Path) -> None:
    trust = f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"
    url = f"https://127.0.0.1:{serve.port}/"
    run = run_chromium(chromium, url, tmp_path, trust)
    assert run.returncode == 0, run.stderr[-3000:]
    dom = run.dom
    assert "<h1>tlsmith: your TLS handshake</h1>" in dom, dom[:3000]
    rows = {html.unescape(k): html.unescape(v)
            for k, v in re.findall(r"<th>([^<]*)</th><td>([^<]*)</td>", dom)}
    assert rows["Protocol"] == "TLSv1.3"
    assert rows["ALPN"] == "http/1.1"  # Chromium offers h2 too: we never agree to it

    # GREASE (RFC 8701) everywhere BoringSSL puts it: suites, versions, groups, shares,
    # extensions -- shown as GREASE with their values
    suites_grease = grease_values(section(dom, "suites"))
    assert len(suites_grease) == 1 and is_grease(int(suites_grease[0], 16))
    assert grease_values(section(dom, "versions"))
    assert grease_values(section(dom, "groups"))
    extensions = re.search(r'<table class="extensions">(.*?)</table>', dom, re.S)
    assert extensions and len(grease_values(extensions.group(1))) == 2
    shares = dict(re.findall(r'class="key-share" data-group="([^"]+)" data-length="(\d+)"',
                             dom))
    assert "GREASE" in shares, shares
    if chromium_major(chromium) >= MLKEM_SINCE:
        assert shares["X25519MLKEM768"] == str(MLKEM_SHARE_LEN), shares
        assert rows["Key exchange group"] == "x25519mlkem768"

    # what was chosen and why, the ladder, and the certificate Chromium was shown
    assert re.search(r"<td>ALPN</td><td><code>http/1.1</code></td><td>server preference",
                     dom), dom[:3000]
    assert "✔ handshake complete" in dom and "client Finished: verify_data matches" in dom
    assert re.search(r"<th>names \(SAN\)</th><td><code>[^<]*IP:127\.0\.0\.1", dom)

    # Its JA4 is the JA4 of the ClientHello bytes the server kept for this connection.
    shown = re.search(r'<code class="ja4" id="ja4">([^<]+)</code>', dom)
    assert shown, dom[:3000]
    link = re.search(r'<a id="explain" href="/explain/([0-9a-f]{32})"', dom)
    assert link, dom[:3000]
    facts = fetch_json(serve.port, cert, f"/json/{link.group(1)}")
    raw = bytes.fromhex(facts["client_hello"]["raw"])
    assert shown.group(1) == facts["ja4"] == ja4(raw)
    # "i": no SNI for an IP address (JA4 spec: d = domain, i = IP)
    assert re.fullmatch(r"t13i\d{4}h2_[0-9a-f]{12}_[0-9a-f]{12}", shown.group(1))
    assert [s["value"] for s in facts["client_hello"]["cipher_suites"]
            if s["grease"]] == suites_grease
    log = serve.output()
    if "ja4=" in log:  # the log line names the JA4 of each client
        assert f"ja4={shown.group(1)}" in log, log
    assert "failed:" not in log, log

    # The explainer of that very connection, followed on a new one, in Chromium too.
    explained = run_chromium(chromium, f"https://127.0.0.1:{serve.port}/explain/"
                             f"{link.group(1)}", tmp_path, trust)
    assert explained.returncode == 0, explained.stderr[-3000:]
    assert "ClientHello" in explained.dom and "ServerHello" in explained.dom

    # A screenshot of the page, kept as the test's artefact.
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "serve-page-chromium.png"
    shot.unlink(missing_ok=True)
    taken = run_chromium(chromium, url, tmp_path, trust, f"--screenshot={shot}",
                         "--window-size=1280,2000")
    assert taken.returncode == 0, taken.stderr[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
