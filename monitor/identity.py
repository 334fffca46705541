"""Article identity: canonical URLs, text fingerprints and story sketches. Pure functions.

Three questions, three tools:

- *Is this the same article?* Its canonical URL (`canonical_url`): scheme and host lower-cased,
  default port, fragment and tracking parameters dropped, one trailing-slash convention; then
  one outlet's www, mobile and AMP addresses of a page folded into one (`fold_editions`). A URL
  that is only a site's home page identifies nothing (`identity_url` returns "").
- *Has it changed?* Its `fingerprint`: a hash of the title and body words, blind to case and
  spacing, so a re-rendered feed is not an update but a new headline or paragraph is.
- *Is it the same story as another outlet's?* Its `sketch`: a 128-value MinHash signature of the
  set of word 3-shingles, whose agreement with another sketch estimates the Jaccard overlap of the
  two texts. `band_keys` cut a signature into LSH bands so that candidates are found by equality
  lookups (monitor/bands.py), then `similarity` verifies them on the whole signature.

The shingles are hashed with vectorised numpy over the UTF-8 bytes (no Python loop per word), and
the MinHash permutations run in rensa's Rust core: together about 75 µs for a 5 KB article (see
bench/identity.py), where datasketch's MinHash over the same shingles takes about 900 µs.

Everything that changes the values a sketch holds is named in `SKETCH_ALGORITHM`; sketches stored
under another name are recomputed rather than compared.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from itertools import accumulate, pairwise
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import rensa

from .config import DEFAULT_TRACKING_PARAMS
from .records import Article, evolve

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")


@dataclass(frozen=True)
class TrackingParams:
    """A compiled tracking-parameter list: exact names and prefixes, lower-cased."""

    names: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, patterns: tuple[str, ...] | list[str]) -> TrackingParams:
        """Compiled once per list: a poll cycle asks for it again for every feed it reads."""
        return _compiled_tracking(tuple(patterns))

    def __contains__(self, name: str) -> bool:
        name = name.lower()
        return name in self.names or name.startswith(self.prefixes)


@lru_cache(maxsize=8)
def _compiled_tracking(patterns: tuple[str, ...]) -> TrackingParams:
    lowered = [p.strip().lower() for p in patterns if p.strip()]
    return TrackingParams(
        names=frozenset(p for p in lowered if not p.endswith("*")),
        prefixes=tuple(p[:-1] for p in lowered if p.endswith("*")),
    )


DEFAULT_TRACKING = TrackingParams.of(DEFAULT_TRACKING_PARAMS)


def canonical_url(url: str, tracking: TrackingParams = DEFAULT_TRACKING) -> str:
    """The normal form of an http(s) URL, or "" when `url` is not one.

    Lower-case scheme and host, no default port, no user info, no fragment, tracking parameters
    removed (the others keep their spelling and are sorted, so their order does not matter),
    upper-case percent escapes, and no trailing slash except for the root path "/"."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _PERCENT.sub(lambda m: m.group(0).upper(), parts.path) or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    kept = _without_tracking(parts.query, tracking).split("&") if parts.query else []
    query = "&".join(sorted(_PERCENT.sub(lambda m: m.group(0).upper(), p) for p in kept))
    return urlunsplit((scheme, netloc, path, query, ""))


