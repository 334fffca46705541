"""`vigie rules check | test | backtest` as an operator uses them."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import load_rulebook, main
from monitor.config import load_config
from monitor.rules.index import compile_rule
from monitor.scheduler import database_lock
from monitor.store import Store

REPO = Path(__file__).resolve().parents[1]


def project(tmp_path: Path) -> Path:
    """A copy of the bundled configuration, rules and sample feeds in a temporary folder."""
    for name in ("rules", "samples"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    return tmp_path / "config.toml"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def rewrite_calais(folder: Path, query: str) -> None:
    """Give the pack's calais rule, in the project copied to `folder`, another query."""
    topics = folder / "rules" / "topics.toml"
    text = topics.read_text(encoding="utf-8")
    start = text.index('id = "calais"')
    end = text.index("[[rule]]", start)
    edited = text[start:end].split("query = '''")[0] + f"query = '{query}'\n\n"
    topics.write_text(text[:start] + edited + text[end:], encoding="utf-8")


def test_check_reports_the_bundled_pack_clean(tmp_path: Path) -> None:
    config = project(tmp_path)
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 0
    assert "0 errors" in result.output


def test_check_names_a_rules_path_that_is_not_there(tmp_path: Path) -> None:
    config = project(tmp_path)
    text = config.read_text(encoding="utf-8")
    assert 'paths = ["rules"]' in text
    config.write_text(text.replace('paths = ["rules"]', 'paths = ["rule"]'), encoding="utf-8")
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 1
    assert f"{tmp_path / 'rule'}: no such file or folder (rules.paths)" in result.output
    assert "no rule files (*.toml) found" not in result.output  # said once
    assert "1 error," in result.output


def test_check_of_a_folder_without_rule_files_counts_that_as_the_error(tmp_path: Path) -> None:
    """The summary and the exit code agree: "0 errors" and a failure said nothing useful."""
    config = project(tmp_path)
    (tmp_path / "empty").mkdir()
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('paths = ["rules"]', 'paths = ["empty"]'), encoding="utf-8")
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'empty'}: no rule files (*.toml) found (rules.paths)" in (
        result.output
    )
    assert "0 rule files: 0 rules, 0 entities, 1 error, 0 warnings" in result.output


def test_check_warns_of_a_subscriber_or_webhook_following_what_no_rule_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt tag in a subscriber's settings would deliver nothing, with no error."""
    config = project(tmp_path)
    text = config.read_text(encoding="utf-8")
    assert '"police-violence", "prosecutions"]' in text
    text = text.replace('"police-violence", "prosecutions"]', '"police-violnce", "prosecutions"]')
    text += (
        '\n[[webhooks]]\nname = "desk"\nurl = "https://hooks.example.org/v"\n'
        'secret_env = "DESK_SECRET"\nrules = ["urgent-police"]\n'
    )
    monkeypatch.setenv("DESK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    config.write_text(text, encoding="utf-8")
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 0  # warnings: the rules themselves are sound
    assert (
        "subscribers[0].tags: newsroom follows tag 'police-violnce', which no enabled rule has"
        in result.output
    )
    assert "webhooks[0].rules: desk follows rule 'urgent-police', which no enabled rule is" in (
        result.output
    )
    assert "2 warnings" in result.output


def test_check_warns_of_a_subscriber_waiting_for_urgent_rules_it_does_not_follow(
    tmp_path: Path,
) -> None:
    config = project(tmp_path)
    text = config.read_text(encoding="utf-8")
    following = 'tags = ["migrants", "calais", "police-violence", "prosecutions"]'
    assert following in text and 'min_priority = "normal"' in text
    text = text.replace(following, 'tags = ["calais"]').replace(
        'min_priority = "normal"', 'min_priority = "urgent"'
    )
    config.write_text(text, encoding="utf-8")
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 0
    assert (
        "subscribers[0].min_priority: newsroom takes only urgent matches, and none of the rules"
        " it follows is urgent" in " ".join(result.output.split())
    )
    config.write_text(text.replace('["calais"]', '["calais", "migrants"]'), encoding="utf-8")
    assert "min_priority" not in invoke("rules", "check", "--config", str(config)).output


def test_check_warns_of_a_rule_scoped_to_a_feed_no_one_has(tmp_path: Path) -> None:
    """A misspelt feed name or feed tag in a rule's scope keeps it from ever matching."""
    config = project(tmp_path)
    (tmp_path / "rules" / "zz-scoped.toml").write_text(
        '[[rule]]\nid = "herald"\nquery = "storm"\nfeeds = ["The Coastal Herald"]\n\n'
        '[[rule]]\nid = "local"\nquery = "storm"\nfeed_tags = ["local"]\n\n'
        '[[rule]]\nid = "typos"\nquery = "storm"\nfeeds = ["Coastal Herald"]\n'
        'feed_tags = ["locals"]\n',
        encoding="utf-8",
    )
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 0
    output = " ".join(result.output.split())  # the terminal may wrap long lines
    path = tmp_path / "rules" / "zz-scoped.toml"
    assert f"{path}:12:1: rule 'typos'.feeds:" in output  # the rule's id line, as for others
    assert "rule 'typos'.feeds: no feed in config.toml or the database has 'Coastal Herald'" in (
        output
    )
    assert "rule 'typos'.feed_tags: no feed in config.toml or the database has 'locals'" in output
    assert "'herald'" not in output and "'local'." not in output
    assert "2 warnings" in output


def test_a_feed_scope_nearly_a_known_feed_says_which_it_may_mean(tmp_path: Path) -> None:
    """An unknown entity gets "did you mean @calais?"; `feeds = ["Nord actu"]` got only
    "no feed ... has 'Nord actu'", its case to be spotted by eye."""
    config = project(tmp_path)
    (tmp_path / "rules" / "zz-scoped.toml").write_text(
        '[[rule]]\nid = "typos"\nquery = "storm"\n'
        'feeds = ["Nord actu", "Wire Digets", "https://nord.example/feed.atom"]\n'
        'feed_tags = ["locals", "benelux", "LOCAL "]\n',
        encoding="utf-8",
    )
    result = invoke("rules", "check", "--config", str(config))
    output = " ".join(result.output.split())
    assert "has 'Nord actu' (did you mean 'Nord Actu'?)" in output
    assert "has 'Wire Digets' (did you mean 'Wire Digest'?)" in output
    assert "has 'locals' (did you mean 'local'?)" in output
    assert "has 'benelux' (did you mean" not in output and "has 'benelux'" in output
    # A stray space, and an address where a name goes (a re-test).
    assert "has 'LOCAL ' (did you mean 'local'?)" in output
    assert "(feeds takes a feed's name, not its address)" in output


def test_the_service_logs_a_subscriber_following_what_no_rule_has_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_path = project(tmp_path)
    text = config_path.read_text(encoding="utf-8").replace('"calais", ', '"calias", ')
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path)
    store = Store(config.database)
    with caplog.at_level(logging.WARNING):
        book = load_rulebook(config, store)
    store.close()
    assert book.index is not None and len(book.index) == 5  # the service starts all the same
    assert [r.getMessage() for r in caplog.records] == [
        "subscribers[0].tags: newsroom follows tag 'calias', which no enabled rule has"
    ]


def test_check_of_files_that_do_not_load_says_what_the_running_service_keeps(
    tmp_path: Path,
) -> None:
    """ "4 rules, 1 error" of the files was read as the running service having lost a rule: it
    keeps its last good 5 until the files load, as `vigie status` says."""
    config = project(tmp_path)
    assert invoke("once", "--config", str(config)).exit_code == 0  # records its rules in force
    rewrite_calais(tmp_path, "(calais OR OR channel)")
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 1
    assert "2 rule files: 4 rules, 5 entities, 1 error" in result.output
    assert "running service" not in result.output  # none runs: nothing is kept
    with database_lock(tmp_path / "data" / "vigie.db"):  # a service, of this process, runs
        result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 1
    assert re.search(
        r"\nThe running service keeps the 5 rules it loaded at \d{4}-\d\d-\d\d \d\d:\d\d UTC"
        r" until these files load\.\n",
        result.output,
    ), result.output


def test_check_shows_file_line_column_and_caret(tmp_path: Path) -> None:
    config = project(tmp_path)
    bad = tmp_path / "rules" / "zz-bad.toml"
    bad.write_text('[[rule]]\nid = "bad"\nquery = "police AND (slap OR"\n', encoding="utf-8")
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 1
    assert f"{bad}:3:29: rule 'bad': the query ends too early" in result.output
    lines = result.output.splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip() == "^")
    assert lines[caret - 1].startswith('query = "police AND (slap OR"')
    assert "Traceback" not in result.output


