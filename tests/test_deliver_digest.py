"""Digest rendering, pure: grouping and order, highlighting, escaping of hostile feed text,
stories, the subject, and the headers mail clients and list tools rely on."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

from delivery_support import DIGEST_HEADERS
from html_support import Styled

from monitor.config_delivery import (
    DIGEST_LANGUAGES,
    DeliveryConfig,
    SmtpConfig,
    SubscriberConfig,
)
from monitor.deliver.digest import (
    TEMPLATES,
    build_digest,
    compose,
    environment,
    footer,
    render,
    snippet_html,
)
from monitor.deliver.fit import HTML_BUDGET, carried_size, fitted
from monitor.deliver.outbox import Labels
from monitor.deliver.wording import CATALOGS
from monitor.records import Article, Delivery, Evidence, Match
from monitor.store import OutboxItem

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
SUBSCRIBER = SubscriberConfig(
    "desk", "desk@example.org", tags=("migrants", "calais"), timezone="Europe/Paris"
)
LABELS = Labels({"calais": "Calais", "migrants": "Migrants", "violence": "Police violence"})
DELIVERY = Delivery(7, "digest", "desk", "0123abcd", "pending", NOW)
CONFIG = DeliveryConfig(outbox=Path("outbox"), from_header="Vigie <vigie@news.example>")
FOOTER = {"follows": "tag calais", "schedule": "daily 08:00", "unsubscribe_url": "mailto:x@y"}


def item(
    article_id: int,
    rule_id: str,
    *,
    title: str = "",
    source: str = "Coastal Herald",
    score: float = 3.0,
    priority: str = "normal",
    snippet: str = "boats left ⟦Calais⟧ at dawn",
    url: str = "",
    story: str | None = None,
    hours_ago: int = 1,
) -> OutboxItem:
    article = Article(
        feed_id=1,
        guid=str(article_id),
        url=url or f"https://news.example/{article_id}",
        title=title or f"Article {article_id}",
        published=NOW - timedelta(hours=hours_ago),
        feed_name=source,
        id=article_id,
    )
    match = Match(article_id, rule_id, score, (), snippet=snippet, priority=priority)
    return OutboxItem(article, match, story)


class Tags(HTMLParser):
    """Every start tag of an HTML document, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def parse(message: EmailMessage) -> email.message.EmailMessage:
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def test_an_article_with_only_a_title_is_not_shown_twice() -> None:
    """Its snippet, the title marked, was printed again under the title; a snippet with more
    than the title is shown."""
    for snippet, shown in (("Boats leave ⟦Calais⟧", 1), ("Boats leave ⟦Calais⟧ at dawn", 2)):
        lone = item(1, "calais", title="Boats leave Calais", snippet=snippet)
        html, text = render(build_digest([lone], SUBSCRIBER, LABELS, NOW), FOOTER)
        body = html.split("<body", 1)[1]  # the subject, in <title>, names a lone article
        assert text.count("Boats leave") == body.count("Boats leave") == shown, snippet


def test_a_flood_of_matches_shows_the_best_and_counts_the_others() -> None:
    """A feed listing 50,000 matching items made one digest of 40 MB, which mail servers
    refuse for good, losing the real news claimed with it (security review)."""
    flood = [item(i, "calais", score=1.0) for i in range(1, 301)]
    best = [
        item(1001, "violence", priority="urgent", score=2.0, title="Urgent one"),
        item(1002, "calais", score=9.0, title="Best scored"),
    ]
    subscriber = replace(SUBSCRIBER, max_entries=50)
    digest = build_digest(flood + best, subscriber, LABELS, NOW)
    shown = [e.title for s in digest.sections for e in s.entries]
    assert len(shown) == 50 and "Urgent one" in shown and "Best scored" in shown
    assert digest.omitted == 252 and digest.entries == 302
    assert digest.subject.startswith("Vigie: 1 urgent, 302 articles")
    html, text = render(digest, FOOTER)
    for part in (html, text):
        assert "And 252 articles past this digest's limit: those above are the most" in part
        assert part.count("Article ") == 48  # the flood's best, beside the two above
    french = build_digest(flood + best, replace(subscriber, language="fr"), LABELS, NOW)
    assert "Et 252 articles au-delà de la limite de ce résumé" in render(french, FOOTER)[1]
    # Under the limit, nothing is said.
    assert "limit" not in render(build_digest(best, subscriber, LABELS, NOW), FOOTER)[1]
    # Urgent entries past the limit are counted as urgent in the subject.
    urgent = [item(i, "violence", priority="urgent", score=1.0) for i in range(1, 6)]
    capped = build_digest(urgent, replace(SUBSCRIBER, max_entries=3), LABELS, NOW)
    assert capped.subject.startswith("Vigie: 5 urgent, 5 articles")


SENTENCE = "Boats left ⟦Calais⟧ at dawn, the prefecture said, as the coastguard counted forty "


def busy(count: int) -> list[OutboxItem]:
    """`count` articles of entries as long as the real ones: 240 characters of snippet, a long
    headline and link; one urgent, scored lowest."""
    return [
        item(
            number,
            ("calais", "migrants", "violence")[number % 3],
            title=f"Coastguard counts {number} people on a boat off Wimereux, prefecture says",
            url=f"https://news.example/2026/11/23/coastguard-counts-people-off-wimereux-{number}",
            snippet=(SENTENCE * 3)[:240],
            score=1.0 if number == 1 else 2.0 + number % 50,
            priority="urgent" if number == 1 else "normal",
        )
        for number in range(1, count + 1)
    ]


