"""Full-text search with stemmed words (`slap~`) on real SQLite files: the stems index kept in
step with articles, by the store and by the upgrade that builds it for articles stored before."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from monitor.errors import SearchQueryError
from monitor.records import Article
from monitor.store import Store, migrations, search_query

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def article(guid: str, title: str, language: str = "en", **fields: Any) -> Article:
    return Article(
        feed_id=1,
        guid=guid,
        url=f"https://news.example.com/{guid}",
        title=title,
        language=language,
        published=fields.pop("published", NOW - timedelta(hours=1)),
        fingerprint=fields.pop("fingerprint", title),
        **fields,
    )


def titles(store: Store, query: str, **options: Any) -> list[str]:
    found = store.search_stemmed(query, **options)
    assert found is not None, query
    return sorted(row["title"] for row in found[0])


@pytest.fixture
def newsroom(store: Store) -> Store:
    store.upsert_feed("https://news.example.com/feed", name="News", now=NOW)
    with store.transaction():
        store.insert_articles(
            [
                article("1", "Officer slapped a handcuffed migrant", summary="In Calais."),
                article("2", "Slapping incident: an inquiry opens", summary="At the border."),
                article("3", "Deux exilés interpellés à Calais", "fr", summary="À l'aube."),
                article("4", "La préfecture veut interpeller les passeurs", "fr"),
                article("5", "Expulsions resume at the border", summary="Police came."),
            ],
            NOW,
        )
    return store


def test_a_tilde_finds_every_form_of_a_word(newsroom: Store) -> None:
    """A researcher's search for `slap` missed "slapped", `expulsion` "expulsions", and
    `interpellé` "interpellés" and "interpeller": their other forms are found with ~."""
    assert newsroom.search_articles("slap") == []
    assert titles(newsroom, "slap~") == [
        "Officer slapped a handcuffed migrant",
        "Slapping incident: an inquiry opens",
    ]
    assert titles(newsroom, "expulsion~") == ["Expulsions resume at the border"]
    assert titles(newsroom, "interpellé~") == [
        "Deux exilés interpellés à Calais",
        "La préfecture veut interpeller les passeurs",
    ]
    assert titles(newsroom, '"handcuffed migrants"~') == ["Officer slapped a handcuffed migrant"]
    # Without a ~ (or --stem), a query is FTS5's as it always was.
    assert newsroom.search_stemmed("slap") is None
    assert newsroom.search_stemmed('"slap~"') is None


def test_stemmed_and_exact_words_go_together_as_fts5_reads_them(newsroom: Store) -> None:
    assert titles(newsroom, "slap~ migrant") == ["Officer slapped a handcuffed migrant"]
    assert titles(newsroom, "slap~ NOT migrant") == ["Slapping incident: an inquiry opens"]
    assert titles(newsroom, "calais NOT slap~") == ["Deux exilés interpellés à Calais"]
    assert titles(newsroom, "(slap~ OR expulsion~) border") == [
        "Expulsions resume at the border",
        "Slapping incident: an inquiry opens",
    ]
    assert titles(newsroom, "slap~ OR interpeller") == [
        "La préfecture veut interpeller les passeurs",
        "Officer slapped a handcuffed migrant",
        "Slapping incident: an inquiry opens",
    ]
    # Side by side binds before NOT, as in FTS5: (slap~ border) NOT calais.
    assert titles(newsroom, "slap~ border NOT calais") == ["Slapping incident: an inquiry opens"]
    assert titles(newsroom, "title:slap~ calais") == ["Officer slapped a handcuffed migrant"]
    assert titles(newsroom, "summary:slap~") == []
    assert titles(newsroom, "-title:calais~") == ["Officer slapped a handcuffed migrant"]
    assert titles(newsroom, "NEAR(officer~ slap~, 1)") == ["Officer slapped a handcuffed migrant"]
    assert titles(newsroom, "NEAR(officer~ migrant~, 1)") == []
    assert titles(newsroom, "slap~ handcuff*") == ["Officer slapped a handcuffed migrant"]
    assert titles(newsroom, "slap migrant", stem_all=True) == [
        "Officer slapped a handcuffed migrant"
    ]
    assert titles(newsroom, '"slap" migrant', stem_all=True) == []  # quoted: as written


def test_the_articles_language_picks_its_stemmer(store: Store) -> None:
    """French Snowball does not know English -ed, nor English Snowball French -é: an article
    is read with its own language's stemmer, and with both when its language has none or is
    not known, as rules read it."""
    store.upsert_feed("https://news.example.com/feed", now=NOW)
    with store.transaction():
        store.insert_articles(
            [
                article(str(n), f"{title} ({language or 'unknown'})", language)
                for n, (title, language) in enumerate(
                    [
                        ("Guards slapped a man", "en"),
                        ("Guards slapped a man", "fr"),
                        ("Guards slapped a man", ""),
                        ("Guards slapped a man", "de"),
                        ("Un homme giflé", "fr"),
                        ("Un homme giflé", "en"),
                    ]
                )
            ],
            NOW,
        )
    assert titles(store, "slap~") == [
        "Guards slapped a man (de)",
        "Guards slapped a man (en)",
        "Guards slapped a man (unknown)",
    ]
    assert titles(store, "gifler~") == ["Un homme giflé (fr)"]


def test_results_keep_to_the_period_best_first_and_are_counted(store: Store) -> None:
    store.upsert_feed("https://news.example.com/feed", now=NOW)
    with store.transaction():
        store.insert_articles(
            [
                article("old", "Expulsion of a family", published=NOW - timedelta(days=40)),
                article("new", "Expulsions, expulsions", published=NOW - timedelta(days=1)),
                article("other", "Expelled", published=NOW - timedelta(days=1)),
            ],
            NOW,
        )
    found = store.search_stemmed("expulsion~", limit=1)
    assert found is not None
    rows, total = found
    assert ([row["title"] for row in rows], total) == (["Expulsions, expulsions"], 2)
    assert set(rows[0]) == {"id", "title", "url", "published", "feed_name", "feed_title", "snippet"}
    assert rows[0]["snippet"] == "⟦Expulsions⟧, ⟦expulsions⟧"
    since = NOW - timedelta(days=7)
    assert titles(store, "expulsion~", since=since) == ["Expulsions, expulsions"]
    # A NOT keeps to the period as well: what it leaves out is what the period holds.
    assert titles(store, "expulsion~ NOT family", since=since) == ["Expulsions, expulsions"]


def test_snippets_mark_the_forms_found_and_the_words_as_written(newsroom: Store) -> None:
    found = newsroom.search_stemmed("slap~ migrant")
    assert found is not None
    [row] = found[0]
    assert row["snippet"] == "Officer ⟦slapped⟧ a handcuffed ⟦migrant⟧"
    found = newsroom.search_stemmed("interpellé~ NOT passeurs")
    assert found is not None
    [row] = found[0]
    assert row["snippet"] == "Deux exilés ⟦interpellés⟧ à Calais"


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("slap~*", "a word ends with ~ (all its forms: slap~) or * (every word it starts"),
        ("sl~ap", "sl~ap: ~ ends a word"),
        ("NEAR(slap~ police)", "NEAR( ) takes words all with ~ or all without"),
        ("(slap~ OR kick~", "a parenthesis is not closed"),
        ("slap~ )", "a parenthesis is closed that was not opened"),
        ("{title byline}: slap~", "no column 'byline': title, summary or content"),
        ("title:(summary:slap~)", "column filters one inside another leave no column"),
    ],
)
def test_a_query_that_cannot_be_read_says_why(store: Store, query: str, said: str) -> None:
    with pytest.raises(SearchQueryError) as caught:
        store.search_stemmed(query)
    assert str(caught.value) == f"search query {query!r}: {caught.value.reason}"
    assert said in caught.value.reason


def shape(node: search_query.Node) -> str:
    """A tree on one line: OR(a AND(b c)), a leaf's columns after @ when not all three."""
    if isinstance(node, search_query.Op):
        return f"{node.op}(" + " ".join(shape(child) for child in node.children) + ")"
    words = " ".join(
        ("^" if p.initial else "") + p.text + ("~" if p.stem else "") + ("*" if p.prefix else "")
        for p in node.phrases
    )
    shown = words if node.near is None else f"NEAR({words}, {node.near})"
    if node.fields == search_query.ALL_FIELDS:
        return shown
    return shown + "@" + ",".join(sorted(node.fields))


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        # FTS5's precedence, tightest first: side by side, NOT, AND, OR.
        ("a b NOT c", "NOT(AND(a b) c)"),
        ("a OR b NOT c", "OR(a NOT(b c))"),
        ("a NOT b c", "NOT(a AND(b c))"),
        ("a NOT b NOT c", "NOT(NOT(a b) c)"),
        ("a AND b OR c AND d", "OR(AND(a b) AND(c d))"),
        ("a b AND c d", "AND(AND(a b) AND(c d))"),
        ("a AND b NOT c OR d", "OR(AND(a NOT(b c)) d)"),
        ("a OR b OR c", "OR(a b c)"),
        ("((a OR b))", "OR(a b)"),
        # A parenthesis after a term (FTS5 refuses it) is an AND; one first is side by side.
        ("a (b OR c) NOT d", "AND(a NOT(OR(b c) d))"),
        ("(b OR c) a NOT d", "NOT(AND(OR(b c) a) d)"),
        ("a NOT (b OR c) d", "NOT(a AND(OR(b c) d))"),
        ("a (b) (c)", "AND(a b c)"),
        # Operators are words in upper case: lower case, in a longer word or in NEAR( ) they
        # are searched for, as NEAR without its parenthesis.
        ("or and not", "AND(or and not)"),
        ("ORANGE NOTED ANDROID", "AND(ORANGE NOTED ANDROID)"),
        ("NEAR(not OR, 3)", "NEAR(not OR, 3)"),
        ("NEAR near(a b)", "AND(AND(NEAR near) AND(a b))"),
        # Marks, a phrase not closed (to the end, as words), a hyphen or a comma in a word.
        ('^"tear gas"~ migra* slap~ pepper-spray,', "AND(^tear gas~ migra* slap~ pepper-spray,)"),
        ('slap~ "police (slap', "AND(slap~ police (slap)"),
        ('"say ""no"""', 'say "no"'),
    ],
)
def test_a_query_is_read_with_fts5s_precedence(query: str, tree: str) -> None:
    assert shape(search_query.parse(query)) == tree


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("title:a b", "AND(a@title b)"),
        ("title:(a OR b) c", "AND(OR(a@title b@title) c)"),
        ("c title:(a b) d", "AND(c AND(AND(a@title b@title) d))"),
        ("c title: ( a ) NOT d", "AND(c NOT(a@title d))"),
        ("-title:(a NOT b)", "NOT(a@content,summary b@content,summary)"),
        ("{title summary}:(a -summary:b)", "AND(a@summary,title b@title)"),
        ("- { content } : a", "a@summary,title"),
        ("title: NEAR(a b, 3)", "NEAR(a b, 3)@title"),
        ("summary:(NEAR(a b) OR ^c)", "OR(NEAR(a b, 10)@summary ^c@summary)"),
        ("TITLE:a", "a@title"),
        ('title:"a b"~', "a b~@title"),
        ("title:a:b", "a:b@title"),
        ("a:b subtitle:c", "AND(a:b subtitle:c)"),
    ],
)
def test_a_column_filter_takes_the_term_or_parenthesis_after_it(query: str, tree: str) -> None:
    assert shape(search_query.parse(query)) == tree


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("slap~ OR", "OR at the end: give a term after it (calais OR football) (column 9)"),
        ("slap~ AND OR kick~", "AND OR: give a term after AND (column 11)"),
        ("slap~ (OR kick~)", "OR goes between two terms (calais OR football), not first in a"),
        ("police (slap~ OR kick~", "a parenthesis is not closed (column 8)"),
        ("slap~ ()", "empty parentheses (column 8)"),
        ("slap~ summary:", "summary: at the end: give a word after it (summary:calais) (column 1"),
        ("title: {summary}: slap~", 'title: goes before a word, a "phrase", NEAR( ) or a paren'),
        ("slap~ ^ OR kick~", "^ goes before a word or a \"phrase\", not 'OR' (column 9)"),
        ("{title slap~", "a column filter is written {title summary}: word (column 1)"),
        ("-{title summary content}: slap~", "-{title summary content}: leaves no column to search"),
        ("NEAR(slap~ kick~,)", "NEAR(a b, N) takes a number of words after its comma (column 17)"),
        ("NEAR(slap~ kick~, 5 police~)", "NEAR( ) ends after its number: NEAR(a b, 5) (column 21)"),
        ("NEAR(slap~ (kick~))", 'NEAR( ) holds words and "phrases" (and a number after a comma)'),
        ("slap~ NEAR(slap~ kick~", "NEAR( is not closed (column 7)"),
        ("NEAR(slap~)", "NEAR( ) takes two words or phrases at least: NEAR(a b, 5) (column 1)"),
        ("slap~ police~ *", "'*' has no letters or digits to search for (column 15)"),
    ],
)
def test_a_query_error_says_where(query: str, said: str) -> None:
    with pytest.raises(SearchQueryError) as caught:
        search_query.parse(query)
    assert said in caught.value.reason


