"""What is due in the outbox, with time as a parameter: schedules, missed slots after downtime,
the retry schedules, and who follows which match. No server, no sleeping."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from delivery_support import ALL_TAGS, Vigie, write_delivery_config

from monitor.config_delivery import SubscriberConfig, WebhookConfig, parse_schedule
from monitor.deliver import outbox
from monitor.deliver.dispatch import open_digests, sync_subscribers
from monitor.records import Match
from monitor.store import parse_iso

# Monday 23 November 2026, 12:00 UTC (13:00 in Paris).
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def fire(schedule: str, after: datetime, timezone: str = "UTC") -> datetime:
    cron = parse_schedule(schedule)
    assert cron is not None
    return outbox.next_fire(cron, timezone, after)


def test_daily_schedule_fires_at_local_time() -> None:
    # 08:00 in Paris is 07:00 UTC in winter; 13:00 has passed, so tomorrow.
    assert fire("daily 08:00", NOW, "Europe/Paris") == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert fire("daily 14:30", NOW, "Europe/Paris") == datetime(2026, 11, 23, 13, 30, tzinfo=UTC)


def test_next_fire_is_strictly_after_now() -> None:
    at_eight = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert fire("daily 08:00", at_eight) == at_eight + timedelta(days=1)


def test_daily_schedule_keeps_local_time_across_daylight_saving() -> None:
    # Paris moves to summer time on Sunday 29 March 2026: 08:00 local is 07:00 then 06:00 UTC.
    saturday = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    sunday = fire("daily 08:00", saturday, "Europe/Paris")
    assert sunday == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def test_weekly_schedule_fires_on_the_named_day() -> None:
    thursday = fire("weekly thu 08:00", NOW)
    assert thursday == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert thursday.strftime("%a") == "Thu"


@pytest.mark.parametrize(
    ("cron", "weekday"),
    [("0 8 * * 1", "Mon"), ("0 8 * * 0", "Sun"), ("0 8 * * 7", "Sun"), ("0 8 * * 5-6", "Fri")],
)
def test_cron_weekday_numbers_count_from_sunday_as_in_crontab(cron: str, weekday: str) -> None:
    # APScheduler 3 counts 0 as Monday; a crontab line must mean what it means in crontab.
    assert fire(cron, NOW).strftime("%a") == weekday


def test_cron_weekday_steps_and_lists() -> None:
    days = set()
    after = NOW
    for _ in range(7):
        after = fire("30 9 * * */2", after)  # Sunday, Tuesday, Thursday, Saturday
        days.add(after.strftime("%a"))
    assert days == {"Sun", "Tue", "Thu", "Sat"}
    assert fire("0 8 * * mon,wed", NOW).strftime("%a") == "Wed"


def test_hourly_fires_on_the_hour() -> None:
    assert fire("hourly", NOW + timedelta(minutes=1)) == NOW + timedelta(hours=1)


def test_webhook_retries_follow_the_standard_webhooks_schedule() -> None:
    rng = random.Random(7)
    waits = []
    for attempts in range(1, 9):
        when = outbox.retry_at(outbox.WEBHOOK_RETRY_DELAYS, attempts, NOW, rng)
        waits.append(None if when is None else (when - NOW).total_seconds())
    expected = [5, 300, 1800, 7200, 18000, 36000, 36000]
    for wait, planned in zip(waits, expected, strict=False):
        assert wait is not None
        assert planned * 0.9 <= wait <= planned * 1.1
    assert waits[7] is None  # the eighth failure is the last: dead-lettered


def test_jitter_spreads_retries_apart() -> None:
    rng = random.Random(3)
    times = {outbox.retry_at(outbox.WEBHOOK_RETRY_DELAYS, 3, NOW, rng) for _ in range(20)}
    assert len(times) == 20


def test_retry_after_is_honoured_up_to_the_longest_wait() -> None:
    rng = random.Random(1)
    later = outbox.retry_at(outbox.WEBHOOK_RETRY_DELAYS, 1, NOW, rng, retry_after=120)
    assert later == NOW + timedelta(seconds=120)
    capped = outbox.retry_at(outbox.WEBHOOK_RETRY_DELAYS, 1, NOW, rng, retry_after=10**7)
    assert capped == NOW + timedelta(seconds=36000)
    shorter = outbox.retry_at(outbox.WEBHOOK_RETRY_DELAYS, 2, NOW, rng, retry_after=1)
    assert shorter is not None and shorter - NOW >= timedelta(seconds=270)


def test_webhook_routes_by_rule_and_by_tag() -> None:
    hooks = [
        WebhookConfig("by-rule", "https://a.example/h", "whsec_x", rules=("calais",)),
        WebhookConfig(
            "by-tag", "https://b.example/h", "whsec_x", tags=("migrants",), mode="batched"
        ),
        WebhookConfig("nothing", "https://c.example/h", "whsec_x", tags=("sport",)),
    ]
    matches = [
        Match(1, "calais", 3.0, (), tags=("calais",)),
        Match(1, "migrants", 2.0, (), tags=("migrants",)),
    ]
    routes = outbox.webhook_routes(hooks, matches)
    assert [(r.name, r.batched, r.rule_ids) for r in routes] == [
        ("by-rule", False, ("calais",)),
        ("by-tag", True, ("migrants",)),
    ]


def test_subscriber_follows_rules_tags_and_minimum_priority() -> None:
    urgent_only = SubscriberConfig(
        "desk", "d@example.org", tags=("migrants",), min_priority="urgent"
    )
    assert urgent_only.follows("x", ("migrants",), "urgent")
    assert not urgent_only.follows("x", ("migrants",), "normal")
    assert not urgent_only.follows("x", ("calais",), "urgent")
    assert SubscriberConfig("r", "r@example.org", rules=("calais",)).follows("calais", (), "normal")


# Schedules kept in SQLite -----------------------------------------------------------------


@pytest.fixture
def daily(tmp_path: Path) -> Iterator[Vigie]:
    path = write_delivery_config(
        tmp_path,
        subscribers=[{"name": "desk", "email": "desk@example.org", "tags": ALL_TAGS}],
    )
    vigie = Vigie(path, NOW)
    yield vigie
    vigie.close()


def next_due(vigie: Vigie) -> datetime | None:
    state = vigie.store.subscriber_state("desk")
    assert state is not None
    return parse_iso(state["next_due"])


def test_a_new_subscriber_is_due_at_its_next_slot(daily: Vigie) -> None:
    assert next_due(daily) == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    daily.poll(NOW)
    assert open_digests(daily.store, daily.config.delivery, NOW + timedelta(hours=1)) == []


def test_restart_after_downtime_sends_one_digest_not_one_per_missed_slot(daily: Vigie) -> None:
    daily.poll(NOW)
    # Down from Monday until Thursday 10:00: three 08:00 slots were missed.
    back = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    first = open_digests(daily.store, daily.config.delivery, back)
    assert len(first) == 1
    assert next_due(daily) == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    # The next ticks, minutes later, find nothing due.
    for minutes in (1, 2, 30):
        later = back + timedelta(minutes=minutes)
        assert open_digests(daily.store, daily.config.delivery, later) == []
    assert daily.rows("SELECT count(*) FROM deliveries WHERE kind = 'digest'") == [(1,)]


def test_a_due_slot_with_nothing_new_sends_nothing_but_moves_on(daily: Vigie) -> None:
    at_slot = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert open_digests(daily.store, daily.config.delivery, at_slot) == []
    assert next_due(daily) == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_each_match_goes_into_one_digest_only(daily: Vigie) -> None:
    daily.poll(NOW)
    slot = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    [first] = open_digests(daily.store, daily.config.delivery, slot)
    again = open_digests(daily.store, daily.config.delivery, slot, force=True)
    assert again == []
    carried = daily.rows("SELECT count(*) FROM delivery_matches WHERE delivery_id = ?", (first,))
    matches = daily.rows("SELECT count(*) FROM matches")
    assert carried == matches and matches[0][0] > 0


def test_changing_the_schedule_moves_the_next_slot(daily: Vigie, tmp_path: Path) -> None:
    path = write_delivery_config(
        tmp_path,
        subscribers=[
            {
                "name": "desk",
                "email": "desk@example.org",
                "tags": ALL_TAGS,
                "schedule": "weekly fri 17:00",
                "timezone": "Europe/Paris",
            }
        ],
    )
    from monitor.config import load_config

    sync_subscribers(daily.store, load_config(path).delivery, NOW)
    assert next_due(daily) == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


def test_claim_window_starts_a_day_before_the_last_digest() -> None:
    since = NOW - timedelta(days=30)
    assert outbox.claim_window(since, None) == since
    assert outbox.claim_window(since, NOW) == NOW - timedelta(days=1)
    assert outbox.claim_window(NOW, NOW) == NOW


def test_a_match_stamped_before_the_last_digest_but_stored_after_it_still_goes(
    daily: Vigie,
) -> None:
    daily.poll(NOW)
    [first] = open_digests(
        daily.store, daily.config.delivery, NOW + timedelta(minutes=5), force=True
    )
    # A poll cycle that began at NOW commits another feed's match only now.
    [(article_id,)] = daily.rows(
        "SELECT id FROM articles WHERE id NOT IN "
        "(SELECT article_id FROM matches WHERE rule_id = 'calais') LIMIT 1"
    )
    with daily.store.transaction():
        daily.store.insert_matches([Match(article_id, "calais", 1.0, (), tags=("calais",))], NOW)
    [second] = open_digests(
        daily.store, daily.config.delivery, NOW + timedelta(minutes=6), force=True
    )
    assert daily.rows(
        "SELECT article_id, rule_id FROM delivery_matches WHERE delivery_id = ?", (second,)
    ) == [(article_id, "calais")]
    assert first != second


def test_deliveries_go_when_retention_has_pruned_their_matches(daily: Vigie) -> None:
    daily.poll(NOW)
    [digest] = open_digests(daily.store, daily.config.delivery, NOW, force=True)
    daily.store.record_attempt(digest, "sent", NOW)
    assert daily.store.prune_deliveries() == 0  # its articles are all there
    daily.rows("PRAGMA foreign_keys = OFF")  # retention's own order of deletes is not the point
    [(oldest,)] = daily.rows("SELECT min(id) FROM articles")
    daily.rows("DELETE FROM articles WHERE id = ?", (oldest,))
    assert daily.store.prune_deliveries() == 0  # it still carries the other articles
    carried = "SELECT count(*) FROM delivery_matches WHERE article_id = ?"
    assert daily.rows(carried, (oldest,)) == [(0,)]
    [(newest,)] = daily.rows("SELECT max(id) + 1 FROM articles")  # a later, unmatched article
    daily.rows("INSERT INTO articles (id, feed_id, guid) VALUES (?, 1, 'later')", (newest,))
    daily.rows("DELETE FROM articles WHERE id < ?", (newest,))
    assert daily.store.prune_deliveries() == 1  # now it carried only pruned articles
    assert daily.rows("SELECT count(*) FROM deliveries") == [(0,)]


def a_story_told_then_copied(daily: Vigie, outcome: str = "") -> tuple[int, str, int]:
    """A digest carrying a story's article under a rule (given `outcome`, if any), then another
    outlet's copy joining that story, matched by that rule: (digest, rule, copy)."""
    daily.poll(NOW)
    [first] = open_digests(daily.store, daily.config.delivery, NOW, force=True)
    [(told, rule)] = daily.rows(
        "SELECT article_id, rule_id FROM delivery_matches WHERE delivery_id = ? LIMIT 1", (first,)
    )
    [(story,)] = daily.rows("SELECT story_id FROM articles WHERE id = ?", (told,))
    assert story is not None
    if outcome:
        daily.store.record_attempt(first, outcome, NOW, last_status=554, last_error="rejected")
    with daily.store.transaction():
        daily.rows("INSERT INTO articles (feed_id, guid, title) VALUES (1, 'copy', 'A copy')")
        [(copy,)] = daily.rows("SELECT id FROM articles WHERE guid = 'copy'")
        daily.store.join_story(copy, story, NOW)
        daily.store.record_matches(copy, 1, [Match(copy, rule, 1.0, (), tags=(rule,))], NOW)
    return first, rule, copy


