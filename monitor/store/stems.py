"""The stems index, `articles_stems`: each stored article's words as their Snowball stems in its
language, one FTS5 row per article (rowid = article id), for `articles search`'s `word~`.

Its columns are each field's stems in each language (`title_en` ... `content_fr`): an English
article fills the `_en` columns, a French one the `_fr` ones, an article of another or unknown
language both, as rules try both stemmers on it (docs/rules.md). The stems are those of
monitor/text.py, which rules compare: a change to how text.py stems needs a migration that
indexes the stored articles again (as m022 did first), or `word~` would look for today's
stems among yesterday's.

The store writes it beside `articles`, in the same transaction: an article stored, revised or
pruned has its stems written, rewritten or deleted with it (stems are computed in Python, so no
trigger can). It keeps its own copy of the stems (FTS5 reads it to delete a row), so that a row
is deleted as it was written, whatever stems the code makes by then."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from ..records import Article
from ..text import STEM_LANGUAGES, stem_languages, stemmed_texts
from .rows import chunks
from .search_query import FIELDS, STEM_COLUMNS

log = logging.getLogger(__name__)

_ROWS = 100  # per INSERT: 700 parameters, under SQLite's 999 before 3.32
_BATCH = 500  # articles indexed per transaction by the migration


def create_stems_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS articles_stems USING fts5({', '.join(STEM_COLUMNS)})"
    )


def stem_values(
    title: str | None, summary: str | None, content: str | None, language: str | None
) -> list[str | None]:
    """One article's `articles_stems` columns, in STEM_COLUMNS order: NULL for a language
    that is not its own."""
    texts = (title or "", summary or "", content or "")  # in FIELDS order
    languages = stem_languages(language)
    values: list[str | None] = []
    for code in STEM_LANGUAGES:
        values += stemmed_texts(texts, code) if code in languages else [None] * len(FIELDS)
    return values


# An article's stem_values worked out ahead (by a reader process, pipeline.prepare), by what they
# are made of (stems_key): storing only looks them up.
StemsAhead = Mapping[tuple[str, str, str, str], Sequence[str | None]]


def stems_key(article: Article) -> tuple[str, str, str, str]:
    return (article.title, article.summary, article.content, article.language)


def index_stems(
    conn: sqlite3.Connection,
    articles: Iterable[Article],
    new: bool = False,
    ahead: StemsAhead | None = None,
) -> None:
    """Write the stems of these stored articles (with their ids), in place of any they had;
    `new`: articles just inserted, which had none. Those `ahead` has are not worked out again."""
    ahead = ahead or {}
    rows = [
        (a.id, *(ahead.get(stems_key(a)) or stem_values(a.title, a.summary, a.content, a.language)))
        for a in articles
    ]
    if not new:
        unindex_stems(conn, [row[0] for row in rows])
    _insert(conn, rows)


def unindex_stems(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    for chunk in chunks(list(ids)):
        conn.execute(
            f"DELETE FROM articles_stems WHERE rowid IN ({','.join('?' * len(chunk))})", chunk
        )


def _insert(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    # One statement for many rows: FTS5 writes a segment per statement (see
    # ArticleQueries._insert_articles).
    names = ", ".join(STEM_COLUMNS)
    for chunk in chunks(rows, _ROWS):
        marks = ", ".join([f"({', '.join('?' * (len(STEM_COLUMNS) + 1))})"] * len(chunk))
        conn.execute(
            f"INSERT INTO articles_stems (rowid, {names}) VALUES {marks}",
            [value for row in chunk for value in row],
        )


def index_stored_articles(conn: sqlite3.Connection) -> None:
    """Index the stems of the stored articles that have none, in order of id, `_BATCH` to a
    transaction: interrupted, it goes on after the last batch committed when it runs again
    (the articles after the highest id indexed are those left)."""
    left = conn.execute(
        "SELECT count(*) FROM articles WHERE id > coalesce((SELECT rowid FROM articles_stems "
        "ORDER BY rowid DESC LIMIT 1), 0)"
    ).fetchone()[0]
    if left:
        log.info(
            "upgrading: indexing the stems of %s stored articles for stemmed search (safe to"
            " interrupt: it goes on where it stopped)",
            f"{left:,}",
        )
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (done,) = conn.execute(
                "SELECT coalesce((SELECT rowid FROM articles_stems ORDER BY rowid DESC LIMIT 1), 0)"
            ).fetchone()
            rows = conn.execute(
                "SELECT id, title, summary, content, language FROM articles WHERE id > ? "
                "ORDER BY id LIMIT ?",
                [done, _BATCH],
            ).fetchall()
            _insert(conn, [(row[0], *stem_values(*row[1:])) for row in rows])
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        if len(rows) < _BATCH:
            return