def link_url(url: str, tracking: TrackingParams = DEFAULT_TRACKING) -> str:
    """`url` as written, less its tracking parameters: the link subscribers and webhook consumers
    are given (`?utm_source=rss` or franceinfo's `#xtor=RSS-3-[lestitres]` told the outlet that
    a reader came from Vigie's feed, and followed every forward of a digest). Unlike
    `canonical_url`, nothing else changes: the host's `www.`, the path's case and slash, the
    order of the other parameters and a fragment that is not tracking all stay, so the link
    goes where the outlet sent it. A user name and password before the host go too: no article
    needs them, and `http://bank.example@evil.example/` reads as the bank's in a plain-text
    digest. A URL that does not parse is returned as it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    # A browser reads `http://a.example\\@b.example/` as a.example's: left as it is.
    credentials = "@" in parts.netloc and "\\" not in parts.netloc
    if parts.scheme.lower() not in _DEFAULT_PORTS or not (
        parts.query or parts.fragment or credentials
    ):
        return url
    query = _without_tracking(parts.query, tracking)
    fragment = parts.fragment
    if "=" in fragment and not _without_tracking(fragment, tracking):
        fragment = ""  # `#xtor=RSS-3`: only tracking; `#section-2` or `#a=1&xtor=x` stay
    netloc = parts.netloc.rpartition("@")[2] if credentials else parts.netloc
    if query == parts.query and fragment == parts.fragment and not credentials:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=fragment))


def _without_tracking(query: str, tracking: TrackingParams) -> str:
    return "&".join(
        piece
        for piece in query.split("&")
        if piece and unquote(piece.split("=", 1)[0]) not in tracking
    )


def identity_url(url: str, tracking: TrackingParams = DEFAULT_TRACKING) -> str:
    """The canonical URL, with the outlet's editions folded (`fold_editions`), when it can
    identify one article; "" for a site's home page (feeds that link every item to it would
    otherwise collapse into one article) or a non-web URL."""
    canonical = canonical_url(url, tracking)
    if not canonical:
        return ""
    folded = fold_editions(canonical)
    return "" if is_home_page(folded) else folded


def is_home_page(canonical: str) -> bool:
    """Whether a canonical URL is a site's root with no query: it names no one article."""
    parts = urlsplit(canonical)
    return parts.path == "/" and not parts.query


# An outlet serves one page under several addresses: www. or not, a mobile host, an AMP host or
# path. Readers' feeds link whichever edition they were made for, so without folding one page
# became two articles, alerted twice.
_EDITION_LABELS = frozenset({"www", "m", "mobile", "amp"})
# Second-level labels under which countries register names (co.uk, com.au, or.jp): a host label
# is not folded when only such a zone would remain, which is no one's site.
_REGISTRY_LABELS = frozenset(
    {"ac", "co", "com", "edu", "go", "gob", "gov", "mil", "ne", "net", "nic", "or", "org"}
)
_AMP_SUFFIX = re.compile(r"(.+)\.amp(\.[A-Za-z0-9]+)?")


def site_host(host: str) -> str:
    """The host without its leading www., m., mobile. or amp. labels, so long as a site's name
    remains (at least two labels, and not a country's registry zone such as co.uk): m.example
    and www.co.uk stay as they are."""
    labels = host.lower().rstrip(".").split(".")
    while labels[0] in _EDITION_LABELS and len(labels) > 2 and not _registry_zone(labels[1:]):
        labels = labels[1:]
    return ".".join(labels)


def _registry_zone(labels: list[str]) -> bool:
    return len(labels) == 2 and labels[0] in _REGISTRY_LABELS and len(labels[1]) == 2


def fold_editions(canonical: str) -> str:
    """A canonical URL with the marks of an outlet's www, mobile and AMP editions taken out, so
    that every edition of a page has one identity: a leading www., m., mobile. or amp. host
    label (`site_host`), path segments that are exactly `amp` (/amp/news/x, /news/x/amp), a
    final segment's .amp (x.amp, x.amp.html -> x.html) and the query parameters amp, amp=1 and
    outputType=amp. Idempotent; the link shown to readers is not changed by it."""
    parts = urlsplit(canonical)
    netloc = parts.netloc
    if not netloc.startswith("["):  # IPv6 literals have no labels to fold
        host, colon, port = netloc.partition(":")
        netloc = site_host(host) + colon + port
    return urlunsplit(
        (parts.scheme, netloc, _fold_path(parts.path), _fold_query(parts.query), parts.fragment)
    )


def _fold_path(path: str) -> str:
    segments = [segment for segment in path.split("/") if segment != "amp"]
    if match := _AMP_SUFFIX.fullmatch(segments[-1]):
        segments[-1] = match.group(1) + (match.group(2) or "")
    folded = "/".join(segments)
    return (folded.rstrip("/") or "/") if folded != path else path


def _fold_query(query: str) -> str:
    return "&".join(piece for piece in query.split("&") if piece and not _amp_parameter(piece))


def _amp_parameter(piece: str) -> bool:
    name, _, value = piece.partition("=")
    name = unquote(name).lower()
    return (name == "amp" and value in ("", "1")) or (
        name == "outputtype" and value.lower() == "amp"
    )