def test_a_later_outlets_copy_of_a_story_already_sent_is_not_sent_again(daily: Vigie) -> None:
    """One alert per story: a copy that joins the story after its digest went is left out,
    under the rules that story was sent for; under another rule it is news to the subscriber."""
    _, rule, copy = a_story_told_then_copied(daily)
    other = "a-rule-added-later"
    later = NOW + timedelta(minutes=5)
    assert open_digests(daily.store, daily.config.delivery, later, force=True) == []
    with daily.store.transaction():
        daily.store.record_matches(
            copy, 1, [Match(copy, other, 1.0, (), tags=tuple(ALL_TAGS))], NOW
        )
    [second] = open_digests(daily.store, daily.config.delivery, later, force=True)
    assert daily.rows(
        "SELECT article_id, rule_id FROM delivery_matches WHERE delivery_id = ?", (second,)
    ) == [(copy, other)]


def test_a_copy_held_back_stays_held_back_when_retention_prunes_the_article_sent(
    daily: Vigie,
) -> None:
    """A researcher's review: once retention pruned the article a digest had carried, the
    story's later copies, held back until then, came out as news in the next digest."""
    first, rule, copy = a_story_told_then_copied(daily)
    daily.store.record_attempt(first, "sent", NOW)
    later = NOW + timedelta(days=2)
    daily.rows("UPDATE articles SET first_seen = ? WHERE id = ?", (later.isoformat(), copy))
    while daily.store.prune(NOW + timedelta(days=1), later):
        pass
    assert daily.rows("SELECT id FROM articles") == [(copy,)]

    assert open_digests(daily.store, daily.config.delivery, later, force=True) == []
    [(story,)] = daily.rows("SELECT story_id FROM articles WHERE id = ?", (copy,))
    assert daily.store.stories_sent_before("desk", [str(story)], later) == {str(story): NOW}

    while daily.store.prune(later + timedelta(days=1), later):
        pass  # the story goes with its last article, and what was told of it
    assert daily.rows("SELECT count(*) FROM told_stories") == [(0,)]


