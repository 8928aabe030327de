"""The ``tlsmith`` command: connect, serve, demo."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

from tlsmith.cli.names import parse_group, parse_suite
from tlsmith.codec.enums import ProtocolVersion
from tlsmith.errors import TLSError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _split_host_port(target: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    host, port_text = target, ""
    if target.startswith("["):
        host, bracket, rest = target[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise click.BadParameter(f"{target!r}: write IPv6 addresses as [addr]:port")
        port_text = rest[1:]
    elif target.count(":") == 1:
        host, port_text = target.split(":")
    if not host:
        raise click.BadParameter(f"{target!r} has no host name")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise click.BadParameter(f"{port_text!r} is not a TCP port (1-65535)")
    return host, int(port_text)


def _protocol_options(f: Any) -> Any:
    f = click.option("--cipher", "ciphers", multiple=True, metavar="NAME",
                     help="Cipher suite by IANA name, TLS 1.3 or 1.2 (repeatable, in "
                          "preference order); a version you name no suite for keeps its "
                          "defaults. TLS_RSA_WITH_* (RSA key transport) only this way.")(f)
    f = click.option("--group", "groups", multiple=True, metavar="NAME",
                     help="Key-exchange group: x25519, secp256r1 (P-256), secp384r1, x448, "
                          "ffdhe2048, x25519mlkem768… (repeatable).")(f)
    f = click.option("--alpn", multiple=True, metavar="PROTO",
                     help="ALPN protocol (repeatable).")(f)
    f = click.option("--keylog", type=click.Path(dir_okay=False), default=None,
                     help="Append NSS key log lines (for Wireshark) to FILE. "
                          "SSLKEYLOGFILE is honoured too.")(f)
    f = click.option("--tls1.3", "tls13", is_flag=True,
                     help="Only TLS 1.3 (default: TLS 1.3 and 1.2).")(f)
    f = click.option("--tls1.2", "tls12", is_flag=True,
                     help="Only TLS 1.2 (default: TLS 1.3 and 1.2).")(f)
    f = click.option("--allow-no-ems", is_flag=True,
                     help="Accept a TLS 1.2 peer without extended master secret (RFC 7627).")(f)
    return f


def _versions(tls12: bool, tls13: bool) -> tuple[ProtocolVersion, ProtocolVersion]:
    """(min_version, max_version) from --tls1.2 / --tls1.3 (both, or neither: both)."""
    if tls12 and not tls13:
        return ProtocolVersion.TLS12, ProtocolVersion.TLS12
    if tls13 and not tls12:
        return ProtocolVersion.TLS13, ProtocolVersion.TLS13
    return ProtocolVersion.TLS12, ProtocolVersion.TLS13


@click.group()
@click.version_option(package_name="tlsmith")
def main() -> None:
    """tlsmith — watch, explain and diagnose TLS handshakes."""


@main.command()
@click.argument("target")
@_protocol_options
@click.option("--servername", default=None, help="SNI and certificate name (default: HOST).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Trust the CA certificates in this PEM file (default: system store).")
@click.option("--capath", type=click.Path(exists=True, file_okay=False), default=None,
              help="Trust the CA certificates in this directory (*.pem, *.crt, *.cer and "
              "OpenSSL hashed names such as 1a2b3c4d.0); with --cafile, both are trusted.")
@click.option("--strict", is_flag=True, help="Verify with the CA/Browser Forum profile "
              "(as public CAs must issue), not only what OpenSSL and browsers accept; a "
              "failure names the rule.")
@click.option("--insecure", is_flag=True, help="Do not verify the server's certificate "
              "(connect anyway; stderr says what verification would have said).")
@click.option("--send", "send_text", default=None, help="Send TEXT after the handshake and "
              "print the reply.")
@click.option("--http", "http", is_flag=True, help="Send GET / and print the reply.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with "
              "--resume: a list of two).")
@click.option("--trace/--no-trace", default=False, help="Show the handshake ladder.")
@click.option("-v", "--verbose", is_flag=True, help="Show the ladder with every field of "
              "every message and every record (implies --trace).")
@click.option("--show-secrets", is_flag=True, help="Show the ladder with each secret's "
              "value and derivation (implies --trace); --trace-json then includes secret "
              "values and decrypted records.")
@click.option("--trace-json", "trace_json", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Write the trace as JSON lines (docs/trace-schema.md) "
              "to FILE ('-': stdout, instead of the summary).")
@click.option("--cert", "client_cert", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Client certificate chain PEM, sent if the server asks "
              "(mutual TLS; needs --key).")
@click.option("--key", "client_key", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Private key PEM for --cert.")
@click.option("--crl", "crl_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Check the server's certificate against this CRL (PEM or DER; "
              "repeatable).")
@click.option("--require-revocation", is_flag=True,
              help="Fail unless a stapled OCSP response or a --crl shows the server's "
              "certificate is not revoked (default: soft-fail and say 'not checked').")
@click.option("--resume", is_flag=True, help="Two handshakes: a full one, then a new "
              "connection resuming its session; show both and what resuming saved "
              "(--json: a list of two objects).")
@click.option("--early-data", "early_text", default=None, metavar="TEXT",
              help="TLS 1.3 0-RTT: send TEXT with the ClientHello of the resumed "
              "connection (needs --resume or --sess-in). Escapes: \\r \\n \\t \\0 "
              "\\\\ \\xHH. Without a ticket that allows early data it is sent after "
              "the handshake.")
@click.option("--sess-out", "sess_out", type=click.Path(dir_okay=False), default=None,
              help="Save the session the server gives (waiting up to ~1 s for a TLS 1.3 "
              "ticket) to FILE (PEM, mode 0600).")
@click.option("--sess-in", "sess_in", type=click.Path(dir_okay=False), default=None,
              help="Resume the session saved in FILE by --sess-out.")
@click.option("--pcap", "pcap", type=click.Path(dir_okay=False), default=None,
              help="Write the connection (with --resume: both) to FILE as pcapng, its TLS "
              "secrets embedded (Decryption Secrets Block): Wireshark and tshark show it "
              "decrypted, no key log needed. Written on failure too. The TCP packets are "
              "rebuilt from the trace of TLS records: bytes that never formed a whole "
              "record are not in it. Mode 0600.")
@click.option("--explain", "explain_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE.html", help="Write one self-contained HTML page showing every "
              "record of this connection (with --resume: the last) as hex, each byte "
              "labelled, protected records decrypted, and the key derivation recomputed "
              "step by step. It contains the connection's secrets. Mode 0600.")
def connect(target: str, ciphers: tuple[str, ...], groups: tuple[str, ...],
            alpn: tuple[str, ...], keylog: str | None, tls13: bool, tls12: bool,
            allow_no_ems: bool,
            servername: str | None, cafile: str | None, insecure: bool,
            send_text: str | None, http: bool, timeout: float, as_json: bool,
            trace: bool, client_cert: str | None = None,
            client_key: str | None = None, capath: str | None = None,
            strict: bool = False, crl_files: tuple[str, ...] = (),
            require_revocation: bool = False, resume: bool = False,
            early_text: str | None = None, sess_out: str | None = None,
            sess_in: str | None = None, pcap: str | None = None,
            explain_file: str | None = None, verbose: bool = False,
            show_secrets: bool = False, trace_json: str | None = None) -> None:
    """Connect to HOST[:PORT] (default port 443) and show what was negotiated."""
    from tlsmith.cli.connect_cmd import run_connect, unescape

    min_version, max_version = _versions(tls12, tls13)
    host, port = _split_host_port(target, 443)
    if (client_cert is None) != (client_key is None):
        raise click.UsageError("--cert and --key go together")
    if early_text is not None and not (resume or sess_in):
        raise click.UsageError("--early-data needs a session to resume: --resume or "
                               "--sess-in FILE")
    code = run_connect(
        host=host, port=port, ciphers=[parse_suite(c) for c in ciphers],
        min_version=min_version, max_version=max_version, allow_no_ems=allow_no_ems,
        groups=[parse_group(g) for g in groups], alpn=list(alpn), keylog=keylog,
        servername=servername, cafile=cafile, insecure=insecure, send_text=send_text,
        http=http, timeout=timeout, as_json=as_json,
        trace=trace or verbose or show_secrets, verbose=verbose, show_secrets=show_secrets,
        trace_json=trace_json,
        console=console, err_console=err_console, client_cert=client_cert,
        client_key=client_key, capath=capath, strict=strict, crl_files=crl_files,
        require_revocation=require_revocation, resume=resume,
        early_data=unescape(early_text) if early_text is not None else None,
        sess_in=sess_in, sess_out=sess_out, pcap=pcap, explain_file=explain_file)
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8443, show_default=True, type=int)
@click.option("--cert", "certs", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Certificate chain PEM (repeatable; pair each with --key).")
@click.option("--key", "keys", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Private key PEM for the --cert at the same position.")
@_protocol_options
@click.option("--allow-rsa-kx", is_flag=True,
              help="Accept TLS 1.2 RSA key transport (TLS_RSA_WITH_*: no forward secrecy).")
@click.option("--echo", is_flag=True, help="Echo application data instead of answering HTTP.")
@click.option("--trace/--no-trace", default=False, help="Print each handshake's ladder.")
@click.option("--trace-json", "trace_json", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Append each handshake's trace to FILE as JSON lines "
              "(docs/trace-schema.md), numbered by connection.")
@click.option("--max-connections", default=0, type=int, hidden=True,
              help="Exit after this many connections (for tests).")
@click.option("--client-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ask clients for a certificate issued by a CA in this PEM file "
              "(mutual TLS; optional unless --require-client-cert).")
@click.option("--require-client-cert", is_flag=True,
              help="Refuse clients without a certificate from --client-ca.")
@click.option("--ocsp", "ocsp_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Staple this DER OCSP response (RFC 6960) for every "
              "--cert to clients that ask (status_request).")
@click.option("--post-handshake-auth", is_flag=True,
              help="TLS 1.3: after the handshake, ask clients that offer it "
              "(post_handshake_auth, e.g. openssl s_client -enable_pha) for a certificate "
              "from --client-ca, instead of asking during the handshake.")
@click.option("--tickets", type=click.IntRange(0, 16), default=2, show_default=True,
              help="TLS 1.3 session tickets sent per handshake; 0 disables tickets (in "
              "TLS 1.2 too: session IDs only).")
@click.option("--early-data", "early_data", is_flag=True,
              help="Accept TLS 1.3 0-RTT data (HTTP: GET/HEAD only, other methods get "
              "425 Too Early; --echo echoes it like other data).")
@click.option("--max-early-data", type=click.IntRange(1, 2**32 - 1), default=None,
              metavar="N", help="With --early-data: the most 0-RTT bytes accepted "
              "[default: 16384].")
@click.option("--store", "store_url", default="memory", show_default=True, metavar="URL",
              help="Where sessions, ticket keys and 0-RTT anti-replay marks live: memory, "
              "or redis://host:port/db (shared by several servers).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              metavar="N", help="Serve from N processes all listening on HOST:PORT "
              "(SO_REUSEPORT: the kernel spreads connections); log lines say which worker. "
              "A worker that dies is restarted (the server exits 1 if they keep dying). "
              "With the memory store the workers share ticket keys (tickets resume on "
              "any of them) but TLS 1.2 session IDs are off and --early-data needs "
              "--store redis://.")
@click.option("--max-concurrent", type=click.IntRange(1), default=256, show_default=True,
              metavar="N", help="Serve at most N connections at once (per worker: one "
              "thread each); the others wait in the listen backlog to be accepted.")
@click.option("--handshake-timeout", type=click.FloatRange(0), default=10.0,
              show_default=True, metavar="S",
              help="Close a connection whose handshake is not done S seconds after it was "
              "accepted, however the client trickles its bytes (0: no deadline).")
@click.option("--idle-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              metavar="S", help="After the handshake, close a connection that sends "
              "nothing for S seconds (0: no limit).")
def serve(host: str, port: int, certs: tuple[str, ...], keys: tuple[str, ...],
          ciphers: tuple[str, ...], groups: tuple[str, ...], alpn: tuple[str, ...],
          keylog: str | None, tls13: bool, tls12: bool, allow_no_ems: bool,
          allow_rsa_kx: bool, echo: bool, trace: bool, max_connections: int,
          client_ca: str | None = None, require_client_cert: bool = False,
          ocsp_file: str | None = None, post_handshake_auth: bool = False,
          tickets: int = 2, early_data: bool = False, max_early_data: int | None = None,
          store_url: str = "memory", workers: int = 1,
          max_concurrent: int | None = 256, handshake_timeout: float = 10.0,
          idle_timeout: float = 30.0, trace_json: str | None = None) -> None:
    """Serve TLS on HOST:PORT, answering HTTP with a page about the client's own
    handshake: HTML for a browser, text for curl, JSON at /json, and every byte of the
    connection explained at the /explain/<id> link the page gives."""
    from tlsmith.cli.serve_cmd import run_serve

    min_version, max_version = _versions(tls12, tls13)
    if len(certs) != len(keys):
        raise click.UsageError("give one --key for each --cert")
    if require_client_cert and client_ca is None:
        raise click.UsageError("--require-client-cert needs --client-ca FILE")
    if max_early_data is not None and not early_data:
        raise click.UsageError("--max-early-data goes with --early-data")
    if not echo:
        from tlsmith.cli.serve_page import HTTP_ALPN, unspoken_alpn

        if unspoken := unspoken_alpn(alpn):
            # RFC 7301 §3.2: agreeing to a protocol means speaking it; HTTP mode answers
            # HTTP/1.x only (a client told "h2" would speak HTTP/2 and get no reply).
            raise click.BadParameter(
                f"{', '.join(unspoken)}: tlsmith serve answers HTTP/1.x only, so it can "
                f"offer only {' or '.join(HTTP_ALPN)} (--echo takes any protocol name)",
                param_hint="--alpn")
    if early_data and tickets == 0:
        raise click.UsageError("--early-data needs tickets (0-RTT data rides on a TLS 1.3 "
                               "ticket): drop --tickets 0")
    if store_url != "memory" and not store_url.startswith(("redis://", "rediss://")):
        raise click.UsageError(f"--store {store_url!r}: use memory or redis://host:port/db")
    sys.exit(run_serve(
        host=host, port=port, cert_key_pairs=list(zip(certs, keys, strict=True)),
        ciphers=[parse_suite(c) for c in ciphers], groups=[parse_group(g) for g in groups],
        min_version=min_version, max_version=max_version, allow_no_ems=allow_no_ems,
        allow_rsa_kx=allow_rsa_kx, alpn=list(alpn), keylog=keylog, echo=echo, trace=trace,
        max_connections=max_connections, console=console, client_ca=client_ca,
        require_client_cert=require_client_cert, ocsp_file=ocsp_file,
        post_handshake_auth=post_handshake_auth, tickets=tickets,
        max_early_data=(max_early_data or 16384) if early_data else 0,
        store_url=store_url, workers=workers, max_concurrent=max_concurrent,
        handshake_timeout=handshake_timeout or None, idle_timeout=idle_timeout or None,
        trace_json=trace_json))


@main.command()
@click.option("--version", "tls_version", type=click.Choice(["1.3", "1.2"]), default=None,
              help="Only this TLS version (default: TLS 1.3, then TLS 1.2 ECDHE and RSA).")
@click.option("--kx", type=click.Choice(["ecdhe", "dhe", "rsa"]), default=None,
              help="Only this key exchange: ecdhe, dhe (ffdhe2048) or rsa (RSA key "
                   "transport, TLS 1.2 only).")
@click.option("--step", is_flag=True, help="Wait for Enter between steps (without a "
              "terminal: read a line from stdin, go on at end of input).")
@click.option("-v", "--verbose", is_flag=True, help="Show every field of every message "
              "in the ladder.")
@click.option("--rfc8448", is_flag=True,
              help="Walk through the RFC 8448 key schedule instead of a live handshake.")
@click.option("--show-secrets", is_flag=True, help="Print secret values (they are "
              "throw-away: both ends live in this process).")
@click.option("--seed", default=None, hidden=True, help="Fix randomness, clock and "
              "credentials from this text: the same output every run (for tests).")
@click.option("--explain", "explain_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE.html", help="Also write the byte-level explainer page of the "
              "first handshake: every record as labelled hex, decrypted, and its keys "
              "recomputed step by step.")
def demo(tls_version: str | None, kx: str | None, rfc8448: bool, show_secrets: bool,
         step: bool = False, verbose: bool = False, seed: str | None = None,
         explain_file: str | None = None) -> None:
    """Complete TLS handshakes between tlsmith's client and server, offline, explained.

    \b
    tlsmith demo                          TLS 1.3, then TLS 1.2 ECDHE, then RSA
    tlsmith demo --version 1.3            TLS 1.3 only (X25519)
    tlsmith demo --version 1.2 --kx rsa   TLS 1.2, RSA key transport
    tlsmith demo --step                   wait for Enter between steps
    tlsmith demo --rfc8448                the RFC 8448 key schedule, checked

    Each handshake shows its ladder, the key derivation chain recomputed from its own
    values (✓ where it matches what the connection used) and one protected application
    record decrypted step by step.
    """
    from tlsmith.cli.demo_cmd import run_demo

    if kx == "rsa" and tls_version == "1.3":
        raise click.UsageError("--kx rsa needs --version 1.2: TLS 1.3 has no RSA key "
                               "transport (every TLS 1.3 key exchange is (EC)DHE)")
    if rfc8448 and (tls_version not in (None, "1.3") or kx is not None):
        raise click.UsageError("--rfc8448 replays the TLS 1.3 handshake of RFC 8448; it "
                               "takes neither --version 1.2 nor --kx")
    sys.exit(run_demo(console, rfc8448=rfc8448, show_secrets=show_secrets,
                      version=tls_version, kx=kx, step=step, verbose=verbose, seed=seed,
                      explain=explain_file))


@main.group()
def ca() -> None:
    """A development CA for your own servers and clients (like mkcert).

    \b
    tlsmith ca init                          create it; print how to trust it
    tlsmith ca issue localhost 127.0.0.1     a server certificate and key
    tlsmith ca issue alice --client          a client certificate (mutual TLS)
    tlsmith ca show                          the CA and what it issued

    It is the CA `tlsmith serve` uses, kept in $TLSMITH_HOME, else
    $XDG_DATA_HOME/tlsmith, else ~/.local/share/tlsmith.
    """


@ca.command("init")
@click.option("--force", is_flag=True, help="Replace an existing CA with a new one "
              "(what the old one issued stops verifying).")
def ca_init(force: bool) -> None:
    """Create the development CA (if missing) and print how to trust it."""
    from tlsmith.cli.ca_cmd import run_init

    sys.exit(run_init(force=force, console=console))


@ca.command("issue")
@click.argument("names", nargs=-1, metavar="NAME...")
@click.option("--ip", "ips", multiple=True, metavar="ADDRESS",
              help="An IP address SAN (repeatable). IP addresses given as NAME are "
                   "recognised anyway.")
@click.option("--client", is_flag=True,
              help="A client certificate (EKU clientAuth) instead of a server one.")
@click.option("--key-type", type=click.Choice(["ecdsa", "rsa", "ed25519"],
                                              case_sensitive=False),
              default="ecdsa", show_default=True,
              help="ecdsa = P-256, rsa = RSA-2048, ed25519.")
@click.option("--days", type=int, default=90, show_default=True,
              help="Validity in days (1-825).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Directory for NAME.pem and NAME-key.pem (default: the data "
                   "directory's issued/).")
def ca_issue(names: tuple[str, ...], ips: tuple[str, ...], client: bool, key_type: str,
             days: int, out: str | None) -> None:
    """Issue a certificate for host names and IP addresses.

    The first NAME names the files: NAME.pem holds the certificate and the CA,
    NAME-key.pem the key (mode 0600).
    """
    from tlsmith.cli.ca_cmd import run_issue

    sys.exit(run_issue(names=names, ips=ips, client=client, key_type=key_type,
                       days=days, out=out, console=console))


@ca.command("show")
def ca_show() -> None:
    """Show the development CA and the certificates it issued."""
    from tlsmith.cli.ca_cmd import run_show

    sys.exit(run_show(console=console, err_console=err_console))


def _register_subcommands() -> None:
    """Commands that live in their own modules (each exports ``command``)."""
    from tlsmith.cli import diagnose_cmd, gallery_cmd, probe_cmd

    for module in (diagnose_cmd, probe_cmd, gallery_cmd):
        main.add_command(module.command)


_register_subcommands()


def _json_dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


def fail(exc: BaseException, console: Console, *, host: str = "", port: int = 0) -> int:
    from tlsmith.explain import explain

    console.print(f"[bold red]error:[/bold red] {explain(exc, host=host, port=port)}")
    return 1 if isinstance(exc, TLSError | OSError) else 2


def run() -> None:
    """The console-script entry: an unexpected exception is a bug, reported in one line
    (``TLSMITH_DEBUG=1`` shows the traceback)."""
    import os

    try:
        main(standalone_mode=True)
    except Exception as exc:  # click handles its own errors and SystemExit
        if os.environ.get("TLSMITH_DEBUG"):
            raise
        err_console.print(f"[bold red]internal error:[/bold red] {exc!r}. This is a bug in "
                          "tlsmith; run again with TLSMITH_DEBUG=1 for the traceback.")
        sys.exit(3)


if __name__ == "__main__":
    run()
