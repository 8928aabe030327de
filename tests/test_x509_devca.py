"""The development CA: its certificates satisfy cryptography, OpenSSL and Python's ssl."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from helpers import CertFiles, free_port
from tlsmith.errors import UsageError
from tlsmith.x509.devca import (
    CA_KEY_TYPES,
    KEY_TYPES,
    DevCA,
    default_data_dir,
    ensure_dev_credentials,
)
from tlsmith.x509.keys import (
    der_chain,
    key_description,
    load_certificate_chain,
    load_private_key,
)
from tlsmith.x509.verify import TrustStore, verify_server_chain

NOW = datetime.now(UTC)


def ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


# --- certificate profile -----------------------------------------------------------------


def test_devca_ca_certificate_profile(devca: DevCA) -> None:
    ca = devca.certificate
    assert ca.subject == ca.issuer
    basic = ext(ca, x509.BasicConstraints)
    assert basic.critical
    assert isinstance(basic.value, x509.BasicConstraints)
    assert basic.value.ca and basic.value.path_length == 0
    usage = ext(ca, x509.KeyUsage)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage) and usage.value.key_cert_sign
    ski = ext(ca, x509.SubjectKeyIdentifier).value
    aki = ext(ca, x509.AuthorityKeyIdentifier).value
    assert isinstance(ski, x509.SubjectKeyIdentifier)
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert aki.key_identifier == ski.digest


def test_devca_leaf_profile(devca: DevCA) -> None:
    leaf = devca.issue(key_type="rsa-2048", now=NOW).certificate
    basic = ext(leaf, x509.BasicConstraints)
    assert basic.critical and isinstance(basic.value, x509.BasicConstraints)
    assert not basic.value.ca
    usage = ext(leaf, x509.KeyUsage).value
    assert isinstance(usage, x509.KeyUsage)
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = ext(leaf, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert aki.key_identifier == devca.subject_key_identifier.digest
    assert leaf.serial_number > 0
    assert devca.issued(leaf)


def test_devca_issue_client_certificate_has_client_auth(devca: DevCA) -> None:
    leaf = devca.issue(("alice",), client=True, now=NOW).certificate
    eku = ext(leaf, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]


def test_devca_issue_validity_defaults_and_overrides(devca: DevCA) -> None:
    leaf = devca.issue(days=7, now=NOW).certificate
    assert leaf.not_valid_before_utc <= NOW
    assert abs(leaf.not_valid_after_utc - NOW - timedelta(days=7)) < timedelta(seconds=1)
    expired = devca.issue(not_after=NOW - timedelta(days=1), now=NOW).certificate
    assert expired.not_valid_before_utc < expired.not_valid_after_utc < NOW
    future = devca.issue(not_before=NOW + timedelta(days=1), now=NOW).certificate
    assert future.not_valid_before_utc > NOW


def test_devca_issue_rejects_bad_input(devca: DevCA) -> None:
    with pytest.raises(UsageError, match="unknown key type"):
        devca.issue(key_type="dsa-1024")
    with pytest.raises(UsageError, match="at least one name"):
        devca.issue(())
    with pytest.raises(UsageError, match="later than"):
        devca.issue(not_before=NOW, not_after=NOW - timedelta(days=1))
    with pytest.raises(UsageError, match="EdDSA"):
        DevCA.create(key_type="ed25519")


def test_devca_issue_unicode_name_becomes_a_label(devca: DevCA) -> None:
    leaf = devca.issue(("bücher.example",), now=NOW).certificate
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example"]


# --- files -------------------------------------------------------------------------------


def test_devca_save_load_round_trip(tmp_path: Path) -> None:
    created = DevCA.load_or_create(tmp_path / "ca")
    assert created.ca_path == tmp_path / "ca" / "ca.pem"
    key_mode = stat.S_IMODE(os.stat(tmp_path / "ca" / "ca.key").st_mode)
    assert key_mode == 0o600
    loaded = DevCA.load(tmp_path / "ca")
    assert loaded.certificate == created.certificate
    assert DevCA.load_or_create(tmp_path / "ca").certificate == created.certificate


def test_devca_load_missing_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no development CA"):
        DevCA.load(tmp_path)


def test_devca_load_or_create_replaces_an_expiring_ca(tmp_path: Path) -> None:
    old = DevCA.create(now=NOW - timedelta(days=10), days=10).save(tmp_path)
    fresh = DevCA.load_or_create(tmp_path, now=NOW)
    assert fresh.certificate != old.certificate
    assert fresh.certificate.not_valid_after_utc > NOW + timedelta(days=365)


def test_issued_write_sets_paths_and_modes(devca: DevCA, tmp_path: Path) -> None:
    issued = devca.issue(now=NOW).write(tmp_path, "server")
    assert issued.cert_path == tmp_path / "server.pem"
    assert issued.key_path == tmp_path / "server.key"
    assert issued.chain_path == tmp_path / "server-chain.pem"
    assert stat.S_IMODE(os.stat(issued.key_path).st_mode) == 0o600
    assert len(load_certificate_chain(issued.chain_path)) == 2


def test_default_data_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TLSMITH_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "tlsmith"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_data_dir() == Path.home() / ".local" / "share" / "tlsmith"
    monkeypatch.setenv("TLSMITH_HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home"


def test_ensure_dev_credentials_creates_then_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLSMITH_HOME", str(tmp_path))
    first = ensure_dev_credentials()
    assert set(first) == {"ecdsa-p256", "rsa-2048", "ed25519"}
    trust = TrustStore.from_pem_file(tmp_path / "ca.pem")
    for kind, (cert_path, key_path) in first.items():
        cert = load_certificate_chain(cert_path)[0]
        key = load_private_key(key_path)
        assert cert.public_key() == key.public_key(), kind
        verify_server_chain(der_chain([cert]), trust=trust, server_name="localhost", now=NOW)
    before = {kind: cert.read_bytes() for kind, (cert, _) in first.items()}
    second = ensure_dev_credentials(tmp_path)
    assert second == first
    assert {kind: cert.read_bytes() for kind, (cert, _) in second.items()} == before


def test_ensure_dev_credentials_reissues_expiring_or_foreign_leaves(tmp_path: Path) -> None:
    paths = ensure_dev_credentials(tmp_path, key_types=("ecdsa-p256", "ecdsa-p384"))
    ca = DevCA.load(tmp_path)
    # One leaf about to expire, one from another CA.
    ca.issue(not_after=NOW + timedelta(hours=2), now=NOW).write(tmp_path, "localhost-ecdsa-p256")
    DevCA.create(now=NOW).issue(now=NOW).write(tmp_path, "localhost-ecdsa-p384")
    again = ensure_dev_credentials(tmp_path, key_types=("ecdsa-p256", "ecdsa-p384"))
    assert again == paths
    for cert_path, _ in again.values():
        cert = load_certificate_chain(cert_path)[0]
        assert ca.issued(cert)
        assert cert.not_valid_after_utc > NOW + timedelta(days=1)


# --- keys.py -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "description"),
    [
        ("rsa-2048", "RSA-2048"),
        ("ecdsa-p256", "ECDSA P-256"),
        ("ecdsa-p384", "ECDSA P-384"),
        ("ed25519", "Ed25519"),
    ],
)
def test_keys_load_and_describe(
    certs: dict[str, CertFiles], key_type: str, description: str
) -> None:
    files = certs[key_type]
    key = load_private_key(files.key_path)
    assert key_description(key) == description
    assert key_description(key.public_key()) == description
    assert load_private_key(files.key_path.read_bytes()).public_key() == key.public_key()
    assert load_private_key(str(files.key_path)).public_key() == key.public_key()
    chain = load_certificate_chain(files.chain_path)
    assert chain[0].subject.rfc4514_string() == "CN=localhost"
    assert chain[0].public_key() == key.public_key()
    assert load_certificate_chain(files.chain_path.read_text())[1] == chain[1]
    assert der_chain(chain)[0] == chain[0].public_bytes(serialization.Encoding.DER)


def test_keys_load_der_and_encrypted(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert key_description(load_private_key(der)) == "ECDSA P-256"
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(UsageError, match="encrypted"):
        load_private_key(encrypted)
    with pytest.raises(UsageError, match="wrong password"):
        load_private_key(encrypted, password=b"nope")
    assert key_description(load_private_key(encrypted, password=b"secret")) == "Ed25519"


def test_keys_errors_say_what_is_wrong(certs: dict[str, CertFiles], tmp_path: Path) -> None:
    files = certs["ecdsa-p256"]
    with pytest.raises(UsageError, match="holds a certificate, not a private key"):
        load_private_key(files.cert_path)
    with pytest.raises(UsageError, match="holds a private key, not a certificate"):
        load_certificate_chain(files.key_path)
    with pytest.raises(UsageError, match="no such file"):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(UsageError, match="no certificate found"):
        load_certificate_chain(b"-----BEGIN NOTHING-----\n")


# --- interoperability: OpenSSL and Python's ssl --------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_openssl_verify_accepts_dev_leaves(
    devca: DevCA, tmp_path: Path, require_peer: Callable[[str], str], key_type: str
) -> None:
    openssl = require_peer("openssl")
    assert devca.ca_path is not None
    server = devca.issue(key_type=key_type).write(tmp_path, "server")
    client = devca.issue(("client.example",), key_type=key_type, client=True)
    client = client.write(tmp_path, "client")
    for issued, purpose, host in ((server, "sslserver", "localhost"), (client, "sslclient", None)):
        command = [openssl, "verify", "-x509_strict", "-purpose", purpose]
        command += ["-CAfile", str(devca.ca_path)]
        if host:
            command += ["-verify_hostname", host, "-verify_ip", "127.0.0.1"]
        result = subprocess.run(
            [*command, str(issued.cert_path)], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith(": OK")


@pytest.mark.interop
@pytest.mark.parametrize("ca_key_type", CA_KEY_TYPES)
def test_openssl_verify_accepts_every_ca_key_type(
    tmp_path: Path, require_peer: Callable[[str], str], ca_key_type: str
) -> None:
    openssl = require_peer("openssl")
    ca = DevCA.create(key_type=ca_key_type).save(tmp_path)
    issued = ca.issue().write(tmp_path, "leaf")
    result = subprocess.run(
        [openssl, "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile",
         str(ca.ca_path), str(issued.cert_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.interop
def test_openssl_verify_rejects_a_foreign_leaf(
    devca: DevCA, tmp_path: Path, require_peer: Callable[[str], str]
) -> None:
    openssl = require_peer("openssl")
    assert devca.ca_path is not None
    foreign = DevCA.create().issue().write(tmp_path, "foreign")
    result = subprocess.run(
        [openssl, "verify", "-CAfile", str(devca.ca_path), str(foreign.cert_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode != 0


def _memory_handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str
) -> ssl.SSLObject:
    """Run a TLS handshake between two SSLObjects over MemoryBIOs; return the client."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client
    raise AssertionError(f"handshake did not finish: {done}")


