"""Findings: what ``tlsmith diagnose`` and ``tlsmith probe`` report, one shape for both.

Each finding has a stable ``id`` (a contract: scripts match on it), a severity, the
sentence that says what is wrong, the fix, and the evidence -- which probe showed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")

#: Every finding id with its meaning; the first fourteen are the ones the issue names
#: (diagnose reports at least those).
KNOWN_IDS: dict[str, str] = {
    "protocol_version_mismatch": "no protocol version in common (e.g. a TLS 1.0/1.1-only "
                                 "server)",
    "no_shared_cipher_suite": "no cipher suite in common",
    "no_shared_group": "no key-exchange group in common",
    "client_certificate_required": "the server requires a client certificate",
    "certificate_expired": "the server's certificate has expired",
    "certificate_not_yet_valid": "the server's certificate is not valid yet (or the "
                                 "clock is wrong)",
    "hostname_mismatch": "the certificate is not valid for the name asked for",
    "self_signed": "the server's certificate is self-signed and not trusted",
    "unknown_issuer": "the chain ends at a CA we do not trust",
    "missing_intermediate": "the server does not send an intermediate certificate",
    "certificate_revoked": "the certificate was revoked",
    "alpn_mismatch": "no ALPN protocol in common",
    "weak_key": "the certificate's key is too small",
    "sha1_signature": "the certificate is signed with SHA-1",
    # more that diagnose reports
    "certificate_bad_signature": "a signature in the chain does not verify",
    "certificate_wrong_usage": "the certificate is not for TLS server authentication",
    "certificate_malformed": "the certificate cannot be parsed",
    "certificate_policy": "the certificate breaks the X.509 profile",
    "client_certificate_optional": "the server asks for a client certificate but does "
                                   "not require one",
    "client_certificate_rejected": "the server refused the client certificate we sent",
    "handshake_fails_without_verification": "the handshake fails even without "
                                            "verifying the certificate",
    "handshake_failure": "the server refuses the handshake for a reason not isolated",
    "hello_retry_request": "the server needs a HelloRetryRequest for its key share",
    "mac_then_encrypt": "the server offers CBC only without encrypt_then_mac",
    "no_extended_master_secret": "the server does not support the extended master "
                                 "secret (RFC 7627)",
    "no_tls_answer": "the server closed or stayed silent",
    "not_tls": "the server does not speak TLS on this port",
    "signature_algorithm_mismatch": "no signature algorithm in common",
    "sni_unrecognized": "the server does not recognise the name we asked for",
    "tls12_only": "the server does not speak TLS 1.3",
    "version_intolerance": "the server fails when offered both versions but works with "
                           "one",
    "weak_dh": "the server's finite-field DH group is too small",
    # more that probe reports (docs/probe-schema.md)
    "cbc_suites": "the server accepts CBC suites",
    "certificate_expiring": "the certificate expires soon",
    "early_data_accepted": "the server accepts 0-RTT data (replayable)",
    "grease_intolerant": "the server fails on GREASE values (RFC 8701)",
    "large_hello_intolerant": "the server fails on a large ClientHello",
    "legacy_protocol_version": "the server accepts TLS 1.0 or 1.1",
    "no_downgrade_sentinel": "a TLS 1.3 server without the downgrade sentinel",
    "no_fallback_scsv": "the server ignores TLS_FALLBACK_SCSV (RFC 7507)",
    "no_secure_renegotiation": "no renegotiation_info (RFC 5746)",
    "no_tls13": "the server does not speak TLS 1.3",
    "probe_error": "one probe could not run",
    "robot": "an RSA padding oracle (ROBOT)",
    "robot_inconclusive": "the ROBOT check was inconclusive",
    "rsa_key_exchange": "the server accepts RSA key transport (no forward secrecy)",
    "sha1_signature_algorithm": "the server signs its key exchange with SHA-1",
    "tls_compression": "the server accepts TLS compression (CRIME)",
}


@dataclass(frozen=True)
class Finding:
    id: str
    severity: Severity
    text: str
    fix: str
    evidence: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "severity": self.severity, "text": self.text,
                "fix": self.fix, "evidence": self.evidence}


__all__ = ["KNOWN_IDS", "SEVERITIES", "Finding", "Severity"]
