"""RuleIndex: every enabled rule compiled once, filed under presearch keys (Lucene Monitor's idea).

For an article, the index collects the article's distinct words, word prefixes and stems, looks
them up in three dictionaries to find candidate rules, and evaluates only those. A rule filed under
no key (a pure negation) is evaluated for every article; `rules check` warns about such rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..records import Article, Evidence, Match
from .compile import Compiler
from .document import Document
from .evidence import evidence_of, score_of, snippet_of
from .model import Entity, Rule
from .nodes import Node
from .parser import parse_query
from .stats import HEURISTIC, Key, TermStats


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    node: Node
    keys: frozenset[Key] | None
    must: tuple[frozenset[str], ...] = ()

    def may_match(self, words: frozenset[str]) -> bool:
        """False when the article lacks every word of one of the rule's required clauses."""
        return not any(clause.isdisjoint(words) for clause in self.must)

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
    return CompiledRule(rule, node, node.keys(), node.must()[:4])


class _KeyIndex:
    """Items filed under presearch keys: words, prefixes (by length) and stems (by language)."""

    def __init__(self) -> None:
        self.words: dict[str, list[int]] = {}
        self.prefixes: dict[int, dict[str, list[int]]] = {}
        self.stems: dict[str, dict[str, list[int]]] = {}
        self.always: list[int] = []

    def add(self, item: int, keys: frozenset[Key] | None) -> None:
        if keys is None:
            self.always.append(item)
            return
        for kind, value in keys:
            if kind == "w":
                bucket = self.words
            elif kind == "p":
                bucket = self.prefixes.setdefault(len(value), {})
            else:
                bucket = self.stems.setdefault(kind[2:], {})
            bucket.setdefault(value, []).append(item)

    def candidates(self, doc: Document) -> set[int]:
        found: set[int] = set(self.always)
        words = doc.words
        index = self.words
        for word in words & index.keys():
            found.update(index[word])
        for length, by_prefix in self.prefixes.items():
            if len(by_prefix) * 8 < len(words):  # few prefixes: look each up in the sorted words
                present: Iterable[str] = [p for p in by_prefix if doc.has_prefix(p)]
            else:
                present = doc.prefixes(length) & by_prefix.keys()
            for prefix in present:
                found.update(by_prefix[prefix])
        for language, by_stem in self.stems.items():
            if language in doc.languages:
                for stem in doc.stems(language) & by_stem.keys():
                    found.update(by_stem[stem])
        return found


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
        for i, compiled in enumerate(self.rules):
            self._rule_keys.add(i, compiled.keys)
        compiler = Compiler(self.entities, stats=stats, cache=cache)
        self._entity_nodes = [
            (e.id, compiler.entity(e))
            for e in self.entities.values()
            if e.aliases or e.case_aliases
        ]
        self._entity_keys = _KeyIndex()
        for i, (_, node) in enumerate(self._entity_nodes):
            self._entity_keys.add(i, node.keys())

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
        return [self.rules[i] for i in sorted(self._rule_keys.candidates(doc))]

    def match(
        self, article: Article, feed_tags: tuple[str, ...] = ()
    ) -> tuple[list[Match], list[Evidence]]:
        """Matches of every enabled rule, and every entity mention, for one article."""
        doc = Document(article, feed_tags)
        matches = []
        words = doc.words
        for i in sorted(self._rule_keys.candidates(doc)):
            compiled = self.rules[i]
            if not compiled.may_match(words) or not compiled.in_scope(doc):
                continue
            match = explain(compiled, doc)
            if match is not None:
                matches.append(match)
        mentions: list[Evidence] = []
        for i in sorted(self._entity_keys.candidates(doc)):
            hits = self._entity_nodes[i][1].hits(doc)
            if hits:
                mentions.extend(e for e in evidence_of(hits, doc) if e.entity)
        return matches, mentions

    def match_all(self, article: Article, feed_tags: tuple[str, ...] = ()) -> list[Match]:
        """Evaluate every rule without the presearcher: the baseline the index must agree with."""
        doc = Document(article, feed_tags)
        return [m for c in self.rules if c.in_scope(doc) and (m := explain(c, doc)) is not None]


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
