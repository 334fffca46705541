"""Rule files: load `rules/*.toml`, validate them, locate every error at file:line:column.

A rule file holds any number of `[[rule]]` and `[[entity]]` tables (see docs/rules.md).
`load_rules` never raises for a bad file: it returns what loaded and the errors, so `rules check`
can report them all and the running service can keep its last good rules.
"""

from __future__ import annotations

import gc
import logging
import re
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any

from ..errors import RuleError
from ..text import NotUtf8Error, counted, fold, language_code, read_utf8
from .common_words import everyday_acronym
from .compile import Compiler
from .index import CompiledRule, RuleIndex, compile_rule
from .model import PRIORITIES, Entity, Rule
from .nodes import Node, exact_keys
from .parser import QuerySyntaxError
from .stats import HEURISTIC, TermStats

log = logging.getLogger(__name__)

_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # \Z: "$" let a final newline in
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
RULE_KEYS = {
    "id": "str",
    "query": "str",
    "name": "str",
    "description": "str",
    "tags": "list",
    "priority": "str",
    "enabled": "bool",
    "stem": "bool",
    "languages": "list",
    "feeds": "list",
    "feed_tags": "list",
}
ENTITY_KEYS = {
    "id": "str",
    "type": "str",
    "name": "str",
    "aliases": "list",
    "case_aliases": "list",
    "context": "table",
    "window": "int",
    "not_inside": "list",
}
_KINDS = {"str": str, "bool": bool, "list": list, "table": dict, "int": int}
_EXPECT = {
    "str": "a string",
    "bool": "true or false",
    "list": "a list of strings",
    "table": "a table of alias = [words]",
    "int": "a whole number",
}


@dataclass
class RuleSet:
    """What a set of rule files defines, and what is wrong with them."""

    rules: list[Rule] = field(default_factory=list)
    entities: dict[str, Entity] = field(default_factory=dict)
    compiled: list[CompiledRule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    warnings: list[RuleError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    stats: TermStats = HEURISTIC
    cache: dict[object, Node] = field(default_factory=dict)  # nodes shared between rules
    # Every rule that compiled, by what its compilation depends on (see _compiled_from): a
    # later load takes these over for the rules that did not change (`reusable`).
    by_source: dict[tuple, CompiledRule] = field(default_factory=dict)
    # Stored articles counted by the word frequencies the oldest rule in force was filed by.
    filed_at: int = 0
    kept: int = 0  # rules whose compilation was taken over from the previous load
    parsed: dict[str, _ParsedFile] = field(default_factory=dict)  # by path, for the next load

    @property
    def ok(self) -> bool:
        return not self.errors

    def reusable(self, entities: dict[str, Entity], stats: TermStats) -> dict[tuple, CompiledRule]:
        """Rules compiled here that a new load of the files may keep as they are: compiling
        takes about half a millisecond a rule (50 s for 100,000), so a reload after editing one
        of them would otherwise stall for as long. None when an entity's definition changed
        (compiled rules and the shared nodes hold its aliases), or when the stored articles have
        more than doubled since the rules were filed by their words' frequencies: filed again,
        rules move to keys that are now rarer."""
        if not self.ok or _definitions(entities) != _definitions(self.entities):
            return {}
        if stats.documents > 2 * self.filed_at:
            return {}
        return self.by_source

    def index(self) -> RuleIndex:
        with paused_collections():
            return RuleIndex(self.compiled, self.entities, self.stats, self.cache)


@contextmanager
def paused_collections() -> Iterator[None]:
    """No cyclic garbage collection while rules are compiled and indexed: they make hundreds of
    thousands of objects that live until the next reload, and each full collection on the way
    walked those made so far (and, on a reload, the rules in force): with 100,000 rules, an edit
    took 4.3 s to be in force, 2.2 s without them. What little garbage the load leaves is
    collected afterwards (the service freezes the new rules after a collection:
    scheduler.keep_long_lived)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """Rule files named by the config: files as given, folders' *.toml sorted by name, but for
    hidden ones: an editor's lock or swap file (Emacs's `.#topics.toml`, a link to nowhere
    while the file is open) is not a rule file, and reading it failed every reload."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.toml") if not p.name.startswith(".")))
        elif path.exists():
            found.append(path)
    return found


FileStamps = tuple[tuple[str, int, int], ...]  # each rule file's path, mtime (ns) and size


