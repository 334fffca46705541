"""RuleIndex: every enabled rule compiled once, filed under presearch keys (Lucene Monitor's idea).

For an article, the index collects the article's distinct words, pairs of adjacent words, word
prefixes and stems, looks them up in four dictionaries to find candidate rules, and evaluates only
those whose required clauses the article satisfies. A rule filed under no key (a pure negation) is
evaluated for every article; `rules check` warns about such rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..records import Article, Evidence, Match
from .compile import PREFIX_MIN, Compiler
from .document import Document
from .evidence import evidence_of, score_of, snippet_of
from .model import Entity, Rule
from .nodes import AnyOf, Node
from .parser import parse_query
from .stats import HEURISTIC, Key, TermStats


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    node: Node
    keys: frozenset[Key] | None
    # Clauses an article must satisfy, checked before evaluation (see Node.must), split for
    # speed: the words and pairs of one-term clauses, all needed (one subset test); clauses of
    # several words, pairs or stems, one term of each needed; clauses with a "prefix*".
    required: frozenset[str] = frozenset()
    either: tuple[frozenset[str], ...] = ()
    must_prefixed: tuple[frozenset[str], ...] = ()

    def may_match(self, terms: frozenset[str], doc: Document) -> bool:
        """False when the article lacks every term of one of the rule's required clauses;
        `terms` are the article's words, with its pairs and stems when clauses name them."""
        if not self.required <= terms:
            return False
        if self.either and any(clause.isdisjoint(terms) for clause in self.either):
            return False
        for clause in self.must_prefixed:
            if not any(doc.has_prefix(t[:-1]) if t.endswith("*") else t in terms for t in clause):
                return False
        return True

    def in_scope(self, doc: Document) -> bool:
        rule = self.rule
        if rule.languages and doc.language not in rule.languages:
            return False
        if rule.feeds and doc.article.feed_name not in rule.feeds:
            return False
        return not (rule.feed_tags and not set(rule.feed_tags) & set(doc.feed_tags))


def compile_rule(
    rule: Rule,
    entities: Mapping[str, Entity],
    stats: TermStats = HEURISTIC,
    cache: dict[object, Node] | None = None,
) -> CompiledRule:
    """Parse and compile one rule. Raises QuerySyntaxError (position within the query).
    Rules compiled with one `cache` share identical leaves, evaluated once per article."""
    compiler = Compiler(entities, stem_all=rule.stem, stats=stats, cache=cache)
    node = compiler.compile(parse_query(rule.query))
    # The four clauses least likely to hold drop the most candidates.
    must = _rarest_first(node.must(), stats)[:4]
    prefixed = tuple(c for c in must if any(t.endswith("*") for t in c))
    plain = [c for c in must if c not in prefixed]
    required = frozenset().union(*(c for c in plain if len(c) == 1))
    either = tuple(c for c in plain if len(c) > 1)
    return CompiledRule(rule, node, node.keys(), required, either, prefixed)


def _filings(
    node: Node, stats: TermStats
) -> tuple[tuple[frozenset[Key] | None, frozenset[str]], ...]:
    """Keys and second terms to file a rule under. Each alternative of a top-level OR is filed
    on its own: `"sea wall" OR (Calais AND court)` under the pair `sea wall` alone, and under
    `calais` with `court` beside it, rather than under both keys with no second term."""
    if isinstance(node, AnyOf) and node.keys() is not None:
        return tuple(f for child in node.children for f in _filings(child, stats))
    return ((node.keys(), _second_terms(node.keys(), _rarest_first(node.must(), stats))),)


def _rarest_first(clauses: Iterable[frozenset[str]], stats: TermStats) -> list[frozenset[str]]:
    return sorted(clauses, key=lambda clause: sum(map(stats.term_cost, clause)))


