"""Search queries with stemmed words: SQLite FTS5's query syntax, plus `word~` and
`"a phrase"~` for every form of a word, as in rules (docs/rules.md). Pure.

A query is parsed into a tree whose leaves each search one of two full-text indexes:
`articles_fts`, the words as written (folded by FTS5), or `articles_stems`, their Snowball stems
in each article's language (its columns `title_en` ... `content_fr`; an article of another or
unknown language has both languages' stems, as rules try both stemmers). A subtree whose
leaves all search one index is one FTS5 query (`render`); the store combines the others.

The grammar is search_query.lark, FTS5's read as FTS5 reads it, with ~ and lenience where FTS5
would fail on an everyday word (a hyphen, an apostrophe) or a parenthesis beside a word (an AND).
Precedence is FTS5's: words side by side (an implicit AND) bind first, then NOT, AND and OR
(`a b NOT c` is `(a b) NOT c`, `a OR b NOT c` is `a OR (b NOT c)`). A column filter (`title:`,
`-title:`, `{title summary}:`) applies to the word, phrase, NEAR group or parenthesis after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, VisitError

from ..errors import SearchQueryError
from ..text import STEM_LANGUAGES, query_words, stem_words_uncached

FIELDS = ("title", "summary", "content")
ALL_FIELDS = frozenset(FIELDS)
# Levels of nesting a query may have: FTS5's parser overflows at 32 levels of parentheses (the
# tree's, in one FTS5 query), and the tree is walked recursively.
MAX_DEPTH = 30


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
    """The query's tree (search_query.lark). `stem_all`: every unquoted word without * is
    stemmed, as in a `stem = true` rule. Raises SearchQueryError saying what is wrong and at
    which column."""
    if not query.strip():
        raise SearchQueryError(query, "nothing to search for: give a word")
    try:
        tree = _parser().parse(query)
    except UnexpectedInput as e:
        raise _syntax_error(query, e) from None
    try:
        node = _ToTree(query, stem_all).transform(tree)
    except RecursionError:
        node = None
    except VisitError as e:  # what _ToTree raised, wrapped by Lark
        if not isinstance(e.orig_exc, RecursionError):
            raise e.orig_exc from None
        node = None
    if node is None or _depth(node) > MAX_DEPTH:
        raise SearchQueryError(query, f"the query nests more than {MAX_DEPTH} levels deep")
    return node


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


_QUOTED = re.compile(r'"((?:[^"]|"")*)("?)([*~]*)')  # as search_query.lark's QUOTED
_KEYWORDS = {"_OR": "OR", "_AND": "AND", "_NOT": "NOT"}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "search_query.lark").read_text(encoding="utf-8")
    # The contextual lexer reads a comma as the end of a word only in NEAR( ).
    return Lark(grammar, parser="lalr", lexer="contextual", maybe_placeholders=False)


def _error(query: str, reason: str, column: int = 0) -> SearchQueryError:
    return SearchQueryError(query, f"{reason} (column {column})" if column else reason)


@v_args(inline=True)
class _ToTree(Transformer):
    """search_query.lark's parse tree -> Phrase, Leaf and Op, checking what the grammar lets
    through: the marks of a word, a NEAR's words and number, the columns named."""

    def __init__(self, query: str, stem_all: bool) -> None:
        super().__init__()
        self.query, self.stem_all = query, stem_all

    def error(self, reason: str, token: Token) -> SearchQueryError:
        return _error(self.query, reason, token.column or 0)

    def start(self, node: Node) -> Node:
        return node

    def or_expr(self, *children: Node) -> Op:
        return Op("OR", children)

    def and_expr(self, *children: Node) -> Op:
        return Op("AND", children)

    side = grouped_side = and_expr  # words side by side

    def not_expr(self, node: Node, *left_out: Node) -> Node:
        for other in left_out:
            node = Op("NOT", (node, other))
        return node

    grouped_not = not_expr

    def group(self, opening: Token, node: Node) -> Node:
        return self.filtered(opening, node) if opening != "(" else node

    def filtered(self, columns: Token, node: Node) -> Node:
        """`node` in the columns `columns` names (title:, -title:, {title summary}:, one
        before a parenthesis), within those a filter around it named."""
        written = columns.rstrip("(").rstrip()[:-1].strip()  # without its : and (
        negated = written.startswith("-")
        if "{" in written:
            named = written[written.index("{") + 1 : written.index("}")].split()
        else:
            named = [written.lstrip("-")]
        unknown = [n for n in named if n.lower() not in ALL_FIELDS]
        if unknown or not named:
            raise self.error(
                f"no column {unknown[0]!r}: title, summary or content"
                if unknown
                else "a column filter names title, summary or content",
                columns,
            )
        chosen = frozenset(n.lower() for n in named)

        def narrowed(leaf: Leaf) -> Leaf:
            fields = leaf.fields - chosen if negated else leaf.fields & chosen
            if not fields:
                raise self.error(
                    "column filters one inside another leave no column to search"
                    if leaf.fields != ALL_FIELDS
                    else f"{written}: leaves no column to search",
                    columns,
                )
            return replace(leaf, fields=fields)

        return _each_leaf(node, narrowed)

    def phrase(self, *tokens: Token) -> Leaf:
        return Leaf((self._phrase(tokens),), ALL_FIELDS)

    def near(self, opening: Token, *items: Phrase | Token) -> Leaf:
        phrases = [item for item in items if isinstance(item, Phrase)]
        comma, *number = [item for item in items if isinstance(item, Token)] or [None]
        if comma and not number:
            raise self.error("NEAR(a b, N) takes a number of words after its comma", comma)
        if len(phrases) < 2:
            raise self.error("NEAR( ) takes two words or phrases at least: NEAR(a b, 5)", opening)
        if len({p.stem for p in phrases}) > 1:
            raise self.error(
                "NEAR( ) takes words all with ~ or all without: the stems and the words as"
                " written are two indexes, and a NEAR is found in one",
                opening,
            )
        return Leaf(tuple(phrases), ALL_FIELDS, int(number[0]) if number else 10)  # FTS5's 10

    def near_phrase(self, *tokens: Token) -> Phrase:
        return self._phrase(tokens)

    def _phrase(self, tokens: tuple[Token, ...]) -> Phrase:
        """A word or phrase and its marks: ^ before, and * or ~ after."""
        initial, token = tokens[0].type == "CARET", tokens[-1]
        quoted = token.type == "QUOTED"
        if quoted:  # not closed: to the end of the query, as words
            inside, _, marks = _QUOTED.fullmatch(token).groups()  # type: ignore[union-attr]
            text = inside.replace('""', '"')
        else:
            text = token.rstrip("*~")
            marks = token[len(text) :]
            if "~" in text:
                raise self.error(f"{token}: ~ ends a word (all its forms: slap~)", token)
        if len(marks) > 1 and set(marks) != {"*", "~"}:
            raise self.error(f"{text}{marks}: one * or one ~ ends a word or phrase", token)
        stem, prefix = "~" in marks, "*" in marks
        # As in a `stem = true` rule: quoted words stay as written.
        stem = stem or (self.stem_all and not prefix and not quoted)
        if stem and prefix:
            raise self.error(
                "a word ends with ~ (all its forms: slap~) or * (every word it starts: migra*),"
                " not both",
                token,
            )
        if not query_words(text):
            raise self.error(
                "~ ends a word (all its forms: slap~)"
                if not text and stem
                else f"{text or marks!r} has no letters or digits to search for",
                token,
            )
        return Phrase(text, stem=stem, prefix=prefix, initial=initial)


