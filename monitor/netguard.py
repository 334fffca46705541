"""The network guard: refuse connections to addresses that are not public.

The check runs on the address a socket actually connected to, after DNS, inside urllib3's
connection, so a host name that resolves to a public address at one moment and 127.0.0.1 the next
(DNS rebinding) cannot slip past, and every redirect hop is checked the same way.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from urllib3.util.connection import allowed_gai_family

from .errors import BlockedAddressError

log = logging.getLogger(__name__)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")  # the rest of IPv6 is not assigned
# Not globally reachable (IANA special-purpose registries, RFC 6890 and successors), listed here
# as well as checked with `is_global`, whose list differs between Python releases.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"; connecting to 0.0.0.0 reaches the host itself
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: cloud metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/8",  # unspecified, loopback, IPv4-compatible and IPv4-translated forms
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo included
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",  # SRv6 segment identifiers
        "fc00::/7",  # unique-local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; IPv4-mapped, NAT64 and 6to4 forms are
    judged by the IPv4 address they carry."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    if any(ip in network for network in _NOT_PUBLIC):
        return False
    if ip.version == 6 and ip not in _GLOBAL_UNICAST_V6:
        return False
    return ip.is_global


class AddressPolicy:
    """Which addresses a fetch may connect to: public ones, plus what the operator allowed."""

    def __init__(self, allow_private: bool = False, allow_hosts: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allow_hosts:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower())

    def permits(self, host: str, address: str) -> bool:
        if self.allow_private or host.lower() in self.hosts:
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip in network for network in self.networks):
            return True
        return is_public_address(address)


_watched = threading.local()


class Watchdog:
    """One thread that calls each scheduled function when its time comes, for every deadline of
    the process: a thread started per fetch (threading.Timer) cost more CPU than a 304 answer's
    whole handling. Functions run on the watchdog's thread, one after the other."""

    def __init__(self) -> None:
        self._due: list[list] = []  # heap of [when, sequence, function or None when cancelled]
        self._live = 0
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, seconds: float, function: Callable[[], None]) -> list:
        """Call `function` in `seconds`, unless cancelled; returns what `cancel` takes."""
        entry = [time.monotonic() + seconds, next(self._order), function]
        with self._wake:
            heapq.heappush(self._due, entry)
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
            if self._due[0] is entry:
                self._wake.notify()
        return entry

    def cancel(self, entry: list) -> None:
        with self._wake:
            if entry[2] is not None:
                entry[2] = None
                self._live -= 1
                if len(self._due) > 2 * self._live + 64:  # drop what was cancelled
                    self._due = [e for e in self._due if e[2] is not None]
                    heapq.heapify(self._due)

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._due and self._due[0][2] is None:
                    heapq.heappop(self._due)
                if not self._due:
                    self._wake.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                entry = heapq.heappop(self._due)
                function, entry[2] = entry[2], None
                self._live -= 1
                self._wake.release()
                try:
                    function()
                except Exception:  # one failing function must not stop every later deadline
                    log.exception("deadline function failed")
                finally:
                    self._wake.acquire()


_WATCHDOG = Watchdog()


class SocketWatch:
    """Collects the sockets one thread's requests use, so a watchdog can cut them all at a
    deadline: per-read timeouts alone let a server that trickles bytes (in headers or body)
    hold a fetch open for ever. With `limit` (seconds), the process's watchdog calls `expire`
    when that much time has passed inside the `with` block."""

    def __init__(self, limit: float | None = None) -> None:
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.expired = False
        self.limit = limit
        self.done = False  # the block has ended
        self._alarm: list | None = None

    def __enter__(self) -> SocketWatch:
        with self.lock:  # a watch entered again watches afresh
            self.done = self.expired = False
            self.sockets.clear()
        _watched.current = self
        if self.limit is not None:
            self._alarm = _WATCHDOG.schedule(self.limit, self.expire)
        return self

    def __exit__(self, *exc: object) -> None:
        _watched.current = None
        if self._alarm is not None:
            _WATCHDOG.cancel(self._alarm)
        # A deadline already taken off the watchdog's heap as the fetch ended cannot be
        # cancelled: its expire() must not shut down the sockets this fetch has handed back to
        # the connection pool, which another fetch of the host may be using.
        with self.lock:
            self.done = True
            self.sockets.clear()

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        """Shut down every socket seen so far, and any opened later in this fetch."""
        with self.lock:
            if self.done:
                return
            self.expired = True
            for sock in self.sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    watch = getattr(_watched, "current", None)
    if watch is not None:
        watch.add(sock)


