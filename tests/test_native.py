"""The matcher's C loops (monitor/rules/_native.c) must answer as their Python versions do:
where the extension is not built, the Python ones run, and a rule must match the same articles
with the same evidence either way."""

from __future__ import annotations

import os
import pickle
import random
import shutil
import subprocess
import sys
import sysconfig
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz import ENTITIES, FUZZ, QUERY, TEXT

from monitor.records import Article, Evidence
from monitor.rules import native
from monitor.rules.document import Document
from monitor.rules.evidence import _locate as locate_hit
from monitor.rules.evidence import snippet_around
from monitor.rules.files import load_rules
from monitor.rules.index import RuleIndex, _Filed, _KeyIndex
from monitor.rules.model import Rule
from monitor.rules.nodes import leaves, pairs_found
from monitor.rules.parser import QuerySyntaxError

REPO = Path(__file__).resolve().parents[1]

# Few distinct words, so that tokens repeat and pairs recur; accented, non-BMP and the field
# break token among them, as word_text leaves them.
WORDS = st.sampled_from(["calais", "police", "migrants", "exilés", "ça", "\x00", "𝔸b", "a", "é"])
# Past 32 tokens the C version finds a word's places by a table of hashes, not by a scan:
# lists of both lengths.
TOKENS = st.lists(WORDS, max_size=40) | st.lists(WORDS, min_size=32, max_size=300)


def test_the_extension_is_built_where_a_c_compiler_is() -> None:
    """`pip install` goes on without the extension when it does not compile (a machine with no
    compiler, or no Python headers): where both are, that would be a build broken unnoticed,
    the matcher a quarter slower."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    assert (bool(shutil.which(compiler)) and headers.is_file()) == native.NATIVE


def test_a_build_from_other_sources_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An install whose compile failed leaves the previous build in place: called with the
    arguments these sources pass, it would raise in the middle of matching. One that says it
    implements another interface is left aside, with a warning that says what to do."""
    c = pytest.importorskip("monitor.rules._native", reason="the C extension was not built")
    assert native._load_native() is c
    monkeypatch.setattr(c, "INTERFACE", native.INTERFACE + 1)
    assert native._load_native() is None
    assert "built from other sources" in caplog.text and "reinstall" in caplog.text


@given(TOKENS, st.lists(WORDS, max_size=20))
def test_positions_of_words_agree(tokens: list[str], words: list[str]) -> None:
    # Strs equal to the tokens but not the same objects: found by comparison, not identity;
    # more words than the C version holds on its stack, and repeated ones.
    copies = tuple("".join(list(word)) for word in words)
    found = native.positions_of(tokens, native.token_hashes(tokens), copies)
    assert found == native.PYTHON["positions_of"](tokens, b"", copies)


@given(st.lists(TOKENS, max_size=3), st.lists(WORDS, min_size=1, max_size=20), st.none() | WORDS)
def test_hits_of_words_in_fields_agree(
    fields: list[list[str]], words: list[str], entity: str | None
) -> None:
    scans = [(f"f{i}", tokens, native.token_hashes(tokens)) for i, tokens in enumerate(fields)]
    copies = tuple("".join(list(word)) for word in words)
    found = native.leaf_hits(scans, copies, "label", entity)
    python = [(name, tokens, b"") for name, tokens, _ in scans]
    assert found == native.PYTHON["leaf_hits"](python, copies, "label", entity)


HITS = st.lists(
    st.tuples(
        st.sampled_from(["title", "summary", "content", "url"]),
        st.integers(0, 6),
        st.integers(1, 3),
        st.sampled_from(["police", "calais"]),
        st.none() | st.just("calais"),
    ).map(lambda h: (h[0], h[1], h[1] + h[2], h[3], h[4])),
    max_size=25,
)
RANK = {"title": 0, "summary": 1, "content": 2, "url": 3}


def _locate(hit: tuple, doc: str) -> tuple[tuple[int, int, int], Evidence]:
    """As evidence._locate places a hit: here a token is 4 characters wide."""
    field, start, end, label, entity = hit
    text = f"{doc}:{field}:{start}"
    return (RANK[field], start, end), Evidence(field, 4 * start, 4 * end, text, label, entity)


