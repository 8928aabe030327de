"""Errors, each tied to the alert it sends.

Three families, kept apart (design.md §8):
* ``ProtocolError`` -- the peer misbehaved (or we could not continue); it carries the
  alert we send. Subclasses are named after the alert.
* ``AlertReceived`` -- the peer sent us a fatal alert (or closed abruptly).
* ``UsageError`` -- the caller misused the API; nothing is sent on the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal, TypeVar, get_args

from tlsmith.codec.enums import AlertDescription


class TLSError(Exception):
    """Base of every error tlsmith raises."""


class ProtocolError(TLSError):
    """A protocol violation detected locally; ``alert`` is what we send to the peer."""

    alert: ClassVar[AlertDescription] = AlertDescription.INTERNAL_ERROR

    def __init__(self, message: str, *, check: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Which security check fired, as a stable reason code ("finished_mismatch",
        #: "cv_scheme_not_offered", ...), or None for checks without one yet. Tests
        #: assert it, so that breaking one check cannot hide behind another raising
        #: the same class and alert.
        self.check = check

    def __str__(self) -> str:
        return f"{self.message} (alert {self.alert.rfc_name})"


class UnexpectedMessage(ProtocolError):
    """A message arrived that is not allowed in the current state."""

    alert = AlertDescription.UNEXPECTED_MESSAGE


class BadRecordMac(ProtocolError):
    """A record failed to decrypt or authenticate."""

    alert = AlertDescription.BAD_RECORD_MAC


class RecordOverflow(ProtocolError):
    """A record exceeded the permitted length."""

    alert = AlertDescription.RECORD_OVERFLOW


class HandshakeFailure(ProtocolError):
    """No acceptable set of parameters could be negotiated."""

    alert = AlertDescription.HANDSHAKE_FAILURE


#: Why a certificate was refused: the ``reason`` of a ``CertificateError``.
CertificateReason = Literal[
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "self_signed",
    "unknown_issuer",
    "missing_intermediate",
    "revoked",
    "bad_signature",
    "weak_key",
    "weak_signature",
    "wrong_usage",
    "malformed",
    "policy",
]
CERTIFICATE_REASONS: tuple[CertificateReason, ...] = get_args(CertificateReason)


class CertificateError(ProtocolError):
    """A peer's certificate (chain) was refused; ``reason`` says why, in one word.

    The subclasses are named after the alert they send (RFC 8446 §6.2), so ``except
    UnknownCA`` keeps working; ``certificate_error(reason, message)`` picks the right
    one for a reason. ``subject`` names the certificate at fault (RFC 4514, "" when
    unknown); ``peer_chain`` is what the peer sent, as ``describe_chain`` gives it
    (filled in by the verifier, for printing the chain as ``openssl s_client`` does).
    """

    alert = AlertDescription.CERTIFICATE_UNKNOWN
    default_reason: ClassVar[CertificateReason] = "policy"

    def __init__(
        self, message: str, *, reason: CertificateReason | None = None, subject: str = "",
        check: str | None = None,
    ) -> None:
        super().__init__(message, check=check)
        if reason is not None and reason not in CERTIFICATE_REASONS:
            raise ValueError(f"unknown certificate error reason {reason!r}")
        self.reason: CertificateReason = reason or self.default_reason
        self.subject = subject
        self.peer_chain: list[dict[str, Any]] = []


class BadCertificate(CertificateError):
    """A certificate was corrupt, or its signature did not verify."""

    alert = AlertDescription.BAD_CERTIFICATE
    default_reason = "malformed"


class UnsupportedCertificate(CertificateError):
    """A certificate was of an unsupported type, or not allowed for this use."""

    alert = AlertDescription.UNSUPPORTED_CERTIFICATE
    default_reason = "wrong_usage"


class CertificateRevoked(CertificateError):
    """A certificate was revoked by its signer."""

    alert = AlertDescription.CERTIFICATE_REVOKED
    default_reason = "revoked"


class CertificateExpired(CertificateError):
    """A certificate has expired or is not yet valid."""

    alert = AlertDescription.CERTIFICATE_EXPIRED
    default_reason = "expired"


class CertificateUnknown(CertificateError):
    """A certificate could not be accepted for another reason (e.g. hostname mismatch)."""

    alert = AlertDescription.CERTIFICATE_UNKNOWN
    default_reason = "policy"


class IllegalParameter(ProtocolError):
    """A field was out of range or inconsistent with other fields."""

    alert = AlertDescription.ILLEGAL_PARAMETER


class UnknownCA(CertificateError):
    """The certificate chain does not lead to a trusted root."""

    alert = AlertDescription.UNKNOWN_CA
    default_reason = "unknown_issuer"


class AccessDenied(ProtocolError):
    """Access was refused after a valid certificate or PSK."""

    alert = AlertDescription.ACCESS_DENIED


class DecodeError(ProtocolError):
    """A message could not be decoded: wrong length, truncation or trailing bytes."""

    alert = AlertDescription.DECODE_ERROR


class DecryptError(ProtocolError):
    """A handshake cryptographic check failed (signature, Finished, binder)."""

    alert = AlertDescription.DECRYPT_ERROR


class ProtocolVersionError(ProtocolError):
    """The peer's protocol version is not supported."""

    alert = AlertDescription.PROTOCOL_VERSION