def test_check_warns_of_an_acronym_that_is_an_everyday_word_in_lower_case(
    tmp_path: Path,
) -> None:
    """An analyst's review: `UN` found French "un" and `US` "us", and nothing said so. The
    warning names the file, line and column, and what to write; NATO, which is no word, a
    quoted "UN" and =UN are left alone."""
    config = project(tmp_path)
    rules = tmp_path / "rules" / "zz-un.toml"
    rules.write_text(
        '[[rule]]\nid = "un"\nquery = """\nNATO OR =UN\nOR (UN NEAR/5 vote)"""\n\n'
        '[[entity]]\nid = "usa"\naliases = ["United States", "US"]\n\n'
        '[[rule]]\nid = "un-exact"\nquery = \'=UN OR ("UN" AND vote)\'\n',
        encoding="utf-8",
    )
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 0  # warnings: the rule loads
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {rules}:8:1: entity 'usa': alias 'US' is matched in any case, so 'us' too,"
        " an everyday English word: put it in case_aliases to match 'US' only",
        f"warning: {rules}:5:5: rule 'un': UN is searched in any case, so it finds \"un\" too,"
        ' an everyday French word: write =UN to find it in capitals only (quote it, "UN", to'
        " search it in any case without this warning)",
    ]


def test_test_shows_which_words_matched(tmp_path: Path) -> None:
    config = project(tmp_path)
    text = "Officer jailed\nA police officer slapped a migrant at Coquelles."
    result = invoke("rules", "test", "police-violence", "--text", text, "--config", str(config))
    assert result.exit_code == 0
    assert "MATCH" in result.output and "slapped" in result.output


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("utf-8", "items.jsonl"), ("utf-8-sig", "items.jsonl"), ("utf-8", "items.JSON")],
    ids=["plain", "byte-order-mark", "json-extension"],
)
def test_test_json_lines_file_gives_one_result_per_line(
    tmp_path: Path, encoding: str, name: str
) -> None:
    """A file named .json was read as plain text: its key names matched as words."""
    config = project(tmp_path)
    jsonl = tmp_path / name
    jsonl.write_text(
        json.dumps({"title": "Storks rest near Boulogne", "content": "Birds on the dunes"})
        + "\n"
        + json.dumps({"title": "Police use tear gas on migrants in Calais", "language": "en"})
        + "\n",
        encoding=encoding,
    )
    result = invoke("rules", "test", "--file", str(jsonl), "--json", "--config", str(config))
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["matched"] for r in rows] == [False, True]
    matched = {m["rule_id"] for m in rows[1]["matches"]}
    assert {"calais", "police-violence", "urgent-police-violence-migrants"} <= matched
    urgent = next(m for m in rows[1]["matches"] if m["priority"] == "urgent")
    assert {e["text"] for e in urgent["evidence"]} >= {"Police", "tear gas", "migrants"}


def test_query_option_tries_a_draft(tmp_path: Path) -> None:
    config = project(tmp_path)
    result = invoke(
        "rules",
        "test",
        "--query",
        "storks NEAR/3 coast",
        "--text",
        "White storks on the coast",
        "--config",
        str(config),
    )
    assert result.exit_code == 0 and "MATCH" in result.output
    result = invoke(
        "rules", "test", "--query", "storks AND", "--text", "x", "--config", str(config)
    )
    assert result.exit_code == 1 and "--query:1:11" in result.output


def test_query_option_says_why_a_draft_may_not_match(tmp_path: Path) -> None:
    """What `rules check` warns of in a file is said of a draft too, before its "no match"."""
    config = project(tmp_path)
    result = invoke(
        "rules", "test", "--query", "police near/5 slap", "--text", "police slap",
        "--config", str(config),
    )  # fmt: skip
    assert result.exit_code == 1 and "no match" in result.stdout  # as grep: nothing matched
    assert "warning: --query:1:8: near/5 is searched as a word here" in result.stderr
    assert "police near/5 slap\n       ^" in result.stderr


def test_a_rule_that_does_not_match_says_which_part_the_article_lacks(tmp_path: Path) -> None:
    """ "no match" and nothing more: a rule author split each query by hand to find the part
    that failed (a review). Each part the rule needs is found, missing, too far or excluding."""
    config = project(tmp_path)
    text = (
        "Police in Calais\n"
        "A football match. The officer was seen in the crowd, and much later a man said he was"
        " slapped at the port."
    )

    def why(query: str) -> list[str]:
        result = invoke("rules", "test", "--query", query, "--text", text, "--config", str(config))
        assert result.exit_code == 1 and result.output.startswith("no match")
        return [line.strip() for line in result.output.splitlines()[1:]]

    assert why("police NEAR/3 slap~") == [
        "too far      police NEAR/3 slap~: Police (title) and slapped (content), never in one"
        " field (a word is near only the words of its own: title, summary or content)"
    ]
    lines = why("(police OR officer*) AND @calais AND kick~")
    assert lines[0] == "needs all of:" and "missing      kick~" in lines
    assert "found        @calais: Calais (title)" in lines
    assert "excluded by  NOT football: football (content)" in why("calais NOT football")
    assert "missing      lang:fr: the article is in en" in why("lang:fr police")
    # An OR of ANDs: each group on its own.
    lines = why("(police AND kick) OR (officer AND kicked)")
    assert lines[:2] == ["needs one of:", "all of:"] and lines[4] == "all of:"
    assert set(lines[2:4]) == {"missing      kick", "found        police: Police (title)"}
    # An OR inside the AND, the shape of most rules (a French author's review): the
    # alternative that came near is taken apart, the others said in a line of their own.
    lines = why("(police NEAR/3 slap~ OR kick OR punch) AND NOT football")
    assert lines == [
        "needs all of:",
        "one of:",
        "too far      police NEAR/3 slap~: Police (title) and slapped (content), never in one"
        " field (a word is near only the words of its own: title, summary or content)",
        "missing      kick OR punch",
        "excluded by  NOT football: football (content)",
    ]
    assert why("police NOT NEAR/1 in")[0].endswith("has in within 1 word")
    # A NOT or a lang: holds with no words to show: the OR they are in is found, not missing.
    for held in ("(NOT golf OR tennis)", "(lang:en OR tennis)"):
        assert f"found        {held}" in why(f"kick AND {held}")
    many = " OR ".join(f"word{i}" for i in range(60))
    [missing] = [line for line in why(f"({many}) AND calais") if line.startswith("missing")]
    assert missing.startswith("missing      (word0 OR word1") and len(missing) < 120
    # A rule from the files, as JSON for scripts; a match has no why_not.
    asked = ("rules", "test", "prosecutions", "--text", text, "--json", "--config", str(config))
    [result] = map(json.loads, invoke(*asked).output.splitlines())
    assert result["matched"] is False and result["why_not"]
    matched = invoke("rules", "test", "calais", "--text", text, "--json", "--config", str(config))
    assert "why_not" not in json.loads(matched.output)


def test_too_far_says_how_close_the_sides_come_and_the_words_between(tmp_path: Path) -> None:
    """ "never within 2 words" left an author counting words to find the distance that would
    hold, and not seeing that the 's and the co- of "Just Stop Oil's co-founder" are words."""
    config = project(tmp_path)

    def why(query: str, text: str) -> str:
        asked = ("rules", "test", "--query", query, "--text", text, "--config", str(config))
        result = invoke(*asked)
        assert result.exit_code == 1 and result.output.startswith("no match")
        [line] = result.output.splitlines()[1:]
        return line.strip()

    jso = "Just Stop Oil's co-founder jailed"
    assert why('"Just Stop Oil" NEAR/2 founder', jso).endswith(
        "never within 2 words in one field: 3 words apart at the closest, in the title:"
        " “Just Stop Oil's co-founder”"
    )
    # The distance it says holds.
    asked = ("rules", "test", "--query", '"Just Stop Oil" NEAR/3 founder', "--text", jso)
    assert invoke(*asked, "--config", str(config)).exit_code == 0
    # ONEAR the wrong way round; a long stretch shortened to its two ends.
    assert why("jailed ONEAR/5 founder", jso).endswith(
        "in that order: only the other way round, 1 word apart, in the title: “founder jailed”"
    )
    far = "Police\nThe police were there. " + "Nothing happened then. " * 30 + "Then a slap."
    assert why("police NEAR/5 slap", far).endswith("in the content: “police … slap”")


