"""Evidence: turn token-position hits into character offsets, a score and a snippet."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ..records import Evidence
from ..text import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from .document import Document
from .nodes import Hit

FIELD_WEIGHTS = {"title": 3.0, "summary": 2.0, "content": 1.0}
_SNIPPET_CHARS = 240


def evidence_of(hits: list[Hit], doc: Document) -> tuple[Evidence, ...]:
    """Distinct hits as Evidence with character offsets into the field's text, in reading order."""
    seen: dict[tuple[str, int, int], Evidence] = {}
    made = doc.evidence  # the same word is evidence for many rules: located once per article
    for hit in hits:
        field, start, end, label, entity = hit
        key = (field, start, end)
        if key in seen:
            continue
        evidence = made.get(hit)
        if evidence is None:
            ft = doc.field(field)
            char_start, char_end = ft.span(start)[0], ft.span(end - 1)[1]
            evidence = made[hit] = Evidence(
                field, char_start, char_end, ft.text[char_start:char_end], label, entity
            )
        seen[key] = evidence
    return tuple(sorted(seen.values(), key=_reading_order))


_FIELD_ORDER = {"title": 0, "summary": 1, "content": 2}


def _reading_order(evidence: Evidence) -> tuple[int, int]:
    return (_FIELD_ORDER.get(evidence.field, 3), evidence.start)


def score_of(evidence: tuple[Evidence, ...]) -> float:
    """Sum of field weights over distinct evidence: a title hit counts 3, summary 2, others 1."""
    return sum(FIELD_WEIGHTS.get(e.field, 1.0) for e in evidence)


def snippet_of(evidence: tuple[Evidence, ...], doc: Document) -> str:
    """About 240 characters around the densest cluster of evidence, matched words in ⟦ ⟧.

    Prefers the body (summary, content) where the words have context; falls back to the title.
    """
    body = [e for e in evidence if e.field in ("summary", "content")]
    pool = body or [e for e in evidence if e.field == "title"] or list(evidence)
    if not pool:
        return ""

    # The evidence with the most others of its field less than 120 characters away (the
    # first such in reading order): counted by bisection in each field's sorted offsets.
    starts: dict[str, list[int]] = {}
    for e in pool:
        starts.setdefault(e.field, []).append(e.start)
    for offsets in starts.values():
        offsets.sort()
    best, most = pool[0], -1
    for e in pool:
        offsets = starts[e.field]
        dense = bisect_left(offsets, e.start + 120) - bisect_right(offsets, e.start - 120)
        if dense > most:
            best, most = e, dense
    text = doc.field(best.field).text
    start = max(0, best.start - _SNIPPET_CHARS // 3)
    end = min(len(text), start + _SNIPPET_CHARS)
    start = max(0, min(start, end - _SNIPPET_CHARS))
    # Widen to word boundaries.
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    marks = sorted(
        (e.start, e.end)
        for e in pool
        if e.field == best.field and e.start >= start and e.end <= end
    )
    out, cursor = [], start
    for s, e in marks:
        if s < cursor:
            continue
        out.append(_clean(text[cursor:s]))
        out.append(HIGHLIGHT_OPEN + _clean(text[s:e]) + HIGHLIGHT_CLOSE)
        cursor = e
    out.append(_clean(text[cursor:end]))
    snippet = "".join(out).replace("\n", " ").strip()
    return ("…" if start > 0 else "") + snippet + ("…" if end < len(text) else "")


def _clean(text: str) -> str:
    return text.replace(HIGHLIGHT_OPEN, "").replace(HIGHLIGHT_CLOSE, "")
