"""Precision and recall of the default rule pack, per tag, on hand-labelled real feed items.

Labels (tests/data/rule_labels*.jsonl) are keyed by item link; the texts are read at run time from
../shared/corpora/feeds/. Usage: python -m bench.rule_quality [--errors]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from monitor.parse import parse_feed
from monitor.records import Article
from monitor.rules.files import load_rules

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora" / "feeds"
TAGS = ("migrants", "calais", "police-violence", "prosecutions")


def labelled_articles() -> list[tuple[Article, set[str]]]:
    """Every labelled item, parsed from the corpus feeds, with its hand labels."""
    labels: dict[tuple[str, str], set[str]] = {}
    for path in sorted((ROOT / "tests" / "data").glob("rule_labels*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            labels[(row["feed"], row["link"])] = set(row["tags"])
    out, seen = [], set()
    for path in sorted(CORPORA.glob("single/*")) + sorted(CORPORA.glob("bbc-snapshots/*.xml")):
        feed = "bbc-snapshots" if path.parent.name == "bbc-snapshots" else f"single/{path.name}"
        _, articles = parse_feed(path.read_bytes(), {}, path.as_uri())
        for article in articles:
            key = (feed, article.url)
            if key in labels and key not in seen:
                seen.add(key)
                out.append((article, labels[key]))
    return out


def evaluate(errors: bool = False) -> dict[str, dict[str, float]]:
    ruleset = load_rules([ROOT / "rules"])
    if ruleset.errors:
        raise SystemExit("\n".join(map(str, ruleset.errors)))
    index = ruleset.index()
    counts: dict[str, Counter] = {tag: Counter() for tag in TAGS}
    for article, truth in labelled_articles():
        matches, _ = index.match(article)
        predicted = {t for m in matches if m.priority != "urgent" for t in m.tags}
        for tag in TAGS:
            p, t = tag in predicted, tag in truth
            counts[tag]["tp" if p and t else "fp" if p else "fn" if t else "tn"] += 1
            if errors and p != t:
                kind = "FP" if p else "FN"
                print(f"{kind} {tag:16} {article.title[:90]} | {article.summary[:120]!r}")
    table = {}
    for tag, c in counts.items():
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else float("nan")
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else float("nan")
        table[tag] = {
            "items": sum(c.values()),
            "positives": c["tp"] + c["fn"],
            "tp": c["tp"],
            "fp": c["fp"],
            "fn": c["fn"],
            "precision": precision,
            "recall": recall,
        }
    return table


def main() -> None:
    table = evaluate(errors="--errors" in sys.argv)
    print(
        f"{'tag':18}{'items':>7}{'positives':>11}{'TP':>5}{'FP':>5}{'FN':>5}"
        f"{'precision':>11}{'recall':>8}"
    )
    for tag, row in table.items():
        print(
            f"{tag:18}{row['items']:>7}{row['positives']:>11}{row['tp']:>5}{row['fp']:>5}"
            f"{row['fn']:>5}{row['precision']:>11.2f}{row['recall']:>8.2f}"
        )


if __name__ == "__main__":
    main()
