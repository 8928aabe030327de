"""A small, bounded mutation run over tlsmith's security checks (`make mutate`).

Each mutant disables one check (an exact source snippet, replaced). It is applied to a
temporary copy of ``src/`` -- the real tree is never touched -- and the tests that should
notice are run against that copy (``PYTHONPATH`` points at it), with ``-x`` and a time
limit. A mutant is *killed* when the tests fail, *survived* when they pass. The run
prints a table and exits non-zero if any mutant survived (or a snippet no longer matches
the source, so that the list cannot silently rot).

    .venv/bin/python scripts/mutate.py            # every mutant
    .venv/bin/python scripts/mutate.py -k binder  # the mutants whose name contains it
    .venv/bin/python scripts/mutate.py -j 2       # two mutants at a time
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PY = ROOT / ".venv" / "bin" / "python"
if not PY.exists():
    PY = Path(sys.executable)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # under src/tlsmith/
    snippet: str  # must occur exactly once
    replacement: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, ``-k`` expressions
    #: more (path, snippet, replacement) edits, for a check made in two places
    also: tuple[tuple[str, str, str], ...] = ()


A13 = "tests/test_handshake13_attacks.py"
A12 = "tests/test_handshake12_attacks.py"
R13 = "tests/test_resume13_attacks.py"
CR = "tests/test_check_reasons.py"
M12 = "tests/test_handshake12_memory.py"

MUTANTS: tuple[Mutant, ...] = (
    Mutant("eof_reported_clean", "connection.py",
           "return ConnectionClosed(clean=False)", "return ConnectionClosed(clean=True)",
           (CR, "tests/test_aio.py", "-k", "eof or truncat or clean or closed")),
    Mutant("cv_scheme_not_offered", "handshake/proofs.py",
           "    if scheme not in offered:\n", "    if False:\n",
           (CR, A13, A12, "-k", "scheme")),
    Mutant("cv_scheme_fits_key", "handshake/proofs.py",
           "    if not sig.scheme_matches_key(scheme, key, tls13=tls13):\n",
           "    if False:\n", (CR, A13, A12, "-k", "scheme or pkcs1 or key")),
    Mutant("cv_signature_verify", "handshake/proofs.py",
           "        sig.verify(scheme, key, content, signature, tls13=tls13)\n",
           "        pass\n", (A13, A12, "-k", "verify or signature")),
    Mutant("finished_verify", "handshake/proofs.py",
           "    if not ok:\n        raise DecryptError(f\"the {who} Finished",
           "    if False:\n        raise DecryptError(f\"the {who} Finished",
           (A13, A12, "-k", "finished")),
    Mutant("downgrade_sentinel", "handshake/client.py",
           "if sh.random[-8:] in (DOWNGRADE_TLS12, DOWNGRADE_TLS11):", "if False:",
           (A13, A12, CR, "-k", "downgrade or sentinel")),
    Mutant("binder_verify", "handshake/psk13.py",
           "    if not ok:\n        raise DecryptError(f\"the binder",
           "    if False:\n        raise DecryptError(f\"the binder",
           (R13, CR, "-k", "binder")),
    Mutant("alpn_not_offered", "handshake/client13.py",
           "    if (len(chosen.protocol_name_list) != 1 or offered is None\n"
           "            or chosen.protocol_name_list[0] not in offered.protocol_name_list):",
           "    if False:", (CR, A13, A12, "-k", "alpn")),
    Mutant("sh_key_share_group_not_offered", "handshake/client13.py",
           "        secret = sent.shares.get(group)\n        if secret is None:",
           "        secret = next(iter(sent.shares.values()))\n        if secret is None:",
           (CR, A13, "-k", "share or group")),
    Mutant("ch_key_share_group_not_offered", "handshake/server13.py",
           "        if entry.group not in groups:", "        if False:",
           (CR, A13, "-k", "share or group")),
    Mutant("duplicate_key_share", "handshake/server13.py",
           "        if entry.group in seen:", "        if False:",
           (CR, A13, "-k", "share or duplicate"),
           also=(("codec/extensions_tls13.py", "                if entry.group in seen:",
                  "                if False:"),)),
    Mutant("key_share_missing", "handshake/client13.py",
           "        if chosen is None:\n            # RFC 8446 §9.2",
           "        if False:\n            # RFC 8446 §9.2", (CR, A13, "-k", "share")),
    Mutant("psk_not_offered", "handshake/client13.py",
           "        if not sent.psks:\n", "        if False:\n",
           (R13, "-k", "offered"),
           # the generic "only what was offered" check answers first: disable both
           also=(("handshake/base.py", "        if t not in offered and not server_initiated:",
                  "        if False:"),)),
    Mutant("psk_index_not_offered", "handshake/psk13.py",
           "    if selected >= len(psks):", "    if False:", (R13, "-k", "offer or psk")),
    Mutant("psk_hash_mismatch", "handshake/psk13.py",
           "    if chosen.hash_name != suite.hash_name:", "    if False:",
           (R13, "-k", "hash or psk")),
    Mutant("extension_not_offered", "handshake/base.py",
           "        if t not in offered and not server_initiated:", "        if False:",
           (A13, A12, R13, "-k", "extension or offered")),
    Mutant("sh_version_not_offered", "handshake/client.py",
           "if chosen != ProtocolVersion.TLS13 or chosen not in versions:", "if False:",
           (CR, A13, "-k", "version")),
    Mutant("session_id_echo", "handshake/client13.py",
           "    if sh.legacy_session_id_echo != sent.hello.legacy_session_id:",
           "    if False:", (CR, A13, "-k", "session_id or echo")),
    Mutant("hrr_suite_changed", "handshake/client13.py",
           "    if sent.hrr is not None and sh.cipher_suite != sent.hrr.cipher_suite:",
           "    if False:", (CR, A13, "-k", "hrr or retry")),
    Mutant("early_data_after_hrr", "handshake/server13.py",
           "        if offered.early_data:\n            raise IllegalParameter(\"early_data",
           "        if False:\n            raise IllegalParameter(\"early_data",
           (CR, A13, R13, "-k", "early or hrr or retry")),
    Mutant("cr_no_signature_algorithms", "handshake/client13.py",
           "            if ext.find_extension(req.extensions, ext.SignatureAlgorithms) is None:",
           "            if False:", (CR, A13, "-k", "request")),
    Mutant("cr_context_not_empty", "handshake/client13.py",
           "            if req.certificate_request_context:", "            if False:",
           (CR, A13, "-k", "request")),
    Mutant("client_ems_required", "handshake/client12.py",
           "    if not ems and cfg.require_extended_master_secret:", "    if False:",
           (M12, "-k", "ems or extended")),
    Mutant("server_ems_required", "handshake/server12.py",
           "    if not offered.extended_master_secret and cfg.require_extended_master_secret:",
           "    if False:", (M12, "-k", "ems or extended")),
    Mutant("client_mte_refused", "handshake/client12.py",
           "    if suite.cipher == \"cbc\" and not etm and not cfg.allow_mac_then_encrypt:",
           "    if False:", (M12, "-k", "etm or mac_then or cbc")),
    Mutant("server_mte_refused", "handshake/server12.py",
           "        if info.cipher == \"cbc\" and not offered.encrypt_then_mac and (\n"
           "                not cfg.allow_mac_then_encrypt):\n            skipped",
           "        if False:\n            skipped", (M12, "-k", "etm or mac_then or cbc")),
    Mutant("client_resumed_ems_dropped", "handshake/client12.py",
           "    if session.extended_master_secret and not h.ems:", "    if False:",
           ("tests/test_resume12.py", "-k", "ems")),
    Mutant("client_resumed_ems_added", "handshake/client12.py",
           "    if not session.extended_master_secret and h.ems:", "    if False:",
           ("tests/test_resume12.py", "-k", "ems")),
    Mutant("server_resumed_ems_dropped", "handshake/server12.py",
           "    if state.extended_master_secret and not offered.extended_master_secret:",
           "    if False:", ("tests/test_resume12.py", "-k", "ems")),
    Mutant("hrr_hello_changed", "handshake/server13.py",
           "        if (ch.random != self.first.random\n",
           "        if False and (ch.random != self.first.random\n",
           (A13, "-k", "second_hello")),
    Mutant("client_etm_with_aead", "handshake/client12.py",
           "    if etm and suite.cipher != \"cbc\":", "    if False:",
           (A12, CR, "-k", "etm or encrypt_then")),
    Mutant("record_mac_aead", "crypto/aead.py",
           "            return self._decrypt(nonce, ciphertext, aad)\n        except InvalidTag:",
           "            return self._decrypt(nonce, ciphertext, aad)\n"
           "        except InvalidTag:\n"
           "            return b'\\0' * (len(ciphertext) - self.tag_len)\n"
           "        except ZeroDivisionError:",
           ("tests/test_record_protection.py", A13, "-k", "mac or tamper or auth")),
    Mutant("record_mac_cbc", "record/protection_cbc.py",
           "            if not _hmac.compare_digest(mac.finalize(), view[encrypted_len:]):",
           "            if False:",
           ("tests/test_record_protection_cbc.py", A12, "-k", "mac or tamper or etm")),
    Mutant("cookie_hmac", "handshake/server13.py",
           "    if len(cookie) < 4 + 32 + 32 or not hmac.compare_digest(\n"
           "            tag, hmac.digest(secret, _COOKIE_LABEL + body, \"sha256\")):",
           "    if len(cookie) < 4 + 32 + 32:", (CR, A13, "-k", "cookie")),
    Mutant("accept_server_chain", "handshake/proofs.py",
           "    if cfg.verify_certificates:\n        assert cfg.trust is not None",
           "    if False:\n        assert cfg.trust is not None",
           (A13, A12, "tests/test_mtls_memory.py", "-k", "chain or certificate or trust")),
    Mutant("hostname_check", "x509/verify.py",
           "    else:\n        subject, checked_name = _subject_for(server_name)",
           "    else:\n        subject, checked_name = (_subject_from_leaf(leaf),\n"
           "                                 _subject_for(server_name)[1])",
           ("tests/test_x509_verify.py", A13, "-k", "host or name or san")),
)


def apply(tree: Path, mutant: Mutant) -> None:
    for path, snippet, replacement in ((mutant.path, mutant.snippet, mutant.replacement),
                                       *mutant.also):
        target = tree / "tlsmith" / path
        text = target.read_text()
        count = text.count(snippet)
        if count != 1:
            raise LookupError(f"{mutant.name}: the snippet occurs {count} times in "
                              f"src/tlsmith/{path}")
        target.write_text(text.replace(snippet, replacement))


def run_one(mutant: Mutant, timeout: float) -> tuple[str, str, float]:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        tree = Path(tmp) / "src"
        shutil.copytree(SRC, tree, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        try:
            apply(tree, mutant)
        except LookupError as exc:
            return "STALE", str(exc), 0.0
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
        cmd = [str(PY), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly", "-n", "0", "--timeout", "60", *mutant.tests]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return "killed", "timeout", time.monotonic() - start
        elapsed = time.monotonic() - start
        tail = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode == 0:
            return "SURVIVED", tail, elapsed
        if proc.returncode == 5:
            return "SURVIVED", "no test selected", elapsed
        if proc.returncode == 1:
            failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED ")]
            return "killed", (failed[0][7:] if failed else tail)[:90], elapsed
        return "ERROR", f"pytest exit {proc.returncode}: {tail}"[:90], elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    parser.add_argument("-j", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds per mutant's test run (default 240)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the unmutated run of the selected test files")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.k in m.name]
    start = time.monotonic()
    if not args.no_baseline:
        # A mutant "killed" by tests that fail anyway proves nothing: they must pass first.
        files = sorted({t for m in chosen for t in m.tests if t.startswith("tests/")})
        base = subprocess.run([str(PY), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               "-n", "2", *files], cwd=ROOT, capture_output=True, text=True,
                              timeout=args.timeout * 2)
        if base.returncode != 0:
            print(base.stdout[-3000:])
            print("baseline: the selected tests fail without any mutant; fix that first")
            return 2
        print(f"baseline: {len(files)} test files pass unmutated "
              f"({time.monotonic() - start:.0f}s)")
    with ThreadPoolExecutor(max_workers=max(1, args.j)) as pool:
        results = list(pool.map(lambda m: run_one(m, args.timeout), chosen))
    width = max(len(m.name) for m in chosen)
    print(f"{'mutant':<{width}}  {'result':<8}  {'secs':>5}  detail")
    for m, (verdict, detail, secs) in zip(chosen, results, strict=True):
        print(f"{m.name:<{width}}  {verdict:<8}  {secs:5.1f}  {detail}")
    bad = [m.name for m, (v, _, _) in zip(chosen, results, strict=True) if v != "killed"]
    killed = len(chosen) - len(bad)
    print(f"\n{killed}/{len(chosen)} killed in {time.monotonic() - start:.0f}s"
          + (f"; not killed: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
