"""The presearcher only saves work: it must never lose a match that evaluating every rule finds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from monitor.rules.index import RuleIndex
from monitor.rules.stats import TermStats

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.mark.parametrize("with_stats", [False, True])
def test_index_finds_exactly_what_evaluating_every_rule_finds(with_stats: bool) -> None:
    if not (SHARED / "corpora" / "feeds").is_dir():
        pytest.skip("../shared/corpora is not beside the repository")
    from bench.matching import feed_items, generate_rules, vocabulary

    items = feed_items()
    words, df = vocabulary(items)
    stats = TermStats(df, len(items)) if with_stats else TermStats()
    rng = random.Random(3)
    rules, entities = generate_rules(800, words, df, rng, specific=False)
    index = RuleIndex.build(rules, entities, stats)
    sample = rng.sample(items, 60)
    total = 0
    for article in sample:
        fast = {m.rule_id: m.evidence for m in index.match(article)[0]}
        slow = {m.rule_id: m.evidence for m in index.match_all(article)}
        assert fast == slow, article.url
        total += len(fast)
    assert total > 0  # the sample exercises real matches
