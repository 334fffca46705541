"""RuleIndex: every enabled rule compiled once, filed under presearch keys (Lucene Monitor's idea).

For an article, the index looks up the keys each of its distinct words stands for (the word, the
prefixes it starts with, its stems), remembered per word because news repeats its vocabulary,
and the pairs of adjacent words that begin a phrase key. The rules filed there are candidates;
only those whose required clauses the article satisfies are evaluated. A rule filed under no key
(a pure negation) is evaluated for every article; `rules check` warns about such rules.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import chain
from typing import NamedTuple

from ..records import Article, Evidence, Match
from ..text import stem_generation, stem_map
from . import native
from .compile import PREFIX_MIN, Compiler
from .document import ALL_FIELDS, Document
from .evidence import evidence_of, mentions_of, score_of, snippet_of
from .model import Entity, Rule
from .nodes import AnyOf, Hit, Node, leaves
from .parser import QuerySyntaxError, parse_query
from .stats import HEURISTIC, Key, TermStats


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    node: Node
    keys: frozenset[Key] | None
    # Clauses an article must satisfy, checked before evaluation (see Node.must), split for
    # speed: the terms of one-term clauses, all needed (one subset test); clauses of several
    # terms, one of each needed. Those that the way a candidate is found already ensures are
    # left out (see compile_rule).
    required: frozenset[str] = frozenset()
    either: tuple[frozenset[str], ...] = ()
    # Where the index files the rule: keys, and the second terms needed beside them.
    filings: tuple[tuple[frozenset[Key] | None, frozenset[str]], ...] = ()
    # Kept as flags, not derived per article: most candidates need neither test.
    checked: bool = False  # has clauses to check (may_match)
    scoped: bool = False  # has languages, feeds or feed tags (in_scope)
    # Parts of the query that can never match, at their position in it (`rules check` warns).
    warnings: tuple[QuerySyntaxError, ...] = ()

    def may_match(self, terms: AbstractSet[str]) -> bool:
        """False when the article lacks every term of one of the rule's required clauses;
        `terms` are the article's words, pairs, stems and "prefix*" beginnings that clauses name
        (see RuleIndex.terms)."""
        if not self.required <= terms:
            return False
        return not (self.either and any(clause.isdisjoint(terms) for clause in self.either))

    def in_scope(self, doc: Document) -> bool:
        rule = self.rule
        if rule.languages and doc.language not in rule.languages:
            return False
        if rule.feeds and not (
            doc.article.feed_name in rule.feeds or any(f in rule.feeds for f in doc.other_feeds)
        ):
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
    filings = _filings(node, stats)
    # The four clauses least likely to hold drop the most candidates, but not those that a
    # rule filed once holds wherever it is a candidate: its key's and its second term's. With
    # them, the check cost more than it saved (at 10,000 rules of the benchmark's broad mix,
    # 280 µs an article for no candidate dropped).
    must = _rarest_first(node.must(), stats)[:4]
    if len(filings) == 1:
        keys, second = filings[0]
        must = [c for c in must if not _implied(c, keys, second)]
    required = frozenset().union(*(c for c in must if len(c) == 1))
    either = tuple(c for c in must if len(c) > 1)
    scoped = bool(rule.languages or rule.feeds or rule.feed_tags)
    return CompiledRule(
        rule,
        node,
        node.keys(),
        required,
        either,
        filings,
        bool(must),
        scoped,
        tuple(compiler.warnings),
    )


def _implied(clause: frozenset[str], keys: frozenset[Key] | None, second: frozenset[str]) -> bool:
    """Whether every article holding one of `keys` and a term of `second` (when there is one)
    holds a term of `clause`."""
    if second and second <= clause:
        return True
    if not keys:
        return False
    return all(not clause.isdisjoint(_terms_of_key(k)) for k in keys)


def _terms_of_key(key: Key) -> frozenset[str]:
    """The clause terms an article holding `key` holds: the word; the pair and its two words;
    the "prefix*" beginning; the "lang~stem" stem."""
    kind, value = key
    if kind == "w":
        return frozenset({value})
    if kind == "b":
        return frozenset({value, *value.split(" ")})
    if kind == "p":
        return frozenset({f"{value}*"})
    return frozenset({f"{kind[2:]}~{value}"})


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
    """Items filed under presearch keys: words, pairs, prefixes and stems (by language), and
    under each key by the terms of a second clause the item needs (see _Filed), so an article's
    candidates are found with set operations, not a test per item (a two-term presearch:
    `anchor AND court` is a candidate only where both are)."""

    def __init__(self) -> None:
        self.words: dict[str, _Filed] = {}
        self.bigrams: dict[str, _Filed] = {}
        self.prefixes: dict[str, _Filed] = {}
        self.stems: dict[str, dict[str, _Filed]] = {}
        self.always: list[int] = []
        self._longest_prefix = 0
        # Every key's items as the C presearch reads them, side by side (see seal), and how many
        # keys there are.
        self.flat = b""
        self.count = 0

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
                bucket = self.prefixes
                self._longest_prefix = max(self._longest_prefix, len(value))
            else:
                bucket = self.stems.setdefault(kind[2:], {})
            filed = bucket.get(value)
            if filed is None:
                filed = bucket[value] = _Filed()
            filed.add(item, second)

    def seal(self, term_ids: Mapping[str, int]) -> None:
        """Lay out every key's items for the C presearch, once all are filed: C ints side by
        side in one bytes object, `flat`, where each key (_Filed.at) is its number, how many
        items it holds alone, those, how many ints follow for its second terms, then for each
        second term its number, how many items, the items. The presearch reads a key where its
        word's meaning points, and tests second terms against a bit set of the article's terms:
        a _Filed object's attributes read for each of an article's keys (72 at 10,000 rules,
        238 at 100,000) cost a lookup and a cache miss each. One bytes object, which the garbage
        collector does not follow."""
        flat = array("i")
        count = 0
        for bucket in (self.words, self.bigrams, self.prefixes, *self.stems.values()):
            for filed in bucket.values():
                filed.at = len(flat)
                alone = filed.alone or ()
                flat.extend((count, len(alone), *alone))
                seconds = array("i")
                for term, items in (filed.by_term or {}).items():
                    seconds.extend((term_ids[term], len(items), *items))
                flat.append(len(seconds))
                flat.extend(seconds)
                count += 1
        self.flat, self.count = flat.tobytes(), count

    def keys_of(
        self, words: Iterable[str], stems_of: dict[str, dict[str, str]]
    ) -> dict[str, tuple]:
        """Word -> the keys filed here that it stands for: itself, every prefix it starts with,
        its stem in each of the document's languages (`stems_of`: language -> word -> stem)."""
        stems = [
            (by_stem, stem_of)
            for language, stem_of in stems_of.items()
            if (by_stem := self.stems.get(language))
        ]
        prefixes, longest = self.prefixes, self._longest_prefix
        found: dict[str, tuple] = {}
        for word in words:
            keys = []
            if (filed := self.words.get(word)) is not None:
                keys.append(filed)
            if prefixes:
                for end in range(PREFIX_MIN, min(len(word), longest) + 1):
                    if (filed := prefixes.get(word[:end])) is not None:
                        keys.append(filed)
            for by_stem, stem_of in stems:
                if (filed := by_stem.get(stem_of[word])) is not None:
                    keys.append(filed)
            found[word] = tuple(keys)
        return found


