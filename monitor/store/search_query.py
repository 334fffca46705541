"""Search queries with stemmed words: SQLite FTS5's query syntax, plus `word~` and
`"a phrase"~` for every form of a word, as in rules (docs/rules.md). Pure.

A query is parsed into a tree whose leaves each search one of two full-text indexes:
`articles_fts`, the words as written (folded by FTS5), or `articles_stems`, their Snowball stems
in each article's language (its columns `title_en` ... `content_fr`; an article of another or
unknown language has both languages' stems, as rules try both stemmers). A subtree whose
leaves all search one index is one FTS5 query (`render`); the store combines the others.

Precedence is FTS5's: words side by side (an implicit AND) bind first, then NOT, AND and OR
(`a b NOT c` is `(a b) NOT c`, `a OR b NOT c` is `a OR (b NOT c)`). A column filter (`title:`,
`-title:`, `{title summary}:`) applies to the word, phrase, NEAR group or parenthesis after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SearchQueryError
from ..text import STEM_LANGUAGES, query_words, stem_words_uncached

FIELDS = ("title", "summary", "content")
ALL_FIELDS = frozenset(FIELDS)
OPERATORS = frozenset({"AND", "OR", "NOT"})


def stem_column(field: str, language: str) -> str:
    """The `articles_stems` column of one field's stems in one language (`title_fr`)."""
    return f"{field}_{language}"


STEM_COLUMNS = tuple(stem_column(f, lang) for lang in STEM_LANGUAGES for f in FIELDS)


@dataclass(frozen=True)
class Phrase:
    """A word or "quoted phrase" as typed, and its marks: * (a prefix), ~ (every form),
    ^ (the field's first word)."""

    text: str
    stem: bool = False
    prefix: bool = False
    initial: bool = False


@dataclass(frozen=True)
class Leaf:
    """A phrase, or a NEAR group of phrases (`near`: the distance), in some fields."""

    phrases: tuple[Phrase, ...]
    fields: frozenset[str]
    near: int | None = None

    @property
    def stemmed(self) -> bool:
        return self.phrases[0].stem


@dataclass(frozen=True)
class Op:
    """AND or OR of its children; NOT: the first without the second."""

    op: str
    children: tuple[Node, ...]


Node = Leaf | Op


def parse(query: str, stem_all: bool = False) -> Node:
    """The query's tree. `stem_all`: every unquoted word without * is stemmed, as in a
    `stem = true` rule. Raises SearchQueryError saying what is wrong."""
    return _Parser(query, stem_all).parse()


def leaves(node: Node, positive: bool = True) -> list[tuple[Leaf, bool]]:
    """Every leaf with whether it counts for a match (False: what a NOT leaves out)."""
    if isinstance(node, Leaf):
        return [(node, positive)]
    if node.op == "NOT":
        return leaves(node.children[0], positive) + leaves(node.children[1], not positive)
    return [found for child in node.children for found in leaves(child, positive)]


def kind(node: Node) -> bool | None:
    """True when every leaf is stemmed, False when none is, None for a mix."""
    kinds = {leaf.stemmed for leaf, _ in leaves(node)}
    return kinds.pop() if len(kinds) == 1 else None


def render(node: Node) -> str:
    """The FTS5 query for a tree whose leaves all search one index (`kind` is not None): on
    `articles_stems` when they are stemmed, else on `articles_fts`."""
    if isinstance(node, Leaf):
        return render_stemmed(node) if node.stemmed else render_exact(node)
    return "(" + f" {node.op} ".join(render(child) for child in node.children) + ")"


def render_exact(leaf: Leaf) -> str:
    """A leaf of words as written, for `articles_fts`."""
    return _columns(leaf.fields, ALL_FIELDS) + _group(leaf, [_quoted(p.text) for p in leaf.phrases])


def render_stemmed(leaf: Leaf) -> str:
    """A leaf of stems, for `articles_stems`: in the English columns with English stems, or in
    the French ones with French stems. One language's stems of a word are another's word too
    ("relax" is French for relaxe): each language is searched in its own columns."""
    by_stems: dict[str, set[str]] = {}
    for language in STEM_LANGUAGES:
        stems = [
            '"' + " ".join(stem_words_uncached(query_words(p.text), language)) + '"'
            for p in leaf.phrases
        ]
        columns = {stem_column(f, language) for f in leaf.fields}
        by_stems.setdefault(_group(leaf, stems), set()).update(columns)
    every = frozenset(STEM_COLUMNS)
    parts = [_columns(frozenset(cols), every) + group for group, cols in by_stems.items()]
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def stems_of(leaf: Leaf, language: str) -> list[str]:
    """The stems a stemmed leaf looks for in one language, each word's."""
    return [s for p in leaf.phrases for s in stem_words_uncached(query_words(p.text), language)]


