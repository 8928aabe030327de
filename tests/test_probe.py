"""``tlsmith probe`` against tlsmith's own server: the raw prober's contract, the scan's
answers (versions, suites in the server's order, resumption, 0-RTT, findings) and the
``--json`` output checked against the schema of docs/probe-schema.md."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from helpers import CertFiles
from tlsmith.cli.main import main
from tlsmith.codec.enums import AlertDescription, ExtensionType, NamedGroup, ProtocolVersion
from tlsmith.config import DEFAULT_TLS12_SUITES, DEFAULT_TLS13_SUITES
from tlsmith.findings import SEVERITIES
from tlsmith.probe.hello import HelloAnswer, send_client_hello
from tlsmith.probe.scan import ja4s

# -- the schema (docs/probe-schema.md), as a JSON-Schema-like structure ------------------
_STR_LIST = {"type": "array", "items": {"type": "string"}}
_RESUME = {"type": "object", "required": ["resumed", "attempts", "rate"],
           "properties": {"resumed": {"type": "integer"}, "attempts": {"type": "integer"},
                          "rate": {"type": "string"}}}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "target", "versions", "cipher_suites", "groups",
                 "signature_algorithms", "certificates", "resumption", "early_data",
                 "findings", "rating", "features", "robot", "ja4s", "alpn",
                 "ocsp_stapling", "cipher_preference", "stats"],
    "properties": {
        "schema_version": {"type": "integer", "enum": [1]},
        "target": {"type": "object", "required": ["host", "port", "server_name"],
                   "properties": {"host": {"type": "string"}, "port": {"type": "integer"},
                                  "server_name": {"type": ["string", "null"]}}},
        "versions": {"type": "array", "items": {
            "type": "string", "enum": ["TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0"]}},
        "cipher_suites": {"type": "object", "additionalProperties": _STR_LIST},
        "cipher_preference": {"type": "object", "additionalProperties": {
            "type": "string", "enum": ["server", "client"]}},
        "groups": {"type": "object", "additionalProperties": _STR_LIST},
        "dhe_prime_bits": {"type": ["integer", "null"]},
        "signature_algorithms": {"type": "object", "additionalProperties": _STR_LIST},
        "certificates": {"type": "array", "items": {
            "type": "object",
            "required": ["subject", "issuer", "names", "key", "signature_algorithm",
                         "not_before", "not_after", "days_left", "chain_length", "sha256",
                         "verified", "verification", "revocation", "ocsp_stapled",
                         "key_type_asked"],
            "properties": {"names": _STR_LIST, "days_left": {"type": "integer"},
                           "verified": {"type": "boolean"},
                           "ocsp_stapled": {"type": "boolean"},
                           "revocation": {"type": ["string", "null"]}}}},
        "ocsp_stapling": {"type": ["boolean", "null"]},
        "resumption": {"type": "object", "properties": {
            "tls13_psk": _RESUME, "tls12_session_id": _RESUME, "tls12_ticket": _RESUME}},
        "early_data": {"type": "object", "properties": {
            "offered_by_server": {"type": "boolean"},
            "accepted": {"type": ["boolean", "null"]}}},
        "alpn": {"type": "object", "properties": {"supported": _STR_LIST}},
        "features": {"type": "object"},
        "robot": {"type": "object", "properties": {"result": {
            "type": "string", "enum": ["not vulnerable", "vulnerable", "inconclusive",
                                       "not applicable", "not tested"]}}},
        "ja4s": {"type": "object", "properties": {"ja4s": {"type": "string"},
                                                  "raw": {"type": "string"}}},
        "findings": {"type": "array", "items": {
            "type": "object", "required": ["id", "severity", "text", "fix", "evidence"],
            "properties": {"id": {"type": "string"},
                           "severity": {"type": "string", "enum": list(SEVERITIES)},
                           "text": {"type": "string"}, "fix": {"type": "string"},
                           "evidence": {"type": "string"}}}},
        "rating": {"type": "object", "required": ["grade", "reasons"],
                   "properties": {"grade": {"type": "string", "enum": ["A", "B", "C", "F"]},
                                  "reasons": _STR_LIST}},
        "stats": {"type": "object", "required": ["connections", "seconds"]},
    },
}

_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool,
                          "null": type(None), "number": (int, float)}


def _is(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The subset of JSON Schema used above: type, enum, required, properties,
    additionalProperties, items. Returns the problems (empty: valid)."""
    problems: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is(value, t) for t in names):
            return [f"{path}: {type(value).__name__} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{path}: missing {key!r}")
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                problems += validate(sub, props[key], f"{path}.{key}")
            elif "additionalProperties" in schema:
                problems += validate(sub, schema["additionalProperties"], f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{i}]")
    return problems


