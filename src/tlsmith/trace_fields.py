"""Every field of a traced message, for people (``-v``) and for programs (JSON), and the
RFC derivation of every secret the key schedule announces.

Above the core, like trace.py: it reads the codec's frozen dataclasses, never changes
them. Code points the registries do not name keep their number: GREASE (RFC 8701) and
unknown values print as ``GREASE_0x0a0a`` / ``UNKNOWN_0x1234``, unknown extensions as
their raw bytes in hex.
"""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import Any

from tlsmith.codec.enums import OpenEnum, ProtocolVersion

#: Byte strings longer than this are shown (to people) as their first ``_HEAD`` bytes and
#: a count of the rest; JSON always carries them whole.
_SHOW_WHOLE = 64
_HEAD = 32

# RFC 8446 §7.1 (and §7.4 for the shared secret, §7.2 for key updates): how each TLS 1.3
# secret is computed, in the RFC's notation.
_DERIVATIONS_13: dict[str, str] = {
    "ecdhe_shared_secret": "(EC)DHE shared secret: our private key with the peer's "
                           "key_share",
    "early_secret": "Early Secret = HKDF-Extract(salt=0, IKM=PSK, or zeros without one)",
    "binder_key": 'binder_key = Derive-Secret(Early Secret, "res binder" | "ext binder", "")',
    "client_early_traffic_secret": 'Derive-Secret(Early Secret, "c e traffic", ClientHello)',
    "early_exporter_master_secret": 'Derive-Secret(Early Secret, "e exp master", '
                                    "ClientHello)",
    "handshake_secret": 'Handshake Secret = HKDF-Extract(salt=Derive-Secret(Early Secret, '
                        '"derived", ""), IKM=(EC)DHE shared secret)',
    "client_handshake_traffic_secret": 'Derive-Secret(Handshake Secret, "c hs traffic", '
                                       "ClientHello...ServerHello)",
    "server_handshake_traffic_secret": 'Derive-Secret(Handshake Secret, "s hs traffic", '
                                       "ClientHello...ServerHello)",
    "master_secret": 'Master Secret = HKDF-Extract(salt=Derive-Secret(Handshake Secret, '
                     '"derived", ""), IKM=0)',
    "client_application_traffic_secret_0": 'Derive-Secret(Master Secret, "c ap traffic", '
                                           "ClientHello...server Finished)",
    "server_application_traffic_secret_0": 'Derive-Secret(Master Secret, "s ap traffic", '
                                           "ClientHello...server Finished)",
    "exporter_master_secret": 'Derive-Secret(Master Secret, "exp master", '
                              "ClientHello...server Finished)",
    "resumption_master_secret": 'Derive-Secret(Master Secret, "res master", '
                                "ClientHello...client Finished)",
}
_KEY_UPDATE = re.compile(r"(client|server)_application_traffic_secret_(\d+)")

# RFC 5246 §8.1 (master secret), §6.3 (key block), RFC 7627 §4 (extended master secret).
_KEY_BLOCK = ('key_block = PRF(master_secret, "key expansion", server_random + '
              "client_random), cut in order: client/server MAC keys, keys, IVs")
_DERIVATIONS_12: dict[str, tuple[str, str]] = {
    "pre_master_secret": ("the key exchange's result: the (EC)DHE shared secret, or 48 "
                          "random bytes the client encrypted to the server's RSA key",
                          "RFC 5246 §8.1"),
    "session_hash": ("session_hash = Hash(handshake messages up to and including "
                     "ClientKeyExchange)", "RFC 7627 §3"),
    **{name: (_KEY_BLOCK, "RFC 5246 §6.3") for name in (
        "client_write_mac_key", "server_write_mac_key", "client_write_key",
        "server_write_key", "client_write_iv", "server_write_iv")},
}
# The pre-master secret per key exchange (RFC 5246 §8.1.1, §8.1.2; RFC 8422 §5.10).
_PRE_MASTER = {
    "ECDHE": ("the ECDHE shared secret: X25519/X448's output, or the x-coordinate of "
              "the shared point on a NIST curve", "RFC 8422 §5.10"),
    "DHE": ("Z = g^(xy) mod p, the DH shared secret with leading zero bytes stripped",
            "RFC 5246 §8.1.2"),
    "RSA": ("client_version (2 bytes) + 46 random bytes, sent encrypted to the server's "
            "RSA key in ClientKeyExchange", "RFC 5246 §8.1.1"),
    "PSK": ("other_secret (N zero bytes for PSK, the ECDH secret for ECDHE_PSK) and the "
            "PSK, each with a 2-byte length", "RFC 4279 §2, RFC 5489 §2"),
}
_MASTER_12 = ('master_secret = PRF(pre_master_secret, "master secret", ClientHello.random '
              "+ ServerHello.random)[0..47]", "RFC 5246 §8.1")
