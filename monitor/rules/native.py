"""The matcher's per-article loops, in C where the optional extension `_native` was built.

The loops that walk an article's tokens or its words' meanings, tens of thousands of steps an
article: a word's positions (scanning the tokens' hashes side by side), the pairs of adjacent
words a key names, the presearch (candidates, and their required clauses checked by term
number), a leaf's hits in every field, the pairs of a NEAR, the evidence, its score and the
snippet. The interpreter's cost per step was most of their time: at 10,000 rules the matcher
costs 3.0 times tokenising an article with the extension and 6.5 times without (6.4 before
any of it was C). `pip install` builds the extension where a C compiler and Python's headers
are present and goes on without it where not: these Python versions give the same answers
(tests/test_native.py compares the two), only slower.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from itertools import chain, compress, islice
from typing import Any, Protocol

from ..text import token_starts

log = logging.getLogger(__name__)


class Filed(Protocol):
    """Items filed under one presearch key (index._Filed)."""

    alone: list[int] | None
    by_term: dict[str, list[int]] | None
    seconds: bytes | None  # by_term as numbers (index._Filed.seal)


Meaning = tuple[tuple[Filed, ...], tuple[Filed, ...], tuple[str, ...], bytes]


def token_hashes(tokens: list[str]) -> bytes:
    """What positions_of compares first (the C version: each token's hash, side by side)."""
    return b""


def positions_of(tokens: list[str], hashes: bytes, words: tuple[str, ...]) -> list[int]:
    """Positions of the tokens that are one of `words`, in order; `hashes`: token_hashes(tokens)."""
    wanted = frozenset(words)
    return [i for i, token in enumerate(tokens) if token in wanted]


def leaf_hits(
    fields: list[tuple[str, list[str], bytes]],
    words: tuple[str, ...],
    label: str,
    entity: str | None,
) -> list[tuple[str, int, int, str, str | None]] | None:
    """The hits (name, i, i + 1, label, entity) of the tokens that are one of `words`, field
    after field (`fields`: name, tokens, token_hashes(tokens)); None where there is none."""
    wanted = frozenset(words)
    found = [
        (name, i, i + 1, label, entity)
        for name, tokens, _ in fields
        for i, token in enumerate(tokens)
        if token in wanted
    ]
    return found or None


def near_pairs(lefts: list, rights: list, distance: int, ordered: bool) -> dict:
    """The hits (field, first token, end token, ...) of either side that have a partner on the
    other in the same field within `distance` words (adjacent words are 1 apart; after the left
    one only when `ordered`), each left one tried with every right one, in that order."""
    used: dict = {}
    for lh in lefts:
        for rh in rights:
            if lh[0] != rh[0]:
                continue
            if rh[1] >= lh[2]:
                gap = rh[1] - lh[2] + 1
            elif lh[1] >= rh[2] and not ordered:
                gap = lh[1] - rh[2] + 1
            else:
                continue  # the same words on both sides, or the wrong order
            if gap <= distance:
                used[lh] = None
                used[rh] = None
    return used


def pairs_of(
    meanings: list[Meaning],
    words: list[str],
    fields: list[tuple[str, list[str], bytes]],
    found: set,
) -> None:
    """Add to `found` what each pair of adjacent tokens stands for, where the first is the word
    of a meaning (side by side in `words`) whose sixth item is a dict (second word -> what the
    pair stands for) that holds the second. `fields`: (name, tokens, token_hashes(tokens))."""
    by_first = {
        word: meaning[5]
        for meaning, word in zip(meanings, words, strict=True)
        if len(meaning) > 5 and meaning[5]
    }
    if not by_first:
        return
    for _, tokens, _ in fields:
        adjacent = zip(tokens, islice(tokens, 1, None), strict=False)
        for first, second in compress(adjacent, map(by_first.__contains__, tokens)):
            value = by_first[first].get(second)
            if value is not None:
                found.add(value)


def candidates(terms: AbstractSet[str], keys: Iterable[Filed], always: Sequence[int]) -> set[int]:
    """Items in `always`, and those filed under one of `keys` alone or by a second term among
    `terms`."""
    found: set[int] = set(always)
    for filed in dict.fromkeys(keys):  # each key once: words share prefixes and stems
        if filed.alone:
            found.update(filed.alone)
        by_term = filed.by_term
        if by_term:
            # terms.intersection(by_term) walks the few terms filed here.
            for term in terms.intersection(by_term):
                found.update(by_term[term])
    return found


def presearch(
    meanings: list[Meaning],
    rules_always: list[int],
    entities_always: list[int],
    numbered: int,
    checks: list | None,
    compiled: Sequence[Any],
    layout: bytes = b"",
    keys: int = 0,
) -> tuple[list[int], list[int]]:
    """The rules and entities an article's `meanings` (its words' and pairs') make candidates,
    in id order: rules filed under their keys alone or by a second term among the meanings'
    terms, entities under their keys. Where `checks` is a list (by rule id: None, or the rule's
    clauses by term number, which the C version reads), only rules whose required clauses the
    terms hold (CompiledRule.may_match of `compiled`, the index's rules). `numbered`: how many
    terms the index numbers (the C version's bit set of the article's terms). `layout` and
    `keys`: the rule keys' items as the C version reads them (index._KeyIndex.seal), where the
    meanings' seventh items point; this version reads the keys (the meanings' first items)."""
    terms = set(chain.from_iterable(meaning[2] for meaning in meanings))
    rules = candidates(terms, chain.from_iterable(meaning[0] for meaning in meanings), rules_always)
    entities = candidates(
        frozenset(), chain.from_iterable(meaning[1] for meaning in meanings), entities_always
    )
    found = sorted(rules)
    if checks is not None:
        found = [i for i in found if checks[i] is None or compiled[i].may_match(terms)]
    return found, sorted(entities)


def meanings_of(
    words: frozenset[str], meaning: dict[str, Meaning | None], found_words: list[str]
) -> tuple[list[Meaning], list[str]]:
    """`meaning[word]` of each of `words` that has one (None: a word seen that means nothing),
    and the words `meaning` does not hold (new to an index's vocabulary). The words of the
    meanings found are appended to `found_words`, side by side with them."""
    pairs = [(word, its) for word in words if (its := meaning.get(word)) is not None]
    found_words.extend(word for word, _ in pairs)
    # difference() with a dict walks the words, looking each up in it: `words - meaning.keys()`
    # made a set of the whole vocabulary first.
    return [its for _, its in pairs], list(words.difference(meaning))


def form_table(meanings: list[Meaning]) -> dict[int, list[int]]:
    """Form number -> the positions in `meanings` of those that name it (their fifth item: form
    numbers, C ints side by side): what words_of_form reads."""
    table: dict[int, list[int]] = {}
    for i, meaning in enumerate(meanings):
        for number in array("i", meaning[4]):
            table.setdefault(number, []).append(i)
    return table


def words_of_form(table: Any, words: list[str], number: int) -> list[str]:
    """The words (side by side with the meanings form_table read) whose meanings name the form
    `number`."""
    return [words[i] for i in table.get(number, ())]


def evidence_of(
    hits: list,
    made: dict,
    locate: Callable[[Any, Any], tuple],
    doc: Any,
    locators: dict[str, tuple],
    kind: type,
) -> tuple:
    """The evidence of distinct places among `hits`, in reading order (the first hit's where
    several share a place): each hit's (place, evidence) from the memo `made`, or from
    locate(hit, doc), remembered there. A place is (field rank, first token, end token).
    The C version locates a hit itself, as an instance of `kind`, where `locators` holds its
    field's (rank, token offsets, lengths as written, tokens, text)."""
    seen: dict[tuple[int, int, int], Any] = {}
    for hit in hits:
        found = made.get(hit)
        if found is None:
            found = made[hit] = locate(hit, doc)
        place, evidence = found
        if place not in seen:  # the first label for the same words wins
            seen[place] = evidence
    # The keys sort as tuples of ints, in C: no key function called per evidence.
    return tuple(map(seen.__getitem__, sorted(seen)))


FIELD_WEIGHTS = {"title": 3.0, "summary": 2.0, "content": 1.0}


def score_of(evidence: tuple) -> float:
    """Field weights summed over `evidence` (in reading order), words overlapping words counted
    already not counted again (evidence.score_of)."""
    total, reach = 0.0, {}
    for e in evidence:
        end = reach.get(e.field)
        if end is None or e.start >= end:
            total += FIELD_WEIGHTS.get(e.field, 1.0)
        reach[e.field] = e.end if end is None else max(end, e.end)
    return total


def snippet(pool: list, texts: dict[str, str]) -> str:
    """evidence.snippet_around (the C version does the same in one call)."""
    from .evidence import snippet_around  # evidence imports this module

    return snippet_around(pool, texts)


def seq_hits(seq: Any, doc: Any) -> list | None:
    """The hits of a leaf of one word, prefix or stem (nodes.Seq with a spec) in a document,
    remembered in doc.memo: what Seq.hits gives without the extension."""
    found = doc.memo.get(seq, _UNSET)
    if found is _UNSET:
        found = doc.memo[seq] = seq._hits(doc)
    return found


_UNSET = object()


def hits_of(nodes: list, doc: Any) -> list:
    """Each node's hits (node_hits), the C version reading the document's attributes once."""
    return [node.hits(doc) for node in nodes]


def node_hits(node: Any, doc: Any) -> list | None:
    """A node's hits (nodes.Node.hits): the C version evaluates the node and its children by
    their specs; this one is what the nodes do without the extension."""
    return node.hits(doc)


PYTHON = {
    "seq_hits": seq_hits,
    "node_hits": node_hits,
    "hits_of": hits_of,
    "token_hashes": token_hashes,
    "positions_of": positions_of,
    "leaf_hits": leaf_hits,
    "near_pairs": near_pairs,
    "snippet": snippet,
    "evidence_of": evidence_of,
    "score_of": score_of,
    "pairs_of": pairs_of,
    "presearch": presearch,
    "token_starts": token_starts,
    "meanings_of": meanings_of,
    "form_table": form_table,
    "words_of_form": words_of_form,
}
# What _native.c must say it implements (its INTERFACE): a build left from older sources (an
# install whose compile failed keeps the previous one in place) would be called with arguments
# it does not take, or read data laid out otherwise.
INTERFACE = 7


def _load_native() -> Any:
    """The C extension, or None where it is not built or not built from these sources."""
    try:
        from . import _native
    except ImportError:  # not built: no C compiler where Vigie was installed
        return None
    if getattr(_native, "INTERFACE", None) != INTERFACE:
        log.warning(
            "the matcher's C extension %s was built from other sources: not used; "
            "reinstall Vigie (pip install -e .) to build it again",
            _native.__file__,
        )
        return None
    return _native


_c = _load_native()
NATIVE = _c is not None
if _c is not None:
    evidence_of = _c.evidence_of
    leaf_hits = _c.leaf_hits
    meanings_of = _c.meanings_of
    form_table = _c.form_table
    words_of_form = _c.words_of_form
    near_pairs = _c.near_pairs
    pairs_of = _c.pairs_of
    positions_of = _c.positions_of
    presearch = _c.presearch
    score_of = _c.score_of
    seq_hits = _c.seq_hits
    node_hits = _c.node_hits
    hits_of = _c.hits_of
    snippet = _c.snippet
    token_hashes = _c.token_hashes
    token_starts = _c.token_starts
