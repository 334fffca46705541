"""The fast tokeniser gives the tokens the definition gives (runs of letters and digits of the
folded text), and offsets that point at those words in the text as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.records import Article
from monitor.rules.document import Document
from monitor.rules.index import RuleIndex
from monitor.rules.model import Rule
from monitor.text import TOKEN, acronym_words, fold, inclusive_words, token_starts, word_text

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def reference_tokens(text: str) -> list[str]:
    return TOKEN.findall(fold(inclusive_words(text)))


def check(text: str) -> None:
    words = word_text(text)
    assert len(words) == len(text)
    found = words.split()
    assert found == reference_tokens(text)
    starts = token_starts(words)
    read = fold(inclusive_words(text))
    assert [read[s : s + len(t)] for s, t in zip(starts, found, strict=True)] == found


@pytest.mark.parametrize(
    "text",
    [
        "Les exilés de Calais, l’État et la « jungle » — Coquelles",
        "Grande-Synthe: 3 CRS; PAF_2024 l'immigration",
        "Straße, cœur, œuvre, Ærø, Ωμέγα, Москва, 北京 and İstanbul",
        "emoji 🏳️‍🌈 between words, ½ and ² and Å (angstrom sign)",
        "Des exilé·es, des militant·e·s et des policier•ères ; a · b, mot·",
        "Calais•Dunkerque•Lille, Lire aussi•exilés, col·legi, ÉTUDIANT·E·S",
        "",
        "   ",
    ],
)
def test_tokens_and_offsets_follow_the_definition(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_tokenises_as_the_definition_says(text: str) -> None:
    check(text)


def test_real_articles_and_feeds_tokenise_as_the_definition_says() -> None:
    truth = SHARED / "corpora" / "pages" / "article-extraction-benchmark" / "ground-truth.json"
    bodies = [row.get("articleBody") or "" for row in json.loads(truth.read_text()).values()]
    feeds = sorted((SHARED / "corpora" / "feeds").rglob("*.xml"))
    assert len(bodies) > 100 and feeds
    for text in bodies + [path.read_text(errors="replace") for path in feeds]:
        check(text)


def test_evidence_points_at_the_words_as_written_in_accented_text() -> None:
    text = "« Les exilés », dit l’élu : des CRS ont frappé les exilés à Calais."
    article = Article(feed_id=1, guid="g", url="https://example.org/a", title="t", content=text)
    index = RuleIndex.build([Rule("r", "exiles NEAR/8 frapp* AND =CRS")], {})
    (match,), _ = index.match(article)
    assert [(e.text, text[e.start : e.end]) for e in match.evidence] == [
        ("exilés", "exilés"),
        ("CRS", "CRS"),
        ("frappé", "frappé"),
        ("exilés", "exilés"),
    ]


def test_a_dotted_acronym_is_one_word_its_evidence_the_whole_of_it() -> None:
    """An analyst's review: `UK` and `FBI` missed "U.K." and "F.B.I.", read a word a letter.
    Found now, the evidence and the snippet's marks are the acronym as written, periods
    included, and the words after it are where they were."""
    text = "Agents of the F.B.I. met U.K. officials; the U.S. Then the F.B.I.’s chief spoke."
    article = Article(feed_id=1, guid="g", url="https://example.org/a", title="t", content=text)
    index = RuleIndex.build([Rule("r", "=FBI NEAR/2 UK AND US NEAR/2 then AND chief")], {})
    (match,), _ = index.match(article)
    assert [(e.text, text[e.start : e.end]) for e in match.evidence] == [
        ("F.B.I.", "F.B.I."),
        ("U.K.", "U.K."),
        ("U.S.", "U.S."),
        ("Then", "Then"),
        ("chief", "chief"),
    ]
    assert "\u27e6F.B.I.\u27e7 met \u27e6U.K.\u27e7 officials" in match.snippet


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="UKFBIab.' -", max_size=40))
def test_a_field_reads_dotted_acronyms_with_exact_offsets(text: str) -> None:
    """Any run of capitals and periods: the field's words are those of the definition, each
    at its place, and each as written is the word with its periods (U.K. for uk)."""
    field = Document(Article(feed_id=1, guid="g", url="", title=text)).field("title")
    assert field.tokens == reference_tokens(acronym_words(text))
    for i, token in enumerate(field.tokens):
        assert fold(field.original(i)).replace(".", "") == token


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("the U.S. Then", ["the", "us", "then"]),
        ("E.P.A.-led, N.Y.P.D.'s", ["epa", "led", "nypd", "s"]),
        # Initials with spaces, one capital, lower case, a run not ending with a period or
        # stuck to a word: as before, a word a letter (or none).
        ("J. R. R. Tolkien, George W. Bush, M. Dupont", ["j", "r", "r", "tolkien", "george"]),
        ("e.g. U.S.A 3.A.B. xU.K.", ["e", "g", "u", "s", "a", "3", "a", "b", "xu", "k"]),
    ],
)
def test_dotted_acronyms_and_what_is_not_one(text: str, words: list[str]) -> None:
    article = Article(feed_id=1, guid="g", url="", title=text)
    assert Document(article).field("title").tokens[: len(words)] == words
