"""Raw public keys (RFC 7250) against GnuTLS 3.7, both versions.

* ``gnutls-cli`` with ``+CTYPE-SRV-RAWPK`` against our server holding only a raw public
  key: GnuTLS reports the certificate type Raw Public Key and gets our page.
* Mutual raw public keys: ``gnutls-cli --rawpkkeyfile/--rawpkfile`` with
  ``+CTYPE-CLI-RAWPK`` against our server requiring a client raw key pinned by SPKI; a
  key that is not pinned is refused.
* Our client against ``gnutls-serv --rawpkkeyfile/--rawpkfile`` (in a private network
  namespace: gnutls-serv binds every interface), pinning its SPKI.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import require_peer
from peers import tlsmith_server
from tlsmith.codec.enums import CertificateType, ProtocolVersion
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.errors import TLSError

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

RPK = CertificateType.RAW_PUBLIC_KEY
VERSIONS = {"tls13": ProtocolVersion.TLS13, "tls12": ProtocolVersion.TLS12}
GNUTLS_VERS = {"tls13": "+VERS-TLS1.3", "tls12": "+VERS-TLS1.2"}
GET = b"GET / HTTP/1.0\r\n\r\n"
TIMEOUT = 30.0


def _priority(vers: str, *ctypes: str) -> str:
    return ":".join(("NORMAL", "-VERS-ALL", GNUTLS_VERS[vers], *ctypes))


def _write_key(directory: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    key_path, pub_path = directory / f"{name}.key", directory / f"{name}.pub"
    key_path.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                           ser.NoEncryption()))
    pub_path.write_bytes(key.public_key().public_bytes(
        ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    return key, key_path, pub_path


def _gnutls_cli(port: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [require_peer("gnutls-cli"), "--insecure", "-p", str(port), *args, "127.0.0.1"]
    return subprocess.run(cmd, input=GET, capture_output=True, timeout=TIMEOUT, check=False)


@pytest.mark.parametrize("vers", list(VERSIONS))
def test_gnutls_cli_gets_our_raw_public_key(vers: str, tmp_path: Path) -> None:
    key, _k, _p = _write_key(tmp_path, "server")
    cfg = ServerConfig(certificates=(CertifiedKey.raw(key),), min_version=VERSIONS[vers],
                       max_version=VERSIONS[vers])
    with tlsmith_server(cfg) as server:
        result = _gnutls_cli(server.port, "--priority", _priority(vers, "+CTYPE-SRV-RAWPK"))
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode(errors="replace")
    assert "Certificate type: Raw Public Key" in out
    assert "tlsmith-info version=" + ("TLSv1.3" if vers == "tls13" else "TLSv1.2") in out


@pytest.mark.parametrize("vers", list(VERSIONS))
@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "unknown-key"])
def test_gnutls_cli_mutual_raw_public_keys(vers: str, pinned: bool, tmp_path: Path) -> None:
    skey, _k, _p = _write_key(tmp_path, "server")
    ckey, ckey_path, cpub_path = _write_key(tmp_path, "client")
    other = CertifiedKey.raw(ec.generate_private_key(ec.SECP256R1()))
    trusted = CertifiedKey.raw(ckey).chain[0] if pinned else other.chain[0]
    cfg = ServerConfig(certificates=(CertifiedKey.raw(skey),), min_version=VERSIONS[vers],
                       max_version=VERSIONS[vers], client_auth="require",
                       client_certificate_types=(RPK,),
                       trusted_client_raw_public_keys=frozenset({trusted}))
    with tlsmith_server(cfg) as server:
        result = _gnutls_cli(server.port, "--priority",
                             _priority(vers, "+CTYPE-SRV-RAWPK", "+CTYPE-CLI-RAWPK"),
                             "--rawpkkeyfile", str(ckey_path), "--rawpkfile", str(cpub_path))
        served = server.wait_served(0)
    out = result.stdout.decode(errors="replace")
    if pinned:
        assert result.returncode == 0, out + result.stderr.decode(errors="replace")
        assert served.info is not None and served.error is None
        assert served.info.client_certificate_type == RPK
        assert served.info.client_certificates == (trusted,)
        assert served.info.client_certificate_verified
    else:
        assert result.returncode != 0
        assert isinstance(served.error, TLSError)
        assert getattr(served.error, "check", None) == "rpk_not_trusted"


_CLIENT_SCRIPT = """
import sys
from tlsmith.codec.enums import CertificateType, ProtocolVersion
from tlsmith.config import ClientConfig
from tlsmith.io.blocking import connect
from tlsmith.x509.rpk import spki_der
from cryptography.hazmat.primitives.serialization import load_pem_public_key
spki = spki_der(load_pem_public_key(open(sys.argv[1], "rb").read()))
version = ProtocolVersion(int(sys.argv[2]))
cfg = ClientConfig(server_certificate_types=(CertificateType.RAW_PUBLIC_KEY,),
                   trusted_raw_public_keys=frozenset({spki}),
                   min_version=version, max_version=version)
with connect("127.0.0.1", 4443, cfg, timeout=10) as tls:
    info = tls.info
    print("type", info.server_certificate_type.name, "verified", info.certificate_verified,
          "pinned", info.peer_certificates == (spki,))
"""


@pytest.mark.parametrize("vers", list(VERSIONS))
def test_our_client_pins_gnutls_serv_raw_public_key(vers: str, tmp_path: Path) -> None:
    require_peer("unshare")
    serv = require_peer("gnutls-serv")
    _key, key_path, pub_path = _write_key(tmp_path, "server")
    script = tmp_path / "client.py"
    script.write_text(_CLIENT_SCRIPT)
    q = shlex.quote
    prio = _priority(vers, "+CTYPE-SRV-RAWPK")
    shell = "; ".join([
        "ip link set lo up",
        f"{q(serv)} -p 4443 --priority {q(prio)} --rawpkkeyfile {q(str(key_path))} "
        f"--rawpkfile {q(str(pub_path))} >/dev/null 2>&1 & S=$!",
        "sleep 1",
        f"{q(sys.executable)} {q(str(script))} {q(str(pub_path))} "
        f"{int(VERSIONS[vers])}; R=$?",
        "kill $S", "exit $R",
    ])
    result = subprocess.run(["unshare", "-n", "sh", "-c", shell], capture_output=True,
                            timeout=45, check=False)
    out = result.stdout.decode(errors="replace")
    if result.returncode != 0 and b"Operation not permitted" in result.stderr:
        pytest.skip("no private network namespace here (unshare -n)")
    assert result.returncode == 0, out + result.stderr.decode(errors="replace")
    assert "type RAW_PUBLIC_KEY verified True pinned True" in out
