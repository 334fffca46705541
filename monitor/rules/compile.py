"""Query tree -> matcher nodes (monitor.rules.nodes): words become leaves, entities become
alternatives of their aliases, fields and stemming are pushed down to the leaves."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping

from ..records import Article
from ..text import (
    STEM_LANGUAGES,
    TOKEN,
    acronym_words,
    fold,
    inclusive_words,
    language_code,
    spelt_out,
    stem_words_uncached,
    without_invisible,
)
from . import ast
from .common_words import everyday_acronym
from .document import TEXT_FIELDS, Document
from .model import Entity
from .nodes import (
    AllOf,
    AnyOf,
    LanguageIs,
    Memo,
    Near,
    Node,
    NoneOf,
    NotNear,
    Outside,
    Part,
    Seq,
)
from .parser import QuerySyntaxError
from .stats import HEURISTIC, TermStats
from .stem_joins import LANGUAGE_NAMES, joined_words

PREFIX_MIN = 3  # shortest allowed prefix before a *

EntityResolver = Callable[[str], Entity | None]

# A word that an operator meant as NEAR: near/5 in lower case, or NEAR without its distance.
# (Lower-case "near" alone is an ordinary word: "police near Calais".)
# NEAR5 and w/5 (other tools' spelling) are words too.
_LOOKS_LIKE_NEAR = re.compile(r"(?:(?:NOT)?[Oo]?[Nn][Ee][Aa][Rr]/?\d+|O?NEAR|[Ww]/\d+)$")
# Words an operator meant as AND, OR, NOT or NEAR: in French (OU, ET, SAUF, PRÈS/5), or in
# lower case (or, and, not), all searched as words: `migrants OU réfugiés` required the word
# "ou" beside both and matched almost nothing, without a warning. -> what to write instead.
OPERATOR_WORDS = {
    "OU": "OR",
    "ET": "AND",
    "SAUF": "NOT",
    "SANS": "NOT",
    "or": "OR",
    "and": "AND",
    "not": "NOT",
}
LOOKS_LIKE_PRES = re.compile(r"(?:PR[ÈE]S|PROCHE)(?:/\d+)?$")
_UNPAIRED_QUOTE = re.compile("[«»“”]")  # left in a word: a phrase's quote without its pair
_LONE_QUOTE = re.compile("[«»“”]+")  # a word of its own: « with the space French puts after it
_LONE_STAR = re.compile(r"(?:^|\s)\*+(?=\s|$)")  # "jailed over * riot"
# A regular expression's character class: a range ([0-9], [a-z]), a negation ([^x]), or
# brackets inside a word or before a repeat (organi[sz]e, colo[u]r, [0-9]+). Read as
# punctuation, [0-9] was the phrase "0 9"; [0-9]* an error about a short wildcard. A word in
# brackets alone ([Updated], as a headline has it) is that word.
_CHARACTER_CLASS = re.compile(
    r"\[(?:\^[^\]\s]*|[^\]\s]*[^\W_]-[^\W_][^\]\s]*)\]"
    r"|(?<=[^\W_])\[[^\]\s]*\]|\[[^\]\s]*\](?=[^\W_*+?{])|\[[^\]\s]*\][*+?{]"
)
# A * with no word before it ("*Acme", "over * riot") or a word right after it ("Aa*Basin").
_STAR_NOT_ENDING_A_WORD = re.compile(r"(?<![^\W_])\*|\*(?=[^\W_])")


class Compiler:
    """Compiles query trees. `stem_all` applies stemming to every unmarked word; rules compiled
    with the same `cache` share their identical leaves and entities."""

    def __init__(
        self,
        entities: Mapping[str, Entity],
        stem_all: bool = False,
        stats: TermStats = HEURISTIC,
        cache: dict[object, Node] | None = None,
    ) -> None:
        self.entities = entities
        self.stats = stats
        self.stem_all = stem_all
        # Nodes shared by every rule compiled with the same cache: the same word, phrase or
        # entity in many rules is one node, evaluated once per article (results are memoised
        # on the Document).
        self.cache: dict[object, Node] = cache if cache is not None else {}
        # Parts of queries that can never match, with their position: `rules check` warns.
        self.warnings: list[QuerySyntaxError] = []

    def compile(self, query: ast.Query, fields: tuple[str, ...] = TEXT_FIELDS) -> Node:
        if isinstance(query, ast.Term):
            warned = len(self.warnings)
            if _LOOKS_LIKE_NEAR.match(query.text):
                self.warnings.append(
                    QuerySyntaxError(
                        f"{query.text} is searched as a word here, not taken as the NEAR "
                        "operator: write NEAR/n or ONEAR/n in capitals with a distance "
                        "(NEAR/5)",
                        query.line,
                        query.column,
                    )
                )
            meant = OPERATOR_WORDS.get(query.text) or (
                "NEAR/n" if LOOKS_LIKE_PRES.match(query.text) else None
            )
            if meant and not (query.case or query.prefix or query.stem):
                self.warnings.append(
                    QuerySyntaxError(
                        f"{query.text} is searched as a word here, not taken as an operator:"
                        f" write {meant} (operators are English words in capitals; quote"
                        f' "{query.text}" to search for the word)',
                        query.line,
                        query.column,
                    )
                )
            if query.case and query.text.endswith("*"):
                self.warnings.append(
                    QuerySyntaxError(
                        f"={query.text} is searched as ={query.text.rstrip('*')} exactly: an "
                        "=Exact word takes no wildcard (without =, a prefix* matches any case)",
                        query.line,
                        query.column,
                    )
                )
            if query.text[:1] in "-+" and len(query.text) > 1 and not query.case:
                self.warnings.append(
                    QuerySyntaxError(
                        f"{query.text} is searched as the word {query.text[1:]}, required like "
                        f"any other: to leave out articles with it, write NOT {query.text[1:]}"
                        if query.text[0] == "-"
                        else f"{query.text} is searched as {query.text[1:]}: every word is "
                        "required unless joined by OR, so the + changes nothing",
                        query.line,
                        query.column,
                    )
                )
            if query.text[:1] in "'‘" and query.text[1:2].isalpha():
                self.warnings.append(
                    QuerySyntaxError(
                        f"{query.text} is searched as a word here, not as the start or end of a "
                        'phrase: phrases take double quotes ("small boat")',
                        query.line,
                        query.column,
                    )
                )
            quote = _UNPAIRED_QUOTE.search(query.text)
            if quote:
                self.warnings.append(
                    QuerySyntaxError(
                        f"{query.text} is searched as a word here, not as the start or end of a "
                        f"phrase: {quote.group()} has no pair (a phrase opened with « ends with "
                        "», one opened with “ ends with ”)",
                        query.line,
                        query.column + quote.start(),
                    )
                )
            if len(self.warnings) == warned:  # one thing said of a word at a time
                self._everyday_acronym(query)
            return self._words(
                query.text,
                fields,
                query.line,
                query.column,
                prefix=query.prefix,
                stem=query.stem or (self.stem_all and not query.prefix),
                case=query.case,
                label=_label(query),
            )
        if isinstance(query, ast.Phrase):
            if _LONE_STAR.search(query.text):
                self.warnings.append(
                    QuerySyntaxError(
                        "a * standing alone in a phrase is left out, not read as any word: "
                        f'"{query.text}" is searched without it; for words in between, join '
                        "the words with NEAR/n",
                        query.line,
                        query.column,
                    )
                )
            return self._words(
                query.text,
                fields,
                query.line,
                query.column,
                stem=query.stem,  # quotes mean these words exactly, even in a stem = true rule
                case=query.case,
                # « gaz lacrymogène » is written with spaces inside the guillemets.
                label=("=" if query.case else "")
                + f'"{" ".join(query.text.split())}"'
                + ("~" if query.stem else ""),
                phrase=True,
            )
        if isinstance(query, ast.EntityRef):
            entity = self.entities.get(query.entity_id)
            if entity is None:
                close = difflib.get_close_matches(query.entity_id, self.entities, n=1)
                raise QuerySyntaxError(
                    f"unknown entity @{query.entity_id}"
                    + (f" (did you mean @{close[0]}?)" if close else ""),
                    query.line,
                    query.column,
                )
            return self.entity(entity, fields)
        if isinstance(query, ast.And | ast.Or):
            children = self._without_lone_quotes(query.children)
            if len(children) == 1:
                return self.compile(children[0], fields)
            nodes = [self.compile(c, fields) for c in children]
            return AllOf(nodes, self.stats) if isinstance(query, ast.And) else AnyOf(nodes)
        if isinstance(query, ast.Not):
            return NoneOf(self.compile(query.child, fields))
        if isinstance(query, ast.Near):
            if query.excluded and not _places(query.left):
                # `a NEAR/5 b NOT NEAR/1 c` kept a's hits far from c while b's were near it:
                # the places NOT NEAR sets apart are those of words, phrases and entities.
                line, column = _position(query.left)
                raise QuerySyntaxError(
                    "NOT NEAR takes words, phrases, entities or an OR of them on its left, not"
                    " AND or NEAR: put the NOT NEAR in parentheses on one word, as in"
                    " (Channel NOT NEAR/1 4) NEAR/5 migrant*",
                    line,
                    column,
                )
            for side in (query.left, query.right):
                if any(isinstance(n, ast.Not) for n in ast.walk(side)):
                    line, column = _position(side)
                    operator = f"{'ONEAR' if query.ordered else 'NEAR'}/{query.distance}"
                    raise QuerySyntaxError(
                        "NEAR needs words on both sides, not NOT (a word is not near an"
                        f" absence): for the places of one side with none of the other within"
                        f" {query.distance} words, write a NOT {operator} b",
                        line,
                        column,
                    )
                if not _has_words(side):
                    line, column = _position(side)
                    self.warnings.append(
                        QuerySyntaxError(
                            "a side of NEAR with no word (only lang:) is near nothing: this can "
                            "never match; join lang: with AND",
                            line,
                            column,
                        )
                    )
            sides = [_fields_hit(side, fields) for side in (query.left, query.right)]
            # (Of NOT NEAR, such sides hold wherever the left one does: no more than odd.)
            if all(sides) and not sides[0] & sides[1] and not query.excluded:
                line, column = _position(query.left)
                left, right = ("/".join(sorted(side)) for side in sides)
                self.warnings.append(
                    QuerySyntaxError(
                        f"NEAR counts words within one field, and its sides are found in {left} "
                        f"and in {right}: this can never match; join them with AND",
                        line,
                        column,
                    )
                )
            if query.distance < 1 and not query.excluded:
                line, column = _position(query.left)
                self.warnings.append(
                    QuerySyntaxError(
                        "NEAR/0 can never hold (words side by side are NEAR/1): this can never "
                        "match",
                        line,
                        column,
                    )
                )
            return (NotNear if query.excluded else Near)(
                self.compile(query.left, fields),
                self.compile(query.right, fields),
                query.distance,
                query.ordered,
                self.stats,
            )
        if isinstance(query, ast.Field):
            if query.name == "lang":
                return self._language(query.child)
            scoped = TEXT_FIELDS if query.name == "text" else (query.name,)
            return self.compile(query.child, scoped)
        raise AssertionError(query)  # pragma: no cover

    def _everyday_acronym(self, term: ast.Term) -> None:
        """Warn of an acronym in capitals without = that folds to an everyday word: `UN`
        finds French "un" and `US` "us" (see common_words). Quoted, it is not warned of."""
        everyday = None if term.case or term.prefix else everyday_acronym(term.text)
        if everyday:
            folded, language = everyday
            self.warnings.append(
                QuerySyntaxError(
                    f'{term.text} is searched in any case, so it finds "{folded}" too, an'
                    f" everyday {language} word: write ={term.text} to find it in capitals"
                    f' only (quote it, "{term.text}", to search it in any case without this'
                    " warning)",
                    term.line,
                    term.column,
                )
            )

    def entity(self, entity: Entity, fields: tuple[str, ...] = TEXT_FIELDS) -> Node:
        """An entity: any of its aliases, but where one of its `not_inside` names stands over
        it; an ambiguous alias only near one of its context words (not inside those names
        either)."""
        cache_key = ("entity", entity.id, fields)
        if cache_key in self.cache:
            return self.cache[cache_key]
        alternatives: list[Node] = []
        longest = 0  # words in the longest alias
        label = f"@{entity.id}"
        outside = self._longer_names(entity, fields)
        for alias, case in _aliases(entity):
            seq = self._words(
                alias, fields, 0, 0, case=case, label=label, entity=entity.id, phrase=True
            )
            longest = max(longest, len(seq.parts))
            alternative: Node = seq
            if outside is not None:
                # A place a name stands over and goes on past is left out ("Calais" in
                # "Pas-de-Calais"), one beside it is not ("Calais (Pas-de-Calais)"). Before
                # the context words, which are then looked for near the places that count.
                alternative = Outside(seq, outside, self.stats)
            context = entity.context.get(alias)
            if context:
                # Labelled apart: evidence shows "camp" as what made "Jungle" count, not as
                # one more alias of the entity.
                near_words: Node = AnyOf(
                    [
                        self._words(w, fields, 0, 0, label=f"{label} context", phrase=True)
                        for w in context
                    ]
                )
                if outside is not None:  # "Calais" in "Pas-de-Calais" is no word for Jungle
                    near_words = Outside(near_words, outside, self.stats)
                alternative = Near(alternative, near_words, entity.window, False, self.stats)
            alternatives.append(alternative)
        node = AnyOf(alternatives) if len(alternatives) != 1 else alternatives[0]
        # An alias of several words may hold another ("Roger Hallam", "Hallam").
        node = self.cache[cache_key] = Memo(node, nested=len(alternatives) > 1 and longest > 1)
        return node

    def _longer_names(self, entity: Entity, fields: tuple[str, ...]) -> Node | None:
        """The entity's `not_inside` names, exactly as written (None when it has none):
        "Pas-de-Calais", the département, and not "le pas de Calais", the strait."""
        names = [
            self._words(
                name, fields, 0, 0, case=True, label=f"@{entity.id} not inside", phrase=True
            )
            for name in entity.not_inside
        ]
        if len(names) > 1:
            return AnyOf(names)
        return names[0] if names else None

    def sets_apart(self, entity: Entity, name: str) -> bool:
        """Whether `name`, as one of the entity's `not_inside` names, stands over a place of
        one of its aliases or context words and goes on past it, written alone: a name that
        holds none (a typo, "Pas-de-Calias", or an alias itself) would leave out nothing,
        without a word. A context word counts: "Calais" is one for @migrants' "expulsion",
        and "Pas-de-Calais" made a tenant's eviction migrants' news."""
        doc = Document(Article(feed_id=0, guid="", url="", title=name))
        outside = self._words(name, ("title",), 0, 0, case=True, label="", phrase=True)
        context = dict.fromkeys(word for words in entity.context.values() for word in words)
        for alias, case in [*_aliases(entity), *((word, False) for word in context)]:
            seq = self._words(alias, ("title",), 0, 0, case=case, label="", phrase=True)
            places = seq.hits(doc) or []
            kept = Outside(seq, outside).hits(doc) or []
            if len(kept) < len(places):
                return True
        return False

    def check_alias(self, text: str, case: bool = False) -> None:
        """Raise QuerySyntaxError (at 0:0) when `text` cannot be searched for as an entity's
        alias or context word: no letters or digits, a wildcard too short, or a * that does
        not end a word ("*Acme" was searched as Acme, where `*acme` in a query is an error)."""
        if not case and _STAR_NOT_ENDING_A_WORD.search(text):
            raise QuerySyntaxError(
                f"a wildcard * may only end a word, as in migra*, got {text!r}", 0, 0
            )
        self._words(text, TEXT_FIELDS, 0, 0, case=case, label="", phrase=True)

    def _without_lone_quotes(self, children: tuple[ast.Query, ...]) -> tuple[ast.Query, ...]:
        """The children but quote marks standing alone, each warned of: French puts a space
        inside guillemets, so `police « gaz lacrymogène` left unclosed has « as a word of its
        own, which was an error ("no letters or digits") where «gaz was a warning. Kept when
        nothing else is left, to be refused as such."""
        kept = []
        for child in children:
            if isinstance(child, ast.Term) and _LONE_QUOTE.fullmatch(child.text):
                self.warnings.append(
                    QuerySyntaxError(
                        f"{child.text} has no pair and is left out: a phrase opened with « "
                        "ends with », one opened with “ ends with ”",
                        child.line,
                        child.column,
                    )
                )
            else:
                kept.append(child)
        return tuple(kept) if kept else children

    def _words(
        self,
        text: str,
        fields: tuple[str, ...],
        line: int,
        column: int,
        *,
        prefix: bool = False,
        stem: bool = False,
        case: bool = False,
        label: str,
        entity: str | None = None,
        phrase: bool = False,
    ) -> Seq:
        found = _CHARACTER_CLASS.search(text)
        if found:
            raise QuerySyntaxError(
                f"{found.group().rstrip('*+?{')} is a regular expression's character class,"
                " which queries do not have: write the words themselves, as in"
                ' ("2024" OR "2025") or (organise OR organize), or a beginning and *, as in'
                " organi*",
                line,
                column,
            )
        # Articles' text is composed (text.normalise_space): so are the words searched for, or
        # an "é" typed as e and a combining accent (some editors save that) would match nothing.
        # Inclusive endings read as articles' are: exilé·es is searched as exilés.
        text = inclusive_words(without_invisible(unicodedata.normalize("NFC", text)))
        # A dotted acronym is one word, as in articles: "U.K." is searched as UK.
        text = acronym_words(text)
        searched = text if case else fold(text)
        matches = list(TOKEN.finditer(searched))
        # Compared as articles' words are: ligatures written out (œuvre as oeuvre). An exact
        # (case) word keeps them: it is compared with the text as written.
        words = [m.group() if case else spelt_out(m.group()) for m in matches]
        # Inside a phrase or alias, a word directly followed by * is a prefix: "asylum seek*".
        starred = {i for i, m in enumerate(matches) if searched[m.end() : m.end() + 1] == "*"}
        if prefix and words:
            starred.add(len(words) - 1)
        if not words:
            raise QuerySyntaxError(f"{text!r} has no letters or digits to search for", line, column)
        if any(len(words[i]) < PREFIX_MIN for i in starred):
            raise QuerySyntaxError(
                f"a wildcard needs at least {PREFIX_MIN} letters before *, got {text!r}",
                line,
                column,
            )
        parts = []
        for i, word in enumerate(words):
            if case:
                parts.append(Part("c", word))
            elif i in starred:
                parts.append(Part("p", word))
            elif stem:
                stems = tuple(
                    (lang, stem_words_uncached([word], lang)[0]) for lang in STEM_LANGUAGES
                )
                parts.append(Part("s", word, stems))
                written = text[matches[i].start() : matches[i].end()]
                self._warn_of_joins(written, stems, line, column)
            else:
                parts.append(Part("w", word))
        key = ("seq", tuple(parts), fields, label, entity)
        found = self.cache.get(key)
        if not isinstance(found, Seq):
            found = self.cache[key] = Seq(tuple(parts), fields, label, entity, self.stats)
        return found

    def _warn_of_joins(
        self, word: str, stems: tuple[tuple[str, str], ...], line: int, column: int
    ) -> None:
        """A stemmed word that Snowball joins with words of another meaning (stem_joins)."""
        for language, stem in stems:
            others = joined_words(word, language, stem)
            if others:
                self.warnings.append(
                    QuerySyntaxError(
                        f"{word}~ also matches {' and '.join(others)} in"
                        f" {LANGUAGE_NAMES[language]} articles (Snowball stems them all"
                        f" {stem}): quote the forms you mean, or write a wildcard nothing"
                        " else starts with",
                        line,
                        column,
                    )
                )

    def _language(self, child: ast.Query) -> Node:
        terms = [n for n in ast.walk(child) if isinstance(n, ast.Term)]
        if not terms or not all(isinstance(n, ast.Term | ast.Or) for n in ast.walk(child)):
            line, column = _position(child)
            raise QuerySyntaxError("lang: takes a language code or (fr OR en)", line, column)
        codes = []
        for term in terms:
            code = language_code(term.text)
            if code is None:
                raise QuerySyntaxError(
                    f"lang: takes a language code such as fr or en, not {term.text!r}",
                    term.line,
                    term.column,
                )
            codes.append(code)
        return LanguageIs(frozenset(codes))


def _aliases(entity: Entity) -> list[tuple[str, bool]]:
    """The entity's aliases, each with whether it is matched exactly as written."""
    return [(a, False) for a in entity.aliases] + [(a, True) for a in entity.case_aliases]


