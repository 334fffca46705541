"""Rules and entities as operators write them in rule files."""

from __future__ import annotations

from dataclasses import dataclass, field

PRIORITIES = ("normal", "urgent")


@dataclass(frozen=True)
class Rule:
    id: str
    query: str
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    priority: str = "normal"
    enabled: bool = True
    stem: bool = False  # stem every word of the query in the article's language
    languages: tuple[str, ...] = ()  # scope: only articles in these languages
    feeds: tuple[str, ...] = ()  # scope: only these feeds (by name)
    feed_tags: tuple[str, ...] = ()  # scope: only feeds carrying one of these tags
    path: str = ""  # where it was defined, for messages
    line: int = 0
    query_line: int = 0  # file line and column where the query text starts
    query_column: int = 0


@dataclass(frozen=True)
class Entity:
    """A named thing with aliases. Aliases match folded (any case, any accents), except
    `case_aliases`, which match exactly as written (acronyms: CRS, PAF). An alias listed in
    `context` counts only when one of its context words occurs within `window` words. An alias
    does not count where it stands inside one of the longer names in `not_inside`, matched
    exactly as written ("Calais" in "Pas-de-Calais", the département, is no Calais)."""

    id: str
    type: str = ""
    name: str = ""
    aliases: tuple[str, ...] = ()
    case_aliases: tuple[str, ...] = ()
    context: dict[str, tuple[str, ...]] = field(default_factory=dict)
    window: int = 12
    not_inside: tuple[str, ...] = ()
    path: str = ""
    line: int = 0
