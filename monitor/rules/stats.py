"""How common words are: the presearcher files each rule under its rarest words."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping

# ("w", word) | ("p", prefix) | ("s:en", stem) | ("s:fr", stem) | ("b", "word word"): two words
# standing together in one field.
Key = tuple[str, str]

# Very common words make poor presearch keys; a rule anchored on one is evaluated for almost
# every article. Costs steer AND towards the rarest child.
STOPWORDS = frozenset(
    """
a an and are as at be by for from has have he her his in is it its of on or that the their
they this to was were will with not no but after over said says new more than who been into up
out le la les un une des du de et en est au aux ce qui que pour par sur dans pas plus il elle
ils se sa son ses ne a l d s y
    """.split()  # noqa: SIM905 - a word list reads better as text
)


class TermStats:
    """How common words are, so the presearcher files each rule under its rarest words.

    Built from document frequencies (the stored articles' FTS vocabulary, see
    Store.term_frequencies); without data, a heuristic: stopwords are common, long words rare.
    A cost approximates the fraction of articles that contain the key.
    """

    def __init__(
        self, document_frequency: Mapping[str, int] | None = None, documents: int = 0
    ) -> None:
        self.df = dict(document_frequency or {})
        self.documents = documents if self.df else 0
        self._sorted = sorted(self.df)
        self._costs: dict[Key, float] = {}

    def _prefix_frequency(self, prefix: str) -> int:
        total = 0
        start = bisect_left(self._sorted, prefix)
        for word in self._sorted[start : start + 2000]:
            if not word.startswith(prefix):
                break
            total += self.df[word]
        return total

    def cost(self, key: Key) -> float:
        # Compiling 100k rules asks about the same words over and over.
        found = self._costs.get(key)
        if found is None:
            found = self._costs[key] = self._cost(key)
        return found

    def _cost(self, key: Key) -> float:
        kind, value = key
        if kind == "b":
            # Two words together are at most as common as both anywhere in the article.
            first, _, second = value.partition(" ")
            return self.cost(("w", first)) * self.cost(("w", second))
        if not self.documents:
            if value in STOPWORDS:
                return 1.0
            return (0.02 + 0.16 / len(value)) if kind == "p" else (0.01 + 0.08 / max(len(value), 1))
        count = self.df.get(value, 0) if kind == "w" else self._prefix_frequency(value)
        fraction = min(1.0, (count + 0.5) / (self.documents + 1))
        return max(fraction, 0.5) if value in STOPWORDS else fraction

    def term_cost(self, term: str) -> float:
        """The cost of a word, a "word word" pair, an "en~stem" or a "prefix*" in a required
        clause."""
        if term.endswith("*"):
            return self.cost(("p", term[:-1]))
        if "~" in term:  # a stem: about as common as the words it begins
            return self.cost(("p", term.partition("~")[2]))
        return self.cost(("b", term) if " " in term else ("w", term))

    def is_common(self, key: Key) -> bool:
        """A key most articles contain: a rule anchored only on such keys matches almost all."""
        return self.cost(key) >= (0.3 if self.documents else 1.0)

    def keys_cost(self, keys: frozenset[Key] | None) -> float:
        return float("inf") if keys is None else sum(self.cost(k) for k in keys)


HEURISTIC = TermStats()