def test_a_digest_still_retrying_when_pruned_tells_nothing(daily: Vigie) -> None:
    """A code review: pruning recorded a digest still retrying as having told the story, so
    when it then died the story's copies stayed held back for good."""
    first, rule, copy = a_story_told_then_copied(daily)
    daily.store.record_attempt(first, "pending", NOW, last_status=451, last_error="try later")
    later = NOW + timedelta(days=2)
    daily.rows("UPDATE articles SET first_seen = ? WHERE id = ?", (later.isoformat(), copy))
    while daily.store.prune(NOW + timedelta(days=1), later):
        pass
    assert daily.rows("SELECT count(*) FROM told_stories") == [(0,)]
    daily.store.record_attempt(first, "dead", later, last_status=451, last_error="gave up")
    [second] = open_digests(daily.store, daily.config.delivery, later, force=True)
    assert daily.rows(
        "SELECT article_id, rule_id FROM delivery_matches WHERE delivery_id = ?", (second,)
    ) == [(copy, rule)]


@pytest.mark.parametrize("outcome", ["failed", "dead"])
def test_a_later_outlets_copy_goes_when_the_storys_digest_never_arrived(
    daily: Vigie, outcome: str
) -> None:
    """The copy was left out because a digest had carried the story, though that digest was
    refused for good (a 554) or gave up retrying: the subscriber never heard of the story."""
    first, rule, copy = a_story_told_then_copied(daily, outcome)
    later = NOW + timedelta(minutes=5)
    [second] = open_digests(daily.store, daily.config.delivery, later, force=True)
    assert daily.rows(
        "SELECT article_id, rule_id FROM delivery_matches WHERE delivery_id = ?", (second,)
    ) == [(copy, rule)]


