"""What the shim prints on stderr when a connection fails.

One line naming tlsmith's error class and, where the core gives one, the check that
fired and the alert we sent: ``<DecodeError> <check:ch_trailing> <alert:decode_error>``.
A fatal alert from the peer is named as BoringSSL names it (``:TLSV1_ALERT_...:``), which
is simply the alert's name. ``tests/bogo/config.json``'s ErrorMap maps each BoringSSL
error the runner expects to the tokens tlsmith prints for the same failure.
"""

from __future__ import annotations

from tlsmith.codec.enums import AlertDescription
from tlsmith.errors import AlertReceived, ProtocolError, TLSError

# RFC 6101 alerts keep SSLv3 in BoringSSL's names; later ones say TLSV1.
_SSL3_ALERTS = frozenset({0, 10, 20, 30, 40, 41, 42, 43, 44, 45, 46, 47})
_RENAMED = {AlertDescription.USER_CANCELED: "USER_CANCELLED"}


def boringssl_alert_name(alert: AlertDescription) -> str:
    """BoringSSL's error for a received alert, e.g. ``:SSLV3_ALERT_HANDSHAKE_FAILURE:``."""
    name = _RENAMED.get(alert, alert.name)
    prefix = "SSLV3" if int(alert) in _SSL3_ALERTS else "TLSV1"
    return f":{prefix}_ALERT_{name}:"


def describe_error(exc: TLSError) -> str:
    if isinstance(exc, AlertReceived):
        return f"<AlertReceived> {boringssl_alert_name(exc.description)} {exc}"
    if isinstance(exc, ProtocolError):
        check = f" <check:{exc.check}>" if exc.check else ""
        return (f"<{type(exc).__name__}>{check} <alert:{exc.alert.rfc_name}> "
                f"{exc.message}")
    return f"<{type(exc).__name__}> {exc}"
