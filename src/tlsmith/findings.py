"""Findings: what ``tlsmith diagnose`` and ``tlsmith probe`` report, one shape for both.

Each finding has a stable ``id`` (a contract: scripts match on it), a severity, the
sentence that says what is wrong, the fix, and the evidence -- which probe showed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")

#: The finding ids with a documented meaning (diagnose must name at least these).
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
