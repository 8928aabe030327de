"""``tlsmith diagnose``: run the handshake a default client runs; if it fails, change one
thing at a time and run it again until the cause is isolated, then say it in words.

Attempts (each bounded by ``timeout``; at most ``max_attempts`` in all):

1. the default client (the ``base`` config: TLS 1.3+1.2, default suites and groups,
   verification on). Success: ``ok`` and non-fatal findings (weak key / SHA-1 in the
   chain, TLS 1.2 only, HelloRetryRequest needed).
2. by the first failure's kind:
   * our verifier refused the chain: once more with verification off (does the rest of
     the handshake work? what chain is sent?), then the chain is classified with
     tlsmith's own verifier reasons;
   * the server wanted a client certificate (certificate_required, or an alert after a
     CertificateRequest): ``client_certificate_required`` naming its CAs;
   * no_application_protocol: once more without ALPN; unrecognized_name: without SNI;
   * our own refusal (no extended master secret, MAC-then-encrypt, small DH): once more
     with that one check relaxed;
   * anything else (handshake_failure, protocol_version, a silent close): TLS 1.2 only,
     TLS 1.3 only, then all TLS 1.2 suites tlsmith knows (RSA key transport, CBC
     MAC-then-encrypt), all TLS 1.3 suites, all groups, all signature algorithms,
     without SNI; then, with the raw ClientHello prober (``tlsmith.probe.hello``, when
     present), TLS 1.0/1.1 and suites/groups tlsmith does not implement.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from tlsmith import errors as e
from tlsmith.codec.enums import AlertDescription, CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import ClientConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto.kx import SUPPORTED_GROUPS
from tlsmith.crypto.sig import SUPPORTED_SIGNATURE_SCHEMES
from tlsmith.crypto.suites import TLS12_SUITES, TLS13_SUITES, suite_info
from tlsmith.events import HandshakeInfo
from tlsmith.findings import KNOWN_IDS, Finding, Severity
from tlsmith.io.blocking import TLSSocket
from tlsmith.observe import MessageTrace, combine_observers
from tlsmith.trace import TraceCollector

MAX_ATTEMPTS = 12

#: Certificate verifier reason -> finding id.
REASON_IDS: dict[str, str] = {
    "expired": "certificate_expired",
    "not_yet_valid": "certificate_not_yet_valid",
    "hostname_mismatch": "hostname_mismatch",
    "self_signed": "self_signed",
    "unknown_issuer": "unknown_issuer",
    "missing_intermediate": "missing_intermediate",
    "revoked": "certificate_revoked",
    "weak_key": "weak_key",
    "weak_signature": "sha1_signature",  # SHA-1 (or MD5) signatures
    "bad_signature": "certificate_bad_signature",
    "wrong_usage": "certificate_wrong_usage",
    "malformed": "certificate_malformed",
    "policy": "certificate_policy",
}

_REASON_FIXES: dict[str, str] = {
    "expired": "Renew the server's certificate and install the new one (with its "
               "intermediates).",
    "not_yet_valid": "If this machine's clock is wrong, set it right (NTP); otherwise "
                     "reissue the certificate with a start date in the past.",
    "hostname_mismatch": "Connect with a name the certificate lists (--servername), or "
                         "reissue the certificate with this name in its subjectAltName.",
    "self_signed": "Install a certificate issued by a CA the clients trust; or, if you "
                   "trust this certificate, pass it with --cafile.",
    "unknown_issuer": "If you trust the CA that issued it, pass its certificate with "
                      "--cafile; otherwise install a certificate from a trusted CA.",
    "missing_intermediate": "Configure the server to send its intermediate CA "
                            "certificate(s) after its own (the full chain file).",
    "revoked": "Install a new certificate: the issuer has revoked this one.",
    "weak_key": "Reissue the certificate with an RSA key of 2048 bits or more, or an "
                "ECDSA P-256/P-384 key, signed with SHA-256 or better.",
    "weak_signature": "Reissue the certificate signed with SHA-256 or better.",
    "bad_signature": "Send the right issuer certificate; reissue the chain if it was "
                     "altered.",
    "wrong_usage": "Reissue the certificate for TLS server authentication (serverAuth, "
                   "with CA certificates marked cA=TRUE).",
    "malformed": "Reissue the certificate with a standard tool (openssl, cryptography).",
    "policy": "Reissue the certificate following RFC 5280.",
}

# Suites the raw prober offers that tlsmith does not implement (legacy servers).
_LEGACY_SUITES: dict[int, str] = {
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x0004: "TLS_RSA_WITH_RC4_128_MD5",
    0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    0xC007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    0x0041: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0084: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x0032: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    0x0038: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    0xC09C: "TLS_RSA_WITH_AES_128_CCM",
    0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    0xC0A0: "TLS_RSA_WITH_AES_128_CCM_8",
    0xC0AE: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
}
# Groups the raw prober offers that tlsmith does not implement.
_LEGACY_GROUPS: dict[int, str] = {
    0x0015: "secp224r1",
    0x0016: "secp256k1",
    0x001A: "brainpoolP256r1",
    0x001B: "brainpoolP384r1",
    0x001C: "brainpoolP512r1",
    0x001F: "brainpoolP256r1tls13",
    0x0020: "brainpoolP384r1tls13",
    0x0021: "brainpoolP512r1tls13",
    0x0103: "ffdhe6144",
    0x0104: "ffdhe8192",
    0x11EB: "SecP256r1MLKEM768",
    0x0200: "MLKEM512",  # draft-ietf-tls-mlkem §6
    0x0201: "MLKEM768",
    0x0202: "MLKEM1024",
}
# A curve every ECDHE server knows: the prober offers it next to the suites it tries.
_COMMON_GROUPS = (0x001D, 0x0017, 0x0018, 0x0019, 0x0100)


class HostUnreachable(Exception):
    """Not even a TCP connection could be made (the CLI exits 1)."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause


