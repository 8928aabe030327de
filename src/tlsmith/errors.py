"""Errors, each tied to the alert it sends.

Three families, kept apart (design.md §8):
* ``ProtocolError`` -- the peer misbehaved (or we could not continue); it carries the
  alert we send. Subclasses are named after the alert.
* ``AlertReceived`` -- the peer sent us a fatal alert (or closed abruptly).
* ``UsageError`` -- the caller misused the API; nothing is sent on the wire.
"""

from __future__ import annotations

from typing import ClassVar

from tlsmith.codec.enums import AlertDescription


class TLSError(Exception):
    """Base of every error tlsmith raises."""


class ProtocolError(TLSError):
    """A protocol violation detected locally; ``alert`` is what we send to the peer."""

    alert: ClassVar[AlertDescription] = AlertDescription.INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

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


class BadCertificate(ProtocolError):
    """A certificate was corrupt, or its signature did not verify."""

    alert = AlertDescription.BAD_CERTIFICATE


class UnsupportedCertificate(ProtocolError):
    """A certificate was of an unsupported type."""

    alert = AlertDescription.UNSUPPORTED_CERTIFICATE


class CertificateRevoked(ProtocolError):
    """A certificate was revoked by its signer."""

    alert = AlertDescription.CERTIFICATE_REVOKED


class CertificateExpired(ProtocolError):
    """A certificate has expired or is not yet valid."""

    alert = AlertDescription.CERTIFICATE_EXPIRED


class CertificateUnknown(ProtocolError):
    """A certificate could not be accepted for another reason (e.g. hostname mismatch)."""

    alert = AlertDescription.CERTIFICATE_UNKNOWN


class IllegalParameter(ProtocolError):
    """A field was out of range or inconsistent with other fields."""

    alert = AlertDescription.ILLEGAL_PARAMETER


class UnknownCA(ProtocolError):
    """The certificate chain does not lead to a trusted root."""

    alert = AlertDescription.UNKNOWN_CA


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


ERROR_FOR_ALERT: dict[AlertDescription, type[ProtocolError]] = {
    cls.alert: cls
    for cls in ProtocolError.__subclasses__()
}
ERROR_FOR_ALERT.setdefault(AlertDescription.INTERNAL_ERROR, InternalError)


def error_for_alert(alert: AlertDescription, message: str) -> ProtocolError:
    """The typed error that sends ``alert`` (for code that decides the alert at run time)."""
    return ERROR_FOR_ALERT.get(alert, InternalError)(message)
