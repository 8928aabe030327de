"""Proof tokens (design.md §7): the next state requires the token that a check returns,
so skipping a check is a type error. Tokens can only be made here, by the check itself:
their constructor refuses any caller that does not hold this module's private key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from tlsmith.codec.enums import AlertDescription, SignatureScheme, member
from tlsmith.crypto import sig
from tlsmith.errors import (
    BadCertificateStatusResponse,
    DecodeError,
    DecryptError,
    IllegalParameter,
    ProtocolError,
    call_application,
    certificate_error,
)
from tlsmith.handshake.base import ClientIO, HandshakeIO, ServerIO
from tlsmith.x509 import revocation
from tlsmith.x509.callback import (
    REFUSED_CHECK,
    PeerCertificates,
    VerifyCallback,
    describe,
    run_callback,
)
from tlsmith.x509.leaf import PublicKey, leaf_public_key
from tlsmith.x509.revocation import RevocationStatus
from tlsmith.x509.rpk import raw_public_key
from tlsmith.x509.verify import VerifiedChain, verify_client_chain, verify_server_chain

_MINT = object()


def _minted(token: object) -> None:
    if getattr(token, "_mint", None) is not _MINT:
        raise TypeError(f"a {type(token).__name__} can only be made by the check that "
                        "proves it (tlsmith.handshake.proofs)")


@dataclass(frozen=True)
class ChainAccepted:
    """The peer's chain was checked (``verified``), or the caller turned checks off
    (``verified is None``: say so, never "verified"); ``by_callback``: the application's
    verify callback accepted it (alone when ``verified is None``)."""

    verified: VerifiedChain | None
    chain: tuple[bytes, ...]
    _mint: object = field(default=None, repr=False, compare=False)
    #: The revocation verdict on the leaf, once ``check_revocation`` ran (client side).
    revocation: RevocationStatus | None = None
    #: RFC 7250: ``chain`` is the peer's one SPKI; ``key_trusted``: it was a key we were
    #: told to accept (pinned, or the user's callback said yes).
    raw_public_key: bool = False
    key_trusted: bool = False
    #: The OCSP response the server stapled (DER, as received; checked only if
    #: ``revocation`` says so).
    ocsp_response: bytes | None = None
    by_callback: bool = False

    def __post_init__(self) -> None:
        if self._mint is not _MINT:  # (inline: a token is made on every handshake)
            _minted(self)

    @property
    def trusted(self) -> bool:
        """Whether a check vouched for the peer: a verified chain or a trusted key."""
        return self.verified is not None or self.key_trusted

    def public_key(self) -> PublicKey:
        """The peer's key: its raw public key (RFC 7250) or its leaf certificate's."""
        der = self.chain[0]
        return raw_public_key(der) if self.raw_public_key else leaf_public_key(der)


@dataclass(frozen=True)
class SignatureVerified:
    """The peer's handshake signature (CertificateVerify, or the TLS 1.2
    ServerKeyExchange) verified under the accepted chain's leaf key."""

    chain: ChainAccepted
    scheme: SignatureScheme
    _mint: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._mint is not _MINT:  # (inline: a token is made on every handshake)
            _minted(self)


@dataclass(frozen=True)
class KeyTransportServer:
    """TLS 1.2 RSA key transport: the server is authenticated by its ability to decrypt
    the pre-master secret, which the Finished check proves (RFC 5246 §F.1.1.2)."""

    chain: ChainAccepted
    _mint: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._mint is not _MINT:  # (inline: a token is made on every handshake)
            _minted(self)


@dataclass(frozen=True)
class FinishedVerified:
    who: str
    _mint: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._mint is not _MINT:  # (inline: a token is made on every handshake)
            _minted(self)


@dataclass(frozen=True)
class PskServer:
    """TLS 1.2 PSK suite (RFC 4279, RFC 5489): no certificate; the server proves it knows
    the PSK by its Finished, which the client checks (RFC 4279 §2)."""

    identity: bytes
    chain: ChainAccepted
    _mint: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._mint is not _MINT:  # (inline: a token is made on every handshake)
            _minted(self)


