"""BoringSSL cipher strings (the BoGo shim's -cipher) as tlsmith suites."""

from __future__ import annotations

import pytest

from tlsmith.bogo import shim
from tlsmith.bogo.ciphers import CipherStringError, parse_cipher_string
from tlsmith.bogo.flags import parse
from tlsmith.codec.enums import CipherSuite
from tlsmith.crypto.suites import TLS13_SUITES

_CS = CipherSuite


def _names(text: str) -> list[str]:
    return [s.iana for s in parse_cipher_string(text).suites]


def test_exact_names_iana_and_openssl() -> None:
    assert _names("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:ECDHE-RSA-AES128-GCM-SHA256:"
                  "AES256-SHA") == ["TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
                                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                    "TLS_RSA_WITH_AES_256_CBC_SHA"]


def test_aliases_and_operators() -> None:
    assert _names("DEFAULT:!AES") == ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                                      "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"]
    assert "TLS_RSA_WITH_3DES_EDE_CBC_SHA" not in _names("ALL")  # only by name
    assert _names("ALL:3DES")[-1] == "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
    assert all("AES_128" in n for n in _names("AES128"))
    assert _names("ECDHE+AESGCM+aRSA") == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                           "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]
    # "-" removes (may come back), "!" removes for good, "+" moves to the end.
    assert _names("AESGCM:-kRSA:kRSA+AES128") == [
        *_names("ECDHE+AESGCM"), "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_128_CBC_SHA"]
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" not in _names("AESGCM:!kRSA:kRSA")
    assert _names("AES128-SHA:AES256-SHA:+AES128-SHA") == [
        "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"]


def test_equal_preference_groups() -> None:
    parsed = parse_cipher_string("AES128-SHA:[AES256-SHA|ECDHE-RSA-AES128-GCM-SHA256]")
    assert parsed.suites[0].iana == "TLS_RSA_WITH_AES_128_CBC_SHA"
    assert parsed.tlsmith_groups() == ((_CS.TLS_RSA_WITH_AES_256_CBC_SHA,
                                        _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),)


@pytest.mark.parametrize("bad", ["NOPE", "AES:@STRENGTH", "[AES128-SHA", "!ALL:-ALL"])
def test_refused(bad: str) -> None:
    with pytest.raises(CipherStringError):
        parse_cipher_string(bad)


def test_3des_is_missing_from_tlsmith() -> None:
    with pytest.raises(CipherStringError):
        parse_cipher_string("3DES").tlsmith_suites()


def test_shim_keeps_tls13_suites_and_uses_server_order() -> None:
    opts = parse(["-server", "-cipher", "AES128-SHA:[AES256-SHA|AES128-GCM-SHA256]"]
                 ).options(0)
    suites = shim._suites(opts, None)
    assert [s for s in suites if s in TLS13_SUITES] and suites[-3:] == (
        _CS.TLS_RSA_WITH_AES_128_CBC_SHA, _CS.TLS_RSA_WITH_AES_256_CBC_SHA,
        _CS.TLS_RSA_WITH_AES_128_GCM_SHA256)
    groups = shim._suite_groups(opts, suites)
    # TLS 1.3 suites stay in the client's order (one group), as in BoringSSL.
    assert set(groups[0]) <= set(TLS13_SUITES)
    assert groups[1] == (_CS.TLS_RSA_WITH_AES_256_CBC_SHA,
                         _CS.TLS_RSA_WITH_AES_128_GCM_SHA256)
    with pytest.raises(shim.Unimplemented):
        shim._suites(parse(["-cipher", "3DES"]).options(0), None)
