"""An article analysed once for matching: per field, its folded tokens and their positions.

Everything a rule may ask (a token's positions, its stem, its original case, character offsets
for evidence) is derived from one tokenisation per field. The presearcher needs only the set of
distinct words; positions, stems, original-case tokens and character spans are computed the first
time a candidate rule needs them, so an article no rule is interested in costs little more than
its tokenisation.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from functools import cached_property
from itertools import chain
from typing import TYPE_CHECKING

from ..records import Article, Evidence
from ..text import (
    DOTTED_ACRONYM,
    HAS_LIGATURE,
    INCLUSIVE,
    INCLUSIVE_DOTS,
    acronym_words,
    base_language,
    inclusive_words,
    one_line,
    spelt_out,
    stem_languages,
    word_text,
    words_of_stem,
)
from . import native

if TYPE_CHECKING:
    from .nodes import Part

TEXT_FIELDS = ("title", "summary", "content")
_FINDS_BEFORE_INDEXING = 16  # words present found by str.find before indexing a field
ALL_FIELDS = (*TEXT_FIELDS, "author", "url", "feed", "category")
_ITEM_FIELDS = frozenset({"author", "feed", "category"})  # lists of items, one line each
_ITEM_BREAK = " \n "  # between two items of such a field
_BREAK_TOKEN = "\x00"  # what the folded text has for its line break: never a query's word
_find_dotted = DOTTED_ACRONYM.search


class FieldText:
    """One field of an article: its text, tokens and where each token occurs."""

    _dotted = -1  # where the first dotted acronym is until placed (see _place_acronyms)

    def __init__(self, text: str, languages: tuple[str, ...], items: bool = False) -> None:
        # No reference back to the Document: the two are freed together when the article is
        # done, by reference counting, rather than left to the cyclic garbage collector (which
        # cost a tenth of tokenising and of matching).
        self.text = text
        # A dotted acronym (U.K.) is one word (text.acronym_words). Most fields have none:
        # looked for in one pass over the text (2.4% of tokenising an article without one),
        # not at all in a field without a period.
        dotted = _find_dotted(text) if "." in text else None
        if dotted is None:
            self.folded = word_text(text)  # spaces between tokens, offsets as in `text`
        else:
            self.folded = word_text(acronym_words(text))
            # Their lengths as written are placed when needed (`_place_acronyms`), not now:
            # that takes the token offsets, which most articles never need.
            self._dotted = dotted.start()
        if items and "\n" in text:
            # A field of several items (authors, categories, a feed's name and tags), joined by
            # _ITEM_BREAK: each break is a token no query word equals, so that a phrase or a
            # NEAR does not run from one item into the next ("actu france" from the feed
            # "Nord Actu" and its tag "france").
            self.folded = "".join(
                _BREAK_TOKEN if c == "\n" else f for c, f in zip(text, self.folded, strict=True)
            )
        self.tokens = self.folded.split()
        # Tokens with a ligature written out (œuvre -> oeuvre): position -> length as written.
        self._written: dict[int, int] = {}
        # isascii() is one C pass; most fields are ASCII once folded, and skip the search.
        if not self.folded.isascii() and HAS_LIGATURE.search(self.folded):
            for i, token in enumerate(self.tokens):
                if HAS_LIGATURE.search(token):
                    self._written[i] = len(token)
                    self.tokens[i] = spelt_out(token)
        if not text.isascii() and any(dot in text for dot in INCLUSIVE_DOTS):  # a few C scans
            # exilé·es is read as exilés (text.inclusive_words): as evidence, the whole of it.
            starts = self.starts
            for m in INCLUSIVE.finditer(text):
                i = bisect_right(starts, m.start() - 1) - 1
                if i >= 0:
                    self._written[i] = m.end() - starts[i]
        self.languages = languages
        self._where: dict[str, list[int]] = {}
        self._asked = 0  # words present found by str.find so far
        self._prefixes: dict[str, list[int]] = {}
        self._stems: dict[tuple[str, str], list[int]] = {}

    @cached_property
    def word_set(self) -> frozenset[str]:
        return frozenset(self.tokens)

    def where(self, word: str) -> list[int]:
        """Positions of `word`, found the first time it is asked: by the C extension, one pass
        over the tokens' hashes side by side (`hashes`; a token itself is read only where its
        hash is the word's). Without it, the first words present are found with str.find in the
        folded text, each occurrence's position then by bisection in the token offsets (a few
        microseconds a word); from the 17th, every word of the field is indexed in one pass
        (about the cost of finding 20 words), after which each answer is a dict lookup."""
        found = self._where.get(word)
        if found is None:
            if native.NATIVE:
                found = self._where[word] = native.positions_of(self.tokens, self.hashes, (word,))
                return found
            found = self._where[word] = []
            if word not in self.word_set:
                return found
            self._asked += 1
            # The folded text has "œuvre" where the token says "oeuvre": indexed, not found.
            if self._asked > _FINDS_BEFORE_INDEXING or self._written:
                self._index_all()
                return self._where[word]
            padded, starts, needle = self._padded, self.starts, f" {word} "
            at = padded.find(needle)  # `at` in the padded text is the word's offset in folded
            while at >= 0:
                found.append(bisect_left(starts, at))
                at = padded.find(needle, at + len(word) + 1)
        return found

    @cached_property
    def hashes(self) -> bytes:
        """The tokens' hashes side by side, which the C extension scans (native.token_hashes)."""
        return native.token_hashes(self.tokens)

    def positions_of(self, words: list[str]) -> list[int]:
        """Positions of any of `words`, in order: one scan of the tokens with the C extension."""
        if native.NATIVE:
            return native.positions_of(self.tokens, self.hashes, tuple(words))
        found = [i for word in words for i in self.where(word)]
        if len(words) > 1:
            found.sort()
        return found

    @cached_property
    def _padded(self) -> str:
        return f" {self.folded} "

    def _index_all(self) -> None:
        where: dict[str, list[int]] = {}
        for i, word in enumerate(self.tokens):
            if word in where:
                where[word].append(i)
            else:
                where[word] = [i]
        self._where = where

    def prefix_positions(self, prefix: str, words: list[str]) -> list[int]:
        """Positions of every word starting with `prefix`, cached; `words` are the document's
        words that do (Document.words_with_prefix, found once for all its fields)."""
        cached = self._prefixes.get(prefix)
        if cached is None:
            cached = self._prefixes[prefix] = self.positions_of(words)
        return cached

    def stem_positions(self, language: str, stem: str, words: list[str]) -> list[int]:
        """Positions of the words with this stem in one language, cached; `words` are the
        document's words with it (Document.words_of_stem)."""
        cached = self._stems.get((language, stem))
        if cached is None:
            cached = self._stems[language, stem] = self.positions_of(words)
        return cached

    @cached_property
    def starts(self) -> list[int]:
        """Character offset in `text` of each token."""
        return native.token_starts(self.folded)

    def original(self, i: int) -> str:
        """Token `i` as written (case, accents and ligatures kept)."""
        start = self.starts[i]
        return self.text[start : start + self.written_length(i)]

    def cased(self, i: int) -> str:
        """Token `i` in the case it is written, as an =Exact word is compared with it: a dotted
        acronym without its periods (U.K. is UK), an inclusive ending read as the masculine,
        as the query's words are (gazé·es is gazés): `=gazés`, and even `=gazé·es`, missed
        "des exilé·es gazé·es par les CRS", and so did the police-violence pack."""
        word = self.original(i)
        if "." in word:
            word = word.replace(".", "")
        if not word.isascii() and not INCLUSIVE_DOTS.isdisjoint(word):
            word = inclusive_words(word).rstrip(" ")
        return word

    def written_length(self, i: int) -> int:
        """Characters token `i` takes in the text (œuvre: 5, though compared as oeuvre; U.K.:
        4, though compared as uk)."""
        if self._dotted >= 0:
            self._place_acronyms()
        return self._written.get(i) or len(self.tokens[i])

    def locator(self) -> tuple[list[int], dict[int, int], list[str], str]:
        """What evidence._locate reads to place a hit (token offsets, lengths as written where
        they differ, tokens, text), for the C extension to do the same."""
        if self._dotted >= 0:
            self._place_acronyms()
        return self.starts, self._written, self.tokens, self.text

    def _place_acronyms(self) -> None:
        """U.K. is read as uk (text.acronym_words): as evidence, the whole of it."""
        starts = self.starts
        for m in DOTTED_ACRONYM.finditer(self.text, self._dotted):
            i = bisect_left(starts, m.start() - 1)  # the acronym's first letter
            self._written[i] = m.end() - starts[i]
        self._dotted = -1


