"""Trust on the command line: the system store (and its certifi fallback), --cafile,
--capath, --strict and --insecure (issue 13, items 2 and 4).

The certificate most people test with -- ``openssl req -x509 ... -subj /CN=localhost
-addext subjectAltName=DNS:localhost`` (self-signed, CA:TRUE) -- trusted with --cafile
connects to openssl s_server, to a tlsmith server and (with trustme and NSS) to the
certificates other tools make, as Python's ssl and curl do.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gallery import _ca, _leaf
from helpers import CertFiles, free_port, require_netns, require_peer
from peers import (
    IO_TIMEOUT,
    PeerProcess,
    port_accepts,
    python_ssl_server,
    run_process_group,
    start_s_server,
    tlsmith_server,
    wait_until,
)
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.errors import UsageError
from tlsmith.x509 import verify as verify_module
from tlsmith.x509.verify import TrustStore

TIMEOUT = 30
NETNS_TIMEOUT = 60.0


def tlsmith(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlsmith.cli.main", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          env=env if env is not None else dict(os.environ))


def server_config(chain: Path, key: Path) -> ServerConfig:
    return ServerConfig(certificates=(CertifiedKey.from_files(chain, key),))


def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# ============================================================ the usual self-signed cert
@pytest.fixture(scope="module")
def openssl_self_signed(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """``openssl req -x509 -newkey ec ... -subj /CN=localhost -addext
    subjectAltName=DNS:localhost``: self-signed, basicConstraints CA:TRUE."""
    binary = require_peer("openssl")
    directory = tmp_path_factory.mktemp("self-signed")
    cert, key = directory / "localhost.pem", directory / "localhost.key"
    subprocess.run([binary, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "30", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=TIMEOUT)
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    assert parsed.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    return CertFiles(key_type="ecdsa-p256", cert_path=cert, key_path=key, chain_path=cert,
                     ca_path=cert)


@pytest.fixture(scope="module")
def hashed_dir(openssl_self_signed: CertFiles,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --capath directory holding the self-signed certificate under its OpenSSL hashed
    name (as ``openssl rehash`` names it)."""
    binary = require_peer("openssl")
    directory = tmp_path_factory.mktemp("capath")
    subject_hash = subprocess.run(
        [binary, "x509", "-noout", "-hash", "-in", str(openssl_self_signed.cert_path)],
        check=True, capture_output=True, text=True, timeout=TIMEOUT).stdout.strip()
    (directory / f"{subject_hash}.0").write_bytes(openssl_self_signed.cert_path.read_bytes())
    return directory


@pytest.mark.interop
@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_self_signed_cafile_against_openssl_s_server(
        openssl_self_signed: CertFiles, tmp_path: Path, version: str) -> None:
    curl = require_peer("curl")
    cert = openssl_self_signed
    with start_s_server(cert, version, "-www", log_dir=tmp_path, tls13_only=False) as server:
        ours = tlsmith("connect", f"localhost:{server.port}", "--cafile", str(cert.cert_path),
                       "--json")
        theirs = subprocess.run([curl, "-sS", "--cacert", str(cert.cert_path),
                                 "--resolve", f"localhost:{server.port}:127.0.0.1",
                                 "-o", "/dev/null", "-w", "%{http_code}",
                                 f"https://localhost:{server.port}/"],
                                capture_output=True, text=True, timeout=TIMEOUT)
        ctx = ssl.create_default_context(cafile=str(cert.cert_path))
        with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            python_version = tls.version()
    assert ours.returncode == 0, ours.stderr + ours.stdout
    out = json.loads(ours.stdout)
    assert out["ok"] is True and out["certificate_verified"] is True
    assert out["version"] == ("TLSv1.3" if version == "-tls1_3" else "TLSv1.2")
    assert theirs.returncode == 0 and theirs.stdout == "200", theirs.stderr
    assert python_version == out["version"]


