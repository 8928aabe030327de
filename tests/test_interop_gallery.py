"""The certificate gallery (tests/gallery.py) over real handshakes (issue 13).

For every exhibit, ``tlsmith connect --cafile <anchor> --servername <name>`` against
``openssl s_server`` (TLS 1.3 and 1.2) serving the exhibit's chain, and against
``tlsmith serve`` (the command for a few exhibits, the same server in-process for the
rest; TLS 1.3, and 1.2 for some): the verdict (exit code, ``ok``), the
failure ``reason``, the alert we send and a sentence of the explanation -- the same values
tests/test_x509_gallery.py asserts offline (its ``REFUSED`` table is reused here). A few
failures also run without ``--json``: the chain the server sent is printed on stderr.
Malformed leaves (gallery.malformed) end in bad_certificate. Revocation exhibits (a CRL
via ``--crl``, stapled OCSP good/revoked/stale via ``s_server -status_file`` and
``tlsmith serve --ocsp``, must-staple without a staple, ``--require-revocation``) give
certificate_revoked / bad_certificate_status_response / certificate_unknown.

The gallery does not hand out private keys, so it is built with ``gallery._key`` wrapped
to record every key it generates; a certificate's key is then found by its public key.
Servers are started lazily, one per exhibit x peer, and reused for the module.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import gallery as gallery_module
from gallery import AIA_URL, Gallery, _Issuer, _leaf, build_gallery
from helpers import CertFiles
from peers import PeerProcess, start_s_server, start_tlsmith_serve_cli, tlsmith_server
from test_x509_gallery import REFUSED
from test_x509_revocation import REVOKED_AT, Pki, _response
from tlsmith.cli.main import main as cli_main
from tlsmith.config import CertifiedKey, ServerConfig
from tlsmith.x509.devca import DevCA
from tlsmith.x509.revocation import NOT_CHECKED_SENTENCE

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

NOW = datetime.now(UTC)
RUN_TIMEOUT = 20.0  # one `tlsmith connect` process, all in
CONNECT_TIMEOUT = "5"  # its --timeout

#: Peers: OpenSSL per version (one s_server each) and tlsmith serve (one process; the
#: client picks the version). Every exhibit meets the first three; TLS 1.2 against
#: tlsmith serve is run for a few (TLS12_TLSMITH), to keep the module quick.
PEERS = ("openssl-1.3", "openssl-1.2", "tlsmith-1.3")
TLS12_TLSMITH = {"valid", "out of order", "ip san", "self-signed trusted", "expired",
                 "wrong host", "unknown ca", "missing intermediate", "wrong eku"}

#: Exhibits served by the `tlsmith serve` command (a process each); the others by the
#: same server in-process (tests/peers.py tlsmith_server), which costs no interpreter.
CLI_SERVE = {"valid", "self-signed trusted", "expired", "missing intermediate",
             "revoked via crl", "revoked via ocsp", "good ocsp", "stale ocsp",
             "must-staple without staple", "no revocation information"}


def cases(names: list[str]) -> list[tuple[str, str]]:
    return [(name, peer) for name in names for peer in PEERS] + [
        (name, "tlsmith-1.2") for name in names if name in TLS12_TLSMITH]


# ------------------------------------------------------------------------------ exhibits
@dataclass
class Served:
    """An exhibit as files a server and a client can use."""

    files: CertFiles  # cert_path: leaf; chain_path: all; ca_path: the client's anchors
    rest_path: Path | None  # the certificates after the leaf (s_server -cert_chain)
    chain: list[bytes]  # DER, as sent
    key: Any  # the leaf's private key
    server_name: str | None  # --servername; None: the target 127.0.0.1 itself
    subject: str  # the leaf's subject, as the chain printout shows it
    ocsp_path: Path | None = None  # a DER OCSP response the server staples


def _pem(der: bytes) -> bytes:
    """PEM of DER as is (no parsing: the malformed exhibits must stay malformed)."""
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


def _subject(der: bytes) -> str:
    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except Exception:  # ValueError, or InvalidVersion (not a ValueError)
        return "(unreadable)"


@dataclass
class World:
    gallery: Gallery
    exhibits: dict[str, Served]
    malformed_key: Any
    mid_der: bytes
    directory: Path


def _record_keys(monkeypatch: pytest.MonkeyPatch) -> list[ec.EllipticCurvePrivateKey]:
    keys: list[ec.EllipticCurvePrivateKey] = []
    original = gallery_module._key

    def recording() -> ec.EllipticCurvePrivateKey:
        key = original()
        keys.append(key)
        return key

    monkeypatch.setattr(gallery_module, "_key", recording)
    return keys


def _key_of(cert: x509.Certificate, keys: list[ec.EllipticCurvePrivateKey]) -> Any:
    public = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for key in keys:
        if key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == public:
            return key
    raise AssertionError(f"no recorded key for {cert.subject.rfc4514_string()}")


def _write(directory: Path, stem: str, chain: list[bytes], key: Any,
           anchors: list[x509.Certificate], server_name: str | None) -> Served:
    directory.mkdir(parents=True, exist_ok=True)
    leaf = directory / f"{stem}-leaf.pem"
    full = directory / f"{stem}-chain.pem"
    key_path = directory / f"{stem}-key.pem"
    anchor = directory / f"{stem}-anchor.pem"
    leaf.write_bytes(_pem(chain[0]))
    full.write_bytes(b"".join(_pem(der) for der in chain))
    rest = None
    if len(chain) > 1:
        rest = directory / f"{stem}-rest.pem"
        rest.write_bytes(b"".join(_pem(der) for der in chain[1:]))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    anchor.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in anchors))
    return Served(CertFiles("ecdsa-p256", leaf, key_path, full, anchor), rest, chain, key,
                  server_name, _subject(chain[0]))


# --------------------------------------------------------------------- revocation exhibits
def _must_staple_leaf(mid: _Issuer, key: Any) -> x509.Certificate:
    """Like the gallery's leaves, plus the TLS feature status_request (RFC 7633)."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.example.com")]))
        .issuer_name(mid.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example.com")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(mid.key.public_key()), False)
        .add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), False)
        .sign(mid.key, hashes.SHA256())
    )


