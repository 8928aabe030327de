"""``tlsmith ca``: the development CA a user trusts once and issues certificates from.

Every test points TLSMITH_HOME at its own temporary directory. The certificates are
proven to work with Python's ``ssl`` (both ends), ``openssl verify`` and tlsmith itself.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from peers import tlsmith_server
from tlsmith.cli.main import main
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.x509.devca import DevCA, ensure_dev_credentials
from tlsmith.x509.keys import load_certificate_chain

TIMEOUT = 30


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "tlsmith-home"
    monkeypatch.setenv("TLSMITH_HOME", str(directory))
    return directory


def ca(*args: str) -> Result:
    return CliRunner().invoke(main, ["ca", *args], catch_exceptions=False)


def fingerprint(path: Path) -> str:
    cert = load_certificate_chain(path)[0]
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def ssl_exchange(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
                 server_hostname: str) -> dict[str, Any]:
    """One connection over 127.0.0.1 between two Python ``ssl`` contexts: the server
    sends b"ok" after its handshake; returns what both ends saw."""
    result: dict[str, Any] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                conn.settimeout(TIMEOUT)
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    result["client_cert"] = tls.getpeercert()
                    tls.sendall(b"ok")
            except Exception as exc:  # reported to the test below
                result["server_error"] = exc

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
                client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            result["reply"] = tls.recv(2)
            result["version"] = tls.version()
            result["server_cert"] = tls.getpeercert()
        thread.join(TIMEOUT)
    return result


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=client_ca)
    return ctx


def openssl_verify(openssl: str, ca_pem: Path, leaf: Path, purpose: str
                   ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([openssl, "verify", "-x509_strict", "-purpose", purpose,
                           "-CAfile", str(ca_pem), str(leaf)],
                          capture_output=True, text=True, timeout=TIMEOUT)


# --- init -------------------------------------------------------------------------------


def test_init_creates_the_ca_and_says_how_to_trust_it(home: Path) -> None:
    result = ca("init")
    assert result.exit_code == 0, result.output
    ca_pem = home / "ca.pem"
    assert ca_pem.is_file()
    assert stat.S_IMODE((home / "ca.key").stat().st_mode) == 0o600
    out = result.output
    assert "Created the development CA" in out
    assert str(ca_pem) in out and fingerprint(ca_pem) in out, out
    assert "→" in out and "(3650 days)" in out
    for hint in (f"curl --cacert {ca_pem}",
                 f"ssl.create_default_context(cafile='{ca_pem}')",
                 f"TrustStore.from_pem_file('{ca_pem}')",
                 f"tlsmith connect localhost:8443 --cafile {ca_pem}",
                 f"-CAfile {ca_pem}",
                 f'certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n tlsmith-dev-ca -i {ca_pem}'):
        assert hint in out, hint

    again = ca("init")
    assert again.exit_code == 0
    assert "already exists" in again.output
    assert fingerprint(ca_pem) in again.output  # the same CA


def test_init_force_replaces_the_ca_and_serve_follows(home: Path) -> None:
    assert ca("init").exit_code == 0
    assert ca("issue", "localhost").exit_code == 0
    old = fingerprint(home / "ca.pem")
    result = ca("init", "--force")
    assert result.exit_code == 0, result.output
    new = fingerprint(home / "ca.pem")
    assert new != old and new in result.output
    assert "Replaced the development CA" in result.output
    assert "no longer verify (1 in" in result.output
    # tlsmith serve's own certificates follow the new CA by themselves.
    cert, _key = ensure_dev_credentials()["ecdsa-p256"]
    assert DevCA.load(home).issued(load_certificate_chain(cert)[0])
    # `show` flags what the old CA issued.
    assert "not issued by this CA" in ca("show").output


def test_ca_is_the_one_serve_uses(home: Path) -> None:
    creds = ensure_dev_credentials()  # what `tlsmith serve` does without --cert
    before = fingerprint(home / "ca.pem")
    result = ca("init")
    assert "already exists" in result.output and before in result.output
    assert ca("issue", "example.test").exit_code == 0
    assert fingerprint(home / "ca.pem") == before
    assert ensure_dev_credentials() == creds
    assert sorted(p.name for p in home.glob("ca*")) == ["ca.key", "ca.pem"]


def test_force_repairs_an_unreadable_ca(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "ca.pem").write_text("garbage\n")
    (home / "ca.key").write_text("garbage\n")
    broken = ca("show")
    assert broken.exit_code == 1 and "init --force" in broken.output
    assert ca("init", "--force").exit_code == 0
    assert DevCA.load(home).certificate is not None


# --- issue ------------------------------------------------------------------------------


def test_issued_server_certificate_works_with_python_ssl_and_openssl(
        home: Path, require_peer: Any) -> None:
    result = ca("issue", "localhost", "127.0.0.1")
    assert result.exit_code == 0, result.output
    ca_pem, pem = home / "ca.pem", home / "issued" / "localhost.pem"
    key = home / "issued" / "localhost-key.pem"
    assert "Created the development CA" in result.output  # issue makes it when missing
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    leaf, ca_cert = chain(pem)
    assert ca_cert == load_certificate_chain(ca_pem)[0]
    assert eku(leaf) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    validity = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=90) <= validity <= timedelta(days=90, minutes=10)
    out = result.output
    for text in (str(pem), str(key), "DNS:localhost, IP:127.0.0.1", "(90 days)",
                 ":".join(f"{b:02X}" for b in leaf.fingerprint(hashes.SHA256())),
                 f"tlsmith serve --cert {pem} --key {key}"):
        assert text in out, text

    client_ctx = ssl.create_default_context(cafile=str(ca_pem))
    for hostname in ("localhost", "127.0.0.1"):
        seen = ssl_exchange(server_context(pem, key), client_ctx, hostname)
        assert "server_error" not in seen, seen
        assert seen["reply"] == b"ok" and seen["version"] == "TLSv1.3"
    with pytest.raises(ssl.SSLCertVerificationError, match=r"Hostname mismatch|IP address"):
        ssl_exchange(server_context(pem, key), client_ctx, "other.example")

    openssl = require_peer("openssl")
    verdict = openssl_verify(openssl, ca_pem, pem, "sslserver")
    assert verdict.returncode == 0 and ": OK" in verdict.stdout, verdict.stdout + verdict.stderr


def test_issued_certificate_works_with_tlsmith_connect(home: Path) -> None:
    assert ca("issue", "localhost").exit_code == 0
    pem, key = home / "issued" / "localhost.pem", home / "issued" / "localhost-key.pem"
    config = ServerConfig(certificates=(CertifiedKey.from_files(pem, key),))
    with tlsmith_server(config) as srv:
        result = subprocess.run(
            [sys.executable, "-m", "tlsmith.cli.main", "connect", f"localhost:{srv.port}",
             "--cafile", str(home / "ca.pem")],
            capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout


def test_client_certificate_is_client_auth_only_and_works_for_mutual_tls(
        home: Path, require_peer: Any) -> None:
    result = ca("issue", "alice.example", "--client")
    assert result.exit_code == 0, result.output
    assert "Issued a client certificate" in result.output
    pem, key = home / "issued" / "alice.example.pem", home / "issued" / "alice.example-key.pem"
    assert f"tlsmith connect HOST:PORT --cert {pem} --key {key}" in result.output
    assert "tlsmith serve --cert" not in result.output
    assert f"tlsmith serve --client-ca {home / 'ca.pem'} --require-client-cert" in result.output
    assert eku(chain(pem)[0]) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    ca_pem = home / "ca.pem"
    assert ca("issue", "localhost").exit_code == 0
    server = server_context(home / "issued" / "localhost.pem",
                            home / "issued" / "localhost-key.pem", client_ca=ca_pem)
    client = ssl.create_default_context(cafile=str(ca_pem))
    client.load_cert_chain(pem, key)
    seen = ssl_exchange(server, client, "localhost")
    assert "server_error" not in seen, seen
    assert seen["reply"] == b"ok"
    assert ("commonName", "alice.example") in seen["client_cert"]["subject"][0]

    # A server refuses to use it: no serverAuth.
    with pytest.raises(ssl.SSLError):
        ssl_exchange(server_context(pem, key), ssl.create_default_context(cafile=str(ca_pem)),
                     "alice.example")

    openssl = require_peer("openssl")
    assert openssl_verify(openssl, ca_pem, pem, "sslclient").returncode == 0
    assert openssl_verify(openssl, ca_pem, pem, "sslserver").returncode != 0


@pytest.mark.parametrize("key_type, key_class, label", [
    ("rsa", rsa.RSAPublicKey, "RSA-2048"),
    ("ed25519", ed25519.Ed25519PublicKey, "Ed25519"),
])
def test_key_types(home: Path, key_type: str, key_class: type, label: str) -> None:
    result = ca("issue", "localhost", "::1", "--key-type", key_type, "--days", "7")
    assert result.exit_code == 0, result.output
    assert label in result.output and "(7 days)" in result.output
    pem, key = home / "issued" / "localhost.pem", home / "issued" / "localhost-key.pem"
    leaf = chain(pem)[0]
    assert isinstance(leaf.public_key(), key_class)
    if key_type == "rsa":
        assert leaf.public_key().key_size == 2048  # type: ignore[union-attr]
    client = ssl.create_default_context(cafile=str(home / "ca.pem"))
    seen = ssl_exchange(server_context(pem, key), client, "localhost")
    assert "server_error" not in seen, seen
    assert seen["reply"] == b"ok"


def test_ip_option_out_dir_and_wildcard(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = ca("issue", "*.Example.TEST.", "--ip", "10.1.2.3", "--ip", "::1", "--out",
                str(out))
    assert result.exit_code == 0, result.output
    pem = out / "_wildcard.example.test.pem"
    assert (out / "_wildcard.example.test-key.pem").is_file()
    san = chain(pem)[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["*.example.test"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3", "::1"]
    assert not (home / "issued").exists()  # --out, not the default directory


# --- show -------------------------------------------------------------------------------


def test_show_lists_the_ca_and_what_it_issued(home: Path) -> None:
    assert ca("show").exit_code == 1  # nothing yet
    assert ca("init").exit_code == 0
    assert "No certificates issued" in ca("show").output
    assert ca("issue", "localhost", "127.0.0.1").exit_code == 0
    assert ca("issue", "bob", "--client", "--key-type", "ed25519", "--days", "30").exit_code == 0
    result = ca("show")
    assert result.exit_code == 0, result.output
    out = result.output
    ca_pem = home / "ca.pem"
    assert "O=tlsmith,CN=tlsmith development CA" in out
    assert fingerprint(ca_pem) in out and str(ca_pem) in out
    lines = {line.split()[0]: line for line in out.splitlines() if ".pem " in line}
    assert set(lines) == {"localhost.pem", "bob.pem"}
    assert "server" in lines["localhost.pem"]
    assert "DNS:localhost, IP:127.0.0.1" in lines["localhost.pem"]
    assert "client" in lines["bob.pem"] and "DNS:bob" in lines["bob.pem"]
    assert "expires" in lines["bob.pem"] and "30 days left" in lines["bob.pem"]
    assert "not issued by this CA" not in out


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("args, needle", [
    ([], "name at least one host name or IP address"),
    (["foo_bar"], "'foo_bar' is not a valid host name or IP address"),
    (["a..b"], "empty label"),
    (["--", "-x.test"], "'-x.test' is not a valid host name"),
    (["a.*.test"], "'*' is allowed only as the whole first label"),
    (["1.2.3.256"], "looks like an IP address but is not one"),
    (["x" * 64 + ".test"], "at most 63 characters"),
    (["localhost", "--days", "0"], "0 is out of range"),
    (["localhost", "--days", "826"], "1 to 825 days"),
    (["localhost", "--key-type", "dsa"], "'dsa' is not one of 'ecdsa', 'rsa', 'ed25519'"),
    (["--ip", "localhost"], "'localhost' is not an IP address"),
])
def test_bad_input_is_a_usage_error(home: Path, args: list[str], needle: str) -> None:
    result = ca("issue", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert not (home / "issued").exists()


def test_fingerprints_are_printed_verbatim() -> None:
    """rich would turn the ``:CD:`` of a fingerprint into an emoji."""
    import io

    from rich.console import Console

    from tlsmith.cli.ca_cmd import _row

    buffer = io.StringIO()
    _row(Console(file=buffer, width=200), "SHA-256", "1A:CD:5C:[b]x[/b]:smile:")
    assert buffer.getvalue() == "  SHA-256      1A:CD:5C:[b]x[/b]:smile:\n"


def test_usage_error_from_the_real_command(home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tlsmith.cli.main", "ca", "issue", "bad name"],
        capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "TLSMITH_HOME": str(home)})
    assert result.returncode == 2
    assert "'bad name' is not a valid host name or IP address" in result.stderr
    assert "Traceback" not in result.stderr
