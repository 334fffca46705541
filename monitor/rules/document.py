"""An article analysed once for matching: per field, its folded tokens and their positions.

Everything a rule may ask (a token's positions, its stem, its original case, character offsets
for evidence) is derived from one tokenisation per field. The presearcher needs only the set of
distinct words; positions, stems, original-case tokens and character spans are computed the first
time a candidate rule needs them, so an article no rule is interested in costs little more than
its tokenisation.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from functools import cached_property

from ..records import Article
from ..text import STEM_LANGUAGES, TOKEN, base_language, fold, stem_words, tokens

TEXT_FIELDS = ("title", "summary", "content")
ALL_FIELDS = (*TEXT_FIELDS, "author", "url", "feed", "category")


class FieldText:
    """One field of an article: its text, tokens and where each token occurs."""

    def __init__(
        self, text: str, languages: tuple[str, ...], stem_map: Callable[[str], dict[str, str]]
    ) -> None:
        self.text = text
        self.tokens = tokens(fold(text)) if text else []
        self.languages = languages
        self._stem_map = stem_map
        self._stems: dict[str, dict[str, list[int]]] = {}
        self._prefixes: dict[str, list[int]] = {}

    @cached_property
    def positions(self) -> dict[str, list[int]]:
        """Word -> positions where it occurs."""
        positions: dict[str, list[int]] = {}
        for i, word in enumerate(self.tokens):
            if word in positions:
                positions[word].append(i)
            else:
                positions[word] = [i]
        return positions

    @cached_property
    def _sorted_words(self) -> list[str]:
        return sorted(self.positions)

    def prefix_positions(self, prefix: str) -> list[int]:
        """Positions of every word starting with `prefix`, found by bisection, cached."""
        cached = self._prefixes.get(prefix)
        if cached is None:
            words = self._sorted_words
            found: list[int] = []
            for i in range(bisect_left(words, prefix), len(words)):
                if not words[i].startswith(prefix):
                    break
                found.extend(self.positions[words[i]])
            found.sort()
            cached = self._prefixes[prefix] = found
        return cached

    def stem_positions(self, language: str) -> dict[str, list[int]]:
        """Stem -> positions, for one language (stems come from the document's one stemming)."""
        cached = self._stems.get(language)
        if cached is None:
            stem_of = self._stem_map(language)
            cached = {}
            for word, positions in self.positions.items():
                stem = stem_of[word]
                if stem in cached:
                    cached[stem] = sorted(cached[stem] + positions)
                else:
                    cached[stem] = positions
            self._stems[language] = cached
        return cached

    @cached_property
    def original_tokens(self) -> list[str]:
        """Tokens as written (case and accents kept), aligned with `tokens`."""
        return TOKEN.findall(self.text)

    @cached_property
    def spans(self) -> list[tuple[int, int]]:
        """Character span of each token in `text`."""
        return [m.span() for m in TOKEN.finditer(self.text)]


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
        self.memo: dict[object, object] = {}  # node -> hits, for nodes shared between rules

    def field(self, name: str) -> FieldText:
        found = self._fields.get(name)
        if found is None:
            found = self._fields[name] = FieldText(self._raw(name), self.languages, self.stem_map)
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
            distinct = list(self.words)
            found = dict(zip(distinct, stem_words(distinct, language), strict=True))
            self._stem_maps[language] = found
        return found

    def stems(self, language: str) -> set[str]:
        """Distinct stems of every field's words in one language."""
        return set(self.stem_map(language).values())
