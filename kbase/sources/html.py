"""HTML to plain text: whole pages (main text via trafilatura) and feed-entry fragments."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import lxml.etree
import lxml.html

from kbase.errors import InputError
from kbase.sources.dates import parse_date
from kbase.sources.files import decode_as
from kbase.sources.messages import one_line

log = logging.getLogger("kbase")

# Elements whose text is never shown.
_HIDDEN = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "meta", "link", "iframe", "svg"}
)
# Elements that start and end a paragraph.
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section",
        "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_PARAGRAPH = object()  # a paragraph break in the flattened text
_LINE = object()  # a line break (<br>) inside a paragraph
_CHARSET_META = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)"""
    rb"""|\A\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)""",
    re.I,
)
# The same declarations in decoded text.
_CHARSET_META_TEXT = re.compile(_CHARSET_META.pattern.decode("ascii"), re.I)
# lxml refuses text that starts with an XML declaration naming an encoding.
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_HEAD_BYTES = 4096
# htmldate settings: the original publication date, with its time and offset when known.
_DATE_PARAMS = {
    "original_date": True,
    "extensive_search": False,
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
}


@dataclass(frozen=True)
class HtmlPage:
    """The readable part of one HTML page."""

    text: str
    title: str | None
    url: str | None
    published_text: str | None


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment or page: paragraphs separated by blank lines.

    Scripts, styles and the like are dropped; whitespace inside a paragraph is collapsed,
    ``<br>`` becomes a line break and ``<pre>`` keeps its lines.
    """
    markup = _XML_DECLARATION.sub("", markup)
    if not markup.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (lxml.etree.LxmlError, ValueError):
        return " ".join(markup.split())
    return _element_text(root)


def _element_text(root: lxml.html.HtmlElement) -> str:
    parts: list[object] = []
    in_pre = 0
    # Depth first without recursion: (node, False) opens a node, (node, True) closes it.
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        tag = node.tag.lower() if isinstance(node.tag, str) else None  # None: comment, PI
        if not closing:
            stack.append((node, True))
            if tag is None or tag in _HIDDEN:
                continue
            if tag in _BLOCKS:
                parts.append(_PARAGRAPH)
            if tag == "br":
                parts.append(_LINE)
            if tag == "pre":
                in_pre += 1
            if node.text:
                _add_text(parts, node.text, in_pre > 0)
            stack.extend((child, False) for child in reversed(node))
            continue
        if tag == "pre":
            in_pre -= 1
        if tag in _BLOCKS:
            parts.append(_PARAGRAPH)
        if node.tail and node is not root:
            _add_text(parts, node.tail, in_pre > 0)
    return _join(parts)


def decode_html(name: str, data: bytes, charset: str | None = None) -> str:
    """HTML bytes as text, using a byte-order mark, ``charset`` (from HTTP), or ``<meta charset>``.

    Without any of them the bytes must be UTF-8. Bytes that do not decode are an error, and
    so is a declaration that does not read the same once decoded (an encoding mismatch).
    """
    declared = None if charset else _meta_charset(data)
    markup = decode_as(name, data, charset or declared or "utf-8")
    if declared is not None:
        again = _CHARSET_META_TEXT.search(markup[:_HEAD_BYTES])
        if again is None or (again.group(1) or again.group(2)).lower() != declared.lower():
            raise InputError(
                f"{name} declares charset {one_line(declared, 40)!r} but is not written in "
                "it: convert it to UTF-8 (and declare that)"
            )
    return markup


def extract_page(name: str, markup: str, url: str | None = None) -> HtmlPage:
    """The main text, title, canonical URL and date of an HTML page.

    The main text comes from trafilatura (boilerplate such as menus and footers left out);
    when it finds none, the whole visible text is taken instead. No text at all is an error.
    """
    markup = _XML_DECLARATION.sub("", markup)
    text, title, page_url, published = _trafilatura(name, markup, url)
    if not text:
        log.info("%s: no main text found, taking all visible text", name)
        text = _visible_text(markup)
    if not text:
        raise InputError(f"{name} has no readable text: give a page with some text in it")
    return HtmlPage(
        text=text,
        title=title or _title_element(markup),
        url=page_url or url,
        published_text=published,
    )


def published_date(name: str, value: str | None) -> datetime | None:
    """The page date as naive UTC, or ``None`` (logged) when it does not parse."""
    if not value:
        return None
    parsed = parse_date(value)
    if parsed is None:
        log.warning("%s: ignoring unreadable date %r", name, one_line(value, 60))
    return parsed


def _trafilatura(
    name: str, markup: str, url: str | None
) -> tuple[str, str | None, str | None, str | None]:
    import trafilatura

    try:
        document = trafilatura.bare_extraction(
            markup,
            url=url,
            include_comments=False,
            include_tables=True,
            with_metadata=True,
            date_extraction_params=_DATE_PARAMS,
        )
    except Exception as exc:  # a third-party parser: any failure means "use the fallback"
        log.warning("%s: trafilatura failed (%s), taking all visible text", name, one_line(exc))
        return "", None, None, None
    if document is None or isinstance(document, dict):
        return "", None, None, None
    text = _paragraphs(document.text or "")
    return (
        text,
        _clean(document.title),
        _clean(document.url),
        _clean(document.date),
    )


def _paragraphs(text: str) -> str:
    # trafilatura puts one block per line; kbase separates paragraphs with a blank line.
    return "\n\n".join(line.strip() for line in text.splitlines() if line.strip())


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return one_line(value, 500) or None


def _visible_text(markup: str) -> str:
    try:
        document = lxml.html.document_fromstring(markup)
    except (lxml.etree.LxmlError, ValueError):
        return ""
    body = document.find("body")
    return _element_text(body if body is not None else document)


def _title_element(markup: str) -> str | None:
    try:
        document = lxml.html.document_fromstring(markup)
    except (lxml.etree.LxmlError, ValueError):
        return None
    title = document.findtext(".//title")
    return one_line(title) or None if title else None


def _meta_charset(data: bytes) -> str | None:
    match = _CHARSET_META.search(data[:_HEAD_BYTES])
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("ascii")


def _add_text(parts: list[object], text: str, preformatted: bool) -> None:
    if not preformatted:
        parts.append(text)
        return
    for index, line in enumerate(text.split("\n")):
        if index:
            parts.append(_LINE)
        parts.append(_Pre(line))


class _Pre(str):
    """A piece of preformatted text: its spaces are kept."""

    __slots__ = ()


def _join(parts: list[object]) -> str:
    paragraphs: list[str] = []
    lines: list[str] = []
    pieces: list[str] = []

    def end_line() -> None:
        if any(isinstance(piece, _Pre) for piece in pieces):
            line = "".join(pieces).rstrip()
        else:
            line = " ".join("".join(pieces).split())
        pieces.clear()
        if line.strip():
            lines.append(line)

    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        end_line()
        if part is _PARAGRAPH and lines:
            paragraphs.append("\n".join(lines))
            lines.clear()
    end_line()
    if lines:
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)
