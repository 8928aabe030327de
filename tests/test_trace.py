"""The structured trace and the terminal ladder (issue 8, items 1-2): golden ladders at
80 columns and golden JSON traces of deterministic handshakes (fixed certificates, seeded
randomness, a ticking clock; see trace_handshakes.py), replay, flights and round trips,
width and colour handling, and no secret in any repr()."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

import trace_handshakes as th
from helpers import CertFiles
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.observe import SecretTrace
from tlsmith.trace import (
    TraceCollector,
    flights,
    records_to_json,
    render_ladder,
    write_json_lines,
)

pytestmark = pytest.mark.timeout(60)

GOLDEN = Path(__file__).parent / "golden" / "trace"
#: TLSMITH_UPDATE_GOLDEN=1 rewrites the golden files from this run (review the diff).
UPDATE = os.environ.get("TLSMITH_UPDATE_GOLDEN") == "1"
EARLY = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

HANDSHAKES: dict[str, Callable[[], TraceCollector]] = {
    "tls13": th.tls13,
    "tls12": th.tls12,
    "hrr": th.hrr,
    "resumed13": th.resumed,
    "resumed12": lambda: th.resumed(ProtocolVersion.TLS12),
    "0rtt": lambda: th.resumed(early_data=EARLY),
}


def ladder(trace: TraceCollector, width: int = 80, *, verbose: bool = False,
           show_secrets: bool = False) -> str:
    buffer = io.StringIO()
    render_ladder(trace, Console(file=buffer, width=width, color_system=None),
                  verbose=verbose, show_secrets=show_secrets)
    return buffer.getvalue()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} changed; rerun with TLSMITH_UPDATE_GOLDEN=1 to accept"


# ------------------------------------------------------------------------------ goldens
@pytest.mark.parametrize("name", list(HANDSHAKES))
def test_ladder_golden_at_80_columns(name: str) -> None:
    check_golden(f"ladder_{name}.txt", ladder(HANDSHAKES[name]()))


@pytest.mark.parametrize("name", ["tls13", "tls12"])
def test_ladder_verbose_with_secrets_golden(name: str) -> None:
    check_golden(f"ladder_{name}_verbose_secrets.txt",
                 ladder(HANDSHAKES[name](), verbose=True, show_secrets=True))


@pytest.mark.parametrize("name", ["tls13", "tls12", "hrr"])
def test_json_trace_golden(name: str) -> None:
    buffer = io.StringIO()
    write_json_lines(HANDSHAKES[name](), buffer, include_secrets=True)
    check_golden(f"trace_{name}.jsonl", buffer.getvalue())


def test_replay_gives_an_identical_trace() -> None:
    first, second = th.tls13(), th.tls13()
    assert records_to_json(first, include_secrets=True) == records_to_json(
        second, include_secrets=True)
    assert ladder(first, verbose=True, show_secrets=True) == ladder(
        second, verbose=True, show_secrets=True)


# --------------------------------------------------------------------- what is visible
def test_ladder_shows_hrr_resumption_0rtt_and_tls12_ccs() -> None:
    assert "HelloRetryRequest selected_group=SECP256R1 cookie" in ladder(th.hrr())
    resumed = ladder(th.resumed())
    assert "pre_shared_key=identity 0 (resumed)" in resumed
    assert "resumed (psk_dhe_ke)" in resumed and "no certificate in this handshake" in resumed
    early = ladder(th.resumed(early_data=EARLY))
    assert "application data, 35 bytes (0-RTT: early traffic keys)" in early
    assert "🔒 EndOfEarlyData" in early and "0-RTT data accepted" in early
    tls12 = ladder(th.tls12())
    assert tls12.count("ChangeCipherSpec (what follows uses the new keys)") == 2


def test_flights_and_round_trips() -> None:
    expected = {"tls13": (1, 3), "tls12": (2, 4), "hrr": (2, 5), "resumed13": (1, 3),
                "resumed12": (1, 3), "0rtt": (1, 3)}
    for name, (trips, count) in expected.items():
        f = flights(HANDSHAKES[name]().records)
        assert (f.round_trips, f.until_complete) == (trips, count), name
    complete = [r for r in records_to_json(th.tls12()) if r["kind"] == "complete"]
    assert complete[0]["round_trips"] == 2 and complete[0]["flights"] == 4


def test_flights_seen_from_the_server() -> None:
    from dataclasses import replace

    from tlsmith.observe import MessageTrace

    for version, trips in ((th.TLS13, 1), (th.TLS12, 2)):
        client_cfg, server_cfg = th._configs(b"server side", th.ticking_clock(),
                                             min_version=version, max_version=version)
        trace = TraceCollector()
        th.connect(client_cfg, replace(server_cfg, observer=trace))
        f = flights(trace.records)
        assert (f.round_trips, f.until_complete) == (trips, 3 if trips == 1 else 4)
        hello = next(r for r in trace.records if isinstance(r, MessageTrace))
        assert hello.direction == "received"
        assert records_to_json(trace)[trace.records.index(hello)]["sender"] == "client"
        text = ladder(trace)
        assert "✔ handshake complete" in text and "certificate chain sent by the" in text


def test_json_covers_every_record_and_field() -> None:
    trace = th.hrr()
    items = records_to_json(trace)
    assert len(items) == len(trace.records)
    assert {i["kind"] for i in items} == {"message", "record", "secret", "check", "note",
                                          "complete"}
    hello = next(i for i in items if i.get("name") == "ClientHello")
    assert hello["sender"] == "client" and hello["flight"] == 1
    fields = hello["message"]
    assert {"legacy_version", "random", "legacy_session_id", "cipher_suites",
            "extensions"} <= fields.keys()
    names = [e["extension"] for e in fields["extensions"]]
    for ext in ("server_name", "supported_versions", "supported_groups",
                "signature_algorithms", "key_share", "application_layer_protocol_negotiation"):
        assert ext in names
    assert bytes.fromhex(hello["raw"])[0] == 1  # handshake type client_hello
    hrr_item = next(i for i in items if i.get("name") == "ServerHello")
    assert hrr_item["message"]["is_hello_retry_request"] is True
    secret = next(i for i in items if i["kind"] == "secret"
                  and i["name"] == "client_handshake_traffic_secret")
    assert "value" not in secret and secret["rfc"] == "RFC 8446 §7.1"
    assert '"c hs traffic"' in secret["derivation"]
    record = next(i for i in items if i["kind"] == "record" and i["protected"])
    assert "plaintext" not in record and len(bytes.fromhex(record["wire"])) == record["length"]


def test_tls12_secrets_are_labelled_as_in_rfc5246() -> None:
    items = {i["name"]: i for i in records_to_json(th.tls12()) if i["kind"] == "secret"}
    assert items["master_secret"]["rfc"] == "RFC 7627 §4"  # extended master secret
    assert '"extended master secret"' in items["master_secret"]["derivation"]
    assert items["client_write_key"]["rfc"] == "RFC 5246 §6.3"
    assert items["pre_master_secret"]["rfc"] == "RFC 8422 §5.10"  # ECDHE


def test_grease_and_unknown_extensions_are_kept_as_hex() -> None:
    from tlsmith.codec.enums import CipherSuite, ExtensionType, NamedGroup
    from tlsmith.codec.extensions import SupportedGroups, UnknownExtension
    from tlsmith.codec.messages import ClientHello
    from tlsmith.observe import Epoch, MessageTrace
    from tlsmith.trace_fields import message_fields

    hello = ClientHello(ProtocolVersion.TLS12, bytes(32), b"",
                        (CipherSuite(0x1A1A), CipherSuite.TLS_AES_128_GCM_SHA256), (0,),
                        (UnknownExtension(ExtensionType(0x2A2A), b""),
                         UnknownExtension(ExtensionType(0xFE01), b"\xde\xad"),
                         SupportedGroups((NamedGroup(0x3A3A), NamedGroup.X25519))))
    trace = TraceCollector()
    trace(MessageTrace("sent", "ClientHello", hello, 60, Epoch.PLAINTEXT, 0.0))
    message = records_to_json(trace)[0]["message"]
    assert message["cipher_suites"] == ["GREASE_0x1a1a", "TLS_AES_128_GCM_SHA256"]
    grease, unknown, groups = message["extensions"]
    assert grease == {"extension": "GREASE_0x2a2a", "type": 0x2A2A, "grease": True,
                      "data": ""}
    assert unknown == {"extension": "UNKNOWN_0xfe01", "type": 0xFE01, "data": "dead"}
    assert groups["named_group_list"] == ["GREASE_0x3a3a", "X25519"]
    rows = dict(message_fields(hello, "ClientHello"))
    assert rows["  UNKNOWN_0xfe01 (65025)"] == "raw dead (2 bytes)"


# ------------------------------------------------------------------- width and colour
@pytest.mark.parametrize("width", [60, 80, 132])
def test_ladder_uses_the_console_width_and_never_cuts_silently(width: int) -> None:
    from rich.cells import cell_len

    text = ladder(th.hrr(), width=width, verbose=True, show_secrets=True)
    body = text.split("\ncertificate chain")[0]  # rich's Tree wraps itself
    lines = body.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    assert any(cell_len(line) == width for line in lines)  # the arrows span the width
    # Every elision says how much it left out (the count may wrap to the next line).
    flat = re.sub(r"\s+", " ", body)
    for m in re.finditer("…", flat):
        assert re.match(r"… \((\+\d+ more|\d+ bytes)", flat[m.start():]), flat[m.start() - 40:]


def test_ladder_is_plain_when_piped_and_with_no_color(monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    trace = th.tls13()
    piped = io.StringIO()
    render_ladder(trace, Console(file=piped, width=80))  # not a terminal
    assert "\x1b[" not in piped.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = io.StringIO()
    render_ladder(trace, Console(file=tty, width=80, force_terminal=True))
    assert not re.search(r"\x1b\[[0-9;]*3[0-9]m", tty.getvalue())  # no foreground colour
    monkeypatch.delenv("NO_COLOR")
    coloured = io.StringIO()
    render_ladder(trace, Console(file=coloured, width=80, force_terminal=True,
                                 color_system="standard"))
    assert re.search(r"\x1b\[[0-9;]*3[0-9]m", coloured.getvalue())


def test_certificate_chain_tree() -> None:
    text = ladder(th.tls13())
    tree = text[text.index("certificate chain sent by the server (2)"):]
    assert "[0] CN=localhost (leaf)" in tree
    assert "SAN: DNS:localhost" in tree and "key: Ed25519" in tree
    assert "valid: 2026-01-01T00:00:00Z → 2045-01-01T00:00:00Z" in tree
    assert "[1] O=tlsmith,CN=tlsmith trace golden CA" in tree


# ---------------------------------------------------------------------------- secrets
def test_secret_values_never_appear_in_repr() -> None:
    objects: list[object] = []
    secrets: list[bytes] = []
    for make in (th.tls13, th.tls12, lambda: th.resumed(early_data=EARLY),
                 lambda: th.resumed(ProtocolVersion.TLS12)):
        trace = make()
        events, client, server = th.LAST
        secrets += [r.value for r in trace.records if isinstance(r, SecretTrace)]
        objects += [trace, *trace.records, *events, client, server]
        objects += [e.session for e in events if hasattr(e, "session")]
    assert len(secrets) > 30
    text = "\n".join(repr(o) for o in objects)
    assert "SecretTrace(" in text and "Session" in text
    for value in secrets:
        assert value.hex() not in text
        assert repr(value)[2:-1] not in text


def test_show_secrets_adds_values_and_the_derivation_chain() -> None:
    trace = th.tls13()
    values = {r.name: r.value for r in trace.records if isinstance(r, SecretTrace)}
    plain, shown = ladder(trace), ladder(trace, show_secrets=True, width=200)
    assert values["handshake_secret"].hex() not in plain and "↳" not in plain
    assert f"handshake_secret = {values['handshake_secret'].hex()}" in shown
    assert ('↳ Derive-Secret(Handshake Secret, "c hs traffic", ClientHello...ServerHello) '
            "[RFC 8446 §7.1]") in shown
    with_values = [i for i in records_to_json(trace, include_secrets=True)
                   if i["kind"] == "secret"]
    assert all(bytes.fromhex(i["value"]) == values[i["name"]] for i in with_values)


def test_json_lines_carry_the_connection_id() -> None:
    buffer = io.StringIO()
    write_json_lines(th.tls13(), buffer, connection=7)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert lines and all(x["connection"] == 7 and x["v"] == 1 for x in lines)
    assert [x["seq"] for x in lines] == list(range(len(lines)))


# ------------------------------------------------------------- the CLI, against OpenSSL
def test_connect_verbose_ladder_against_openssl(certs: dict[str, CertFiles],
                                                tmp_path: Path) -> None:
    """``tlsmith connect -v`` to openssl s_server (TLS 1.2): every field, both CCS, the
    chain as a tree, as wide as COLUMNS, and no colour on a pipe or with NO_COLOR."""
    import subprocess
    import sys

    from peers import start_s_server

    cert = certs["rsa-2048"]
    with start_s_server(cert, "-www", log_dir=tmp_path, tls13_only=False) as server:
        runs = {}
        for name, extra in (("piped", {}), ("no_color", {"NO_COLOR": "1",
                                                            "FORCE_COLOR": "1"})):
            runs[name] = subprocess.run(
                [sys.executable, "-m", "tlsmith.cli.main", "connect",
                 f"localhost:{server.port}", "--cafile", str(cert.ca_path), "--tls1.2",
                 "-v", "--timeout", "20"], capture_output=True, text=True, timeout=60,
                env={**os.environ, "COLUMNS": "90", **extra})
    from rich.cells import cell_len

    for name, result in runs.items():
        assert result.returncode == 0, result.stdout + result.stderr
        text = result.stdout
        assert not re.search(r"\x1b\[[0-9;]*3[0-9]m", text), name  # no colour
        ladder_part = re.sub(r"\x1b\[[0-9;]*m", "", text).split(
            "\ncertificate chain sent by the server")[0]
        assert max(cell_len(line) for line in ladder_part.splitlines()) <= 90
    text = runs["piped"].stdout
    assert "\x1b[" not in text
    assert "\x1b[" in runs["no_color"].stdout  # a terminal, but without colour
    for needle in ("legacy_session_id_echo:", "cipher_suites: [", "extensions: [",
                   "signature_algorithms (13):", "ServerKeyExchange ECDHE", "record: handshake",
                   "↳ master_secret = PRF(pre_master_secret", "✔ handshake complete: TLSv1.2",
                   "2 round trips", "certificate chain sent by the server", "[0] CN=localhost",
                   "key: RSA-2048"):
        assert needle in text, needle
    assert text.count("ChangeCipherSpec (what follows uses the new keys)") == 2
