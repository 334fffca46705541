"""Storage: the only package that speaks SQL.

- `schema`: the schema's history as migrations, applied when a Store opens.
- `rows`: how records are written to and read from rows; the value types handed out.
- `database`: the Store, every query and write, in transactions.
"""

from .database import WEBHOOK_BATCH_ARTICLES, Store
from .rows import FeedState, OutboxItem, iso, parse_iso
from .schema import migrations

__all__ = [
    "WEBHOOK_BATCH_ARTICLES",
    "FeedState",
    "OutboxItem",
    "Store",
    "iso",
    "migrations",
    "parse_iso",
]
