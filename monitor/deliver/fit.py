"""A digest's HTML as an email carries it, kept short enough for Gmail to show it whole.

Gmail shows about 102 KB of an email's HTML, then "[Message clipped]" and a link to the rest:
the later entries of a busy digest, and its footer with the unsubscribe link, were behind it.
What counts is the HTML part as the message carries it (others measured the limit between 102
and 105 KB, and found it to depend on the part's transfer encoding): the part is written as it
is (7bit or 8bit) whenever SMTP allows, so that it is no larger on the way than written.

A full entry takes about 900 bytes of HTML, its snippet, its link and the names of its rules
for the most part: a digest of the default max_entries, 200, takes about 180 KB. When the whole
would not fit, the least urgent and lowest-scored entries, the fewest that make it fit, are
listed by their linked headline and outlet alone (about 300 bytes each), at the end of their
sections, and a line under the summary says how many and that the plain-text part has them in
full: every entry's link and the footer stay in what Gmail shows.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from email.message import EmailMessage
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .digest import Digest, Entry

# Bytes of HTML, as carried, that a digest keeps within: under the 102 KB at which Gmail clips,
# with room for what a relay may add on the way (a disclaimer, rewritten links).
HTML_BUDGET = 96_000

_SMTP_LINE = 998  # bytes a line may hold, its CRLF aside (RFC 5322)


def transfer_encoding(html: str) -> str | None:
    """How the HTML part is carried: as written (7bit when it is ASCII, else 8bit) when no
    line is longer than SMTP allows; else None, for the email library to choose between
    quoted-printable and base64, which it did for every digest, whose lines pass 78 columns:
    quoted-printable made an English digest 7% larger on the way, and text in Arabic threefold
    (each of its bytes written as "=D8")."""
    if any(len(line) > _SMTP_LINE for line in html.encode().splitlines()):
        return None
    return "7bit" if html.isascii() else "8bit"


def carried_size(html: str) -> int:
    """Bytes of the HTML part's body as the message carries it, each line ending in CRLF."""
    if transfer_encoding(html) is not None:
        return sum(len(line) + 2 for line in html.encode().splitlines())
    part = EmailMessage()
    part.set_content(html, subtype="html")  # encoded: quoted-printable or base64, in ASCII
    body = str(part.get_payload())
    return len(body) + body.count("\n")


def fitted(digest: Digest, draw: Callable[[Digest], str], budget: int = HTML_BUDGET) -> str:
    """The digest's HTML as `draw` makes it, within `budget` bytes as carried: whole when it
    fits; else with the fewest of its least urgent and lowest-scored entries (as max_entries
    chooses those it leaves out) listed by their headline alone that make it fit, or every
    entry so listed when not even that does (a max_entries far above the default)."""
    html = draw(digest)
    if carried_size(html) <= budget:
        return html
    ranked = sorted((e for s in digest.sections for e in s.entries), key=lambda e: e.rank)

    def listed(count: int) -> str:
        return draw(_headline_only(digest, ranked[:count]))

    low, high = 1, len(ranked)  # the least count that fits, by halves: 8 drawings for 200
    while low < high:
        middle = (low + high) // 2
        if carried_size(listed(middle)) <= budget:
            high = middle
        else:
            low = middle + 1
    return listed(low)


def _headline_only(digest: Digest, entries: list[Entry]) -> Digest:
    chosen = {id(entry) for entry in entries}
    sections = tuple(
        replace(
            section,
            entries=tuple(
                replace(e, headline_only=True) if id(e) in chosen else e for e in section.entries
            ),
        )
        for section in digest.sections
    )
    return replace(digest, sections=sections, headline_only=len(chosen))
