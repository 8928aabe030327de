"""What every handshake state is, and what it may ask of the connection.

One class per state (design.md §4). Each declares the handshake messages it accepts in
``expects``; the connection checks that before ``handle`` runs, so a message in the
wrong place is rejected in exactly one function (design.md §5).

Version-specific record policy lives here too, as behaviour of the state: what a
ChangeCipherSpec means (a key switch in TLS 1.2, a dropped compatibility record in
TLS 1.3), which alerts are fatal, and which post-handshake operations exist
(KeyUpdate, exporters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
)
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.errors import IllegalParameter, UnexpectedMessage, UnsupportedExtension, UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tlsmith.codec.extensions import Extension
    from tlsmith.config import ClientConfig, ServerConfig
    from tlsmith.events import Event
    from tlsmith.observe import Epoch
    from tlsmith.record.protection import RecordDecrypter, RecordEncrypter
    from tlsmith.session import Session


class HandshakeIO(Protocol):
    """The connection, as seen by a handshake state (never the public API)."""

    @property
    def is_client(self) -> bool: ...

    def now(self) -> float: ...

    def random(self, n: int) -> bytes: ...

    def send_handshake(self, message: object, raw: bytes) -> None: ...

    def send_change_cipher_spec(self) -> None: ...

    def owe_change_cipher_spec(self) -> None:
        """RFC 8446 §D.4: the compatibility CCS must precede our next protected record;
        sent by ``send_change_cipher_spec`` or, if an alert comes first, before it."""
        ...

    def send_alert(self, level: AlertLevel, description: AlertDescription) -> None: ...

    def drop_compatibility_ccs(self) -> None: ...

    def set_write(self, encrypter: RecordEncrypter, epoch: Epoch) -> None: ...

    def set_read(self, decrypter: RecordDecrypter, epoch: Epoch) -> None: ...

    def received(self, message: object, raw: bytes) -> None: ...

    def secret(self, name: str, value: bytes, nss_label: str | None) -> None: ...

    def check(self, name: str, ok: bool, detail: str) -> None: ...

    @property
    def observed(self) -> bool:
        """Whether someone observes the trace: build costly details only then."""
        ...

    def note(self, text: str) -> None: ...

    def emit(self, event: Event) -> None: ...

    def handshake_done(self) -> None: ...

    def send_application_data(self, data: bytes) -> None:
        """Protect ``data`` as application data under the current write keys (0-RTT
        data, or rejected early data sent again after the handshake)."""
        ...

    def key_update_reply_pending(self) -> bool:
        """We sent a KeyUpdate and no application data since (flushed or not): it
        already answers a peer's update_requested (RFC 8446 §4.6.3)."""
        ...

    def skip_early_data(self, limit: int) -> None:
        """Server, RFC 8446 §4.2.10: drop up to ``limit`` bytes of the client's 0-RTT
        records that we will not read (early data rejected, or after an HRR)."""
        ...

    def accept_early_data(self, limit: int) -> None:
        """Server: 0-RTT data is being read (epoch EARLY); more than ``limit`` bytes is
        an unexpected_message (RFC 8446 §4.2.10)."""
        ...


class ClientIO(HandshakeIO, Protocol):
    @property
    def config(self) -> ClientConfig: ...

    #: The session to resume (TLSConnection(session=...)), or None.
    @property
    def session(self) -> Session | None: ...

    #: TLS 1.3 0-RTT data to send with the ClientHello (TLSConnection(early_data=...)).
    @property
    def early_data(self) -> bytes | None: ...


class ServerIO(HandshakeIO, Protocol):
    @property
    def config(self) -> ServerConfig: ...


IO = TypeVar("IO", bound=HandshakeIO)


