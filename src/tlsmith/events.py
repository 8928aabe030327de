"""Events returned by ``TLSConnection.next_event()``."""

from __future__ import annotations

from dataclasses import dataclass, field

from tlsmith.codec.enums import (
    AlertDescription,
    CertificateType,
    CipherSuite,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.frozen import fast_init
from tlsmith.session import Session


@fast_init
@dataclass(frozen=True, slots=True)
class HandshakeInfo:
    """What was negotiated; the basis of the CLI summary and its JSON."""

    version: ProtocolVersion  # ``version.label`` is "TLSv1.3" / "TLSv1.2"
    cipher_suite: CipherSuite
    group: NamedGroup | None
    signature_scheme: SignatureScheme | None
    alpn: str | None
    server_name: str | None
    hello_retry_request: bool
    resumed: bool
    peer_certificates: tuple[bytes, ...] = ()  # DER, leaf first
    certificate_verified: bool = False
    # The application's verify_callback accepted the peer's chain (tlsmith.x509.callback);
    # without certificate_verified: accepted by it alone, NOT verified against a trust store.
    certificate_accepted_by_callback: bool = False
    client_random: bytes = b""
    # TLS 1.2 only (None in TLS 1.3, where both are built in): RFC 7627 and RFC 7366.
    extended_master_secret: bool | None = None
    encrypt_then_mac: bool | None = None
    key_exchange: str | None = None  # "ECDHE", "DHE", "RSA" (TLS 1.2); None in TLS 1.3
    # Mutual TLS (server side): the client's chain (DER, leaf first; empty if it sent
    # none) and whether it chained to ServerConfig.client_trust with a valid signature.
    client_certificates: tuple[bytes, ...] = ()
    client_certificate_verified: bool = False
    client_certificate_accepted_by_callback: bool = False  # as certificate_accepted_by_callback
    # Client side: whether the server asked for a certificate, and whether we sent one.
    client_certificate_requested: bool = False
    client_certificate_sent: bool = False
    # Client side: the revocation verdict on the server's certificate (RFC 6960 / RFC 5280
    # §6.3): ``revocation_state`` is good | revoked | unknown | stale | invalid |
    # not_checked, ``revocation`` the sentence saying what was (or was not) checked.
    # None on the server side.
    revocation: str | None = None
    revocation_state: str | None = None
    # Client side: the OCSP response the server stapled (DER, as received; None if none).
    # Checked only when ``revocation_state`` says so: with verification off it is handed
    # over unchecked (and with ClientConfig.ocsp_unchecked, never checked).
    ocsp_response: bytes | None = None
    # Resumption: how (None: a full handshake) -- "session_id" or "ticket" (TLS 1.2),
    # "psk_dhe_ke" / "psk_ke" (TLS 1.3 ticket), "external_psk"; and, when the client
    # sent 0-RTT data, whether the server accepted it (None: none was sent/offered).
    resumed_with: str | None = None
    early_data_accepted: bool | None = None
    # The external PSK that authenticated the handshake (its identity as configured:
    # an ImportedPsk's external identity); None otherwise.
    psk_identity: bytes | None = None
    # NPN (TLS 1.2): the protocol the client selected (None: NPN not negotiated).
    next_protocol: str | None = None
    # ALPS (TLS 1.3): the peer's application settings for the ALPN protocol (None: ALPS
    # not negotiated).
    peer_application_settings: bytes | None = None
    # Server, TLS 1.3 resumption with one of our tickets: the ticket age the client
    # reports minus ours, in seconds (RFC 8446 §8.3: a clock or a replay gone wrong).
    ticket_age_skew: float | None = None

    @property
    def version_label(self) -> str:
        return ProtocolVersion(self.version).label

    @property
    def server_certificate_type(self) -> CertificateType | None:
        """Client side: RFC 7250's type of ``peer_certificates`` (RAW_PUBLIC_KEY: one
        SPKI), kept across resumption; None without one."""
        from tlsmith.x509.rpk import certificate_type_of

        return certificate_type_of(self.peer_certificates)

    @property
    def client_certificate_type(self) -> CertificateType | None:
        """Server side: RFC 7250's type of ``client_certificates``; None without one."""
        from tlsmith.x509.rpk import certificate_type_of

        return certificate_type_of(self.client_certificates)


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True, slots=True)
class NeedData(Event):
    """Nothing more can happen until more bytes arrive from the peer."""


@fast_init
@dataclass(frozen=True, slots=True)
class HandshakeComplete(Event):
    info: HandshakeInfo


@fast_init
@dataclass(frozen=True, slots=True)
class ApplicationData(Event):
    """Application data; ``early`` is True for TLS 1.3 0-RTT data (RFC 8446 §8: it may be
    a replay -- act on it only if the request is idempotent)."""

    data: bytes
    early: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class KeyUpdated(Event):
    """The peer updated its sending keys (and may have asked us to update ours)."""

    update_requested: bool


@fast_init
@dataclass(frozen=True, slots=True)
class SessionTicketReceived(Event):
    """Client side: a session to resume later -- a TLS 1.3 NewSessionTicket, or a TLS 1.2
    session (ID and/or RFC 5077 ticket) once the handshake completes. Pass ``session``
    to ``TLSConnection(config, session=...)``."""

    session: Session
    ticket: bytes = field(repr=False, default=b"")
    lifetime: int = 0
    max_early_data_size: int | None = None
    # TLS 1.3: the ticket's resumption_across_names flag (draft-ietf-tls-cross-sni-
    # resumption): the server would resume it under another name it serves.
    resumable_across_names: bool = False


@dataclass(frozen=True, slots=True)
class FalseStart(Event):
    """Client, TLS 1.2 with ``ClientConfig.false_start`` (RFC 7918): our Finished is
    out and application data may be sent now, before the server's Finished arrives. That
    Finished is still checked (a bad one is a fatal error); ``HandshakeComplete``
    follows it."""


@fast_init
@dataclass(frozen=True, slots=True)
class WarningAlert(Event):
    """A non-fatal alert (TLS 1.3: user_canceled) that does not end the connection."""

    description: AlertDescription


@fast_init
@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The peer sent close_notify (or the transport reached EOF, if ``clean`` is False)."""

    clean: bool = True


NEED_DATA = NeedData()


@fast_init
@dataclass(frozen=True, slots=True)
class ClientCertificateReceived(Event):
    """Server side, TLS 1.3 post-handshake authentication (RFC 8446 §4.6.2): the client's
    answer to ``TLSConnection.request_client_certificate()``. ``chain``: DER, leaf first
    (empty: the client has no certificate to give); ``verified``: it chained to
    ServerConfig.client_trust and the client proved its key (CertificateVerify) and the
    exchange (Finished). A chain that fails verification is a fatal alert, not an event."""

    chain: tuple[bytes, ...]
    verified: bool
