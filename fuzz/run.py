"""Run the tlsmith fuzz targets for a bounded time.

    .venv/bin/python fuzz/run.py [--seconds N] [--target NAME ...] [--jobs J]
                                 [--engine auto|atheris|mutate]

Every target (or each ``--target``) runs for N seconds (default: $FUZZ_SECONDS, else 60),
in its own process, J at a time (default 1). The engine is atheris (coverage-guided
libFuzzer) when it imports, else a mutation loop over the seed corpus (bit flips,
interesting bytes, truncation, insertion/deletion, splicing, length-field tweaks),
steered by the distinct outcomes it sees. Seeds: fuzz/corpus/<target>/ (read only;
atheris keeps what it learns in fuzz/.work/<target>/).

A crash -- an input breaking the oracle of fuzz/targets.py -- is written to
fuzz/crashes/<target>-<hash>, and a pytest regression stub for
tests/test_fuzz_regressions.py is printed. The exit status is 1 if any target crashed.
``--replay FILE --target NAME`` runs one saved input and prints the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FUZZ_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(FUZZ_DIR))

WORK_DIR = FUZZ_DIR / ".work"
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


def have_atheris() -> bool:
    try:
        import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore] # noqa: F401
    except ImportError:
        return False
    return True


# -- the mutation engine -----------------------------------------------------------------
class Mutator:
    """Structure-unaware mutations of corpus inputs (with TLS-ish length tweaks)."""

    def __init__(self, corpus: list[bytes], rng: random.Random, max_len: int) -> None:
        self.corpus = corpus or [b""]
        self.rng = rng
        self.max_len = max_len

    def mutate(self, data: bytes) -> bytes:
        rng = self.rng
        buf = bytearray(data)
        for _ in range(1 + min(rng.getrandbits(3), 5) if rng.random() < 0.3 else 1):
            op = rng.randrange(9)
            n = len(buf)
            if op == 0 and n:  # bit flip
                i = rng.randrange(n)
                buf[i] ^= 1 << rng.randrange(8)
            elif op == 1 and n:  # interesting / random byte
                i = rng.randrange(n)
                buf[i] = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
            elif op == 2 and n:  # truncate
                del buf[rng.randrange(n):]
            elif op == 3 and n:  # delete a range
                i = rng.randrange(n)
                del buf[i : i + 1 + rng.randrange(min(64, n - i))]
            elif op == 4:  # insert random bytes
                i = rng.randrange(n + 1)
                buf[i:i] = bytes(rng.randrange(256) for _ in range(1 + rng.randrange(8)))
            elif op == 5 and n:  # duplicate a range
                i = rng.randrange(n)
                j = min(n, i + 1 + rng.randrange(256))
                buf[j:j] = buf[i:j]
            elif op == 6:  # splice with another input
                other = rng.choice(self.corpus)
                if other:
                    i = rng.randrange(n + 1)
                    j = rng.randrange(len(other))
                    buf = buf[:i] + other[j : j + 1 + rng.randrange(len(other) - j)]
            elif op in (7, 8) and n >= 2:  # length-field tweak (u8/u16/u24 big-endian)
                width = rng.choice((1, 2, 2, 3))
                if n < width:
                    continue
                i = rng.randrange(n - width + 1)
                value = int.from_bytes(buf[i : i + width], "big")
                top = (1 << (8 * width)) - 1
                value = rng.choice((0, 1, top, value + 1, value - 1,
                                    value + rng.randrange(1, 17), value - rng.randrange(1, 17),
                                    n - i - width, rng.randrange(top + 1)))
                buf[i : i + width] = (value & top).to_bytes(width, "big")
        return bytes(buf[: self.max_len])


def _outcome(exc: BaseException | None) -> str:
    """A coarse signature of how an input ended (feedback for the mutation loop)."""
    if exc is None:
        return "ok"
    text = re.sub(r"\d+", "#", str(exc))[:60]
    return f"{type(exc).__name__}:{text}"


def crash_signature(finding: BaseException) -> str:
    """Where a finding comes from: the root exception's type and innermost frame."""
    import traceback

    root = finding
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    frames = traceback.extract_tb(root.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(root).__name__}@{where}"


