"""TLS 1.3 pre-shared keys: offering them (client), choosing one (server), binders,
0-RTT early data and the server's NewSessionTickets (RFC 8446 §4.2.9-§4.2.11, §4.6.1, §8).

Client: ``to_offer`` picks the resumption ticket (``io.session``) and external PSKs that
may be used here; ``bind`` fills in their binders over the truncated ClientHello;
``send_early_data`` switches to the client_early_traffic_secret and sends the 0-RTT data.

Server: ``select`` walks the offered identities, opens our tickets (stateless, see
``tlsmith.tickets``), checks each one's hash, lifetime and SNI, and verifies the binder of
the one it picks *before anything else uses it* -- a wrong binder is decrypt_error.
``early_data_verdict`` decides 0-RTT (first identity, same suite and ALPN, fresh ticket
age, single use via the store); ``send_tickets`` issues NewSessionTickets.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass, field, replace

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    CertificateType,
    CipherSuite,
    ExtensionType,
    ProtocolVersion,
    PskKeyExchangeMode,
    member,
)
from tlsmith.codec.messages import ClientHello, NewSessionTicket
from tlsmith.config import ServerConfig
from tlsmith.crypto import schedule13
from tlsmith.crypto.suites import SuiteInfo, hash_factory, suite_info
from tlsmith.crypto.transcript import Transcript
from tlsmith.errors import DecryptError, IllegalParameter, InternalError
from tlsmith.frozen import fast_init
from tlsmith.handshake.base import ClientIO, ServerIO
from tlsmith.handshake.client import sni_name
from tlsmith.handshake.common13 import announce, encrypter
from tlsmith.handshake.negotiate import Offered
from tlsmith.handshake.proofs import reverify_client_session
from tlsmith.observe import Epoch
from tlsmith.session import ExternalPsk, Session13, expand_psks
from tlsmith.stores import StoreUnavailable
from tlsmith.tickets import ServerSessionState, TicketKeys, open_ticket, seal_ticket

# -- client ------------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class OfferedPsk:
    """One identity in our pre_shared_key extension and the key behind it."""

    identity: bytes
    obfuscated_age: int
    psk: bytes = field(repr=False)
    hash_name: str
    external: bool
    session: Session13 | None = None
    source: ExternalPsk | None = None  # the external PSK (its imported_from, if any)

    @property
    def imported(self) -> bool:
        return self.source is not None and self.source.imported_from is not None

    @property
    def hash_len(self) -> int:
        return schedule13.hash_length(self.hash_name)

    @property
    def allows_early_data(self) -> bool:
        return self.session is not None and self.session.max_early_data > 0

    #: The Early Secret of this PSK, derived once (``early_secret``): the binder and the
    #: handshake both use it; a ``replace`` copy (same PSK and hash) keeps it.
    early: schedule13.EarlySecret | None = field(default=None, repr=False, compare=False)

    def early_secret(self) -> schedule13.EarlySecret:
        early = self.early
        if early is None:
            early = schedule13.EarlySecret.derive(self.hash_name, self.psk)
            object.__setattr__(self, "early", early)
        return early


def _offered_hashes(io: ClientIO) -> frozenset[str]:
    suites = io.config.cipher_suites
    return _tls13_hashes(suites if type(suites) is tuple else tuple(suites))


@functools.lru_cache(maxsize=64)
def _tls13_hashes(suites: tuple[CipherSuite, ...]) -> frozenset[str]:
    """The hashes of the TLS 1.3 suites among ``suites`` (per configuration: cached)."""
    return frozenset(i.hash_name for s in suites if (i := suite_info(s)) is not None and i.tls13)


def to_offer(io: ClientIO) -> tuple[OfferedPsk, ...]:
    """The resumption ticket (first, so 0-RTT can use it) and the external PSKs."""
    session = io.session
    now = io.now()  # (read even when unused: a test clock's later readings stay the same)
    if session is None and not io.config.external_psks:
        return ()  # (a first connection without external PSKs: nothing to look at)
    out: list[OfferedPsk] = []
    hashes = _offered_hashes(io)
    if isinstance(session, Session13):
        info = suite_info(session.cipher_suite)
        if session.expired(now):
            io.note("the TLS 1.3 session ticket has expired: not offering it")
        elif info is None or info.hash_name not in hashes:
            # RFC 8446 §4.2.11: a PSK is usable only with a suite of its hash.
            io.note("no offered cipher suite has the ticket's hash: not offering it")
        elif session.server_name != sni_name(io.config.server_name):
            # RFC 8446 §4.2.11: resume only with the SNI of the original session.
            io.note("the session ticket was issued for another server name: not offering "
                    "it")
        else:
            out.append(OfferedPsk(session.ticket, session.obfuscated_age(now), session.psk,
                                  info.hash_name, external=False, session=session))
            if io.observed:  # (the sentence is built only for an observer)
                io.note(f"offering a session ticket ({len(session.ticket)} bytes, "
                        f"{int(now - session.received_at)} s old)")
    for epsk in expand_psks(io.config.external_psks):
        if epsk.hash_name in hashes:
            out.append(OfferedPsk(epsk.identity, 0, epsk.key, epsk.hash_name, external=True,
                                  source=epsk))
    return tuple(out)


def for_retry(io: ClientIO, psks: tuple[OfferedPsk, ...], hash_name: str
              ) -> tuple[OfferedPsk, ...]:
    """RFC 8446 §4.1.4 / §4.2.11: after a HelloRetryRequest keep the PSKs whose hash is
    the chosen suite's, with the ticket age brought up to date."""
    now = io.now()
    return tuple(
        replace(p, obfuscated_age=p.session.obfuscated_age(now)) if p.session else p
        for p in psks if p.hash_name == hash_name)


