"""The parsed form of a query: a small tree of frozen dataclasses, before any compilation.

Positions (line, column, 1-based, within the query text) are kept on leaves so that errors found
after parsing (an unknown entity, a wildcard in the wrong place) can point at the exact spot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    text: str  # as written, without the =, ~ or * markers
    prefix: bool = False  # migra*
    stem: bool = False  # slap~
    case: bool = False  # =PAF
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class Phrase:
    text: str
    stem: bool = False
    case: bool = False
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class EntityRef:
    entity_id: str
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class And:
    children: tuple[Query, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Query, ...]


@dataclass(frozen=True)
class Not:
    child: Query


@dataclass(frozen=True)
class Near:
    left: Query
    right: Query
    distance: int
    ordered: bool = False
    excluded: bool = False  # NOT NEAR: the left side where the right is not within `distance`


@dataclass(frozen=True)
class Field:
    name: str
    child: Query


Query = Term | Phrase | EntityRef | And | Or | Not | Near | Field


def walk(query: Query):
    """Every node of the tree, depth first."""
    yield query
    if isinstance(query, And | Or):
        for child in query.children:
            yield from walk(child)
    elif isinstance(query, Not | Field):
        yield from walk(query.child)
    elif isinstance(query, Near):
        yield from walk(query.left)
        yield from walk(query.right)
