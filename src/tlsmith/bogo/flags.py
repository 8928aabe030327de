"""The runner's command-line flags: which ones the shim implements, how they parse.

A flag the shim implements is in ``KINDS`` (bool, int, int list, string or base64). A
flag BoringSSL's shim has but tlsmith has no feature for is in ``UNIMPLEMENTED``: the
shim exits 89 and the runner counts the test as unimplemented. Any other flag is
unknown and the shim exits 1, so a new runner flag gets noticed.

``-on-initial-``, ``-on-resume-`` and ``-on-retry-`` prefix a flag that applies to one
connection only; ``-on-shim-`` / ``-on-handshaker-`` belong to split-handshake tests
(the shim answers the ``-is-handshaker-supported`` probe with "No").
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import Enum


class Kind(Enum):
    BOOL = "bool"
    INT = "int"
    INTS = "int list"
    STR = "string"
    B64 = "base64"


class UnimplementedFlag(Exception):
    """A flag tlsmith has no feature for (exit 89)."""


class FlagError(Exception):
    """An unknown flag or a bad value (exit 1)."""


KINDS: dict[str, Kind] = {
    # the runner's plumbing
    "-port": Kind.INT,
    "-shim-id": Kind.INT,
    "-ipv6": Kind.BOOL,
    "-server": Kind.BOOL,
    "-resume-count": Kind.INT,
    "-resumption-delay": Kind.INT,
    # the shim is synchronous over a blocking socket; these change nothing for it
    "-async": Kind.BOOL,
    "-implicit-handshake": Kind.BOOL,
    "-use-early-callback": Kind.BOOL,
    "-no-op-extra-handshake": Kind.BOOL,
    "-handshake-twice": Kind.BOOL,
    # credentials and trust
    "-cert-file": Kind.STR,
    "-key-file": Kind.STR,
    "-trust-cert": Kind.STR,
    "-new-x509-credential": Kind.BOOL,
    # RFC 9258 imported PSKs: -new-psk-credential starts one, the importer flags fill it
    "-new-psk-credential": Kind.BOOL,
    "-psk-importer-key": Kind.B64,
    "-psk-importer-identity": Kind.B64,
    "-psk-importer-context": Kind.B64,
    "-psk-importer-sha256": Kind.BOOL,
    "-psk-importer-sha384": Kind.BOOL,
    # TLS 1.2 PSK suites (RFC 4279, RFC 5489): the key, and the identity (and hint)
    "-psk": Kind.STR,
    "-psk-identity": Kind.STR,
    "-new-rpk-credential": Kind.BOOL,
    # raw public keys (RFC 7250) and certificate type negotiation
    "-accepted-peer-cert-types": Kind.INTS,
    "-available-client-cert-types": Kind.INTS,
    "-expect-peer-certificate-type": Kind.INT,
    "-expect-peer-rpk-sha256": Kind.B64,
    "-expect-selected-credential": Kind.INT,
    "-verify-peer": Kind.BOOL,
    "-require-any-client-certificate": Kind.BOOL,
    "-use-custom-verify-callback": Kind.BOOL,
    "-verify-fail": Kind.BOOL,
    "-reverify-on-resume": Kind.BOOL,
    "-expect-verify-result": Kind.BOOL,
    "-expect-peer-cert-file": Kind.STR,
    "-expect-no-peer-cert": Kind.BOOL,
    "-ocsp-response": Kind.B64,
    "-enable-ocsp-stapling": Kind.BOOL,
    "-use-ocsp-callback": Kind.BOOL,
    "-set-ocsp-in-callback": Kind.BOOL,
    "-decline-ocsp-callback": Kind.BOOL,
    "-fail-ocsp-callback": Kind.BOOL,
    "-expect-ocsp-response": Kind.B64,
    "-must-match-issuer": Kind.BOOL,
    "-fail-cert-callback": Kind.BOOL,
    "-use-client-ca-list": Kind.STR,
    "-expect-client-ca-list": Kind.STR,
    "-expect-certificate-types": Kind.B64,
    "-use-old-client-cert-callback": Kind.BOOL,
    # versions, groups, signatures
    "-min-version": Kind.INT,
    "-max-version": Kind.INT,
    "-no-tls1": Kind.BOOL,
    "-no-tls11": Kind.BOOL,
    "-no-tls12": Kind.BOOL,
    "-no-tls13": Kind.BOOL,
    "-expect-version": Kind.INT,
    "-fallback-scsv": Kind.BOOL,
    "-enable-grease": Kind.BOOL,
    "-curves": Kind.INTS,
    "-key-shares": Kind.INTS,
    "-no-key-shares": Kind.BOOL,
    "-expect-curve-id": Kind.INT,
    "-cipher": Kind.STR,
    "-expect-cipher": Kind.INT,
    "-expect-cipher-aes": Kind.INT,
    "-expect-cipher-no-aes": Kind.INT,
    "-expect-hrr": Kind.BOOL,
    "-expect-no-hrr": Kind.BOOL,
    "-signing-prefs": Kind.INTS,
    "-verify-prefs": Kind.INTS,
    "-expect-peer-signature-algorithm": Kind.INT,
    "-expect-peer-verify-pref": Kind.INTS,
    "-server-preference": Kind.BOOL,
    "-jdk11-workaround": Kind.BOOL,
    "-expect-extended-master-secret": Kind.BOOL,
    "-expect-secure-renegotiation": Kind.BOOL,
    # names and ALPN
    "-host-name": Kind.STR,
    "-expect-server-name": Kind.STR,
    "-expect-no-server-name": Kind.BOOL,
    "-advertise-alpn": Kind.STR,
    "-select-alpn": Kind.STR,
    "-expect-alpn": Kind.STR,
    "-expect-advertised-alpn": Kind.STR,
    "-decline-alpn": Kind.BOOL,
    # NPN (draft-agl-tls-nextprotoneg) and TLS 1.2 False Start (RFC 7918)
    "-advertise-npn": Kind.STR,
    "-advertise-empty-npn": Kind.BOOL,
    "-select-next-proto": Kind.STR,
    "-select-empty-next-proto": Kind.BOOL,
    "-expect-next-proto": Kind.STR,
    "-expect-no-next-proto": Kind.BOOL,
    "-false-start": Kind.BOOL,
    "-allow-false-start-without-alpn": Kind.BOOL,
    "-handshake-never-done": Kind.BOOL,
    # ALPS (draft-vvv-tls-alps); -defer-alps (choose settings after the hello callback)
    # changes nothing for tlsmith, which chooses them from the configuration.
    "-application-settings": Kind.STR,
    "-expect-peer-application-settings": Kind.STR,
    "-alps-use-new-codepoint": Kind.INT,
    "-defer-alps": Kind.BOOL,
    "-reject-alpn": Kind.BOOL,
    # sessions
    "-no-ticket": Kind.BOOL,
    "-expect-session-miss": Kind.BOOL,
    "-expect-no-session": Kind.BOOL,
    "-expect-ticket-renewal": Kind.BOOL,
    "-expect-ticket-age-skew": Kind.INT,
    "-expect-resumable-across-names": Kind.BOOL,
    "-expect-not-resumable-across-names": Kind.BOOL,
    "-expect-session-id": Kind.BOOL,
    "-expect-no-session-id": Kind.BOOL,
    "-enable-early-data": Kind.BOOL,
    "-expect-ticket-supports-early-data": Kind.BOOL,
    "-expect-accept-early-data": Kind.BOOL,
    "-expect-reject-early-data": Kind.BOOL,
    "-expect-no-offer-early-data": Kind.BOOL,
    "-expect-early-data-reason": Kind.STR,
    # after the handshake
    "-shim-writes-first": Kind.BOOL,
    "-shim-initial-write": Kind.STR,
    "-repeat-shim-initial-write": Kind.INT,
    # BoringSSL's SSL_peek and blocked-write modes: the same bytes on the wire for a
    # synchronous shim that reads whole records.
    "-peek-then-read": Kind.BOOL,
    "-read-with-unfinished-write": Kind.BOOL,
    "-shim-shuts-down": Kind.BOOL,
    "-check-close-notify": Kind.BOOL,
    "-read-size": Kind.INT,
    "-max-send-fragment": Kind.INT,
    "-export-keying-material": Kind.INT,
    "-export-label": Kind.STR,
    "-export-context": Kind.STR,
    "-use-export-context": Kind.BOOL,
    "-export-traffic-secrets": Kind.BOOL,
    "-key-update": Kind.BOOL,
    "-tls-unique": Kind.BOOL,
    "-send-alert": Kind.BOOL,
    "-renegotiate-ignore": Kind.BOOL,
    # BoringSSL's compliance policies: fixed versions, suites, groups and signatures
    "-fips-202205": Kind.BOOL,
    "-wpa-202304": Kind.BOOL,
    "-cnsa1-202603": Kind.BOOL,
    "-cnsa2-202603": Kind.BOOL,
    "-cnsa-202407": Kind.BOOL,
}

#: Flags that belong to one credential once ``-new-x509-credential`` has started one.
CREDENTIAL_FLAGS = frozenset({"-cert-file", "-key-file", "-ocsp-response", "-signing-prefs",
                              "-psk-importer-key", "-psk-importer-identity",
                              "-psk-importer-context", "-must-match-issuer"})

#: BoringSSL shim flags for features tlsmith does not have (exit 89), by feature.
UNIMPLEMENTED_BY_FEATURE: dict[str, tuple[str, ...]] = {
    "DTLS and QUIC": (
        "-dtls", "-quic", "-mtu", "-handoff", "-handshaker-resume",
        "-quic-use-legacy-codepoint", "-quic-transport-params",
    ),
    "OCSP and SCT callbacks": (
        "-enable-signed-cert-timestamps", "-signed-cert-timestamps",
        "-expect-signed-cert-timestamps",
    ),
    "certificate callbacks and custom verification": (
        "-cert-properties",
        "-fail-early-callback",
        "-retain-only-sha256-client-cert", "-expect-sha256-client-cert", "-max-cert-list",
    ),
    "Channel ID": (
        "-enable-channel-id", "-send-channel-id", "-expect-channel-id",
    ),
    "Encrypted Client Hello": (
        "-ech-config-list", "-expect-ech-accept", "-ech-server-config", "-ech-server-key",
        "-ech-is-retry-config", "-expect-ech-name-override", "-expect-no-ech-name-override",
        "-expect-ech-retry-configs", "-expect-no-ech-retry-configs", "-enable-ech-grease",
        "-reject-unusable-ech-config", "-fail-early-callback-ech-rewind",
    ),
    "NPN switched off per connection": (
        "-disable-npn",
    ),
    "renegotiation": (
        "-renegotiate-freely", "-renegotiate-explicit",
        "-renegotiate-once", "-expect-total-renegotiations",
        "-forbid-renegotiation-after-handshake", "-no-legacy-server-connect",
        "-expect-no-secure-renegotiation",
    ),
    "PAKE (SPAKE2+)": (
        "-pake-password", "-pake-server-id", "-new-spake2plusv1-credential",
        "-pake-context", "-pake-client-id", "-wrong-pake-role",
    ),
    "delegated credentials": (
        "-delegated-credential", "-new-delegated-credential",
    ),
    "ticket callbacks and ticket keys": (
        "-use-ticket-callback", "-use-ticket-aead-callback", "-skip-ticket",
        "-renew-ticket", "-ticket-key",
        "-resumption-across-names-enabled",
    ),
    "0-RTT write control": (
        "-early-write-after-message",
    ),
    "split handshakes (handshake hints)": (
        "-allow-hint-mismatch",
    ),
    "certificate compression (RFC 8879)": (
        "-install-cert-compression-algs", "-install-one-cert-compression-alg",
    ),
    "trust anchor IDs": (
        "-requested-trust-anchors", "-available-trust-anchors",
        "-expect-peer-match-trust-anchor", "-expect-no-peer-match-trust-anchor",
        "-expect-peer-available-trust-anchors",
    ),
    "GREASE, extension permutation and padding": (
        "-permute-extensions", "-request-server-padding",
        "-server-supports-padding", "-expect-server-sent-requested-padding",
    ),
    "SRTP": (
        "-srtp-profiles",
    ),
    "DoS and early callbacks": (
        "-install-ddos-callback", "-fail-ddos-callback", "-server-supported-groups-hint",
        "-curves-flags",
    ),
    "BoringSSL I/O modes": (
        "-write-different-record-sizes",
        "-cbc-record-splitting", "-partial-write", "-use-exporter-between-reads",
        "-expect-msg-callback",
    ),
    "ALPN and SNI policies the API has no hook for": (
        "-no-server-name-ack", "-select-empty-alpn",
        "-allow-unknown-alpn-protos",
    ),
}
UNIMPLEMENTED: frozenset[str] = frozenset(
    f for flags in UNIMPLEMENTED_BY_FEATURE.values() for f in flags)

_PER_CONNECTION = ("-on-initial-", "-on-resume-", "-on-retry-")


@dataclass
class Credential:
    cert_file: str = ""
    key_file: str = ""
    rpk: bool = False  # -new-rpk-credential: a raw public key (RFC 7250), no cert_file
    ocsp_response: bytes | None = None
    signing_prefs: list[int] = field(default_factory=list)
    # -new-psk-credential: an RFC 9258 external PSK to import
    psk: bool = False
    psk_importer_key: bytes = b""
    psk_importer_identity: bytes = b""
    psk_importer_context: bytes = b""
    psk_importer_hash: str = "sha256"
    must_match_issuer: bool = False


@dataclass
class Options:
    """Everything the flags say about one connection (BoringSSL's TestConfig)."""

    port: int = 0
    shim_id: int = 0
    ipv6: bool = False
    server: bool = False
    resume_count: int = 0
    resumption_delay: int = 0
    default: Credential = field(default_factory=Credential)
    credentials: list[Credential] = field(default_factory=list)
    trust_cert: str = ""
    expect_selected_credential: int | None = None
    accepted_peer_cert_types: list[int] | None = None
    available_client_cert_types: list[int] | None = None
    expect_peer_certificate_type: int | None = None
    expect_peer_rpk_sha256: bytes | None = None
    verify_peer: bool = False
    require_any_client_certificate: bool = False
    use_custom_verify_callback: bool = False
    verify_fail: bool = False
    reverify_on_resume: bool = False
    expect_verify_result: bool = False
    expect_peer_cert_file: str = ""
    expect_no_peer_cert: bool = False
    enable_ocsp_stapling: bool = False
    expect_ocsp_response: bytes | None = None
    min_version: int = 0
    max_version: int = 0
    no_tls1: bool = False
    no_tls11: bool = False
    no_tls12: bool = False
    no_tls13: bool = False
    expect_version: int = 0
    fallback_scsv: bool = False
    enable_grease: bool = False
    curves: list[int] = field(default_factory=list)
    key_shares: list[int] | None = None
    expect_curve_id: int = 0
    cipher: str = ""
    expect_cipher: int = 0
    expect_cipher_aes: int = 0
    expect_cipher_no_aes: int = 0
    expect_hrr: bool = False
    expect_no_hrr: bool = False
    verify_prefs: list[int] = field(default_factory=list)
    expect_peer_signature_algorithm: int = 0
    expect_peer_verify_pref: list[int] = field(default_factory=list)
    server_preference: bool = False
    jdk11_workaround: bool = False
    expect_extended_master_secret: bool = False
    expect_secure_renegotiation: bool = False
    host_name: str = ""
    expect_server_name: str = ""
    expect_no_server_name: bool = False
    advertise_alpn: str = ""
    select_alpn: str | None = None
    expect_alpn: str = ""
    expect_advertised_alpn: str = ""
    decline_alpn: bool = False
    advertise_npn: str = ""
    advertise_empty_npn: bool = False
    select_next_proto: str = ""
    select_empty_next_proto: bool = False
    expect_next_proto: str = ""
    expect_no_next_proto: bool = False
    false_start: bool = False
    allow_false_start_without_alpn: bool = False
    handshake_twice: bool = False
    handshake_never_done: bool = False
    application_settings: str | None = None  # "protocol,settings"
    expect_peer_application_settings: str | None = None
    alps_use_new_codepoint: int = 0
    defer_alps: bool = False
    reject_alpn: bool = False
    allow_unknown_alpn_protos: bool = False
    no_ticket: bool = False
    expect_session_miss: bool = False
    expect_no_session: bool = False
    expect_ticket_renewal: bool = False
    expect_ticket_age_skew: int | None = None
    expect_resumable_across_names: bool = False
    expect_not_resumable_across_names: bool = False
    expect_session_id: bool = False
    expect_no_session_id: bool = False
    enable_early_data: bool = False
    expect_ticket_supports_early_data: bool = False
    expect_accept_early_data: bool = False
    expect_reject_early_data: bool = False
    expect_no_offer_early_data: bool = False
    expect_early_data_reason: str = ""
    shim_writes_first: bool = False
    shim_initial_write: str = ""
    repeat_shim_initial_write: int = 0
    peek_then_read: bool = False
    read_with_unfinished_write: bool = False
    shim_shuts_down: bool = False
    check_close_notify: bool = False
    read_size: int = 0
    max_send_fragment: int = 0
    export_keying_material: int = 0
    export_label: str = ""
    export_context: str = ""
    use_export_context: bool = False
    export_traffic_secrets: bool = False
    key_update: bool = False
    fips_202205: bool = False
    cnsa1_202603: bool = False
    cnsa2_202603: bool = False
    cnsa_202407: bool = False
    use_old_client_cert_callback: bool = False
    use_ocsp_callback: bool = False
    set_ocsp_in_callback: bool = False
    decline_ocsp_callback: bool = False
    fail_ocsp_callback: bool = False
    fail_cert_callback: bool = False
    use_client_ca_list: str = ""
    expect_client_ca_list: str = ""
    expect_certificate_types: bytes | None = None
    wpa_202304: bool = False
    psk: str = ""
    psk_identity: str = ""
    send_alert: bool = False
    tls_unique: bool = False
    renegotiate_ignore: bool = False
    ignored: list[str] = field(default_factory=list)

    def apply(self, flag: str, value: str | None) -> None:
        kind = KINDS[flag]
        parsed = _parse_value(flag, kind, value)
        if flag == "-new-x509-credential":
            self.credentials.append(Credential())
            return
        if flag == "-new-psk-credential":
            self.credentials.append(Credential(psk=True))
            return
        if flag in ("-psk-importer-sha256", "-psk-importer-sha384"):
            target = self.credentials[-1] if self.credentials else self.default
            target.psk_importer_hash = flag.removeprefix("-psk-importer-")
            return
        if flag == "-new-rpk-credential":
            self.credentials.append(Credential(rpk=True))
            return
        if flag == "-no-key-shares":
            self.key_shares = []
            return
        if flag in CREDENTIAL_FLAGS:
            target = self.credentials[-1] if self.credentials else self.default
            attr = flag[1:].replace("-", "_")
            if kind is Kind.INTS:
                assert isinstance(parsed, int)
                getattr(target, attr).append(parsed)
            else:
                setattr(target, attr, parsed)
            return
        attr = flag[1:].replace("-", "_")
        if kind is Kind.INTS:
            assert isinstance(parsed, int)
            current = getattr(self, attr)
            if current is None:
                current = []
                setattr(self, attr, current)
            current.append(parsed)
        else:
            setattr(self, attr, parsed)


def _parse_value(flag: str, kind: Kind, value: str | None) -> bool | int | str | bytes:
    if kind is Kind.BOOL:
        return True
    assert value is not None
    if kind in (Kind.INT, Kind.INTS):
        if not value.lstrip("-").isdigit():
            raise FlagError(f"{flag}: {value!r} is not an integer")
        return int(value)
    if kind is Kind.B64:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FlagError(f"{flag}: invalid base64: {exc}") from exc
    return value


@dataclass
class ParsedFlags:
    """The flags in order: for every connection, and for the initial / resumed ones."""

    common: list[tuple[str, str | None]] = field(default_factory=list)
    initial: list[tuple[str, str | None]] = field(default_factory=list)
    resume: list[tuple[str, str | None]] = field(default_factory=list)
    retry: list[tuple[str, str | None]] = field(default_factory=list)

    def options(self, connection: int) -> Options:
        """The options for connection ``connection`` (0: the first, then resumptions)."""
        opts = Options()
        for flag, value in self.common:
            opts.apply(flag, value)
        for flag, value in self.initial if connection == 0 else self.resume:
            opts.apply(flag, value)
        return opts


    def retry_options(self) -> Options:
        """BoringSSL's retry configuration: the common flags and the -on-retry- ones."""
        opts = Options()
        for flag, value in (*self.common, *self.retry):
            opts.apply(flag, value)
        return opts


def parse(argv: list[str]) -> ParsedFlags:
    """Parse the runner's arguments; UnimplementedFlag (89) or FlagError (1) if not."""
    out = ParsedFlags()
    i = 0
    while i < len(argv):
        name = argv[i]
        i += 1
        target: list[tuple[str, str | None]] | None = out.common
        for prefix, bucket in zip(_PER_CONNECTION, (out.initial, out.resume, out.retry),
                                  strict=True):
            if name.startswith(prefix):
                name, target = "-" + name[len(prefix):], bucket
                break
        else:
            if name.startswith("-on-shim-"):
                name = "-" + name[len("-on-shim-"):]
            elif name.startswith("-on-handshaker-"):
                name, target = "-" + name[len("-on-handshaker-"):], None
        kind = KINDS.get(name)
        if kind is None:
            if name in UNIMPLEMENTED:
                raise UnimplementedFlag(name)
            raise FlagError(f"unknown flag {name}")
        value: str | None = None
        if kind is not Kind.BOOL:
            if i >= len(argv):
                raise FlagError(f"{name} needs a value")
            value = argv[i]
            i += 1
        _parse_value(name, kind, value)  # reject bad values now, whichever connection
        if target is not None:
            target.append((name, value))
    return out