def file_stamps(paths: Iterable[Path]) -> FileStamps:
    """The rule files named by the config, each with its modification time and size: what
    tells that one changed, for RuleBook and for `vigie status`."""
    stamps = []
    for path in rule_files(paths):
        try:
            status = path.stat()
        except OSError:
            continue
        stamps.append((str(path), status.st_mtime_ns, status.st_size))
    return tuple(stamps)


def load_rules(
    paths: Iterable[Path],
    stats: TermStats = HEURISTIC,
    previous: RuleSet | None = None,
    only: Collection[str] | None = None,
) -> RuleSet:
    """Load and compile every rule file. `stats` (word frequencies of stored articles) lets
    the presearcher file each rule under its rarest words. Rules that are as they were in
    `previous` (the rules in force) keep its compilation (RuleSet.reusable).

    `only`: the ids of the rules to compile, for a command that tries those alone; the others
    are read and their tables checked, and listed in `rules`, but their queries are neither
    compiled nor checked. Trying one rule of 100,000 compiled all of them first (30 s)."""
    with paused_collections():
        return _load_rules(list(paths), stats, previous, only)


def _load_rules(
    paths: list[Path],
    stats: TermStats,
    previous: RuleSet | None,
    only: Collection[str] | None,
) -> RuleSet:
    result = RuleSet(stats=stats, filed_at=stats.documents)
    raw_rules: list[tuple[Rule, _Source]] = []
    # A path that is not there is a mistake (a typo in rules.paths, a folder moved away), not a
    # wish for no rules: loaded as none, every rule would stop matching without a word.
    for path in paths:
        if not path.exists():
            result.errors.append(RuleError(str(path), 0, 0, "no such file or folder (rules.paths)"))
    for path in rule_files(paths):
        result.files.append(path)
        parsed = _parse_file(path, result.errors, previous)
        if parsed is None:
            continue
        result.parsed[str(path)] = parsed
        source = parsed.source
        raw_rules.extend((rule, source) for rule in parsed.rules)
        for entity in parsed.entities:
            if entity.id in result.entities:
                other = result.entities[entity.id]
                result.errors.append(
                    source.error(
                        entity.line,
                        f"entity id {entity.id!r} is already defined at {other.path}:{other.line}",
                    )
                )
                continue
            result.entities[entity.id] = entity
            result.warnings.extend(source.error(entity.line, w) for w in _alias_warnings(entity))
    reuse = previous.reusable(result.entities, stats) if previous is not None else {}
    if reuse and previous is not None:
        # The rules kept share their words' nodes with the rules compiled now.
        result.cache, result.filed_at = previous.cache, previous.filed_at
    cache = result.cache
    seen: dict[str, Rule] = {}
    for rule, source in raw_rules:
        if rule.id in seen:
            other = seen[rule.id]
            result.errors.append(
                source.error(
                    rule.line,
                    f"rule id {rule.id!r} is already defined at {other.path}:{other.line}",
                )
            )
            continue
        seen[rule.id] = rule
        if only is not None and rule.id not in only:
            result.rules.append(rule)
            continue
        source_key = _compiled_from(rule)
        compiled = reuse.get(source_key)
        if compiled is not None:
            compiled = replace(compiled, rule=rule)  # its id, tags, file and line as now
            result.kept += rule.enabled
        else:
            try:
                compiled = compile_rule(rule, result.entities, stats, cache)
            except QuerySyntaxError as e:
                result.errors.append(source.query_error(rule, _why_unknown(e, result.parsed)))
                continue
        result.by_source[source_key] = compiled
        result.rules.append(rule)
        result.warnings.extend(source.query_error(rule, w) for w in compiled.warnings)
        if rule.enabled:
            result.compiled.append(compiled)
            warning = _breadth_warning(compiled, stats)
            if warning:
                result.warnings.append(source.error(rule.query_line or rule.line, warning))
    return result


_OPERATOR_IN_ALIAS = re.compile(r"(?:^|\s)(?:OR|AND|NOT|O?NEAR/\d+)(?:\s|$)")


