"""Session resumption and 0-RTT in ``tlsmith connect`` / ``tlsmith serve`` and the blocking
adapter (tlsmith against itself; loopback only, every wait bounded)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, free_port
from peers import PeerProcess, tlsmith_server
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.errors import UsageError
from tlsmith.events import HandshakeInfo
from tlsmith.io.blocking import TLSServer, TLSSocket, connect
from tlsmith.session import Session12, Session13, session_from_pem
from tlsmith.x509.verify import TrustStore

TIMEOUT = 30
GET = r"GET / HTTP/1.0\r\n\r\n"  # as typed in a shell: connect unescapes it


def tlsmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlsmith.cli.main", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "COLUMNS": "200"})


def connect_cli(serve: PeerProcess, cert: CertFiles, *args: str
                ) -> subprocess.CompletedProcess[str]:
    return tlsmith("connect", f"localhost:{serve.port}", "--cafile", str(cert.ca_path),
                   "--timeout", "5", *args)


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def cert(certs: dict[str, CertFiles]) -> CertFiles:
    return certs["ecdsa-p256"]




# ----------------------------------------------------------------------- --resume
@pytest.mark.parametrize(("flag", "version", "how"), [
    ("--tls1.3", "TLSv1.3", "psk_dhe_ke"),
    ("--tls1.2", "TLSv1.2", "ticket"),
])
def test_resume_json_is_a_list_of_two(cert: CertFiles, serve_factory: Any, flag: str,
                                      version: str, how: str) -> None:
    serve = serve_factory()
    first, second = json_of(connect_cli(serve, cert, "--resume", "--json", "--http", flag))
    assert first["ok"] and second["ok"]
    assert first["version"] == second["version"] == version
    assert first["resumed"] is False and first["resumed_with"] is None
    assert second["resumed"] is True and second["resumed_with"] == how
    assert "early_data_accepted" not in first and "early_data_accepted" not in second
    # The server agrees: its page (the reply) and its log say so.
    assert "<th>Resumed</th><td>no</td>" in first["reply"]
    assert f"<th>Resumed</th><td>yes ({how})</td>" in second["reply"]
    serve.wait_for(f"resumed ({how})")


def test_resume_tls12_session_id_when_tickets_are_off(cert: CertFiles,
                                                      serve_factory: Any) -> None:
    serve = serve_factory("--tickets", "0")
    first, second = json_of(connect_cli(serve, cert, "--resume", "--json", "--tls1.2"))
    assert (first["resumed"], second["resumed"]) == (False, True)
    assert second["resumed_with"] == "session_id"


def test_resume_human_output_says_what_was_saved(cert: CertFiles,
                                                 serve_factory: Any) -> None:
    serve = serve_factory()
    tls13 = connect_cli(serve, cert, "--resume")
    tls12 = connect_cli(serve, cert, "--resume", "--tls1.2")
    assert tls13.returncode == 0, tls13.stderr
    assert "connection 1: full handshake" in tls13.stdout
    assert "resumed (ticket: PSK with (EC)DHE)" in tls13.stdout
    assert "no Certificate and no CertificateVerify" in tls13.stdout
    assert tls12.returncode == 0, tls12.stderr
    assert "resumed (ticket)" in tls12.stdout
    assert "1 round trip instead of 2" in tls12.stdout


def test_a_refused_resumption_is_not_claimed(cert: CertFiles, serve_factory: Any) -> None:
    # TLS 1.3 without tickets: nothing to resume; the second handshake is a full one.
    serve = serve_factory("--tickets", "0", "--tls1.3")
    first, second = json_of(connect_cli(serve, cert, "--resume", "--json"))
    assert first["resumed"] is False and second["resumed"] is False
    human = connect_cli(serve, cert, "--resume")
    assert human.returncode == 0
    assert "NOT resumed" in human.stdout
    assert "no session" in human.stderr


# ----------------------------------------------------------------------- 0-RTT
def test_early_data_accepted_and_answered(cert: CertFiles, serve_factory: Any) -> None:
    serve = serve_factory("--early-data")
    first, second = json_of(connect_cli(serve, cert, "--resume", "--early-data", GET,
                                         "--json"))
    assert "early_data_accepted" not in first  # attempted on the second connection only
    assert second["resumed"] is True
    assert second["early_data_accepted"] is True
    assert second["reply"].startswith("HTTP/1.0 200 OK")
    assert "<th>Early data (0-RTT)</th><td>accepted</td>" in second["reply"]
    serve.wait_for("0-RTT accepted, 18 bytes")


def test_early_data_rejected_is_sent_after_the_handshake(cert: CertFiles,
                                                         serve_factory: Any) -> None:
    serve = serve_factory()  # no --early-data: its tickets allow none
    result = connect_cli(serve, cert, "--resume", "--early-data", GET, "--json")
    _, second = json_of(result)
    assert second["resumed"] is True
    assert second["early_data_accepted"] is False
    assert second["reply"].startswith("HTTP/1.0 200 OK")
    assert "after the handshake" in result.stderr


def test_early_data_with_a_post_is_too_early(cert: CertFiles, serve_factory: Any) -> None:
    serve = serve_factory("--early-data")
    post = r"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
    _, second = json_of(connect_cli(serve, cert, "--resume", "--early-data", post, "--json"))
    assert second["early_data_accepted"] is True  # TLS took it; HTTP refuses to act on it
    assert second["reply"].startswith("HTTP/1.0 425 Too Early")


def test_echo_mode_echoes_early_data(cert: CertFiles, serve_factory: Any) -> None:
    serve = serve_factory("--early-data", "--echo")
    _, second = json_of(connect_cli(serve, cert, "--resume", "--early-data", r"ping\n",
                                    "--json"))
    assert second["early_data_accepted"] is True
    assert second["reply"] == "ping\n"


def test_early_data_then_send_and_trace(cert: CertFiles, serve_factory: Any) -> None:
    serve = serve_factory("--early-data", "--echo")
    first, second = json_of(connect_cli(serve, cert, "--resume", "--early-data", r"a\n",
                                        "--send", "b", "--json", "--tls1.3"))
    assert first["reply"] == "b"  # --send goes on both connections
    assert second["early_data_accepted"] is True
    assert second["reply"] == "a\nb"  # the 0-RTT data first, then --send
    human = connect_cli(serve, cert, "--resume", "--trace")
    assert human.returncode == 0, human.stderr
    assert human.stdout.count("ClientHello sni=") == 2  # one ladder per connection
    # Only the full handshake has a signature to check.
    assert human.stdout.count("server CertificateVerify") == 1


def test_resume_failure_json_is_a_list(cert: CertFiles) -> None:
    result = tlsmith("connect", f"localhost:{free_port()}", "--resume", "--json",
                     "--timeout", "5")
    assert result.returncode == 1
    (failure,) = json.loads(result.stdout)
    assert failure["ok"] is False and failure["error"] == "ConnectionRefusedError"
    assert failure["trace"] == []  # nothing was sent: no ClientHello in the trace


def test_max_early_data_limits_what_the_ticket_allows(cert: CertFiles,
                                                      serve_factory: Any) -> None:
    serve = serve_factory("--early-data", "--max-early-data", "8")
    result = connect_cli(serve, cert, "--resume", "--early-data", GET, "--json")
    _, second = json_of(result)
    assert second["early_data_accepted"] is False
    assert "exceed the ticket's max_early_data_size of 8" in result.stderr
    assert second["reply"].startswith("HTTP/1.0 200 OK")


# ----------------------------------------------------------------------- files
def test_sess_out_then_sess_in(cert: CertFiles, serve_factory: Any, tmp_path: Path) -> None:
    serve = serve_factory("--early-data")
    path = tmp_path / "session.pem"
    out = json_of(connect_cli(serve, cert, "--sess-out", str(path), "--json"))
    assert out["resumed"] is False and out["session_saved"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert isinstance(session_from_pem(path.read_text()), Session13)
    again = json_of(connect_cli(serve, cert, "--sess-in", str(path), "--json"))
    assert again["resumed"] is True and "early_data_accepted" not in again
    # 0-RTT is accepted once per ticket: --sess-out saved the newest, unused one.
    path2 = tmp_path / "session2.pem"
    json_of(connect_cli(serve, cert, "--sess-out", str(path2), "--json"))
    early = json_of(connect_cli(serve, cert, "--sess-in", str(path2), "--early-data", GET,
                                "--json"))
    assert early["resumed"] is True and early["early_data_accepted"] is True
    assert early["reply"].startswith("HTTP/1.0 200 OK")


def test_sess_out_tls12(cert: CertFiles, serve_factory: Any, tmp_path: Path) -> None:
    serve = serve_factory()
    path = tmp_path / "session12.pem"
    assert json_of(connect_cli(serve, cert, "--tls1.2", "--sess-out", str(path),
                               "--json"))["session_saved"] is True
    assert isinstance(session_from_pem(path.read_text()), Session12)
    result = connect_cli(serve, cert, "--tls1.2", "--sess-in", str(path), "--early-data",
                         GET, "--json")
    again = json_of(result)
    assert again["resumed"] is True and again["early_data_accepted"] is False
    assert "0-RTT data needs TLS 1.3" in result.stderr
    assert again["reply"].startswith("HTTP/1.0 200 OK")


def test_sess_out_without_a_session_warns(cert: CertFiles, serve_factory: Any,
                                          tmp_path: Path) -> None:
    serve = serve_factory("--tickets", "0", "--tls1.3")
    path = tmp_path / "none.pem"
    result = connect_cli(serve, cert, "--sess-out", str(path), "--json")
    assert json_of(result)["session_saved"] is False
    assert "no session to save" in result.stderr
    assert not path.exists()


# ----------------------------------------------------------------------- usage errors
def test_early_data_alone_is_a_usage_error() -> None:
    result = tlsmith("connect", f"localhost:{free_port()}", "--early-data", "x")
    assert result.returncode == 2
    assert "--early-data needs a session" in result.stderr


def test_a_damaged_or_missing_session_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN TLSMITH SESSION-----\nAAAA\n-----END TLSMITH SESSION-----\n")
    for path in (bad, tmp_path / "missing.pem"):
        result = tlsmith("connect", f"localhost:{free_port()}", "--sess-in", str(path))
        assert result.returncode == 2, result.stderr
        assert "--sess-in" in result.stderr and "Traceback" not in result.stderr


def test_serve_rejects_bad_options() -> None:
    assert tlsmith("serve", "--max-early-data", "10").returncode == 2
    assert tlsmith("serve", "--store", "mysql://x").returncode == 2
    assert tlsmith("serve", "--tickets", "17").returncode == 2
    assert tlsmith("serve", "--early-data", "--tickets", "0").returncode == 2


def test_serve_with_an_unreachable_redis_keeps_serving(cert: CertFiles,
                                                       serve_factory: Any) -> None:
    pytest.importorskip("redis")
    serve = serve_factory("--store", f"redis://127.0.0.1:{free_port()}/0")
    serve.wait_for("warning")
    first, second = json_of(connect_cli(serve, cert, "--resume", "--json", "--http"))
    assert first["reply"].startswith("HTTP/1.0 200 OK")
    assert second["ok"] is True and second["resumed"] is False  # no ticket keys, no tickets


# ----------------------------------------------------------------------- blocking API
def _server_config(cert: CertFiles, **kw: Any) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                              cert.key_path),), **kw)


def _client_config(cert: CertFiles) -> ClientConfig:
    return ClientConfig(server_name="localhost",
                        trust=TrustStore.from_pem_file(cert.ca_path))


@contextlib.contextmanager
def _recv_echo_server(config: ServerConfig) -> Iterator[tuple[int, list[HandshakeInfo]]]:
    """A TLSServer whose handler echoes through recv()/sendall(): 0-RTT data included."""
    infos: list[HandshakeInfo] = []

    def handler(tls: TLSSocket, _addr: tuple[Any, ...]) -> None:
        infos.append(tls.info)
        while data := tls.recv():
            tls.sendall(data)

    with TLSServer(config, ("127.0.0.1", 0), handler, timeout=5) as server:
        server.start()
        yield server.server_address[1], infos


def test_blocking_sessions_and_early_data(cert: CertFiles) -> None:
    config = _client_config(cert)
    with _recv_echo_server(_server_config(cert, max_early_data=1024, tickets=3)) as (
            port, infos):
        with connect("127.0.0.1", port, config, timeout=5) as tls:
            session = tls.wait_for_session(2.0)
            assert isinstance(session, Session13) and session.max_early_data == 1024
            tls.sendall(b"abc")
            assert tls.recv_exactly(3) == b"abc"
            assert tls.wait_for_session(0.5) is tls.session
            assert len(tls.sessions) == len(tls.tickets) >= 1
            assert tls.sessions[-1] is tls.session
            assert tls.early_data_accepted is None
        with connect("127.0.0.1", port, config, timeout=5, session=session,
                     early_data=b"early!") as tls:
            assert tls.info.resumed and tls.early_data_accepted is True
            assert tls.recv_exactly(6) == b"early!"
        with pytest.raises(UsageError):
            connect("127.0.0.1", port, config, timeout=5, session=session,
                    early_data=bytes(2048))
    assert infos[1].early_data_accepted is True


def test_blocking_server_early_data_attribute(cert: CertFiles) -> None:
    seen: list[tuple[bytes, bytes, bool | None]] = []

    def handler(tls: TLSSocket, _addr: tuple[Any, ...]) -> None:
        head = tls.recv_exactly(len(tls.early_data) + 5) if tls.early_data else b""
        seen.append((tls.early_data, head, tls.early_data_accepted))
        tls.sendall(b"done")

    config = _client_config(cert)
    with TLSServer(_server_config(cert, max_early_data=100), ("127.0.0.1", 0), handler,
                   timeout=5) as server:
        server.start()
        port = server.server_address[1]
        with connect("127.0.0.1", port, config, timeout=5) as tls:
            tls.sendall(b"x")
            assert tls.recv(4) == b"done"
            session = tls.wait_for_session(2.0)
        assert session is not None
        with connect("127.0.0.1", port, config, timeout=5, session=session,
                     early_data=b"0rtt:") as tls:
            tls.sendall(b"after")
            assert tls.recv(4) == b"done"
    assert seen[0] == (b"", b"", None)
    # Early data is its own attribute *and* the head of the stream recv() returns.
    assert seen[1] == (b"0rtt:", b"0rtt:after", True)


def test_blocking_wait_for_session_tls12_does_not_wait(cert: CertFiles) -> None:
    from tlsmith.codec.enums import ProtocolVersion

    config = _client_config(cert)
    with tlsmith_server(_server_config(cert, tickets=0, session_ids=False,
                                       max_version=ProtocolVersion.TLS12), "echo") as srv, \
            connect("127.0.0.1", srv.port, config, timeout=5) as tls:
        assert tls.info.version == ProtocolVersion.TLS12
        started = time.monotonic()
        assert tls.wait_for_session(30.0) is None
        assert time.monotonic() - started < 1.0  # TLS 1.2 has no later ticket to wait for


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_blocking_session_cache(cert: CertFiles, tmp_path: Path, kind: str) -> None:
    """connect(session_cache=...) resumes from the cache and fills it as tickets come."""
    from tlsmith.stores import FileSessionCache, MemorySessionCache

    cache = MemorySessionCache() if kind == "memory" else FileSessionCache(tmp_path / "s")
    config = _client_config(cert)
    with _recv_echo_server(_server_config(cert)) as (port, _infos):
        with connect("127.0.0.1", port, config, timeout=5, session_cache=cache) as tls:
            assert not tls.info.resumed
            assert tls.wait_for_session(2.0) is not None
        with connect("127.0.0.1", port, config, timeout=5, session_cache=cache) as tls:
            assert tls.info.resumed
            tls.sendall(b"hi")
            assert tls.recv_exactly(2) == b"hi"
    if kind == "file":
        files = list((tmp_path / "s").iterdir())
        assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
