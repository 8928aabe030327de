"""One self-contained HTML page: every record of one connection as hex, each byte range
labelled (hover a byte, or open the field tree), protected records both as ciphertext
and decrypted, and the key derivation recomputed from this connection's values.

Inline CSS and JavaScript only: the page fetches nothing (RFC links are links).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from html import escape
from typing import Any

from tlsmith.codec.enums import ProtocolVersion
from tlsmith.explainer.annotate import AnnotatedRecord, Role, annotate, check_coverage
from tlsmith.explainer.derive import Derivation, Step, derive
from tlsmith.explainer.extensions import code_name
from tlsmith.explainer.spans import Span, rfc_text, rfc_url
from tlsmith.observe import CheckTrace, CompleteTrace, TraceRecord

#: A leaf longer than this is shown as its first and last bytes, with a count between.
ELIDE_OVER = 384
_KEEP_HEAD, _KEEP_TAIL = 128, 64

_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --bg:#fbfbfd; --line:#d9dce3; --ok:#137333;
  --bad:#b3261e; --warn:#fff4ce; --hl:#ffd54f; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; max-width: 1280px; padding: 1rem 1.5rem 4rem; }
h1 { font-size: 1.5rem; margin: .5rem 0; } h2 { margin-top: 2.2rem; }
code, .hex, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace;
  font-size: 13px; }
a { color: #1a56c4; }
.warning { background: var(--warn); border: 2px solid #e0a800; padding: .7rem 1rem;
  border-radius: 6px; font-weight: 600; }
.summary td { padding: .1rem 1rem .1rem 0; vertical-align: top; }
.record { border: 1px solid var(--line); border-radius: 8px; margin: 1rem 0;
  background: #fff; }
.record > header { padding: .5rem .8rem; border-bottom: 1px solid var(--line);
  display: flex; gap: 1rem; flex-wrap: wrap; align-items: baseline; }
.record.from-client > header { background: #eef4ff; }
.record.from-server > header { background: #effaf1; }
.record .num { font-weight: 700; } .record .dir { color: var(--muted); }
.tag { border: 1px solid var(--line); border-radius: 10px; padding: 0 .5rem;
  font-size: 12px; color: var(--muted); }
.tag.lock { border-color: #b78900; color: #8a6500; }
.view { display: grid; grid-template-columns: minmax(0, 50ch) minmax(0, 1fr); gap: 1rem;
  padding: .6rem .8rem; }
.view h3 { grid-column: 1 / -1; font-size: .95rem; margin: .2rem 0 0; color: var(--muted); }
.hex { word-break: break-all; white-space: normal; }
.hex span.f { cursor: pointer; border-radius: 2px; padding: 1px 0; }
.hex span.f:nth-child(6n+1) { background: #e8eefc; } .hex span.f:nth-child(6n+2)
{ background: #e6f5ea; } .hex span.f:nth-child(6n+3) { background: #fdf0e2; }
.hex span.f:nth-child(6n+4) { background: #f3e8fb; } .hex span.f:nth-child(6n+5)
{ background: #e3f4f6; } .hex span.f:nth-child(6n) { background: #f6f1dc; }
.hex span.f.on, .tree .on > summary, .tree li.on { outline: 2px solid var(--hl);
  background: #fff3c4 !important; }
.elided { color: var(--muted); font-style: italic; }
.tree { font-size: 13.5px; } .tree ul { list-style: none; padding-left: 1.1rem;
  margin: 0; } .tree details > summary { cursor: pointer; }
.tree .lab { font-weight: 600; } .tree .rng { color: var(--muted); font-size: 12px; }
.tree .mean { color: #334; overflow-wrap: anywhere; }
.steps { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
.steps th, .steps td { border-top: 1px solid var(--line); padding: .35rem .5rem;
  text-align: left; vertical-align: top; }
.steps .val { overflow-wrap: anywhere; max-width: 52ch; }
.steps .inputs { color: var(--muted); font-size: 12.5px; overflow-wrap: anywhere; }
.ok { color: var(--ok); font-weight: 700; } .bad { color: var(--bad); font-weight: 700; }
.problems { color: var(--bad); }
.toc { list-style: none; padding-left: 0; columns: 2 28rem; font-size: 13.5px; }
@media (max-width: 900px) { .view { grid-template-columns: 1fr; } }
"""

_JS = """
(function () {
  function mark(rec, key, on) {
    rec.querySelectorAll('[data-f="' + key + '"]').forEach(function (el) {
      el.classList.toggle('on', on);
    });
  }
  document.querySelectorAll('.record').forEach(function (rec) {
    rec.addEventListener('mouseover', function (ev) {
      var el = ev.target.closest('[data-f]');
      if (el) { mark(rec, el.getAttribute('data-f'), true); }
    });
    rec.addEventListener('mouseout', function (ev) {
      var el = ev.target.closest('[data-f]');
      if (el) { mark(rec, el.getAttribute('data-f'), false); }
    });
    rec.addEventListener('click', function (ev) {
      var el = ev.target.closest('.hex [data-f]');
      if (!el) { return; }
      var item = rec.querySelector('.tree [data-f="' + el.getAttribute('data-f') + '"]');
      if (!item) { return; }
      for (var p = item.parentElement; p && p !== rec; p = p.parentElement) {
        if (p.tagName === 'DETAILS') { p.open = true; }
      }
      item.scrollIntoView({block: 'nearest'});
    });
  });
  var all = document.getElementById('expand-all');
  if (all) {
    all.addEventListener('click', function () {
      var open = all.getAttribute('data-open') !== '1';
      document.querySelectorAll('.tree details').forEach(function (d) { d.open = open; });
      all.setAttribute('data-open', open ? '1' : '0');
      all.textContent = open ? 'collapse all fields' : 'expand all fields';
    });
  }
})();
"""


