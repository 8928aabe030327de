"""The scanner behind ``tlsmith probe HOST[:PORT]``.

Two instruments:

* the raw prober (``hello.send_client_hello``): one ClientHello, the plaintext answer.
  Used for everything the server reveals in its first flight -- versions, suites, groups,
  TLS 1.2 signature algorithms, extensions (EMS, renegotiation_info), downgrade
  signalling, tolerance tests -- including what tlsmith itself does not implement;
* full tlsmith handshakes (``tlsmith.io.blocking.connect``): certificates and their
  verification, TLS 1.3 signature algorithms, ALPN, resumption, 0-RTT.

Work is split into tasks (one per question) run by a thread pool; every connection goes
through ``Gate``, which bounds how many are open at once (``concurrency``) and spaces their
starts (``spacing`` seconds): a scan is a burst of a few hundred connections, and a
polite scanner must not look like a flood.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tlsmith import fingerprint
from tlsmith.codec import extensions as ext
from tlsmith.codec.enums import (
    AlertDescription,
    CipherSuite,
    ContentType,
    ExtensionType,
    ProtocolVersion,
    SignatureScheme,
)
from tlsmith.codec.messages import DOWNGRADE_TLS11, DOWNGRADE_TLS12, ClientKeyExchangeRSA
from tlsmith.config import ClientConfig
from tlsmith.findings import Finding, Severity
from tlsmith.probe.hello import (
    HelloAnswer,
    build_client_hello,
    hello_records,
    read_server_flight,
    send_client_hello,
)
from tlsmith.probe.suites import (
    FFDHE_GROUPS,
    SIGNATURE_NAMES,
    TLS12_EC_GROUPS,
    TLS12_SUITES,
    TLS13_GROUPS,
    TLS13_SUITES,
    VERSION_LABELS,
    group_name,
    is_cbc,
    key_exchange,
    signature_name,
    suite_name,
    tls12_only,
    weakness,
)
from tlsmith.record.framing import encode_record_header

if TYPE_CHECKING:
    from tlsmith.config import CertifiedKey
    from tlsmith.x509.verify import TrustStore

SCHEMA_VERSION = 1
RESUMPTION_ATTEMPTS = 3
ALL_VERSIONS = (0x0304, 0x0303, 0x0302, 0x0301)
_SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


@dataclass
class ProbeOptions:
    host: str
    port: int
    server_name: str | None = None
    trust: TrustStore | None = None  # None: certificates are described, not verified
    certificate: CertifiedKey | None = None  # for servers that ask (mutual TLS)
    timeout: float = 5.0
    concurrency: int = 4
    spacing: float = 0.01
    robot: bool = True
    # progress(step name, steps done, steps in all): for a progress bar.
    progress: Callable[[str, int, int], None] | None = None

    @property
    def sni(self) -> str | None:
        from tlsmith.handshake.client import sni_name

        return sni_name(self.server_name or self.host)


class Gate:
    """At most ``limit`` connections open at once, starts at least ``spacing`` s apart."""

    def __init__(self, limit: int, spacing: float) -> None:
        self._sem = threading.BoundedSemaphore(max(1, limit))
        self._lock = threading.Lock()
        self._next = 0.0
        self._spacing = spacing
        self.connections = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._sem:
            with self._lock:
                now = time.monotonic()
                wait = self._next - now
                self._next = max(now, self._next) + self._spacing
                self.connections += 1
            if wait > 0:
                time.sleep(wait)
            yield


@dataclass
class Results:
    versions: list[str] = field(default_factory=list)
    version_codes: list[int] = field(default_factory=list)
    cipher_suites: dict[str, list[str]] = field(default_factory=dict)
    cipher_preference: dict[str, str] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    dhe_prime_bits: int | None = None
    signature_algorithms: dict[str, list[str]] = field(default_factory=dict)
    certificates: list[dict[str, Any]] = field(default_factory=list)
    ocsp_stapling: bool | None = None
    resumption: dict[str, Any] = field(default_factory=dict)
    early_data: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    alpn: dict[str, Any] = field(default_factory=dict)
    robot: dict[str, Any] = field(default_factory=dict)
    ja4s: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, finding: Finding) -> None:
        with self.lock:
            self.findings.append(finding)


class Scanner:
    def __init__(self, opts: ProbeOptions) -> None:
        self.o = opts
        self.gate = Gate(opts.concurrency, opts.spacing)
        self.r = Results()
        self.answers: dict[int, HelloAnswer] = {}
        self.done = 0
        self.total = 2  # versions, then the tasks they make possible

    # -- instruments --------------------------------------------------------------------
    def hello(self, **kw: Any) -> HelloAnswer:
        kw.setdefault("server_name", self.o.sni)
        kw.setdefault("timeout", self.o.timeout)
        if kw.get("key_share_groups") is None and 0x001D in kw.get("groups", ()):
            # One x25519 share keeps hellos small (a 1.2 KB ML-KEM share would make every
            # probe a "large hello" test); other servers answer with an HRR.
            kw["key_share_groups"] = (0x001D,)
        with self.gate.slot():
            return send_client_hello(self.o.host, self.o.port, **kw)

    def client_config(self, **kw: Any) -> ClientConfig:
        """A permissive tlsmith client: the scanner observes, it does not enforce."""
        verify = bool(kw.pop("verify", True)) and self.o.trust is not None
        base: dict[str, Any] = dict(
            server_name=self.o.sni, trust=self.o.trust if verify else None,
            verify_certificates=verify, certificate=self.o.certificate,
            require_extended_master_secret=False, allow_mac_then_encrypt=True,
            min_dhe_bits=1024,
        )
        base.update(kw)
        return ClientConfig(**base)

    def handshake(self, config: ClientConfig, **kw: Any) -> Any:
        """A full tlsmith handshake; returns the open TLSSocket (caller closes)."""
        from tlsmith.io.blocking import connect

        with self.gate.slot():
            return connect(self.o.host, self.o.port, config, timeout=self.o.timeout, **kw)

    def step(self, text: str) -> None:
        if self.o.progress is not None:
            with self.r.lock:
                self.done += 1
                done, total = self.done, max(self.total, self.done)
            self.o.progress(text, done, total)

    # -- the scan ---------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.probe_versions()
        tasks: list[Callable[[], None]] = []
        for code in self.r.version_codes:
            tasks.append(functools.partial(self.probe_suites, code))
        if 0x0304 in self.r.version_codes:
            tasks.append(self.probe_groups13)
        if 0x0303 in self.r.version_codes:
            tasks += [self.probe_groups12, self.probe_sigalgs12, self.probe_renegotiation_ems,
                      self.probe_robot]
        if {0x0304, 0x0303} & set(self.r.version_codes):
            tasks += [self.probe_certificates, self.probe_resumption, self.probe_alpn]
        if 0x0304 in self.r.version_codes:
            tasks += [self.probe_sigalgs13]
        if self.r.version_codes:
            tasks += [self.probe_downgrade, self.probe_compression, self.probe_grease,
                      self.probe_large_hello]
        self.total = 1 + len(tasks)
        with ThreadPoolExecutor(max_workers=max(1, self.o.concurrency)) as pool:
            futures = [pool.submit(self._guard, t) for t in tasks]
            for f in futures:
                f.result()
        self.judge()
        return self.to_json(time.monotonic() - started)

    def _guard(self, task: Callable[[], None]) -> None:
        name = str(getattr(task, "__name__", None) or getattr(
            getattr(task, "func", None), "__name__", "probe"))
        try:
            task()
        except Exception as exc:  # one failed question must not sink the scan
            with self.r.lock:
                self.r.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        self.step(name)

    # -- versions -------------------------------------------------------------------------
    def probe_versions(self) -> None:
        """One hello per version (RFC 8446 §4.2.1 for 1.3; legacy_version below)."""
        all_suites = (*TLS13_SUITES, *TLS12_SUITES)
        groups = TLS13_GROUPS
        answers: dict[int, HelloAnswer] = {}

        def one(v: int) -> None:
            answers[v] = self.hello(versions=(v,), cipher_suites=all_suites, groups=groups)

        with ThreadPoolExecutor(max_workers=max(1, self.o.concurrency)) as pool:
            list(pool.map(one, ALL_VERSIONS))
        self.step("versions")
        errors = [a.error for a in answers.values() if a.error]
        if errors and all(a.error and not a.alert for a in answers.values()):
            raise ConnectionError(f"no TLS answer from {self.o.host}:{self.o.port}: "
                                  f"{errors[0]}")
        for v in ALL_VERSIONS:
            a = answers[v]
            if a.server_hello is not None and a.version is not None and int(a.version) == v:
                self.r.version_codes.append(v)
                self.r.versions.append(VERSION_LABELS[v])
        self.answers = answers
        # JA4S of the answer to a browser-like hello offering every version.
        typical = self.hello(versions=ALL_VERSIONS, cipher_suites=all_suites, groups=groups,
                             alpn=("h2", "http/1.1"))
        if typical.server_hello is not None:
            self.r.ja4s = {"ja4s": ja4s(typical), "raw": ja4s(typical, raw=True)}

    # -- cipher suites --------------------------------------------------------------------
    def probe_suites(self, version: int) -> None:
        """RFC 5246 §7.4.1.2 / RFC 8446 §4.1.1: the server picks one suite from our list.
        Offer all, remove the chosen one, repeat: the picks come in preference order."""
        offered = list(TLS13_SUITES if version == 0x0304 else
                       (c for c, n in TLS12_SUITES.items()
                        if version == 0x0303 or not tls12_only(n)))
        chosen: list[int] = []
        while offered:
            a = self.hello(versions=(version,), cipher_suites=tuple(offered),
                           groups=TLS13_GROUPS)
            if a.server_hello is None or a.cipher_suite is None:
                break
            c = int(a.cipher_suite)
            if c not in offered or (a.version is not None and int(a.version) != version):
                break  # a server choosing what we did not offer: stop, do not loop
            chosen.append(c)
            offered.remove(c)
        label = VERSION_LABELS[version]
        with self.r.lock:
            self.r.cipher_suites[label] = [suite_name(c) for c in chosen]
        if len(chosen) >= 2:
            # Offer the top two reversed: a server that follows its own order still picks
            # the first; one that follows the client's picks the other.
            a = self.hello(versions=(version,), cipher_suites=(chosen[1], chosen[0]),
                           groups=TLS13_GROUPS)
            pref = ("server" if a.cipher_suite is not None and int(a.cipher_suite) == chosen[0]
                    else "client")
            with self.r.lock:
                self.r.cipher_preference[label] = pref

    # -- groups ---------------------------------------------------------------------------
    def probe_groups13(self) -> None:
        """RFC 8446 §4.1.4: with an empty key_share, the server names its group in a
        HelloRetryRequest; remove it and ask again."""
        offered = list(TLS13_GROUPS)
        found: list[int] = []
        while offered:
            a = self.hello(versions=(0x0304,), cipher_suites=tuple(TLS13_SUITES),
                           groups=tuple(offered), key_share_groups=())
            if a.group is None or int(a.group) not in offered:
                break
            found.append(int(a.group))
            offered.remove(int(a.group))
        with self.r.lock:
            self.r.groups["TLSv1.3"] = [group_name(g) for g in found]

    def probe_groups12(self) -> None:
        """RFC 8422 §5.1.1: an ECDHE suite with one supported_groups entry at a time; the
        ServerKeyExchange names the curve. FFDHE groups (RFC 7919 §4) with DHE suites."""
        ecdhe = tuple(c for c, n in TLS12_SUITES.items() if key_exchange(n) == "ECDHE")
        dhe = tuple(c for c, n in TLS12_SUITES.items() if key_exchange(n) == "DHE")
        found: list[str] = []
        cert_curve = _ecdsa_curve(self.answers.get(0x0303))
        for g in TLS12_EC_GROUPS:
            a = self.hello(versions=(0x0303,), cipher_suites=ecdhe, groups=(g,))
            if not a.accepted and cert_curve is not None and g != cert_curve:
                # RFC 8422 §5.1: an ECDSA certificate's curve must be among the client's
                # groups too, so add it behind g; the ServerKeyExchange names the choice
                # (a group the server ranks below its certificate's curve stays unseen).
                a = self.hello(versions=(0x0303,), cipher_suites=ecdhe,
                               groups=(g, cert_curve))
            if a.accepted and a.group is not None and int(a.group) == g:
                found.append(group_name(g))
        dh_bits: int | None = None
        for g in FFDHE_GROUPS:
            a = self.hello(versions=(0x0303,), cipher_suites=dhe, groups=(g,))
            if a.accepted and a.dh_prime_bits:
                dh_bits = a.dh_prime_bits if dh_bits is None else min(dh_bits, a.dh_prime_bits)
                if a.group is not None and int(a.group) == g:
                    found.append(group_name(g))
            elif not a.accepted:
                break  # no DHE at all (or not with this group): stop asking
        with self.r.lock:
            self.r.groups["TLSv1.2"] = found
            self.r.dhe_prime_bits = dh_bits

    # -- signature algorithms ---------------------------------------------------------
    def probe_sigalgs12(self) -> None:
        """RFC 5246 §7.4.1.4.1: with one signature_algorithms entry, the ServerKeyExchange
        is signed with it or the handshake fails."""
        fs = tuple(c for c, n in TLS12_SUITES.items() if key_exchange(n) in ("ECDHE", "DHE"))
        found: list[str] = []
        for s in SIGNATURE_NAMES:
            a = self.hello(versions=(0x0303,), cipher_suites=fs, groups=TLS13_GROUPS,
                           signature_schemes=(s,))
            if a.accepted and a.ske_signature_scheme is not None and \
                    int(a.ske_signature_scheme) == s:
                found.append(signature_name(s))
        with self.r.lock:
            self.r.signature_algorithms["TLSv1.2"] = found

    def probe_sigalgs13(self) -> None:
        """RFC 8446 §4.4.3: the CertificateVerify is encrypted, so one full tlsmith
        handshake per scheme tlsmith implements (bounded: ~14)."""
        from tlsmith.config import DEFAULT_SIGNATURE_SCHEMES

        found: list[str] = []
        for s in DEFAULT_SIGNATURE_SCHEMES:
            cfg = self.client_config(verify=False, signature_schemes=(s,),
                                     min_version=ProtocolVersion.TLS13)
            try:
                tls = self.handshake(cfg)
            except Exception:
                continue
            with tls:
                if tls.info.signature_scheme is not None:
                    found.append(signature_name(int(tls.info.signature_scheme)))
        with self.r.lock:
            self.r.signature_algorithms["TLSv1.3"] = found

    # -- certificates -------------------------------------------------------------------
    def probe_certificates(self) -> None:
        """One full handshake per key type (RFC 8446 §4.4.2.2: the server picks its
        certificate by our signature_algorithms), then verification and checks."""
        from tlsmith.config import DEFAULT_SUITES
        from tlsmith.errors import CertificateError

        kinds = {
            "ecdsa": (SignatureScheme.ECDSA_SECP256R1_SHA256,
                      SignatureScheme.ECDSA_SECP384R1_SHA384,
                      SignatureScheme.ECDSA_SECP521R1_SHA512),
            "rsa": (SignatureScheme.RSA_PSS_RSAE_SHA256, SignatureScheme.RSA_PSS_RSAE_SHA384,
                    SignatureScheme.RSA_PSS_RSAE_SHA512, SignatureScheme.RSA_PKCS1_SHA256,
                    SignatureScheme.RSA_PKCS1_SHA384, SignatureScheme.RSA_PKCS1_SHA512),
            "ed25519": (SignatureScheme.ED25519,),
        }
        rsa_kx = tuple(CipherSuite(c) for c, n in TLS12_SUITES.items()
                       if key_exchange(n) == "RSA" and c in CipherSuite._value2member_map_)
        seen: set[bytes] = set()
        tls13 = 0x0304 in self.r.version_codes
        for kind, schemes in kinds.items():
            suites: tuple[CipherSuite, ...] = DEFAULT_SUITES
            if not tls13:
                auth = "ECDSA" if kind == "ecdsa" else "RSA"
                suites = tuple(s for s in (*DEFAULT_SUITES, *rsa_kx)
                               if f"_{auth}_" in s.name or
                               (auth == "RSA" and s.name.startswith("TLS_RSA_")))
                if kind == "ed25519":
                    suites = tuple(s for s in DEFAULT_SUITES if "ECDSA" in s.name)
            info = None
            problem: CertificateError | None = None
            for verify in (True, False):
                try:
                    cfg = self.client_config(
                        verify=verify, signature_schemes=schemes, cipher_suites=suites,
                        min_version=(ProtocolVersion.TLS13 if tls13 else
                                     ProtocolVersion.TLS12))
                    tls = self.handshake(cfg)
                except CertificateError as exc:
                    problem = exc
                    continue
                except Exception:
                    break
                with tls:
                    info = tls.info
                break
            if info is None or not info.peer_certificates:
                continue
            leaf = info.peer_certificates[0]
            if leaf in seen:
                continue
            seen.add(leaf)
            entry = describe_chain(info.peer_certificates, self.o.sni)
            entry["key_type_asked"] = kind
            entry["verified"] = problem is None and info.certificate_verified
            entry["verification"] = (
                "not checked (no trust store)" if self.o.trust is None else
                ("ok" if problem is None else f"{problem.reason}: {problem.message}"))
            entry["revocation"] = info.revocation_state
            entry["ocsp_stapled"] = (info.revocation_state in ("good", "revoked", "stale")
                                     or (problem is not None and problem.reason == "revoked"))
            with self.r.lock:
                self.r.certificates.append(entry)
                if entry["ocsp_stapled"]:
                    self.r.ocsp_stapling = True
            self.certificate_findings(entry, problem)
        # TLS 1.2 staples are plaintext: the version probe's CertificateStatus shows them.
        a12 = self.answers.get(0x0303)
        with self.r.lock:
            if a12 is not None and a12.ocsp_response:
                self.r.ocsp_stapling = True
            elif self.r.ocsp_stapling is None:
                self.r.ocsp_stapling = False

    def certificate_findings(self, entry: dict[str, Any], problem: Any) -> None:
        subject = entry.get("subject", "?")
        ev = f"certificate {subject} ({entry.get('key')})"
        if problem is not None:
            reason = problem.reason
            ids = {"expired": "certificate_expired", "not_yet_valid":
                   "certificate_not_yet_valid", "hostname_mismatch": "hostname_mismatch",
                   "self_signed": "self_signed", "unknown_issuer": "unknown_issuer",
                   "missing_intermediate": "missing_intermediate",
                   "revoked": "certificate_revoked", "weak_key": "weak_key"}
            self.r.add(Finding(ids.get(reason, "certificate_invalid"), "critical",
                               f"the certificate chain does not verify: {problem.message}",
                               "install a certificate chain from a trusted CA that is valid "
                               "for this name, with its intermediates", ev))
        days = entry.get("days_left")
        lifetime = entry.get("lifetime_days")
        if isinstance(days, int) and isinstance(lifetime, int) and days >= 0:
            # Short-lived certificates are normal; what matters is whether renewal is
            # overdue: under 7 days, or under a third of the lifetime (ACME practice).
            if days < 7:
                self.r.add(Finding("certificate_expiring", "medium",
                                   f"the certificate expires in {days} day(s)",
                                   "renew the certificate (automate it, e.g. ACME)", ev))
            elif days < lifetime / 3:
                self.r.add(Finding("certificate_expiring", "info",
                                   f"the certificate expires in {days} day(s) (renewal due)",
                                   "renew the certificate", ev))
        bits = entry.get("key_bits")
        kind = str(entry.get("key", ""))
        if isinstance(bits, int) and ((kind.startswith("RSA") and bits < 2048) or
                                      (kind.startswith("EC") and bits < 256)):
            self.r.add(Finding("weak_key", "high", f"the certificate key is {kind}",
                               "use RSA >= 2048 bits or ECDSA P-256 or better", ev))
        if "sha1" in str(entry.get("signature_algorithm", "")).lower():
            self.r.add(Finding("sha1_signature", "high",
                               "the certificate is signed with SHA-1",
                               "reissue the certificate with SHA-256", ev))
        if entry.get("revocation") == "revoked":
            self.r.add(Finding("certificate_revoked", "critical",
                               "the stapled OCSP response says the certificate is revoked",
                               "replace the certificate", ev))

    # -- resumption and 0-RTT -----------------------------------------------------------
    def _resume_chain(self, cfg: ClientConfig, attempts: int, *, wait: float = 1.0
                      ) -> tuple[int, int, Any, str | None]:
        """A full handshake, then ``attempts`` resumptions, each with the newest
        session. Returns (resumed, tried, last session, how)."""
        tls = self.handshake(cfg)
        with tls:
            session = tls.wait_for_session(wait)
        resumed = tried = 0
        how: str | None = None
        for _ in range(attempts):
            if session is None:
                break
            tried += 1
            tls = self.handshake(cfg, session=session)
            with tls:
                if tls.info.resumed:
                    resumed += 1
                    how = tls.info.resumed_with
                session = tls.wait_for_session(wait) or session
        return resumed, tried, session, how

    def probe_resumption(self) -> None:
        out: dict[str, Any] = {}
        if 0x0304 in self.r.version_codes:
            cfg = self.client_config(verify=False, min_version=ProtocolVersion.TLS13)
            try:
                n, tried, session, how = self._resume_chain(cfg, RESUMPTION_ATTEMPTS)
                out["tls13_psk"] = {"resumed": n, "attempts": tried,
                                    "rate": f"{n}/{RESUMPTION_ATTEMPTS} resumed", "mode": how}
                self.probe_early_data(cfg, session)
            except Exception as exc:
                out["tls13_psk"] = {"resumed": 0, "attempts": 0, "rate": "error",
                                    "error": str(exc)}
        if 0x0303 in self.r.version_codes:
            for key, tickets in (("tls12_session_id", False), ("tls12_ticket", True)):
                cfg = self.client_config(verify=False, max_version=ProtocolVersion.TLS12,
                                         session_tickets=tickets,
                                         cipher_suites=_tls12_config_suites())
                try:
                    n, tried, _s, how = self._resume_chain(cfg, RESUMPTION_ATTEMPTS,
                                                           wait=0.2)
                    out[key] = {"resumed": n, "attempts": tried,
                                "rate": f"{n}/{RESUMPTION_ATTEMPTS} resumed", "mode": how}
                except Exception as exc:
                    out[key] = {"resumed": 0, "attempts": 0, "rate": "error",
                                "error": str(exc)}
        with self.r.lock:
            self.r.resumption = out

    def probe_early_data(self, cfg: ClientConfig, session: Any) -> None:
        """RFC 8446 §4.2.10: resume with 0-RTT data; the server's EncryptedExtensions
        says whether it took it. The data is an idempotent HTTP HEAD (RFC 8470 §2)."""
        result: dict[str, Any] = {"offered_by_server": False, "accepted": None}
        if session is not None and int(getattr(session, "max_early_data", 0)):
            result["offered_by_server"] = True
            result["max_early_data"] = session.max_early_data
            host = self.o.sni or self.o.host
            data = f"HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            try:
                tls = self.handshake(cfg, session=session, early_data=data)
                with tls:
                    result["accepted"] = bool(tls.early_data_accepted)
            except Exception as exc:
                result["error"] = str(exc)
        with self.r.lock:
            self.r.early_data = result
        if result.get("accepted"):
            self.r.add(Finding("early_data_accepted", "info",
                               "the server accepts TLS 1.3 0-RTT data (replayable, RFC 8446 "
                               "§8)", "accept 0-RTT only for idempotent requests (RFC 8470)",
                               "a resumed connection with early data was accepted"))

    # -- ALPN ------------------------------------------------------------------------------
    def probe_alpn(self) -> None:
        supported: list[str] = []
        for proto in ("h2", "http/1.1"):
            cfg = self.client_config(verify=False, alpn_protocols=(proto,),
                                     cipher_suites=_tls12_config_suites(with_13=True))
            try:
                tls = self.handshake(cfg)
            except Exception:
                continue
            with tls:
                if tls.info.alpn == proto:
                    supported.append(proto)
        with self.r.lock:
            self.r.alpn = {"supported": supported}

    # -- TLS 1.2 extensions -------------------------------------------------------------
    def probe_renegotiation_ems(self) -> None:
        a = self.answers.get(0x0303)
        if a is None or not a.accepted:
            return
        reneg = ExtensionType.RENEGOTIATION_INFO in a.extensions
        ems = ExtensionType.EXTENDED_MASTER_SECRET in a.extensions
        with self.r.lock:
            self.r.features["secure_renegotiation"] = reneg
            self.r.features["extended_master_secret"] = ems
        if not reneg:
            self.r.add(Finding("no_secure_renegotiation", "high",
                               "the TLS 1.2 ServerHello has no renegotiation_info (RFC 5746)",
                               "upgrade the TLS library; enable RFC 5746",
                               "TLS 1.2 ServerHello extensions"))
        if not ems:
            self.r.add(Finding("no_extended_master_secret", "medium",
                               "the server does not negotiate extended_master_secret "
                               "(RFC 7627; triple-handshake attacks)",
                               "upgrade the TLS library or enable EMS",
                               "TLS 1.2 ServerHello extensions"))

    # -- downgrade ------------------------------------------------------------------------
    def probe_downgrade(self) -> None:
        codes = self.r.version_codes
        out: dict[str, Any] = {}
        if 0x0304 in codes and 0x0303 in codes:
            a = self.answers[0x0303]
            tail = a.server_hello.random[-8:] if a.server_hello else b""
            out["tls13_downgrade_sentinel"] = tail in (DOWNGRADE_TLS12, DOWNGRADE_TLS11)
            if not out["tls13_downgrade_sentinel"]:
                self.r.add(Finding("no_downgrade_sentinel", "medium",
                                   "a TLS 1.3 server's TLS 1.2 ServerHello lacks the "
                                   "RFC 8446 §4.1.3 downgrade sentinel",
                                   "upgrade the TLS library",
                                   "TLS 1.2 ServerHello.random"))
        if len(codes) >= 2:
            lower = codes[1]
            a = self.hello(versions=(lower,), cipher_suites=(
                *(c for c, n in TLS12_SUITES.items() if lower == 0x0303 or not tls12_only(n)),
                0x5600), groups=TLS13_GROUPS)
            # RFC 7507 §3: a fallback below the server's highest -> inappropriate_fallback.
            ok = a.alert == AlertDescription.INAPPROPRIATE_FALLBACK
            out["fallback_scsv"] = ok
            if not ok:
                protected = bool(out.get("tls13_downgrade_sentinel"))
                self.r.add(Finding(
                    "no_fallback_scsv", "info" if protected else "medium",
                    f"a {VERSION_LABELS[lower]} hello with TLS_FALLBACK_SCSV was not refused "
                    "(RFC 7507)" + (" (the TLS 1.3 downgrade sentinel protects 1.3 clients)"
                                    if protected else ""),
                    "enable TLS_FALLBACK_SCSV handling", f"answer: {_answer_text(a)}"))
        with self.r.lock:
            self.r.features["downgrade"] = out

    # -- tolerance ------------------------------------------------------------------------
    def _best(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        codes = self.r.version_codes
        versions = (0x0304, 0x0303) if 0x0304 in codes else (codes[0],)
        return versions, (*TLS13_SUITES, *TLS12_SUITES)

    def probe_compression(self) -> None:
        """RFC 5246 §7.4.1.3 / CRIME: offered DEFLATE (1) and null, the server must pick
        null -- or, for TLS 1.3 (RFC 8446 §4.1.2), refuse the hello."""
        versions, suites = self._best()
        a = self.hello(versions=versions, cipher_suites=suites, groups=TLS13_GROUPS,
                       compression_methods=(1, 0))
        if a.server_hello is not None:
            refused = a.server_hello.legacy_compression_method == 0
        else:
            refused = True
        with self.r.lock:
            self.r.features["compression_refused"] = refused
        if not refused:
            self.r.add(Finding("tls_compression", "high", "the server negotiates TLS "
                               "compression (CRIME)", "disable TLS compression",
                               "ServerHello.compression_method = 1"))

    def probe_grease(self) -> None:
        """RFC 8701: unknown (GREASE) suites, groups, extensions and versions are ignored."""
        versions, suites = self._best()
        g = 0x0A0A
        vs = (0x1A1A, *versions) if 0x0304 in versions else versions
        a = self.hello(versions=vs, cipher_suites=(g, *suites), groups=(0x2A2A, *TLS13_GROUPS),
                       signature_schemes=(0x3A3A, *SIGNATURE_NAMES),
                       extra_extensions=(ext.UnknownExtension(_ext_type(0x4A4A), b""),
                                         ext.UnknownExtension(_ext_type(0x5A5A), b"\x00")))
        ok = a.server_hello is not None and a.cipher_suite is not None and \
            int(a.cipher_suite) != g
        with self.r.lock:
            self.r.features["grease_tolerant"] = ok
        if not ok:
            self.r.add(Finding("grease_intolerant", "medium",
                               "the server fails a ClientHello carrying GREASE values "
                               "(RFC 8701)", "fix the server's handling of unknown values",
                               f"answer: {_answer_text(a)}"))

    def probe_large_hello(self) -> None:
        """RFC 7685 §1: some servers choke on hellos of 256..511 bytes or >512; pad to
        1500 bytes (and a post-quantum share makes real hellos that big anyway)."""
        versions, suites = self._best()
        base = build_client_hello(server_name=self.o.sni, versions=versions,
                                  cipher_suites=suites, groups=TLS13_GROUPS)
        pad = max(1, 1500 - len(base.serialize()) - 4)
        a = self.hello(versions=versions, cipher_suites=suites, groups=TLS13_GROUPS,
                       extra_extensions=(ext.Padding(pad),))
        ok = a.server_hello is not None
        with self.r.lock:
            self.r.features["large_hello_tolerant"] = ok
        if not ok:
            self.r.add(Finding("large_hello_intolerant", "medium",
                               "the server fails a 1500-byte ClientHello",
                               "fix the server (or middlebox) to read hellos over several "
                               "packets", f"answer: {_answer_text(a)}"))

    # -- ROBOT --------------------------------------------------------------------------
    def probe_robot(self) -> None:
        """Only if RSA key transport is accepted (RFC 5246 §7.4.7.1)."""
        if not self.o.robot:
            with self.r.lock:
                self.r.robot = {"result": "not tested", "evidence": "disabled (--no-robot)"}
            return
        rsa_suites = tuple(c for c, n in TLS12_SUITES.items() if key_exchange(n) == "RSA")
        a = self.hello(versions=(0x0303,), cipher_suites=rsa_suites, groups=TLS13_GROUPS)
        if not a.accepted or a.cipher_suite is None:
            with self.r.lock:
                self.r.robot = {"result": "not applicable",
                                "evidence": "no RSA key transport suite accepted"}
            return
        result = robot_check(self, int(a.cipher_suite))
        with self.r.lock:
            self.r.robot = result
        if result["result"] == "vulnerable":
            self.r.add(Finding("robot", "critical", "the server's answers to malformed "
                               "RSA ClientKeyExchanges differ: a Bleichenbacher oracle "
                               "(ROBOT)", "disable TLS_RSA_* suites or patch the server",
                               result["evidence"]))
        elif result["result"] == "inconclusive":
            self.r.add(Finding("robot_inconclusive", "low", "the ROBOT check was "
                               "inconclusive", "disable TLS_RSA_* suites",
                               result["evidence"]))

    # -- judgement ------------------------------------------------------------------------
    def judge(self) -> None:
        r = self.r
        codes = r.version_codes
        for v in (0x0302, 0x0301):
            if v in codes:
                r.add(Finding("legacy_protocol_version", "high",
                              f"the server accepts {VERSION_LABELS[v]} (deprecated by RFC 8996)",
                              "disable TLS 1.0 and 1.1", f"a {VERSION_LABELS[v]} hello was "
                              "answered with a ServerHello"))
        if codes and 0x0304 not in codes:
            r.add(Finding("no_tls13", "medium", "the server does not support TLS 1.3",
                          "enable TLS 1.3 (RFC 8446)", "a TLS 1.3 hello was refused"))
        if codes and not {0x0304, 0x0303} & set(codes):
            r.add(Finding("protocol_version_mismatch", "critical",
                          "the server supports neither TLS 1.2 nor TLS 1.3",
                          "enable TLS 1.2 and 1.3", "version probes"))
        weak: dict[str, list[str]] = {}
        cbc: list[str] = []
        rsa: list[str] = []
        for label, names in r.cipher_suites.items():
            for n in names:
                why = weakness(n)
                if why:
                    weak.setdefault(why, []).append(f"{n} ({label})")
                if is_cbc(n) and label == "TLSv1.2":
                    cbc.append(n)
                if key_exchange(n) == "RSA" and label == "TLSv1.2":
                    rsa.append(n)
        for why, names in weak.items():
            sev: Severity = ("critical" if any(k in why for k in ("NULL", "export", "anonymous"))
                             else "high")
            r.add(Finding("weak_cipher_suite", sev, f"weak cipher suites accepted: {why}",
                          "remove them from the server's cipher list", ", ".join(names)))
        if rsa:
            r.add(Finding("rsa_key_exchange", "medium",
                          "RSA key transport suites are accepted (no forward secrecy)",
                          "prefer ECDHE; remove TLS_RSA_* suites", ", ".join(rsa)))
        if cbc:
            etm = self._etm_with_cbc(cbc)
            r.add(Finding("cbc_suites", "info" if etm else "low",
                          "CBC suites are accepted" + (
                              " (with encrypt_then_mac, RFC 7366)" if etm else
                              " with MAC-then-encrypt (Lucky 13 class risks)"),
                          "prefer AEAD suites (GCM, ChaCha20-Poly1305)", ", ".join(cbc)))
        if r.dhe_prime_bits is not None and r.dhe_prime_bits < 2048:
            r.add(Finding("weak_dh", "high", f"DHE uses a {r.dhe_prime_bits}-bit prime",
                          "use >= 2048-bit groups (RFC 7919)", "ServerKeyExchange"))
        for label, names in r.signature_algorithms.items():
            sha1 = [n for n in names if n.endswith("sha1")]
            if sha1:
                r.add(Finding("sha1_signature_algorithm", "low",
                              f"{label} handshakes can be signed with SHA-1 (RFC 9155)",
                              "remove SHA-1 signature algorithms", ", ".join(sha1)))
        for e in r.errors:
            r.add(Finding("probe_error", "info", f"a probe failed: {e}",
                          "rerun; check --timeout", e))

    def _etm_with_cbc(self, cbc: list[str]) -> bool:
        codes = tuple(c for c, n in TLS12_SUITES.items() if n in cbc)
        a = self.hello(versions=(0x0303,), cipher_suites=codes, groups=TLS13_GROUPS)
        return ExtensionType.ENCRYPT_THEN_MAC in a.extensions

    def rating(self) -> dict[str, Any]:
        worst = max((_SEVERITY_RANK[f.severity] for f in self.r.findings), default=0)
        grade = {4: "F", 3: "C", 2: "B"}.get(worst, "A")
        if not self.r.version_codes:
            grade = "F"
        reasons = [f"{f.severity}: {f.text}" for f in self.r.findings
                   if _SEVERITY_RANK[f.severity] == worst and worst >= 2]
        return {"grade": grade, "reasons": reasons or ["no finding above low severity"]}

    def to_json(self, seconds: float) -> dict[str, Any]:
        r = self.r
        order = sorted(r.findings, key=lambda f: -_SEVERITY_RANK[f.severity])
        return {
            "schema_version": SCHEMA_VERSION,
            "target": {"host": self.o.host, "port": self.o.port, "server_name": self.o.sni},
            "versions": r.versions,
            "cipher_suites": {v: r.cipher_suites.get(v, []) for v in r.versions},
            "cipher_preference": r.cipher_preference,
            "groups": r.groups,
            "dhe_prime_bits": r.dhe_prime_bits,
            "signature_algorithms": r.signature_algorithms,
            "certificates": r.certificates,
            "ocsp_stapling": r.ocsp_stapling,
            "resumption": r.resumption,
            "early_data": r.early_data,
            "alpn": r.alpn,
            "features": r.features,
            "robot": r.robot,
            "ja4s": r.ja4s,
            "findings": [f.to_json() for f in order],
            "rating": self.rating(),
            "stats": {"connections": self.gate.connections, "seconds": round(seconds, 2)},
        }


def _ecdsa_curve(a: HelloAnswer | None) -> int | None:
    """The NamedGroup of the ECDSA key in a TLS 1.2 answer's certificate, if any."""
    if a is None or not a.certificates:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = x509.load_der_x509_certificate(a.certificates[0]).public_key()
    except ValueError:
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    return {"secp256r1": 0x0017, "secp384r1": 0x0018, "secp521r1": 0x0019}.get(key.curve.name)