class Document:
    """An article ready for matching. Fields are analysed on first use."""

    def __init__(
        self,
        article: Article,
        feed_tags: tuple[str, ...] = (),
        other_feeds: tuple[str, ...] = (),
    ) -> None:
        self.article = article
        self.feed_tags = feed_tags
        # The names of the other feeds that carry the article (their copies are aliases of it):
        # `feed:` and rules scoped to feeds see every feed that carries it, not only the first.
        self.other_feeds = other_feeds
        language = base_language(article.language)
        self.language = language
        # Unknown language: try both stemmers rather than none (as the search index does).
        self.languages: tuple[str, ...] = stem_languages(language)
        self._fields: dict[str, FieldText] = {}
        self._scans: dict[tuple[str, ...], list[tuple[str, list[str], bytes]]] = {}
        self._stems: dict[str, dict[str, list[str]]] = {}  # language -> stem -> words
        self._of_stem: dict[tuple[str, str], list[str]] = {}
        self._with_prefix: dict[str, list[str]] = {}
        # Set by a RuleIndex that has looked at every word of the document: the stems and
        # prefixes its leaves name ("en~slap", "migra*": Part.forms) by number, the words of
        # its meanings, and which of them have each (native.form_table).
        self.form_ids: Mapping[str, int] = {}
        self.form_words: list[str] = []
        self.forms: object = None
        self.memo: dict[object, object] = {}  # node -> hits, for nodes shared between rules
        # hit -> its place in reading order and its evidence, shared by matches (see evidence_of)
        self.evidence: dict[tuple, tuple[tuple[int, int, int], Evidence]] = {}
        self.locators: dict[str, tuple] = {}  # field -> what _locate reads (FieldText.locator)

    @cached_property
    def texts(self) -> dict[str, str]:
        """Each field's text, by name."""
        return {name: self.field(name).text for name in ALL_FIELDS}

    def scans(self, names: tuple[str, ...]) -> list[tuple[str, list[str], bytes]]:
        """(name, tokens, token hashes) of the fields of `names` that have tokens, cached: what
        native.leaf_hits scans for a word's hits."""
        found = self._scans.get(names)
        if found is None:
            found = self._scans[names] = [
                (name, field.tokens, field.hashes)
                for name in names
                if (field := self.field(name)).tokens
            ]
        return found

    def field(self, name: str) -> FieldText:
        found = self._fields.get(name)
        if found is None:
            found = self._fields[name] = FieldText(
                self._raw(name), self.languages, name in _ITEM_FIELDS
            )
        return found

    def _raw(self, name: str) -> str:
        article = self.article
        if name in TEXT_FIELDS:
            return getattr(article, name)
        if name == "author":
            return _ITEM_BREAK.join(map(one_line, article.authors))
        if name == "category":
            return _ITEM_BREAK.join(map(one_line, article.categories))
        if name == "url":
            return article.url
        if name == "feed":
            names = (article.feed_name, *self.other_feeds, *self.feed_tags)
            return _ITEM_BREAK.join(map(one_line, names))
        raise KeyError(name)

    @cached_property
    def words(self) -> frozenset[str]:
        """Distinct folded words of every field. Built as one frozenset: a set then copied
        into a frozenset cost 5% of tokenising an article."""
        return frozenset().union(*[self.field(name).tokens for name in ALL_FIELDS])

    @cached_property
    def sorted_words(self) -> list[str]:
        return sorted(self.words)

    def words_of(self, part: Part) -> list[str]:
        """The document's words with a leaf's prefix or stem (`part.kind` "p" or "s"), in no
        particular order: from those an index collected when it covers them, without a lookup
        in the stem cache or a sort."""
        if part.kind == "p":
            found = self._words_of_form(part.forms[0][1])
            return self.words_with_prefix(part.value) if found is None else found
        found = [
            self.words_of_stem(language, stem)
            if (words := self._words_of_form(form)) is None
            else words
            for (language, form), (_, stem) in zip(part.forms, part.stems, strict=True)
            if language in self.languages
        ]
        if len(found) == 1:
            return found[0]
        return list(dict.fromkeys(chain(*found)))  # a word may have a stem in both languages

    def _words_of_form(self, form: str) -> list[str] | None:
        """The words with a stem or prefix ("en~slap", "migra*") that the document's index
        listed; None for one it does not name."""
        number = self.form_ids.get(form)
        if number is None:
            return None
        return native.words_of_form(self.forms, self.form_words, number)

    def words_with_prefix(self, prefix: str) -> list[str]:
        """The document's words starting with `prefix`, sorted, cached: those an index
        collected when it covers the prefix, else by bisection in the sorted words."""
        found = self._with_prefix.get(prefix)
        if found is None and (listed := self._words_of_form(f"{prefix}*")) is not None:
            found = self._with_prefix[prefix] = sorted(listed)
        elif found is None:
            words = self.sorted_words
            found = self._with_prefix[prefix] = []
            for i in range(bisect_left(words, prefix), len(words)):
                if not words[i].startswith(prefix):
                    break
                found.append(words[i])
        return found

    def written(self, word: str) -> str:
        """A word of the document as its first occurrence is written (expulsés for expulses),
        in reading order of the fields."""
        for name in ALL_FIELDS:
            field = self.field(name)
            found = field.where(word)
            if found:
                return field.original(found[0])
        return word

    def has_prefix(self, prefix: str) -> bool:
        return bool(self.words_with_prefix(prefix))

    def words_of_stem(self, language: str, stem: str) -> list[str]:
        """The document's words with this stem in one language, cached (from the process's stem
        cache, which holds every word of the document once `text.words_of_stem` has seen them)."""
        found = self._of_stem.get((language, stem))
        if found is None and (listed := self._words_of_form(f"{language}~{stem}")) is not None:
            found = self._of_stem[language, stem] = listed
        elif found is None:
            by_stem = self._stems.get(language)
            if by_stem is None:
                by_stem = self._stems[language] = words_of_stem(self.words, language)
            words = self.words
            found = [word for word in by_stem.get(stem, ()) if word in words]
            self._of_stem[language, stem] = found
        return found

    def has_stem(self, language: str, stem: str) -> bool:
        return language in self.languages and bool(self.words_of_stem(language, stem))
