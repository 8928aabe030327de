"""``tlsmith demo``: each version and key exchange narrated offline, with the ladder, the
key derivation chain (✓ on every recomputed value), one protected record opened by hand;
``--step``, ``--seed`` (reproducible output) and the refusals. The walks themselves are
also run on a handshake the demo did not make, and fed corrupted values to show ✗."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from helpers import CertFiles
from pair import configs, pump
from tlsmith.cli.demo_cmd import demo_runs
from tlsmith.cli.main import main
from tlsmith.codec.enums import NamedGroup
from tlsmith.connection import TLSConnection
from tlsmith.crypto import schedule13
from tlsmith.crypto.kx import deterministic_random
from tlsmith.crypto.suites import suite_info
from tlsmith.demo_walk import (
    Narrator,
    RandomTape,
    explain_record,
    explain_tls12_keys,
    explain_tls13_keys,
    pick_record,
    traced_secrets,
)
from tlsmith.observe import RecordTrace, SecretTrace, TraceRecord
from tlsmith.trace import TraceCollector

TIMEOUT = 120
GOLDEN = Path(__file__).parent / "golden"
COMBINATIONS = [("1.3", "ecdhe"), ("1.3", "dhe"), ("1.2", "ecdhe"), ("1.2", "dhe"),
                ("1.2", "rsa")]
ENV = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}


def cli(*args: str, input: str | None = None) -> tuple[int, str]:
    # rich fixes a console's width when it is made if COLUMNS is set then: the CLI's
    # console may have been made by an earlier test, so set its width for this run.
    from tlsmith.cli import main as cli_main

    saved = cli_main.console._width
    cli_main.console.width = 100
    try:
        result = CliRunner().invoke(main, ["demo", *args], input=input,
                                    env={"COLUMNS": "100", "TERM": "xterm"})
    finally:
        cli_main.console._width = saved
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def tlsmith_command() -> list[str]:
    """``tlsmith`` as a user runs it: the console script next to this Python, else the
    module."""
    script = Path(sys.executable).parent / "tlsmith"
    if script.exists():
        return [str(script)]
    found = shutil.which("tlsmith")
    return [found] if found else [sys.executable, "-m", "tlsmith.cli.main"]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tlsmith_command(), "demo", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, env=ENV, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


def flat(text: str) -> str:
    """The output with every run of whitespace made one space: sentences wrap at the
    terminal's width."""
    return " ".join(text.split())


def in_order(text: str, needles: Sequence[str]) -> None:
    text = flat(text)
    pos = 0
    for needle in needles:
        found = text.find(needle, pos)
        assert found >= 0, f"{needle!r} missing after offset {pos}:\n{text}"
        pos = found + len(needle)


def assert_narrated(out: str, version: str, kx: str) -> None:
    """Ladder, then derivation chain with ✓ on every step, then the record opened."""
    out = flat(out)
    ladder = ["ClientHello", "ServerHello", "🔒 Finished"]
    if version == "1.2":
        ladder = ["ClientHello", "ServerHello TLSv1.2", "ServerHelloDone", "ClientKeyExchange",
                  "ChangeCipherSpec", "🔒 Finished"]
        chain = ["where the keys come from (RFC 5246", "The pre-master secret",
                 "recomputed with the PRF: the master secret the handshake used",
                 "key_block = PRF(master_secret",
                 "recomputed with the PRF: the keys the record layer used",
                 "recomputed: the server Finished on the wire"]
        record = ["opened step by step (RFC 5246 §6.2.3.3)", "nonce_explicit",
                  "nonce = salt", "additional_data = seq_num (8) || type (1)",
                  "✓ the 16-byte tag verifies"]
    else:
        chain = ["where the keys come from (RFC 8446 §7.1)",
                 "✓ recomputed: the shared secret the connection derived",
                 "✓ recomputed: the Early Secret", "✓ recomputed: the Handshake Secret",
                 "client_handshake_traffic_secret = Derive-Secret",
                 "✓ recomputed: the server Finished", "✓ recomputed: the Master Secret",
                 "server_application_traffic_secret_0 = Derive-Secret",
                 "server_write_key = HKDF-Expand-Label"]
        record = ["opened step by step (RFC 8446 §5.2)", "nonce = write_iv XOR seq_num",
                  "✓ the 16-byte tag verifies",
                  "the last non-zero byte is 0x17 = application_data"]
    in_order(out, [*ladder, f"Handshake complete: TLSv{version}", *chain, *record,
                   "HTTP/1.1 200 OK",
                   "✓ the same bytes the connection handed to the application",
                   "✓ tlsmith's record layer opens it the same way",
                   "received close_notify", "every recomputed value matched"])
    if kx != "rsa":
        assert "recomputed: the pre-master secret the connection derived" in out or \
            "recomputed: the shared secret the connection derived" in out
    else:
        assert "decrypting ClientKeyExchange with it gives the same 48 bytes" in out
    assert "✗" not in out
    assert out.count("✓") >= 10
    assert "(hidden: --show-secrets)" in out