def _ext_type(value: int) -> ExtensionType:
    return ExtensionType(value)


def _tls12_config_suites(with_13: bool = False) -> tuple[CipherSuite, ...]:
    """Every suite tlsmith implements, RSA key transport included."""
    from tlsmith.config import ALL_TLS13_SUITES
    from tlsmith.crypto.suites import suite_info

    tls12 = tuple(CipherSuite(c) for c in TLS12_SUITES
                  if c in CipherSuite._value2member_map_ and suite_info(CipherSuite(c)))
    return (*ALL_TLS13_SUITES, *tls12) if with_13 else tls12


def _answer_text(a: HelloAnswer) -> str:
    if a.alert is not None:
        return f"alert {a.alert.rfc_name}"
    if a.error:
        return a.error
    if a.server_hello is not None:
        return f"ServerHello {a.version} {a.cipher_suite}"
    return "nothing"


# -- certificates ------------------------------------------------------------------------
def describe_chain(chain: Sequence[bytes], server_name: str | None) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    leaf = x509.load_der_x509_certificate(chain[0])
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_text, bits = f"RSA {key.key_size}", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_text, bits = f"EC {key.curve.name}", key.key_size
    else:
        key_text, bits = type(key).__name__.removesuffix("PublicKey"), None
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
            [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    not_after = leaf.not_valid_after_utc
    now = datetime.now(UTC)
    try:
        sig = leaf.signature_hash_algorithm
        sig_text = f"{sig.name if sig else 'none'}-{key_text.split()[0]}"
    except Exception:
        sig_text = leaf.signature_algorithm_oid.dotted_string
    return {
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "names": names,
        "key": key_text,
        "key_bits": bits,
        "signature_algorithm": sig_text,
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": (not_after - now) // timedelta(days=1),
        "lifetime_days": (not_after - leaf.not_valid_before_utc) // timedelta(days=1),
        "chain_length": len(chain),
        "sha256": hashlib.sha256(chain[0]).hexdigest(),
        "server_name": server_name,
    }


# -- JA4S --------------------------------------------------------------------------------
def ja4s(a: HelloAnswer, *, raw: bool = False) -> str:
    """JA4S (FoxIO JA4+ spec) of the answer's ServerHello: ``t`` (TCP), version,
    extension count, ALPN, ``_`` the chosen suite, ``_`` the truncated SHA-256 of the
    extension types in wire order. ``raw``: the list instead of its hash. One
    implementation: tlsmith.fingerprint."""
    sh = a.server_hello
    assert sh is not None
    hello = sh.serialize()
    return fingerprint.ja4s_raw(hello) if raw else fingerprint.ja4s(hello)


# -- ROBOT -------------------------------------------------------------------------------
def _pkcs1_variants(n_len: int, version: bytes) -> dict[str, bytes]:
    """Plaintexts for the ROBOT paper's (Böck et al. 2017) five test cases."""
    def pad(k: int) -> bytes:
        return bytes((b % 255) + 1 for b in os.urandom(k))  # nonzero bytes (RFC 8017)

    pms = version + os.urandom(46)
    good_pad = pad(n_len - 3 - 48)
    return {
        "valid": b"\x00\x02" + good_pad + b"\x00" + pms,
        "wrong_first_bytes": b"\x41\x17" + good_pad + b"\x00" + pms,
        "zero_in_wrong_place": b"\x00\x02" + good_pad[:-10] + b"\x00" + good_pad[-9:] + b"\x11"
                               + pms,
        "no_zero": b"\x00\x02" + good_pad + b"\x11" + pms,
        "wrong_version": b"\x00\x02" + good_pad + b"\x00" + b"\x02\x02" + pms[2:],
    }


def robot_check(scanner: Scanner, suite: int) -> dict[str, Any]:
    """Send each malformed PKCS#1 v1.5 ClientKeyExchange (RFC 5246 §7.4.7.1), a CCS and a
    bogus Finished; record how the server reacts (alert / close / timeout). A correct
    server (RFC 5246 §7.4.7.1's countermeasure) reacts the same way to all of them.
    Two rounds: answers that differ consistently -> "vulnerable"; that differ but not
    consistently -> "inconclusive"; identical -> "not vulnerable"."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    o = scanner.o
    first = scanner.hello(versions=(0x0303,), cipher_suites=(suite,), groups=TLS13_GROUPS)
    if not first.certificates:
        return {"result": "inconclusive", "evidence": "no certificate in the RSA handshake"}
    key = x509.load_der_x509_certificate(first.certificates[0]).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return {"result": "inconclusive", "evidence": "the certificate key is not RSA"}
    numbers = key.public_numbers()
    n_len = (numbers.n.bit_length() + 7) // 8
    timeout = min(o.timeout, 3.0)
    rounds: list[dict[str, str]] = []
    for _ in range(2):
        answers: dict[str, str] = {}
        for name, plain in _pkcs1_variants(n_len, b"\x03\x03").items():
            c = pow(int.from_bytes(plain, "big"), numbers.e, numbers.n)
            answers[name] = _robot_once(scanner, suite, c.to_bytes(n_len, "big"), timeout)
        rounds.append(answers)
    distinct = [set(r.values()) for r in rounds]
    evidence = "; ".join(f"{k}: {v}" for k, v in rounds[0].items())
    if all(len(d) == 1 for d in distinct) and rounds[0] == rounds[1]:
        return {"result": "not vulnerable", "evidence": evidence, "suite": suite_name(suite)}
    if rounds[0] == rounds[1]:
        return {"result": "vulnerable", "evidence": evidence, "suite": suite_name(suite)}
    return {"result": "inconclusive", "evidence": evidence + " (answers changed between "
            "rounds)", "suite": suite_name(suite)}


def _robot_once(scanner: Scanner, suite: int, epms: bytes, timeout: float) -> str:
    o = scanner.o
    hello = build_client_hello(server_name=o.sni, versions=(0x0303,), cipher_suites=(suite,),
                               groups=TLS13_GROUPS, extended_master_secret=False)
    with scanner.gate.slot():
        try:
            sock = socket.create_connection((o.host, o.port), timeout=timeout)
        except OSError as exc:
            return f"connect failed ({type(exc).__name__})"
        try:
            sock.sendall(hello_records(hello))
            flight = read_server_flight(sock, timeout=timeout)
            if not flight.server_hello_done:
                return "no ServerHelloDone"
            cke = ClientKeyExchangeRSA(epms).serialize()
            out = encode_record_header(ContentType.HANDSHAKE, 0x0303, len(cke)) + cke
            out += encode_record_header(ContentType.CHANGE_CIPHER_SPEC, 0x0303, 1) + b"\x01"
            fin = os.urandom(40)  # "encrypted" Finished: garbage of a GCM record's size
            out += encode_record_header(ContentType.HANDSHAKE, 0x0303, len(fin)) + fin
            sock.sendall(out)
            return _reaction(sock, timeout)
        except OSError as exc:
            return f"error ({type(exc).__name__})"
        finally:
            sock.close()


def _reaction(sock: socket.socket, timeout: float) -> str:
    """The first alert (by name), or how the connection ended; timing in two classes."""
    start = time.monotonic()
    data = b""
    try:
        sock.settimeout(timeout)
        while len(data) < 7:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    slow = "slow" if time.monotonic() - start > timeout / 2 else "fast"
    if len(data) >= 7 and data[0] == ContentType.ALERT:
        return f"alert {AlertDescription(data[6]).rfc_name} ({slow})"
    if not data:
        return f"closed ({slow})"
    return f"record type {data[0]} ({slow})"


def run_probe(opts: ProbeOptions) -> dict[str, Any]:
    """Scan ``opts.host:opts.port``; the JSON object of docs/probe-schema.md."""
    return Scanner(opts).run()


__all__ = ["SCHEMA_VERSION", "ProbeOptions", "Scanner", "describe_chain", "ja4s",
           "robot_check", "run_probe"]
