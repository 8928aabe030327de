"""TLS 1.3 post-handshake client authentication (RFC 8446 §4.6.2), both roles.

A client that offered post_handshake_auth (RFC 8446 §4.2.6) may, at any time after the
handshake, receive a CertificateRequest with a non-empty certificate_request_context. It
answers at once with Certificate (echoing the context), CertificateVerify (if it sent a
certificate) and Finished. The server's side runs inside ``Connected13`` (application
data and KeyUpdate keep flowing) as one small state per expected message:

    request_client_certificate(): CertificateRequest
      ─► ExpectPhaCertificate ─(non-empty)─► ExpectPhaCertificateVerify ─► ExpectPhaFinished
                              └─(empty)──────────────────────────────────► ExpectPhaFinished
      ─► ClientCertificateReceived(chain, verified), back to plain Connected13

Every exchange hashes the handshake transcript through the client Finished followed by
its own messages (RFC 8446 §4.4.1: "the handshake messages through the client Finished",
then the CertificateRequest), never an earlier exchange's; the Finished key comes from
the client's current application traffic secret (§4.4: client_application_traffic_secret_N).

An empty client Certificate is reported as ``ClientCertificateReceived((), False)``, even
with ``client_auth="require"``: the handshake is over, so the application decides what
to do with an anonymous client (RFC 8446 §4.4.2.4's certificate_required is about the
handshake). A chain that does not verify is fatal, as in the handshake (bad_certificate,
unknown_ca, ...), and so is a bad CertificateVerify or Finished (decrypt_error).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, cast

from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import HandshakeType
from tlsmith.codec.extensions_base import ExtensionContext
from tlsmith.codec.messages import Certificate, CertificateRequest, CertificateVerify, Finished
from tlsmith.crypto import sig
from tlsmith.errors import IllegalParameter, MissingExtension, UsageError
from tlsmith.events import ClientCertificateReceived
from tlsmith.handshake.base import ClientIO, HandshakeIO, ServerIO, check_server_extensions
from tlsmith.handshake.proofs import ChainAccepted, accept_client_chain, verify_signature

if TYPE_CHECKING:
    from tlsmith.crypto.suites import SuiteInfo
    from tlsmith.crypto.transcript import Transcript
    from tlsmith.handshake.common13 import TrafficSecrets

#: Bytes of fresh randomness in each post-handshake certificate_request_context.
CONTEXT_LENGTH = 16


# -- client ----------------------------------------------------------------------------
def answer_certificate_request(io: HandshakeIO, secrets: TrafficSecrets,
                               handshake_transcript: Transcript, body: memoryview,
                               raw: bytes) -> None:
    """RFC 8446 §4.6.2: answer a post-handshake CertificateRequest with Certificate,
    CertificateVerify (if we have a certificate whose key fits the request's
    signature_algorithms) and Finished, all at once."""
    from tlsmith.handshake.client13 import send_client_certificate

    cio = cast("ClientIO", io)
    req = CertificateRequest.parse_body(body)
    io.received(req, raw)
    check_server_extensions(req.extensions, ExtensionContext.CERTIFICATE_REQUEST,
                            frozenset())
    if ext.find_extension(req.extensions, ext.SignatureAlgorithms) is None:
        # RFC 8446 §4.3.2: signature_algorithms MUST be specified.
        raise MissingExtension("CertificateRequest without signature_algorithms")
    transcript = handshake_transcript.copy()
    transcript.update(raw)
    # (Post-handshake authentication sends X.509 only: tlsmith keeps no RFC 7250
    # client type past the handshake.)
    sent = send_client_certificate(cio, transcript, req)
    fin = Finished(_verify_data(secrets.suite, secrets.write_secret, transcript))
    io.send_handshake(fin, fin.serialize())
    io.note("post-handshake authentication: "
            + ("sent our certificate" if sent else "sent an empty Certificate"))


# -- server ----------------------------------------------------------------------------
def send_certificate_request(io: ServerIO, suite: SuiteInfo,
                             handshake_transcript: Transcript) -> PhaStep:
    """Send a CertificateRequest with a fresh context; the first waiting state."""
    from tlsmith.handshake.server13 import certificate_request

    if io.config.client_trust is None and io.config.verify_callback is None:
        raise UsageError("requesting a client certificate needs ServerConfig.client_trust "
                         "(the CAs client certificates must chain to) or a verify_callback")
    context = io.random(CONTEXT_LENGTH)
    req = replace(certificate_request(io.config), certificate_request_context=context)
    raw = req.serialize()
    io.send_handshake(req, raw)
    transcript = handshake_transcript.copy()
    transcript.update(raw)
    io.note("asking the client for a certificate after the handshake (RFC 8446 §4.6.2)")
    return ExpectPhaCertificate(context, transcript)


class PhaStep:
    """One state of the server's post-handshake authentication exchange. ``handle``
    returns the next one, or None when the exchange is over."""

    expects: frozenset[HandshakeType] = frozenset()

    def __init__(self, context: bytes, transcript: Transcript) -> None:
        self.context = context
        self.transcript = transcript

    def handle(self, io: HandshakeIO, secrets: TrafficSecrets, msg_type: HandshakeType,
               body: memoryview, raw: bytes) -> PhaStep | None:
        raise NotImplementedError


class ExpectPhaCertificate(PhaStep):
    expects = frozenset({HandshakeType.CERTIFICATE})

    def handle(self, io: HandshakeIO, secrets: TrafficSecrets, msg_type: HandshakeType,
               body: memoryview, raw: bytes) -> PhaStep | None:
        cert = Certificate.parse_body(body)
        io.received(cert, raw)
        if cert.certificate_request_context != self.context:
            # RFC 8446 §4.4.2: the context of the CertificateRequest being answered.
            raise IllegalParameter("the client's Certificate does not echo our "
                                   "certificate_request_context")
        self.transcript.update(raw)
        chain = tuple(e.cert_data for e in cert.certificate_list)
        if not chain:
            io.check("client certificate (post-handshake)", False, "the client sent none")
            return ExpectPhaFinished(self.context, self.transcript, None)
        accepted = accept_client_chain(cast("ServerIO", io), chain)
        return ExpectPhaCertificateVerify(self.context, self.transcript, accepted)


class ExpectPhaCertificateVerify(PhaStep):
    expects = frozenset({HandshakeType.CERTIFICATE_VERIFY})

    def __init__(self, context: bytes, transcript: Transcript, chain: ChainAccepted
                 ) -> None:
        super().__init__(context, transcript)
        self.chain = chain

    def handle(self, io: HandshakeIO, secrets: TrafficSecrets, msg_type: HandshakeType,
               body: memoryview, raw: bytes) -> PhaStep | None:
        cv = CertificateVerify.parse_body(body)
        io.received(cv, raw)
        sio = cast("ServerIO", io)
        content = sig.certificate_verify_content(self.transcript.digest(), server=False)
        verify_signature(io, self.chain, cv.algorithm, sio.config.signature_schemes,
                         content, cv.signature, tls13=True,
                         what="client CertificateVerify (post-handshake)", signer="client")
        self.transcript.update(raw)
        return ExpectPhaFinished(self.context, self.transcript, self.chain)


class ExpectPhaFinished(PhaStep):
    expects = frozenset({HandshakeType.FINISHED})

    def __init__(self, context: bytes, transcript: Transcript, chain: ChainAccepted | None
                 ) -> None:
        super().__init__(context, transcript)
        self.chain = chain  # None: the client sent an empty Certificate

    def handle(self, io: HandshakeIO, secrets: TrafficSecrets, msg_type: HandshakeType,
               body: memoryview, raw: bytes) -> PhaStep | None:
        from tlsmith.handshake.common13 import verify_finished

        fin = Finished.parse_body(body)
        io.received(fin, raw)
        # RFC 8446 §4.4: Base Key = client_application_traffic_secret_N (current).
        verify_finished(io, secrets.suite, secrets.read_secret, self.transcript.digest(),
                        fin, "client (post-handshake)")
        chain = self.chain
        io.emit(ClientCertificateReceived(
            chain=chain.chain if chain is not None else (),
            verified=chain is not None and chain.trusted))
        return None


def _verify_data(suite: SuiteInfo, base_key: bytes, transcript: Transcript) -> bytes:
    from tlsmith.crypto import schedule13

    return schedule13.finished_verify_data(suite.hash_name, base_key, transcript.digest())
