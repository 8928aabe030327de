"""``tlsmith connect``: handshake with a server and show what happened."""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tlsmith.cli.names import suites_for
from tlsmith.codec.enums import AlertDescription, CipherSuite, NamedGroup, ProtocolVersion
from tlsmith.config import DEFAULT_GROUPS, DEFAULT_SUITES, ClientConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto.suites import suite_info
from tlsmith.errors import (
    AlertReceived,
    CertificateError,
    ProtocolError,
    TLSError,
    UsageError,
)
from tlsmith.events import HandshakeInfo
from tlsmith.explain import explain
from tlsmith.fingerprint import fingerprints
from tlsmith.io.blocking import TLSSocket, with_keylog
from tlsmith.observe import MessageTrace
from tlsmith.session import Session, Session13
from tlsmith.trace import TraceCollector, records_to_json, render_ladder, write_json_lines

if TYPE_CHECKING:
    from tlsmith.capture import TcpConnection
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
        "resumed_with": info.resumed_with,
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


def load_session(path: str) -> Session:
    """--sess-in FILE: the session saved by --sess-out (UsageError if unreadable)."""
    from tlsmith.session import session_from_pem

    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the session file ({exc})") from exc
    return session_from_pem(text)


def save_session(path: str, session: Session) -> None:
    """--sess-out FILE: the session in PEM, readable by its owner only (it holds the
    resumption secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(session.to_pem())
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT: fix it


_ESCAPES = re.compile(r"\\(x[0-9a-fA-F]{2}|[rnt0\\])")
_SIMPLE = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}


def unescape(text: str) -> bytes:
    r"""--early-data TEXT: \r \n \t \0 \\ and \xHH (a byte), so a shell can pass
    "GET / HTTP/1.0\r\n\r\n"; everything else is sent as UTF-8."""
    out = bytearray()
    pos = 0
    for m in _ESCAPES.finditer(text):
        out += text[pos:m.start()].encode()
        code = m.group(1)
        out += bytes([int(code[1:], 16)]) if code[0] == "x" else _SIMPLE[code]
        pos = m.end()
    out += text[pos:].encode()
    return bytes(out)


@dataclass
class _Outcome:
    """One connection of ``tlsmith connect``."""

    info: HandshakeInfo | None = None
    verdict: str = "accepted"
    reply: bytes = b""
    skipped: dict[str, str] | None = None
    collector: TraceCollector = field(default_factory=TraceCollector)
    session: Session | None = None  # the newest session the server gave us
    offered: Session | None = None  # the session we offered to resume
    early_data: bytes | None = None  # what --early-data asked to send on it
    early_in_0rtt: bool = False  # whether it went with the ClientHello
    handshake_seconds: float = 0.0
    error: BaseException | None = None
    why: str = ""
    tcp: TcpConnection | None = None  # the socket's addresses and times, for --pcap


def run_connect(*, host: str, port: int, ciphers: list[CipherSuite], groups: list[NamedGroup],
                min_version: ProtocolVersion, max_version: ProtocolVersion, allow_no_ems: bool,
                alpn: list[str], keylog: str | None, servername: str | None,
                cafile: str | None, insecure: bool, send_text: str | None, http: bool,
                timeout: float, as_json: bool, trace: bool, console: Console,
                err_console: Console, client_cert: str | None = None,
                client_key: str | None = None, capath: str | None = None,
                strict: bool = False, crl_files: tuple[str, ...] = (),
                require_revocation: bool = False, resume: bool = False,
                early_data: bytes | None = None, sess_in: str | None = None,
                sess_out: str | None = None, pcap: str | None = None,
                explain_file: str | None = None, verbose: bool = False,
                show_secrets: bool = False, trace_json: str | None = None) -> int:
    def make_config(collector: TraceCollector) -> ClientConfig:
        config = build_client_config(host=host, ciphers=ciphers, groups=groups, alpn=alpn,
                                     keylog=keylog, servername=servername, cafile=cafile,
                                     insecure=insecure, observer=collector,
                                     min_version=min_version, max_version=max_version,
                                     allow_no_ems=allow_no_ems, client_cert=client_cert,
                                     client_key=client_key, capath=capath, strict=strict,
                                     crl_files=crl_files,
                                     require_revocation=require_revocation)
        # Rejected or unsendable 0-RTT data is resent here, by us, in every case.
        return replace(config, resend_rejected_early_data=False)

    first = _Outcome()
    try:
        config = make_config(first.collector)
    except TLSError as exc:
        err_console.print(f"[bold red]error:[/bold red] {explain(exc, host=host, port=port)}")
        return 2
    try:
        saved = load_session(sess_in) if sess_in is not None else None
    except UsageError as exc:
        err_console.print(f"[bold red]error:[/bold red] --sess-in: {escape(str(exc))}")
        return 2
    if early_data is not None and not (resume or saved is not None):
        err_console.print("[bold red]error:[/bold red] --early-data needs a session to "
                          "resume: --resume or --sess-in FILE")
        return 2
    if saved is not None and saved.expired(config.clock()):
        err_console.print(f"[bold yellow]warning:[/bold yellow] the session in {sess_in} "
                          "has expired: it will not be offered (a full handshake)")

    outcomes = [first]
    plan = 2 if resume else 1
    session = saved
    for index in range(plan):
        outcome = first if index == 0 else _Outcome()
        if index:
            outcomes.append(outcome)
            config = make_config(outcome.collector)
        last = index == plan - 1
        outcome.offered = session
        outcome.early_data = early_data if last else None
        _one_connection(outcome, config=config, host=host, port=port, timeout=timeout,
                        insecure=insecure, cafile=cafile, capath=capath, strict=strict,
                        servername=servername, http=http, send_text=send_text,
                        want_session=(not last) or sess_out is not None,
                        err_console=err_console)
        if outcome.error is not None:
            break
        if not last:
            session = outcome.session
            if session is None:
                err_console.print("[bold yellow]note:[/bold yellow] the server sent no "
                                  "session (ticket or session ID) within the wait: the "
                                  "second handshake offers nothing to resume")
    failed = outcomes[-1].error is not None
    if pcap is not None and not write_pcap(pcap, outcomes, err_console, quiet=as_json):
        return 2
    if explain_file is not None and not write_explain(explain_file, outcomes[-1],
                                                      err_console, quiet=as_json):
        return 2
    saved_ok: bool | None = None
    if sess_out is not None and not failed:
        newest = outcomes[-1].session
        saved_ok = newest is not None
        if newest is not None:
            try:
                save_session(sess_out, newest)
            except OSError as exc:
                err_console.print(f"[bold red]error:[/bold red] cannot write {sess_out}: "
                                  f"{exc.strerror or exc}")
                return 2
            if not as_json:
                err_console.print(f"[dim]session saved to {escape(sess_out)} "
                                  f"({newest.version_label})[/dim]")
        else:
            err_console.print("[bold yellow]warning:[/bold yellow] the server sent no "
                              f"session to save: {escape(sess_out)} was not written")

    if trace_json is not None:
        if not write_trace_json(trace_json, outcomes, console, err_console,
                                include_secrets=show_secrets):
            return 2
        if trace_json == "-":  # stdout carries the JSON lines alone
            if failed:
                err_console.print(f"[bold red]error:[/bold red] {outcomes[-1].why}")
            return 1 if failed else 0
    if as_json:
        objects = []
        for outcome in outcomes:
            obj = _outcome_json(outcome)
            if saved_ok is not None and outcome is outcomes[-1]:
                obj["session_saved"] = saved_ok
            objects.append(obj)
        console.print_json(json.dumps(objects if resume else objects[0]))
        return 1 if failed else 0
    for i, outcome in enumerate(outcomes):
        if resume:
            console.rule("connection 2: resuming the session from connection 1" if i else
                         "connection 1: resuming --sess-in" if outcome.offered is not None
                         else "connection 1: full handshake")
        if trace:
            render_ladder(outcome.collector, console, verbose=verbose,
                          show_secrets=show_secrets)
            console.print()
        if outcome.error is not None:
            err_console.print(f"[bold red]error:[/bold red] {outcome.why}")
            continue
        assert outcome.info is not None
        print_summary(console, outcome.info, host, port, verdict=outcome.verdict,
                      prints=fingerprints(outcome.collector.records))
        _print_early_data(console, outcome)
        if outcome.reply:
            console.rule("reply")
            console.print(outcome.reply.decode("utf-8", "replace"), markup=False,
                          highlight=False)
    if resume and not failed:
        console.rule("resumption")
        console.print(savings(outcomes[0], outcomes[1]), highlight=False)
    return 1 if failed else 0


def write_trace_json(path: str, outcomes: list[_Outcome], console: Console,
                     err_console: Console, *, include_secrets: bool) -> bool:
    """--trace-json FILE ('-': stdout): each connection's trace as JSON lines
    (docs/trace-schema.md), ``connection`` numbering them from 1. With secrets the file
    is made readable by its owner only."""
    try:
        if path == "-":
            stream = console.file
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600 if include_secrets else 0o644)
            stream = os.fdopen(fd, "w", encoding="utf-8")
        try:
            for number, outcome in enumerate(outcomes, 1):
                write_json_lines(outcome.collector, stream, include_secrets=include_secrets,
                                 connection=number)
        finally:
            if path != "-":
                stream.close()
    except OSError as exc:
        err_console.print(f"[bold red]error:[/bold red] cannot write {escape(path)}: "
                          f"{exc.strerror or exc}")
        return False
    return True


def _one_connection(outcome: _Outcome, *, config: ClientConfig, host: str, port: int,
                    timeout: float, insecure: bool, cafile: str | None, capath: str | None,
                    strict: bool, servername: str | None, http: bool,
                    send_text: str | None, want_session: bool, err_console: Console
                    ) -> None:
    """One TCP connection and handshake (resuming ``outcome.offered``, with
    ``outcome.early_data``), its request and reply; fills in ``outcome``."""
    tls: TLSSocket | None = None
    sock: socket.socket | None = None
    early = outcome.early_data
    if early is not None:
        why_not = _why_no_0rtt(outcome.offered, early, config.clock())
        if why_not is None:
            outcome.early_in_0rtt = True
        else:
            err_console.print(f"[bold yellow]note:[/bold yellow] {why_not}: the early data "
                              "will be sent after the handshake instead")
    try:
        opened = config.clock()
        sock = socket.create_connection((host, port), timeout=timeout)
        outcome.tcp = _tcp_connection(sock, opened)
        try:
            conn = TLSConnection(config, session=outcome.offered,
                                 early_data=early if outcome.early_in_0rtt else None)
        except UsageError:  # the core's own checks: fall back to data after the handshake
            outcome.early_in_0rtt = False
            conn = TLSConnection(config, session=outcome.offered)
        tls = TLSSocket(sock, conn)
        info = outcome.info = tls.do_handshake()
        outcome.handshake_seconds = tls.handshake_seconds
        if insecure:
            # Before anything else on stderr: what verification would have said.
            would_have, said = verification_preview(
                info, cafile=cafile, capath=capath, server_name=config.server_name or host,
                strict=strict, now=datetime.fromtimestamp(config.clock(), UTC), host=host,
                port=port)
            outcome.skipped = {"would_have": would_have, "explanation": said}
            verb = "would have failed" if would_have == "failed" else "would have succeeded"
            err_console.print(f"[bold yellow]warning:[/bold yellow] --insecure: the "
                              f"certificate was NOT verified. Verification {verb}: "
                              f"{escape(said)}")
        if early is not None and info.early_data_accepted is not True:
            # Not sent as 0-RTT, or rejected (the server skipped it): send it now.
            if info.early_data_accepted is None and outcome.early_in_0rtt:
                # The core did not offer the session (e.g. another server name).
                outcome.early_in_0rtt = False
                err_console.print("[bold yellow]note:[/bold yellow] the session was not "
                                  "offered: the early data was sent after the handshake")
            elif outcome.early_in_0rtt:
                err_console.print("[bold yellow]note:[/bold yellow] the server rejected "
                                  "the early data: it was sent again after the handshake")
            tls.sendall(early)
        request = b""
        if http:
            request = (f"GET / HTTP/1.1\r\nHost: {servername or host}\r\n"
                       "Connection: close\r\nUser-Agent: tlsmith\r\n\r\n").encode()
        elif send_text is not None:
            request = send_text.encode()
        if request:
            tls.sendall(request)
        if request or early is not None:
            outcome.reply = _read_reply(tls, until_close=http)
        # Never "connected" before the server had its say: in TLS 1.3 a refusal of our
        # certificate (or of its absence) comes after our Finished (RFC 8446 §4.4.2.4).
        outcome.verdict = "accepted" if outcome.reply else tls.server_verdict()
        if want_session:
            # TLS 1.3 tickets follow the handshake: wait for one, briefly.
            tls.sock.settimeout(timeout)
            tls.wait_for_session(min(timeout, max(1.0, 2 * tls.handshake_seconds)))
        outcome.session = tls.session
    except (TLSError, OSError) as exc:
        outcome.error = exc
        why = explain(exc, host=host, port=port, offered_versions=config.versions)
        if (isinstance(exc, AlertReceived) and _certificate_was_requested(outcome.collector)
                and exc.description != AlertDescription.CERTIFICATE_REQUIRED
                and getattr(config, "certificate", None) is None):
            # TLS 1.2 servers say handshake_failure when a required certificate is missing.
            why = (f"The handshake with {host}:{port} failed: the server sent the fatal "
                   f"alert '{exc.description.rfc_name}' after asking for a client "
                   "certificate, and we had none to send: it probably requires one "
                   "(pass --cert/--key).")
        outcome.why = why
    finally:
        if tls is not None:
            tls.close()
        elif sock is not None:
            sock.close()
        if outcome.tcp is not None:
            outcome.tcp = replace(outcome.tcp, closed=config.clock())


def _tcp_connection(sock: socket.socket, opened: float) -> TcpConnection:
    from tlsmith.capture import TcpConnection

    return TcpConnection.of_socket(sock, opened=opened)


def write_pcap(path: str, outcomes: list[_Outcome], err_console: Console, *,
               quiet: bool = False) -> bool:
    """--pcap FILE: the connections as a pcapng file, their secrets embedded (one TCP
    stream each; a connection that never connected is left out). False if unwritable."""
    from tlsmith.capture import write_pcapng

    sessions = [(o.tcp, o.collector.records) for o in outcomes if o.tcp is not None]
    try:
        wrote = write_pcapng(path, sessions)
    except OSError as exc:
        err_console.print(f"[bold red]error:[/bold red] cannot write {escape(path)}: "
                          f"{exc.strerror or exc}")
        return False
    if not quiet:
        streams = f"{wrote.streams} TCP stream" + ("s" if wrote.streams != 1 else "")
        keys = (f"{wrote.secrets} secrets embedded: Wireshark and tshark decrypt it"
                if wrote.secrets else "no secrets were derived: nothing to decrypt")
        err_console.print(f"[dim]capture written to {escape(path)} ({streams}, "
                          f"{wrote.packets} packets; {keys})[/dim]")
    return True


def write_explain(path: str, outcome: _Outcome, err_console: Console, *,
                  quiet: bool = False) -> bool:
    """--explain FILE.html: the byte-level explainer page of one connection (written on
    failure too: it shows how far the handshake got). False if unwritable."""
    from tlsmith.explainer import write_explainer

    try:
        write_explainer(path, outcome.collector.records, local="client")
    except OSError as exc:
        err_console.print(f"[bold red]error:[/bold red] cannot write {escape(path)}: "
                          f"{exc.strerror or exc}")
        return False
    if not quiet:
        err_console.print(f"[dim]explainer written to {escape(path)} (every record, byte "
                          "by byte; it contains this connection's secrets)[/dim]")
    return True


def _why_no_0rtt(session: Session | None, data: bytes, now: float) -> str | None:
    """Why ``data`` cannot go as 0-RTT data with ``session`` (None: it can)."""
    if session is None:
        return "there is no session to resume"
    if not isinstance(session, Session13):
        return f"the session is {session.version_label}: 0-RTT data needs TLS 1.3"
    if session.expired(now):
        return "the session has expired"
    if session.max_early_data <= 0:
        return "the server's ticket does not allow early data"
    if len(data) > session.max_early_data:
        return (f"{len(data)} bytes exceed the ticket's max_early_data_size of "
                f"{session.max_early_data}")
    return None


RESUMED_WITH = {
    "session_id": "session ID",
    "ticket": "ticket",
    "psk_dhe_ke": "ticket: PSK with (EC)DHE",
    "psk_ke": "ticket: PSK only, no (EC)DHE",
    "external_psk": "external PSK",
}


def resumed_text(info: HandshakeInfo) -> str:
    if not info.resumed:
        return "no"
    return f"resumed ({RESUMED_WITH.get(info.resumed_with or '', info.resumed_with or '?')})"


def _outcome_json(outcome: _Outcome) -> dict[str, Any]:
    if outcome.error is not None:
        return failure_json(outcome.error, outcome.why, outcome.collector)
    assert outcome.info is not None
    out = info_to_json(outcome.info)
    out["ok"] = True
    out["server_verdict"] = outcome.verdict
    out["handshake_ms"] = round(outcome.handshake_seconds * 1000, 1)
    if outcome.offered is not None:
        out["session_offered"] = outcome.offered.version_label
    if outcome.early_data is not None:
        out["early_data_accepted"] = outcome.info.early_data_accepted is True
        out["early_data_bytes"] = len(outcome.early_data)
        out["early_data_in_0rtt"] = outcome.early_in_0rtt
    if outcome.skipped is not None:
        out["verification_skipped"] = outcome.skipped
    if outcome.reply:
        out["reply"] = outcome.reply.decode("utf-8", "replace")
    out.update(fingerprints(outcome.collector.records))  # ja3, ja4, ja3s, ja4s
    out["trace"] = records_to_json(outcome.collector)
    return out


def _print_early_data(console: Console, outcome: _Outcome) -> None:
    if outcome.early_data is None or outcome.info is None:
        return
    n = len(outcome.early_data)
    if outcome.info.early_data_accepted:
        console.print(f"early data         [green]accepted[/green]: {n} bytes sent with the "
                      "ClientHello (0-RTT)")
    elif outcome.early_in_0rtt:
        console.print(f"early data         [yellow]rejected[/yellow]: the {n} bytes were "
                      "sent again after the handshake")
    else:
        console.print(f"early data         [yellow]not sent as 0-RTT[/yellow]: the {n} "
                      "bytes were sent after the handshake")


def savings(full: _Outcome, second: _Outcome) -> str:
    """What resuming saved, said precisely (``--resume``)."""
    assert full.info is not None and second.info is not None
    info = second.info
    times = (f"(handshakes: {full.handshake_seconds * 1000:.1f} ms full, "
             f"{second.handshake_seconds * 1000:.1f} ms second)")
    if second.offered is None:
        return ("NOT resumed: the first connection gave us no session to offer, so the "
                f"second handshake was a full one; nothing saved {times}")
    if not info.resumed:
        return ("NOT resumed: the server refused the session and made a full handshake "
                f"(certificate and signature again); nothing saved {times}")
    how = RESUMED_WITH.get(info.resumed_with or "", info.resumed_with or "?")
    if info.version == ProtocolVersion.TLS12:
        return (f"resumed ({how}): an abbreviated TLS 1.2 handshake, 1 round trip instead "
                "of 2 -- no Certificate, no ServerKeyExchange and no key exchange; "
                f"application data could follow one round trip earlier {times}")
    text = (f"resumed ({how}): still 1-RTT like the full TLS 1.3 handshake, but no "
            "Certificate and no CertificateVerify -- no certificate sent or checked, no "
            "signature made or verified")
    if info.resumed_with == "psk_ke":
        text += ", and no (EC)DHE key exchange (no forward secrecy for this connection)"
    if second.early_data is not None:
        if info.early_data_accepted:
            text += ("; the early data was accepted: the request left with the first "
                     "flight (0-RTT), so the reply came one round trip sooner")
        else:
            text += ("; the early data was not accepted, so it went after the handshake: "
                     "no round trip saved for the request")
    return f"{text} {times}"


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
    out.update(fingerprints(collector.records))  # those of the hellos that crossed
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
                  verdict: str = "accepted", prints: dict[str, str] | None = None) -> None:
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
    table.add_row("resumed", resumed_text(info))
    # A resumed handshake sends no certificate: what we know is from the original one.
    when = " (in the handshake that made the session)" if info.resumed else ""
    table.add_row("certificate", f"[green]verified[/green]{when}" if info.certificate_verified
                  else f"[yellow]NOT verified (--insecure)[/yellow]{when}")
    if info.revocation is not None:
        colour = {"good": "green", "not_checked": "yellow"}.get(info.revocation_state or "",
                                                                 "red")
        table.add_row("revocation", f"[{colour}]{escape(info.revocation)}[/{colour}]")
    # Fingerprints (fingerprint.py): of our ClientHello, and of the server's first hello.
    for key, label in (("ja4", "JA4 (our hello)"), ("ja3", "JA3 (our hello)"),
                       ("ja4s", "JA4S (server's)")):
        if prints and key in prints:
            table.add_row(label, prints[key])
    console.print(table)
    for i, der in enumerate(info.peer_certificates):
        d = describe_certificate(parse_der(der))
        console.print(f"  [dim]{i}[/dim] subject: {d['subject']}\n"
                      f"    issuer: {d['issuer']}\n"
                      f"    valid: {d['not_before']} → {d['not_after']}")