def test_too_far_of_sides_that_share_their_words_does_not_say_another_field(
    tmp_path: Path,
) -> None:
    """`"Channel 4" NEAR/3 Channel` on "Channel 4 News" has both sides in the title, on the
    same word: it said "never in one field (a word is near only the words of its own: title,
    summary or content)", sending the author to look for a field that was not the problem."""
    config = project(tmp_path)
    for query in ('"Channel 4" NEAR/3 Channel', 'Channel ONEAR/3 "Channel 4"'):
        asked = ("rules", "test", "--query", query, "--text", "Channel 4 News said")
        result = invoke(*asked, "--config", str(config))
        assert result.exit_code == 1 and result.output.startswith("no match"), result.output
        [line] = result.output.splitlines()[1:]
        assert "never in one field" not in line, line
        assert line.endswith(
            "never within 3 words in one field: only on the same words (in the title:"
            " “Channel 4”), and words are not near themselves"
        ), line


def test_a_stem_written_cut_short_says_what_a_wildcard_finds(tmp_path: Path) -> None:
    """`expuls~` is stemmed again, to expul, the stem of no word: a French rule author read
    only "missing" with "expulsés" in the text, and could not tell why."""
    config = project(tmp_path)
    text = "Les exilés ont été expulsés, et l'expulsion a eu lieu à l'aube."

    def why(query: str) -> list[str]:
        asked = ("rules", "test", "--query", query, "-l", "fr", "--text", text)
        result = invoke(*asked, "--config", str(config))
        assert result.exit_code == 1 and result.output.startswith("no match")
        return [line.strip() for line in result.output.splitlines()[1:]]

    assert why("expuls~") == [
        "missing      expuls~: no word with its stem, expul; expulsés, expulsion begin with"
        " expuls (expuls* finds them)"
    ]
    # What it says to write matches them.
    asked = ("rules", "test", "--query", "expuls*", "-l", "fr", "--text", text)
    found = invoke(*asked, "--config", str(config)).output
    assert found.startswith("MATCH") and "expuls* in title: expulsés, expulsion" in found
    # A stem whose letters begin no word of the text, as before.
    assert "missing      reconduit~" in why("exilé~ AND reconduit~")


def test_a_whole_word_whose_form_stems_apart_says_what_a_wildcard_finds(tmp_path: Path) -> None:
    """French Snowball leaves a present plural as it is: `frapper~` (frapp) misses "les CRS
    frappent", and a rule author read only "missing", even inside a NEAR."""
    config = project(tmp_path)
    text = "Calais\nDes CRS frappent et expulsent des exilés."

    def why(query: str) -> list[str]:
        asked = ("rules", "test", "--query", query, "-l", "fr", "--text", text)
        result = invoke(*asked, "--config", str(config))
        assert result.exit_code == 1 and result.output.startswith("no match")
        return [line.strip() for line in result.output.splitlines()[1:]]

    assert why("expulsion~") == [
        "missing      expulsion~: no word with its stem, expuls; expulsent begins with expuls"
        " (expuls* finds it)"
    ]
    assert why("=CRS NEAR/3 frapper~") == [
        "missing      =CRS NEAR/3 frapper~: no frapper~; no word with its stem, frapp;"
        " frappent begins with frapp (frapp* finds it)"
    ]
    asked = ("rules", "test", "--query", "=CRS NEAR/3 frapp*", "-l", "fr", "--text", text)
    assert invoke(*asked, "--config", str(config)).output.startswith("MATCH")


def test_an_or_missing_says_what_each_of_its_words_lacks(tmp_path: Path) -> None:
    """Words are mostly written in an OR: `(expuls~ OR évacu*)`, missing with "expulsion" in
    the text, said only "missing (expuls~ OR évacu*)", in an AND or beside a NEAR, where
    `expuls~` alone said it was a stem cut short; nor was an entity in an OR explained."""
    config = project(tmp_path)
    text = "Calais\nLes CRS ont procédé à l'expulsion des exilés."

    def why(query: str, text: str = text) -> list[str]:
        asked = ("rules", "test", "--query", query, "-l", "fr", "--text", text)
        result = invoke(*asked, "--config", str(config))
        assert result.exit_code == 1 and result.output.startswith("no match")
        return [line.strip() for line in result.output.splitlines()[1:]]

    cut_short = "no word with its stem, expul; expulsion begins with expuls (expuls* finds it)"
    assert why("exilés AND (expuls~ OR évacu*)") == [
        "needs all of:",
        "found        exilés: exilés (content)",
        f"missing      (expuls~ OR évacu*): for expuls~, {cut_short}",
    ]
    assert why("exilés NEAR/5 (expuls~ OR évacu*)") == [
        "missing      exilés NEAR/5 (expuls~ OR évacu*): no (expuls~ OR évacu*); for expuls~,"
        f" {cut_short}"
    ]
    assert why("(@calais OR expuls~) AND film", "Dunkerque\nLe film Dunkerque.") == [
        "needs all of:",
        "found        film: film (content)",
        "missing      (@calais OR expuls~): for @calais, Dunkerque (title), Dunkerque (content)"
        " without a context word within 12 words (camp*, campement*, migrant*, exil*,"
        " refugie*, asile, embarcation*, passeur*)",
    ]


def test_an_entity_missing_says_which_of_its_aliases_did_not_count(tmp_path: Path) -> None:
    """An alias without its context words near it, or in the wrong case, does not count: an
    author read "missing @calais" with "Dunkirk" in the text, and "missing @police" with
    "crs", and could not tell why."""
    config = project(tmp_path)

    def why(query: str, text: str) -> list[str]:
        asked = ("rules", "test", "--query", query, "--text", text, "--config", str(config))
        result = invoke(*asked)
        assert result.exit_code == 1 and result.output.startswith("no match")
        return [line.strip() for line in result.output.splitlines()[1:]]

    assert why("@calais", "Dunkirk\nThe film Dunkirk returns to cinemas.") == [
        "missing      @calais: Dunkirk (title), Dunkirk (content) without a context word within"
        " 12 words (camp*, migrant*, refugee*, asylum, exil*, boat*, crossing*)"
    ]
    assert why("@police NEAR/3 gazé", "Calais\nLes crs ont gazé des exilés.") == [
        "missing      @police NEAR/3 gazé: no @police; crs, not written CRS (a case-sensitive"
        " alias)"
    ]
    # An entity none of whose aliases is there, as before.
    assert "missing      @calais" in why("@calais AND tent*", "Lille\nDes tentes.")


def test_the_pas_de_calais_is_not_calais_in_rules_test(tmp_path: Path) -> None:
    """A French analyst's review: "Pas-de-Calais", the département, made its fires, floods and
    elections matches of the calais rule, with "@calais in title: Calais" as the evidence."""
    config = project(tmp_path)

    def tested(text: str, *more: str):
        asked = ("rules", "test", "calais", "-l", "fr", "--text", text, *more)
        return invoke(*asked, "--config", str(config))

    fire = tested("Lens : un incendie dans une usine du Pas-de-Calais\nLes pompiers sont là.")
    assert fire.exit_code == 1 and fire.output.startswith("no match"), fire.output
    assert "for @calais, Calais (title) inside Pas-de-Calais, where it does not count" in (
        fire.output
    )
    # Calais beside the département's name, not inside it: still Calais, on its first word.
    death = tested("Un exilé est mort à Calais (Pas-de-Calais)\nLe corps a été retrouvé.", "--json")
    [result] = [json.loads(line) for line in death.output.splitlines()]
    [match] = result["matches"]
    places = [(e["field"], e["start"], e["text"]) for e in match["evidence"] if e["entity"]]
    assert places == [("title", 3, "exilé"), ("title", 20, "Calais")]
    # The strait, "le pas de Calais", in lower case: on the Channel route, it counts.
    strait = tested("Trois exilés morts dans le pas de Calais\nUne embarcation a chaviré.")
    assert strait.exit_code == 0 and "@calais in title: Calais" in strait.output, strait.output


def test_check_reports_a_bad_not_inside_at_its_file_and_line(tmp_path: Path) -> None:
    config = project(tmp_path)
    entities = tmp_path / "rules" / "entities.toml"
    lines = entities.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("not_inside = "))
    lines[line - 1] = 'not_inside = "Pas-de-Calais"'
    entities.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 1
    assert (
        f"{entities}:{line}:1: entity 'calais'.not_inside: expected a list of strings, got"
        " 'Pas-de-Calais'"
    ) in result.output


