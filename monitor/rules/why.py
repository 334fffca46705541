"""Why a rule did not match an article: which parts of it the article has, and which it lacks.

`vigie rules test` said only "no match", and a rule author split the query by hand to find the
part that failed. Each part the rule needs (the operands of its top AND, or the alternatives of
its top OR) is evaluated on the article and said to be found (with the words), missing, too far
apart (a NEAR whose sides are both there), or excluding the article (a NOT). Pure: nodes are
evaluated as the matcher evaluates them, on the same Document.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ..text import fold_word, stem_words_uncached
from .compile import PREFIX_MIN
from .document import TEXT_FIELDS, Document
from .evidence import evidence_of
from .index import CompiledRule
from .nodes import (
    AllOf,
    AnyOf,
    Hit,
    LanguageIs,
    Memo,
    Near,
    Node,
    NoneOf,
    NotNear,
    Outside,
    Seq,
    leaves,
)
from .spellings import other_spellings

_SHOWN_WORDS = 4  # words quoted for a part found
_SHOWN_CHARS = 100  # of a part's query text: an OR of 60 words made a line of 900 characters
_DEPTH = 3  # levels of ANDs and ORs taken apart below the rule's own


def why_not(compiled: CompiledRule, doc: Document) -> list[str]:
    """One line per part the rule needs, saying what the article has of it; a part that is
    itself an AND or an OR the article lacks is taken apart in turn, indented."""
    if compiled.scoped and not compiled.in_scope(doc):
        return [f"out of scope: {_scope(compiled, doc)}"]
    node = compiled.node
    if isinstance(node, AnyOf | AllOf):
        return _taken_apart(node, doc, "", _DEPTH)
    return [_state(node, doc)]


def came_near(compiled: CompiledRule, doc: Document) -> bool:
    """Whether a rule that does not match the article came near it: a part it needs found, a
    NEAR whose sides are both there, an OR alternative with some of its parts, or a NOT that
    left it out; what the why-not says more of than "missing". Of the items of a feed that do
    not match, those worth it (`rules test --url` said it of all 60 items of a feed)."""
    if compiled.scoped and not compiled.in_scope(doc):
        return False
    node = compiled.node
    for part in node.children if isinstance(node, AllOf | AnyOf) else [node]:
        if isinstance(part, NoneOf):
            if part.child.hits(doc) is not None:  # "excluded by"
                return True
        elif part.hits(doc) is not None or _came_near(part, doc):
            return True
    return False


def _taken_apart(node: AnyOf | AllOf, doc: Document, indent: str, depth: int) -> list[str]:
    """An AND: each of its parts. An OR: the alternatives that came near (an AND with some of
    its parts there, a NEAR or NOT NEAR with both sides there), each taken apart, then the
    others in one line: (a OR b) NOT c, the shape of most rules, said only "missing (a OR b)"."""
    if isinstance(node, AllOf):
        lines = [f"{indent}needs all of:" if not indent else f"{indent}all of:"]
        for part in node.children:
            lines += _explained(part, doc, indent + "  ", depth)
        return lines
    lines = [f"{indent}needs one of:" if not indent else f"{indent}one of:"]
    others = []
    for child in node.children:
        if _came_near(child, doc):
            lines += _explained(child, doc, indent + "  ", depth)
        else:
            others.append(child)
    if others:  # those that did not come near, in one line
        missing = _shortened(" OR ".join(map(describe, others)))
        hint = _alternatives_missed(others, doc)
        lines.append(f"{indent}  missing      {missing}" + (f": {hint}" if hint else ""))
    return lines


def _explained(node: Node, doc: Document, indent: str, depth: int) -> list[str]:
    if depth > 0 and isinstance(node, AnyOf | AllOf) and node.hits(doc) is None:
        if isinstance(node, AnyOf) and not _came_near(node, doc):
            hint = _near_miss(node, doc)
            return [
                f"{indent}missing      {_shortened(describe(node))}" + (f": {hint}" if hint else "")
            ]
        return _taken_apart(node, doc, indent, depth - 1)
    return [indent + _state(node, doc)]


def _came_near(node: Node, doc: Document) -> bool:
    """Whether an alternative the article lacks has some of what it needs."""
    if isinstance(node, AllOf):
        return any(not isinstance(p, NoneOf) and p.hits(doc) for p in node.children)
    if isinstance(node, NotNear):
        return bool(node.left.hits(doc))
    if isinstance(node, Near):
        return bool(node.left.hits(doc)) and bool(node.right.hits(doc))
    if isinstance(node, AnyOf):
        return any(_came_near(child, doc) for child in node.children)
    return False


def _shortened(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1].rstrip() + "…"


def _state(node: Node, doc: Document) -> str:
    if isinstance(node, NoneOf):
        hits = node.child.hits(doc)
        if hits:
            return f"excluded by  NOT {_shortened(describe(node.child))}: {_words(hits, doc)}"
        return f"absent, good NOT {_shortened(describe(node.child))}"
    hits = node.hits(doc)
    if hits is not None:
        found = f"found        {_shortened(describe(node))}"
        return found + (f": {_words(hits, doc)}" if hits else "")
    if isinstance(node, NotNear):
        if node.left.hits(doc):
            return (
                f"too near     {_shortened(describe(node))}: every"
                f" {_shortened(describe(node.left))} has {_shortened(describe(node.right))}"
                f" within {_distance(node)}"
            )
        return f"missing      {_shortened(describe(node))}: no {_shortened(describe(node.left))}"
    if isinstance(node, Near):
        left, right = node.left.hits(doc), node.right.hits(doc)
        if left and right:
            return f"too far      {_shortened(describe(node))}: {_words(left, doc)} and" + (
                f" {_words(right, doc)}, {_how_far(node, left, right, doc)}"
            )
        lacking = node.left if not left else node.right
        hint = _near_miss(lacking, doc)
        hint = f"; {hint}" if hint else ""
        return (
            f"missing      {_shortened(describe(node))}: no {_shortened(describe(lacking))}{hint}"
        )
    if isinstance(node, LanguageIs):
        language = doc.language or "no language that could be told"
        return f"missing      {describe(node)}: the article is in {language}"
    hint = _near_miss(node, doc)
    return f"missing      {_shortened(describe(node))}" + (f": {hint}" if hint else "")


def _entity_near_miss(node: Memo, doc: Document) -> str:
    """For an entity the article lacks, the aliases it has that did not count: one inside a
    longer name it does not count in ("Calais" in "Pas-de-Calais"), one whose context words
    are not near it ("Le Livre de la jungle" is no Jungle camp), one in the wrong case ("crs"
    for CRS). The author read only "missing @jungle" with "jungle" in the text, and could not
    tell the alias from the entity's other aliases."""
    aliases = node.node.children if isinstance(node.node, AnyOf) else [node.node]
    without_context: dict[str, list] = {}  # context said -> the hits of the aliases it holds
    inside: list[str] = []
    said = []
    for alias in aliases:
        near = alias if isinstance(alias, Near) and not isinstance(alias, Outside) else None
        places = near.left if near is not None else alias
        seq = places.left if isinstance(places, Outside) else places
        if isinstance(places, Outside):
            inside += _inside_longer_names(places, doc)
        if near is not None and (hits := places.hits(doc)):
            context_words = near.right.left if isinstance(near.right, Outside) else near.right
            words = ", ".join(map(_alias_text, leaves(context_words)))
            context = f"within {_distance(near)} ({_shortened(words)})"
            without_context.setdefault(context, []).extend(hits)
        elif isinstance(seq, Seq) and len(seq.parts) == 1 and seq.parts[0].kind == "c":
            written = seq.parts[0].value
            if fold_word(written) in doc.words:
                said.append(
                    f"{doc.written(fold_word(written))}, not written {written}"
                    " (a case-sensitive alias)"
                )
    apart = [
        f"{_words(hits, doc)} without a context word {c}" for c, hits in without_context.items()
    ]
    return "; ".join([*inside, *apart, *said])


