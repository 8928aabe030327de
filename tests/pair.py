"""An in-memory client/server pair, and a key-aware 'man in the middle' for tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from helpers import CertFiles
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.events import Event
from tlsmith.observe import SecretTrace, TraceRecord
from tlsmith.x509.verify import TrustStore


class SecretSpy:
    """An observer that remembers every secret by its RFC name."""

    def __init__(self) -> None:
        self.secrets: dict[str, bytes] = {}
        self.records: list[TraceRecord] = []

    def __call__(self, record: TraceRecord) -> None:
        self.records.append(record)
        if isinstance(record, SecretTrace):
            self.secrets[record.name] = record.value


def configs(cert: CertFiles, **client_kw: Any) -> tuple[ClientConfig, ServerConfig]:
    """A client and a server for ``cert``. TLS 1.2 resumption is off unless asked for
    (the flight-by-flight tests expect no session ID and no NewSessionTicket)."""
    server_kw = {"session_ids": False, **client_kw.pop("server", {})}
    client_kw.setdefault("session_tickets", False)
    client = ClientConfig(server_name="localhost",
                          trust=TrustStore.from_pem_file(cert.ca_path), **client_kw)
    server = ServerConfig(certificates=(CertifiedKey.from_files(cert.chain_path,
                                                                cert.key_path),), **server_kw)
    return client, server


def drain(conn: TLSConnection) -> list[Event]:
    return conn.events()


def pump(client: TLSConnection, server: TLSConnection) -> tuple[list[Event], list[Event]]:
    """Move bytes both ways until both sides are quiet; returns (client_events,
    server_events)."""
    cev: list[Event] = []
    sev: list[Event] = []
    while True:
        moved = False
        data = client.data_to_send()
        if data:
            server.receive_data(data)
            moved = True
        sev += drain(server)
        data = server.data_to_send()
        if data:
            client.receive_data(data)
            moved = True
        cev += drain(client)
        if not moved:
            return cev, sev


def handshake(client_cfg: ClientConfig, server_cfg: ServerConfig
              ) -> tuple[TLSConnection, TLSConnection, SecretSpy, SecretSpy]:
    cspy, sspy = SecretSpy(), SecretSpy()
    client = TLSConnection(replace(client_cfg, observer=cspy))
    server = TLSConnection(replace(server_cfg, observer=sspy))
    pump(client, server)
    return client, server, cspy, sspy