def binder_for(psk: OfferedPsk, truncated_hash: bytes) -> bytes:
    """RFC 8446 §4.2.11.2: the binder, a Finished MAC (§4.4.4) with BaseKey = binder_key.
    The first time, the Early Secret comes with it (``psk_binder``, as the server checks
    it: the "derived" salt of the handshake that follows is kept in it)."""
    source = psk.source
    imported = source is not None and source.imported_from is not None
    if psk.early is None:
        early, binder = schedule13.psk_binder(psk.hash_name, psk.psk, truncated_hash,
                                              external=psk.external, imported=imported)
        object.__setattr__(psk, "early", early)
        return binder
    binder_key = psk.early.binder_key(external=psk.external, imported=imported)
    return schedule13.binder_value(psk.hash_name, binder_key, truncated_hash)


def bind(hello: ClientHello, psks: tuple[OfferedPsk, ...], transcript: Transcript
         ) -> tuple[ClientHello, bytes]:
    """RFC 8446 §4.2.11.2: each binder is an HMAC over the transcript up to the
    ClientHello truncated before its binders (after an HRR: message_hash, HRR, and the
    truncated second ClientHello). Returns the bound ClientHello and its serialization:
    the truncated bytes followed by the binders vector (pre_shared_key is the last
    extension and a binder keeps its placeholder's length, so nothing before moves),
    which saves serializing the whole ClientHello a second time."""
    placeholder = hello.extensions[-1]
    assert isinstance(placeholder, ext.PreSharedKeyClientHello)
    # The placeholders are the binders' lengths in zero bytes (build_client_hello), each
    # under 256: the binders vector is written here as PskBinderEntry binders<33..2^16-1>.
    zeros = placeholder.binders
    truncated = hello.serialize()[:-(2 + len(zeros) + sum(map(len, zeros)))]
    unset = transcript.hash_name is None
    binders = []
    for p, zero in zip(psks, zeros, strict=True):
        th = (transcript.digest_with(truncated, hash_name=p.hash_name) if unset
              else transcript.digest_with(truncated))
        binder = binder_for(p, th)
        if len(binder) != len(zero):
            raise InternalError("a PSK binder of another length than its placeholder")
        binders.append(binder)
    vector = b"".join([bytes((len(b),)) + b for b in binders])
    bound = ext.PreSharedKeyClientHello(placeholder.identities, tuple(binders))
    # (Built field by field: dataclasses.replace costs more than the binders' HMACs.
    # tests/test_resume13.py checks that these are all of ClientHello's fields.)
    bound_hello = ClientHello(hello.legacy_version, hello.random, hello.legacy_session_id,
                              hello.cipher_suites, hello.legacy_compression_methods,
                              (*hello.extensions[:-1], bound), hello.has_extensions_block)
    return bound_hello, truncated + len(vector).to_bytes(2, "big") + vector