def _inside_longer_names(places: Outside, doc: Document) -> list[str]:
    """An alias's places that one of its entity's `not_inside` names stands over: "Calais
    (title), Calais (content) inside Pas-de-Calais"."""
    kept = set(places.hits(doc) or ())
    names = places.right.hits(doc) or []
    left_out: dict[str, list[Hit]] = {}  # the names as written -> the places they stand over
    for hit in places.left.hits(doc) or ():
        if hit not in kept:
            around = [n for n in names if n[0] == hit[0] and n[1] < hit[2] and n[2] > hit[1]]
            written = ", ".join(dict.fromkeys(e.text for e in evidence_of(around, doc)))
            left_out.setdefault(written, []).append(hit)
    return [
        f"{_words(hits, doc)} inside {written}, where it does not count (not_inside)"
        for written, hits in left_out.items()
    ]


def _near_miss(node: Node, doc: Document) -> str:
    """What `rules test` adds to "missing" for a word, an entity or an OR of them the article
    lacks."""
    if isinstance(node, Seq):
        return _other_spelling(node, doc) or _cut_stem(node, doc)
    if isinstance(node, AnyOf):
        return _alternatives_missed(node.children, doc)
    return _entity_near_miss(node, doc) if isinstance(node, Memo) else ""


def _alternatives_missed(alternatives: list[Node], doc: Document) -> str:
    """What `rules test` says of each alternative of an OR the article lacks, named: words are
    mostly written in an OR, and `(expuls~ OR évacu*)`, missing with "expulsion" in the text,
    said only "missing", where `expuls~` alone said it was a stem cut short."""
    said = []
    for alternative in alternatives:
        hint = _near_miss(alternative, doc)
        if hint and isinstance(alternative, AnyOf):
            said.append(hint)  # its own alternatives named already
        elif hint:
            said.append(f"for {_shortened(describe(alternative))}, {hint}")
    return "; ".join(said)


