"""Hybrid ML-KEM key exchange against tlslite-ng, an independent pure-Python TLS stack
(its ML-KEM is kyber-py, ours the ``cryptography`` package's), over loopback TCP, TLS 1.3,
both ways: our client to a tlslite-ng server and a tlslite-ng client to our TLSServer.

What tlslite-ng (0.8.2) supports, read from its source: the three ECDHE + ML-KEM hybrids
of draft-ietf-tls-ecdhe-mlkem -- X25519MLKEM768 (0x11EC), SecP256r1MLKEM768 (0x11EB) and
SecP384r1MLKEM1024 (0x11ED) -- and only when kyber-py is installed (an optional import:
without it they silently vanish from its groups, so ``test_tlslite_knows_the_hybrids``
fails rather than letting the matrix shrink). It has neither pure MLKEM768 (0x0201) /
MLKEM1024 (0x0202) (draft-ietf-tls-mlkem) nor any ML-DSA signature scheme (0x0904-0x0906)
or ML-DSA key/certificate support, so those are not tested here (tests/test_mldsa.py covers
ML-DSA on our side). Certificates are ECDSA P-256 leaves from our DevCA: tlslite-ng loads
the PKCS#8 PEM key with parsePEMKey, and CertificateVerify is ecdsa_secp256r1_sha256 both
ways (tlslite-ng checks the signature but not the chain, so its tests compare the leaf).

Every test asserts the negotiated group on both sides, and an application-data echo."""

from __future__ import annotations

import socket
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from peers import tlsmith_server
from tlsmith.codec.enums import NamedGroup, ProtocolVersion, SignatureScheme
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.io.blocking import connect
from tlsmith.x509.devca import DevCA, Issued
from tlsmith.x509.verify import TrustStore

with warnings.catch_warnings():
    # tlslite/__init__ imports its asyncore integration (DeprecationWarning on 3.11).
    warnings.simplefilter("ignore", DeprecationWarning)
    from tlslite.constants import GroupName
    from tlslite.handshakesettings import HandshakeSettings
    from tlslite.tlsconnection import TLSConnection
    from tlslite.utils.compat import ML_KEM_AVAILABLE
    from tlslite.utils.keyfactory import parsePEMKey
    from tlslite.x509certchain import X509CertChain

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TIMEOUT = 10.0
TLS13 = (3, 4)

#: Every ML-KEM group both tlsmith and tlslite-ng 0.8.2 implement, with tlslite's name.
SHARED_GROUPS = {
    NamedGroup.X25519MLKEM768: "x25519mlkem768",
    NamedGroup.SECP256R1MLKEM768: "secp256r1mlkem768",
    NamedGroup.SECP384R1MLKEM1024: "secp384r1mlkem1024",
}
GROUP_IDS = [group.name for group in SHARED_GROUPS]
MESSAGE = b"hello over a post-quantum key exchange\n"


@dataclass
class Credentials:
    ca: DevCA
    issued: Issued
    trust: TrustStore
    certified: CertifiedKey  # for our server
    tlslite_chain: Any  # tlslite X509CertChain (untyped package)
    tlslite_key: Any  # tlslite private key


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    directory = tmp_path_factory.mktemp("pq-tlslite")
    ca = DevCA.create("tlsmith tlslite-ng interop CA")
    issued = ca.issue(key_type="ecdsa-p256").write(directory, "localhost")
    assert issued.chain_path and issued.key_path
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.ca_pem)
    chain = X509CertChain()
    chain.parsePemList(issued.chain_pem.decode())
    key = parsePEMKey(issued.key_pem.decode(), private=True)
    return Credentials(ca=ca, issued=issued, trust=TrustStore.from_pem_file(ca_path),
                       certified=CertifiedKey.from_files(issued.chain_path, issued.key_path),
                       tlslite_chain=chain, tlslite_key=key)


