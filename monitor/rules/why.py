"""Why a rule did not match an article: which parts of it the article has, and which it lacks.

`vigie rules test` said only "no match", and a rule author split the query by hand to find the
part that failed. Each part the rule needs (the operands of its top AND, or the alternatives of
its top OR) is evaluated on the article and said to be found (with the words), missing, too far
apart (a NEAR whose sides are both there), or excluding the article (a NOT). Pure: nodes are
evaluated as the matcher evaluates them, on the same Document.
"""

from __future__ import annotations

from .document import TEXT_FIELDS, Document
from .evidence import evidence_of
from .index import CompiledRule
from .nodes import AllOf, AnyOf, LanguageIs, Memo, Near, Node, NoneOf, NotNear, Seq, leaves

_SHOWN_WORDS = 4  # words quoted for a part found


def why_not(compiled: CompiledRule, doc: Document) -> list[str]:
    """One line per part the rule needs, saying what the article has of it."""
    if compiled.scoped and not compiled.in_scope(doc):
        return [f"out of scope: {_scope(compiled, doc)}"]
    node = compiled.node
    if isinstance(node, AnyOf):
        lines = ["needs one of:"]
        for child in node.children:
            if isinstance(child, AllOf):  # (a AND b) OR (c AND d): each group on its own
                lines.append("  all of:")
                lines += [f"    {_state(part, doc)}" for part in child.children]
            else:
                lines.append(f"  {_state(child, doc)}")
        return lines
    if isinstance(node, AllOf):
        return ["needs all of:", *(f"  {_state(part, doc)}" for part in node.children)]
    return [_state(node, doc)]


def _state(node: Node, doc: Document) -> str:
    if isinstance(node, NoneOf):
        hits = node.child.hits(doc)
        if hits:
            return f"excluded by  NOT {describe(node.child)}: {_words(hits, doc)}"
        return f"absent, good NOT {describe(node.child)}"
    hits = node.hits(doc)
    if hits is not None:
        return f"found        {describe(node)}" + (f": {_words(hits, doc)}" if hits else "")
    if isinstance(node, NotNear):
        if node.left.hits(doc):
            return (
                f"too near     {describe(node)}: every {describe(node.left)} has"
                f" {describe(node.right)} within {node.distance} words"
            )
        return f"missing      {describe(node)}: no {describe(node.left)}"
    if isinstance(node, Near):
        left, right = node.left.hits(doc), node.right.hits(doc)
        if left and right:
            return (
                f"too far      {describe(node)}: {_words(left, doc)} and {_words(right, doc)},"
                f" never within {node.distance} words in one field"
                + (", in that order" if node.ordered else "")
            )
        lacking = node.left if not left else node.right
        return f"missing      {describe(node)}: no {describe(lacking)}"
    if isinstance(node, LanguageIs):
        language = doc.language or "no language that could be told"
        return f"missing      {describe(node)}: the article is in {language}"
    return f"missing      {describe(node)}"


def describe(node: Node) -> str:
    """A node as the query wrote it, near enough to find it in the rule."""
    if isinstance(node, Seq):
        fields = "" if node.fields == TEXT_FIELDS else f"{'/'.join(node.fields)}:"
        return f"{fields}{node.label}"
    if isinstance(node, Memo):
        first = next(leaves(node.node), None)
        return first.label.split(" ")[0] if first is not None else "(an entity)"
    if isinstance(node, AllOf | AnyOf):
        joiner = " AND " if isinstance(node, AllOf) else " OR "
        return f"({joiner.join(describe(c) for c in node.children)})"
    if isinstance(node, Near):
        operator = ("NOT " if isinstance(node, NotNear) else "") + (
            "ONEAR" if node.ordered else "NEAR"
        )
        left, right = (
            f"({describe(side)})" if isinstance(side, Near) else describe(side)
            for side in (node.left, node.right)
        )
        return f"{left} {operator}/{node.distance} {right}"
    if isinstance(node, NoneOf):
        return f"NOT {describe(node.child)}"
    if isinstance(node, LanguageIs):
        return f"lang:{'/'.join(sorted(node.codes))}"
    return type(node).__name__


def _words(hits: list, doc: Document) -> str:
    """The words of `hits` as written, where they are: 'Police (title), officer (content)'."""
    found = list(dict.fromkeys(f"{e.text} ({e.field})" for e in evidence_of(hits, doc)))
    shown = ", ".join(found[:_SHOWN_WORDS])
    return shown + (f" and {len(found) - _SHOWN_WORDS} more" if len(found) > _SHOWN_WORDS else "")


def _scope(compiled: CompiledRule, doc: Document) -> str:
    """Which of the rule's scopes the article is out of (see CompiledRule.in_scope)."""
    rule = compiled.rule
    if rule.languages and doc.language not in rule.languages:
        language = doc.language or "no language that could be told"
        return f"the rule is for {', '.join(rule.languages)}; the article is in {language}"
    feeds = (doc.article.feed_name, *doc.other_feeds)
    if rule.feeds and not any(feed in rule.feeds for feed in feeds):
        return f"the rule is for the feeds {', '.join(rule.feeds)}"
    return f"the rule is for feeds tagged {', '.join(rule.feed_tags)}"