def test_self_signed_cafile_and_capath_against_tlsmith_server(
        openssl_self_signed: CertFiles, hashed_dir: Path, tmp_path: Path) -> None:
    cert = openssl_self_signed
    other = tmp_path / "other-ca.pem"
    other.write_bytes(pem(_ca("Some Other Root", datetime.now(UTC)).certificate))
    with tlsmith_server(server_config(cert.cert_path, cert.key_path)) as srv:
        by_file = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(cert.cert_path))
        by_dir = tlsmith("connect", f"localhost:{srv.port}", "--capath", str(hashed_dir))
        both = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(other),
                       "--capath", str(hashed_dir), "--json")
        neither = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(other))
    for result in (by_file, by_dir, both):
        assert result.returncode == 0, result.stderr + result.stdout
    assert "verified" in by_file.stdout and "verified" in by_dir.stdout
    assert json.loads(both.stdout)["certificate_verified"] is True
    assert neither.returncode == 1
    assert "self_signed" in neither.stderr or "self-signed" in neither.stderr


def test_capath_without_certificates_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not a certificate\n")
    result = tlsmith("connect", f"localhost:{free_port()}", "--capath", str(tmp_path))
    assert result.returncode == 2
    assert "no certificates in" in result.stderr and "Traceback" not in result.stderr


# ============================================================ TrustStore: system, capath
def _some_certs(count: int) -> list[x509.Certificate]:
    now = datetime.now(UTC)
    return [_ca(f"Store Root {i}", now).certificate for i in range(count)]


def test_from_directory_reads_pem_der_and_hashed_names(tmp_path: Path) -> None:
    one, two, three, four = _some_certs(4)
    (tmp_path / "one.pem").write_bytes(pem(one))
    (tmp_path / "two.crt").write_bytes(two.public_bytes(serialization.Encoding.DER))
    (tmp_path / "1a2b3c4d.0").write_bytes(pem(three))
    (tmp_path / "1a2b3c4d.1").write_bytes(pem(four))
    (tmp_path / "5e6f7a8b.0").symlink_to(tmp_path / "one.pem")  # counted once
    (tmp_path / "key.pem").write_bytes(write_key(ec.generate_private_key(ec.SECP256R1()),
                                                 tmp_path / "k").read_bytes())
    (tmp_path / "notes.txt").write_bytes(pem(four))  # not a CA file name: ignored
    (tmp_path / "sub.pem").mkdir()
    store = TrustStore.from_directory(tmp_path)
    assert len(store) == 4
    assert set(store.certificates) == {one, two, three, four}
    assert store.source == str(tmp_path)


def test_from_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no certificates in .*openssl rehash"):
        TrustStore.from_directory(tmp_path)
    with pytest.raises(UsageError, match="cannot read the CA directory"):
        TrustStore.from_directory(tmp_path / "missing")
    (tmp_path / "bad.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                       b"-----END CERTIFICATE-----\n")
    with pytest.raises(UsageError, match="cannot be read"):
        TrustStore.from_directory(tmp_path)


def test_combine_keeps_each_anchor_once() -> None:
    one, two = _some_certs(2)
    combined = TrustStore.combine(TrustStore.from_certificates([one]),
                                  TrustStore(certificates=[one, two], source="dir"))
    assert combined.certificates == (one, two)
    assert combined.source == "the certificates given and dir"


@dataclass
class NoSystemStore:
    """System() looks only at this empty directory (see ``no_system_store``)."""

    empty: Path


@pytest.fixture
def no_system_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> NoSystemStore:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    paths = ssl.DefaultVerifyPaths(None, None, "SSL_CERT_FILE", str(empty / "cert.pem"),
                                   "SSL_CERT_DIR", str(empty))
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths)
    monkeypatch.setattr(verify_module, "SYSTEM_BUNDLE_PATHS",
                        (str(empty / "ca-certificates.crt"), str(empty / "cert.pem")))
    return NoSystemStore(empty)