class _KeyIndex:
    """Items filed under presearch keys: words, pairs, prefixes (by length) and stems (by
    language), and under each key by the terms of a second clause the item needs (see _Filed), so
    an article's candidates are found with set operations, not a test per item (a two-term
    presearch: `anchor AND court` is a candidate only where both are)."""

    def __init__(self) -> None:
        self.words: dict[str, _Filed] = {}
        self.bigrams: dict[str, _Filed] = {}
        self.prefixes: dict[int, dict[str, dict[str, _Filed]]] = {}  # length, beginning, prefix
        self.stems: dict[str, dict[str, _Filed]] = {}
        self.always: list[int] = []

    def add(
        self, item: int, keys: frozenset[Key] | None, second: frozenset[str] = frozenset()
    ) -> None:
        if keys is None:
            self.always.append(item)
            return
        for kind, value in keys:
            if kind == "w":
                bucket = self.words
            elif kind == "b":
                bucket = self.bigrams
            elif kind == "p":
                # Filed under its first 3, 5 or 7 letters, then the whole prefix: an article's
                # beginnings are collected for three lengths at most, and a longer prefix
                # is checked (by bisection) only where its first letters are present.
                length = max(n for n in _PREFIX_LENGTHS if n <= len(value))
                bucket = self.prefixes.setdefault(length, {}).setdefault(value[:length], {})
            else:
                bucket = self.stems.setdefault(kind[2:], {})
            filed = bucket.get(value)
            if filed is None:
                filed = bucket[value] = _Filed()
            filed.add(item, second)

    def candidates(self, doc: Document, terms: frozenset[str]) -> set[int]:
        """Items with a key in the article and their second term among `terms`."""
        found: set[int] = set(self.always)
        words = doc.words
        present: list[_Filed] = [self.words[w] for w in words & self.words.keys()]
        if self.bigrams:
            present += [self.bigrams[p] for p in doc.bigrams & self.bigrams.keys()]
        for length, by_prefix in self.prefixes.items():
            if len(by_prefix) * 8 < len(words):  # few prefixes: look each up in the sorted words
                prefixes: Iterable[str] = [p for p in by_prefix if doc.has_prefix(p)]
            else:
                prefixes = doc.prefixes(length) & by_prefix.keys()
            for p in prefixes:
                for whole, filed in by_prefix[p].items():
                    if len(whole) == length or doc.has_prefix(whole):
                        present.append(filed)
        for language, by_stem in self.stems.items():
            if language in doc.languages:
                present += [by_stem[s] for s in doc.stems(language) & by_stem.keys()]
        has_prefix = doc.has_prefix
        for filed in present:
            if filed.alone:
                found.update(filed.alone)
            by_term = filed.by_term
            if by_term:
                # terms.intersection(by_term) walks the few terms filed here;
                # `by_term.keys() & terms` would walk all the article's terms.
                for term in terms.intersection(by_term):
                    found.update(by_term[term])
            if filed.by_prefix:
                for prefix, items in filed.by_prefix.items():
                    if has_prefix(prefix):
                        found.update(items)
        return found


class _Filed:
    """The items filed under one key: alone, or by a second term they also need, a word
    (looked up in the article's terms) or a "prefix*" (looked up in its sorted words)."""

    __slots__ = ("alone", "by_term", "by_prefix")

    def __init__(self) -> None:
        # Created when first needed: an index of 100k rules holds some 200k of these.
        self.alone: list[int] | None = None
        self.by_term: dict[str, list[int]] | None = None
        self.by_prefix: dict[str, list[int]] | None = None

    def add(self, item: int, second: frozenset[str]) -> None:
        if not second:
            if self.alone is None:
                self.alone = []
            self.alone.append(item)
        for term in second:
            if term.endswith("*"):
                if self.by_prefix is None:
                    self.by_prefix = {}
                self.by_prefix.setdefault(term[:-1], []).append(item)
            else:
                if self.by_term is None:
                    self.by_term = {}
                self.by_term.setdefault(term, []).append(item)


_PREFIX_LENGTHS = (PREFIX_MIN, 5, 7)  # PREFIX_MIN: the shortest prefix a query may have


