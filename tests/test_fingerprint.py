"""JA3, JA3S, JA4 and JA4S (tlsmith.fingerprint): published reference values, the RFC
8448 hellos, the spec's corner cases, malformed input, and the fingerprints in
``connect`` (summary and --json) and in ``serve``'s log line.

Reference data: tests/vectors/fingerprints/published.json (each entry names its source).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles
from pair import configs, handshake
from rfc8448 import SECTION_HELLO_RETRY_REQUEST, SECTION_SIMPLE_1RTT, load_section
from tlsmith.codec.enums import NamedGroup, ProtocolVersion
from tlsmith.fingerprint import (
    fingerprints,
    is_grease,
    ja3,
    ja3_string,
    ja3s,
    ja3s_string,
    ja4,
    ja4_raw,
    ja4s,
    ja4s_raw,
    parse_client_hello,
)
from tlsmith.observe import Epoch, MessageTrace, TraceRecord

VECTORS = json.loads((Path(__file__).parent / "vectors" / "fingerprints" /
                      "published.json").read_text())
TIMEOUT = 30
JA4_RE = re.compile(r"^[tqd](13|12|11|10|s3|s2|d1|d2|d3|00)[di]\d{4}[0-9A-Za-z]{2}"
                    r"_[0-9a-f]{12}_[0-9a-f]{12}$")
JA4S_RE = re.compile(r"^[tqd](13|12|11|10|s3|s2|d1|d2|d3|00)\d{2}[0-9A-Za-z]{2}"
                     r"_[0-9a-f]{4}_[0-9a-f]{12}$")
MD5_RE = re.compile(r"^[0-9a-f]{32}$")


# ------------------------------------------------------------------- building hellos
def _vec(n: int, data: bytes) -> bytes:
    return len(data).to_bytes(n, "big") + data


def _u16s(values: list[int]) -> bytes:
    return b"".join(v.to_bytes(2, "big") for v in values)


def build_client_hello(suites: list[int], extensions: list[tuple[int, bytes]] | None, *,
                       legacy_version: int = 0x0303) -> bytes:
    """A ClientHello (4-byte header included) with these suites and extensions (type,
    body) in this order; ``None``: no extensions block at all."""
    body = (legacy_version.to_bytes(2, "big") + bytes(32) + _vec(1, b"")
            + _vec(2, _u16s(suites)) + _vec(1, b"\x00"))
    if extensions is not None:
        body += _vec(2, b"".join(t.to_bytes(2, "big") + _vec(2, d) for t, d in extensions))
    return b"\x01" + _vec(3, body)


def build_server_hello(suite: int, extensions: list[tuple[int, bytes]], *,
                       legacy_version: int = 0x0303) -> bytes:
    body = (legacy_version.to_bytes(2, "big") + bytes(32) + _vec(1, b"")
            + suite.to_bytes(2, "big") + b"\x00"
            + _vec(2, b"".join(t.to_bytes(2, "big") + _vec(2, d) for t, d in extensions)))
    return b"\x02" + _vec(3, body)


def sni(name: str) -> bytes:
    return _vec(2, b"\x00" + _vec(2, name.encode()))


def alpn(*protocols: bytes) -> bytes:
    return _vec(2, b"".join(_vec(1, p) for p in protocols))


def client_ext_body(ext_type: int, fields: dict[str, Any]) -> bytes:
    """A minimal, well-formed body for an extension of a field-built ClientHello."""
    if ext_type == 0x0000:
        return sni(fields["server_name"])
    if ext_type == 0x0010:
        return alpn(*(p.encode() for p in fields["alpn"]))
    if ext_type == 0x002B:
        return _vec(1, _u16s([int(v, 16) for v in fields["supported_versions"]]))
    if ext_type == 0x000D:
        return _vec(2, _u16s([int(v, 16) for v in fields["signature_algorithms"]]))
    return b""


def server_ext_body(ext_type: int, fields: dict[str, Any]) -> bytes:
    if ext_type == 0x002B:
        return bytes.fromhex(fields["selected_version"])
    if ext_type == 0x0010:
        return alpn(fields["alpn"].encode())
    return b""


# ----------------------------------------------------------------- published values
def _client_fn(key: str) -> Any:
    return {"ja3": ja3, "ja4": ja4, "ja4_o": lambda b: ja4(b, original_order=True),
            "ja4_r": ja4_raw, "ja4_ro": lambda b: ja4_raw(b, original_order=True)}[key]


@pytest.mark.parametrize("entry", VECTORS["client_hellos"], ids=lambda e: e["name"])
def test_client_hello_fingerprints_match_published_values(entry: dict[str, Any]) -> None:
    record = bytes.fromhex(entry["record"])
    handshake_message, body = record[5:], record[9:]
    for key, expected in entry["expected"].items():
        # The three accepted forms of the same hello give the same fingerprint.
        for form in (record, handshake_message, body):
            assert _client_fn(key)(form) == expected, (entry["name"], key)


@pytest.mark.parametrize("entry", VECTORS["server_hellos"], ids=lambda e: e["name"])
def test_server_hello_fingerprints_match_published_values(entry: dict[str, Any]) -> None:
    record = bytes.fromhex(entry["record"])
    for form in (record, record[5:], record[9:]):
        assert ja3s(form) == entry["expected"]["ja3s"]


@pytest.mark.parametrize("entry", VECTORS["client_hello_fields"], ids=lambda e: e["name"])
def test_ja4_of_the_spec_example(entry: dict[str, Any]) -> None:
    hello = build_client_hello(
        [int(v, 16) for v in entry["cipher_suites"]],
        [(int(t, 16), client_ext_body(int(t, 16), entry)) for t in entry["extensions"]],
        legacy_version=int(entry["legacy_version"], 16))
    for key, expected in entry["expected"].items():
        assert _client_fn(key)(hello) == expected, key


@pytest.mark.parametrize("entry", VECTORS["server_hello_fields"], ids=lambda e: e["name"])
def test_ja4s_of_published_server_hellos(entry: dict[str, Any]) -> None:
    hello = build_server_hello(
        int(entry["cipher_suite"], 16),
        [(int(t, 16), server_ext_body(int(t, 16), entry)) for t in entry["extensions"]],
        legacy_version=int(entry["legacy_version"], 16))
    assert ja4s(hello) == entry["expected"]["ja4s"]
    if "ja4s_r" in entry["expected"]:
        assert ja4s_raw(hello) == entry["expected"]["ja4s_r"]


def test_ja3_readme_examples() -> None:
    """The two strings and digests of the JA3 README (salesforce/ja3), rebuilt as hellos:
    one with SNI, supported_groups and ec_point_formats, one without extensions."""
    suites = [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4]
    hello = build_client_hello(suites, [(0, sni("example.com")),
                                        (10, _vec(2, _u16s([23, 24, 25]))),
                                        (11, _vec(1, b"\x00"))], legacy_version=0x0301)
    assert ja3_string(hello) == ("769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,"
                                 "23-24-25,0")
    assert ja3(hello) == "ada70206e40642a3e4461f35503241d5"
    bare = build_client_hello([4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99], None,
                              legacy_version=0x0301)
    assert ja3_string(bare) == "769,4-5-10-9-100-98-3-6-19-18-99,,,"
    assert ja3(bare) == "de350869b8c85de67a350c8d186f11e6"


def test_ja4_extension_hash_without_signature_algorithms() -> None:
    """JA4.md: with no signature algorithms the list is hashed without an underscore:
    ``0005,...,ff01 = 6d807ffa2a79``."""
    types = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023,
             0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015]
    hello = build_client_hello([0x1301], [(t, b"") for t in types])
    assert ja4(hello).endswith("_6d807ffa2a79")
    assert ja4_raw(hello).endswith("_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,"
                                   "0033,4469,ff01")


# ---------------------------------------------------------------------- RFC 8448 hellos
def test_rfc8448_hellos_regression() -> None:
    """Stable values for the RFC 8448 §3 hellos (computed here; the JA4 cipher hash of
    1301,1302,1303 is the published 55b375c5d22e of FoxIO's QUIC captures, and the
    ServerHello's JA4S the published t130200_1301_234ea6891581)."""
    trace = load_section(SECTION_SIMPLE_1RTT)
    ch, sh = trace.message("client", "ClientHello"), trace.message("server", "ServerHello")
    assert ja3_string(ch) == ("771,4865-4867-4866,0-65281-10-35-51-43-13-45-28,"
                              "29-23-24-25-256-257-258-259-260,")
    assert ja3(ch) == "da4dea34fe6d4ce5f0725df3f2682fa0"
    assert ja4(ch) == "t13d030900_55b375c5d22e_59cd3dafc54d"
    assert ja4_raw(ch, original_order=True) == (
        "t13d030900_1301,1303,1302_0000,ff01,000a,0023,0033,002b,000d,002d,001c_"
        "0403,0503,0603,0203,0804,0805,0806,0401,0501,0601,0201,0402,0502,0602,0202")
    assert ja3s_string(sh) == "771,4865,51-43"
    assert ja3s(sh) == "eb1d94daa7e0344597e756a1fb6e7054"
    assert ja4s(sh) == "t130200_1301_234ea6891581"
    assert ja4s_raw(sh) == "t130200_1301_0033,002b"


def test_rfc8448_hello_retry_request() -> None:
    """RFC 8448 §5: the HelloRetryRequest has the ServerHello's shape (and a cookie)."""
    trace = load_section(SECTION_HELLO_RETRY_REQUEST)
    ch, hrr = trace.message("client", "ClientHello"), trace.message("server", "ServerHello")
    assert ja4(ch) == "t13d030800_55b375c5d22e_f062212a851c"
    assert ja3s_string(hrr) == "771,4865,51-44-43"
    assert ja4s_raw(hrr) == "t130300_1301_0033,002c,002b"
    assert ja4s(hrr) == "t130300_1301_66d4383de07f"


# --------------------------------------------------------------------- the spec's rules
def test_grease_values() -> None:
    grease = {v for v in range(0x10000) if is_grease(v)}
    assert grease == {0x0A0A + 0x1010 * i for i in range(16)}  # RFC 8701 §2


def test_grease_is_ignored_everywhere() -> None:
    """GREASE suites, extensions, groups, versions and signature algorithms change
    neither JA3 nor JA4 (JA3 README; JA4.md "ignore GREASE values anywhere")."""
    plain = build_client_hello([0x1301, 0xC02B], [
        (0x0000, sni("a.example")), (0x000A, _vec(2, _u16s([0x001D]))),
        (0x000D, _vec(2, _u16s([0x0403]))), (0x002B, _vec(1, _u16s([0x0304, 0x0303])))])
    greased = build_client_hello([0x2A2A, 0x1301, 0xC02B], [
        (0x3A3A, b""), (0x0000, sni("a.example")),
        (0x000A, _vec(2, _u16s([0x4A4A, 0x001D]))),
        (0x000D, _vec(2, _u16s([0x5A5A, 0x0403]))),
        (0x002B, _vec(1, _u16s([0x6A6A, 0x0304, 0x0303]))), (0xFAFA, b"\x00")])
    assert ja3(greased) == ja3(plain)
    assert ja4(greased) == ja4(plain) == ja4(plain, original_order=False)
    assert ja4_raw(greased, original_order=True) == ja4_raw(plain, original_order=True)
    assert ja4(plain).startswith("t13d0204")


@pytest.mark.parametrize(("first", "expected"), [
    (b"h2", "h2"), (b"http/1.1", "h1"), (b"h", "hh"),
    # JA4.md: a non-alphanumeric first or last byte: the hex form's first and last digit.
    (b"\xab", "ab"), (b"\xab\xcd", "ad"), (b"\x30\xab", "3b"), (b"\x30\x31\xab\xcd", "3d"),
    (b"\x30\xab\xcd\x31", "01"),
])
def test_ja4_alpn_characters(first: bytes, expected: str) -> None:
    hello = build_client_hello([0x1301], [(0x0010, alpn(first, b"other"))])
    assert ja4(hello)[8:10] == expected
    assert ja4s(build_server_hello(0x1301, [(0x0010, alpn(first))]))[5:7] == expected


def test_ja4_without_alpn_sni_suites_or_extensions() -> None:
    assert ja4(build_client_hello([0x1301], [(0x0010, alpn())]))[8:10] == "00"
    bare = build_client_hello([], None, legacy_version=0x0301)
    assert ja4(bare) == "t10i000000_000000000000_000000000000"
    assert ja4_raw(bare) == "t10i000000__"
    only_sni = build_client_hello([0x002F], [(0x0000, sni("x"))])
    assert ja4(only_sni).endswith("_000000000000")  # SNI alone: part c is empty
    assert ja4s(build_server_hello(0x002F, [])) == "t120000_002f_000000000000"


def test_ja4_version_and_counts() -> None:
    many = build_client_hello(list(range(1, 121)), [(0x002B, _vec(1, _u16s([0x0303])))],
                              legacy_version=0x0301)
    assert ja4(many).startswith("t12i9901")  # counts stop at 99; supported_versions wins
    assert ja4(build_client_hello([1], [], legacy_version=0x0300)).startswith("ts3i0100")
    assert ja4(build_client_hello([1], [], legacy_version=0x0305)).startswith("t00")
    dtls = build_client_hello([1], [(0x002B, _vec(1, _u16s([0xFEFC, 0xFEFD])))])
    assert ja4(dtls, transport="d").startswith("dd3")  # DTLS 1.3 is the newest
    assert ja4(dtls, transport="q").startswith("q")
    sh12 = build_server_hello(0xC02F, [(0xFF01, b"\x00")], legacy_version=0x0303)
    assert ja4s(sh12, transport="q").startswith("q1201")


# ------------------------------------------------------------------- malformed input
def _chrome() -> bytes:
    return bytes.fromhex(VECTORS["client_hellos"][4]["record"])[5:]


def test_every_truncation_is_a_value_error() -> None:
    hello = _chrome()
    for n in range(len(hello)):
        with pytest.raises(ValueError):
            ja4(hello[:n])
    sh = bytes.fromhex(VECTORS["server_hellos"][2]["record"])[5:]
    for n in range(len(sh)):
        with pytest.raises(ValueError):
            ja4s(sh[:n])


def test_malformed_input_says_what_is_wrong() -> None:
    hello = _chrome()
    with pytest.raises(ValueError, match="unexpected bytes at the end"):
        ja3(hello + b"\x00")
    with pytest.raises(ValueError, match="byte 0x02"):
        ja4(build_server_hello(0x1301, []))  # a ServerHello is no ClientHello
    with pytest.raises(ValueError, match="no bytes"):
        ja3(b"")
    with pytest.raises(ValueError, match="expected bytes"):
        ja3("01000000")  # type: ignore[arg-type]
    odd = build_client_hello([0x1301], [])
    odd = odd[:4] + odd[4:39] + b"\x00\x03\x13\x01\x00" + odd[43:]
    with pytest.raises(ValueError):
        ja3(odd)
    with pytest.raises(ValueError, match="transport"):
        ja4(hello, transport="u")
    with pytest.raises(ValueError, match="continues beyond this record"):
        ja4(b"\x16\x03\x01\x00\x10" + hello[:16])
    bad_alpn = build_client_hello([0x1301], [(0x0010, b"\x00\x05\x09h2")])
    with pytest.raises(ValueError, match="application_layer_protocol_negotiation"):
        ja4(bad_alpn)


def test_mutated_hellos_never_raise_anything_but_value_error() -> None:
    rng = random.Random(8)
    hello = bytearray(_chrome())
    for _ in range(2000):
        mutated = bytearray(hello)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        for fn in (ja3, ja4, ja3s, ja4s):
            try:
                fn(bytes(mutated))
            except ValueError:
                pass


def test_coalesced_messages_after_the_hello_in_a_record() -> None:
    """A record may carry more handshake messages after the hello (TLS 1.2 servers send
    ServerHello, Certificate, ... in one): the hello alone is fingerprinted."""
    sh = build_server_hello(0xC02F, [(0xFF01, b"\x00")])
    done = b"\x0e\x00\x00\x00"  # ServerHelloDone
    record = b"\x16\x03\x03" + _vec(2, sh + done)
    assert ja3s(record) == ja3s(sh)
    assert parse_client_hello(_chrome()).alpn_first == b"h2"


# ------------------------------------------------------------------ traces, handshakes
def test_fingerprints_of_an_in_memory_tls13_handshake(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"], alpn_protocols=("h2",),
                                     server={"alpn_protocols": ("h2",)})
    _, _, cspy, sspy = handshake(client_cfg, server_cfg)
    ours = fingerprints(cspy.records)
    hello = _first(cspy.records, "ClientHello")
    assert ours == {"ja3": ja3(hello), "ja4": ja4(hello),
                    "ja3s": ja3s(_first(cspy.records, "ServerHello")),
                    "ja4s": ja4s(_first(cspy.records, "ServerHello"))}
    assert fingerprints(sspy.records) == ours  # the server saw the same two hellos
    assert JA4_RE.match(ours["ja4"]) and ours["ja4"].startswith("t13d")
    assert ours["ja4"][8:10] == "h2"
    # TLS 1.3 ALPN is in EncryptedExtensions, so JA4S shows none (JA4S.md).
    assert JA4S_RE.match(ours["ja4s"]) and ours["ja4s"].startswith("t130200_1301")
    assert MD5_RE.match(ours["ja3"]) and MD5_RE.match(ours["ja3s"])


def test_fingerprints_of_an_in_memory_tls12_handshake(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(certs["ecdsa-p256"], alpn_protocols=("http/1.1",),
                                     max_version=ProtocolVersion.TLS12,
                                     server={"alpn_protocols": ("http/1.1",)})
    _, _, cspy, _ = handshake(client_cfg, server_cfg)
    ours = fingerprints(cspy.records)
    assert ours["ja4"].startswith("t12d") and ours["ja4"][8:10] == "h1"
    # In TLS 1.2 the ServerHello carries the chosen ALPN.
    assert ours["ja4s"].startswith("t12") and ours["ja4s"][5:7] == "h1"
    assert ja3s_string(_first(cspy.records, "ServerHello")).startswith("771,")


def test_hello_retry_request_is_the_first_server_hello(certs: dict[str, CertFiles]) -> None:
    """fingerprints() takes the first ClientHello and the first ServerHello -- here the
    HelloRetryRequest (see the module's docstring)."""
    client_cfg, server_cfg = configs(certs["ecdsa-p256"],
                                     server={"groups": (NamedGroup.SECP384R1,)})
    _, _, cspy, _ = handshake(client_cfg, server_cfg)
    hellos = [r for r in cspy.records if isinstance(r, MessageTrace)
              and r.name in ("ClientHello", "ServerHello")]
    assert [r.name for r in hellos] == ["ClientHello", "ServerHello", "ClientHello",
                                        "ServerHello"]
    assert hellos[1].message.is_hello_retry_request
    prints = fingerprints(cspy.records)
    assert prints["ja4"] == ja4(hellos[0].raw) != ja4(hellos[2].raw)  # + cookie
    assert prints["ja4s"] == ja4s(hellos[1].raw)
    assert "002c" in ja4s_raw(hellos[1].raw)  # the HRR's cookie


def test_fingerprints_of_partial_or_empty_traces() -> None:
    hello = _chrome()
    ch = MessageTrace("sent", "ClientHello", None, len(hello), Epoch.PLAINTEXT, 0.0, hello)
    assert fingerprints([]) == {}
    assert set(fingerprints([ch])) == {"ja3", "ja4"}
    broken = MessageTrace("sent", "ClientHello", None, 3, Epoch.PLAINTEXT, 0.0, b"\x01\x00")
    assert fingerprints([broken]) == {}  # unreadable: left out, never raised


def test_first_client_hello_is_kept_by_the_core(certs: dict[str, CertFiles]) -> None:
    """TLSConnection.first_client_hello: what serve's log line fingerprints, with no
    observer attached (an observer would cost every record)."""
    from pair import configs, pump
    from tlsmith.connection import TLSConnection

    client_cfg, server_cfg = configs(certs["ecdsa-p256"])
    client, server = TLSConnection(client_cfg), TLSConnection(server_cfg)
    pump(client, server)
    assert client.handshake_complete
    assert client.first_client_hello[:1] == b"\x01"
    assert server.first_client_hello == client.first_client_hello
    assert ja4(server.first_client_hello).startswith("t13")


def _first(records: list[TraceRecord], name: str) -> bytes:
    return next(r.raw for r in records if isinstance(r, MessageTrace) and r.name == name)


# ------------------------------------------------------------------------------ CLI
def tlsmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlsmith.cli.main", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "COLUMNS": "120"})


def _log_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]


def test_connect_json_summary_and_serve_log_agree(serve_factory: Any,
                                                   certs: dict[str, CertFiles]) -> None:
    """connect --json has ja3/ja4/ja3s/ja4s; the summary shows them; serve logs the
    client's JA4 -- and both sides computed it from the same ClientHello."""
    serve = serve_factory("--max-connections", "2")
    ca = str(certs["ecdsa-p256"].ca_path)
    result = tlsmith("connect", f"localhost:{serve.port}", "--cafile", ca, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert JA4_RE.match(out["ja4"]) and JA4S_RE.match(out["ja4s"]), out
    assert MD5_RE.match(out["ja3"]) and MD5_RE.match(out["ja3s"])
    assert out["ja4"].startswith("t13d") and out["ja4s"].startswith("t13")
    serve.wait_for("ja4=", timeout=10)
    line = _log_lines(serve.output())[0]
    assert f" ja4={out['ja4']} " in line, line
    assert line.rstrip().endswith("hrr=no")

    human = tlsmith("connect", f"localhost:{serve.port}", "--cafile", ca)
    assert human.returncode == 0, human.stderr
    rows = dict(re.findall(r"^(JA4 \(our hello\)|JA3 \(our hello\)|JA4S \(server's\))\s+"
                           r"(\S+)\s*$", human.stdout, re.M))
    # Same client, same server: the same fingerprints (the random parts are not in them).
    assert rows == {"JA4 (our hello)": out["ja4"], "JA3 (our hello)": out["ja3"],
                    "JA4S (server's)": out["ja4s"]}, human.stdout


def test_failure_json_keeps_the_fingerprints_of_the_hellos_that_crossed(
        serve_factory: Any, certs: dict[str, CertFiles]) -> None:
    serve = serve_factory("--max-connections", "1")
    # The certificate is for localhost: asking for another name fails after the hellos.
    result = tlsmith("connect", f"127.0.0.1:{serve.port}", "--servername", "wrong.example",
                     "--cafile", str(certs["ecdsa-p256"].ca_path), "--json")
    out = json.loads(result.stdout)
    assert out["ok"] is False, out
    assert JA4_RE.match(out["ja4"]) and JA4S_RE.match(out["ja4s"]), out
    assert "trace" in out