def _other_spelling(node: Seq, doc: Document) -> str:
    """For a word the article lacks, spelt the other way in it: "missing defence" on a text
    saying "defense" (British and American spellings are two words, stemmed or not) left an
    analyst of UK and US news unable to see why."""
    if len(node.parts) != 1 or "en" not in doc.languages:
        return ""
    part = node.parts[0]
    if part.kind not in ("w", "s", "p"):
        return ""
    for other in other_spellings(part.value, prefix=part.kind == "p"):
        if part.kind == "w":
            words = [other] if other in doc.words else []
        elif part.kind == "s":
            words = doc.words_of_stem("en", stem_words_uncached([other], "en")[0])
        else:
            words = doc.words_with_prefix(other) if len(other) >= PREFIX_MIN else []
        if words:
            written = doc.written(words[0])
            mark = node.label[-1] if node.label.endswith(("~", "*")) else ""
            both = f"{node.label} OR {other}{mark}"
            if node.fields != TEXT_FIELDS:
                both = f"{'/'.join(node.fields)}:({both})"
            return f"the text has {written}, another spelling of {part.value} (write {both})"
    return ""


def _alias_text(seq: Seq) -> str:
    return " ".join(p.value + "*" * (p.kind == "p") for p in seq.parts)


def _cut_stem(node: Seq, doc: Document) -> str:
    """For a stemmed word the article lacks whose letters begin some of its words: what a
    wildcard would find. `expuls~` is stemmed to expul, the stem of no word (expulsés and
    expulsion are expuls): the author wrote a stem, and only read "missing"."""
    if len(node.parts) != 1 or node.parts[0].kind != "s" or len(node.parts[0].value) < PREFIX_MIN:
        return ""
    part = node.parts[0]
    stems = sorted({stem for language, stem in part.stems if language in doc.languages})
    prefix = part.value
    words = doc.words_with_prefix(prefix)
    # A whole word whose other forms stem apart: French Snowball leaves a verb's present
    # plural as it is, so `frapper~` (frapp) misses "frappent", and the author read only
    # "missing". The words that begin with its stem say what a wildcard finds.
    for stem in stems if not words else ():
        if len(stem) >= PREFIX_MIN and (found := doc.words_with_prefix(stem)):
            prefix, words = stem, found
            break
    if not words:
        return ""
    shown = ", ".join(map(doc.written, words[:_SHOWN_WORDS]))
    more = f" and {len(words) - _SHOWN_WORDS} more" if len(words) > _SHOWN_WORDS else ""
    return (
        f"no word with its stem, {' or '.join(stems)}; {shown}{more}"
        f" {'begin' if len(words) > 1 else 'begins'} with {prefix} ({prefix}* finds"
        f" {'them' if len(words) > 1 else 'it'})"
    )