@given(HITS, HITS)
def test_evidence_agrees(earlier: list[tuple], hits: list[tuple]) -> None:
    # A memo holding the hits of rules matched before, as an article's does.
    made = {hit: _locate(hit, "doc") for hit in earlier}
    expected_made = dict(made)
    found = native.evidence_of(hits, made, _locate, "doc", {}, Evidence)
    expected = native.PYTHON["evidence_of"](hits, expected_made, _locate, "doc", {}, Evidence)
    assert found == expected
    assert made == expected_made
    assert native.score_of(found) == native.PYTHON["score_of"](found)


# Words whose evidence is not the token as compared: a ligature (oeuvre), an acronym's periods
# (uk), inclusive writing (exilés), an apostrophe; and a line break.
WRITTEN = st.sampled_from(["U.K.", "œuvre", "exilé·es", "l'État", "Calais", "CRS", "\n", "a"])


@settings(max_examples=150)
@given(st.lists(WRITTEN, min_size=1, max_size=30), st.data())
def test_evidence_located_in_c_agrees(words: list[str], data: st.DataObject) -> None:
    text = " ".join(words)
    article = Article(feed_id=1, guid="g", url="u", title=text[:40], content=text)
    native_doc, python_doc = Document(article), Document(article)
    hits = []
    for field in ("title", "content"):
        size = len(native_doc.field(field).tokens)
        if size:
            for start in data.draw(st.lists(st.integers(0, size - 1), max_size=8)):
                end = data.draw(st.integers(start + 1, min(size, start + 3)))
                hits.append((field, start, end, "label", None))
    # The first hit of each field is located by evidence._locate, the next ones in C.
    found = native.evidence_of(
        hits, native_doc.evidence, locate_hit, native_doc, native_doc.locators, Evidence
    )
    expected = native.PYTHON["evidence_of"](
        hits, python_doc.evidence, locate_hit, python_doc, {}, Evidence
    )
    assert found == expected
    assert all(type(e) is Evidence for e in found)
    assert native_doc.evidence == python_doc.evidence


@given(HITS, HITS, st.integers(0, 4), st.booleans())
def test_near_pairs_agree(lefts: list[tuple], rights: list[tuple], distance: int, ordered: bool):
    found = native.near_pairs(lefts, rights, distance, ordered)
    expected = native.PYTHON["near_pairs"](lefts, rights, distance, ordered)
    assert list(found) == list(expected)  # the same hits, in the same order


SNIPPET_TEXT = st.text(alphabet="ab é\n\t\u00a0⟦⟧𝔸", max_size=700)


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[Evidence], dict[str, str]]:
    """Evidence in reading order (by offset within a field) over texts with spaces of several
    kinds, line breaks, non-BMP letters and the highlight marks themselves."""
    texts = {"summary": draw(SNIPPET_TEXT), "content": draw(SNIPPET_TEXT)}
    pool = []
    for field in ("summary", "content"):
        size = len(texts[field])
        spans = draw(st.lists(st.tuples(st.integers(0, size), st.integers(0, 12)), max_size=90))
        for start, length in sorted(spans):
            end = min(size, start + length)
            term = draw(st.sampled_from(["police", "calais", "@migrants"]))
            pool.append(Evidence(field, start, end, texts[field][start:end], term))
    return pool, texts


@settings(max_examples=300)
@given(pools())
def test_snippets_agree(drawn: tuple[list[Evidence], dict[str, str]]) -> None:
    pool, texts = drawn
    if pool:
        assert native.snippet(pool, texts) == snippet_around(pool, texts)


# Latin-1 texts are scanned 8 bytes at a time: long ones, with bytes past 127 (é, a no-break
# space) and some that differ from a space by one bit (\x00, !, \xa0).
@given(st.text(alphabet=" ab\x00é𝔸", max_size=60) | st.text(alphabet=" a!é\xa0\x00", max_size=300))
def test_token_starts_agree(words: str) -> None:
    assert list(native.token_starts(words)) == native.PYTHON["token_starts"](words)


