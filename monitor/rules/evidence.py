"""Evidence: turn token-position hits into character offsets, a score and a snippet."""

from __future__ import annotations

from bisect import bisect_left

from ..records import Evidence
from ..text import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from . import native
from .document import ALL_FIELDS, Document
from .nodes import Hit

_SNIPPET_CHARS = 240
_BEFORE = _SNIPPET_CHARS // 3  # of a snippet, before the word it is placed around
_CANDIDATES = 64  # words a snippet may be placed around (an article repeating one has 1,000s)


def evidence_of(hits: list[Hit], doc: Document) -> tuple[Evidence, ...]:
    """Distinct hits as Evidence with character offsets into the field's text, in reading order
    (title, summary, content, then the other fields; by offset within a field). The same word
    is evidence for many rules: each hit is located once per article (doc.evidence)."""
    if not isinstance(hits, list):
        hits = list(hits)
    return native.evidence_of(hits, doc.evidence, _locate, doc, doc.locators, Evidence)


_FIELD_ORDER = {name: rank for rank, name in enumerate(ALL_FIELDS)}


def _locate(hit: Hit, doc: Document) -> tuple[tuple[int, int, int], Evidence]:
    """A hit's place in reading order (field, first and end token: token order is character
    order within a field) and its Evidence. The field's locator is kept (doc.locators): the
    C extension locates the field's next hits itself, the same way."""
    field, start, end, label, entity = hit
    ft = doc.field(field)
    starts = ft.starts
    char_start = starts[start]
    char_end = starts[end - 1] + ft.written_length(end - 1)
    evidence = Evidence(field, char_start, char_end, ft.text[char_start:char_end], label, entity)
    rank = _FIELD_ORDER[field]
    if field not in doc.locators:
        doc.locators[field] = (rank, *ft.locator())
    return (rank, start, end), evidence


def mentions_of(evidence: tuple[Evidence, ...], doc: Document) -> list[Evidence]:
    """One entity's mentions from its evidence (in reading order): aliases that overlap in the
    text make one mention of the words they cover together ("Anti-Immigrant" was a mention of
    "anti-immigrant" and another of "immigrant" inside it, counted twice by webhooks)."""
    found: list[Evidence] = []
    for e in evidence:
        if not e.entity:
            continue  # a context word
        last = found[-1] if found else None
        if last is None or e.field != last.field or e.start >= last.end:
            found.append(e)
        elif e.end > last.end:
            text = doc.field(e.field).text
            found[-1] = last._replace(end=e.end, text=text[last.start : e.end])
    return found


def score_of(evidence: tuple[Evidence, ...]) -> float:
    """Sum of field weights over distinct evidence: a title hit counts 3, summary 2, others 1.
    Words that overlap words counted already count once: "projet de loi immigration" matched by
    three aliases of one entity counted three times. `evidence` is in reading order."""
    return native.score_of(evidence)


def snippet_of(evidence: tuple[Evidence, ...], doc: Document) -> str:
    """About 240 characters around the densest cluster of evidence, matched words in ⟦ ⟧.

    Prefers the body (summary, content) where the words have context. A match in the title
    alone gives the opening of the body, unmarked: digests and webhooks show the title already,
    and the title again as its snippet told the reader nothing more. With no body, the title.
    `evidence` is in reading order, as evidence_of gives it: each field's offsets come sorted.
    """
    body = [e for e in evidence if e.field in _BODY]
    titled = [e for e in evidence if e.field == "title"]
    if not body and titled:
        lead = _opening(doc)
        if lead:
            return lead
    pool = body or titled or list(evidence)
    if not pool:
        return ""
    return native.snippet(pool, doc.texts)


def snippet_around(pool: list[Evidence], texts: dict[str, str]) -> str:
    """The window of snippet_of around the densest of `pool` (evidence in reading order, not
    empty), in the text of its field in `texts` (the C extension's native.snippet is the same)."""
    # The window (from a third of its length before a word) showing the most different query
    # terms, then the most words (the first such in reading order): the densest words alone
    # showed an urgent rule's "asylum, asylum" and not the police violence it was urgent for.
    # Counted by bisection in each field's offsets, from its first _CANDIDATES words.
    starts: dict[str, list[int]] = {}
    terms: dict[str, list[str]] = {}
    for e in pool:
        if e.field in starts:
            starts[e.field].append(e.start)
            terms[e.field].append(e.term)
        else:
            starts[e.field], terms[e.field] = [e.start], [e.term]
    best, most = pool[0], (-1, -1)
    if len(pool) > 1:
        # The first words, and each term's first word: ninety repeats of one word before
        # another's kept the second out of the candidates (a code review).
        firsts, terms_seen = [], set()
        for e in pool:
            if e.term not in terms_seen:
                terms_seen.add(e.term)
                firsts.append(e)
        for e in dict.fromkeys((*pool[:_CANDIDATES], *firsts)):
            offsets = starts[e.field]
            low = bisect_left(offsets, e.start - _BEFORE)
            high = bisect_left(offsets, e.start - _BEFORE + _SNIPPET_CHARS)
            shown = (len(set(terms[e.field][low:high])), high - low)
            if shown > most:
                best, most = e, shown
    text = texts[best.field]
    start, end = _window(text, best.start - _BEFORE)
    window = text[start:end]
    # Feed text holding the highlight marks themselves has them removed, so that only
    # Vigie's marks delimit matched words; most text has none, and is sliced as it is.
    clean = _clean if HIGHLIGHT_OPEN in window or HIGHLIGHT_CLOSE in window else str
    out, cursor, field = [], start, best.field
    for e in pool:  # in order of offset, as `evidence` is
        if e.field != field or e.start < cursor or e.end > end:
            continue
        out.append(clean(text[cursor : e.start]))
        out.append(HIGHLIGHT_OPEN + clean(text[e.start : e.end]) + HIGHLIGHT_CLOSE)
        cursor = e.end
    out.append(clean(text[cursor:end]))
    return _ellipsed("".join(out), start, end, text)


def _window(text: str, start: int) -> tuple[int, int]:
    """About 240 characters of `text` from `start`, kept inside the text and widened to word
    boundaries."""
    start = max(0, start)
    end = min(len(text), start + _SNIPPET_CHARS)
    start = max(0, min(start, end - _SNIPPET_CHARS))
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


def _ellipsed(snippet: str, start: int, end: int, text: str) -> str:
    """One line, with … where the text goes on before or after."""
    snippet = snippet.replace("\n", " ").strip()
    return ("…" if start > 0 else "") + snippet + ("…" if end < len(text) else "")


def _opening(doc: Document) -> str:
    """The first 240 characters or so of the summary, else of the content; "" when neither
    has text."""
    for name in ("summary", "content"):
        text = doc.field(name).text
        if text.strip():
            start, end = _window(text, 0)
            return _ellipsed(_clean(text[start:end]), start, end, text)
    return ""


_BODY = frozenset({"summary", "content"})


def _clean(text: str) -> str:
    return text.replace(HIGHLIGHT_OPEN, "").replace(HIGHLIGHT_CLOSE, "")