@pytest.mark.parametrize("version, kx", COMBINATIONS)
def test_demo_each_combination_in_process(version: str, kx: str) -> None:
    code, out = cli("--version", version, "--kx", kx, "--seed", "t")
    assert code == 0, out
    assert_narrated(out, version, kx)
    assert flat(out).count("the ladder shows the handshake from the client's side") == 1


@pytest.mark.parametrize("version, kx", COMBINATIONS)
def test_demo_each_combination_as_a_command(version: str, kx: str) -> None:
    result = run("--version", version, "--kx", kx)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_narrated(result.stdout, version, kx)
    assert "\x1b[" not in result.stdout  # piped: no colour
    if kx == "dhe":
        assert "FFDHE2048" in result.stdout


def test_demo_default_is_tls13_then_tls12_ecdhe_then_rsa() -> None:
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    in_order(out, ["tlsmith demo 1/3: TLS 1.3, ECDHE",
                   "Handshake complete: TLSv1.3", "every recomputed value matched",
                   "tlsmith demo 2/3: TLS 1.2, ECDHE",
                   "Handshake complete: TLSv1.2", "every recomputed value matched",
                   "tlsmith demo 3/3: TLS 1.2, RSA key transport",
                   "Handshake complete: TLSv1.2", "every recomputed value matched",
                   "summary", "✓ TLS 1.3 ecdhe", "✓ TLS 1.2 ecdhe", "✓ TLS 1.2 rsa"])
    assert "✗" not in out


def test_demo_runs_picks_what_the_options_ask_for() -> None:
    assert demo_runs(None, None) == [("1.3", "ecdhe"), ("1.2", "ecdhe"), ("1.2", "rsa")]
    assert demo_runs("1.3", None) == [("1.3", "ecdhe")]
    assert demo_runs("1.2", None) == [("1.2", "ecdhe"), ("1.2", "rsa")]
    assert demo_runs(None, "rsa") == [("1.2", "rsa")]
    assert demo_runs(None, "dhe") == [("1.3", "dhe"), ("1.2", "dhe")]


def test_demo_refuses_rsa_with_tls13_cleanly() -> None:
    result = run("--version", "1.3", "--kx", "rsa")
    assert result.returncode == 2
    assert "--kx rsa needs --version 1.2" in result.stderr
    assert "TLS 1.3 has no RSA key transport" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_demo_step_waits_for_piped_newlines_then_runs_on_at_eof() -> None:
    result = run("--version", "1.3", "--step", "--seed", "s", input="\n\n\n")
    assert result.returncode == 0, result.stdout + result.stderr
    prompts = result.stdout.count("Enter for the next step")
    # Three lines answer three prompts; the fourth meets end of input and the demo
    # finishes without asking again.
    assert prompts == 4
    assert "every recomputed value matched" in result.stdout
    # Without --step nothing waits (stdin is /dev/null here).
    plain = run("--version", "1.3", "--seed", "s")
    assert "Enter for the next step" not in plain.stdout