def test_system_falls_back_to_certifi(no_system_store: NoSystemStore) -> None:
    import certifi

    store = TrustStore.system()
    assert store.source == certifi.where()
    assert len(store) > 50
    assert TrustStore.system() is store  # parsed once


def test_system_without_any_store_says_what_to_do(no_system_store: NoSystemStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import certifi

    monkeypatch.setattr(certifi, "where", lambda: str(no_system_store.empty / "cacert.pem"))
    with pytest.raises(UsageError, match=r"no system CA bundle.*certifi.*--cafile"):
        TrustStore.system()


def test_system_honours_ssl_cert_file_then_ssl_cert_dir(
        no_system_store: NoSystemStore, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    one, two = _some_certs(2)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(one))
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "abcdef01.0").write_bytes(pem(two))
    monkeypatch.setenv("SSL_CERT_DIR", f"{no_system_store.empty}{os.pathsep}{directory}")
    assert TrustStore.system().certificates == (two,)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert TrustStore.system().certificates == (one,)
    # A variable pointing nowhere is passed over, as OpenSSL does.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.delenv("SSL_CERT_DIR")
    assert TrustStore.system().source.endswith("cacert.pem")  # certifi


def test_system_uses_the_default_verify_paths(monkeypatch: pytest.MonkeyPatch,
                                              no_system_store: NoSystemStore,
                                              tmp_path: Path) -> None:
    (one,) = _some_certs(1)
    bundle = tmp_path / "openssl-default.pem"
    bundle.write_bytes(pem(one))
    paths = ssl.DefaultVerifyPaths(str(bundle), None, "SSL_CERT_FILE", str(bundle),
                                   "SSL_CERT_DIR", str(no_system_store.empty))
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths)
    assert TrustStore.system().source == str(bundle)