def test_validator_rejects_bad_documents() -> None:
    assert validate({"versions": ["TLSv9"]}, SCHEMA)
    assert validate({"schema_version": "1"}, SCHEMA)
    assert not validate({"a": 1}, {"type": "object", "additionalProperties":
                                   {"type": "integer"}})


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture
def serve(serve_factory: Any) -> Any:
    """``tlsmith serve`` (ECDSA P-256, dev CA) with 0-RTT enabled."""
    return serve_factory("--early-data")


def _probe(port: int, ca: CertFiles, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["probe", f"127.0.0.1:{port}", "--cafile",
                                       str(ca.ca_path), "--timeout", "5", "--json", *extra])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


# -- the raw prober ---------------------------------------------------------------------
def test_hello_prober_contract(serve: Any) -> None:
    port = serve.port
    a = send_client_hello("127.0.0.1", port, server_name="localhost",
                          versions=(0x0304, 0x0303), cipher_suites=(0x1302, 0x1301),
                          groups=(0x001D, 0x0017), timeout=5)
    assert isinstance(a, HelloAnswer) and a.error is None
    assert a.version == ProtocolVersion.TLS13 and not a.hello_retry_request
    assert a.group == NamedGroup.X25519
    assert ExtensionType.KEY_SHARE in a.extensions
    assert a.certificates == ()  # encrypted in TLS 1.3
    # An empty key_share: the server names its group in a HelloRetryRequest.
    hrr = send_client_hello("127.0.0.1", port, server_name="localhost", versions=(0x0304,),
                            cipher_suites=(0x1301,), groups=(0x0018,), key_share_groups=(),
                            timeout=5)
    assert hrr.hello_retry_request and hrr.group == NamedGroup.SECP384R1
    # TLS 1.2: the plaintext Certificate follows the ServerHello.
    t12 = send_client_hello("127.0.0.1", port, server_name="localhost", versions=(0x0303,),
                            cipher_suites=(0xC02B,), groups=(0x0017,), alpn=(), timeout=5)
    assert t12.version == ProtocolVersion.TLS12 and len(t12.certificates) == 2
    assert ExtensionType.EXTENDED_MASTER_SECRET in t12.extensions
    assert t12.ske_signature_scheme is not None and t12.server_hello_done
    assert ja4s(t12).startswith("t12")
    # TLS 1.0 and a 3DES-only offer: code points tlsmith does not implement, refused.
    old = send_client_hello("127.0.0.1", port, server_name=None, versions=(0x0301,),
                            cipher_suites=(0x000A, 0xC013), groups=(0x0017,), timeout=5)
    assert old.server_hello is None and old.alert == AlertDescription.PROTOCOL_VERSION
    triple = send_client_hello("127.0.0.1", port, server_name=None, versions=(0x0303,),
                               cipher_suites=(0x000A,), groups=(0x0017,), timeout=5)
    assert triple.server_hello is None and triple.alert is not None


def test_hello_prober_network_errors() -> None:
    from helpers import free_port

    a = send_client_hello("127.0.0.1", free_port(), server_name=None, versions=(0x0303,),
                          cipher_suites=(0xC02F,), groups=(0x001D,), timeout=2)
    assert a.error == "refused" and a.server_hello is None