@pytest.mark.parametrize(
    ("query", "text", "hint"),
    [
        ("defence", "The necessity defense was barred", "defense, another spelling of defence"),
        ("organise~", "Protesters organized a march", "organized, another spelling of organise"),
        ("labor~", "Labour activists were arrested", "Labour, another spelling of labor"),
        ("centre", "a detention center in Texas", "center, another spelling of centre"),
        ("criminalis*", "a law criminalizing protest", "criminalizing, another spelling"),
        ("travelled", "they traveled to the protest", "traveled, another spelling of travelled"),
    ],
)
def test_a_word_missing_in_the_other_spelling_says_so(
    tmp_path: Path, query: str, text: str, hint: str
) -> None:
    """A rule for UK and US news read "missing defence" on a text saying "defense": British
    and American spellings are different words, stemmed or not, and the analyst could not
    see why. The hint names the word the text has, and what to write."""
    config = project(tmp_path)
    asked = ("rules", "test", "--query", query, "--text", text, "-l", "en")
    result = invoke(*asked, "--config", str(config))
    assert result.exit_code == 1
    [line] = result.output.splitlines()[1:]
    assert hint in line and f"(write {query} OR " in line, line
    # What it says to write matches.
    written = line.split("(write ")[1].rstrip(")")
    fixed = invoke("rules", "test", "--query", written, "--text", text, "--config", str(config))
    assert fixed.exit_code == 0, fixed.output


def test_the_other_spelling_is_not_said_of_unrelated_words(tmp_path: Path) -> None:
    """ "for" is not a spelling of "four", nor "sense" of "sence": only endings past the
    first letters of a word are spellings."""
    config = project(tmp_path)
    for query, text in (("for", "four"), ("hour", "hor"), ("sense", "sence"), ("filled", "filed")):
        asked = ("rules", "test", "--query", query, "--text", text, "-l", "en")
        result = invoke(*asked, "--config", str(config))
        assert "another spelling" not in result.output, result.output


def test_ingest_stores_matches_and_backtest_compares_edits(tmp_path: Path) -> None:
    config = project(tmp_path)
    assert invoke("once", "--config", str(config)).exit_code == 0
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "vigie.db")
    stored = db.execute("SELECT COUNT(*) FROM matches WHERE rule_id = 'calais'").fetchone()[0]
    assert stored > 0
    evidence = json.loads(db.execute("SELECT evidence FROM matches LIMIT 1").fetchone()[0])
    assert evidence and {"field", "start", "end", "text"} <= set(evidence[0])
    assert db.execute("SELECT COUNT(*) FROM mentions WHERE entity_id = 'calais'").fetchone()[0]

    # Narrow the calais rule to Coquelles only: the backtest says what would go.
    rewrite_calais(tmp_path, "Coquelles")
    result = invoke("rules", "backtest", "calais", "--json", "--config", str(config))
    (report,) = json.loads(result.output)
    assert report["added"] == [] and len(report["removed"]) == stored - report["matches"]
    assert report["matches"] >= 1
    coquelles = {
        article_id
        for (article_id,) in db.execute(
            "SELECT id FROM articles WHERE title || summary || content LIKE '%Coquelles%'"
        )
    }
    samples = report["samples"]  # as --query's: ids and titles, for `articles show ID`
    assert samples and {s["id"] for s in samples} <= coquelles and all(s["title"] for s in samples)
    shown = invoke("rules", "backtest", "calais", "--config", str(config)).output
    assert f"#{samples[0]['id']} {samples[0]['title']}" in shown

    invoke("rules", "backtest", "calais", "--apply", "--config", str(config))
    after = db.execute(
        "SELECT COUNT(*) FROM matches WHERE rule_id = 'calais' AND withdrawn_revision IS NULL"
    ).fetchone()[0]
    assert after == report["matches"]  # those a digest carried are kept, withdrawn


def test_backtest_apply_brings_the_stored_mentions_up_to_todays_entities(tmp_path: Path) -> None:
    """A researcher's review: an alias added to an entity reached the old articles' matches
    with --apply, but the mentions table kept the entities as they were when each article was
    stored, mixing two definitions with nothing to tell them apart."""
    config = project(tmp_path)
    assert invoke("once", "--config", str(config)).exit_code == 0
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "vigie.db")
    mentioned = "SELECT count(*) FROM mentions WHERE entity_id = 'calais' AND article_id = ?"
    (article_id,) = db.execute(
        "SELECT id FROM articles WHERE (title || summary || content) LIKE '%Boulogne%' "
        "ORDER BY id LIMIT 1"
    ).fetchone()
    before = db.execute(mentioned, [article_id]).fetchone()[0]
    same = invoke("rules", "backtest", "calais", "--since", "0", "--apply", "--config", str(config))
    assert "entity mentions" not in same.output, same.output  # nothing changed, nothing rewritten
    entities = tmp_path / "rules" / "entities.toml"
    text = entities.read_text(encoding="utf-8")
    entities.write_text(text.replace('"Wimereux"]', '"Wimereux", "Boulogne"]', 1), encoding="utf-8")

    applied = invoke(
        "rules", "backtest", "calais", "--since", "0", "--apply", "--config", str(config)
    )

    assert "entity mentions of" in applied.output, applied.output
    assert db.execute(mentioned, [article_id]).fetchone()[0] > before
    boulogne = db.execute(
        "SELECT count(*) FROM mentions m JOIN articles a ON a.id = m.article_id "
        "WHERE m.entity_id = 'calais' AND m.field = 'title' "
        "AND substr(a.title, m.start + 1, m.end - m.start) = 'Boulogne'"
    ).fetchone()[0]
    assert boulogne >= 1  # offsets into the stored text, as at ingest
    db.close()


def test_a_storm_warning_for_the_pas_de_calais_stores_no_calais_mention(
    tmp_path: Path,
) -> None:
    """The sample storm warning ("Météo-France a placé le Pas-de-Calais et le Nord en vigilance
    orange") was stored with a mention of Calais: the département, counted as the town."""
    import sqlite3

    config = project(tmp_path)
    assert invoke("once", "--config", str(config)).exit_code == 0
    db = sqlite3.connect(tmp_path / "data" / "vigie.db")
    mentions = "SELECT count(*) FROM mentions m JOIN articles a ON a.id = m.article_id"
    mentioned = f"{mentions} WHERE m.entity_id = 'calais' AND a.title LIKE ?"
    assert db.execute("SELECT count(*) FROM articles WHERE title LIKE 'Tempête%'").fetchone()[0]
    assert db.execute(mentioned, ["Tempête%"]).fetchone()[0] == 0
    assert db.execute(mentioned, ["Calais : un policier jugé%"]).fetchone()[0] > 0
    db.close()


def test_backtest_runs_a_draft_query_over_the_archive(tmp_path: Path) -> None:
    """A journalist trying a query on what was stored had to write it into a rule file first
    (`articles search` reads SQLite's syntax, not the rules'), or loop `rules test` over files."""
    import sqlite3

    config = project(tmp_path)
    invoke("once", "--config", str(config))
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        expected = {
            i for (i, t) in db.execute("SELECT id, title FROM articles") if "asylum" in t.lower()
        }
    draft = (
        "rules",
        "backtest",
        "--query",
        "title:asylum",
        "--since",
        "0",
        "--config",
        str(config),
    )
    [report] = json.loads(invoke(*draft, "--json").output)
    assert report["matches"] == len(expected) >= 2
    assert {s["id"] for s in report["samples"]} == expected
    text = invoke(*draft, "--samples", "1").output
    assert f"--query: {len(expected)} matches" in text
    assert f"and {len(expected) - 1} more" in text
    refused = invoke(*draft, "--apply")
    assert refused.exit_code == 1 and "without --apply" in refused.output


def test_backtest_query_lists_its_matches_newest_published_first(tmp_path: Path) -> None:
    """ "newest first" listed in the order of collection: an article of 2021, polled last,
    came first."""
    import sqlite3

    config = project(tmp_path)
    invoke("once", "--config", str(config))
    draft = ("rules", "backtest", "--query", "calais", "--since", "0", "--samples", "100")
    [report] = json.loads(invoke(*draft, "--json", "--config", str(config)).stdout)
    ids = [s["id"] for s in report["samples"]]
    assert len(ids) >= 3
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        db.execute(
            "UPDATE articles SET published = '2021-03-01T08:00:00+00:00' WHERE id = ?", [max(ids)]
        )
        db.execute(
            "UPDATE articles SET published = '2030-03-01T08:00:00+00:00' WHERE id = ?", [min(ids)]
        )
        published = dict(db.execute("SELECT id, published FROM articles"))
    [report] = json.loads(invoke(*draft, "--json", "--config", str(config)).stdout)
    listed = [s["id"] for s in report["samples"]]
    assert listed[0] == min(ids) and listed[-1] == max(ids)
    dates = [published[i] for i in listed]
    assert dates == sorted(dates, reverse=True)