def same_site(url_a: str, url_b: str) -> bool:
    """True when two URLs are on one site, ignoring the labels of its editions (`site_host`):
    a page may only name a canonical URL on its own site, and an AMP or mobile page names the
    www one."""
    host_a = site_host(urlsplit(url_a).hostname or "")
    return bool(host_a) and host_a == site_host(urlsplit(url_b).hostname or "")


def fingerprint(*parts: str) -> str:
    """A hash of the words of `parts` (title, summary, content), blind to case and spacing."""
    words = " ".join(" ".join(part.casefold().split()) for part in parts)
    return hashlib.blake2b(words.encode(), digest_size=16).hexdigest()


def item_url(article: Article, tracking: TrackingParams) -> str:
    """The URL that identifies a feed item: its link's, or its guid's when that is a web
    address; before `distinct_urls` has looked at the feed's other items."""
    return identity_url(article.url, tracking) or identity_url(article.guid, tracking)


def identify(
    articles: Sequence[Article], tracking: TrackingParams, others: Iterable[str] = ()
) -> list[Article]:
    """Each item with its canonical URL (from its link, or a guid that is a web address) and
    the fingerprint of the feed's title and text; see `distinct_guids` for shared guids, and
    `distinct_urls` for shared links and `others`. `articles` must hold every item of the
    document whose guid one of them has (pipeline._new_items parses those together)."""
    out = []
    for article in articles:
        out.append(
            evolve(
                article,
                url=link_url(article.url, tracking),
                canonical_url=item_url(article, tracking),
                fingerprint=fingerprint(article.title, article.summary, article.content),
            )
        )
    return distinct_urls(distinct_guids(out), others)


def distinct_guids(articles: Sequence[Article]) -> list[Article]:
    """A guid that several different items of one document share identifies none of them on
    its own: the feed says they are different items, and under one guid each poll would store
    one as a revision of the other. Each such item gets the guid followed by its canonical URL
    when no other item of that guid has this URL, else by its text fingerprint, so that items
    with different texts stay different articles. Exact copies (same guid, URL and text) count
    as one item; a guid no other item shares is left as it is, so the item stored under it
    before is found again (and one whose guid was made distinct is found by its URL).

    Call with `canonical_url` and `fingerprint` set, before `distinct_urls`."""
    versions: dict[str, set[tuple[str, str]]] = {}
    for a in articles:
        versions.setdefault(a.guid, set()).add((a.canonical_url, a.fingerprint))
    out = []
    for a in articles:
        same_guid = versions[a.guid]
        if len(same_guid) == 1:
            out.append(a)
            continue
        urls = Counter(url for url, _ in same_guid)
        suffix = a.canonical_url if a.canonical_url and urls[a.canonical_url] == 1 else ""
        out.append(evolve(a, guid=f"{a.guid} {suffix or a.fingerprint}"))
    return out


def distinct_urls(articles: Sequence[Article], others: Iterable[str] = ()) -> list[Article]:
    """A canonical URL that several items of one feed share (a feed that links every item to
    one live page, say) identifies none of them: the feed says they are different items.
    `others` are the URLs of the document's items not in `articles` (those not parsed again
    because they were unchanged), counted too.

    Items whose guids differ only after a `#`, and that share their link and text, are one
    article listed twice under two headlines (BBC feeds list an article in two places, its guid
    the link followed by #0 and #10): the first is kept, the others dropped. Kept apart, each
    was an article and a story of its own, and subscribers were sent the news twice."""
    articles = _listed_once(articles)
    counts = Counter(a.canonical_url for a in articles if a.canonical_url)
    counts.update(url for url in others if url)
    return [
        evolve(a, canonical_url="") if counts.get(a.canonical_url, 0) > 1 else a for a in articles
    ]


def _listed_once(articles: Sequence[Article]) -> list[Article]:
    """The items, but for a later listing of one article (see distinct_urls): a guid that is
    another's but for what follows its `#`, with the same link, as written, and the same text.
    Copies under one guid are distinct_guids'. A live page's updates, linked to one page
    (`#b1`, `#b2`) under guids of their own, and items with no text beyond their headline
    are never taken for listings of one article."""
    first: dict[tuple, str] = {}  # guid before its #, link and text -> the first guid
    kept = []
    for article in articles:
        base, hashed, _ = article.guid.partition("#")
        if hashed and article.url and (article.summary or article.content):
            key = (base, article.url, article.summary, article.content)
            if first.setdefault(key, article.guid) != article.guid:
                continue
        kept.append(article)
    return kept


