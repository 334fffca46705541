"""Full-text extraction quality on the article-extraction benchmark (181 real news pages with
their article bodies as ground truth, ../shared/corpora/pages/article-extraction-benchmark).

Score: token F1 per page (lower-cased words, counted with multiplicity, as the benchmark's own
evaluation does), averaged over pages, with precision and recall. Side by side from one run: the
whole page as text (the baseline: what a rule would see without extraction), trafilatura with its
default settings, and extract.extract_page (trafilatura favouring precision, comments left out),
which Vigie uses.

Usage: python -m bench.extraction
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable

import trafilatura

from bench.wirecopy import PAGES
from monitor.extract import extract_page
from monitor.text import html_to_text

_WORD = re.compile(r"\w+")


def token_scores(predicted: str, truth: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of the predicted text's words against the truth's."""
    got, want = Counter(_WORD.findall(predicted.lower())), Counter(_WORD.findall(truth.lower()))
    common = sum((got & want).values())
    if not common:
        return 0.0, 0.0, 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


def run(
    name: str, extract: Callable[[bytes, str], str], pages: list[tuple[bytes, str, str]]
) -> None:
    scores, start = [], time.perf_counter()
    for html, url, truth in pages:
        scores.append(token_scores(extract(html, url), truth))
    elapsed = (time.perf_counter() - start) / len(pages) * 1000
    precision, recall, f1 = (statistics.mean(s[i] for s in scores) for i in range(3))
    median = statistics.median(s[2] for s in scores)
    low = sum(s[2] < 0.5 for s in scores)
    print(
        f"{name:44} {f1:6.3f} {median:6.3f} {precision:9.3f} {recall:6.3f} {low:5} {elapsed:7.1f}"
    )


def main() -> None:
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    pages = [
        (
            gzip.decompress((PAGES / "html" / f"{key}.html.gz").read_bytes()),
            row["url"],
            row["articleBody"],
        )
        for key, row in sorted(truth.items())
    ]
    print(f"{len(pages)} pages; token F1 against the ground-truth article body")
    columns = ("F1", 6), ("median", 6), ("precision", 9), ("recall", 6), ("<0.5", 5)
    print(f"{'extractor':44} " + " ".join(f"{n:>{w}}" for n, w in columns) + " ms/page")
    run(
        "whole page as text (baseline)",
        lambda h, u: html_to_text(h.decode("utf-8", "replace")),
        pages,
    )
    run("trafilatura, default settings", lambda h, u: trafilatura.extract(h, url=u) or "", pages)
    run("extract_page (Vigie: favour precision)", lambda h, u: extract_page(h, u).text, pages)


if __name__ == "__main__":
    main()
