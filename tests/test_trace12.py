"""How the trace renders TLS 1.2: one-line summaries, the ladder's locks, warning alerts,
secrets (in memory, no network)."""

from __future__ import annotations

import io
import re
from dataclasses import replace

from rich.console import Console

from helpers import CertFiles
from pair import configs, pump
from tlsmith.codec.enums import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ClientCertificateType,
    ECCurveType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.messages import Finished
from tlsmith.codec.messages12 import (
    Certificate12,
    CertificateRequest12,
    ClientKeyExchangeDHE,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    HelloRequest,
    ServerHelloDone,
    ServerKeyExchangeDHE,
    ServerKeyExchangeECDHE,
)
from tlsmith.connection import TLSConnection
from tlsmith.crypto.kx import ffdhe_params
from tlsmith.events import WarningAlert
from tlsmith.observe import Epoch, MessageTrace, SecretTrace
from tlsmith.trace import (
    TraceCollector,
    negotiated_version,
    records_to_json,
    render_ladder,
    summarize,
)
from tlsmith.x509.devca import DevCA

TLS12 = ProtocolVersion.TLS12


def der(cert: CertFiles) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(cert.cert_path.read_bytes()).public_bytes(Encoding.DER)


def big(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


# ----------------------------------------------------------------------------- summaries
def test_server_key_exchange_ecdhe_names_curve_share_and_signature() -> None:
    ske = ServerKeyExchangeECDHE(ECCurveType.NAMED_CURVE, NamedGroup.SECP256R1, b"\x04" * 65,
                                 SignatureScheme.ECDSA_SECP256R1_SHA256, b"sig")
    assert summarize(ske) == ("ServerKeyExchange ECDHE SECP256R1 public=65B "
                              "sig=ECDSA_SECP256R1_SHA256")


def test_server_key_exchange_dhe_names_the_rfc7919_group_or_the_prime_size() -> None:
    p, g = ffdhe_params(NamedGroup.FFDHE2048)
    ske = ServerKeyExchangeDHE(big(p), big(g), b"\x05" * 256,
                               SignatureScheme.RSA_PSS_RSAE_SHA256, b"sig")
    assert summarize(ske) == "ServerKeyExchange DHE FFDHE2048 Ys=256B sig=RSA_PSS_RSAE_SHA256"
    custom = replace(ske, dh_p=big((1 << 1023) + 1155))
    assert "DHE p=1024 bits" in summarize(custom)
    anonymous = replace(ske, algorithm=None, signature=b"")
    assert summarize(anonymous).endswith("unsigned")


def test_client_key_exchange_shows_what_crossed_the_wire() -> None:
    assert summarize(ClientKeyExchangeECDHE(b"\x01" * 32)) == "ClientKeyExchange ECDHE public=32B"
    assert summarize(ClientKeyExchangeDHE(b"\x02" * 256)) == "ClientKeyExchange DHE Yc=256B"
    assert summarize(ClientKeyExchangeRSA(b"\x03" * 256)) == (
        "ClientKeyExchange RSA encrypted_pre_master_secret=256B")


def test_certificate12_chain_length_and_leaf_key(certs: dict[str, CertFiles],
                                                 devca: DevCA) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    ca_der = devca.certificate.public_bytes(Encoding.DER)
    rsa = Certificate12((der(certs["rsa-2048"]), ca_der))
    assert summarize(rsa) == "Certificate chain=2 leaf=RSA-2048"
    ecdsa = Certificate12((der(certs["ecdsa-p256"]),))
    assert summarize(ecdsa) == "Certificate chain=1 leaf=ECDSA-secp256r1"
    assert summarize(Certificate12((b"not a certificate",))) == "Certificate chain=1"
    assert summarize(Certificate12(())) == "Certificate chain=0"


def test_certificate_request_server_hello_done_hello_request() -> None:
    req = CertificateRequest12(
        (ClientCertificateType.RSA_SIGN, ClientCertificateType.ECDSA_SIGN),
        (SignatureScheme.RSA_PSS_RSAE_SHA256, SignatureScheme.ECDSA_SECP256R1_SHA256),
        (b"0\x00",))
    assert summarize(req) == ("CertificateRequest types=RSA_SIGN,ECDSA_SIGN "
                              "2 signature algorithms 1 CA name(s)")
    assert summarize(ServerHelloDone()) == "ServerHelloDone"
    assert summarize(HelloRequest()).startswith("HelloRequest (the server asks to renegotiate")


def test_change_cipher_spec_says_what_it_means_in_each_version() -> None:
    assert summarize(None, "ChangeCipherSpec") == "ChangeCipherSpec"
    assert "new keys" in summarize(None, "ChangeCipherSpec", version=TLS12)
    assert "compatibility" in summarize(None, "ChangeCipherSpec",
                                        version=ProtocolVersion.TLS13)


# ------------------------------------------------------------------------------ the ladder
class MarkupConsole:
    """Collects what render_ladder prints as plain text, and (``styled``) with ANSI
    colours, at 120 columns."""

    def __init__(self) -> None:
        self.plain = io.StringIO()
        self.coloured = io.StringIO()
        self.width = 120

    def print(self, *objects: object, **kw: object) -> None:
        Console(file=self.plain, width=120, color_system=None).print(*objects, **kw)
        Console(file=self.coloured, width=120, force_terminal=True,
                color_system="standard").print(*objects, **kw)

    @property
    def text(self) -> str:
        return self.plain.getvalue()

    @property
    def styled(self) -> str:
        return self.coloured.getvalue()


def message(direction: str, name: str, msg: object, epoch: Epoch) -> MessageTrace:
    return MessageTrace(direction, name, msg, 6, epoch, 0.0)  # type: ignore[arg-type]


def collector(*records: object) -> TraceCollector:
    c = TraceCollector()
    for r in records:
        c(r)  # type: ignore[arg-type]
    return c


def test_ladder_locks_follow_the_epoch_but_never_a_change_cipher_spec() -> None:
    trace = collector(
        message("sent", "ServerHelloDone", ServerHelloDone(), Epoch.PLAINTEXT),
        # TLS 1.2: CCS goes out in clear, the Finished after it under the new keys.
        message("sent", "ChangeCipherSpec", None, Epoch.PLAINTEXT),
        message("sent", "Finished", Finished(b"\x01" * 12), Epoch.APPLICATION),
        # A TLS 1.3 compatibility CCS arrives while the read side is already encrypted.
        message("received", "ChangeCipherSpec", None, Epoch.HANDSHAKE),
    )
    out = MarkupConsole()
    render_ladder(trace, out)
    assert "🔒 Finished verify_data=010101" in out.text
    assert "🔒 ChangeCipherSpec" not in out.text
    assert out.text.count("ChangeCipherSpec (what follows uses the new keys)") == 2
    assert "🔒 ServerHelloDone" not in out.text


def test_ladder_warning_and_fatal_alerts_stand_out() -> None:
    trace = collector(
        message("sent", "Alert", (AlertLevel.WARNING, AlertDescription.NO_RENEGOTIATION),
                Epoch.APPLICATION),
        message("received", "Alert", (AlertLevel.FATAL, AlertDescription.HANDSHAKE_FAILURE),
                Epoch.PLAINTEXT),
        message("sent", "Alert", (AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY),
                Epoch.APPLICATION),
    )
    out = MarkupConsole()
    render_ladder(trace, out)
    assert "\x1b[33m⚠ 🔒 Alert WARNING NO_RENEGOTIATION" in out.styled  # yellow
    assert "\x1b[1;31m✗ Alert FATAL HANDSHAKE_FAILURE" in out.styled  # bold red
    assert "  🔒 Alert WARNING CLOSE_NOTIFY" in out.text  # a clean close is no warning
    assert "\x1b[33m🔒 Alert WARNING CLOSE_NOTIFY" not in out.styled


def test_secret_values_only_with_show_secrets() -> None:
    secret = SecretTrace("master_secret", bytes(range(48)), b"\x00" * 32, "CLIENT_RANDOM", 0.0)
    hidden, shown = MarkupConsole(), MarkupConsole()
    render_ladder(collector(secret), hidden)
    render_ladder(collector(secret), shown, show_secrets=True)
    assert "master_secret" in hidden.text and "(48 bytes)" in hidden.text
    assert bytes(range(48)).hex() not in hidden.text
    assert "master_secret =" in shown.text and bytes(range(48)).hex() in shown.text
    item = records_to_json(collector(secret))[0]
    assert item["length"] == 48 and "value" not in item
    assert records_to_json(collector(secret), include_secrets=True)[0]["value"] == (
        bytes(range(48)).hex())


# ------------------------------------------------------------- a real in-memory handshake
def test_tls12_handshake_ladder_end_to_end(certs: dict[str, CertFiles]) -> None:
    client_cfg, server_cfg = configs(
        certs["rsa-2048"], min_version=TLS12, max_version=TLS12,
        cipher_suites=(CipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,))
    trace = TraceCollector()
    client = TLSConnection(replace(client_cfg, observer=trace))
    server = TLSConnection(server_cfg)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    # The server asks to renegotiate (there is no public API for it): the client answers
    # with a no_renegotiation warning, which must not end the connection.
    hello_request = HelloRequest()
    server._io.send_handshake(hello_request, hello_request.serialize())
    _, server_events = pump(client, server)
    assert WarningAlert(AlertDescription.NO_RENEGOTIATION) in server_events
    assert negotiated_version(trace.records) == TLS12

    buffer = io.StringIO()
    render_ladder(trace, Console(file=buffer, width=200, color_system=None))
    text = buffer.getvalue()
    order = ["ClientHello", "ServerHello TLSv1.2 TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 EMS",
             "Certificate chain=", "ServerKeyExchange DHE FFDHE2048 Ys=256B sig=",
             "ServerHelloDone", "ClientKeyExchange DHE Yc=", "ChangeCipherSpec (what",
             "🔒 Finished", "ChangeCipherSpec (what", "🔒 Finished",
             "🔒 HelloRequest", "⚠ 🔒 Alert WARNING NO_RENEGOTIATION"]
    pos = 0
    for needle in order:
        found = text.find(needle, pos)
        assert found >= 0, f"{needle!r} missing after offset {pos}:\n{text}"
        pos = found + len(needle)
    assert "🔒 ChangeCipherSpec" not in text
    assert not re.search(r"[0-9a-f]{64}", text), "a secret leaked without show_secrets"
    summaries = [r["summary"] for r in records_to_json(trace) if r["kind"] == "message"]
    assert "ServerHelloDone" in summaries
    names = [r["name"] for r in records_to_json(trace) if r["kind"] == "message"]
    assert "ServerKeyExchangeDHE" in names  # JSON keeps tlsmith's class names