def _rfc_link(ref: str) -> str:
    if not ref:
        return ""
    return f' <a href="{escape(rfc_url(ref))}" rel="noreferrer">{escape(rfc_text(ref))}</a>'


def _hex_bytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data) + " "


def _hex_view(data: bytes, root: Span, prefix: str) -> str:
    """Each leaf of ``root`` as one span of hex; a long leaf elided in its middle."""
    out = []
    for i, leaf in enumerate(root.leaves()):
        chunk = data[leaf.offset:leaf.end]
        title = f"[{leaf.offset}..{leaf.end - 1}] {leaf.label}: {leaf.meaning}"
        if len(chunk) > ELIDE_OVER:
            hidden = len(chunk) - _KEEP_HEAD - _KEEP_TAIL
            body = (escape(_hex_bytes(chunk[:_KEEP_HEAD]))
                    + f'<span class="elided">… {hidden} bytes not shown …</span> '
                    + escape(_hex_bytes(chunk[-_KEEP_TAIL:])))
        else:
            body = escape(_hex_bytes(chunk))
        out.append(f'<span class="f" data-f="{prefix}{i}" title="{escape(title)}">'
                   f"{body}</span>")
    return "".join(out)


def _tree(root: Span, prefix: str) -> str:
    """The field tree: nested <details>; leaves numbered as in the hex view."""
    counter = [0]

    def node(span: Span, depth: int) -> str:
        rng = f"[{span.offset}..{span.end - 1}] {span.length} B"
        head = (f'<span class="lab">{escape(span.label)}</span> '
                f'<span class="rng">{rng}</span>'
                + (f' <span class="mean">{escape(span.meaning)}</span>' if span.meaning
                   else "") + _rfc_link(span.rfc))
        if not span.children:
            key = f"{prefix}{counter[0]}"
            counter[0] += 1
            return f'<li data-f="{key}">{head}</li>'
        inner = "".join(node(c, depth + 1) for c in span.children)
        opened = " open" if depth < 3 else ""
        return f"<li><details{opened}><summary>{head}</summary><ul>{inner}</ul></details></li>"

    return f'<ul class="tree">{node(root, 0)}</ul>'


def _record_html(a: AnnotatedRecord, local: Role) -> str:
    rec = a.trace
    peer = "server" if a.sender == "client" else "client"
    ours = " (us)" if a.sender == local else ""
    tags = [f'<span class="tag">{escape(str(rec.epoch))} epoch</span>']
    if rec.protected:
        tags.append('<span class="tag lock">protected</span>')
    if a.seq is not None:
        tags.append(f'<span class="tag">seq {a.seq}</span>')
    parts = [
        f'<section class="record from-{a.sender}" id="record-{a.index}" '
        f'data-index="{a.index}" data-sender="{a.sender}" '
        f'data-protected="{str(rec.protected).lower()}">',
        f'<header><span class="num">#{a.index}</span> <span class="dir">{a.sender}{ours} '
        f"→ {peer}</span> <strong>{escape(a.title)}</strong> {''.join(tags)} "
        f'<span class="tag">{len(rec.wire)} bytes</span></header>',
        '<div class="view"><h3>On the wire' + (" (ciphertext)" if rec.protected else "")
        + "</h3>",
        f'<div class="hex wire">{_hex_view(rec.wire, a.wire, f"w{a.index}-")}</div>',
        f'<div>{_tree(a.wire, f"w{a.index}-")}</div></div>',
    ]
    if a.inner is not None:
        what = "TLSInnerPlaintext" if a.inner.label == "TLSInnerPlaintext" else "content"
        parts += [
            f'<div class="view decrypted"><h3>Decrypted ({what})</h3>',
            f'<div class="hex inner">{_hex_view(a.inner_bytes, a.inner, f"i{a.index}-")}'
            "</div>",
            f'<div>{_tree(a.inner, f"i{a.index}-")}</div></div>',
        ]
    parts.append("</section>")
    return "\n".join(parts)


def _contents(annotated: Sequence[AnnotatedRecord]) -> str:
    """The records in order, one line each, linking to their section."""
    items = []
    for a in annotated:
        arrow = "→" if a.sender == "client" else "←"
        lock = " (protected)" if a.trace.protected else ""
        items.append(f'<li><a href="#record-{a.index}">#{a.index}</a> <span class="mono">'
                     f"client {arrow} server</span> {escape(a.title)}{lock}</li>")
    items.append('<li><a href="#derivation">key derivation</a></li>')
    return f'<ol class="toc">{"".join(items)}</ol>'