def test_past_what_gmail_shows_the_lowest_scored_are_listed_by_headline() -> None:
    """Gmail hides what passes about 102 KB of an email's HTML behind "[Message clipped]": the
    later entries and the footer's unsubscribe link with them. Past it, the least urgent and
    lowest-scored entries are listed by their linked headline and outlet alone, as few as make
    it fit, after the others of their section; a line under the summary counts them. The plain
    text has them all in full."""
    digest = build_digest(busy(200), SUBSCRIBER, LABELS, NOW)
    html, text = render(digest, FOOTER)
    assert carried_size(html) <= HTML_BUDGET < 102_000
    shown = Styled(html)
    full = {t for t, style in shown.texts if style.get("font-size") == "15px"}
    listed = {t for t, style in shown.texts if style.get("color") == "#1d4ed8"} - full
    assert len(full) + len(listed) == 200 and 40 <= len(full) < 200
    scores = {e.title: e.rank[1] for s in digest.sections for e in s.entries}
    urgent = "Coastguard counts 1 people on a boat off Wimereux, prefecture says"
    assert urgent in full  # scored 1.0, but urgent
    assert min(scores[t] for t in full - {urgent}) >= max(scores[t] for t in listed)
    said = " ".join(html.split())
    assert f"listed by their headline alone ({len(listed)} articles)" in said
    order = [t for t, _ in shown.texts if t in scores]
    for section in digest.sections:  # each section's full entries, then its headlines
        titles = [t for t in order if t in {e.title for e in section.entries}]
        assert titles == sorted(titles, key=lambda t: t in listed)
    assert text.count("Matched:") == 200 and "headline alone" not in text
    french = build_digest(busy(200), replace(SUBSCRIBER, language="fr"), LABELS, NOW)
    said = re.sub(r"[ \n]+", " ", unescape(render(french, FOOTER)[0]))
    assert re.search(r"n'y sont cités que par leur titre \(\d+ articles\)\u00a0; sa", said)
    # Under the limit, every entry is whole, and nothing is said.
    html, _ = render(build_digest(busy(60), SUBSCRIBER, LABELS, NOW), FOOTER)
    assert html.count("Matched:") == 60 and "headline alone" not in html


def test_a_digest_too_long_even_by_headlines_lists_them_all_by_headline() -> None:
    """max_entries goes up to 1,000: not even their headlines fit in what Gmail shows whole.
    Every entry is then listed by its headline, the HTML as short as it can be."""
    digest = build_digest(busy(30), SUBSCRIBER, LABELS, NOW)
    page = environment(True, "en").get_template("digest.html")
    html = fitted(digest, lambda shown: page.render({"digest": shown, **FOOTER}), budget=1)
    assert "Matched:" not in html and "headline alone (30 articles)" in " ".join(html.split())
    assert html.count('href="https://news.example/') == 30 and 'href="mailto:x@y"' in html


def test_what_a_subscriber_reads_says_why_and_when(tmp_path: Path) -> None:
    """From a subscribers' review: a match in the title showed no word in bold anywhere; six
    one-article digests had one subject, "Vigie: 1 article — Police violence 1"; an undated
    item showed the time Vigie saw it as its publication time; the heading named the config's
    short name; "08:00" had no time zone; without CSS a heading read "Calais2"."""
    title = "Boulogne-sur-Mer prosecutor opens inquiry into Calais officer"
    start = title.index("Calais")
    evidence = (Evidence("title", start, start + 6, "Calais", "calais"),)
    article = Article(
        feed_id=1, guid="1", url="https://news.example/1", title=title,
        published=NOW - timedelta(hours=1), first_seen=NOW - timedelta(hours=1),  # undated
        feed_name="Coastal Herald", id=1,
    )  # fmt: skip
    lone = OutboxItem(article, Match(1, "calais", 3.0, evidence, snippet="The prefecture said"))
    desk = replace(SUBSCRIBER, email="Inès Morel <desk@example.org>")
    digest = build_digest([lone], desk, LABELS, NOW)
    assert digest.subject == f"Vigie: {title}"
    assert digest.heading == "Vigie digest for Inès Morel"
    html, text = render(digest, footer(desk, CONFIG, "tok"))
    assert re.search(r"into <b[^>]*>Calais</b> officer", html) and "into *Calais* officer" in text
    assert "background" in html.split("into <b", 1)[1].split(">", 1)[0]  # seen in a bold title
    assert "first seen Mon 23 Nov, 07:00" in text
    assert "(daily 08:00, Europe/Paris)" in " ".join(text.split())
    assert "Boulogne-sur-Mer" in text  # a hyphen is no place to break a line
    heading = html.split("<h2", 1)[1].split("</h2>", 1)[0]
    assert re.sub(r"<[^>]+>", "", heading).split(">", 1)[1].strip() == "Calais (1)"
    # Evidence of another revision's title marks nothing; a phrase over its word, the phrase.
    stale = Match(1, "calais", 3.0, (Evidence("title", 0, 5, "Short", None),), snippet="x")
    assert (
        "<b>"
        not in render(build_digest([OutboxItem(article, stale)], desk, LABELS, NOW), FOOTER)[0]
    )
    phrase = title.index("Calais officer")
    both = (
        Evidence("title", phrase, phrase + 6, "Calais", None),
        Evidence("title", phrase, phrase + 14, "Calais officer", None),
    )
    marked = build_digest(
        [OutboxItem(article, replace(lone.match, evidence=both))], desk, LABELS, NOW
    )
    assert "*Calais officer*" in render(marked, footer(desk, CONFIG, "tok"))[1]
    # A headline too long for a subject is cut with an ellipsis.
    long_title = replace(article, title="Calais " + "word " * 60)
    cut = build_digest([OutboxItem(long_title, lone.match)], desk, LABELS, NOW).subject
    assert cut.endswith("…") and len(cut) <= len("Vigie: ") + 150
    dated = replace(article, first_seen=NOW)
    entry = build_digest([OutboxItem(dated, lone.match)], desk, LABELS, NOW).sections[0]
    assert entry.entries[0].when == "Mon 23 Nov, 07:00"


def test_sections_by_rule_urgent_first_then_busiest() -> None:
    digest = build_digest(
        [
            item(1, "calais"),
            item(2, "calais"),
            item(3, "migrants"),
            item(4, "violence", priority="urgent"),
        ],
        SUBSCRIBER,
        LABELS,
        NOW,
    )
    assert [(s.name, s.urgent, len(s.entries)) for s in digest.sections] == [
        ("Police violence", True, 1),
        ("Calais", False, 2),
        ("Migrants", False, 1),
    ]
    assert digest.subject == "Vigie: 1 urgent, 4 articles — Police violence 1; Calais 2; +1 more"


