"""Mutual TLS against GnuTLS 3.7, both versions (RFC 8446 §4.3.2, §4.4.2; RFC 5246 §7.4.4,
§7.4.6):

* ``tlsmith connect --cert/--key`` against ``gnutls-serv`` asking for a client certificate
  (its default) or requiring one (``-r``), verifying it against our dev CA
  (``--verify-client-cert --x509cafile``). gnutls-serv binds 0.0.0.0/:: only, so it runs
  with the client in a private network namespace with only ``lo`` (``unshare -n``): one
  namespace per server configuration, the client runs with and without a certificate.
  GnuTLS's page (``--http``) and log show our certificate's subject; without one a
  requiring server refuses us and ``connect`` explains it.
* ``gnutls-cli --x509certfile/--x509keyfile`` against our server with
  ``client_auth="require"``: the handshake records the verified client chain; without a
  certificate gnutls-cli is refused.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from helpers import CertFiles, require_peer
from peers import run_process_group, tlsmith_server
from test_interop_gnutls import run_gnutls_cli, tlsmith_info
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.x509.devca import DevCA
from tlsmith.x509.verify import TrustStore

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

NETNS_TIMEOUT = 45.0
PRIORITY = {
    "tls13": "NORMAL:-VERS-ALL:+VERS-TLS1.3",
    "tls12": "NORMAL:-VERS-ALL:+VERS-TLS1.2",
}
LABEL = {"tls13": "TLSv1.3", "tls12": "TLSv1.2"}
CLIENT_NAME = "alice.example"


@pytest.fixture(scope="module")
def alice(devca: DevCA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    """clientAuth certificates for CN=alice.example from the dev CA, by key type."""
    directory = tmp_path_factory.mktemp("alice-gnutls")
    assert devca.ca_path is not None
    out = {}
    for key_type in ("ecdsa-p256", "rsa-2048"):
        issued = devca.issue((CLIENT_NAME,), key_type=key_type, client=True).write(
            directory, f"alice-{key_type}")
        assert issued.cert_path and issued.key_path and issued.chain_path
        out[key_type] = CertFiles(key_type, issued.cert_path, issued.key_path,
                                  issued.chain_path, Path(devca.ca_path))
    return out


# ============================================================ tlsmith connect -> gnutls-serv
@dataclass
class NetnsRun:
    server_log: str
    clients: dict[str, tuple[int, dict[str, Any]]]  # label -> (exit code, --json output)
    script_output: str


def run_in_netns(directory: Path, server: CertFiles, serv_args: list[str],
                 clients: dict[str, list[str]]) -> NetnsRun:
    """In a fresh network namespace: gnutls-serv on port 4443 (only this namespace's
    ``lo``), then each client's ``tlsmith connect localhost:4443 --json ARGS`` in turn."""
    require_peer("unshare")
    gnutls_serv = require_peer("gnutls-serv")
    log = directory / "gnutls-serv.log"
    q = shlex.quote
    lines = [
        "set -u",
        "ip link set lo up",
        f"{q(gnutls_serv)} --http -p 4443 --x509certfile {q(str(server.chain_path))} "
        f"--x509keyfile {q(str(server.key_path))} {' '.join(map(q, serv_args))} "
        f"> {q(str(log))} 2>&1 &",
        "S=$!",
        # It prints "...listening on IPv4 0.0.0.0 port 4443...done" once it listens.
        f"for i in $(seq 100); do grep -q 'IPv4.*done' {q(str(log))} && break; "
        "sleep 0.05; done",
    ]
    for label, args in clients.items():
        out = directory / f"{label}.json"
        cmd = [sys.executable, "-m", "tlsmith.cli.main", "connect", "localhost:4443",
               "--cafile", str(server.ca_path), "--json", "--timeout", "5", *args]
        lines.append(f"{' '.join(map(q, cmd))} > {q(str(out))} 2>&1; "
                     f"echo $? > {q(str(out))}.rc")
    lines.append("kill $S; wait $S 2>/dev/null; true")
    script = "\n".join(lines)
    done = run_process_group([require_peer("unshare"), "-n", "sh", "-c", script],
                             timeout=NETNS_TIMEOUT, what="the gnutls-serv namespace")
    results: dict[str, tuple[int, dict[str, Any]]] = {}
    for label in clients:
        out = directory / f"{label}.json"
        text = out.read_text() if out.exists() else ""
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise AssertionError(f"{label}: not JSON:\n{text}\n{done.text}\n"
                                 f"{log.read_text() if log.exists() else ''}") from None
        parsed.pop("trace", None)
        results[label] = (int((directory / f"{label}.json.rc").read_text()), parsed)
    return NetnsRun(log.read_text() if log.exists() else "", results, done.text)