class InsufficientSecurity(ProtocolError):
    """The peer's parameters are weaker than required."""

    alert = AlertDescription.INSUFFICIENT_SECURITY


class InternalError(ProtocolError):
    """A local failure unrelated to the peer."""

    alert = AlertDescription.INTERNAL_ERROR


class InappropriateFallback(ProtocolError):
    """TLS_FALLBACK_SCSV received although a higher version is supported."""

    alert = AlertDescription.INAPPROPRIATE_FALLBACK


class MissingExtension(ProtocolError):
    """A mandatory extension is missing."""

    alert = AlertDescription.MISSING_EXTENSION


class UnsupportedExtension(ProtocolError):
    """An extension appeared that was not offered or is not allowed in this message."""

    alert = AlertDescription.UNSUPPORTED_EXTENSION


class UnrecognizedName(ProtocolError):
    """No server identity matches the requested server_name."""

    alert = AlertDescription.UNRECOGNIZED_NAME


class BadCertificateStatusResponse(ProtocolError):
    """An invalid or unacceptable OCSP response was provided."""

    alert = AlertDescription.BAD_CERTIFICATE_STATUS_RESPONSE


class UnknownPskIdentity(ProtocolError):
    """No acceptable PSK identity was offered."""

    alert = AlertDescription.UNKNOWN_PSK_IDENTITY


class CertificateRequired(ProtocolError):
    """A client certificate was required but not provided."""

    alert = AlertDescription.CERTIFICATE_REQUIRED


class NoApplicationProtocol(ProtocolError):
    """No ALPN protocol in common."""

    alert = AlertDescription.NO_APPLICATION_PROTOCOL


class AlertReceived(TLSError):
    """The peer sent a fatal alert (or a warning alert that ends the connection)."""

    def __init__(self, description: AlertDescription, message: str = "") -> None:
        self.description = description
        text = message or f"the peer sent the fatal alert {description.rfc_name}"
        super().__init__(text)


class ConnectionClosedError(TLSError):
    """The transport closed without close_notify, or the connection is already dead."""


class UsageError(TLSError):
    """The API was used in a way that is not allowed (nothing was sent to the peer)."""


def _alert_classes(base: type[ProtocolError]) -> Iterator[type[ProtocolError]]:
    for cls in base.__subclasses__():
        if cls is not CertificateError:  # a base: its subclasses name the alerts
            yield cls
        yield from _alert_classes(cls)


ERROR_FOR_ALERT: dict[AlertDescription, type[ProtocolError]] = {}
for _cls in _alert_classes(ProtocolError):
    if "alert" in vars(_cls):
        ERROR_FOR_ALERT.setdefault(_cls.alert, _cls)
ERROR_FOR_ALERT.setdefault(AlertDescription.INTERNAL_ERROR, InternalError)

#: The error (and so the alert, RFC 8446 §6.2) for each certificate failure reason.
#: wrong_usage and weak_key send unsupported_certificate, as OpenSSL does for a
#: certificate whose purpose or key does not fit.
CERTIFICATE_ERROR_FOR_REASON: dict[CertificateReason, type[CertificateError]] = {
    "expired": CertificateExpired,
    "not_yet_valid": CertificateExpired,
    "hostname_mismatch": CertificateUnknown,
    "policy": CertificateUnknown,
    "self_signed": UnknownCA,
    "unknown_issuer": UnknownCA,
    "missing_intermediate": UnknownCA,
    "revoked": CertificateRevoked,
    "bad_signature": BadCertificate,
    "malformed": BadCertificate,
    "wrong_usage": UnsupportedCertificate,
    "weak_key": UnsupportedCertificate,
    "weak_signature": BadCertificate,
}


def certificate_error(
    reason: CertificateReason, message: str, *, subject: str = ""
) -> CertificateError:
    """The typed error (hence the alert) for a certificate refused for ``reason``."""
    return CERTIFICATE_ERROR_FOR_REASON[reason](message, reason=reason, subject=subject)


def error_for_alert(alert: AlertDescription, message: str, *, check: str | None = None
                    ) -> ProtocolError:
    """The typed error that sends ``alert`` (for code that decides the alert at run time)."""
    return ERROR_FOR_ALERT.get(alert, InternalError)(message, check=check)


_R = TypeVar("_R")


def call_application(what: str, check: str, hook: Callable[..., _R], *args: Any) -> _R:
    """Call one of the application's hooks (a certificate or OCSP callback, a key
    verifier): an exception it raises is our failure, not the peer's -- internal_error,
    with ``check`` and the exception chained."""
    try:
        return hook(*args)
    except Exception as exc:
        raise InternalError(f"{what} failed: {exc!r}", check=check) from exc
