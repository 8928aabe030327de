"""The byte-level explainer (tlsmith.explainer): every byte of every record labelled
exactly once, the key derivation recomputed and equal to what the connection derived,
golden annotations for deterministic handshakes (both versions), and the page."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import trace_handshakes
from helpers import CertFiles
from pair import configs, pump
from tlsmith.codec.enums import CipherSuite, ContentType, NamedGroup, ProtocolVersion
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import SessionTicketReceived
from tlsmith.explainer import annotate, check_coverage, derive, render_explainer
from tlsmith.explainer.spans import Span
from tlsmith.observe import Epoch, RecordTrace, SecretTrace, TraceRecord
from tlsmith.session import Session
from tlsmith.trace import TraceCollector
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

GOLDEN = Path(__file__).parent / "golden"
TLS12 = ProtocolVersion.TLS12
TLS13 = ProtocolVersion.TLS13


def _explained(records: list[TraceRecord], local: str = "client") -> dict[str, Any]:
    ann = annotate(records, local=local)  # type: ignore[arg-type]
    return {"records": [a.to_json() for a in ann],
            "derivation": derive(records, ann, local=local).to_json()}  # type: ignore[arg-type]


def _golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file (UPDATE_GOLDEN=1 rewrites it after review)")


# -- golden: deterministic handshakes (seeded randomness, ticking clock, Ed25519) ------


@pytest.mark.parametrize("name", ["tls13", "tls12", "hrr"])
def test_explainer_annotation_golden(name: str) -> None:
    trace = getattr(trace_handshakes, name)()
    explained = _explained(trace.records)
    _golden(f"explainer_{name}.json", json.dumps(explained, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("name", ["tls13", "tls12"])
def test_explainer_page_golden(name: str) -> None:
    trace = getattr(trace_handshakes, name)()
    _golden(f"explainer_{name}.html", render_explainer(trace.records, local="client"))


def test_explainer_replay_gives_the_same_page() -> None:
    assert (render_explainer(trace_handshakes.tls13().records)
            == render_explainer(trace_handshakes.tls13().records))


# -- many handshakes: coverage and the derivation's checks ------------------------------


def _pair(cert: CertFiles, *, session: Session | None = None, early: bytes | None = None,
          pair: tuple[ClientConfig, ServerConfig] | None = None, **client_kw: Any
          ) -> tuple[TraceCollector, TraceCollector, list[Session]]:
    """A full exchange in memory (handshake, request, reply, close); both traces and the
    sessions the client received. ``pair``: configs to reuse (the server's ticket keys)."""
    client_cfg, server_cfg = pair or configs(cert, **client_kw)
    ctrace, strace = TraceCollector(), TraceCollector()
    kwargs: dict[str, Any] = {"session": session}
    if early is not None:
        kwargs["early_data"] = early
    client = TLSConnection(replace(client_cfg, observer=ctrace), **kwargs)
    server = TLSConnection(replace(server_cfg, observer=strace))
    events, _ = pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    client.send_data(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    more, _ = pump(client, server)
    server.send_data(b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + b"x" * 3000)
    more2, _ = pump(client, server)
    client.close()
    pump(client, server)
    sessions = [e.session for e in events + more + more2
                if isinstance(e, SessionTicketReceived)]
    return ctrace, strace, sessions


def _assert_explained(records: list[TraceRecord], local: str) -> None:
    ann = annotate(records, local=local)  # type: ignore[arg-type]
    assert check_coverage(ann) == []
    assert len(ann) == sum(isinstance(r, RecordTrace) for r in records)
    for a in ann:
        if a.trace.protected:
            assert a.inner is not None
    d = derive(records, ann, local=local)  # type: ignore[arg-type]
    assert d.problems == []
    checks = [s for s in d.steps() if s.check is not None]
    assert checks and all(s.check for s in checks), [s.name for s in checks if not s.check]
    # The last section opened an application record by hand, and its content matched.
    assert d.sections[-1][0].startswith("One record opened by hand")
    assert d.sections[-1][1][-1].check is True


CASES: dict[str, dict[str, Any]] = {
    "tls13-x25519": {"max_version": TLS13},
    "tls13-p256": {"max_version": TLS13, "key_share_groups": (NamedGroup.SECP256R1,),
                   "groups": (NamedGroup.SECP256R1,)},
    "tls13-aes256": {"cipher_suites": (CipherSuite.TLS_AES_256_GCM_SHA384,)},
    "tls13-chacha": {"cipher_suites": (CipherSuite.TLS_CHACHA20_POLY1305_SHA256,)},
    "tls13-hrr": {"key_share_groups": (NamedGroup.X25519,),
                  "server": {"groups": (NamedGroup.SECP384R1,)}},
    "tls12-ecdhe-gcm": {"max_version": TLS12},
    "tls12-ecdhe-chacha": {"max_version": TLS12, "cipher_suites": (
        CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,)},
    "tls12-dhe": {"max_version": TLS12, "cipher_suites": (
        CipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,)},
    "tls12-rsa": {"max_version": TLS12, "cipher_suites": (
        CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,), "server": {
            "allow_rsa_key_exchange": True, "cipher_suites": (
            CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,)}},
    "tls12-cbc-etm": {"max_version": TLS12, "cipher_suites": (
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,), "server": {"cipher_suites": (
            CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,)}},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_explainer_covers_every_byte_and_rederives_every_key(
        certs: dict[str, CertFiles], case: str) -> None:
    kw = dict(CASES[case])
    ctrace, strace, _ = _pair(certs["rsa-2048"], **kw)
    _assert_explained(ctrace.records, "client")
    _assert_explained(strace.records, "server")


def test_explainer_tls13_resumption_and_0rtt(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    server = {"max_early_data": 4096, "tickets": 1}
    pair = configs(cert, max_version=TLS13, session_tickets=True, server=server)
    _, _, sessions = _pair(cert, pair=pair)
    assert sessions
    ctrace, strace, _ = _pair(cert, pair=pair, session=sessions[0],
                              early=b"GET /early HTTP/1.1\r\n\r\n")
    ann = annotate(ctrace.records, local="client")
    assert check_coverage(ann) == []
    assert any(a.trace.epoch == Epoch.EARLY for a in ann), "no 0-RTT record"
    d = derive(ctrace.records, ann, local="client")
    assert d.problems == []
    assert all(s.check is not False for s in d.steps())
    early = next(s for s in d.steps() if s.name == "early_secret")
    assert early.check is None and "PSK" in early.formula  # from the ticket, not recomputed
    _assert_explained(strace.records, "server")


def test_explainer_tls12_resumption(certs: dict[str, CertFiles]) -> None:
    cert = certs["ecdsa-p256"]
    server = {"session_ids": True, "tickets": 1}
    pair = configs(cert, max_version=TLS12, session_tickets=True, server=server)
    _, _, sessions = _pair(cert, pair=pair)
    assert sessions
    ctrace, _, _ = _pair(cert, pair=pair, session=sessions[0])
    ann = annotate(ctrace.records, local="client")
    assert check_coverage(ann) == []
    d = derive(ctrace.records, ann, local="client")
    assert d.problems == []
    assert all(s.check is not False for s in d.steps())
    assert d.steps()[0].name == "master_secret" and "resumed" in d.steps()[0].formula


@pytest.mark.parametrize("version", [TLS13, TLS12], ids=["tls13", "tls12"])
def test_explainer_mutual_tls(certs: dict[str, CertFiles], devca: DevCA, tmp_path: Path,
                              version: ProtocolVersion) -> None:
    """CertificateRequest, the client's Certificate and CertificateVerify, annotated; the
    Finished messages still recompute (the transcript holds the client's messages)."""
    issued = devca.issue(("alice.example",), key_type="ecdsa-p256", client=True).write(
        tmp_path, "alice")
    assert issued.chain_path and issued.key_path
    files = certs["ecdsa-p256"]
    client_cfg, server_cfg = configs(files, min_version=version, max_version=version,
                                     certificate=CertifiedKey.from_files(issued.chain_path,
                                                                         issued.key_path))
    server_cfg = replace(server_cfg, client_auth="require",
                         client_trust=TrustStore.from_pem_file(files.ca_path))
    ctrace, strace, _ = _pair(files, pair=(client_cfg, server_cfg))
    _assert_explained(ctrace.records, "client")
    _assert_explained(strace.records, "server")
    titles = " ".join(a.title for a in annotate(ctrace.records))
    assert "CertificateRequest" in titles and "CertificateVerify" in titles
    d = derive(ctrace.records, annotate(ctrace.records))
    assert [s.check for s in d.steps() if "Finished" in s.name] == [True, True]


def test_explainer_key_update(certs: dict[str, CertFiles]) -> None:
    """After a KeyUpdate the sender's records use new keys: their sequence numbers start
    again, and the record opened by hand is one under the first application keys."""
    client_cfg, server_cfg = configs(certs["ecdsa-p256"], max_version=TLS13)
    trace = TraceCollector()
    client = TLSConnection(replace(client_cfg, observer=trace))
    server = TLSConnection(server_cfg)
    pump(client, server)
    client.send_data(b"before")
    pump(client, server)
    client.key_update(request_peer=False)
    client.send_data(b"after")
    pump(client, server)
    ann = annotate(trace.records)
    assert check_coverage(ann) == []
    ku = next(a for a in ann if "KeyUpdate" in a.title)
    after = next(a for a in ann if a.index > ku.index and a.sender == "client")
    assert (after.generation, after.seq) == (1, 0)
    d = derive(trace.records, ann)
    assert d.problems == [] and all(s.check is not False for s in d.steps())
    assert d.sections[-1][1][-1].value == b"before"


# -- details of the annotation ----------------------------------------------------------


def _leaves(records: list[TraceRecord]) -> list[tuple[int, str, Span]]:
    return [(a.index, where, leaf) for a in annotate(records)
            for where, root in (("wire", a.wire), ("inner", a.inner)) if root is not None
            for leaf in root.leaves()]


def test_explainer_names_every_client_hello_field() -> None:
    records = trace_handshakes.tls13().records
    first = annotate(records)[0]
    labels = [span.label for _, span in first.wire.walk()]
    for expected in ("record header", "ClientHello", "legacy_version", "random",
                     "legacy_session_id", "cipher_suites", "legacy_compression_methods",
                     "extension server_name", "extension supported_versions",
                     "extension key_share", "extension signature_algorithms",
                     "extension application_layer_protocol_negotiation", "key_exchange"):
        assert expected in labels, expected


def test_explainer_shows_grease_and_unknown_extensions_as_hex() -> None:
    from tlsmith.explainer.handshake import Context, handshake_message

    body = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x04\x0a\x0a\x13\x01" + b"\x01\x00"
            + b"\x00\x0c" + b"\x1a\x1a\x00\x01\x00" + b"\xbe\xef\x00\x03abc")
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    span = handshake_message(message, 0, Context(tls13=True))
    text = {s.label: s.meaning for _, s in span.walk()}
    suites = [s.meaning for _, s in span.walk() if s.label == "cipher suite"]
    assert suites == ["GREASE 0x0a0a (RFC 8701)", "TLS_AES_128_GCM_SHA256 (0x1301)"]
    assert "extension GREASE 0x1a1a" in text
    assert "extension unknown 0xbeef" in text
    data = [s for _, s in span.walk() if s.label == "data"]
    assert data[-1].meaning == b"abc".hex()
    assert [leaf.end for leaf in span.leaves()][-1] == len(message)


def test_explainer_garbage_still_covers_every_byte() -> None:
    """A record whose handshake bytes do not follow the structure: the body is one hex
    range that says so, and every byte stays labelled."""
    junk = b"\x01\x00\x00\x10" + b"\xff" * 16 + b"\x02\x00\x00\x50\x03"
    wire = bytes([22, 3, 1]) + len(junk).to_bytes(2, "big") + junk
    rec = RecordTrace("sent", ContentType.HANDSHAKE, Epoch.PLAINTEXT, False, wire, junk, 0.0)
    ann = annotate([rec])
    assert check_coverage(ann) == []
    labels = [s.label for _, s in ann[0].wire.walk()]
    assert "body (does not follow the structure)" in labels
    assert "body (incomplete)" in labels


def test_explainer_message_split_over_records() -> None:
    """A handshake message cut over two records is shown in parts, each labelled."""
    records = trace_handshakes.tls12().records
    recs = [r for r in records if isinstance(r, RecordTrace)]
    big = recs[1]  # ServerHello .. ServerHelloDone in one record
    cut = 200
    first = RecordTrace(big.direction, big.content_type, big.epoch, False,
                        big.wire[:3] + (cut).to_bytes(2, "big") + big.plaintext[:cut],
                        big.plaintext[:cut], big.time)
    rest = big.plaintext[cut:]
    second = RecordTrace(big.direction, big.content_type, big.epoch, False,
                         big.wire[:3] + len(rest).to_bytes(2, "big") + rest, rest, big.time)
    ann = annotate([recs[0], first, second])
    assert check_coverage(ann) == []
    assert "(part:" in ann[1].title and "(part:" in ann[2].title


def test_explainer_secrets_stay_out_of_repr() -> None:
    records = trace_handshakes.tls13().records
    ann = annotate(records)
    d = derive(records, ann)
    secrets = [r.value.hex() for r in records if isinstance(r, SecretTrace)]
    text = repr(d) + repr(ann)
    assert secrets and not any(s in text for s in secrets)


# -- the page ---------------------------------------------------------------------------


def test_explainer_page_is_self_contained_and_complete() -> None:
    records = trace_handshakes.tls13().records
    page = render_explainer(records, local="client")
    # Nothing fetched: no external scripts, styles, images or frames; links only.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert "@import" not in page and "url(" not in page
    assert all(u.startswith(("https://www.rfc-editor.org/rfc/rfc", "#"))
               for u in re.findall(r'href="([^"]+)"', page))
    assert 'id="secrets-warning"' in page
    n = sum(isinstance(r, RecordTrace) for r in records)
    assert page.count('<section class="record ') == n
    protected = sum(isinstance(r, RecordTrace) and r.protected for r in records)
    assert page.count('class="view decrypted"') == protected
    # Every traced secret shows, recomputed and checked.
    for r in records:
        if isinstance(r, SecretTrace):
            assert r.value.hex() in page, r.name
    assert 'data-check="false"' not in page


def test_explainer_elides_big_records_with_a_count(certs: dict[str, CertFiles]) -> None:
    ctrace, _, _ = _pair(certs["ecdsa-p256"], max_version=TLS13)
    page = render_explainer(ctrace.records)
    assert re.search(r"… \d+ bytes not shown …", page)


def test_demo_explain_writes_the_page(tmp_path: Path) -> None:
    """``tlsmith demo --explain FILE.html``: the page of the demo's first handshake."""
    out = tmp_path / "demo.html"
    done = subprocess.run([sys.executable, "-m", "tlsmith.cli.main", "demo", "--version",
                           "1.2", "--kx", "rsa", "--explain", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    page = out.read_text(encoding="utf-8")
    assert "connection (TLS 1.2)" in page and "ClientKeyExchange" in page
    assert "EncryptedPreMasterSecret" in page
    assert 'data-check="false"' not in page and 'class="problems"' not in page
    assert (out.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("name", ["tls13", "tls12", "hrr"])
def test_explainer_survives_mutated_records(name: str) -> None:
    """Records cut short, grown or flipped (as a hostile or broken peer's bytes would
    be): the annotation still labels every byte once and the page still renders."""
    rng = random.Random(f"explainer {name}")
    records = getattr(trace_handshakes, name)().records
    indexes = [i for i, r in enumerate(records) if isinstance(r, RecordTrace)]
    for n in range(100):
        mutated = list(records)
        for i in rng.sample(indexes, 3):
            rec = mutated[i]
            assert isinstance(rec, RecordTrace)
            data = bytearray(rec.plaintext)
            how = rng.choice(("cut", "grow", "flip"))
            if how == "cut":
                del data[rng.randrange(len(data) + 1):]
            elif how == "grow":
                data += rng.randbytes(rng.randrange(1, 40))
            elif data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            plaintext = bytes(data)
            if rec.protected:
                wire = rec.wire[:rng.randrange(5, len(rec.wire) + 1)]
            else:
                wire = rec.wire[:3] + len(plaintext).to_bytes(2, "big") + plaintext
            mutated[i] = replace(rec, wire=wire, plaintext=plaintext)
        ann = annotate(mutated)
        assert check_coverage(ann) == []
        if n % 10 == 0:
            assert "<html" in render_explainer(mutated)