@dataclass
class Attempt:
    """One handshake (or raw ClientHello) and what came of it."""

    number: int
    label: str  # what changed against the default client, in words
    ok: bool
    outcome: str  # "TLSv1.2, TLS_ECDHE_..., x25519" or "alert handshake_failure"
    error: str | None = None  # short: "alert:handshake_failure", "certificate:expired", ...
    raw: bool = False  # made with the raw ClientHello prober
    info: HandshakeInfo | None = field(default=None, repr=False)
    exc: BaseException | None = field(default=None, repr=False)
    records: list[Any] = field(default_factory=list, repr=False)
    answer: Any = field(default=None, repr=False)

    @property
    def evidence(self) -> str:
        return f"attempt {self.number}: {self.label} → {self.outcome}"

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "label": self.label, "ok": self.ok,
                "outcome": self.outcome, "error": self.error, "raw": self.raw}


@dataclass
class Diagnosis:
    host: str
    port: int
    ok: bool
    findings: list[Finding]
    attempts: list[Attempt]
    summary: str = ""  # one sentence: the verdict

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "ok": self.ok, "summary": self.summary,
                "findings": [f.to_json() for f in self.findings],
                "attempts": [a.to_json() for a in self.attempts]}


Prober = Callable[..., Any]


def _load_prober() -> Prober | None:
    """``tlsmith.probe.hello.send_client_hello`` if that module exists (it is optional)."""
    try:
        from tlsmith.probe import hello
    except ImportError:
        return None
    fn = getattr(hello, "send_client_hello", None)
    return fn if callable(fn) else None


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, e.AlertReceived):
        return f"alert:{exc.description.rfc_name}"
    if isinstance(exc, e.CertificateError):
        return f"certificate:{exc.reason}"
    if isinstance(exc, e.ProtocolError):
        return f"refused:{exc.alert.rfc_name}"
    if isinstance(exc, e.ConnectionClosedError):
        return "closed"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    return type(exc).__name__


def _outcome_text(exc: BaseException) -> str:
    if isinstance(exc, e.AlertReceived):
        return f"the server sent the alert {exc.description.rfc_name}"
    if isinstance(exc, e.CertificateError):
        return f"we refused the certificate ({exc.reason})"
    if isinstance(exc, e.ProtocolError):
        return f"we refused: {exc.message}"
    if isinstance(exc, e.ConnectionClosedError):
        return "the server closed the connection without an alert"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


def _info_text(info: HandshakeInfo) -> str:
    group = f", {info.group.name.lower()}" if info.group is not None else ""
    hrr = " (after a HelloRetryRequest)" if info.hello_retry_request else ""
    return f"ok: {info.version_label}, {info.cipher_suite.name}{group}{hrr}"


class _Runner:
    def __init__(self, host: str, port: int, base: ClientConfig, timeout: float,
                 max_attempts: int, prober: Prober | None) -> None:
        self.host, self.port, self.base = host, port, base
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.prober = prober
        self.attempts: list[Attempt] = []
        self.timeouts = 0

    @property
    def budget_left(self) -> bool:
        # Two silent servers in a row: more attempts would only wait the same again.
        return len(self.attempts) < self.max_attempts and self.timeouts < 2

    def run(self, label: str, config: ClientConfig) -> Attempt | None:
        if not self.budget_left:
            return None
        number = len(self.attempts) + 1
        collector = TraceCollector()
        config = replace(config, observer=combine_observers(config.observer, collector))
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            if number == 1:
                from tlsmith.explain import explain

                raise HostUnreachable(explain(exc, host=self.host, port=self.port),
                                      exc) from exc
            attempt = Attempt(number, label, False, f"cannot connect: {exc}",
                              error=_error_code(exc), exc=exc)
            self.attempts.append(attempt)
            return attempt
        tls: TLSSocket | None = None
        try:
            tls = TLSSocket(sock, TLSConnection(config))
            info = tls.do_handshake()
            # TLS 1.3: the server judges our certificate (or its absence) after our
            # Finished (RFC 8446 §4.4.2.4): wait for its verdict, briefly.
            tls.server_verdict(min(self.timeout, 2.0))
            attempt = Attempt(number, label, True, _info_text(info), info=info,
                              records=collector.records)
        except (e.TLSError, OSError) as exc:
            if isinstance(exc, TimeoutError | socket.timeout):
                self.timeouts += 1
            attempt = Attempt(number, label, False, _outcome_text(exc),
                              error=_error_code(exc), exc=exc, records=collector.records)
        finally:
            if tls is not None:
                with contextlib.suppress(Exception):
                    tls.close()
            else:
                sock.close()
        self.attempts.append(attempt)
        return attempt

    def probe(self, label: str, *, versions: Sequence[int], suites: Sequence[int],
              groups: Sequence[int], hrr_counts: bool = False) -> Attempt | None:
        """A raw ClientHello (the prober); None when there is no prober or no budget."""
        if self.prober is None or not self.budget_left:
            return None
        number = len(self.attempts) + 1
        try:
            kwargs: dict[str, Any] = {}
            if hrr_counts:
                # An empty key_share: a TLS 1.3 server names its group in an HRR.
                kwargs["key_share_groups"] = ()
            answer = self.prober(self.host, self.port, versions=tuple(versions),
                                 cipher_suites=tuple(suites), groups=tuple(groups),
                                 server_name=self.base.server_name, timeout=self.timeout,
                                 **kwargs)
        except Exception as exc:  # the prober is a helper: its failure is not the server's
            attempt = Attempt(number, label, False, f"probe failed: {exc}", error="probe",
                              raw=True, exc=exc)
            self.attempts.append(attempt)
            return attempt
        accepted = _answer_ok(answer) or (
            hrr_counts and bool(getattr(answer, "hello_retry_request", False))
            and _answer_group(answer) is not None)
        attempt = Attempt(number, label, accepted, _answer_text(answer),
                          error=None if accepted else "probe:refused", raw=True,
                          answer=answer)
        self.attempts.append(attempt)
        return attempt


