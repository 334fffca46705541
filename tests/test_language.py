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