@given(
    st.lists(TOKENS, max_size=3),
    st.dictionaries(
        WORDS, st.none() | st.dictionaries(WORDS, st.none() | st.integers(), max_size=3)
    ),
)
def test_pairs_of_adjacent_words_agree(
    fields: list[list[str]], by_first: dict[str, dict[str, int] | None]
) -> None:
    # Meanings of words, some the first word of pairs (second word -> what the pair stands for)
    words = list(by_first)
    meanings = [((), (), (), b"", b"", ends) for ends in by_first.values()]
    scans = [(f"f{i}", tokens, native.token_hashes(tokens)) for i, tokens in enumerate(fields)]
    found: set[int] = set()
    expected: set[int] = set()
    native.pairs_of(meanings, words, scans, found)
    python = [(name, tokens, b"") for name, tokens, _ in scans]
    native.PYTHON["pairs_of"](meanings, words, python, expected)
    assert found == expected
    assert expected == {
        value
        for tokens in fields
        for first, second in zip(tokens, tokens[1:], strict=False)
        if (value := (by_first.get(first) or {}).get(second)) is not None
    }


TERMS = ["a b", "court", "en~slap", "migra*", "x"]  # as an index numbers them: in order
NUMBER = {term: i for i, term in enumerate(TERMS)}


def filed(alone: list[int] | None, by_term: dict[str, list[int]] | None) -> _Filed:
    """Items filed under one key, as the index holds them."""
    made = _Filed()
    made.alone, made.by_term = alone, by_term
    return made


ITEMS = st.lists(st.integers(0, 30), max_size=4)
FILED = st.builds(
    filed,
    st.none() | ITEMS,
    st.none() | st.dictionaries(st.sampled_from(TERMS[:4]), ITEMS),
)


class Checked:
    """A compiled rule's required clauses (index.CompiledRule.may_match), and the same clauses
    by term number, as RuleIndex._checks holds them."""

    def __init__(self, required: frozenset[str], either: tuple[frozenset[str], ...]) -> None:
        self.required, self.either = required, either

    def may_match(self, terms: set[str]) -> bool:
        if not self.required <= terms:
            return False
        return not any(clause.isdisjoint(terms) for clause in self.either)

    def check(self) -> bytes:
        """As RuleIndex._check writes it."""
        flat = array("i", [len(self.required), *(NUMBER[term] for term in self.required)])
        flat.append(len(self.either))
        for clause in self.either:
            flat.extend([len(clause), *(NUMBER[term] for term in clause)])
        return flat.tobytes()


CLAUSE = st.frozensets(st.sampled_from(TERMS), min_size=1, max_size=3)
CHECKS = st.lists(
    st.none()
    | st.builds(
        Checked,
        st.frozensets(st.sampled_from(TERMS), max_size=2),
        st.lists(CLAUSE, max_size=2).map(tuple),
    ),
    min_size=31,
    max_size=31,
)


@settings(max_examples=300)
@given(
    st.lists(FILED, min_size=1, max_size=6),
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 5), max_size=3),
            st.lists(st.integers(0, 5), max_size=2),
            st.lists(st.sampled_from(TERMS), max_size=3),
        ),
        max_size=8,
    ),
    ITEMS,
    ITEMS,
    st.none() | CHECKS,
)
def test_presearch_agrees(
    keys: list[_Filed],
    shapes: list[tuple[list[int], list[int], list[str]]],
    rules_always: list[int],
    entities_always: list[int],
    checked: list[Checked | None] | None,
) -> None:
    # The keys laid out as an index lays out its rule keys for the C version (_KeyIndex.seal).
    index = _KeyIndex()
    index.words = {f"k{i}": key for i, key in enumerate(keys)}
    index.seal(NUMBER)
    # Meanings share keys, as words share a prefix or a stem: each key is read once.
    meanings = []
    for rules, entities, terms in shapes:
        rule_keys = tuple(keys[i % len(keys)] for i in rules)
        meanings.append(
            (
                rule_keys,
                tuple(keys[i % len(keys)] for i in entities),
                tuple(terms),
                array("i", [NUMBER[term] for term in terms]).tobytes(),
                b"",
                None,
                array("i", [key.at for key in rule_keys]).tobytes(),
            )
        )
    checks = None if checked is None else [c and c.check() for c in checked]
    compiled = checked or []
    found = native.presearch(
        meanings,
        rules_always,
        entities_always,
        len(TERMS),
        checks,
        compiled,
        index.flat,
        index.count,
    )
    expected = native.PYTHON["presearch"](
        meanings, rules_always, entities_always, len(TERMS), checks, compiled
    )
    assert found == expected


