"""Rule files: every error located at file:line:column; the service keeps its last good rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.records import Article
from monitor.rules.files import RuleBook, load_rules

GOOD = """
[[entity]]
id = "calais"
aliases = ["Calais"]

[[rule]]
id = "police"
tags = ["police-violence"]
query = "police NEAR/5 slap~"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_files_load(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", GOOD)
    loaded = load_rules([tmp_path])
    assert loaded.ok and [r.id for r in loaded.rules] == ["police"]
    assert list(loaded.entities) == ["calais"]


def test_query_error_points_into_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", '[[rule]]\nid = "x"\nquery = "police AND (slap OR"\n')
    (error,) = load_rules([tmp_path]).errors
    assert (error.path, error.line, error.column) == (str(path), 3, 29)
    assert "ends too early" in error.message
    assert error.pointer().splitlines()[1].index("^") == 28


def test_multiline_query_error_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.toml", "[[rule]]\nid = \"x\"\nquery = '''\npolice\nAND @nowhere\n'''\n")
    (error,) = load_rules([tmp_path]).errors
    assert (error.line, error.column) == (5, 5)
    assert "unknown entity @nowhere" in error.message


def test_toml_syntax_error_has_position(tmp_path: Path) -> None:
    write(tmp_path, "bad.toml", '[[rule]]\nid = "x"\nquery = "unterminated\n')
    (error,) = load_rules([tmp_path]).errors
    assert error.line == 3 and "not valid TOML" in error.message


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("query = 'l'immigration AND police'", "a value holding an apostrophe goes in double"),
        ("query = police AND gaz", 'text goes in double quotes, as in query = "police AND gaz"'),
        ("query = « police »", "text goes in double quotes"),
        ("enabled = ture", "a yes-or-no setting is true or false, in lower case"),
    ],
)
def test_common_toml_mistakes_say_what_was_meant(tmp_path: Path, line: str, hint: str) -> None:
    """French queries hold apostrophes, which end a 'literal string': tomllib says only
    "Expected newline or end of document after a statement"."""
    write(tmp_path, "bad.toml", f'[[rule]]\nid = "x"\n{line}\n')
    (error,) = load_rules([tmp_path]).errors
    assert error.line == 3 and error.message.startswith("not valid TOML: ")
    assert hint in error.message


def test_a_multiline_query_left_open_is_located_where_it_opens(tmp_path: Path) -> None:
    """tomllib says only "at end of document": the operator needs the line the string opened."""
    text = '[[rule]]\nid = "a"\nquery = """police\n  AND calais\n\n[[rule]]\nid = "b"\n'
    write(tmp_path, "bad.toml", text)
    (error,) = load_rules([tmp_path]).errors
    assert (error.line, error.column) == (3, 9) and "Unterminated string" in error.message


def test_an_id_ending_in_a_line_break_is_refused(tmp_path: Path) -> None:
    """A regex ending in "$" took "police\\n" for an id, which split every line naming it."""
    write(tmp_path, "a.toml", '[[rule]]\nid = "police\\n"\nquery = "police"\n')
    [error] = load_rules([tmp_path]).errors
    assert "expected an id of letters" in error.message and error.line == 2