def psk_server(identity: bytes) -> PskServer:
    """The server of a PSK suite, authenticated by the Finished still to come."""
    return PskServer(identity, ChainAccepted(None, (), _MINT), _MINT)


ServerAuthenticated = SignatureVerified | KeyTransportServer | PskServer


def accept_server_chain(io: ClientIO, chain: tuple[bytes, ...]) -> ChainAccepted:
    """Verify the server's chain against the trust store and the server name."""
    cfg = io.config
    verified: VerifiedChain | None = None
    if cfg.verify_certificates:
        assert cfg.trust is not None  # ClientConfig guarantees it
        try:
            verified = verify_server_chain(
                chain, trust=cfg.trust, server_name=cfg.server_name,
                now=datetime.fromtimestamp(io.now(), tz=UTC), strict=cfg.strict)
        except Exception as exc:
            io.check(_FAILED_CHECK.get(getattr(exc, "reason", ""), "certificate chain"),
                     False, str(exc))
            raise
        if io.observed:
            report_certificate_checks(io, verified, cfg.server_name)
    elif cfg.verify_callback is None:
        io.check("certificate chain", False, "NOT checked (verification disabled)")
    if cfg.verify_callback is not None:
        application_check(io, cfg.verify_callback, PeerCertificates(
            chain, "server", verified, cfg.server_name))
    return ChainAccepted(verified, chain, _MINT, by_callback=cfg.verify_callback is not None)


def application_check(io: HandshakeIO, callback: VerifyCallback, peer: PeerCertificates
                      ) -> None:
    """The application's verify callback (tlsmith.x509.callback), with its trace line."""
    chain_check = "client certificate chain" if peer.peer == "client" else "certificate chain"
    name = chain_check if peer.verified is None else "application callback"
    try:
        verdict = run_callback(callback, peer)
    except ProtocolError as exc:
        io.check(name, False, exc.message)
        raise
    io.check(name, peer.verified is not None,
             describe(verdict, verified=peer.verified is not None))


def reverify_session(io: HandshakeIO, callback: VerifyCallback | None,
                     chain: tuple[bytes, ...], *, peer: Literal["server", "client"],
                     server_name: str | None) -> bool:
    """``reverify_on_resume``: the callback judges the session's chain again (tlsmith
    does not verify it again: the session says whether it was). True if it ran."""
    if callback is None or not chain:
        return False
    application_check(io, callback, PeerCertificates(chain, peer, None, server_name,
                                                     resumed=True))
    return True


#: Which of the certificate checks a verification error (by its ``reason``) failed.
_FAILED_CHECK = {
    "expired": "certificate validity",
    "not_yet_valid": "certificate validity",
    "hostname_mismatch": "certificate name",
}


def report_certificate_checks(io: HandshakeIO, verified: VerifiedChain,
                              server_name: str | None) -> None:
    """One trace line per certificate check that passed: validity (RFC 5280 §4.1.2.5),
    name (RFC 6125 §6), chain to a trusted root (RFC 5280 §6); revocation has its own."""
    leaf = verified.leaf
    io.check("certificate validity", True,
             f"now is within {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%SZ} .. "
             f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}")
    if verified.hostname is not None:
        io.check("certificate name", True,
                 f"{verified.hostname!r} is a name the certificate is valid for")
    else:
        io.check("certificate name", False, f"NOT checked (no server name: {server_name!r})")
    path = " <- ".join(c.subject.rfc4514_string() or "(empty subject)"
                       for c in verified.chain)
    io.check("certificate chain", True,
             f"{len(verified.chain)} certificate(s) to a trusted root: {path}")


# RFC 7633 must-staple of a leaf: one extension lookup per certificate, not per
# handshake (parsed certificates are shared between handshakes by x509.leaf's cache).
_must_staple = functools.lru_cache(maxsize=512)(revocation.must_staple)


