"""Pieces both TLS 1.3 roles share: installing traffic keys, Finished, the connected state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlsmith.codec.enums import (
    CipherSuite,
    HandshakeType,
    KeyUpdateRequest,
    ProtocolVersion,
    member,
)
from tlsmith.codec.extensions import EarlyDataIndication, UnknownExtension, find_extension
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages import Finished, KeyUpdate, NewSessionTicket
from tlsmith.crypto import schedule13
from tlsmith.crypto.suites import SuiteInfo
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import DecodeError, IllegalParameter, UnexpectedMessage, UsageError
from tlsmith.events import KeyUpdated, SessionTicketReceived
from tlsmith.frozen import fast_init
from tlsmith.handshake.base import IO, HandshakeIO, State, check_server_extensions
from tlsmith.handshake.proofs import FinishedVerified
from tlsmith.handshake.proofs import verify_finished as _verify_finished
from tlsmith.observe import Epoch
from tlsmith.record.protection import TLS13Decrypter, TLS13Encrypter
from tlsmith.session import Session13

if TYPE_CHECKING:
    from tlsmith.handshake.base import ServerIO
    from tlsmith.handshake.pha13 import PhaStep

# NSS key log labels for the TLS 1.3 secrets (see shared/peers.md).
NSS_LABELS = {
    "client_early_traffic_secret": "CLIENT_EARLY_TRAFFIC_SECRET",
    "client_handshake_traffic_secret": "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "server_handshake_traffic_secret": "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "client_application_traffic_secret_0": "CLIENT_TRAFFIC_SECRET_0",
    "server_application_traffic_secret_0": "SERVER_TRAFFIC_SECRET_0",
    "exporter_master_secret": "EXPORTER_SECRET",
    "early_exporter_master_secret": "EARLY_EXPORTER_SECRET",
}


def announce(io: HandshakeIO, name: str, value: bytes) -> None:
    io.secret(name, value, NSS_LABELS.get(name))


def encrypter(suite: SuiteInfo, secret: bytes) -> TLS13Encrypter:
    key, iv = schedule13.traffic_keys(suite.hash_name, secret, suite.key_len, suite.iv_len)
    return TLS13Encrypter(suite, key, iv)


def decrypter(suite: SuiteInfo, secret: bytes) -> TLS13Decrypter:
    key, iv = schedule13.traffic_keys(suite.hash_name, secret, suite.key_len, suite.iv_len)
    return TLS13Decrypter(suite, key, iv)


def handshake_encrypter(suite: SuiteInfo, secret: bytes) -> tuple[TLS13Encrypter, bytes]:
    """``encrypter(suite, secret)`` and the secret's finished_key (RFC 8446 §4.4.4): a
    handshake traffic secret serves both, and one HMAC key padding does."""
    key, iv, finished_key = schedule13.traffic_keys_and_finished_key(
        suite.hash_name, secret, suite.key_len, suite.iv_len)
    return TLS13Encrypter(suite, key, iv), finished_key


def handshake_decrypter(suite: SuiteInfo, secret: bytes) -> tuple[TLS13Decrypter, bytes]:
    """``decrypter(suite, secret)`` and the secret's finished_key, as
    ``handshake_encrypter``."""
    key, iv, finished_key = schedule13.traffic_keys_and_finished_key(
        suite.hash_name, secret, suite.key_len, suite.iv_len)
    return TLS13Decrypter(suite, key, iv), finished_key


@fast_init
@dataclass(frozen=True, slots=True, repr=False)
class HandshakeSecrets:
    """RFC 8446 §7.1: the handshake secret and the two handshake traffic secrets."""

    hs: schedule13.HandshakeSecret
    chts: bytes  # client_handshake_traffic_secret
    shts: bytes  # server_handshake_traffic_secret


def handshake_secrets(io: HandshakeIO, suite: SuiteInfo, shared_secret: bytes | None,
                      transcript_hash: bytes, *,
                      early: schedule13.EarlySecret | None = None) -> HandshakeSecrets:
    """Derive (EarlySecret, from the PSK if resuming -> HandshakeSecret, with the (EC)DHE
    secret or none for psk_ke) and announce both traffic secrets; the caller installs the
    keys for its role."""
    if early is None:
        early = schedule13.EarlySecret.derive(suite.hash_name, None)
    hs, chts, shts = early.handshake_traffic(shared_secret, transcript_hash)
    if io.observed:
        if shared_secret is not None:
            io.secret("ecdhe_shared_secret", shared_secret, None)
        io.secret("early_secret", early.secret, None)
        io.secret("handshake_secret", hs.secret, None)
        announce(io, "client_handshake_traffic_secret", chts)
        announce(io, "server_handshake_traffic_secret", shts)
    return HandshakeSecrets(hs, chts, shts)


def finished_for(suite: SuiteInfo, base_key: bytes, transcript_hash: bytes) -> Finished:
    return Finished(schedule13.finished_verify_data(suite.hash_name, base_key, transcript_hash))


def verify_finished(
    io: HandshakeIO, suite: SuiteInfo, base_key: bytes, transcript_hash: bytes,
    received: Finished, who: str,
) -> FinishedVerified:
    """RFC 8446 §4.4.4: recipients MUST verify Finished and abort with decrypt_error
    (verify_data[Hash.length]: a wrong length is a decode_error)."""
    expected = schedule13.finished_verify_data(suite.hash_name, base_key, transcript_hash)
    return _verify_finished(io, expected, received.verify_data, who)


def verify_finished_with_key(
    io: HandshakeIO, suite: SuiteInfo, finished_key: bytes, transcript_hash: bytes,
    received: Finished, who: str,
) -> FinishedVerified:
    """``verify_finished`` with the finished_key already derived (``handshake_decrypter``)."""
    expected = schedule13.verify_data_with_key(suite.hash_name, finished_key, transcript_hash)
    return _verify_finished(io, expected, received.verify_data, who)


@fast_init
@dataclass(frozen=True, slots=True)
class TicketContext:
    """Client: what a session from this connection's tickets carries besides the PSK
    (RFC 8446 §4.6.1: SNI and ALPN to check on resumption; the server's chain)."""

    server_name: str | None
    alpn: str | None
    peer_certificates: tuple[bytes, ...]
    certificate_verified: bool
    application_settings: tuple[bytes, bytes] | None = None  # ALPS (ours, the server's)
    certificate_accepted_by_callback: bool = False


_NO_TICKET_CONTEXT = TicketContext(None, None, (), False)


@dataclass
class TrafficSecrets:
    """The current application traffic secrets (they change on KeyUpdate, §7.2)."""

    suite: SuiteInfo
    read_secret: bytes
    write_secret: bytes
    generation_read: int = 0
    generation_write: int = 0


_CLIENT_EXPECTS = frozenset({HandshakeType.KEY_UPDATE, HandshakeType.NEW_SESSION_TICKET})
_SERVER_EXPECTS = frozenset({HandshakeType.KEY_UPDATE})


class Connected13(State[IO]):
    """After the handshake: KeyUpdate both ways; NewSessionTicket for clients (§4.6);
    post-handshake client authentication (§4.6.2, handshake/pha13.py) once
    ``enable_post_handshake_auth`` has given it the handshake transcript."""

    version = ProtocolVersion.TLS13
    accepts_application_data = True

    def __init__(self, secrets: TrafficSecrets, *, is_client: bool,
                 resumption_master_secret: bytes, exporter_master_secret: bytes,
                 transcript: Transcript | None = None,
                 ticket_context: TicketContext | None = None) -> None:
        self.secrets = secrets
        self.ticket_context = ticket_context
        self.is_client = is_client
        self.resumption_master_secret = resumption_master_secret
        self.exporter_master_secret = exporter_master_secret
        # RFC 8446 §4.6.2 / §4.4.1: the transcript through the client Finished (never
        # updated: every post-handshake authentication starts from a copy of it). Set
        # only when the client offered post_handshake_auth.
        self.transcript = transcript
        # The server's outstanding CertificateRequest exchange (one at a time).
        self.pha: PhaStep | None = None
        self._base_expects = _CLIENT_EXPECTS if is_client else _SERVER_EXPECTS
        self.expects = self._base_expects
        if transcript is not None:
            self.enable_post_handshake_auth(transcript)

    # -- post-handshake authentication (RFC 8446 §4.6.2) ------------------------------
    def enable_post_handshake_auth(self, transcript: Transcript) -> None:
        """The client offered post_handshake_auth: keep (a copy of) the transcript through
        its Finished. A client then accepts CertificateRequest (without the extension
        it is an unexpected_message, RFC 8446 §4.6.2)."""
        self.transcript = transcript
        self._set_expects()

    def _set_expects(self) -> None:
        extra: frozenset[HandshakeType] = frozenset()
        if self.is_client and self.transcript is not None:
            extra = frozenset({HandshakeType.CERTIFICATE_REQUEST})
        elif self.pha is not None:
            extra = self.pha.expects
        self.expects = self._base_expects | extra

    def request_client_certificate(self, io: ServerIO) -> None:
        """Server: send a CertificateRequest; the answer arrives as a
        ClientCertificateReceived event (application data may interleave)."""
        from tlsmith.handshake import pha13

        if self.is_client:
            raise UsageError("only a server can request a client certificate")
        if self.transcript is None:
            raise UsageError("the client did not offer post_handshake_auth: it cannot be "
                             "asked for a certificate after the handshake (RFC 8446 §4.6.2)")
        if self.pha is not None:
            raise UsageError("a post-handshake certificate request is already outstanding")
        self.pha = pha13.send_certificate_request(io, self.secrets.suite, self.transcript)
        self._set_expects()

    def handle(self, io: IO, msg_type: HandshakeType, body: memoryview,
               raw: bytes) -> State[IO]:
        if self.pha is not None and msg_type in self.pha.expects:
            self.pha = self.pha.handle(io, self.secrets, msg_type, body, raw)
            self._set_expects()
            return self
        if msg_type == HandshakeType.CERTIFICATE_REQUEST and self.transcript is not None:
            from tlsmith.handshake import pha13

            pha13.answer_certificate_request(io, self.secrets, self.transcript, body, raw)
            return self
        if msg_type == HandshakeType.KEY_UPDATE:
            update = KeyUpdate.parse_body(body)
            io.received(update, raw)
            self._update_read(io)
            requested = update.request_update == KeyUpdateRequest.UPDATE_REQUESTED
            if requested and not io.key_update_reply_pending():
                # RFC 8446 §4.6.3: answer with our own KeyUpdate (update_not_requested);
                # one still queued already answers (replies are coalesced).
                self.send_key_update(io, request_peer=False)
            elif requested:
                io.note("update_requested answered by our KeyUpdate still queued")
            io.emit(KeyUpdated(update_requested=requested))
            return self
        if msg_type == HandshakeType.NEW_SESSION_TICKET:
            ticket = NewSessionTicket.parse_body(body)
            io.received(ticket, raw)
            early: EarlyDataIndication | None = None
            flags = 0
            if ticket.extensions:  # (usually none)
                check_server_extensions(ticket.extensions,
                                        ExtensionContext.NEW_SESSION_TICKET, frozenset())
                early = find_extension(ticket.extensions, EarlyDataIndication)
                flags = ticket_flags(ticket)
            if ticket.ticket_lifetime > 604800:
                # RFC 8446 §4.6.1: "Servers MUST NOT use any value greater than 604800".
                raise IllegalParameter("a NewSessionTicket lifetime above 7 days")
            # (A client always has its context; a bare Connected13 gets the defaults.)
            ctx = self.ticket_context or _NO_TICKET_CONTEXT
            session = Session13(
                ticket.ticket,
                schedule13.resumption_psk(self.secrets.suite.hash_name,
                                          self.resumption_master_secret, ticket.ticket_nonce),
                member(CipherSuite, self.secrets.suite.suite),
                ticket.ticket_age_add,
                ticket.ticket_lifetime,
                io.now(),
                ctx.server_name,
                ctx.alpn,
                (early.max_early_data_size or 0) if early else 0,
                ctx.peer_certificates,
                ctx.certificate_verified,
                ctx.application_settings,
                ctx.certificate_accepted_by_callback,
            )
            if io.observed:
                io.note(f"received a session ticket ({len(ticket.ticket)} bytes, lifetime "
                        f"{ticket.ticket_lifetime} s"
                        + (f", early data up to {session.max_early_data} bytes" if early
                           else "") + ")")
            io.emit(SessionTicketReceived(
                session=session, ticket=ticket.ticket, lifetime=ticket.ticket_lifetime,
                max_early_data_size=early.max_early_data_size if early else None,
                resumable_across_names=bool(flags >> RESUMPTION_ACROSS_NAMES & 1) if flags
                else False,
            ))
            return self
        raise UnexpectedMessage(f"{msg_type.name} after the handshake")

    def _update_read(self, io: HandshakeIO) -> None:
        s = self.secrets
        s.read_secret = schedule13.next_traffic_secret(s.suite.hash_name, s.read_secret)
        s.generation_read += 1
        io.set_read(decrypter(s.suite, s.read_secret), Epoch.APPLICATION)
        io.note(f"peer keys updated (generation {s.generation_read})")

    def send_key_update(self, io: HandshakeIO, *, request_peer: bool) -> None:
        """RFC 8446 §4.6.3: send KeyUpdate under the old keys, then switch to the new."""
        msg = KeyUpdate(KeyUpdateRequest.UPDATE_REQUESTED if request_peer
                        else KeyUpdateRequest.UPDATE_NOT_REQUESTED)
        io.send_handshake(msg, msg.serialize())
        s = self.secrets
        s.write_secret = schedule13.next_traffic_secret(s.suite.hash_name, s.write_secret)
        s.generation_write += 1
        io.set_write(encrypter(s.suite, s.write_secret), Epoch.APPLICATION)

    def key_update(self, io: IO, *, request_peer: bool) -> None:
        self.send_key_update(io, request_peer=request_peer)

    def export_keying_material(self, label: bytes, context: bytes | None, length: int
                               ) -> bytes:
        """RFC 8446 §7.5."""
        return schedule13.export_keying_material(
            self.secrets.suite.hash_name, self.exporter_master_secret, label, context, length)


#: tls_flags (draft-ietf-tls-tlsflags, IANA extension 62) and the ticket flag of
#: draft-ietf-tls-cross-sni-resumption.
TLS_FLAGS = 62
RESUMPTION_ACROSS_NAMES = 8


def ticket_flags(ticket: NewSessionTicket) -> int:
    """The NewSessionTicket's tls_flags as a bit set (flag N: bit N % 8 of byte N // 8);
    0 without the extension. ``opaque flags<1..255>`` with no trailing zero byte:
    empty is decode_error, a trailing zero byte illegal_parameter (tlsflags §2)."""
    found = next((e for e in ticket.extensions if isinstance(e, UnknownExtension)
                  and int(e.extension_type) == TLS_FLAGS), None)
    if found is None:
        return 0
    data = found.data
    if not data or data[0] != len(data) - 1 or data[0] == 0:
        raise DecodeError("tls_flags: not a non-empty flags<1..255>",
                          check="ticket_flags_malformed")
    if data[-1] == 0:
        raise IllegalParameter("tls_flags: a trailing zero byte (flags must be minimal)",
                               check="ticket_flags_not_minimal")
    return int.from_bytes(data[1:], "little")

