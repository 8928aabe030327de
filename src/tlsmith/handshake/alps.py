"""ALPS, application-layer protocol settings (draft-vvv-tls-alps-01, as BoringSSL and
Chrome deploy it; TLS 1.3 only).

The client lists, in its ClientHello, the ALPN protocols it has settings for; a server
with settings for the protocol it negotiates answers in EncryptedExtensions with its
own; the client then sends its settings in a ClientEncryptedExtensions message (an
EncryptedExtensions, type 8, from the client) before its Certificate/Finished. On a
0-RTT resumption that the server accepts, neither side sends them: both keep the
settings of the session (so 0-RTT is offered or accepted only when ours have not
changed since).
"""

from __future__ import annotations

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import ExtensionType

#: (our settings, the peer's settings), as negotiated and as kept in a session.
Settings = tuple[bytes, bytes]


def extension_type(new_codepoint: bool) -> ExtensionType:
    """BoringSSL's two codepoints: 17613 (new) and 17513 (old)."""
    return (ExtensionType.APPLICATION_SETTINGS_NEW if new_codepoint
            else ExtensionType.APPLICATION_SETTINGS)


def settings_extension(new_codepoint: bool, settings: bytes) -> ext.ApplicationSettings:
    """The EncryptedExtensions / ClientEncryptedExtensions form carrying ``settings``."""
    cls = ext.ApplicationSettingsNew if new_codepoint else ext.ApplicationSettings
    return cls(settings)


def local_settings(configured: tuple[tuple[str, bytes], ...], alpn: str | None
                   ) -> bytes | None:
    """Our settings for the ALPN protocol ``alpn`` (None: none configured)."""
    if alpn is None:
        return None
    return next((s for proto, s in configured if proto == alpn), None)


def early_data_mismatch(session: Settings | None,
                        configured: tuple[tuple[str, bytes], ...], alpn: str | None) -> bool:
    """Client: a session that negotiated ALPS carries 0-RTT only if our settings for its
    protocol are still the same (the server will not send its own again)."""
    return session is not None and local_settings(configured, alpn) != session[0]


def offered_protocols(extensions: tuple[ext.Extension, ...], new_codepoint: bool
                      ) -> tuple[bytes, ...]:
    """Server: the protocols a ClientHello's application_settings (of our codepoint)
    lists; a client using the other codepoint is ignored."""
    t = extension_type(new_codepoint)
    for e in extensions:
        if e.extension_type == t and isinstance(e, ext.ApplicationSettingsClientHello):
            return e.protocols
    return ()
