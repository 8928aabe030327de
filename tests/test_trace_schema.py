"""``--trace-json``: its JSON lines against the versioned schema (docs/trace-schema.json,
docs/trace-schema.md), from real connections to OpenSSL's s_server -- whose key log and
-msg dump must agree with the secrets and message bytes we traced -- and from the
deterministic handshakes of the golden tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import trace_handshakes as th
from helpers import CertFiles
from peers import openssl_msg_bytes, start_s_server
from test_trace import HANDSHAKES
from tlsmith.trace import TRACE_SCHEMA_VERSION, records_to_json

pytestmark = pytest.mark.timeout(120)

DOCS = Path(__file__).parent.parent / "docs"
SCHEMA: dict[str, Any] = json.loads((DOCS / "trace-schema.json").read_text(encoding="utf-8"))
DOC = (DOCS / "trace-schema.md").read_text(encoding="utf-8")
_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool,
                          "null": type(None), "number": (int, float), "integer": int}


# ------------------------------------------------------------------ a small validator
def errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """What in ``value`` breaks ``schema``: the JSON Schema keywords docs/trace-schema.json
    uses ($ref to #/$defs, oneOf, type, const, enum, properties, required,
    additionalProperties: false, items, minimum, maximum, pattern)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return errors(value, SCHEMA["$defs"][name], path)
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not errors(value, s, path)]
        if len(matching) != 1:
            kind = value.get("kind") if isinstance(value, dict) else None
            detail = errors(value, SCHEMA["$defs"].get(str(kind), {}), path)
            return [f"{path}: matches {len(matching)} of oneOf ({kind!r}): {detail}"]
        return []
    out: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(value, _TYPES[t]) and not (
            t in ("integer", "number") and isinstance(value, bool)) for t in names)
        if not ok:
            return [f"{path}: {value!r} is not {names}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"],
                                                                        value):
        out.append(f"{path}: {value[:40]!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{path}: missing {k!r}" for k in schema.get("required", ()) if k not in value]
        for key, item in value.items():
            if key in props:
                out += errors(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}: unexpected key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += errors(item, schema["items"], f"{path}[{i}]")
    return out


def test_the_validator_rejects_what_the_schema_forbids() -> None:
    good = records_to_json(th.tls13())
    assert all(not errors(line, SCHEMA) for line in good)
    complete = next(line for line in good if line["kind"] == "complete")
    assert errors({**complete, "extra": 1}, SCHEMA)
    assert errors({**complete, "v": 2}, SCHEMA)
    message = next(line for line in good if line["kind"] == "message")
    assert errors({**message, "raw": "xyz"}, SCHEMA)
    assert errors({k: v for k, v in message.items() if k != "flight"}, SCHEMA)
    assert errors({**message, "message": {"extensions": [{"type": 0}]}}, SCHEMA)


# ------------------------------------------------------------- the doc names every key
def emitted_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(emitted_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(emitted_keys(v) for v in value))
    return set()


def test_the_doc_names_every_key_the_code_emits() -> None:
    keys: set[str] = set()
    for make in HANDSHAKES.values():
        for line in records_to_json(make(), include_secrets=True, connection=1):
            keys |= emitted_keys(line)
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", DOC))
    assert not keys - documented, f"keys missing from docs/trace-schema.md: {keys - documented}"
    schema_keys = set().union(*(d.get("properties", {}).keys()
                                for d in SCHEMA["$defs"].values()))
    top = set().union(*(set(line) for make in HANDSHAKES.values()
                        for line in records_to_json(make(), include_secrets=True,
                                                    connection=1)))
    assert not top - schema_keys, f"keys missing from trace-schema.json: {top - schema_keys}"
    assert f"(version {TRACE_SCHEMA_VERSION})" in DOC


@pytest.mark.parametrize("name", list(HANDSHAKES))
def test_deterministic_traces_follow_the_schema(name: str) -> None:
    for secrets in (False, True):
        for line in records_to_json(HANDSHAKES[name](), include_secrets=secrets,
                                    connection=1):
            assert not errors(line, SCHEMA), errors(line, SCHEMA)


# ------------------------------------------------ a real connection to OpenSSL s_server
def tlsmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlsmith.cli.main", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "100"})