def _mark(check: bool | None) -> str:
    if check is True:
        return '<span class="ok" title="equals the value the connection derived">✓</span>'
    if check is False:
        return '<span class="bad" title="differs from the connection\'s value">✗</span>'
    return ""


def _value(step: Step) -> str:
    value = step.value
    if len(value) > 256:
        shown = (value[:128].hex() + f" … {len(value) - 192} bytes not shown … "
                 + value[-64:].hex())
    else:
        shown = value.hex()
    tag = ' <span class="tag lock">secret</span>' if step.secret else ""
    return f'<code class="val-hex">{escape(shown)}</code>{tag}'


def _derivation_html(d: Derivation) -> str:
    parts = ['<section id="derivation"><h2>Key derivation, recomputed from this '
             f"connection ({escape(d.version)})</h2>",
             "<p>Each value below is computed again here, with tlsmith's key schedule "
             "functions, from this connection's own randoms, transcript and shared secret. "
             "✓ means it equals the value the connection itself derived.</p>"]
    if d.problems:
        parts.append('<ul class="problems">' + "".join(
            f"<li>{escape(p)}</li>" for p in d.problems) + "</ul>")
    for title, steps in d.sections:
        parts.append(f"<h3>{escape(title)}</h3>")
        parts.append('<table class="steps"><tr><th></th><th>value</th><th>computed as'
                     "</th><th>value (hex)</th></tr>")
        for step in steps:
            inputs = "".join(f"<div>{escape(k)} = <code>{escape(v)}</code></div>"
                             for k, v in step.inputs)
            note = f"<div>{escape(step.note)}</div>" if step.note else ""
            parts.append(
                f'<tr class="step" data-step="{escape(step.name)}" '
                f'data-check="{"" if step.check is None else str(step.check).lower()}">'
                f"<td>{_mark(step.check)}</td><td><strong>{escape(step.name)}</strong>"
                f"{_rfc_link(step.rfc)}</td><td>{escape(step.formula)}"
                f'<div class="inputs">{inputs}{note}</div></td>'
                f'<td class="val">{_value(step)}</td></tr>')
        parts.append("</table>")
    parts.append("</section>")
    return "\n".join(parts)


def _summary(records: Sequence[TraceRecord], annotated: Sequence[AnnotatedRecord],
             d: Derivation, local: Role) -> str:
    info: Any = next((r.info for r in records if isinstance(r, CompleteTrace)), None)
    rows = [("seen from", f"the {local}"), ("records", str(len(annotated)))]
    if info is not None:
        for key in ("version", "cipher_suite", "group", "alpn_protocol", "server_name"):
            value = getattr(info, key, None)
            if value:
                if key == "version":
                    value = code_name(ProtocolVersion, int(value)).split(" (")[0]
                rows.append((key.replace("_", " "), str(getattr(value, "rfc_name", value))))
    checks = [s.check for s in d.steps() if s.check is not None]
    rows.append(("derivation", f"{sum(1 for c in checks if c)} of {len(checks)} values "
                 "recomputed and equal ✓" if checks else "nothing to compare"))
    traced = [r for r in records if isinstance(r, CheckTrace)]
    if traced:
        rows.append(("checks made", "; ".join(f"{'✓' if c.ok else '✗'} {c.name}"
                                              for c in traced)))
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="summary">{body}</table>'


def render_explainer(records: Sequence[TraceRecord], *, local: Role = "client") -> str:
    """The HTML page for one connection's trace (``local``: which end wrote it)."""
    annotated = annotate(records, local=local)
    derivation = derive(records, annotated, local=local)
    problems = check_coverage(annotated)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>tlsmith — this connection, byte by byte</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>This connection, byte by byte</h1>",
        '<p class="warning" id="secrets-warning">⚠ This page contains this connection\'s '
        "secrets (traffic keys and the secrets they come from). With them and a capture, "
        "anyone can read the traffic: do not publish it.</p>",
        _summary(records, annotated, derivation, local),
        "<p>Hover a byte to see its field; click it to find the field in the tree. "
        '<button id="expand-all" type="button">expand all fields</button></p>',
    ]
    if problems:
        parts.append('<ul class="problems">' + "".join(
            f"<li>{escape(p)}</li>" for p in problems) + "</ul>")
    parts.append(f"<h2>Records ({len(annotated)})</h2>")
    parts.append(_contents(annotated))
    parts.append('<div id="records">')
    parts += [_record_html(a, local) for a in annotated]
    parts.append("</div>")
    parts.append(_derivation_html(derivation))
    parts.append('<p class="mono">Generated by tlsmith from the trace of this connection.'
                 "</p>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts)


def write_explainer(path: str, records: Sequence[TraceRecord], *, local: Role = "client"
                    ) -> None:
    """Write the page for ``records`` to ``path`` (UTF-8), readable by its owner only:
    it holds the connection's secrets."""
    page = render_explainer(records, local=local).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(page)
