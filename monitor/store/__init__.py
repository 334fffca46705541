"""Storage: the only package that speaks SQL.

- `schema`: the schema's history as migrations, applied when a Store opens.
- `rows`: how records are written to and read from rows, their keys, the value types handed out.
- `database`: the Store, its connection and transactions, made of one set of methods per area:
  `feeds`, `articles`, `search`, `matches`, `stories`, `exports`, `pruning`, `outbox`,
  `service` (what the running service tells other commands).
"""

from .database import Store, prepare_database, why_not_writable
from .outbox import WEBHOOK_BATCH_ARTICLES
from .rows import FeedState, OutboxItem, iso, parse_iso
from .schema import migrations
from .service import RuleFilesRead, RulesInForce

__all__ = [
    "WEBHOOK_BATCH_ARTICLES",
    "FeedState",
    "OutboxItem",
    "RuleFilesRead",
    "RulesInForce",
    "Store",
    "iso",
    "migrations",
    "parse_iso",
    "prepare_database",
    "why_not_writable",
]