# Sketches -------------------------------------------------------------------------------------

NUM_PERM = 128
SEED = 1
MIN_SHINGLES = 8  # fewer words than this (a bare headline) say too little to group on
MAX_SKETCH_BYTES = 100_000  # what follows the first 100 KB of text does not change a story
SKETCH_ALGORITHM = f"w3-poly64/rensa-rminhash-v{rensa.RMinHash.ALGORITHM_VERSION}/{NUM_PERM}/{SEED}"

_BASE = 0x100000001B3  # odd, so invertible modulo 2**64
_U64 = np.uint64
_M1, _M2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
_K1, _K2 = _U64(0x9E3779B97F4A7C15), _U64(0xC2B2AE3D27D4EB4F)


def _separator_bytes() -> np.ndarray:
    """Bytes that end a word: ASCII spaces, controls and punctuation. Letters, digits and every
    byte of a multi-byte UTF-8 character are word bytes (see _unicode_separators)."""
    table = np.zeros(256, dtype=bool)
    for code in range(128):
        table[code] = not chr(code).isalnum()
    return table


_SEPARATOR = _separator_bytes()


@cache
def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**i and BASE**-i modulo 2**64 for i < n (numpy's uint64 arithmetic wraps)."""
    inverse = pow(_BASE, -1, 1 << 64)
    with np.errstate(over="ignore"):
        up = np.cumprod(np.full(n, _BASE, dtype=np.uint64))
        down = np.cumprod(np.full(n, inverse, dtype=np.uint64))
    one = np.ones(1, dtype=np.uint64)
    return np.concatenate((one, up[:-1])), np.concatenate((one, down[:-1]))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every output bit depends on every input bit."""
    x = x ^ (x >> _U64(30))
    x = x * _M1
    x = x ^ (x >> _U64(27))
    x = x * _M2
    return x ^ (x >> _U64(31))


def _unicode_separators(data: np.ndarray, separator: np.ndarray) -> None:
    """Mark typographic punctuation as separators too, in place: U+2000-U+207F (curly quotes,
    dashes, ellipsis, thin spaces: E2 80 xx and E2 81 xx in UTF-8) and U+00A0-U+00BF (no-break
    space, guillemets, middle dot: C2 xx), so “quoted” and "quoted" give the same words."""
    # The lead bytes of the few non-ASCII characters. A three-byte one cut short by
    # MAX_SKETCH_BYTES, followed by the separator sketches put after each text where its third
    # byte would be, is left as it is.
    lead = np.flatnonzero(data[:-1] >= 0xC2)
    if not len(lead):
        return
    first, second = data[lead], data[lead + 1]
    third = data[np.minimum(lead + 2, len(data) - 1)]
    dashes = lead[
        (first == 0xE2) & ((second == 0x80) | (second == 0x81)) & ((third & 0xC0) == 0x80)
    ]
    latin = lead[(first == 0xC2) & (second >= 0xA0)]
    for offset in (0, 1, 2):
        separator[dashes + offset] = True
    separator[latin] = True
    separator[latin + 1] = True


def _word_hashes(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of each word of UTF-8 `data`, in order, and the offset where each starts.
    Words are runs of letters and digits (the caller lower-cases ASCII letters: other scripts
    keep their case, as lower-casing them costs more than the rest of the sketch); equal words
    always get equal hashes, in any process and wherever they stand."""
    separator = _SEPARATOR.take(data)
    _unicode_separators(data, separator)
    edges = np.diff(np.concatenate(([True], separator, [True])).astype(np.int8))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    up, down = _powers(MAX_SKETCH_BYTES + 2)  # a batch of sketches holds at most MAX + 1 bytes
    # Polynomial hash of each word from one prefix sum: sum(c[j] * BASE**(end-1-j)). Integer
    # arithmetic on arrays wraps modulo 2**64 without a warning (numpy checks only scalars), so
    # no np.errstate here: entering one cost 13 µs an article.
    prefix = np.concatenate(
        (np.zeros(1, dtype=np.uint64), np.cumsum(data * down[: len(data)], dtype=np.uint64))
    )
    return _mix((prefix[ends] - prefix[starts]) * up[ends - 1]), starts


def sketch(text: str) -> np.ndarray | None:
    """The MinHash signature (NUM_PERM uint32 values) of the text's 3-shingle set, or None when
    the text has fewer than MIN_SHINGLES shingles."""
    return sketches([text])[0]


def sketches(texts: Iterable[str]) -> list[np.ndarray | None]:
    """`sketch` of each text, worked out for many at once: for a feed item of a few hundred
    characters, numpy's cost per call, not per byte, is most of the work (120 to 150 µs for
    such an item alone, under 40 µs each for a feed's 16 together)."""
    limit = MAX_SKETCH_BYTES + 1  # bytes in one batch: a text cut to the maximum, a separator
    found: list[np.ndarray | None] = []
    batch: list[bytes] = []
    size = 0
    for text in texts:
        data = text.encode()[:MAX_SKETCH_BYTES].lower()
        if batch and size + len(data) + 1 > limit:
            found.extend(_sketch_batch(batch))
            batch, size = [], 0
        batch.append(data)
        size += len(data) + 1
    if batch:
        found.extend(_sketch_batch(batch))
    return found


def _sketch_batch(encoded: list[bytes]) -> list[np.ndarray | None]:
    """Signatures of lower-cased UTF-8 texts, joined with a separator byte so that no word
    spans two of them, and no shingle either (those are dropped)."""
    data = np.frombuffer(b"\0".join(encoded) + b"\0", dtype=np.uint8)
    words, starts = _word_hashes(data)
    ends = list(accumulate((len(e) + 1 for e in encoded), initial=-1))[1:]  # separators
    text_of = np.searchsorted(ends, starts)  # the text each word is in
    within = text_of[:-2] == text_of[2:]  # the shingle's three words are in one text
    shingles = _mix(words[:-2] * _K1 + words[1:-1] * _K2 + words[2:])[within]  # wraps, as above
    counts = np.bincount(text_of[:-2][within], minlength=len(encoded)).tolist()
    digests = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        shingles, list(accumulate(counts, initial=0)), NUM_PERM, SEED
    )
    rows = np.asarray(digests.to_rows(), dtype=np.uint32)
    return [rows[i] if count >= MIN_SHINGLES else None for i, count in enumerate(counts)]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The estimated Jaccard overlap of two texts' shingle sets, from their signatures."""
    return float(np.count_nonzero(a == b)) / len(a)


