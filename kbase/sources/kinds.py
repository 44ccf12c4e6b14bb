"""Which kind of source a file, a download or standard input holds."""

from __future__ import annotations

import enum
import json
import re
from pathlib import PurePath


class Kind(enum.Enum):
    """The kinds of input kbase reads."""

    FEED = "feed"
    JSONL = "jsonl"
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


#: File name extensions (lower case, with the dot) and the kind each one means.
EXTENSIONS: dict[str, Kind] = {
    ".xml": Kind.FEED,
    ".rss": Kind.FEED,
    ".atom": Kind.FEED,
    ".rdf": Kind.FEED,
    ".jsonl": Kind.JSONL,
    ".ndjson": Kind.JSONL,
    ".txt": Kind.TEXT,
    ".md": Kind.MARKDOWN,
    ".markdown": Kind.MARKDOWN,
    ".html": Kind.HTML,
    ".htm": Kind.HTML,
}

#: Media types that settle the kind of a download on their own.
_MEDIA_TYPES: dict[str, Kind] = {
    "application/rss+xml": Kind.FEED,
    "application/atom+xml": Kind.FEED,
    "application/rdf+xml": Kind.FEED,
    "application/x-ndjson": Kind.JSONL,
    "application/ndjson": Kind.JSONL,
    "application/jsonl": Kind.JSONL,
    "application/x-jsonlines": Kind.JSONL,
    "application/jsonlines": Kind.JSONL,
    "text/markdown": Kind.MARKDOWN,
    "text/x-markdown": Kind.MARKDOWN,
    "text/html": Kind.HTML,
    "application/xhtml+xml": Kind.HTML,
}

_BOMS = (b"\xef\xbb\xbf",)
# Markup before the root element: XML declaration, processing instructions, comments, DOCTYPE.
_PROLOG_ITEM = re.compile(rb"\s*(<\?.*?\?>|<!--.*?-->|<!doctype[^>\[]*(\[.*?\]\s*)?>)", re.I | re.S)
_ROOT_TAG = re.compile(rb"\s*<([A-Za-z_][\w.:-]*)")
_FEED_ROOTS = {b"rss", b"feed", b"rdf:rdf", b"rdf", b"channel"}
_SNIFF_BYTES = 64 * 1024


def kind_from_extension(path: str) -> Kind | None:
    """The kind a file name's extension means, or ``None`` for an unknown extension."""
    return EXTENSIONS.get(PurePath(path).suffix.lower())


def kind_from_media_type(content_type: str | None) -> Kind | None:
    """The kind an HTTP ``Content-Type`` settles on its own, or ``None`` for a vague one.

    ``text/plain``, ``application/xml``, ``application/octet-stream`` and the like are vague:
    the content decides.
    """
    if not content_type:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    return _MEDIA_TYPES.get(media_type)


def sniff_kind(data: bytes) -> Kind:
    """The kind of ``data`` judged by its first bytes.

    An XML prolog or an ``rss``/``feed``/``rdf:RDF`` root is a feed (an XML document whose
    root is ``html`` is HTML), an ``html`` root or HTML DOCTYPE is HTML, a first non-blank
    line that is a JSON object is JSONL, and anything else is Markdown/plain text.
    """
    head = data[:_SNIFF_BYTES]
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
    head = head.lstrip()
    lowered = head.lower()
    if lowered.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf:rdf", b"<!doctype", b"<html")):
        return _markup_kind(head)
    if head.startswith(b"<!--"):
        return _markup_kind(head) if _root_tag(head) is not None else Kind.MARKDOWN
    if head.startswith(b"{") and _first_line_is_json_object(data):
        return Kind.JSONL
    return Kind.MARKDOWN


def _markup_kind(head: bytes) -> Kind:
    root = _root_tag(head)
    is_xml = head.lower().startswith(b"<?xml")
    doctype = re.search(rb"<!doctype\s+([\w:.-]+)", head[:4096], re.I)
    if root == b"html" or (doctype is not None and doctype.group(1).lower() == b"html"):
        return Kind.HTML
    if root is not None and (root in _FEED_ROOTS or root.endswith(b":rdf")):
        return Kind.FEED
    if is_xml:
        # Some other XML document: let the feed parser say what is wrong with it.
        return Kind.FEED
    return Kind.HTML


def _root_tag(head: bytes) -> bytes | None:
    position = 0
    while True:
        item = _PROLOG_ITEM.match(head, position)
        if item is None or item.end() == position:
            break
        position = item.end()
    root = _ROOT_TAG.match(head, position)
    return root.group(1).lower() if root else None


def _first_line_is_json_object(data: bytes) -> bool:
    start = data.find(b"{")
    end = data.find(b"\n", start)
    line = data[start:] if end == -1 else data[start:end]
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False


def kind_of_download(content_type: str | None, url: str, data: bytes) -> Kind:
    """The kind of a downloaded body: a telling Content-Type, else the content itself.

    Text that the content alone cannot place is plain text when the URL path ends in
    ``.txt`` and Markdown otherwise.
    """
    by_media_type = kind_from_media_type(content_type)
    if by_media_type is not None:
        return by_media_type
    sniffed = sniff_kind(data)
    if sniffed is Kind.MARKDOWN and kind_from_extension(url.split("?", 1)[0]) is Kind.TEXT:
        return Kind.TEXT
    return sniffed