def _group(leaf: Leaf, strings: list[str]) -> str:
    marked = [
        ("^" if p.initial else "") + s + ("*" if p.prefix else "")
        for p, s in zip(leaf.phrases, strings, strict=True)
    ]
    if leaf.near is None:
        return marked[0]
    return f"NEAR({' '.join(marked)}, {leaf.near})"


def _columns(fields: frozenset[str], every: frozenset[str]) -> str:
    return "" if fields == every else "{" + " ".join(sorted(fields)) + "}: "


def _quoted(text: str) -> str:
    """An FTS5 string, which FTS5 splits into its words: l'immigration and pepper-spray are
    words, not syntax (as store.search.fts_words makes them)."""
    return '"' + text.replace('"', '""') + '"'


class _Parser:
    """Recursive descent over the query's characters: FTS5's grammar, read as FTS5 reads it,
    with ~ and lenience where FTS5 would fail on an everyday word (a hyphen, an apostrophe)."""

    def __init__(self, query: str, stem_all: bool) -> None:
        self.query, self.stem_all = query, stem_all
        self.at = 0

    def error(self, reason: str) -> SearchQueryError:
        return SearchQueryError(self.query, reason)

    def parse(self) -> Node:
        if not self.peek():
            raise self.error("nothing to search for: give a word")
        node = self.or_()
        if self.peek() == ")":
            raise self.error("a parenthesis is closed that was not opened")
        if self.peek():
            raise self.error(f"unexpected {self.peek()!r}")
        return node

    # The grammar, loosest first.

    def or_(self, fields: frozenset[str] = ALL_FIELDS) -> Node:
        children = [self.and_(fields)]
        while self.keyword("OR"):
            children.append(self.and_(fields))
        return children[0] if len(children) == 1 else Op("OR", tuple(children))

    def and_(self, fields: frozenset[str]) -> Node:
        children = [self.not_(fields)]
        # A parenthesis beside a word is an AND too, as fts_words reads it (FTS5 refuses it).
        while self.keyword("AND") or self.starts_unit():
            children.append(self.not_(fields))
        return children[0] if len(children) == 1 else Op("AND", tuple(children))

    def not_(self, fields: frozenset[str]) -> Node:
        node = self.side_by_side(fields)
        while self.keyword("NOT"):
            node = Op("NOT", (node, self.side_by_side(fields)))
        return node

    def side_by_side(self, fields: frozenset[str]) -> Node:
        children = [self.unit(fields)]
        while self.starts_unit(groups=False):
            children.append(self.unit(fields))
        return children[0] if len(children) == 1 else Op("AND", tuple(children))

    def unit(self, fields: frozenset[str]) -> Node:
        fields = self.column_filter(fields)
        token = self.peek()
        if token == "(":
            self.at = self.query.index("(", self.at) + 1
            node = self.or_(fields)
            if self.peek() != ")":
                raise self.error(
                    "a parenthesis is not closed" if not self.peek() else f"unexpected {token!r}"
                )
            self.at = self.query.index(")", self.at) + 1
            return node
        if token in OPERATORS:
            raise self.error(f"{token} where a word was expected: give a term before it")
        if not token or token == ")":
            raise self.error("a term is missing at the end" if not token else "empty parentheses")
        if self.near_ahead():
            return self.near(fields)
        return Leaf((self.phrase(),), fields)

    def near(self, fields: frozenset[str]) -> Leaf:
        self.at = self.query.index("(", self.at) + 1
        phrases: list[Phrase] = []
        distance = 10  # FTS5's default
        while True:
            token = self.peek(inside_near=True)
            if token == ")":
                break
            if token == ",":
                self.at = self.query.index(",", self.at) + 1
                number = self.peek(inside_near=True)
                if not number.isdigit():
                    raise self.error("NEAR(a b, N) takes a number of words after its comma")
                distance = int(number)
                self.skip(number)
                if self.peek(inside_near=True) != ")":
                    raise self.error("NEAR( ) ends after its number: NEAR(a b, 5)")
                break
            if not token:
                raise self.error("NEAR( is not closed")
            phrases.append(self.phrase(inside_near=True))
        self.at = self.query.index(")", self.at) + 1
        if len(phrases) < 2:
            raise self.error("NEAR( ) takes two words or phrases at least: NEAR(a b, 5)")
        if len({p.stem for p in phrases}) > 1:
            raise self.error(
                "NEAR( ) takes words all with ~ or all without: the stems and the words as"
                " written are two indexes, and a NEAR is found in one"
            )
        return Leaf(tuple(phrases), fields, distance)

    def phrase(self, inside_near: bool = False) -> Phrase:
        self.spaces()
        initial = self.query.startswith("^", self.at)
        self.at += initial
        quoted = self.query.startswith('"', self.at)
        if quoted:
            end = self.at + 1
            while True:
                end = self.query.find('"', end)
                if end < 0 or not self.query.startswith('"', end + 1):
                    break
                end += 2
            closed = end >= 0
            end = end if closed else len(self.query)  # unclosed: to the end, as words
            text = self.query[self.at + 1 : end].replace('""', '"')
            self.at = end + closed
            marks = self.marks()
        else:
            word = self.peek(inside_near)
            self.skip(word)
            text = word.rstrip("*~")
            marks = word[len(text) :]
            if "~" in text:
                raise self.error(f"{word}: ~ ends a word (all its forms: slap~)")
        if len(marks) > 1 and set(marks) != {"*", "~"}:
            raise self.error(f"{text}{marks}: one * or one ~ ends a word or phrase")
        stem, prefix = "~" in marks, "*" in marks
        # As in a `stem = true` rule: quoted words stay as written.
        stem = stem or (self.stem_all and not prefix and not quoted)
        if stem and prefix:
            raise self.error(
                "a word ends with ~ (all its forms: slap~) or * (every word it starts: migra*),"
                " not both"
            )
        if not query_words(text):
            raise self.error(
                "~ ends a word (all its forms: slap~)"
                if not text and stem
                else f"{text or marks!r} has no letters or digits to search for"
            )
        return Phrase(text, stem=stem, prefix=prefix, initial=initial)

    def marks(self) -> str:
        """The * and ~ straight after a closing quote."""
        start = self.at
        while self.at < len(self.query) and self.query[self.at] in "*~":
            self.at += 1
        return self.query[start : self.at]

    def column_filter(self, fields: frozenset[str]) -> frozenset[str]:
        """The fields after a column filter ahead (title:, -title:, {title summary}:), within
        `fields`; `fields` when there is none."""
        self.spaces()
        rest = self.query[self.at :]
        negated = rest.startswith("-")
        body = rest[1:].lstrip() if negated else rest
        if body.startswith("{"):
            close = body.find("}")
            after = body[close + 1 :].lstrip() if close >= 0 else ""
            if close < 0 or not after.startswith(":"):
                raise self.error("a column filter is written {title summary}: word")
            named = body[1:close].split()
            used = len(rest) - len(after) + 1
        else:
            name, colon, _ = self.peek().partition(":")
            if not colon or name.lstrip("-").lower() not in ALL_FIELDS:
                return fields
            named, used = [name.lstrip("-")], len(rest) - len(rest.lstrip()) + len(name) + 1
            negated = name.startswith("-")
        unknown = [n for n in named if n.lower() not in ALL_FIELDS]
        if unknown or not named:
            raise self.error(
                f"no column {unknown[0]!r}: title, summary or content"
                if unknown
                else "a column filter names title, summary or content"
            )
        chosen = frozenset(n.lower() for n in named)
        self.at += used
        narrowed = fields - chosen if negated else fields & chosen
        if not narrowed:
            raise self.error("column filters one inside another leave no column to search")
        return narrowed

    # Reading ahead.

    def spaces(self) -> None:
        while self.at < len(self.query) and self.query[self.at].isspace():
            self.at += 1

    def peek(self, inside_near: bool = False) -> str:
        """The next token: a parenthesis, a quote, or a run of other characters (a comma
        too, inside NEAR( )); "" at the end."""
        self.spaces()
        if self.at >= len(self.query):
            return ""
        char = self.query[self.at]
        if char in '()"' or (inside_near and char == ","):
            return char
        end = self.at
        stops = '()"' + ("," if inside_near else "")
        while end < len(self.query) and not self.query[end].isspace():
            if self.query[end] in stops:
                break
            end += 1
        return self.query[self.at : end]

    def skip(self, token: str) -> None:
        self.spaces()
        self.at += len(token)

    def keyword(self, word: str) -> bool:
        if self.peek() == word:
            self.skip(word)
            return True
        return False

    def near_ahead(self) -> bool:
        return self.peek() == "NEAR" and self.query[self.at + 4 :].lstrip().startswith("(")

    def starts_unit(self, groups: bool = True) -> bool:
        """Whether a word, phrase or NEAR group comes next (or a parenthesis, with `groups`),
        after any column filter."""
        token = self.peek()
        if not token or token == ")" or token in OPERATORS:
            return False
        saved = self.at
        try:
            self.column_filter(ALL_FIELDS)
            token = self.peek()
        except SearchQueryError:
            return True  # to be said by unit()
        finally:
            self.at = saved
        if token == "(":
            return groups
        return token not in ("", ")") and token not in OPERATORS