def _alias_warnings(entity: Entity) -> list[str]:
    """Aliases that say something other than what they do: an alias is a word or a phrase,
    searched as written, operators included; a case alias takes no wildcard."""
    found = []
    for alias in (*entity.aliases, *entity.case_aliases):
        if operator := _OPERATOR_IN_ALIAS.search(alias):
            found.append(
                f"entity {entity.id!r}: alias {alias!r} is searched as one phrase, "
                f"{operator.group().strip()} included: an alias is not a query; list each "
                "name as an alias of its own"
            )
    found += [
        f"entity {entity.id!r}: case alias {alias!r} is matched exactly as written, and * is "
        "no wildcard there (a prefix goes in aliases, in any case)"
        for alias in entity.case_aliases
        if "*" in alias
    ]
    found += [
        f"entity {entity.id!r}: alias {alias!r} is matched as written, without its ~: aliases "
        "take no other forms; list them (exilé, exilés, exilée) or end the word with *"
        for alias in (*entity.aliases, *entity.case_aliases)
        if "~" in alias
    ]
    for alias in entity.aliases:
        if everyday := everyday_acronym(alias):
            found.append(
                f"entity {entity.id!r}: alias {alias!r} is matched in any case, so"
                f" {everyday[0]!r} too, an everyday {everyday[1]} word: put it in case_aliases"
                f" to match {alias!r} only"
            )
    plain = {fold(alias) for alias in entity.aliases}
    found += [
        f"entity {entity.id!r}: {alias!r} is in case_aliases and, in any case, in aliases, which"
        f" match {alias.lower()!r} too: leave it in case_aliases alone to match only {alias!r}"
        for alias in entity.case_aliases
        if fold(alias) in plain
    ]
    found += [
        f"entity {entity.id!r}: case alias {alias!r} has no capital, so it matches only when"
        f" written in lower case: write it as the name is written ({alias.upper()!r}), or put"
        " it in aliases to match it in any case"
        for alias in entity.case_aliases
        if alias == alias.lower() and alias != alias.upper()  # letters, none of them capital
    ]
    return found


@dataclass(frozen=True)
class _ParsedFile:
    """A rule file's rules and entities, and its size and time as they were read."""

    stamp: tuple[int, int] | None  # modification time (ns) and size
    source: _Source
    rules: tuple[Rule, ...]
    entities: tuple[Entity, ...]


def _parse_file(
    path: Path, errors: list[RuleError], previous: RuleSet | None
) -> _ParsedFile | None:
    """A rule file's rules and entities: as `previous` read them when the file has the same
    modification time and size (what RuleBook watches), else read now. Reading and checking
    the TOML costs about 70 µs a rule: 7 s of each reload with 100,000 rules in files that
    did not change."""
    try:
        status = path.stat()
        stamp: tuple[int, int] | None = (status.st_mtime_ns, status.st_size)
    except OSError:
        stamp = None
    if previous is not None and previous.ok and stamp is not None:
        known = previous.parsed.get(str(path))
        if known is not None and known.stamp == stamp:
            return known
    source = _Source.read(path, errors)
    if source is None:
        return None
    rules, entities = tuple(source.rules(errors)), tuple(source.entities(errors))
    source.data = {}  # only its lines are needed now, for messages
    return _ParsedFile(stamp, source, rules, entities)


_LITERAL_WITH_APOSTROPHE = re.compile(r"^\s*[\w.-]+\s*=\s*'[^']*'[^'\s]")
_BARE_VALUE = re.compile(r"^\s*[\w.-]+\s*=\s*[^\s\"'\[{0-9+-]")


def _toml_hint(line: str) -> str:
    """What an operator most likely meant, for the TOML mistakes rule files see most."""
    if _LITERAL_WITH_APOSTROPHE.match(line):
        # query = 'l'immigration AND police': the apostrophe ends the 'string'.
        return (
            "; a value holding an apostrophe goes in double quotes, as in "
            "query = \"l'immigration AND police\", or in '''...'''"
        )
    value = line.partition("=")[2].strip()
    if value.lower() in ("true", "false", "yes", "no", "on", "off", "ture", "flase"):
        return "; a yes-or-no setting is true or false, in lower case"
    if _BARE_VALUE.match(line):
        return '; text goes in double quotes, as in query = "police AND gaz"'
    return ""


def _unclosed_string(text: str) -> tuple[int, int]:
    """Where a string tomllib found unterminated "at end of document" opened: the last of an
    odd number of triple quotes (a multi-line query left open), else the file's last line."""
    for quotes in ('"""', "'''"):
        if text.count(quotes) % 2:
            at = text.rindex(quotes)
            line = text.count("\n", 0, at) + 1
            return line, at - (text.rfind("\n", 0, at) + 1) + 1
    return max(text.count("\n"), 1), 1