def test_pruning_every_article_forgets_the_deliveries_that_carried_them(daily: Vigie) -> None:
    """Found with storage.retention = "1m": every article pruned, the sent digest stayed with
    its items, and `deliveries retry` sent it again as an email saying nothing matched."""
    daily.poll(NOW)
    [sent] = open_digests(daily.store, daily.config.delivery, NOW, force=True)
    daily.store.record_attempt(sent, "sent", NOW)
    with daily.store.transaction():
        daily.rows(
            "INSERT INTO articles (feed_id, guid, first_seen) VALUES (1, 'x', ?)",
            (NOW.isoformat(),),
        )
        [(late,)] = daily.rows("SELECT id FROM articles WHERE guid = 'x'")
        daily.store.record_matches(late, 1, [Match(late, "calais", 1.0, (), tags=("calais",))], NOW)
    [waiting] = open_digests(daily.store, daily.config.delivery, NOW, force=True)  # not sent
    later = NOW + timedelta(days=2)
    while daily.store.prune(later, later):
        pass
    assert daily.rows("SELECT count(*) FROM articles") == [(0,)]
    assert daily.rows("SELECT id FROM deliveries") == [(waiting,)]  # still due: it reports
    assert daily.rows("SELECT count(*) FROM delivery_matches") == [(0,)]


def test_a_daily_digest_in_the_hour_clocks_repeat_goes_once() -> None:
    """On the night clocks go back, 02:30 comes twice in Paris: "daily 02:30" sent two
    digests that day. An hourly schedule still fires every real hour."""
    fires, at = [], datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    for _ in range(3):
        at = outbox.next_fire("30 2 * * *", "Europe/Paris", at)
        fires.append(at)
    assert fires == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 summer time
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 winter time, the next day
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]
    hourly, at = [], datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    for _ in range(3):
        at = outbox.next_fire("30 * * * *", "Europe/Paris", at)
        hourly.append(at.hour)
    assert hourly == [0, 1, 2]  # 02:30 twice, an hour apart
