"""The raw ClientHello prober: one hand-built ClientHello, the server's plaintext answer.

Unlike the tlsmith client, the prober can offer what tlsmith does not implement --
TLS 1.0/1.1 (RFC 2246, RFC 4346; deprecated by RFC 8996), 3DES/RC4/CBC-SHA1 suite codes,
any group code -- because it never completes a handshake: it reads the ServerHello (or
HelloRetryRequest, RFC 8446 §4.1.4) and, below TLS 1.3, the rest of the server's first
flight up to ServerHelloDone (RFC 5246 §7.3: Certificate, CertificateStatus,
ServerKeyExchange, CertificateRequest are all plaintext), then closes.

    answer = send_client_hello("example.com", 443, server_name="example.com",
                               versions=(0x0304, 0x0303), cipher_suites=(0x1301,),
                               groups=(0x001D,))
    answer.version, answer.cipher_suite, answer.group, answer.alert, answer.error

``build_client_hello`` and ``read_server_flight`` are the two halves, for probes that
keep the socket open to send more (the ROBOT check in ``scan.py``).
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    AlertDescription,
    CipherSuite,
    ContentType,
    ECPointFormat,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    PskKeyExchangeMode,
    SignatureScheme,
)
from tlsmith.codec.messages import (
    Certificate12,
    CertificateStatus,
    ClientHello,
    ServerHello,
    ServerKeyExchangeDHE,
    ServerKeyExchangeECDHE,
)
from tlsmith.crypto.kx import ffdhe_group_for_params, generate_key_share, group_available
from tlsmith.errors import ProtocolError
from tlsmith.record.framing import (
    HandshakeReassembler,
    RecordReader,
    encode_record_header,
    fragment,
    parse_alert,
)

__all__ = [
    "DEFAULT_PROBE_SIGNATURE_SCHEMES",
    "HelloAnswer",
    "build_client_hello",
    "read_server_flight",
    "send_client_hello",
]

TLS13 = 0x0304

#: Offered when the caller gives no list: every scheme a real server may pick, SHA-1
#: last (RFC 8446 §4.2.3 lists the legacy ones; RFC 9155 deprecates SHA-1 in TLS 1.2).
DEFAULT_PROBE_SIGNATURE_SCHEMES: tuple[int, ...] = (
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080A, 0x080B,
    0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0203, 0x0201,
)


@dataclass(frozen=True)
class HelloAnswer:
    """What the server said to one ClientHello.

    ``version`` is the version the server chose (supported_versions if present, else the
    ServerHello's legacy_version; TLS 1.3 for a HelloRetryRequest). ``group`` is the
    TLS 1.3 key_share group or the HRR's selected_group -- and, below TLS 1.3, the group
    of an ECDHE/FFDHE ServerKeyExchange when it names one. ``certificates`` (DER, leaf
    first), ``alpn``, ``ocsp_response`` and the ServerKeyExchange fields exist only below
    TLS 1.3 (in TLS 1.3 they are encrypted). ``error`` is None, or one of "timeout",
    "reset", "closed" (EOF with no answer), "refused", "garbage: ..." (bytes that do not
    parse as TLS), "unreachable: ..."; partial answers keep what was read before it.
    """

    version: ProtocolVersion | None = None
    cipher_suite: CipherSuite | None = None
    group: NamedGroup | None = None
    hello_retry_request: bool = False
    alert: AlertDescription | None = None
    server_hello: ServerHello | None = None
    certificates: tuple[bytes, ...] = ()
    alpn: str | None = None
    extensions: frozenset[ExtensionType] = frozenset()
    error: str | None = None
    # Beyond the contract: what the rest of a TLS <= 1.2 first flight showed.
    ske_signature_scheme: SignatureScheme | None = None
    ske_raw: bytes | None = None
    dh_prime_bits: int | None = None
    ocsp_response: bytes | None = None
    certificate_request: bool = False
    server_hello_done: bool = False
    elapsed: float = 0.0
    messages: tuple[HandshakeType, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        """A ServerHello (not an HRR) came back."""
        return self.server_hello is not None and not self.hello_retry_request


def build_client_hello(
    *, server_name: str | None, versions: tuple[int, ...], cipher_suites: tuple[int, ...],
    groups: tuple[int, ...], signature_schemes: tuple[int, ...] | None = None,
    alpn: tuple[str, ...] = (), key_share_groups: tuple[int, ...] | None = None,
    extra_extensions: Sequence[ext.Extension] = (), compression_methods: tuple[int, ...] = (0,),
    session_id: bytes | None = None, random: bytes | None = None,
    renegotiation_info: bool = True, extended_master_secret: bool = True,
    status_request: bool = True, session_ticket: bool = False, encrypt_then_mac: bool = True,
) -> ClientHello:
    """The ClientHello ``send_client_hello`` sends (see there for the rules)."""
    if not versions:
        raise ValueError("offer at least one version")
    tls13 = TLS13 in versions
    below13 = any(v < TLS13 for v in versions)
    # RFC 8446 §4.2.1 / §D.1: with TLS 1.3 offered, legacy_version is 0x0303 and the real
    # list goes in supported_versions; otherwise legacy_version is the highest version.
    legacy = 0x0303 if tls13 else max(versions)
    schemes = DEFAULT_PROBE_SIGNATURE_SCHEMES if signature_schemes is None else signature_schemes
    extensions: list[ext.Extension] = []
    if server_name:
        extensions.append(ext.ServerName(server_name.rstrip(".")))
    if status_request:
        extensions.append(ext.StatusRequest())  # RFC 6066 §8
    if tls13:
        extensions.append(ext.SupportedVersionsClientHello(
            tuple(ProtocolVersion(v) for v in versions)))
    if groups:
        extensions.append(ext.SupportedGroups(tuple(NamedGroup(g) for g in groups)))
    # RFC 5246 §7.4.1.4.1: signature_algorithms exists from TLS 1.2 on; older servers
    # ignore it (RFC 5246 §7.4.1.4: unknown extensions are ignored).
    if schemes and max(versions) >= 0x0303:
        extensions.append(ext.SignatureAlgorithms(tuple(SignatureScheme(s) for s in schemes)))
    if below13:
        # RFC 8422 §5.1.2 uncompressed points; RFC 7627 EMS; RFC 5746 §3.4 empty
        # renegotiation_info in an initial handshake.
        extensions.append(ext.ECPointFormats((ECPointFormat.UNCOMPRESSED,)))
        if extended_master_secret:
            extensions.append(ext.ExtendedMasterSecret())
        if renegotiation_info:
            extensions.append(ext.RenegotiationInfo(b""))
        if encrypt_then_mac:
            extensions.append(ext.EncryptThenMac())  # RFC 7366 §2, as OpenSSL clients do
        if session_ticket:
            extensions.append(ext.SessionTicket(b""))  # RFC 5077 §3.2: ask for a ticket
    if tls13:
        if key_share_groups is None:
            # Like a browser: one share, for the first offered group tlsmith can compute.
            key_share_groups = tuple(
                g for g in groups if group_available(NamedGroup(g)))[:1]
        entries = []
        for g in key_share_groups:
            share = generate_key_share(NamedGroup(g), os.urandom)
            entries.append(ext.KeyShareEntry(NamedGroup(g), share.public_bytes))
        # An empty client_shares list is legal (RFC 8446 §4.2.8): the server must answer
        # with a HelloRetryRequest naming the group it wants.
        extensions.append(ext.KeyShareClientHello(tuple(entries)))
        extensions.append(ext.PskKeyExchangeModes((PskKeyExchangeMode.PSK_DHE_KE,)))
    if alpn:
        extensions.append(ext.ApplicationLayerProtocolNegotiation(
            tuple(p.encode() for p in alpn)))
    extensions.extend(extra_extensions)
    return ClientHello(
        legacy_version=ProtocolVersion(legacy),
        random=random if random is not None else os.urandom(32),
        # RFC 8446 §D.4: a non-empty session id keeps middleboxes calm with TLS 1.3.
        legacy_session_id=(session_id if session_id is not None
                           else (os.urandom(32) if tls13 else b"")),
        cipher_suites=tuple(CipherSuite(s) for s in cipher_suites),
        legacy_compression_methods=compression_methods,
        extensions=tuple(extensions),
    )


def hello_records(hello: ClientHello) -> bytes:
    """The ClientHello as plaintext records. The record version is 0x0301: RFC 8446
    §5.1 / RFC 5246 Appendix E.1 -- the most compatible value for a first flight."""
    raw = hello.serialize()
    return b"".join(encode_record_header(ContentType.HANDSHAKE, 0x0301, len(piece)) + piece
                    for piece in fragment(raw))


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    sock.settimeout(remaining)
    return sock.recv(65536)


def read_server_flight(sock: socket.socket, *, timeout: float) -> HelloAnswer:
    """Read the server's plaintext answer to a ClientHello already sent on ``sock``.

    Stops after a TLS 1.3 ServerHello or HelloRetryRequest (what follows is encrypted,
    RFC 8446 §2), after ServerHelloDone below TLS 1.3 (RFC 5246 §7.3), on an alert, on
    EOF, or when ``timeout`` seconds have passed since the call.
    """
    start = time.monotonic()
    deadline = start + timeout
    records = RecordReader()
    hs = HandshakeReassembler()
    sh: ServerHello | None = None
    version: ProtocolVersion | None = None
    group: NamedGroup | None = None
    certs: tuple[bytes, ...] = ()
    alert: AlertDescription | None = None
    error: str | None = None
    ske_scheme: SignatureScheme | None = None
    ske_raw: bytes | None = None
    dh_bits: int | None = None
    ocsp: bytes | None = None
    cert_req = False
    done = False
    seen: list[HandshakeType] = []
    finished = False
    try:
        while not finished:
            try:
                data = _recv(sock, deadline)
            except TimeoutError:
                error = "timeout"
                break
            except (ConnectionResetError, BrokenPipeError):
                error = "reset"
                break
            except OSError as exc:
                error = "reset" if exc.errno in (errno.ECONNRESET, errno.EPIPE) else (
                    f"unreachable: {exc}")
                break
            if not data:
                if sh is None and alert is None:
                    error = "closed"
                break
            records.feed(data)
            while (rec := records.next_record()) is not None:
                if rec.content_type == ContentType.ALERT:
                    _level, alert = parse_alert(rec.fragment)
                    finished = True
                    break
                if rec.content_type == ContentType.CHANGE_CIPHER_SPEC:
                    continue  # RFC 8446 §D.4 compatibility CCS after a TLS 1.3 hello
                if rec.content_type != ContentType.HANDSHAKE:
                    if sh is None:
                        error = f"garbage: {rec.content_type} record before the ServerHello"
                    finished = True
                    break
                hs.feed(rec.fragment)
                while (msg := hs.next_message()) is not None:
                    msg_type, body, _raw = msg
                    seen.append(msg_type)
                    if sh is None:
                        if msg_type != HandshakeType.SERVER_HELLO:
                            error = f"garbage: {msg_type} before the ServerHello"
                            finished = True
                            break
                        sh = ServerHello.parse_body(body)
                        sv = ext.find_extension(sh.extensions, ext.SupportedVersionsServerHello)
                        version = ProtocolVersion(
                            sv.selected_version if sv is not None else sh.legacy_version)
                        if sh.is_hello_retry_request:
                            hrr = ext.find_extension(sh.extensions,
                                                     ext.KeyShareHelloRetryRequest)
                            group = hrr.selected_group if hrr else None
                            finished = True
                            break
                        if version >= TLS13:
                            ks = ext.find_extension(sh.extensions, ext.KeyShareServerHello)
                            group = ks.server_share.group if ks else None
                            finished = True
                            break
                        continue
                    # TLS <= 1.2 first flight (RFC 5246 §7.3).
                    if msg_type == HandshakeType.CERTIFICATE:
                        certs = Certificate12.parse_body(body).certificate_list
                    elif msg_type == HandshakeType.CERTIFICATE_STATUS:
                        ocsp = CertificateStatus.parse_body(body).ocsp_response
                    elif msg_type == HandshakeType.SERVER_KEY_EXCHANGE:
                        ske_raw = bytes(body)
                        group, ske_scheme, dh_bits = _parse_ske(ske_raw, version, sh)
                    elif msg_type == HandshakeType.CERTIFICATE_REQUEST:
                        cert_req = True
                    elif msg_type == HandshakeType.SERVER_HELLO_DONE:
                        done = True
                        finished = True
                        break
                if finished:
                    break
    except ProtocolError as exc:
        error = f"garbage: {exc.message}"
    alpn_ext = (ext.find_extension(sh.extensions, ext.ApplicationLayerProtocolNegotiation)
                if sh is not None and (version is None or version < TLS13) else None)
    return HelloAnswer(
        version=version,
        cipher_suite=sh.cipher_suite if sh is not None else None,
        group=group,
        hello_retry_request=bool(sh is not None and sh.is_hello_retry_request),
        alert=alert,
        server_hello=sh,
        certificates=certs,
        alpn=alpn_ext.selected.decode("ascii", "replace") if alpn_ext else None,
        extensions=frozenset(e.extension_type for e in sh.extensions) if sh else frozenset(),
        error=error,
        ske_signature_scheme=ske_scheme,
        ske_raw=ske_raw,
        dh_prime_bits=dh_bits,
        ocsp_response=ocsp,
        certificate_request=cert_req,
        server_hello_done=done,
        elapsed=time.monotonic() - start,
        messages=tuple(seen),
    )


def _parse_ske(body: bytes, version: ProtocolVersion | None, sh: ServerHello
               ) -> tuple[NamedGroup | None, SignatureScheme | None, int | None]:
    """The group, signature scheme (TLS 1.2 only: RFC 5246 §7.4.3 digitally-signed
    carries the SignatureAndHashAlgorithm; TLS 1.0/1.1 do not) and DH prime size."""
    from tlsmith.crypto.suites import suite_info

    signed_with_scheme = version is not None and version >= 0x0303
    info = suite_info(sh.cipher_suite)
    name = sh.cipher_suite.name
    is_ecdhe = "_ECDHE_" in name or (info is not None and info.key_exchange == "ecdhe")
    is_dhe = "_DHE_" in name or (info is not None and info.key_exchange == "dhe")
    try:
        if is_ecdhe:
            if signed_with_scheme:
                e = ServerKeyExchangeECDHE.parse_body(body)
                return e.named_curve, e.algorithm, None
            # ECParameters: curve_type(1) named_curve(2) ... (RFC 4492 §5.4).
            return (NamedGroup(int.from_bytes(body[1:3], "big")) if len(body) >= 3
                    else None), None, None
        if is_dhe:
            if signed_with_scheme:
                d = ServerKeyExchangeDHE.parse_body(body)
                p = int.from_bytes(d.dh_p, "big")
                g = int.from_bytes(d.dh_g, "big")
                return ffdhe_group_for_params(p, g), d.algorithm, p.bit_length()
            plen = int.from_bytes(body[:2], "big")
            p = int.from_bytes(body[2:2 + plen], "big")
            return None, None, p.bit_length()
    except ProtocolError:
        return None, None, None
    return None, None, None


def send_client_hello(
    host: str, port: int, *, server_name: str | None, versions: tuple[int, ...],
    cipher_suites: tuple[int, ...], groups: tuple[int, ...],
    signature_schemes: tuple[int, ...] | None = None, alpn: tuple[str, ...] = (),
    key_share_groups: tuple[int, ...] | None = None,
    extra_extensions: Sequence[ext.Extension] = (), timeout: float = 5.0,
    compression_methods: tuple[int, ...] = (0,), renegotiation_info: bool = True,
    extended_master_secret: bool = True, status_request: bool = True,
    session_ticket: bool = False, encrypt_then_mac: bool = True,
) -> HelloAnswer:
    """Connect, send one ClientHello, read the plaintext answer, close.

    * ``versions``: with TLS 1.3 (0x0304) among them, supported_versions lists them all
      and legacy_version is 0x0303 (RFC 8446 §4.2.1); otherwise legacy_version is the
      highest one and no supported_versions is sent (RFC 5246 Appendix E.1).
    * ``key_share_groups``: None -> one real share for the first offered group tlsmith
      can compute; ``()`` -> an empty key_share, so a TLS 1.3 server answers with a
      HelloRetryRequest naming its group (RFC 8446 §4.1.4); or explicit groups (each must
      be one tlsmith implements).
    * ``extra_extensions`` are appended last (e.g. ``ext.Padding(n)``, GREASE values as
      ``ext.UnknownExtension``).
    * Never raises for network trouble: ``HelloAnswer.error`` says what happened.
    """
    hello = build_client_hello(
        server_name=server_name, versions=versions, cipher_suites=cipher_suites,
        groups=groups, signature_schemes=signature_schemes, alpn=alpn,
        key_share_groups=key_share_groups, extra_extensions=extra_extensions,
        compression_methods=compression_methods, renegotiation_info=renegotiation_info,
        extended_master_secret=extended_master_secret, status_request=status_request,
        session_ticket=session_ticket, encrypt_then_mac=encrypt_then_mac)
    start = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return HelloAnswer(error="timeout")
    except ConnectionRefusedError:
        return HelloAnswer(error="refused")
    except OSError as exc:
        return HelloAnswer(error=f"unreachable: {exc}")
    try:
        try:
            sock.sendall(hello_records(hello))
        except OSError:
            return HelloAnswer(error="reset")
        remaining = max(0.1, timeout - (time.monotonic() - start))
        return read_server_flight(sock, timeout=remaining)
    finally:
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
