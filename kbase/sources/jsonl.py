"""JSON Lines: one document per line, ``{"id": ..., "text": ...}`` plus optional fields."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from kbase.errors import InputError
from kbase.sources.base import SourceDocument
from kbase.sources.dates import parse_date
from kbase.sources.fields import check_id
from kbase.sources.messages import one_line

log = logging.getLogger("kbase")

_FIELDS = "id, text and optional title, url, published"


def read_jsonl(
    name: str, source: str, text: str, *, skip_bad: bool = False
) -> list[SourceDocument]:
    """The documents of a JSONL text, one per non-blank line.

    Each line is an object with ``id`` (a string or an integer), ``text`` (a non-empty string)
    and optionally ``title``, ``url`` and ``published`` (``YYYY-MM-DD``, ISO 8601 or RFC 822);
    other keys are ignored. The first bad line is an error naming ``name:line``, unless
    ``skip_bad`` is set: then bad lines are logged and left out. An id used twice is bad.
    """
    documents: list[SourceDocument] = []
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"{name}:{number}"
        try:
            document = _document(where, source, line)
            if document.doc_id in first_line_of:
                raise InputError(
                    f"{where}: id {one_line(document.doc_id, 80)!r} is already used on line "
                    f"{first_line_of[document.doc_id]}: give each line its own id"
                )
        except InputError as exc:
            if not skip_bad:
                raise
            log.warning("skipping a bad line: %s", exc)
            continue
        first_line_of[document.doc_id] = number
        documents.append(document)
    if not documents:
        if skip_bad:
            raise InputError(f"{name} has no valid lines: fix the lines reported above")
        raise InputError(f"{name} has no lines: give one JSON object ({_FIELDS}) per line")
    return documents


def _document(where: str, source: str, line: str) -> SourceDocument:
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno}): "
            f"give one JSON object ({_FIELDS}) per line"
        ) from None
    except RecursionError:
        raise InputError(
            f"{where}: JSON nested too deeply: give one flat JSON object per line"
        ) from None
    if not isinstance(record, dict):
        raise InputError(
            f"{where}: {_json_type(record)}, not a JSON object: "
            f"give one JSON object ({_FIELDS}) per line"
        )
    for key, value in record.items():
        if isinstance(value, str) and not _encodable(value):
            raise InputError(
                f"{where}: {key!r} holds an escape that is not a character (an unpaired "
                "surrogate such as \\ud800): fix or remove it"
            )
    return SourceDocument(
        doc_id=_doc_id(where, record),
        text=_text(where, record),
        source=source,
        title=_optional_string(where, record, "title"),
        url=_optional_string(where, record, "url"),
        published=_published(where, record),
    )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _doc_id(where: str, record: dict[str, Any]) -> str:
    value = record.get("id")
    if value is None:
        raise InputError(f'{where}: missing "id": give each line an "id" (a string or a number)')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f'{where}: "id" must be a string or an integer, not {_json_type(value)}')
    doc_id = str(value).strip()
    if not doc_id:
        raise InputError(f'{where}: "id" is empty: give each line a non-empty "id"')
    return check_id(where, doc_id)


def _text(where: str, record: dict[str, Any]) -> str:
    value = record.get("text")
    if value is None:
        raise InputError(f'{where}: missing "text": give each line a "text" string')
    if not isinstance(value, str):
        raise InputError(f'{where}: "text" must be a string, not {_json_type(value)}')
    if not value.strip():
        raise InputError(f'{where}: "text" is empty: give each line some text')
    return value


def _optional_string(where: str, record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f'{where}: "{key}" must be a string, not {_json_type(value)}')
    return value.strip() or None


def _published(where: str, record: dict[str, Any]) -> datetime | None:
    value = record.get("published")
    if value is None or value == "":
        return None
    parsed = parse_date(value) if isinstance(value, str) else None
    if parsed is None:
        shown = one_line(value, 60) if isinstance(value, str) else json.dumps(value)[:60]
        raise InputError(f"{where}: bad published date {shown!r}: use YYYY-MM-DD or ISO 8601")
    return parsed


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object"}
    return names.get(type(value), "null")