def _why_unknown(error: QuerySyntaxError, parsed: dict[str, _ParsedFile]) -> QuerySyntaxError:
    """An unknown entity that is defined, with errors, says so: "unknown entity" sent the
    operator looking for a typo in the rule."""
    unknown = _UNKNOWN_ENTITY.match(error.message)
    for file in parsed.values() if unknown else ():
        line = file.source.broken.get(unknown.group(1))
        if line is not None:
            message = (
                f"entity @{unknown.group(1)} is not loaded: its definition at "
                f"{file.source.shown}:{line} has errors"
            )
            return QuerySyntaxError(message, error.line, error.column)
    return error


_UNKNOWN_ENTITY = re.compile(r"unknown entity @(\S+)")


def _compiled_from(rule: Rule) -> tuple:
    """What compiling a rule depends on, besides the entities: its query, whether every word
    is stemmed, and whether it has scopes (checked per article)."""
    return (rule.query, rule.stem, bool(rule.languages or rule.feeds or rule.feed_tags))


def _definitions(entities: dict[str, Entity]) -> dict[str, Entity]:
    """Entities as they match, without where they are written: moving one is no change."""
    return {key: replace(entity, path="", line=0) for key, entity in entities.items()}


def _breadth_warning(compiled: CompiledRule, stats: TermStats) -> str | None:
    """Rules that would match almost everything: no word to anchor on, or only very common ones."""
    if compiled.keys is None:
        return (
            f"rule {compiled.rule.id!r} requires no particular word (only NOT or lang:) and "
            "would be checked against, and may match, almost every article"
        )
    # Any common key, not all: `police OR the` is filed under both, and matches wherever "the"
    # is (73% of stored articles in a review) though "police" is rare. A word the rule asks
    # for only as written (=UN, filed under "un") matches only there, as `rules check` says
    # to write an acronym that is an everyday word in lower case.
    exact = exact_keys(compiled.node)
    common = sorted(v for k, v in compiled.keys if stats.is_common((k, v)) and (k, v) not in exact)
    if common:
        return (
            f"rule {compiled.rule.id!r} can match on very common words alone "
            f"({', '.join(common)}) and would match almost every article"
        )
    return None


