"""What every handshake state is, and what it may ask of the connection.

One class per state (design.md §4). Each declares the handshake messages it accepts in
``expects``; the connection checks that before ``handle`` runs, so a message in the
wrong place is rejected in exactly one function (design.md §5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tlsmith.codec.enums import ExtensionType, HandshakeType
from tlsmith.errors import IllegalParameter, UnsupportedExtension

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tlsmith.codec.extensions import Extension
    from tlsmith.config import ClientConfig, ServerConfig
    from tlsmith.events import Event
    from tlsmith.record.protection import RecordDecrypter, RecordEncrypter


class HandshakeIO(Protocol):
    """The connection, as seen by a handshake state."""

    @property
    def is_client(self) -> bool: ...

    def now(self) -> float: ...

    def random(self, n: int) -> bytes: ...

    def send_handshake(self, message: object, raw: bytes) -> None: ...

    def send_change_cipher_spec(self) -> None: ...

    def set_write(self, encrypter: RecordEncrypter, epoch: str) -> None: ...

    def set_read(self, decrypter: RecordDecrypter, epoch: str) -> None: ...

    def received(self, message: object, raw: bytes) -> None: ...

    def secret(self, name: str, value: bytes, nss_label: str | None) -> None: ...

    def check(self, name: str, ok: bool, detail: str) -> None: ...

    def note(self, text: str) -> None: ...

    def emit(self, event: Event) -> None: ...

    def handshake_done(self) -> None: ...


class ClientIO(HandshakeIO, Protocol):
    @property
    def config(self) -> ClientConfig: ...


class ServerIO(HandshakeIO, Protocol):
    @property
    def config(self) -> ServerConfig: ...


class State:
    """A handshake state: ``handle`` consumes one accepted message, returns the next state."""

    expects: frozenset[HandshakeType] = frozenset()

    @property
    def name(self) -> str:
        return type(self).__name__

    def handle(self, io: HandshakeIO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State:
        raise NotImplementedError


# RFC 8446 §4.2: the messages in which each TLS 1.3 extension may appear.
# CH ClientHello, SH ServerHello, HRR HelloRetryRequest, EE EncryptedExtensions,
# CR CertificateRequest, CT Certificate, NST NewSessionTicket.
ALLOWED_IN: dict[ExtensionType, frozenset[str]] = {
    ExtensionType.SERVER_NAME: frozenset({"CH", "EE"}),
    ExtensionType.MAX_FRAGMENT_LENGTH: frozenset({"CH", "EE"}),
    ExtensionType.STATUS_REQUEST: frozenset({"CH", "CR", "CT"}),
    ExtensionType.SUPPORTED_GROUPS: frozenset({"CH", "EE"}),
    ExtensionType.SIGNATURE_ALGORITHMS: frozenset({"CH", "CR"}),
    ExtensionType.USE_SRTP: frozenset({"CH", "EE"}),
    ExtensionType.HEARTBEAT: frozenset({"CH", "EE"}),
    ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION: frozenset({"CH", "EE"}),
    ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP: frozenset({"CH", "CR", "CT"}),
    ExtensionType.CLIENT_CERTIFICATE_TYPE: frozenset({"CH", "EE"}),
    ExtensionType.SERVER_CERTIFICATE_TYPE: frozenset({"CH", "EE"}),
    ExtensionType.PADDING: frozenset({"CH"}),
    ExtensionType.KEY_SHARE: frozenset({"CH", "SH", "HRR"}),
    ExtensionType.PRE_SHARED_KEY: frozenset({"CH", "SH"}),
    ExtensionType.PSK_KEY_EXCHANGE_MODES: frozenset({"CH"}),
    ExtensionType.EARLY_DATA: frozenset({"CH", "EE", "NST"}),
    ExtensionType.COOKIE: frozenset({"CH", "HRR"}),
    ExtensionType.SUPPORTED_VERSIONS: frozenset({"CH", "SH", "HRR"}),
    ExtensionType.CERTIFICATE_AUTHORITIES: frozenset({"CH", "CR"}),
    ExtensionType.OID_FILTERS: frozenset({"CR"}),
    ExtensionType.POST_HANDSHAKE_AUTH: frozenset({"CH"}),
    ExtensionType.SIGNATURE_ALGORITHMS_CERT: frozenset({"CH", "CR"}),
    # RFC 8449 §4 / RFC 8879 §3: later extensions with their own rules.
    ExtensionType.RECORD_SIZE_LIMIT: frozenset({"CH", "EE"}),
    ExtensionType.COMPRESS_CERTIFICATE: frozenset({"CH", "CR"}),
}


def check_server_extensions(
    extensions: Iterable[Extension], where: str, offered: frozenset[ExtensionType]
) -> None:
    """RFC 8446 §4.2: a recognised extension in a message it is not defined for is an
    illegal_parameter; a response to an extension we never offered is an
    unsupported_extension."""
    for ext in extensions:
        t = ExtensionType(ext.extension_type)
        allowed = ALLOWED_IN.get(t)
        if allowed is not None and where not in allowed:
            raise IllegalParameter(f"the {t.name} extension is not allowed in {where}")
        # RFC 8446 §4.2: responses only to what was offered -- except the cookie in a
        # HelloRetryRequest, and requests of the server's own (CR, NST).
        server_initiated = where in ("CR", "NST") or (
            where == "HRR" and t == ExtensionType.COOKIE)
        if t not in offered and not server_initiated:
            raise UnsupportedExtension(
                f"the server sent the {t.name} extension in {where}, which the client "
                "never offered"
            )