def describe(node: Node) -> str:
    """A node as the query wrote it, near enough to find it in the rule."""
    if isinstance(node, Seq):
        fields = "" if node.fields == TEXT_FIELDS else f"{'/'.join(node.fields)}:"
        return f"{fields}{node.label}"
    if isinstance(node, Memo):
        first = next(leaves(node.node), None)
        return first.label.split(" ")[0] if first is not None else "(an entity)"
    if isinstance(node, AllOf | AnyOf):
        joiner = " AND " if isinstance(node, AllOf) else " OR "
        return f"({joiner.join(describe(c) for c in node.children)})"
    if isinstance(node, Near):
        operator = ("NOT " if isinstance(node, NotNear) else "") + (
            "ONEAR" if node.ordered else "NEAR"
        )
        left, right = (
            f"({describe(side)})" if isinstance(side, Near) else describe(side)
            for side in (node.left, node.right)
        )
        return f"{left} {operator}/{node.distance} {right}"
    if isinstance(node, NoneOf):
        return f"NOT {describe(node.child)}"
    if isinstance(node, LanguageIs):
        return f"lang:{'/'.join(sorted(node.codes))}"
    return type(node).__name__


def _words(hits: list, doc: Document) -> str:
    """The words of `hits` as written, where they are: 'Police (title), officer (content)'."""
    found = list(dict.fromkeys(f"{e.text} ({e.field})" for e in evidence_of(hits, doc)))
    shown = ", ".join(found[:_SHOWN_WORDS])
    return shown + (f" and {len(found) - _SHOWN_WORDS} more" if len(found) > _SHOWN_WORDS else "")


def _scope(compiled: CompiledRule, doc: Document) -> str:
    """Which of the rule's scopes the article is out of (see CompiledRule.in_scope)."""
    rule = compiled.rule
    if rule.languages and doc.language not in rule.languages:
        language = doc.language or "no language that could be told"
        return f"the rule is for {', '.join(rule.languages)}; the article is in {language}"
    feeds = (doc.article.feed_name, *doc.other_feeds)
    if rule.feeds and not any(feed in rule.feeds for feed in feeds):
        return f"the rule is for the feeds {', '.join(rule.feeds)}"
    return f"the rule is for feeds tagged {', '.join(rule.feed_tags)}"


def _how_far(node: Near, lefts: list[Hit], rights: list[Hit], doc: Document) -> str:
    """How far apart the sides come at the closest, with the words between them: "never
    within 3 words" left the author to count (the 's and co- of "Just Stop Oil's
    co-founder" are words), or to see that the words were in the title and the text."""
    never = f"never within {_distance(node)} in one field"
    found = _gap(lefts, rights, node.ordered)
    if found is not None:
        gap, stretch = found
        order = ", in that order" if node.ordered else ""
        return f"{never}{order}: {gap} words apart at the closest, {_stretch(stretch, doc)}"
    if node.ordered and (found := _gap(lefts, rights, False)) is not None:
        gap, stretch = found
        apart = f"{gap} word{'s' * (gap != 1)} apart"
        return f"{never} in that order: only the other way round, {apart}, {_stretch(stretch, doc)}"
    if (shared := _overlap(lefts, rights)) is not None:
        # `"Channel 4" NEAR/3 Channel` on "Channel 4 News": both in the title, but only on the
        # same words, which "never in one field" sent the author to look for another field.
        return (
            f"{never}: only on the same words ({_stretch(shared, doc)}), and words are not near"
            " themselves"
        )
    return (
        "never in one field (a word is near only the words of its own: title, summary or content)"
    )