# -- the prober's answer, read defensively (its module is optional) --------------------
def _answer_version(answer: Any) -> int | None:
    v = getattr(answer, "version", None)
    return int(v) if v is not None else None


def _answer_suite(answer: Any) -> int | None:
    s = getattr(answer, "cipher_suite", None)
    return int(s) if s is not None else None


def _answer_group(answer: Any) -> int | None:
    g = getattr(answer, "group", None)
    if g is None:
        g = getattr(answer, "selected_group", None)
    return int(g) if g is not None else None


def _answer_ok(answer: Any) -> bool:
    accepted = getattr(answer, "accepted", None)
    if accepted is not None:
        return bool(accepted)
    return getattr(answer, "server_hello", None) is not None or (
        _answer_version(answer) is not None and getattr(answer, "alert", None) is None)


def _suite_name(code: int | None) -> str:
    if code is None:
        return "?"
    if code in _LEGACY_SUITES:
        return _LEGACY_SUITES[code]
    try:
        return CipherSuite(code).name
    except ValueError:
        return f"0x{code:04X}"


def _group_name(code: int | None) -> str:
    if code is None:
        return "?"
    if code in _LEGACY_GROUPS:
        return _LEGACY_GROUPS[code]
    try:
        return NamedGroup(code).name.lower()
    except ValueError:
        return f"0x{code:04X}"


def _version_name(code: int | None) -> str:
    if code is None:
        return "?"
    try:
        return ProtocolVersion(code).label
    except ValueError:
        return f"0x{code:04X}"


def _answer_text(answer: Any) -> str:
    if getattr(answer, "hello_retry_request", False):
        return f"HelloRetryRequest for {_group_name(_answer_group(answer))}"
    if _answer_ok(answer):
        parts = [_version_name(_answer_version(answer)), _suite_name(_answer_suite(answer))]
        if _answer_group(answer) is not None:
            parts.append(_group_name(_answer_group(answer)))
        return "ServerHello: " + ", ".join(parts)
    alert = getattr(answer, "alert", None)
    if alert is not None:
        name = getattr(alert, "rfc_name", None) or getattr(alert, "name", None) or str(alert)
        return f"the server sent the alert {str(name).lower()}"
    error = getattr(answer, "error", None)
    return f"no ServerHello ({error})" if error else "no ServerHello"


# -- the chain ---------------------------------------------------------------------------
def _chain_findings(chain: Sequence[bytes], evidence: str, *, fatal: bool) -> list[Finding]:
    """Weak keys (RSA < 2048) and SHA-1 signatures in what the server sent."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, rsa

    findings: list[Finding] = []
    severity: Severity = "high" if fatal else "medium"
    for index, der in enumerate(chain):
        try:
            cert = x509.load_der_x509_certificate(bytes(der))
        except ValueError:
            continue
        who = "the server's certificate" if index == 0 else \
            f"certificate #{index} ({cert.subject.rfc4514_string()})"
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < 2048:
            kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA"
            findings.append(Finding(
                "weak_key", severity,
                f"{who} has a {key.key_size}-bit {kind} key; 2048 bits is the minimum "
                "browsers and public CAs accept (NIST SP 800-131A, CA/B Forum)"
                + ("" if fatal else "; tlsmith accepted it, stricter clients refuse it"),
                _REASON_FIXES["weak_key"], evidence))
        algorithm = cert.signature_hash_algorithm
        # A self-signed root's own signature is never checked: only signatures that are.
        if algorithm is not None and algorithm.name in ("sha1", "md5") and \
                cert.issuer != cert.subject:
            findings.append(Finding(
                "sha1_signature", severity,
                f"{who} is signed with {algorithm.name.upper()}, which is broken for "
                "signatures (SHAttered, 2017); clients refuse such certificates",
                "Reissue the certificate signed with SHA-256 or better.", evidence))
    return findings


def _sha1_is_the_cause(chain: Sequence[bytes], base: ClientConfig) -> bool:
    """Whether a SHA-1 signature in ``chain`` verifies with its issuer's key (sent, or
    trusted): then only the hash algorithm stands between the chain and success."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    certs = []
    for der in chain:
        with contextlib.suppress(ValueError):
            certs.append(x509.load_der_x509_certificate(bytes(der)))
    for cert in certs:
        algorithm = cert.signature_hash_algorithm
        if algorithm is None or algorithm.name != "sha1" or cert.issuer == cert.subject:
            continue
        issuers = [c for c in certs if c.subject == cert.issuer]
        if base.trust is not None:
            issuers += base.trust.issuers_of(cert)
        for issuer in issuers:
            key = issuer.public_key()
            try:
                if isinstance(key, ec.EllipticCurvePublicKey):
                    key.verify(cert.signature, cert.tbs_certificate_bytes,
                               ec.ECDSA(algorithm))
                elif isinstance(key, rsa.RSAPublicKey):
                    key.verify(cert.signature, cert.tbs_certificate_bytes,
                               padding.PKCS1v15(), algorithm)
                else:
                    continue
            except Exception:  # InvalidSignature: this is not its issuer
                continue
            return True
    return False