NOT_VERIFIED_SENTENCE = ("revocation: not checked — certificate verification is disabled "
                         "(verify_certificates=False)")
UNCHECKED_STAPLE_SENTENCE = "; a stapled OCSP response was received, not checked"


def check_revocation(io: ClientIO, accepted: ChainAccepted, staple: bytes | None
                     ) -> ChainAccepted:
    """Is the server's (verified) leaf revoked? The stapled OCSP response (RFC 6960,
    RFC 6066 §8), the configured CRLs (RFC 5280 §6.3) and must-staple (RFC 7633), decided
    by ``revocation.decide``. A fatal verdict raises CertificateRevoked (certificate_revoked),
    BadCertificateStatusResponse or CertificateUnknown; otherwise the verdict is carried on.
    """
    cfg = io.config
    received = staple  # (ocsp_response of the result, set at each return)
    if cfg.ocsp_callback is not None and not call_application(
            "the OCSP callback", "ocsp_callback", cfg.ocsp_callback, accepted.chain, staple):
        # RFC 6066 §8: the client may abort on an unacceptable certificate status.
        raise BadCertificateStatusResponse(
            "the OCSP callback refused the server's certificate status "
            f"({'no response stapled' if staple is None else f'{len(staple)} bytes'})",
            check="ocsp_callback")
    verified = accepted.verified
    if accepted.raw_public_key:
        status = RevocationStatus("not_checked", None, "revocation: not applicable to a "
                                  "raw public key (RFC 7250: no certificate to revoke)")
        io.note(status.detail)
        return _with_revocation(accepted, received, status)
    unchecked = UNCHECKED_STAPLE_SENTENCE if staple is not None and (
        verified is None or cfg.ocsp_unchecked) else ""
    if verified is None:
        status = RevocationStatus("not_checked", None, NOT_VERIFIED_SENTENCE + unchecked)
        io.note(status.detail)
        return _with_revocation(accepted, received, status)
    if cfg.ocsp_unchecked:
        staple = None  # handed over (ocsp_response) for the caller to check
    # (The clock is read even when nothing below needs it: deterministic traces made
    # with a ticking test clock depend on the handshake's clock reads.)
    now = datetime.fromtimestamp(io.now(), tz=UTC)
    leaf = verified.leaf
    statuses: list[RevocationStatus] = []
    if staple is not None or cfg.crls:
        path = verified.chain
        # The validated path runs leaf first, anchor last; a trusted self-signed leaf is
        # its own issuer.
        issuer = path[1] if len(path) > 1 else leaf
        if staple is not None:
            statuses.append(revocation.check_ocsp_response(staple, leaf, issuer, now=now))
        if cfg.crls:
            statuses.append(revocation.check_crls(cfg.crls, leaf, issuer, now=now))
            # RFC 5280 §6.3: the CAs on the path may be revoked too (only a listed
            # revocation counts there; missing CRLs for them are not an error).
            for cert, cert_issuer in itertools.pairwise(path[1:]):
                ca_status = revocation.check_crls(cfg.crls, cert, cert_issuer, now=now)
                if ca_status.state == "revoked":
                    statuses.append(ca_status)
    status = revocation.decide(statuses, require=cfg.require_revocation,
                               must_staple=_must_staple(leaf),
                               stapled=staple is not None)
    if status.fatal:
        io.check("revocation", False, status.detail)
        raise _revocation_error(status)
    if unchecked:
        status = replace(status, detail=status.detail + unchecked)
    if status.state == "good":
        io.check("revocation", True, status.detail)
    else:
        # Soft-fail: nothing was checked (or nothing conclusive), and the handshake goes
        # on -- neither a tick nor a cross, but the sentence saying so.
        io.note(status.detail)
    return _with_revocation(accepted, received, status)


def _with_revocation(accepted: ChainAccepted, staple: bytes | None,
                     status: RevocationStatus) -> ChainAccepted:
    """``replace(accepted, ocsp_response=staple, revocation=status)``, field by field
    (dataclasses.replace walks the fields in Python; a test pins the field list)."""
    return ChainAccepted(accepted.verified, accepted.chain, _MINT, status,
                         accepted.raw_public_key, accepted.key_trusted, staple,
                         accepted.by_callback)


