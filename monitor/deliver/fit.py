"""A digest's HTML as an email carries it.

Gmail shows about 102 KB of an email's HTML, then "[Message clipped]" and a link to the rest:
the later entries of a busy digest, and its footer with the unsubscribe link, were behind it.
What counts is the HTML part as the message carries it (others measured the limit between 102
and 105 KB, and found it to depend on the part's transfer encoding): the part is written as it
is (7bit or 8bit) whenever SMTP allows, so that it is no larger on the way than written.

Pure: no I/O.
"""

from __future__ import annotations

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
