"""Reading HTML the way the tests check it: every tag with its attributes, and the text."""

from __future__ import annotations

from html.parser import HTMLParser

# The only tags a digest's HTML may contain (templates/digest.html), whatever the feeds carried.
DIGEST_TAGS = {"html", "head", "meta", "title", "body", "div", "h1", "h2", "span", "p", "a", "b"}
DIGEST_TAGS |= {"br"}


class Markup(HTMLParser):
    """Every tag and attribute of an HTML document, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)