def _revocation_error(status: RevocationStatus) -> ProtocolError:
    alert = status.alert
    if alert == AlertDescription.CERTIFICATE_REVOKED:
        return certificate_error("revoked", status.detail)
    if alert == AlertDescription.BAD_CERTIFICATE_STATUS_RESPONSE:
        return BadCertificateStatusResponse(status.detail)
    return certificate_error("policy", status.detail)


def reverify_client_session(io: ServerIO, chain: tuple[bytes, ...],
                            server_name: str | None) -> str | None:
    """Server, ``reverify_on_resume``: ask the verify callback about a session's client
    chain before resuming it. A refusal is the reason not to resume (a full handshake
    asks for a certificate again); a failing callback aborts (internal_error)."""
    cfg = io.config
    if not cfg.reverify_on_resume or not chain:
        return None
    try:
        reverify_session(io, cfg.verify_callback, chain, peer="client",
                         server_name=server_name)
    except ProtocolError as exc:
        if exc.check != REFUSED_CHECK:
            raise
        return "the application's verify callback refused its client certificate"
    return None


def accept_client_chain(io: ServerIO, chain: tuple[bytes, ...], *,
                        server_name: str | None = None) -> ChainAccepted:
    """Mutual TLS: verify a (non-empty) client chain against ServerConfig.client_trust
    for the clientAuth purpose (RFC 5280 §4.2.1.12), then ask the application's
    verify_callback (alone when there is no client_trust)."""
    trust = io.config.client_trust
    callback = io.config.verify_callback
    verified: VerifiedChain | None = None
    if trust is not None:
        try:
            verified = verify_client_chain(chain, trust=trust,
                                           now=datetime.fromtimestamp(io.now(), tz=UTC),
                                           strict=io.config.strict)
        except Exception as exc:
            io.check("client certificate chain", False, str(exc))
            raise
        io.check("client certificate chain", True,
                 f"chains to a trusted client CA ({trust.source}) and allows clientAuth")
    if callback is not None:
        application_check(io, callback, PeerCertificates(chain, "client", verified,
                                                         server_name))
    else:
        assert verified is not None  # ServerConfig: client_trust or a verify_callback
    return ChainAccepted(verified, chain, _MINT, by_callback=callback is not None)


def accept_raw_public_key(io: HandshakeIO, spki: bytes, *, pinned: Collection[bytes],
                          verifier: Callable[[bytes], bool] | None, required: bool,
                          who: str) -> ChainAccepted:
    """RFC 7250: a peer's raw public key has no name or issuer to check; it is accepted
    if it is pinned or the user's verifier accepts it. With neither configured and
    ``required`` False (verification turned off) it is taken and reported unchecked."""
    raw_public_key(spki)  # a malformed SPKI is a decode_error before any trust decision
    what = f"{who} raw public key"
    if not pinned and verifier is None:
        if required:
            raise certificate_error("policy", f"the {who}'s raw public key: no pinned "
                                    "keys or verifier to accept it with")
        io.check(what, False, "NOT checked (verification disabled)")
        return ChainAccepted(None, (spki,), _MINT, raw_public_key=True)
    ok = spki in pinned or (verifier is not None and call_application(
        "the raw public key verifier", "rpk_verifier", verifier, spki))
    digest = hashlib.sha256(spki).hexdigest()[:16]
    io.check(what, ok, f"SPKI sha256 {digest}... is " + ("a key we accept" if ok
                                                          else "not a key we accept"))
    if not ok:
        exc = certificate_error("policy", f"the {who}'s raw public key (SPKI sha256 "
                                f"{digest}...) is not one we accept")
        exc.check = "rpk_not_trusted"
        raise exc
    return ChainAccepted(None, (spki,), _MINT, raw_public_key=True, key_trusted=True)


