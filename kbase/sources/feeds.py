"""RSS 2.0, Atom and RDF (RSS 1.0) feeds: one document per entry, parsed by feedparser."""

from __future__ import annotations

import io
import logging
import re
from datetime import datetime
from typing import Any
from xml.sax import SAXParseException

from kbase.errors import InputError
from kbase.hashing import content_hash
from kbase.sources.base import SourceDocument
from kbase.sources.dates import from_struct_time, parse_date
from kbase.sources.fields import check_id
from kbase.sources.files import decode_as
from kbase.sources.html import html_to_text
from kbase.sources.messages import one_line

log = logging.getLogger("kbase")

_DOCTYPE = re.compile(r"<!doctype", re.I)
_ENTITY = re.compile(r"<!entity", re.I)
_XML_ENCODING = re.compile(rb"""\A\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
# The same declaration in decoded text; group 2 is the encoding's name.
_XML_ENCODING_TEXT = re.compile(r"""\A(\s*<\?xml[^>]*?encoding\s*=\s*["'])([A-Za-z0-9._:-]+)""")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_GIVE_FEED = "give an RSS, Atom or RDF feed"


def refuse_entity_declarations(name: str, markup: str) -> None:
    """Refuse XML with a DOCTYPE that declares entities (entity-expansion bombs, external files).

    ``markup`` is the decoded text, exactly what the parser is given, so that no
    encoding (UTF-7, EBCDIC, ...) can spell the declarations past this check. Such
    declarations are never expanded or fetched: the whole input is rejected.
    """
    doctype = _DOCTYPE.search(markup)
    if doctype is not None and _ENTITY.search(markup, doctype.end()):
        raise InputError(
            f"{name} declares XML entities in a <!DOCTYPE>, which kbase refuses to expand: "
            "remove the DOCTYPE block"
        )


def read_feed(
    name: str, source: str, data: bytes, *, charset: str | None = None
) -> list[SourceDocument]:
    """The documents of a feed's bytes, one per entry that has text.

    ``charset`` is the HTTP-declared encoding, used when the XML declaration names none.
    Entries without text are skipped and entries repeating an earlier id are dropped (both
    logged). Input that is not a feed, or a feed without entries, is an error.
    """
    markup = _decode(name, data, charset)
    refuse_entity_declarations(name, markup)
    import feedparser

    try:
        # A stream, so that feedparser never takes the input for a URL or a file name; and
        # UTF-8, so that it parses exactly the text checked above, whatever was declared.
        parsed: Any = feedparser.parse(io.BytesIO(_as_utf8(markup)))
    except Exception as exc:  # a third-party parser: any failure is an unreadable feed
        raise InputError(
            f"{name} is not a readable feed ({one_line(exc, 120)}): {_GIVE_FEED}"
        ) from None
    entries: list[Any] = list(parsed.get("entries") or [])
    if not entries:
        raise _no_entries(name, parsed)
    if parsed.get("bozo"):
        log.warning("%s: feed is not well-formed (%s); read it leniently", name, _problem(parsed))

    documents: list[SourceDocument] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        document = _entry_document(name, source, position, entry)
        if document is None:
            continue
        if document.doc_id in seen:
            log.warning(
                "%s: entry %d repeats id %r; keeping the first one",
                name, position, one_line(document.doc_id, 80),
            )  # fmt: skip
            continue
        seen.add(document.doc_id)
        documents.append(document)
    if not documents:
        raise InputError(f"{name} has {len(entries)} entries but none has any text: {_GIVE_FEED}")
    return documents


def _entry_document(name: str, source: str, position: int, entry: Any) -> SourceDocument | None:
    text = _entry_text(entry)
    if not text:
        log.warning("%s: skipping entry %d: it has no text", name, position)
        return None
    link = _string(dict.get(entry, "link"))
    doc_id = _string(dict.get(entry, "id")) or link or content_hash(text)
    return SourceDocument(
        doc_id=check_id(f"{name}: entry {position}", doc_id),
        text=text,
        source=source,
        title=_entry_title(entry),
        url=link,
        published=_entry_date(name, position, entry),
    )


def _entry_text(entry: Any) -> str:
    contents = [c for c in dict.get(entry, "content") or [] if _string(c.get("value"))]
    # Prefer an HTML body (the full article in most feeds) over a plain-text alternative.
    contents.sort(key=lambda c: 0 if c.get("type") in _HTML_TYPES else 1)
    candidates = [*contents, dict.get(entry, "summary_detail") or {}]
    for candidate in candidates:
        text = _detail_text(candidate)
        if text:
            return text
    return _detail_text({"type": "text/html", "value": dict.get(entry, "summary")})


def _entry_title(entry: Any) -> str | None:
    detail = dict.get(entry, "title_detail") or {"value": dict.get(entry, "title")}
    title = _detail_text(detail)
    return one_line(title, 500) or None


def _detail_text(detail: Any) -> str:
    value = _string(detail.get("value"))
    if not value:
        return ""
    if detail.get("type") in _HTML_TYPES:
        return html_to_text(value)
    return value.strip()


def _entry_date(name: str, position: int, entry: Any) -> datetime | None:
    for key in ("published", "updated", "created"):
        parsed = from_struct_time(dict.get(entry, f"{key}_parsed"))
        if parsed is not None:
            return parsed
        raw = _string(dict.get(entry, key))
        if raw:
            parsed = parse_date(raw)
            if parsed is not None:
                return parsed
            log.warning("%s: entry %d has an unreadable date %r", name, position, one_line(raw, 60))
    return None


def _no_entries(name: str, parsed: Any) -> InputError:
    if parsed.get("bozo"):
        return InputError(f"{name} is not a valid feed ({_problem(parsed)}): {_GIVE_FEED}")
    if not parsed.get("version"):
        return InputError(
            f"{name} is not an RSS, Atom or RDF feed: check that it is the feed itself"
        )
    return InputError(f"{name} is a feed without entries: give a feed with at least one entry")


def _problem(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    message = one_line(exc, 120) or type(exc).__name__
    if isinstance(exc, SAXParseException):
        return f"line {exc.getLineNumber()}: {one_line(exc.getMessage(), 120)}"
    return message


def _decode(name: str, data: bytes, charset: str | None) -> str:
    """The feed as text, in the encoding it declares (else ``charset``, else UTF-8).

    A declaration that does not read the same once decoded (``encoding="cp500"`` on
    ASCII bytes, say) is a mismatch and refused: the bytes are not in that encoding.
    """
    declared = _XML_ENCODING.match(data[:1024])
    encoding = declared.group(1).decode("ascii") if declared else charset or "utf-8"
    markup = decode_as(name, data, encoding)
    if declared is not None:
        again = _XML_ENCODING_TEXT.match(markup)
        if again is None or again.group(2).lower() != encoding.lower():
            raise InputError(
                f"{name} declares encoding {one_line(encoding, 40)!r} but is not written in "
                "it: convert it to UTF-8 (and declare that)"
            )
    return markup


def _as_utf8(markup: str) -> bytes:
    """``markup`` as UTF-8 bytes whose XML declaration, if any, says so."""
    return _XML_ENCODING_TEXT.sub(r"\g<1>utf-8", markup, count=1).encode("utf-8")


def _string(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