def _certificate_finding(exc: e.CertificateError, evidence: str, *,
                         clock: Callable[[], float]) -> Finding:
    reason = exc.reason
    text = exc.message
    if reason == "not_yet_valid":
        now = datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        start = ""
        if exc.peer_chain:
            start = str(exc.peer_chain[0].get("not_before", ""))
        text = (f"this machine's clock reads {now} but the certificate is valid from "
                f"{start or 'a later date'}: either the clock here is behind or the "
                f"certificate was issued with a future start date ({exc.message})")
    elif reason == "revoked":
        text = f"the server's certificate was revoked by its issuer: {exc.message}"
    severity: Severity = "critical" if reason in ("revoked", "bad_signature") else "high"
    return Finding(REASON_IDS.get(reason, "certificate_policy"), severity, text,
                   _REASON_FIXES.get(reason, "Reissue the certificate."), evidence)


# -- client certificates -----------------------------------------------------------------
def _certificate_request(records: Sequence[Any]) -> Any | None:
    for r in records:
        if isinstance(r, MessageTrace) and r.direction == "received" and \
                r.name.startswith("CertificateRequest"):
            return r.message
    return None


def _requested_cas(request: Any) -> list[str]:
    from tlsmith.codec import extensions as ext

    names: tuple[bytes, ...] = tuple(getattr(request, "certificate_authorities", ()) or ())
    if not names and hasattr(request, "extensions"):
        found = ext.find_extension(request.extensions, ext.CertificateAuthorities)
        if found is not None:
            names = found.authorities
    return [_parse_dn(der) for der in names]


def _parse_dn(der: bytes) -> str:
    """Minimal DER walk of a Name: the CN / O attribute values, good enough to say."""
    oids = {b"\x55\x04\x03": "CN", b"\x55\x04\x0a": "O", b"\x55\x04\x0b": "OU",
            b"\x55\x04\x06": "C"}
    parts: list[str] = []
    i = 0
    try:
        while i < len(der):
            if der[i] == 0x06:  # an OID: the attribute type; the value follows
                length = der[i + 1]
                oid = der[i + 2:i + 2 + length]
                j = i + 2 + length
                vlen = der[j + 1]
                value = der[j + 2:j + 2 + vlen].decode("utf-8", "replace")
                if oid in oids:
                    parts.append(f"{oids[oid]}={value}")
                i = j + 2 + vlen
            else:
                i += 1
    except IndexError:
        pass
    return ",".join(reversed(parts)) or f"(a name of {len(der)} bytes)"


# -- the diagnosis -----------------------------------------------------------------------
def diagnose(host: str, port: int, *, base: ClientConfig, timeout: float = 10.0,
             max_attempts: int = MAX_ATTEMPTS, prober: Prober | None = None,
             use_prober: bool = True) -> Diagnosis:
    """Diagnose ``host:port`` (see the module docstring). Raises ``HostUnreachable``
    when not even TCP works. ``prober``: the raw ClientHello sender (default: the one in
    ``tlsmith.probe.hello``, if present; ``use_prober=False`` turns it off)."""
    if prober is None and use_prober:
        prober = _load_prober()
    runner = _Runner(host, port, base, timeout, max_attempts, prober)
    first = runner.run("default client (TLS 1.3+1.2, default suites and groups, "
                       "verification on)", base)
    assert first is not None
    findings: list[Finding] = []
    if first.ok:
        assert first.info is not None
        findings = _success_findings(runner, first)
        return Diagnosis(host, port, True, findings, runner.attempts,
                         f"a default client connects to {host}:{port} "
                         f"({first.outcome.removeprefix('ok: ')})")
    findings = _isolate(runner, first)
    # The verdict line names the cause briefly; the finding itself says it in full.
    cause = (KNOWN_IDS.get(findings[0].id) or findings[0].text) if findings else \
        first.outcome
    summary = f"a default client cannot connect to {host}:{port}: {cause}"
    return Diagnosis(host, port, False, findings, runner.attempts, summary)


