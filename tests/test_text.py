"""Whitespace in feed text: what readers of digests and webhook consumers get."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.text import html_to_text, normalise_space


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Police   used\ttear gas  ", "Police used tear gas"),
        ("First paragraph.\n\nSecond.", "First paragraph.\n\nSecond."),
        ("First. \n \n\n  Second.", "First.\n\nSecond."),  # blank lines: one paragraph break
        ("line one  \n  line two", "line one\nline two"),
        ("Windows\r\nline ends\r\n\r\nkept apart", "Windows\nline ends\n\nkept apart"),
        ("no\u00a0break\u00a0\u00a0space", "no break space"),
        ("bell\x07 and\x00 nul", "bell and nul"),
        ("10\u2009000 migrants", "10\u2009000 migrants"),  # a thin space is kept as written
        ("\n\n  \n", ""),
    ],
)
def test_spaces_collapse_and_paragraphs_stay(raw: str, clean: str) -> None:
    assert normalise_space(raw) == clean


def test_html_blocks_become_paragraphs() -> None:
    html = "<p>Migrants   were <b>moved</b>.</p>\n\n<p>Police said\n nothing.</p>"
    assert html_to_text(html) == "Migrants were moved.\n\nPolice said\nnothing."


def _by_the_rules(text: str) -> str:
    """The rules as regular expressions: control characters go; runs of space, tab, CR and
    no-break space become one space; whitespace holding two newlines or more, a paragraph
    break; one newline with spaces around, a line break; then the ends are stripped."""
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", text)
    text = re.sub(r"\s*\n\s*\n\s*", "\n\n", text)
    return re.sub(r" *\n *", "\n", text).strip()


_WHITESPACE = list(" \t\n\r\u00a0\x0b\x0c\x1c\x1f\x85\u2009\u2028\u3000\x00\x7f")


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(["a", "é", "b", *_WHITESPACE]), max_size=60))
def test_any_whitespace_follows_the_rules(text: str) -> None:
    assert normalise_space(text) == _by_the_rules(text)


def test_bidirectional_overrides_are_dropped_and_split_no_word() -> None:
    """A title with a right-to-left override (U+202E) showed the rest of its digest line,
    subject or terminal line reversed, so it could pose as other text; inside a word it cut the
    word in two for the matcher. A mark (RLM), which reaches no further than itself, stays."""
    from monitor.text import printable

    assert html_to_text("Police \u202elasiuqca\u202c found") == "Police lasiuqca found"
    assert (
        html_to_text("po\u2067lice\u2069 and \u202bwords\u202c\u200f") == "police and words\u200f"
    )
    assert printable("feed \u202egnp.exe") == "feed  gnp.exe"


def test_links_titles_and_terminal_text_lose_bidirectional_controls() -> None:
    """A code review: links kept U+202E ("calais-\u202etxt.exe" reads "calais-exe.txt"), the
    command line's own cleaner let it through, and titles stored before it was dropped kept
    it in digests."""
    from monitor.cli_common import escape
    from monitor.parse import parse_feed
    from monitor.text import one_line, url_shown_safely

    assert one_line("Calais \u202eraw\u202c title") == "Calais raw title"
    assert url_shown_safely("https://ex.com/calais-\u202etxt.exe") == (
        "https://ex.com/calais-%E2%80%AEtxt.exe"
    )
    assert escape("https://ex.com/a\u202egnp.exe") == "https://ex.com/agnp.exe"
    rss = (
        '<rss version="2.0"><channel><title>F</title><item><title>Camp</title>'
        "<link>https://ex.com/calais-\u202etxt.exe</link><description>Text</description>"
        "</item></channel></rss>"
    ).encode()
    _, [article] = parse_feed(rss, {}, "https://ex.com/feed")
    assert article.url == "https://ex.com/calais-%E2%80%AEtxt.exe"
