"""Text: HTML to plain text, case and accent folding, tokenising, stemming. Pure functions.

Folding keeps string length, so a character offset in folded text is the same offset in the
original: evidence can point at the exact words an article used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import numpy as np
import Stemmer

# Snippets mark matched words between these brackets; renderers turn them into bold or colour
# after escaping, and the brackets are stripped from feed text first so it cannot forge them.
HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧

_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "table",
        "tr",
        "section",
        "article",
        "header",
        "footer",
        "figure",
        "figcaption",
        "hr",
        "dd",
        "dt",
    ]
)
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BREAKS = re.compile(r"\s*\n\s*\n\s*")
_LINE = re.compile(r" *\n *")
# C0 but tab and line breaks, DEL, and C1 (U+0080 to U+009F: U+009B is a terminal's CSI, as
# ESC [ is) but U+0085, a line break; no text of a feed needs them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment; block elements become paragraph breaks ("\\n\\n")."""
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return normalise_space(html)
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return normalise_space("".join(parser.parts))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(text: str) -> str:
    """Half a UTF-16 pair (JSON's "\\ud800" alone) made U+FFFD: no encoder takes it, so
    SQLite, hashing and printing failed on it. JSON decodes a whole pair to one character."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


# A whole escape sequence (CSI "ESC [ 31 m", OSC "ESC ] ... BEL"), not only its ESC: "[31m"
# left behind still read as noise in `feeds list`.
ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])")
# Bidirectional embeddings, overrides and isolates (U+202A-E, U+2066-9), as a character range:
# dropped from feed text, titles and what is printed, percent-encoded in links.
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_BIDI_CONTROL = re.compile(f"[{BIDI_CONTROLS}]")
_TERMINAL_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}]+")


def printable(text: str) -> str:
    """What another server said (an HTTP reason, a connection error, an answer's body) as one
    line without control characters: printed to a terminal or a log, its escape sequences could
    clear the screen, write text that looks like Vigie's or retitle the window."""
    return _TERMINAL_CONTROL.sub(" ", ESCAPE_SEQUENCE.sub("", text)).strip()


def one_line(text: str) -> str:
    """A title as one line: every run of whitespace, line breaks included, one space. A title
    broken over lines (pretty-printed XML) would otherwise break the plain-text digest, and a
    hostile one could write a fake heading or entry into it. Without bidirectional controls
    (see _INVISIBLE), which a title stored before they were dropped may still hold."""
    return " ".join(_BIDI_CONTROL.sub("", text).split())


def url_shown_safely(url: str) -> str:
    """A link with its bidirectional controls percent-encoded, as a browser's address bar shows
    them: raw, "calais-\u202etxt.exe" reads as "calais-exe.txt" in a digest or a terminal."""
    return _BIDI_CONTROL.sub(lambda m: quote(m.group()), url)


# Characters that show nothing and split no word: soft hyphen, zero-width space, non-joiner and
# joiner, combining grapheme joiner, word joiner, byte order mark ("po\u200clice" is police).
# Also the bidirectional embeddings, overrides and isolates (U+202A-E, U+2066-9): a title with
# a right-to-left override showed the rest of its digest line, subject or terminal line reversed,
# so it could pose as other text ("Trojan Source"); Unicode's algorithm orders mixed scripts
# without them. The marks (LRM, RLM), which reach no further than themselves, stay.
_INVISIBLE = re.compile(f"[\u00ad\u034f\u200b\u200c\u200d\u2060\ufeff{BIDI_CONTROLS}]")


def without_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text)