def test_an_article_matching_several_rules_appears_once_under_its_best_rule() -> None:
    digest = build_digest(
        [
            item(1, "calais", score=2.0),
            item(1, "migrants", score=9.0),
            item(1, "violence", score=1.0, priority="urgent"),
            item(2, "calais", score=5.0),
            item(2, "migrants", score=1.0),
        ],
        SUBSCRIBER,
        LABELS,
        NOW,
    )
    placed = {s.name: [e.title for e in s.entries] for s in digest.sections}
    assert placed == {"Police violence": ["Article 1"], "Calais": ["Article 2"]}
    [first] = digest.sections[0].entries
    assert first.rules == ("Police violence", "Migrants", "Calais")


def test_rule_names_that_hold_a_comma_are_told_apart() -> None:
    """ "Matched: Police violence, Migrants, refugees and asylum" read as three rules, and the
    subject's "Police violence 1, Migrants, refugees and asylum 1" too: rule names are set
    apart by semicolons (a no-break space before them in French)."""
    labels = Labels({"migrants": "Migrants, refugees and asylum", "violence": "Police violence"})
    items = [item(1, "violence", score=5.0), item(1, "migrants"), item(2, "migrants")]
    for language, subject, matched in (
        ("en", "Vigie: 2 articles — ", "Matched: Police violence; Migrants, refugees and asylum"),
        ("fr", "Vigie\u00a0: 2 articles — ", "Règles\u00a0: Police violence\u00a0; Migrants,"),
    ):
        subscriber = replace(SUBSCRIBER, language=language)
        digest = build_digest(items, subscriber, labels, NOW)
        separator = "; " if language == "en" else "\u00a0; "
        names = separator.join(["Migrants, refugees and asylum 1", "Police violence 1"])
        assert digest.subject == subject + names
        html, text = render(digest, FOOTER)
        assert matched in text and matched in unescape(html)


def test_entries_best_first_then_newest() -> None:
    digest = build_digest(
        [
            item(1, "calais", score=2.0, hours_ago=1),
            item(2, "calais", score=6.0, hours_ago=9),
            item(3, "calais", score=2.0, hours_ago=3),
        ],
        SUBSCRIBER,
        LABELS,
        NOW,
    )
    assert [e.title for e in digest.sections[0].entries] == ["Article 2", "Article 1", "Article 3"]


def test_one_entry_per_story_with_the_other_outlets() -> None:
    digest = build_digest(
        [
            item(1, "calais", source="Coastal Herald", story="s1", score=3.0),
            item(2, "calais", source="Nord Actu", story="s1", score=5.0),
            item(3, "calais", source="Wire Digest", story="s1", score=1.0),
            item(4, "calais", source="Wire Digest", story=None),
        ],
        SUBSCRIBER,
        LABELS,
        NOW,
    )
    entries = digest.sections[0].entries
    assert len(entries) == 2
    lead = entries[0]
    assert lead.source == "Nord Actu"  # the best-scoring report leads
    assert [other.source for other in lead.also] == ["Coastal Herald", "Wire Digest"]
    assert digest.subject.startswith("Vigie: 2 stories")
    html, text = render(digest, FOOTER)
    assert "Also reported by" in html
    assert (
        "  Also reported by:\n  - Coastal Herald: Article 1\n    https://news.example/1\n"
        "  - Wire Digest: Article 3\n    https://news.example/3\n" in text
    )


def test_of_copies_scored_alike_the_first_published_leads_its_story() -> None:
    """A wire story run word for word by three outlets: the newest copy led, and its time read
    as when the story broke, the outlet that had it first listed under it (a subscribers'
    review)."""
    digest = build_digest(
        [
            item(1, "calais", source="Wire Service", story="s1", hours_ago=1),
            item(2, "calais", source="Daily Courier", story="s1", hours_ago=4),
            item(3, "calais", source="Coastal Herald", story="s1", hours_ago=2),
            item(4, "calais", source="Nord Actu", hours_ago=3),
        ],
        SUBSCRIBER,
        LABELS,
        NOW,
    )
    alone, story = digest.sections[0].entries  # the newest first, by the times they show
    assert story.source == "Daily Courier" and alone.source == "Nord Actu"
    # Who had it first, first: Coastal Herald two hours ago, the wire an hour ago.
    assert [other.source for other in story.also] == ["Coastal Herald", "Wire Service"]


def test_other_outlets_show_their_headline_where_it_is_not_the_entrys() -> None:
    """Two reports grouped as one story showed only the other outlet's name: a drowning off
    Sangatte grouped with a camp clearance in Calais the same morning was hidden under it (an
    editor's review). Another outlet's own headline is shown beside its name; the same
    headline as the entry's is not repeated."""
    cleared = item(
        1,
        "calais",
        title="Calais camp cleared by police",
        source="Daily Post",
        story="s1",
        score=5.0,
        hours_ago=2,
    )
    drowned = item(
        2,
        "calais",
        title="Two drown off Sangatte",
        source="Wire Service",
        story="s1",
        hours_ago=3,
    )
    same = item(
        3, "calais", title="CALAIS CAMP CLEARED BY POLICE", source="Coastal Herald", story="s1"
    )
    digest = build_digest([cleared, drowned, same], SUBSCRIBER, LABELS, NOW)
    [entry] = digest.sections[0].entries
    assert entry.title == "Calais camp cleared by police"
    assert [(o.source, o.title) for o in entry.also] == [
        ("Wire Service", "Two drown off Sangatte"),
        ("Coastal Herald", ""),
    ]
    html, text = render(digest, FOOTER)
    assert "  - Wire Service: Two drown off Sangatte\n    https://news.example/2\n" in text
    assert "  - Coastal Herald\n    https://news.example/3\n" in text
    assert re.search(
        r">Wire Service</a> \(<span dir=\"auto\">Two drown off Sangatte</span>\)", html
    )


