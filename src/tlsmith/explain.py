"""Failures explained in plain words, with the likely fix (used by the CLI)."""

from __future__ import annotations

import socket

from tlsmith import errors as e
from tlsmith.codec.enums import AlertDescription

_ALERT_HINTS: dict[AlertDescription, str] = {
    AlertDescription.HANDSHAKE_FAILURE:
        "The server found no parameters it shares with us. Compare --cipher/--group "
        "with what the server accepts, or try without them.",
    AlertDescription.PROTOCOL_VERSION:
        "The server does not speak the TLS version we offered (this client speaks TLS 1.3).",
    AlertDescription.UNKNOWN_CA:
        "The peer does not trust the certificate authority that issued our certificate.",
    AlertDescription.NO_APPLICATION_PROTOCOL:
        "No ALPN protocol in common: check --alpn.",
    AlertDescription.DECODE_ERROR:
        "The peer could not parse one of our messages.",
    AlertDescription.ILLEGAL_PARAMETER:
        "The peer rejected a value in one of our messages.",
    AlertDescription.CERTIFICATE_REQUIRED:
        "The server requires a client certificate.",
    AlertDescription.UNRECOGNIZED_NAME:
        "The server has no certificate for the name we asked for: check --servername.",
}

_ERROR_HINTS: dict[type[e.ProtocolError], str] = {
    # Certificate errors (UnknownCA, CertificateExpired, ...) already carry their hint.
    e.BadCertificate: "The server's certificate is malformed or its signature is wrong.",
    e.HandshakeFailure: "No parameters in common: compare the offered suites/groups.",
    e.ProtocolVersionError: "The peer and we share no TLS version.",
    e.DecryptError: "A signature or Finished check failed: the peer's key does not "
                    "match its certificate, or something changed the handshake in transit.",
    e.BadRecordMac: "A record failed authentication: the data was altered in transit or "
                    "the two sides derived different keys.",
    e.IllegalParameter: "The peer sent a value the protocol forbids here.",
    e.DecodeError: "The peer sent a message that could not be parsed.",
    e.UnexpectedMessage: "The peer sent a message out of order.",
}


def explain(exc: BaseException, *, host: str = "", port: int = 0) -> str:
    """One paragraph: what happened and what to try."""
    where = f"{host}:{port}" if host else "the peer"
    if isinstance(exc, e.AlertReceived):
        hint = _ALERT_HINTS.get(exc.description, "")
        return (f"The handshake with {where} failed: the peer sent the fatal alert "
                f"'{exc.description.rfc_name}'. {hint}").strip()
    if isinstance(exc, e.ProtocolError):
        hint = next((h for cls, h in _ERROR_HINTS.items() if isinstance(exc, cls)), "")
        return (f"The handshake with {where} failed: {exc.message}. We sent the alert "
                f"'{exc.alert.rfc_name}'. {hint}").strip()
    if isinstance(exc, e.ConnectionClosedError):
        return (f"The connection to {where} closed before the handshake finished: {exc}. "
                "The server may not speak TLS on this port, or may have rejected us "
                "without an alert.")
    if isinstance(exc, ConnectionRefusedError):
        return f"Nothing is listening at {where} (connection refused)."
    if isinstance(exc, socket.timeout | TimeoutError):
        return (f"{where} did not answer in time. Check the address and port, or raise "
                "--timeout.")
    if isinstance(exc, socket.gaierror):
        return f"The name {host!r} could not be resolved: {exc}."
    if isinstance(exc, OSError):
        return f"The network operation with {where} failed: {exc}."
    if isinstance(exc, e.UsageError):
        return f"Invalid options: {exc}"
    return f"Unexpected error with {where}: {exc!r}"