def similarities(signature: np.ndarray, others: np.ndarray) -> np.ndarray:
    """`similarity` of one signature against each row of a matrix of signatures."""
    return np.count_nonzero(others == signature, axis=1) / signature.shape[0]


def signature_bytes(signature: np.ndarray) -> bytes:
    return signature.astype("<u4").tobytes()


def signature_from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u4").astype(np.uint32)


@dataclass(frozen=True)
class LshLayout:
    """How a signature is cut into bands: two texts become candidates when all `rows` values of
    any one of the `bands` bands agree, which happens with probability 1 - (1 - J**rows)**bands
    for a Jaccard overlap J."""

    bands: int
    rows: int

    def candidate_probability(self, jaccard: float) -> float:
        return 1.0 - (1.0 - jaccard**self.rows) ** self.bands

    @property
    def name(self) -> str:
        return f"{SKETCH_ALGORITHM}/lsh{self.bands}x{self.rows}"


@cache
def lsh_layout(threshold: float, num_perm: int = NUM_PERM) -> LshLayout:
    """The band layout that best separates overlaps above `threshold` from those below,
    weighing a missed pair four times a false candidate (candidates are verified on the whole
    signature, so a false one costs a comparison while a missed one splits a story)."""
    grid = np.linspace(0.0, 1.0, 401)
    below = grid <= threshold
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - grid**rows) ** bands
            false_pos = np.trapezoid(p[below], grid[below])
            false_neg = np.trapezoid(1.0 - p[~below], grid[~below])
            error = 0.2 * false_pos + 0.8 * false_neg
            if best is None or error < best[0]:
                best = (error, bands, rows)
    assert best is not None
    return LshLayout(bands=best[1], rows=best[2])