def _tlslite_settings(groups: list[str], key_shares: list[str]) -> HandshakeSettings:
    settings = HandshakeSettings()
    settings.minVersion = TLS13
    settings.maxVersion = TLS13
    settings.eccCurves = list(groups)
    settings.keyShares = list(key_shares)
    return settings


@dataclass
class TlsliteServed:
    group: int | None = None
    version: tuple[int, int] | None = None
    received: bytes = b""
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def tlslite_server(creds: Credentials) -> Iterator[Any]:
    """Start a one-connection tlslite-ng echo server on 127.0.0.1 offering ``groups``;
    returns (port, TlsliteServed). The accept loop and every socket op are time-bounded."""
    started: list[tuple[socket.socket, threading.Thread]] = []

    def start(groups: list[str]) -> tuple[int, TlsliteServed]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(TIMEOUT)
        served = TlsliteServed()

        def serve() -> None:
            try:
                raw, _ = listener.accept()
                raw.settimeout(TIMEOUT)
                tls = TLSConnection(raw)
                try:
                    tls.handshakeServer(certChain=creds.tlslite_chain,
                                        privateKey=creds.tlslite_key,
                                        settings=_tlslite_settings(groups, groups))
                    served.group = tls.ecdhCurve
                    served.version = tls.version
                    data = bytearray()
                    while not data.endswith(b"\n"):
                        chunk = tls.read(max=4096)
                        if not chunk:
                            break
                        data += chunk
                    served.received = bytes(data)
                    tls.write(bytes(data))
                    tls.close()
                finally:
                    raw.close()
            except BaseException as exc:
                served.error = exc
            finally:
                served.done.set()

        thread = threading.Thread(target=serve, name="tlslite-server", daemon=True)
        thread.start()
        started.append((listener, thread))
        return listener.getsockname()[1], served

    yield start
    for listener, thread in started:
        listener.close()
        thread.join(TIMEOUT)


def _client_config(creds: Credentials, groups: tuple[NamedGroup, ...],
                   key_shares: tuple[NamedGroup, ...]) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust=creds.trust, groups=groups,
                        key_share_groups=key_shares, min_version=ProtocolVersion.TLS13,
                        request_ocsp=False)


def _server_config(creds: Credentials, groups: tuple[NamedGroup, ...]) -> ServerConfig:
    return ServerConfig(certificates=(creds.certified,), groups=groups,
                        min_version=ProtocolVersion.TLS13)


@dataclass
class TlsliteClientResult:
    version: tuple[int, int]
    group: int | None
    leaf: bytes  # the server certificate tlslite-ng checked CertificateVerify against
    echoed: bytes


