"""What a running service tells the other commands about itself through the database: the
rules it has in force, which the rule files on disk stop saying once an edit breaks them.

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

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
