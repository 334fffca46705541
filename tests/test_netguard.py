"""The network guard (SSRF): with allow_private = false, no fetch reaches a non-public address.

Every path that opens a connection is tried: a feed, an article page for full text, a webhook
POST, and every redirect hop. Loopback is the only address a test can really reach, so it is
reached in every spelling (127.0.0.1, [::1], [::ffff:127.0.0.1], 2130706433, 127.1, 0.0.0.0),
from an allowed host name ("localhost" in allow_hosts) redirecting to it, and from names that a
fake resolver points at it (DNS rebinding): the guard judges the address actually connected to.
Addresses a test cannot reach (169.254.169.254, 10.0.0.1, ...) are refused before any packet
is sent. The address classifier is checked exhaustively against the IANA registries.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, LoopbackServer, fetch_config
from delivery_support import SECRET
from hypothesis import given
from hypothesis import strategies as st
from identity_support import Item, Service, rss

from monitor.cli import main
from monitor.deliver.webhook import post
from monitor.fetch import fetch_feed, fetch_page, make_session
from monitor.netguard import AddressPolicy, is_public_address, known_refusal
from monitor.records import Feed, FetchResult

RSS = (SAMPLES / "coastal-herald.rss").read_bytes()
REFUSED = "refused to connect to non-public address "
ALLOW = " (fetch.allow_hosts or fetch.allow_private let it through)"  # named for operators
GUARDED = {"allow_private": False}

# Not globally reachable, from the IANA IPv4 and IPv6 special-purpose address registries.
V4_NOT_PUBLIC = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]
V6_NOT_PUBLIC = [
    ipaddress.ip_network(n)
    for n in (
        "::/8",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
]
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def expected_public(address: str) -> bool:
    """The reference the guard is held to: embedded IPv4 addresses judged as IPv4."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour:
            ip = ip.sixtofour
    networks = V4_NOT_PUBLIC if ip.version == 4 else V6_NOT_PUBLIC
    if ip.version == 6 and ip not in ipaddress.ip_network("2000::/3"):
        return False  # outside global unicast: unassigned space
    return not any(ip in network for network in networks)


def wrapped(v4: ipaddress.IPv4Address) -> list[str]:
    """The IPv6 spellings that carry an IPv4 address: mapped, NAT64 and 6to4."""
    value = int(v4)
    return [
        f"::ffff:{v4}",
        str(ipaddress.IPv6Address(int(NAT64.network_address) | value)),
        str(ipaddress.IPv6Address((0x2002 << 112) | (value << 80))),
    ]


