"""A parsed HTML page for the docs tests (stdlib ``html.parser``): elements with attributes,
their text, and tables as rows of cell text."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "wbr", "source"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.text_parts).strip()

    def iter(self) -> list[Element]:
        out = [self]
        for child in self.children:
            out.extend(child.iter())
        return out

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        def matches(e: Element) -> bool:
            for k, v in attrs.items():
                key = k.rstrip("_").replace("_", "-")
                if key == "class":
                    if v not in e.attrs.get("class", "").split():
                        return False
                elif e.attrs.get(key) != v:
                    return False
            return True

        return [e for e in self.iter() if e.tag == tag and matches(e)]

    def by_id(self, element_id: str) -> Element:
        found = [e for e in self.iter() if e.attrs.get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def table_rows(self) -> list[list[str]]:
        """Body rows of a table, as the text of each cell."""
        return [[td.text for td in tr.find_all("td")] for tr in self.find_all("tr") if tr.find_all("td")]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack[1:]:
            element.text_parts.append(data)


def parse(path: Path) -> Element:
    parser = _Parser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.root
