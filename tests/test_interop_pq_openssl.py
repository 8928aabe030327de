"""Pure ML-KEM and ML-DSA against OpenSSL >= 3.5 (``openssl s_server`` / ``s_client``):
MLKEM1024 (draft-ietf-tls-mlkem) and an ML-DSA certificate (draft-ietf-tls-mldsa), both
ways. Skipped where the installed OpenSSL has neither (3.0 has no ML-KEM or ML-DSA)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

from helpers import CertFiles, require_peer
from peers import run_s_client, start_s_server, tlsmith_server
from tlsmith.codec.enums import NamedGroup, SignatureScheme
from tlsmith.config import CertifiedKey, ClientConfig, ServerConfig
from tlsmith.io.blocking import connect
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]
TIMEOUT = 10.0


@functools.cache
def _openssl_has_pq() -> bool:
    try:
        binary = require_peer("openssl")
    except BaseException:  # skipped (or failed in CI) by require_peer: not there at all
        return False
    out = subprocess.run([binary, "list", "-kem-algorithms", "-signature-algorithms"],
                         capture_output=True, text=True, timeout=30, check=False).stdout
    return "ML-KEM-1024" in out and "ML-DSA-65" in out


@pytest.fixture(scope="module")
def mldsa_cert(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    if not _openssl_has_pq():
        pytest.skip("the installed OpenSSL has no ML-KEM/ML-DSA (needs 3.5 or later)")
    directory = tmp_path_factory.mktemp("mldsa")
    ca = DevCA.create("tlsmith PQ test CA")
    issued = ca.issue(key_type="mldsa-65").write(directory, "localhost-mldsa65")
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.ca_pem)
    assert issued.cert_path and issued.key_path and issued.chain_path
    return CertFiles(key_type="mldsa-65", cert_path=Path(issued.cert_path),
                     key_path=Path(issued.key_path), chain_path=Path(issued.chain_path),
                     ca_path=ca_path)


@pytest.mark.parametrize("group", [NamedGroup.MLKEM1024, NamedGroup.MLKEM768,
                                   NamedGroup.SECP384R1MLKEM1024])
def test_our_client_against_s_server(mldsa_cert: CertFiles, tmp_path: Path,
                                     group: NamedGroup) -> None:
    names = {NamedGroup.MLKEM1024: "MLKEM1024", NamedGroup.MLKEM768: "MLKEM768",
             NamedGroup.SECP384R1MLKEM1024: "SecP384r1MLKEM1024"}
    server = start_s_server(mldsa_cert, "-groups", names[group], "-www", log_dir=tmp_path)
    try:
        config = ClientConfig(server_name="localhost",
                              trust=TrustStore.from_pem_file(mldsa_cert.ca_path),
                              groups=(group,), key_share_groups=(group,),
                              # ECDSA too: the (ECDSA) CA's signature on the leaf.
                              signature_schemes=(SignatureScheme.MLDSA65,
                                                 SignatureScheme.ECDSA_SECP256R1_SHA256),
                              request_ocsp=False)
        tls = connect("127.0.0.1", server.port, config, timeout=TIMEOUT)
        try:
            assert tls.info.group == group
            assert tls.info.signature_scheme == SignatureScheme.MLDSA65
            assert tls.info.certificate_verified
            tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert b"HTTP/1.0 200" in tls.recv(4096)
        finally:
            tls.close()
    finally:
        server.stop()


def test_s_client_against_our_server(mldsa_cert: CertFiles) -> None:
    config = ServerConfig(
        certificates=(CertifiedKey.from_files(mldsa_cert.chain_path, mldsa_cert.key_path),),
        groups=(NamedGroup.MLKEM1024,),
        signature_schemes=(SignatureScheme.MLDSA65,))
    with tlsmith_server(config, "http") as handle:
        result = run_s_client(handle.port, "-tls1_3", "-groups", "MLKEM1024",
                              "-CAfile", str(mldsa_cert.ca_path), "-verify_return_error",
                              "-servername", "localhost", "-brief",
                              stdin=b"GET / HTTP/1.0\r\n\r\n", timeout=TIMEOUT)
        served = handle.wait_served(0)
    assert served.error is None, served.error
    assert served.info is not None and served.info.group == NamedGroup.MLKEM1024
    # Our http handler's info line, and s_client's verdict on the ML-DSA chain.
    assert "group=MLKEM1024 sig=MLDSA65" in result.text, result.text
    assert "Verification: OK" in result.text, result.text