def keylog(path: Path) -> dict[tuple[str, str], str]:
    """(label, client random hex) -> secret hex, from an NSS key log."""
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            label, random, secret = line.split()
            out[(label, random.lower())] = secret.lower()
    return out


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_connect_trace_json_against_openssl(version: str, certs: dict[str, CertFiles],
                                            tmp_path: Path) -> None:
    cert = certs["ecdsa-p256"]
    server_log = tmp_path / "openssl.keylog"
    out = tmp_path / "trace.jsonl"
    with start_s_server(cert, "-www", "-msg", "-keylogfile", str(server_log),
                        log_dir=tmp_path, tls13_only=version == "1.3",
                        line_buffered=True) as server:
        result = tlsmith("connect", f"localhost:{server.port}", "--cafile",
                         str(cert.ca_path), f"--tls{version}", "--http", "--show-secrets",
                         "--trace-json", str(out), "--timeout", "20")
        assert result.returncode == 0, result.stdout + result.stderr
        server.wait_for("ServerHello")
        dump = server.output()
    assert "handshake complete" in result.stdout  # the ladder (--show-secrets implies it)
    assert oct(out.stat().st_mode & 0o777) == "0o600"  # it holds secrets
    lines = [json.loads(text) for text in out.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        assert not errors(line, SCHEMA), errors(line, SCHEMA)
    assert {line["connection"] for line in lines} == {1}
    assert [line["seq"] for line in lines] == list(range(len(lines)))
    (complete,) = [line for line in lines if line["kind"] == "complete"]
    assert complete["version"] == f"TLSv{version}"
    assert complete["round_trips"] == (1 if version == "1.3" else 2)

    # The messages we traced are the bytes OpenSSL saw (its -msg dump).
    raw = {(line["direction"], line["name"]): bytes.fromhex(line["raw"])
           for line in lines if line["kind"] == "message"}
    assert openssl_msg_bytes(dump, "<<<", "ClientHello")[0] == raw["sent", "ClientHello"]
    assert openssl_msg_bytes(dump, ">>>", "ServerHello")[0] == raw["received", "ServerHello"]
    # The secrets we traced are those in OpenSSL's key log.
    theirs = keylog(server_log)
    ours = [line for line in lines if line["kind"] == "secret" and line["nss_label"]]
    assert len(ours) >= (5 if version == "1.3" else 1)
    for line in ours:
        assert theirs[line["nss_label"], line["client_random"]] == line["value"], line["name"]
    # Every record's wire bytes start with its header: type, version, length.
    for line in lines:
        if line["kind"] == "record":
            wire = bytes.fromhex(line["wire"])
            assert int.from_bytes(wire[3:5], "big") == len(wire) - 5


def test_trace_json_to_stdout_without_secrets(certs: dict[str, CertFiles],
                                              tmp_path: Path) -> None:
    cert = certs["ecdsa-p256"]
    with start_s_server(cert, "-www", log_dir=tmp_path) as server:
        result = tlsmith("connect", f"localhost:{server.port}", "--cafile",
                         str(cert.ca_path), "--trace-json", "-", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(text) for text in result.stdout.splitlines()]  # nothing else
    assert lines and all(not errors(line, SCHEMA) for line in lines)
    assert not any("value" in line or "plaintext" in line for line in lines)


def test_serve_trace_json_numbers_connections_from_curl_and_openssl(
        serve_factory: Any, certs: dict[str, CertFiles], tmp_path: Path) -> None:
    from helpers import require_peer
    from peers import run_s_client

    curl = require_peer("curl")
    out = tmp_path / "serve.jsonl"
    serve = serve_factory("--trace-json", str(out), "--trace")
    ca = str(certs["ecdsa-p256"].ca_path)
    for version in ("--tlsv1.3", "--tlsv1.2"):
        got = subprocess.run([curl, "-sS", "--max-time", "20", "--cacert", ca, version,
                              "--tls-max", version.removeprefix("--tlsv"),
                              f"https://localhost:{serve.port}/"],
                             capture_output=True, text=True, timeout=30)
        assert got.returncode == 0, got.stderr
    s_client = run_s_client(serve.port, "-tls1_3", "-servername", "localhost",
                            stdin=b"GET / HTTP/1.0\r\n\r\n")
    assert "TLSv1.3" in s_client.stdout, s_client.stdout
    serve.wait_for("handshake complete", count=3)
    lines = [json.loads(text) for text in out.read_text(encoding="utf-8").splitlines()]
    assert {line["connection"] for line in lines} == {1, 2, 3}
    for line in lines:
        assert not errors(line, SCHEMA), errors(line, SCHEMA)
    hellos = [line for line in lines if line.get("name") == "ClientHello"]
    assert all(h["direction"] == "received" and h["sender"] == "client" for h in hellos)
    completes = [line for line in lines if line["kind"] == "complete"]
    assert [c["version"] for c in completes] == ["TLSv1.3", "TLSv1.2", "TLSv1.3"]
    # Seen from the server too: TLS 1.3 takes one round trip, TLS 1.2 two.
    assert [c["round_trips"] for c in completes] == [1, 2, 1]