def test_a_query_nested_too_deep_is_refused_not_a_crash() -> None:
    """The tree is walked recursively, as the parser walked the query: RecursionError was a
    traceback (in `articles search` too, which tries --stem when nothing is found)."""
    assert shape(search_query.parse("(" * 90 + "slap~ OR kick~" + ")" * 90)) == "OR(slap~ kick~)"
    for query in [
        "slap~ OR (" * 150 + "kick~" + ")" * 150,
        " NOT ".join(["slap~"] * 150),
        "(" * 2000 + "slap~" + ")" * 2000,
    ]:
        with pytest.raises(SearchQueryError, match="nests more than 30 levels deep"):
            search_query.parse(query)


def test_what_fts5_cannot_run_is_refused_not_a_traceback(newsroom: Store) -> None:
    """FTS5 refuses ^ in NEAR( ), and its parser overflows at 32 levels of parentheses: the
    stemmed query made of them was an OperationalError, which `articles search` printed as a
    traceback."""
    deepest = "kick~ OR (" * 29 + "-{summary content}: NEAR(officer~ slap~, 3)" + ")" * 29  # 30
    assert titles(newsroom, deepest) == ["Officer slapped a handcuffed migrant"]
    for query, said in [
        ("NEAR(^officer~ slap~)", "NEAR( ) takes no ^ (a column's first word): FTS5 refuses it"),
        ("kick~ OR (" * 30 + "slap~" + ")" * 30, "the query nests more than 30 levels deep"),
        (" NOT ".join(["slap~"] * 31), "the query nests more than 30 levels deep"),
    ]:
        with pytest.raises(SearchQueryError) as caught:
            newsroom.search_stemmed(query)
        assert said in caught.value.reason


