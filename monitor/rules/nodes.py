"""Matcher nodes: evaluate against a Document and explain themselves.

Each node answers three questions:
- `hits(doc)`: None when it does not match; otherwise the evidence, a list of
  (field, first token, end token, label, entity id) tuples ([] for a NOT that holds).
- `keys()`: the presearch keys (words, prefixes, stems, two adjacent words), a set of which every
  matching article contains at least one (None when the node can match without any particular
  word, e.g. NOT). The index files a rule under its keys, so only rules with a key in the
  article are evaluated at all.
- `must()`: clauses of terms a matching article contains, checked before evaluation.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from operator import itemgetter

from ..text import fold_word
from . import native
from .document import Document, FieldText
from .stats import HEURISTIC, Key, TermStats

Hit = tuple[str, int, int, str, str | None]


@dataclass(frozen=True)
class Part:
    """One word of a term or phrase: exact folded word, prefix, stem or exact case."""

    kind: str  # "w" | "p" | "s" | "c"
    value: str  # folded word, prefix or original-case word
    stems: tuple[tuple[str, str], ...] = ()  # (language, stem) for kind "s"
    # As a RuleIndex names what a word has (Document.forms): (language, "lang~stem") for each
    # stem, ("", "prefix*") for a prefix.
    forms: tuple[tuple[str, str], ...] = dataclass_field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind == "p":
            forms = (("", f"{self.value}*"),)
        else:
            forms = tuple((language, f"{language}~{stem}") for language, stem in self.stems)
        object.__setattr__(self, "forms", forms)

    def positions(self, ft: FieldText, doc: Document) -> list[int]:
        if self.kind == "w":
            return ft.where(self.value)
        if self.kind == "p":
            return ft.prefix_positions(self.value, doc.words_with_prefix(self.value))
        if self.kind == "s":
            out: list[int] = []
            for language, stem in self.stems:
                if language in ft.languages:
                    words = doc.words_of_stem(language, stem)
                    out.extend(ft.stem_positions(language, stem, words))
            return sorted(set(out)) if len(ft.languages) > 1 else out
        folded = ft.where(fold_word(self.value))
        if not folded:
            return folded
        return [p for p in folded if ft.cased(p) == self.value]

    def keys(self) -> frozenset[Key]:
        if self.kind == "p":
            return frozenset({("p", self.value)})
        if self.kind == "s":
            return frozenset((f"s:{language}", stem) for language, stem in self.stems)
        return frozenset({("w", fold_word(self.value) if self.kind == "c" else self.value)})


Clause = frozenset[str]


class Node:
    # How native.node_hits evaluates the node in C, its children too: (kind, what it needs);
    # None for a node it leaves to `hits`.
    spec: tuple | None = None

    def hits(self, doc: Document) -> list[Hit] | None:
        raise NotImplementedError

    def keys(self) -> frozenset[Key] | None:
        raise NotImplementedError

    def must(self) -> tuple[Clause, ...]:
        """Sets of terms of which a matching article contains at least one each: exact words,
        "word word" pairs standing together, "en~stem" stems, "prefix*" beginnings. A candidate
        failing any is dropped with a few set operations, before evaluation (Lucene Monitor's
        multipass term filter)."""
        return ()


class Seq(Node):
    """A word or a phrase: parts at consecutive positions in one field."""

    def __init__(
        self,
        parts: tuple[Part, ...],
        fields: tuple[str, ...],
        label: str,
        entity: str | None = None,
        stats: TermStats = HEURISTIC,
    ) -> None:
        self.parts, self.fields, self.label, self.entity = parts, fields, label, entity
        # Filed under its rarest word, or under two adjacent words of a phrase ("saudi arabia"),
        # which an article contains only when they stand together: far fewer candidates than
        # either word alone, for the names most rules are written about.
        options = [p.keys() for p in parts]
        for left, right in zip(parts, parts[1:], strict=False):
            if left.kind in ("w", "c") and right.kind in ("w", "c"):
                options.append(
                    frozenset({("b", f"{fold_word(left.value)} {fold_word(right.value)}")})
                )
        self._keys = min(options, key=stats.keys_cost)
        # The most common shape, one plain word, takes a short path.
        self.word = parts[0].value if len(parts) == 1 and parts[0].kind == "w" else None
        # Words that must all be in the article: a phrase whose words are absent is ruled out
        # by one subset test, before any position is looked at.
        self.required = frozenset(fold_word(p.value) for p in parts if p.kind in ("w", "c"))
        # Stems and prefixes are checked the same way, against the article's stems and sorted
        # words, before any field is looked at: most stemmed leaves of a rule are absent.
        self.stemmed = tuple(p.stems for p in parts if p.kind == "s")
        self.prefixes = tuple(p.value for p in parts if p.kind == "p")
        # One stem or one prefix, the next most common shapes, take a short path too.
        self.forms = parts[0] if len(parts) == 1 and parts[0].kind in ("s", "p") else None
        # Those shorter paths, and a phrase of plain words ("Jean Dupont", most entities and
        # names), in one call of the C extension (native.seq_hits), as it reads them.
        self.spec = None
        phrase = None
        if len(parts) > 1 and all(p.kind == "w" for p in parts):
            phrase = tuple(p.value for p in parts)
        if self.word is not None or self.forms is not None or phrase is not None:
            forms = self.forms.forms if self.forms is not None else None
            self.spec = (_LEAF, self.word, forms, fields, label, entity, self.forms, phrase)

    def hits(self, doc: Document) -> list[Hit] | None:
        if self.spec is not None and native.NATIVE:
            return native.seq_hits(self, doc)
        # Rules share leaves (see Compiler.cache): each is evaluated once per article.
        found = doc.memo.get(self, _UNSET)
        if found is _UNSET:
            found = doc.memo[self] = self._hits(doc)
        return found

    def _hits(self, doc: Document) -> list[Hit] | None:
        if self.word is not None:
            return self._word_hits(doc, self.word)
        if self.forms is not None:
            return self._forms_hits(doc, self.forms)
        if not self.required <= doc.words:
            return None
        for stems in self.stemmed:
            if not any(doc.has_stem(language, stem) for language, stem in stems):
                return None
        if not all(map(doc.has_prefix, self.prefixes)):
            return None
        out: list[Hit] = []
        n = len(self.parts)
        for name in self.fields:
            ft = doc.field(name)
            if not ft.tokens:
                continue
            starts = self.parts[0].positions(ft, doc)
            if not starts:
                continue
            if n > 1:
                for offset in range(1, n):
                    following = set(self.parts[offset].positions(ft, doc))
                    starts = [s for s in starts if s + offset in following]
                    if not starts:
                        break
            out.extend((name, s, s + n, self.label, self.entity) for s in starts)
        return out or None

    def _word_hits(self, doc: Document, word: str) -> list[Hit] | None:
        # With the C extension a word, prefix or stem leaf never comes here (native.seq_hits).
        if word not in doc.words:
            return None
        out: list[Hit] = []
        label, entity = self.label, self.entity
        for name in self.fields:
            found = doc.field(name).where(word)
            if found:
                out.extend([(name, s, s + 1, label, entity) for s in found])
        return out or None

    def _forms_hits(self, doc: Document, part: Part) -> list[Hit] | None:
        """A stem or a prefix: the document's words with it, found once, then their positions
        in each field."""
        words = doc.words_of(part)
        if not words:
            return None
        out: list[Hit] = []
        label, entity = self.label, self.entity
        for name in self.fields:
            starts = doc.field(name).positions_of(words)
            if starts:
                out.extend([(name, s, s + 1, label, entity) for s in starts])
        return out or None

    def keys(self) -> frozenset[Key] | None:
        return self._keys

    def must(self) -> tuple[Clause, ...]:
        exact = [fold_word(p.value) if p.kind in ("w", "c") else None for p in self.parts]
        pairs = [
            frozenset({f"{left} {right}"})
            for left, right in zip(exact, exact[1:], strict=False)
            if left and right
        ]
        prefixes = [frozenset({f"{p.value}*"}) for p in self.parts if p.kind == "p"]
        stems = [
            frozenset(f"{language}~{stem}" for language, stem in p.stems)
            for p in self.parts
            if p.kind == "s"
        ]
        return (*pairs, *(frozenset({word}) for word in exact if word), *stems, *prefixes)


class AllOf(Node):
    def __init__(self, children: list[Node], stats: TermStats = HEURISTIC) -> None:
        # Evaluate the child most likely to fail (the rarest keys) first; file under its keys.
        self.children = sorted(children, key=lambda c: stats.keys_cost(c.keys()))
        self.spec = (_ALL_OF, tuple(map(_item, self.children)))

    def hits(self, doc: Document) -> list[Hit] | None:
        if native.NATIVE:
            return native.node_hits(self, doc)
        out: list[Hit] = []
        for child in self.children:
            found = child.hits(doc)
            if found is None:
                return None
            out.extend(found)
        return out

    def keys(self) -> frozenset[Key] | None:
        return self.children[0].keys() if self.children else None

    def must(self) -> tuple[Clause, ...]:
        return tuple(dict.fromkeys(c for child in self.children for c in child.must()))


class AnyOf(Node):
    def __init__(self, children: list[Node]) -> None:
        self.children = children
        child_keys = [c.keys() for c in children]
        self._keys = None if any(k is None for k in child_keys) else frozenset().union(*child_keys)
        self.spec = (_ANY_OF, tuple(map(_item, children)))

    def hits(self, doc: Document) -> list[Hit] | None:
        if native.NATIVE:
            return native.node_hits(self, doc)
        out: list[Hit] | None = None
        for child in self.children:
            found = child.hits(doc)
            if found is not None:
                if out is None:
                    out = found.copy()  # a child's hits are memoised: never changed
                else:
                    out.extend(found)
        return out

    def keys(self) -> frozenset[Key] | None:
        return self._keys  # type: ignore[return-value]

    def must(self) -> tuple[Clause, ...]:
        # (a AND b) OR (c AND d) needs {a, c}, {a, d}, {b, c} and {b, d}: the product of the
        # children's clauses, from their first two each, and at most eight.
        heads = [child.must()[:2] for child in self.children]
        if not heads or not all(heads):
            return ()
        clauses: list[Clause] = [frozenset()]
        for head in heads:
            clauses = [clause | other for clause in clauses for other in head]
            if len(clauses) > 8:
                clauses = clauses[:8]
        return tuple(dict.fromkeys(clauses))


class NoneOf(Node):
    def __init__(self, child: Node) -> None:
        self.child = child
        self.spec = (_NONE_OF, _item(child))

    def hits(self, doc: Document) -> list[Hit] | None:
        if native.NATIVE:
            return native.node_hits(self, doc)
        return [] if self.child.hits(doc) is None else None

    def keys(self) -> None:
        return None


class Near(Node):
    """Both sides within `distance` words in the same field (adjacent words are 1 apart);
    `ordered` requires the left side first. The sides must be different words: spans that
    share a word do not count, so `@migrants NEAR/40 @migrants` needs two mentions, not one
    mention near itself."""

    def __init__(
        self,
        left: Node,
        right: Node,
        distance: int,
        ordered: bool,
        stats: TermStats = HEURISTIC,
    ) -> None:
        self.left, self.right, self.distance, self.ordered = left, right, distance, ordered
        # Whether all of a side's hits count where one paired (see hits): an AND or a NEAR,
        # not a NOT NEAR.
        self._whole = tuple(
            isinstance(side, AllOf | Near) and not isinstance(side, NotNear)
            for side in (left, right)
        )
        self._keys = min((left.keys(), right.keys()), key=stats.keys_cost)
        if type(self) is Near:  # not a NOT NEAR, whose hits are others
            self.spec = (
                _NEAR,
                pairs_found,
                _item(left),
                _item(right),
                distance,
                ordered,
                *self._whole,
            )

    def hits(self, doc: Document) -> list[Hit] | None:
        if self.spec is not None and native.NATIVE:
            return native.node_hits(self, doc)
        lefts = self.left.hits(doc)
        if not lefts:
            return None
        rights = self.right.hits(doc)
        if not rights:
            return None
        used = self._pairs(lefts, rights)
        if not used:
            return None
        # A side that is itself an AND or a NEAR: all its words made the match, not only the
        # one that paired (`(police NEAR/2 slap) NEAR/3 migrant` showed slap and migrant only).
        # A NOT NEAR's hits are places of one word, as a word's are: only those that paired
        # (an entity's alias kept out of its `not_inside` names, then near a context word).
        whole_left, whole_right = self._whole
        if whole_left and not used.keys().isdisjoint(lefts):
            used.update(dict.fromkeys(lefts))
        if whole_right and not used.keys().isdisjoint(rights):
            used.update(dict.fromkeys(rights))
        return list(used)

    def _pairs(self, lefts: list[Hit], rights: list[Hit]) -> dict[Hit, None]:
        """The hits of either side that have a partner on the other within the distance: for
        the few hits most articles have, every left one tried with every right one (in C with
        the extension: native.near_pairs)."""
        if len(lefts) * len(rights) <= _PAIRS_TRIED:
            return native.near_pairs(lefts, rights, self.distance, self.ordered)
        return pairs_found(lefts, rights, self.distance, self.ordered)

    def keys(self) -> frozenset[Key] | None:
        return self._keys

    def must(self) -> tuple[Clause, ...]:
        return tuple(dict.fromkeys((*self.left.must(), *self.right.must())))


class NotNear(Near):
    """`a NOT NEAR/n b`: the places of `a` with no `b` within `distance` words in the same
    field (before or after it; after only with ONEAR). Holds where one such `a` is left:
    `Channel NOT NEAR/1 4` holds for "the Channel" and not for "Channel 4" alone. A `b` that
    holds words of `a` and goes on past them (a phrase around it: `Channel NOT NEAR/3 "Channel
    4"`) is near it too, after it for ONEAR when it goes on after it; `a`'s own words, or `a`
    itself, are not. Filed under `a`'s keys only, and needs only `a`'s clauses: `b` may be
    absent."""

    def hits(self, doc: Document) -> list[Hit] | None:
        # An entity's context words are not its places: "camp" near "Jungle" let "the Jungle
        # Book" through `@calais NOT NEAR/1 book` (a code review).
        lefts = [hit for hit in self.left.hits(doc) or () if not hit[3].endswith(" context")]
        return self._apart(lefts, doc)

    def _apart(self, lefts: list[Hit], doc: Document) -> list[Hit] | None:
        """Of the places `lefts`, those with no `b` near them."""
        if not lefts:
            return None
        rights = self.right.hits(doc)
        if not rights:
            return lefts
        near = self._pairs(lefts, rights)
        near.update(self._covered(lefts, rights))
        return [hit for hit in lefts if hit not in near] or None

    def _covered(self, lefts: list[Hit], rights: list[Hit]) -> dict[Hit, None]:
        """The places of `a` that a `b` shares words with and goes on past: `Channel NOT
        NEAR/3 "Channel 4"` let "Channel 4 News" through, since spans that share a word were
        never near. Found by bisection in the right ones sorted by start; a one-word `b`,
        the most common, never goes past a word it shares, and is not looked at."""
        by_field: dict[str, list[Hit]] = {}
        for hit in rights:
            if hit[2] - hit[1] > 1:
                by_field.setdefault(hit[0], []).append(hit)
        covered: dict[Hit, None] = {}
        if not by_field:
            return covered
        sides = {}
        for field, found in by_field.items():
            found.sort(key=_START)
            sides[field] = ([h[1] for h in found], found, max(h[2] - h[1] for h in found))
        for lh in lefts:
            side = sides.get(lh[0])
            if side is None:
                continue
            starts, found, longest = side
            _, start, end = lh[:3]
            low, high = bisect_left(starts, start - longest + 1), bisect_left(starts, end)
            for rh in found[low:high]:
                within = rh[1] >= start and rh[2] <= end  # a's own words
                past = rh[2] > end if self.ordered else rh[1] < start or rh[2] > end
                if rh[2] > start and not within and past:
                    covered[lh] = None
                    break
        return covered

    def keys(self) -> frozenset[Key] | None:
        return self.left.keys()

    def must(self) -> tuple[Clause, ...]:
        return self.left.must()


class Outside(NotNear):
    """An entity's aliases, or its context words, but where one of its `not_inside` names
    stands over them and goes on past them: `left NOT NEAR/0 names`. "Calais" in
    "Pas-de-Calais", the département, is no Calais, as an alias or as the word that makes
    "Jungle" count."""

    def __init__(self, left: Node, names: Node, stats: TermStats = HEURISTIC) -> None:
        super().__init__(left, names, 0, False, stats)

    def hits(self, doc: Document) -> list[Hit] | None:
        return self._apart(self.left.hits(doc) or [], doc)


_START, _END = itemgetter(1), itemgetter(2)
# Node kinds, as native.node_hits reads them in Node.spec.
_LEAF, _ALL_OF, _ANY_OF, _NONE_OF, _NEAR = range(5)


def _item(node: Node) -> Node | tuple:
    """A child as its parent's spec holds it: an AND, OR, NOT or NEAR by its own spec, which
    native.node_hits walks without reading the node; a leaf (its memo's key) or a node with no
    spec as itself. A spec holds no node that holds it: the index has no reference cycles,
    which the garbage collector would have to find (scheduler.keep_long_lived)."""
    if node.spec is not None and node.spec[0] != _LEAF:
        return node.spec
    return node


_UNSET = object()  # not in a document's memo yet
_PAIRS_TRIED = 256  # up to this many pairs of hits, Near tries them all


def pairs_found(
    lefts: list[Hit], rights: list[Hit], distance: int, ordered: bool
) -> dict[Hit, None]:
    """The hits that pair within `distance` (after the left one only when `ordered`), each left
    one's partners found by bisection in the right ones sorted by start and by end, for sides
    with many hits (Near._pairs): tried all with all, an article repeating "police slap"
    20,000 times took 56 s."""
    by_field: dict[str, tuple[list[int], list[Hit], list[int], list[Hit]]] = {}
    for field, found in _by_field(rights).items():
        by_start = sorted(found, key=_START)
        by_end = sorted(found, key=_END)
        by_field[field] = ([h[1] for h in by_start], by_start, [h[2] for h in by_end], by_end)
    used: dict[Hit, None] = {}
    for lh in lefts:
        sides = by_field.get(lh[0])
        if sides is None:
            continue
        starts, by_start, ends, by_end = sides
        # Right after it: starts from its end to `distance` - 1 words past it.
        low, high = bisect_left(starts, lh[2]), bisect_right(starts, lh[2] + distance - 1)
        paired = by_start[low:high]
        if not ordered:  # right before it: ends from `distance` - 1 words before it
            low, high = bisect_left(ends, lh[1] - distance + 1), bisect_right(ends, lh[1])
            paired += by_end[low:high]
        if paired:
            used[lh] = None
            used.update(dict.fromkeys(paired))
    return used


def _by_field(hits: list[Hit]) -> dict[str, list[Hit]]:
    found: dict[str, list[Hit]] = {}
    for hit in hits:
        found.setdefault(hit[0], []).append(hit)
    return found


class Memo(Node):
    """A shared node (an entity) whose hits are computed once per article. `nested`: the node
    is an AnyOf of aliases some of which may stand inside others ("Roger Hallam" and "Hallam",
    "Met Police" and "Met"); each place is then the longest alias that covers it, once:
    evidence read "@hallam: Roger Hallam, Hallam" for one name, and `@hallam NOT NEAR/1
    founder` took the "Hallam" of "founder Roger Hallam" for a Hallam far from the founder."""

    def __init__(self, node: Node, nested: bool = False) -> None:
        self.node = node
        self.aliases = node.children if nested and isinstance(node, AnyOf) else []

    def hits(self, doc: Document) -> list[Hit] | None:
        memo = doc.memo
        if self in memo:
            return memo[self]
        found = memo[self] = self._outermost(doc) if self.aliases else self.node.hits(doc)
        return found

    def keys(self) -> frozenset[Key] | None:
        return self.node.keys()

    def must(self) -> tuple[Clause, ...]:
        return self.node.must()

    def _outermost(self, doc: Document) -> list[Hit] | None:
        """The aliases' hits but the places inside a longer place of the entity in the same
        field, and the context words of an alias none of whose places is left (the "police"
        that let "Met" count, in "the Met Police")."""
        found = [hits for alias in self.aliases if (hits := alias.hits(doc))]
        if len(found) < 2:
            return found[0] if found else None
        inside = _inside([hit for hits in found for hit in hits])
        out: list[Hit] = []
        for hits in found:
            kept = [hit for hit in hits if hit not in inside] if inside else hits
            if any(hit[4] is not None for hit in kept):
                out.extend(kept)
        return out


def _inside(hits: list[Hit]) -> set[Hit]:
    """The places of an entity (hits with an entity: not context words) inside a longer one
    of it in the same field."""
    places = sorted((h for h in hits if h[4] is not None), key=_place_order)
    inside: set[Hit] = set()
    field, start, reach = "", -1, -1  # the longest place so far in the field, and its end
    for hit in places:
        if hit[0] != field:
            field, start, reach = hit[0], hit[1], hit[2]
        elif hit[2] > reach:
            start, reach = hit[1], hit[2]
        elif (hit[1], hit[2]) != (start, reach):  # starts no sooner (by the order), ends no
            inside.add(hit)  # later: within it
    return inside


def _place_order(hit: Hit) -> tuple[str, int, int]:
    return hit[0], hit[1], -hit[2]  # the longest first of those that start together


class LanguageIs(Node):
    def __init__(self, codes: frozenset[str]) -> None:
        self.codes = codes

    def hits(self, doc: Document) -> list[Hit] | None:
        return [] if doc.language in self.codes else None

    def keys(self) -> None:
        return None


def leaves(node: Node) -> Iterator[Seq]:
    """The words and phrases of a tree, shared ones as often as they occur."""
    if isinstance(node, Seq):
        yield node
    elif isinstance(node, AllOf | AnyOf):
        for child in node.children:
            yield from leaves(child)
    elif isinstance(node, Near):
        yield from leaves(node.left)
        yield from leaves(node.right)
    elif isinstance(node, NoneOf):
        yield from leaves(node.child)
    elif isinstance(node, Memo):
        yield from leaves(node.node)


def exact_keys(node: Node) -> frozenset[Key]:
    """Of `node.keys()`, those that stand only for words asked for as written: `=UN` is filed
    under "un", a key most French articles hold, where it matches only the UN (`rules check`
    tells apart a rule broad for its everyday words, and one filed under them)."""
    if isinstance(node, Seq):
        exact = {("w", fold_word(p.value)) for p in node.parts if p.kind == "c"}
        exact.difference_update(("w", p.value) for p in node.parts if p.kind == "w")
        return frozenset(exact.intersection(node.keys() or ()))
    if isinstance(node, Memo):
        return exact_keys(node.node)
    if isinstance(node, AllOf):
        return exact_keys(node.children[0]) if node.children else frozenset()
    if isinstance(node, NotNear):
        return exact_keys(node.left)
    if isinstance(node, Near):  # filed under the keys of one side, or both if the same
        sides = [side for side in (node.left, node.right) if side.keys() == node.keys()]
        return frozenset.intersection(*map(exact_keys, sides))
    if isinstance(node, AnyOf):  # exact in some alternative, and asked plainly in none
        exact = [exact_keys(child) for child in node.children]
        plain = [(c.keys() or frozenset()) - e for c, e in zip(node.children, exact, strict=True)]
        return frozenset().union(*exact) - frozenset().union(*plain)
    return frozenset()
