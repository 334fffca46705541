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


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}


class Styled(HTMLParser):
    """Each piece of text of an HTML document's body with the CSS its elements' style
    attributes give it, as a mail client that reads nothing else (no <style>, no class) shows
    it: for each property, the declaration of the nearest element that has one. `background`
    is the colour the text is drawn on."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, dict[str, str]]] = []
        self.texts: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.open.append((tag, declarations(dict(attrs).get("style") or "")))

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            assert self.open.pop()[0] == tag, tag

    def handle_data(self, data: str) -> None:
        if data.strip() and any(tag == "body" for tag, _ in self.open):
            style: dict[str, str] = {}
            for _, declared in self.open:
                style.update(declared)
            self.texts.append((data.strip(), style))

    def style_of(self, text: str) -> dict[str, str]:
        """The style of the first piece of text that starts with `text`."""
        return next(style for shown, style in self.texts if shown.startswith(text))


def declarations(style: str) -> dict[str, str]:
    """A style attribute's declarations, `background-color` as `background`."""
    found = {}
    for declaration in style.split(";"):
        name, colon, value = declaration.partition(":")
        if colon:
            name = name.strip().lower()
            found["background" if name == "background-color" else name] = value.strip()
    return found