def _unwatch(sock: socket.socket | None) -> None:
    """A connection handed back to the pool (a redirect's, read to its end) is no longer this
    fetch's: its deadline must not cut it under the next fetch of the host that takes it (a
    code review: "IncompleteRead" on a fetch whose own deadline was far)."""
    watch = getattr(_watched, "current", None)
    if watch is not None and sock is not None:
        with watch.lock:  # each time it was seen: when it was opened, at each answer
            watch.sockets[:] = [seen for seen in watch.sockets if seen is not sock]


def _ip_literal(host: str) -> str | None:
    """The host as written when it is an IP address, else None (a name, resolved later)."""
    address = host.strip("[]")
    try:
        ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    return address


def _refused(address: str) -> str:
    """The error an operator reads, with the settings that let the address through."""
    return (
        f"refused to connect to non-public address {address}"
        " (fetch.allow_hosts or fetch.allow_private let it through)"
    )


def known_refusal(url: str, policy: AddressPolicy) -> str | None:
    """The guard's own refusal of `url` (its message, with the settings that let it through),
    when it is known without a lookup: the host is an IP address, or localhost (the machine
    itself), that `policy` does not permit. None when permitted, for a file:// URL, and for
    any other name: only the address it has when polled tells, and that is checked then.
    `feeds add` says at once what polling would only say at every poll."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return None
    address = (
        _ip_literal(host)
        or _ipv4_shorthand(host)
        or ("127.0.0.1" if host.rstrip(".") == "localhost" else None)
    )
    if address is None or policy.permits(host, address):
        return None
    return _refused(address)


def _ipv4_shorthand(host: str) -> str | None:
    """The IPv4 address a decimal, hexadecimal or short spelling names ("2130706433",
    "0x7f.1", "127.1": what the resolver makes of them when polled), read without a lookup:
    `feeds add` let them through unwarned (a re-test)."""
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _guarded(base: type, policy: AddressPolicy) -> type:
    class GuardedConnection(base):  # type: ignore[misc, valid-type]
        def _new_conn(self):  # noqa: ANN202 - urllib3's own signature
            literal = _ip_literal(self.host)
            if literal is not None and not policy.permits(self.host, literal):
                # An address written in the URL is refused before any packet is sent to it.
                raise BlockedAddressError(f"{self.host}", _refused(literal))
            sock = super()._new_conn() if literal is not None else self._connect_by_name()
            address = sock.getpeername()[0]
            if not policy.permits(self.host, address):
                sock.close()
                raise BlockedAddressError(f"{self.host}", _refused(address))
            _watch(sock)
            return sock

        def getresponse(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            _watch(self.sock)  # a kept-alive connection opened by an earlier fetch
            return super().getresponse(*args, **kwargs)

        def _connect_by_name(self):  # noqa: ANN202
            """The host looked up within the connect timeout, then each of its addresses tried
            in turn, as urllib3 does: its own lookup has no timeout, and a name server that
            never answered held a fetch for the resolver's own timeouts, past the deadline
            (a security review: 20 s under a 5 s deadline)."""
            timeout = self.timeout if isinstance(self.timeout, int | float) else None
            try:
                addresses = look_up(self._dns_host, self.port, timeout)
            except OSError as e:
                raise urllib3.exceptions.NameResolutionError(self.host, self, e) from e
            name, failure = self._dns_host, None
            try:
                for address in addresses:
                    self._dns_host = address  # TLS still checks the certificate for self.host
                    try:
                        return super()._new_conn()
                    except urllib3.exceptions.NewConnectionError as e:  # ConnectTimeoutError too
                        failure = e
            finally:
                self._dns_host = name
            raise failure or urllib3.exceptions.NameResolutionError(
                self.host, self, socket.gaierror("no address")
            )

    return GuardedConnection


def look_up(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses of `host`, in the order the resolver gives them, within `timeout` seconds
    (None: however long the resolver takes). The lookup runs in a thread of its own, left to
    finish alone when it takes too long: getaddrinfo cannot be interrupted."""
    found: list = []
    done = threading.Event()

    def resolve() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM))
        except OSError as e:
            found.append(e)
        finally:
            done.set()

    threading.Thread(target=resolve, name=f"look up {host}", daemon=True).start()
    if not done.wait(timeout):
        raise socket.gaierror(f"the name lookup gave no answer within {timeout:g}s")
    if isinstance(found[0], OSError):
        raise found[0]
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found[0]))