# -- the scan ---------------------------------------------------------------------------
def test_probe_tlsmith_server(serve: Any, certs: dict[str, CertFiles]) -> None:
    r = _probe(serve.port, certs["ecdsa-p256"])
    assert validate(r, SCHEMA) == []
    assert r["versions"] == ["TLSv1.3", "TLSv1.2"]
    # Our server's preference order (ServerConfig defaults), as the scan saw it.
    assert r["cipher_suites"]["TLSv1.3"] == [s.rfc_name for s in DEFAULT_TLS13_SUITES]
    assert r["cipher_suites"]["TLSv1.2"] == [s.rfc_name for s in DEFAULT_TLS12_SUITES
                                             if "ECDSA" in s.name]
    assert r["cipher_preference"] == {"TLSv1.3": "server", "TLSv1.2": "server"}
    assert r["groups"]["TLSv1.3"][:2] == ["X25519MLKEM768", "x25519"]
    assert "ffdhe2048" in r["groups"]["TLSv1.3"]
    assert r["signature_algorithms"]["TLSv1.3"] == ["ecdsa_secp256r1_sha256"]
    assert [c["key"] for c in r["certificates"]] == ["EC secp256r1"]
    assert r["certificates"][0]["verified"] is True
    assert r["resumption"]["tls13_psk"]["rate"] == "3/3 resumed"
    assert r["resumption"]["tls12_ticket"]["resumed"] == 3
    assert r["early_data"] == {"offered_by_server": True, "accepted": True,
                               "max_early_data": r["early_data"]["max_early_data"]}
    f = r["features"]
    assert f["extended_master_secret"] and f["secure_renegotiation"]
    assert f["downgrade"]["tls13_downgrade_sentinel"] is True
    assert f["compression_refused"] and f["grease_tolerant"] and f["large_hello_tolerant"]
    assert r["robot"]["result"] == "not applicable"
    assert r["ja4s"]["ja4s"].startswith("t13")
    # A good server: information only, rated A.
    assert {x["severity"] for x in r["findings"]} <= {"info"}, r["findings"]
    assert r["rating"]["grade"] == "A"


def test_probe_untrusted_certificate_is_found(serve: Any, certs: dict[str, CertFiles],
                                              tmp_path: Any) -> None:
    # A CA that did not issue the server's certificate.
    from tlsmith.x509.devca import DevCA

    ca = DevCA.load_or_create(tmp_path)
    assert ca.ca_path is not None
    other = ca.ca_path
    result = CliRunner().invoke(main, ["probe", f"127.0.0.1:{serve.port}", "--cafile",
                                       str(other), "--json", "--no-robot"])
    r = json.loads(result.output)
    ids = {x["id"] for x in r["findings"]}
    assert "unknown_issuer" in ids and r["rating"]["grade"] == "F"
    assert r["certificates"][0]["verified"] is False


def test_probe_text_output(serve: Any, certs: dict[str, CertFiles]) -> None:
    result = CliRunner().invoke(main, ["probe", f"127.0.0.1:{serve.port}", "--cafile",
                                       str(certs["ecdsa-p256"].ca_path)])
    assert result.exit_code == 0, result.output
    assert "rating A" in result.output and "TLS_AES_128_GCM_SHA256" in result.output


def test_probe_nothing_listening() -> None:
    from helpers import free_port

    result = CliRunner().invoke(main, ["probe", f"127.0.0.1:{free_port()}", "--insecure",
                                       "--timeout", "2"])
    assert result.exit_code == 2


def test_ja4s_matches_the_spec_example() -> None:
    """The FoxIO JA4S.md example: TLS 1.2, extensions 0005,0017,ff01,0000, suite c030."""
    from tlsmith.codec import extensions as ext
    from tlsmith.codec.enums import CipherSuite
    from tlsmith.codec.messages import ServerHello

    sh = ServerHello(ProtocolVersion.TLS12, bytes(32), b"", CipherSuite(0xC030), 0, (
        ext.UnknownExtension(ExtensionType(0x0005), b""),
        ext.UnknownExtension(ExtensionType(0x0017), b""),
        ext.UnknownExtension(ExtensionType(0xFF01), b"\x00"),
        ext.UnknownExtension(ExtensionType(0x0000), b"")))
    a = HelloAnswer(version=ProtocolVersion.TLS12, server_hello=sh)
    assert ja4s(a) == "t120400_c030_4e8089b08790"
    assert ja4s(a, raw=True) == "t120400_c030_0005,0017,ff01,0000"