def _success_findings(runner: _Runner, first: Attempt) -> list[Finding]:
    info = first.info
    assert info is not None
    findings = _chain_findings(info.peer_certificates, first.evidence, fatal=False)
    base = runner.base
    if info.version == ProtocolVersion.TLS12 and ProtocolVersion.TLS13 in base.versions:
        findings.append(Finding(
            "tls12_only", "low",
            "the server speaks TLS 1.2 but not TLS 1.3 (it chose TLS 1.2 although we "
            "offered TLS 1.3)",
            "Enable TLS 1.3 on the server: it saves a round trip and drops legacy "
            "options.", first.evidence))
    if info.hello_retry_request:
        group = info.group.name.lower() if info.group is not None else "another group"
        findings.append(Finding(
            "hello_retry_request", "info",
            f"the server asked for a key share for {group} with a HelloRetryRequest: "
            "every default handshake costs an extra round trip",
            f"Prefer a group clients send a share for (x25519), or have clients send "
            f"a {group} share.", first.evidence))
    if info.client_certificate_requested and not info.client_certificate_sent:
        findings.append(Finding(
            "client_certificate_optional", "info",
            "the server asked for a client certificate but accepted us without one",
            "Nothing to fix; pass --cert/--key to authenticate.", first.evidence))
    if info.revocation_state in ("revoked",):
        findings.append(Finding("certificate_revoked", "critical",
                                info.revocation or "the certificate was revoked",
                                _REASON_FIXES["revoked"], first.evidence))
    return findings


def _isolate(runner: _Runner, first: Attempt) -> list[Finding]:
    exc = first.exc
    base = runner.base
    if isinstance(exc, e.CertificateError):
        return _trust(runner, first, exc)
    request = _certificate_request(first.records)
    if isinstance(exc, e.AlertReceived):
        if exc.description == AlertDescription.CERTIFICATE_REQUIRED or (
                request is not None and not base.may_send_certificate):
            return [_client_cert_finding(first, request)]
        if request is not None and base.may_send_certificate:
            return [Finding(
                "client_certificate_rejected", "high",
                f"the server asked for a client certificate and refused ours "
                f"(alert {exc.description.rfc_name})",
                "Use a certificate issued by a CA the server trusts (--cert/--key), "
                "valid now and allowed for clientAuth.", first.evidence)]
        if exc.description == AlertDescription.NO_APPLICATION_PROTOCOL:
            return _alpn(runner, first)
        if exc.description == AlertDescription.UNRECOGNIZED_NAME:
            return _sni(runner, first) or _negotiation(runner, first)
    not_tls = _not_tls(exc)
    if not_tls is not None:
        return [Finding(
            "not_tls", "high",
            f"the server does not speak TLS on port {runner.port}: it answered our "
            f"ClientHello with {not_tls}",
            "Check the port (443 for HTTPS), or whether the service needs STARTTLS "
            "first (SMTP, IMAP, XMPP).", first.evidence)]
    if isinstance(exc, e.ProtocolError) and not isinstance(
            exc, e.ProtocolVersionError) and _own_refusal(exc) is not None:
        return _relax(runner, first, exc)
    return _negotiation(runner, first)


def _not_tls(exc: BaseException | None) -> str | None:
    """What the server sent instead of TLS records, in words; None if it spoke TLS."""
    if not isinstance(exc, e.UnexpectedMessage) or \
            not exc.message.startswith("record of unknown content type"):
        return None
    try:
        first = int(exc.message.rsplit(" ", 1)[1])
    except ValueError:
        return "bytes that are not a TLS record"
    guess = {ord("H"): " (plain HTTP?)", ord("S"): " (SSH?)", ord("2"): " (an SMTP/FTP "
             "greeting?)", ord("*"): " (IMAP?)", ord("+"): " (POP3?)"}.get(first, "")
    shown = repr(chr(first)) if 32 <= first < 127 else f"0x{first:02x}"
    return f"bytes that are not a TLS record, starting with {shown}{guess}"


def _client_cert_finding(attempt: Attempt, request: Any | None) -> Finding:
    cas = _requested_cas(request) if request is not None else []
    by = f" issued by {'; '.join(cas)}" if cas else ""
    return Finding(
        "client_certificate_required", "high",
        f"the server requires a client certificate{by} and refuses clients without one",
        "Pass a client certificate and its key with --cert/--key"
        + (f" (issued by {'; '.join(cas)})" if cas else "") + ".",
        attempt.evidence)


def _trust(runner: _Runner, first: Attempt, exc: e.CertificateError) -> list[Finding]:
    evidence = first.evidence
    second = runner.run("verification off (to see the chain)",
                        replace(runner.base, verify_certificates=False,
                                require_revocation=False))
    findings = [_certificate_finding(exc, evidence, clock=runner.base.clock)]
    if second is not None and second.ok and second.info is not None:
        evidence = f"{evidence}; {second.evidence}"
        findings[0] = replace(findings[0], evidence=evidence)
        extra = _chain_findings(second.info.peer_certificates, second.evidence,
                                fatal=exc.reason == "weak_key")
        sha1 = any(f.id == "sha1_signature" for f in extra)
        if sha1 and exc.reason in ("weak_key", "unknown_issuer", "bad_signature",
                                   "policy") and not any(f.id == "weak_key" for f in extra) \
                and (exc.reason == "weak_key"
                     or _sha1_is_the_cause(second.info.peer_certificates, runner.base)):
            # The verifier refuses SHA-1 signatures outright, so it calls the issuer
            # unknown (or the algorithm weak): the SHA-1 signature is the cause.
            findings = []
            extra = [replace(f, evidence=evidence) for f in extra]
        findings += [f for f in extra if f.id not in {x.id for x in findings}]
    elif second is not None and not second.ok:
        findings.append(Finding(
            "handshake_fails_without_verification", "medium",
            f"even without verifying the certificate the handshake fails "
            f"({second.outcome})", "Run again once the certificate is fixed.",
            second.evidence))
    return findings