_ROW_WEIGHTS = _mix(np.arange(1, NUM_PERM + 1, dtype=np.uint64) * _K2) | _U64(1)  # odd


def band_keys(signatures: np.ndarray, layout: LshLayout) -> np.ndarray:
    """One 32-bit key per band of a signature (or of each row of a matrix of them), distinct
    across bands: a weighted sum of the band's values and its number, mixed. 32 bits keep the
    index small (monitor/bands.py); a chance equality costs one signature comparison."""
    weights, numbers = _band_constants(layout)
    rows = signatures[..., : layout.bands * layout.rows].astype(np.uint64)
    rows = rows.reshape(*signatures.shape[:-1], layout.bands, layout.rows)
    keys = _mix((rows * weights).sum(axis=-1, dtype=np.uint64) + numbers)  # wraps silently
    return (keys >> _U64(32)).astype(np.uint32)


@cache
def _band_constants(layout: LshLayout) -> tuple[np.ndarray, np.ndarray]:
    """The weight of each row of a band, and each band's number, mixed in."""
    return _ROW_WEIGHTS[: layout.rows], np.arange(1, layout.bands + 1, dtype=np.uint64) * _K1


# Same story or another event of the same kind? Wire briefs of separate incidents share their
# template and a long background paragraph ("More than 36,000 people have crossed the Channel
# this year..."), which dominates the shingle overlap of two short texts: two drownings on
# different days overlapped 0.64 and were one story, the second never sent. What tells such
# events apart is in their ledes: the toll, the count, the day. Copies of one story keep their
# lede's facts (a copy may cut the lede, or add a dateline or a paragraph of its own: each of
# those leaves one side's lede facts in the other's text).
LEDE_WORDS = 60
FACT_CHARS = 20_000  # facts later in a long text are not looked for
# A number however a copy writes its thousands: 1,500, 1.500, 1500, or French 1 500, whose
# no-break space is a plain one in the text made plain, and in the lede cut at every space. Read
# as 1 and 500, it was a fact neither copy had, and one dispatch was two stories. (So is
# "400 737 Max jets" one number: as every copy writes it.)
_NUMBER = re.compile(r"\d(?:[\d,.\u00a0\u202f]*\d)?(?: \d{3}(?!\d))*")
_WORD = re.compile(r"[^\W\d_]+")
_WEEKDAYS = frozenset((
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
))  # fmt: skip
# Numbers written out, as copies write them: "Two people" for "2 people", "Thirty-five" to
# start a sentence another outlet began otherwise, with 35. A compound is one number:
# thirty-five is 35, not 5, twenty-five not 20 and 5, and so are dix-sept, vingt et un,
# soixante-dix and quatre-vingt-douze. Not one, un, une alone, which are more often articles
# and pronouns than counts.
_NUMBER_WORDS = {
    word: value
    for words, value in (
        ("one un une", 1), ("two deux", 2), ("three trois", 3), ("four quatre", 4),
        ("five cinq", 5), ("six", 6), ("seven sept", 7), ("eight huit", 8), ("nine neuf", 9),
        ("ten dix", 10), ("eleven onze", 11), ("twelve douze", 12), ("thirteen treize", 13),
        ("fourteen quatorze", 14), ("fifteen quinze", 15), ("sixteen seize", 16),
        ("seventeen", 17), ("eighteen", 18), ("nineteen", 19), ("twenty vingt vingts", 20),
        ("thirty trente", 30), ("forty quarante", 40), ("fifty cinquante", 50),
        ("sixty soixante", 60), ("seventy", 70), ("eighty", 80), ("ninety", 90),
    )
    for word in words.split()
}  # fmt: skip
_NOT_ALONE = frozenset(("one", "un", "une"))
_JOINS = frozenset(("-", "-et-", " et "))  # what stands between the words of a compound
_MONTHS = (
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|janv|févr|fevr|avr|mai|juin|juil"
    r"|août|aout|déc|january|february|march|april|june|july|august|september|october|november"
    r"|december|janvier|février|fevrier|mars|avril|juillet|septembre|octobre|novembre"
    r"|décembre|decembre)\.?"
)
# When a copy was filed or read, not what happened: clock times ("Updated 16:40", "9h30"),
# dates ("05/06/2024", "June 5", "5 juin 2024"), ages of a page ("3 hours ago", "il y a 2 h",
# "2 min read"), and years.
_FILING = re.compile(
    r"\b\d{1,2}\s*[:h.]\s*\d{2}\b(?:\s*(?:am|pm|gmt|utc|bst|cet|cest))?"
    r"|\b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b"
    rf"|\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}})?"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th|er)?\s+{_MONTHS}(?:\s+\d{{4}})?"
    r"|\b\d+\s*(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|h|days?|jours?|heures?)\s+ago\b"
    r"|\bil y a\s+\d+\s*(?:secondes?|minutes?|min|heures?|h|jours?)\b"
    r"|\b\d+\s*(?:min|minutes?)\s+(?:read|de lecture)\b"
    r"|\b(?:19|20)\d\d\b"  # on lower-cased text: IGNORECASE made it three times as slow
)