def test_revisions_and_pruning_keep_the_stems_in_step(newsroom: Store) -> None:
    with newsroom.transaction():
        [revised] = newsroom.store_articles(
            [article("1", "Officer kicked a handcuffed migrant", fingerprint="revised")],
            NOW + timedelta(hours=1),
        )
    assert revised.revision == 2
    assert titles(newsroom, "slap~") == ["Slapping incident: an inquiry opens"]
    assert titles(newsroom, "kick~") == ["Officer kicked a handcuffed migrant"]

    assert newsroom.prune(NOW + timedelta(days=1), NOW + timedelta(days=1)) == 5
    assert titles(newsroom, "kick~ OR slap~ OR interpeller~ OR expulsion~") == []
    db = newsroom.db
    db.execute("INSERT INTO articles_stems(articles_stems) VALUES ('integrity-check')")
    assert db.execute("SELECT count(*) FROM articles_stems").fetchone()[0] == 0


def old_database(path: Path, articles: int) -> None:
    """A database of the schema before stemmed search, holding `articles` articles."""
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m022_stemmed_search")
    feed_id = db["feeds"].insert({"url": "https://old.example/rss", "name": "Old"}).last_pk
    db["articles"].insert_all(
        {
            "id": n,
            "feed_id": feed_id,
            "guid": f"old-{n}",
            "url": f"https://old.example/{n}",
            "title": f"Report {n}: police slapped a protester"
            if n % 2
            else f"Rapport {n} : des exilés interpellés",
            "summary": "",
            "content": "",
            "language": "en" if n % 2 else "fr",
            "published": (NOW - timedelta(days=1)).isoformat(),
            "first_seen": (NOW - timedelta(days=1)).isoformat(),
        }
        for n in range(1, articles + 1)
    )
    db.close()


