"""Errors an operator can act on. Bugs still raise ordinary tracebacks.

    VigieError
    ├── ConfigError          config.toml is wrong: names file, key path, expectation
    ├── RuleError            a rule file is wrong: names file, line, column
    ├── FetchError           one feed could not be fetched (recorded on the feed)
    │   └── BlockedAddressError   the guard refused a non-public address
    ├── FeedParseError       one feed's bytes are not a feed (recorded on the feed)
    ├── DatabaseOpenError    storage.database cannot be opened or created: names the path, why
    ├── OutboxError          delivery.outbox cannot be written into: names the folder, why
    ├── SearchQueryError     an `articles search` query cannot be read: names it, and why
    └── AlreadyRunningError  another `vigie run` holds the database

The CLI and the scheduler catch VigieError in one place and print or log `str(error)` as one line.
"""

from __future__ import annotations

import json


class VigieError(Exception):
    """Base of every error whose message is meant for an operator."""


class ConfigError(VigieError):
    """A config problem: file (and line, 1-based, when found), key path, expectation."""

    def __init__(
        self, path: str, key: str, expected: str, got: object = None, line: int = 0
    ) -> None:
        self.path, self.key, self.expected, self.got = path, key, expected, got
        self.line = line
        where = f"{path}:{line}" if line else path
        message = f"{where}: {key}: {expected}" if key else f"{where}: {expected}"
        if got is not None:
            # TOML spelling, so the operator sees what they typed: "fast", not 'fast'.
            shown = json.dumps(got, ensure_ascii=False) if isinstance(got, str) else repr(got)
            message += f", got {shown}"
        super().__init__(message)

    def at_line(self, line: int) -> ConfigError:
        """The same error, placed at `line` of its file (itself when the line is unknown)."""
        if not line or self.line:
            return self
        return ConfigError(self.path, self.key, self.expected, self.got, line)


class RuleError(VigieError):
    """A rule file problem at file:line:column (1-based; 0 when unknown)."""

    def __init__(
        self, path: str, line: int, column: int, message: str, source_line: str = ""
    ) -> None:
        self.path, self.line, self.column, self.message = path, line, column, message
        self.source_line = source_line
        where = f"{path}:{line}:{column}" if line else path
        super().__init__(f"{where}: {message}")

    def pointer(self) -> str:
        """The offending line with a caret under the column, for terminals."""
        if not self.source_line:
            return ""
        return f"{self.source_line}\n{' ' * max(self.column - 1, 0)}^"


class FetchError(VigieError):
    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"{url}: {reason}")


class BlockedAddressError(FetchError):
    """Raised when a connection would reach a loopback, private or otherwise non-public address."""


class FeedParseError(VigieError):
    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"{url}: {reason}")


class DatabaseOpenError(VigieError):
    """The database file cannot be opened or created: a folder, a file that is not SQLite, a
    folder that cannot be made. The CLI names the config file and key that chose the path."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class OutboxError(VigieError):
    """The outbox folder cannot be created or written into: a file in its place, a place no
    folder can be made, no permission, a full disk. The CLI names the config file and key;
    a digest that meets it waits for its retry."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class SearchQueryError(VigieError):
    """A search query that cannot be read, with what is wrong in it."""

    def __init__(self, query: str, reason: str) -> None:
        self.query, self.reason = query, reason
        super().__init__(f"search query {query!r}: {reason}")


class AlreadyRunningError(VigieError):
    pass