def normalise_space(text: str) -> str:
    """Collapse runs of spaces, keep paragraph breaks, drop control characters: within a run of
    whitespace, two newlines or more make a paragraph break, one a line break, none a space.

    Line by line with str.split, which runs in C: the same text as the regular expressions
    below, kept for text with whitespace beyond ASCII and the no-break space (a thin space:
    str.split would split on it, the expressions keep it), at a third of their cost on an
    article (they replaced each of its ~700 single spaces by a space).

    Text is also put in Unicode's composed form (NFC): "é" written as "e" and a combining accent
    (as some Mac software writes it) would otherwise be two words to the matcher, "exile" "s".
    """
    text = _CONTROL.sub("", text)
    if not text.isascii():
        text = without_invisible(text)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if not text.isascii() and any(c.isspace() and c != "\u00a0" for c in _non_ascii(text)):
        text = _SPACES.sub(" ", text)
        text = _BREAKS.sub("\n\n", text)
        text = _LINE.sub("\n", text)
        return text.strip()
    parts: list[str] = []
    newlines = 0  # since the last line with words
    for line in text.split("\n"):
        if words := line.split():
            if parts:
                parts.append("\n\n" if newlines > 1 else "\n")
            parts.append(" ".join(words))
            newlines = 0
        newlines += 1
    return "".join(parts)


def _build_fold_table() -> dict[int, str]:
    """Map each character to its lower-case, accent-free form, but only where that is one character.

    Length-preserving by construction; characters whose folding would change the length (ß, ﬁ)
    are left to the slow path in `fold`.
    """
    table: dict[int, str] = {}
    # Latin to letter-like symbols; fullwidth forms (ＣＡＬＡＩＳ, as East Asian input writes
    # Latin letters); the mathematical alphabets that "fancy text" generators use (𝐂𝐚𝐥𝐚𝐢𝐬).
    codes = (range(0x80, 0x2100), range(0xFF00, 0xFFF0), range(0x1D400, 0x1D800))
    for code in (code for block in codes for code in block):
        char = chr(code)
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        ).lower()
        if len(base) == 1 and base != char:
            table[code] = base
        elif len(base) != 1 and char.lower() != char and len(char.lower()) == 1:
            table[code] = char.lower()
    # Typographic apostrophes and dashes fold to their ASCII forms.
    for code in (0x2019, 0x2018, 0x02BC, 0x00B4, 0x0060):
        table[code] = "'"
    return table


