"""Reading HTML the way the tests check it: every tag with its attributes, and the text."""

from __future__ import annotations

from html.parser import HTMLParser


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