def test_connect_uses_certifi_when_the_system_has_no_store(
        no_system_store: NoSystemStore, openssl_self_signed: CertFiles) -> None:
    """The CLI end to end (in process, so the system store can be taken away): with no
    bundle anywhere but certifi's, a self-signed server is refused as self-signed against
    certifi's roots, not with a usage error about a missing store."""
    import certifi
    from click.testing import CliRunner

    from tlsmith.cli.main import main

    cert = openssl_self_signed
    with tlsmith_server(server_config(cert.cert_path, cert.key_path)) as srv:
        result = CliRunner().invoke(main, ["connect", f"localhost:{srv.port}", "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["reason"] == "self_signed"
    assert certifi.where() in out["explanation"]


# ============================================================ --strict
@pytest.fixture(scope="module")
def critical_san(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A leaf with a critical subjectAltName and a non-empty subject (as trustme makes
    them): OpenSSL and browsers accept it, the CA/B profile does not (RFC 5280
    §4.2.1.6 says critical only when the subject is empty)."""
    directory = tmp_path_factory.mktemp("critical-san")
    now = datetime.now(UTC)
    root = _ca("Strict Root", now)
    mid = _ca("Strict Mid", now, root)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf(mid, ["localhost"], now, key=key, san_critical=True)
    chain = directory / "chain.pem"
    chain.write_bytes(pem(leaf, mid.certificate))
    ca = directory / "root.pem"
    ca.write_bytes(pem(root.certificate))
    return CertFiles(key_type="ecdsa-p256", cert_path=chain, chain_path=chain,
                     key_path=write_key(key, directory / "leaf.key"), ca_path=ca)


def test_strict_refuses_critical_san_and_names_the_rule(critical_san: CertFiles) -> None:
    cert = critical_san
    with tlsmith_server(server_config(cert.chain_path, cert.key_path)) as srv:
        default = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(cert.ca_path))
        strict = tlsmith("connect", f"localhost:{srv.port}", "--cafile", str(cert.ca_path),
                         "--strict")
        strict_json = tlsmith("connect", f"localhost:{srv.port}", "--cafile",
                              str(cert.ca_path), "--strict", "--json")
    assert default.returncode == 0, default.stderr
    assert strict.returncode == 1, strict.stdout
    assert "Traceback" not in strict.stderr
    assert "subjectAltName must not be critical" in strict.stderr
    assert "RFC 5280 §4.2.1.6" in strict.stderr
    out = json.loads(strict_json.stdout)
    assert strict_json.returncode == 1 and out["ok"] is False
    assert out["reason"] == "policy"
    assert "subjectAltName must not be critical" in out["explanation"]
    assert out["peer_chain"][0]["subject"] == "CN=localhost"


# ============================================================ --insecure
def test_insecure_says_verification_would_have_failed(openssl_self_signed: CertFiles,
                                                      tmp_path: Path) -> None:
    cert = openssl_self_signed
    other = tmp_path / "other-ca.pem"
    other.write_bytes(pem(_ca("Some Other Root", datetime.now(UTC)).certificate))
    with tlsmith_server(server_config(cert.cert_path, cert.key_path)) as srv:
        text = tlsmith("connect", f"localhost:{srv.port}", "--insecure", "--cafile", str(other))
        as_json = tlsmith("connect", f"localhost:{srv.port}", "--insecure", "--cafile",
                          str(other), "--json")
    assert text.returncode == 0, text.stderr
    first = text.stderr.lstrip().splitlines()[0]
    assert first.startswith("warning: --insecure: the certificate was NOT verified. "
                            "Verification would have failed:"), text.stderr
    assert "self-signed" in text.stderr and "reason: self_signed" in text.stderr
    assert "NOT verified (--insecure)" in text.stdout
    assert as_json.returncode == 0, as_json.stderr
    out = json.loads(as_json.stdout)
    assert out["ok"] is True and out["certificate_verified"] is False
    skipped = out["verification_skipped"]
    assert skipped["would_have"] == "failed"
    assert "self_signed" in skipped["explanation"]
    assert "would have failed" in as_json.stderr


def test_insecure_says_verification_would_have_succeeded(
        openssl_self_signed: CertFiles) -> None:
    cert = openssl_self_signed
    with tlsmith_server(server_config(cert.cert_path, cert.key_path)) as srv:
        text = tlsmith("connect", f"localhost:{srv.port}", "--insecure", "--cafile",
                       str(cert.cert_path))
        as_json = tlsmith("connect", f"localhost:{srv.port}", "--insecure", "--cafile",
                          str(cert.cert_path), "--json")
    assert text.returncode == 0, text.stderr
    assert text.stderr.lstrip().startswith(
        "warning: --insecure: the certificate was NOT verified. Verification would have "
        "succeeded:"), text.stderr
    out = json.loads(as_json.stdout)
    assert out["verification_skipped"]["would_have"] == "passed"
    assert str(cert.cert_path) in out["verification_skipped"]["explanation"]


def test_insecure_preview_applies_strict(critical_san: CertFiles) -> None:
    cert = critical_san
    with tlsmith_server(server_config(cert.chain_path, cert.key_path)) as srv:
        result = tlsmith("connect", f"localhost:{srv.port}", "--insecure", "--strict",
                         "--cafile", str(cert.ca_path), "--json")
    assert result.returncode == 0, result.stderr
    skipped = json.loads(result.stdout)["verification_skipped"]
    assert skipped["would_have"] == "failed"
    assert "subjectAltName must not be critical" in skipped["explanation"]


# ============================================================ trustme
TRUSTME_EKU = "extendedKeyUsage: Certificate extension has incorrect criticality"


def test_trustme_certificate_served_by_python_ssl(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    chain_path = tmp_path / "chain.pem"
    chain_path.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key_path = tmp_path / "key.pem"
    issued.private_key_pem.write_to_path(str(key_path))
    files = CertFiles(key_type="trustme", cert_path=chain_path, key_path=key_path,
                      chain_path=chain_path, ca_path=ca_path)
    for low, high, label in ((ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
                             (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        with python_ssl_server(files, minimum_version=low, maximum_version=high) as (port, _):
            result = tlsmith("connect", f"localhost:{port}", "--cafile", str(ca_path),
                             "--json")
        if result.returncode and TRUSTME_EKU in result.stdout:
            # trustme marks the leaf's extendedKeyUsage critical; RFC 5280 §4.2.1.12
            # allows either, OpenSSL, curl and browsers accept it.
            pytest.xfail("the default extension policy (verify._lenient_policies) still "
                         "refuses a critical extendedKeyUsage")
        assert result.returncode == 0, result.stderr + result.stdout
        out = json.loads(result.stdout)
        assert out["version"] == label and out["certificate_verified"] is True


# ============================================================ NSS certutil + selfserv
@pytest.fixture(scope="module")
def netns() -> None:
    """selfserv binds every interface: it may only run in a private network namespace."""
    require_peer("selfserv")
    require_peer("certutil")
    require_netns()


def make_nss_self_signed(db: Path) -> Path:
    """``certutil -S -x``: NSS's self-signed server certificate (no
    authorityKeyIdentifier); returns its PEM export."""
    certutil = require_peer("certutil")
    db.mkdir()
    (db / "noise").write_bytes(os.urandom(64))

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([certutil, *args], check=True, capture_output=True,
                              timeout=TIMEOUT)

    run("-N", "-d", f"sql:{db}", "--empty-password")
    run("-S", "-x", "-n", "server", "-s", "CN=localhost", "-t", "CT,,", "-k", "ec", "-q",
        "nistp256", "-8", "localhost", "-v", "1", "-z", str(db / "noise"), "-d", f"sql:{db}")
    der = run("-L", "-n", "server", "-r", "-d", f"sql:{db}").stdout
    cert = x509.load_der_x509_certificate(der)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    path = db.parent / "nss-server.pem"
    path.write_bytes(pem(cert))
    return path


def netns_main(params: dict[str, str]) -> int:
    """Inside ``unshare -n``: bring lo up, start selfserv, run one ``tlsmith connect``,
    print its result as one JSON line."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    port = free_port()
    log = Path(params["log"])
    serv = PeerProcess([params["selfserv"], "-d", f"sql:{params['db']}", "-n", "server",
                        "-p", str(port), "-V", "tls1.2:tls1.3", "-H", "1"], log, port=port)
    try:
        if not wait_until(lambda: port_accepts(port), 10.0):
            print(json.dumps({"error": "selfserv did not start", "log": serv.output()}))
            return 0
        done = subprocess.run([sys.executable, "-m", "tlsmith.cli.main", "connect",
                               f"localhost:{port}", "--cafile", params["ca"], "--json",
                               "--timeout", "10"],
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
        print(json.dumps({"returncode": done.returncode, "stdout": done.stdout,
                          "stderr": done.stderr, "log": serv.output()}))
    finally:
        serv.stop()
    return 0


def test_nss_self_signed_served_by_selfserv(netns: None, tmp_path: Path) -> None:
    ca = make_nss_self_signed(tmp_path / "nssdb")
    params = {"selfserv": require_peer("selfserv"), "db": str(tmp_path / "nssdb"),
              "ca": str(ca), "log": str(tmp_path / "selfserv.log")}
    done = run_process_group([require_peer("unshare"), "-n", sys.executable,
                              str(Path(__file__).resolve()), "--netns-client",
                              json.dumps(params)],
                             timeout=NETNS_TIMEOUT, what="the namespace script")
    assert done.returncode == 0 and done.stdout.strip(), done.text
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    assert "returncode" in raw, raw
    assert raw["returncode"] == 0, raw["stderr"] + raw["stdout"] + raw["log"][-2000:]
    out = json.loads(raw["stdout"])
    assert out["ok"] is True and out["certificate_verified"] is True


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--netns-client":
    sys.exit(netns_main(json.loads(sys.argv[2])))