def send_early_data(io: ClientIO, psk: OfferedPsk, transcript: Transcript) -> None:
    """RFC 8446 §2.3 / §4.2.10: 0-RTT data under client_early_traffic_secret (derived
    from the first PSK and the ClientHello), right after the ClientHello."""
    session = psk.session
    info = suite_info(session.cipher_suite) if session is not None else None
    data = io.early_data
    if info is None or data is None:
        return
    ch_hash = transcript.digest_with(b"", hash_name=psk.hash_name)
    early = psk.early_secret()
    cets = early.client_early_traffic_secret(ch_hash)
    announce(io, "client_early_traffic_secret", cets)
    announce(io, "early_exporter_master_secret", early.early_exporter_master_secret(ch_hash))
    io.set_write(encrypter(info, cets), Epoch.EARLY)
    io.note(f"sending {len(data)} bytes of 0-RTT data with {info.name}")
    io.send_application_data(data)


# -- server ------------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class SelectedPsk:
    """The PSK the server accepted (its binder verified)."""

    index: int
    psk: bytes = field(repr=False)
    external: bool
    mode: PskKeyExchangeMode
    state: ServerSessionState | None  # None for an external PSK
    obfuscated_age: int = 0
    identity: bytes = field(default=b"", repr=False)
    source: ExternalPsk | None = None  # the external PSK chosen
    selected_at: float = 0.0  # our clock when the ticket was checked

    def ticket_age_skew(self, now: float) -> float | None:
        """RFC 8446 §8.3: the client's view of the ticket age minus ours (seconds)."""
        state = self.state
        if state is None:
            return None
        client_age = (self.obfuscated_age - state.ticket_age_add) % 2**32 / 1000
        return client_age - (now - state.issued_at)

    @property
    def resumed_with(self) -> str:
        if self.external:
            return "external_psk"
        return "psk_dhe_ke" if self.mode == PskKeyExchangeMode.PSK_DHE_KE else "psk_ke"

    early: schedule13.EarlySecret | None = field(default=None, repr=False, compare=False)
    # (the Early Secret the binder was verified with: not derived again)

    def early_secret(self, hash_name: str) -> schedule13.EarlySecret:
        early = self.early
        if early is not None and early.hash_name == hash_name:
            return early
        return schedule13.EarlySecret.derive(hash_name, self.psk)


def psk_mode(cfg: ServerConfig, offered: Offered, *, have_share: bool
             ) -> PskKeyExchangeMode | None:
    """RFC 8446 §4.2.9: psk_ke when this server opted in (``allow_psk_ke``: cheaper
    resumption, no forward secrecy) and the client offers it; otherwise psk_dhe_ke."""
    modes = offered.psk_modes.ke_modes if offered.psk_modes is not None else ()
    if PskKeyExchangeMode.PSK_KE in modes and cfg.allow_psk_ke:
        return PskKeyExchangeMode.PSK_KE
    if PskKeyExchangeMode.PSK_DHE_KE in modes and have_share:
        return PskKeyExchangeMode.PSK_DHE_KE
    return None


def _ticket_keys(io: ServerIO) -> TicketKeys | None:
    try:
        return io.config.session_store.ticket_keys(io.now())
    except StoreUnavailable as exc:
        io.note(f"warning: the session store is unavailable ({exc}): no resumption")
        return None


def select(io: ServerIO, offered: Offered, suite: SuiteInfo, raw_hello: bytes,
           transcript_before: Transcript | None, mode: PskKeyExchangeMode
           ) -> SelectedPsk | None:
    """The first offered identity we can use with ``suite``, its binder verified; None
    to fall back to a full handshake. ``transcript_before``: after an HRR, the transcript
    through the HelloRetryRequest (binders cover it too)."""
    psk_ext = offered.psk
    if psk_ext is None:
        return None
    cfg = io.config
    now = io.now()
    keys: TicketKeys | None = None
    keys_tried = False
    externals = expand_psks(cfg.external_psks) if cfg.external_psks else ()
    ours = {e.identity for e in externals} if externals else _NO_IDENTITIES
    for index, ident in enumerate(psk_ext.identities):
        if ident.identity in ours:
            continue  # an external PSK: chosen below, in our order
        if not keys_tried:
            keys, keys_tried = _ticket_keys(io), True
        if keys is None:
            break
        opened = open_ticket(keys, ident.identity)
        if opened is None:
            io.note("a PSK identity that is not one of our tickets: ignored")
            continue
        state = opened.state
        if not _ticket_usable(io, state, offered, suite, now):
            continue
        early = _verify_binder(io, psk_ext, index, state.secret, None, suite, raw_hello,
                               transcript_before)
        return SelectedPsk(index, state.secret, False, mode, state,
                           ident.obfuscated_ticket_age, ident.identity, selected_at=now,
                           early=early)
    # No ticket to resume: an external PSK the client offers, the first in
    # ServerConfig.external_psks order (RFC 8446 §4.2.11 leaves the choice to us).
    offered_ids = [ident.identity for ident in psk_ext.identities]
    for external in externals:
        if external.identity not in offered_ids:
            continue
        if external.hash_name != suite.hash_name:
            io.note("an external PSK with another hash than the suite's: skipped")
            continue
        index = offered_ids.index(external.identity)
        early = _verify_binder(io, psk_ext, index, external.key, external, suite,
                               raw_hello, transcript_before)
        return SelectedPsk(index, external.key, True, mode, None,
                           psk_ext.identities[index].obfuscated_ticket_age,
                           external.identity, external, now, early)
    return None


