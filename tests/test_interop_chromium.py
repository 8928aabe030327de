"""tlsmith's server against headless Chromium (BoringSSL): a real browser's ClientHello,
with GREASE (RFC 8701) everywhere and, since Chromium 131, an X25519MLKEM768 key share.

Chromium's only loopback target is our server on 127.0.0.1. It runs with a throwaway
profile and HOME (so it never touches the user's NSS database), in its own process
group, which is killed once it is done (or after ``CHROMIUM_TIMEOUT``).
"""

from __future__ import annotations

import contextlib
import functools
import html
import re
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, free_port, require_peer
from peers import (
    PeerProcess,
    Served,
    TlsmithServerHandle,
    environ_without,
    run_process_group,
    tlsmith_server,
    wait_until,
)
from tlsmith.codec.enums import NamedGroup, is_grease
from tlsmith.codec.extensions import (
    KeyShareClientHello,
    SignatureAlgorithms,
    SupportedGroups,
    SupportedVersionsClientHello,
    find_extension,
)
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.observe import MessageTrace, TraceRecord

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

CHROMIUM_TIMEOUT = 30.0
TIMEOUT = 10.0
#: Chromium offers an X25519MLKEM768 key share by default from version 131 on.
MLKEM_SINCE = 131
#: X25519MLKEM768 client share: ML-KEM-768 encapsulation key (1184) + X25519 (32).
MLKEM_SHARE_LEN = 1184 + 32
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio",
                  "--disable-breakpad", "--disable-crash-reporter")


# ------------------------------------------------------------------------------ Chromium
@pytest.fixture(scope="module")
def chromium() -> str:
    return require_peer("chromium")


@functools.cache
def chromium_major(binary: str) -> int:
    done = subprocess.run([binary, "--version"], capture_output=True, timeout=30,
                          check=False)
    match = re.search(r"Chromium (\d+)\.", done.stdout.decode(errors="replace"))
    assert match, f"cannot read the version of {binary}: {done.stdout!r} {done.stderr!r}"
    return int(match.group(1))


@dataclass
class ChromiumRun:
    returncode: int
    dom: str
    stderr: str


def run_chromium(binary: str, url: str, workdir: Path, *extra: str,
                 timeout: float = CHROMIUM_TIMEOUT) -> ChromiumRun:
    """``chromium --headless --dump-dom URL`` with a fresh profile and HOME under
    ``workdir``; its whole process group is killed when it is done or after ``timeout``."""
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = {**environ_without("SSLKEYLOGFILE", "DISPLAY", "WAYLAND_DISPLAY"),
           "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}", *extra,
           "--dump-dom", url]
    done = run_process_group(cmd, timeout=timeout, what="chromium", env=env)
    return ChromiumRun(done.returncode, done.stdout, done.stderr)


