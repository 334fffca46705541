"""Rule reload at scale: how long `vigie run` takes to put an edited rule in force.

100,000 generated rules (the matching benchmark's targeted mix) and 200 entities are written to
rule files, 1,000 rules a file, and loaded by a RuleBook as the service does. Side by side, from
one run: the first load (every rule compiled), a reload after one rule's query is edited (the
others are kept as they were compiled), and a reload after one entity gains an alias (every rule
compiled again, since rules hold their entities' aliases).
Usage: python -m bench.reload [--quick] [--rows PATH]
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path

from bench.matching import feed_items, generate_rules, vocabulary
from bench.report import Row, emit, quick
from monitor.rules.files import RuleBook
from monitor.rules.model import Entity, Rule
from monitor.rules.stats import TermStats

RULES_A_FILE = 1_000


def toml_rules(rules: list[Rule]) -> str:
    # A JSON string is a TOML basic string for the text these rules hold.
    return "".join(
        f"[[rule]]\nid = {json.dumps(r.id)}\nquery = {json.dumps(r.query)}\n\n" for r in rules
    )


def toml_entities(entities: dict[str, Entity]) -> str:
    return "".join(
        f"[[entity]]\nid = {json.dumps(e.id)}\naliases = {json.dumps(list(e.aliases))}\n\n"
        for e in entities.values()
    )


def timed_reload(book: RuleBook, path: Path, text: str, stamp: int) -> float:
    """Seconds from an edit's settling to its rules in force (the second check that sees it)."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(stamp, stamp))
    assert book.reload_if_changed() is False  # the first check only notes the change
    start = time.perf_counter()
    assert book.reload_if_changed() is True
    return time.perf_counter() - start


def main() -> None:
    n = 10_000 if quick() else 100_000
    items = feed_items()
    words, df = vocabulary(items)
    stats = TermStats(df, len(items))
    rules, entities = generate_rules(n, words, df, random.Random(7), "targeted", items)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "entities.toml").write_text(toml_entities(entities), encoding="utf-8")
        for start in range(0, n, RULES_A_FILE):
            chunk = toml_rules(rules[start : start + RULES_A_FILE])
            (folder / f"rules-{start // RULES_A_FILE:03d}.toml").write_text(chunk, "utf-8")
        book = RuleBook([folder], lambda: stats)
        started = time.perf_counter()
        assert book.reload_if_changed() is True
        first = time.perf_counter() - started
        assert book.index is not None and len(book.index) == n

        edited = folder / "rules-000.toml"
        text = edited.read_text(encoding="utf-8").replace(
            f"query = {json.dumps(rules[0].query)}", 'query = "calais AND (court OR tribunal)"', 1
        )
        one_rule = timed_reload(book, edited, text, 10**9)
        entity_file = folder / "entities.toml"
        first_alias = json.dumps(entities["e0"].aliases[0])
        aliased = entity_file.read_text(encoding="utf-8").replace(
            f"aliases = [{first_alias}", f'aliases = ["Grande-Synthe", {first_alias}', 1
        )
        one_entity = timed_reload(book, entity_file, aliased, 2 * 10**9)

    print(
        f"{n:,} rules in {n // RULES_A_FILE} files of {RULES_A_FILE:,} and 200 entities;"
        " one process. Seconds from an edit's settling to the new rules in force.\n"
        f"{'load':<44} {'seconds':>8}\n"
        f"{'first load: every rule compiled':<44} {first:>8.1f}\n"
        f"{'one rule edited: the others kept':<44} {one_rule:>8.1f}\n"
        f"{'one entity given an alias: all compiled':<44} {one_entity:>8.1f}"
    )
    emit(
        [
            Row(
                "rules",
                f"reload after editing 1 of {n:,} rules",
                "s",
                one_rule,
                first,
                "first load, every rule compiled",
                higher_is_better=False,
            )
        ]
    )


if __name__ == "__main__":
    main()