def test_a_feed_without_a_name_or_title_is_shown_by_its_host() -> None:
    """A feed without a name or a title (a partner's private feed) was an empty source under
    its headline and an empty name under "Also reported by" (a code review). Its address's
    host names it, never the address, which may carry its key."""
    untitled = replace(
        item(1, "calais", source="", story="s1", hours_ago=3),
        feed_url="https://partner.example/feed.rss?key=s3cret",
    )
    later = replace(
        item(2, "calais", source="", story="s1", hours_ago=1),
        feed_url="https://wire.example/rss",
    )
    [entry] = build_digest([untitled, later], SUBSCRIBER, LABELS, NOW).sections[0].entries
    assert entry.source == "partner.example"
    assert [other.source for other in entry.also] == ["wire.example"]
    html, text = render(build_digest([untitled, later], SUBSCRIBER, LABELS, NOW), FOOTER)
    assert "partner.example" in text and "s3cret" not in html + text


def test_without_story_ids_each_article_is_its_own_entry() -> None:
    digest = build_digest([item(1, "calais"), item(2, "calais")], SUBSCRIBER, LABELS, NOW)
    assert digest.entries == 2 and not any(e.also for e in digest.sections[0].entries)


def test_matched_words_are_bold_in_html_and_starred_in_text() -> None:
    digest = build_digest([item(1, "calais")], SUBSCRIBER, LABELS, NOW)
    html, text = render(digest, FOOTER)
    assert ">Calais</b> at dawn" in html
    assert "boats left *Calais* at dawn" in text


def test_feed_text_is_escaped_never_markup_or_template() -> None:
    hostile = item(
        1,
        "calais",
        title="<script>alert(1)</script> {{ 7*7 }} {% for x in y %}",
        source='<img src=x onerror="steal()">',
        snippet='<a href="javascript:evil()">⟦click⟧</a> & {{ config }}',
        url="javascript:alert(1)",
    )
    digest = build_digest([hostile], SUBSCRIBER, LABELS, NOW)
    html, text = render(digest, FOOTER)
    tags = Tags()
    tags.feed(html)
    assert {"script", "img", "a"} & {tag for tag, _ in tags.found} == {"a"}
    links = [dict(attrs).get("href") or "" for tag, attrs in tags.found if tag == "a"]
    assert links == ["mailto:x@y"]  # the unsubscribe link only: a javascript: URL is not linked
    assert not any(name.startswith("on") for _, attrs in tags.found for name, _ in attrs)
    assert "&lt;script&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in html  # feed text is never template source
    assert snippet_html("<b>x</b> ⟦y⟧") == "&lt;b&gt;x&lt;/b&gt; <b>y</b>"
    assert "<script>alert(1)</script> {{ 7*7 }}" in text  # plain text stays plain


class Directions(HTMLParser):
    """Each piece of text of an HTML document, with the direction its nearest `dir` gives."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str | None] = []
        self.text: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("br", "meta", "img", "hr", "link"):
            self.open.append(dict(attrs).get("dir"))

    def handle_endtag(self, tag: str) -> None:
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text[data.strip()] = next((d for d in reversed(self.open) if d), None)


def test_a_right_to_left_headline_reads_right_to_left() -> None:
    """An Arabic headline and snippet were laid out left to right, as the digest's own words:
    aligned left, and a "!" or a number at their end shown at their start (a subscribers'
    review). Feed text takes its direction from its own first letters."""
    arabic = item(
        1,
        "calais",
        title="مهاجرون في كاليه!",
        snippet="الشرطة تفكك المخيم في ⟦Calais⟧ 2026",
    )
    digest = build_digest([arabic, item(2, "calais")], SUBSCRIBER, LABELS, NOW)
    html, _ = render(digest, FOOTER)
    read = Directions()
    read.feed(html)
    assert read.text["مهاجرون في كاليه!"] == "auto"
    assert read.text["الشرطة تفكك المخيم في"] == "auto"
    assert read.text["Article 2"] == "auto"  # a left-to-right one stays so
    assert read.text["Vigie digest for desk"] is None  # the digest's own words: its language's
    page = environment(True, "en").get_template("digest.html")
    read = Directions()  # listed by its headline alone
    read.feed(fitted(digest, lambda shown: page.render({"digest": shown, **FOOTER}), 1))
    assert read.text["مهاجرون في كاليه!"] == "auto"


def contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb (or #rgb) colours."""

    def luminance(colour: str) -> float:
        if len(colour) == 4:
            colour = "#" + "".join(c * 2 for c in colour[1:])
        rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def every_kind_of_entry() -> list[OutboxItem]:
    """Items whose digest shows everything an entry can: urgent, updated with its headline
    before, other outlets linked or not, a story sent before, a headline without a link."""
    return [
        item(1, "violence", priority="urgent", score=9.0, story="s1"),
        item(2, "violence", source="Nord Actu", story="s1"),
        item(3, "violence", source="Wire Digest", story="s1", url="ftp://wire.example/3"),
        replace(item(4, "calais"), updated=True, earlier_title="Two questioned"),
        item(5, "migrants", story="s5"),
        item(6, "calais", url="javascript:alert(1)"),
    ]


def test_every_word_of_the_digest_can_be_read() -> None:
    """Why the subscriber receives the digest, and the link to stop it, were light grey on
    light grey (2.3:1; the link 4.4:1), hard to read on a phone in daylight (a subscribers'
    review): every piece of text, on the background it is drawn on, reaches WCAG's 4.5:1 for
    small text, as a client that reads only style attributes shows it."""
    digest = build_digest(every_kind_of_entry(), SUBSCRIBER, LABELS, NOW, {"s5": NOW})
    html, _ = render(digest, FOOTER)
    page = environment(True, "en").get_template("digest.html")
    by_headline = fitted(digest, lambda shown: page.render({"digest": shown, **FOOTER}), 1)
    for drawn, words in (
        (html, ("URGENT", "updated", "Also reported by", "Story first sent", "Unsubscribe")),
        (by_headline, ("headline alone", "Article 6", "Unsubscribe")),
    ):
        shown = Styled(drawn)
        said = " ".join(text for text, _ in shown.texts)
        assert all(w.lower() in said.lower() for w in words), words
        for text, style in shown.texts:
            assert contrast(style["color"], style["background"]) >= 4.5, (text, style)


