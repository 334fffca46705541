"""What `vigie rules test` prints for people: each article tried, matched or not, and for a
feed (or any file of several items), the matches first and a summary of the rest."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from .cli_common import console, highlighted, plain, print_evidence
from .records import Article, Match

NEAR_SHOWN = 10  # items of a feed that came near a rule, shown with why it did not match


@dataclass(frozen=True)
class Tried:
    """An article tried: its matches, and when one rule was tried and did not match, why not
    (lines of rules.why) and whether it came near (rules.why.came_near)."""

    article: Article
    matches: list[Match]
    why: list[str]
    near: bool = False

    @property
    def scope(self) -> str:
        """The reason an article is out of the rule's scope, "" when it is in it."""
        return self.why[0] if self.why and self.why[0].startswith("out of scope") else ""


def print_tried(tried: list[Tried], single: bool, every: bool) -> None:
    """One article as it is. Several (a feed, a saved feed, JSON Lines): the matches first;
    then, of one rule, the items it came near, each with why it does not match (the first
    NEAR_SHOWN), and a line counting the rest; of every rule, a line counting those that
    match none. `every`: every item that does not match, in order, as one article is shown
    (a feed of 60 items printed 120 lines of why-not, its matches lost among them)."""
    if len(tried) == 1:
        _print_one(tried[0])
        return
    matched = [t for t in tried if t.matches]
    missed = [t for t in tried if not t.matches]
    for one in matched:
        _print_one(one)
    if every or not single:
        for one in missed if every else ():
            _print_one(one)
        rule = "" if single else " a rule"
        _summary(
            f"{len(tried)} items: {_matching(len(matched))}{rule}, {len(missed)}"
            f" {_verb(len(missed), 'does', 'do')} not"
            + ("" if every or not missed else " (--all lists them)")
        )
        return
    near = [t for t in missed if t.near]
    for one in near[:NEAR_SHOWN]:
        _print_one(one)
    parts = [_matching(len(matched))]
    if near:
        shown = "above" if len(near) <= NEAR_SHOWN else f"the first {NEAR_SHOWN} above"
        parts.append(
            f"{len(near)} {_verb(len(near), 'comes', 'come')} near ({shown}, with why not)"
        )
    scopes: dict[str, int] = {}
    for one in missed:
        if one.scope:
            scopes[one.scope] = scopes.get(one.scope, 0) + 1
    parts += [f"{n} {scope}" for scope, n in scopes.items()]
    others = sum(1 for t in missed if not t.near and not t.scope)
    if others:
        parts.append(f"{others} {_verb(others, 'other does', 'others do')} not")
    hidden = len(missed) - min(len(near), NEAR_SHOWN)
    _summary(
        f"{len(tried)} items: {', '.join(parts)}"
        + (" (--all lists every item that does not match, with why)" if hidden else "")
    )
    hints = {line for t in missed if t.scope for line in t.why[1:] if line.startswith("(")}
    for hint in sorted(hints):
        console.print(Text(hint, style="dim"), soft_wrap=True)


def _verb(n: int, one: str, more: str) -> str:
    return one if n == 1 else more


def _matching(n: int) -> str:
    return f"{n} {_verb(n, 'matches', 'match')}" if n else "none match"


def _summary(line: str) -> None:
    console.print(Text(line, style="bold"), soft_wrap=True)


def _print_one(tried: Tried) -> None:
    _print_result(tried.article, tried.matches)
    for line in tried.why:
        console.print(Text("  ").append(line, style="dim"), soft_wrap=True)


def _print_result(article: Article, matches: list[Match]) -> None:
    title = plain(article.title) or "(untitled)"
    if not matches:
        console.print(Text.assemble(("no match  ", "dim"), title))
        return
    console.print(Text.assemble(("MATCH  ", "bold green"), (title, "bold")))
    for match in matches:
        tags = f" [{', '.join(match.tags)}]" if match.tags else ""
        flag = " URGENT" if match.priority == "urgent" else ""
        console.print(
            Text.assemble(
                "  ", (match.rule_id, "cyan"), tags, (flag, "bold red"), f"  score {match.score:g}"
            )
        )
        console.print(Text("    ").append(highlighted(match.snippet)), soft_wrap=True)
        print_evidence((e.term, e.field, e.text) for e in match.evidence)