def fuzz_mutate(target: str, seconds: float, seed: int, keep_going: bool = False,
                strict: bool = False) -> dict[str, Any]:
    import targets as t

    from tlsmith.errors import TLSError

    t.warm_up()
    corpus = t.load_corpus(target)
    max_len = max([4096, *(2 * len(c) for c in corpus)])
    rng = random.Random(seed)
    mutator = Mutator(list(corpus), rng, max_len)
    fn = t.TARGETS[target]
    seen: set[str] = set()
    execs = 0
    crash: str | None = None
    crashes: dict[str, str] = {}
    known = 0
    started = time.monotonic()
    deadline = started + seconds
    queue = list(corpus) or [b""]
    while time.monotonic() < deadline:
        for _ in range(64):
            data = mutator.mutate(rng.choice(queue)) if execs >= len(corpus) else \
                (corpus[execs] if execs < len(corpus) else b"")
            execs += 1
            verdict: BaseException | None = None
            try:
                fn(data)
            except t.Finding as finding:
                verdict = finding
            except TLSError as exc:  # targets already judge these; keep the signature
                sig = _outcome(exc)
                if sig not in seen:
                    seen.add(sig)
                    queue.append(data)
                continue
            except Exception as exc:
                try:
                    t.check_exception(exc)
                except t.Finding as finding:
                    verdict = finding
            if verdict is not None and not strict and t.is_known(verdict):
                known += 1
                continue
            if verdict is not None:
                sig = crash_signature(verdict)
                if sig in crashes:
                    continue
                crashes[sig] = save_crash(target, data, verdict)
                crash = crash or crashes[sig]
                if not keep_going:
                    break
            # No exception escaped the target: the signature is the data's first bytes'
            # shape only, so sample a little to grow the queue.
            if rng.random() < 0.001 and len(queue) < 4096:
                queue.append(data)
        if crash is not None and not keep_going:
            break
    return {"target": target, "engine": "mutate", "execs": execs,
            "fuzz_seconds": round(time.monotonic() - started, 2), "crash": crash,
            "crashes": crashes, "known": known, "queue": len(queue)}


def save_crash(target: str, data: bytes, finding: BaseException) -> str:
    import targets as t

    t.CRASH_DIR.mkdir(parents=True, exist_ok=True)
    path = t.CRASH_DIR / f"{target}-{t.input_hash(data)}"
    path.write_bytes(data)
    sys.stderr.write(f"\nCRASH in {target}: {finding}\n  input saved to {path}\n")
    return str(path)


# -- atheris ---------------------------------------------------------------------------
def fuzz_atheris(target: str, seconds: float, strict: bool = False) -> None:
    """In a child process: libFuzzer over the target (never returns)."""
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

    with atheris.instrument_imports(include=["tlsmith"]):
        import targets as t
    t.warm_up()
    corpus = t.load_corpus(target)
    max_len = max([4096, *(2 * len(c) for c in corpus)])
    work = WORK_DIR / target
    work.mkdir(parents=True, exist_ok=True)
    t.CRASH_DIR.mkdir(parents=True, exist_ok=True)
    fn = t.TARGETS[target]

    known = [0]
    known_file = WORK_DIR / f"{target}.known"  # libFuzzer exits without atexit handlers

    def one(data: bytes) -> None:
        try:
            fn(data)
        except t.Finding as finding:
            if strict or not t.is_known(finding):
                raise
            known[0] += 1
            known_file.write_text(str(known[0]))

    args = [sys.argv[0], str(work), str(t.corpus_dir(target)),
            f"-max_total_time={int(seconds)}", f"-max_len={max_len}",
            f"-artifact_prefix={t.CRASH_DIR}/{target}-", "-print_final_stats=1",
            "-timeout=20", "-rss_limit_mb=4096"]
    atheris.Setup(args, one)
    atheris.Fuzz()


def _run_child(target: str, seconds: float, engine: str, seed: int, keep_going: bool,
               strict: bool) -> dict[str, Any]:
    import targets as t

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log = WORK_DIR / f"{target}.log"
    before = set(t.CRASH_DIR.glob(f"{target}-*")) if t.CRASH_DIR.is_dir() else set()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", target,
           "--seconds", str(seconds), "--engine", engine, "--seed", str(seed)]
    if keep_going:
        cmd.append("--keep-going")
    if strict:
        cmd.append("--strict")
    start = time.monotonic()
    with log.open("wb") as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, check=False,
                              timeout=seconds + 300)
    elapsed = time.monotonic() - start
    text = log.read_text(errors="replace")
    if engine == "mutate":
        lines = proc.stdout.decode().strip().splitlines()
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {
            "target": target, "engine": engine, "execs": 0, "crash": None,
            "error": text[-2000:]}
    else:
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
        execs = int(m.group(1)) if m else 0
        if not m:
            done = re.findall(r"#(\d+)\s", text)
            execs = int(done[-1]) if done else 0
        after = set(t.CRASH_DIR.glob(f"{target}-*")) if t.CRASH_DIR.is_dir() else set()
        new = [_rename_artifact(target, p) for p in sorted(after - before)]
        rate = re.search(r"stat::average_exec_per_sec:\s*(\d+)", text)
        known_file = WORK_DIR / f"{target}.known"
        hits = known_file.read_text() if known_file.exists() else None
        known_file.unlink(missing_ok=True)
        result = {"target": target, "engine": engine, "execs": execs,
                  "crash": str(new[0]) if new else None,
                  "known": int(hits) if hits else None,
                  "fuzz_seconds": round(execs / int(rate.group(1)), 2)
                  if rate and int(rate.group(1)) else seconds}
        if proc.returncode != 0 and not new:
            result["error"] = text[-2000:]
    result["seconds"] = round(elapsed, 1)
    result["returncode"] = proc.returncode
    return result


