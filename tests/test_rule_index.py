"""The presearcher only saves work: it must never lose a match that evaluating every rule finds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from monitor.records import Article
from monitor.rules.document import Document
from monitor.rules.index import RuleIndex
from monitor.rules.model import Rule
from monitor.rules.stats import TermStats

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.mark.parametrize("mix", ["broad", "targeted"])
@pytest.mark.parametrize("with_stats", [False, True])
def test_index_finds_exactly_what_evaluating_every_rule_finds(with_stats: bool, mix: str) -> None:
    if not (SHARED / "corpora" / "feeds").is_dir():
        pytest.skip("../shared/corpora is not beside the repository")
    from bench.matching import feed_items, generate_rules, vocabulary

    items = feed_items()
    words, df = vocabulary(items)
    stats = TermStats(df, len(items)) if with_stats else TermStats()
    rng = random.Random(3)
    rules, entities = generate_rules(800, words, df, rng, mix, items)
    index = RuleIndex.build(rules, entities, stats)
    sample = rng.sample(items, 60 if mix == "broad" else 600)  # targeted rules match rarely
    total = 0
    for article in sample:
        fast = {m.rule_id: m.evidence for m in index.match(article)[0]}
        slow = {m.rule_id: m.evidence for m in index.match_all(article)}
        assert fast == slow, article.url
        total += len(fast)
    assert total > 0  # the sample exercises real matches


def _article(text: str) -> Article:
    return Article(feed_id=1, guid="g", url="https://example.org/a", title="", content=text)


def _candidates(index: RuleIndex, text: str) -> set[str]:
    return {c.rule.id for c in index.candidates(Document(_article(text)))}


def test_a_phrase_is_a_candidate_only_where_its_words_stand_together() -> None:
    index = RuleIndex.build([Rule("gulf", '"saudi arabia" AND oil')], {})
    apart = "Saudi officials said oil exports from Arabia fell."
    together = "Saudi Arabia said oil exports fell."
    assert _candidates(index, apart) == set()
    assert _candidates(index, together) == {"gulf"}
    assert [m.rule_id for m in index.match(_article(together))[0]] == ["gulf"]


def test_a_rule_is_a_candidate_only_where_its_second_clause_holds_too() -> None:
    index = RuleIndex.build(
        [Rule("strike", "airbus AND (strike OR walkout)"), Rule("crash", "boeing~ AND crash~")],
        {},
    )
    assert _candidates(index, "Airbus delivered ten aircraft.") == set()
    assert _candidates(index, "Airbus staff began a walkout.") == {"strike"}
    assert _candidates(index, "Boeing shares fell.") == set()
    assert _candidates(index, "Two Boeings crashed.") == {"crash"}


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("polic* OR shooting~", "The shooting of protesters."),
        ('"tear gas" OR gendarm*', "They fired tear gas at the camp."),
    ],
)
def test_a_clause_mixing_a_prefix_with_a_stem_or_a_pair_still_matches(
    query: str, text: str
) -> None:
    # Such a clause is checked term by term; its stems and pairs must be among the article's
    # terms, or the rule is dropped before evaluation (a bug that lost police-violence matches).
    index = RuleIndex.build([Rule("r", query)], {})
    assert [m.rule_id for m in index.match(_article(text))[0]] == ["r"]


def test_a_wildcard_clause_narrows_candidates_like_a_word() -> None:
    # Courts are rarer than words starting with "migra" here: the rule is filed under court
    # and judge, and the prefix must narrow it as a second word would.
    stats = TermStats({"migrants": 300, "migration": 200, "court": 5, "judge": 5}, 1000)
    index = RuleIndex.build([Rule("r", "migra* AND (court OR judge)")], {}, stats)
    assert _candidates(index, "The court heard the case.") == set()
    assert _candidates(index, "Migration was not mentioned.") == set()
    assert _candidates(index, "The court heard two migrants.") == {"r"}


def test_each_alternative_of_an_or_narrows_candidates_on_its_own() -> None:
    # Filed under both keys with no second term, every article naming Calais was a candidate.
    index = RuleIndex.build([Rule("r", '"sea wall" OR (calais AND court)')], {})
    assert _candidates(index, "Ferries left Calais on time.") == set()
    assert _candidates(index, "A Calais court ruled.") == {"r"}
    assert _candidates(index, "Waves broke over the sea wall.") == {"r"}
    assert [m.rule_id for m in index.match(_article("A Calais court ruled."))[0]] == ["r"]


def test_an_or_alternative_filed_beside_a_stem_still_matches() -> None:
    # The stem is the third alternative's second term, though no clause of the whole rule
    # names it: the article's stems must still be collected for it.
    index = RuleIndex.build([Rule("r", '"sea wall" OR "tide gate" OR (harbour AND deport~)')], {})
    text = "The harbour master said the crew were deported."
    assert _candidates(index, text) == {"r"}
    assert [m.rule_id for m in index.match(_article(text))[0]] == ["r"]


def test_matches_stay_the_same_when_the_word_and_stem_caches_fill_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each index remembers the keys of every word it has seen, and the process every word's
    # stem; both start again when full. Tiny limits make them start again within an article.
    from monitor import text
    from monitor.rules import index as index_module

    rules = [
        Rule("stem", "officer~ ONEAR/3 slap~"),
        Rule("prefix", "migra* AND (calais OR dunkirk)"),
        Rule("pair", '"grande synthe" OR (camp AND evacuat*)'),
        Rule("french", "expulsion~ AND exile~"),
    ]
    texts = [
        "An officer slapped a migrant in Calais; officers were slapping others.",
        "Migrants at the Grande-Synthe camp, near Dunkirk, were evacuated.",
        "L'expulsion des exilés de Calais : les policiers ont expulsé le camp.",
    ]
    french = Article(1, "fr", "https://example.org/fr", "", content=texts[2], language="fr")
    articles = [_article(t) for t in texts] + [french]
    expected = [sorted(m.rule_id for m in RuleIndex.build(rules, {}).match(a)[0]) for a in articles]
    assert expected == [["prefix", "stem"], ["pair", "prefix"], ["french"], ["french"]]
    monkeypatch.setattr(index_module, "_WORDS_KEPT", 3)
    monkeypatch.setattr(text, "_STEMS_KEPT", 3)
    monkeypatch.setattr(text, "_STEMS", {})
    monkeypatch.setattr(text, "_WORDS_OF_STEM", {})
    index = RuleIndex.build(rules, {})
    for _ in range(2):  # learnt once, then known (or learnt again after starting over)
        found = [sorted(m.rule_id for m in index.match(a)[0]) for a in articles]
        assert found == expected


def test_stems_are_found_after_the_stem_cache_starts_again_between_articles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An index remembers what each word it saw stands for, its stems among it; once the stem
    # cache starts again, it must look at the words again.
    from monitor import text

    monkeypatch.setattr(text, "_STEMS", {})
    monkeypatch.setattr(text, "_WORDS_OF_STEM", {})
    index = RuleIndex.build([Rule("stem", "officer~ ONEAR/3 slap~")], {})
    article = _article("Officers were slapping migrants; an officer slapped a boy.")
    assert [m.rule_id for m in index.match(article)[0]] == ["stem"]
    text.forget_stems()
    assert [m.rule_id for m in index.match(article)[0]] == ["stem"]
    assert "slapping" in text._STEMS["en"]  # learnt again, not assumed


def test_matching_leaves_nothing_for_the_garbage_collector() -> None:
    """An article's analysis is freed as soon as it is matched (reference counting): a cycle
    between a document and its fields left every article to the cyclic collector, which cost
    a tenth of tokenising and of matching, and of memory between collections."""
    import gc

    index = RuleIndex.build(
        [
            Rule("phrase", '"pepper spray" AND migra*'),
            Rule("stems", "police~ NEAR/5 slap~", stem=True),
            Rule("prefix", '"asylum seek*" OR (border AND guard*)'),
        ],
        {},
    )
    text = "Police slapped asylum seekers; border guards used pepper spray on migrants. " * 20
    article = Article(
        feed_id=1, guid="g", url="https://example.org/a", title="Police", content=text
    )
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            assert len(index.match(article)[0]) == 3
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_wildcards_find_each_articles_own_words_after_others_were_seen() -> None:
    """The index remembers which words it has seen start with each wildcard of its rules; an
    article's evidence must still name only its own words, in every field, wherever the
    wildcard sits in the query (a NEAR side, an entity alias, a required clause)."""
    from monitor.rules.model import Entity

    entities = {"seekers": Entity("seekers", aliases=("asylum seek*",))}
    index = RuleIndex.build(
        [
            Rule("near", "police NEAR/4 (kick* OR tase*)"),
            Rule("entity", "@seekers AND detain*"),
        ],
        entities,
    )
    first = Article(1, "a", "https://example.org/a", "Police kicked a man", content="Detained.")
    later = Article(
        1,
        "b",
        "https://example.org/b",
        "Kicking off",
        content="Police kicks asylum seeking families, detaining asylum seekers.",
    )
    none = Article(1, "c", "https://example.org/c", "Police", content="Kickstarter detainee.")

    def labels(article: Article) -> dict[str, list[str]]:
        found = {m.rule_id: [e.text for e in m.evidence] for m in index.match(article)[0]}
        assert found == {m.rule_id: [e.text for e in m.evidence] for m in index.match_all(article)}
        return found

    assert labels(first) == {"near": ["Police", "kicked"]}
    assert labels(later) == {
        "near": ["Police", "kicks"],
        "entity": ["asylum seeking", "detaining", "asylum seekers"],
    }
    assert labels(none) == {}
    assert labels(first) == {"near": ["Police", "kicked"]}  # the later words are not its own
