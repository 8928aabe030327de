"""Pieces both TLS 1.2 roles share (RFC 5246): the master secret, the pending record
keys, Finished, the signed ServerKeyExchange content, and the connected state."""

from __future__ import annotations

from dataclasses import dataclass

from tlsmith.codec.enums import AlertDescription, AlertLevel, HandshakeType
from tlsmith.codec.messages import ClientHello, Finished
from tlsmith.codec.messages12 import HelloRequest, MessageBase
from tlsmith.crypto import prf12
from tlsmith.crypto.suites import SuiteInfo
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import UnexpectedMessage
from tlsmith.frozen import fast_init
from tlsmith.handshake.base import IO, HandshakeIO, State, Tls12State
from tlsmith.handshake.proofs import FinishedVerified, verify_finished
from tlsmith.record.protection import (
    RecordDecrypter,
    RecordEncrypter,
    TLS12AeadDecrypter,
    TLS12AeadEncrypter,
)
from tlsmith.record.protection_cbc import TLS12CbcDecrypter, TLS12CbcEncrypter


@fast_init
@dataclass(frozen=True, slots=True, repr=False)
class Keys12:
    """The master secret and what it was derived with; carried into the connected state."""

    suite: SuiteInfo
    master_secret: bytes
    client_random: bytes
    server_random: bytes
    extended_master_secret: bool
    encrypt_then_mac: bool

    def __repr__(self) -> str:
        return f"Keys12({self.suite.name}, ems={self.extended_master_secret})"


def derive_keys(io: HandshakeIO, suite: SuiteInfo, pre_master_secret: bytes,
                client_random: bytes, server_random: bytes, transcript: Transcript, *,
                ems: bool, etm: bool) -> Keys12:
    """RFC 5246 §8.1, or RFC 7627 §4 with the session hash (the transcript through
    ClientKeyExchange)."""
    observed = io.observed  # (unobserved, io.secret and io.note do nothing)
    if observed:
        io.secret("pre_master_secret", pre_master_secret, None)
    if ems:
        session_hash = transcript.digest()
        master = prf12.extended_master_secret(suite.hash_name, pre_master_secret,
                                              session_hash)
        if observed:
            # Not secret, but it pins the master secret: shown with the secrets.
            io.secret("session_hash", session_hash, None)
            io.note("master secret = PRF(pre_master_secret, \"extended master secret\", "
                    "session_hash) (RFC 7627)")
    else:
        master = prf12.master_secret(suite.hash_name, pre_master_secret, client_random,
                                     server_random)
        if observed:
            io.note("master secret = PRF(pre_master_secret, \"master secret\", "
                    "client_random + server_random) (RFC 5246 §8.1; no extended master "
                    "secret)")
    if observed:
        io.secret("master_secret", master, "CLIENT_RANDOM")
    return Keys12(suite, master, client_random, server_random, ems, etm)


def resumed_keys(io: HandshakeIO, suite: SuiteInfo, master_secret: bytes,
                 client_random: bytes, server_random: bytes, *, ems: bool, etm: bool
                 ) -> Keys12:
    """RFC 5246 §7.3 (abbreviated handshake): the session's master secret with the new
    randoms; only the key block (§6.3) changes."""
    if io.observed:  # (unobserved, io.note and io.secret do nothing)
        io.note("resuming: the session's master secret, new key block from the new "
                "randoms (RFC 5246 §7.3)")
        io.secret("master_secret", master_secret, "CLIENT_RANDOM")
    return Keys12(suite, master_secret, client_random, server_random, ems, etm)


def record_keys(io: HandshakeIO, keys: Keys12, *, client: bool
                ) -> tuple[RecordEncrypter, RecordDecrypter]:
    """The pending write and read protection (RFC 5246 §6.3), installed at CCS."""
    suite = keys.suite
    kb = prf12.derive_key_block(suite, keys.master_secret, keys.client_random,
                                keys.server_random)
    if io.observed:
        for name in ("client_write_mac_key", "server_write_mac_key", "client_write_key",
                     "server_write_key", "client_write_iv", "server_write_iv"):
            value = getattr(kb, name)
            if value:
                io.secret(name, value, None)
    ours = (kb.client_write_key, kb.client_write_mac_key, kb.client_write_iv)
    theirs = (kb.server_write_key, kb.server_write_mac_key, kb.server_write_iv)
    if not client:
        ours, theirs = theirs, ours
    if suite.cipher == "cbc":
        return (TLS12CbcEncrypter(suite, ours[0], ours[1],
                                  encrypt_then_mac=keys.encrypt_then_mac, random=io.random),
                TLS12CbcDecrypter(suite, theirs[0], theirs[1],
                                  encrypt_then_mac=keys.encrypt_then_mac))
    return (TLS12AeadEncrypter(suite, ours[0], ours[2]),
            TLS12AeadDecrypter(suite, theirs[0], theirs[2]))


