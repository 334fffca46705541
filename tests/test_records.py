"""Records: `evolve`, the pipeline's cheap dataclasses.replace, gives what replace gives."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from monitor.records import Article, evolve


def test_evolve_copies_with_changes_and_leaves_the_record_as_it_was() -> None:
    article = Article(
        feed_id=3,
        guid="g-1",
        url="https://example.org/a",
        title="Ferry services cancelled",
        published=datetime(2026, 12, 1, tzinfo=UTC),
        authors=("A. Writer",),
    )
    changed = evolve(article, id=41, story_id=7, language="en")
    assert changed == dataclasses.replace(article, id=41, story_id=7, language="en")
    assert (changed.id, changed.story_id, changed.title) == (41, 7, "Ferry services cancelled")
    assert (article.id, article.story_id, article.language) == (None, None, "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.title = "x"  # type: ignore[misc]


def test_evolve_refuses_a_name_that_is_not_a_field() -> None:
    article = Article(feed_id=1, guid="g", url="", title="t")
    with pytest.raises(TypeError, match="no field 'storyid'"):
        evolve(article, storyid=3)