class _Source:
    """One rule file's text and parsed TOML, able to locate keys by line."""

    def __init__(self, path: Path, text: str, data: dict[str, Any]) -> None:
        self.path, self.text, self.data = path, text, data
        self.lines = text.splitlines()
        self.shown = str(path)
        self.headers = {"rule": self._header_lines("rule"), "entity": self._header_lines("entity")}
        self.broken: dict[str, int] = {}  # entities with errors: id -> line (see `entities`)
        self._starts = sorted(chain.from_iterable(self.headers.values()))  # of every table

    @classmethod
    def read(cls, path: Path, errors: list[RuleError]) -> _Source | None:
        try:
            text = read_utf8(path)
        except NotUtf8Error as e:
            errors.append(RuleError(str(path), e.line, e.column, f"cannot be read: {e}"))
            return None
        except OSError as e:
            errors.append(RuleError(str(path), 0, 0, f"cannot be read: {e}"))
            return None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            message = str(e)
            m = _TOML_POSITION.search(message)
            line, column = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
            if not m and "end of document" in message:
                line, column = _unclosed_string(text)
            message = _TOML_POSITION.sub("", message).strip()
            lines = text.splitlines()
            source_line = lines[line - 1] if 0 < line <= len(lines) else ""
            errors.append(
                RuleError(
                    str(path),
                    line,
                    column,
                    f"not valid TOML: {message}{_toml_hint(source_line)}",
                    source_line,
                )
            )
            return None
        source = cls(path, text, data)
        for key in data:
            if key not in ("rule", "entity"):
                errors.append(
                    source.error(
                        source._line_of(key, 1, len(source.lines)),
                        f"unknown table {key!r}: expected [[rule]] or [[entity]]",
                    )
                )
        return source

    def _header_lines(self, name: str) -> list[int]:
        pattern = re.compile(r"^\s*\[\[\s*" + name + r"\s*\]\]")
        return [i + 1 for i, line in enumerate(self.lines) if pattern.match(line)]

    def _block(self, kind: str, index: int) -> tuple[int, int]:
        headers = self.headers[kind]
        if index >= len(headers):
            return 0, len(self.lines)
        start = headers[index]
        # The next table's header, found by bisection: a file of 10,000 rules looked through
        # every header for each rule, 10^8 comparisons (seconds) on each reload.
        after = bisect_right(self._starts, start)
        return start, (self._starts[after] - 1 if after < len(self._starts) else len(self.lines))

    def _line_of(self, key: str, start: int, end: int) -> int:
        pattern = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for number in range(max(start, 1), end + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return start

    def _context_line(self, alias: str, start: int, end: int) -> int:
        """The line of `alias` under the entity's [entity.context] header, else of its inline
        `context = {...}`, else of the entity."""
        header = re.compile(r"^\s*\[\s*entity\s*\.\s*context\s*\]")
        key = re.compile(r"^\s*([\"']?)" + re.escape(alias) + r"\1\s*=")
        under = False
        for number in range(max(start, 1), end + 1):
            line = self.lines[number - 1]
            if header.match(line):
                under = True
            elif under and key.match(line):
                return number
        return self._line_of("context", start, end)

    def _at_key(self, key: str, start: int, end: int, message: str) -> RuleError:
        """`message` at the line of `key` in the block from `start` to `end`."""
        return self.error(self._line_of(key, start, end), message)

    def error(self, line: int, message: str, column: int = 1) -> RuleError:
        source_line = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if column == 1 and source_line:
            column = len(source_line) - len(source_line.lstrip()) + 1
        return RuleError(self.shown, line, column, message, source_line)

    def _tables(self, kind: str, errors: list[RuleError]) -> Iterable[tuple[int, dict, int, int]]:
        tables = self.data.get(kind, [])
        if not isinstance(tables, list):
            errors.append(
                self.error(
                    self._line_of(kind, 1, len(self.lines)),
                    f"{kind} must be written as [[{kind}]] tables",
                )
            )
            return
        for i, table in enumerate(tables):
            start, end = self._block(kind, i)
            yield i, table, start, end

    def _check_keys(
        self,
        table: dict,
        kinds: dict[str, str],
        where: str,
        start: int,
        end: int,
        errors: list[RuleError],
    ) -> bool:
        ok = True
        for key, value in table.items():
            if key not in kinds:
                known = ", ".join(sorted(kinds))
                errors.append(
                    self._at_key(key, start, end, f"{where}: unknown key {key!r} (known: {known})")
                )
                ok = False
                continue
            kind = kinds[key]
            good = isinstance(value, _KINDS[kind]) and not (
                kind == "int" and isinstance(value, bool)
            )
            if good and kind == "list":
                good = all(isinstance(v, str) for v in value)
            if not good:
                expected = f"{where}.{key}: expected {_EXPECT[kind]}, got {value!r}"
                errors.append(self._at_key(key, start, end, expected))
                ok = False
        if not isinstance(table.get("id"), str) or not _ID.match(table.get("id", "")):
            errors.append(
                self.error(
                    self._line_of("id", start, end) if "id" in table else start,
                    f"{where}.id: expected an id of letters without accents, digits, - _ . "
                    f'(e.g. "police-violence"), got {table.get("id")!r}',
                )
            )
            ok = False
        return ok

    def rules(self, errors: list[RuleError]) -> Iterable[Rule]:
        for i, table, start, end in self._tables("rule", errors):
            where = f"rule[{i}]" if "id" not in table else f"rule {table['id']!r}"
            # Every mistake of the table is reported at once, not the first of them only.
            ok = self._check_keys(table, RULE_KEYS, where, start, end, errors)
            if "query" not in table:
                errors.append(self.error(start, f"{where}: missing key 'query'"))
                ok = False
            priority = table.get("priority", "normal")
            if isinstance(priority, str) and priority not in PRIORITIES:
                expected = f"expected one of {', '.join(PRIORITIES)}, got {priority!r}"
                errors.append(self._at_key("priority", start, end, f"{where}.priority: {expected}"))
                ok = False
            languages = table.get("languages", [])
            codes: tuple[str | None, ...] = ()
            if isinstance(languages, list) and all(isinstance(v, str) for v in languages):
                codes = tuple(map(language_code, languages))
                if None in codes:
                    bad = next(v for v, code in zip(languages, codes, strict=True) if not code)
                    expected = f'expected language codes such as "en" or "fr", got {bad!r}'
                    errors.append(
                        self._at_key("languages", start, end, f"{where}.languages: {expected}")
                    )
                    ok = False
            if not ok:
                continue
            query_line, query_column = self._query_position(table["query"], start, end)
            yield Rule(
                id=table["id"],
                query=table["query"],
                name=table.get("name", ""),
                description=table.get("description", ""),
                tags=tuple(table.get("tags", ())),
                priority=priority,
                enabled=table.get("enabled", True),
                stem=table.get("stem", False),
                languages=tuple(dict.fromkeys(code for code in codes if code)),
                feeds=tuple(table.get("feeds", ())),
                feed_tags=tuple(table.get("feed_tags", ())),
                path=self.shown,
                line=self._line_of("id", start, end),
                query_line=query_line,
                query_column=query_column,
            )

    def entities(self, errors: list[RuleError]) -> Iterable[Entity]:
        """The entities that load; those with errors are kept in `broken` (id -> line), so a
        rule naming one is told why it is missing rather than that it is unknown."""
        for i, table, start, end in self._tables("entity", errors):
            entity = self._entity(i, table, start, end, errors)
            if entity is not None:
                yield entity
            elif isinstance(table.get("id"), str):
                self.broken[table["id"]] = start

    def _entity(
        self, i: int, table: dict, start: int, end: int, errors: list[RuleError]
    ) -> Entity | None:
        where = f"entity[{i}]" if "id" not in table else f"entity {table['id']!r}"
        if not self._check_keys(table, ENTITY_KEYS, where, start, end, errors):
            return None
        context = table.get("context", {})
        bad = [
            k
            for k, v in context.items()
            if not (isinstance(v, list) and all(isinstance(w, str) for w in v))
        ]
        aliases = set(table.get("aliases", ())) | set(table.get("case_aliases", ()))
        if not aliases:
            errors.append(self.error(start, f"{where}: needs aliases or case_aliases"))
            return None
        # A key names its alias as aliases are compared, without case or accents ("jungle" for
        # "Jungle", "exile*" for "exilé*"); a case alias only as it is written.
        folded = {fold(a): a for a in table.get("aliases", ()) if isinstance(a, str)}
        named = {
            k: k if k in aliases else folded.get(fold(k)) for k in context if isinstance(k, str)
        }
        unknown = [k for k, alias in named.items() if alias is None]
        for alias in dict.fromkeys([*unknown, *bad]):
            if alias in unknown:
                known = ", ".join(map(repr, sorted(aliases)))
                problem = f"{alias!r} is not one of the aliases ({known})"
            else:
                problem = f'{alias!r} needs a list of words, as in {alias} = ["camp*"]'
            errors.append(
                self.error(
                    self._context_line(alias, start, end),
                    f"{where}.context: {problem}; each key is an alias, each value the words "
                    "that must be near it",
                )
            )
        if bad or unknown:
            return None
        problem = self._entity_problem(table, where, start, end)
        if problem is not None:
            errors.append(problem)
            return None
        return Entity(
            id=table["id"],
            type=table.get("type", ""),
            name=table.get("name", table["id"]),
            aliases=tuple(table.get("aliases", ())),
            case_aliases=tuple(table.get("case_aliases", ())),
            context={named[k]: tuple(v) for k, v in context.items()},
            window=table.get("window", 12),
            not_inside=tuple(table.get("not_inside", ())),
            path=self.shown,
            line=self._line_of("id", start, end),
        )

    def _entity_problem(self, table: dict, where: str, start: int, end: int) -> RuleError | None:
        """An alias or context word the matcher cannot search for (not a string, no letters,
        a wildcard too short) or a window under one word, at its own line: found only when a
        rule or the index compiled the entity, it stopped the service with a traceback."""
        window = table.get("window", 12)
        if window < 1:
            expected = f"expected at least 1 word, got {window}"
            return self._at_key("window", start, end, f"{where}.window: {expected}")
        compiler = Compiler({})
        words = [
            *(("aliases", alias, False) for alias in table.get("aliases", ())),
            *(("case_aliases", alias, True) for alias in table.get("case_aliases", ())),
            *(("context", w, False) for near in table.get("context", {}).values() for w in near),
            *(("not_inside", name, True) for name in table.get("not_inside", ())),
        ]
        for key, word, case in words:
            if not isinstance(word, str):
                return self._at_key(
                    key, start, end, f"{where}.{key}: expected strings, got {word!r}"
                )
            try:
                compiler.check_alias(word, case)
            except QuerySyntaxError as e:
                line, column = self._string_position(word, key, start, end)
                return self.error(line, f"{where}.{key}: {e.message}", column)
        return self._longer_name_problem(table, where, start, end, compiler)

    def _longer_name_problem(
        self, table: dict, where: str, start: int, end: int, compiler: Compiler
    ) -> RuleError | None:
        """A `not_inside` name that sets no alias apart: one that holds none of them (a typo,
        a name in another case) or is an alias itself would leave out nothing, without a
        word; one with a * is matched as written, and * is no wildcard there."""
        context = table.get("context", {})
        entity = Entity(
            id="",
            aliases=tuple(table.get("aliases", ())),
            case_aliases=tuple(table.get("case_aliases", ())),
            context={alias: tuple(words) for alias, words in context.items()},
        )
        for name in table.get("not_inside", ()):
            if "*" in name:
                problem = f"{name!r} is matched exactly as written: * is no wildcard there"
            elif not compiler.sets_apart(entity, name):
                problem = (
                    f"{name!r} is not a longer name around one of its aliases or context words,"
                    " so it leaves out nothing: write a name one of them stands inside, as"
                    ' articles write it ("Pas-de-Calais" for "Calais")'
                )
            else:
                continue
            line, column = self._string_position(name, "not_inside", start, end)
            return self.error(line, f"{where}.not_inside: {problem}", column)
        return None

    def _string_position(self, text: str, key: str, start: int, end: int) -> tuple[int, int]:
        """Line and column of the string `text` written in the block, from its key's line on
        ("Calais" in not_inside, not in the aliases above it), else its key's line."""
        at_key = self._line_of(key, start, end)
        lines = chain(range(at_key, end + 1), range(start, at_key))
        for number in (n for n in lines if 0 < n <= len(self.lines)):
            line = self.lines[number - 1]
            for quoted in (f'"{text}"', f"'{text}'"):
                if quoted in line:
                    return number, line.index(quoted) + 1
        return at_key, 1

    def _query_position(self, query: str, start: int, end: int) -> tuple[int, int]:
        """File line and column of the query's first character."""
        line = self._line_of("query", start, end)
        if not (0 < line <= len(self.lines)):
            return 0, 0
        text = self.lines[line - 1]
        after = text.index("=") + 1
        while after < len(text) and text[after] == " ":
            after += 1
        rest = text[after:]
        for quote in ('"""', "'''"):
            if rest.startswith(quote):
                if rest[3:].strip() == "":  # the string starts on the next line
                    return line + 1, 1
                return line, after + 4
        return line, after + 2

    def query_error(self, rule: Rule, error: QuerySyntaxError) -> RuleError:
        if not rule.query_line:
            return self.error(rule.line, f"rule {rule.id!r}: {error.message}")
        line, column = self._in_file(rule, error.line, error.column)
        return self.error(line, f"rule {rule.id!r}: {error.message}", column)

    def _in_file(self, rule: Rule, line: int, column: int) -> tuple[int, int]:
        """Where the query's character at `line`:`column` is written in the file. In a "basic"
        string each escape (\\" \\\\ \\u00e9) is written longer than the character it stands
        for, and a backslash ending a line of a multi-line one removes that line break and the
        spaces after it: counted as the query reads, the caret fell left or lines too high."""
        target = sum(len(text) + 1 for text in rule.query.split("\n")[: line - 1]) + column - 1
        at_line, at = rule.query_line, rule.query_column - 1
        basic = self._basic_string(rule)
        decoded = 0
        while decoded < target and 0 < at_line <= len(self.lines):
            text = self.lines[at_line - 1]
            if at >= len(text):  # a line break of the file, one in the query
                at_line, at, decoded = at_line + 1, 0, decoded + 1
                continue
            if basic and text[at] == "\\":
                if not text[at + 1 :].strip():  # a line-ending backslash: no break, no spaces
                    at_line += 1
                    while 0 < at_line <= len(self.lines) and not self.lines[at_line - 1].strip():
                        at_line += 1
                    following = self.lines[at_line - 1] if at_line <= len(self.lines) else ""
                    at = len(following) - len(following.lstrip())
                    continue
                at += {"u": 6, "U": 10}.get(text[at + 1 : at + 2], 2)
            else:
                at += 1
            decoded += 1
        return at_line, at + 1

    def _basic_string(self, rule: Rule) -> bool:
        """Whether the query is written as a "basic" string (escapes), not a 'literal' one."""
        text = self.lines[rule.query_line - 1] if 0 < rule.query_line <= len(self.lines) else ""
        before = text[: rule.query_column - 1].rstrip()
        if not before and rule.query_line > 1:  # after a """ alone on the line above
            before = self.lines[rule.query_line - 2].rstrip()
        return before.endswith('"')


class RuleBook:
    """The rules in force for a running service, reloaded when the files change.

    An edit that does not load keeps the last good rules in force and is logged with its
    location; fixing the file brings the new rules in on the next check.
    """

    def __init__(self, paths: Iterable[Path], stats: Callable[[], TermStats] | None = None) -> None:
        self.paths = tuple(paths)
        self.stats = stats
        self._stamp: FileStamps = ()  # the files as last loaded
        self._changed: FileStamps = ()  # the files as a check last saw them differ from _stamp
        self.index: RuleIndex | None = None
        self.last_errors: list[RuleError] = []
        self._in_force: RuleSet | None = None  # what `index` was built from

    @property
    def in_force(self) -> RuleSet | None:
        """What the rules in force were loaded from (their files, every rule, disabled ones
        included); None before a first good load."""
        return self._in_force

    @property
    def files_read(self) -> FileStamps:
        """The rule files as the last load read them (loaded or not: see `last_errors`)."""
        return self._stamp

    def reload_if_changed(self) -> bool:
        """Load the files again once an edit has settled: when they differ from the rules in
        force and are as the previous check saw them. Returns True when new rules came into
        force. The first load, at start, is at once.

        An editor that saves in place empties the file, then writes it: a check in between
        read an empty file, which is valid (no rules), and put no rules in force; and if the
        edit itself did not load, those no rules stayed as the last good ones."""
        stamp = file_stamps(self.paths)
        if self.index is not None:
            if stamp == self._stamp:
                return False
            if stamp != self._changed:  # still changing, maybe: look again at the next check
                self._changed = stamp
                return False
        self._stamp = self._changed = stamp
        stats = self.stats() if self.stats else HEURISTIC
        loaded = load_rules(self.paths, stats, previous=self._in_force)
        self.last_errors = loaded.errors
        if not loaded.ok:
            # At the first load there are no last good rules: the caller refuses to start,
            # naming the errors (`last_errors`), and a log line would say they are kept. Their
            # number is said, as `vigie status` and "rules loaded" count them: the files on
            # disk no longer do.
            for error in loaded.errors if self.index is not None else ():
                log.error(
                    "rule file error, keeping the last good %s: %s",
                    counted(len(self.index), "rule"),
                    error,
                    extra={"rule_file": error.path, "line": error.line},
                )
            if self.index is None:
                self.index = RuleIndex([], {})
            return False
        before = self._in_force
        self.index, self._in_force = loaded.index(), loaded
        log.info(
            "rules loaded: %s (%s unchanged), %s from %s",
            counted(len(loaded.compiled), "rule"),
            f"{loaded.kept:,}",
            counted(len(loaded.entities), "entity"),
            counted(len(loaded.files), "file"),
        )
        if before is not None:
            _warn_of_rules_gone(before, loaded)
        return True


def _warn_of_rules_gone(before: RuleSet, now: RuleSet) -> None:
    """A rule taken out of the files (a file deleted, moved, or rewritten by a copy that
    removes it first) matches nothing from now on: said at INFO only, the articles stored
    meanwhile went unmatched by it without a word."""
    kept = {rule.id for rule in now.rules}
    gone = [rule.id for rule in before.rules if rule.enabled and rule.id not in kept]
    if gone:
        shown = ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else "")
        log.warning(
            "%s no longer in the rule files: %s; articles stored from now on are not"
            " matched by them (put back, `vigie rules backtest RULE --apply` catches up)",
            counted(len(gone), "rule"),
            shown,
        )
