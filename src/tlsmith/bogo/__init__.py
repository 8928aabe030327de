"""A shim for BoringSSL's TLS conformance runner (BoGo).

``python -m tlsmith.bogo`` speaks the runner's protocol (``ssl/test/runner`` and
BoringSSL's PORTING.md): one process per test, ``1 + -resume-count`` TCP connections to
the runner, each starting with the 8-byte shim id, TLS as client or server, then the
XOR-0xFF echo. Flags tlsmith has no feature for exit 89 (counted as unimplemented);
flags never heard of exit 1. On failure stderr names tlsmith's error class, its check
and alert (``tests/bogo/config.json``'s ErrorMap maps BoringSSL's error names to them);
on success stderr stays empty.

The shim is above the core: it uses only the public API (``TLSConnection``, the configs,
sessions and the observer), like any other adapter.
"""