# The classifier ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local: cloud metadata"),
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("192.0.0.8", "IETF protocol assignment"),
        ("198.18.0.1", "benchmarking"),
        ("::1", "IPv6 loopback"),
        ("::", "IPv6 unspecified"),
        ("fe80::1%eth0", "IPv6 link-local with a zone"),
        ("fc00::1", "unique-local"),
        ("fd00:ec2::254", "unique-local: AWS metadata over IPv6"),
        ("fec0::1", "deprecated site-local"),
        ("ff02::1", "IPv6 multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::127.0.0.1", "IPv4-compatible loopback"),
        ("64:ff9b::7f00:1", "NAT64 loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 metadata"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("2002:7f00:1::", "6to4 of loopback"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    assert is_public_address(address) is False, why


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "100.128.0.1",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address) is True


def test_every_edge_of_every_special_range_is_classified_like_the_registry() -> None:
    """Each range's first and last address and its two neighbours outside it, in IPv4 and in
    each IPv6 spelling that carries an IPv4 address."""
    checked = 0
    for network in V4_NOT_PUBLIC + V6_NOT_PUBLIC:
        first, last = int(network.network_address), int(network.broadcast_address)
        top = 2**network.max_prefixlen - 1
        for value in {max(first - 1, 0), first, last, min(last + 1, top)}:
            ip = ipaddress.ip_address(value) if network.version == 4 else None
            address = str(ip or ipaddress.IPv6Address(value))
            spellings = [address] + (wrapped(ip) if ip else [])
            for spelling in spellings:
                assert is_public_address(spelling) is expected_public(spelling), spelling
                checked += 1
    assert checked > 150


@given(st.integers(0, 2**32 - 1))
def test_any_ipv4_address_in_any_spelling_is_classified_like_the_registry(value: int) -> None:
    v4 = ipaddress.IPv4Address(value)
    verdict = expected_public(str(v4))
    assert is_public_address(str(v4)) is verdict
    for spelling in wrapped(v4):
        assert is_public_address(spelling) is verdict, spelling


@given(st.integers(0, 2**128 - 1))
def test_any_ipv6_address_is_classified_like_the_registry(value: int) -> None:
    address = str(ipaddress.IPv6Address(value))
    assert is_public_address(address) is expected_public(address)


def test_allow_hosts_opts_names_and_networks_in() -> None:
    policy = AddressPolicy(False, ["Feeds.Intranet", "10.0.0.0/8", "fd00::/8"])
    assert policy.permits("feeds.intranet", "10.9.9.9")  # by name, case-insensitive
    assert policy.permits("anything", "10.1.2.3")  # by network
    assert policy.permits("anything", "fd00::5")
    assert not policy.permits("anything", "192.168.1.1")
    assert not policy.permits("other.intranet", "127.0.0.1")
    assert AddressPolicy(True).permits("anything", "127.0.0.1")
    assert AddressPolicy(False).permits("news.example", "8.8.8.8")


# Real connections ----------------------------------------------------------------------------


@pytest.fixture
def resolve(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A fake DNS: names put in the returned dict resolve to the address given, as an attacker's
    DNS server (rebinding) would make them; other names resolve as usual."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002, ANN001, ANN202
        name = host.decode() if isinstance(host, bytes) else host
        if name not in names:
            return real(host, port, family, type, proto, flags)
        address = names[name]
        if ":" in address:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port), 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield names


def fetch(url: str, **config: object) -> FetchResult:
    cfg = fetch_config(**config)
    return fetch_feed(make_session(cfg), Feed(id=1, url=url), cfg)


def loopback_spellings(server: LoopbackServer, path: str) -> dict[str, str]:
    """URLs that reach the IPv4 loopback server, and the address the guard reports for each."""
    port = server.port
    return {
        f"http://127.0.0.1:{port}{path}": "127.0.0.1",
        f"http://[::ffff:127.0.0.1]:{port}{path}": "::ffff:127.0.0.1",
        f"http://2130706433:{port}{path}": "127.0.0.1",  # a decimal integer
        f"http://0x7f.0.0.1:{port}{path}": "127.0.0.1",  # hexadecimal
        f"http://127.1:{port}{path}": "127.0.0.1",  # the short form
        f"http://0.0.0.0:{port}{path}": "0.0.0.0",  # reaches this host
        f"http://user@127.0.0.1:{port}{path}": "127.0.0.1",
    }


def test_feeds_at_loopback_in_any_spelling_are_refused(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS)
    for url, address in loopback_spellings(server, "/feed.xml").items():
        result = fetch(url, **GUARDED)
        assert result.error == REFUSED + address + ALLOW, url
        assert result.body is None
    assert server.requests_to("/feed.xml") == []
    assert fetch(server.url("/feed.xml")).ok  # the same server, allow_private = true


def test_ipv6_loopback_is_refused_unless_its_network_is_allowed(server6: LoopbackServer) -> None:
    server6.route("/feed.xml", RSS)
    assert fetch(server6.url("/feed.xml"), **GUARDED).error == REFUSED + "::1" + ALLOW
    assert server6.requests_to("/feed.xml") == []
    allowed = fetch(server6.url("/feed.xml"), allow_private=False, allow_hosts=("::1/128",))
    assert allowed.ok and allowed.body == RSS


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.64.0.1/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://[::]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_unreachable_non_public_addresses_are_refused_before_connecting(url: str) -> None:
    # A connection attempt to these would time out here; the guard answers at once instead.
    result = fetch(url, connect_timeout=30.0, deadline=30.0, **GUARDED)
    assert result.error is not None and result.error.startswith(REFUSED), result.error


def test_a_name_resolving_to_loopback_is_refused_dns_rebinding(
    server: LoopbackServer, resolve: dict[str, str]
) -> None:
    """The guard judges the address connected to, whatever the name looked like."""
    server.route("/feed.xml", RSS)
    resolve["news.example"] = "127.0.0.1"
    resolve["mapped.example"] = "::ffff:127.0.0.1"  # an IPv6 socket to the IPv4 server
    for name, address in (("news.example", "127.0.0.1"), ("mapped.example", "::ffff:127.0.0.1")):
        result = fetch(f"http://{name}:{server.port}/feed.xml", **GUARDED)
        assert result.error == REFUSED + address + ALLOW
    assert server.requests_to("/feed.xml") == []
    opted_in = fetch(
        f"http://news.example:{server.port}/feed.xml",
        allow_private=False,
        allow_hosts=("news.example",),
    )
    assert opted_in.ok and opted_in.body == RSS


def test_every_redirect_hop_is_checked(server: LoopbackServer, resolve: dict[str, str]) -> None:
    """An allowed host ("localhost") redirects to loopback in other spellings and to metadata:
    each hop is refused, and its target never sees a request."""
    server.route("/feed.xml", RSS)
    resolve["rebound.example"] = "127.0.0.1"
    targets = {
        **loopback_spellings(server, "/feed.xml"),
        f"http://[::1]:{server.port}/feed.xml": "::1",
        f"http://rebound.example:{server.port}/feed.xml": "127.0.0.1",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/": "::ffff:a9fe:a9fe",
    }
    config = {"allow_private": False, "allow_hosts": ("localhost",)}
    start = f"http://localhost:{server.port}"
    assert fetch(f"{start}/feed.xml", **config).body == RSS  # the allowed host itself
    for i, (target, address) in enumerate(targets.items()):
        server.redirect(f"/hop{i}", target, status=302)
        result = fetch(f"{start}/hop{i}", **config)
        assert result.error == REFUSED + address + ALLOW, target
    assert len(server.requests_to("/feed.xml")) == 1  # only the direct, allowed fetch


@pytest.mark.parametrize(
    "target",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_GET",
        "ftp://example.org/feed.xml",
        "data:application/rss+xml,<rss/>",
        "javascript:alert(1)",
        "dict://127.0.0.1:11211/stats",
    ],
)
def test_redirects_to_other_schemes_are_refused(server: LoopbackServer, target: str) -> None:
    server.route("/moved", status=301, headers={"Location": target})
    result = fetch(server.url("/moved"))  # even with allow_private = true
    scheme = target.split(":", 1)[0]
    assert result.error == f"refused to fetch a {scheme}: URL"
    assert result.body is None and result.permanent_url is None


