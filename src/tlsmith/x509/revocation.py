"""Revocation checking: stapled OCSP responses (RFC 6960, RFC 6066 §8), CRLs (RFC 5280 §6.3)
and must-staple (RFC 7633).

Sans-IO: nothing here touches the network or raises a protocol error. Each check returns
a ``RevocationStatus`` -- a state, where the information came from, and a sentence for
humans -- and ``decide`` turns the statuses of one certificate into the verdict, marking
it ``fatal`` with the alert the caller should send (``certificate_revoked`` or
``bad_certificate_status_response``, or ``certificate_unknown`` when revocation checking
was required but impossible).

Every cryptographic step -- parsing, CertID hashes, signatures -- is done by
``cryptography``; this module only decides what the results mean.

Choices the RFCs leave to us (each is explained in the code where it is made):

* An OCSP response whose status is not ``successful`` (``tryLater``, ``internalError``...)
  is unsigned and says nothing about the certificate (RFC 6960 §2.3): it counts as
  "not checked", the same as no staple at all (an attacker could as well strip the staple).
* A stapled response that is out of date (``nextUpdate`` passed) is "stale"; a response
  whose ``thisUpdate`` lies in the future is "invalid" (RFC 6960 §4.2.2.1 calls both
  unreliable). A stale or invalid staple fails the handshake with
  ``bad_certificate_status_response``: RFC 6066 §8 says a client that asked for a staple
  MUST abort when the response is not satisfactory.
* A CRL that does not apply (another issuer, a signature that does not verify, a
  partitioned or delta CRL) is ignored and named in the sentence; a CRL whose
  ``nextUpdate`` passed is "stale" and counts as no information.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Literal, TypeAlias, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from tlsmith.codec.enums import AlertDescription
from tlsmith.errors import UsageError

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_SKEW",
    "CrlResult",
    "OcspResult",
    "RevocationState",
    "RevocationStatus",
    "check_crls",
    "check_ocsp_response",
    "decide",
    "load_crl",
    "must_staple",
]

RevocationState: TypeAlias = Literal[
    "good", "revoked", "unknown", "stale", "invalid", "not_checked"
]
RevocationSource: TypeAlias = Literal["ocsp-staple", "crl"]

#: How old a response without nextUpdate may be before it counts as stale.
DEFAULT_MAX_AGE = timedelta(days=7)
#: Clock difference tolerated between us and the OCSP responder / CRL issuer.
DEFAULT_SKEW = timedelta(minutes=5)

NOT_CHECKED_SENTENCE = "revocation: not checked — no stapled OCSP response and no CRL"


@dataclass(frozen=True)
class RevocationStatus:
    """What one source (or, from ``decide``, all sources together) says about a certificate.

    ``state``: good | revoked | unknown | stale | invalid | not_checked.
    ``source``: "ocsp-staple", "crl", or None (no source).
    ``revoked_at`` / ``reason``: for "revoked" (``reason`` is the RFC 5280 name, e.g.
    "keyCompromise", or None when the issuer gave no reason).
    ``detail``: one sentence for humans.
    ``fatal``: set only by ``decide`` -- the handshake must fail; ``alert`` says how.
    ``this_update`` / ``next_update``: the validity window of the information used.
    """

    state: RevocationState
    source: RevocationSource | None
    detail: str
    revoked_at: datetime | None = None
    reason: str | None = None
    fatal: bool = False
    this_update: datetime | None = None
    next_update: datetime | None = None

    @property
    def alert(self) -> AlertDescription | None:
        """The alert the caller sends when this verdict is fatal (None when it is not)."""
        if not self.fatal:
            return None
        if self.state == "revoked":
            return AlertDescription.CERTIFICATE_REVOKED
        if self.source == "ocsp-staple" and self.state in ("invalid", "stale", "not_checked"):
            # The staple was unusable (or missing under must-staple): RFC 6066 §8.
            return AlertDescription.BAD_CERTIFICATE_STATUS_RESPONSE
        return AlertDescription.CERTIFICATE_UNKNOWN


OcspResult: TypeAlias = RevocationStatus
CrlResult: TypeAlias = RevocationStatus


# --------------------------------------------------------------------------- helpers


def _utc(when: datetime) -> datetime:
    """Treat a naive datetime as UTC (cryptography's ``*_utc`` properties are aware)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _when(when: datetime) -> str:
    return _utc(when).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _name(name: x509.Name) -> str:
    return name.rfc4514_string() or "(empty name)"


def _serial(cert: x509.Certificate) -> str:
    return f"serial {cert.serial_number:#x}"


def _revoked_sentence(when: datetime, reason: str | None, according_to: str) -> str:
    why = f" ({reason})" if reason else " (no reason given)"
    return f"revoked on {_when(when)}{why} according to {according_to}"


def _verify_signature(
    key: CertificatePublicKeyTypes,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
    signature_oid: x509.ObjectIdentifier,
) -> str | None:
    """Verify ``signature`` over ``data``; return None when it verifies, else why not."""
    if signature_oid == SignatureAlgorithmOID.RSASSA_PSS:
        return "RSASSA-PSS signatures on OCSP responses are not supported"
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if hash_algorithm is None:
                return "the response names no hash algorithm for its RSA signature"
            key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if hash_algorithm is None:
                return "the response names no hash algorithm for its ECDSA signature"
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return f"the signer's key type ({type(key).__name__}) is not supported"
    except InvalidSignature:
        return "the signature does not verify"
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        return f"the signature cannot be checked ({exc})"
    return None


def _same_certificate(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a == b or (a.subject == b.subject and a.public_key() == b.public_key())


def _responder_matches(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """Does the ResponderID (byName or byKey, RFC 6960 §4.2.1) identify ``cert``?"""
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    if response.responder_key_hash is not None:
        # byKey is the SHA-1 of the subjectPublicKey BIT STRING -- exactly the "method 1"
        # key identifier of RFC 5280 §4.2.1.2, which cryptography computes.
        try:
            ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
        except (UnsupportedAlgorithm, ValueError):
            return False
        return ski.digest == response.responder_key_hash
    return False


def _authorised_signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> tuple[x509.Certificate | None, str]:
    """Find the certificate that signed the response and check it may sign for ``issuer``.

    RFC 6960 §4.2.2.2: the signer is the CA that issued the certificate, or a delegated
    responder whose certificate is issued directly by that CA and carries the
    id-kp-OCSPSigning extended key usage. Returns (signer, description) or (None, why).
    """
    if _responder_matches(response, issuer):
        return issuer, f"the issuer {_name(issuer.subject)}"
    included = [c for c in response.certificates if _responder_matches(response, c)]
    if not included:
        return None, (
            "the response is signed by a responder that is neither the issuer "
            f"{_name(issuer.subject)} nor a certificate included in the response"
        )
    responder = included[0]
    who = f"the delegated responder {_name(responder.subject)}"
    if _same_certificate(responder, issuer):
        return issuer, f"the issuer {_name(issuer.subject)}"
    try:
        responder.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return None, (
            f"{who} is not certified by the issuer {_name(issuer.subject)} "
            "(RFC 6960 §4.2.2.2 requires the CA itself to authorise its responder)"
        )
    try:
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        return None, (
            f"{who} lacks the id-kp-OCSPSigning extended key usage, so the issuer did "
            "not authorise it to sign OCSP responses (RFC 6960 §4.2.2.2)"
        )
    if not (responder.not_valid_before_utc <= now <= responder.not_valid_after_utc):
        return None, (
            f"{who}'s certificate is not valid now (valid "
            f"{_when(responder.not_valid_before_utc)} to {_when(responder.not_valid_after_utc)})"
        )
    return responder, who


def _expected_cert_id(
    leaf: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes] | None:
    """(issuerNameHash, issuerKeyHash) for ``leaf``, hashed with ``algorithm``.

    cryptography computes them when it builds a request for the certificate; we build one
    (never sent) and read them back, rather than re-deriving the DER ourselves.
    """
    try:
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm).build()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return request.issuer_name_hash, request.issuer_key_hash


# --------------------------------------------------------------------------- OCSP


def check_ocsp_response(
    der: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    *,
    now: datetime,
    max_age: timedelta | None = None,
) -> OcspResult:
    """Check a (stapled) DER OCSPResponse for ``leaf`` issued by ``issuer`` (RFC 6960).

    Order: parse; responseStatus successful; the signer is the issuer or a delegated
    responder it authorised, and the signature over tbsResponseData verifies; a
    SingleResponse whose CertID matches the leaf; thisUpdate/nextUpdate window; status.
    """
    now = _utc(now)
    max_age = DEFAULT_MAX_AGE if max_age is None else max_age
    source: RevocationSource = "ocsp-staple"
    subject = f"{_name(leaf.subject)} ({_serial(leaf)})"

    def invalid(why: str) -> RevocationStatus:
        return RevocationStatus("invalid", source, f"invalid stapled OCSP response: {why}")

    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        return invalid(f"it is not a DER OCSPResponse ({exc})")

    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        # RFC 6960 §2.3: error responses carry no signature and no certificate status,
        # so they are equivalent to having no response at all.
        status_name = response.response_status.name.lower()
        return RevocationStatus(
            "not_checked",
            source,
            f"revocation: not checked — the stapled OCSP response is an unsigned "
            f"'{status_name}' error with no certificate status (RFC 6960 §2.3)",
        )

    if leaf.issuer != issuer.subject:
        return invalid(
            f"the certificate {subject} was issued by {_name(leaf.issuer)}, "
            f"not by {_name(issuer.subject)}"
        )

    signer, signer_desc = _authorised_signer(response, issuer, now)
    if signer is None:
        return invalid(signer_desc)
    try:
        hash_algorithm = response.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        return invalid(f"its signature algorithm is not supported ({exc})")
    problem = _verify_signature(
        signer.public_key(),
        response.signature,
        response.tbs_response_bytes,
        hash_algorithm,
        response.signature_algorithm_oid,
    )
    if problem is not None:
        return invalid(f"{problem} with the key of {signer_desc}")

    single: ocsp.OCSPSingleResponse | None = None
    about: list[str] = []
    for candidate in response.responses:
        about.append(f"{candidate.serial_number:#x}")
        if candidate.serial_number != leaf.serial_number:
            continue
        expected = _expected_cert_id(leaf, issuer, candidate.hash_algorithm)
        if expected == (candidate.issuer_name_hash, candidate.issuer_key_hash):
            single = candidate
            break
    if single is None:
        return invalid(
            f"it is about serial {', '.join(about) or '(none)'} of another issuer or "
            f"certificate, not about {subject} issued by {_name(issuer.subject)}"
        )

    this_update = single.this_update_utc
    next_update = single.next_update_utc
    if this_update > now + DEFAULT_SKEW:
        return invalid(
            f"its thisUpdate ({_when(this_update)}) is in the future — check this "
            "machine's clock (RFC 6960 §4.2.2.1: such responses are unreliable)"
        )
    if next_update is not None and now > next_update + DEFAULT_SKEW:
        return RevocationStatus(
            "stale",
            source,
            f"the stapled OCSP response is stale: its nextUpdate {_when(next_update)} has "
            f"passed (produced {_when(response.produced_at_utc)} by {signer_desc})",
            this_update=this_update,
            next_update=next_update,
        )
    if next_update is None and now - this_update > max_age:
        return RevocationStatus(
            "stale",
            source,
            f"the stapled OCSP response is stale: it has no nextUpdate and its thisUpdate "
            f"{_when(this_update)} is older than {max_age}",
            this_update=this_update,
        )

    according_to = f"the stapled OCSP response signed by {signer_desc}"
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        revoked_at = single.revocation_time_utc or this_update
        reason = single.revocation_reason.value if single.revocation_reason else None
        return RevocationStatus(
            "revoked",
            source,
            f"{subject} was {_revoked_sentence(revoked_at, reason, according_to)}",
            revoked_at=revoked_at,
            reason=reason,
            this_update=this_update,
            next_update=next_update,
        )
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        return RevocationStatus(
            "unknown",
            source,
            f"{according_to} says the responder does not know {subject} (status unknown)",
            this_update=this_update,
            next_update=next_update,
        )
    until = f", valid until {_when(next_update)}" if next_update else ""
    return RevocationStatus(
        "good",
        source,
        f"not revoked: {according_to} says {subject} is good (as of {_when(this_update)}{until})",
        this_update=this_update,
        next_update=next_update,
    )


# --------------------------------------------------------------------------- CRLs


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _dp_names(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return set()
    return {name for point in points for name in (point.full_name or ())}


def _out_of_scope(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> str | None:
    """Why ``crl`` is not a complete CRL for ``cert`` (RFC 5280 §6.3.3 (b), simplified)."""
    extensions = crl.extensions
    try:
        extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        return "it is a delta CRL (not supported)"
    except x509.ExtensionNotFound:
        pass
    try:
        idp = extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None
    if idp.indirect_crl:
        return "it is an indirect CRL (not supported)"
    if idp.only_some_reasons:
        return "it covers only some revocation reasons (not supported)"
    if idp.only_contains_attribute_certs:
        return "it covers only attribute certificates"
    if idp.only_contains_ca_certs and not _is_ca(cert):
        return "it covers only CA certificates"
    if idp.only_contains_user_certs and _is_ca(cert):
        return "it covers only end-entity certificates"
    if idp.full_name and not set(idp.full_name) & _dp_names(cert):
        return "its distribution point is not one the certificate names"
    if idp.relative_name is not None:
        return "its distribution point is a relative name (not supported)"
    return None


def _crl_reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    return reason.value


def check_crls(
    crls: Sequence[x509.CertificateRevocationList],
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    now: datetime,
) -> CrlResult:
    """Look ``cert`` up in the CRLs that apply to it (RFC 5280 §6.3, simplified).

    A CRL applies when its issuer is the certificate's issuer, its signature verifies with
    the issuer's key, and its scope covers the certificate. Revocation listed in any
    applicable CRL wins (even a stale one: revocation is not undone by time); otherwise a
    current applicable CRL makes the certificate good; only stale ones make it stale.
    """
    now = _utc(now)
    source: RevocationSource = "crl"
    subject = f"{_name(cert.subject)} ({_serial(cert)})"
    ignored: list[str] = []
    fresh: list[x509.CertificateRevocationList] = []
    stale: list[x509.CertificateRevocationList] = []

    for crl in crls:
        label = f"the CRL of {_name(crl.issuer)}"
        if crl.issuer != cert.issuer or crl.issuer != issuer.subject:
            ignored.append(f"{label} (another issuer)")
            continue
        try:
            # A key type that cannot sign (X25519...) makes cryptography raise TypeError.
            key = cast(CertificateIssuerPublicKeyTypes, issuer.public_key())
            signature_ok = crl.is_signature_valid(key)
        except (TypeError, ValueError, UnsupportedAlgorithm):
            signature_ok = False
        if not signature_ok:
            ignored.append(f"{label} (its signature does not verify with the issuer's key)")
            continue
        why = _out_of_scope(crl, cert)
        if why is not None:
            ignored.append(f"{label} ({why})")
            continue
        if crl.last_update_utc > now + DEFAULT_SKEW:
            ignored.append(
                f"{label} (its thisUpdate {_when(crl.last_update_utc)} is in the future)"
            )
            continue
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            reason = _crl_reason(entry)
            revoked_at = entry.revocation_date_utc
            return RevocationStatus(
                "revoked",
                source,
                f"{subject} was {_revoked_sentence(revoked_at, reason, label)}",
                revoked_at=revoked_at,
                reason=reason,
                this_update=crl.last_update_utc,
                next_update=crl.next_update_utc,
            )
        next_update = crl.next_update_utc
        if next_update is not None and now > next_update + DEFAULT_SKEW:
            stale.append(crl)
        else:
            fresh.append(crl)

    if fresh:
        crl = fresh[0]
        until = f", next update {_when(crl.next_update_utc)}" if crl.next_update_utc else ""
        return RevocationStatus(
            "good",
            source,
            f"not revoked: {subject} is not listed in the CRL of {_name(crl.issuer)} "
            f"(issued {_when(crl.last_update_utc)}{until})",
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc,
        )
    if stale:
        crl = stale[0]
        assert crl.next_update_utc is not None
        return RevocationStatus(
            "stale",
            source,
            f"the CRL of {_name(crl.issuer)} is stale: its nextUpdate "
            f"{_when(crl.next_update_utc)} has passed",
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc,
        )
    if not crls:
        return RevocationStatus("not_checked", None, NOT_CHECKED_SENTENCE)
    return RevocationStatus(
        "not_checked",
        source,
        f"revocation: not checked — no CRL applies to {subject}; ignored " + "; ".join(ignored),
    )


def load_crl(path: str | PathLike[str]) -> x509.CertificateRevocationList:
    """Read a CRL file, PEM or DER; a bad file raises ``UsageError`` saying what is wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the CRL file ({exc.strerror or exc})") from exc
    pem = b"-----BEGIN" in data[:1024] or data.lstrip().startswith(b"-----")
    try:
        if pem:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        kind = "PEM" if pem else "DER"
        raise UsageError(
            f"{path}: not a certificate revocation list ({kind} parse failed: {exc}); "
            "expected a PEM '-----BEGIN X509 CRL-----' block or a DER CRL"
        ) from exc


# --------------------------------------------------------------------------- policy


def must_staple(cert: x509.Certificate) -> bool:
    """True when the certificate carries the RFC 7633 TLS Feature status_request (5)."""
    try:
        features = cert.extensions.get_extension_for_class(x509.TLSFeature).value
    except x509.ExtensionNotFound:
        return False
    return x509.TLSFeatureType.status_request in features


def _first(statuses: Iterable[RevocationStatus], state: str) -> RevocationStatus | None:
    return next((s for s in statuses if s.state == state), None)


def decide(
    statuses: Sequence[RevocationStatus],
    *,
    require: bool,
    must_staple: bool,
    stapled: bool,
) -> RevocationStatus:
    """Combine one certificate's revocation statuses into the verdict.

    In order:
    1. any "revoked" -> revoked, fatal (certificate_revoked; time and reason named);
    2. an "invalid" or "stale" stapled OCSP response -> fatal
       (bad_certificate_status_response, RFC 6066 §8: abort when the response is not
       satisfactory);
    3. must-staple (RFC 7633) without a usable staple (none, or an unsigned error
       response) -> "not_checked", fatal (bad_certificate_status_response);
    4. any "good" -> good;
    5. otherwise ("unknown", stale CRL, nothing) -> soft-fail: returned with the sentence
       saying revocation was not checked, fatal only when ``require`` is set (or, for an
       "unknown" staple, when must-staple asked for proof) -- alert certificate_unknown.
    """
    if not statuses and not must_staple:
        return _NOTHING_REQUIRED if require else _NOTHING  # step 5, with nothing at all
    revoked = _first(statuses, "revoked")
    if revoked is not None:
        return replace(revoked, fatal=True)
    for status in statuses:
        if status.source == "ocsp-staple" and status.state in ("invalid", "stale"):
            return replace(status, fatal=True)
    usable_staple = stapled and any(
        s.source == "ocsp-staple" and s.state != "not_checked" for s in statuses
    )
    if must_staple and not usable_staple:
        return RevocationStatus(
            "not_checked",
            "ocsp-staple",
            "revocation: not checked — the certificate requires a stapled OCSP response "
            "(must-staple, RFC 7633) but the server sent "
            + ("no usable one" if stapled else "none"),
            fatal=True,
        )
    good = _first(statuses, "good")
    if good is not None:
        return good
    unknown = _first(statuses, "unknown")
    if unknown is not None:
        return replace(unknown, fatal=require or must_staple)
    stale = _first(statuses, "stale")
    if stale is not None:
        return replace(
            stale,
            detail=f"revocation: not checked — {stale.detail}",
            fatal=require,
        )
    explained = [s for s in statuses if s.state == "not_checked" and s.source is not None]
    if explained:
        return replace(explained[0], fatal=require)
    return RevocationStatus("not_checked", None, NOT_CHECKED_SENTENCE, fatal=require)


# decide()'s verdict on no information (a client without staple or CRLs: every
# handshake), built once; RevocationStatus is frozen.
_NOTHING = RevocationStatus("not_checked", None, NOT_CHECKED_SENTENCE, fatal=False)
_NOTHING_REQUIRED = RevocationStatus("not_checked", None, NOT_CHECKED_SENTENCE, fatal=True)
