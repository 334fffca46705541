"""An article analysed once for matching: per field, its folded tokens and their positions.

Everything a rule may ask (a token's positions, its stem, its original case, character offsets
for evidence) is derived from one tokenisation per field; the costly extras (stems, original-case
tokens, character spans) are computed only when a candidate rule needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..records import Article
from ..text import STEM_LANGUAGES, TOKEN, base_language, fold, stem_words, tokens

TEXT_FIELDS = ("title", "summary", "content")
ALL_FIELDS = (*TEXT_FIELDS, "author", "url", "feed", "category")


@dataclass
class FieldText:
    """One field of an article: its text, tokens and where each token occurs."""

    text: str
    tokens: list[str]
    positions: dict[str, list[int]]
    languages: tuple[str, ...]
    _stems: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str, languages: tuple[str, ...]) -> FieldText:
        words = tokens(fold(text))
        positions: dict[str, list[int]] = {}
        for i, word in enumerate(words):
            positions.setdefault(word, []).append(i)
        return cls(text, words, positions, languages)

    def stem_positions(self, language: str) -> dict[str, list[int]]:
        """Stem -> positions, for one language."""
        cached = self._stems.get(language)
        if cached is None:
            distinct = list(self.positions)
            cached = {}
            for word, stem in zip(distinct, stem_words(distinct, language), strict=True):
                cached.setdefault(stem, []).extend(self.positions[word])
            for positions in cached.values():
                positions.sort()
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

    def field(self, name: str) -> FieldText:
        found = self._fields.get(name)
        if found is None:
            found = self._fields[name] = FieldText.of(self._raw(name), self.languages)
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

    def presearch_keys(self) -> tuple[set[str], dict[str, set[str]]]:
        """Distinct folded tokens of every field, and their distinct stems per language."""
        words: set[str] = set()
        for name in ALL_FIELDS:
            words.update(self.field(name).positions)
        stems = {}
        if words:
            distinct = list(words)
            for language in self.languages:
                stems[language] = set(stem_words(distinct, language))
        return words, stems