def accept_server_raw_key(io: ClientIO, spki: bytes) -> ChainAccepted:
    """Client: the server's raw public key, against ClientConfig's pins or verifier."""
    cfg = io.config
    return accept_raw_public_key(io, spki, pinned=cfg.trusted_raw_public_keys,
                                 verifier=cfg.raw_public_key_verifier,
                                 required=cfg.verify_certificates, who="server")


def accept_client_raw_key(io: ServerIO, spki: bytes) -> ChainAccepted:
    """Server: a client's raw public key, against ServerConfig's pins or verifier."""
    cfg = io.config
    return accept_raw_public_key(io, spki, pinned=cfg.trusted_client_raw_public_keys,
                                 verifier=cfg.client_raw_public_key_verifier, required=True,
                                 who="client")


def single_raw_key(chain: tuple[bytes, ...]) -> bytes:
    """TLS 1.3: a raw public key Certificate has exactly one entry (RFC 8446 §4.4.2,
    RFC 7250 §3)."""
    if len(chain) != 1:
        raise DecodeError(f"a raw public key Certificate with {len(chain)} entries",
                          check="rpk_entries")
    return chain[0]


def verify_signature(io: HandshakeIO, chain: ChainAccepted, scheme: SignatureScheme | int,
                     offered: Collection[SignatureScheme | int], content: bytes,
                     signature: bytes, *, tls13: bool, what: str,
                     signer: str = "server") -> SignatureVerified:
    """RFC 8446 §4.4.3 / RFC 5246 §7.4.3: a scheme we offered, that fits the leaf's key,
    and a signature that verifies."""
    if scheme not in offered:
        other = "client" if signer == "server" else "server"
        raise IllegalParameter(f"the {signer} signed with {SignatureScheme(scheme).name}, "
                               f"which the {other} did not offer", check="cv_scheme_not_offered")
    if signer == "server" and scheme in sig.CLIENT_ONLY_SCHEMES:
        # RFC 9963 §3: a server never signs with the legacy PKCS#1 code points.
        raise IllegalParameter(f"the server signed with {SignatureScheme(scheme).name}, "
                               "which only a client may use", check="cv_scheme_not_offered")
    key = chain.public_key()
    if not sig.scheme_matches_key(scheme, key, tls13=tls13):
        raise IllegalParameter(
            f"{SignatureScheme(scheme).name} does not fit the certificate's key",
                               check="cv_scheme_key_mismatch")
    scheme = member(SignatureScheme, scheme)
    try:
        # (scheme_matches_key has made sig.verify's checks: the signature alone.)
        sig.verify_fitting(scheme, key, content, signature)
    except Exception as exc:
        io.check(what, False, str(exc))
        if isinstance(exc, ProtocolError) and exc.check is None:
            exc.check = "signature_invalid"
        raise
    if io.observed:
        io.check(what, True, f"{scheme.name} signature is valid")
    return SignatureVerified(chain, scheme, _MINT)


def key_transport_server(chain: ChainAccepted) -> KeyTransportServer:
    return KeyTransportServer(chain, _MINT)


def verify_finished(io: HandshakeIO, expected: bytes, received: bytes, who: str
                    ) -> FinishedVerified:
    """RFC 8446 §4.4.4 / RFC 5246 §7.4.9: recipients MUST verify Finished (decrypt_error)."""
    if len(received) != len(expected):
        # A Finished of the wrong length is a decode_error.
        raise DecodeError(f"the {who} Finished carries {len(received)} bytes; "
                          f"{len(expected)} were expected", check="finished_length")
    ok = hmac.compare_digest(expected, received)
    if io.observed:  # (the record is built only for an observer)
        io.check(f"{who} Finished", ok,
                 "verify_data matches the transcript" if ok else
                 "verify_data does not match: the two sides derived different keys or saw "
                 "different handshake messages")
    if not ok:
        raise DecryptError(f"the {who} Finished message does not verify: the handshake "
                           "transcript or keys differ between the two sides",
                           check="finished_mismatch")
    return FinishedVerified(who, _MINT)
