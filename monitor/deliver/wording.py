"""The words of a digest and of the unsubscribe page, in the subscriber's language (`language`
in [[subscribers]]): the first subscribers read French. Templates ask for each sentence by its
English text (`{{ _("Matched:") }}`); dates are written by Babel from CLDR's names of days and
months, as each language writes them ("sam. 18 avr., 09:30").

Feed text and rule names are never translated: they reach the templates as data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

# English sentence -> French. %(name)s placeholders are filled after translation. French puts a
# space before : ; ? and !, a no-break one (U+00A0): an ordinary one let a narrow screen wrap "?"
# alone onto the next line of "Ne plus recevoir ces résumés ?" (a subscribers' review).
_FRENCH = {
    "Vigie digest for %(name)s": "Résumé Vigie pour %(name)s",
    "Vigie: nothing new matched your rules": "Vigie\u00a0: rien de nouveau pour vos règles",
    "Vigie: nothing new since %(when)s": "Vigie\u00a0: rien de nouveau depuis le %(when)s",
    "(since %(when)s)": "(depuis le %(when)s)",
    "Vigie: %(counts)s": "Vigie\u00a0: %(counts)s",
    "Vigie: %(urgent)s urgent, %(counts)s": "Vigie\u00a0: %(urgent)s en urgence, %(counts)s",
    "+%(n)s more": "+%(n)s autres",
    "+1 more": "+1 autre",
    "Vigie: %(title)s": "Vigie\u00a0: %(title)s",
    "Vigie, urgent: %(title)s": "Vigie, urgent\u00a0: %(title)s",
    "first seen %(when)s": "repéré %(when)s",
    "Unsubscribe:": "Se désabonner\u00a0:",
    "(untitled)": "(sans titre)",
    "the rule %(ids)s": "la règle %(ids)s",
    "the rules %(ids)s": "les règles %(ids)s",
    "the tag %(ids)s": "le thème %(ids)s",
    "the tags %(ids)s": "les thèmes %(ids)s",
    ", and ": ", ainsi que ",
    " and ": " et ",
    "updated": "mis à jour",
    "Headline before the update:": "Titre avant la mise à jour\u00a0:",
    "urgent": "urgent",
    "URGENT": "URGENT",
    "Also reported by": "Également publié par",
    "Also reported by:": "Également publié par\u00a0:",
    "%(source)s: %(title)s": "%(source)s\u00a0: %(title)s",
    "Story first sent to you on %(when)s; shown again for a rule it now also matches": (
        "Sujet déjà envoyé le %(when)s\u00a0; de nouveau ici pour une règle à laquelle il répond"
        " désormais aussi"
    ),
    "Matched:": "Règles\u00a0:",
    "; ": "\u00a0; ",  # between rule names, which may hold commas
    # No word agrees with the count: "1 article non affichés" read wrong.
    "And %(counts)s past this digest's limit: those above are the most urgent and the best"
    " scored.": (
        "Et %(counts)s au-delà de la limite de ce résumé\u00a0: ceux ci-dessus sont les plus"
        " urgents et les mieux notés."
    ),
    # A subscriber's first digest has no digest before it to count from.
    "Your first digest: nothing has matched your rules yet.": (
        "Votre premier résumé\u00a0: rien ne correspond encore à vos règles."
    ),
    "So that mail clients show this email whole, the least urgent and lowest-scored entries are"
    " listed by their headline alone (%(counts)s); its plain-text version has them in full.": (
        "Pour que les logiciels de messagerie affichent ce courriel en entier, les moins urgents et"
        " les moins bien notés n'y sont cités que par leur titre (%(counts)s)\u00a0; sa version en"
        " texte brut les donne en entier."
    ),
    "Nothing new matched your rules since %(when)s.": (
        "Rien de nouveau pour vos règles depuis le %(when)s."
    ),
    "You receive this digest because you follow %(follows)s (%(schedule)s).": (
        "Vous recevez ce résumé parce que vous suivez %(follows)s (%(schedule)s)."
    ),
    "Unsubscribe": "Se désabonner",
    # Schedules, as config.toml writes them
    "immediate": "dès qu'un article correspond",
    "hourly": "toutes les heures",
    "daily %(time)s": "chaque jour à %(time)s",
    "weekly %(day)s %(time)s": "chaque semaine, le %(day)s à %(time)s",
    "weekdays %(time)s": "du lundi au vendredi à %(time)s",
    # The unsubscribe page
    "Vigie digests": "Résumés Vigie",
    "Stop these digests?": "Ne plus recevoir ces résumés\u00a0?",
    "Vigie sends digests to %(name)s. Press the button and no more will be sent.": (
        "Vigie envoie des résumés à %(name)s. Appuyez sur le bouton et plus aucun ne sera envoyé."
    ),
    "Unsubscribed": "Désabonnement effectué",
    "%(name)s will receive no more Vigie digests. To receive them again, ask the person who"
    " runs this Vigie.": (
        "%(name)s ne recevra plus de résumés Vigie. Pour les recevoir de nouveau, demandez-le à"
        " la personne qui gère ce Vigie."
    ),
    "Already unsubscribed": "Déjà désabonné",
    "%(name)s receives no Vigie digests. To receive them again, ask the person who runs this"
    " Vigie.": (
        "%(name)s ne reçoit pas de résumés Vigie. Pour les recevoir de nouveau, demandez-le à la"
        " personne qui gère ce Vigie."
    ),
    "Try again in a moment": "Réessayez dans un instant",
    "This page is busy. Nothing was changed.": "Cette page est occupée. Rien n'a été changé.",
}

# One per language config_delivery.DIGEST_LANGUAGES accepts.
CATALOGS: dict[str, dict[str, str]] = {"en": {}, "fr": _FRENCH}

# What a digest's entries are called, (singular, plural) per language.
_NOUNS = {
    "en": {"stories": ("story", "stories"), "articles": ("article", "articles")},
    "fr": {"stories": ("sujet", "sujets"), "articles": ("article", "articles")},
}

_DAYS = {
    "fr": {
        "sun": "dimanche",
        "mon": "lundi",
        "tue": "mardi",
        "wed": "mercredi",
        "thu": "jeudi",
        "fri": "vendredi",
        "sat": "samedi",
    }
}


def translator(language: str) -> Callable[..., str]:
    """gettext for `language`: the sentence in it (the English one when it has none), with
    its %(name)s placeholders filled from the keyword arguments."""
    catalog = CATALOGS.get(language, {})

    def gettext(message: str, **values: object) -> str:
        text = catalog.get(message, message)
        return text % values if values else text

    return gettext


def spoken_list(items: Sequence[str], language: str = "en") -> str:
    """'a', 'a and b', 'a, b and c'; in French 'a, b et c'."""
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + translator(language)(" and ") + items[-1]


def count_of(n: int, noun: str, language: str = "en") -> str:
    """'1 story', '2 stories', '0 articles'; in French '1 sujet' and, from 2, the plural ('0
    article': French counts none in the singular)."""
    singular, plural = _NOUNS.get(language, _NOUNS["en"])[noun]
    one = n == 1 if language == "en" else n < 2
    return f"{n} {singular if one else plural}"


def when(
    moment: datetime, zone: ZoneInfo, language: str = "en", now: datetime | None = None
) -> str:
    """A time in the subscriber's zone and language: "Tue 18 Apr, 09:30", "mar. 18 avr.,
    09:30", with the year unless it is `now`'s (a 2023 article read as this April's). The day
    without a leading zero, as people write it: "Sat 05 Dec" read as a machine's."""
    local = moment.astimezone(zone)
    year = "" if now is not None and local.year == now.astimezone(zone).year else " y"
    return format_datetime(local, f"EEE d MMM{year}, HH:mm", tzinfo=zone, locale=language)


def schedule(written: str, language: str = "en") -> str:
    """A schedule as config.toml writes it ("daily 08:00"), said in `language`; a cron
    expression as it is."""
    _ = translator(language)
    words = written.split()
    if words == ["immediate"] or words == ["hourly"]:
        return _(words[0])
    if len(words) == 2 and words[0] == "daily":
        return _("daily %(time)s", time=words[1])
    if len(words) == 3 and words[0] == "weekly":
        day = _DAYS.get(language, {}).get(words[1], words[1])
        return _("weekly %(day)s %(time)s", day=day, time=words[2])
    return _cron(words, language) or written


_WEEK = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cron(words: list[str], language: str) -> str:
    """A cron expression at a time of day, every day, on weekdays or on one day of the week, in
    words ("0 8 * * 1-5": "weekdays 08:00"), as config.toml's own schedules are; "" for the
    others, shown as written. The footer said "(0 8 * * 1-5, Europe/Paris)", config.toml's
    example, to a subscriber who reads no cron (a subscribers' review)."""
    if len(words) != 5 or not (words[0].isdigit() and words[1].isdigit()):
        return ""
    minute, hour, day_of_month, month, day_of_week = (w.lower() for w in words)
    if day_of_month != "*" or month != "*" or int(minute) > 59 or int(hour) > 23:
        return ""
    time = f"{int(hour):02d}:{int(minute):02d}"
    _ = translator(language)
    if day_of_week == "*":
        return _("daily %(time)s", time=time)
    if day_of_week in ("1-5", "mon-fri"):
        return _("weekdays %(time)s", time=time)
    if len(day_of_week) == 1 and day_of_week in "01234567":
        day = _WEEK[int(day_of_week)]
    elif day_of_week in _WEEK:
        day = day_of_week
    else:
        return ""
    return _("weekly %(day)s %(time)s", day=_DAYS.get(language, {}).get(day, day), time=time)
