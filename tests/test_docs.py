"""Every setting, rule key, entity key and query field is documented where operators look, and
every test docs/security.md cites as proof exists."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.config import FEED_SETTINGS, SETTINGS
from monitor.rules.document import ALL_FIELDS
from monitor.rules.files import ENTITY_KEYS, RULE_KEYS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
RULES_DOC = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("key", [s.key for s in SETTINGS])
def test_every_setting_is_in_the_readme(key: str) -> None:
    assert f"| `{key}` |" in README


@pytest.mark.parametrize("key", [s.key for s in FEED_SETTINGS])
def test_every_feed_key_is_in_the_readme(key: str) -> None:
    assert f"| `{key}` |" in README


@pytest.mark.parametrize("key", sorted(RULE_KEYS))
def test_every_rule_key_is_documented(key: str) -> None:
    assert f"| `{key}` |" in RULES_DOC


@pytest.mark.parametrize("key", sorted(ENTITY_KEYS))
def test_every_entity_key_is_documented(key: str) -> None:
    assert f"| `{key}` |" in RULES_DOC


@pytest.mark.parametrize("field", [*ALL_FIELDS, "text", "lang"])
def test_every_query_field_is_documented(field: str) -> None:
    assert f"`{field}:" in RULES_DOC


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README


SECURITY_DOC = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
PROOFS = sorted(set(re.findall(r"`(tests/\w+\.py)::(\w+)`", SECURITY_DOC)))


def test_security_md_names_its_proofs() -> None:
    assert len(PROOFS) > 40


@pytest.mark.parametrize(("path", "name"), PROOFS)
def test_every_test_security_md_cites_exists(path: str, name: str) -> None:
    """docs/security.md says which test proves each defence; a renamed test must not leave the
    claim unproven."""
    assert f"\ndef {name}(" in (REPO / path).read_text(encoding="utf-8"), f"{path}::{name}"


DATABASE_DOC = (REPO / "docs" / "database.md").read_text(encoding="utf-8")
QUERIES = re.findall(r"```sql\n(.*?)```", DATABASE_DOC, re.S)


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    """The database of one `vigie once` over the bundled config, samples and rules."""
    folder = tmp_path_factory.mktemp("bundled")
    (folder / "config.toml").write_text((REPO / "config.toml").read_text())
    (folder / "samples").symlink_to(REPO / "samples")
    (folder / "rules").symlink_to(REPO / "rules")
    result = CliRunner().invoke(main, ["once", "--config", str(folder / "config.toml")])
    assert result.exit_code == 0, result.output
    return sqlite3.connect(folder / "data" / "vigie.db")


def test_database_md_describes_every_table_and_column(polled: sqlite3.Connection) -> None:
    tables = [
        name
        for (name,) in polled.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith(("sqlite_", "articles_fts", "articles_stems_"))
    ]
    for table in tables:
        assert f"`{table}`" in DATABASE_DOC, table
        for (column,) in polled.execute(f"SELECT name FROM pragma_table_info('{table}')"):
            assert f"`{column}`" in DATABASE_DOC, f"{table}.{column}"


@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
def test_database_md_queries_run_and_answer(polled: sqlite3.Connection, query: str) -> None:
    rows = polled.execute(query).fetchall()
    assert rows, query  # the samples have matches, mentions, stories and a digest


def test_database_md_has_its_queries() -> None:
    assert len(QUERIES) >= 5


def test_database_md_describes_every_column_and_key_of_the_export(
    polled: sqlite3.Connection,
) -> None:
    """A researcher's review: nothing said what the export's columns and keys meant, that a
    CSV row is a match and not an article, or in which time zone its times are."""
    [(_, _, path)] = polled.execute("PRAGMA database_list").fetchall()
    config = Path(path).parent.parent / "config.toml"
    export = ["articles", "export", "--since", "0", "--config", str(config)]
    runner = CliRunner()
    lines = runner.invoke(main, export).stdout.splitlines()
    header = runner.invoke(main, [*export, "--format", "csv"]).stdout.splitlines()[0]
    assert "## Exporting what matched" in DATABASE_DOC
    section = DATABASE_DOC.split("## Exporting what matched", 1)[1].split("\n## ", 1)[0]
    articles = [json.loads(line) for line in lines]
    keys = {key for a in articles for key in a}
    keys |= {key for a in articles for m in a["matches"] for key in m}
    keys |= {key for a in articles for m in a["matches"] for e in m["evidence"] for key in e}
    assert articles and "evidence_revision" in keys
    for name in sorted(keys | set(header.split(","))):
        assert f"`{name}`" in section, name


def test_database_md_describes_every_column_and_key_of_the_story_export(
    polled: sqlite3.Connection,
) -> None:
    """`articles export --stories` writes other keys than the article export: each is said."""
    [(_, _, path)] = polled.execute("PRAGMA database_list").fetchall()
    config = Path(path).parent.parent / "config.toml"
    export = ["articles", "export", "--stories", "--since", "0", "--config", str(config)]
    runner = CliRunner()
    stories = [json.loads(line) for line in runner.invoke(main, export).stdout.splitlines()]
    header = runner.invoke(main, [*export, "--format", "csv"]).stdout.splitlines()[0]
    section = DATABASE_DOC.split("### Stories: `--stories`", 1)[1].split("\n## ", 1)[0]
    assert stories and set(header.split(",")) == {key for s in stories for key in s}
    for name in header.split(","):
        assert f"`{name}`" in section, name


def test_rules_md_shows_what_rules_test_prints_of_a_seed() -> None:
    """docs/rules.md's `rules test --file` of a seed article gave a score and snippets the
    command no longer printed once overlapping words came to count once. Its lines, abridged
    with a trailing …, are what the command prints."""
    block = re.search(
        r"```console\n\$ vigie rules test --file \.\./(\S+)\n(.*?)```", RULES_DOC, re.S
    )
    assert block, "the rules test --file example"
    seed = REPO.parent / block.group(1)
    if not seed.is_file():
        pytest.skip(f"{seed} is not beside the repository")
    config = str(REPO / "config.toml")
    result = CliRunner().invoke(main, ["rules", "test", "--file", str(seed), "--config", config])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())
    for line in block.group(2).splitlines():
        shown = " ".join(line.removesuffix("…").split())
        if shown:
            assert shown in printed, line
