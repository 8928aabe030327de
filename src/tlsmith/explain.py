"""Failures explained in plain words, with the likely fix (used by the CLI)."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any

from tlsmith import errors as e
from tlsmith.codec.enums import AlertDescription, ProtocolVersion

_ALERT_HINTS: dict[AlertDescription, str] = {
    # HANDSHAKE_FAILURE: see _handshake_failure_hint (the cause depends on what we sent).
    AlertDescription.UNKNOWN_CA:
        "The peer does not trust the certificate authority that issued our certificate.",
    AlertDescription.NO_APPLICATION_PROTOCOL:
        "No ALPN protocol in common: the server speaks none of the protocols we offered "
        "(--alpn); offer one it speaks, or none.",
    AlertDescription.DECODE_ERROR:
        "The peer could not parse one of our messages.",
    AlertDescription.ILLEGAL_PARAMETER:
        "The peer rejected a value in one of our messages.",
    AlertDescription.CERTIFICATE_REQUIRED:
        "The server requires a client certificate: pass one with --cert/--key.",
    AlertDescription.UNRECOGNIZED_NAME:
        "The server has no certificate for the name we asked for: check --servername.",
}

#: For certificate errors, by ``reason``: the message already says what to fix; this
#: says in general words what kind of failure it is. Never "malformed" unless it is.
_REASON_HINTS: dict[str, str] = {
    "malformed": "The certificate's encoding (ASN.1/DER) is invalid.",
    "bad_signature": "A signature in the certificate chain does not verify.",
    "expired": "Certificates are valid only between their not_before and not_after dates.",
    "not_yet_valid": "Certificates are valid only between their not_before and not_after "
                     "dates.",
    "hostname_mismatch": "A certificate is valid only for the names in its "
                         "subjectAltName.",
    "self_signed": "A self-signed certificate is trusted only if you say so (--cafile).",
    "unknown_issuer": "The chain does not end at a certificate authority we trust.",
    "missing_intermediate": "The server must send the intermediate CA certificates "
                            "between its certificate and the root.",
    "wrong_usage": "The certificate is not allowed for this use.",
    "weak_key": "The certificate's key is too small to be accepted.",
    "weak_signature": "Certificates signed with SHA-1 or MD5 are no longer accepted.",
    "revoked": "The certificate's issuer has revoked it.",
    "policy": "",
}

_ERROR_HINTS: dict[type[e.ProtocolError], str] = {
    # Certificate errors (UnknownCA, CertificateExpired, ...) carry their hint, and
    # get a general word from _REASON_HINTS.
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


#: Alerts whose cause one handshake cannot tell: point at ``tlsmith diagnose``.
_UNCERTAIN_ALERTS = frozenset({
    AlertDescription.HANDSHAKE_FAILURE, AlertDescription.INSUFFICIENT_SECURITY,
    AlertDescription.ILLEGAL_PARAMETER, AlertDescription.DECODE_ERROR,
    AlertDescription.INTERNAL_ERROR, AlertDescription.PROTOCOL_VERSION,
})


def _diagnose_hint(where: str) -> str:
    target = where if where != "the peer" else "HOST:PORT"
    return f"Run `tlsmith diagnose {target}` to find out why."


def _handshake_failure_hint(offered: Sequence[ProtocolVersion]) -> str:
    """handshake_failure says only "nothing in common": a version refused the lazy way
    (GnuTLS/OpenSSL servers that do not speak what we offered), a suite, a group, a
    signature algorithm or a missing client certificate. Say so, without guessing."""
    if len(offered) == 1:
        only = ProtocolVersion(offered[0]).label
        flag = "--tls1.3" if offered[0] == ProtocolVersion.TLS13 else "--tls1.2"
        return (f"We offered only {only}: a server that does not speak it may answer "
                f"handshake_failure; try without {flag}.")
    return ("The server found no parameters it shares with us: a cipher suite, a "
            "key-exchange group, a signature algorithm or a TLS version (or it wants a "
            "client certificate). If you passed --cipher/--group, try without them.")


def _version_hint(offered: Sequence[ProtocolVersion]) -> str:
    """RFC 8446 §4.2.1 / RFC 8996: the peer refused every version we offered."""
    ours = " and ".join(ProtocolVersion(v).label for v in offered) or "TLSv1.3 and TLSv1.2"
    if list(offered) == [ProtocolVersion.TLS13]:
        return (f"The server accepts none of the versions we offered ({ours}); a server "
                "that refuses TLS 1.3 usually speaks TLSv1.2 only: try --tls1.2, or drop "
                "--tls1.3.")
    if list(offered) == [ProtocolVersion.TLS12]:
        return (f"The server accepts none of the versions we offered ({ours}); it may speak "
                "TLSv1.3 only: drop --tls1.2.")
    return (f"The server accepts none of the versions we offered ({ours}); it probably "
            "speaks only TLSv1.1 or older, which are deprecated (RFC 8996) and not "
            "implemented here.")


def explain(exc: BaseException, *, host: str = "", port: int = 0,
            offered_versions: Sequence[ProtocolVersion] = ()) -> str:
    """One paragraph: what happened and what to try. ``offered_versions``: the versions
    our side offered, to explain a protocol_version refusal."""
    where = f"{host}:{port}" if host else "the peer"
    if isinstance(exc, e.AlertReceived):
        if exc.description == AlertDescription.PROTOCOL_VERSION:
            hint = _version_hint(offered_versions)
        elif exc.description == AlertDescription.HANDSHAKE_FAILURE:
            hint = _handshake_failure_hint(offered_versions)
        else:
            hint = _ALERT_HINTS.get(exc.description, "")
        if exc.description in _UNCERTAIN_ALERTS and not (
                exc.description == AlertDescription.PROTOCOL_VERSION
                and len(offered_versions) == 1):
            hint = f"{hint} {_diagnose_hint(where)}".strip()
        return (f"The handshake with {where} failed: the peer sent the fatal alert "
                f"'{exc.description.rfc_name}'. {hint}").strip()
    if isinstance(exc, e.CertificateError):
        hint = _REASON_HINTS.get(exc.reason, "")
        sha1 = _sha1_signed(exc.peer_chain)
        if sha1 and exc.reason in ("weak_key", "unknown_issuer", "bad_signature", "policy"):
            # The verifier refuses SHA-1 signatures before checking them: whatever it
            # concluded, a SHA-1-signed certificate is the likely cause (as diagnose says).
            hint = (f"{sha1} is signed with SHA-1, which tlsmith (like browsers) no longer "
                    "accepts: that is the likely cause; reissue it signed with SHA-256. "
                    f"{_diagnose_hint(where)}")
        text = (f"The handshake with {where} failed: {exc.message}. We sent the alert "
                f"'{exc.alert.rfc_name}' (reason: {exc.reason}). {hint}").strip()
        if exc.peer_chain:
            text += "\n" + format_chain(exc.peer_chain)
        return text
    if isinstance(exc, e.ProtocolError):
        hint = next((h for cls, h in _ERROR_HINTS.items() if isinstance(exc, cls)), "")
        if isinstance(exc, e.HandshakeFailure) and "in common" not in exc.message:
            hint = ""  # our own refusal (EMS, EtM, ...): the message says what to change
        elif isinstance(exc, e.ProtocolVersionError) and _chose_old_version(exc.message):
            hint = ("The server speaks only TLS 1.1 or older, which are deprecated (RFC "
                    "8996) and not implemented here: it must enable TLS 1.2 or 1.3.")
        elif isinstance(exc, e.HandshakeFailure | e.ProtocolVersionError):
            hint = f"{hint} {_diagnose_hint(where)}"
        elif isinstance(exc, e.UnexpectedMessage) and \
                exc.message.startswith("record of unknown content type"):
            # What came back is not TLS at all (plain HTTP, SSH, a STARTTLS greeting).
            hint = ("The server does not seem to speak TLS on this port: its answer is not "
                    "a TLS record (plain HTTP? a protocol that needs STARTTLS first?).")
        return (f"The handshake with {where} failed: {exc.message}. We sent the alert "
                f"'{exc.alert.rfc_name}'. {hint}").strip()
    if isinstance(exc, e.ConnectionClosedError):
        return (f"The connection to {where} closed before the handshake finished: {exc}. "
                "The server may not speak TLS on this port, or may have rejected us "
                f"without an alert. {_diagnose_hint(where)}")
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


def _sha1_signed(chain: Sequence[Mapping[str, Any]]) -> str:
    """The first certificate in ``chain`` (describe_chain form) signed with SHA-1 or MD5,
    as "Certificate 'CN=..'"; "" if none (a self-signed root's own signature is never
    checked, so it does not count)."""
    for cert in chain:
        algorithm = str(cert.get("signature_algorithm", "")).lower()
        if ("sha1" in algorithm or "md5" in algorithm) and \
                cert.get("subject") != cert.get("issuer"):
            return f"Certificate '{cert.get('subject')}'"
    return ""


def _chose_old_version(message: str) -> bool:
    """Our refusal of a server that chose TLS 1.1/1.0/SSL 3.0 (client.py's message)."""
    return any(f"chose {label}," in message or f"chose {label} " in message
               for label in ("TLSv1.1", "TLSv1", "SSLv3"))


def format_chain(chain: Sequence[Mapping[str, Any]], *, who: str = "the server") -> str:
    """The chain a peer sent, as ``openssl s_client`` prints it: one entry per
    certificate (``describe_chain`` dictionaries), in the order sent."""
    lines = [f"Certificate chain {who} sent:"]
    for index, cert in enumerate(chain):
        lines.append(f" {index} s:{cert.get('subject') or '(empty)'}")
        lines.append(f"   i:{cert.get('issuer') or '(empty)'}")
        if cert.get("error"):
            lines.append(f"   {cert['error']}")
        else:
            lines.append(f"   v:NotBefore: {cert.get('not_before')}; "
                         f"NotAfter: {cert.get('not_after')}")
            sans = cert.get("subject_alt_names") or []
            lines.append(f"   SAN: {', '.join(sans) if sans else '(none)'}")
        lines.append(f"   SHA-256: {cert.get('sha256_fingerprint', '')}")
    return "\n".join(lines)
