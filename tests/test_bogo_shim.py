"""The BoGo shim and its config, checked without BoringSSL's runner (``make bogo`` runs
the runner itself): the probe, the exit codes, every flag the shim claims, the config's
shape, and echo rounds against Python's ``ssl`` playing the runner's part."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import CertFiles
from tlsmith.bogo import shim
from tlsmith.bogo.errors import boringssl_alert_name, describe_error
from tlsmith.bogo.flags import KINDS, UNIMPLEMENTED, Kind, parse
from tlsmith.codec.enums import AlertDescription
from tlsmith.errors import AlertReceived, DecodeError
from tlsmith.x509.callback import PeerCertificates, Verdict, refuse

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "bogo" / "config.json"
SAMPLE = {Kind.INT: "771", Kind.INTS: "29", Kind.STR: "x", Kind.B64: "AAEC"}


def test_probe_answers_no() -> None:
    out = subprocess.run([sys.executable, "-m", "tlsmith.bogo", "-is-handshaker-supported"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, "No\n", "")


def test_unknown_flag_exits_1_and_unimplemented_exits_89(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert shim.main(["-port", "1", "-no-such-flag"]) == 1
    assert shim.main(["-port", "1", "-enable-channel-id"]) == 89
    assert shim.main(["-port", "1", "-on-resume-srtp-profiles", "x"]) == 89
    assert shim.main(["-port", "notanumber"]) == 1
    capsys.readouterr()


@pytest.mark.parametrize("flag", sorted(KINDS))
def test_every_claimed_flag_parses(flag: str) -> None:
    args = [flag] if KINDS[flag] is Kind.BOOL else [flag, SAMPLE[KINDS[flag]]]
    for prefix in ("", "-on-initial-", "-on-resume-"):
        named = [prefix + args[0][1:] if prefix else args[0], *args[1:]]
        flags = parse(["-port", "1", "-shim-id", "2", *named])
        flags.options(0)
        flags.options(1)


def test_claimed_and_unimplemented_flags_are_disjoint() -> None:
    assert not set(KINDS) & UNIMPLEMENTED


def test_per_connection_flags_apply_to_their_connection() -> None:
    flags = parse(["-port", "1", "-expect-curve-id", "29", "-on-resume-expect-curve-id", "23",
                   "-new-x509-credential", "-cert-file", "a.pem", "-key-file", "a.key"])
    assert flags.options(0).expect_curve_id == 29
    assert flags.options(1).expect_curve_id == 23
    assert flags.options(0).credentials[0].cert_file == "a.pem"
    assert flags.options(0).default.cert_file == ""


def test_npn_alps_and_false_start_flags_reach_the_configs(certs: dict[str, CertFiles]
                                                          ) -> None:
    o = parse(["-port", "1", "-advertise-alpn", "\x02h2", "-application-settings", "h2,a,b",
               "-alps-use-new-codepoint", "1", "-select-next-proto", "foo",
               "-false-start"]).options(0)
    client = shim.client_config(o, shim.Shared(), shim.Watch())
    assert client.application_settings == (("h2", b"a,b"),) and client.alps_new_codepoint
    assert client.next_protocols == ("foo",)
    assert client.false_start and not client.false_start_without_alpn
    cert = certs["ecdsa-p256"]
    o = parse(["-port", "1", "-server", "-cert-file", str(cert.chain_path), "-key-file",
               str(cert.key_path), "-select-alpn", "h2", "-application-settings", "h2,",
               "-alps-use-new-codepoint", "0", "-advertise-npn", "\x03foo\x03bar"]).options(0)
    server = shim.server_config(o, shim.Shared(), shim.Watch())
    assert server.application_settings == (("h2", b""),) and not server.alps_new_codepoint
    assert server.next_protocols == ("foo", "bar")
    o = parse(["-port", "1", "-server", "-cert-file", str(cert.chain_path), "-key-file",
               str(cert.key_path), "-advertise-empty-npn"]).options(0)
    assert shim.server_config(o, shim.Shared(), shim.Watch()).next_protocols == ()


def test_config_json_has_reasons_and_lists() -> None:
    config = json.loads(CONFIG.read_text())
    disabled = config["DisabledTests"]
    for glob in ("*-DTLS*", "*-QUIC*", "*-TLS1", "*-TLS11"):
        assert glob in disabled
    for glob, reason in disabled.items():
        assert reason.strip(), glob
        assert "fails" not in reason.lower(), (glob, reason)
    for name, ours in config["ErrorMap"].items():
        assert (name.startswith(":") and name.endswith(":")) or "SSL_" in name, name
        assert isinstance(ours, list) and ours and all(isinstance(s, str) and s for s in ours)


def test_error_names() -> None:
    assert boringssl_alert_name(AlertDescription.HANDSHAKE_FAILURE) == \
        ":SSLV3_ALERT_HANDSHAKE_FAILURE:"
    assert boringssl_alert_name(AlertDescription.DECODE_ERROR) == ":TLSV1_ALERT_DECODE_ERROR:"
    text = describe_error(AlertReceived(AlertDescription.PROTOCOL_VERSION))
    assert ":TLSV1_ALERT_PROTOCOL_VERSION:" in text
    assert describe_error(DecodeError("x", check="c")).startswith(
        "<DecodeError> <check:c> <alert:decode_error>")


def _runner(handle: Callable[[socket.socket], None], connections: int = 1
            ) -> tuple[int, threading.Thread, list[BaseException], list[int]]:
    """A listening socket playing the runner: checks the shim id, then ``handle``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(30)
    errors: list[BaseException] = []
    ids: list[int] = []

    def serve() -> None:
        try:
            for _ in range(connections):
                conn, _addr = listener.accept()
                with conn:
                    conn.settimeout(30)
                    raw = b""
                    while len(raw) < 8:
                        raw += conn.recv(8 - len(raw))
                    ids.append(struct.unpack("<Q", raw)[0])
                    handle(conn)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, errors, ids