def test_outlook_is_given_the_card_width_in_a_table_it_alone_reads() -> None:
    """Outlook on Windows ignores max-width on a div: the digest filled a wide window, its
    lines 200 characters long (a subscribers' review). A conditional table of the card's width
    wraps the card and the footer, and other clients see only comments."""
    html, _ = render(build_digest([item(1, "calais")], SUBSCRIBER, LABELS, NOW), FOOTER)
    card = re.search(r'<div style="[^"]*max-width: ?(\d+)px', html)
    assert card, "the card's max-width"
    opened = html.index("<!--[if mso]><table")
    assert f'width="{card.group(1)}"' in html[opened : html.index("<![endif]-->", opened)]
    closed = html.index("<!--[if mso]></td></tr></table><![endif]-->")
    assert opened < card.start() < html.index("You receive this digest") < closed


def test_a_title_stored_over_several_lines_is_one_line_in_the_text_part() -> None:
    """A hostile title must not write a heading or an entry of its own into the digest."""
    forged = item(
        1, "calais", title="Refugees in Calais\n\n== FAKE SECTION ==\n* https://evil.example"
    )
    _, text = render(build_digest([forged], SUBSCRIBER, LABELS, NOW), FOOTER)
    assert "* Refugees in Calais == FAKE SECTION == * https://evil.example\n" in text
    assert "\n== FAKE" not in text and "\n* https://evil" not in text


def test_a_feed_name_over_several_lines_is_one_line_in_the_text_part() -> None:
    """A security review's OPML title wrote "== URGENT: Security (1) ==" and a phishing entry
    into the plain-text digest of every article of its feed."""
    forged = item(1, "calais", source="Evil\n\n== URGENT: Security (1) ==\n\n* Reset now")
    _, text = render(build_digest([forged], SUBSCRIBER, LABELS, NOW), FOOTER)
    assert "Evil == URGENT: Security (1) == * Reset now" in text
    assert "\n== URGENT" not in text and "\n* Reset" not in text


def test_each_element_carries_its_own_style() -> None:
    """Mail clients drop <style>: each element is styled by its own style attribute, and has
    no class, which nothing would read (each cost a 200-entry digest 15 KB of the 102 KB
    Gmail shows before it clips an email)."""
    html, _ = render(build_digest(every_kind_of_entry(), SUBSCRIBER, LABELS, NOW), FOOTER)
    assert "<style" not in html and "class=" not in html
    shown = Styled(html)
    headline = shown.style_of("Article 1")
    assert headline["font-size"] == "15px" and headline["font-weight"] == "bold"
    assert shown.style_of("Calais")["background"] == "#fef3c7"  # a matched word


def test_email_is_multipart_alternative_with_list_headers() -> None:
    digest = build_digest([item(1, "calais")], SUBSCRIBER, LABELS, NOW)
    message = parse(compose(digest, DELIVERY, SUBSCRIBER, CONFIG, "tok", NOW))
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["Message-ID"] == "<vigie.digest.7.0123abcd@news.example>"
    assert message["From"] == "Vigie <vigie@news.example>"
    assert message["To"] == "desk <desk@example.org>"
    assert message["List-Id"] == "Vigie digest for desk <desk.digest.news.example>"
    assert message["List-Unsubscribe"] == "<mailto:vigie@news.example?subject=unsubscribe%20desk>"
    assert message["List-Unsubscribe-Post"] is None
    assert email.utils.parsedate_to_datetime(message["Date"]) == NOW
    assert "Calais" in message.get_body(("html",)).get_content()


def test_a_french_digest_names_its_list_in_french() -> None:
    """The List-Id's phrase is what a mail client shows for the list: a French subscriber's
    read "Vigie digest for ong-calais" (a French analyst's review)."""
    french = replace(SUBSCRIBER, language="fr")
    digest = build_digest([item(1, "calais")], french, LABELS, NOW)
    message = parse(compose(digest, DELIVERY, french, CONFIG, "tok", NOW))
    assert message["List-Id"] == "Résumé Vigie pour desk <desk.digest.news.example>"


def test_one_click_unsubscribe_with_a_public_base_url() -> None:
    config = replace(CONFIG, public_base_url="https://vigie.news.example")
    digest = build_digest([item(1, "calais")], SUBSCRIBER, LABELS, NOW)
    message = parse(compose(digest, DELIVERY, SUBSCRIBER, config, "tok123", NOW))
    one_click = "https://vigie.news.example/unsubscribe/desk/tok123"
    assert message["List-Unsubscribe"].startswith(f"<{one_click}>, <mailto:")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert one_click in message.get_body(("html",)).get_content()


def test_a_base_url_with_accents_sends_its_links_as_ascii() -> None:
    """List-Unsubscribe is written as it is, never RFC 2047-encoded: a public_base_url with an
    accent in its path or its host made the header one that SMTP cannot carry, and every
    digest failed with a UnicodeEncodeError (a code review). Its links are URIs, as RFC 2369
    asks: the host in punycode, the path's other characters percent-encoded."""
    for base, sent in (
        ("https://vigie.exemple.fr/désabonnement", "https://vigie.exemple.fr/d%C3%A9sabonnement"),
        ("https://vigie.café.example", "https://vigie.xn--caf-dma.example"),
    ):
        config = replace(CONFIG, public_base_url=base)
        digest = build_digest([item(1, "calais")], SUBSCRIBER, LABELS, NOW)
        raw = compose(digest, DELIVERY, SUBSCRIBER, config, "tok123", NOW).as_bytes()
        header = email.message_from_bytes(raw, policy=email.policy.compat32)["List-Unsubscribe"]
        assert "=?" not in header
        links = re.findall(r"<([^<>]*)>", " ".join(header.split()))
        assert links[0] == f"{sent}/unsubscribe/desk/tok123", links