def _alpn(runner: _Runner, first: Attempt) -> list[Finding]:
    offered = ", ".join(runner.base.alpn_protocols) or "(none)"
    second = runner.run("without ALPN", replace(runner.base, alpn_protocols=()))
    evidence = first.evidence + (f"; {second.evidence}" if second is not None else "")
    return [Finding(
        "alpn_mismatch", "high",
        f"the server speaks none of the application protocols we offered ({offered}) "
        "and refuses the connection (no_application_protocol)"
        + (" ; without ALPN it connects" if second is not None and second.ok else ""),
        "Offer a protocol the server supports (--alpn), or configure the server's "
        "ALPN list to include it.", evidence)]


def _sni(runner: _Runner, first: Attempt) -> list[Finding]:
    second = runner.run("without SNI", replace(runner.base, server_name=None))
    if second is None or not second.ok:
        return []
    return [Finding(
        "sni_unrecognized", "high",
        f"the server has no certificate for the name {runner.base.server_name!r} (it "
        "refuses it with unrecognized_name) but answers a ClientHello without SNI",
        "Connect with a name the server is configured for (--servername), or add "
        "this name to the server's configuration.", f"{first.evidence}; {second.evidence}")]


def _own_refusal(exc: e.ProtocolError) -> str | None:
    """Which of our own checks refused the server: "ems", "mte", "dh"; None if none."""
    text = exc.message.lower()
    if "extended master secret" in text or "extended_master_secret" in text:
        return "ems"
    if "encrypt_then_mac" in text or "encrypt-then-mac" in text or "mac-then-encrypt" in text:
        return "mte"
    if ("dh" in text or "diffie" in text) and ("bit" in text or "prime" in text):
        return "dh"
    return None


def _relax(runner: _Runner, first: Attempt, exc: e.ProtocolError) -> list[Finding]:
    which = _own_refusal(exc)
    base = runner.base
    if which == "ems":
        second = runner.run("TLS 1.2 without requiring extended master secret",
                            replace(base, require_extended_master_secret=False))
        fid, text, fix = ("no_extended_master_secret",
                          "the server does not support the extended master secret "
                          "(RFC 7627), which tlsmith requires in TLS 1.2 (without it a "
                          "man in the middle can synchronise two sessions: 3SHAKE)",
                          "Enable extended_master_secret (RFC 7627) or TLS 1.3 on the "
                          "server; --allow-no-ems connects anyway.")
    elif which == "mte":
        second = runner.run("CBC with MAC-then-encrypt allowed",
                            replace(base, allow_mac_then_encrypt=True))
        fid, text, fix = ("mac_then_encrypt",
                          "the server chose a CBC suite without encrypt_then_mac (RFC "
                          "7366): MAC-then-encrypt, open to padding-oracle attacks",
                          "Prefer AEAD suites (AES-GCM, ChaCha20-Poly1305) on the "
                          "server, or enable encrypt_then_mac.")
    else:
        second = runner.run("small finite-field DH groups allowed",
                            replace(base, min_dhe_bits=1024))
        fid, text, fix = ("weak_dh",
                          f"the server's Diffie-Hellman parameters are too small "
                          f"({exc.message})",
                          "Use ECDHE, or RFC 7919 ffdhe2048+ groups, on the server.")
    evidence = first.evidence + (f"; {second.evidence}" if second is not None else "")
    findings = [Finding(fid, "high", text, fix, evidence)]
    if second is not None and not second.ok:
        findings += _negotiation(runner, second)
    return findings


def _refused_version(a: Attempt | None) -> bool:
    """The server (or we) refused the version: protocol_version either way."""
    if a is None or a.ok:
        return False
    exc = a.exc
    return (isinstance(exc, e.AlertReceived)
            and exc.description == AlertDescription.PROTOCOL_VERSION) or isinstance(
        exc, e.ProtocolVersionError)


