"""OPML subscription lists, the form feed readers import and export: read with
listparser, written with ElementTree (which escapes every attribute)."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from kbase.errors import InputError
from kbase.sources.base import DEFAULT_MAX_BYTES
from kbase.sources.feeds import refuse_entity_declarations
from kbase.sources.fetch import check_url
from kbase.sources.files import read_file
from kbase.sources.messages import one_line

log = logging.getLogger("kbase")

# Characters XML 1.0 cannot hold at all, even escaped.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Subscription:
    """One feed of a subscription list."""

    url: str
    title: str | None = None


def read_opml(path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Subscription]:
    """The feeds an OPML file lists (nested outlines included), in order.

    An outline whose address is not plain http(s) is logged and left out; a file
    that is not a subscription list, or lists no feed, is an :class:`InputError`.
    """
    data = read_file(path, max_bytes)
    # Checked on the text as a parser would read it; listparser never expands them
    # either, but a list that declares entities is no subscription list to trust.
    refuse_entity_declarations(path, data.decode("utf-8", errors="replace"))
    import listparser

    try:
        # Bytes, never a str: listparser fetches a str that looks like a URL.
        parsed: Any = listparser.parse(data)
    except Exception as exc:  # a third-party parser: any failure is an unreadable list
        raise InputError(
            f"{path} is not a readable OPML file ({one_line(exc, 120)}): "
            "give the OPML file a feed reader exported"
        ) from None
    out: list[Subscription] = []
    seen: set[str] = set()
    for feed in parsed.get("feeds") or []:
        url = str(feed.get("url") or "").strip()
        try:
            check_url(url)
        except InputError as exc:
            log.warning("%s: skipping a feed: %s", path, exc)
            continue
        if url in seen:
            continue
        seen.add(url)
        title = one_line(feed.get("title") or "", 500) or None
        out.append(Subscription(url, None if title == url else title))
    if not out:
        problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
        why = f" ({one_line(problem, 120)})" if problem else ""
        raise InputError(
            f"{path} lists no http(s) feed{why}: give an OPML file with "
            '<outline xmlUrl="..."> entries'
        )
    return out


def write_opml(subscriptions: list[Subscription], *, title: str = "kbase subscriptions") -> str:
    """An OPML 2.0 document listing ``subscriptions``."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _xml_text(title)
    body = ET.SubElement(root, "body")
    for sub in subscriptions:
        name = _xml_text(sub.title or sub.url)
        ET.SubElement(body, "outline", type="rss", text=name, title=name, xmlUrl=_xml_text(sub.url))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("", value)