def _overlap(lefts: list[Hit], rights: list[Hit]) -> tuple[Hit, Hit] | None:
    """A left hit and a right one that share words in one field, if any: by bisection in the
    right ones sorted by start, with the furthest end reached so far (an article repeating a
    phrase has thousands of hits)."""
    sides: dict[str, tuple[list[int], list[Hit]]] = {}
    for field, found in _by_field(rights).items():
        found.sort(key=lambda h: h[1])
        furthest: list[Hit] = []  # of the right hits up to each, the one ending last
        for hit in found:
            furthest.append(hit if not furthest or hit[2] > furthest[-1][2] else furthest[-1])
        sides[field] = ([h[1] for h in found], furthest)
    for lh in lefts:
        if lh[0] not in sides:
            continue
        starts, furthest = sides[lh[0]]
        before_end = bisect_left(starts, lh[2])  # the right hits starting before it ends
        if before_end and furthest[before_end - 1][2] > lh[1]:
            return lh, furthest[before_end - 1]
    return None


def _by_field(hits: list[Hit]) -> dict[str, list[Hit]]:
    found: dict[str, list[Hit]] = {}
    for hit in hits:
        found.setdefault(hit[0], []).append(hit)
    return found


def _stretch(hits: tuple[Hit, Hit], doc: Document) -> str:
    """The text from one side to the other (or of both, when they share words), quoted with
    its field: 'in the title: "Just Stop Oil's co-founder"'; shortened in the middle when
    long."""
    found = evidence_of(list(hits), doc)  # one, when both sides are the same words
    first, last = min(found, key=lambda e: e.start), max(found, key=lambda e: e.end)
    text = " ".join(doc.field(first.field).text[first.start : last.end].split())
    if len(text) > _SHOWN_CHARS:
        text = f"{first.text} … {last.text}"
    return f"in the {first.field}: “{text}”"


def _gap(lefts: list[Hit], rights: list[Hit], ordered: bool) -> tuple[int, tuple[Hit, Hit]] | None:
    """The fewest words between a left hit and a right one in one field (adjacent words are
    1 apart, as for NEAR; hits that share words do not count), and those two hits."""
    sides: dict[str, tuple[list[Hit], list[Hit]]] = {}
    for hit in rights:
        by_start, by_end = sides.setdefault(hit[0], ([], []))
        by_start.append(hit)
        by_end.append(hit)
    positions = {}
    for field, (by_start, by_end) in sides.items():
        by_start.sort(key=lambda h: h[1])
        by_end.sort(key=lambda h: h[2])
        positions[field] = ([h[1] for h in by_start], [h[2] for h in by_end])
    best: tuple[int, tuple[Hit, Hit]] | None = None
    for lh in lefts:
        if lh[0] not in sides:
            continue
        (by_start, by_end), (starts, ends) = sides[lh[0]], positions[lh[0]]
        pairs = []
        after = bisect_left(starts, lh[2])  # the first right starting after this left ends
        if after < len(starts):
            pairs.append((starts[after] - lh[2] + 1, (lh, by_start[after])))
        before = bisect_right(ends, lh[1]) - 1  # the last right ending before it starts
        if not ordered and before >= 0:
            pairs.append((lh[1] - ends[before] + 1, (by_end[before], lh)))
        for pair in pairs:
            if best is None or pair[0] < best[0]:
                best = pair
    return best


def _distance(node: Near) -> str:
    return f"{node.distance} word{'s' * (node.distance != 1)}"