def test_demo_step_in_process_with_runner_input() -> None:
    code, out = cli("--version", "1.2", "--kx", "ecdhe", "--step", "--seed", "s",
                    input="\n" * 40)
    assert code == 0, out
    assert out.count("Enter for the next step") >= 10


def test_demo_show_secrets_prints_the_values_hidden_otherwise() -> None:
    code, hidden = cli("--version", "1.3", "--seed", "k")
    assert code == 0
    code, shown = cli("--version", "1.3", "--seed", "k", "--show-secrets")
    assert code == 0
    secret = re.search(r"server_application_traffic_secret_0\s+32 bytes\s+([0-9a-f]{64})",
                       shown)
    assert secret, shown
    assert secret.group(1) not in hidden
    assert "(hidden: --show-secrets)" not in shown
    # The key-log line carries the same value (what Wireshark would be given).
    assert re.search(rf"SERVER_TRAFFIC_SECRET_0 [0-9a-f]{{64}} {secret.group(1)}", shown)
    assert "SERVER_TRAFFIC_SECRET_0" not in hidden


# ------------------------------------------------------------------ reproducible output
def _after_ladder(out: str) -> str:
    """From the key walk on: the part of the demo this file's golden files pin (the ladder
    above it has its own snapshot tests)."""
    return out[out.index("where the keys come from"):]


@pytest.mark.parametrize("version, kx, name", [("1.3", "ecdhe", "demo_tls13_seed.txt"),
                                                ("1.2", "ecdhe", "demo_tls12_ecdhe_seed.txt")])