def test_wrong_types_unknown_keys_and_duplicates_are_named(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", GOOD)
    write(
        tmp_path,
        "b.toml",
        '[[rule]]\nid = "police"\nquery = "x"\n\n'
        '[[rule]]\nid = "y"\nquery = "x"\npriority = "high"\n\n'
        '[[rule]]\nid = "z"\nquery = "x"\ntags = "one"\nsevere = true\n',
    )
    messages = [f"{e.line}: {e.message}" for e in load_rules([tmp_path]).errors]
    assert any(m.startswith("2: rule id 'police' is already defined at") for m in messages)
    assert "8: rule 'y'.priority: expected one of normal, urgent, got 'high'" in messages
    assert "13: rule 'z'.tags: expected a list of strings, got 'one'" in messages
    assert any(m.startswith("14: rule 'z': unknown key 'severe'") for m in messages)


def test_rules_that_match_almost_everything_are_warned(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.toml",
        '[[rule]]\nid = "neg"\nquery = "NOT football"\n\n'
        '[[rule]]\nid = "common"\nquery = "the OR a"\n\n'
        '[[rule]]\nid = "one-side"\nquery = "police OR the"\n\n'
        '[[rule]]\nid = "anchored"\nquery = "police AND (the OR a)"\n',
    )
    warnings = [w.message for w in load_rules([tmp_path]).warnings]
    assert len(warnings) == 3 and "almost every article" in warnings[0]
    assert "rule 'one-side' can match on very common words alone (the)" in warnings[2]


@pytest.mark.parametrize(
    ("query", "warned"),
    [
        ("US AND troops", "US"),
        ("U.S. AND troops", "U.S."),
        ("ICE NEAR/5 raid", "ICE"),
        ("EU AND vote", "EU"),
        ("=US AND troops", None),
        ('"US" AND troops', None),
        ("us AND troops", None),
        ("NATO AND troops", None),
        ("F.B.I. AND raid", None),
        ("USA~ AND troops", None),
    ],
)
def test_an_acronym_that_is_an_everyday_word_is_warned_of(
    tmp_path: Path, query: str, warned: str | None
) -> None:
    write(tmp_path, "a.toml", f"[[rule]]\nid = \"r\"\nquery = '{query}'\n")
    loaded = load_rules([tmp_path])
    assert loaded.ok
    said = [w.message for w in loaded.warnings if "an everyday" in w.message]
    if warned is None:
        assert said == []
    else:
        [message] = said
        assert message.startswith(f"rule 'r': {warned} is searched in any case, so it finds")
        assert f"write ={warned} to find it in capitals only" in message


@pytest.mark.parametrize(
    ("query", "broad"),
    [
        ("=UN", False),
        ("=UN OR =ONU", False),
        ("(=UN NEAR/3 =ONU) OR NATO", False),
        ("=UN OR un", True),
        ("=UN OR (un AND onu)", False),
        ('="Le Monde"', False),
        ("un", True),
    ],
)
def test_a_word_asked_for_as_written_is_not_taken_for_its_everyday_word(
    tmp_path: Path, query: str, broad: bool
) -> None:
    """`rules check` says to write =UN for the United Nations; then it said the rule "can
    match on very common words alone (un)", the key it is filed under, though it matches
    only UN in capitals."""
    write(tmp_path, "a.toml", f"[[rule]]\nid = \"r\"\nquery = '{query}'\n")
    warnings = [w.message for w in load_rules([tmp_path]).warnings]
    assert any("very common words alone" in w for w in warnings) is broad, warnings


def test_rulebook_keeps_last_good_rules_after_a_bad_edit(tmp_path: Path) -> None:
    path = write(tmp_path, "a.toml", GOOD)
    book = RuleBook([tmp_path])
    assert book.reload_if_changed() is True
    slap = Article(feed_id=1, guid="g", url="", title="", content="police slapped a man")
    assert [m.rule_id for m in book.index.match(slap)[0]] == ["police"]

    path.write_text(GOOD.replace("slap~", "(slap"), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a new mtime even on coarse clocks
    assert book.reload_if_changed() is False  # seen changed: read once it stays as it is
    assert book.reload_if_changed() is False
    assert book.last_errors and book.last_errors[0].line == 9
    assert [m.rule_id for m in book.index.match(slap)[0]] == ["police"]  # still in force

    path.write_text(GOOD.replace("slap~", "kick~"), encoding="utf-8")
    assert book.reload_if_changed() is False
    assert book.reload_if_changed() is True
    kick = Article(feed_id=1, guid="g", url="", title="", content="police kicked a man")
    assert [m.rule_id for m in book.index.match(kick)[0]] == ["police"]
    assert book.index.match(slap)[0] == []


def test_a_rules_path_that_is_not_there_is_an_error(tmp_path: Path) -> None:
    """A typo in rules.paths must not run the service with no rules and no word said."""
    write(tmp_path, "a.toml", GOOD)
    loaded = load_rules([tmp_path / "rule", tmp_path / "a.toml"])
    assert not loaded.ok
    assert [str(e) for e in loaded.errors] == [
        f"{tmp_path / 'rule'}: no such file or folder (rules.paths)"
    ]


def test_rulebook_keeps_its_rules_while_their_folder_is_away(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    write(folder, "a.toml", GOOD)
    book = RuleBook([folder])
    assert book.reload_if_changed() is True
    slap = Article(feed_id=1, guid="g", url="", title="", content="police slapped a man")

    folder.rename(tmp_path / "rules.moved")  # a checkout or a move in progress
    assert book.reload_if_changed() is False
    assert book.reload_if_changed() is False
    assert "no such file or folder" in str(book.last_errors[0])
    assert [m.rule_id for m in book.index.match(slap)[0]] == ["police"]

    (tmp_path / "rules.moved").rename(folder)
    assert book.reload_if_changed() is False
    assert book.reload_if_changed() is True
    assert not book.last_errors


def test_a_rule_file_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Windows Notepad saves UTF-8 with a byte order mark, which TOML parsers refuse."""
    (tmp_path / "a.toml").write_text(GOOD, encoding="utf-8-sig")
    loaded = load_rules([tmp_path])
    assert loaded.ok, loaded.errors
    assert [c.rule.id for c in loaded.compiled] == ["police"]


def test_an_editors_lock_file_beside_a_rule_file_is_not_read(tmp_path: Path) -> None:
    """Emacs keeps `.#name.toml` (a link to nowhere) beside a file being edited."""
    write(tmp_path, "a.toml", GOOD)
    (tmp_path / ".#a.toml").symlink_to("editor@host.4242:1764700000")
    write(tmp_path, ".a.toml", "not = [valid")
    loaded = load_rules([tmp_path])
    assert loaded.ok, loaded.errors
    assert [c.rule.id for c in loaded.compiled] == ["police"]


def test_rulebook_never_loads_a_file_caught_half_saved(tmp_path: Path) -> None:
    """An editor that saves in place empties the file, then writes it. A check in between must
    not put "no rules" in force, nor keep them as the last good rules if the edit is broken."""
    path = write(tmp_path, "a.toml", GOOD)
    book = RuleBook([tmp_path])
    assert book.reload_if_changed() is True
    slap = Article(feed_id=1, guid="g", url="", title="", content="police slapped a man")

    path.write_text("", encoding="utf-8")  # the editor has emptied the file...
    os.utime(path, ns=(1, 1))
    assert book.reload_if_changed() is False
    assert [m.rule_id for m in book.index.match(slap)[0]] == ["police"]

    path.write_text(GOOD.replace("slap~", "(slap"), encoding="utf-8")  # ...and saved a typo
    os.utime(path, ns=(2, 2))
    assert book.reload_if_changed() is False
    assert book.reload_if_changed() is False
    assert book.last_errors and book.last_errors[0].line == 9
    assert [m.rule_id for m in book.index.match(slap)[0]] == ["police"]


def test_rule_languages_are_codes_as_articles_carry_them(tmp_path: Path) -> None:
    """A region (fr-FR) or capitals (FR) name the language articles are compared on ("fr");
    a word (english) never matches any article, so it is an error at its line."""
    write(tmp_path, "a.toml", '[[rule]]\nid = "fr"\nquery = "x"\nlanguages = ["fr-FR", "FR"]\n')
    loaded = load_rules([tmp_path])
    assert [c.rule.languages for c in loaded.compiled] == [("fr",)]
    french = Article(feed_id=1, guid="g", url="", title="", content="x", language="fr")
    assert [m.rule_id for m in loaded.index().match(french)[0]] == ["fr"]

    write(tmp_path, "a.toml", '[[rule]]\nid = "en"\nquery = "police"\nlanguages = ["english"]\n')
    errors = [str(e) for e in load_rules([tmp_path]).errors]
    assert errors == [
        f"{tmp_path / 'a.toml'}:4:1: rule 'en'.languages: expected language codes such as"
        ' "en" or "fr", got \'english\''
    ]

    write(tmp_path, "a.toml", '[[rule]]\nid = "q"\nquery = "police AND lang:english"\n')
    errors = [str(e) for e in load_rules([tmp_path]).errors]
    assert errors == [
        f"{tmp_path / 'a.toml'}:3:26: rule 'q': lang: takes a language code such as fr or en,"
        " not 'english'"
    ]


def test_an_entity_alias_that_cannot_be_searched_is_an_error_at_its_line(tmp_path: Path) -> None:
    """Found only when compiled, such an alias stopped `vigie run` with a traceback while
    `rules check` said the files were fine."""
    path = write(
        tmp_path,
        "cities.toml",
        '[[entity]]\nid = "cities"\naliases = ["Lille", "Ay*"]\n\n'
        '[[entity]]\nid = "jungle"\naliases = ["Jungle"]\ncontext = { Jungle = ["!!!"] }\n\n'
        '[[entity]]\nid = "far"\naliases = ["Dunkirk"]\ncontext = { Dunkirk = ["camp"] }\n'
        "window = 0\n\n"
        '[[rule]]\nid = "north"\nquery = "@cities OR @jungle OR @far OR storm"\n',
    )
    loaded = load_rules([tmp_path])
    found = {(e.line, e.column): e.message for e in loaded.errors if e.path == str(path)}
    assert found[(3, 21)] == (
        "entity 'cities'.aliases: a wildcard needs at least 3 letters before *, got 'Ay*'"
    )
    assert found[(8, 23)] == "entity 'jungle'.context: '!!!' has no letters or digits to search for"
    assert found[(14, 1)] == "entity 'far'.window: expected at least 1 word, got 0"
    assert not loaded.entities  # none is left in force to fail when compiled


def test_an_alias_with_a_star_not_ending_a_word_is_an_error_as_in_a_query(
    tmp_path: Path,
) -> None:
    """ "*Acme" passed `rules check` and matched as "Acme", while `*acme` in a query is an
    error: a * may only end a word, in an alias or a context word as in a query."""
    write(
        tmp_path,
        "firms.toml",
        '[[entity]]\nid = "acme"\naliases = ["Acme", "*Acme"]\n\n'
        '[[entity]]\nid = "rivers"\naliases = ["Aa*Basin"]\n\n'
        '[[entity]]\nid = "jungle"\naliases = ["Jungle"]\ncontext = { Jungle = ["*camp"] }\n\n'
        '[[rule]]\nid = "firms"\nquery = "@acme OR @rivers OR @jungle OR storm"\n',
    )
    loaded = load_rules([tmp_path])
    found = {(e.line, e.column): e.message for e in loaded.errors if e.line < 14}
    assert found == {
        (3, 20): "entity 'acme'.aliases: a wildcard * may only end a word, as in migra*, "
        "got '*Acme'",
        (7, 12): "entity 'rivers'.aliases: a wildcard * may only end a word, as in migra*, "
        "got 'Aa*Basin'",
        (12, 23): "entity 'jungle'.context: a wildcard * may only end a word, as in migra*, "
        "got '*camp'",
    }
    assert not loaded.entities
    # As written in a query, for comparison.
    write(tmp_path, "firms.toml", '[[rule]]\nid = "firms"\nquery = "*acme"\n')
    [error] = load_rules([tmp_path]).errors
    assert error.message == "rule 'firms': a wildcard * may only end a word, as in migra*"


def test_every_mistake_of_a_rule_is_reported_at_once(tmp_path: Path) -> None:
    """Fixing one mistake to be shown the next, one reload after another, wastes an operator's
    time: all of a rule's mistakes are reported together."""
    write(
        tmp_path,
        "a.toml",
        '[[rule]]\nid = "x"\nquery = "police"\ntags = ["x", 3]\npriority = "URGENT"\n'
        'languages = ["french"]\n',
    )
    messages = [f"{e.line}: {e.message}" for e in load_rules([tmp_path]).errors]
    assert messages == [
        "4: rule 'x'.tags: expected a list of strings, got ['x', 3]",
        "5: rule 'x'.priority: expected one of normal, urgent, got 'URGENT'",
        "6: rule 'x'.languages: expected language codes such as \"en\" or \"fr\", got 'french'",
    ]


TWO_RULES = """
[[rule]]
id = "police"
tags = ["police-violence"]
query = "police NEAR/5 slap~"

[[rule]]
id = "calais"
tags = ["calais"]
query = "@calais AND (border OR police)"
"""


def settle(book: RuleBook, path: Path, text: str, stamp: int) -> bool:
    """Write `text` and let the book see it twice, as a running service's checks would."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(stamp, stamp))  # a new mtime even on coarse clocks
    book.reload_if_changed()
    return book.reload_if_changed()


def matched(book: RuleBook, text: str) -> dict[str, tuple[str, ...]]:
    article = Article(feed_id=1, guid="g", url="", title="", content=text)
    assert book.index is not None
    return {m.rule_id: m.tags for m in book.index.match(article)[0]}


def test_a_reload_compiles_only_the_rules_that_changed(tmp_path: Path, caplog) -> None:
    """With 100,000 rules a full compile takes most of a minute: an edit to one rule must not
    recompile the others, and what did change about them (tags, lines) must still count."""
    entities = write(tmp_path, "entities.toml", GOOD.split("[[rule]]")[0])
    rules = write(tmp_path, "rules.toml", TWO_RULES)
    book = RuleBook([tmp_path])
    assert book.reload_if_changed() is True
    calais_node = next(c.node for c in book.index.rules if c.rule.id == "calais")

    edited = "# moved down a line\n" + TWO_RULES.replace("slap~", "kick~").replace(
        'tags = ["calais"]', 'tags = ["calais", "uk"]'
    )
    with caplog.at_level("INFO", logger="monitor.rules.files"):
        assert settle(book, rules, edited, 10**9) is True
    assert "rules loaded: 2 rules (1 unchanged), 1 entity from 2 files" in caplog.text
    kept = next(c for c in book.index.rules if c.rule.id == "calais")
    assert kept.node is calais_node  # not compiled again
    assert kept.rule.line == 9 and kept.rule.tags == ("calais", "uk")
    assert matched(book, "Police kicked a man in Calais") == {
        "police": ("police-violence",),
        "calais": ("calais", "uk"),
    }
    assert matched(book, "Police slapped a man") == {}

    moved = "\n" + entities.read_text(encoding="utf-8")  # moving an entity is no change to it
    assert settle(book, entities, moved, 2 * 10**9) is True
    assert next(c.node for c in book.index.rules if c.rule.id == "calais") is calais_node

    # An entity's new alias reaches the rules that name it, though their text did not change.
    text = moved.replace('["Calais"]', '["Calais", "Coquelles"]')
    assert settle(book, entities, text, 3 * 10**9) is True
    assert matched(book, "Police at Coquelles") == {"calais": ("calais", "uk")}


def test_the_reload_line_writes_thousands_apart(tmp_path: Path, caplog) -> None:
    """ "rules loaded: 100,000 rules (99999 unchanged)": the two counts read as different
    numbers of digits at a glance."""
    many = "".join(f'[[rule]]\nid = "r{i}"\nquery = "word{i}"\n\n' for i in range(1_001))
    rules = write(tmp_path, "rules.toml", many)
    book = RuleBook([tmp_path])
    book.reload_if_changed()

    with caplog.at_level("INFO", logger="monitor.rules.files"):
        assert settle(book, rules, many.replace('"word0"', '"other"'), 10**9) is True

    assert "rules loaded: 1,001 rules (1,000 unchanged), 0 entities from 1 file" in caplog.text


def test_loading_for_some_rules_compiles_those_alone(tmp_path: Path) -> None:
    """`rules test RULE` compiled all 100,000 rules of the files (30 s) to try one: the others
    are read, their ids and tags listed, but their queries left as written."""
    write(tmp_path, "entities.toml", GOOD.split("[[rule]]")[0])
    write(tmp_path, "rules.toml", TWO_RULES + '\n[[rule]]\nid = "draft"\nquery = "zzz AND ("\n')

    loaded = load_rules([tmp_path], only={"calais"})

    assert [c.rule.id for c in loaded.compiled] == ["calais"]
    assert [r.id for r in loaded.rules] == ["police", "calais", "draft"]
    assert loaded.ok  # the draft's query was not compiled, so not found wrong
    assert not load_rules([tmp_path], only=set()).compiled
    assert "draft" in load_rules([tmp_path], only={"draft"}).errors[0].message


def test_rules_are_filed_again_once_the_stored_articles_have_doubled(tmp_path: Path) -> None:
    """Rules are filed under their rarest words by the stored articles' word frequencies; kept
    through every reload, they would stay filed by the few articles a new database had."""
    from monitor.rules.stats import TermStats

    stored = [TermStats({"police": 150, "kick": 3}, 300)]
    write(tmp_path, "entities.toml", GOOD.split("[[rule]]")[0])
    rules = write(tmp_path, "rules.toml", TWO_RULES)
    book = RuleBook([tmp_path], lambda: stored[0])
    book.reload_if_changed()
    first = next(c.node for c in book.index.rules if c.rule.id == "calais")

    stored[0] = TermStats({"police": 300, "kick": 6}, 600)
    settle(book, rules, TWO_RULES.replace("slap~", "kick~"), 10**9)
    assert next(c.node for c in book.index.rules if c.rule.id == "calais") is first

    stored[0] = TermStats({"police": 301, "kick": 6}, 601)
    settle(book, rules, TWO_RULES, 2 * 10**9)
    assert next(c.node for c in book.index.rules if c.rule.id == "calais") is not first
    assert matched(book, "Police slapped a man in Calais").keys() == {"police", "calais"}


def test_a_reload_reads_only_the_files_that_changed(tmp_path: Path) -> None:
    """Reading and checking TOML costs as much as compiling with many rules: a file whose time
    and size are as they were is not read again, and one edited to the same size is."""
    police = write(tmp_path, "a.toml", GOOD)
    border = write(tmp_path, "b.toml", '[[rule]]\nid = "border"\nquery = "@calais AND border"\n')
    book = RuleBook([tmp_path])
    assert book.reload_if_changed() is True
    read = next(c.rule for c in book.index.rules if c.rule.id == "police")

    assert settle(book, border, border.read_text().replace("AND border", "AND frontier"), 10**9)
    assert next(c.rule for c in book.index.rules if c.rule.id == "police") is read
    assert matched(book, "Police at the Calais frontier").keys() == {"border"}

    assert len("kick~") == len("slap~")
    assert settle(book, police, GOOD.replace("slap~", "kick~"), 2 * 10**9)
    assert matched(book, "Police kicked a man").keys() == {"police"}


def test_a_rule_naming_an_entity_with_errors_is_told_why_it_is_missing(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.toml",
        '[[entity]]\nid = "calais"\naliases = ["Calais"]\ncontext = { Jungel = ["camp"] }\n\n'
        '[[rule]]\nid = "r"\nquery = "@calais AND police"\n',
    )
    messages = [f"{e.line}: {e.message}" for e in load_rules([tmp_path]).errors]
    assert messages[0].startswith("4: entity 'calais'.context: 'Jungel' is not one of the aliases")
    assert messages[1] == (
        f"8: rule 'r': entity @calais is not loaded: its definition at {tmp_path / 'a.toml'}:1"
        " has errors"
    )


def test_a_context_error_points_at_the_alias_under_its_header(tmp_path: Path) -> None:
    """Written as the docs show it, [entity.context] on its own lines: the error pointed at
    the [[entity]] line, with no word of which alias was wrong."""
    write(
        tmp_path,
        "a.toml",
        '[[entity]]\nid = "calais"\naliases = ["Calais", "Jungle"]\n\n'
        '[entity.context]\n"Jungle" = ["camp"]\nJungel = ["camp"]\n\n'
        '[[entity]]\nid = "camp"\naliases = ["camp"]\n\n[entity.context]\ncamp = "tents"\n',
    )
    errors = load_rules([tmp_path]).errors
    assert [(e.line, e.source_line) for e in errors] == [
        (7, 'Jungel = ["camp"]'),
        (14, 'camp = "tents"'),
    ]
    assert errors[0].message.startswith(
        "entity 'calais'.context: 'Jungel' is not one of the aliases ('Calais', 'Jungle');"
    )
    assert "entity 'camp'.context: 'camp' needs a list of words" in errors[1].message


def test_a_context_key_names_its_alias_without_case_or_accents(tmp_path: Path) -> None:
    """Aliases are compared without case or accents, and so are the keys naming them: "jungle"
    for "Jungle" and "exile*" for "exilé*" were errors, one reported at a time."""
    write(
        tmp_path,
        "a.toml",
        '[[entity]]\nid = "calais"\naliases = ["Calais", "Jungle", "exilé*"]\n'
        'case_aliases = ["PAF"]\n\n'
        '[entity.context]\njungle = ["camp"]\n"exile*" = ["Calais"]\n',
    )
    loaded = load_rules([tmp_path])
    assert loaded.errors == []
    assert loaded.entities["calais"].context == {"Jungle": ("camp",), "exilé*": ("Calais",)}
    write(
        tmp_path,
        "a.toml",
        '[[entity]]\nid = "calais"\naliases = ["Calais"]\ncase_aliases = ["PAF"]\n\n'
        '[entity.context]\npaf = ["port"]\nJungel = ["camp"]\n',
    )
    errors = load_rules([tmp_path]).errors
    assert [(e.line, e.message.split(";")[0]) for e in errors] == [
        (7, "entity 'calais'.context: 'paf' is not one of the aliases ('Calais', 'PAF')"),
        (8, "entity 'calais'.context: 'Jungel' is not one of the aliases ('Calais', 'PAF')"),
    ]


def test_the_caret_counts_escapes_as_they_are_written(tmp_path: Path) -> None:
    """Each \\" in a basic string is two characters in the file and one in the query: the
    caret fell one to the left per escape before the error."""
    line = 'query = "\\"pepper spray\\" AND \\"tear gas\\" AND police)"'
    write(tmp_path, "bad.toml", f'[[rule]]\nid = "x"\n{line}\n')
    (error,) = load_rules([tmp_path]).errors
    assert (error.line, error.column) == (3, line.index(")") + 1)
    assert "unexpected ')'" in error.message


def test_a_case_alias_also_in_aliases_is_warned_of(tmp_path: Path) -> None:
    """CRS in case_aliases, to match the riot police and not "crs", did nothing while "CRS"
    was in aliases too: that one matched crs in any case."""
    write(
        tmp_path,
        "e.toml",
        '[[entity]]\nid = "police"\naliases = ["police", "crs"]\ncase_aliases = ["CRS", "PAF"]\n',
    )
    [warning] = load_rules([tmp_path]).warnings
    assert warning.message == (
        "entity 'police': 'CRS' is in case_aliases and, in any case, in aliases, which match"
        " 'crs' too: leave it in case_aliases alone to match only 'CRS'"
    )


def test_a_case_alias_in_lower_case_is_warned_of(tmp_path: Path) -> None:
    """case_aliases = ["crs"] was accepted silently: it matched "crs" alone, not the CRS the
    operator meant (a French rule author's review). Digits and capitals are fine."""
    write(
        tmp_path,
        "e.toml",
        '[[entity]]\nid = "police"\naliases = ["police"]\ncase_aliases = ["crs", "G7", "PAF"]\n',
    )
    [warning] = load_rules([tmp_path]).warnings
    assert warning.message == (
        "entity 'police': case alias 'crs' has no capital, so it matches only when written in"
        " lower case: write it as the name is written ('CRS'), or put it in aliases to match it"
        " in any case"
    )


def test_aliases_that_look_like_queries_or_wildcards_are_warned_of(tmp_path: Path) -> None:
    """Accepted silently, "Calais OR Dunkerque" was one phrase that never occurs, and CRS*
    matched CRS alone. Warnings: the files still load."""
    write(
        tmp_path,
        "e.toml",
        '[[entity]]\nid = "places"\naliases = ["Calais OR Dunkerque", "Grande-Synthe", "exilé~"]\n'
        'case_aliases = ["CRS*"]\n',
    )
    loaded = load_rules([tmp_path])
    assert loaded.ok and list(loaded.entities) == ["places"]
    assert [(w.line, w.message) for w in loaded.warnings] == [
        (
            2,
            "entity 'places': alias 'Calais OR Dunkerque' is searched as one phrase, OR "
            "included: an alias is not a query; list each name as an alias of its own",
        ),
        (
            2,
            "entity 'places': case alias 'CRS*' is matched exactly as written, and * is no "
            "wildcard there (a prefix goes in aliases, in any case)",
        ),
        (
            2,  # "exilé~" matched exilé alone
            "entity 'places': alias 'exilé~' is matched as written, without its ~: aliases "
            "take no other forms; list them (exilé, exilés, exilée) or end the word with *",
        ),
    ]


def test_the_caret_counts_escapes_and_line_continuations_in_multi_line_strings(
    tmp_path: Path,
) -> None:
    """In a \"\"\" string, \\u00e9 is six characters written and one read, and a backslash
    ending a line joins it to the next: the caret fell 12 columns left, or on the wrong line."""
    escaped = 'police AND \\"gaz\\" AND \\u00e9vacu\\u00e9 AND tilte:x'
    write(tmp_path, "a.toml", f'[[rule]]\nid = "a"\nquery = """\n{escaped}\n"""\n')
    (error,) = load_rules([tmp_path]).errors
    assert (error.line, error.column) == (4, escaped.index(":") + 1)
    assert "'tilte' is not a field" in error.message
    joined = 'query = """police AND \\\n    gaz AND \\\n    tilte:x"""\n'
    write(tmp_path, "a.toml", f'[[rule]]\nid = "a"\n{joined}')
    (error,) = load_rules([tmp_path]).errors
    assert (error.line, error.column) == (5, len("    tilte") + 1)


def test_a_rule_file_saved_as_windows_1252_names_line_column_and_the_mend(tmp_path: Path) -> None:
    """A French name in an editor set to Windows-1252: the error said only "'utf-8' codec
    can't decode byte 0xe0 in position 31"."""
    path = tmp_path / "r.toml"
    path.write_bytes(
        '[[rule]]\nid = "r"\nname = "Expulsions à Calais"\nquery = "calais"\n'.encode("cp1252")
    )
    [error] = load_rules([tmp_path]).errors
    assert (error.path, error.line, error.column) == (str(path), 3, 20)
    assert error.message == (
        "cannot be read: not UTF-8 (byte 0xe0, 'à' in Windows-1252): save the file as UTF-8"
    )
    # Notepad's byte order mark first: the place and the byte were three bytes off.
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    [error] = load_rules([tmp_path]).errors
    assert (error.line, error.column) == (3, 20) and "byte 0xe0, 'à'" in error.message


def test_a_bad_not_inside_name_is_an_error_at_its_file_line_and_column(tmp_path: Path) -> None:
    """A longer name that is not a list of strings, holds no alias with more words around it
    (a typo, an alias itself), or holds a *, would leave out nothing or fail when compiled:
    `rules check` says which, where it is written."""
    path = write(
        tmp_path,
        "places.toml",
        '[[entity]]\nid = "calais"\naliases = ["Calais"]\nnot_inside = "Pas-de-Calais"\n\n'
        '[[entity]]\nid = "typo"\naliases = ["Calais"]\n'
        'not_inside = ["Pas-de-Calais", "Pas-de-Calias"]\n\n'
        '[[entity]]\nid = "itself"\naliases = ["Calais"]\nnot_inside = ["Calais"]\n\n'
        '[[entity]]\nid = "star"\naliases = ["Calais"]\nnot_inside = ["Pas-de-*"]\n\n'
        '[[entity]]\nid = "number"\naliases = ["Calais"]\nnot_inside = [62]\n\n'
        '[[entity]]\nid = "spelt"\naliases = ["Calais"]\nnot_in = ["Pas-de-Calais"]\n',
    )
    loaded = load_rules([tmp_path])
    found = [(e.path, e.line, e.column, e.message) for e in loaded.errors]
    assert found == [
        (
            str(path),
            4,
            1,
            "entity 'calais'.not_inside: expected a list of strings, got 'Pas-de-Calais'",
        ),
        (
            str(path),
            9,
            32,
            "entity 'typo'.not_inside: 'Pas-de-Calias' is not a longer name around one of its"
            " aliases or context words, so it leaves out nothing: write a name one of them"
            ' stands inside, as articles write it ("Pas-de-Calais" for "Calais")',
        ),
        (
            str(path),
            14,
            15,  # not the "Calais" of aliases, above it
            "entity 'itself'.not_inside: 'Calais' is not a longer name around one of its"
            " aliases or context words, so it leaves out nothing: write a name one of them"
            ' stands inside, as articles write it ("Pas-de-Calais" for "Calais")',
        ),
        (
            str(path),
            19,
            15,
            "entity 'star'.not_inside: 'Pas-de-*' is matched exactly as written: * is no"
            " wildcard there",
        ),
        (str(path), 24, 1, "entity 'number'.not_inside: expected a list of strings, got [62]"),
        (
            str(path),
            29,
            1,
            "entity 'spelt': unknown key 'not_in' (known: aliases, case_aliases, context, id,"
            " name, not_inside, type, window)",
        ),
    ]
    assert not loaded.entities