def _crl(mid: _Issuer, serials: list[int]) -> bytes:
    """A CRL from the gallery's intermediate listing ``serials`` (keyCompromise)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(mid.name)
        .last_update(NOW - timedelta(days=1))
        .next_update(NOW + timedelta(days=7))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(mid.key.public_key()), False)
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(REVOKED_AT)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build())
    return builder.sign(mid.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _revocation_exhibits(directory: Path, mid: _Issuer, anchors: list[x509.Certificate]
                         ) -> dict[str, Served]:
    """Leaves from the gallery's intermediate, with OCSP responses (signed by it, built by
    tests/test_x509_revocation.py's ``_response``) for the server to staple, and a CRL."""
    mid_der = mid.certificate.public_bytes(serialization.Encoding.DER)
    out: dict[str, Served] = {}

    def add(name: str, cert: x509.Certificate, key: Any,
            status: ocsp.OCSPCertStatus | None = None, **response: Any) -> Served:
        stem = "rev-" + name.replace(" ", "-")
        served = _write(directory, stem, [cert.public_bytes(serialization.Encoding.DER),
                                          mid_der], key, anchors, "a.example.com")
        if status is not None:
            pki = Pki(mid.key, mid.certificate, cert, cert, mid.key, mid.certificate,
                      mid.certificate, mid.key)
            served.ocsp_path = directory / f"{stem}.ocsp.der"
            served.ocsp_path.write_bytes(_response(pki, status=status, **response))
        out[name] = served
        return served

    def leaf() -> tuple[x509.Certificate, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        return _leaf(mid, ["a.example.com"], NOW, key=key), key

    revoked_by_crl, key = leaf()
    add("revoked via crl", revoked_by_crl, key)
    (directory / "revocations.crl.pem").write_bytes(
        _crl(mid, [revoked_by_crl.serial_number]))
    add("revoked via ocsp", *leaf(), ocsp.OCSPCertStatus.REVOKED)
    add("good ocsp", *leaf(), ocsp.OCSPCertStatus.GOOD)
    add("stale ocsp", *leaf(), ocsp.OCSPCertStatus.GOOD,
        this_update=NOW - timedelta(days=10), next_update=NOW - timedelta(days=3))
    key = ec.generate_private_key(ec.SECP256R1())
    add("must-staple without staple", _must_staple_leaf(mid, key), key)
    add("no revocation information", *leaf())
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("gallery")
    with pytest.MonkeyPatch.context() as monkeypatch:
        keys = _record_keys(monkeypatch)
        gallery = build_gallery(NOW)
    exhibits: dict[str, Served] = {}
    for index, (name, exhibit) in enumerate(gallery.exhibits.items()):
        if name == "dev ca untrusted":
            continue  # DevCA made that key; ours below has its key
        leaf_key = _key_of(exhibit.certificates[0], keys)
        exhibits[name] = _write(directory, f"e{index}", exhibit.chain, leaf_key,
                                list(exhibit.trust.certificates), exhibit.server_name)
    # The gallery's IP exhibits name 192.0.2.7; a server we can reach is on 127.0.0.1.
    valid = gallery["valid"]
    mid_cert = valid.certificates[1]
    mid = _Issuer(mid_cert.subject, _key_of(mid_cert, keys), mid_cert)
    leaf_key = _key_of(valid.certificates[0], keys)
    ip_leaf = _leaf(mid, ["127.0.0.1", "::1"], NOW, key=leaf_key)
    anchors = list(valid.trust.certificates)
    mid_der = mid_cert.public_bytes(serialization.Encoding.DER)
    exhibits["ip san"] = _write(
        directory, "ip", [ip_leaf.public_bytes(serialization.Encoding.DER), mid_der],
        leaf_key, anchors, None)
    exhibits["ip san mismatch"] = _write(
        directory, "ipx", gallery["ip san mismatch"].chain, leaf_key, anchors, None)
    devca = DevCA.create(now=NOW)
    issued = devca.issue(now=NOW)
    exhibits["dev ca untrusted"] = _write(
        directory, "dev", [issued.certificate.public_bytes(serialization.Encoding.DER)],
        issued.private_key, anchors, "localhost")
    for kind, der in gallery.malformed.items():
        exhibits[f"malformed {kind}"] = _write(
            directory, f"bad-{kind.replace(' ', '-')}", [der, mid_der], leaf_key, anchors,
            "a.example.com")
    exhibits.update(_revocation_exhibits(directory, mid, anchors))
    yield World(gallery, exhibits, leaf_key, mid_der, directory)


# ------------------------------------------------------------------------------ servers
class Peers:
    """Servers by (exhibit, peer kind), started on first use, stopped at module end."""

    def __init__(self, world: World, log_dir: Path) -> None:
        self.world = world
        self.log_dir = log_dir
        self.processes: dict[tuple[str, str], PeerProcess] = {}
        self.in_process: dict[str, Any] = {}
        self.stack = contextlib.ExitStack()

    def port(self, name: str, peer: str) -> int:
        served = self.world.exhibits[name]
        if peer.startswith("openssl"):
            key = (name, peer)
            if key not in self.processes:
                extra = ["-www", "-tls1_3" if peer == "openssl-1.3" else "-tls1_2"]
                if served.rest_path is not None:
                    extra += ["-cert_chain", str(served.rest_path)]
                if served.ocsp_path is not None:
                    extra += ["-status_file", str(served.ocsp_path)]
                self.processes[key] = start_s_server(
                    served.files, *extra, log_dir=self.log_dir, tls13_only=False,
                    name=f"s_server-{peer}")
            return self.processes[key].port
        key = (name, "tlsmith")
        if name in CLI_SERVE:
            if key not in self.processes:
                ocsp = ["--ocsp", str(served.ocsp_path)] if served.ocsp_path else []
                self.processes[key] = start_tlsmith_serve_cli(served.files, *ocsp,
                                                              log_dir=self.log_dir)
            return self.processes[key].port
        if name not in self.in_process:
            # From the DER as is: CertifiedKey.from_files would refuse a malformed leaf.
            staple = served.ocsp_path.read_bytes() if served.ocsp_path else None
            config = ServerConfig(certificates=(
                CertifiedKey(tuple(served.chain), served.key, (), ocsp_response=staple),))
            self.in_process[name] = self.stack.enter_context(tlsmith_server(config, "http"))
        return int(self.in_process[name].port)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.stack.close()


@pytest.fixture(scope="module")
def peers(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    running = Peers(world, tmp_path_factory.mktemp("peer-logs"))
    try:
        yield running
    finally:
        running.stop()


# ------------------------------------------------------------------------------ client
@dataclass
class Outcome:
    code: int
    out: dict[str, Any]
    stdout: str
    stderr: str


def connect(port: int, served: Served, peer: str, *, as_json: bool = True,
            extra: tuple[str, ...] = (), process: bool | None = None) -> Outcome:
    """``tlsmith connect 127.0.0.1:PORT --cafile ANCHOR [--servername NAME] --tls1.x``.

    ``process``: run the installed command as a subprocess; by default only for the
    openssl-1.3 peer (and every non-JSON run). The other runs invoke the same click
    command in-process (click's CliRunner): the same code from argv to exit code, without
    a ~0.5 s interpreter start each, which keeps the module within its time budget."""
    args = ["connect", f"127.0.0.1:{port}", "--cafile", str(served.files.ca_path),
            "--timeout", CONNECT_TIMEOUT]
    if served.server_name is not None:
        args += ["--servername", served.server_name]
    args.append("--tls1.3" if peer.endswith("1.3") else "--tls1.2")
    if as_json:
        args.append("--json")
    args += extra
    if process is None:
        process = peer == "openssl-1.3" or not as_json
    if process:
        done = subprocess.run([sys.executable, "-m", "tlsmith.cli.main", *args],
                              capture_output=True, text=True, timeout=RUN_TIMEOUT,
                              env={**os.environ, "COLUMNS": "300"}, check=False)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        result = CliRunner().invoke(cli_main, args, env={"COLUMNS": "300"})
        code, stdout, stderr = result.exit_code, result.stdout, result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"tlsmith connect raised {result.exception!r}\n"
                                 f"{result.output}") from result.exception
    out: dict[str, Any] = {}
    if as_json:
        try:
            out = json.loads(stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {code}):\n{stdout}\n{stderr}") from None
    return Outcome(code, out, stdout, stderr)


def _context(outcome: Outcome) -> str:
    shown = {k: v for k, v in outcome.out.items() if k != "trace"}
    return f"exit {outcome.code}: {json.dumps(shown, indent=1)}\n{outcome.stderr}"


# ------------------------------------------------------------------------------ accepted
ACCEPTED = [
    "valid",
    "out of order",
    "extra certificate",
    "wildcard match",
    "ip san",  # 127.0.0.1 and ::1 in the SAN; we connect to 127.0.0.1, no SNI
    "self-signed trusted",  # openssl req -x509 style (CA:TRUE), trusted with --cafile
    "critical san",  # as trustme makes them
    "no aki",  # as NSS's certutil -S -x makes them
]


@pytest.mark.parametrize(("name", "peer"), cases(ACCEPTED))
def test_gallery_accepted_over_the_wire(world: World, peers: Peers, name: str,
                                        peer: str) -> None:
    served = world.exhibits[name]
    # --http: the server's reply confirms at once that it accepted us.
    outcome = connect(peers.port(name, peer), served, peer, extra=("--http",))
    assert outcome.code == 0, _context(outcome)
    assert outcome.out["ok"] is True, _context(outcome)
    assert outcome.out["version"] == ("TLSv1.3" if peer.endswith("1.3") else "TLSv1.2")
    assert outcome.out["server_verdict"] == "accepted", _context(outcome)
    assert outcome.out["reply"].startswith("HTTP/1.0 200"), _context(outcome)


# ------------------------------------------------------------------------------ refused
#: name -> (reason, alert we send, fragments of the explanation), from the offline table.
EXPECTED: dict[str, tuple[str, str, list[str]]] = {
    name: (reason, alert.rfc_name, fragments)
    for name, _error, reason, alert, fragments in REFUSED
}
# Our 127.0.0.1 variant of the IP mismatch: the name we asked for is the target itself.
EXPECTED["ip san mismatch"] = (
    "hostname_mismatch", "certificate_unknown",
    ["valid for 192.0.2.7, 2001:db8::7; we asked for '127.0.0.1'"])
# The gallery's "not among the 1 trusted certificate" depends on the store's wording for
# certificates given in memory; from --cafile we check the rest of the sentence.
EXPECTED["unknown ca"] = (
    "unknown_issuer", "unknown_ca",
    ["chains up to 'O=tlsmith gallery,CN=Stranger Root' (via 1 intermediate)", "--cafile"])
REFUSED_NAMES = list(EXPECTED)


@pytest.mark.parametrize(("name", "peer"), cases(REFUSED_NAMES))
def test_gallery_refused_over_the_wire(world: World, peers: Peers, name: str,
                                       peer: str) -> None:
    served = world.exhibits[name]
    reason, alert, fragments = EXPECTED[name]
    outcome = connect(peers.port(name, peer), served, peer)
    out = outcome.out
    assert outcome.code == 1, _context(outcome)
    assert out["ok"] is False, _context(outcome)
    assert out.get("reason") == reason, _context(outcome)
    assert out.get("alert_sent") == alert, _context(outcome)
    for fragment in fragments:
        assert fragment in out["explanation"], _context(outcome)
    assert "malformed" not in out["explanation"]
    assert f"(reason: {reason})" in out["explanation"]
    # The chain the server sent, in the order sent.
    assert [c["subject"] for c in out["peer_chain"]] == [
        x509.load_der_x509_certificate(der).subject.rfc4514_string() for der in served.chain
    ], _context(outcome)


#: Failures run without --json: the chain is printed on stderr (subject, issuer, SANs).
PRINTED = ["expired", "wrong host", "unknown ca", "missing intermediate", "self-signed untrusted"]


@pytest.mark.parametrize("name", PRINTED)
def test_failure_prints_the_chain(world: World, peers: Peers, name: str) -> None:
    served = world.exhibits[name]
    outcome = connect(peers.port(name, "openssl-1.3"), served, "openssl-1.3", as_json=False)
    assert outcome.code == 1, outcome.stdout + outcome.stderr
    text = " ".join(outcome.stderr.split())  # undo any wrapping
    assert "Certificate chain the server sent:" in text, outcome.stderr
    assert f"0 s:{served.subject}" in text, outcome.stderr
    assert f"(reason: {EXPECTED[name][0]})" in text
    san = x509.load_der_x509_certificate(served.chain[0]).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    first = san[0]
    shown = (f"IP:{first.value}" if isinstance(first, x509.IPAddress)
             else f"DNS:{first.value}")
    assert shown in text, outcome.stderr
    if name == "missing intermediate":
        assert AIA_URL in text


# ------------------------------------------------------------------------------ malformed
# A malformed leaf (gallery.malformed) before a good intermediate. OpenSSL serves the
# "version 3" and "issuer name" ones (it parses them); it cannot load the truncated one,
# and `tlsmith serve` loads none of them, so tlsmith's side is the in-process server built
# from the raw DER chain (CertifiedKey takes DER as is).
MALFORMED_CASES = [
    ("version 3", "openssl-1.3"), ("version 3", "openssl-1.2"),
    ("issuer name", "openssl-1.3"), ("issuer name", "openssl-1.2"),
    *((kind, peer) for kind in ("version 3", "issuer name", "truncated")
      for peer in ("tlsmith-1.3", "tlsmith-1.2")),
]


@pytest.mark.parametrize(("kind", "peer"), MALFORMED_CASES)
def test_malformed_leaf_over_the_wire(world: World, peers: Peers, kind: str,
                                      peer: str) -> None:
    name = f"malformed {kind}"
    outcome = connect(peers.port(name, peer), world.exhibits[name], peer)
    out = outcome.out
    assert outcome.code == 1, _context(outcome)
    assert out["ok"] is False
    assert out.get("error") == "BadCertificate", _context(outcome)
    assert out.get("reason") == "malformed", _context(outcome)
    assert out.get("alert_sent") == "bad_certificate", _context(outcome)
    assert "The certificate's encoding (ASN.1/DER) is invalid." in out["explanation"]
    # (TLS 1.2 too: the chain is checked before the leaf's key is read, so the error
    # carries the chain as sent.)
    assert "not valid DER X.509" in out["explanation"], _context(outcome)
    assert "the server's certificate" in out["explanation"]
    assert out["peer_chain"][0]["subject"] == "(unreadable)"
    assert out["peer_chain"][1]["subject"] == "O=tlsmith gallery,CN=Gallery Mid"


# ------------------------------------------------------------------------------ revocation
# name -> (client args, ok, error class, alert we send, reason, explanation fragments)
REVOCATION: dict[str, tuple[tuple[str, ...], bool, str | None, str | None, str | None,
                            list[str]]] = {
    "revoked via crl": (("--crl", "CRL"), False, "CertificateRevoked", "certificate_revoked",
                        "revoked", ["CN=a.example.com (serial 0x", "was revoked on",
                                    "(keyCompromise) according to the CRL of "
                                    "O=tlsmith gallery,CN=Gallery Mid"]),
    "revoked via ocsp": ((), False, "CertificateRevoked", "certificate_revoked", "revoked",
                         ["CN=a.example.com (serial 0x", "was revoked on",
                          "(keyCompromise)"]),
    "good ocsp": (("--require-revocation",), True, None, None, None, []),
    "stale ocsp": ((), False, "BadCertificateStatusResponse",
                   "bad_certificate_status_response", None,
                   ["the stapled OCSP response is stale: its nextUpdate"]),
    "must-staple without staple": ((), False, "BadCertificateStatusResponse",
                                   "bad_certificate_status_response", None,
                                   ["requires a stapled OCSP response (must-staple, RFC 7633)"
                                    " but the server sent none"]),
    "no revocation information": (("--require-revocation",), False, None,
                                  "certificate_unknown", "policy", [NOT_CHECKED_SENTENCE]),
}
REVOCATION_PEERS = ("openssl-1.3", "openssl-1.2", "tlsmith-1.3", "tlsmith-1.2")


@pytest.mark.parametrize("peer", REVOCATION_PEERS)
@pytest.mark.parametrize("name", list(REVOCATION))
def test_revocation_over_the_wire(world: World, peers: Peers, name: str, peer: str) -> None:
    served = world.exhibits[name]
    args, ok, error, alert, reason, fragments = REVOCATION[name]
    args = tuple(str(world.directory / "revocations.crl.pem") if a == "CRL" else a
                 for a in args)
    outcome = connect(peers.port(name, peer), served, peer, extra=args)
    out = outcome.out
    assert out["ok"] is ok, _context(outcome)
    assert outcome.code == (0 if ok else 1), _context(outcome)
    if ok:
        assert out["revocation"]["state"] == "good", _context(outcome)
        assert "the stapled OCSP response signed by the issuer" in out["revocation"][
            "detail"], _context(outcome)
        return
    if error is not None:
        assert out["error"] == error, _context(outcome)
    assert out.get("alert_sent") == alert, _context(outcome)
    if reason is not None:
        assert out.get("reason") == reason, _context(outcome)
    for fragment in fragments:
        assert fragment in out["explanation"], _context(outcome)
    if name.startswith("revoked"):
        # The revocation time is named (at least its date).
        assert REVOKED_AT.strftime("%Y-%m-%d") in out["explanation"], _context(outcome)


def test_revocation_soft_fails_and_says_so(world: World, peers: Peers) -> None:
    """No staple, no CRL and no --require-revocation: connected, and the output says
    revocation was not checked."""
    name = "no revocation information"
    outcome = connect(peers.port(name, "openssl-1.3"), world.exhibits[name], "openssl-1.3")
    assert outcome.code == 0 and outcome.out["ok"] is True, _context(outcome)
    assert outcome.out["revocation"]["state"] == "not_checked", _context(outcome)
    assert outcome.out["revocation"]["detail"] == NOT_CHECKED_SENTENCE


def test_ip_exhibit_is_really_an_ip_san(world: World) -> None:
    leaf = x509.load_der_x509_certificate(world.exhibits["ip san"].chain[0])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert not san.get_values_for_type(x509.DNSName)