FORMS = st.lists(st.integers(0, 5), max_size=3, unique=True)


@given(st.frozensets(WORDS), st.dictionaries(WORDS, FORMS), st.sets(WORDS))
def test_meanings_of_words_agree(
    words: frozenset[str], known: dict[str, list[int]], empty: set[str]
) -> None:
    meaning: dict[str, tuple | None] = {word: None for word in empty}  # seen, mean nothing
    # A meaning names the forms its word has by number (index._Meaning.forms): the words of
    # each form are found in a table of the meanings.
    forms = {word: array("i", numbers).tobytes() for word, numbers in known.items()}
    meaning.update({word: ((), (), (word,), b"", forms[word]) for word in known})
    found_words: list[str] = []
    found, new = native.meanings_of(words, meaning, found_words)
    expected_words: list[str] = []
    expected, expected_new = native.PYTHON["meanings_of"](words, meaning, expected_words)
    assert sorted(found) == sorted(expected)
    assert sorted(new) == sorted(expected_new)
    assert sorted(found_words) == sorted(expected_words) == sorted(words & known.keys())
    assert [meaning[word] for word in found_words] == found  # side by side
    table = native.form_table(found)
    python_table = native.PYTHON["form_table"](found)
    for number in range(7):
        listed = native.words_of_form(table, found_words, number)
        assert listed == native.PYTHON["words_of_form"](python_table, found_words, number)
        assert sorted(listed) == sorted(w for w in found_words if number in known[w])


