"""British and American spellings of one English word: what `rules test` names when a rule's
word is missing and the text has it spelt the other way ("defense" for `defence`).

Rules match words, and the two spellings are two words, stemmed or not (Snowball stems
organise to organis and organize to organiz). Joining them in matching would need a
dictionary: "prise" and "prize" are two words. A hint can do without one, since it is said only
of a variant the article has. Pure.
"""

from __future__ import annotations

# Endings spelt two ways, British first. Each is looked for past the first three letters of a
# word, so "for" is no spelling of "four", "hence" of "hense", nor "prise" of "prize".
_ANYWHERE = (
    ("ise", "ize"),  # organise, criminalised
    ("isa", "iza"),  # organisation
    ("isi", "izi"),  # organising
    ("yse", "yze"),  # analyse, paralysed
    ("ysi", "yzi"),  # analysing
    ("our", "or"),  # labour, honoured, behaviour
    ("ence", "ense"),  # defence, offences, licence
    ("elled", "eled"),  # travelled, cancelled
    ("elling", "eling"),  # labelling
    ("eller", "eler"),  # traveller
)
_AT_THE_END = (  # of the word, or before a plural's s
    ("tre", "ter"),  # centre, theatres
    ("bre", "ber"),  # fibre, calibre
    ("ogue", "og"),  # catalogue, dialogue
)
_WHOLE = {
    "programme": "program",
    "programmes": "programs",
    "judgement": "judgment",
    "judgements": "judgments",
    "grey": "gray",
    "sceptic": "skeptic",
    "sceptics": "skeptics",
    "sceptical": "skeptical",
    "jewellery": "jewelry",
    "tyre": "tire",
    "tyres": "tires",
    "aluminium": "aluminum",
    "ageing": "aging",
    "manoeuvre": "maneuver",
    "paedophile": "pedophile",
    "paedophiles": "pedophiles",
}
_WHOLE_BACK = {american: british for british, american in _WHOLE.items()}
_FIRST = 3  # letters of a word before an ending spelt two ways


def other_spellings(word: str, prefix: bool = False) -> list[str]:
    """The other spellings of a folded English word (or, with `prefix`, of the beginning of
    one, for a wildcard: criminalis* -> criminaliz*), British for American and American for
    British: defence -> defense, labor -> labour, organise -> organize, centre -> center."""
    found = [w for w in (_WHOLE.get(word), _WHOLE_BACK.get(word)) if w]
    if prefix and len(word) - 2 >= _FIRST:
        swapped = {"is": "iz", "iz": "is", "ys": "yz", "yz": "ys"}.get(word[-2:])
        if swapped:
            found.append(word[:-2] + swapped)
    for british, american in _ANYWHERE:
        for one, other in ((british, american), (american, british)):
            at = word.find(one, _FIRST)
            while at >= 0:
                found.append(word[:at] + other + word[at + len(one) :])
                at = word.find(one, at + 1)
    stem = word[:-1] if word.endswith("s") else word
    plural = word[len(stem) :]
    for british, american in _AT_THE_END:
        for one, other in ((british, american), (american, british)):
            if stem.endswith(one) and len(stem) - len(one) >= _FIRST:
                found.append(stem[: -len(one)] + other + plural)
    return list(dict.fromkeys(w for w in found if w != word))