def test_list_unsubscribe_writes_its_links_as_given_never_decoded() -> None:
    """List-Unsubscribe's own folding wrote its value as the email library decoded it: an RFC
    2047 encoded word in public_base_url (=?utf-8?q?=0D=0A...?=) became a line break there,
    and wrote a Bcc header into every digest (a security review); an angle bracket or a comma
    in it ended the link early, or sent unsubscribe requests to another address. Each link is
    one URI, whatever the base URL holds."""
    hostile = (
        "https://vigie.example/=?utf-8?q?=0D=0ABcc:_victim@evil.example?=",
        "https://vigie.example/a =?utf-8?q?=0D=0ABcc:_victim@evil.example=0D=0A?=",
        "https://vigie.example/a>b",
        "https://vigie.example/a,<https://evil.example/x>",
        'https://vigie.example/a b"{|}',
    )
    for base in hostile:
        config = replace(CONFIG, public_base_url=base)
        digest = build_digest([item(1, "calais")], SUBSCRIBER, LABELS, NOW)
        raw = compose(digest, DELIVERY, SUBSCRIBER, config, "tok123", NOW).as_bytes()
        received = email.message_from_bytes(raw, policy=email.policy.default)
        one_click = DIGEST_HEADERS | {"list-unsubscribe-post"}
        assert {name.lower() for name in received} == one_click, base
        # As sent: mail clients do not decode this header (see the test above).
        header = email.message_from_bytes(raw, policy=email.policy.compat32)["List-Unsubscribe"]
        links = re.findall(r"<([^<>]*)>", " ".join(header.split()))
        assert len(links) == 2, (base, links)
        assert links[0].startswith("https://vigie.example/"), (base, links)
        assert links[0].endswith("/unsubscribe/desk/tok123"), (base, links)
        assert not any(c in links[0] for c in ' <>"{|}\r\n'), (base, links)
        assert links[1] == "mailto:vigie@news.example?subject=unsubscribe%20desk"


def test_header_values_lose_carriage_returns_and_line_feeds() -> None:
    labels = Labels({"calais": "Calais\r\nBcc: victim@example.org"})
    digest = build_digest([item(1, "calais"), item(2, "calais")], SUBSCRIBER, labels, NOW)
    message = compose(digest, DELIVERY, SUBSCRIBER, CONFIG, "tok", NOW)
    headers = message.as_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers and b"\rBcc:" not in headers
    assert "Calais Bcc: victim@example.org 2" in parse(message)["Subject"]
    # One article's digest is named by its headline: a feed's, just as harmless.
    lone = build_digest(
        [item(1, "calais", title="Boats\r\nBcc: victim@example.org")], SUBSCRIBER, LABELS, NOW
    )
    message = compose(lone, DELIVERY, SUBSCRIBER, CONFIG, "tok", NOW)
    headers = message.as_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers and b"\rBcc:" not in headers
    assert parse(message)["Subject"] == "Vigie: Boats Bcc: victim@example.org"
    # No encoded word is left to decode: a line break encoded in one wrote a Reply-To and a
    # body of the feed's into the digest (a code review); others made it fail, or mangled text.
    for hostile in (
        "Calais =?utf-8?q?news=0D=0AReply-To:_evil=40attacker.example=0D=0AContent-Type:"
        "_text/html=0D=0A=0D=0A<h1>Locked</h1>?=",
        "=?é?q?hi?=",
        "Prix en € =?utf-8?q?caf=C3=A9?=",
    ):
        lone = build_digest([item(1, "calais", title=hostile)], SUBSCRIBER, LABELS, NOW)
        received = parse(compose(lone, DELIVERY, SUBSCRIBER, CONFIG, "tok", NOW))
        assert {name.lower() for name in received} == DIGEST_HEADERS
        assert received.get_content_type() == "multipart/alternative"
        assert received["Subject"].replace("\u2060", "") == f"Vigie: {hostile}"


def test_a_long_french_subject_keeps_every_space_between_its_words() -> None:
    """A French subject starts "Vigie\u00a0:", so the email library encoded it (RFC 2047), and
    where it folded the line between two encoded words it left the space between them outside
    both, where mail clients drop it: "la police évacue" arrived as "la policeévacue". Each
    headline here, a word longer than the one before, puts the fold at another place."""
    french = replace(SUBSCRIBER, language="fr")
    sentence = "Pas-de-Calais : inondations, la police évacue des habitants à Arques, près de Lille"
    ends = [at for at, char in enumerate(sentence) if char == " "]
    for headline in [sentence[:end] for end in ends]:
        lone = build_digest([item(1, "calais", title=headline)], french, LABELS, NOW)
        raw = compose(lone, DELIVERY, french, CONFIG, "tok", NOW).as_bytes()
        received = email.message_from_bytes(raw, policy=email.policy.default)
        assert received["Subject"] == f"Vigie\u00a0: {headline}"
        assert b"?==?" not in raw  # two encoded words with nothing between: Yahoo refuses it


def test_html_is_sent_as_written_unless_a_line_is_too_long_for_smtp() -> None:
    """The HTML part travels as written (8bit), as no larger than it is; a line SMTP could not
    carry (a headline of 600 accented letters: 1,200 bytes) is encoded, and arrives whole."""
    for title, encoding in (("Réfugiés à Calais", "8bit"), ("é" * 600, "base64")):
        digest = build_digest([item(1, "calais", title=title)], SUBSCRIBER, LABELS, NOW)
        html = parse(compose(digest, DELIVERY, SUBSCRIBER, CONFIG, "tok", NOW)).get_body(("html",))
        assert html["Content-Transfer-Encoding"] == encoding
        assert f">{title}</a>" in html.get_content()


def test_the_same_delivery_renders_the_same_email() -> None:
    digest = build_digest([item(1, "calais")], SUBSCRIBER, LABELS, NOW)
    smtp = SmtpConfig("h", 25, "none", "", 5.0, "Vigie <v@news.example>")
    config = replace(CONFIG, smtp=smtp)
    first = compose(digest, DELIVERY, SUBSCRIBER, config, "t", NOW)
    second = compose(digest, DELIVERY, SUBSCRIBER, config, "t", NOW)
    assert first["Message-ID"] == second["Message-ID"] == "<vigie.digest.7.0123abcd@news.example>"
    assert first.get_body(("plain",)).get_content() == second.get_body(("plain",)).get_content()


