"""Language detection for items whose feed declares no language (monitor/language.py)."""

from __future__ import annotations

from monitor.language import MIN_LETTERS, detect_language


def test_french_and_english_texts_are_told_apart() -> None:
    french = (
        "Les exilés installés près du port de Calais ont été évacués mardi matin par les forces "
        "de l'ordre, selon les associations qui leur viennent en aide."
    )
    english = (
        "Migrants camped near the port of Calais were moved on by police on Tuesday morning, "
        "according to the charities that help them."
    )
    assert detect_language(french) == "fr"
    assert detect_language(english) == "en"


def test_too_few_letters_say_nothing() -> None:
    # Numbers, punctuation and a name are no evidence of a language.
    assert detect_language("2024-05-01 12:30 — 45 % (+3,2) …") == ""
    assert detect_language("Zoë " + "1234 " * 50) == ""


def test_a_headline_needs_min_letters_letters() -> None:
    assert sum(c.isalpha() for c in "Police officers charge") == MIN_LETTERS
    assert detect_language("Police officers charge") == "en"
    assert detect_language("Police officers charg") == ""  # one letter short
    assert detect_language("Les policiers ont été mis") == "fr"


def test_a_quote_in_another_language_does_not_decide_the_articles() -> None:
    """A French review: a French report opening with an English quote was told English, and a
    rule for French articles skipped it."""
    opening = (
        "“We will stop the boats. We will break the business model of the smuggling gangs, we"
        " will take back control of our borders, and we will do it this year, whatever it"
        " takes”, Sunak’s pledge. "
    )
    french = (
        "À Lille, un passeur présumé a été mis en examen jeudi après le naufrage d'une"
        " embarcation au large de Gravelines, a indiqué le parquet."
    )
    assert detect_language(opening + french) == "fr"
    english = (
        "The camp was cleared at dawn by riot police, and the tents were taken away by council"
        " workers before the charities arrived."
    )
    assert detect_language("« Nous avons tout perdu, nos tentes et nos papiers », a dit un"
                           " exilé. " + english) == "en"  # fmt: skip
    assert detect_language("“" + french + "”") == "fr"  # all quoted: the quote it is