class EventFacts:
    """The numbers and weekdays of an article's lede, and of its whole text (read only when the
    ledes alone do not settle it: copies of one story mostly share their lede)."""

    def __init__(self, title: str, body: str, earlier: Sequence[str] = ()) -> None:
        """`body` is the summary and content; the lede is its first LEDE_WORDS words (the
        title's numbers are not lede facts: headlines round them, "two die" for "2 dead").
        Filing times are left out of the lede only: a date's number in the other text only
        makes the two more alike, and looking for them took 9 ms in 20 KB. `earlier` are the
        texts of the article's earlier revisions, whose facts count as its text's: a copy of
        what it said before its outlet corrected it is a copy of it."""
        lede = " ".join(body.split(maxsplit=LEDE_WORDS)[:LEDE_WORDS])
        self.lede = _facts(_FILING.sub(" ", lede.lower()))
        self._whole = (title, body, tuple(earlier))

    @cached_property
    def text(self) -> frozenset[str]:
        title, body, earlier = self._whole
        return _facts("\n".join((title, body[:FACT_CHARS], *earlier)))


def _facts(text: str) -> frozenset[str]:
    """Numbers (as digits, without separators or leading zeros; written out up to ninety-nine
    count, see _NUMBER_WORDS) and weekdays."""
    text = text.lower()
    found = {re.sub(r"[,.\s]", "", n).lstrip("0") or "0" for n in _NUMBER.findall(text)}
    spelled: list[str] = []  # number words joined so far
    end = 0  # where the last of them ends
    for match in _WORD.finditer(text):
        word = match.group()
        if word in _NUMBER_WORDS:
            if spelled and text[end : match.start()] not in _JOINS:
                found.update(str(n) for n in _spelled(spelled))
                spelled = []
            spelled.append(word)
            end = match.end()
        elif word in _WEEKDAYS:
            found.add(word)
    if spelled:
        found.update(str(n) for n in _spelled(spelled))
    return frozenset(found)


def _spelled(words: list[str]) -> list[int]:
    """The numbers that number words joined by hyphens (or French "et") write: one, when they
    make a compound (from ten or more, each word less than the one before it, or quatre-vingt:
    80), else each word's own but one, un and une."""
    values = [_NUMBER_WORDS[word] for word in words]
    total = values[0]
    for before, value in pairwise(values):
        if before == 4 and value == 20 and total == 4:  # quatre-vingt(s)
            total = 80
        elif before >= 10 and value < before:
            total += value
        else:
            return [_NUMBER_WORDS[w] for w in words if w not in _NOT_ALONE]
    return [] if len(words) == 1 and words[0] in _NOT_ALONE else [total]


def different_events(a: EventFacts, b: EventFacts) -> bool:
    """Whether each lede has a fact the other article lacks altogether (in its text, or in
    its earlier revisions when given): 38 rescued off Gravelines on Thursday against 41 off
    Wissant on Saturday, though their texts overlap."""
    if a.lede <= b.lede or b.lede <= a.lede:
        return False  # one lede's facts are the other's: so are they in its text
    return not a.lede <= b.text and not b.lede <= a.text