def test_empty_digest_says_so() -> None:
    """A subscriber's first digest has no digest before it: it said "since the last digest"."""
    digest = build_digest([], SUBSCRIBER, LABELS, NOW)
    html, text = render(digest, FOOTER)
    assert digest.subject == "Vigie: nothing new matched your rules"
    said = "Your first digest: nothing has matched your rules yet."
    assert said in html and said in " ".join(text.split())
    assert "last digest" not in html + text
    later = build_digest([], SUBSCRIBER, LABELS, NOW, since=NOW - timedelta(days=1))
    html, text = render(later, FOOTER)
    said = "Nothing new matched your rules since Sun 22 Nov, 08:00."
    assert said in html and said in " ".join(text.split())


def test_times_are_shown_in_the_subscriber_time_zone() -> None:
    digest = build_digest([item(1, "calais", hours_ago=1)], SUBSCRIBER, LABELS, NOW)
    # 06:00 UTC is 07:00 in Paris in November.
    assert digest.sections[0].entries[0].when == "Mon 23 Nov, 07:00"


def test_a_day_before_the_tenth_has_no_leading_zero() -> None:
    """ "Thu 05 Nov" and "Sat 05 Dec 2026" read as a machine's dates; French wrote "5 nov."."""
    digest = build_digest([item(1, "calais", hours_ago=18 * 24)], SUBSCRIBER, LABELS, NOW)
    assert digest.sections[0].entries[0].when == "Thu 5 Nov, 08:00"
    later = build_digest([], SUBSCRIBER, LABELS, datetime(2026, 12, 5, 7, 0, tzinfo=UTC))
    assert later.summary == "0 articles · Sat 5 Dec 2026, 08:00 (Europe/Paris)"


def test_an_article_of_another_year_shows_its_year() -> None:
    """A 2025 article backtested into a 2026 digest read as one of this year's."""
    old = item(1, "calais", hours_ago=24 * 400)
    [entry] = build_digest([old], SUBSCRIBER, LABELS, NOW).sections[0].entries
    assert entry.when == "Sun 19 Oct 2025, 09:00"  # summer time in Paris then


def test_an_update_that_newly_matches_is_marked() -> None:
    fresh = item(1, "calais")
    revised = replace(item(2, "calais"), updated=True)
    digest = build_digest([fresh, revised], SUBSCRIBER, LABELS, NOW)
    assert {e.title: e.updated for e in digest.sections[0].entries} == {
        "Article 1": False,
        "Article 2": True,
    }
    html, text = render(digest, FOOTER)
    assert html.count(">updated</span>") == 1
    assert "Coastal Herald, Mon 23 Nov, 07:00 (updated)\n" in text


def test_an_update_shows_the_headline_it_changed() -> None:
    """A headline that went from "questioned" to "charged" is the news: the entry says what it
    read before; an update that kept the headline, or a first version, says nothing more."""
    changed = replace(
        item(1, "calais", title="Two charged over Calais camp fire"),
        updated=True,
        earlier_title="Two questioned over Calais camp fire",
    )
    same = replace(item(2, "calais"), updated=True, earlier_title="Article 2")
    fresh = replace(item(3, "calais"), earlier_title="Not an update")
    digest = build_digest([changed, same, fresh], SUBSCRIBER, LABELS, NOW)
    earlier = {e.title: e.earlier_title for e in digest.sections[0].entries}
    assert earlier == {
        "Two charged over Calais camp fire": "Two questioned over Calais camp fire",
        "Article 2": "",
        "Article 3": "",
    }
    html, text = render(digest, FOOTER)
    assert html.count("Headline before the update:") == 1
    assert (
        'Headline before the update: <span dir="auto">Two questioned over Calais camp fire'
        "</span></p>" in html
    )
    assert "(updated)\n  Headline before the update: Two questioned over Calais camp fire\n" in text
    french = build_digest([changed], replace(SUBSCRIBER, language="fr"), LABELS, NOW)
    assert (
        "Titre avant la mise à jour\u00a0: Two questioned over Calais camp fire"
        in render(french, FOOTER)[1]
    )


def test_a_french_subscriber_reads_the_digest_in_french() -> None:
    """The first subscribers read French: the digest's own words, dates and schedule are theirs;
    feed text and rule names stay as written."""
    french = replace(SUBSCRIBER, language="fr", schedule="daily 08:00")
    items = [
        item(1, "violence", priority="urgent", title="Un exilé frappé à Calais", hours_ago=1),
        item(2, "calais", story="s1", title="Traversées de la Manche"),
        item(3, "calais", story="s1", source="Nord Actu"),
        replace(item(4, "migrants", hours_ago=24 * 400), updated=True),
    ]
    digest = build_digest(items, french, LABELS, NOW)
    assert (
        digest.subject
        == "Vigie\u00a0: 1 en urgence, 3 sujets — Police violence 1\u00a0; Calais 1\u00a0; +1 autre"
    )
    assert digest.heading == "Résumé Vigie pour desk"
    assert digest.summary == "3 sujets · lun. 23 nov. 2026, 08:00 (Europe/Paris)"
    whens = [e.when for s in digest.sections for e in s.entries]
    assert whens == ["lun. 23 nov., 07:00", "lun. 23 nov., 07:00", "dim. 19 oct. 2025, 09:00"]
    html, text = render(digest, footer(french, CONFIG, "t0ken"))
    html = unescape(html)  # &nbsp;
    assert '<html lang="fr">' in html
    for words in ("Règles\u00a0:", "Également publié par", "mis à jour", "Se désabonner"):
        assert words in html and words in text, words
    assert "urgent</span>" in html and "[URGENT]" in text
    assert (
        "Vous recevez ce résumé parce que vous suivez les thèmes migrants et calais"
        " (chaque jour à 08:00, Europe/Paris)." in " ".join(text.split())
    )
    assert "Matched" not in html + text and "Also reported" not in html + text
    assert "Un exilé frappé à Calais" in html and "Police violence" in text  # as written


