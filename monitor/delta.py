"""What a feed document holds that the last one did not: its items cut out byte for byte. Pure.

A news feed that changed usually carries one or two new items and eighteen it carried last time,
byte for byte the same. Parsing those again (feedparser costs about half a millisecond per item),
cleaning their HTML, detecting their language and looking them up in the database would all end
in "nothing new". So each item of an RSS or Atom document is found by its tags, hashed, and the
items whose hash the feed's last document also had are cut out before parsing: the parser sees
the same document with fewer items, and storage still decides what is new among the rest.

Only a document whose items can be cut with certainty is cut: its `<item>` (or `<entry>`) tags
must pair up, each opening followed by its closing, all of one kind, so an item tag hidden in a
CDATA section or a comment, a namespace prefix or a self-closing item leaves the document whole
(`cut` returns None) and the feed is parsed in full, as before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container
from dataclasses import dataclass

# An item or entry tag, opening or closing; group 3 tells `<item/>` (self-closing) apart.
_TAG = re.compile(rb"<(/?)(item|entry)([\s>/])")


@dataclass(frozen=True)
class Cut:
    """A document with the items seen before cut out."""

    body: bytes  # the document, minus the items whose digest was seen
    digests: tuple[str, ...]  # every item's digest, in document order
    kept: tuple[str, ...]  # the digests of the items left in `body`, in document order
    skipped: tuple[str, ...]  # the digests of the items cut out


def digest(item: bytes) -> str:
    return hashlib.blake2b(item, digest_size=12).hexdigest()


def cut(body: bytes, seen: Container[str]) -> Cut | None:
    """`body` without the items whose digest is in `seen`, or None when its items cannot be told
    apart with certainty (JSON, no items, or item tags the spans do not account for)."""
    spans = _spans(body)
    if spans is None:
        return None
    parts: list[bytes] = []
    digests, kept, skipped = [], [], []
    start = 0
    for begin, end in spans:
        item = digest(body[begin:end])
        digests.append(item)
        if item in seen:
            parts.append(body[start:begin])
            start = end
            skipped.append(item)
        else:
            kept.append(item)
    parts.append(body[start:])
    return Cut(b"".join(parts), tuple(digests), tuple(kept), tuple(skipped))


def item_count(body: bytes) -> int | None:
    """How many items the document has, or None when they cannot be told apart (see `cut`)."""
    spans = _spans(body)
    return None if spans is None else len(spans)


def only_items(body: bytes, keep: slice | range) -> bytes:
    """`body` with only the items `keep` selects (by position: a slice, as a list's, or a range
    of positions), the rest of the document as it is; `body` itself when its items cannot be
    told apart."""
    spans = _spans(body)
    if spans is None:
        return body
    kept = set(range(len(spans))[keep] if isinstance(keep, slice) else keep)
    parts, start = [], 0
    for i, (begin, end) in enumerate(spans):
        if i not in kept:
            parts.append(body[start:begin])
            start = end
    parts.append(body[start:])
    return b"".join(parts)


def _spans(body: bytes) -> list[tuple[int, int]] | None:
    """(start, end) of each item, from its opening tag's `<` to its closing tag's `>`, when the
    document's item tags all pair up, open then close, and are of one kind; else None."""
    spans = []
    kind = None
    tags = _TAG.finditer(body)
    for opening in tags:
        if opening.group(1) or opening.group(3) == b"/":
            return None
        closing = next(tags, None)
        if closing is None or not closing.group(1) or closing.group(2) != opening.group(2):
            return None
        if kind is None:
            kind = opening.group(2)
        elif kind != opening.group(2):
            return None
        end = body.find(b">", closing.end() - 1)
        if end < 0:
            return None
        spans.append((opening.start(), end + 1))
    return spans or None
