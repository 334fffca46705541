"""Words that Snowball stems alike and that mean different things: what `rules check` warns of
for a stemmed word (`gazé~`, or any word of a `stem = true` rule) that is one of them.

A French analyst wrote `gazé~` for "gassed" and matched every article about Gaza, without a
word from `rules check` (docs/rules.md lists the joins, which a rule author reads once).
Telling joins from a word's own family needs a dictionary; this is the short list of joins
seen in news, each group's words sharing one stem (tests check that they still do). Pure.
"""

from __future__ import annotations

from functools import cache

from ..text import fold, stem_words_uncached

# By language: groups of words, as articles write them, that share a stem and little else.
_JOINED = {
    "fr": (
        ("gazé", "Gaza", "gaz"),
        ("tué", "tu"),
        ("tenté", "tente"),
        ("visé", "visa"),
        ("porté", "port"),
        ("placé", "place"),
        ("arrêté", "arrêt"),
        ("taser", "tas"),
        ("manifestants", "manifestement"),
    ),
    "en": (
        ("blessed", "blessé"),
        ("protest", "Protestant"),
    ),
}
LANGUAGE_NAMES = {"fr": "French", "en": "English"}


@cache
def _by_stem(language: str) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for group in _JOINED.get(language, ()):
        for stem in {stem_words_uncached([fold(word)], language)[0] for word in group}:
            found[stem] = found.get(stem, ()) + group
    return found


def joined_words(word: str, language: str, stem: str) -> tuple[str, ...]:
    """The words of another meaning that `word`, stemmed to `stem` in `language`, also matches
    (none for most words)."""
    return tuple(w for w in _by_stem(language).get(stem, ()) if fold(w) != fold(word))


def joined_groups(language: str) -> tuple[tuple[str, ...], ...]:
    """The groups of words listed for `language` (for the tests that keep the list true)."""
    return _JOINED.get(language, ())
