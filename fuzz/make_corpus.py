"""(Re)generate the seed corpora in fuzz/corpus/<target>/ from RFC 8448 and from
recorded deterministic tlsmith handshakes (fuzz/targets.py).

    .venv/bin/python fuzz/make_corpus.py [--prune]

``--prune`` also deletes the recorded seeds a changed handshake no longer produces (a
file named like a generated origin, with another hash).

Files are named ``<origin>-<sha1 prefix>`` so regenerating is idempotent; inputs the
fuzzer found and that are worth keeping may be added by hand next to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets as t

from tlsmith.codec.buffer import Writer
from tlsmith.codec.extensions import Extension, serialize_extensions
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages import Certificate, decode_handshake
from tlsmith.rfc8448 import load


def _messages(stream: bytes) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    while pos + 4 <= len(stream):
        length = int.from_bytes(stream[pos + 1 : pos + 4], "big")
        out.append(stream[pos : pos + 4 + length])
        pos += 4 + length
    return out


def _plain_handshake(flight: bytes) -> bytes:
    return b"".join(r[5:] for ct, r in t.split_records(flight) if ct == 22)


def _ext_block(exts: tuple[Extension, ...]) -> bytes:
    w = Writer()
    serialize_extensions(w, exts)
    return w.getvalue()


def _extension_seeds(raw: bytes, tls12: bool) -> list[bytes]:
    """context byte + extensions block, for each extension block in the message."""
    try:
        msg = decode_handshake(raw[0], raw[4:], tls12=tls12)
    except Exception:
        return []
    name = type(msg).__name__
    contexts = t._CONTEXTS
    out: list[bytes] = []

    def add(ctx: ExtensionContext, exts: tuple[Extension, ...]) -> None:
        out.append(bytes([contexts.index(ctx)]) + _ext_block(exts))

    exts = getattr(msg, "extensions", None)
    if name == "ClientHello" and exts is not None:
        add(ExtensionContext.CLIENT_HELLO, exts)
    elif name == "ServerHello" and exts is not None:
        hrr = getattr(msg, "is_hello_retry_request", False)
        add(ExtensionContext.HELLO_RETRY_REQUEST if hrr else ExtensionContext.SERVER_HELLO,
            exts)
    elif name == "EncryptedExtensions" and exts is not None:
        add(ExtensionContext.ENCRYPTED_EXTENSIONS, exts)
    elif name == "CertificateRequest" and exts is not None:
        add(ExtensionContext.CERTIFICATE_REQUEST, exts)
    elif name == "NewSessionTicket" and exts is not None:
        add(ExtensionContext.NEW_SESSION_TICKET, exts)
    elif isinstance(msg, Certificate):
        for entry in msg.certificate_list:
            add(ExtensionContext.CERTIFICATE, entry.extensions)
    return out


def main(argv: list[str] | None = None) -> int:
    prune = "--prune" in (sys.argv[1:] if argv is None else argv)
    seeds: dict[str, dict[str, bytes]] = {name: {} for name in t.TARGETS}

    def put(target: str, origin: str, data: bytes) -> None:
        seeds[target][f"{origin}-{t.input_hash(data)[:10]}"] = data

    # RFC 8448: every section's records and handshake messages.
    for section, trace in load().items():
        origin = f"rfc8448-s{section}"
        client_records = b"".join(r.complete_record for r in trace.records()
                                  if r.actor == "client")
        server_records = b"".join(r.complete_record for r in trace.records()
                                  if r.actor == "server")
        for data in (client_records, server_records):
            if data:
                put("deframer", origin, b"\x80" + data)
                put("deframer", origin, b"\x4a" + data)
        first_client = next((r for r in trace.records() if r.actor == "client"), None)
        if first_client is not None and first_client.kind == "handshake":
            put("server", origin, first_client.complete_record)
        for hm in trace.handshake_messages():
            put("handshake13", origin, hm.raw[:1] + hm.raw[4:])
            for seed in _extension_seeds(hm.raw, tls12=False):
                put("extensions", origin, seed)

    # Recorded deterministic handshakes.
    r13, r12, rm = t.recording("13"), t.recording("12"), t.recording("mtls")
    flight13 = t.server_flight13()
    mtls = t.client_flight13_mtls()
    for kind, rec in (("tls13", r13), ("tls12", r12), ("mtls", rm)):
        for i, data in enumerate(rec.client_flights):
            put("deframer", f"{kind}-client{i}", b"\x00" + data)
        for i, data in enumerate(rec.server_flights):
            put("deframer", f"{kind}-server{i}", b"\x0d" + data)
        put("server", f"{kind}-client", b"".join(rec.client_flights))
        put("server", f"{kind}-hello", rec.client_flights[0])
    put("client13", "tls13-server", b"".join(r13.server_flights))
    put("client13", "tls12-server", b"".join(r12.server_flights))
    put("client12", "tls12-server", b"".join(r12.server_flights))
    put("client12", "tls12-server-first", r12.server_flights[0])
    put("server12", "tls12-client", r12.client_flights[1])
    put("client13_flight", "tls13-server", flight13.plaintext)
    put("server13_client_flight", "mtls-client", mtls.plaintext)
    for target, origin, data in t.flow_seeds():
        put(target, origin, data)

    streams = [
        (_plain_handshake(r13.client_flights[0]), False),
        (_plain_handshake(r13.server_flights[0]), False),
        (flight13.plaintext, False),
        (mtls.plaintext, False),
        (_plain_handshake(rm.server_flights[0]), False),
        (_plain_handshake(r12.client_flights[0]), True),
        (_plain_handshake(r12.server_flights[0]), True),
        (_plain_handshake(r12.client_flights[1]), True),
    ]
    for stream, tls12 in streams:
        for raw in _messages(stream):
            if tls12:
                put("handshake12", "tls12", b"\x00" + raw[:1] + raw[4:])
                if raw[0] in (12, 16):  # Server/ClientKeyExchange: the dhe and rsa forms too
                    put("handshake12", "tls12-dhe", b"\x01" + raw[:1] + raw[4:])
                    put("handshake12", "tls12-rsa", b"\x02" + raw[:1] + raw[4:])
            else:
                put("handshake13", "tls13", raw[:1] + raw[4:])
            for seed in _extension_seeds(raw, tls12):
                put("extensions", "tls12" if tls12 else "tls13", seed)

    pruned = 0
    for target, files in seeds.items():
        directory = t.corpus_dir(target)
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (directory / name).write_bytes(data)
        if prune:
            # A recorded seed the handshake no longer sends: the same <origin>, another
            # hash. Files under other names (kept by hand) stay.
            origins = {name.rsplit("-", 1)[0] for name in files}
            for path in directory.iterdir():
                if path.name not in files and path.name.rsplit("-", 1)[0] in origins:
                    path.unlink()
                    pruned += 1
        print(f"{target}: {len(files)} seeds")
    if pruned:
        print(f"pruned {pruned} stale seed(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
