"""httpx over tlsmith (tlsmith.httpx): Client/AsyncClient against ``tlsmith serve`` and
nginx, connection reuse, resumption through a session cache, and how failures surface."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

import tlsmith.httpx  # noqa: E402
from helpers import CertFiles, free_port  # noqa: E402
from nginx_server import ServerReply, nginx_server  # noqa: E402
from peers import PeerProcess  # noqa: E402
from tlsmith.codec.enums import ProtocolVersion  # noqa: E402
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig  # noqa: E402
from tlsmith.events import HandshakeInfo  # noqa: E402
from tlsmith.io.blocking import TLSServer, TLSSocket  # noqa: E402
from tlsmith.stores import FileSessionCache, MemorySessionCache  # noqa: E402
from tlsmith.x509.verify import TrustStore  # noqa: E402

pytestmark = pytest.mark.interop

TIMEOUT = httpx.Timeout(10.0)
VERSIONS = {"tls13": ProtocolVersion.TLS13, "tls12": ProtocolVersion.TLS12}


def client_config(certs: dict[str, CertFiles], version: str = "tls13") -> ClientConfig:
    return ClientConfig(trust=TrustStore.from_pem_file(certs["ecdsa-p256"].ca_path),
                        max_version=VERSIONS[version])


def tls_info(response: Any) -> HandshakeInfo:
    info = response.extensions["network_stream"].get_extra_info("tlsmith")
    assert isinstance(info, HandshakeInfo)
    return info


@pytest.fixture(scope="module")
def nginx(certs: dict[str, CertFiles]) -> Iterator[Any]:
    with nginx_server(certs["ecdsa-p256"]) as server:
        yield server


# ------------------------------------------------------------------------ tlsmith serve
@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_client_fetches_from_tlsmith_serve(certs: dict[str, CertFiles],
                                           serve_factory: Callable[..., PeerProcess],
                                           version: str) -> None:
    serve = serve_factory()
    transport = tlsmith.httpx.Transport(client_config(certs, version))
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        response = client.get(f"https://127.0.0.1:{serve.port}/")
    assert response.status_code == 200
    info = tls_info(response)
    label = "TLSv1.3" if version == "tls13" else "TLSv1.2"
    assert info.version_label == label
    assert info.certificate_verified
    assert info.alpn is None or info.alpn == "http/1.1"
    # The page describes the handshake as the server saw it.
    assert f"<th>Protocol</th><td>{label}</td>" in response.text
    assert response.extensions["network_stream"].get_extra_info("ssl_object") is None


@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_async_client_fetches_from_tlsmith_serve(certs: dict[str, CertFiles],
                                                 serve_factory: Callable[..., PeerProcess],
                                                 version: str) -> None:
    serve = serve_factory()

    async def fetch() -> Any:
        transport = tlsmith.httpx.AsyncTransport(client_config(certs, version))
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            return await client.get(f"https://localhost:{serve.port}/")

    response = asyncio.run(fetch())
    assert response.status_code == 200
    label = "TLSv1.3" if version == "tls13" else "TLSv1.2"
    assert tls_info(response).version_label == label
    assert f"<th>Protocol</th><td>{label}</td>" in response.text


# ------------------------------------------------------------------------------ nginx
@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_client_reuses_one_connection_with_nginx(certs: dict[str, CertFiles], nginx: Any,
                                                 version: str) -> None:
    transport = tlsmith.httpx.Transport(client_config(certs, version))
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        responses = [client.get(nginx.url) for _ in range(4)]
    replies = [ServerReply.parse(r.text) for r in responses]
    label = "TLSv1.3" if version == "tls13" else "TLSv1.2"
    assert all(r.status_code == 200 and r.http_version == "HTTP/1.1" for r in responses)
    assert all(tls_info(r).version_label == label for r in responses)
    assert [r.protocol for r in replies] == [label] * 4
    # One TLS connection, seen from both ends: one handshake here, one nginx connection
    # whose request counter went 1, 2, 3, 4.
    assert transport.handshakes == 1
    assert len({r.connection for r in replies}) == 1
    assert [r.requests for r in replies] == [1, 2, 3, 4]


@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_async_client_reuses_one_connection_with_nginx(certs: dict[str, CertFiles],
                                                       nginx: Any, version: str) -> None:
    async def fetch() -> tuple[list[Any], int]:
        transport = tlsmith.httpx.AsyncTransport(client_config(certs, version))
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            responses = [await client.get(nginx.url) for _ in range(3)]
        return responses, transport.handshakes

    responses, handshakes = asyncio.run(fetch())
    replies = [ServerReply.parse(r.text) for r in responses]
    label = "TLSv1.3" if version == "tls13" else "TLSv1.2"
    assert all(r.status_code == 200 for r in responses)
    assert all(tls_info(r).version_label == label for r in responses)
    assert handshakes == 1
    assert len({r.connection for r in replies}) == 1
    assert [r.requests for r in replies] == [1, 2, 3]


def test_client_sends_a_body_to_nginx(certs: dict[str, CertFiles], nginx: Any) -> None:
    """A request with a body (nginx's ``return`` discards it) keeps the connection usable."""
    transport = tlsmith.httpx.Transport(client_config(certs))
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        first = client.post(nginx.url, content=b"x" * 100_000)
        second = client.get(nginx.url)
    assert first.status_code == second.status_code == 200
    assert ServerReply.parse(second.text).requests == 2
    assert transport.handshakes == 1


# ------------------------------------------------------------------------ resumption
@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_second_client_resumes_from_session_cache(certs: dict[str, CertFiles],
                                                  serve_factory: Callable[..., PeerProcess],
                                                  version: str) -> None:
    serve = serve_factory()
    cache = MemorySessionCache()
    url = f"https://localhost:{serve.port}/"
    infos = []
    for _ in range(2):
        transport = tlsmith.httpx.Transport(client_config(certs, version),
                                            session_cache=cache)
        with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
            infos.append(tls_info(client.get(url)))
    assert [info.resumed for info in infos] == [False, True]


def test_async_resumes_with_nginx_from_a_file_cache(certs: dict[str, CertFiles], nginx: Any,
                                                    tmp_path: Path) -> None:
    cache = FileSessionCache(tmp_path / "sessions")

    async def fetch() -> ServerReply:
        transport = tlsmith.httpx.AsyncTransport(client_config(certs), session_cache=cache)
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            response = await client.get(nginx.url)
        assert tls_info(response).resumed == ServerReply.parse(response.text).reused
        return ServerReply.parse(response.text)

    first, second = asyncio.run(fetch()), asyncio.run(fetch())
    assert (first.reused, second.reused) == (False, True)


# ---------------------------------------------------------------------------- failures
def test_untrusted_certificate_is_a_readable_connect_error(
        certs: dict[str, CertFiles], serve_factory: Callable[..., PeerProcess]) -> None:
    serve = serve_factory()
    # Trusts only an unrelated CA: the dev CA's chain leads nowhere.
    other = ClientConfig(trust=TrustStore.system())
    with httpx.Client(transport=tlsmith.httpx.Transport(other), timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            client.get(f"https://localhost:{serve.port}/")
    message = str(caught.value)
    assert message.startswith("certificate verify failed: ")
    assert "unknown_issuer" in message and "tlsmith development CA" in message


def test_async_untrusted_certificate_is_a_readable_connect_error(
        certs: dict[str, CertFiles], nginx: Any) -> None:
    async def fetch() -> None:
        transport = tlsmith.httpx.AsyncTransport(ClientConfig(trust=TrustStore.system()))
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            await client.get(nginx.url)

    with pytest.raises(httpx.ConnectError,
                       match=r"^certificate verify failed: .*unknown_issuer"):
        asyncio.run(fetch())


def test_hostname_mismatch_is_a_connect_error(certs: dict[str, CertFiles],
                                              serve_factory: Callable[..., PeerProcess]
                                              ) -> None:
    serve = serve_factory()
    with httpx.Client(transport=tlsmith.httpx.Transport(client_config(certs)),
                      timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError, match="hostname_mismatch"):
            # The right server, asked for a name its certificate does not carry.
            client.get(f"https://127.0.0.1:{serve.port}/",
                       extensions={"sni_hostname": "example.invalid"})


def test_connection_refused_is_a_connect_error(certs: dict[str, CertFiles]) -> None:
    port = free_port()  # nothing listens there
    with httpx.Client(transport=tlsmith.httpx.Transport(client_config(certs)),
                      timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError, match="refused"):
            client.get(f"https://127.0.0.1:{port}/")

    async def fetch() -> None:
        async with httpx.AsyncClient(
                transport=tlsmith.httpx.AsyncTransport(client_config(certs)),
                timeout=TIMEOUT) as client:
            await client.get(f"https://127.0.0.1:{port}/")

    with pytest.raises(httpx.ConnectError, match="refused"):
        asyncio.run(fetch())


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_silent_server_times_out_the_handshake(certs: dict[str, CertFiles],
                                               silent_listener: int) -> None:
    url = f"https://127.0.0.1:{silent_listener}/"
    started = time.monotonic()
    with httpx.Client(transport=tlsmith.httpx.Transport(client_config(certs)),
                      timeout=httpx.Timeout(0.5)) as client:
        with pytest.raises(httpx.ConnectTimeout):
            client.get(url)
    assert time.monotonic() - started < 3

    async def fetch() -> None:
        async with httpx.AsyncClient(
                transport=tlsmith.httpx.AsyncTransport(client_config(certs)),
                timeout=httpx.Timeout(0.5)) as client:
            await client.get(url)

    started = time.monotonic()
    with pytest.raises(httpx.ConnectTimeout):
        asyncio.run(fetch())
    assert time.monotonic() - started < 3


@pytest.fixture
def mute_tls_server(certs: dict[str, CertFiles]) -> Iterator[int]:
    """A tlsmith server that completes the handshake, then never answers (for 5 s)."""
    cert = certs["ecdsa-p256"]
    release = threading.Event()

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        release.wait(5)

    config = ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                                cert.key_path),))
    with TLSServer(config, ("127.0.0.1", 0), handler, timeout=5).start() as server:
        yield server.server_address[1]
        release.set()