def _echo(tls: ssl.SSLSocket) -> None:
    assert tls.recv(5) == b"hello"  # -shim-writes-first
    tls.sendall(b"\x00\x01abc")
    got = b""
    while len(got) < 5:
        got += tls.recv(5 - len(got))
    assert got == bytes(b ^ 0xFF for b in b"\x00\x01abc")


def test_shim_client_echo_round_against_ssl_server(
        certs: dict[str, CertFiles], capsys: pytest.CaptureFixture[str]) -> None:
    files = certs["ecdsa-p256"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.chain_path, files.key_path)

    def handle(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            _echo(tls)
            tls.unwrap()  # close_notify both ways (-check-close-notify)

    port, thread, errors, ids = _runner(handle)
    rc = shim.main(["-port", str(port), "-shim-id", "7", "-trust-cert", str(files.ca_path),
                    "-verify-peer", "-shim-writes-first", "-check-close-notify",
                    "-expect-version", "772", "-max-version", "772"])
    thread.join(30)
    out = capsys.readouterr()
    assert (rc, out.err, errors, ids) == (0, "", [], [7])


def test_shim_server_echo_and_resumption_against_ssl_client(
        certs: dict[str, CertFiles], capsys: pytest.CaptureFixture[str]) -> None:
    files = certs["rsa-2048"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(files.ca_path)
    ctx.check_hostname = False
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    sessions: list[ssl.SSLSession | None] = [None]
    reused: list[bool] = []

    def handle(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, session=sessions[0]) as tls:
            _echo(tls)
            reused.append(tls.session_reused)
            sessions[0] = tls.session
            tls.unwrap()

    port, thread, errors, ids = _runner(handle, connections=2)
    rc = shim.main(["-port", str(port), "-shim-id", "9", "-server",
                    "-cert-file", str(files.chain_path), "-key-file", str(files.key_path),
                    "-resume-count", "1", "-shim-writes-first", "-check-close-notify",
                    "-expect-version", "771", "-expect-extended-master-secret"])
    thread.join(30)
    out = capsys.readouterr()
    assert (rc, out.err, errors, ids, reused) == (0, "", [], [9, 9], [False, True])


def test_fork_server_answers_like_the_shim(tmp_path: Path) -> None:
    """make bogo runs the shim through tlsmith.bogo.forkserver: the wrapper script hands
    its arguments over and returns the child's output and exit status."""
    import os
    import time

    sock = tmp_path / "fs.sock"
    server = subprocess.Popen([sys.executable, "-m", "tlsmith.bogo.forkserver", str(sock)])
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        env = {**os.environ, "TLSMITH_BOGO_FORKSERVER": str(sock)}
        shim_script = ROOT / "tests" / "bogo" / "shim"
        probe = subprocess.run([str(shim_script), "-is-handshaker-supported"], env=env,
                               capture_output=True, text=True, timeout=60, check=False)
        assert (probe.returncode, probe.stdout, probe.stderr) == (0, "No\n", "")
        unimpl = subprocess.run([str(shim_script), "-port", "1", "-enable-channel-id"],
                                env=env, capture_output=True, text=True, timeout=60,
                                check=False)
        assert unimpl.returncode == 89 and "-enable-channel-id" in unimpl.stderr
    finally:
        server.kill()
        server.wait()


def test_summary_counts_per_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import bogo_summary

    results = {"tests": {
        "Basic-Client-TLS-TLS13": {"actual": "PASS", "expected": "PASS"},
        "Basic-Server-TLS-TLS12": {"actual": "SKIP", "expected": "PASS"},
        "Oops-Server-TLS13": {"actual": "FAIL", "expected": "PASS", "is_unexpected": True},
    }}
    out = tmp_path / "bogo.json"
    out.write_text(json.dumps(results))
    names = tmp_path / "names.txt"
    names.write_text("Basic-Client-TLS-TLS13 tls client\nBasic-Server-TLS-TLS12 tls server\n"
                     "Oops-Server-TLS13 tls server\nBasic-Client-TLS-TLS1 tls client\n"
                     "Ticket-Server-TLS12 tls server\n")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"DisabledTests": {"*-TLS1": "old", "Ticket-*": "why"}}))
    assert bogo_summary.main([str(out), "--config", str(config), "--names", str(names)]) == 1
    text = capsys.readouterr().out
    client = next(line for line in text.splitlines() if line.startswith("client"))
    server = next(line for line in text.splitlines() if line.startswith("server"))
    assert client.split()[1:] == ["1", "0", "0", "0", "1", "0"]
    assert server.split()[1:] == ["0", "1", "1", "1", "0", "1"]
    assert "Oops-Server-TLS13" in text


