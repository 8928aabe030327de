"""TLS 1.3 post-handshake client authentication (RFC 8446 §4.2.6, §4.6.2), both sides:
in memory (tests/pair.py), then against OpenSSL 3.0 on 127.0.0.1 (``s_client
-enable_pha`` to our server and to ``tlsmith serve --post-handshake-auth``; our client
to ``s_server``'s "c" command)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles
from mitm import Channel, Flight, expect_alert
from pair import configs, handshake, pump
from peers import start_s_client, start_s_server, start_tlsmith_serve_cli, wait_until
from tlsmith.codec.enums import ExtensionType, HandshakeType, ProtocolVersion, SignatureScheme
from tlsmith.codec.extensions import SignatureAlgorithms
from tlsmith.codec.messages import CertificateRequest, ClientHello, Finished
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.connection import TLSConnection
from tlsmith.crypto import sig
from tlsmith.crypto.suites import SuiteInfo, suite_info
from tlsmith.errors import DecryptError, UnexpectedMessage, UsageError
from tlsmith.events import ApplicationData, ClientCertificateReceived, Event
from tlsmith.io.blocking import TLSServer, TLSSocket, connect
from tlsmith.observe import MessageTrace
from tlsmith.x509.devca import DevCA
from tlsmith.x509.leaf import parse_der
from tlsmith.x509.verify import TrustStore

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def alice(devca: DevCA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    """Client certificates (clientAuth) for CN=alice.example, by key type."""
    directory = tmp_path_factory.mktemp("pha-alice")
    assert devca.ca_path is not None
    out = {}
    for key_type in ("ecdsa-p256", "rsa-2048"):
        issued = devca.issue(("alice.example",), key_type=key_type, client=True).write(
            directory, f"alice-{key_type}")
        assert issued.cert_path and issued.key_path and issued.chain_path
        out[key_type] = CertFiles(key_type, issued.cert_path, issued.key_path,
                                  issued.chain_path, Path(devca.ca_path))
    return out


def certified(files: CertFiles) -> CertifiedKey:
    return CertifiedKey.from_files(files.chain_path, files.key_path)


def pair_configs(server_cert: CertFiles, client: CertFiles | None, **server_kw: Any
                 ) -> tuple[ClientConfig, ServerConfig]:
    server_kw.setdefault("client_trust", TrustStore.from_pem_file(server_cert.ca_path))
    return configs(server_cert, certificate=certified(client) if client else None,
                   server=server_kw)


def only(events: list[Event], kind: type[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def suite_of(conn: TLSConnection) -> SuiteInfo:
    assert conn.info is not None
    info = suite_info(conn.info.cipher_suite)
    assert info is not None
    return info


# -- in memory ------------------------------------------------------------------------
@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_client_with_certificate_is_verified(certs: dict[str, CertFiles],
                                             alice: dict[str, CertFiles],
                                             key_type: str) -> None:
    client, server, _, sspy = handshake(*pair_configs(certs["ecdsa-p256"], alice[key_type]))
    assert client.post_handshake_auth_offered and server.post_handshake_auth_offered
    assert server.info is not None and server.info.client_certificates == ()
    server.request_client_certificate()
    cev, sev = pump(client, server)
    assert cev == []
    assert sev == [ClientCertificateReceived(chain=certified(alice[key_type]).chain,
                                             verified=True)]
    # RFC 8446 §4.3.2: a non-empty context, echoed by the client; the server's
    # HandshakeInfo is left as the handshake made it.
    requests = [r.message for r in sspy.records if isinstance(r, MessageTrace)
                and isinstance(r.message, CertificateRequest)]
    assert len(requests) == 1 and len(requests[0].certificate_request_context) == 16
    assert server.info.client_certificates == ()


def test_client_without_suitable_certificate_sends_empty(certs: dict[str, CertFiles],
                                                         alice: dict[str, CertFiles]
                                                         ) -> None:
    """Our ECDSA client key fits none of the schemes the server asks for: an empty
    Certificate and a Finished (RFC 8446 §4.4.2), reported as an empty chain."""
    rsa_only = (SignatureScheme.RSA_PSS_RSAE_SHA256, SignatureScheme.RSA_PKCS1_SHA256)
    client, server, _, _ = handshake(*pair_configs(certs["rsa-2048"], alice["ecdsa-p256"],
                                                   signature_schemes=rsa_only))
    server.request_client_certificate()
    _, sev = pump(client, server)
    assert sev == [ClientCertificateReceived(chain=(), verified=False)]
    client.send_data(b"still here")
    _, sev = pump(client, server)
    assert sev == [ApplicationData(b"still here")]


def test_client_without_certificate_does_not_offer(certs: dict[str, CertFiles]) -> None:
    client, server, cspy, _ = handshake(*pair_configs(certs["ecdsa-p256"], None))
    hello = next(r.message for r in cspy.records if isinstance(r, MessageTrace)
                 and isinstance(r.message, ClientHello))
    assert ExtensionType.POST_HANDSHAKE_AUTH not in {
        e.extension_type for e in hello.extensions}
    with pytest.raises(UsageError, match="post_handshake_auth"):
        server.request_client_certificate()
    # A UsageError does not hurt the connection.
    client.send_data(b"ping")
    _, sev = pump(client, server)
    assert sev == [ApplicationData(b"ping")]


def test_usage_errors(certs: dict[str, CertFiles], alice: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = pair_configs(certs["ecdsa-p256"], alice["ecdsa-p256"])
    client, server, _, _ = handshake(client_cfg, server_cfg)
    with pytest.raises(UsageError, match="server side"):
        client.request_client_certificate()
    server.request_client_certificate()
    with pytest.raises(UsageError, match="outstanding"):
        server.request_client_certificate()
    _, sev = pump(client, server)
    assert len(only(sev, ClientCertificateReceived)) == 1
    # TLS 1.2 has no post-handshake authentication.
    _, s12, _, _ = handshake(replace(client_cfg, max_version=ProtocolVersion.TLS12),
                               server_cfg)
    assert s12.handshake_complete
    with pytest.raises(UsageError, match=r"TLS 1\.3"):
        s12.request_client_certificate()
    # Without client_trust there is nothing to verify a chain against.
    _, s, _, _ = handshake(client_cfg, replace(server_cfg, client_trust=None))
    with pytest.raises(UsageError, match="client_trust"):
        s.request_client_certificate()


def test_unsolicited_certificate_request_is_unexpected(certs: dict[str, CertFiles]
                                                       ) -> None:
    """RFC 8446 §4.6.2: a client that did not send post_handshake_auth MUST treat a
    CertificateRequest after the handshake as an unexpected_message."""
    # tickets=0: the forged record below is the first under the application key.
    client, server, cspy, sspy = handshake(*pair_configs(certs["ecdsa-p256"], None,
                                                         tickets=0))
    request = CertificateRequest(
        b"\x01" * 16,
        (SignatureAlgorithms((SignatureScheme.ECDSA_SECP256R1_SHA256,)),)).serialize()
    channel = Channel(suite_of(server), sspy.secrets["server_application_traffic_secret_0"])
    expect_alert(client, cspy, channel.handshake(request), UnexpectedMessage)


def test_bad_certificate_verify_is_decrypt_error(certs: dict[str, CertFiles],
                                                 alice: dict[str, CertFiles],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client, server, _, sspy = handshake(*pair_configs(certs["ecdsa-p256"],
                                                      alice["ecdsa-p256"]))
    server.request_client_certificate()
    client.receive_data(server.data_to_send())
    real_sign = sig.sign
    # The client signs something other than the PHA transcript's content.
    monkeypatch.setattr(sig, "sign", lambda scheme, key, content: real_sign(
        scheme, key, content + b"!"))
    assert client.events() == []
    expect_alert(server, sspy, client.data_to_send(), DecryptError)


def test_bad_finished_is_decrypt_error(certs: dict[str, CertFiles],
                                       alice: dict[str, CertFiles]) -> None:
    client, server, cspy, sspy = handshake(*pair_configs(certs["ecdsa-p256"],
                                                         alice["ecdsa-p256"]))
    server.request_client_certificate()
    client.receive_data(server.data_to_send())
    assert client.events() == []
    suite, cats = suite_of(client), cspy.secrets["client_application_traffic_secret_0"]
    messages = Flight.parse(client.data_to_send()).protected_messages(suite, cats)
    assert [m[0] for m in messages] == [HandshakeType.CERTIFICATE,
                                        HandshakeType.CERTIFICATE_VERIFY,
                                        HandshakeType.FINISHED]
    forged = Finished(bytes(len(messages[2]) - 4)).serialize()
    expect_alert(server, sspy, Channel(suite, cats).handshake(messages[0], messages[1],
                                                               forged), DecryptError)


def test_application_data_interleaves_and_requests_repeat(certs: dict[str, CertFiles],
                                                          alice: dict[str, CertFiles]
                                                          ) -> None:
    """Data both ways before, during and after; two requests one after the other (each
    from the handshake transcript, not accumulated); a KeyUpdate in between (the
    Finished key follows client_application_traffic_secret_N)."""
    client, server, _, _ = handshake(*pair_configs(certs["ecdsa-p256"],
                                                   alice["ecdsa-p256"]))
    expected = ClientCertificateReceived(chain=certified(alice["ecdsa-p256"]).chain,
                                         verified=True)
    client.send_data(b"before")
    server.send_data(b"hello")
    server.request_client_certificate()
    server.send_data(b"during")
    client.send_data(b"meanwhile")
    cev, sev = pump(client, server)
    assert cev == [ApplicationData(b"hello"), ApplicationData(b"during")]
    assert sev == [ApplicationData(b"before"), ApplicationData(b"meanwhile"), expected]
    client.key_update(request_peer=True)
    pump(client, server)
    server.request_client_certificate()
    client.send_data(b"after")
    cev, sev = pump(client, server)
    assert sev == [ApplicationData(b"after"), expected]  # sent before the request came
    server.send_data(b"bye")
    cev, _ = pump(client, server)
    assert cev == [ApplicationData(b"bye")]


# -- against OpenSSL ------------------------------------------------------------------
@pytest.mark.interop
@pytest.mark.timeout(60)
@pytest.mark.parametrize("with_cert", [True, False], ids=["cert", "no-cert"])
def test_openssl_s_client_enable_pha(certs: dict[str, CertFiles], alice: dict[str, CertFiles],
                                     tmp_path: Path, with_cert: bool) -> None:
    """``openssl s_client -enable_pha`` to our server, which asks twice after the handshake
    and then echoes a line: s_client stays connected throughout."""
    cert = certs["ecdsa-p256"]
    results: list[ClientCertificateReceived | None] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def handler(tls: TLSSocket, peer: tuple[Any, ...]) -> None:
        try:
            results.append(tls.request_client_certificate())
            results.append(tls.request_client_certificate())
            while data := tls.recv():
                tls.sendall(b"echo:" + data)
        finally:
            done.set()

    def on_error(peer: tuple[Any, ...], exc: BaseException) -> None:
        errors.append(exc)
        done.set()

    config = ServerConfig(certificates=(certified(cert),),
                          client_trust=TrustStore.from_pem_file(cert.ca_path))
    client_args = (["-cert", str(alice["rsa-2048"].cert_path),
                    "-key", str(alice["rsa-2048"].key_path)] if with_cert else [])
    with TLSServer(config, ("127.0.0.1", 0), handler, timeout=TIMEOUT,
                   on_error=on_error) as server:
        server.start()
        port = server.server_address[1]
        with start_s_client(port, "-tls1_3", "-enable_pha", "-CAfile", str(cert.ca_path),
                            *client_args, log_dir=tmp_path) as s_client:
            s_client.wait_for("Verify return code")
            assert wait_until(lambda: len(results) == 2 or bool(errors), TIMEOUT), \
                s_client.output()
            s_client.send("hello pha\n")
            s_client.wait_for("echo:hello pha")
            s_client.send("and again\n")
            s_client.wait_for("echo:and again")
            assert s_client.proc.poll() is None  # still connected
            s_client.send("Q\n")  # s_client's quit command: it closes, our echo ends
            assert done.wait(TIMEOUT)
    assert not errors, errors
    if with_cert:
        chain = certified(alice["rsa-2048"]).chain
        # s_client sends the leaf, and adds the CA from -CAfile (OpenSSL builds a chain).
        assert results[0] is not None and results[0] == results[1]
        assert results[0].verified and results[0].chain[0] == chain[0]
        subject = parse_der(results[0].chain[0]).subject.rfc4514_string()
        assert "alice.example" in subject
    else:
        assert results == [ClientCertificateReceived((), False)] * 2


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_tlsmith_serve_post_handshake_auth(certs: dict[str, CertFiles],
                                           alice: dict[str, CertFiles],
                                           tmp_path: Path) -> None:
    """Must show (issue 13): ``openssl s_client -enable_pha`` → ``tlsmith serve``
    requesting it."""
    cert = certs["ecdsa-p256"]
    with start_tlsmith_serve_cli(cert, "--client-ca", str(cert.ca_path),
                                 "--post-handshake-auth", log_dir=tmp_path) as serve:
        assert serve.port
        with start_s_client(serve.port, "-tls1_3", "-enable_pha", "-ign_eof",
                            "-CAfile", str(cert.ca_path),
                            "-cert", str(alice["ecdsa-p256"].cert_path),
                            "-key", str(alice["ecdsa-p256"].key_path),
                            log_dir=tmp_path) as s_client:
            s_client.wait_for("Verify return code")
            s_client.send("GET / HTTP/1.0\r\n\r\n")
            page = s_client.wait_for("</html>")
        assert "CN=alice.example (verified)" in page
        log = serve.wait_for("post-handshake")
        assert "alice.example" in log


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_our_client_answers_openssl_s_server(certs: dict[str, CertFiles],
                                             alice: dict[str, CertFiles],
                                             tmp_path: Path) -> None:
    """Our client (which offers post_handshake_auth since it has a certificate) answers
    ``openssl s_server``'s post-handshake CertificateRequest (its "c" command)."""
    cert = certs["ecdsa-p256"]
    server = start_s_server(cert, "-CAfile", str(cert.ca_path), "-verify_return_error",
                            log_dir=tmp_path, line_buffered=True)
    try:
        config = ClientConfig(server_name="localhost",
                              trust=TrustStore.from_pem_file(cert.ca_path),
                              certificate=certified(alice["ecdsa-p256"]))
        with connect("127.0.0.1", server.port, config, timeout=TIMEOUT) as tls:
            tls.sendall(b"first\n")
            server.wait_for("first")
            mark = server.mark()
            server.send("c\n")
            # (One stdin read per command: a line sent with "c" would be swallowed.)
            server.wait_for("SSL_do_handshake", since=mark)
            server.send("from server\n")
            # Reading processes the CertificateRequest before the data behind it.
            assert b"from server" in tls.recv()
            tls.sendall(b"second\n")
            text = server.wait_for("second", since=mark)
            assert "alice.example" in text, text
            assert "verify error" not in text
    finally:
        server.stop()