# -- ROBOT: a deliberately leaky fake server ----------------------------------------------
def _oracle_server(cert: CertFiles, leaky: bool) -> Any:
    """A TLS 1.2 RSA-key-transport "server" that only gets as far as the
    ClientKeyExchange, then answers bad_record_mac when the PKCS#1 padding was right and
    -- if ``leaky`` -- handshake_failure when it was not (a Bleichenbacher oracle)."""
    import os
    import socket
    import threading

    from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
    from cryptography.x509 import load_pem_x509_certificate

    from tlsmith.codec import extensions as ext
    from tlsmith.codec.enums import CipherSuite, ContentType
    from tlsmith.codec.messages import Certificate12, ClientHello, ServerHello, ServerHelloDone
    from tlsmith.record.framing import HandshakeReassembler, RecordReader, encode_record_header

    key: Any = load_pem_private_key(cert.key_path.read_bytes(), None)
    der = load_pem_x509_certificate(cert.cert_path.read_bytes()).public_bytes(Encoding.DER)
    priv = key.private_numbers()
    n, d = priv.public_numbers.n, priv.d
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def record(ctype: int, body: bytes) -> bytes:
        return encode_record_header(ctype, 0x0303, len(body)) + body

    def serve_one(conn: socket.socket) -> None:
        conn.settimeout(5)
        rr, hs = RecordReader(), HandshakeReassembler()
        hello = None
        while hello is None:
            data = conn.recv(65536)
            if not data:
                return
            rr.feed(data)
            while (rec := rr.next_record()) is not None:
                hs.feed(rec.fragment)
                msg = hs.next_message()
                if msg is not None:
                    hello = ClientHello.parse_body(msg[1])
        if 0x009C not in hello.cipher_suites:
            conn.sendall(record(ContentType.ALERT, b"\x02\x28"))
            return
        sh = ServerHello(ProtocolVersion.TLS12, os.urandom(32), b"", CipherSuite(0x009C), 0,
                         (ext.RenegotiationInfo(b""),))
        flight = sh.serialize() + Certificate12((der,)).serialize() + \
            ServerHelloDone().serialize()
        conn.sendall(record(ContentType.HANDSHAKE, flight))
        while True:
            data = conn.recv(65536)
            if not data:
                return
            rr.feed(data)
            rec = rr.next_record()
            if rec is not None:
                break
        cke = bytes(rec.fragment)[4:]
        m = pow(int.from_bytes(cke[2:], "big"), d, n).to_bytes(256, "big")
        good = m[:2] == b"\x00\x02" and b"\x00" in m[2:] and m[-48:-46] == b"\x03\x03" \
            and m.index(b"\x00", 2) == 256 - 49
        alert = 20 if good or not leaky else 40  # bad_record_mac / handshake_failure
        conn.sendall(record(ContentType.ALERT, bytes([2, alert])))

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    serve_one(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    class Handle:
        port = listener.getsockname()[1]

        def close(self) -> None:
            stop.set()
            thread.join(5)
            listener.close()

    return Handle()


@pytest.mark.parametrize("leaky", [True, False])
def test_robot_check_sees_an_oracle(certs: dict[str, CertFiles], leaky: bool) -> None:
    from tlsmith.probe.scan import ProbeOptions, Scanner, robot_check

    server = _oracle_server(certs["rsa-2048"], leaky)
    try:
        result = robot_check(Scanner(ProbeOptions("127.0.0.1", server.port, timeout=3)),
                             0x009C)
    finally:
        server.close()
    assert result["result"] == ("vulnerable" if leaky else "not vulnerable"), result


# -- OCSP stapling --------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["good", "revoked"])
def test_probe_reports_stapled_ocsp(status: str) -> None:
    from cryptography.hazmat.primitives import serialization

    from peers import tlsmith_server
    from test_revocation_handshake import good_response, make_pki, revoked_response
    from tlsmith.config import CertifiedKey, ServerConfig
    from tlsmith.probe.scan import ProbeOptions, run_probe

    pki = make_pki()
    staple = good_response(pki) if status == "good" else revoked_response(pki)
    certified = CertifiedKey(
        (pki.leaf.public_bytes(serialization.Encoding.DER),
         pki.ca.certificate.public_bytes(serialization.Encoding.DER)),
        pki.leaf_key, ("localhost",), ocsp_response=staple)
    with tlsmith_server(ServerConfig(certificates=(certified,))) as srv:
        r = run_probe(ProbeOptions("127.0.0.1", srv.port, server_name="localhost",
                                   trust=pki.trust(), timeout=5, robot=False))
    assert r["ocsp_stapling"] is True
    ids = {f["id"] for f in r["findings"]}
    if status == "good":
        assert r["certificates"][0]["revocation"] == "good"
        assert r["certificates"][0]["verified"] is True
    else:
        assert "certificate_revoked" in ids and r["rating"]["grade"] == "F"