def test_backtest_says_how_many_changes_it_does_not_list(tmp_path: Path) -> None:
    """ "+7" above five listed articles read as a miscount."""
    config = project(tmp_path)
    invoke("once", "--config", str(config))
    rewrite_calais(tmp_path, "the OR le OR la")
    backtest = ("rules", "backtest", "calais", "--config", str(config))
    [report] = json.loads(invoke(*backtest, "--json").output)
    added = len(report["added"])
    assert added > 5
    shown = invoke(*backtest).output
    assert shown.count("  + #") == 5 and f"  + and {added - 5} more" in shown


def test_backtest_lines_show_the_words_that_made_each_match(tmp_path: Path) -> None:
    """An analyst read "+ #205 The Women's March could change politics…" and had to run
    `rules test --article 205` for each line to see why the edit added it (it was "held" near
    "protested"). Each line now ends with its words; a removed one with those it had."""
    config = project(tmp_path)
    invoke("once", "--config", str(config))
    rewrite_calais(tmp_path, "Coquelles OR (Boulogne NOT NEAR/3 Calais)")
    backtest = ("rules", "backtest", "calais", "--since", "0", "--config", str(config))
    [report] = json.loads(invoke(*backtest, "--json").stdout)
    assert report["added"] and report["removed"]
    assert all(
        s["words"] and set(s["words"]) <= {"Coquelles", "Boulogne"} for s in report["samples"]
    )
    shown = invoke(*backtest).stdout.splitlines()
    added = [line for line in shown if line.startswith("  + #")]
    assert added and all(line.endswith("  [Boulogne]") for line in added), added
    removed = [line for line in shown if line.startswith("  - #")]
    assert removed
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        for line in removed:
            article_id = int(line.split("#")[1].split()[0])
            [(evidence,)] = db.execute(
                "SELECT evidence FROM matches WHERE rule_id = 'calais' AND article_id = ?",
                [article_id],
            )
            first = line.rsplit("  [", 1)[1].split(",")[0].rstrip("]")
            assert first == json.loads(evidence)[0]["text"], line
    draft = ("rules", "backtest", "--query", "title:Coquelles", "--since", "0")
    [line] = [x for x in invoke(*draft, "--config", str(config)).stdout.splitlines() if "#" in x]
    assert line.endswith("  [Coquelles]")


def test_backtest_of_every_rule_gathers_those_that_match_nothing_in_one_line(
    tmp_path: Path,
) -> None:
    """An analyst with 34 rules read 25 lines of "0 matches, +0 / -0 compared with stored
    matches" to find the 9 rules that changed or matched; the rules that match nothing, and
    had nothing stored, are now named together, after the others."""
    config = project(tmp_path)
    invoke("once", "--config", str(config))
    (tmp_path / "rules" / "zz-new.toml").write_text(
        '[[rule]]\nid = "never-a"\nquery = "zzzunheard"\n\n'
        '[[rule]]\nid = "never-b"\nquery = "qqqunseen"\n',
        encoding="utf-8",
    )
    lines = invoke("rules", "backtest", "--since", "0", "--config", str(config)).stdout
    lines = lines.splitlines()
    assert lines[-1] == "No match, and none stored: never-a, never-b"
    assert not any(line.startswith(("never-a:", "never-b:")) for line in lines)
    assert any(line.startswith("calais: ") for line in lines)
    # A rule asked for by its id is said as before.
    one = invoke("rules", "backtest", "never-a", "--since", "0", "--config", str(config))
    assert "never-a: 0 matches, +0 / -0 compared with stored matches" in one.stdout


def test_backtest_of_many_rules_lists_those_an_edit_changes_and_counts_the_others(
    tmp_path: Path,
) -> None:
    """With 100,000 rules, a backtest after editing three printed 16,000 lines of samples of
    the rules that match as they did, and the 91,000 that match nothing on one line: the
    three were lost among them."""
    config = project(tmp_path)
    desk = "".join(
        f'[[rule]]\nid = "{kind}-{i:02d}"\nquery = "{query}"\n\n'
        for i in range(25)
        for kind, query in (("desk", "calais OR police"), ("never", f"zzzunheard{i}"))
    )
    (tmp_path / "rules" / "desk.toml").write_text(desk, encoding="utf-8")
    invoke("once", "--config", str(config))
    rewrite_calais(tmp_path, "Coquelles")

    lines = invoke("rules", "backtest", "--since", "0", "--config", str(config)).stdout
    lines = lines.splitlines()

    rules_listed = [line.split(":")[0] for line in lines if line.startswith(("calais", "desk"))]
    assert rules_listed == ["calais"], lines
    assert any(line.startswith("  - #") for line in lines)
    assert lines[-2].startswith("Matching as stored: 29 rules (")
    assert lines[-1] == "No match, and none stored: 25 rules"


def test_backtest_since_0_takes_every_stored_article(tmp_path: Path) -> None:
    """--since 0 took the articles first seen in the last 0 seconds: none, where 0 means
    everything to storage.retention."""
    import sqlite3

    config = project(tmp_path)
    invoke("once", "--config", str(config))
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        [(stored,)] = db.execute("SELECT count(*) FROM articles")
        db.execute("UPDATE articles SET first_seen = '2024-01-01T00:00:00+00:00'")
    recent = invoke("rules", "backtest", "calais", "--config", str(config))
    assert "0 stored articles first seen in the last 30d" in recent.output
    every = invoke("rules", "backtest", "calais", "--since", "0", "--config", str(config))
    assert f"{stored} stored articles, all of them" in every.output
    assert "calais: 0 matches" not in every.output


def test_backtest_since_takes_a_date_as_articles_export_does(tmp_path: Path) -> None:
    """`--since 2026-12-01` was refused ("expected a duration like 30d"), while `articles
    export --since` and `deliveries replay --since` take dates."""
    import sqlite3

    config = project(tmp_path)
    invoke("once", "--config", str(config))
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        [(stored,)] = db.execute("SELECT count(*) FROM articles")
        db.execute("UPDATE articles SET first_seen = '2026-11-30T23:00:00+00:00' WHERE id <= 3")
        db.execute("UPDATE articles SET first_seen = '2026-12-01T09:00:00+00:00' WHERE id > 3")
    for since in ("2026-12-01", "2026-12-01T08:00", "2026-12-01T10:00+02:00"):
        result = invoke("rules", "backtest", "calais", "--since", since, "--config", str(config))
        assert result.exit_code == 0, result.output
        assert f"{stored - 3} stored articles first seen since {since}" in result.output
    [report] = json.loads(
        invoke(
            "rules",
            "backtest",
            "calais",
            "--since",
            "2026-11-30",
            "--json",
            "--config",
            str(config),
        ).stdout
    )
    assert report["articles"] == stored


