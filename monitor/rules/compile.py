"""Query tree -> matcher nodes that evaluate against a Document and explain themselves.

Each node answers two questions:
- `hits(doc)`: None when it does not match; otherwise the evidence, a list of
  (field, first token, end token, label, entity id) tuples ([] for a NOT that holds).
- `keys()`: the presearch keys, a set of which every matching article contains at least one
  (None when the node can match without any particular word, e.g. NOT). The index files a rule
  under its keys, so only rules with a key in the article are evaluated at all.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..text import STEM_LANGUAGES, TOKEN, fold, stem_words
from . import ast
from .document import ALL_FIELDS, TEXT_FIELDS, Document, FieldText
from .model import Entity
from .parser import QuerySyntaxError

Hit = tuple[str, int, int, str, str | None]
Key = tuple[str, str]  # ("w", word) | ("p", prefix) | ("s:en", stem) | ("s:fr", stem)

# Very common words make poor presearch keys; a rule anchored on one is evaluated for almost
# every article. Costs steer AND towards the rarest child.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "they",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "not",
        "no",
        "but",
        "after",
        "over",
        "said",
        "says",
        "new",
        "more",
        "than",
        "who",
        "been",
        "into",
        "up",
        "out",
        "le",
        "la",
        "les",
        "un",
        "une",
        "des",
        "du",
        "de",
        "et",
        "en",
        "est",
        "au",
        "aux",
        "ce",
        "qui",
        "que",
        "pour",
        "par",
        "sur",
        "dans",
        "pas",
        "plus",
        "il",
        "elle",
        "ils",
        "se",
        "sa",
        "son",
        "ses",
        "ne",
        "a",
        "l",
        "d",
        "s",
        "y",
    ]
)

PREFIX_MIN = 3  # shortest allowed prefix before a *


class TermStats:
    """How common words are, so the presearcher files each rule under its rarest words.

    Built from document frequencies (the stored articles' FTS vocabulary, see
    Store.term_frequencies); without data, a heuristic: stopwords are common, long words rare.
    A cost approximates the fraction of articles that contain the key.
    """

    def __init__(
        self, document_frequency: Mapping[str, int] | None = None, documents: int = 0
    ) -> None:
        self.df = dict(document_frequency or {})
        self.documents = documents if self.df else 0
        self._sorted = sorted(self.df)

    def _prefix_frequency(self, prefix: str) -> int:
        total = 0
        start = bisect_left(self._sorted, prefix)
        for word in self._sorted[start : start + 2000]:
            if not word.startswith(prefix):
                break
            total += self.df[word]
        return total

    def cost(self, key: Key) -> float:
        kind, value = key
        if not self.documents:
            if value in STOPWORDS:
                return 1.0
            return (0.02 + 0.16 / len(value)) if kind == "p" else (0.01 + 0.08 / max(len(value), 1))
        count = self.df.get(value, 0) if kind == "w" else self._prefix_frequency(value)
        fraction = min(1.0, (count + 0.5) / (self.documents + 1))
        return max(fraction, 0.5) if value in STOPWORDS else fraction

    def is_common(self, key: Key) -> bool:
        """A key most articles contain: a rule anchored only on such keys matches almost all."""
        return self.cost(key) >= (0.3 if self.documents else 1.0)

    def keys_cost(self, keys: frozenset[Key] | None) -> float:
        return float("inf") if keys is None else sum(self.cost(k) for k in keys)


HEURISTIC = TermStats()


@dataclass(frozen=True)
class Part:
    """One word of a term or phrase: exact folded word, prefix, stem or exact case."""

    kind: str  # "w" | "p" | "s" | "c"
    value: str  # folded word, prefix or original-case word
    stems: tuple[tuple[str, str], ...] = ()  # (language, stem) for kind "s"

    def positions(self, ft: FieldText) -> list[int]:
        if self.kind == "w":
            return ft.positions.get(self.value, [])
        if self.kind == "p":
            return ft.prefix_positions(self.value)
        if self.kind == "s":
            out: list[int] = []
            for language, stem in self.stems:
                if language in ft.languages:
                    out.extend(ft.stem_positions(language).get(stem, ()))
            return sorted(set(out)) if len(ft.languages) > 1 else out
        folded = ft.positions.get(fold(self.value), [])
        if not folded:
            return folded
        original = ft.original_tokens
        return [p for p in folded if original[p] == self.value]

    def keys(self) -> frozenset[Key]:
        if self.kind == "p":
            return frozenset({("p", self.value)})
        if self.kind == "s":
            return frozenset((f"s:{language}", stem) for language, stem in self.stems)
        return frozenset({("w", fold(self.value) if self.kind == "c" else self.value)})


Clause = frozenset[str]


class Node:
    def hits(self, doc: Document) -> list[Hit] | None:
        raise NotImplementedError

    def keys(self) -> frozenset[Key] | None:
        raise NotImplementedError

    def must(self) -> tuple[Clause, ...]:
        """Sets of exact words of which a matching article contains at least one each: a
        candidate failing any is dropped with a few set operations, before evaluation (Lucene
        Monitor's multipass term filter). Prefixes and stems give no clause."""
        return ()


class Seq(Node):
    """A word or a phrase: parts at consecutive positions in one field."""

    def __init__(
        self,
        parts: tuple[Part, ...],
        fields: tuple[str, ...],
        label: str,
        entity: str | None = None,
        stats: TermStats = HEURISTIC,
    ) -> None:
        self.parts, self.fields, self.label, self.entity = parts, fields, label, entity
        self._keys = min((p.keys() for p in parts), key=stats.keys_cost)
        # The most common shape, one plain word, takes a short path.
        self.word = parts[0].value if len(parts) == 1 and parts[0].kind == "w" else None
        # Words that must all be in the article: a phrase whose words are absent is ruled out
        # by one subset test, before any position is looked at.
        self.required = frozenset(fold(p.value) for p in parts if p.kind in ("w", "c"))

    def hits(self, doc: Document) -> list[Hit] | None:
        # Rules share leaves (see Compiler.cache): each is evaluated once per article.
        memo = doc.memo
        if self in memo:
            return memo[self]
        found = memo[self] = self._hits(doc)
        return found

    def _hits(self, doc: Document) -> list[Hit] | None:
        if self.word is not None:
            return self._word_hits(doc, self.word)
        if not self.required <= doc.words:
            return None
        out: list[Hit] = []
        n = len(self.parts)
        for name in self.fields:
            ft = doc.field(name)
            if not ft.tokens:
                continue
            starts = self.parts[0].positions(ft)
            if not starts:
                continue
            if n > 1:
                for offset in range(1, n):
                    following = set(self.parts[offset].positions(ft))
                    starts = [s for s in starts if s + offset in following]
                    if not starts:
                        break
            out.extend((name, s, s + n, self.label, self.entity) for s in starts)
        return out or None

    def _word_hits(self, doc: Document, word: str) -> list[Hit] | None:
        if word not in doc.words:
            return None
        out: list[Hit] = []
        label, entity = self.label, self.entity
        for name in self.fields:
            found = doc.field(name).positions.get(word)
            if found:
                out.extend([(name, s, s + 1, label, entity) for s in found])
        return out or None

    def keys(self) -> frozenset[Key] | None:
        return self._keys

    def must(self) -> tuple[Clause, ...]:
        return tuple(
            frozenset({p.value if p.kind == "w" else fold(p.value)})
            for p in self.parts
            if p.kind in ("w", "c")
        )


class AllOf(Node):
    def __init__(self, children: list[Node], stats: TermStats = HEURISTIC) -> None:
        # Evaluate the child most likely to fail (the rarest keys) first; file under its keys.
        self.children = sorted(children, key=lambda c: stats.keys_cost(c.keys()))

    def hits(self, doc: Document) -> list[Hit] | None:
        out: list[Hit] = []
        for child in self.children:
            found = child.hits(doc)
            if found is None:
                return None
            out.extend(found)
        return out

    def keys(self) -> frozenset[Key] | None:
        return self.children[0].keys() if self.children else None

    def must(self) -> tuple[Clause, ...]:
        return tuple(dict.fromkeys(c for child in self.children for c in child.must()))


class AnyOf(Node):
    def __init__(self, children: list[Node]) -> None:
        self.children = children
        child_keys = [c.keys() for c in children]
        self._keys = None if any(k is None for k in child_keys) else frozenset().union(*child_keys)

    def hits(self, doc: Document) -> list[Hit] | None:
        out: list[Hit] | None = None
        for child in self.children:
            found = child.hits(doc)
            if found is not None:
                out = (out or []) + found
        return out

    def keys(self) -> frozenset[Key] | None:
        return self._keys  # type: ignore[return-value]

    def must(self) -> tuple[Clause, ...]:
        firsts = [child.must()[:1] for child in self.children]
        if not firsts or not all(firsts):
            return ()
        return (frozenset().union(*(first[0] for first in firsts)),)


class NoneOf(Node):
    def __init__(self, child: Node) -> None:
        self.child = child

    def hits(self, doc: Document) -> list[Hit] | None:
        return [] if self.child.hits(doc) is None else None

    def keys(self) -> None:
        return None


class Near(Node):
    """Both sides within `distance` words in the same field (adjacent words are 1 apart);
    `ordered` requires the left side first."""

    def __init__(
        self,
        left: Node,
        right: Node,
        distance: int,
        ordered: bool,
        stats: TermStats = HEURISTIC,
    ) -> None:
        self.left, self.right, self.distance, self.ordered = left, right, distance, ordered
        self._keys = min((left.keys(), right.keys()), key=stats.keys_cost)

    def hits(self, doc: Document) -> list[Hit] | None:
        lefts = self.left.hits(doc)
        if not lefts:
            return None
        rights = self.right.hits(doc)
        if not rights:
            return None
        used: dict[Hit, None] = {}
        for lh in lefts:
            for rh in rights:
                if lh[0] != rh[0]:
                    continue
                if rh[1] >= lh[2]:
                    gap = rh[1] - lh[2] + 1
                elif lh[1] >= rh[2]:
                    if self.ordered:
                        continue
                    gap = lh[1] - rh[2] + 1
                else:
                    gap = 0  # overlapping spans
                if gap <= self.distance:
                    used[lh] = None
                    used[rh] = None
        return list(used) or None

    def keys(self) -> frozenset[Key] | None:
        return self._keys

    def must(self) -> tuple[Clause, ...]:
        return tuple(dict.fromkeys((*self.left.must(), *self.right.must())))


class Memo(Node):
    """A shared node (an entity) whose hits are computed once per article."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def hits(self, doc: Document) -> list[Hit] | None:
        memo = doc.memo
        if self in memo:
            return memo[self]
        found = memo[self] = self.node.hits(doc)
        return found

    def keys(self) -> frozenset[Key] | None:
        return self.node.keys()

    def must(self) -> tuple[Clause, ...]:
        return self.node.must()


class LanguageIs(Node):
    def __init__(self, codes: frozenset[str]) -> None:
        self.codes = codes

    def hits(self, doc: Document) -> list[Hit] | None:
        return [] if doc.language in self.codes else None

    def keys(self) -> None:
        return None


EntityResolver = Callable[[str], Entity | None]


class Compiler:
    """Compiles query trees. `stem_all` applies stemming to every unmarked word; rules compiled
    with the same `cache` share their identical leaves and entities."""

    def __init__(
        self,
        entities: Mapping[str, Entity],
        stem_all: bool = False,
        stats: TermStats = HEURISTIC,
        cache: dict[object, Node] | None = None,
    ) -> None:
        self.entities = entities
        self.stats = stats
        self.stem_all = stem_all
        # Nodes shared by every rule compiled with the same cache: the same word, phrase or
        # entity in many rules is one node, evaluated once per article (results are memoised
        # on the Document).
        self.cache: dict[object, Node] = cache if cache is not None else {}

    def compile(self, query: ast.Query, fields: tuple[str, ...] = TEXT_FIELDS) -> Node:
        if isinstance(query, ast.Term):
            return self._words(
                query.text,
                fields,
                query.line,
                query.column,
                prefix=query.prefix,
                stem=query.stem or (self.stem_all and not query.prefix),
                case=query.case,
                label=_label(query),
            )
        if isinstance(query, ast.Phrase):
            return self._words(
                query.text,
                fields,
                query.line,
                query.column,
                stem=query.stem,  # quotes mean these words exactly, even in a stem = true rule
                case=query.case,
                label=f'"{query.text}"',
                phrase=True,
            )
        if isinstance(query, ast.EntityRef):
            entity = self.entities.get(query.entity_id)
            if entity is None:
                raise QuerySyntaxError(
                    f"unknown entity @{query.entity_id}", query.line, query.column
                )
            return self.entity(entity, fields)
        if isinstance(query, ast.And):
            return AllOf([self.compile(c, fields) for c in query.children], self.stats)
        if isinstance(query, ast.Or):
            return AnyOf([self.compile(c, fields) for c in query.children])
        if isinstance(query, ast.Not):
            return NoneOf(self.compile(query.child, fields))
        if isinstance(query, ast.Near):
            for side in (query.left, query.right):
                if any(isinstance(n, ast.Not) for n in ast.walk(side)):
                    line, column = _position(side)
                    raise QuerySyntaxError("NEAR needs words on both sides, not NOT", line, column)
            return Near(
                self.compile(query.left, fields),
                self.compile(query.right, fields),
                query.distance,
                query.ordered,
                self.stats,
            )
        if isinstance(query, ast.Field):
            if query.name == "lang":
                return self._language(query.child)
            scoped = TEXT_FIELDS if query.name == "text" else (query.name,)
            return self.compile(query.child, scoped)
        raise AssertionError(query)  # pragma: no cover

    def entity(self, entity: Entity, fields: tuple[str, ...] = TEXT_FIELDS) -> Node:
        """An entity: any of its aliases; an ambiguous alias only near one of its context words."""
        cache_key = ("entity", entity.id, fields)
        if cache_key in self.cache:
            return self.cache[cache_key]
        alternatives: list[Node] = []
        label = f"@{entity.id}"
        for alias, case in [(a, False) for a in entity.aliases] + [
            (a, True) for a in entity.case_aliases
        ]:
            seq = self._words(
                alias, fields, 0, 0, case=case, label=label, entity=entity.id, phrase=True
            )
            context = entity.context.get(alias)
            if context:
                near_words = AnyOf(
                    [self._words(w, fields, 0, 0, label=label, phrase=True) for w in context]
                )
                seq = Near(seq, near_words, entity.window, False, self.stats)
            alternatives.append(seq)
        node = AnyOf(alternatives) if len(alternatives) != 1 else alternatives[0]
        node = self.cache[cache_key] = Memo(node)
        return node

    def _words(
        self,
        text: str,
        fields: tuple[str, ...],
        line: int,
        column: int,
        *,
        prefix: bool = False,
        stem: bool = False,
        case: bool = False,
        label: str,
        entity: str | None = None,
        phrase: bool = False,
    ) -> Node:
        searched = text if case else fold(text)
        matches = list(TOKEN.finditer(searched))
        words = [m.group() for m in matches]
        # Inside a phrase or alias, a word directly followed by * is a prefix: "asylum seek*".
        starred = {i for i, m in enumerate(matches) if searched[m.end() : m.end() + 1] == "*"}
        if prefix and words:
            starred.add(len(words) - 1)
        if not words:
            raise QuerySyntaxError(f"{text!r} has no letters or digits to search for", line, column)
        if any(len(words[i]) < PREFIX_MIN for i in starred):
            raise QuerySyntaxError(
                f"a wildcard needs at least {PREFIX_MIN} letters before *, got {text!r}",
                line,
                column,
            )
        parts = []
        for i, word in enumerate(words):
            if case:
                parts.append(Part("c", word))
            elif i in starred:
                parts.append(Part("p", word))
            elif stem:
                stems = tuple((lang, stem_words([word], lang)[0]) for lang in STEM_LANGUAGES)
                parts.append(Part("s", word, stems))
            else:
                parts.append(Part("w", word))
        key = ("seq", tuple(parts), fields, label, entity)
        found = self.cache.get(key)
        if found is None:
            found = self.cache[key] = Seq(tuple(parts), fields, label, entity, self.stats)
        return found

    def _language(self, child: ast.Query) -> Node:
        codes = [n.text.lower() for n in ast.walk(child) if isinstance(n, ast.Term)]
        if not codes or not all(isinstance(n, ast.Term | ast.Or) for n in ast.walk(child)):
            line, column = _position(child)
            raise QuerySyntaxError("lang: takes a language code or (fr OR en)", line, column)
        return LanguageIs(frozenset(codes))


def _label(term: ast.Term) -> str:
    return (
        ("=" if term.case else "")
        + term.text
        + ("*" if term.prefix else "")
        + ("~" if term.stem else "")
    )


def _position(query: ast.Query) -> tuple[int, int]:
    for node in ast.walk(query):
        if hasattr(node, "line"):
            return node.line, node.column  # type: ignore[union-attr]
    return 1, 1


__all__ = ["ALL_FIELDS", "HEURISTIC", "Compiler", "Hit", "Key", "Node", "TermStats"]