_NO_IDENTITIES: frozenset[bytes] = frozenset()


def _ticket_usable(io: ServerIO, state: ServerSessionState, offered: Offered,
                   suite: SuiteInfo, now: float) -> bool:
    info = suite if state.cipher_suite == suite.suite else suite_info(state.cipher_suite)
    reason = None
    if state.version != ProtocolVersion.TLS13 or info is None:
        reason = "it is not a TLS 1.3 ticket"
    elif state.expired(now):
        reason = "it has expired"
    elif info.hash_name != suite.hash_name:
        # RFC 8446 §4.2.11: the PSK's hash must be the chosen suite's.
        reason = f"its hash ({info.hash_name}) is not that of {suite.name}"
    elif state.server_name != offered.server_name:
        # RFC 8446 §4.2.11 / §4.6.1: not across server names.
        reason = "it was issued for another server name"
    elif io.config.client_auth == "require" and not (
            state.client_certificate_verified
            or state.client_certificate_accepted_by_callback):
        # Resuming would skip the client certificate this server requires.
        reason = "this server requires a client certificate; the session has no verified one"
    else:
        reason = reverify_client_session(io, state.client_certificates, offered.server_name)
    if reason is not None:
        io.note(f"a ticket we cannot resume here: {reason}")
        return False
    return True


def _verify_binder(io: ServerIO, psk_ext: ext.PreSharedKeyClientHello, index: int,
                   key: bytes, external: ExternalPsk | None, suite: SuiteInfo,
                   raw_hello: bytes, transcript_before: Transcript | None
                   ) -> schedule13.EarlySecret:
    """RFC 8446 §4.2.11.2: the server MUST validate the binder of the PSK it selects and
    abort with decrypt_error if it does not verify -- before any key is derived. Returns
    the Early Secret, for the handshake to go on with."""
    binders = psk_ext.binders
    # (pre_shared_key is the hello's last extension: its binders vector ends the hello.)
    truncated = raw_hello[:-(3 + len(binders[0]) if len(binders) == 1
                             else psk_ext.binders_length())]
    hash_name = suite.hash_name
    if transcript_before is None:
        th = hash_factory(hash_name)(truncated).digest()
    else:
        th = transcript_before.digest_with(truncated)
    early, expected = schedule13.psk_binder(
        hash_name, key, th, external=external is not None,
        imported=external is not None and external.imported_from is not None)
    ok = hmac.compare_digest(expected, binders[index])
    if io.observed:
        io.check("PSK binder", ok, f"binder of PSK identity {index} "
                 + ("matches" if ok else "does not match") + " (RFC 8446 §4.2.11.2)")
    if not ok:
        raise DecryptError(f"the binder of PSK identity {index} does not verify "
                           "(RFC 8446 §4.2.11.2)", check="binder_mismatch")
    return early


