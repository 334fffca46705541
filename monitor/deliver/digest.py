"""Render a digest: the matches a subscriber has not received yet, as a newsletter email.

Grouped by rule, urgent rules first; one entry per story (one per article until articles carry a
story id), each with its linked title, source, time, a snippet with the matched words in bold and
the names of the rules it matched. HTML styled in its elements' style attributes (mail clients
drop <style>) and plain text, as multipart/alternative.

Feed text is data, never template source: it reaches Jinja2 only as variables, autoescaped in
HTML; the one piece of markup made from it, <b> around matched words, is built from escaped text
and passed through nh3. Only http(s) links are made. Header values are stripped of CR and LF.
"""

from __future__ import annotations

import contextlib
import email.charset
import email.header
import email.headerregistry
import email.policy
import email.utils
import functools
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import nh3
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from ..config_delivery import DeliveryConfig, SubscriberConfig
from ..records import Delivery, Evidence
from ..store import OutboxItem
from ..store.rows import outlet_name
from ..text import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN, one_line, url_shown_safely
from .fit import fitted, transfer_encoding
from .outbox import Labels, message_id
from .wording import count_of, schedule, spoken_list, translator, when

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
_MARKS = re.compile(f"[{HIGHLIGHT_OPEN}{HIGHLIGHT_CLOSE}]")


class OtherOutlet(NamedTuple):
    """Another outlet's copy of a story, under "Also reported by"."""

    source: str
    url: str  # empty unless http(s)
    # Its headline when it is not the entry's own ("" when it is): two reports that were
    # grouped showed only outlets' names, and a drowning grouped with a camp clearance at the
    # same place on the same day was hidden under it (an editor's review).
    title: str = ""


@dataclass(frozen=True)
class Entry:
    """One story in a digest, as shown."""

    title: str
    url: str  # empty unless http(s)
    source: str
    when: str  # publication time in the subscriber's time zone
    snippet_html: Markup
    snippet_text: str
    rules: tuple[str, ...]  # names of every rule the story matched
    urgent: bool
    also: tuple[OtherOutlet, ...] = ()  # the other outlets in the story, the first first
    updated: bool = False  # a rule newly matched an updated version of the article
    # The headline before that update, when the update changed it ("" otherwise): a headline
    # that went from "arrested" to "charged" tells the reader what is new.
    earlier_title: str = ""
    # When an earlier digest to this subscriber carried the story ("" when none did): shown
    # beside a story sent again because a later copy matches another rule they follow.
    sent_before: str = ""
    rank: tuple = ()
    # The title with the words that made it match marked: in bold, in *stars* (a match in the
    # title alone showed no word in bold anywhere).
    title_html: Markup = Markup("")
    title_text: str = ""
    # Listed in the HTML by its linked headline and outlet alone: the whole digest would pass
    # what Gmail shows before it clips (fit.fitted). The plain text shows it in full.
    headline_only: bool = False


@dataclass(frozen=True)
class Section:
    rule_id: str
    name: str
    urgent: bool
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Digest:
    subscriber: str
    sections: tuple[Section, ...]
    subject: str
    heading: str
    summary: str  # one line under the heading
    noun: str = "articles"  # what its entries are called: "stories" when one has other outlets
    language: str = "en"  # of its words (wording.LANGUAGES)
    omitted: int = 0  # entries past the subscriber's max_entries, counted and not shown
    # Since when it tells what matched ("Mon 23 Nov, 08:00"): the subscriber's digest before
    # it; "" for their first.
    since: str = ""
    headline_only: int = 0  # entries listed by their headline alone in the HTML

    @property
    def entries(self) -> int:
        """What it carries: those shown and those counted past max_entries."""
        return sum(len(s.entries) for s in self.sections) + self.omitted

    @property
    def omitted_counts(self) -> str:
        """'12 articles', '12 sujets': those not shown, for the templates."""
        return count_of(self.omitted, self.noun, self.language)

    @property
    def headline_only_counts(self) -> str:
        """'87 articles': those listed by their headline alone, for the templates."""
        return count_of(self.headline_only, self.noun, self.language)


