"""``tlsmith serve``'s "how's my TLS" page (cli/serve_page.py): the facts gathered from a
connection's trace, their HTML / text / JSON renderings, the request routing, and the
``--alpn`` rule -- in memory first, then the real ``tlsmith serve`` against curl.

The browser side (headless Chromium's GREASE and X25519MLKEM768) is in
test_interop_chromium_page.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers import CertFiles, require_peer
from pair import configs, pump
from peers import PeerProcess, start_tlsmith_serve_cli
from tlsmith.cli.main import main
from tlsmith.cli.serve_page import (
    SCHEMA,
    ConnectionTraces,
    Request,
    answer,
    choose_format,
    describe_client_hello,
    gather,
    render_html,
    render_json,
    render_text,
    unspoken_alpn,
)
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CipherSuite,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.messages import ClientHello
from tlsmith.config import ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.fingerprint import ja4
from tlsmith.observe import MessageTrace, SecretTrace

TIMEOUT = 10.0
MLKEM_SHARE_LEN = 1184 + 32  # ML-KEM-768 encapsulation key + X25519 (draft-kwiatkowski)


@pytest.fixture
def ecdsa(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]


def served(cert: CertFiles, **kw: Any) -> tuple[ConnectionTraces, ServerConfig, Any]:
    """An in-memory handshake whose server side records into a ConnectionTraces; returns
    (traces, server config, the captured connection)."""
    client_cfg, server_cfg = configs(cert, **kw)
    traces = ConnectionTraces(server_cfg)
    client = TLSConnection(client_cfg)
    server = TLSConnection(replace(server_cfg, observer=traces))
    pump(client, server)
    assert server.info is not None and client.info is not None
    return traces, server_cfg, traces.capture(server.info, ("127.0.0.1", 50000))


def secret_values(captured: Any) -> list[str]:
    return [r.value.hex() for r in captured.records if isinstance(r, SecretTrace)]


def assert_no_secrets(captured: Any, *texts: str) -> None:
    values = secret_values(captured)
    assert values, "the trace has secrets to leak"
    for text in texts:
        for value in values:
            assert value not in text


# ----------------------------------------------------------------------- facts
def test_page_tls13_shows_the_hello_choices_ladder_and_certificate(ecdsa: CertFiles) -> None:
    _, cfg, captured = served(
        ecdsa, key_share_groups=(NamedGroup.X25519MLKEM768, NamedGroup.X25519),
        alpn_protocols=("h2", "http/1.1"), server={"alpn_protocols": ("http/1.1",)})
    facts = gather(captured, cfg)
    assert facts["schema"] == SCHEMA and facts["id"] == captured.id
    assert facts["summary"]["Protocol"] == "TLSv1.3"
    assert facts["summary"]["Key exchange group"] == "x25519mlkem768"
    assert facts["summary"]["ALPN"] == "http/1.1"
    ch = facts["client_hello"]
    hello = next(r for r in captured.records if isinstance(r, MessageTrace)
                 and r.name == "ClientHello")
    assert bytes.fromhex(ch["raw"]) == hello.raw and ch["length"] == len(hello.raw)
    assert facts["ja4"] == ja4(hello.raw) and facts["ja4"].startswith("t13d")
    assert facts["ja3"] and facts["ja4s"] and facts["ja3s"]
    assert ch["random"] == bytes(hello.message.random).hex()
    assert [s["name"] for s in ch["key_shares"]] == ["X25519MLKEM768", "X25519"]
    assert ch["key_shares"][0]["length"] == MLKEM_SHARE_LEN
    assert ch["alpn"] == ["h2", "http/1.1"] and ch["server_name"] == "localhost"
    assert [v["name"] for v in ch["supported_versions"]] == ["TLSv1.3", "TLSv1.2"]
    assert ch["cipher_suites"][0] == {"name": "TLS_AES_128_GCM_SHA256", "value": "0x1301",
                                      "grease": False}
    # extensions in the order sent, by their RFC names
    assert [e["name"] for e in ch["extensions"]] == [
        ext.ext_name(e.extension_type) for e in hello.message.extensions]
    assert "key_share" in [e["name"] for e in ch["extensions"]]
    why = {w["what"]: w for w in facts["why"]}
    assert why["cipher suite"]["rule"].startswith("server preference")
    assert "key share" in why["key exchange group"]["rule"]
    assert why["ALPN"]["chosen"] == "http/1.1" and "never agrees to h2" in why["ALPN"]["rule"]
    assert "localhost" in why["certificate"]["rule"]
    assert why["signature scheme"]["chosen"] == "ECDSA_SECP256R1_SHA256"
    steps = facts["ladder"]
    names = [s.get("name") for s in steps if s["kind"] == "message"]
    assert names[:2] == ["ClientHello", "ServerHello"] and "Finished" in names
    assert any(s["kind"] == "complete" for s in steps)
    assert all(s["ok"] for s in steps if s["kind"] == "check")
    assert any(s["kind"] == "check" and "Finished" in s["summary"] for s in steps)
    assert facts["certificates"][0]["subject_alt_names"][:1] == ["DNS:localhost"]
    assert facts["certificates"][0]["public_key"].startswith("ECDSA")
    assert facts["links"]["explain"] == f"/explain/{captured.id}"

    page, text, as_json = render_html(facts), render_text(facts), render_json(facts)
    assert json.loads(as_json) == facts
    assert "<h1>tlsmith: your TLS handshake</h1>" in page
    assert "<th>Protocol</th><td>TLSv1.3</td>" in page  # the table clients relied on
    assert f'data-group="X25519MLKEM768" data-length="{MLKEM_SHARE_LEN}"' in page
    assert f'id="ja4">{facts["ja4"]}<' in page
    assert f'href="/explain/{captured.id}"' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "X25519MLKEM768 1216B" in text and facts["ja4"] in text
    assert_no_secrets(captured, page, text, as_json)


def test_page_tls12_ecdhe(ecdsa: CertFiles) -> None:
    _, cfg, captured = served(ecdsa, max_version=ProtocolVersion.TLS12)
    facts = gather(captured, cfg)
    assert facts["summary"]["Protocol"] == "TLSv1.2"
    assert facts["summary"]["Key exchange (TLS 1.2)"] == "ECDHE"
    assert facts["ja4"].startswith("t12d")
    why = {w["what"]: w for w in facts["why"]}
    assert "TLS 1.2 suites" in why["cipher suite"]["rule"]
    assert "curves" in why["key exchange group"]["rule"]
    assert "without --alpn" in why["ALPN"]["rule"]
    names = [s.get("name") for s in facts["ladder"] if s["kind"] == "message"]
    assert "ServerKeyExchange" in names and "ChangeCipherSpec" in names
    assert_no_secrets(captured, render_html(facts), render_text(facts), render_json(facts))


def test_page_tls12_rsa_key_transport(certs: dict[str, CertFiles]) -> None:
    rsa_kx = (CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,)
    _, cfg, captured = served(certs["rsa-2048"], max_version=ProtocolVersion.TLS12,
                              cipher_suites=rsa_kx,
                              server={"cipher_suites": rsa_kx, "allow_rsa_key_exchange": True})
    facts = gather(captured, cfg)
    assert facts["summary"]["Key exchange (TLS 1.2)"] == "RSA"
    why = {w["what"]: w for w in facts["why"]}
    assert why["key exchange group"]["chosen"] == "none"
    assert "no forward secrecy" in why["key exchange group"]["rule"]
    assert why["signature scheme"]["rule"] == "none: RSA key transport signs nothing"
    assert facts["certificates"][0]["public_key"].startswith("RSA")
    names = [s.get("name") for s in facts["ladder"] if s["kind"] == "message"]
    assert "ServerKeyExchange" not in names and "ClientKeyExchange" in names
    assert_no_secrets(captured, render_html(facts), render_text(facts), render_json(facts))


def test_page_after_a_hello_retry_request(ecdsa: CertFiles) -> None:
    _, cfg, captured = served(ecdsa, server={"groups": (NamedGroup.SECP384R1,)})
    facts = gather(captured, cfg)
    assert facts["summary"]["HelloRetryRequest"] == "yes"
    assert "HelloRetryRequest" in facts["why"][2]["rule"]
    assert [s["name"] for s in facts["client_hello"]["key_shares"]] == ["X25519"]
    retry = facts["client_hello_after_retry"]
    assert [s["name"] for s in retry["key_shares"]] == ["SECP384R1"]
    assert "HelloRetryRequest" in [s.get("name") for s in facts["ladder"]]
    assert "after the HelloRetryRequest" in render_html(facts)


def test_client_hello_grease_and_unknown_values_are_named() -> None:
    """RFC 8701 GREASE code points and an unknown extension, as a browser sends them."""
    hello = ClientHello(
        legacy_version=ProtocolVersion.TLS12, random=bytes(range(32)),
        legacy_session_id=b"\x11" * 32,
        cipher_suites=(CipherSuite(0x3A3A), CipherSuite.TLS_AES_128_GCM_SHA256),
        legacy_compression_methods=(0,),
        extensions=(
            ext.UnknownExtension(ExtensionType(0x0A0A), b""),
            ext.SupportedVersionsClientHello((ProtocolVersion(0x7A7A),
                                              ProtocolVersion.TLS13)),
            ext.SupportedGroups((NamedGroup(0x2A2A), NamedGroup.X25519MLKEM768)),
            ext.KeyShareClientHello((ext.KeyShareEntry(NamedGroup(0x2A2A), b"\x00"),
                                     ext.KeyShareEntry(NamedGroup.X25519MLKEM768,
                                                       b"\x01" * MLKEM_SHARE_LEN))),
            ext.SignatureAlgorithms((SignatureScheme.ECDSA_SECP256R1_SHA256,)),
            ext.UnknownExtension(ExtensionType(0x7E57), b"\x00\x03\x02h2"),
            ext.UnknownExtension(ExtensionType(0xFAFA), b"\x00"),
        ))
    raw = hello.serialize()
    ch = describe_client_hello(hello, raw)
    assert ch["cipher_suites"][0] == {"name": "GREASE", "value": "0x3a3a", "grease": True}
    assert ch["supported_versions"][0]["grease"]
    assert ch["supported_groups"][1]["name"] == "X25519MLKEM768"
    assert ch["supported_groups"][1]["value"] == "0x11ec"
    assert ch["key_shares"] == [
        {"name": "GREASE", "value": "0x2a2a", "grease": True, "length": 1},
        {"name": "X25519MLKEM768", "value": "0x11ec", "grease": False,
         "length": MLKEM_SHARE_LEN}]
    exts = ch["extensions"]
    assert [e["name"] for e in exts] == [
        "GREASE", "supported_versions", "supported_groups", "key_share",
        "signature_algorithms", "unknown 0x7e57", "GREASE"]
    assert exts[5]["hex"] == "00030268" + "32" and exts[5]["length"] == 5
    assert exts[6]["value"] == "0xfafa" and exts[6]["hex"] == "00"
    assert "hex" not in exts[1]
    page = render_html({"schema": SCHEMA, "id": "x", "summary": {}, "why": [],
                        "client_hello": ch, "client_hello_after_retry": None,
                        "ladder": [], "certificates": [], "ja4": ja4(raw), "ja3": None,
                        "ja4s": None, "ja3s": None,
                        "links": {"explain": "/explain/x", "json": "/json/x"}})
    assert page.count('class="grease"') == 6  # suite, version, group, share, 2 exts
    assert 'data-group="X25519MLKEM768" data-length="1216"' in page
    assert "unknown 0x7e57" in page


# ----------------------------------------------------------------------- HTTP
@pytest.mark.parametrize(("headers", "expected"), [
    ({"accept": "text/html,application/xhtml+xml,*/*;q=0.8",
      "user-agent": "Mozilla/5.0 Chrome/131"}, "html"),
    ({"accept": "*/*", "user-agent": "curl/8.5.0"}, "text"),
    ({"accept": "text/html", "user-agent": "curl/8.5.0"}, "html"),
    ({"accept": "application/json"}, "json"),
    ({"accept": "text/plain"}, "text"),
    ({"accept": "*/*", "user-agent": "python-httpx/0.27"}, "html"),
    ({}, "html"),  # openssl s_client, tlsmith connect --http: the page, as always
])
def test_choose_format(headers: dict[str, str], expected: str) -> None:
    assert choose_format(Request("GET", "/", headers)) == expected


def test_request_parse() -> None:
    req = Request.parse(b"GET /json?x=1 HTTP/1.1\r\nHost: a:1\r\nUser-Agent: curl/8\r\n\r\n")
    assert (req.method, req.path, req.headers["host"]) == ("GET", "/json", "a:1")
    assert Request.parse(b"").path == "/"


def test_answer_routes_and_remembers_connections(ecdsa: CertFiles) -> None:
    traces, _, first = served(ecdsa)
    get = Request.parse
    page = answer(get(b"GET / HTTP/1.0\r\n\r\n"), first, traces)
    assert page.status == "200 OK" and page.content_type.startswith("text/html")
    raw = page.to_bytes()
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n") and b"Connection: close" in raw
    assert page.to_bytes(head_only=True).endswith(b"\r\n\r\n")
    as_json = answer(get(b"GET /json HTTP/1.0\r\n\r\n"), first, traces)
    assert json.loads(as_json.body)["id"] == first.id
    text = answer(get(b"GET /text HTTP/1.0\r\nHost: h:1\r\n\r\n"), first, traces)
    assert f"https://h:1/explain/{first.id}" in text.body.decode()
    assert answer(get(b"GET /favicon.ico HTTP/1.0\r\n\r\n"), first, traces).status.startswith(
        "404")
    assert answer(get(b"GET /explain/nope HTTP/1.0\r\n\r\n"), first, traces
                  ).status.startswith("404")
    # A later connection asks for the first one's JSON and explainer, by id.
    _, _, second = served(ecdsa)
    second = traces.capture(second.info, ("127.0.0.1", 50001))
    earlier = answer(get(f"GET /json/{first.id} HTTP/1.0\r\n\r\n".encode()), second, traces)
    assert json.loads(earlier.body)["id"] == first.id
    explained = answer(get(f"GET /explain/{first.id} HTTP/1.0\r\n\r\n".encode()), second,
                       traces)
    assert explained.status == "200 OK" and explained.content_type.startswith("text/html")
    assert b"ClientHello" in explained.body


def test_connection_traces_are_bounded(ecdsa: CertFiles) -> None:
    traces, _, captured = served(ecdsa)
    small = ConnectionTraces(traces.config, keep=2, max_records=5)
    for record in captured.records:
        small(record)
    ids = [small.capture(captured.info, ("127.0.0.1", n)).id for n in range(3)]
    assert len(small.current_records()) == 5
    assert small.get(ids[0]) is None
    assert small.get(ids[1]) is not None and small.get(ids[2]) is not None


# ----------------------------------------------------------------------- --alpn
def test_unspoken_alpn() -> None:
    assert unspoken_alpn(["http/1.1", "h2", "http/1.0", "spdy/3"]) == ["h2", "spdy/3"]


@pytest.mark.parametrize("alpn", ["h2", "h3"])
def test_serve_refuses_an_alpn_it_does_not_speak(alpn: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--alpn", "http/1.1", "--alpn", alpn])
    assert result.exit_code == 2, result.output
    assert f"{alpn}: tlsmith serve answers HTTP/1.x only" in result.output
    assert "--alpn" in result.output


# ----------------------------------------------------------------------- real peers
@pytest.fixture
def serve_cli(ecdsa: CertFiles, tmp_path: Path) -> Any:
    serve = start_tlsmith_serve_cli(ecdsa, "--alpn", "http/1.1", log_dir=tmp_path)
    yield serve
    serve.stop()


def curl(serve: PeerProcess, cert: CertFiles, path: str, *args: str) -> str:
    done = subprocess.run(
        [require_peer("curl"), "--silent", "--show-error", "--max-time", str(TIMEOUT),
         "--cacert", str(cert.ca_path), "--resolve", f"localhost:{serve.port}:127.0.0.1",
         *args, f"https://localhost:{serve.port}{path}"],
        capture_output=True, timeout=TIMEOUT + 5, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_curl_gets_text_json_and_the_explainer(serve_cli: PeerProcess,
                                               ecdsa: CertFiles) -> None:
    """curl offers h2 and http/1.1; ``serve --alpn http/1.1`` agrees to HTTP/1.1 (never
    h2), and curl gets the page as text, /json, and the explainer it links to."""
    text = curl(serve_cli, ecdsa, "/")
    assert text.startswith("tlsmith: your TLS handshake\n"), text[:500]
    assert re.search(r"^ALPN +http/1\.1$", text, re.M), text
    assert re.search(r"^Protocol +TLSv1\.3$", text, re.M), text
    assert "Your ClientHello" in text and "client -> server  ClientHello" in text
    ja4_line = re.search(r"^JA4 +(t13d\S+)$", text, re.M)
    assert ja4_line, text
    facts = json.loads(curl(serve_cli, ecdsa, "/json"))
    assert facts["schema"] == SCHEMA
    expected = {"summary": dict, "why": list, "client_hello": dict, "ladder": list,
                "certificates": list, "links": dict, "ja4": str, "ja3": str,
                "ja4s": str, "ja3s": str, "id": str}
    for key, kind in expected.items():
        assert isinstance(facts[key], kind), key
    raw = bytes.fromhex(facts["client_hello"]["raw"])
    assert facts["ja4"] == ja4(raw)
    assert facts["ja4"] == ja4_line.group(1)  # curl sends the same hello each time
    assert facts["client_hello"]["alpn"] == ["h2", "http/1.1"]
    assert facts["summary"]["ALPN"] == "http/1.1"
    explain_url = re.search(r"explained: https://localhost:\d+(/explain/\w+)", text)
    assert explain_url, text
    explained = curl(serve_cli, ecdsa, explain_url.group(1))
    assert "<html" in explained.lower() and "ClientHello" in explained
    as_html = curl(serve_cli, ecdsa, "/", "-H", "Accept: text/html")
    assert "<h1>tlsmith: your TLS handshake</h1>" in as_html
    log = serve_cli.output()
    assert "alpn=http/1.1" in log and "failed:" not in log, log


@pytest.mark.timeout(60)
def test_echo_mode_takes_any_alpn(ecdsa: CertFiles, tmp_path: Path) -> None:
    """--echo speaks no HTTP: any ALPN name is only a label, so h2 is not refused."""
    import tlsmith
    from tlsmith.config import ClientConfig
    from tlsmith.x509.verify import TrustStore

    serve = start_tlsmith_serve_cli(ecdsa, "--echo", "--alpn", "h2", log_dir=tmp_path)
    try:
        cfg = ClientConfig(server_name="localhost", alpn_protocols=("h2",),
                           trust=TrustStore.from_pem_file(ecdsa.ca_path))
        with tlsmith.connect("127.0.0.1", serve.port, cfg, timeout=TIMEOUT) as tls:
            assert tls.info.alpn == "h2"
            tls.sendall(b"ping")
            assert tls.recv() == b"ping"
    finally:
        serve.stop()