_MASTER_EMS = ('master_secret = PRF(pre_master_secret, "extended master secret", '
               "session_hash)[0..47]", "RFC 7627 §4")


def secret_derivation(name: str, version: ProtocolVersion | None, *, ems: bool = False,
                      resumed: bool = False, kx: str | None = None) -> tuple[str, str]:
    """(how ``name`` was computed, the RFC section saying so). ``ems``: TLS 1.2 with the
    extended master secret; ``resumed``: a TLS 1.2 master secret taken from the session;
    ``kx``: the TLS 1.2 key exchange ("ECDHE", "DHE", "RSA")."""
    if version == ProtocolVersion.TLS12:
        if name == "pre_master_secret" and kx in _PRE_MASTER:
            return _PRE_MASTER[kx]
        if name == "master_secret":
            if resumed:
                return ("the session's master secret, reused (abbreviated handshake)",
                        "RFC 5246 §7.3")
            return _MASTER_EMS if ems else _MASTER_12
        if name in _DERIVATIONS_12:
            return _DERIVATIONS_12[name]
    if name in _DERIVATIONS_13:
        section = "RFC 8446 §7.4" if name == "ecdhe_shared_secret" else "RFC 8446 §7.1"
        return _DERIVATIONS_13[name], section
    update = _KEY_UPDATE.fullmatch(name)
    if update is not None and int(update.group(2)) > 0:
        side, n = update.group(1), int(update.group(2))
        return (f"HKDF-Expand-Label({side}_application_traffic_secret_{n - 1}, "
                '"traffic upd", "", Hash.length)', "RFC 8446 §7.2")
    return "", ""


# ------------------------------------------------------------------------------ values
def code_point(value: OpenEnum) -> str:
    """An IANA code point by name; ``GREASE_0x0a0a`` / ``UNKNOWN_0x1234`` otherwise."""
    if isinstance(value, ProtocolVersion) and value.known:
        return f"{value.label} ({int(value):#06x})"
    return str(value)


def _hex_groups(data: bytes) -> str:
    """Hex in groups of 8 bytes, so long values wrap between groups."""
    return " ".join(data[i:i + 8].hex() for i in range(0, len(data), 8))


def show_bytes(data: bytes) -> str:
    """Hex (in 8-byte groups), whole up to 64 bytes; longer: the first 32 and how many
    more (never cut silently)."""
    if not data:
        return "(empty)"
    if len(data) <= _SHOW_WHOLE:
        return f"{_hex_groups(data)} ({len(data)} bytes)"
    return (f"{_hex_groups(data[:_HEAD])}… (+{len(data) - _HEAD} more bytes, {len(data)} "
            "in all)")


def show_value(value: Any) -> str:
    """One field's value, for people."""
    if isinstance(value, bytes | bytearray | memoryview):
        return show_bytes(bytes(value))
    if isinstance(value, OpenEnum):
        return code_point(value)
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, tuple | list):
        if not value:
            return "(none)"
        items = [show_value(v) for v in value]
        return f"[{len(items)}] " + ", ".join(items)
    if is_dataclass(value) and not isinstance(value, type):
        return " ".join(f"{f.name}={show_value(getattr(value, f.name))}"
                        for f in fields(value))
    return str(value)