def trust_ca_for_chromium(workdir: Path, ca_path: Path) -> None:
    """Put our CA into the NSS database Chromium reads: $HOME/.pki/nssdb (HOME is the
    throwaway one ``run_chromium`` gives it)."""
    certutil = require_peer("certutil")
    nssdb = workdir / "home" / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    for args in (["-N", "--empty-password"],
                 ["-A", "-t", "C,,", "-n", "tlsmith-test-ca", "-i", str(ca_path)]):
        done = subprocess.run([certutil, "-d", f"sql:{nssdb}", *args], capture_output=True,
                              timeout=TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")


# ------------------------------------------------------------------------------ our server
class ClientHellos:
    """A server observer keeping every ClientHello received (all connections)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hellos: list[Any] = []

    def __call__(self, record: TraceRecord) -> None:
        if (isinstance(record, MessageTrace) and record.direction == "received"
                and record.name == "ClientHello"):
            with self.lock:
                self.hellos.append(record.message)

    def for_random(self, random: bytes) -> list[Any]:
        with self.lock:
            return [ch for ch in self.hellos if bytes(ch.random) == random]


@contextlib.contextmanager
def observed_server(cert: CertFiles, **kw: object
                    ) -> Iterator[tuple[TlsmithServerHandle, ClientHellos]]:
    hellos = ClientHellos()
    config = ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                                cert.key_path),),
                          observer=hellos, **kw)  # type: ignore[arg-type]
    with tlsmith_server(config, "http") as server:
        yield server, hellos


def finished_connections(server: TlsmithServerHandle) -> list[Served]:
    """Every connection Chromium made, once each handler has finished."""
    assert wait_until(lambda: server.count() > 0, TIMEOUT), "Chromium never connected"

    def all_done() -> bool:
        with server.lock:
            return all(s.done.is_set() for s in server.served)

    assert wait_until(all_done, TIMEOUT), "a connection handler did not finish"
    with server.lock:
        return list(server.served)


def page_request(served: list[Served]) -> Served:
    """The connection that carried Chromium's GET (others may be preconnects)."""
    pages = [s for s in served if s.received.startswith(b"GET / HTTP/1.1\r\n")]
    assert len(pages) == 1, [(s.peer, bytes(s.received[:40]), s.error) for s in served]
    return pages[0]


def tlsmith_info(dom: str) -> dict[str, str]:
    match = re.search(r"tlsmith-info ([^<\n]*)", dom)
    assert match, f"our page is not in Chromium's DOM:\n{dom[:2000]}"
    return dict(item.split("=", 1) for item in match.group(1).split())


def greased(values: Iterable[int]) -> list[int]:
    return [int(v) for v in values if is_grease(int(v))]


# ------------------------------------------------------------------------------ tests
def test_chromium_gets_our_page_with_grease_and_mlkem(chromium: str,
                                                      certs: dict[str, CertFiles],
                                                      tmp_path: Path) -> None:
    cert = certs["ecdsa-p256"]
    with observed_server(cert, alpn_protocols=("http/1.1",)) as (server, hellos):
        run = run_chromium(chromium, f"https://127.0.0.1:{server.port}/", tmp_path,
                           "--ignore-certificate-errors")
        served = finished_connections(server)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = tlsmith_info(run.dom)
    assert seen["version"] == "TLSv1.3"
    assert seen["alpn"] == "http/1.1"
    for conn in served:
        assert conn.error is None, f"{conn.peer}: {conn.error!r}"
        assert conn.info is not None and conn.info.version_label == "TLSv1.3"
    page = page_request(served)
    assert page.info is not None
    assert seen["group"] == (page.info.group.name if page.info.group else "-")

    for conn in served:
        assert conn.info is not None
        client_hellos = hellos.for_random(conn.info.client_random)
        assert len(client_hellos) == 1, "no HelloRetryRequest was needed"
        ch = client_hellos[0]
        exts = ch.extensions
        groups = find_extension(exts, SupportedGroups)
        shares = find_extension(exts, KeyShareClientHello)
        versions = find_extension(exts, SupportedVersionsClientHello)
        sigalgs = find_extension(exts, SignatureAlgorithms)
        assert groups and shares and versions and sigalgs
        # RFC 8701 GREASE in every list BoringSSL greases -- and the handshake worked
        assert greased(ch.cipher_suites), ch.cipher_suites
        assert greased(e.extension_type for e in exts), [e.extension_type for e in exts]
        assert greased(groups.named_group_list), groups.named_group_list
        assert greased(e.group for e in shares.client_shares), shares.client_shares
        assert greased(versions.versions), versions.versions
        assert greased(sigalgs.supported_signature_algorithms)
        offered = [e.group for e in shares.client_shares if not is_grease(int(e.group))]
        supported = [g for g in groups.named_group_list if not is_grease(int(g))]
        print(f"Chromium {chromium_major(chromium)}: supported_groups={supported} "
              f"key_shares={offered}")
        if chromium_major(chromium) >= MLKEM_SINCE:
            assert NamedGroup.X25519MLKEM768 in offered, offered
        if NamedGroup.X25519MLKEM768 in offered:
            # the hybrid post-quantum share is what our default server groups take first
            share = next(e for e in shares.client_shares
                         if e.group == NamedGroup.X25519MLKEM768)
            assert len(share.key_exchange) == MLKEM_SHARE_LEN
            assert conn.info.group == NamedGroup.X25519MLKEM768
            assert not conn.info.hello_retry_request
    if chromium_major(chromium) >= MLKEM_SINCE:
        assert seen["group"] == "X25519MLKEM768"
        assert seen["hrr"] == "no"


@pytest.mark.parametrize(("group", "hrr"), [
    (NamedGroup.X25519, False),  # Chromium's second share: no HelloRetryRequest
    (NamedGroup.SECP256R1, True),
    (NamedGroup.SECP384R1, True),
], ids=lambda v: v.name.lower() if isinstance(v, NamedGroup) else f"hrr-{v}")
def test_chromium_with_one_server_group(chromium: str, certs: dict[str, CertFiles],
                                        tmp_path: Path, group: NamedGroup, hrr: bool) -> None:
    """A server that takes only ``group``. Chromium sends shares for X25519MLKEM768 and
    X25519 (and GREASE): for X25519 we take its share, for the NIST curves we ask for one
    with a HelloRetryRequest, and Chromium's second ClientHello carries exactly that."""
    cert = certs["rsa-2048"]
    with observed_server(cert, groups=(group,)) as (server, hellos):
        run = run_chromium(chromium, f"https://127.0.0.1:{server.port}/", tmp_path,
                           "--ignore-certificate-errors")
        served = finished_connections(server)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = tlsmith_info(run.dom)
    assert (seen["version"], seen["group"]) == ("TLSv1.3", group.name)
    assert seen["hrr"] == ("yes" if hrr else "no")
    page = page_request(served)
    assert page.error is None, repr(page.error)
    assert page.info is not None and page.info.group == group
    assert page.info.hello_retry_request is hrr
    first, *rest = hellos.for_random(page.info.client_random)
    first_shares = find_extension(first.extensions, KeyShareClientHello)
    assert first_shares is not None
    assert any(e.group == group for e in first_shares.client_shares) is not hrr
    assert len(rest) == (1 if hrr else 0), "a second ClientHello after our HRR"
    if hrr:
        second_shares = find_extension(rest[0].extensions, KeyShareClientHello)
        assert second_shares is not None
        assert [e.group for e in second_shares.client_shares
                if not is_grease(int(e.group))] == [group]


def start_tlsmith_serve(cert: CertFiles, log_dir: Path) -> PeerProcess:
    """``tlsmith serve`` (the CLI) on 127.0.0.1:<free port>, ready to accept."""
    output = ""
    for attempt in range(3):  # the free port may be taken by someone else: retry
        port = free_port()
        cmd = [sys.executable, "-m", "tlsmith.cli.main", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--cert", str(cert.chain_path), "--key",
               str(cert.key_path)]
        serve = PeerProcess(cmd, log_dir / f"serve-{attempt}.log", port=port,
                            env={**environ_without("SSLKEYLOGFILE"), "COLUMNS": "200"})
        wait_until(lambda s=serve: s.proc.poll() is not None  # type: ignore[misc]
                   or "tlsmith serving TLSv1.3" in s.output(), TIMEOUT)
        if serve.proc.poll() is None and "tlsmith serving TLSv1.3" in serve.output():
            return serve
        serve.stop()
        output = serve.output()
    raise AssertionError(f"tlsmith serve did not start:\n{output}")


def page_rows(dom: str) -> dict[str, str]:
    """The <th>/<td> rows of ``tlsmith serve``'s page."""
    return {html.unescape(k): html.unescape(v)
            for k, v in re.findall(r"<th>([^<]*)</th><td>([^<]*)</td>", dom)}


def test_chromium_trusts_our_ca_with_tlsmith_serve(chromium: str,
                                                   certs: dict[str, CertFiles],
                                                   tmp_path: Path) -> None:
    """No --ignore-certificate-errors: Chromium verifies our chain against the test CA
    (in its NSS database) for https://localhost, served by the ``tlsmith serve`` CLI."""
    cert = certs["ecdsa-p256"]
    trust_ca_for_chromium(tmp_path, cert.ca_path)
    serve = start_tlsmith_serve(cert, tmp_path)
    try:
        run = run_chromium(chromium, f"https://localhost:{serve.port}/", tmp_path,
                           "--host-resolver-rules=MAP localhost 127.0.0.1")
    finally:
        serve.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    assert "<h1>tlsmith: your TLS handshake</h1>" in run.dom, run.dom[:2000]
    rows = page_rows(run.dom)
    assert rows["Protocol"] == "TLSv1.3"
    assert rows["Server name (SNI)"] == "localhost"
    assert rows["Signature scheme"] == "ecdsa_secp256r1_sha256"
    if chromium_major(chromium) >= MLKEM_SINCE:
        assert rows["Key exchange group"] == "x25519mlkem768"
    log = serve.output()
    assert " TLSv1.3 " in log and "sni=localhost" in log, log
    assert "failed:" not in log, log


def test_chromium_refuses_an_untrusted_certificate(chromium: str,
                                                   certs: dict[str, CertFiles],
                                                   tmp_path: Path) -> None:
    """The control for the test above: without our CA, Chromium aborts the handshake
    with an alert our server reports, and our page never reaches the DOM."""
    cert = certs["ecdsa-p256"]
    with observed_server(cert) as (server, _):
        run = run_chromium(chromium, f"https://127.0.0.1:{server.port}/", tmp_path)
        served = finished_connections(server)
    assert "tlsmith-info" not in run.dom
    assert all(s.info is None and s.error is not None for s in served), served
    text = repr(served[0].error)
    assert "alert" in text and re.search(r"certificate_unknown|bad_certificate|unknown_ca",
                                         text), text
