"""Pieces every CLI module shares: consoles, the --config option, one-line operator errors, and
the database opened (and locked) so that a path it cannot use names config.toml's key."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.text import Text

from .config import Config
from .errors import ConfigError, DatabaseOpenError, RuleError, VigieError
from .scheduler import database_lock
from .store import Store
from .text import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def config_option(func: Callable) -> Callable:
    """Every command takes --config PATH (default ./config.toml, or $VIGIE_CONFIG)."""
    return click.option(
        "--config",
        "config_path",
        default="config.toml",
        show_default=True,
        envvar="VIGIE_CONFIG",
        type=click.Path(dir_okay=False),
        help="Configuration file.",
    )(func)


def operator_errors(func: Callable) -> Callable:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RuleError as e:
            err_console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
            if e.pointer():
                err_console.print(e.pointer(), markup=False)
            sys.exit(1)
        except VigieError as e:
            err_console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
            sys.exit(1)

    return wrapper


@contextmanager
def database_errors(config: Config) -> Iterator[None]:
    """A database that cannot be opened or created is a configuration error: it names the
    config file, storage.database and why the path cannot be used."""
    try:
        yield
    except DatabaseOpenError as e:
        raise ConfigError(
            str(config.path),
            "storage.database",
            f"expected a SQLite database file that can be opened or created ({e.reason})",
            str(config.database),
        ) from e


def open_database(config: Config) -> Store:
    """The configured database, or a ConfigError saying why its path cannot be used."""
    with database_errors(config):
        return Store(config.database)


@contextmanager
def locked_database(config: Config) -> Iterator[None]:
    """Hold the database lock (scheduler.database_lock); an unusable path is a ConfigError."""
    with database_errors(config), database_lock(config.database):
        yield


def highlighted(snippet: str) -> Text:
    """A snippet with its ⟦marked⟧ words in bold yellow, for the terminal."""
    out = Text()
    for i, part in enumerate(re.split(f"[{HIGHLIGHT_OPEN}{HIGHLIGHT_CLOSE}]", snippet)):
        out.append(part, style="bold yellow" if i % 2 else "")
    return out


def escape(text: str) -> str:
    return rich_escape(text)