def test_wrong_arguments_raise_instead_of_crashing() -> None:
    c = pytest.importorskip("monitor.rules._native", reason="the C extension was not built")
    with pytest.raises(TypeError):
        c.positions_of(("a", "b"), b"", ("a",))  # a tuple, not a list
    with pytest.raises(ValueError):
        c.positions_of(["a", "b"], c.token_hashes(["a"]), ("a",))
    with pytest.raises(TypeError):
        c.leaf_hits([("title", ["a"])], ("a",), "a", None)
    with pytest.raises(TypeError):
        c.positions_of(["a"], c.token_hashes(["a"]), (1,))
    ab = [("t", ["a", "b"], c.token_hashes(["a", "b"]))]
    with pytest.raises(TypeError):  # pair ends not a dict
        c.pairs_of([((), (), (), b"", b"", ["b"])], ["a"], ab, set())
    with pytest.raises(ValueError):  # a word for each meaning
        c.pairs_of([((), (), (), b"", b"", {"b": 1})], [], ab, set())
    long = ["a", "b"] * 40
    hashes = c.token_hashes(long)
    with pytest.raises(ValueError):  # a table of hashes cut short
        c.positions_of(long, hashes[:-4], ("a",))
    for bad in ([0] * 80, list(range(80)), [1000] * 80):  # back, in circles, past the tokens
        table = array("i", hashes[8 * len(long) :])
        table[: len(long)] = array("i", bad)
        with pytest.raises(ValueError):
            c.positions_of(long, hashes[: 8 * len(long)] + table.tobytes(), ("a",))
    with pytest.raises(AttributeError):  # entity keys not _Filed objects
        c.presearch([((), (object(),), (), b"", b"", None, b"")], [], [], 1, None, [], b"", 0)
    with pytest.raises(ValueError):  # a number past those the index has
        meaning = ((), (), ("x",), array("i", [7]).tobytes(), b"", None, b"")
        c.presearch([meaning], [], [], 5, None, [], b"", 0)
    with pytest.raises(IndexError):  # a candidate without its checks
        c.presearch([], [3], [], 5, [None], [], b"", 0)
    with pytest.raises(ValueError):  # a check cut short
        c.presearch([], [0], [], 5, [array("i", [2, 1]).tobytes()], [], b"", 0)
    layout = array("i", [0, 1, 4, 5, 0, 3, 9]).tobytes()  # key 0: 4 alone; a second term cut
    for at, keys in ((0, 1), (2, 1), (0, 0), (-1, 1)):  # short, a key past the layout or count
        with pytest.raises(ValueError):
            meaning = ((), (), (), b"", b"", None, array("i", [at]).tobytes())
            c.presearch([meaning], [], [], 5, None, [], layout, keys)
    with pytest.raises(TypeError):
        c.meanings_of(frozenset({"a"}), [], [])
    with pytest.raises(TypeError):  # forms not C ints
        c.form_table([((), (), (), b"", ("a*",))])
    with pytest.raises(TypeError):  # not a form_table
        c.words_of_form(bytes(8), [], 1)
    with pytest.raises(ValueError):  # a bucket's chain going round in a circle
        c.words_of_form(array("i", [3, *[0] * 8, 1, 0, 0]).tobytes(), ["a"], 1)
    with pytest.raises(IndexError):  # a table of other meanings than the words'
        c.words_of_form(c.form_table([((), (), (), b"", array("i", [3]).tobytes())]), [], 3)
    with pytest.raises(ValueError):  # evidence ending before it starts overflowed the snippet
        c.snippet([Evidence("content", 200, 0, "", "t")] * 50, {"content": "a " * 200})
    with pytest.raises(ValueError):
        c.snippet([Evidence("content", 10, -100000, "", "t")], {"content": "a " * 200})
    with pytest.raises(TypeError):
        c.evidence_of([("t", 0, 1, "a", None)], {}, lambda h, d: "no place", None, {}, Evidence)
    with pytest.raises(ZeroDivisionError):  # an error of `locate` goes through
        c.evidence_of([("t", 0, 1, "a", None)], {}, lambda h, d: 1 / 0, None, {}, Evidence)
    with pytest.raises(TypeError):
        c.evidence_of([], {}, locate_hit, None, {}, dict)  # not a tuple type
    with pytest.raises(TypeError):
        c.score_of([("title", 0, 1)])

    class Spec:
        def __init__(self, spec: object) -> None:
            self.spec = spec

    doc = Document(Article(0, "g", "", "police"))
    for spec, error in [
        ((1, "no children"), TypeError),
        ((9, ()), ValueError),
        ((4, None, None), TypeError),  # a NEAR without its distance
        ((0, "police"), TypeError),  # a leaf cut short
    ]:
        with pytest.raises(error):
            c.node_hits(Spec(spec), doc)
    deep = Spec((0, "police", None, ("title",), "police", None, None, None))
    for _ in range(100_000):  # NOT NOT ... police: the C walk stops as Python's recursion does
        deep = Spec((3, deep))
    with pytest.raises(RecursionError):
        c.node_hits(deep, doc)


def test_the_c_loops_survive_python_code_that_changes_what_they_hold() -> None:
    """A token's __hash__, or the `locate` evidence_of calls back, runs Python code that may
    empty the list or the memo the C code reads (a helper's review crashed both): they raise or
    answer as the Python versions do, instead of reading freed memory."""
    c = pytest.importorskip("monitor.rules._native", reason="the C extension was not built")
    tokens: list[str] = []

    class Emptying(str):
        def __hash__(self) -> int:
            tokens.clear()
            return 1

    tokens[:] = [Emptying("a"), "b"]
    with pytest.raises(RuntimeError):
        c.token_hashes(tokens)

    class Comparing(str):
        def __eq__(self, other: object) -> bool:
            tokens.clear()
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    tokens[:] = ["a", Comparing("b"), "a", "b"]
    hashes = c.token_hashes(tokens)
    with pytest.raises(RuntimeError):  # looking "b" up after the first "a" empties the list
        c.pairs_of([((), (), (), b"", b"", {"b": 1})], ["a"], [("t", tokens, hashes)], set())

    def forgetful(made: dict) -> Callable:
        def locate(hit: tuple, doc: object) -> tuple:
            made.clear()
            return (0, hit[1], hit[2]), Evidence(hit[0], 0, 1, f"words {hit[1]}", "t")

        return locate

    hits = [("content", i, i + 1, "t", None) for i in range(200)]
    made: dict = {}
    found = c.evidence_of(hits, made, forgetful(made), None, {}, Evidence)
    expected_made: dict = {}
    expected = native.PYTHON["evidence_of"](
        hits, expected_made, forgetful(expected_made), None, {}, Evidence
    )
    assert found == expected and [e.text for e in found[:2]] == ["words 0", "words 1"]