def test_cnsa2_policy_is_tls13_aes256_mlkem1024() -> None:
    # BoringSSL's -cnsa2-202603 as BoGo's Compliance tests measure it.
    flags = parse(["-port", "1", "-server", "-cnsa2-202603"])
    policy = shim._policy(flags.options(0))
    assert policy is shim.POLICIES["cnsa2_202603"]
    assert [s.name for s in policy.suites] == ["TLS_AES_256_GCM_SHA384"]
    assert [g.name for g in policy.groups] == ["MLKEM1024"]
    # cnsa1 prefers ML-KEM-1024 too, with P-384 as the fallback.
    assert [g.name for g in shim.POLICIES["cnsa1_202603"].groups] == ["MLKEM1024", "SECP384R1"]
def _hook_verdict(*flags: str, retry: tuple[str, ...] = (), rejected: bool = False
                  ) -> tuple[object, shim.Shared]:
    parsed = parse(["-port", "1", *flags, *retry])
    shared = shim.Shared()
    watch = shim.Watch(offered_early_data=rejected, early_data_rejected=rejected)
    hook = shim.VerifyHook(parsed.options(0), shared, parsed.retry_options(), watch)
    return hook(PeerCertificates((b"der",), "server", None)), shared


def test_verify_hook_is_boringssls_verify_callbacks() -> None:
    """BoringSSL's shim accepts any chain unless -verify-fail; refusing is fatal only
    with -verify-peer (else a soft fail); legacy handshake_failure, custom
    certificate_unknown; after a 0-RTT rejection the -on-retry- flags decide."""
    verdict, shared = _hook_verdict()
    assert isinstance(verdict, Verdict) and verdict.accepted and shared.verify_ok
    verdict, shared = _hook_verdict("-verify-fail")
    assert isinstance(verdict, Verdict) and verdict.accepted and shared.verify_ok is False
    verdict, _ = _hook_verdict("-verify-fail", "-verify-peer")
    assert verdict == refuse("BoGo shim: -verify-fail", alert=AlertDescription.HANDSHAKE_FAILURE)
    verdict, _ = _hook_verdict("-verify-fail", "-verify-peer", "-use-custom-verify-callback")
    assert isinstance(verdict, Verdict) and not verdict.accepted
    assert verdict.alert == AlertDescription.CERTIFICATE_UNKNOWN
    retry = ("-on-retry-verify-fail",)
    verdict, _ = _hook_verdict("-verify-peer", retry=retry)
    assert isinstance(verdict, Verdict) and verdict.accepted
    verdict, _ = _hook_verdict("-verify-peer", retry=retry, rejected=True)
    assert isinstance(verdict, Verdict) and not verdict.accepted
    hook = shim.VerifyHook(parse(["-port", "1"]).options(0), shim.Shared())
    hook(PeerCertificates((b"der",), "server", None))
    with pytest.raises(shim.ShimFailure, match="verified twice"):
        hook(PeerCertificates((b"der",), "server", None))