def _each_leaf(node: Node, change: Callable[[Leaf], Leaf]) -> Node:
    if isinstance(node, Leaf):
        return change(node)
    return Op(node.op, tuple(_each_leaf(child, change) for child in node.children))


def _syntax_error(query: str, error: UnexpectedInput) -> SearchQueryError:
    """What the grammar found wrong, said from what was read before it (the parser's stack)."""
    if isinstance(error, UnexpectedCharacters):  # every character starts a NEAR word
        return _error(query, f"unexpected {query[error.pos_in_stream]!r}", error.column)
    token: Token = getattr(error, "token", None) or Token("$END", "")
    parser = getattr(error, "interactive_parser", None)
    stack = list(parser.parser_state.value_stack) if parser else []
    reason, column = _reason(query, token, stack)
    return _error(query, reason, column or len(query) + 1)


def _reason(query: str, token: Token, stack: list[Token | Tree]) -> tuple[str, int]:
    """What is wrong with `token` ($END: the end of the query) after what `stack` holds: the
    tokens of what is not complete yet (an opening parenthesis, an operator), and the trees of
    what is; and the column to point at (0: the end)."""
    read = [item for item in stack if isinstance(item, Token)]
    before = stack[-1] if stack and isinstance(stack[-1], Token) else Token("", "")
    at_end = token.type == "$END"
    shown = "the end" if at_end else repr(str(token))
    nears = [t for t in read if t.type == "NEAR"]
    opened = [t for t in read if t.type == "OPEN"]
    if nears:
        if before.type == "COMMA":
            return "NEAR(a b, N) takes a number of words after its comma", token.column or 0
        if at_end:
            return "NEAR( is not closed", nears[-1].column or 0
        if before.type == "DISTANCE":
            return "NEAR( ) ends after its number: NEAR(a b, 5)", token.column or 0
        if token.type == "CARET":
            return "NEAR( ) takes no ^ (a column's first word): FTS5 refuses it", token.column or 0
        reason = f'NEAR( ) holds words and "phrases" (and a number after a comma), not {shown}'
    elif before.type in _KEYWORDS:
        keyword = _KEYWORDS[before.type]
        reason = (
            f"{keyword} at the end: give a term after it (calais {keyword} football)"
            if at_end
            else f"{keyword} {token}: give a term after {keyword}"
        )
    elif before.type in ("COLUMNS", "CARET"):
        mark = before.strip()
        reason = (
            f"{mark} at the end: give a word after it ({mark}calais)"
            if at_end
            else f'{mark} goes before a word or a "phrase", not {shown}'
            if before.type == "CARET"
            else f'{mark} goes before a word, a "phrase", NEAR( ) or a parenthesis, not {shown}'
        )
    elif (
        token.type == "NEAR_WORD" and query[token.start_pos or 0 :].lstrip("-").lstrip()[:1] == "{"
    ):
        reason = "a column filter is written {title summary}: word"  # a { starts no other word
    elif token.type in _KEYWORDS:
        keyword = _KEYWORDS[token.type]
        where = "first in a parenthesis" if before.type == "OPEN" else "first"
        reason = f"{keyword} goes between two terms (calais {keyword} football), not {where}"
    elif token.type == "_CLOSE":
        reason = "empty parentheses" if opened else "a parenthesis is closed that was not opened"
    elif at_end and opened:
        return "a parenthesis is not closed", opened[-1].column or 0
    else:
        reason = "a term is missing at the end" if at_end else f"unexpected {shown}"
    return reason, token.column or 0


def _depth(node: Node) -> int:
    """Levels of nesting, counted without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Op):
            stack.extend((child, depth + 1) for child in node.children)
    return deepest
