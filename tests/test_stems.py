"""Stemming through the word cache gives what Snowball gives, however full the cache is."""

from __future__ import annotations

import pytest
import Stemmer

from monitor import text


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ["slapped", "slapping", "slap", "officers", "officer", "slapped", "kicks"]),
        ("fr", ["giflé", "giflée", "gifles", "policiers", "policière", "expulsions", "giflé"]),
    ],
)
def test_cached_stems_are_snowball_stems(language: str, words: list[str]) -> None:
    snowball = Stemmer.Stemmer(text.STEM_LANGUAGES[language]).stemWords(words)
    assert text.stem_words(words, language) == snowball  # first time: stemmed
    assert text.stem_words(words, language) == snowball  # second time: from the cache
    assert text.stem_map(words, language) == dict(zip(words, snowball, strict=True))


def test_a_full_cache_is_emptied_and_stems_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "_STEMS_KEPT", 5)
    words = [f"walking{i}" for i in range(12)] + ["walked", "walking"]
    snowball = Stemmer.Stemmer("english").stemWords(words)
    for start in range(0, len(words), 3):
        chunk = words[start : start + 3]
        assert text.stem_words(chunk, "en") == snowball[start : start + 3]
    assert len(text._STEMS["en"]) <= 5 + 3  # emptied when full, never grows past the limit
    assert text.stem_map(["walked", "walking"], "en") == {"walked": "walk", "walking": "walk"}


def test_an_article_without_words_finds_no_stem_in_an_empty_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(text, "_STEMS", {})
    monkeypatch.setattr(text, "_WORDS_OF_STEM", {})
    assert text.words_of_stem(frozenset(), "fr") == {}
    assert text.words_of_stem(frozenset({"gifles"}), "fr") == {"gifl": ["gifles"]}


def test_compiling_rules_leaves_the_stem_cache_to_polling() -> None:
    """A concurrency review: rules compiled on the reload thread filled the stem cache a poll
    was reading, and could start it again between the poll's check and its lookup, so that a
    `word~` match was missed. Compiling now stems without the cache."""
    from monitor import text
    from monitor.rules.index import compile_rule
    from monitor.rules.model import Rule

    text.forget_stems()
    compile_rule(Rule(id="r", query="slapped~ AND interpellées~ AND kick", stem=True), {})
    assert not any(text._STEMS.values())  # nothing written