def test_mute_server_is_a_read_timeout(certs: dict[str, CertFiles],
                                       mute_tls_server: int) -> None:
    url = f"https://127.0.0.1:{mute_tls_server}/"
    timeout = httpx.Timeout(5.0, read=0.5)
    started = time.monotonic()
    with httpx.Client(transport=tlsmith.httpx.Transport(client_config(certs)),
                      timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(url)
    assert time.monotonic() - started < 3

    async def fetch() -> None:
        async with httpx.AsyncClient(
                transport=tlsmith.httpx.AsyncTransport(client_config(certs)),
                timeout=timeout) as client:
            await client.get(url)

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(fetch())
    assert time.monotonic() - started < 3


# ------------------------------------------------------------------------------ the API
def test_refuses_what_it_cannot_honour() -> None:
    config = ClientConfig(verify_certificates=False)
    with pytest.raises(TypeError, match="HTTP/2"):
        tlsmith.httpx.Transport(config, http2=True)
    tlsmith.httpx.Transport(config, http1=True, http2=False).close()  # what it does anyway
    with pytest.raises(TypeError, match="ssl_context"):
        tlsmith.httpx.AsyncTransport(config, ssl_context=None)


def test_default_config_uses_the_system_trust_store() -> None:
    transport = tlsmith.httpx.Transport()
    assert transport.backend.config.trust is not None
    assert transport.backend.config.verify_certificates


# ------------------------------------------------------- idle connections (is_readable)
@pytest.fixture
def keepalive_server(certs: dict[str, CertFiles]) -> Iterator[Callable[[str], int]]:
    """``start(after)``: a tlsmith HTTP/1.1 keep-alive server whose body is the request's
    number on its connection; 0.1 s after each response it does ``after``: "key_update"
    (TLS 1.3 KeyUpdate, connection kept) or "close" (close_notify: gone while idle)."""
    cert = certs["ecdsa-p256"]
    config = ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                                cert.key_path),))
    servers: list[TLSServer] = []

    def start(after: str) -> int:
        def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
            buffered, number = b"", 0
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                _, _, buffered = buffered.partition(b"\r\n\r\n")
                number += 1
                body = f"{number}\n".encode()
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                            % (len(body), body))
                time.sleep(0.1)
                if after == "close":
                    tls.close()
                    return
                tls.key_update(request_peer=False)

        server = TLSServer(config, ("127.0.0.1", 0), handler, timeout=5).start()
        servers.append(server)
        port: int = server.server_address[1]
        return port

    yield start
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize("after", ["key_update", "close"])
def test_idle_connection_records_and_closes(certs: dict[str, CertFiles],
                                            keepalive_server: Callable[[str], int],
                                            after: str) -> None:
    """A record on an idle connection that is no close (a KeyUpdate) keeps it in the
    pool; a close_notify while idle makes the pool open a new one, not fail."""
    url = f"https://127.0.0.1:{keepalive_server(after)}/"
    transport = tlsmith.httpx.Transport(client_config(certs))
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        first = client.get(url)
        time.sleep(0.4)
        second = client.get(url)
    assert (first.text, second.text) == (("1\n", "2\n") if after == "key_update"
                                         else ("1\n", "1\n"))
    assert transport.handshakes == (1 if after == "key_update" else 2)

    async def fetch() -> tuple[str, str, int]:
        transport = tlsmith.httpx.AsyncTransport(client_config(certs))
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            first = await client.get(url)
            await asyncio.sleep(0.4)
            second = await client.get(url)
        return first.text, second.text, transport.handshakes

    first_text, second_text, handshakes = asyncio.run(fetch())
    assert first_text == "1\n" and second_text in ("1\n", "2\n")
    # asyncio reads eagerly, so any record on an idle connection retires it (a new
    # handshake, never a request into a closed connection).
    assert handshakes == 2


def test_keylog_records_the_connection(certs: dict[str, CertFiles], nginx: Any,
                                       tmp_path: Path) -> None:
    keylog = tmp_path / "keys.log"
    transport = tlsmith.httpx.Transport(client_config(certs), keylog=keylog)
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        response = client.get(nginx.url)
    random = tls_info(response).client_random.hex()
    assert f"CLIENT_TRAFFIC_SECRET_0 {random} " in keylog.read_text()