def _run_tlslite_client(port: int, groups: list[str],
                        key_shares: list[str]) -> TlsliteClientResult:
    """Handshake as a tlslite-ng client, send MESSAGE, read the echo, close."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    raw.settimeout(TIMEOUT)
    tls = TLSConnection(raw)
    try:
        tls.handshakeClientCert(settings=_tlslite_settings(groups, key_shares),
                                serverName="localhost")
        # Read before close(), which resets them.
        version, group = tls.version, tls.ecdhCurve
        leaf = bytes(tls.session.serverCertChain.x509List[0].bytes)
        tls.write(MESSAGE)
        echoed = bytearray()
        while len(echoed) < len(MESSAGE):
            chunk = tls.read(max=4096)
            if not chunk:
                break
            echoed += chunk
        tls.close()
    finally:
        raw.close()
    return TlsliteClientResult(version=version, group=group, leaf=leaf, echoed=bytes(echoed))


def test_tlslite_knows_the_hybrids() -> None:
    """kyber-py is an optional import of tlslite-ng: without it the hybrids disappear and
    the handshakes below would quietly fall back, so insist on it."""
    assert ML_KEM_AVAILABLE, "tlslite-ng cannot import kyber-py: pip install kyber-py"
    for group, name in SHARED_GROUPS.items():
        assert getattr(GroupName, name) == int(group)


@pytest.mark.parametrize("group", list(SHARED_GROUPS), ids=GROUP_IDS)
def test_our_client_against_tlslite_server(creds: Credentials, tlslite_server: Any,
                                           group: NamedGroup) -> None:
    port, served = tlslite_server([SHARED_GROUPS[group]])
    tls = connect("127.0.0.1", port, _client_config(creds, (group,), (group,)),
                  timeout=TIMEOUT)
    try:
        assert tls.info.version == ProtocolVersion.TLS13
        assert tls.info.group == group
        assert not tls.info.hello_retry_request
        assert tls.info.signature_scheme == SignatureScheme.ECDSA_SECP256R1_SHA256
        assert tls.info.certificate_verified
        tls.sendall(MESSAGE)
        assert tls.recv_exactly(len(MESSAGE)) == MESSAGE
    finally:
        tls.close()
    assert served.done.wait(TIMEOUT), "the tlslite-ng server did not finish"
    assert served.error is None, repr(served.error)
    assert served.version == TLS13
    assert served.group == int(group)
    assert served.received == MESSAGE


@pytest.mark.parametrize("group", list(SHARED_GROUPS), ids=GROUP_IDS)
def test_tlslite_client_against_our_server(creds: Credentials, group: NamedGroup) -> None:
    name = SHARED_GROUPS[group]
    with tlsmith_server(_server_config(creds, (group,)), "echo", timeout=TIMEOUT) as handle:
        result = _run_tlslite_client(handle.port, [name], [name])
        served = handle.wait_served(0, timeout=TIMEOUT)
    assert result.echoed == MESSAGE
    assert result.version == TLS13
    assert result.group == int(group)
    assert result.leaf == creds.issued.certificate.public_bytes(Encoding.DER)
    assert served.error is None, repr(served.error)
    assert served.info is not None
    assert served.info.version == ProtocolVersion.TLS13
    assert served.info.group == group
    assert not served.info.hello_retry_request
    assert served.info.signature_scheme == SignatureScheme.ECDSA_SECP256R1_SHA256
    assert bytes(served.received) == MESSAGE


@pytest.mark.parametrize("group", list(SHARED_GROUPS), ids=GROUP_IDS)
def test_our_client_hello_retry_to_tlslite_hybrid(creds: Credentials, tlslite_server: Any,
                                                  group: NamedGroup) -> None:
    """Our client guesses X25519 but lists the hybrid too; a tlslite-ng server that only
    accepts the hybrid asks for it with a HelloRetryRequest."""
    port, served = tlslite_server([SHARED_GROUPS[group]])
    config = _client_config(creds, (NamedGroup.X25519, group), (NamedGroup.X25519,))
    tls = connect("127.0.0.1", port, config, timeout=TIMEOUT)
    try:
        assert tls.info.group == group
        assert tls.info.hello_retry_request
        tls.sendall(MESSAGE)
        assert tls.recv_exactly(len(MESSAGE)) == MESSAGE
    finally:
        tls.close()
    assert served.done.wait(TIMEOUT), "the tlslite-ng server did not finish"
    assert served.error is None, repr(served.error)
    assert served.group == int(group)


@pytest.mark.parametrize("group", list(SHARED_GROUPS), ids=GROUP_IDS)
def test_tlslite_client_hello_retry_to_our_hybrid(creds: Credentials,
                                                  group: NamedGroup) -> None:
    """A tlslite-ng client that guesses X25519 but lists the hybrid is asked for the hybrid
    by our server (which accepts nothing else) with a HelloRetryRequest."""
    name = SHARED_GROUPS[group]
    with tlsmith_server(_server_config(creds, (group,)), "echo", timeout=TIMEOUT) as handle:
        result = _run_tlslite_client(handle.port, ["x25519", name], ["x25519"])
        served = handle.wait_served(0, timeout=TIMEOUT)
    assert result.echoed == MESSAGE
    assert result.version == TLS13
    assert result.group == int(group)
    assert served.error is None, repr(served.error)
    assert served.info is not None
    assert served.info.group == group
    assert served.info.hello_retry_request
    assert bytes(served.received) == MESSAGE