def test_backtest_counts_a_match_withdrawn_by_a_correction_as_not_matching(
    tmp_path: Path,
) -> None:
    config = project(tmp_path)
    feed = tmp_path / "samples" / "feeds" / "coastal-herald.rss"
    guid = "coastal-herald-2026-11-23-0001"
    assert invoke("once", "--config", str(config)).exit_code == 0
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "vigie.db")
    [(article_id,)] = db.execute(
        "SELECT a.id FROM articles a JOIN matches m ON m.article_id = a.id "
        "WHERE a.guid = ? AND m.rule_id = 'calais'",
        [guid],
    ).fetchall()
    # The outlet rewrites the item into one about something else: the rule no longer matches.
    text = feed.read_text(encoding="utf-8")
    start = text.index("<item>")
    end = text.index("</item>", start) + len("</item>")
    link = text[text.index("<link>", start) : text.index("</link>", start) + len("</link>")]
    rewritten = (
        f"<item><title>Harbour festival postponed by a week</title>{link}"
        f'<guid isPermaLink="false">{guid}</guid><pubDate>Mon, 23 Nov 2026 17:05:00 +0000'
        "</pubDate><description>Organisers cited the forecast.</description></item>"
    )
    text = text[:start] + rewritten + text[end:]
    feed.write_text(text, encoding="utf-8")
    polled = invoke("once", "--config", str(config))
    assert polled.exit_code == 0
    # The summary counted the withdrawn match as a match.
    [(holding, withdrawn)] = db.execute(
        "SELECT count(*) - count(withdrawn_revision), count(withdrawn_revision) FROM matches"
    )
    assert withdrawn >= 1  # the rules that matched the article before its correction
    assert f"{holding} matches and {withdrawn} withdrawn)" in polled.output, polled.output

    result = invoke("rules", "backtest", "calais", "--json", "--config", str(config))
    (report,) = json.loads(result.output)
    assert (report["added"], report["removed"]) == ([], [])  # the stored matches are current
    assert db.execute(
        "SELECT withdrawn_revision FROM matches WHERE article_id = ? AND rule_id = 'calais'",
        [article_id],
    ).fetchall() == [(2,)]

    invoke("rules", "backtest", "calais", "--apply", "--config", str(config))
    rows = db.execute(
        "SELECT article_id, evidence_revision, withdrawn_revision FROM matches "
        "WHERE rule_id = 'calais'"
    ).fetchall()
    holding = [row for row in rows if row[2] is None]
    assert len(holding) == report["matches"] and article_id not in [a for a, _, _ in holding]
    assert {evidence for _, evidence, _ in holding} == {1}
    # The digest of the first poll carried it: kept, still withdrawn at the correction.
    assert [(e, w) for a, e, w in rows if a == article_id] == [(1, 2)]


def test_check_warns_about_a_rule_matching_most_stored_articles(tmp_path: Path) -> None:
    config = project(tmp_path)
    assert invoke("once", "--config", str(config)).exit_code == 0  # 30 sample articles stored
    broad = tmp_path / "rules" / "zz-broad.toml"
    broad.write_text('[[rule]]\nid = "everything"\nquery = "NOT zzzzqqq"\n', encoding="utf-8")
    result = invoke("rules", "check", "--config", str(config))
    assert result.exit_code == 0  # a warning, not an error
    assert "rule 'everything' matches 100% of the 30 most recent stored articles" in result.output
    assert f"{broad}:2:" in result.output


def test_a_disabled_rule_can_still_be_tested_by_name(tmp_path: Path) -> None:
    config = project(tmp_path)
    (tmp_path / "rules" / "zz-draft.toml").write_text(
        '[[rule]]\nid = "draft"\nenabled = false\nquery = "storks"\n', encoding="utf-8"
    )
    result = invoke(
        "rules", "test", "draft", "--text", "Storks on the dunes", "--config", str(config)
    )
    assert result.exit_code == 0 and "MATCH" in result.output and "draft" in result.output
    everything = invoke("rules", "test", "--text", "Storks on the dunes", "--config", str(config))
    assert "draft" not in everything.output  # not in force


def test_stored_articles_are_tried_with_their_feeds_tags(tmp_path: Path) -> None:
    """A rule scoped by feed tags matched at ingest; the backtest and `rules test --article`
    must see the same, or --apply would delete its matches."""
    config = project(tmp_path)
    (tmp_path / "rules" / "zz-france.toml").write_text(
        '[[rule]]\nid = "france-all"\nquery = "NOT zzzzqqq"\nfeed_tags = ["france"]\n',
        encoding="utf-8",
    )
    assert invoke("once", "--config", str(config)).exit_code == 0
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "vigie.db")
    stored = [
        r for (r,) in db.execute("SELECT article_id FROM matches WHERE rule_id = ?", ["france-all"])
    ]
    assert stored  # every item of Nord Actu

    result = invoke("rules", "backtest", "france-all", "--json", "--config", str(config))
    (report,) = json.loads(result.stdout)
    assert report["matches"] == len(stored) and report["removed"] == []
    invoke("rules", "backtest", "france-all", "--apply", "--config", str(config))
    after = db.execute("SELECT COUNT(*) FROM matches WHERE rule_id = 'france-all'").fetchone()[0]
    assert after == len(stored)

    article = str(stored[0])
    result = invoke("rules", "test", "france-all", "--article", article, "--config", str(config))
    assert result.exit_code == 0 and "MATCH" in result.output


def test_text_without_a_language_is_detected_as_polling_does(tmp_path: Path) -> None:
    config = project(tmp_path)
    text = "Calais : les exilés ont été évacués par la police ce matin, selon les associations"
    result = invoke(
        "rules", "test", "--query", "lang:fr AND calais", "--text", text, "--config", str(config)
    )
    assert result.exit_code == 0 and "MATCH" in result.output
    lines = tmp_path / "articles.jsonl"
    lines.write_text(json.dumps({"title": text}) + "\n", encoding="utf-8")
    result = invoke(
        "rules", "test", "--query", "lang:en", "--file", str(lines), "--config", str(config)
    )
    assert result.exit_code == 1 and "no match" in result.output


def test_errors_show_the_brackets_the_operator_typed(tmp_path: Path) -> None:
    config = project(tmp_path)
    result = invoke("rules", "test", "--query", "lang:[fr]", "--text", "x", "--config", str(config))
    assert result.exit_code == 1 and "[fr]" in result.output
    # Text that looks like terminal markup is printed as it is, not interpreted (nor a crash).
    result = invoke("rules", "test", "--query", '"[/]"', "--text", "x", "--config", str(config))
    assert result.exit_code == 1 and "'[/]'" in result.output


def test_a_query_ending_in_a_new_line_gets_an_error_not_a_traceback(tmp_path: Path) -> None:
    config = project(tmp_path)
    result = invoke(
        "rules", "test", "--query", "police AND\n", "--text", "police", "--config", str(config)
    )
    assert result.exit_code == 1 and result.output.startswith("error: --query:")


def test_json_lines_values_must_be_strings(tmp_path: Path) -> None:
    config = project(tmp_path)
    lines = tmp_path / "articles.jsonl"
    lines.write_text('{"title": "police in Calais", "url": null}\n{"title": 3}\n', encoding="utf-8")
    result = invoke("rules", "test", "--file", str(lines), "--config", str(config))
    assert result.exit_code == 1
    assert f"error: {lines}: line 2: title: expected a string, got 3" in result.output


@pytest.mark.parametrize("as_json", [False, True])
def test_a_lone_surrogate_in_json_lines_is_no_traceback(tmp_path: Path, as_json: bool) -> None:
    """JSON can escape half a UTF-16 pair ("\\ud800"), a character nothing can print."""
    config = project(tmp_path)
    lines = tmp_path / "articles.jsonl"
    lines.write_text(
        '{"title": "\\ud800 police in Calais", "url": "https://x.example/\\udc00"}\n',
        encoding="utf-8",
    )
    options = ["--json"] if as_json else []
    result = invoke(
        "rules",
        "test",
        "--query",
        "police",
        "--file",
        str(lines),
        *options,
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    assert "police" in result.output and "no match" not in result.output


def test_backtest_json_with_apply_prints_only_json_on_stdout(tmp_path: Path) -> None:
    config = project(tmp_path)
    assert invoke("once", "--config", str(config)).exit_code == 0
    result = invoke("rules", "backtest", "calais", "--json", "--apply", "--config", str(config))
    assert result.exit_code == 0
    (report,) = json.loads(result.stdout)
    assert report["rule_id"] == "calais"
    assert "Applied" in result.stderr


def test_backtest_refuses_to_store_matches_of_a_disabled_rule(tmp_path: Path) -> None:
    config = project(tmp_path)
    (tmp_path / "rules" / "zz-draft.toml").write_text(
        '[[rule]]\nid = "draft"\nenabled = false\nquery = "NOT zzzzqqq"\n', encoding="utf-8"
    )
    assert invoke("once", "--config", str(config)).exit_code == 0
    tried = invoke("rules", "backtest", "draft", "--json", "--config", str(config))
    assert json.loads(tried.stdout)[0]["matches"] == 30  # a draft can be tried
    result = invoke("rules", "backtest", "draft", "--apply", "--config", str(config))
    assert result.exit_code == 1
    assert "error: rule 'draft' is disabled in its file" in " ".join(result.output.split())
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "vigie.db")
    assert db.execute("SELECT COUNT(*) FROM matches WHERE rule_id = 'draft'").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("30", 'expected a date like 2026-11-20, a time, or a duration like "24h"'),
        ("9999999d", "at most a few centuries"),
    ],
)
def test_backtest_since_needs_a_unit_and_a_sane_length(
    tmp_path: Path, since: str, expected: str
) -> None:
    config = project(tmp_path)
    result = invoke("rules", "backtest", "--since", since, "--config", str(config))
    assert result.exit_code == 1 and expected in result.output