class _HandedBack:
    """For a connection pool: a connection handed back is no longer the fetch's (_unwatch)."""

    def _put_conn(self, conn):  # noqa: ANN001, ANN202 - urllib3's own signature
        _unwatch(getattr(conn, "sock", None))
        return super()._put_conn(conn)  # type: ignore[misc]


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections check the connected peer against an AddressPolicy."""

    def __init__(self, policy: AddressPolicy, **kwargs) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_conn = _guarded(urllib3.connection.HTTPConnection, self.policy)
        https_conn = _guarded(urllib3.connection.HTTPSConnection, self.policy)

        class HTTPPool(_HandedBack, urllib3.connectionpool.HTTPConnectionPool):
            ConnectionCls = http_conn

        class HTTPSPool(_HandedBack, urllib3.connectionpool.HTTPSConnectionPool):
            ConnectionCls = https_conn

        self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


class _HopByHopSession(requests.Session):
    """A session that never follows redirects: callers follow them hop by hop (fetch.py), and
    requests, even with allow_redirects=False, reads a redirect's whole body, decompressed, to
    prepare the next request, so a gzip bomb served with a 302 would fill the memory."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def guarded_session(
    policy: AddressPolicy, user_agent: str, pool_size: int = 10
) -> requests.Session:
    session = _HopByHopSession()
    session.headers["User-Agent"] = user_agent
    session.headers["Accept-Encoding"] = "gzip, deflate"
    session.trust_env = False  # no proxies from the environment: the guard must see the real peer
    adapter = GuardedAdapter(policy, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def send(
    session: requests.Session,
    method: str,
    url: str,
    headers: dict[str, str],
    timeout: float | tuple[float, float],
    body: bytes | None = None,
    cookies: RequestsCookieJar | None = None,
) -> requests.Response:
    """One request, streamed and never redirected, sent by the session's own transport adapter
    with the session's headers. Cookies are only those of `cookies`, where the answer's are
    kept: a fetch passes one jar for its redirects (a server that sets a cookie and redirects
    to check it), never the session's, which lives as long as the service: a hostile feed
    answering with a hundred 60 KB cookies grew it by 6 MB a poll, sent back at every request
    and to other hosts of its domain, webhooks' too. Session.get and .post would also merge
    proxies, hooks, auth and settings from the session and the environment, which a guarded
    session never sets (trust_env is off; callers follow redirects hop by hop), and that
    merging was a third of requests' CPU on a 304: Python 3.11's typing.Protocol checks, once
    per setting. The adapter is the one the session mounts for the URL, so the guard checks
    every connection as before."""
    prepared = requests.PreparedRequest()
    prepared.prepare(
        method=method,
        url=url,
        headers={**session.headers, **headers},
        data=body,
        cookies=cookies,
    )
    response = session.get_adapter(url).send(
        prepared, stream=True, timeout=timeout, verify=session.verify, cert=session.cert
    )
    if cookies is not None:
        extract_cookies_to_jar(cookies, prepared, response.raw)
    return response