def build_digest(
    items: Sequence[OutboxItem],
    subscriber: SubscriberConfig,
    labels: Labels,
    now: datetime,
    sent_before: Mapping[str, datetime] | None = None,
    since: datetime | None = None,
) -> Digest:
    """Group, order and format; pure. `sent_before`: story id -> when an earlier digest to the
    subscriber carried it (Store.stories_sent_before); `since`: when the period it tells of
    began, their digest before it (None for their first)."""
    zone = ZoneInfo(subscriber.timezone)
    language = subscriber.language
    _ = translator(language)
    stories: dict[str, list[OutboxItem]] = {}
    for item in items:
        key = f"story:{item.story_id}" if item.story_id else f"article:{item.article.id}"
        stories.setdefault(key, []).append(item)
    sections: dict[str, list[Entry]] = {}
    for members in stories.values():
        lead = max(members, key=_lead_rank)
        earlier = (sent_before or {}).get(lead.story_id or "")
        entry = _entry(lead, members, labels, zone, now, language)
        if earlier is not None:
            entry = replace(entry, sent_before=when(earlier, zone, language, now))
        sections.setdefault(lead.match.rule_id, []).append(entry)
    every = [e for es in sections.values() for e in es]  # counted whether shown or not
    total, urgent = len(every), sum(e.urgent for e in every)
    noun = "stories" if any(e.also for e in every) else "articles"
    omitted = max(0, total - subscriber.max_entries)
    if omitted:
        # One feed listing 50,000 matching items made a 40 MB email, which mail servers refuse
        # for good: the most urgent and best-scored are shown, the others counted.
        cut = {id(e) for e in sorted(every, key=lambda e: e.rank)[:omitted]}
        sections = {
            r: kept for r, es in sections.items() if (kept := [e for e in es if id(e) not in cut])
        }
    built = [
        Section(
            rule_id,
            labels.rule(rule_id),
            entries[0].urgent,
            tuple(sorted(entries, key=lambda e: e.rank, reverse=True)),
        )
        for rule_id, entries in sections.items()
    ]
    built.sort(key=lambda s: (not s.urgent, -len(s.entries), s.name.casefold()))
    today = when(now, zone, language)  # with its year
    summary = f"{count_of(total, noun, language)} · {today} ({subscriber.timezone})"
    period = when(since, zone, language, now) if since is not None else ""
    return Digest(
        subscriber=subscriber.name,
        sections=tuple(built),
        subject=_subject(built, total, urgent, noun, language, period),
        heading=_("Vigie digest for %(name)s", name=subscriber.recipient.display_name),
        summary=summary,
        noun=noun,
        language=language,
        omitted=omitted,
        since=period,
    )


def _rank(item: OutboxItem) -> tuple:
    published = item.article.published.timestamp() if item.article.published else 0.0
    return (item.match.priority == "urgent", item.match.score, published, -(item.article.id or 0))


def _outlet(item: OutboxItem) -> str:
    """The outlet an item is shown from: its feed's name, else title, else its address's host
    (a feed without a title showed an empty source, and "Also reported by" an empty name)."""
    return one_line(outlet_name(item.article.feed_name, "", item.feed_url))


def _lead_rank(item: OutboxItem) -> tuple:
    """Which of a story's copies leads its entry: the most urgent and best-scored, then the
    first published. Copies of a wire story score alike, and the newest led: its time read as
    when the story broke, the outlet that broke it listed under it (a subscribers' review)."""
    published = item.article.published.timestamp() if item.article.published else math.inf
    return (item.match.priority == "urgent", item.match.score, -published, -(item.article.id or 0))


def _published_first(item: OutboxItem) -> tuple:
    """Copies in the order they were published (those without a date last, as first seen)."""
    published = item.article.published.timestamp() if item.article.published else math.inf
    return (published, item.article.id or 0)