class RuleIndex:
    """All enabled rules and all entities, ready to match articles."""

    def __init__(
        self,
        rules: Iterable[CompiledRule],
        entities: Mapping[str, Entity],
        stats: TermStats = HEURISTIC,
        cache: dict[object, Node] | None = None,
    ) -> None:
        self.rules = [r for r in rules if r.rule.enabled]
        self.entities = dict(entities)
        self._rule_keys = _KeyIndex()
        seconds: set[str] = set()
        for i, compiled in enumerate(self.rules):
            for keys, second in _filings(compiled.node, stats):
                self._rule_keys.add(i, keys, second)
                seconds |= second
        compiler = Compiler(self.entities, stats=stats, cache=cache)
        self._entity_nodes = [
            (e.id, compiler.entity(e))
            for e in self.entities.values()
            if e.aliases or e.case_aliases
        ]
        self._entity_keys = _KeyIndex()
        for i, (_, node) in enumerate(self._entity_nodes):
            self._entity_keys.add(i, node.keys())
        # Whether clauses or second terms name pairs of words or stems: only then are an
        # article's pairs or stems collected for them.
        clauses = (c for r in self.rules for c in (r.required, *r.either, *r.must_prefixed))
        terms = seconds.union(*clauses)
        self._pairs = any(" " in term for term in terms)
        stems: dict[str, set[str]] = {}
        for term in terms:
            if "~" in term:
                language, _, stem = term.partition("~")
                stems.setdefault(language, set()).add(stem)
        self._stems = {language: frozenset(found) for language, found in stems.items()}

    @classmethod
    def build(
        cls, rules: Iterable[Rule], entities: Mapping[str, Entity], stats: TermStats = HEURISTIC
    ) -> RuleIndex:
        cache: dict[object, Node] = {}
        compiled = [compile_rule(r, entities, stats, cache) for r in rules if r.enabled]
        return cls(compiled, entities, stats, cache)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def unanchored(self) -> list[Rule]:
        """Rules filed under no word: evaluated for every article."""
        return [self.rules[i].rule for i in self._rule_keys.always]

    def candidates(self, doc: Document) -> list[CompiledRule]:
        """Rules the presearch leaves to evaluate (before their required clauses)."""
        return [self.rules[i] for i in sorted(self._rule_keys.candidates(doc, self._terms(doc)))]

    def _terms(self, doc: Document) -> frozenset[str]:
        """The article's words, and its pairs and stems when clauses ask for them."""
        terms = doc.words
        if self._pairs:
            terms = terms | doc.bigrams
        if self._stems:
            terms = terms | doc.stem_terms(self._stems)
        return terms

    def match(
        self, article: Article, feed_tags: tuple[str, ...] = ()
    ) -> tuple[list[Match], list[Evidence]]:
        """Matches of every enabled rule, and every entity mention, for one article."""
        doc = Document(article, feed_tags)
        matches = []
        terms = self._terms(doc)
        for i in sorted(self._rule_keys.candidates(doc, terms)):
            compiled = self.rules[i]
            if not compiled.may_match(terms, doc) or not compiled.in_scope(doc):
                continue
            match = explain(compiled, doc)
            if match is not None:
                matches.append(match)
        mentions: list[Evidence] = []
        for i in sorted(self._entity_keys.candidates(doc, frozenset())):
            hits = self._entity_nodes[i][1].hits(doc)
            if hits:
                mentions.extend(e for e in evidence_of(hits, doc) if e.entity)
        return matches, mentions

    def match_all(self, article: Article, feed_tags: tuple[str, ...] = ()) -> list[Match]:
        """Evaluate every rule without the presearcher: the baseline the index must agree with."""
        doc = Document(article, feed_tags)
        return [m for c in self.rules if c.in_scope(doc) and (m := explain(c, doc)) is not None]


def _second_terms(keys: frozenset[Key] | None, clauses: Iterable[frozenset[str]]) -> frozenset[str]:
    """The rarest of the required `clauses` (rarest first) that the rule's keys do not already
    imply: the index files the rule under each of its terms, beside each key (an empty set
    when there is none). `migra* AND (court OR judge)` filed under `court` and `judge` is a
    candidate only where a word also starts with "migra"."""
    keys = keys or frozenset()
    implied = {v for kind, v in keys if kind in ("w", "b")}
    implied |= {w for kind, v in keys if kind == "b" for w in v.split()}
    implied |= {f"{kind[2:]}~{v}" for kind, v in keys if kind.startswith("s:")}
    implied |= {f"{v}*" for kind, v in keys if kind == "p"}
    for clause in clauses:
        if not clause & implied:
            return clause
    return frozenset()


def explain(compiled: CompiledRule, doc: Document) -> Match | None:
    """Evaluate one rule on one document; a Match with evidence, score and snippet, or None."""
    hits = compiled.node.hits(doc)
    if hits is None:
        return None
    evidence = evidence_of(hits, doc)
    rule = compiled.rule
    return Match(
        article_id=doc.article.id,
        rule_id=rule.id,
        score=score_of(evidence),
        evidence=evidence,
        snippet=snippet_of(evidence, doc),
        tags=rule.tags,
        priority=rule.priority,
    )
