"""An article analysed once for matching: per field, its folded tokens and their positions.

Everything a rule may ask (a token's positions, its stem, its original case, character offsets
for evidence) is derived from one tokenisation per field. The presearcher needs only the set of
distinct words; positions, stems, original-case tokens and character spans are computed the first
time a candidate rule needs them, so an article no rule is interested in costs little more than
its tokenisation.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Callable
from functools import cached_property

from ..records import Article, Evidence
from ..text import STEM_LANGUAGES, base_language, stem_map, token_starts, word_text

TEXT_FIELDS = ("title", "summary", "content")
_SCANS_BEFORE_INDEXING = 6  # words present found by scanning a field before indexing it all
ALL_FIELDS = (*TEXT_FIELDS, "author", "url", "feed", "category")


class FieldText:
    """One field of an article: its text, tokens and where each token occurs."""

    def __init__(
        self,
        text: str,
        languages: tuple[str, ...],
        words_by_stem: Callable[[str], dict[str, list[str]]],
    ) -> None:
        self.text = text
        self.folded = word_text(text)  # spaces between tokens, offsets as in `text`
        self.tokens = self.folded.split()
        self.languages = languages
        self._words_by_stem = words_by_stem
        self._where: dict[str, list[int]] = {}
        self._asked = 0  # words present found by scanning so far
        self._prefixes: dict[str, list[int]] = {}
        self._stems: dict[tuple[str, str], list[int]] = {}

    @cached_property
    def word_set(self) -> frozenset[str]:
        return frozenset(self.tokens)

    def where(self, word: str) -> list[int]:
        """Positions of `word`, found the first time it is asked. The first few words present
        are found with list.index (in C, but a scan of the whole field each); from the next
        one, every word of the field is indexed in one pass (about the cost of scanning for
        seven words), after which each answer is a dict lookup."""
        found = self._where.get(word)
        if found is None:
            found = self._where[word] = []
            if word not in self.word_set:
                return found
            self._asked += 1
            if self._asked > _SCANS_BEFORE_INDEXING:
                self._index_all()
                return self._where[word]
            index, i = self.tokens.index, -1
            with contextlib.suppress(ValueError):
                while True:
                    i = index(word, i + 1)
                    found.append(i)
        return found

    def _index_all(self) -> None:
        where: dict[str, list[int]] = {}
        for i, word in enumerate(self.tokens):
            if word in where:
                where[word].append(i)
            else:
                where[word] = [i]
        self._where = where

    @cached_property
    def _sorted_words(self) -> list[str]:
        return sorted(self.word_set)

    def prefix_positions(self, prefix: str) -> list[int]:
        """Positions of every word starting with `prefix`, found by bisection, cached."""
        cached = self._prefixes.get(prefix)
        if cached is None:
            words = self._sorted_words
            found: list[int] = []
            for i in range(bisect_left(words, prefix), len(words)):
                if not words[i].startswith(prefix):
                    break
                found.extend(self.where(words[i]))
            found.sort()
            cached = self._prefixes[prefix] = found
        return cached

    def stem_positions(self, language: str, stem: str) -> list[int]:
        """Positions of the words with this stem in one language (stems come from the
        document's one stemming of its distinct words)."""
        cached = self._stems.get((language, stem))
        if cached is None:
            words = self._words_by_stem(language).get(stem, ())
            cached = [i for word in words for i in self.where(word)]
            if len(words) > 1:
                cached.sort()
            self._stems[language, stem] = cached
        return cached

    @cached_property
    def _starts(self) -> list[int]:
        return token_starts(self.folded)

    def span(self, i: int) -> tuple[int, int]:
        """Character span of token `i` in `text`."""
        start = self._starts[i]
        return start, start + len(self.tokens[i])

    def original(self, i: int) -> str:
        """Token `i` as written (case and accents kept)."""
        start = self._starts[i]
        return self.text[start : start + len(self.tokens[i])]


class Document:
    """An article ready for matching. Fields are analysed on first use."""

    def __init__(self, article: Article, feed_tags: tuple[str, ...] = ()) -> None:
        self.article = article
        self.feed_tags = feed_tags
        language = base_language(article.language)
        self.language = language
        # Unknown language: try both stemmers rather than none.
        self.languages: tuple[str, ...] = (
            (language,) if language in STEM_LANGUAGES else tuple(STEM_LANGUAGES)
        )
        self._fields: dict[str, FieldText] = {}
        self._stem_maps: dict[str, dict[str, str]] = {}
        self._prefix_sets: dict[int, set[str]] = {}
        self._stem_sets: dict[str, frozenset[str]] = {}
        self._words_by_stem: dict[str, dict[str, list[str]]] = {}
        self.memo: dict[object, object] = {}  # node -> hits, for nodes shared between rules
        self.evidence: dict[tuple, Evidence] = {}  # hit -> its evidence, shared by matches

    def field(self, name: str) -> FieldText:
        found = self._fields.get(name)
        if found is None:
            found = self._fields[name] = FieldText(
                self._raw(name), self.languages, self.words_by_stem
            )
        return found

    def _raw(self, name: str) -> str:
        article = self.article
        if name in TEXT_FIELDS:
            return getattr(article, name)
        if name == "author":
            return "\n".join(article.authors)
        if name == "category":
            return "\n".join(article.categories)
        if name == "url":
            return article.url
        if name == "feed":
            return "\n".join((article.feed_name, *self.feed_tags))
        raise KeyError(name)

    @cached_property
    def words(self) -> frozenset[str]:
        """Distinct folded words of every field."""
        words: set[str] = set()
        for name in ALL_FIELDS:
            words.update(self.field(name).tokens)
        return frozenset(words)

    @cached_property
    def bigrams(self) -> frozenset[str]:
        """Distinct pairs of adjacent folded words ("saudi arabia") within each field."""
        pairs: set[str] = set()
        for name in ALL_FIELDS:
            found = self.field(name).tokens
            pairs.update(map(" ".join, zip(found, found[1:], strict=False)))
        return frozenset(pairs)

    def stem_terms(self, wanted: dict[str, frozenset[str]]) -> set[str]:
        """Those of the `wanted` stems (language -> stems) the document has, as "en~stem"."""
        return {
            f"{language}~{stem}"
            for language in self.languages
            for stem in self.stems(language) & wanted.get(language, frozenset())
        }

    @cached_property
    def sorted_words(self) -> list[str]:
        return sorted(self.words)

    def has_prefix(self, prefix: str) -> bool:
        """Whether a word of the document starts with `prefix` (by bisection)."""
        words = self.sorted_words
        i = bisect_left(words, prefix)
        return i < len(words) and words[i].startswith(prefix)

    def prefixes(self, length: int) -> set[str]:
        """The distinct `length`-character beginnings of the document's words at least that
        long; computed once per length, for the rules' and the entities' indexes alike."""
        found = self._prefix_sets.get(length)
        if found is None:
            found = self._prefix_sets[length] = {w[:length] for w in self.words if len(w) >= length}
        return found

    def stem_map(self, language: str) -> dict[str, str]:
        """Word -> stem for every distinct word of the document: one stemming per language."""
        found = self._stem_maps.get(language)
        if found is None:
            found = self._stem_maps[language] = stem_map(self.words, language)
        return found

    def words_by_stem(self, language: str) -> dict[str, list[str]]:
        """Stem -> the document's words with that stem, in one language."""
        found = self._words_by_stem.get(language)
        if found is None:
            found = self._words_by_stem[language] = {}
            for word, stem in self.stem_map(language).items():
                if stem in found:
                    found[stem].append(word)
                else:
                    found[stem] = [word]
        return found

    def stems(self, language: str) -> frozenset[str]:
        """Distinct stems of every field's words in one language."""
        found = self._stem_sets.get(language)
        if found is None:
            found = self._stem_sets[language] = frozenset(self.stem_map(language).values())
        return found