def _negotiation(runner: _Runner, first: Attempt) -> list[Finding]:
    base = runner.base
    t12 = runner.run("TLS 1.2 only", replace(base, min_version=ProtocolVersion.TLS12,
                                              max_version=ProtocolVersion.TLS12))
    if t12 is not None and t12.ok:
        return _version_findings_ok(runner, first, t12, "TLS 1.2")
    t13 = runner.run("TLS 1.3 only", replace(base, min_version=ProtocolVersion.TLS13,
                                              max_version=ProtocolVersion.TLS13))
    if t13 is not None and t13.ok:
        return _version_findings_ok(runner, first, t13, "TLS 1.3")
    tried = [a for a in (first, t12, t13) if a is not None]
    if (_refused_version(t12) or _refused_version(first)) and (t13 is None or not t13.ok):
        return _old_versions(runner, tried)
    for a in tried:
        if isinstance(a.exc, e.CertificateError):
            return _trust(runner, a, a.exc)
        if isinstance(a.exc, e.AlertReceived) and _certificate_request(a.records) is not None:
            return [_client_cert_finding(a, _certificate_request(a.records))]
    # Suites: every TLS 1.2 suite tlsmith knows (RSA key transport, CBC with
    # MAC-then-encrypt), then every TLS 1.3 suite.
    all12 = replace(base, min_version=ProtocolVersion.TLS12, max_version=ProtocolVersion.TLS12,
                    cipher_suites=tuple(TLS12_SUITES), allow_mac_then_encrypt=True)
    s12 = runner.run("TLS 1.2 only, all suites tlsmith knows (RSA key transport, CBC "
                     "MAC-then-encrypt)", all12)
    if s12 is not None and s12.ok:
        return [_suite_finding(s12, tried)]
    s13 = runner.run("TLS 1.3 only, all TLS 1.3 suites (CCM, CCM_8)",
                     replace(base, min_version=ProtocolVersion.TLS13,
                             cipher_suites=tuple(TLS13_SUITES)))
    if s13 is not None and s13.ok:
        return [_suite_finding(s13, tried)]
    if s12 is not None and _refused_version(s12) and _refused_version(t13):
        return _old_versions(runner, [*tried, s12])
    groups = tuple(SUPPORTED_GROUPS)
    g = runner.run("all suites, all groups (incl. ffdhe, x448, P-521), DH >= 1024 bits",
                   replace(base, cipher_suites=(*TLS13_SUITES, *TLS12_SUITES),
                           allow_mac_then_encrypt=True, groups=groups,
                           key_share_groups=(NamedGroup.X25519,), min_dhe_bits=1024))
    if g is not None and g.ok and g.info is not None:
        return [_group_finding(g, tried)]
    sig = runner.run("all suites, all signature algorithms (incl. SHA-1)",
                     replace(base, cipher_suites=(*TLS13_SUITES, *TLS12_SUITES),
                             allow_mac_then_encrypt=True,
                             signature_schemes=tuple(SUPPORTED_SIGNATURE_SCHEMES)))
    if sig is not None and sig.ok and sig.info is not None:
        scheme = sig.info.signature_scheme
        return [Finding(
            "signature_algorithm_mismatch", "high",
            "the server signs only with an algorithm a default client does not offer"
            + (f" ({scheme.name.lower()})" if scheme is not None else ""),
            "Give the server a certificate/key that signs with SHA-256 or better "
            "(rsa_pss_rsae_sha256, ecdsa_secp256r1_sha256).",
            f"{first.evidence}; {sig.evidence}")]
    if base.server_name is not None:
        findings = _sni(runner, first)
        if findings:
            return findings
    return _raw_probes(runner, [a for a in runner.attempts if not a.raw])


def _version_findings_ok(runner: _Runner, first: Attempt, ok: Attempt,
                         version: str) -> list[Finding]:
    return [Finding(
        "version_intolerance", "high",
        f"the server fails a ClientHello offering TLS 1.3 and 1.2 ({first.outcome}) but "
        f"accepts one offering {version} only: it is intolerant of the other version "
        "(or of extensions that come with it)",
        f"Fix the server (or the middlebox in front of it) to negotiate versions per "
        f"RFC 8446 §4.2.1; meanwhile connect with --tls{version.split()[-1]}.",
        f"{first.evidence}; {ok.evidence}")]


def _suite_finding(ok: Attempt, tried: Sequence[Attempt]) -> Finding:
    assert ok.info is not None
    suite = ok.info.cipher_suite
    info = suite_info(suite)
    rsa_kx = info is not None and info.key_exchange == "rsa"
    cbc = info is not None and info.cipher == "cbc"
    sha1 = cbc and info is not None and info.mac_name == "sha1"
    family = " ".join(word for word, on in (
        ("RSA key transport", rsa_kx), ("CBC-SHA1" if sha1 else "CBC", cbc)) if on)
    notes = []
    if rsa_kx:
        notes.append("no forward secrecy")
    if cbc and not ok.info.encrypt_then_mac:
        notes.append("MAC-then-encrypt, open to padding oracles")
    why = f"; {', '.join(notes)}" if notes else ""
    evidence = "; ".join(a.evidence for a in (*tried, ok))
    offers = (f"offers only {family} suites, which a default client does not offer"
              if family else "offers no suite a default client offers")
    meanwhile = (f"; until then `tlsmith connect --cipher {suite.name}` connects"
                 if not cbc or ok.info.encrypt_then_mac else
                 "; tlsmith connect refuses MAC-then-encrypt CBC, so only a "
                 "reconfigured server helps")
    return Finding(
        "no_shared_cipher_suite", "high",
        f"the server {offers} (with every suite tlsmith knows it chose {suite.name}{why})",
        "Enable forward-secret AEAD suites on the server (TLS_ECDHE_*_WITH_AES_128_GCM_"
        f"SHA256, TLS 1.3){meanwhile}.", evidence)


def _group_finding(ok: Attempt, tried: Sequence[Attempt]) -> Finding:
    assert ok.info is not None
    group = ok.info.group.name.lower() if ok.info.group is not None else "another group"
    evidence = "; ".join(a.evidence for a in (*tried, ok))
    return Finding(
        "no_shared_group", "high",
        f"the server shares no key-exchange group with a default client: it accepts "
        f"only {group} (or needs parameters a default client refuses)",
        f"Enable x25519 and secp256r1 on the server; until then `tlsmith connect "
        f"--group {group}` connects.", evidence)


