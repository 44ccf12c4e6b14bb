"""Small helpers that keep error and log messages on one readable line."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_WHITESPACE = re.compile(r"\s+")


def one_line(value: object, limit: int = 200) -> str:
    """``value`` as text with all whitespace runs (newlines included) made one space.

    Longer results are cut to ``limit`` characters and end with an ellipsis.
    """
    text = _WHITESPACE.sub(" ", str(value)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def without_credentials(url: str) -> str:
    """``url`` without a user name or password, fit to be shown or stored."""
    try:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            return urlunsplit(parts._replace(netloc=host))
    except ValueError:
        pass
    return url


def shown_url(url: str) -> str:
    """A URL fit for a message: one line, short, and without a user name or password."""
    return one_line(without_credentials(url), 160)


def plural(count: int, noun: str) -> str:
    """``1 document``, ``2 documents``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