def test_decomposed_accents_in_a_tested_text_match_as_polling_would(tmp_path: Path) -> None:
    config = project(tmp_path)
    text = "Les exile\u0301s de Calais"
    result = invoke("rules", "test", "--query", "exilés", "--text", text, "--config", str(config))
    assert result.exit_code == 0 and "exilés in title: exilés" in result.output


@pytest.mark.parametrize("command", [("backtest",), ("test", "calais", "--article", "1")])
def test_a_mistyped_database_path_is_an_error_not_an_empty_database(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = project(tmp_path)
    result = invoke("rules", *command, "--config", str(config))
    assert result.exit_code == 1
    assert "storage.database: no database there yet" in " ".join(result.output.split())
    assert not (tmp_path / "data" / "vigie.db").exists()


def test_backtest_refuses_a_negative_number_of_samples(tmp_path: Path) -> None:
    """-1 sliced the samples from the end: 8 of 9 shown, as if that were asked."""
    config = project(tmp_path)
    result = invoke("rules", "backtest", "calais", "--samples", "-1", "--config", str(config))
    assert result.exit_code == 2 and "--samples" in result.output


def test_a_saved_feed_is_tested_item_by_item(tmp_path: Path) -> None:
    """A feed file was read as one text, its XML shown as the match."""
    config = project(tmp_path)
    feed = tmp_path / "saved.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Nord</title>'
        "<item><title>Storks return to the marsh</title><link>https://n.example/1</link>"
        "<description>The white storks are back.</description></item>"
        "<item><title>Harbour works delayed</title><link>https://n.example/2</link>"
        "<description>The works wait for spring.</description></item>"
        "</channel></rss>",
        encoding="utf-8",
    )
    result = invoke(
        "rules", "test", "--query", "storks", "--file", str(feed), "--config", str(config)
    )
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert lines == [
        "MATCH  Storks return to the marsh",
        "2 items: 1 matches, 1 other does not (--all lists every item that does not match,"
        " with why)",
    ]
    assert "<?xml" not in result.stdout


def test_a_feed_leads_with_its_matches_and_counts_the_rest(tmp_path: Path, server) -> None:
    """An analyst's review: `rules test RULE --url FEED` printed a why-not for every item
    that did not match, 120 lines for a feed of 60, the matches lost among them. The matches
    come first, then the items the rule came near, with why, and a line counting the rest;
    --all lists every one, as before."""
    config = project(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("allow_private = false", "allow_private = true"), "utf-8")
    items = [
        ("Harbour works delayed", "The works wait for spring."),
        ("Marsh fire put out", "Firefighters came at dawn."),
        ("Storks seen over the harbour", "Far from any reed bed or marsh, this week."),
        ("Storks return to the marsh", "The white storks are back."),
    ]
    feed = "".join(
        f"<item><title>{title}</title><link>https://n.example/{i}</link>"
        f"<description>{text}</description></item>"
        for i, (title, text) in enumerate(items)
    )
    rss = f'<?xml version="1.0"?><rss version="2.0"><channel><title>N</title>{feed}</channel></rss>'
    server.route("/rss", rss.encode())
    test = ("rules", "test", "--query", "stork* NEAR/4 marsh", "--url", server.url("/rss"))
    result = invoke(*test, "--config", str(config))
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines()]
    headlines = [line for line in lines if line.startswith(("MATCH", "no match", "4 items"))]
    assert headlines == [
        "MATCH  Storks return to the marsh",
        "no match  Storks seen over the harbour",
        "4 items: 1 matches, 1 comes near (above, with why not), 2 others do not (--all lists"
        " every item that does not match, with why)",
    ]
    assert any(line.startswith("too far") for line in lines)  # why the near one is not

    every = invoke(*test, "--all", "--config", str(config))
    lines = [line for line in every.stdout.splitlines() if not line.startswith(" ")]
    assert lines == [
        "MATCH  Storks return to the marsh",
        "no match  Harbour works delayed",
        "no match  Marsh fire put out",
        "no match  Storks seen over the harbour",
        "4 items: 1 matches, 3 do not",
    ]
    every_rule = invoke("rules", "test", "--url", server.url("/rss"), "--config", str(config))
    assert every_rule.stdout.splitlines() == [
        "4 items: none match a rule, 4 do not (--all lists them)"
    ]


def test_language_option_says_what_a_short_text_is_written_in(tmp_path: Path) -> None:
    """A rule for French articles said "no match" of a French line too short to detect."""
    config = project(tmp_path)
    args = ["rules", "test", "--query", "lang:fr AND exilé~", "--text", "Des exilées à Calais"]
    assert invoke(*args, "--config", str(config)).exit_code == 1
    result = invoke(*args, "--language", "fr", "--config", str(config))
    assert result.exit_code == 0 and "MATCH" in result.stdout
    wrong = invoke(*args, "--language", "french", "--config", str(config))
    assert wrong.exit_code == 1 and "expected a language code like fr or en" in wrong.stderr


def test_a_rule_in_error_elsewhere_does_not_keep_another_from_being_tried(tmp_path: Path) -> None:
    """One broken rule anywhere stopped `rules test` and `backtest` of every other rule, and of
    a --query: the operator could not try a rule while writing it."""
    config = project(tmp_path)
    (tmp_path / "rules" / "draft.toml").write_text(
        '[[rule]]\nid = "draft"\nquery = "zzz AND ("\n', encoding="utf-8"
    )
    (tmp_path / "rules" / "half-saved.toml").write_text('[[rule]]\nid = "half', encoding="utf-8")
    runner = CliRunner()
    text = "Police used tear gas on migrants near Calais"
    tried = runner.invoke(
        main, ["rules", "test", "calais", "--text", text, "--config", str(config)]
    )
    assert tried.exit_code == 0, tried.output
    # A file that does not load is said; the other rules' queries are not compiled to try one.
    assert "warning: " in tried.stderr and "half-saved.toml:1:" in tried.stderr
    (tmp_path / "rules" / "half-saved.toml").unlink()
    query = ["rules", "test", "--query", "tear gas", "--text", text, "--config", str(config)]
    assert runner.invoke(main, query).exit_code == 0
    invoke("once", "--config", str(config))
    assert invoke_status("rules", "backtest", "calais", "--config", str(config)) == 0
    # The rule in error itself, and --apply, still stop at the error.
    draft = runner.invoke(main, ["rules", "test", "draft", "--text", text, "--config", str(config)])
    assert draft.exit_code == 1 and "error: " in draft.stderr and "draft.toml:3:" in draft.stderr
    applying = ["rules", "backtest", "calais", "--apply", "--config", str(config)]
    assert runner.invoke(main, applying).exit_code == 1


def test_trying_one_rule_or_a_draft_compiles_no_other_rule(tmp_path: Path, monkeypatch) -> None:
    """With 100,000 rules in the files, `rules test RULE`, `rules test --query` and `rules
    backtest RULE` each compiled every one of them first: half a minute before trying one."""
    from monitor.rules import files

    compiled: list[str] = []

    def counted_compile(rule, *args, **kwargs):
        compiled.append(rule.id)
        return compile_rule(rule, *args, **kwargs)

    monkeypatch.setattr(files, "compile_rule", counted_compile)
    config = project(tmp_path)
    invoke("once", "--config", str(config))
    compiled.clear()
    text = "Police used tear gas on migrants near Calais"
    assert invoke("rules", "test", "calais", "--text", text, "--config", str(config)).exit_code == 0
    draft = ("rules", "test", "--query", '"tear gas"', "--text", text, "--config", str(config))
    assert invoke(*draft).exit_code == 0
    backtest = invoke("rules", "backtest", "calais", "--since", "0", "--config", str(config))
    assert "calais: " in backtest.stdout
    assert set(compiled) <= {"calais"}

    every = invoke("rules", "test", "--text", text, "--config", str(config))
    assert "migrants" in every.stdout and {"migrants", "calais"} <= set(compiled)


