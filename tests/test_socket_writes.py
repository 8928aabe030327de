"""When TLSSocket writes what the core queued: a TLS 1.3 server's tickets go out with
the application's answer when the client's data came with its Finished, and never wait
behind a read that blocks."""

from __future__ import annotations

import socket
import threading

from helpers import CertFiles
from pair import configs
from tlsmith.connection import TLSConnection
from tlsmith.events import (
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    SessionTicketReceived,
)
from tlsmith.io.blocking import TLSSocket

TIMEOUT = 5.0


def _nothing_to_read(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(65536)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(TIMEOUT)
    return False


def _server_handshake(cert: CertFiles, early_data: bytes
                      ) -> tuple[TLSConnection, TLSSocket, socket.socket, socket.socket]:
    """A sans-IO client over a socketpair to a TLSSocket server (in a thread until its
    handshake ends); the client's Finished goes out together with ``early_data``."""
    client_cfg, server_cfg = configs(cert, session_tickets=True, server={"tickets": 1})
    a, b = socket.socketpair()
    a.settimeout(TIMEOUT)
    b.settimeout(TIMEOUT)
    server = TLSSocket(a, TLSConnection(server_cfg))
    client = TLSConnection(client_cfg)
    done = threading.Thread(target=server.do_handshake, daemon=True)
    done.start()
    b.sendall(client.data_to_send())
    while not client.handshake_complete:
        client.receive_data(b.recv(65536))
        assert not any(isinstance(e, ApplicationData) for e in client.events())
    if early_data:
        client.send_data(early_data)
    b.sendall(client.data_to_send())  # Finished (and the data) in one write
    done.join(TIMEOUT)
    assert not done.is_alive() and server.conn.handshake_complete
    return client, server, a, b


def _events(client: TLSConnection, data: bytes) -> list[Event]:
    client.receive_data(data)
    return [e for e in client.events() if not isinstance(e, HandshakeComplete)]


def test_tickets_go_out_with_the_answer(certs: dict[str, CertFiles]) -> None:
    client, server, a, b = _server_handshake(certs["ecdsa-p256"], b"ping")
    with a, b:
        assert _nothing_to_read(b)  # the ticket waits for the answer
        assert server.recv(4) == b"ping"
        assert _nothing_to_read(b)
        server.sendall(b"pong")
        events = _events(client, b.recv(65536))  # ticket and answer in one write
        assert [type(e) for e in events] == [SessionTicketReceived, ApplicationData]
        assert events[1] == ApplicationData(b"pong")


def test_tickets_go_out_before_a_read_that_waits(certs: dict[str, CertFiles]) -> None:
    client, server, a, b = _server_handshake(certs["ecdsa-p256"], b"ping")
    with a, b:
        assert server.recv(4) == b"ping"
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(server.recv(4)), daemon=True)
        reader.start()  # recv() must wait for the peer: the ticket goes out first
        events = _events(client, b.recv(65536))
        assert [type(e) for e in events] == [SessionTicketReceived]
        client.send_data(b"more")
        b.sendall(client.data_to_send())
        reader.join(TIMEOUT)
        assert got == [b"more"]


def test_tickets_go_out_at_close(certs: dict[str, CertFiles]) -> None:
    client, server, _a, b = _server_handshake(certs["ecdsa-p256"], b"ping")
    with b:
        server.close()
        data = b""
        while chunk := b.recv(65536):
            data += chunk
        events = _events(client, data)
        assert [type(e) for e in events] == [SessionTicketReceived, ConnectionClosed]


def test_tickets_go_out_at_once_when_no_data_came(certs: dict[str, CertFiles]) -> None:
    client, _server, a, b = _server_handshake(certs["ecdsa-p256"], b"")
    with a, b:
        events = _events(client, b.recv(65536))  # not held: nothing to answer yet
        assert [type(e) for e in events] == [SessionTicketReceived]