def _entry(
    lead: OutboxItem,
    members: list[OutboxItem],
    labels: Labels,
    zone: ZoneInfo,
    now: datetime,
    language: str = "en",
) -> Entry:
    article = lead.article
    _ = translator(language)
    title = one_line(article.title)  # stored before titles were made one line
    snippet = lead.match.snippet
    if "".join(_MARKS.split(snippet)) == title:
        snippet = ""  # an article with no text but its title: shown once, not twice
    marked = _marked_title(title, article.title, lead.match.evidence) if title else ""
    published = when(article.published, zone, language, now) if article.published else ""
    if published and not article.dated:  # the time Vigie first saw an undated item
        published = _("first seen %(when)s", when=published)
    rule_ids = [m.match.rule_id for m in sorted(members, key=_rank, reverse=True)]
    earlier = one_line(lead.earlier_title)
    others: dict[str, OtherOutlet] = {}
    source = _outlet(lead)
    shown = title.casefold()
    for member in sorted(members, key=_published_first):  # who had it first, first
        outlet = _outlet(member)
        if member.article.id != article.id and outlet != source and outlet not in others:
            headline = one_line(member.article.title)
            others[outlet] = OtherOutlet(
                outlet,
                _link(member.article.url),
                headline if headline.casefold() != shown else "",
            )
    return Entry(
        title=title or _("(untitled)"),
        title_html=snippet_html(marked) if marked else Markup(escape(title or _("(untitled)"))),
        title_text=snippet_text(marked) if marked else title or _("(untitled)"),
        url=_link(article.url),
        # A feed's name over several lines (an OPML title, stored before they were made one
        # line) wrote a fake section and entry into the plain-text digest.
        source=source,
        when=published,
        snippet_html=snippet_html(snippet),
        snippet_text=snippet_text(snippet),
        rules=tuple(dict.fromkeys(labels.rule(r) for r in rule_ids)),
        urgent=lead.match.priority == "urgent",
        also=tuple(others.values()),
        updated=lead.updated,
        earlier_title=earlier if lead.updated and earlier != title else "",
        rank=_rank(lead),
    )


def _marked_title(shown: str, stored: str, evidence: Sequence[Evidence]) -> str:
    """The title with its matched words between the highlight marks; "" when it has none, or
    when the title shown is not the one stored (made one line), whose offsets would be off."""
    # Longest first where words overlap (a phrase over its own word); only evidence of this
    # title: a match made on an earlier revision has offsets of another (a code review).
    spans = sorted(
        (e.start, -e.end)
        for e in evidence
        if e.field == "title" and stored[e.start : e.end] == e.text and e.end > e.start
    )
    spans = [(start, -negated) for start, negated in spans]
    if not spans or shown != stored or HIGHLIGHT_OPEN in shown or HIGHLIGHT_CLOSE in shown:
        return ""
    out, cursor = [], 0
    for start, end in spans:
        if start < cursor:
            continue  # overlapping words: the first marks them
        out += [shown[cursor:start], HIGHLIGHT_OPEN, shown[start:end], HIGHLIGHT_CLOSE]
        cursor = end
    return "".join(out) + shown[cursor:]


def _link(url: str) -> str:
    return url_shown_safely(url) if urlsplit(url).scheme.lower() in ("http", "https") else ""


def snippet_html(snippet: str) -> Markup:
    """⟦marked⟧ words in <b>, everything else escaped; nh3 keeps nothing but <b>."""
    parts = _MARKS.split(snippet)
    html = "".join(
        f"<b>{escape(part)}</b>" if i % 2 else str(escape(part)) for i, part in enumerate(parts)
    )
    return Markup(nh3.clean(html, tags={"b"}, attributes={}))


def snippet_text(snippet: str) -> str:
    """⟦marked⟧ words in *stars*, for the plain-text part."""
    return "".join(f"*{p}*" if i % 2 else p for i, p in enumerate(_MARKS.split(snippet)))


