"""BoringSSL's cipher strings (``-cipher``, SSL_set_strict_cipher_list) as tlsmith suites.

The string configures TLS 1.2 suites only (TLS 1.3 suites are fixed in BoringSSL). Rules
are separated by ``:`` (or ``,``, ``;``, space); each is an exact suite name (IANA or
OpenSSL style) or an alias, several joined by ``+`` meaning "all of". A rule adds the
suites it matches at the end, ``-`` removes them, ``!`` removes them for good, ``+``
moves them to the end; ``[A|B]`` is an equal-preference group (its suites are added in
order, and become ``ServerConfig.cipher_suite_groups``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tlsmith.codec.enums import CipherSuite


class CipherStringError(Exception):
    """A rule BoringSSL's strict parser would refuse, or one tlsmith cannot express."""


@dataclass(frozen=True)
class _Suite:
    suite: CipherSuite | None  # None: a suite BoringSSL has and tlsmith lacks
    iana: str
    tags: frozenset[str]

    @property
    def openssl_name(self) -> str:
        m = re.fullmatch(r"TLS_(\w+?)_WITH_(\w+)", self.iana)
        assert m is not None
        kx, rest = m.groups()
        prefix = {"RSA": "", "ECDHE_RSA": "ECDHE-RSA-", "ECDHE_ECDSA": "ECDHE-ECDSA-"}[kx]
        enc, _, mac = rest.rpartition("_")
        cipher = {"AES_128_GCM": "AES128-GCM", "AES_256_GCM": "AES256-GCM",
                  "AES_128_CBC": "AES128", "AES_256_CBC": "AES256",
                  "CHACHA20_POLY1305": "CHACHA20-POLY1305", "3DES_EDE_CBC": "DES-CBC3"}[enc]
        if enc == "CHACHA20_POLY1305":
            return prefix + cipher
        return f"{prefix}{cipher}-{'SHA' if mac == 'SHA' else mac}"


def _tags(iana: str) -> frozenset[str]:
    tags = {"ALL"}
    kx = iana.split("_WITH_")[0].removeprefix("TLS_")
    if kx == "RSA":
        tags |= {"kRSA", "aRSA", "RSA"}
    else:
        tags |= {"kECDHE", "kEECDH", "ECDHE", "EECDH"}
        tags |= {"aRSA", "RSA"} if kx.endswith("RSA") else {"aECDSA", "ECDSA"}
    if "AES_128" in iana:
        tags |= {"AES128", "AES"}
    if "AES_256" in iana:
        tags |= {"AES256", "AES"}
    if "GCM" in iana:
        tags.add("AESGCM")
    if "CHACHA20" in iana:
        tags.add("CHACHA20")
    if "3DES" in iana:
        tags = (tags - {"ALL"}) | {"3DES"}  # BoringSSL: only when asked for by name
    if iana.endswith("_SHA"):
        tags |= {"SHA1", "SHA"}
    elif iana.endswith("_SHA256"):
        tags.add("SHA256")
    elif iana.endswith("_SHA384"):
        tags.add("SHA384")
    tags.add("TLSv1.2" if ("GCM" in iana or "CHACHA" in iana or "SHA256" in iana
                           or "SHA384" in iana) else "TLSv1")
    if "3DES" not in iana:
        tags |= {"HIGH", "FIPS"} if "CHACHA" not in iana else {"HIGH"}
    return frozenset(tags)


#: BoringSSL's TLS 1.2 suites in its default preference order (ssl_cipher.cc).
_ORDER = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
)


def _suite(iana: str) -> _Suite:
    try:
        suite: CipherSuite | None = CipherSuite[iana]
    except KeyError:
        suite = None
    return _Suite(suite, iana, _tags(iana))


SUITES: tuple[_Suite, ...] = tuple(_suite(n) for n in _ORDER)
_BY_NAME = {**{s.iana: s for s in SUITES}, **{s.openssl_name: s for s in SUITES}}
_ALIASES = frozenset().union(*(s.tags for s in SUITES))


@dataclass(frozen=True)
class CipherList:
    """The suites the string enables, in order, and its equal-preference groups."""

    suites: tuple[_Suite, ...]
    groups: tuple[tuple[_Suite, ...], ...]

    def tlsmith_suites(self) -> tuple[CipherSuite, ...]:
        """The suites as tlsmith's; CipherStringError if one is missing from tlsmith."""
        missing = [s.iana for s in self.suites if s.suite is None]
        if missing:
            raise CipherStringError(f"suite(s) tlsmith does not implement: {missing}")
        return tuple(s.suite for s in self.suites if s.suite is not None)

    def tlsmith_groups(self) -> tuple[tuple[CipherSuite, ...], ...]:
        return tuple(tuple(s.suite for s in g if s.suite is not None and s in self.suites)
                     for g in self.groups)


def _matches(selector: str) -> list[_Suite]:
    if selector in _BY_NAME:
        return [_BY_NAME[selector]]
    parts = selector.split("+")
    for p in parts:
        if p not in _ALIASES:
            raise CipherStringError(f"unknown cipher rule {selector!r}")
    return [s for s in SUITES if all(p in s.tags for p in parts)]


def parse_cipher_string(text: str) -> CipherList:
    active: list[_Suite] = []
    killed: set[str] = set()
    groups: list[tuple[_Suite, ...]] = []
    for rule in (r for r in re.split(r"[:, ;]", text) if r):
        if rule == "DEFAULT":
            rule = "ALL"
        if rule.startswith("["):
            if not rule.endswith("]"):
                raise CipherStringError(f"unterminated equal-preference group {rule!r}")
            added: list[_Suite] = []
            for sel in rule[1:-1].split("|"):
                added += [s for s in _matches(sel)
                          if s not in active and s not in added and s.iana not in killed]
            active += added
            groups.append(tuple(added))
            continue
        op, sel = (rule[0], rule[1:]) if rule[0] in "!-+" else ("", rule)
        if sel.startswith("@"):
            raise CipherStringError(f"cipher rule {rule!r} is not supported")
        matched = _matches(sel)
        if op == "":
            active += [s for s in matched if s not in active and s.iana not in killed]
        elif op in "-!":
            active = [s for s in active if s not in matched]
            if op == "!":
                killed |= {s.iana for s in matched}
        else:
            active = [s for s in active if s not in matched] + [
                s for s in active if s in matched]
    if not active:
        raise CipherStringError(f"no cipher matches {text!r} (NO_CIPHER_MATCH)")
    return CipherList(tuple(active), tuple(g for g in groups if len(g) > 1))