@pytest.mark.parametrize("mode", ["request", "require"])
@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_connect_with_client_certificate_to_gnutls_serv(
        certs: dict[str, CertFiles], alice: dict[str, CertFiles], tmp_path: Path,
        version: str, mode: str) -> None:
    server = certs["ecdsa-p256"]
    serv_args = ["--priority", PRIORITY[version], "--verify-client-cert",
                 "--x509cafile", str(server.ca_path)]
    if mode == "require":
        serv_args.append("-r")
    clients = {
        f"with-{key_type}": ["--http", "--cert", str(c.chain_path), "--key", str(c.key_path)]
        for key_type, c in alice.items()
    }
    clients["without"] = ["--http"]
    run = run_in_netns(tmp_path, server, serv_args, clients)
    context = f"\n{json.dumps(run.clients, indent=1)[:6000]}\n{run.server_log[-3000:]}"

    for key_type in alice:
        code, out = run.clients[f"with-{key_type}"]
        assert code == 0 and out["ok"] is True, context
        assert out["version"] == LABEL[version], context
        assert out["server_verdict"] == "accepted", context
        # GnuTLS's page describes the certificate we sent.
        assert f"Subject: CN={CLIENT_NAME}" in out["reply"], context
        assert "Issuer: O=tlsmith,CN=tlsmith development CA" in out["reply"], context
    # ... and its log says it verified it (one line per connection with a certificate).
    assert run.server_log.count(f"Subject: CN={CLIENT_NAME}") >= len(alice), context
    assert run.server_log.count("The certificate is trusted") >= len(alice), context

    code, out = run.clients["without"]
    if mode == "request":
        # A certificate was asked for, not required: an empty Certificate is fine.
        assert code == 0 and out["ok"] is True, context
        assert f"CN={CLIENT_NAME}" not in out["reply"], context
    else:
        assert code == 1 and out["ok"] is False, context
        assert out["error"] == "AlertReceived", context
        assert "client certificate" in out["explanation"], context
        if version == "tls13":
            assert out["alert_received"] == "certificate_required", context  # RFC 8446 §4.4.2.4
        else:
            assert "--cert/--key" in out["explanation"], context


def test_gnutls_serv_rejects_a_certificate_from_another_ca(
        certs: dict[str, CertFiles], tmp_path: Path) -> None:
    """A client certificate gnutls-serv does not trust: refused, and we say so."""
    stranger = DevCA.create()
    issued = stranger.issue((CLIENT_NAME,), client=True).write(tmp_path, "mallory")
    assert issued.chain_path and issued.key_path
    server = certs["ecdsa-p256"]
    run = run_in_netns(
        tmp_path, server,
        ["--priority", PRIORITY["tls13"], "-r", "--verify-client-cert", "--x509cafile",
         str(server.ca_path)],
        {"stranger": ["--cert", str(issued.chain_path), "--key", str(issued.key_path)]})
    code, out = run.clients["stranger"]
    context = f"\n{json.dumps(out, indent=1)[:4000]}\n{run.server_log[-3000:]}"
    assert code == 1 and out["ok"] is False, context
    assert out["error"] == "AlertReceived", context
    assert out["explanation"].startswith("The handshake with localhost:4443 failed"), context


# ============================================================ gnutls-cli -> tlsmith server
def _server_config(server: CertFiles, client_auth: str) -> ServerConfig:
    return ServerConfig(
        certificates=(CertifiedKey.from_files(server.chain_path, server.key_path),),
        client_auth=client_auth, client_trust=TrustStore.from_pem_file(server.ca_path))


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_gnutls_cli_with_client_certificate_to_tlsmith(
        certs: dict[str, CertFiles], alice: dict[str, CertFiles], version: str,
        key_type: str) -> None:
    server, client = certs["ecdsa-p256"], alice[key_type]
    with tlsmith_server(_server_config(server, "require"), "http") as handle:
        result = run_gnutls_cli(handle.port, server, "--priority", PRIORITY[version],
                                "--x509certfile", str(client.chain_path),
                                "--x509keyfile", str(client.key_path))
        served = handle.wait_served(0)
    assert served.error is None, f"{served.error!r}\n{result.text}"
    info = tlsmith_info(result)
    assert info["version"] == LABEL[version], result.text
    assert served.info is not None
    assert served.info.client_certificate_verified is True
    assert served.info.client_certificates, "no client chain recorded"
    leaf = x509.load_der_x509_certificate(served.info.client_certificates[0])
    assert leaf.subject.rfc4514_string() == f"CN={CLIENT_NAME}"


@pytest.mark.parametrize("version", ["tls13", "tls12"])
def test_gnutls_cli_without_certificate_is_refused(
        certs: dict[str, CertFiles], version: str) -> None:
    server = certs["ecdsa-p256"]
    with tlsmith_server(_server_config(server, "require"), "http") as handle:
        result = run_gnutls_cli(handle.port, server, "--priority", PRIORITY[version])
        served = handle.wait_served(0)
    assert result.returncode != 0, result.text
    assert "tlsmith-info" not in result.stdout
    assert served.error is not None, result.text
    # RFC 8446 §4.4.2.4: certificate_required (TLS 1.3); RFC 5246 §7.4.6: handshake_failure.
    expected = "[116]" if version == "tls13" else "[40]"
    assert f"Received alert {expected}" in result.text, result.text
