"""TLS 1.3 handshakes between tlsmith's client and server in memory.

These prove the state machines fit together; interop with real peers is in
test_interop_*.py.
"""

from __future__ import annotations

import pytest

from helpers import CertFiles
from pair import configs, handshake, pump
from tlsmith.codec.enums import CipherSuite, NamedGroup
from tlsmith.config import ALL_TLS13_SUITES, DEFAULT_SERVER_GROUPS
from tlsmith.events import ApplicationData, ConnectionClosed, KeyUpdated

GROUPS = (NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1,
          NamedGroup.SECP521R1, NamedGroup.X448, NamedGroup.FFDHE2048,
          NamedGroup.X25519MLKEM768, NamedGroup.MLKEM768, NamedGroup.MLKEM1024,
          NamedGroup.SECP256R1MLKEM768, NamedGroup.SECP384R1MLKEM1024)


@pytest.mark.parametrize("suite", ALL_TLS13_SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize("key_type", ["rsa-2048", "ecdsa-p256", "ed25519"])
def test_handshake_every_suite_and_key(certs: dict[str, CertFiles], suite: CipherSuite,
                                       key_type: str) -> None:
    ccfg, scfg = configs(certs[key_type], cipher_suites=(suite,),
                         server={"cipher_suites": ALL_TLS13_SUITES})
    client, server, cspy, sspy = handshake(ccfg, scfg)
    assert client.handshake_complete and server.handshake_complete
    assert client.info is not None and server.info is not None
    assert client.info.cipher_suite == suite == server.info.cipher_suite
    assert client.info.certificate_verified
    # Both sides derived the same secrets.
    for name in ("client_handshake_traffic_secret", "server_application_traffic_secret_0",
                 "exporter_master_secret"):
        assert cspy.secrets[name] == sspy.secrets[name]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_handshake_every_group(certs: dict[str, CertFiles], group: NamedGroup) -> None:
    # The pure ML-KEM groups and the SecP*r1 hybrids are opt-in on the server too.
    server = {} if group in DEFAULT_SERVER_GROUPS else {"groups": (group,)}
    ccfg, scfg = configs(certs["ecdsa-p256"], groups=(group,), key_share_groups=(group,),
                         server=server)
    client, _server, _, _ = handshake(ccfg, scfg)
    assert client.info is not None and client.info.group == group
    assert not client.info.hello_retry_request


def test_hello_retry_request(certs: dict[str, CertFiles]) -> None:
    ccfg, scfg = configs(certs["ecdsa-p256"],
                         groups=(NamedGroup.X25519, NamedGroup.SECP384R1),
                         server={"groups": (NamedGroup.SECP384R1,)})
    client, server, cspy, sspy = handshake(ccfg, scfg)
    assert client.info is not None and server.info is not None
    assert client.info.hello_retry_request and server.info.hello_retry_request
    assert client.info.group == NamedGroup.SECP384R1
    assert cspy.secrets["exporter_master_secret"] == sspy.secrets["exporter_master_secret"]


@pytest.mark.parametrize("strict", [False, True])
def test_strict_group_preference_asks_for_mlkem1024(certs: dict[str, CertFiles],
                                                     strict: bool) -> None:
    # The client shares P-384 only; a strict server insists on ML-KEM-1024 by HRR.
    ccfg, scfg = configs(certs["ecdsa-p256"],
                         groups=(NamedGroup.SECP384R1, NamedGroup.MLKEM1024),
                         key_share_groups=(NamedGroup.SECP384R1,),
                         server={"groups": (NamedGroup.MLKEM1024, NamedGroup.SECP384R1),
                                 "strict_group_preference": strict})
    client, server, cspy, sspy = handshake(ccfg, scfg)
    assert client.info is not None and server.info is not None
    assert client.info.hello_retry_request is strict
    expected = NamedGroup.MLKEM1024 if strict else NamedGroup.SECP384R1
    assert client.info.group == server.info.group == expected
    assert cspy.secrets["exporter_master_secret"] == sspy.secrets["exporter_master_secret"]


def test_alpn(certs: dict[str, CertFiles]) -> None:
    ccfg, scfg = configs(certs["ed25519"], alpn_protocols=("h2", "http/1.1"),
                         server={"alpn_protocols": ("http/1.1",)})
    client, _server, _, _ = handshake(ccfg, scfg)
    assert client.info is not None and client.info.alpn == "http/1.1"


def test_application_data_key_update_and_close(certs: dict[str, CertFiles]) -> None:
    client, server, _, _ = handshake(*configs(certs["ecdsa-p256"]))
    payload = bytes(range(256)) * 4096  # 1 MiB
    client.send_data(payload)
    _, sev = pump(client, server)
    assert b"".join(e.data for e in sev if isinstance(e, ApplicationData)) == payload
    client.key_update(request_peer=True)
    server.send_data(b"after update")
    cev, sev = pump(client, server)
    assert any(isinstance(e, KeyUpdated) and e.update_requested for e in sev)
    assert any(isinstance(e, KeyUpdated) for e in cev)
    client.send_data(b"ping")
    server.key_update(request_peer=False)
    server.send_data(b"pong")
    cev, sev = pump(client, server)
    assert [e.data for e in sev if isinstance(e, ApplicationData)] == [b"ping"]
    assert b"pong" in b"".join(e.data for e in cev if isinstance(e, ApplicationData))
    client.close()
    cev, sev = pump(client, server)
    assert any(isinstance(e, ConnectionClosed) and e.clean for e in sev)
    server.close()
    cev, _ = pump(client, server)
    assert any(isinstance(e, ConnectionClosed) and e.clean for e in cev)


def test_exporter_agrees(certs: dict[str, CertFiles]) -> None:
    client, server, _, _ = handshake(*configs(certs["ecdsa-p256"]))
    assert client.exporter(b"EXPERIMENTAL test", b"ctx", 32) == server.exporter(
        b"EXPERIMENTAL test", b"ctx", 32)
