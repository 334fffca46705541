"""What a running service tells the other commands about itself through the database: the
rules it has in force, which the rule files on disk stop saying once an edit breaks them, and
the rule files as it last read them, which `vigie status` need not compile again.

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from .rows import iso


@dataclass(frozen=True)
class RulesInForce:
    """The rules a service loaded and matches with until its next good load. `pid`: the
    process that loaded them, to tell its record from a previous service's."""

    pid: int
    loaded: datetime
    files: int
    rules: int  # those that match (enabled)
    disabled: int  # in the files too, but `enabled = false`


@dataclass(frozen=True)
class RuleFilesRead:
    """The rule files as a load of every rule (`vigie run`'s, `vigie once`'s) last read them:
    each file's path, modification time (ns) and size, under which `paths` of which Vigie
    `version`, and how many errors they had. While the files are as they were, `vigie status`
    takes the errors from here instead of compiling every rule again (30 s with 100,000)."""

    version: str
    paths: tuple[str, ...]
    files: tuple[tuple[str, int, int], ...]
    errors: int


class ServiceQueries:
    """Store methods for the running service's own state."""

    db: sqlite_utils.Database

    def record_rules_in_force(self, rules: RulesInForce) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO rules_in_force (id, pid, loaded, files, rules, disabled)"
                " VALUES (1, ?, ?, ?, ?, ?)",
                [rules.pid, iso(rules.loaded), rules.files, rules.rules, rules.disabled],
            )

    def rules_in_force(self) -> RulesInForce | None:
        """What the latest service recorded, whether it still runs or not (see `pid`)."""
        row = self.db.execute(
            "SELECT pid, loaded, files, rules, disabled FROM rules_in_force WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        pid, loaded, files, rules, disabled = row
        return RulesInForce(pid, datetime.fromisoformat(loaded), files, rules, disabled)

    def record_rule_files_read(self, read: RuleFilesRead) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO rule_files_read (id, version, paths, files, errors)"
                " VALUES (1, ?, ?, ?, ?)",
                [read.version, json.dumps(read.paths), json.dumps(read.files), read.errors],
            )

    def rule_files_read(self) -> RuleFilesRead | None:
        """What the latest load of every rule recorded of the files it read."""
        row = self.db.execute(
            "SELECT version, paths, files, errors FROM rule_files_read WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        version, paths, files, errors = row
        stamps = tuple((path, mtime, size) for path, mtime, size in json.loads(files))
        return RuleFilesRead(version, tuple(json.loads(paths)), stamps, errors)