def test_article_pages_go_through_the_guard_and_its_redirect_checks(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A full_text feed on an allowed host whose items point at loopback, directly and by a
    redirect from the allowed host: neither page is fetched; the feed's text is kept."""
    page = b"<html><body><article><p>" + b"Secret intranet page. " * 50 + b"</p></article>"
    server.route("/secret", page, content_type="text/html")
    server.redirect("/bounce", server.url("/secret"), status=302)
    local = f"http://localhost:{server.port}"
    items = [
        Item("direct", "Direct", "Teaser.", server.url("/secret")),
        Item("bounce", "Bounce", "Teaser.", f"{local}/bounce"),
        Item("mapped", "Mapped", "Teaser.", f"http://[::ffff:127.0.0.1]:{server.port}/secret"),
        Item("local-file", "File", "Teaser.", "file:///etc/passwd"),
    ]
    server.route("/feed.xml", rss(items))
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\ndatabase = "vigie.db"\n'
        '[fetch]\nallow_private = false\nallow_hosts = ["localhost"]\ndeadline = "2s"\n'
        f'[[feeds]]\nurl = "{local}/feed.xml"\nfull_text = true\n',
        encoding="utf-8",
    )
    svc = Service(config)
    try:
        svc.poll()
        errors = {r["guid"]: r["full_text_error"] for r in svc.rows("SELECT * FROM articles")}
    finally:
        svc.close()
    assert errors == {
        "direct": REFUSED + "127.0.0.1" + ALLOW,
        "bounce": REFUSED + "127.0.0.1" + ALLOW,
        "mapped": REFUSED + "::ffff:127.0.0.1" + ALLOW,
        "local-file": "the item has no web page address",
    }
    assert server.requests_to("/secret") == []
    assert fetch_page(make_session(fetch_config()), "file:///etc/passwd", fetch_config()).error == (
        "refused to fetch a file: URL"
    )