def test_french_punctuation_keeps_to_its_word() -> None:
    """French puts a space before : ; ? and !: an ordinary one let a phone's narrow screen wrap
    "Ne plus recevoir ces résumés ?" with its "?" alone on a line, and "Règles :" as well; the
    plain text wrote an outlet's link "Nord Actu: https://..." the English way (a subscribers'
    review). Every such space of the digest's own words is a no-break one."""
    french = replace(SUBSCRIBER, language="fr", max_entries=3)
    items = [
        replace(
            item(1, "calais", title="Deux personnes inculpées", story="s1"),
            updated=True,
            earlier_title="Deux personnes entendues",
        ),
        item(2, "calais", story="s1", source="Nord Actu"),
        *(item(i, "migrants") for i in range(3, 7)),
    ]
    digest = build_digest(items, french, LABELS, NOW, {"s1": NOW - timedelta(days=1)})
    html, text = render(digest, footer(french, CONFIG, "t0ken"))
    for part in (re.sub(r"<[^>]*>", "", unescape(html)), text):
        assert re.search(r"[^\S\u00a0][:;?!»]", part) is None, part
        for words in (
            "Règles\u00a0:",
            "Titre avant la mise à jour\u00a0: Deux personnes entendues",
            "\u00a0; de nouveau ici",
            "limite de ce résumé\u00a0: ceux ci-dessus",
        ):
            assert words in part, words
    assert (
        "Également publié par\u00a0:\n  - Nord Actu\u00a0: Article 2\n    https://news.example/2\n"
        in text
    )
    assert "Se désabonner\u00a0:\nmailto:" in text
    assert digest.subject.startswith("Vigie\u00a0: 5 sujets")


def test_the_footer_says_what_is_followed_as_a_sentence() -> None:
    """ "because you follow tag migrants, tag calais, tag police-violence, tag prosecutions"
    read as a machine's list (a subscribers' review): the rules, then the tags, in words."""
    cases = {
        ("en", (), ("migrants", "calais", "police-violence")): (
            "because you follow the tags migrants, calais and police-violence (daily 08:00,"
        ),
        ("en", ("calais",), ()): "because you follow the rule calais (daily 08:00,",
        ("en", ("calais", "violence"), ("migrants",)): (
            "because you follow the rules calais and violence, and the tag migrants (daily"
        ),
        ("fr", ("calais", "violence"), ("migrants",)): (
            "parce que vous suivez les règles calais et violence, ainsi que le thème migrants"
        ),
        ("fr", (), ("calais",)): "parce que vous suivez le thème calais (chaque jour",
    }
    for (language, rules, tags), said in cases.items():
        subscriber = replace(SUBSCRIBER, language=language, rules=rules, tags=tags)
        digest = build_digest([item(1, "calais")], subscriber, LABELS, NOW)
        html, text = render(digest, footer(subscriber, CONFIG, "t0ken"))
        assert said in " ".join(text.split()) and said in html, said


def test_a_cron_schedule_is_said_in_words_when_it_can_be() -> None:
    """The footer said "(0 8 * * 1-5, Europe/Paris)", config.toml's own example, to a
    subscriber who reads no cron (a subscribers' review); a schedule words cannot say simply is
    shown as written."""
    cases = {
        ("en", "0 8 * * 1-5"): "(weekdays 08:00, Europe/Paris)",
        ("fr", "0 8 * * 1-5"): "(du lundi au vendredi à 08:00, Europe/Paris)",
        ("fr", "30 7 * * *"): "(chaque jour à 07:30, Europe/Paris)",
        ("fr", "0 18 * * 5"): "(chaque semaine, le vendredi à 18:00, Europe/Paris)",
        ("en", "0 8,18 * * *"): "(0 8,18 * * *, Europe/Paris)",
    }
    for (language, written), said in cases.items():
        subscriber = replace(SUBSCRIBER, language=language, schedule=written)
        digest = build_digest([item(1, "calais")], subscriber, LABELS, NOW)
        html, text = render(digest, footer(subscriber, CONFIG, "t0ken"))
        assert said in " ".join(text.split()) and said in html, said


def test_an_empty_french_digest_says_so_in_french() -> None:
    digest = build_digest([], replace(SUBSCRIBER, language="fr"), LABELS, NOW)
    html, text = render(digest, FOOTER)
    assert digest.subject == "Vigie\u00a0: rien de nouveau pour vos règles"
    said = "Votre premier résumé\u00a0: rien ne correspond encore à vos règles."
    assert said in unescape(html) and said in re.sub(r"[ \n]+", " ", text)
    assert "dernier résumé" not in unescape(html) + text


def test_every_sentence_of_the_templates_has_its_french() -> None:
    """A sentence added to a template without its French showed English in French digests."""
    assert set(CATALOGS) == set(DIGEST_LANGUAGES)
    asked = {
        m.group(1)
        for path in TEMPLATES.iterdir()
        for m in re.finditer(r'_\("([^"]+)"', path.read_text(encoding="utf-8"))
    }
    assert len(asked) >= 15
    assert sorted(asked - CATALOGS["fr"].keys()) == []


def test_a_line_that_starts_with_from_is_space_stuffed() -> None:
    """A line of the plain text starting "From " is written ">From " by mail servers that store
    mailboxes as mbox, and one starting ">" is a quote to a client that reads format=flowed:
    such a line starts with a space, which those clients remove (RFC 3676)."""
    tags = ("x" * 20, "From")  # the footer wraps after "... xxxxxxxxxxxxxxxxxxxx and"
    subscriber = replace(SUBSCRIBER, tags=tags)
    digest = build_digest([item(1, "calais")], subscriber, LABELS, NOW)
    _, text = render(digest, footer(subscriber, CONFIG, "t0ken"))
    assert "\n From (daily 08:00, Europe/Paris).\n" in text
    assert not re.search(r"^(>|From )", text, re.MULTILINE)