# Ligatures and ß, which fold keeps as they are (it keeps the length), written out in words:
# l'œuvre is found by oeuvre, a PDF's "ﬁlm" by film, Straße by strasse, and the other way round.
_LIGATURES = str.maketrans(
    {"œ": "oe", "æ": "ae", "ß": "ss", "ĳ": "ij", "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl",
     "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
)  # fmt: skip
HAS_LIGATURE = re.compile("[œæßĳﬀ-ﬆ]")


def spelt_out(word: str) -> str:
    """A folded word with its ligatures written out (œ -> oe): how words are compared."""
    return word.translate(_LIGATURES) if HAS_LIGATURE.search(word) else word


def fold_word(word: str) -> str:
    """A word as rules compare it: folded, ligatures written out."""
    return spelt_out(fold(word))


_FOLD_TABLE = _build_fold_table()
# A-Z to a-z only: what SQLite's lower() does, for text compared with it (feed addresses).
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_FOLD_TABLE.update(ASCII_LOWER)


def fold(text: str) -> str:
    """Lower-case and strip accents, keeping the length: 'Exilés' -> 'exiles'."""
    return text.translate(_FOLD_TABLE)


# A token is a run of letters and digits. Apostrophes split (l'immigration -> l, immigration),
# as do hyphens (Boulogne-sur-Mer -> boulogne, sur, mer).
TOKEN = re.compile(r"[^\W_]+")


def tokens(folded: str) -> list[str]:
    """The tokens of already-folded text, in order: `tokens(fold(inclusive_words(text)))` is
    the definition `word_text` follows."""
    return TOKEN.findall(folded)


# `word_text` works on whole strings with str.translate and str.replace, which run in C, rather
# than with a regular expression or a translation looked up character by character in a dict
# (which costs ~100 ns a character: most of an article's tokenising, before this).
_WORD_ASCII = str.maketrans(
    {chr(c): chr(c).lower() if chr(c).isalnum() else " " for c in range(128)}
)
_ASCII_BYTES = bytes(range(128))
_NOT_WORD = re.compile(r"[\W_]")
_WORD_CHARS: dict[str, str] = {}  # non-ASCII character -> its folded form, or " "


def _word_char(char: str) -> str:
    found = _WORD_CHARS.get(char)
    if found is None:
        folded = char.translate(_FOLD_TABLE)
        found = _WORD_CHARS[char] = folded if folded.isalnum() else " "
    return found


# French inclusive writing: a word, a middle dot and its feminine or plural ending (exilé·es,
# exilé·e·s, policier·ères, demandeur·euses, militant·e). The dot split it into the word and a
# fragment: `exilés` and @migrants' plural aliases missed "personnes exilé·es", the way NGOs
# in Calais write, and NEAR counted the fragments as words.
# Only the endings inclusive writing uses: "Calais•Dunkerque•Lille" and "Lire aussi•exilés"
# are words after a bullet, and col·legi is Catalan. The dot first: a look-behind first made the
# engine try every position of the text (153 µs for 5 KB, against 17).
INCLUSIVE_DOTS = frozenset("·•⋅‧")
_ENDING = "|".join(
    ("e", "s", "es", "ne", "nes", "le", "les", "se", "ses", "te", "tes", "ve", "ves", "x")
    + ("ère", "ères", "ière", "ières", "euse", "euses", "rice", "rices", "trice", "trices")
)
INCLUSIVE = re.compile(
    rf"[·•⋅‧](?<=[^\W\d_][·•⋅‧])((?:{_ENDING}))(?:[·•⋅‧](e|s|es))?(?![^\W\d_·•⋅‧])",
    re.IGNORECASE,
)


def inclusive_words(text: str) -> str:
    """`text` with each inclusive ending (see INCLUSIVE) read as the masculine form: the
    plural when the ending is (exilé·es -> exilés, militant·e -> militant), the rest of it
    made spaces, so the length and every offset stay as they were."""
    return INCLUSIVE.sub(_masculine, text)


def _masculine(m: re.Match[str]) -> str:
    last = (m.group(2) or m.group(1))[-1:]  # its case kept, for =Exact words: EXILÉ·ES, EXILÉS
    plural = last in ("s", "S")
    return (last if plural else " ") + " " * (m.end() - m.start() - 1)


# Acronyms written with periods, as the New York Times writes them (U.K., U.S., F.B.I.): a run
# of two or more capitals, each followed by a period, with no letter or period just before it
# nor a letter or digit just after it. Read a word a letter, `UK`, `=UK` and `FBI` missed them.
# Initials written with spaces (J. R. R. Tolkien, George W. Bush, M. Dupont) stay words of their
# own; without spaces (J.R.R.) they are one word too, as nothing tells them from an acronym.
# An acronym ending a sentence ("in the U.S.") ends with the sentence's period: the word is the
# same. The period first, as for INCLUSIVE: a capital first made the engine try every position
# (9.5 ms for the 133 articles of bench.matching, against 0.2).
DOTTED_ACRONYM = re.compile(r"\.[A-Z]\.(?<=(?<![\w.])[A-Z]\.[A-Z]\.)(?:[A-Z]\.)*(?![^\W_])")


def acronym_words(text: str) -> str:
    """`text` with each dotted acronym (see DOTTED_ACRONYM) written as one word, its periods
    made spaces after it ("U.K." -> "UK  "), so the length and every offset stay as they were:
    the word starts where the acronym does."""
    return DOTTED_ACRONYM.sub(_undotted, text)


def _undotted(m: re.Match[str]) -> str:
    # The match starts at the first period ("U" stays where it is): ".B.I." -> "BI   ".
    letters = m.group()[1::2]
    return letters + " " * (m.end() - m.start() - len(letters))


def word_text(text: str) -> str:
    """`text` folded, with every character outside a token made a space: `.split()` gives
    `tokens(fold(inclusive_words(text)))`, and as the length is kept, a token's offsets are
    those in `text`. Articles' fields are read as `word_text(acronym_words(text))`."""
    if not text.isascii():
        # News is mostly ASCII: each distinct other character (é, ’, “) is replaced throughout.
        others = _non_ascii(text)
        if not INCLUSIVE_DOTS.isdisjoint(others):
            text = inclusive_words(text)
        for char in others:
            text = text.replace(char, _word_char(char))
        if not text.isascii():  # letters that fold to no ASCII letter: œ, ß, Cyrillic, Han
            if any(c.lower() != c for c in _non_ascii(text)):
                return _NOT_WORD.sub(" ", fold(text))
            return _NOT_WORD.sub(" ", text.lower())
    return text.translate(_WORD_ASCII)


def _non_ascii(text: str) -> set[str]:
    """The distinct non-ASCII characters of `text` (UTF-8 with the ASCII bytes deleted: a
    multi-byte character holds no ASCII byte, so what is left decodes to just those)."""
    encoded = text.encode("utf-8", "surrogatepass")
    return set(encoded.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass"))


def token_starts(words: str) -> list[int]:
    """Character offset of each token of a `word_text`, in order: where a character other than
    a space follows a space (or starts the text), found by numpy over the text's code points."""
    if not words:
        return []
    if words.isascii():
        codes = np.frombuffer(words.encode("ascii"), np.uint8)
    else:
        codes = np.frombuffer(words.encode("utf-32-le", "surrogatepass"), np.uint32)
    in_token = codes != 32
    starts = np.flatnonzero(in_token[1:] > in_token[:-1]) + 1
    return ([0] if in_token[0] else []) + starts.tolist()


STEM_LANGUAGES = {"en": "english", "fr": "french"}


@cache
def _stemmer(language: str) -> Stemmer.Stemmer:
    stemmer = Stemmer.Stemmer(STEM_LANGUAGES[language])
    # PyStemmer's word cache costs more than it saves: each article brings mostly new words.
    stemmer.maxCacheSize = 0
    return stemmer


# Word -> stem, per language: news repeats its vocabulary, so most of an article's words were
# stemmed for an earlier one (a dict lookup is ~10x cheaper than stemming again). Beside it, stem
# -> the words with that stem, so an article's words with a stem are found without stemming all
# of them again. Replaced by new dicts when full (rather than kept in LRU order, which costs more
# than it saves), so a caller holding the old ones still finds every word it made sure of.
_STEMS: dict[str, dict[str, str]] = {}
_WORDS_OF_STEM: dict[str, dict[str, list[str]]] = {}
_STEMS_KEPT = 300_000
_generation = 0  # counts the times the cache started again (see stem_generation)


def stem_words_uncached(words: list[str], language: str) -> list[str]:
    """Snowball stems, the cache neither read nor written: for compiling rules, which runs on
    the rule-reload thread while a poll reads the cache, so that only polling ever fills it
    (a reload's words could start the cache again between a poll's check and its lookup)."""
    return _snowball(words, language)


def stem_words(words: list[str], language: str) -> list[str]:
    """Snowball stems of folded words in a supported language ('en' or 'fr')."""
    found = stem_map(words, language)
    return [found[w] for w in words]


def stem_map(words: Iterable[str], language: str) -> dict[str, str]:
    """Word -> Snowball stem, for folded words in a supported language ('en' or 'fr')."""
    words = list(words)
    stems = _STEMS.setdefault(language, {})
    found = dict(zip(words, map(stems.get, words), strict=True))  # lookups run in C
    if None in found.values():
        found.update(_learn_stems([w for w, stem in found.items() if stem is None], language))
    return found


def words_of_stem(words: AbstractSet[str], language: str) -> dict[str, list[str]]:
    """Stem -> words with that stem, holding at least every one of `words` (and others: keep
    those in `words`)."""
    missing = set(words).difference(_STEMS.setdefault(language, {}))  # walks `words`
    if missing and _learn_stems(list(missing), language, also=words) is None:
        _learn_stems(list(words), language)  # the cache started again: all of them
    return _WORDS_OF_STEM.setdefault(language, {})


def stem_generation() -> int:
    """Changes whenever the stem cache starts again: words stemmed under another generation may
    be gone from it (a RuleIndex then looks at every word again)."""
    return _generation


def forget_stems() -> None:
    """Start the stem cache again (benchmarks measure articles whose words are new). New dicts:
    callers holding the old ones keep what they made sure of."""
    global _generation
    _STEMS.clear()
    _WORDS_OF_STEM.clear()
    _generation += 1


def _learn_stems(
    words: list[str], language: str, also: AbstractSet[str] = frozenset()
) -> dict[str, str] | None:
    """Stem `words` into the cache. When that would overfill it, start a new one, unless
    `also` (words the caller needs kept) is given: then return None and stem nothing."""
    stems = _STEMS.setdefault(language, {})
    words_of = _WORDS_OF_STEM.setdefault(language, {})
    if stems and len(stems) + len(words) > _STEMS_KEPT:
        global _generation
        _generation += 1
        stems = _STEMS[language] = {}
        words_of = _WORDS_OF_STEM[language] = {}
        if also:
            return None
    stemmed = dict(zip(words, _snowball(words, language), strict=True))
    stems.update(stemmed)
    for word, stem in stemmed.items():
        if stem in words_of:
            words_of[stem].append(word)
        else:
            words_of[stem] = [word]
    return stemmed


# French Snowball reads accents: it knows the endings é, ée, ées, ité and ière only with them.
# Words are folded before they are stemmed, so ière and ité get their accent back first and the
# stem is folded again; without it, policière and policier had different stems (on the French
# words of ../shared, 20 of 301 pairs that Snowball groups when given the accents were split; 2
# with this). A feminine ée loses its e instead, to stem as the masculine folded form does:
# given back its accent, réfugiée, noyée and employée stemmed to refugi, noi and emploi, and
# réfugié, noyé and employé (folded: refugie, noye, employe) to refug, noy and employ.
_FRENCH_ENDINGS = (
    ("ieres", "ières"), ("iere", "ière"), ("ites", "ités"), ("ite", "ité"),
    ("ees", "es"), ("ee", "e"),
)  # fmt: skip


# French Snowball removes -asse, -asses and -assent whole, as endings of the imperfect
# subjunctive (qu'il parlasse), which news never uses; what news has is verbs in -asser and
# nouns in -asse: il tabasse, ils tabassent stemmed to tab, and tabassé, folded to tabasse
# before stemming, too, while tabasser and tabassés stemmed to tabass (so did dépasser,
# ramasser, fracasser, pourchasser; terrasse joined terre). Such stems keep their "ass".
_IMPERFECT_SUBJUNCTIVE = ("assent", "asses", "asse")


# English Snowball stems a few words whose singular ends in one s apart from their other forms:
# gas, gases and gassed to gas, gase and gass (teargas to tearga), so `gas~` missed
# "tear-gassed" (the police-violence pack's own vocabulary) and `bus~` "buses".
_ENGLISH_STEMS = {
    "gases": "gas", "gasses": "gas", "gassed": "gas", "gassing": "gas",
    "teargas": "teargas", "teargases": "teargas", "teargassed": "teargas",
    "teargassing": "teargas",
    "buses": "bus", "busses": "bus", "bused": "bus", "bussed": "bus", "busing": "bus",
    "bussing": "bus",
}  # fmt: skip


def _snowball(words: list[str], language: str) -> list[str]:
    """Snowball stems of folded words."""
    if language == "en":
        stems = _stemmer(language).stemWords(words)
        return [_ENGLISH_STEMS.get(w, stem) for w, stem in zip(words, stems, strict=True)]
    if language != "fr":
        return _stemmer(language).stemWords(words)
    accented = []
    for word in words:
        for folded, written in _FRENCH_ENDINGS:
            if word.endswith(folded):
                word = word[: -len(folded)] + written
                break
        accented.append(word)
    stems = _stemmer(language).stemWords(accented)
    for i, (word, stem) in enumerate(zip(accented, stems, strict=True)):
        for ending in _IMPERFECT_SUBJUNCTIVE:
            if word.endswith(ending) and len(stem) == len(word) - len(ending):
                stems[i] = stem + "ass"  # tabasse, tabassent (and tabassé folded) -> tabass
                break
    return [fold(stem) for stem in stems]


def stem_languages(language: str | None) -> tuple[str, ...]:
    """The stemmers an article's words are read with: its language's, or every one (English
    and French) when its language has none or is unknown, as rules try both."""
    code = base_language(language)
    return (code,) if code in STEM_LANGUAGES else tuple(STEM_LANGUAGES)


def words_and_spans(text: str) -> list[tuple[str, int, int]]:
    """Each word of `text` as rules compare it (folded, an inclusive ending read as the
    masculine, ligatures written out), with where it is written in `text` (start, end)."""
    folded = word_text(text)
    # exilé·es is read as exilés, in the place of "exilé·e": its span is the whole of it.
    ends = {m.start(): m.end() for m in INCLUSIVE.finditer(text)} if not text.isascii() else {}
    found = []
    for start, word in zip(token_starts(folded), folded.split(), strict=True):
        end = start + len(word)
        found.append((spelt_out(word), start, ends.get(end - 1) or ends.get(end, end)))
    return found


def stemmed_texts(texts: Iterable[str], language: str) -> list[str]:
    """The Snowball stems of each text's words in `language` ('en' or 'fr'), in order, one
    space apart: "Police slapped migrants" -> "polic slap migrant". What the search index holds
    for `word~`, so that a phrase or NEAR of stems has its words where the text has them."""
    fields = []
    for text in texts:
        words = word_text(text).split()
        fields.append(words if text.isascii() else [spelt_out(w) for w in words])
    found = stem_map({word for words in fields for word in words}, language)
    return [" ".join(map(found.__getitem__, words)) for words in fields]


def query_words(text: str) -> list[str]:
    """The words of a word or phrase typed in a query, as articles' words are compared: in
    Unicode's composed form, without invisible characters, folded, inclusive endings read as
    the masculine, ligatures written out (`Exilé·es` -> ["exiles"], `pepper-spray` ->
    ["pepper", "spray"])."""
    text = inclusive_words(without_invisible(unicodedata.normalize("NFC", text)))
    return [spelt_out(w) for w in TOKEN.findall(fold(text))]


_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")


def language_code(value: str) -> str | None:
    """The ISO 639 code a rule names as it is compared with articles' ('fr-FR' -> 'fr'), or
    None when `value` is not one ('english', 'français')."""
    code = base_language(value)
    return code if _LANGUAGE_CODE.fullmatch(code) else None


class NotUtf8Error(UnicodeError):
    """A file that is not UTF-8, with where its first other byte is (1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def read_utf8(path: Path) -> str:
    """A text file operators edit (config.toml, rule files), UTF-8 with or without the byte
    order mark Notepad writes. Raises NotUtf8Error saying where the first byte that is not
    UTF-8 is, and what to do: a file saved as Windows-1252 or Latin-1 by an older editor said
    "'utf-8' codec can't decode byte 0xe9 in position 31", with no line."""
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        guess = data[e.start : e.start + 1].decode("cp1252", "replace")
        raise NotUtf8Error(
            f"not UTF-8 (byte 0x{data[e.start]:02x}, {guess!r} in Windows-1252): save the file"
            " as UTF-8",
            line,
            column,
        ) from None


def base_language(language: str | None) -> str:
    """'en-GB' -> 'en'; unknown or empty -> ''."""
    if not language:
        return ""
    return language.strip().lower().replace("_", "-").split("-")[0]


def counted(n: int, noun: str) -> str:
    """'1 feed', '2 feeds', '1 entity', '0 matches', '39,710 articles': a count with its noun
    agreeing, its thousands apart (an NGO's "Polled 2000 feeds: 39710 new articles" stood
    beside status's "39,710 stored")."""
    if n == 1:
        return f"1 {noun}"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return f"{n:,} {noun[:-1]}ies"
    return f"{n:,} {noun}{'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else 's'}"
