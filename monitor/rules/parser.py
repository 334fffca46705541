"""Query text -> tree (monitor.rules.ast), with Lark. Syntax errors carry line and column."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast


class QuerySyntaxError(ValueError):
    """A query that cannot be parsed; line and column are 1-based within the query text."""

    def __init__(self, message: str, line: int, column: int) -> None:
        self.message, self.line, self.column = message, line, column
        super().__init__(f"{line}:{column}: {message}")

    def __reduce__(self) -> tuple:
        # Compiled rules keep their warnings as these, and reader processes receive the rules
        # pickled: by its args alone (the formatted text) it could not be made again there.
        return (type(self), (self.message, self.line, self.column))


# The fields a query names as `field:`, as grammar.lark's FIELD has them.
FIELDS = ("title", "summary", "content", "text", "url", "author", "feed", "lang", "category")
_WORD_BEFORE = re.compile(r"\w+$")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The parser, building the query's tree (monitor.rules.ast) as it reads: Lark's own tree,
    built and then transformed, was half of parsing (4 s of loading 100,000 rules)."""
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar, parser="lalr", lexer="basic", maybe_placeholders=False, transformer=_ToTree()
    )


_STRAY_TILDE = (
    "~ (all forms of a word) must end a word, as in slap~; entities and =Exact words take none"
)


@v_args(inline=True)
class _ToTree(Transformer):
    def term(self, token: Token) -> ast.Term:
        text = str(token)
        if re.match(r"O?NEAR/", text):
            raise QuerySyntaxError(
                "NEAR takes a number of words, as in NEAR/5", token.line, token.column
            )
        stem = text.endswith("~")
        text = text.rstrip("~")
        prefix = text.endswith("*")
        text = text.rstrip("*")
        if (stem and prefix) or "~" in text:  # slap~* and migra*~ were taken as one or other
            raise QuerySyntaxError(
                "a word ends with ~ (all its forms: slap~) or * (every word it starts: migra*),"
                " not both",
                token.line,
                token.column,
            )
        if "*" in text or "?" in text:
            at = min(i for i in (text.find("*"), text.find("?")) if i >= 0)
            raise QuerySyntaxError(
                "a wildcard * may only end a word, as in migra*"
                + (
                    " (and ? is no wildcard: write both words, migrants OR migrantes)"
                    if text[at] == "?"
                    else ""
                ),
                token.line,
                token.column + at,
            )
        if not text and not prefix:  # "~" alone: after an entity or an =Exact word, say
            raise QuerySyntaxError(_STRAY_TILDE, token.line, token.column)
        if not text:
            raise QuerySyntaxError(
                "a wildcard needs at least one letter before *", token.line, token.column
            )
        return ast.Term(text, prefix=prefix, stem=stem, line=token.line, column=token.column)

    def case_term(self, token: Token) -> ast.Term:
        if str(token).endswith("~"):  # =Calais~: exact and all forms at once
            raise QuerySyntaxError(_STRAY_TILDE, token.line, token.column + len(token) - 1)
        return ast.Term(str(token)[1:], case=True, line=token.line, column=token.column)

    def phrase(self, token: Token) -> ast.Phrase:
        text = str(token)
        stem = text.endswith("~")
        return ast.Phrase(text.rstrip("~")[1:-1], stem=stem, line=token.line, column=token.column)

    def case_phrase(self, token: Token) -> ast.Phrase:
        return ast.Phrase(str(token)[2:-1], case=True, line=token.line, column=token.column)

    def entity(self, token: Token) -> ast.EntityRef:
        text = str(token)
        if text.endswith("*"):
            raise QuerySyntaxError(
                f"an @entity takes no wildcard *: {text[:-1]} matches every alias its "
                "[[entity]] lists",
                token.line,
                token.column + len(text) - 1,
            )
        return ast.EntityRef(text[1:], line=token.line, column=token.column)

    def field(self, name: Token, child: ast.Query) -> ast.Field:
        return ast.Field(str(name)[:-1], child)

    def not_(self, child: ast.Query) -> ast.Not:
        return ast.Not(child)

    def or_expr(self, *children: ast.Query) -> ast.Or:
        return ast.Or(tuple(children))

    def and_expr(self, *children: ast.Query) -> ast.And:
        return ast.And(tuple(children))

    def near(self, *items: ast.Query | Token) -> ast.Query:
        left = items[0]
        for i in range(1, len(items), 2):
            *negated, op = str(items[i]).split()  # "NOT NEAR/5" or "NEAR/5"
            left = ast.Near(
                left,
                items[i + 1],
                int(op.split("/")[1]),  # type: ignore[arg-type]
                ordered=op.startswith("O"),
                excluded=bool(negated),
            )
        return left  # type: ignore[return-value]


_UNICODE_SPACE = re.compile(r"[^\S\n\r\t\f ]")  # any space but ASCII's and line breaks