# Words remembered per index and document languages; emptied when full (as the stem cache is).
_WORDS_KEPT = 200_000


class _Meaning(NamedTuple):
    """What a word, or a pair of adjacent words, stands for in a RuleIndex."""

    rules: tuple[_Filed, ...]  # keys of the rules' index
    entities: tuple[_Filed, ...]  # keys of the entities' index
    # Itself, its stems ("en~slap") and its beginnings ("migra*"): those that clauses name.
    terms: tuple[str, ...]
    ids: bytes  # the terms' numbers in the index (RuleIndex._term_ids), C ints side by side
    # Its stems and beginnings that the rules' and entities' words and phrases name (Part.forms),
    # by their numbers in the index (RuleIndex._form_ids), C ints side by side: an article's
    # words with each are listed once its meanings are found (native.form_table).
    forms: bytes = b""
    # For the first word of a pair that a key or clause names ("saudi" of "saudi arabia"): second
    # word -> what the pair stands for (RuleIndex._pair_meaning); an article's pairs are looked
    # for after these words only (native.pairs_of).
    pair_ends: dict[str, _Meaning] | None = None
    # Where its rule keys are in the index's layout (_KeyIndex.flat, _Filed.at), C ints side by
    # side: what the C presearch reads of them.
    keys: bytes = b""


class _Vocabulary:
    """The words of articles in some languages that an index has looked at, and what each
    stands for (most words stand for nothing: None)."""

    __slots__ = ("meaning", "generation")

    def __init__(self, generation: int) -> None:
        # One dict for both: a word is looked up once an article, not once in a set of the
        # words seen (200,000: a cache miss each) and again in a dict of those meaning something.
        self.meaning: dict[str, _Meaning | None] = {}
        self.generation = generation  # of the stem cache, where every word seen was stemmed