def _extension_value(ext: Any) -> str:
    """An extension's body in words (ALPN and SNI as text, key shares with group)."""
    from tlsmith.codec import extensions as x

    if isinstance(ext, x.ServerName):
        return ext.host_name or "(empty: the server used our name)"
    if isinstance(ext, x.ApplicationLayerProtocolNegotiation):
        return ", ".join(p.decode("ascii", "replace") for p in ext.protocol_name_list)
    if isinstance(ext, x.KeyShareClientHello):
        return "; ".join(f"{code_point(e.group)} {show_bytes(e.key_exchange)}"
                         for e in ext.client_shares) or "(none: asks for a HelloRetryRequest)"
    if isinstance(ext, x.KeyShareServerHello):
        share = ext.server_share
        return f"{code_point(share.group)} {show_bytes(share.key_exchange)}"
    if isinstance(ext, x.UnknownExtension | x.MalformedExtension):
        return f"raw {show_bytes(ext.data)}"
    values = [getattr(ext, f.name) for f in fields(ext)]
    if not values:
        return "(empty)"
    if len(values) == 1:
        return show_value(values[0])
    return show_value(ext)


def message_fields(message: Any, name: str) -> list[tuple[str, str]]:
    """(field, value) for every field of ``message``, in wire order; each extension on
    its own row as ``extension <name> (<type>)``."""
    from tlsmith.codec.extensions_base import ext_name

    if name == "Alert" and isinstance(message, tuple):
        return [("level", code_point(message[0])), ("description", code_point(message[1]))]
    if name == "ChangeCipherSpec" or message is None:
        return [("type", "change_cipher_spec(1)")]
    if not (is_dataclass(message) and not isinstance(message, type)):
        return [("value", str(message))]
    rows: list[tuple[str, str]] = []
    for f in fields(message):
        value = getattr(message, f.name)
        if f.name == "has_extensions_block":
            continue
        if f.name == "extensions":
            rows.append(("extensions", f"[{len(value)}]" if value else "(none)"))
            for ext in value:
                rows.append((f"  {ext_name(ext.extension_type)} ({int(ext.extension_type)})",
                             _extension_value(ext)))
        elif f.name == "certificate_list":
            rows.append((f.name, f"[{len(value)}]"))
            for i, entry in enumerate(value):
                der = getattr(entry, "cert_data", entry)
                rows.append((f"  [{i}]", f"certificate {show_bytes(der)}"))
                for ext in getattr(entry, "extensions", ()):
                    rows.append((f"    {ext_name(ext.extension_type)}", _extension_value(ext)))
        else:
            rows.append((f.name, show_value(value)))
    return rows


# -------------------------------------------------------------------------------- JSON
def value_to_json(value: Any) -> Any:
    """A field's value for JSON: bytes as hex, code points by name (GREASE and unknown
    ones as ``GREASE_0x....`` / ``UNKNOWN_0x....``), dataclasses as objects."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, OpenEnum):
        return str(value)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [value_to_json(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        from tlsmith.codec.extensions_base import ExtensionBody

        if isinstance(value, ExtensionBody):
            return extension_to_json(value)
        return {f.name: value_to_json(getattr(value, f.name)) for f in fields(value)}
    return str(value)


def extension_to_json(ext: Any) -> dict[str, Any]:
    """``{"extension": "key_share", "type": 51, <body fields>}``; an unknown or GREASE
    extension has ``data`` (hex) as its body."""
    from tlsmith.codec.enums import is_grease
    from tlsmith.codec.extensions_base import ext_name

    t = ext.extension_type
    out: dict[str, Any] = {"extension": ext_name(t), "type": int(t)}
    if is_grease(int(t)):
        out["grease"] = True
    for f in fields(ext):
        if f.name != "extension_type":
            out[f.name] = value_to_json(getattr(ext, f.name))
    return out


def message_to_json(message: Any, name: str) -> dict[str, Any] | None:
    """Every field of a traced message (None for ChangeCipherSpec)."""
    if name == "Alert" and isinstance(message, tuple):
        return {"level": str(message[0]).lower(), "description": str(message[1]).lower()}
    if message is None or not (is_dataclass(message) and not isinstance(message, type)):
        return None
    out = {f.name: value_to_json(getattr(message, f.name)) for f in fields(message)}
    from tlsmith.codec.messages import ServerHello

    if isinstance(message, ServerHello):
        out["is_hello_retry_request"] = message.is_hello_retry_request
    return out