def _subject(
    sections: list[Section],
    total: int,
    urgent: int,
    noun: str,
    language: str = "en",
    since: str = "",
) -> str:
    """What the digest holds, told apart from the subscriber's other digests: mail clients
    thread messages of one subject into one conversation, and every "nothing matched" digest
    of a send_empty subscriber was one thread of identical emails, the days impossible to tell
    apart; a quiet rule's "Vigie: 2 articles — Calais 2" came back as often. `since` (the
    period's start, "" for a first digest) names the period."""
    _ = translator(language)
    if not total:
        if since:
            return _("Vigie: nothing new since %(when)s", when=since)
        return _("Vigie: nothing new matched your rules")
    if total == 1 and sections and sections[0].entries:
        # Six digests of one article each read "Vigie: 1 article — Police violence 1", threaded
        # together by mail clients: one article's digest is named by its headline.
        title = sections[0].entries[0].title
        headline = title if len(title) <= _SUBJECT_TITLE else title[: _SUBJECT_TITLE - 1] + "…"
        return (
            _("Vigie, urgent: %(title)s", title=headline)
            if urgent
            else _("Vigie: %(title)s", title=headline)
        )
    counts = count_of(total, noun, language)
    head = (
        _("Vigie: %(urgent)s urgent, %(counts)s", urgent=urgent, counts=counts)
        if urgent
        else _("Vigie: %(counts)s", counts=counts)
    )
    # Rule names are set apart by semicolons: "Police violence 6, Migrants, refugees and
    # asylum 2" read as three rules.
    shown = [f"{s.name} {len(s.entries)}" for s in sections[:2]]
    others = len(sections) - 2
    if others > 0:
        shown.append(_("+1 more" if others == 1 else "+%(n)s more", n=others))
    period = " " + _("(since %(when)s)", when=since) if since else ""
    return f"{head} — {_('; ').join(shown)}{period}"


_SUBJECT_TITLE = 150  # characters of a headline in a subject


