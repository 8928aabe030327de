"""The byte-level explainer: every record of one connection annotated field by field,
its keys recomputed step by step, rendered as one self-contained HTML page.

``render_explainer(records, local="client")`` returns the page for a trace
(``TraceCollector.records``); ``write_explainer(path, records, local=...)`` writes it.
"""

from tlsmith.explainer.annotate import AnnotatedRecord, annotate, check_coverage
from tlsmith.explainer.derive import Derivation, Step, derive
from tlsmith.explainer.html import render_explainer, write_explainer
from tlsmith.explainer.spans import Span

__all__ = ["AnnotatedRecord", "Derivation", "Span", "Step", "annotate", "check_coverage",
           "derive", "render_explainer", "write_explainer"]
