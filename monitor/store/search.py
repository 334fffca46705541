"""Full-text search over stored articles (`vigie articles search`): SQLite FTS5's query syntax
over `articles_fts`, best matches first.

Mixed into Store (monitor/store/database.py), whose connection it uses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlite_utils

from ..text import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from .rows import iso, outlet_name


class SearchQueries:
    """Store methods for full-text search."""

    db: sqlite_utils.Database

    def search_articles(
        self, query: str, limit: int = 20, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Full-text search (SQLite FTS5 syntax), best matches first, of the articles published
        `since` when given; `feed_name` is the outlet shown (outlet_name: a feed without a name
        or title was an empty one)."""
        after = " AND a.published >= ?" if since else ""
        rows = list(
            self.db.query(
                "SELECT a.id, a.title, a.url, a.published, f.name AS feed_name, "
                "f.title AS feed_title, f.url AS feed_url, "
                f"snippet(articles_fts, -1, '{HIGHLIGHT_OPEN}', '{HIGHLIGHT_CLOSE}', '…', 12) "
                "AS snippet "
                "FROM articles_fts "
                "JOIN articles a ON a.rowid = articles_fts.rowid JOIN feeds f ON f.id = a.feed_id "
                f"WHERE articles_fts MATCH ?{after} ORDER BY rank LIMIT ?",
                [query, *([iso(since)] if since else []), limit],
            )
        )
        for row in rows:  # the address stays out: it may carry a private feed's key
            row["feed_name"] = outlet_name(row["feed_name"], row["feed_title"], row.pop("feed_url"))
        return rows

    def search_count(self, query: str, since: datetime | None = None) -> int:
        """How many stored articles a full-text query finds, as search_articles takes it."""
        after = " AND a.published >= ?" if since else ""
        return self.db.execute(
            "SELECT count(*) FROM articles_fts JOIN articles a ON a.rowid = articles_fts.rowid "
            f"WHERE articles_fts MATCH ?{after}",
            [query, *([iso(since)] if since else [])],
        ).fetchone()[0]


_FTS_OPERATORS = frozenset({"AND", "OR", "NOT"})
_FTS_WORD = re.compile(r"((?:title|summary|content):)?(.*?)(\*?)", re.DOTALL)
# A "quoted phrase" (FTS5 doubles a quote inside one; a column filter may lead it), a
# parenthesis, or anything else up to a space or a parenthesis: what fts_words keeps or quotes.
_FTS_PIECE = re.compile(r'(?:(?:title|summary|content):)?"(?:[^"]|"")*"|[()]|[^\s()]+')


def fts_words(query: str) -> str:
    """The query with each bare word made an FTS5 string, which FTS5 splits into its words: a
    hyphen, an apostrophe or an ampersand is then punctuation, not syntax. Phrases already
    quoted, parentheses and AND, OR, NOT stay as written (quoting every space-separated piece
    made `"police camp"` two words and `(Calais` a word). A column filter (title:) and a final
    * stay outside the string, where they keep their meaning."""
    out: list[str] = []
    for piece in _FTS_PIECE.findall(query):
        column, text, star = _FTS_WORD.fullmatch(piece).groups()  # type: ignore[union-attr]
        quoted = len(text) > 1 and text.startswith('"') and text.endswith('"')
        if piece not in _FTS_OPERATORS and piece != ")" and out and out[-1] not in _OPENING:
            out.append("AND")  # FTS5 joins phrases by a space, but not a group and a phrase
        if piece in _FTS_OPERATORS or piece in ("(", ")") or not text or quoted:
            out.append(piece)
        else:
            out.append(f'{column or ""}"{text.replace(chr(34), chr(34) * 2)}"{star}')
    return " ".join(out)


_OPENING = _FTS_OPERATORS | {"("}  # what an operand may follow without AND