@functools.cache
def environment(autoescape: bool, language: str = "en") -> Environment:
    """Templates from templates/, their words in `language` (`{{ _("Matched:") }}`)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.filters["flow"] = flow
    env.filters["marks"] = marks
    gettext = translator(language)
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext,
        lambda one, many, n, **values: gettext(one if n == 1 else many, **values),
        newstyle=True,
    )
    return env


def marks(marked: Markup, style: str) -> Markup:
    """The <b> around matched words (snippet_html) with `style`: mail clients drop <style>, so
    each carries its own. Feed text in `marked` is escaped: its only "<b>" are those tags."""
    return Markup(str(marked).replace("<b>", f'<b style="{escape(style)}">'))


def render(digest: Digest, footer: dict[str, str]) -> tuple[str, str]:
    """(HTML, plain text). `footer` says why the subscriber receives it and how to stop:
    follows, schedule, unsubscribe_url. The HTML keeps within what Gmail shows whole, some
    entries by their headline alone when it must (fit.fitted); the plain text has them all."""
    html = environment(True, digest.language).get_template("digest.html")
    text = environment(False, digest.language).get_template("digest.txt")
    return (
        fitted(digest, lambda shown: html.render({"digest": shown, **footer})),
        _space_stuffed(text.render({"digest": digest, **footer})),
    )


def flow(text: str, width: int = 76, indent: str = "  ", first: str | None = None) -> str:
    """A paragraph of the plain-text part, format=flowed with DelSp=yes (RFC 3676): wrapped
    into lines of at most `width` columns, the first after `first` (else `indent`), the others
    after `indent`; a word longer than that, a link, alone on its line and never broken. Each
    line but the last ends with a space which a client that reflows text deletes when it joins
    them; the separating space is then the next line's indent (a client removes the first
    space of a line, as RFC 3676's stuffing), or a second space at the end of the line when
    there is no indent. Hard-wrapped at 76 columns alone, the text broke mid-sentence, every
    other line short, on screens narrower than that; reflowed without DelSp, every join of an
    indented paragraph showed two spaces. A French feed's "publique »" is not broken before its
    "»" (nor ":", ";", "!", "?", nor after "«"), which started a line of its own."""
    lines = textwrap.wrap(
        _KEPT_TOGETHER.sub(_JOINED, text.replace(_JOINED, "")),
        width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    soft = " " if indent.startswith("  ") else "  "
    return f"{soft}\n".join(line.replace(_JOINED, " ") for line in lines)


# The spaces a line may not break at: before French closing punctuation, after "«"; they
# stand as _JOINED, which is not whitespace to textwrap, while the paragraph is wrapped.
_KEPT_TOGETHER = re.compile(r" (?=[»:;!?])|(?<=«) ")
_JOINED = "\x00"


def _space_stuffed(text: str) -> str:
    """A space before each line that a format=flowed reader would take for a quote (">") or
    that a mail server would mangle ("From "), as RFC 3676 asks; it removes that space."""
    return "\n".join(
        f" {line}" if line.startswith((">", "From ")) else line for line in text.split("\n")
    )


def header_value(value: str) -> str:
    """One line: CR, LF and runs of whitespace become single spaces, but for the no-break ones,
    which keep French punctuation to its word ("Vigie\u00a0: ..."): they arrived as ordinary
    spaces. And no RFC 2047 encoded word (`=?utf-8?q?...?=`) left for the email library to
    decode when the header is set: a feed's title encoding a line break wrote its own Reply-To
    and body into a digest (a code review). Titles hold such words only by mistake: they are
    shown as written, a word joiner after their "=", and decoding them instead mangled the
    text around them."""
    return _BREAKING_SPACE.sub(" ", value).strip(" ").replace("=?", "=\u2060?")


# Whitespace, line breaks included, but the no-break spaces (U+00A0, U+2007, U+202F).
_BREAKING_SPACE = re.compile(r"[^\S\u00a0\u2007\u202f]+")


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _list_label(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "subscriber"


def _sender(config: DeliveryConfig) -> str:
    return header_value(config.smtp.sender if config.smtp else config.from_header)


def unsubscribe_links(
    subscriber: SubscriberConfig, config: DeliveryConfig, token: str
) -> tuple[str, str]:
    """(https one-click link or "", mailto link). The one-click link needs public_base_url."""
    address = email.utils.parseaddr(_sender(config))[1]
    mailto = f"mailto:{address}?subject={quote('unsubscribe ' + subscriber.name)}"
    if not config.public_base_url:
        return "", mailto
    return f"{config.public_base_url}/unsubscribe/{quote(subscriber.name)}/{token}", mailto


def footer(subscriber: SubscriberConfig, config: DeliveryConfig, token: str) -> dict[str, str]:
    """Why the subscriber receives the digest, and how to stop."""
    one_click, mailto = unsubscribe_links(subscriber, config, token)
    _ = translator(subscriber.language)
    # "the rules a and b, and the tags c, d and e": "tag migrants, tag calais, tag
    # police-violence, tag prosecutions" read as a machine's list (a subscribers' review).
    follows = [
        _(one if len(ids) == 1 else many, ids=spoken_list(ids, subscriber.language))
        for one, many, ids in (
            ("the rule %(ids)s", "the rules %(ids)s", subscriber.rules),
            ("the tag %(ids)s", "the tags %(ids)s", subscriber.tags),
        )
        if ids
    ]
    return {
        "follows": _(", and ").join(follows),
        "schedule": schedule(subscriber.schedule, subscriber.language)
        + (f", {subscriber.timezone}" if _at_a_time(subscriber) else ""),
        "unsubscribe_url": one_click or mailto,
    }


def _at_a_time(subscriber: SubscriberConfig) -> bool:
    """Whether the schedule names a time of day, which is the subscriber's time zone's."""
    return subscriber.cron is not None and subscriber.schedule.split()[0].lower() != "hourly"


class _LinksHeader(email.headerregistry.UnstructuredHeader):
    """List-Unsubscribe: `<url>, <url>`, each link on a line of its own and written as it is.
    The email library encoded a word longer than a line (an https link under a base URL with a
    path) as RFC 2047, `=?utf-8?q?=3Chttps...`, which mail clients do not decode in this header:
    they found no link and offered no one-click unsubscribe (a subscribers' review)."""

    @classmethod
    def parse(cls, value: str, kwds: dict) -> None:
        super().parse(value, kwds)
        # The value as given, not as the library decodes it: an encoded word in a link
        # (=?utf-8?q?=0D=0A...?=) was decoded into a line break and written so, a header of
        # its own (a security review).
        kwds["decoded"] = value

    def fold(self, *, policy: email.policy.Policy) -> str:  # type: ignore[override]
        links = re.findall(r"<[^<>]*>", str(self))
        return f"{self.name}: " + f",{policy.linesep} ".join(links) + policy.linesep


class _SubjectHeader(email.headerregistry.UnstructuredHeader):
    """Subject: beyond ASCII, written as RFC 2047 encoded words that each carry their own
    spaces. The email library (CPython gh-144156) folded such a subject between two encoded
    words with the space that parted them outside both, where mail clients drop it: a French
    subject, always encoded for the no-break space of "Vigie\u00a0:", arrived with two words
    run together ("la policeévacue") one time in twenty."""

    def fold(self, *, policy: email.policy.Policy) -> str:  # type: ignore[override]
        if str(self).isascii() or policy.utf8:
            return super().fold(policy=policy)
        header = email.header.Header(str(self), _UTF8_Q, header_name=self.name)
        return f"{self.name}: {header.encode(linesep=policy.linesep)}{policy.linesep}"


_UTF8_Q = email.charset.Charset("utf-8")
_UTF8_Q.header_encoding = email.charset.QP  # =?utf-8?q?...?=: the text stays legible


def _as_uri(link: str) -> str:
    """A link as a URI, ASCII as RFC 2369 asks: the host in punycode, any other character
    beyond ASCII percent-encoded. List-Unsubscribe is written as it is: a public_base_url with
    an accent (a path /désabonnement, a host vigie.café.fr) made a header SMTP cannot carry,
    and every digest failed with a UnicodeEncodeError. What no URI holds (a space, < > " and
    the like) is percent-encoded too: a > in public_base_url ended the link there, and
    "<https://other.example>" in it became the header's one-click link."""
    if link.isascii():
        return quote(link, safe=_URI_SAFE)
    parts = urlsplit(link)
    userinfo, at, host_port = parts.netloc.rpartition("@")
    host, colon, port = host_port.partition(":")
    with contextlib.suppress(UnicodeError):  # else percent-encoded, as the rest
        host = host.encode("idna").decode("ascii")
    netloc = f"{userinfo}{at}{host}{colon}{port}"
    return quote(parts._replace(netloc=netloc).geturl(), safe=_URI_SAFE)


_URI_SAFE = "/:?#[]@!$&'()*+,;=%~"  # RFC 3986's delimiters, and % (written already)


_HEADERS = email.headerregistry.HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _LinksHeader)
_HEADERS.map_to_type("subject", _SubjectHeader)
_POLICY = email.policy.SMTP.clone(header_factory=_HEADERS)


def compose(
    digest: Digest,
    delivery: Delivery,
    subscriber: SubscriberConfig,
    config: DeliveryConfig,
    token: str,
    now: datetime,
) -> EmailMessage:
    """The digest as an email, with the headers mail clients and list tools expect."""
    sender = _sender(config)
    domain = _domain(email.utils.parseaddr(sender)[1])
    one_click, mailto = unsubscribe_links(subscriber, config, token)
    html, text = render(digest, footer(subscriber, config, token))
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = header_value(digest.subject)
    message["From"] = sender
    message["To"] = subscriber.recipient  # a name in any script, encoded as headers need
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = message_id(delivery, domain)
    label = f"{_list_label(subscriber.name)}.digest.{domain}"
    # Its phrase is what a mail client shows for the list: in the subscriber's language.
    phrase = translator(digest.language)("Vigie digest for %(name)s", name=subscriber.name)
    message["List-Id"] = f"{header_value(phrase)} <{label}>"
    message["List-Unsubscribe"] = ", ".join(f"<{_as_uri(u)}>" for u in (one_click, mailto) if u)
    if one_click:
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(text, params={"format": "flowed", "delsp": "yes"})  # see flow()
    message.add_alternative(html, subtype="html", cte=transfer_encoding(html))
    return message