def _label(term: ast.Term) -> str:
    return (
        ("=" if term.case else "")
        + term.text
        + ("*" if term.prefix else "")
        + ("~" if term.stem else "")
    )


def _has_words(query: ast.Query) -> bool:
    """Whether a query names any word, phrase or entity to find in the text (lang:'s value is
    not one)."""
    if isinstance(query, ast.Term | ast.Phrase | ast.EntityRef):
        return True
    if isinstance(query, ast.Field):
        return query.name != "lang" and _has_words(query.child)
    if isinstance(query, ast.And | ast.Or):
        return any(map(_has_words, query.children))
    if isinstance(query, ast.Not):
        return _has_words(query.child)
    if isinstance(query, ast.Near):
        return _has_words(query.left) or _has_words(query.right)
    return False


def _fields_hit(query: ast.Query, fields: tuple[str, ...]) -> frozenset[str]:
    """The fields in which a query's words can be found (NEAR needs both sides in one)."""
    if isinstance(query, ast.Term | ast.Phrase | ast.EntityRef):
        return frozenset(fields)
    if isinstance(query, ast.Field):
        if query.name == "lang":
            return frozenset()
        return _fields_hit(query.child, TEXT_FIELDS if query.name == "text" else (query.name,))
    if isinstance(query, ast.And | ast.Or):
        return frozenset().union(*(_fields_hit(child, fields) for child in query.children))
    if isinstance(query, ast.Near) and query.excluded:  # its words are its left side's
        return _fields_hit(query.left, fields)
    if isinstance(query, ast.Near):
        return _fields_hit(query.left, fields) & _fields_hit(query.right, fields)
    return frozenset()  # NOT finds no words


def _places(query: ast.Query) -> bool:
    """Whether each hit of `query` is a place of one of its words, phrases or entities (an OR
    of them, in fields), as NOT NEAR's left side must be."""
    if isinstance(query, ast.Term | ast.Phrase | ast.EntityRef):
        return True
    if isinstance(query, ast.Field):
        return query.name != "lang" and _places(query.child)
    if isinstance(query, ast.Or):
        return all(map(_places, query.children))
    # Another NOT NEAR keeps places of its own left side: `Channel NOT NEAR/1 4 NOT NEAR/1 x`.
    return isinstance(query, ast.Near) and query.excluded and _places(query.left)


def _position(query: ast.Query) -> tuple[int, int]:
    for node in ast.walk(query):
        if hasattr(node, "line"):
            return node.line, node.column  # type: ignore[union-attr]
    return 1, 1
