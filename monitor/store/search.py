"""Full-text search over stored articles (`vigie articles search`), best matches first: SQLite
FTS5's query syntax over `articles_fts`, and with `word~` (every form of a word) over the stems
index too (`articles_stems`, monitor/store/stems.py).

Mixed into Store (monitor/store/database.py), whose connection it uses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlite_utils

from ..text import (
    HIGHLIGHT_CLOSE,
    HIGHLIGHT_OPEN,
    stem_languages,
    stem_map,
    words_and_spans,
)
from .rows import chunks, iso, outlet_name
from .search_query import FIELDS, Leaf, Node, kind, leaves, parse, render, render_exact, stems_of

_SNIPPET = f"snippet(articles_fts, -1, '{HIGHLIGHT_OPEN}', '{HIGHLIGHT_CLOSE}', '…', 12)"
_SNIPPET_WORDS = 12  # as FTS5's snippet() is asked for
_MOST_FORMS = 40  # of a stem, highlighted in one article's snippet


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
                f"{_SNIPPET} AS snippet "
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

    def search_stemmed(
        self,
        query: str,
        limit: int = 20,
        since: datetime | None = None,
        stem_all: bool = False,
    ) -> tuple[list[dict[str, Any]], int] | None:
        """(the best `limit` articles, how many there are) for a query with stemmed words
        (`slap~`, or every unquoted word with `stem_all`), as search_articles gives them; None
        for a query without any, which search_articles takes as FTS5 reads it. Raises
        SearchQueryError for a query that cannot be read (search_query.parse)."""
        if "~" not in query and not stem_all:
            return None
        tree = parse(query, stem_all)
        if not any(leaf.stemmed for leaf, _ in leaves(tree)):
            return None
        found = self._found(tree, since)
        best = sorted(found, key=lambda i: (found[i], -i))[:limit]
        rows = {
            row["id"]: row
            for chunk in chunks(best)
            for row in self.db.query(
                "SELECT a.id, a.title, a.url, a.published, f.name AS feed_name, "
                "f.title AS feed_title, f.url AS feed_url, a.summary, a.content, a.language "
                "FROM articles a JOIN feeds f ON f.id = a.feed_id "
                f"WHERE a.id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
        }
        shown = []
        for article_id in best:
            row = rows[article_id]
            snippet = self._stemmed_snippet(row, tree)
            for key in ("summary", "content", "language"):
                del row[key]
            row["feed_name"] = outlet_name(row["feed_name"], row["feed_title"], row.pop("feed_url"))
            shown.append({**row, "snippet": snippet})
        return shown, len(found)

    def _found(self, node: Node, since: datetime | None) -> dict[int, float]:
        """Article id -> FTS5 rank (lower is better) of what `node` finds. A subtree whose leaves
        all search one index is one FTS5 query of it; the others are combined here, their ranks
        added. Each query keeps to the period: NOT, AND and OR give the same articles then."""
        stemmed = kind(node)
        if stemmed is not None:
            table = "articles_stems" if stemmed else "articles_fts"
            after = " AND a.published >= ?" if since else ""
            join = f" JOIN articles a ON a.rowid = {table}.rowid" if since else ""
            return dict(
                self.db.execute(
                    f"SELECT {table}.rowid, rank FROM {table}{join} WHERE {table} MATCH ?{after}",
                    [render(node), *([iso(since)] if since else [])],
                ).fetchall()
            )
        assert not isinstance(node, Leaf)
        found = [self._found(child, since) for child in node.children]
        if node.op == "NOT":
            kept, left_out = found
            return {i: rank for i, rank in kept.items() if i not in left_out}
        if node.op == "AND":
            ids = set(found[0]).intersection(*found[1:])
            return {i: sum(ranks[i] for ranks in found) for i in ids}
        either: dict[int, float] = {}
        for ranks in found:
            for i, rank in ranks.items():
                either[i] = either.get(i, 0.0) + rank
        return either

    def _stemmed_snippet(self, row: dict[str, Any], tree: Node) -> str:
        """FTS5's snippet of the article with its words marked: those the query names as
        written, and the forms of its stemmed words the article has (found in its text with the
        stemmers of its language, and given to FTS5 as they are written)."""
        terms = [render_exact(leaf) for leaf, wanted in leaves(tree) if wanted and not leaf.stemmed]
        stemmed = [leaf for leaf, wanted in leaves(tree) if wanted and leaf.stemmed]
        forms: set[str] = set()
        for language in stem_languages(row["language"]):
            stems = {stem for leaf in stemmed for stem in stems_of(leaf, language)}
            for field in FIELDS:
                text = row[field] or ""
                spans = words_and_spans(text)
                of = stem_map([word for word, _, _ in spans], language)
                forms.update(text[start:end] for word, start, end in spans if of[word] in stems)
        terms += ['"' + form.replace('"', '""') + '"' for form in sorted(forms)[:_MOST_FORMS]]
        if terms:
            found = self.db.execute(
                f"SELECT {_SNIPPET} FROM articles_fts WHERE articles_fts MATCH ? AND rowid = ?",
                [" OR ".join(terms), row["id"]],
            ).fetchone()
            if found:
                return found[0]
        # No word FTS5 finds as rules found it (a character the two split words at otherwise):
        # the opening of the text, unmarked.
        words = (row["summary"] or row["content"] or row["title"] or "").split()
        return " ".join(words[:_SNIPPET_WORDS]) + ("…" if len(words) > _SNIPPET_WORDS else "")


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