def _contexts(files: CertFiles) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.chain_path, files.key_path)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies cert and hostname
    client_ctx.load_verify_locations(cafile=files.ca_path)
    return server_ctx, client_ctx


@pytest.mark.parametrize("key_type", ["rsa-2048", "ecdsa-p256", "ecdsa-p384", "ed25519"])
@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1", "::1"])
def test_python_ssl_accepts_dev_leaf(
    certs: dict[str, CertFiles], key_type: str, server_hostname: str
) -> None:
    server_ctx, client_ctx = _contexts(certs[key_type])
    client = _memory_handshake(server_ctx, client_ctx, server_hostname)
    peer = client.getpeercert()
    assert peer and ("DNS", "localhost") in peer["subjectAltName"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_python_ssl_accepts_rsa_leaf_in_both_versions(
    certs: dict[str, CertFiles], version: ssl.TLSVersion
) -> None:
    server_ctx, client_ctx = _contexts(certs["rsa-2048"])
    client_ctx.minimum_version = client_ctx.maximum_version = version
    client = _memory_handshake(server_ctx, client_ctx, "localhost")
    assert client.version() == version.name.replace("_", ".")


def test_python_ssl_rejects_wrong_host_and_wrong_ca(certs: dict[str, CertFiles]) -> None:
    server_ctx, client_ctx = _contexts(certs["ecdsa-p256"])
    with pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)hostname|IP address mismatch"):
        _memory_handshake(server_ctx, client_ctx, "example.com")
    stranger = DevCA.create("stranger", now=NOW)
    other_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    other_client.load_verify_locations(cadata=stranger.ca_pem.decode())
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _memory_handshake(server_ctx, other_client, "localhost")


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