def test_the_c_loops_survive_keys_and_fields_that_run_python_code() -> None:
    """A helper's review of the C tree walk, pairs and presearch crashed each of these: a str
    subclass or key whose __hash__, __eq__ or property empties the list or dict the C code
    was reading. Each now raises or answers; none reads freed memory."""
    c = pytest.importorskip("monitor.rules._native", reason="the C extension was not built")
    meanings: list = []
    words: list = []

    class Emptying(str):
        def __hash__(self) -> int:
            meanings.clear()
            words.clear()
            return str.__hash__(self)

    meanings[:] = [((), (), (), b"", b"", {"b": "x"})] * 4
    words[:] = [Emptying(f"a{k}") for k in range(4)]
    with pytest.raises(RuntimeError):
        c.pairs_of(meanings, words, [], set())

    lefts: list = []
    rights: list = []

    class Field(str):
        def __eq__(self, other: object) -> bool:
            lefts.clear()
            rights.clear()
            return False

        __hash__ = str.__hash__

    lefts[:] = [(Field("title"), k, k + 1, "l" * 50, None) for k in range(8)]
    rights[:] = [(Field("title"), k + 2, k + 3, "r" * 50, None) for k in range(8)]
    assert c.near_pairs(lefts, rights, 5, False) == {}  # no field equals another

    class Key:
        @property
        def alone(self) -> list[int]:
            meanings.clear()
            return [1]

    meanings[:] = [((), (Key(),), (), b"", b"", None, b"")] * 4
    assert c.presearch(meanings, [], [], 0, None, [], b"", 0) == ([], [1])

    class Side:
        spec = None

        def __init__(self, hits: list) -> None:
            self._hits = hits

        def hits(self, doc: object) -> list:
            return self._hits

    class Label:
        def __hash__(self) -> int:
            side.clear()
            return 7

    class Near:
        spec: tuple = ()

    side = [("title", 0, 1, "a", None), ("title", 50, 51, Label(), None)]
    near = Near()
    right = Side([("title", 1, 2, "b", None)])
    near.spec = (4, pairs_found, Side(side), right, 3, False, True, False)
    assert len(c.node_hits(near, None)) == 3  # the whole left side, and the right hit

    class Written:
        def __hash__(self) -> int:
            return 1  # the hash of the hit's last token, 1

        def __eq__(self, other: object) -> bool:
            locators.clear()
            return False

    text = "alpha " + "beta" * 100
    locators = {"title": (0, array("i", [0, 6]), {Written(): 3}, ["alpha", "beta" * 100], text)}
    del text
    placed = c.evidence_of([("title", 1, 2, "t", None)], {}, None, None, locators, Evidence)
    assert placed[0].text == "beta" * 100

    class Index:
        def __index__(self) -> int:
            made.clear()
            return 0

    hit = ("title", 1, 2, "t", None)
    made = {hit: ((Index(), 0, 0), Evidence("title", 0, 1, "ev", "t"))}
    with pytest.raises(TypeError):  # a place of ints only
        c.evidence_of([hit], made, None, None, {}, Evidence)


def test_a_score_counts_every_field() -> None:
    """The C score kept 16 fields at most, and refused more."""
    evidence = tuple(Evidence(f"field{i}", 0, 1, "a", "t") for i in range(20))
    assert native.score_of(evidence) == native.PYTHON["score_of"](evidence) == 20.0


LEAF_RULES = [
    Rule("w", "police"),
    Rule("p", "migra*"),
    Rule("s", "slap~"),  # a stem in the article's language, or both for an unknown one
    Rule("f", "title:exil* OR content:calais"),
    Rule("phrase", '"police migrants" OR "calais calais calais"'),
]


