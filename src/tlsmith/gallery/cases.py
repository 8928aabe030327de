"""The gallery's cases: names, what each demonstrates and the finding diagnose must report.

Pure data (no keys, no sockets), so ``tlsmith gallery list`` is instant. The names are
stable (scripts and tests match on them); the order is the port order of
``tlsmith gallery serve --base-port N`` (case i listens on N + i).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GalleryCase:
    """One broken (or healthy) server: ``expect`` is the finding id ``tlsmith diagnose``
    must report for it (``tlsmith.findings.KNOWN_IDS``), None for servers a default
    client connects to."""

    name: str
    description: str
    expect: str | None
    #: Played by a raw responder (tlsmith cannot be such a server), not a TLSServer.
    emulated: bool = False


CASES: tuple[GalleryCase, ...] = (
    GalleryCase("good", "healthy control: TLS 1.3 and 1.2, a valid localhost certificate "
                "from the gallery CA", None),
    GalleryCase("expired", "the leaf certificate expired (notAfter in the past)",
                "certificate_expired"),
    GalleryCase("not-yet-valid", "the leaf certificate is not valid yet (notBefore in the "
                "future)", "certificate_not_yet_valid"),
    GalleryCase("wrong-host", "the certificate is for wrong.host.example, not localhost",
                "hostname_mismatch"),
    GalleryCase("self-signed", "a self-signed localhost certificate (not from the gallery "
                "CA)", "self_signed"),
    GalleryCase("untrusted-root", "leaf + root of another CA ('tlsmith gallery untrusted "
                "root') that clients do not trust", "unknown_issuer"),
    GalleryCase("missing-intermediate", "the leaf is issued by an intermediate CA the "
                "server does not send (its AIA caIssuers URL serves it over HTTP)",
                "missing_intermediate"),
    GalleryCase("revoked", "staples an OCSP response (signed by the gallery CA) saying "
                "the leaf is revoked (keyCompromise)", "certificate_revoked"),
    GalleryCase("tls10-only", "emulated TLS 1.0-only server: protocol_version alert "
                "unless the client offers TLS 1.0 (then ServerHello 0x0301)",
                "protocol_version_mismatch", emulated=True),
    GalleryCase("tls11-only", "emulated TLS 1.1-only server: protocol_version alert "
                "unless the client offers TLS 1.1 (then ServerHello 0x0302)",
                "protocol_version_mismatch", emulated=True),
    GalleryCase("tls12-only", "TLS 1.2 only (no TLS 1.3); default clients still connect",
                None),
    GalleryCase("cbc-only", "TLS 1.2 with only ECDHE-ECDSA AES-CBC-SHA (SHA-1 HMAC) "
                "suites, which default clients do not offer", "no_shared_cipher_suite"),
    GalleryCase("no-common-group", "emulated server whose only key-exchange group is "
                "ffdhe8192: handshake_failure unless the client offers it",
                "no_shared_group", emulated=True),
    GalleryCase("client-cert-required", "requires a client certificate from the gallery "
                "CA (mutual TLS)", "client_certificate_required"),
    GalleryCase("hrr-required", "TLS 1.3 with only secp384r1: a client that sent an "
                "x25519 share gets a HelloRetryRequest, then connects", None),
    GalleryCase("alpn-mismatch", "speaks only ALPN h2: a client offering http/1.1 gets "
                "no_application_protocol", "alpn_mismatch"),
    GalleryCase("0rtt-rejected", "issues tickets allowing 0-RTT but rejects every "
                "early-data attempt (resumption still works; the data is resent)", None),
    GalleryCase("weak-rsa-1024", "the leaf has an RSA-1024 key", "weak_key"),
    GalleryCase("sha1-signature", "the leaf is signed with SHA-1 (ecdsa-with-SHA1)",
                "sha1_signature"),
)

#: The name clients ask for (SNI and certificate name check).
SERVER_NAME = "localhost"
HOST = "127.0.0.1"


def case(name: str) -> GalleryCase:
    """The case called ``name`` (KeyError if there is none)."""
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(name)


def aia_port(base_port: int) -> int:
    """With ``--base-port N``: the plain-HTTP port serving the missing intermediate
    (after the last case)."""
    return base_port + len(CASES)


def default_gallery_dir() -> Path:
    """Where ``tlsmith gallery serve`` keeps its CA: ``<data dir>/gallery`` (the data dir
    is $TLSMITH_HOME, else $XDG_DATA_HOME/tlsmith, else ~/.local/share/tlsmith)."""
    from tlsmith.x509.devca import default_data_dir

    return default_data_dir() / "gallery"