def test_a_mistyped_rule_id_names_the_closest_when_there_are_many(tmp_path: Path) -> None:
    """Among 100,000 rules a typo printed every id, 1.4 MB on one line of error."""
    config = project(tmp_path)
    few = invoke("rules", "test", "calias", "--text", "Calais", "--config", str(config))
    assert "no rule with id 'calias' (known: calais, migrants, police-violence," in few.stderr
    many = "".join(f'[[rule]]\nid = "desk-{i:03d}"\nquery = "word{i}"\n\n' for i in range(100))
    (tmp_path / "rules" / "desk.toml").write_text(many, encoding="utf-8")

    typo = invoke("rules", "test", "desk-0042", "--text", "Calais", "--config", str(config))

    assert typo.exit_code == 1
    assert typo.stderr.strip() == (
        "error: no rule with id 'desk-0042' among the 105 rules in the files"
        " (did you mean 'desk-042'?)"
    )


def invoke_status(*args: str) -> int:
    return CliRunner().invoke(main, list(args)).exit_code


def test_keys_a_json_lines_article_does_not_have_are_warned_of(tmp_path: Path) -> None:
    """ "lang" for "language" was dropped without a word, and the French text then tried as
    whatever language detection made of it."""
    config = project(tmp_path)
    lines = tmp_path / "articles.jsonl"
    rows = [{"title": "Calais", "lang": "fr", "tags": ["x"]}, {"title": "Dunkerque", "lang": "fr"}]
    lines.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["rules", "test", "--query", "calais", "--file", str(lines), "--config", str(config)]
    )
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "line 1: lang, tags not read (an article has url, title" in warning  # once


@pytest.mark.parametrize("name", ["art.txt", "art.html", "items.jsonl"])
def test_a_file_not_in_utf8_is_an_error_not_replacement_characters(
    tmp_path: Path, name: str
) -> None:
    """A Windows-1252 file was tested as U+FFFD where each accent was, matching nothing,
    while a config or rule file saved so gets an error saying what to do."""
    config = project(tmp_path)
    article = tmp_path / name
    text = "Calais\nLes exilés évacués"
    if name.endswith(".jsonl"):
        text = json.dumps({"title": "Calais", "content": "Les exilés"}, ensure_ascii=False)
    article.write_bytes(text.encode("cp1252"))
    result = invoke("rules", "test", "--file", str(article), "--config", str(config))
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    expected = "cannot be read: not UTF-8 (byte 0xe9, 'é' in Windows-1252): save the file as UTF-8"
    assert line.startswith(f"error: {article}:") and line.endswith(expected)
    assert "\ufffd" not in result.output


def test_a_text_too_short_to_tell_its_language_says_how_to_give_it(tmp_path: Path) -> None:
    """A two-line French test of a `languages = ["fr"]` rule or a `lang:fr` query said "no
    language that could be told", and not that --language fr tells it."""
    config = project(tmp_path)
    (tmp_path / "rules" / "zz-fr.toml").write_text(
        '[[rule]]\nid = "exiles-fr"\nquery = "exilés"\nlanguages = ["fr"]\n', encoding="utf-8"
    )
    test = ("rules", "test", "--config", str(config), "--text", "Calais\nDes exilés expulsés.")
    hint = "(--language CODE says it, as in --language fr: a line or two may be too short to tell)"
    for asked in (("exiles-fr",), ("--query", "lang:fr exilés")):
        untold = invoke(*test, *asked)
        assert untold.exit_code == 1 and "no language that could be told" in untold.stdout
        assert hint in untold.stdout
        told = invoke(*test, *asked, "--language", "fr")
        assert told.exit_code == 0 and told.stdout.startswith("MATCH")
    # Not said when the language was told, nor in JSON for scripts.
    english = invoke(*test, "exiles-fr", "--language", "en")
    assert english.exit_code == 1 and "the article is in en" in english.stdout
    assert "--language CODE" not in english.stdout
    assert "--language CODE" not in invoke(*test, "exiles-fr", "--json").stdout


def test_a_feed_scoped_rule_is_tested_with_the_feed_it_is_for(tmp_path: Path) -> None:
    """A rule with `feed_tags` or `feeds` was "out of scope" for every --text, --file or --url,
    even the address of a configured feed with that tag: only --article could try it."""
    config = project(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('name = "Wire Digest"', 'name = "Wire (AFP)"'), "utf-8")
    (tmp_path / "rules" / "zz-scoped.toml").write_text(
        '[[rule]]\nid = "fr-local"\nquery = "Calais"\nfeed_tags = ["france"]\n\n'
        '[[rule]]\nid = "wire"\nquery = "police OR crossings"\nfeeds = ["Wire (AFP)"]\n',
        encoding="utf-8",
    )
    test = ("rules", "test", "--config", str(config))
    calais = ("--text", "Calais : un exilé blessé")

    unscoped = invoke(*test, "fr-local", *calais)
    assert unscoped.exit_code == 1 and "out of scope" in unscoped.stdout
    assert "(--feed NAME tries it as an item of that feed)" in unscoped.stdout
    nord = tmp_path / "samples" / "feeds" / "nord-actu.atom"
    for feed in ("Nord Actu", str(nord), nord.as_uri()):
        scoped = invoke(*test, "fr-local", *calais, "--feed", feed)
        assert scoped.exit_code == 0 and "MATCH" in scoped.stdout, scoped.output

    # A configured feed's address: its name (config.toml's, not the feed's own title) and tags.
    wire = (tmp_path / "samples" / "feeds" / "wire-digest.rdf").resolve().as_uri()
    fetched = invoke(*test, "wire", "--url", wire, "--json")
    assert fetched.exit_code == 0, fetched.output
    assert any(json.loads(line)["matched"] for line in fetched.stdout.splitlines())
    saved = invoke(*test, "fr-local", "--file", str(nord), "--feed", "Nord Actu", "--json")
    assert any(json.loads(line)["matched"] for line in saved.stdout.splitlines())

    # A feed added to the database alone.
    local = tmp_path / "local.rss"
    local.write_text('<rss version="2.0"><channel><title>L</title></channel></rss>', "utf-8")
    add = ("feeds", "add", str(local), "--name", "Littoral", "--tag", "france")
    assert invoke(*add, "--config", str(config)).exit_code == 0
    from_database = invoke(*test, "fr-local", *calais, "--feed", "Littoral")
    assert from_database.exit_code == 0 and "MATCH" in from_database.stdout

    # By the id feeds list shows.
    listed = json.loads(invoke("feeds", "list", "--json", "--config", str(config)).stdout)
    [littoral] = [row["id"] for row in listed if row["name"] == "Littoral"]
    by_id = invoke(*test, "fr-local", *calais, "--feed", str(littoral))
    assert by_id.exit_code == 0 and "MATCH" in by_id.stdout, by_id.output

    unknown = invoke(*test, "fr-local", *calais, "--feed", "Nord Actus")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: --feed: no feed in config.toml or the database has")
    assert "(did you mean 'Nord Actu'?)" in unknown.stderr  # as rules check says (a re-test)
    stored = invoke(*test, "fr-local", "--article", "1", "--feed", "Nord Actu")
    assert stored.exit_code == 1 and "--feed" in stored.stderr


EXPRESS_PAGE = "624fcd903d56"  # Express.co.uk: Hong Kong, under menus and other headlines


def test_a_page_is_tested_on_its_main_text_as_full_text_polling_reads_it(
    tmp_path: Path, server, shared_corpora: Path
) -> None:
    """`rules test --url` of an article page (and `--file` of a saved one) matched the whole
    page: a rule matched the sidebar's "Michael Schumacher" headline, the title was the
    browser tab's "… | World | News | Express.co.uk", while a `full_text` feed's item is
    matched on the page's main text alone."""
    import gzip

    config = project(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("allow_private = false", "allow_private = true"), "utf-8")
    folder = shared_corpora / "pages" / "article-extraction-benchmark" / "html"
    [saved] = folder.glob(f"{EXPRESS_PAGE}*.html.gz")
    html = gzip.decompress(saved.read_bytes())
    server.route("/hong-kong", html, content_type="text/html; charset=utf-8")
    page = tmp_path / "hong-kong.html"
    page.write_bytes(html)
    test = ("rules", "test", "--config", str(config), "--json", "--query")
    for source in (("--url", server.url("/hong-kong")), ("--file", str(page))):
        sidebar = invoke(*test, '"Michael Schumacher" OR "Daily Express"', *source)
        assert sidebar.exit_code == 1, (source, sidebar.output)
        story = invoke(*test, 'title:"Hong Kong" AND "Polytechnic University"', *source)
        assert story.exit_code == 0, (source, story.output)
        result = json.loads(story.stdout)
        title = "Hong Kong chaos: China deploys troops and warns SURRENDER is only option"
        assert result["title"] == title
