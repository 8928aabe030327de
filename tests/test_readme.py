"""Every ```python block of README.md runs, in order, each as its own test.

Each snippet runs in a subprocess (this interpreter, i.e. the venv's Python) with a
timeout, in a fresh temp dir holding what the snippets assume:

* ``ca.pem``: the development CA; ``cert.pem`` (leaf + CA) / ``key.pem``: a localhost
  certificate and key it issued;
* for a snippet that mentions port 8443: a ``tlsmith serve`` started with the arguments
  the README's Python API section names (``SERVE_ARGS``) on a free port, and the snippet's
  ``8443`` rewritten to that port (nothing else is rewritten).

A snippet passes when it exits 0 within ``SNIPPET_TIMEOUT`` seconds, prints something,
writes no traceback or warning (ResourceWarning is turned on), and its stdout contains
the keywords ``EXPECTED`` lists for it (if any). A block the README marks with
``<!-- not-run: REASON -->`` on the line(s) right above its fence is skipped, with REASON.
New snippets (asyncio, httpx, ...) are picked up automatically.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import CertFiles
from tlsmith.x509.devca import DevCA

README = Path(__file__).resolve().parent.parent / "README.md"
SNIPPET_TIMEOUT = 30.0
README_PORT = "8443"
#: What the README tells readers to run for the snippets that connect to localhost:8443.
SERVE_ARGS = ("--early-data", "--alpn", "http/1.1")

#: (a substring that identifies a snippet, keywords its stdout must contain). Every
#: entry must match a snippet (test_expected_entries_match), so none silently goes stale.
EXPECTED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("TLSConnection(ClientConfig(", ("TLSv1.3", "HTTP/1.0 200 OK", "closed, clean: True")),
    ("tls.key_update()", ("TLSv1.3", "http/1.1", "HTTP/1.0 200 OK")),
    ("max_version=ProtocolVersion.TLS12", ("TLSv1.2", "ECDHE True")),
    ("server_verdict()", ("accepted",)),
    ("verify_callback=issued_by_our_ca", ("False True",)),
    ("TLSServer(config", ("hello 127.0.0.1, this is TLSv1.3",)),
    ("early_data=request", ("True psk_dhe_ke True", "HTTP/1.0 200 OK")),
    ("RedisStore.from_url", ("RedisStore",)),
    ("render_ladder(", ("ClientHello", "Finished", "records")),
    ('aio.open_connection("localhost", 8443', ("TLSv1.3", "HTTP/1.0 200 OK",
                                               "closed, clean: True")),
    ("aio.upgrade(reader, writer, config)", ("hello, this is TLSv1.3", "now over TLSv1.3")),
    ("tlsmith.httpx.Transport(", ("200 TLSv1.3", "full handshake", "resumed")),
    ("tlsmith.httpx.AsyncTransport(", ("200 TLSv1.3 http/1.1",)),
)


@dataclass(frozen=True)
class Snippet:
    line: int  # of the ```python fence in README.md
    code: str
    intro: str  # the paragraph right above the block ("" if none)
    skip_reason: str | None  # from <!-- not-run: REASON -->

    @property
    def id(self) -> str:
        """``L<line>-<the first words of the paragraph that introduces it>`` (or of its
        first line of code)."""
        text = self.intro or next((ln for ln in self.code.splitlines() if ln.strip()), "")
        slug = f"L{self.line}"
        for word in re.sub(r"[^A-Za-z0-9_.]+", " ", text).split()[:7]:
            if len(slug) + len(word) > 50:
                break
            slug += "-" + word.rstrip(".")
        return slug


_FENCE = re.compile(r"^```(?:python|py|python3)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->$")


def readme_snippets(text: str) -> list[Snippet]:
    lines = text.splitlines()
    snippets: list[Snippet] = []
    i = 0
    while i < len(lines):
        if not _FENCE.match(lines[i]):
            i += 1
            continue
        start = end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        assert end < len(lines), f"README.md:{i + 1}: unterminated ```python block"
        above = [ln.strip() for ln in lines[:i]]
        while above and not above[-1]:
            above.pop()
        marker = _NOT_RUN.match(above[-1]) if above else None
        if marker:
            above.pop()
        intro: list[str] = []
        while above and above[-1] and not above[-1].startswith(("#", "```", "<!--")):
            intro.insert(0, above.pop())
        snippets.append(Snippet(line=i + 1, code="\n".join(lines[start:end]) + "\n",
                                intro=" ".join(intro),
                                skip_reason=(marker.group(1) or "no reason given")
                                if marker else None))
        i = end + 1
    return snippets


SNIPPETS = readme_snippets(README.read_text(encoding="utf-8"))


def test_snippet_parsing() -> None:
    """Blocks, their intro, and the not-run marker (the only way to skip one)."""
    text = ("# T\n\nSay hello\nin Python:\n\n```python\nprint('hi')\n```\n\n"
            "Needs a GPU:\n<!-- not-run: needs a GPU -->\n```python\nimport gpu\n```\n"
            "```sh\nls\n```\n")
    hello, gpu = readme_snippets(text)
    assert (hello.line, hello.code, hello.skip_reason) == (6, "print('hi')\n", None)
    assert hello.id == "L6-Say-hello-in-Python"
    assert (gpu.line, gpu.code, gpu.skip_reason) == (12, "import gpu\n", "needs a GPU")
    assert gpu.id == "L12-Needs-a-GPU"


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 8, [s.id for s in SNIPPETS]


def test_expected_entries_match() -> None:
    for marker, _ in EXPECTED:
        assert any(marker in s.code for s in SNIPPETS), (
            f"EXPECTED entry {marker!r} matches no README snippet: update it")


def test_readme_names_the_server_command() -> None:
    """The README says which server the 8443 snippets talk to; the tests start that one."""
    command = " ".join(("tlsmith serve", *SERVE_ARGS))
    assert command in README.read_text(encoding="utf-8"), (
        f"README.md should tell readers to run `{command}` for the Python API snippets")


# ------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def readme_files(devca: DevCA, tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """ca.pem, cert.pem (leaf + CA) and key.pem, as the snippets expect them."""
    directory = tmp_path_factory.mktemp("readme-files")
    assert devca.ca_path is not None
    issued = devca.issue(key_type="ecdsa-p256")
    (directory / "ca.pem").write_bytes(Path(devca.ca_path).read_bytes())
    (directory / "cert.pem").write_bytes(issued.chain_pem)
    (directory / "key.pem").write_bytes(issued.key_pem)
    return CertFiles(key_type="ecdsa-p256", cert_path=directory / "cert.pem",
                     key_path=directory / "key.pem", chain_path=directory / "cert.pem",
                     ca_path=directory / "ca.pem")


@pytest.fixture(scope="module")
def readme_server(readme_files: CertFiles, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[int]:
    """The port of a ``tlsmith serve SERVE_ARGS`` with cert.pem/key.pem (started only
    when a snippet needs it)."""
    from peers import start_tlsmith_serve_cli

    serve = start_tlsmith_serve_cli(readme_files, *SERVE_ARGS,
                                    log_dir=tmp_path_factory.mktemp("readme-serve"))
    try:
        yield serve.port
    finally:
        serve.stop()


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_readme_snippet(snippet: Snippet, readme_files: CertFiles, tmp_path: Path,
                        request: pytest.FixtureRequest) -> None:
    if snippet.skip_reason is not None:
        pytest.skip(f"README.md:{snippet.line} is marked not-run: {snippet.skip_reason}")
    code = snippet.code
    if re.search(rf"\b{README_PORT}\b", code):
        port: int = request.getfixturevalue("readme_server")
        code = re.sub(rf"\b{README_PORT}\b", str(port), code)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        shutil.copy(readme_files.ca_path.parent / name, tmp_path / name)
    script = tmp_path / f"readme_L{snippet.line}.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    env["TLSMITH_HOME"] = str(tmp_path / "tlsmith-home")
    env["PYTHONWARNINGS"] = "always::ResourceWarning"
    env["COLUMNS"] = "100"
    try:
        done = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=SNIPPET_TIMEOUT,
                              check=False)
        out, err, status = done.stdout, done.stderr, str(done.returncode)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        status = f"killed after {SNIPPET_TIMEOUT} s"
    print(out, err, sep="--- stderr ---\n")  # shown by pytest -rP
    problems = [f"exit status {status}"] if status != "0" else []
    if "Traceback" in out + err:
        problems.append("a traceback")
    if "Warning" in err:
        problems.append("a warning on stderr")
    if not out.strip():
        problems.append("nothing printed")
    problems += [f"{keyword!r} not in stdout" for marker, keywords in EXPECTED
                 if marker in snippet.code for keyword in keywords if keyword not in out]
    if problems:
        pytest.fail(f"README.md:{snippet.line}: {'; '.join(problems)}\n"
                    f"(line N of the script is README line {snippet.line} + N)\n"
                    f"--- stdout ---\n{out}\n--- stderr ---\n{err}\n"
                    f"--- code as run ---\n{code}", pytrace=False)
