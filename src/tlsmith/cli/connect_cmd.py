"""``tlsmith connect``: handshake with a server and show what happened."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tlsmith.cli.names import suites_for
from tlsmith.codec.enums import AlertDescription, CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import DEFAULT_GROUPS, DEFAULT_SUITES, ClientConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto.suites import suite_info
from tlsmith.errors import AlertReceived, CertificateError, ProtocolError, TLSError
from tlsmith.events import HandshakeInfo
from tlsmith.explain import explain
from tlsmith.io.blocking import TLSSocket, with_keylog
from tlsmith.observe import MessageTrace
from tlsmith.trace import TraceCollector, records_to_json, render_ladder

if TYPE_CHECKING:
    from tlsmith.x509.verify import TrustStore


def info_to_json(info: HandshakeInfo) -> dict[str, Any]:
    from tlsmith.x509.leaf import parse_der
    from tlsmith.x509.verify import describe_certificate

    return {
        "version": info.version_label,
        "cipher_suite": info.cipher_suite.name,
        "group": info.group.name.lower() if info.group is not None else None,
        "signature_scheme": info.signature_scheme.name.lower()
        if info.signature_scheme is not None else None,
        "alpn": info.alpn,
        "server_name": info.server_name,
        "hello_retry_request": info.hello_retry_request,
        "resumed": info.resumed,
        "certificate_verified": info.certificate_verified,
        "key_exchange": info.key_exchange,
        "extended_master_secret": info.extended_master_secret,
        "encrypt_then_mac": info.encrypt_then_mac,
        "peer_certificates": [describe_certificate(parse_der(der))
                              for der in info.peer_certificates],
        "revocation": ({"state": info.revocation_state, "detail": info.revocation}
                       if info.revocation is not None else None),
    }


def build_client_config(*, host: str, ciphers: list[CipherSuite], groups: list[NamedGroup],
                        alpn: list[str], keylog: str | None, servername: str | None,
                        cafile: str | None, insecure: bool, observer: Any,
                        min_version: ProtocolVersion = ProtocolVersion.TLS12,
                        max_version: ProtocolVersion = ProtocolVersion.TLS13,
                        allow_no_ems: bool = False, client_cert: str | None = None,
                        client_key: str | None = None, capath: str | None = None,
                        strict: bool = False, crl_files: tuple[str, ...] = (),
                        require_revocation: bool = False) -> ClientConfig:
    from tlsmith.config import CertifiedKey
    from tlsmith.x509.revocation import load_crl

    certificate = None
    if client_cert is not None and client_key is not None:
        # Mutual TLS: sent only if the server asks for a certificate.
        certificate = CertifiedKey.from_files(client_cert, client_key)

    trust = None if insecure else choose_trust_store(cafile, capath)
    group_list = tuple(groups) if groups else DEFAULT_GROUPS
    config: ClientConfig = with_keylog(ClientConfig(
        cipher_suites=suites_for(ciphers, DEFAULT_SUITES),
        min_version=min_version,
        max_version=max_version,
        require_extended_master_secret=not allow_no_ems,
        server_name=servername or host,
        alpn_protocols=tuple(alpn),
        groups=group_list,
        key_share_groups=(group_list[0],),
        trust=trust,
        verify_certificates=not insecure,
        strict=strict,
        crls=tuple(load_crl(path) for path in crl_files),
        require_revocation=require_revocation,
        certificate=certificate,
        observer=observer,
    ), keylog)
    return config


def choose_trust_store(cafile: str | None, capath: str | None) -> TrustStore:
    """--cafile and/or --capath (both: their anchors together), else the system store."""
    from tlsmith.x509.verify import TrustStore

    stores = []
    if cafile:
        stores.append(TrustStore.from_pem_file(cafile))
    if capath:
        stores.append(TrustStore.from_directory(capath))
    if not stores:
        return TrustStore.system()
    return stores[0] if len(stores) == 1 else TrustStore.combine(*stores)


def verification_preview(info: HandshakeInfo, *, cafile: str | None, capath: str | None,
                         server_name: str, strict: bool, now: datetime, host: str,
                         port: int) -> tuple[str, str]:
    """--insecure: what verifying the server's chain would have said, as
    ("passed" | "failed", a sentence)."""
    from tlsmith.x509.verify import verify_server_chain

    try:
        trust = choose_trust_store(cafile, capath)
        verify_server_chain(info.peer_certificates, trust=trust, server_name=server_name,
                            now=now, strict=strict)
    except CertificateError as exc:
        text = explain(exc, host=host, port=port)
        # explain() tells of a failed handshake; here the handshake went on regardless.
        prefix = f"The handshake with {host}:{port} failed: "
        if text.startswith(prefix):
            text = text[len(prefix):]
        return "failed", text.replace("We sent the alert", "A verifying client sends the alert", 1)
    except TLSError as exc:  # no trust store to verify with
        return "failed", f"no trust store to verify with: {exc}"
    return "passed", (f"the chain is valid for {server_name!r} and ends at a certificate "
                      f"trusted in {trust.source}")


def run_connect(*, host: str, port: int, ciphers: list[CipherSuite], groups: list[NamedGroup],
                min_version: ProtocolVersion, max_version: ProtocolVersion, allow_no_ems: bool,
                alpn: list[str], keylog: str | None, servername: str | None,
                cafile: str | None, insecure: bool, send_text: str | None, http: bool,
                timeout: float, as_json: bool, trace: bool, console: Console,
                err_console: Console, client_cert: str | None = None,
                client_key: str | None = None, capath: str | None = None,
                strict: bool = False, crl_files: tuple[str, ...] = (),
                require_revocation: bool = False) -> int:
    collector = TraceCollector()
    try:
        config = build_client_config(host=host, ciphers=ciphers, groups=groups, alpn=alpn,
                                     keylog=keylog, servername=servername, cafile=cafile,
                                     insecure=insecure, observer=collector,
                                     min_version=min_version, max_version=max_version,
                                     allow_no_ems=allow_no_ems, client_cert=client_cert,
                                     client_key=client_key, capath=capath, strict=strict,
                                     crl_files=crl_files,
                                     require_revocation=require_revocation)
    except TLSError as exc:
        err_console.print(f"[bold red]error:[/bold red] {explain(exc, host=host, port=port)}")
        return 2
    tls: TLSSocket | None = None
    reply = b""
    skipped: dict[str, str] | None = None
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        tls = TLSSocket(sock, TLSConnection(config))
        info = tls.do_handshake()
        if insecure:
            # Before anything else on stderr: what verification would have said.
            would_have, said = verification_preview(
                info, cafile=cafile, capath=capath, server_name=config.server_name or host,
                strict=strict, now=datetime.fromtimestamp(config.clock(), UTC), host=host,
                port=port)
            skipped = {"would_have": would_have, "explanation": said}
            verb = "would have failed" if would_have == "failed" else "would have succeeded"
            err_console.print(f"[bold yellow]warning:[/bold yellow] --insecure: the "
                              f"certificate was NOT verified. Verification {verb}: "
                              f"{escape(said)}")
        if http or send_text is not None:
            if http:
                request = (f"GET / HTTP/1.1\r\nHost: {servername or host}\r\n"
                           "Connection: close\r\nUser-Agent: tlsmith\r\n\r\n").encode()
            else:
                assert send_text is not None
                request = send_text.encode()
            tls.sendall(request)
            reply = _read_reply(tls, until_close=http)
        # Never "connected" before the server had its say: in TLS 1.3 a refusal of our
        # certificate (or of its absence) comes after our Finished (RFC 8446 §4.4.2.4).
        verdict = "accepted" if reply else tls.server_verdict()
    except (TLSError, OSError) as exc:
        if trace and not as_json:
            render_ladder(collector, console)
        why = explain(exc, host=host, port=port, offered_versions=config.versions)
        if (isinstance(exc, AlertReceived) and _certificate_was_requested(collector)
                and exc.description != AlertDescription.CERTIFICATE_REQUIRED
                and getattr(config, "certificate", None) is None):
            # TLS 1.2 servers say handshake_failure when a required certificate is missing.
            why = (f"The handshake with {host}:{port} failed: the server sent the fatal "
                   f"alert '{exc.description.rfc_name}' after asking for a client "
                   "certificate, and we had none to send: it probably requires one "
                   "(pass --cert/--key).")
        if as_json:
            console.print_json(json.dumps(failure_json(exc, why, collector)))
        else:
            err_console.print(f"[bold red]error:[/bold red] {why}")
        return 1
    finally:
        if tls is not None:
            tls.close()
    if as_json:
        out = info_to_json(info)
        out["ok"] = True
        out["server_verdict"] = verdict
        if skipped is not None:
            out["verification_skipped"] = skipped
        if reply:
            out["reply"] = reply.decode("utf-8", "replace")
        out["trace"] = records_to_json(collector)
        console.print_json(json.dumps(out))
        return 0
    if trace:
        render_ladder(collector, console)
        console.print()
    print_summary(console, info, host, port, verdict=verdict)
    if reply:
        console.rule("reply")
        console.print(reply.decode("utf-8", "replace"), markup=False, highlight=False)
    return 0


def failure_json(exc: BaseException, why: str, collector: TraceCollector) -> dict[str, Any]:
    """The --json object of a failed connection: what failed, the alert sent or received,
    and for certificate failures the reason and the chain the server sent."""
    out: dict[str, Any] = {"ok": False, "error": type(exc).__name__, "explanation": why}
    if isinstance(exc, AlertReceived):
        out["alert_received"] = exc.description.rfc_name
    elif isinstance(exc, ProtocolError):
        out["alert_sent"] = exc.alert.rfc_name
    if isinstance(exc, CertificateError):
        out["reason"] = exc.reason
        out["peer_chain"] = exc.peer_chain
    out["trace"] = records_to_json(collector)
    return out


def _certificate_was_requested(collector: TraceCollector) -> bool:
    return any(isinstance(r, MessageTrace) and r.direction == "received"
               and r.name.startswith("CertificateRequest") for r in collector.records)


def _read_reply(tls: TLSSocket, *, until_close: bool) -> bytes:
    out = bytearray()
    try:
        while True:
            chunk = tls.recv()
            if not chunk:
                break
            out += chunk
            if not until_close:
                tls.sock.settimeout(0.5)
    except TimeoutError:
        pass
    return bytes(out)


def print_summary(console: Console, info: HandshakeInfo, host: str, port: int, *,
                  verdict: str = "accepted") -> None:
    from tlsmith.x509.leaf import parse_der
    from tlsmith.x509.verify import describe_certificate

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("connected to", f"{host}:{port}")
    if verdict == "accepted":
        table.add_row("server verdict", "[green]accepted us[/green]")
    else:
        table.add_row("server verdict", "[yellow]not confirmed[/yellow]: the server sent "
                      "nothing after the handshake; a TLS 1.3 server refusing us would "
                      "normally have answered by then")
    table.add_row("version", info.version_label)
    table.add_row("cipher suite", info.cipher_suite.name)
    if info.key_exchange is not None:  # TLS 1.2: the suite fixes the key exchange
        table.add_row("key exchange", info.key_exchange)
        table.add_row("extended master secret",
                      "yes" if info.extended_master_secret else "[yellow]no[/yellow]")
        suite = suite_info(info.cipher_suite)
        if suite is not None and suite.cipher == "cbc":
            table.add_row("encrypt_then_mac", "yes" if info.encrypt_then_mac
                          else "[yellow]no (MAC-then-encrypt)[/yellow]")
    table.add_row("group", info.group.name.lower() if info.group else "-")
    table.add_row("signature", info.signature_scheme.name.lower()
                  if info.signature_scheme else "-")
    table.add_row("ALPN", info.alpn or "-")
    table.add_row("server name", info.server_name or "-")
    table.add_row("HelloRetryRequest", "yes" if info.hello_retry_request else "no")
    table.add_row("resumed", "yes" if info.resumed else "no")
    table.add_row("certificate", "[green]verified[/green]" if info.certificate_verified
                  else "[yellow]NOT verified (--insecure)[/yellow]")
    if info.revocation is not None:
        colour = {"good": "green", "not_checked": "yellow"}.get(info.revocation_state or "",
                                                                 "red")
        table.add_row("revocation", f"[{colour}]{escape(info.revocation)}[/{colour}]")
    console.print(table)
    for i, der in enumerate(info.peer_certificates):
        d = describe_certificate(parse_der(der))
        console.print(f"  [dim]{i}[/dim] subject: {d['subject']}\n"
                      f"    issuer: {d['issuer']}\n"
                      f"    valid: {d['not_before']} → {d['not_after']}")