def parse_query(text: str) -> ast.Query:
    """Parse a query. Raises QuerySyntaxError with a message an operator can act on."""
    if not text.strip():
        raise QuerySyntaxError("the query is empty", 1, 1)
    # A no-break or other Unicode space, as French text copied from a document has (before
    # a colon, inside « »), was "unexpected character"; one for one, columns stay right.
    if not text.isascii():
        text = _UNICODE_SPACE.sub(" ", text)
    try:
        query: ast.Query = _parser().parse(text)  # type: ignore[assignment]
    except UnexpectedEOF as e:
        line = text.count("\n") + 1
        column = len(text.rsplit("\n", 1)[-1]) + 1
        raise QuerySyntaxError(
            _expected_message(e, "the query ends too early") + _unclosed(text), line, column
        ) from None
    except UnexpectedToken as e:
        if e.token.type == "$END":
            line = text.count("\n") + 1
            column = len(text.rsplit("\n", 1)[-1]) + 1
            raise QuerySyntaxError(
                _expected_message(e, "the query ends too early") + _unclosed(text), line, column
            ) from None
        what = f"unexpected {str(e.token)!r}"
        message = _expected_message(e, what) + _not_after_near(text, e.token)
        raise QuerySyntaxError(message, e.line, e.column) from None
    except UnexpectedCharacters as e:
        char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        hint = "unbalanced quote" if char == '"' else f"unexpected character {char!r}"
        if char == '"' and '"' in text[e.pos_in_stream + 1 :].split("\n", 1)[-1]:
            # Closed on a later line: "pepper<line break>spray" in a ''' query.
            hint = "a phrase is written on one line: its closing quote is on a later one"
        if char == "@":
            hint = (
                "@ starts an entity reference: @ then the entity's id, as in @calais (a word "
                'starting with @ goes in quotes: "@handle")'
            )
        if char == ":":  # titel:police, TITLE:police
            word = _WORD_BEFORE.search(text[: e.pos_in_stream])
            named = f"{word.group()!r} is not a field: " if word else ""
            hint = (
                f"{named}fields are {', '.join(FIELDS)}, in lower case, then ':' (a word "
                'holding ":" goes in quotes)'
            )
        raise QuerySyntaxError(hint, e.line, e.column) from None
    except UnexpectedInput as e:  # pragma: no cover - other Lark errors
        raise QuerySyntaxError(str(e), getattr(e, "line", 1), getattr(e, "column", 1)) from None
    if _depth(query) > MAX_DEPTH:
        raise _too_deep()
    return query


_NEAR_BEFORE = re.compile(r"O?NEAR/\d+\s*$")


def _not_after_near(text: str, token: Token) -> str:
    """For NOT after NEAR/n (`protest* NEAR/5 NOT arrest*`), the operator meant: "unexpected
    'NOT'" alone did not say that NOT NEAR/n is written the other way round."""
    if token.type != "_NOT":
        return ""
    near = _NEAR_BEFORE.search(text, 0, token.start_pos)
    if near is None:
        return ""
    operator = near.group().strip()
    written = f"{text[: near.start()]}NOT {operator} {text[token.end_pos :].lstrip()}"
    # The line the operator is on, as it would be written.
    line = written[written.rfind("\n", 0, near.start()) + 1 :].split("\n", 1)[0].strip()
    example = line if len(line) <= 80 else f"a NOT {operator} b"
    distance = operator.split("/")[1]
    near = "follows" if operator.startswith("O") else "is"
    return (
        f"; NOT comes before {operator}: write {example} (the words on its left where none on"
        f" its right {near} within {distance} words)"
    )


_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|«[^»\n]*»')


def _unclosed(text: str) -> str:
    """Which parenthesis is left open ("" when none is), shown by the words after it: at the
    end of a long query, "expected )" alone does not say which one."""
    opened: list[int] = []
    for at, char in enumerate(_QUOTED.sub(lambda m: " " * len(m.group()), text)):
        if char == "(":
            opened.append(at)
        elif char == ")" and opened:
            opened.pop()
    if not opened:
        return ""
    after = " ".join(text[opened[-1] :].split())
    shown = after if len(after) <= 24 else after[:24] + "…"
    return f"; the parenthesis opened at “{shown}” is not closed"


MAX_DEPTH = 100  # levels of nesting a query may have: the matcher walks trees recursively


def _too_deep() -> QuerySyntaxError:
    return QuerySyntaxError(f"the query nests more than {MAX_DEPTH} levels deep", 1, 1)


def _depth(query: ast.Query) -> int:
    """Levels of nesting, counted without recursion (the tree may be deep)."""
    deepest, stack = 0, [(query, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, ast.And | ast.Or):
            stack.extend((child, depth + 1) for child in node.children)
        elif isinstance(node, ast.Not | ast.Field):
            stack.append((node.child, depth + 1))
        elif isinstance(node, ast.Near):
            stack.extend(((node.left, depth + 1), (node.right, depth + 1)))
    return deepest


_NAMES = {
    "_OR": "OR",
    "_AND": "AND",
    "_NOT": "NOT",
    "NEAR_OP": "NEAR/n",
    "LPAR": "(",
    "RPAR": ")",
    "TERM": "a word",
    "PHRASE": 'a "phrase"',
    "ENTITY": "an @entity",
    "FIELD": "a field:",
    "CASE_TERM": "an =Exact word",
    "CASE_PHRASE": 'an ="Exact phrase"',
}


def _expected_message(error: UnexpectedInput, what: str) -> str:
    expected = sorted({_NAMES.get(name, name) for name in getattr(error, "expected", ()) or ()})
    words = [w for w in expected if w in ("a word", 'a "phrase"', ")", "(")]
    if words:
        return f"{what}: expected {' or '.join(words)}"
    return what
