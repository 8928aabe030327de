"""Summarise a BoGo run: passed / failed / unimplemented / disabled TLS tests per side.

    python scripts/bogo_summary.py BOGO_JSON [--config tests/bogo/config.json]
        [--names TEST_LIST] [--unimplemented LOG]

BOGO_JSON is the runner's ``-json-output`` (``tests{name: {actual, expected,
is_unexpected}}``); disabled tests do not appear in it. TEST_LIST is the runner's list of
its tests, one ``name protocol side`` a line (shipped next to a prebuilt runner as
``tls-test-names.txt``): with it the sides are exact, DTLS/QUIC tests are left out, and
the disabled TLS tests are counted (TLS 1.0/1.1 apart). Without it the side is guessed
from the name ("Client"/"Server", else client, BoGo's default) and disabled tests are
not counted. LOG is what the shim wrote for each unimplemented test
(``TLSMITH_BOGO_UNIMPLEMENTED_LOG``): the largest groups are listed. Exit status 1
when any result was unexpected.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections import Counter
from pathlib import Path

_OLD_VERSION = re.compile(r"(^|-)TLS1(1)?($|-)|EnciphermentTLS1(1)?$")
COLUMNS = ("passed", "failed", "unimplemented", "disabled", "disabled TLS 1.0/1.1",
           "unexpected")


def side_from_name(name: str) -> str:
    client, server = name.find("Client"), name.find("Server")
    if server >= 0 and (client < 0 or server < client):
        return "server"
    return "client"


def load_names(path: str | None) -> dict[str, tuple[str, str]] | None:
    """name -> (protocol, side), or None without a readable list."""
    if not path or not Path(path).is_file():
        return None
    out: dict[str, tuple[str, str]] = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


def summarise(results: dict[str, dict[str, object]], names: dict[str, tuple[str, str]] | None,
              disabled_globs: list[str]) -> tuple[dict[str, Counter[str]], list[str]]:
    counts: dict[str, Counter[str]] = {"client": Counter(), "server": Counter()}
    unexpected: list[str] = []
    for name, result in results.items():
        if names is not None:
            if name not in names or names[name][0] != "tls":
                continue  # DTLS or QUIC
            side = names[name][1]
        else:
            side = side_from_name(name)
        if result.get("is_unexpected"):
            unexpected.append(name)
            counts[side]["unexpected"] += 1
        actual = str(result.get("actual"))
        key = {"PASS": "passed", "SKIP": "unimplemented"}.get(actual, "failed")
        counts[side][key] += 1
    for name, (protocol, side) in (names or {}).items():
        if protocol != "tls" or name in results:
            continue
        if any(fnmatch.fnmatchcase(name, g) for g in disabled_globs):
            old = bool(_OLD_VERSION.search(name))
            counts[side]["disabled TLS 1.0/1.1" if old else "disabled"] += 1
    return counts, unexpected


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json_output")
    ap.add_argument("--config", default=None)
    ap.add_argument("--names", default=None)
    ap.add_argument("--unimplemented", default=None)
    args = ap.parse_args(argv)
    results: dict[str, dict[str, object]] = json.loads(
        Path(args.json_output).read_text()).get("tests", {})
    globs: list[str] = []
    if args.config:
        globs = list(json.loads(Path(args.config).read_text()).get("DisabledTests", {}))
    names = load_names(args.names)
    counts, unexpected = summarise(results, names, globs)
    print("BoGo TLS tests" + ("" if names else " (sides guessed from names; no test list, "
                                             "so disabled tests are not counted)"))
    print(f"{'side':<8}" + "".join(f"{c:>22}" for c in COLUMNS))
    total: Counter[str] = Counter()
    for side in ("client", "server"):
        total.update(counts[side])
        print(f"{side:<8}" + "".join(f"{counts[side][c]:>22}" for c in COLUMNS))
    print(f"{'total':<8}" + "".join(f"{total[c]:>22}" for c in COLUMNS))
    if args.unimplemented and Path(args.unimplemented).is_file():
        reasons = Counter(Path(args.unimplemented).read_text().splitlines())
        print("largest groups of unimplemented test runs (flag or feature):")
        for why, n in reasons.most_common(15):
            print(f"  {n:>5}  {why}")
    if unexpected:
        print(f"{len(unexpected)} unexpected result(s):")
        for name in sorted(unexpected):
            print(f"  {name}: {results[name].get('actual')}")
        return 1
    print("zero unexpected results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