def send_message(io: HandshakeIO, transcript: Transcript, message: MessageBase) -> None:
    """Send one handshake message and add it to the transcript."""
    raw = message.serialize()
    io.send_handshake(message, raw)
    transcript.update(raw)


def finished(keys: Keys12, transcript: Transcript, *, client: bool) -> Finished:
    return Finished(prf12.finished_verify_data(keys.suite.hash_name, keys.master_secret,
                                               client=client,
                                               handshake_hash=transcript.digest()))


def check_finished(io: HandshakeIO, keys: Keys12, transcript: Transcript, received: Finished,
                   *, client: bool) -> FinishedVerified:
    """RFC 5246 §7.4.9: verify_data[12]; a mismatch is decrypt_error."""
    expected = prf12.finished_verify_data(keys.suite.hash_name, keys.master_secret,
                                          client=client, handshake_hash=transcript.digest())
    return verify_finished(io, expected, received.verify_data,
                           "client" if client else "server")


def signed_params(client_random: bytes, server_random: bytes, params: bytes) -> bytes:
    """RFC 5246 §7.4.3 / RFC 8422 §5.4: what the ServerKeyExchange signature covers."""
    return client_random + server_random + params


class Connected12(Tls12State[IO]):
    """After a TLS 1.2 handshake. Renegotiation is refused (RFC 5746 §4.2 / §4.4): a
    HelloRequest or a new ClientHello is answered with a no_renegotiation warning."""

    accepts_application_data = True

    def __init__(self, keys: Keys12, *, is_client: bool,
                 ignore_hello_request: bool = False) -> None:
        self.keys = keys
        self.ignore_hello_request = ignore_hello_request
        self.expects = frozenset({HandshakeType.HELLO_REQUEST} if is_client
                                 else {HandshakeType.CLIENT_HELLO})

    def handle(self, io: IO, msg_type: HandshakeType, body: memoryview, raw: bytes
               ) -> State[IO]:
        if msg_type == HandshakeType.HELLO_REQUEST:
            io.received(HelloRequest.parse_body(body), raw)
            if self.ignore_hello_request:
                io.note("HelloRequest ignored (ClientConfig.ignore_hello_request)")
                return self
        elif msg_type == HandshakeType.CLIENT_HELLO:
            io.received(ClientHello.parse_body(body), raw)
        else:  # pragma: no cover - expects guards this
            raise UnexpectedMessage(f"{msg_type.name} after the handshake")
        io.note("renegotiation refused: answering with a no_renegotiation warning")
        io.send_alert(AlertLevel.WARNING, AlertDescription.NO_RENEGOTIATION)
        return self

    def export_keying_material(self, label: bytes, context: bytes | None, length: int
                               ) -> bytes:
        return export12(self.keys, label, context, length)


def export12(keys: Keys12, label: bytes, context: bytes | None, length: int) -> bytes:
    """RFC 5705 §4 (RFC 7627 §5.4: only safe with the extended master secret)."""
    return prf12.export_keying_material(keys.suite.hash_name, keys.master_secret,
                                        keys.client_random, keys.server_random, label,
                                        context, length)


class AwaitChangeCipherSpec(Tls12State[IO]):
    """Waiting for the peer's ChangeCipherSpec: it switches the read side to the pending
    keys (RFC 5246 §7.1); any handshake message here is unexpected."""

    def __init__(self, decrypter: RecordDecrypter, then: State[IO]) -> None:
        self.decrypter = decrypter
        self.then = then

    def export_keying_material(self, label: bytes, context: bytes | None, length: int
                               ) -> bytes:
        return self.then.export_keying_material(label, context, length)  # (False Start)

    def change_cipher_spec(self, io: IO) -> State[IO]:
        from tlsmith.observe import Epoch

        io.set_read(self.decrypter, Epoch.APPLICATION)
        return self.then


def npn_text(protocol: bytes | None) -> str | None:
    """The NPN protocol as HandshakeInfo.next_protocol shows it (None: no NPN)."""
    return protocol.decode("ascii", "replace") if protocol is not None else None
