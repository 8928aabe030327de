"""The application's certificate-verification hook (``verify_callback``).

A client (``ClientConfig.verify_callback``) or server (``ServerConfig.verify_callback``)
may hand the peer's chain to its own code, which returns ``accept()`` or
``refuse(reason)``:

* with a trust store in use (``verify_certificates=True`` / ``client_trust``), tlsmith
  verifies first and the callback only sees a chain that passed (``check.verified``): it
  can refuse more (pinning, an allow-list), never accept what tlsmith refused;
* without one (``verify_certificates=False`` / no ``client_trust``), the callback alone
  decides, and tlsmith says so: the chain was "accepted by the application's callback,
  not verified against a trust store" (``HandshakeInfo.certificate_verified`` stays
  False, ``certificate_accepted_by_callback`` is True).

A refusal sends the verdict's alert (certificate_unknown unless chosen) and raises the
error class named after it with ``check="verify_callback_refused"``; an exception in the
callback sends internal_error (``check="verify_callback_error"``, the exception chained).
The callback runs when the peer's Certificate arrives, so on a full handshake; with
``reverify_on_resume`` also on a resumption, with the session's chain (``resumed``): a
client's refusal ends the connection, a server's declines to resume (a full handshake
asks for a certificate again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tlsmith.codec.enums import AlertDescription
from tlsmith.errors import ProtocolError, error_for_alert
from tlsmith.x509.verify import VerifiedChain

#: The alerts a refusal may send (RFC 8446 §6.2: the certificate alerts, and the two
#: general ones an application may mean instead).
REFUSAL_ALERTS = frozenset({
    AlertDescription.BAD_CERTIFICATE,
    AlertDescription.UNSUPPORTED_CERTIFICATE,
    AlertDescription.CERTIFICATE_REVOKED,
    AlertDescription.CERTIFICATE_EXPIRED,
    AlertDescription.CERTIFICATE_UNKNOWN,
    AlertDescription.UNKNOWN_CA,
    AlertDescription.ACCESS_DENIED,
    AlertDescription.HANDSHAKE_FAILURE,
})

REFUSED_CHECK = "verify_callback_refused"
ERROR_CHECK = "verify_callback_error"
#: What a chain the callback alone accepted is called (trace lines, docs): never "verified".
ACCEPTED_UNVERIFIED = ("accepted by the application's callback, not verified against a "
                       "trust store")


@dataclass(frozen=True)
class PeerCertificates:
    """What the callback judges. ``chain``: the DER certificates as the peer sent them,
    leaf first; ``peer``: whose they are; ``verified``: tlsmith's own verification (the
    validated path), or None when no trust store was used; ``resumed``: a re-check on
    resumption (the chain is the session's); ``server_name``: the name the client asked
    for (client side: the one it verifies; server side: the client's SNI, if any)."""

    chain: tuple[bytes, ...]
    peer: Literal["server", "client"]
    verified: VerifiedChain | None
    server_name: str | None = None
    resumed: bool = False


@dataclass(frozen=True)
class Verdict:
    """The callback's answer: ``accept()`` or ``refuse(reason, alert=...)``."""

    accepted: bool
    reason: str = ""
    alert: AlertDescription = AlertDescription.CERTIFICATE_UNKNOWN

    def __post_init__(self) -> None:
        if not self.accepted and self.alert not in REFUSAL_ALERTS:
            allowed = ", ".join(sorted(a.rfc_name for a in REFUSAL_ALERTS))
            raise ValueError(f"a refusal sends one of {allowed}, not {self.alert!r}")


def accept(reason: str = "") -> Verdict:
    return Verdict(True, reason)


def refuse(reason: str, *, alert: AlertDescription = AlertDescription.CERTIFICATE_UNKNOWN
           ) -> Verdict:
    return Verdict(False, reason, alert)


VerifyCallback = Callable[[PeerCertificates], Verdict]


def run_callback(callback: VerifyCallback, peer: PeerCertificates) -> Verdict:
    """Ask the callback; a refusal or a failure becomes the typed error (its alert)."""
    who = f"the {peer.peer}'s certificate"
    try:
        verdict = callback(peer)
    except Exception as exc:
        raise error_for_alert(AlertDescription.INTERNAL_ERROR,
                              f"the application's verify callback failed on {who}: "
                              f"{type(exc).__name__}: {exc}", check=ERROR_CHECK) from exc
    if not isinstance(verdict, Verdict):
        raise error_for_alert(AlertDescription.INTERNAL_ERROR,
                              f"the application's verify callback returned {verdict!r}, "
                              "not accept() or refuse()", check=ERROR_CHECK)
    if not verdict.accepted:
        raise refused_error(verdict, who)
    return verdict


def refused_error(verdict: Verdict, who: str) -> ProtocolError:
    detail = f": {verdict.reason}" if verdict.reason else ""
    return error_for_alert(verdict.alert,
                           f"the application's verify callback refused {who}{detail}",
                           check=REFUSED_CHECK)


def describe(verdict: Verdict, *, verified: bool) -> str:
    """The trace line for an accepted chain: honest about what was verified."""
    detail = f" ({verdict.reason})" if verdict.reason else ""
    if verified:
        return f"the application's callback accepted the verified chain{detail}"
    return ACCEPTED_UNVERIFIED + detail