def test_demo_seed_is_reproducible_and_matches_golden(version: str, kx: str,
                                                      name: str) -> None:
    first = cli("--version", version, "--kx", kx, "--seed", "golden")[1]
    second = cli("--version", version, "--kx", kx, "--seed", "golden")[1]
    assert first == second  # the whole output, ladder and trace times included
    other = cli("--version", version, "--kx", kx, "--seed", "other")[1]
    assert _after_ladder(other) != _after_ladder(first)
    golden = GOLDEN / name
    if os.environ.get("TLSMITH_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(_after_ladder(first), encoding="utf-8")
    assert _after_ladder(first) == golden.read_text(encoding="utf-8"), (
        f"{name} changed; if intended, rerun with TLSMITH_UPDATE_GOLDEN=1")


# ---------------------------------------------- the walks on a handshake the demo did not make
def _traced_pair(cert: CertFiles, **client_kw: object
                 ) -> tuple[TraceCollector, RandomTape, TLSConnection]:
    tape = RandomTape(deterministic_random(b"test_demo client"))
    collector = TraceCollector()
    client_cfg, server_cfg = configs(cert, **client_kw)
    client = TLSConnection(replace(client_cfg, observer=collector, random=tape))
    server = TLSConnection(server_cfg)
    pump(client, server)
    client.send_data(b"ping")
    server.send_data(b"pong: the server's first application record")
    pump(client, server)
    return collector, tape, client


def _narrator() -> tuple[Narrator, Console]:
    console = Console(record=True, width=100, color_system=None)
    return Narrator(console, show_secrets=False), console


def _corrupt_secret(records: list[TraceRecord], name: str) -> list[TraceRecord]:
    return [replace(r, value=bytes([r.value[0] ^ 1]) + r.value[1:])
            if isinstance(r, SecretTrace) and r.name == name else r for r in records]


@pytest.mark.parametrize("group", [None, NamedGroup.X25519MLKEM768, NamedGroup.SECP384R1])
def test_tls13_walk_recomputes_independently_and_shows_a_mismatch(
        certs: dict[str, CertFiles], group: NamedGroup | None) -> None:
    kw = {} if group is None else {"groups": (group,), "key_share_groups": (group,)}
    collector, tape, client = _traced_pair(certs["rsa-2048"], **kw)
    info = client.info
    assert info is not None
    assert group is None or info.group == group
    suite = suite_info(info.cipher_suite)
    assert suite is not None
    n, console = _narrator()
    recomputed = explain_tls13_keys(n, collector.records, suite, tape=tape)
    assert n.ok and n.checks >= 10, console.export_text()
    # The walk's values are the connection's, computed anew (not copied from the trace).
    traced = traced_secrets(collector.records)
    for name in ("handshake_secret", "master_secret", "server_application_traffic_secret_0"):
        assert recomputed[name] == traced[name]
    # One wrong traced value: that check, and only that one, fails.
    n, console = _narrator()
    explain_tls13_keys(n, _corrupt_secret(collector.records, "master_secret"), suite,
                       tape=tape)
    text = console.export_text()
    assert not n.ok
    assert text.count("✗") == 1
    assert "✗ recomputed: the Master Secret the connection used" in text


def test_record_walk_opens_the_record_and_a_corrupted_one_shows_a_cross(
        certs: dict[str, CertFiles]) -> None:
    collector, _tape, client = _traced_pair(certs["ecdsa-p256"])
    info = client.info
    assert info is not None
    suite = suite_info(info.cipher_suite)
    assert suite is not None
    secrets = traced_secrets(collector.records)
    key, iv = schedule13.traffic_keys(suite.hash_name,
                                      secrets["server_application_traffic_secret_0"],
                                      suite.key_len, suite.iv_len)
    picked = pick_record(collector.records, "received")
    assert picked is not None
    record, seq, earlier = picked
    assert record.plaintext == b"pong: the server's first application record"
    assert seq == len([r for r in collector.records[:collector.records.index(record)]
                       if isinstance(r, RecordTrace) and r.direction == "received"
                       and r.protected and r.epoch == record.epoch])

    def walk(rec: RecordTrace, write_key: bytes = key) -> tuple[bool, str]:
        n, console = _narrator()
        ok = explain_record(n, rec, seq, earlier, suite, write_key=write_key, write_iv=iv,
                            tls13=True, key_from="its keys", sender="server")
        return ok, console.export_text()

    ok, text = walk(record)
    assert ok and "✗" not in text, text
    assert "pong: the server" in text
    # One bit flipped in the ciphertext: the tag no longer verifies.
    wire = bytearray(record.wire)
    wire[10] ^= 0x01
    ok, text = walk(replace(record, wire=bytes(wire)))
    assert not ok
    assert "✗ the tag does not verify" in text
    # The right record under a wrong key: the same.
    ok, text = walk(record, write_key=bytes(len(key)))
    assert not ok and "✗ the tag does not verify" in text
    # A record that opens but is not what the connection delivered.
    ok, text = walk(replace(record, plaintext=b"something else"))
    assert not ok
    assert "✗ the same bytes the connection handed to the application" in text


def test_tls12_walk_on_an_outside_handshake_and_a_mismatch(certs: dict[str, CertFiles]) -> None:
    from tlsmith.codec.enums import ProtocolVersion

    collector, tape, client = _traced_pair(certs["ecdsa-p256"],
                                           max_version=ProtocolVersion.TLS12)
    info = client.info
    assert info is not None and info.version_label == "TLSv1.2"
    suite = suite_info(info.cipher_suite)
    assert suite is not None
    n, console = _narrator()
    explain_tls12_keys(n, collector.records, suite, info, tape=tape)
    assert n.ok, console.export_text()
    assert "recomputed: the pre-master secret the connection derived" in console.export_text()
    n, console = _narrator()
    explain_tls12_keys(n, _corrupt_secret(collector.records, "pre_master_secret"), suite,
                       info, tape=tape)
    text = console.export_text()
    assert not n.ok
    assert "✗ recomputed: the pre-master secret the connection derived" in text