def upgraded(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        return bool(
            conn.execute(
                "SELECT 1 FROM _sqlite_migrations WHERE name = 'm022_stemmed_search'"
            ).fetchone()
        )


def stems_indexed(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [rowid for (rowid,) in conn.execute("SELECT rowid FROM articles_stems")]


def test_the_upgrade_indexes_the_articles_stored_before(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_database(path, 1201)
    store = Store(path)
    try:
        assert upgraded(path)
        found = store.search_stemmed("slap~")
        assert found is not None and found[1] == 601
        found = store.search_stemmed("interpeller~")
        assert found is not None and found[1] == 600
    finally:
        store.close()
    assert sorted(stems_indexed(path)) == list(range(1, 1202))


def applying(path: Path, stop_after: int | None = None) -> int:
    """Apply the pending migrations, SQLite interrupting the statement that runs when its
    progress handler has been called `stop_after` times (as Ctrl+C or a kill stops one), and
    return how many times it was called."""
    db = sqlite_utils.Database(path)
    calls = 0

    def progress() -> int:
        nonlocal calls
        calls += 1
        return int(calls == stop_after)

    db.conn.set_progress_handler(progress, 100)
    try:
        migrations.apply(db)
    finally:
        db.close()
    return calls


def test_an_upgrade_interrupted_goes_on_from_where_it_stopped(tmp_path: Path) -> None:
    """Indexing a large archive takes minutes: stopped halfway, the upgrade keeps what it had
    done, and the next opening of the database indexes the rest, each article once."""
    path = tmp_path / "old.db"
    old_database(path, 1300)
    rehearsal = tmp_path / "rehearsal.db"
    shutil.copy(path, rehearsal)
    halfway = applying(rehearsal) // 2

    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        applying(path, stop_after=halfway)
    assert not upgraded(path)
    done = stems_indexed(path)
    assert 0 < len(done) < 1300

    store = Store(path)
    try:
        assert upgraded(path)
        found = store.search_stemmed("slap~", limit=1300)
        assert found is not None and found[1] == 650
    finally:
        store.close()
    assert sorted(stems_indexed(path)) == list(range(1, 1301))
