"""``tlsmith probe`` agrees with ``openssl s_client`` about ``openssl s_server``.

Six server configurations (TLS 1.3-only, TLS 1.2-only, CBC-only, RSA-key-transport-only,
P-384-only, ECDSA+RSA dual certificates). For each: the versions the probe reports are
exactly those s_client can handshake with, and a couple of suites the probe lists (and
one it does not) give the same verdict with ``s_client -cipher X``.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import CertFiles, require_peer
from peers import openssl, run_s_client, start_s_server
from tlsmith.probe.scan import ProbeOptions, run_probe

_VERSION_FLAGS = {"TLSv1.3": "-tls1_3", "TLSv1.2": "-tls1_2", "TLSv1.1": "-tls1_1",
                  "TLSv1.0": "-tls1"}


@functools.cache
def iana_to_openssl() -> dict[str, str]:
    """IANA suite name -> OpenSSL's, from ``openssl ciphers -stdname``."""
    out = subprocess.run([openssl(), "ciphers", "-stdname", "ALL:@SECLEVEL=0"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    table: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "-":
            table[parts[0]] = parts[2]
    return table


def s_client_ok(port: int, *args: str) -> bool:
    """Whether ``openssl s_client ARGS`` completes a handshake with the server."""
    res = run_s_client(port, "-servername", "localhost", *args, stdin=b"Q\n", timeout=10)
    text = res.text
    return "Cipher is (NONE)" not in text and ("New, TLSv1" in text or "Cipher is " in text) \
        and res.returncode == 0


def suite_ok(port: int, version: str, iana: str) -> bool:
    name = iana_to_openssl().get(iana, iana)
    if version == "TLSv1.3":
        return s_client_ok(port, "-tls1_3", "-ciphersuites", name)
    return s_client_ok(port, _VERSION_FLAGS[version], "-cipher", f"{name}:@SECLEVEL=0")


def probe(port: int) -> dict[str, Any]:
    # No trust store: certificates are described, not verified (s_server's dev chain).
    return run_probe(ProbeOptions("127.0.0.1", port, server_name="localhost", timeout=5,
                                  robot=False))


CONFIGS: dict[str, tuple[tuple[str, ...], bool]] = {
    # name: (extra s_server arguments, TLS 1.3 only)
    "tls13_only": (("-serverpref",), True),  # its own order: AES-256 first
    "tls12_only": (("-tls1_2",), False),
    "cbc_only": (("-no_tls1_3", "-cipher", "ECDHE-RSA-AES128-SHA:AES256-SHA256"), False),
    "rsa_kx_only": (("-no_tls1_3", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384"),
                    False),
    "p384_only": (("-groups", "P-384"), False),
    "dual_certs": ((), False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_probe_agrees_with_s_client(name: str, certs: dict[str, CertFiles],
                                    tmp_path: Path) -> None:
    extra, tls13_only = CONFIGS[name]
    cert = certs["rsa-2048"]
    if name == "dual_certs":
        ec = certs["ecdsa-p256"]
        extra = ("-dcert", str(ec.cert_path), "-dkey", str(ec.key_path))
    with start_s_server(cert, *extra, "-www", log_dir=tmp_path, tls13_only=tls13_only) \
            as server:
        port = server.port
        r = probe(port)
        versions = r["versions"]
        assert versions, r
        # Versions: the probe's list is exactly what s_client can use (1.2 and 1.3; the
        # older ones depend on the local OpenSSL security level on both sides).
        for label in ("TLSv1.3", "TLSv1.2"):
            assert (label in versions) == s_client_ok(port, _VERSION_FLAGS[label]), label
        suites = r["cipher_suites"]
        # Suites: the first two the probe lists work with s_client; one it omits fails.
        for version, names in suites.items():
            if version not in ("TLSv1.3", "TLSv1.2"):
                continue
            for iana in names[:2]:
                assert suite_ok(port, version, iana), (version, iana)
        expect_absent = {
            "tls13_only": ("TLSv1.3", "TLS_AES_128_CCM_SHA256"),
            "tls12_only": ("TLSv1.2", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
            "cbc_only": ("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "rsa_kx_only": ("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "p384_only": ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            "dual_certs": ("TLSv1.2", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
        }[name]
        version, absent = expect_absent
        assert absent not in suites.get(version, [])
        if version in versions:
            assert not suite_ok(port, version, absent), absent

        if name == "tls13_only":
            assert versions == ["TLSv1.3"]
            assert suites["TLSv1.3"][:3] == ["TLS_AES_256_GCM_SHA384",
                                             "TLS_CHACHA20_POLY1305_SHA256",
                                             "TLS_AES_128_GCM_SHA256"]
            assert r["cipher_preference"]["TLSv1.3"] == "server"
        elif name == "tls12_only":
            assert versions == ["TLSv1.2"]
            assert "no_tls13" in {f["id"] for f in r["findings"]}
        elif name == "cbc_only":
            assert suites["TLSv1.2"] == ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                                         "TLS_RSA_WITH_AES_256_CBC_SHA256"]
            assert "cbc_suites" in {f["id"] for f in r["findings"]}
        elif name == "rsa_kx_only":
            assert suites["TLSv1.2"] == ["TLS_RSA_WITH_AES_128_GCM_SHA256",
                                         "TLS_RSA_WITH_AES_256_GCM_SHA384"]
            assert "rsa_key_exchange" in {f["id"] for f in r["findings"]}
            assert r["rating"]["grade"] in ("B", "C")
        elif name == "p384_only":
            assert r["groups"]["TLSv1.3"] == ["secp384r1"]
            assert r["groups"]["TLSv1.2"] == ["secp384r1"]
            assert not s_client_ok(port, "-tls1_3", "-groups", "X25519")
            assert s_client_ok(port, "-tls1_3", "-groups", "P-384")
        elif name == "dual_certs":
            keys = sorted(c["key"] for c in r["certificates"])
            assert keys == ["EC secp256r1", "RSA 2048"], keys
            t12 = suites["TLSv1.2"]
            assert any("ECDSA" in s for s in t12) and any("_RSA_WITH" in s for s in t12)


def test_robot_not_vulnerable_openssl(certs: dict[str, CertFiles], tmp_path: Path) -> None:
    """OpenSSL implements RFC 5246 §7.4.7.1's countermeasure: no oracle."""
    with start_s_server(certs["rsa-2048"], "-no_tls1_3", "-cipher", "AES128-GCM-SHA256",
                        "-www", log_dir=tmp_path, tls13_only=False) as server:
        r = run_probe(ProbeOptions("127.0.0.1", server.port, server_name="localhost",
                                   timeout=3))
    assert r["robot"]["result"] == "not vulnerable", r["robot"]


def _nmap_ssl_enum(port: int) -> dict[str, tuple[set[str], str | None]]:
    """nmap's ssl-enum-ciphers: version -> (suite names, cipher preference)."""
    import xml.etree.ElementTree as ET

    from peers import run_process_group

    nmap = require_peer("nmap")
    res = run_process_group([nmap, "-Pn", "-n", "-p", str(port), "--script",
                             "ssl-enum-ciphers", "-oX", "-", "127.0.0.1"], timeout=60,
                            what="nmap ssl-enum-ciphers")
    root = ET.fromstring(res.stdout)
    script = root.find(".//script[@id='ssl-enum-ciphers']")
    assert script is not None, res.text
    out: dict[str, tuple[set[str], str | None]] = {}
    for table in script.findall("table"):
        version = table.get("key", "")
        names = {e.text or "" for e in table.findall("./table[@key='ciphers']/table/"
                                                       "elem[@key='name']")}
        # nmap spells the TLS 1.3 suites TLS_AKE_WITH_*; IANA has TLS_*.
        names = {n.replace("TLS_AKE_WITH_", "TLS_") for n in names}
        pref = table.find("elem[@key='cipher preference']")
        out["TLSv1.0" if version == "TLSv1.0" else version] = (
            names, pref.text if pref is not None else None)
    return out


@pytest.mark.parametrize("extra", [("-cipher", "ALL:@SECLEVEL=0"),
                                   ("-serverpref", "-no_tls1_3", "-cipher",
                                    "ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA:DHE-RSA-AES128-SHA")])
def test_probe_agrees_with_nmap(extra: tuple[str, ...], certs: dict[str, CertFiles],
                                tmp_path: Path) -> None:
    """Versions, and for every suite the probe offers, supported or not, agree with
    nmap's ssl-enum-ciphers (nmap knows more suites; only ours are compared)."""
    from tlsmith.probe.suites import SUITE_NAMES

    with start_s_server(certs["rsa-2048"], *extra, "-www", log_dir=tmp_path,
                        tls13_only=False) as server:
        r = probe(server.port)
        nm = _nmap_ssl_enum(server.port)
    assert sorted(r["versions"]) == sorted(nm), (r["versions"], list(nm))
    ours = set(SUITE_NAMES.values())
    for version, (names, pref) in nm.items():
        assert set(r["cipher_suites"][version]) == names & ours, version
        if pref is not None and version in r["cipher_preference"]:
            assert r["cipher_preference"][version] == pref, version