def early_data_verdict(io: ServerIO, offered: Offered, chosen: SelectedPsk,
                       suite: SuiteInfo, alpn: str | None, *, hrr: bool,
                       alps: bytes | None = None) -> bool:
    """RFC 8446 §4.2.10, §8: accept 0-RTT only from the first identity, a ticket that
    allowed it, the same suite and ALPN, no HRR, a plausible ticket age, and a ticket
    seen for the first time (single use across every server sharing the store)."""
    cfg = io.config
    state = chosen.state
    reason = None
    if cfg.max_early_data <= 0:
        reason = "this server never accepts early data"
    elif hrr:
        reason = "a HelloRetryRequest was needed"
    elif chosen.index != 0 or state is None:
        reason = "early data is accepted only with the first PSK, a ticket of ours"
    elif state.max_early_data <= 0:
        reason = "the ticket did not allow early data"
    elif state.cipher_suite != suite.suite:
        reason = "the cipher suite differs from the ticket's"
    elif state.alpn != alpn:
        reason = "the ALPN protocol differs from the ticket's"
    elif (state.application_settings[0] if state.application_settings else None) != alps:
        # draft-vvv-tls-alps: 0-RTT keeps the session's settings; ours changed.
        reason = "the ALPS settings differ from the ticket's"
    if reason is None and state is not None:
        # RFC 8446 §8.3: the client's view of the ticket age against ours.
        skew = chosen.ticket_age_skew(io.now())
        assert skew is not None
        if abs(skew) > cfg.early_data_window:
            reason = (f"the ticket age the client reports is {skew:+.1f} s off ours "
                      f"(window {cfg.early_data_window:g} s)")
        else:
            try:
                digest = hashlib.sha256(b"tlsmith 0-rtt " + chosen.identity).digest()
                fresh = cfg.session_store.take_once(
                    digest, state.lifetime + cfg.early_data_window, io.now())
            except StoreUnavailable as exc:
                fresh = False
                io.note(f"warning: the session store is unavailable ({exc})")
                reason = "the anti-replay store is unavailable"
            else:
                if not fresh:
                    reason = "this ticket's 0-RTT was already used (a replay)"
    ok = reason is None
    io.check("0-RTT", ok, "early data accepted" if ok else f"early data rejected: {reason}")
    return ok


def send_tickets(io: ServerIO, suite: SuiteInfo, resumption_master_secret: bytes, *,
                 server_name: str | None, alpn: str | None,
                 client_certificates: tuple[bytes, ...] = (),
                 client_certificate_verified: bool = False,
                 application_settings: tuple[bytes, bytes] | None = None,
                 server_certificate_type: CertificateType = CertificateType.X509,
                 client_certificate_accepted_by_callback: bool = False) -> int:
    """RFC 8446 §4.6.1: ``config.tickets`` NewSessionTickets, each with its own nonce and
    ticket_age_add, sealed under the current ticket key. Returns how many were sent."""
    cfg = io.config
    if cfg.tickets <= 0:
        return 0
    keys = _ticket_keys(io)
    if keys is None:
        return 0
    now = io.now()
    early: tuple[ext.Extension, ...] = (
        (ext.EarlyDataIndication(cfg.max_early_data),) if cfg.max_early_data > 0 else ())
    exts = early
    if cfg.grease:  # RFC 8701 §3.2
        value = ((io.random(1)[0] & 0xF0) | 0x0A) * 0x0101
        exts += (ext.UnknownExtension(ExtensionType(value), b""),)
    for i in range(cfg.tickets):
        nonce = i.to_bytes(8, "big")
        age_add = int.from_bytes(io.random(4), "big")
        state = ServerSessionState(
            version=ProtocolVersion.TLS13,
            cipher_suite=member(CipherSuite, suite.suite),
            secret=schedule13.resumption_psk(suite.hash_name, resumption_master_secret,
                                             nonce),
            issued_at=now, lifetime=cfg.ticket_lifetime, ticket_age_add=age_add,
            server_name=server_name, alpn=alpn,
            max_early_data=cfg.max_early_data,
            client_certificates=client_certificates,
            client_certificate_verified=client_certificate_verified,
            application_settings=application_settings,
            server_certificate_type=server_certificate_type,
            client_certificate_accepted_by_callback=client_certificate_accepted_by_callback)
        ticket = seal_ticket(keys, state, io.random(12))
        msg = NewSessionTicket(cfg.ticket_lifetime, age_add, nonce, ticket, exts)
        io.send_handshake(msg, msg.serialize())
    if io.observed:
        io.note(f"sent {cfg.tickets} session ticket(s), lifetime {cfg.ticket_lifetime} s"
                + (f", early data up to {cfg.max_early_data} bytes" if early else ""))
    return cfg.tickets


def check_selected_identity(psks: tuple[OfferedPsk, ...], selected: int, suite: SuiteInfo
                            ) -> OfferedPsk:
    """Client, RFC 8446 §4.2.11: the index must be one we offered, and its hash the
    chosen suite's; otherwise illegal_parameter."""
    if selected >= len(psks):
        raise IllegalParameter(f"the server selected PSK identity {selected}, but we "
                               f"offered {len(psks)}", check="psk_index_not_offered")
    chosen = psks[selected]
    if chosen.hash_name != suite.hash_name:
        raise IllegalParameter("the server selected a PSK whose hash is not that of the "
                               "chosen cipher suite", check="psk_hash_mismatch")
    return chosen