def test_webhook_posts_go_through_the_guard(
    server: LoopbackServer, resolve: dict[str, str]
) -> None:
    resolve["hooks.example"] = "127.0.0.1"
    port = server.port
    session = make_session(fetch_config(**GUARDED))
    now = datetime.now(UTC)
    targets = {
        f"http://127.0.0.1:{port}/hook": "127.0.0.1",
        f"http://[::ffff:127.0.0.1]:{port}/hook": "::ffff:127.0.0.1",
        f"http://hooks.example:{port}/hook": "127.0.0.1",
        f"http://2130706433:{port}/hook": "127.0.0.1",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254",
        "http://[fd00::1]/hook": "fd00::1",
    }
    for url, address in targets.items():
        attempt = post(session, url, "{}", "msg_1_x", SECRET, 5.0, now)
        assert (attempt.ok, attempt.status, attempt.error) == (
            False,
            0,
            REFUSED + address + ALLOW,
        ), url
    assert server.requests == []


def test_opml_import_takes_http_feeds_only(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """Local files are read only where config.toml (or the operator's own `feeds add`) lists
    them: a subscription list from elsewhere cannot point Vigie at /etc/passwd."""
    opml = tmp_path / "subscriptions.opml"
    opml.write_text(
        "<opml version='2.0'><body>"
        "<outline text='News' xmlUrl='https://news.example/rss'/>"
        "<outline text='Passwords' xmlUrl='file:///etc/passwd'/>"
        "<outline text='Gopher' xmlUrl='gopher://127.0.0.1:70/'/>"
        "<outline text='Relative' xmlUrl='secrets/feed.xml'/>"
        "</body></opml>",
        encoding="utf-8",
    )
    config = write_config([])
    result = CliRunner().invoke(main, ["feeds", "import", str(opml), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Imported 1 new feeds" in result.output
    assert "Skipped file:///etc/passwd: not an http(s) URL" in result.output
    listed = CliRunner().invoke(main, ["feeds", "list", "--json", "--config", str(config)])
    assert [row["url"] for row in json.loads(listed.stdout)] == ["https://news.example/rss"]


@pytest.mark.parametrize(
    ("url", "policy", "address"),
    [
        ("http://127.0.0.1:8080/x.rss", AddressPolicy(), "127.0.0.1"),
        ("https://[::ffff:169.254.169.254]/x", AddressPolicy(), "::ffff:169.254.169.254"),
        ("http://localhost/x.rss", AddressPolicy(), "127.0.0.1"),
        # Decimal, hexadecimal and short spellings, as the resolver reads them when polled.
        ("http://2130706433:8765/x.rss", AddressPolicy(), "127.0.0.1"),
        ("http://0x7f.1/x.rss", AddressPolicy(), "127.0.0.1"),
        ("http://169.254.43518/x.rss", AddressPolicy(), "169.254.169.254"),
        ("http://127.0.0.1/x.rss", AddressPolicy(allow_private=True), None),
        ("http://127.0.0.1/x.rss", AddressPolicy(allow_hosts=["127.0.0.0/8"]), None),
        ("http://localhost/x.rss", AddressPolicy(allow_hosts=["localhost"]), None),
        ("http://93.184.215.14/x.rss", AddressPolicy(), None),
        ("http://intranet.example/x.rss", AddressPolicy(), None),  # told only when polled
        ("file:///srv/feeds/x.rss", AddressPolicy(), None),
    ],
)
def test_a_refusal_known_without_a_lookup_is_the_guards_own(
    url: str, policy: AddressPolicy, address: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `feeds add` warns of: an address written in the URL, or localhost, that the
    guard refuses, with the message polling gives; a name is never looked up for it."""
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail(f"looked up {a}"))
    expected = None if address is None else f"{REFUSED}{address}{ALLOW}"
    assert known_refusal(url, policy) == expected