class State(Generic[IO]):
    """A handshake state: ``handle`` consumes one accepted message, returns the next state."""

    expects: frozenset[HandshakeType] = frozenset()
    #: The negotiated version once known (None before the hellos are through).
    version: ProtocolVersion | None = None
    #: Whether application data may arrive in this state.
    accepts_application_data = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def handle(self, io: IO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[IO]:
        raise NotImplementedError

    # -- record policy (overridden per version) ---------------------------------------
    def change_cipher_spec(self, io: IO) -> State[IO]:
        """A ChangeCipherSpec record arrived."""
        raise UnexpectedMessage(f"change_cipher_spec is not expected in state {self.name}")

    def alert_is_fatal(self, level: AlertLevel, description: AlertDescription) -> bool:
        """RFC 8446 §6.2: in TLS 1.3 every alert but close_notify and user_canceled is
        fatal, whatever level it claims. TLS 1.2 states override this."""
        return description not in (AlertDescription.CLOSE_NOTIFY,
                                   AlertDescription.USER_CANCELED)

    def key_update(self, io: IO, *, request_peer: bool) -> None:
        raise UsageError("key_update() needs a completed TLS 1.3 handshake")

    def export_keying_material(self, label: bytes, context: bytes | None, length: int
                               ) -> bytes:
        raise UsageError("keying material can be exported only after the handshake")

    def request_client_certificate(self, io: ServerIO) -> None:
        """RFC 8446 §4.6.2 post-handshake authentication (a TLS 1.3 server)."""
        raise UsageError("request_client_certificate() needs a completed TLS 1.3 handshake")


class Tls13Handshaking(State[IO]):
    """A TLS 1.3 handshake state (or one before the version is known): RFC 8446 §5 drops
    a ChangeCipherSpec of one 0x01 byte between the first ClientHello and Finished."""

    def change_cipher_spec(self, io: IO) -> State[IO]:
        io.drop_compatibility_ccs()
        return self


class Tls12State(State[IO]):
    """A TLS 1.2 state: warning-level alerts are not fatal (RFC 5246 §7.2)."""

    version = ProtocolVersion.TLS12

    def alert_is_fatal(self, level: AlertLevel, description: AlertDescription) -> bool:
        if description == AlertDescription.CLOSE_NOTIFY:
            return False
        return level != AlertLevel.WARNING


_C = ExtensionContext
_CH, _SH, _HRR = _C.CLIENT_HELLO, _C.SERVER_HELLO, _C.HELLO_RETRY_REQUEST
_EE, _CR, _CT, _NST = (_C.ENCRYPTED_EXTENSIONS, _C.CERTIFICATE_REQUEST, _C.CERTIFICATE,
                       _C.NEW_SESSION_TICKET)

# RFC 8446 §4.2: the TLS 1.3 messages in which each extension may appear.
ALLOWED_IN: dict[ExtensionType, frozenset[ExtensionContext]] = {
    ExtensionType.SERVER_NAME: frozenset({_CH, _EE}),
    ExtensionType.MAX_FRAGMENT_LENGTH: frozenset({_CH, _EE}),
    ExtensionType.STATUS_REQUEST: frozenset({_CH, _CR, _CT}),
    ExtensionType.SUPPORTED_GROUPS: frozenset({_CH, _EE}),
    ExtensionType.SIGNATURE_ALGORITHMS: frozenset({_CH, _CR}),
    ExtensionType.USE_SRTP: frozenset({_CH, _EE}),
    ExtensionType.HEARTBEAT: frozenset({_CH, _EE}),
    ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION: frozenset({_CH, _EE}),
    ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP: frozenset({_CH, _CR, _CT}),
    ExtensionType.CLIENT_CERTIFICATE_TYPE: frozenset({_CH, _EE}),
    ExtensionType.SERVER_CERTIFICATE_TYPE: frozenset({_CH, _EE}),
    ExtensionType.PADDING: frozenset({_CH}),
    ExtensionType.KEY_SHARE: frozenset({_CH, _SH, _HRR}),
    ExtensionType.PRE_SHARED_KEY: frozenset({_CH, _SH}),
    ExtensionType.PSK_KEY_EXCHANGE_MODES: frozenset({_CH}),
    ExtensionType.EARLY_DATA: frozenset({_CH, _EE, _NST}),
    ExtensionType.COOKIE: frozenset({_CH, _HRR}),
    ExtensionType.SUPPORTED_VERSIONS: frozenset({_CH, _SH, _HRR}),
    ExtensionType.CERTIFICATE_AUTHORITIES: frozenset({_CH, _CR}),
    ExtensionType.OID_FILTERS: frozenset({_CR}),
    ExtensionType.POST_HANDSHAKE_AUTH: frozenset({_CH}),
    ExtensionType.SIGNATURE_ALGORITHMS_CERT: frozenset({_CH, _CR}),
    # RFC 8449 §4 / RFC 8879 §3: later extensions with their own rules.
    ExtensionType.RECORD_SIZE_LIMIT: frozenset({_CH, _EE}),
    ExtensionType.COMPRESS_CERTIFICATE: frozenset({_CH, _CR}),
    # draft-vvv-tls-alps §3 (both codepoints; also in ClientEncryptedExtensions).
    ExtensionType.APPLICATION_SETTINGS: frozenset({_CH, _EE}),
    ExtensionType.APPLICATION_SETTINGS_NEW: frozenset({_CH, _EE}),
}

# RFC 5246 §7.4.1.4 and the RFCs that define them: what a TLS 1.2 ServerHello may answer.
TLS12_SERVER_HELLO_EXTENSIONS: frozenset[ExtensionType] = frozenset({
    ExtensionType.SERVER_NAME,
    ExtensionType.MAX_FRAGMENT_LENGTH,
    ExtensionType.STATUS_REQUEST,
    ExtensionType.EC_POINT_FORMATS,
    ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
    ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP,
    ExtensionType.ENCRYPT_THEN_MAC,
    ExtensionType.EXTENDED_MASTER_SECRET,
    ExtensionType.SESSION_TICKET,
    ExtensionType.RENEGOTIATION_INFO,
    ExtensionType.RECORD_SIZE_LIMIT,
    ExtensionType.NEXT_PROTOCOL_NEGOTIATION,
    ExtensionType.CLIENT_CERTIFICATE_TYPE,  # RFC 7250 §4.2
    ExtensionType.SERVER_CERTIFICATE_TYPE,
})


# Extensions of TLS 1.2 alone (RFC 8446 §4.2's table lists none of them): recognised, so
# one in a TLS 1.3 server message is an illegal_parameter (found by BoGo's
# EMS-Forbidden-TLS13, RenegotiationInfo-Forbidden-TLS13, Ticket-Forbidden-TLS13).
TLS12_ONLY_EXTENSIONS: frozenset[ExtensionType] = TLS12_SERVER_HELLO_EXTENSIONS - set(ALLOWED_IN)


# Per TLS 1.3 message: the extension types the check below refuses there whether offered
# or not (defined only for other messages, or TLS 1.2-only).
_FORBIDDEN_IN: dict[ExtensionContext, frozenset[ExtensionType]] = {
    where: frozenset(t for t, allowed in ALLOWED_IN.items() if where not in allowed)
    | TLS12_ONLY_EXTENSIONS
    for where in ExtensionContext
}
# TLS 1.2: the TLS 1.3 extensions a TLS 1.2 ServerHello may not carry.
_FORBIDDEN_TLS12 = frozenset(ALLOWED_IN) - TLS12_SERVER_HELLO_EXTENSIONS


def check_server_extensions(
    extensions: Sequence[Extension], where: ExtensionContext, offered: frozenset[ExtensionType],
    *, tls12: bool = False,
) -> None:
    """RFC 8446 §4.2 / RFC 5246 §7.4.1.4: a recognised extension in a message it is not
    defined for is an illegal_parameter (TLS 1.3) or unsupported_extension (TLS 1.2); a
    response to an extension we never offered is an unsupported_extension."""
    # The common case first, with no Enum call: every extension may appear here and
    # answers one we offered (or the message is a server request, where any may).
    # Anything else is judged by the loop below, which raises the precise error.
    forbidden = _FORBIDDEN_TLS12 if tls12 else _FORBIDDEN_IN[where]
    if where is _CR or where is _NST:
        for ext in extensions:
            if ext.extension_type in forbidden:
                break
        else:
            return
    else:
        for ext in extensions:
            t = ext.extension_type
            if t in forbidden or t not in offered:
                break
        else:
            return
    for ext in extensions:
        t = ExtensionType(ext.extension_type)
        if tls12:
            if t in ALLOWED_IN and t not in TLS12_SERVER_HELLO_EXTENSIONS:
                raise UnsupportedExtension(f"the {t.name} extension is not allowed in a "
                                           "TLS 1.2 ServerHello",
                                           check="extension_not_allowed")
        else:
            allowed = ALLOWED_IN.get(t)
            if (allowed is not None and where not in allowed) or t in TLS12_ONLY_EXTENSIONS:
                raise IllegalParameter(f"the {t.name} extension is not allowed in "
                                       f"{where.value}", check="extension_not_allowed")
        # RFC 8446 §4.2: responses only to what was offered -- except the cookie in a
        # HelloRetryRequest, and requests of the server's own (CR, NST).
        server_initiated = where in (_CR, _NST) or (where == _HRR and t == ExtensionType.COOKIE)
        if t not in offered and not server_initiated:
            raise UnsupportedExtension(
                f"the server sent the {t.name} extension in {where.value}, which the client "
                "never offered", check="extension_not_offered"
            )
