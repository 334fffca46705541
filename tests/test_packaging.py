"""What `pip install vigie` ships: every package of monitor/ must be listed in pyproject.toml.
An editable install (what `make test` uses) finds unlisted packages anyway, so only this test
notices one missing from a real install."""

from __future__ import annotations

import tomllib

from conftest import REPO


def test_every_monitor_package_is_shipped() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "monitor").rglob("__init__.py")
    }
    assert on_disk == listed