def _old_versions(runner: _Runner, tried: Sequence[Attempt]) -> list[Finding]:
    evidence = "; ".join(a.evidence for a in tried)
    fix = ("Enable TLS 1.2 (and 1.3) on the server: TLS 1.0 and 1.1 are deprecated "
           "(RFC 8996) and tlsmith, like current browsers, does not speak them.")
    speaks: list[str] = []
    probes: list[Attempt] = []
    suites = [int(s) for s in TLS12_SUITES if (int(s) >> 8) != 0xCC] + list(_LEGACY_SUITES)
    for version, label in ((0x0302, "TLSv1.1"), (0x0301, "TLSv1.0")):
        p = runner.probe(f"raw ClientHello offering {label} only", versions=[version],
                         suites=suites, groups=_COMMON_GROUPS)
        if p is None:
            break
        probes.append(p)
        if p.ok and _answer_version(p.answer) == version:
            speaks.append(label)
    if probes:
        evidence += "; " + "; ".join(p.evidence for p in probes)
    if not probes:
        text = ("the server accepts neither TLS 1.3 nor TLS 1.2 (it refuses them with "
                "protocol_version): it probably speaks only TLS 1.1 or older, deprecated "
                "by RFC 8996 (the raw prober that would tell which is not available)")
    elif speaks == ["TLSv1.1", "TLSv1.0"]:
        text = ("the server only speaks TLS 1.0/1.1 (deprecated by RFC 8996): it refuses "
                "TLS 1.3 and 1.2 but answers TLS 1.1 and TLS 1.0 ClientHellos")
    elif speaks == ["TLSv1.1"]:
        text = ("the server only speaks TLS 1.1 (deprecated by RFC 8996): it refuses TLS "
                "1.3, 1.2 and 1.0 but answers a TLS 1.1 ClientHello")
    elif speaks == ["TLSv1.0"]:
        text = ("the server only speaks TLS 1.0 (deprecated by RFC 8996): it refuses TLS "
                "1.3, 1.2 and 1.1 but answers a TLS 1.0 ClientHello")
    else:
        text = ("the server refuses every TLS version we tried (1.3, 1.2, and with the "
                "raw prober 1.1 and 1.0) with protocol_version")
        fix = "Check the server's TLS configuration: it accepts no version at all."
    return [Finding("protocol_version_mismatch", "high", text, fix, evidence)]


def _raw_probes(runner: _Runner, tried: Sequence[Attempt]) -> list[Finding]:
    """Suites and groups tlsmith does not implement, with the raw prober."""
    evidence = "; ".join(a.evidence for a in tried)
    legacy = list(_LEGACY_SUITES)
    p = runner.probe("raw TLS 1.2 ClientHello, legacy suites (3DES, RC4, CAMELLIA, DSS, "
                     "CCM)", versions=[0x0303], suites=legacy, groups=_COMMON_GROUPS)
    if p is not None and p.ok:
        suite = _suite_name(_answer_suite(p.answer))
        family = ("3DES" if "3DES" in suite else "RC4" if "RC4" in suite
                  else "CBC-SHA1" if suite.endswith("CBC_SHA") else suite)
        return [Finding(
            "no_shared_cipher_suite", "high",
            f"the server offers only {family} suites, which tlsmith does not implement "
            f"(it chose {suite} from a raw ClientHello)",
            "Enable forward-secret AEAD suites on the server (ECDHE with AES-GCM or "
            "ChaCha20-Poly1305, TLS 1.3); 3DES (Sweet32) and RC4 (RFC 7465) are broken.",
            f"{evidence}; {p.evidence}")]
    every12 = [int(s) for s in TLS12_SUITES] + legacy
    q = runner.probe("raw TLS 1.2/1.3 ClientHello, groups tlsmith does not implement "
                     "(brainpool, secp224r1, secp256k1, ffdhe6144/8192)",
                     versions=[0x0304, 0x0303],
                     suites=[int(s) for s in TLS13_SUITES] + every12,
                     groups=list(_LEGACY_GROUPS), hrr_counts=True)
    probed = [a for a in (p, q) if a is not None]
    if q is not None and not q.ok:
        # A TLS 1.3 server refuses without falling back: ask in TLS 1.2 too -- with the
        # common curves after the legacy ones, since in TLS 1.2 supported_groups also
        # limits the curve of an ECDSA certificate (RFC 8422 §5.1).
        q = runner.probe("raw TLS 1.2 ClientHello, groups tlsmith does not implement "
                         "(then the common ones)", versions=[0x0303], suites=every12,
                         groups=[*_LEGACY_GROUPS, *_COMMON_GROUPS])
        if q is not None:
            probed.append(q)
    if q is not None and q.ok and _answer_group(q.answer) in _LEGACY_GROUPS:
        group = _group_name(_answer_group(q.answer))
        return [Finding(
            "no_shared_group", "high",
            f"the server supports only key-exchange groups tlsmith does not implement "
            f"(it chose {group} from a raw ClientHello)",
            "Enable x25519 and secp256r1 (P-256) on the server.",
            "; ".join([evidence, *(a.evidence for a in probed)]))]
    if probed:
        evidence += "; " + "; ".join(a.evidence for a in probed)
    first = tried[0]
    closed = isinstance(first.exc, e.ConnectionClosedError)
    timeout = first.error == "timeout"
    if closed or timeout:
        return [Finding(
            "no_tls_answer", "high",
            ("the server closed the connection after every ClientHello without a TLS "
             "alert" if closed else "the server answered none of our ClientHellos")
            + ": it may not speak TLS on this port, or drops clients it refuses",
            "Check that the port serves TLS (not plain HTTP, SSH, or STARTTLS), and the "
            "server's logs.", evidence)]
    return [Finding(
        "handshake_failure", "high",
        f"the handshake fails whatever we change ({first.outcome}): the server shares "
        "no parameters with tlsmith that one change could find",
        "Look at the server's logs for why it refuses; compare its TLS configuration "
        "with Mozilla's intermediate profile.", evidence)]


__all__ = ["MAX_ATTEMPTS", "Attempt", "Diagnosis", "HostUnreachable", "diagnose"]