def _rename_artifact(target: str, path: Path) -> Path:
    """libFuzzer's <target>-crash-<sha1> (or -timeout-, -oom-) -> <target>-<hash>."""
    import targets as t

    kind = path.name[len(target) + 1 :].split("-", 1)[0]
    if kind not in ("crash", "timeout", "oom", "leak", "slow"):
        return path
    data = path.read_bytes()
    suffix = "" if kind == "crash" else f"-{kind}"
    new = path.with_name(f"{target}-{t.input_hash(data)}{suffix}")
    path.replace(new)
    return new


def report_crash(target: str, path: str) -> None:
    import targets as t

    data = Path(path).read_bytes()
    finding = t.run_one(target, data)
    if finding is None:
        print(f"  {path}: does not reproduce in-process (flaky or timeout/oom)")
        return
    print(f"  reproduces: {finding}")
    print("  regression stub for tests/test_fuzz_regressions.py:\n")
    print(t.regression_stub(target, data, finding))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("FUZZ_SECONDS", "60")))
    ap.add_argument("--target", action="append", default=[])
    ap.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")))
    ap.add_argument("--keep-going", action="store_true",
                    help="(mutate engine) go on after a crash, saving one input per "
                         "distinct root cause")
    ap.add_argument("--strict", action="store_true",
                    help="treat the known findings (KNOWN_FINDINGS in targets.py) as "
                         "crashes too")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--replay", help="run one saved input against --target")
    ap.add_argument("--list", action="store_true", help="list the targets")
    args = ap.parse_args(argv)

    if args.child:
        if args.engine == "atheris":
            fuzz_atheris(args.child, args.seconds, args.strict)
            return 0
        print(json.dumps(fuzz_mutate(args.child, args.seconds, args.seed, args.keep_going,
                                     args.strict)))
        return 0

    import targets as t

    if args.list:
        print("\n".join(t.TARGETS))
        return 0
    if args.replay:
        if len(args.target) != 1:
            ap.error("--replay needs exactly one --target")
        finding = t.run_one(args.target[0], Path(args.replay).read_bytes())
        print("holds" if finding is None else f"FINDING: {finding}")
        return 0 if finding is None else 1

    names = args.target or list(t.TARGETS)
    unknown = [n for n in names if n not in t.TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; known: {', '.join(t.TARGETS)}")
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "mutate"
    t.ensure_creds()
    print(f"fuzzing {len(names)} target(s) for {args.seconds:g} s each with {engine} "
          f"({args.jobs} at a time)", flush=True)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(_run_child, n, args.seconds, engine, args.seed + i,
                               args.keep_going, args.strict)
                   for i, n in enumerate(names)]
        results = [f.result() for f in futures]

    crashed = False
    print(f"\n{'target':<24} {'engine':<8} {'execs':>10} {'exec/s':>9}  result")
    for r in results:
        secs = float(r.get("fuzz_seconds") or args.seconds) or 1.0
        execs = int(r.get("execs") or 0)
        status = "ok"
        if r.get("known"):
            status = f"ok ({r['known']} hit(s) of known findings)"
        if r.get("crash"):
            status = f"CRASH {r['crash']}"
            crashed = True
        elif r.get("error"):
            status = "ERROR (see fuzz/.work/<target>.log)"
            crashed = True
        print(f"{r['target']!s:<24} {r['engine']!s:<8} {execs:>10} {execs / secs:>9.0f}  "
              f"{status}")
    for r in results:
        found = r.get("crashes") or ({"": r["crash"]} if r.get("crash") else {})
        for sig, path in found.items():
            print(f"\n{r['target']} {sig}:")
            report_crash(str(r["target"]), str(path))
        if not found and r.get("error"):
            print(f"\n{r['target']} failed:\n{r['error']}")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
