"""What every document must satisfy to be stored, whatever the database: the id and
field rules applied at the source boundary, and the check of one batch of documents."""

from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata

from kbase.errors import InputError
from kbase.sources.base import SourceDocument
from kbase.sources.messages import one_line

log = logging.getLogger("kbase")

#: Longest document id, in characters (the store's ``doc_id`` column holds 512).
MAX_ID_CHARS = 512
_ID_RULE = f"give an id of at most {MAX_ID_CHARS} characters, none of them a control character"
# C0 and C1 control characters other than whitespace: never part of a title or URL.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")


def shown_id(doc_id: str) -> str:
    """``doc_id`` fit for a message: one line, cut short, control characters escaped."""
    return repr(one_line(doc_id, 80))  # repr escapes ESC, NUL, bidi controls and the like


def id_problem(doc_id: str) -> str | None:
    """Why ``doc_id`` cannot be stored, or ``None`` when it can."""
    if len(doc_id) > MAX_ID_CHARS:
        return f"is {len(doc_id)} characters long"
    for position, char in enumerate(doc_id, start=1):
        if unicodedata.category(char) == "Cc":  # NUL, ESC (terminal escapes), DEL, ...
            return f"holds the control character {char!r} at position {position}"
    return None


def check_id(where: str, doc_id: str) -> str:
    """``doc_id`` if it can be stored, else an :class:`InputError` naming ``where``."""
    problem = id_problem(doc_id)
    if problem is not None:
        raise InputError(f"{where}: id {shown_id(doc_id)} {problem}: {_ID_RULE}")
    return doc_id


def storable(name: str, document: SourceDocument) -> SourceDocument:
    """``document`` as it can be stored in SQLite and PostgreSQL alike.

    The id must pass :func:`check_id`. NUL characters are dropped from the text, and
    control characters other than whitespace from the title and URL (PostgreSQL refuses
    NUL; a terminal obeys escapes). Text left blank by that is an error.
    """
    check_id(name, document.doc_id)
    text = document.text.replace("\x00", "")
    if not text.strip():
        raise InputError(
            f"{name}: document {shown_id(document.doc_id)} has no text but NUL characters: "
            "give it some text"
        )
    title = _without_controls(document.title)
    url = _without_controls(document.url)
    if (text, title, url) == (document.text, document.title, document.url):
        return document
    return dataclasses.replace(document, text=text, title=title, url=url)


def check_parsed_size(name: str, documents: list[SourceDocument], max_chars: int) -> None:
    """Refuse documents parsed from an input of at most ``max_chars`` that hold more text
    than that: parsing should only shrink the input, so text that grew (entities some
    trick got past the checks) goes no further. Each field counts on its own, since a
    title is often a copy of the text's first line."""
    size = max(
        sum(len(d.text) for d in documents),
        sum(len(d.title or "") for d in documents),
        sum(len(d.url or "") for d in documents),
    )
    if size > max_chars:
        raise InputError(
            f"{name} holds {size} characters of text once parsed, more than the limit of "
            f"{max_chars} (--max-bytes): give a smaller input or raise the limit with --max-bytes"
        )


def _without_controls(value: str | None) -> str | None:
    if value is None or not _CONTROL.search(value):
        return value
    return _CONTROL.sub("", value).strip() or None


def check_batch(documents: list[SourceDocument]) -> list[SourceDocument]:
    """The documents of one command, each id once, or an :class:`InputError`.

    An id given again with the same text is the same document: the repeat is dropped
    (logged). An id given again with other text is an error, before anything is stored,
    rather than one text silently replacing the other as a later version.
    """
    first: dict[str, SourceDocument] = {}
    kept: list[SourceDocument] = []
    for document in documents:
        earlier = first.get(document.doc_id)
        if earlier is None:
            first[document.doc_id] = document
            kept.append(document)
        elif earlier.text == document.text:
            log.info(
                "%s: id %s repeats one from %s with the same text; reading it once",
                document.source, shown_id(document.doc_id), earlier.source,
            )  # fmt: skip
        else:
            raise InputError(
                f"id {shown_id(document.doc_id)} is given twice with different texts "
                f"({one_line(earlier.source, 80)} and {one_line(document.source, 80)}): "
                "give each document its own id, or ingest them in separate commands"
            )
    return kept
