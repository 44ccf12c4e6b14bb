"""Reading what a model answered: never trusted, never allowed to crash the caller."""

from __future__ import annotations

import json
from typing import Any


def parse_json(text: str | None) -> Any | None:
    """The JSON value of a model answer, or None when it does not parse (garbage,
    truncated, or nested deeper than the parser's recursion limit)."""
    try:
        return _storable(json.loads(text or ""))
    except (json.JSONDecodeError, RecursionError):
        return None


def _storable(value: Any) -> Any:
    """``value`` with every string storable on every database: NUL (``\\u0000`` in
    the JSON, which PostgreSQL's text refuses) dropped, unpaired surrogates replaced."""
    if isinstance(value, str):
        return clean_text(value.replace("\x00", ""))
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def clean_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot store (unpaired surrogates from a
    server's escapes) replaced, so it can be recorded and shown."""
    return text.encode("utf-8", "replace").decode("utf-8")