@given(
    st.lists(
        st.sampled_from(
            ["police", "migrants", "migration", "slapped", "slaps", "exilés", "calais", "Calais"]
        ),
        max_size=60,
    ),
    st.sampled_from(["en", "fr", ""]),
    st.booleans(),
)
def test_a_leaf_hits_alike_with_and_without_the_extension(
    words: list[str], language: str, through_index: bool
) -> None:
    """A leaf of one word, prefix or stem, or a phrase (native.seq_hits): in a document an index
    has looked at (its words of each stem and prefix collected), and in one it has not."""
    c = pytest.importorskip("monitor.rules._native", reason="the C extension was not built")
    index = RuleIndex.build(LEAF_RULES, {})
    text = " ".join(words)
    article = Article(0, "g", "", text[:40], content=text, language=language)
    seqs = [seq for compiled in index.rules for seq in leaves(compiled.node)]
    assert all(seq.spec is not None for seq in seqs)
    docs = [Document(article), Document(article)]
    if through_index:
        for doc in docs:
            index._meanings(doc)
    for seq in seqs:
        found = c.seq_hits(seq, docs[0])
        assert found == native.PYTHON["seq_hits"](seq, docs[1])
        assert c.seq_hits(seq, docs[0]) is found  # remembered


def _rule_pack() -> RuleIndex:
    loaded = load_rules([REPO / "rules"])
    assert loaded.ok, loaded.errors
    return loaded.index()


def _generated_rules() -> RuleIndex:
    """The benchmark's mix: phrases, wildcards, NEAR, NOT, fields, stems and entities."""
    from bench.matching import feed_items, generate_rules, vocabulary

    items = feed_items()
    words, df = vocabulary(items)
    rules, entities = generate_rules(1500, words, df, random.Random(5), "targeted", items)
    return RuleIndex.build(rules, entities)


@pytest.mark.parametrize("build", [_rule_pack, _generated_rules])
def test_rules_match_alike_with_and_without_the_extension(
    build: Callable[[], RuleIndex], shared_corpora: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.matching import feed_items

    articles = feed_items()  # real news in English and French
    index = build()
    with_native = [index.match(article) for article in articles]
    for name, function in native.PYTHON.items():
        monkeypatch.setattr(native, name, function)
    monkeypatch.setattr(native, "NATIVE", False)
    index = build()
    assert [index.match(article) for article in articles] == with_native
    assert sum(len(matches) for matches, _ in with_native) > 40  # real matches were compared
    assert sum(len(mentions) for _, mentions in with_native) > 40


def test_an_index_sent_to_another_process_still_finds_pairs(tmp_path: Path) -> None:
    """Reader processes receive the index pickled, and a str's hash differs from one process to
    the next (PYTHONHASHSEED): what the index keeps by hash value must be made again there, or
    a phrase's rule stops matching in every reader process."""
    index = RuleIndex.build([Rule("gulf", '"saudi arabia" AND oil')], {})
    saved = tmp_path / "index.pickle"
    saved.write_bytes(pickle.dumps(index))
    script = (
        "import pickle, sys\n"
        "from monitor.records import Article\n"
        "index = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "text = 'Saudi Arabia said oil exports fell.'\n"
        "article = Article(feed_id=1, guid='g', url='u', title='', content=text)\n"
        "print([m.rule_id for m in index.match(article)[0]])\n"
    )
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        found = subprocess.run(
            [sys.executable, "-c", script, str(saved)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        assert found.stdout.strip() == "['gulf']", (seed, found.stderr)


@FUZZ
@given(QUERY, TEXT, TEXT)
def test_generated_rules_match_alike_with_and_without_the_extension(
    query: str, title: str, body: str
) -> None:
    """Matches, evidence, snippets and mentions the same with the C loops and without, for
    generated queries (phrases, wildcards, stems, fields, NEAR, NOT, an entity) over hostile
    text and text made of their words."""
    try:
        index = RuleIndex.build([Rule("r", query)], ENTITIES)
    except QuerySyntaxError:
        return  # refused with a position (see test_fuzz)
    article = Article(feed_id=1, guid="g", url="u", title=title, content=body, language="fr")
    with_native = index.match(article)
    with pytest.MonkeyPatch.context() as patch:
        for name, function in native.PYTHON.items():
            patch.setattr(native, name, function)
        patch.setattr(native, "NATIVE", False)
        assert RuleIndex.build([Rule("r", query)], ENTITIES).match(article) == with_native