class _Filed:
    """The items filed under one key: alone, or by a second term they also need (a word, pair,
    "lang~stem" or "prefix*", looked up in the article's terms)."""

    __slots__ = ("alone", "by_term", "at")

    def __init__(self) -> None:
        # Created when first needed: an index of 100k rules holds some 200k of these.
        self.alone: list[int] | None = None
        self.by_term: dict[str, list[int]] | None = None
        self.at = -1  # where _KeyIndex.seal laid its items out

    def add(self, item: int, second: frozenset[str]) -> None:
        if not second:
            if self.alone is None:
                self.alone = []
            self.alone.append(item)
        for term in second:
            if self.by_term is None:
                self.by_term = {}
            self.by_term.setdefault(term, []).append(item)


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
        self._rule_ids = frozenset(r.rule.id for r in self.rules)
        self.entities = dict(entities)
        self._rule_keys = _KeyIndex()
        seconds: set[str] = set()
        for i, compiled in enumerate(self.rules):
            for keys, second in compiled.filings:
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
        # The words, pairs, stems and prefixes that clauses or second terms name: an article's
        # terms are those it has (see _terms_of), not all its words.
        clauses = (c for r in self.rules for c in (r.required, *r.either))
        named = seconds.union(*clauses)
        # Each a number, by which the C presearch tests second terms (see _Filed.seal).
        self._term_ids = {term: i for i, term in enumerate(sorted(named))}
        self._rule_keys.seal(self._term_ids)
        # Each rule's clauses by term numbers, for the C presearch to check (see native.presearch)
        self._checks = [self._check(r) if r.checked else None for r in self.rules]
        self._named_words = frozenset(term for term in named if _is_word(term))
        stems: dict[str, set[str]] = {}
        for term in named:
            if "~" in term:
                language, _, stem = term.partition("~")
                stems.setdefault(language, set()).add(stem)
        self._stems = {language: frozenset(found) for language, found in stems.items()}
        self._prefixes = frozenset(term[:-1] for term in named if term.endswith("*"))
        self._longest_prefix = max(map(len, self._prefixes), default=0)
        # Per document languages, word -> the keys it stands for in the rules' index and in
        # the entities', and the terms it gives (see _terms_of): each word of an article is looked
        # at once a process, not once an article.
        self._vocabulary: dict[tuple[str, ...], _Vocabulary] = {}
        # What each pair of adjacent words that a key or clause names stands for, as a word's
        # meaning does. An article's pairs are looked for only after the first word of such a
        # pair ("saudi" for "saudi arabia"), which its meaning marks (_Meaning.pair_ends).
        rule_pairs, entity_pairs = self._rule_keys.bigrams, self._entity_keys.bigrams
        self._pair_meaning: dict[str, dict[str, _Meaning]] = {}  # first word -> second -> meaning
        for pair in chain(rule_pairs, entity_pairs, (t for t in named if " " in t)):
            first, second = pair.split(" ")
            self._pair_meaning.setdefault(first, {})[second] = self._meaning(
                _present(rule_pairs.get(pair)),
                _present(entity_pairs.get(pair)),
                (pair,) if pair in named else (),
            )
        # Every stem and prefix a rule or entity evaluates (en~slap, migra*), numbered: a word's
        # meaning holds those it has, and the document's words with each are listed once its
        # meanings are found, so that a leaf finds its words without the stem cache or a sort
        # (Document.words_of).
        nodes = chain((r.node for r in self.rules), (node for _, node in self._entity_nodes))
        parts = [part for node in nodes for seq in leaves(node) for part in seq.parts]
        self._leaf_prefixes = frozenset(part.value for part in parts if part.kind == "p")
        self._longest_leaf_prefix = max(map(len, self._leaf_prefixes), default=0)
        leaf_stems: dict[str, set[str]] = {}
        self._form_ids: dict[str, int] = {}
        for part in parts:
            for language, stem in part.stems:
                leaf_stems.setdefault(language, set()).add(stem)
            for _, form in part.forms if part.kind in ("p", "s") else ():
                self._form_ids.setdefault(form, len(self._form_ids))
        self._leaf_stems = {language: frozenset(found) for language, found in leaf_stems.items()}

    @classmethod
    def build(
        cls, rules: Iterable[Rule], entities: Mapping[str, Entity], stats: TermStats = HEURISTIC
    ) -> RuleIndex:
        cache: dict[object, Node] = {}
        compiled = [compile_rule(r, entities, stats, cache) for r in rules if r.enabled]
        return cls(compiled, entities, stats, cache)

    def __len__(self) -> int:
        return len(self.rules)

    def has_rule(self, rule_id: str) -> bool:
        """Whether an enabled rule of this id is among these (not one removed or disabled)."""
        return rule_id in self._rule_ids

    @property
    def unanchored(self) -> list[Rule]:
        """Rules filed under no word: evaluated for every article."""
        return [self.rules[i].rule for i in self._rule_keys.always]

    def candidates(self, doc: Document) -> list[CompiledRule]:
        """Rules the presearch leaves to evaluate (before their required clauses)."""
        found, _ = self._presearch(doc, checked=False)
        return [self.rules[i] for i in found]

    def _presearch(self, doc: Document, checked: bool = True) -> tuple[list[int], list[int]]:
        """The document's candidate rules (`checked`: those whose required clauses its terms
        hold) and entities, by id."""
        keys = self._rule_keys
        return native.presearch(
            self._meanings(doc),
            keys.always,
            self._entity_keys.always,
            len(self._term_ids),
            self._checks if checked else None,
            self.rules,
            keys.flat,
            keys.count,
        )

    def _check(self, compiled: CompiledRule) -> bytes:
        """A rule's required clauses as the C presearch checks them, C ints side by side: how
        many terms it needs, their numbers; how many clauses of several terms; for each, how
        many terms and their numbers (one needed)."""
        ids = self._term_ids
        flat = array("i", [len(compiled.required), *map(ids.__getitem__, compiled.required)])
        flat.append(len(compiled.either))
        for clause in compiled.either:
            flat.append(len(clause))
            flat.extend(map(ids.__getitem__, clause))
        return flat.tobytes()

    def _numbers(self, terms: Iterable[str]) -> bytes:
        """Terms by their numbers (_term_ids), C ints side by side."""
        return array("i", map(self._term_ids.__getitem__, terms)).tobytes()

    def _meaning(
        self,
        rules: tuple,
        entities: tuple,
        terms: tuple[str, ...],
        forms: bytes = b"",
        pair_ends: dict[str, _Meaning] | None = None,
    ) -> _Meaning:
        at = array("i", [filed.at for filed in rules]).tobytes()
        return _Meaning(rules, entities, terms, self._numbers(terms), forms, pair_ends, at)

    def forget_words(self) -> None:
        """Forget the words learnt so far (benchmarks measure articles whose words are new)."""
        self._vocabulary = {}

    def _meanings(self, doc: Document) -> list[_Meaning]:
        """What the document's words and pairs of words stand for, for those that stand for
        something (words never seen are looked at now)."""
        stemmed = (
            self._stems or self._rule_keys.stems or self._entity_keys.stems or self._leaf_stems
        )
        generation = stem_generation()
        vocabulary = self._vocabulary.get(doc.languages)
        if vocabulary is None or (stemmed and vocabulary.generation != generation):
            # New, or the stem cache started again: the words seen may be gone from it.
            vocabulary = self._vocabulary[doc.languages] = _Vocabulary(generation)
        meaning = vocabulary.meaning
        words: list[str] = []  # of the meanings found, side by side
        found, new = native.meanings_of(doc.words, meaning, words)
        if new:
            if len(meaning) + len(new) > _WORDS_KEPT:
                meaning.clear()
                words.clear()
                found, new = native.meanings_of(doc.words, meaning, words)
            stems_of = {lang: stem_map(new, lang) for lang in doc.languages} if stemmed else {}
            rules = self._rule_keys.keys_of(new, stems_of)
            entities = self._entity_keys.keys_of(new, stems_of)
            terms = self._terms_of(new, stems_of)
            leaf_forms = self._forms_of(new, stems_of)
            pair_meaning = self._pair_meaning
            for word in new:
                its_forms, ends = leaf_forms[word], pair_meaning.get(word)
                if rules[word] or entities[word] or terms[word] or its_forms or ends:
                    found.append(
                        self._meaning(rules[word], entities[word], terms[word], its_forms, ends)
                    )
                    meaning[word] = found[-1]
                    words.append(word)
                else:
                    meaning[word] = None
        # Every word of the document has its meaning now: its words of each stem and prefix the
        # index's leaves name are listed.
        doc.form_ids, doc.form_words = self._form_ids, words
        doc.forms = native.form_table(found)
        pairs: set[_Meaning] = set()
        native.pairs_of(found, words, doc.scans(ALL_FIELDS), pairs)
        found.extend(pairs)
        return found

    def _terms_of(
        self, words: Iterable[str], stems_of: dict[str, dict[str, str]]
    ) -> dict[str, tuple]:
        """Word -> itself, its stems ("en~slap") and its beginnings ("migra*"), those that
        clauses name."""
        named = self._named_words
        stems = [
            (language, wanted, stem_of)
            for language, stem_of in stems_of.items()
            if (wanted := self._stems.get(language))
        ]
        prefixes, longest = self._prefixes, self._longest_prefix
        found: dict[str, tuple] = {}
        for word in words:
            terms = [
                f"{word[:end]}*"
                for end in range(PREFIX_MIN, min(len(word), longest) + 1)
                if word[:end] in prefixes
            ]
            if word in named:
                terms.append(word)
            for language, wanted, stem_of in stems:
                if (stem := stem_of[word]) in wanted:
                    terms.append(f"{language}~{stem}")
            found[word] = tuple(terms)
        return found

    def _forms_of(
        self, words: Iterable[str], stems_of: dict[str, dict[str, str]]
    ) -> dict[str, bytes]:
        """Word -> the numbers of its stems ("en~slap") and beginnings ("migra*") that leaves
        name, C ints side by side."""
        stems = [
            (language, wanted, stem_of)
            for language, stem_of in stems_of.items()
            if (wanted := self._leaf_stems.get(language))
        ]
        prefixes, longest, ids = self._leaf_prefixes, self._longest_leaf_prefix, self._form_ids
        found: dict[str, bytes] = {}
        for word in words:
            forms = array(
                "i",
                [
                    ids[f"{word[:end]}*"]
                    for end in range(PREFIX_MIN, min(len(word), longest) + 1)
                    if word[:end] in prefixes
                ],
            )
            for language, wanted, stem_of in stems:
                if (stem := stem_of[word]) in wanted:
                    forms.append(ids[f"{language}~{stem}"])
            found[word] = forms.tobytes()
        return found

    def match(
        self,
        article: Article,
        feed_tags: tuple[str, ...] = (),
        other_feeds: tuple[str, ...] = (),
    ) -> tuple[list[Match], list[Evidence]]:
        """Matches of every enabled rule, and every entity mention, for one article; `feed_tags`
        are those of every feed that carries it, `other_feeds` the names of those but its own."""
        doc = Document(article, feed_tags, other_feeds)
        found, entities = self._presearch(doc)  # rules whose required clauses hold
        rules = [
            compiled
            for i in found
            if not (compiled := self.rules[i]).scoped or compiled.in_scope(doc)
        ]
        # Evaluated in one call (the C extension reads the document's attributes once).
        hits = native.hits_of([compiled.node for compiled in rules], doc)
        matches = [
            match
            for compiled, found in zip(rules, hits, strict=True)
            if found is not None and (match := explain(compiled, doc, found)) is not None
        ]
        mentions: list[Evidence] = []
        for i in entities:
            hits = self._entity_nodes[i][1].hits(doc)
            if hits:
                mentions.extend(mentions_of(evidence_of(hits, doc), doc))
        return matches, mentions

    def match_all(
        self,
        article: Article,
        feed_tags: tuple[str, ...] = (),
        other_feeds: tuple[str, ...] = (),
    ) -> list[Match]:
        """Evaluate every rule without the presearcher: the baseline the index must agree with."""
        doc = Document(article, feed_tags, other_feeds)
        return [m for c in self.rules if c.in_scope(doc) and (m := explain(c, doc)) is not None]


def _is_word(term: str) -> bool:
    """Whether a clause term is a word, not a pair, a "lang~stem" or a "prefix*"."""
    return not (" " in term or "~" in term or term.endswith("*"))


def _present(filed: _Filed | None) -> tuple[_Filed, ...]:
    return () if filed is None else (filed,)


def _second_terms(keys: frozenset[Key] | None, clauses: Iterable[frozenset[str]]) -> frozenset[str]:
    """The rarest of the required `clauses` (rarest first) that the rule's keys do not already
    imply: the index files the rule under each of its terms, beside each key (an empty set
    when there is none). `migra* AND (court OR judge)` filed under `court` and `judge` is a
    candidate only where a word also starts with "migra"."""
    implied = frozenset().union(*map(_terms_of_key, keys or ()))
    for clause in clauses:
        if not clause & implied:
            return clause
    return frozenset()


def explain(compiled: CompiledRule, doc: Document, hits: list[Hit] | None = None) -> Match | None:
    """Evaluate one rule on one document; a Match with evidence, score and snippet, or None.
    `hits`: the rule's hits, where they were found already (RuleIndex.match)."""
    if hits is None:
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
