"""Delivery settings in config.toml: typed values, secrets from the environment, one-line errors
naming file, key path and expectation, and every setting documented in docs/delivery.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO
from delivery_support import SECRET, SECRET_ENV

from monitor.config import SETTINGS, load_config
from monitor.config_delivery import SUBSCRIBER_SETTINGS, WEBHOOK_SETTINGS, parse_schedule
from monitor.errors import ConfigError

DOC = (REPO / "docs" / "delivery.md").read_text(encoding="utf-8")


def load(tmp_path: Path, text: str):  # noqa: ANN201
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    where = re.match(rf"{re.escape(str(tmp_path / 'config.toml'))}:[0-9]+: ", message)
    assert where, message  # every such error has a key, found at its line
    return message[where.end() :]


SUBSCRIBER = '[[subscribers]]\nname = "desk"\nemail = "desk@example.org"\ntags = ["calais"]\n'
WEBHOOK = (
    '[[webhooks]]\nname = "bot"\nurl = "https://bot.example.org/hook"\n'
    f'secret_env = "{SECRET_ENV}"\ntags = ["calais"]\n'
)


def test_bundled_config_has_one_subscriber_following_the_four_tags_and_no_smtp() -> None:
    delivery = load_config(REPO / "config.toml").delivery
    assert delivery.smtp is None
    assert delivery.outbox == REPO / "outbox"
    [subscriber] = delivery.subscribers
    assert set(subscriber.tags) == {"migrants", "calais", "police-violence", "prosecutions"}
    assert subscriber.cron == "0 8 * * *" and subscriber.timezone == "Europe/Paris"
    assert delivery.webhooks == ()


def test_defaults_without_delivery_sections(tmp_path: Path) -> None:
    delivery = load(tmp_path, "").delivery
    assert delivery.smtp is None and delivery.subscribers == () and delivery.tick == 5


def test_smtp_settings_and_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIE_TEST_SMTP_PASSWORD", "s3cret")
    smtp = load(
        tmp_path,
        '[smtp]\nhost = "mail.example.org"\nsecurity = "tls"\nusername = "vigie"\n'
        'password_env = "VIGIE_TEST_SMTP_PASSWORD"\nfrom = "Vigie <vigie@example.org>"\n',
    ).delivery.smtp
    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.security, smtp.password) == (
        "mail.example.org",
        465,  # the implicit-TLS port, as no port was given
        "tls",
        "s3cret",
    )
    assert "s3cret" not in repr(smtp)


def test_webhook_secret_comes_from_the_environment_and_never_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    [hook] = load(tmp_path, WEBHOOK).delivery.webhooks
    assert hook.secret == SECRET and hook.mode == "per-match" and hook.timeout == 15
    assert SECRET not in repr(hook)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SUBSCRIBER + 'schedule = "daily 8h"',
            'subscribers[0].schedule: expected immediate, hourly, "daily 08:00"',
        ),
        (
            SUBSCRIBER + 'schedule = "61 8 * * *"',
            'subscribers[0].schedule: cron minute: expected 0-59, not "61", got "61 8 * * *"',
        ),
        (
            SUBSCRIBER + 'schedule = "weekly someday 08:00"',
            "subscribers[0].schedule: expected a day like mon",
        ),
        (SUBSCRIBER + 'timezone = "Mars/Olympus"', "subscribers[0].timezone: expected a time zone"),
        (SUBSCRIBER + 'min_priority = "high"', "subscribers[0].min_priority: expected one of"),
        (
            SUBSCRIBER + 'schedule = "immediate"\nsend_empty = true',
            "subscribers[0].send_empty: expected false for an immediate schedule",
        ),
        (SUBSCRIBER + "sendempty = true", "subscribers[0].sendempty: unknown setting (known: "),
        (SUBSCRIBER.replace('tags = ["calais"]\n', ""), "subscribers[0].tags: follows nothing"),
        (
            SUBSCRIBER.replace('email = "desk@example.org"\n', ""),
            "subscribers[0].email: is required",
        ),
        (SUBSCRIBER.replace("desk@example.org", "desk"), "subscribers[0].email: expected an email"),
        (
            SUBSCRIBER.replace("desk@example.org", "news..desk@example.org"),
            "subscribers[0].email: expected an email",  # a To header could not hold it
        ),
        (SUBSCRIBER.replace('"desk"', '"news desk"'), "subscribers[0].name: expected letters"),
        (SUBSCRIBER.replace('"desk"', '"desk\\n"'), "subscribers[0].name: expected letters"),
        (SUBSCRIBER + SUBSCRIBER, 'subscribers[1].name: is used twice, got "desk"'),
        (
            '[smtp]\nsecurity = "ssl"\n',
            'smtp.security: expected one of starttls, tls, none, got "ssl"',
        ),
        ('[delivery]\npublic_base_url = "http://x.example"\n', "expected an https:// URL"),
        (
            '[delivery]\npublic_base_url = "https://x.example/a,<https://evil.example/>"\n',
            "delivery.public_base_url: expected a URL without spaces",
        ),
        (
            '[delivery]\npublic_base_url = "https://x.example/=?utf-8?q?=0D=0ABcc:_e@x?="\n',
            "delivery.public_base_url: expected a URL without spaces",
        ),
        ('[delivery]\ntick = "soon"\n', 'delivery.tick: expected a duration like "15m"'),
        (WEBHOOK + 'mode = "daily"', "webhooks[0].mode: expected one of per-match, batched"),
        (WEBHOOK.replace("https://", "ftp://"), "webhooks[0].url: expected an http(s) URL"),
        ("subscribers = 3\n", "subscribers: expected an array of tables written [[subscribers]]"),
    ],
)
def test_errors_name_the_key_and_the_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.delenv("VIGIE_NOT_SET", raising=False)
    assert expected in error(tmp_path, text)


@pytest.mark.parametrize(
    "value", ["not-a-secret", "whsec_c2hvcnQ=", "whsec_!!!!", f"{SECRET} whsec_c2hvcnQ="]
)
def test_malformed_webhook_secret_is_refused_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(SECRET_ENV, value)
    message = error(tmp_path, WEBHOOK)
    assert message.startswith("webhooks[0].secret_env: ")
    assert not value or value not in message


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ('[smtp]\nhost = "m"\npassword_env = "VIGIE_NOT_SET"\n', "smtp.password_env", 3),
        (WEBHOOK.replace(SECRET_ENV, "VIGIE_NOT_SET"), "webhooks[0].secret_env", 4),
    ],
)
def test_an_unset_secret_is_an_error_only_for_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str, line: int
) -> None:
    """The file loads (for `rules check`, `feeds list`...); commands that send call
    require_secrets, which names the key and the variable."""
    monkeypatch.delenv("VIGIE_NOT_SET", raising=False)
    config = load(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.require_secrets()
    assert str(caught.value) == (
        f"{tmp_path / 'config.toml'}:{line}: {key}: environment variable VIGIE_NOT_SET is not set"
        " or empty"
    )
    monkeypatch.setenv("VIGIE_NOT_SET", SECRET)
    load(tmp_path, text).require_secrets()


@pytest.mark.parametrize(
    ("written", "cron"),
    [
        ("immediate", None),
        ("hourly", "0 * * * *"),
        ("daily 08:00", "0 8 * * *"),
        ("Daily 7:05", "5 7 * * *"),
        ("weekly mon 08:00", "0 8 * * mon"),
        ("weekly Friday 17:30", "30 17 * * fri"),
        ("*/15 6-22 * * 1-5", "*/15 6-22 * * 1-5"),
        ("0 8 1 jan,jul *", "0 8 1 jan,jul *"),
    ],
)
def test_schedules_become_cron_expressions(written: str, cron: str | None) -> None:
    assert parse_schedule(written) == cron


@pytest.mark.parametrize(
    "written", ["0 8 * *", "0 25 * * *", "0 8 * * 8", "0 8 * * 5-1", "*/0 * * * *"]
)
def test_bad_cron_expressions_are_refused(written: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(written)


def test_every_delivery_setting_is_documented() -> None:
    sections = ("smtp.", "delivery.")
    keys = [s.key for s in SETTINGS if s.key.startswith(sections)]
    assert len(keys) == 12
    for key in keys:
        assert f"`{key}`" in DOC, key
    for setting in SUBSCRIBER_SETTINGS + WEBHOOK_SETTINGS:
        assert f"| `{setting.key}` |" in DOC, setting.key


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:8025", ("127.0.0.1", 8025)), ("[::1]:80", ("::1", 80)), ("", None)],
)
def test_listen_is_a_host_and_port(tmp_path: Path, value: str, expected: object) -> None:
    assert load(tmp_path, f'[delivery]\nlisten = "{value}"\n').delivery.listen == expected


@pytest.mark.parametrize("value", ["8025", "localhost", "127.0.0.1:0", "127.0.0.1:99999"])
def test_listen_without_a_usable_port_is_an_error(tmp_path: Path, value: str) -> None:
    message = error(tmp_path, f'[delivery]\nlisten = "{value}"\n')
    assert message.startswith('delivery.listen: expected a host and port, like "127.0.0.1:8070"')
